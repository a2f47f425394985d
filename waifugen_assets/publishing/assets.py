"""The `social_posts` asset: a partition's branded reels published on each platform of the
character, exactly once per reel x platform (flows and error handling in publishing.py)."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import dataclasses
import datetime as dt
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from resources.database import DatabaseResource
from resources.instagram import InstagramResource, lookup_user
from resources.instagram import refresh_token as instagram_refresh
from resources.quota_store import PostgresRateLimitStore
from resources.telegram import TelegramResource
from resources.tiktok import TikTokResource, tiktok_limits
from resources.video_store import VideoStoreResource
from resources.youtube import YouTubeResource
from waifugen_assets.core import alerts, clock, schema
from waifugen_assets.core.accounts import learn_external_id
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.preflight import check_before_spending
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.catalog import (
    CONTENT_TEAM,
    cell,
    check_result,
    link,
    md_table,
    reasons_table,
    row_counts,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.pipeline.runs import asks_late, stop_on_config_error
from waifugen_assets.publishing.deadline import GRACE, last_post_deadline, roster_at_load
from waifugen_assets.publishing.flows import (
    DONE,
    ELSEWHERE,
    Flow,
    PostJob,
    PostQuota,
    PublishOutcome,
    TokenSource,
    ensure_post,
    publish_post,
)
from waifugen_assets.publishing.live_posts import PartitionPost, partition_posts
from waifugen_assets.publishing.platform_flows import (
    InstagramFlow,
    TikTokFlow,
    YouTubeFlow,
    verify_tiktok,
)
from waifugen_assets.roster.model import PUBLISH_PLATFORMS
from waifugen_assets.videos.assets import branded_videos

DISCLOSURE_CHECK = "ai_disclosure"


def posts_freshness() -> dg.FreshnessPolicy | None:
    """Today's posts out by the roster's last slot plus an hour (publishing/deadline.py), from
    the roster file as the code location loads; none without a readable roster."""
    roster = roster_at_load()
    deadline = roster and last_post_deadline(roster.enabled(), dt.datetime.now(dt.UTC).date())
    if not deadline:
        return None
    return dg.FreshnessPolicy.cron(deadline_cron=deadline.cron, lower_bound_delta=GRACE,
                                   timezone=deadline.timezone)


class PublishConfig(dg.Config):
    only_due: bool = Field(default=True, description="Only reels whose slot time has come "
                           "(False: every branded reel of the day now, as `make run` does in "
                           "sandbox mode).")
    post_late: bool = Field(default=False, description="Post reels whose slot is older than "
                            "the stale age too (and reopen posts skipped as stale); by "
                            "default they are recorded as skipped, not posted. The run tag "
                            "`waifugen/post_late=true` does the same.")
    stale_after_hours: float | None = Field(
        default=None, description="Age of a slot after which it is stale; default "
        "PUBLISH_STALE_AFTER_HOURS (3).")
    instagram_resumable: bool = Field(
        default=True, description="Upload to Instagram by resumable rupload (True) or let "
        "Instagram pull the store's public URL (False).")
    youtube_daily_units: int | None = Field(
        default=None, description="The YouTube project's daily units (default: the youtube "
        "resource's); `waifugen run` raises it with the sandbox's quota.")
    poll_interval_seconds: float | None = Field(
        default=None, description="Between status polls; default 0 in sandbox, 10 s else.")
    status_polls: int = Field(
        default=30, description="Status polls per post and run (TikTok, Instagram) before the "
        "post is left `processing` for the next run to settle.")
    tiktok_daily_posts: int = Field(
        default=15, description="Inits per TikTok account per day before slots are deferred "
        "(TikTok's cap is not published; about 15 is what API users report).")
    instagram_daily_publishes: int = Field(
        default=50, description="Publishes per Instagram account per day (the documented "
        "content_publishing_limit); the live limit is read before each publish too.")


def _platform_clients(character_id: str, platform: str, vault: TokenVault,
                      account: dict, tiktok: TikTokResource, instagram: InstagramResource,
                      youtube: YouTubeResource, database: DatabaseResource,
                      config: PublishConfig) -> tuple[Flow, TokenSource]:
    engine = database.get_engine()
    poll = config.poll_interval_seconds
    if poll is None:
        poll = 0.0 if get_settings().is_sandbox else 10.0
    # Quotas are counted in quota_usage before the call, shared by every process.
    def quota(service: str, limit: int) -> PostQuota:
        return PostQuota(PostgresRateLimitStore(engine, service), f"posts:{account['id']}",
                         limit)

    if platform == "tiktok":
        tokens = TokenSource(vault, character_id, platform, tiktok.refresher())
        limits = tiktok_limits(store=PostgresRateLimitStore(engine, "tiktok"),
                               max_wait=tiktok.max_wait_seconds)
        return TikTokFlow(tiktok.get_client(tokens, limits=limits), poll_interval=poll,
                          max_polls=config.status_polls,
                          daily_posts=quota("tiktok", config.tiktok_daily_posts)), tokens
    if platform == "instagram":
        base, _ = instagram.resolved_urls()
        tokens = TokenSource(vault, character_id, platform,
                             lambda token: instagram_refresh(base, None, None, token))
        ig_user = learn_external_id(engine, account, lambda: lookup_user(
            base, tokens(), api_version=instagram.api_version).id)
        return InstagramFlow(instagram.get_client(tokens, ig_user),
                             resumable=config.instagram_resumable, poll_interval=poll,
                             max_polls=config.status_polls,
                             daily_publishes=quota("instagram",
                                                   config.instagram_daily_publishes)), tokens
    tokens = TokenSource(vault, character_id, platform, youtube.refresh)
    quota = youtube.ledger()
    if config.youtube_daily_units:
        quota = dataclasses.replace(quota, daily_units=config.youtube_daily_units)
    flow = YouTubeFlow(engine, quota_key=youtube.credentials()[0], quota=quota)
    flow.client = youtube.get_client(tokens, on_quota=flow.spend)
    return flow, tokens


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[branded_videos],
    group_name="content",
    kinds={"tiktok", "instagram", "youtube", "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.social_posts),
    freshness_policy=posts_freshness(),
    check_specs=[dg.AssetCheckSpec(
        DISCLOSURE_CHECK, asset="social_posts", blocking=False,
        description="Every post of the partition that reached the platform carries the AI "
        "disclosure.")],
    description="Each branded reel published on TikTok, Instagram and YouTube, exactly once: "
    "intent recorded before each call, remote handles saved at once, unknown outcomes "
    "reconciled with the platform before any new attempt.",
)
def social_posts(context: dg.AssetExecutionContext, config: PublishConfig,
                 database: DatabaseResource, video_store: VideoStoreResource,
                 tiktok: TikTokResource, instagram: InstagramResource,
                 youtube: YouTubeResource, telegram: TelegramResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    settings = get_settings()
    engine = database.get_engine()
    post_late = config.post_late or asks_late(context.run.tags)
    vault = TokenVault(engine, TokenCipher(settings.secret_keys))
    now = clock.now()
    stale_after = dt.timedelta(hours=config.stale_after_hours
                               if config.stale_after_hours is not None
                               else settings.publish_stale_after_hours)
    r, v, pa, sp = schema.reels, schema.videos, schema.platform_accounts, schema.social_posts
    due = [r.c.character_id == character_id, r.c.date == day,
           r.c.status.in_(("branded", "published"))]
    if config.only_due:
        due.append(r.c.scheduled_at <= now)
    with engine.connect() as conn:
        reels = [dict(x) for x in conn.execute(
            sa.select(r.c.id, r.c.content_rating, r.c.plan, r.c.scheduled_at, v.c.storage_key,
                      v.c.public_url)
            .join(v, sa.and_(v.c.reel_id == r.c.id, v.c.variant == "branded"))
            .where(*due).order_by(r.c.scheduled_at, r.c.tier, r.c.slot)).mappings()]
        accounts = {a["platform"]: dict(a) for a in conn.execute(
            sa.select(pa).where(pa.c.character_id == character_id,
                                pa.c.platform.in_(PUBLISH_PLATFORMS))).mappings()}
        settled = {(reel_id, platform) for reel_id, platform, state in conn.execute(
            sa.select(sp.c.reel_id, sp.c.platform, sp.c.state)
            .join(r, r.c.id == sp.c.reel_id)
            .where(r.c.character_id == character_id, r.c.date == day))
            if state in DONE and not (post_late and state == "skipped")}
    getters = {"tiktok": tiktok.refresher, "youtube": youtube.credentials}
    stop_on_config_error(lambda: check_before_spending(
        engine, [character_id], credentials=[getters[p] for p in accounts if p in getters]))
    outcome = PublishOutcome()
    store = video_store.store()

    def alert(key: str, text: str) -> None:  # recorded once; sent once, after the posts
        context.log.warning("alert: %s", text)
        alerts.raise_alert(engine, key, text)

    scratch = Path(tempfile.mkdtemp(prefix="wg-publish-"))
    verified = {"checked": 0, "public_ids": 0, "failed_after_publish": 0}  # no TikTok: zeros
    try:
        flows: dict[str, tuple[Flow, TokenSource] | None] = {}
        for platform, account in accounts.items():
            try:
                flows[platform] = _platform_clients(character_id, platform, vault, account,
                                                    tiktok, instagram, youtube, database,
                                                    config)
            except Exception as exc:  # one platform never blocks the others
                context.log.warning("%s: %s not usable: %s", character_id, platform, exc)
                outcome.reasons[platform] = f"not usable: {exc}"
                flows[platform] = None
        with Claims(engine) as claims:
            for reel in reels:
                todo = [p for p in flows if (reel["id"], p) not in settled]
                if not todo:
                    continue  # nothing left to do for this reel: no need to fetch its video
                path = store.get_path(reel["storage_key"], scratch)
                for platform in todo:
                    pair = flows[platform]
                    if pair is None:
                        continue
                    flow, tokens = pair
                    job = PostJob(reel_id=reel["id"], character_id=character_id,
                                  platform=platform, content_rating=reel["content_rating"],
                                  plan=reel["plan"], video=path, public_url=reel["public_url"],
                                  scheduled_at=reel["scheduled_at"])
                    post_id = ensure_post(engine, reel["id"], platform,
                                          accounts[platform]["id"])
                    state, reason = publish_post(engine, job, post_id, flow, tokens, vault,
                                                 alert=alert, claims=claims,
                                                 stale_before=now - stale_after,
                                                 post_late=post_late)
                    outcome.add(platform, state, f"{reel['id']}:{platform}", reason)
                if path.is_relative_to(scratch):  # a download, not the local store's file
                    path.unlink(missing_ok=True)
        if (pair := flows.get("tiktok")) is not None:
            verified = verify_tiktok(engine, pair[0].client, character_id, day, alert=alert)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    complete = mark_published(engine, [reel["id"] for reel in reels], len(accounts))
    alerts_note = alerts.send_pending(engine, telegram.send_alert if telegram.configured
                                      else None, context.log)
    for key, reason in outcome.reasons.items():
        context.log.warning("post %s: %s", key, reason)
    counts = outcome.totals()
    with engine.connect() as conn:
        posts = partition_posts(conn, character_id, day)
        rows = row_counts(conn, sa.select(sp.c.id), sa.select(sp.c.id).join(
            r, r.c.id == sp.c.reel_id).where(r.c.character_id == character_id, r.c.date == day))
    return dg.MaterializeResult(
        metadata={"reels": len(reels), "published_everywhere": complete,
                  "published": counts.get("published", 0),
                  "skipped_stale": counts.get("skipped", 0),
                  "deferred": counts.get("deferred", 0),
                  "in_another_run": counts.get(ELSEWHERE, 0),
                  "failed": counts.get("failed_permanent", 0),
                  "live_posts": sum(1 for p in posts if p.state == "published"),
                  "live_links": sum(1 for p in posts if p.url),
                  **{f"tiktok_{k}": v for k, v in verified.items()},
                  # kept as it was for existing readers; the numbers are beside it
                  "tiktok_verified": dg.MetadataValue.json(verified),
                  "alerts": alerts_note,
                  "posts": posts_table(posts),
                  "states": states_table(outcome.states),
                  "reasons": reasons_table(outcome.reasons, key="post"),
                  **rows},
        check_results=[disclosure_check(engine, character_id, day)])


def posts_table(posts: list[PartitionPost]) -> dg.MetadataValue:
    """Every post of the partition, each live one linked to where it can be seen."""
    return md_table(["reel", "slot", "platform", "state", "post"], (
        [cell(p.reel_id), cell(p.slot_time), cell(p.platform), cell(p.state),
         link("open", p.url) if p.url else "-"] for p in posts))


def states_table(states: dict[str, dict[str, int]]) -> dg.MetadataValue:
    """This run's posts by platform and state."""
    return md_table(["platform", "state", "posts"], (
        [cell(platform), cell(state), str(n)]
        for platform, per in states.items() for state, n in per.items()))


