"""The `comment_replies` asset: one character's comment replies on Instagram and YouTube
(comments/cycle.py), asked for by the `comments` sensor where there is answering work (the
sensor's `comment_poll` run reads), and the `reply_safety` check on what reached the
platforms."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from resources.database import DatabaseResource
from resources.instagram import InstagramResource
from resources.ollama import OllamaResource
from resources.youtube import YouTubeResource
from waifugen_assets.comments.caps import Caps
from waifugen_assets.comments.cycle import CycleStats, comment_cycle
from waifugen_assets.comments.sources import COMMENT_PLATFORMS, comment_clients, comment_sources
from waifugen_assets.comments.summary import (
    counts,
    day_bounds,
    held_rows,
    sent_rows,
    unsafe_replies,
)
from waifugen_assets.core import clock, schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.catalog import (
    SUBSCRIBERS_TEAM,
    cell,
    check_result,
    link,
    md_table,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.pipeline.runs import stop_on_config_error
from waifugen_assets.subscribers.cycle import character_info

SAFETY_CHECK = "reply_safety"
# What the cycle counts per reply: each a number on every materialization (the UI plots them).
OUTCOMES = ("sent", "reconciled_sent", "reconciled_not_sent", "unknown", "waiting", "deferred",
            "held", "failed", "too_late")
TIKTOK = "no comment API for this kind of TikTok app: TikTok comments are not read"


class CommentConfig(dg.Config):
    now: str | None = Field(
        default=None, description="ISO time to run as (simulations, replays); default: now.")
    per_post_hour: int = Field(default=10, ge=1, description="Replies per post per hour.")
    per_account_day: int = Field(default=50, ge=1, description="Replies per account (character "
                                 "x platform) per day; YouTube's units allow about 200.")
    answer_within_hours: float = Field(default=72.0, gt=0, description="A comment older than "
                                       "this when its turn comes is not answered any more.")
    persona_writer: bool = Field(default=True, description="Let the character's persona "
                                 "writer (Ollama) word replies; False: templates only.")
    youtube_daily_units: int | None = Field(
        default=None, description="The YouTube project's daily units (default: the youtube "
        "resource's); `waifugen run` raises it with the sandbox's quota, as for publishing.")
    read: bool = Field(default=True, description="Read the character's due posts first (the "
                       "CLI, backfills). The comments sensor's runs say False: its "
                       "comment_poll run has read them.")

    def caps(self) -> Caps:
        return Caps(self.per_post_hour, self.per_account_day,
                    dt.timedelta(hours=self.answer_within_hours))


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=["social_posts"],
    group_name="comments",
    kinds={"instagram", "youtube", "postgres"},
    owners=[SUBSCRIBERS_TEAM],
    metadata=table_metadata(schema.comment_replies),
    check_specs=[dg.AssetCheckSpec(
        SAFETY_CHECK, asset="comment_replies", blocking=False,
        description="Every reply of the character tried in the last day carries the AI "
        "disclosure and passes the safety gate; none answers the account's own comment; none "
        "answers an unsafe comment with text an operator did not write.")],
    description="New Instagram and YouTube comments on the character's posts of the last 7 "
    "days (read by the comment_poll run, or first by this run outside the sensor), "
    "classified (question, compliment, neutral, spam, hostile, unsafe); safe ones "
    "answered once in persona through the DM safety gate with the AI disclosure, unsafe or "
    "doubtful ones held for `waifugen comments review`, spam and hostile ones skipped; caps "
    "per post and account, YouTube replies deferred when the day's units are spent. "
    "TikTok offers no comment API to this kind of app.",
)
def comment_replies(context: dg.AssetExecutionContext, config: CommentConfig,
                    database: DatabaseResource, instagram: InstagramResource,
                    youtube: YouTubeResource, ollama: OllamaResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    now = dt.datetime.fromisoformat(config.now) if config.now else clock.now()
    if now.tzinfo is None:
        raise ValueError(f"CommentConfig.now {config.now!r} needs a UTC offset (e.g. ...Z)")
    vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
    info = character_info(engine, character_id)
    # No TikTok: TikTok has no comment source, its resource is never used.
    clients = stop_on_config_error(lambda: comment_clients(
        engine, vault, character_id, instagram, youtube, config.youtube_daily_units))

    def writer(system: str, user: str) -> str | None:
        return ollama.chat_text(system, user)

    try:
        sources, problems = comment_sources(engine, clients)
        with Claims(engine) as claims:
            stats = comment_cycle(engine, info, sources, now, caps=config.caps(),
                                  writer=writer if config.persona_writer else None,
                                  claims=claims, read=config.read)
    finally:
        clients.close()
    for platform, why in problems.items():
        context.log.warning("%s %s: %s", character_id, platform, why)
    for reason, n in stats.reasons.most_common():
        context.log.info("%s: %s x%d", character_id, reason, n)
    return _materialization(engine, character_id, day, info.timezone, stats, problems, now)


def _materialization(engine: sa.Engine, character_id: str, day: dt.date, timezone: str,
                     stats: CycleStats, problems: dict[str, str],
                     now: dt.datetime) -> dg.MaterializeResult:
    start, end = day_bounds(day, timezone)
    with engine.connect() as conn:
        totals = counts(conn, character_id, start, end)
        held = held_rows(conn, character_id)
        sent = sent_rows(conn, character_id, start, end)
        unsafe = unsafe_replies(conn, character_id, now - dt.timedelta(days=1))
    f = stats.fetch
    outcomes = {k: stats.outcomes.get(k, 0) for k in (*OUTCOMES, *sorted(stats.outcomes))}
    platforms = {p: problems.get(p, "ok" if p in stats.sources else "no account")
                 for p in COMMENT_PLATFORMS}
    check = check_result(
        SAFETY_CHECK, character_id, day, passed=not unsafe,
        severity=dg.AssetCheckSeverity.ERROR,
        summary="every reply of the last day is disclosed and safe" if not unsafe else
        f"{len(unsafe)} reply(ies) break a rule: " + "; ".join(
            f"reply {u.reply_id} (comment {u.comment_id}): {u.why}" for u in unsafe[:5]),
        metadata={"unsafe_replies": len(unsafe)})
    return dg.MaterializeResult(metadata={
        "posts_read": f.posts_read, "comments_fetched": f.fetched, "comments_stored": f.stored,
        "before_switch_on": f.skipped.get("before replies were switched on", 0),
        "read_failures": len(f.failed),
        **{f"stored_{s}": f.states.get(s, 0) for s in schema.COMMENT_STATES},
        **{f"class_{c}": f.classes.get(c, 0) for c in schema.COMMENT_CLASSES},
        "replies_planned": stats.planned, **outcomes,
        "reasons": md_table(["reason", "replies"], (
            [cell(reason), str(n)] for reason, n in stats.reasons.most_common())),
        "held_for_review": md_table(["comment", "platform", "class", "why"], (
            [str(r.id), r.platform, cell(r.classification or "-"), cell(r.reason or "")]
            for r in held)),
        "replies_today": md_table(["comment", "class", "source", "reply"], (
            [link(f"{r.platform} {r.id}", r.permalink), cell(r.classification or "-"),
             r.source, cell(r.text)] for r in sent)),
        "platforms": md_table(["platform", "comments"], (
            [p, cell(why)] for p, why in {**platforms, "tiktok": TIKTOK}.items())),
        "as_of": now.isoformat(), **totals,
        "dagster/row_count": totals["replies"],
        "dagster/partition_row_count": totals["replies_sent_today"]},
        check_results=[check])
