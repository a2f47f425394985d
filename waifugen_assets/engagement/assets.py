"""The `engagement_metrics` asset: one character's engagement read-back for a day (posts at
1 h, 6 h, 24 h, 3 d, 7 d and 30 d of age, followers once a day per account), rolled up into
`engagement_daily`, with a check that no reading is long overdue."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from resources.database import DatabaseResource
from resources.instagram import InstagramResource
from resources.tiktok import TikTokResource
from resources.youtube import YouTubeResource
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.engagement.readings import (
    ReadOutcome,
    due_posts,
    followers_due,
    read_followers,
    read_posts,
    readable_posts,
    store_readings,
)
from waifugen_assets.engagement.rollup import COUNTERS, roll_up
from waifugen_assets.engagement.summary import (
    daily_gains,
    number,
    top_posts,
    totals_by_platform,
)
from waifugen_assets.pipeline.catalog import (
    CONTENT_TEAM,
    cell,
    check_result,
    link,
    md_table,
    row_counts,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.pipeline.runs import stop_on_config_error
from waifugen_assets.publishing.social_clients import build_clients, character_accounts

IN_TIME_CHECK = "snapshots_in_time"
OVERDUE_AFTER = dt.timedelta(hours=2)  # a reading this late missed its age


class EngagementConfig(dg.Config):
    read_all_live: bool = Field(
        default=False, description="Read every live post of the character now, due or not "
        "(an early reading keeps the 1 h one due). `waifugen run` sets it in sandbox mode so "
        "the day's posts show numbers at once.")


def _timezone(conn: sa.Connection, character_id: str) -> str:
    c = schema.characters
    return str(conn.scalar(sa.select(c.c.timezone).where(c.c.id == character_id)) or "UTC")


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=["social_posts"],
    group_name="engagement",
    kinds={"tiktok", "instagram", "youtube", "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.engagement_snapshots),
    check_specs=[dg.AssetCheckSpec(
        IN_TIME_CHECK, asset="engagement_metrics", blocking=False,
        description="No post's reading is more than 2 hours past its age (1 h, 6 h, 24 h, "
        "3 d, 7 d, 30 d); a warning names how many and why (YouTube units spent, a platform "
        "failing, no account).")],
    description="Engagement read back from TikTok, Instagram and YouTube: each post's lifetime "
    "counters at 1 h, 6 h, 24 h, 3 d, 7 d and 30 d of age (append-only engagement_snapshots), "
    "followers once a day per account (follower_snapshots), the day's gains per platform "
    "(engagement_daily). Reads only: a rerun or a backfill adds readings, never changes a "
    "platform. Asked for hourly by the `engagement_hourly` schedule where a reading is due.",
)
def engagement_metrics(context: dg.AssetExecutionContext, config: EngagementConfig,
                       database: DatabaseResource, tiktok: TikTokResource,
                       instagram: InstagramResource,
                       youtube: YouTubeResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
    now = clock.now()
    with engine.connect() as conn:
        accounts = character_accounts(conn, character_id)
        timezone = _timezone(conn, character_id)
        posts = (due_posts(conn, character_id, now) if not config.read_all_live
                 else readable_posts(conn, character_id, now))
        follow = followers_due(conn, character_id, clock.local_today(timezone, now))
    clients = stop_on_config_error(lambda: build_clients(
        engine, vault, character_id, accounts, tiktok=tiktok, instagram=instagram,
        youtube=youtube))
    outcome = ReadOutcome()
    try:
        readings = read_posts(clients, posts, outcome, now)
        store_readings(engine, readings, now)
        read_followers(engine, clients, outcome, now, clock.local_today(timezone, now), follow)
    finally:
        clients.close()
    with engine.begin() as conn:
        for rolled in {day, day - dt.timedelta(days=1)}:  # yesterday's last hour too
            roll_up(conn, character_id, rolled, timezone)
    for platform, reason in outcome.reasons.items():
        context.log.warning("%s %s: %s", character_id, platform, reason)
    return materialization(engine, character_id, day, timezone, outcome, now)


def materialization(engine: sa.Engine, character_id: str, day: dt.date, timezone: str,
                    outcome: ReadOutcome, now: dt.datetime) -> dg.MaterializeResult:
    with engine.connect() as conn:
        gains = totals_by_platform(daily_gains(conn, character_id, day, day))
        top = top_posts(conn, character_id, now - dt.timedelta(days=1))
        overdue = overdue_readings(conn, character_id, now)
        es, sp, r = schema.engagement_snapshots, schema.social_posts, schema.reels
        rows = row_counts(conn, sa.select(es.c.id), sa.select(es.c.id)
                          .join(sp, sp.c.id == es.c.post_id).join(r, r.c.id == sp.c.reel_id)
                          .where(r.c.character_id == character_id,
                                 sa.cast(es.c.captured_at, sa.Date) == day))
    platforms = sorted(set(gains) | set(outcome.due) | set(outcome.followers))
    table = md_table(
        ["platform", "posts read", *COUNTERS, "followers", "no metrics", "deferred", "failed"],
        ([cell(p), number(gains.get(p, {}).get("posts_read")),
          *(number(gains.get(p, {}).get(c)) for c in COUNTERS),
          number(outcome.followers.get(p)), str(outcome.no_metrics.get(p, 0)),
          str(outcome.deferred.get(p, 0)), str(outcome.failed.get(p, 0))]
         for p in platforms))
    top_table = md_table(
        ["post", "views", "likes", "comments", "shares", "read at"],
        ([link(f"{t.platform} {t.slot_date}", t.url), number(t.views), number(t.likes),
          number(t.comments), number(t.shares), t.read_at.strftime("%Y-%m-%d %H:%M UTC")]
         for t in top))
    total = {c: sum(g[c] for g in gains.values()) for c in ("posts_read", *COUNTERS)}
    passed = overdue == 0
    why = "; ".join(f"{k}: {v}" for k, v in outcome.reasons.items()) or "not read yet"
    check = check_result(
        IN_TIME_CHECK, character_id, day, passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        summary="every reading on time" if passed else
        f"{overdue} reading(s) more than 2 h past their age ({why})",
        metadata={"overdue": overdue, "deferred": sum(outcome.deferred.values()),
                  "failed": sum(outcome.failed.values())})
    return dg.MaterializeResult(
        metadata={"platforms": table, "top_posts": top_table,
                  "due": sum(outcome.due.values()),
                  "snapshots": sum(outcome.snapshots.values()),
                  "no_metrics": sum(outcome.no_metrics.values()),
                  "deferred": sum(outcome.deferred.values()),
                  "failed": sum(outcome.failed.values()),
                  "requests": sum(outcome.requests.values()),
                  "followers": sum(outcome.followers.values()),
                  **{f"day_{k}": v for k, v in total.items()},
                  **rows},
        check_results=[check])


def overdue_readings(conn: sa.Connection, character_id: str, now: dt.datetime) -> int:
    sp, r = schema.social_posts, schema.reels
    return int(conn.scalar(
        sa.select(sa.func.count()).select_from(sp).join(r, r.c.id == sp.c.reel_id)
        .where(sp.c.metrics_next_at.is_not(None), sp.c.metrics_next_at < now - OVERDUE_AFTER,
               r.c.character_id == character_id)) or 0)