def mark_published(engine: sa.Engine, reel_ids: list[int], platforms: int) -> int:
    """A reel is `published` once each of its character's platforms has it published."""
    if not reel_ids or not platforms:
        return 0
    r, sp = schema.reels, schema.social_posts
    done = (sa.select(sa.func.count()).where(sp.c.reel_id == r.c.id, sp.c.state == "published")
            .scalar_subquery())
    with engine.begin() as conn:
        return conn.execute(sa.update(r).where(r.c.id.in_(reel_ids), r.c.status == "branded",
                                               done >= platforms)
                            .values(status="published", updated_at=sa.func.now())).rowcount


def disclosure_check(engine: sa.Engine, character_id: str,
                     day: dt.date) -> dg.AssetCheckResult:
    r, sp = schema.reels, schema.social_posts
    with engine.connect() as conn:
        sent = dict(conn.execute(
            sa.select(sp.c.id, sp.c.ai_disclosure).join(r, r.c.id == sp.c.reel_id)
            .where(r.c.character_id == character_id, r.c.date == day,
                   sa.or_(sp.c.attempts > 0, sp.c.state.not_in(("planned", "deferred"))))
            .order_by(sp.c.id)).all())
    missing = [post_id for post_id, disclosed in sent.items() if not disclosed]
    return check_result(
        DISCLOSURE_CHECK, character_id, day, passed=not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        summary=f"{len(missing)} of {len(sent)} post(s) that went to a platform lack the AI "
        "disclosure" if missing
        else f"all {len(sent)} post(s) that went to a platform carry the AI disclosure",
        # the ids: a list that varies, beside its count
        metadata={"posts_checked": len(sent), "undisclosed": len(missing),
                  "undisclosed_posts": dg.MetadataValue.json(missing)})
