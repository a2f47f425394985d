"""Rendering stage: `reels`, each planned reel rendered by the video provider and paid once
(see renderer.py), with the made-in-time check."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
from collections.abc import Callable

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from resources.a2e import A2EResource, a2e_limiter
from resources.database import DatabaseResource
from resources.quota_store import PostgresRateLimitStore
from resources.runpod import RunPodResource
from waifugen_assets.core import schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.clock import parse_instant
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.preflight import check_before_spending
from waifugen_assets.money.credits import budget_report
from waifugen_assets.pipeline.catalog import (
    CONTENT_TEAM,
    check_result,
    reasons_table,
    row_counts,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.pipeline.runs import asks_late, stop_on_config_error
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.rendering.providers import A2EProvider, RunPodProvider, render_order
from waifugen_assets.rendering.renderer import RENDERABLE as RENDERABLE_STATUSES
from waifugen_assets.rendering.renderer import Renderer
from waifugen_assets.rendering.tasks import PollPlan, RenderJob

MADE_IN_TIME_CHECK = "made_in_time"


class RenderConfig(dg.Config):
    provider: str | None = Field(
        default=None, description="`auto` (A2E first, RunPod when A2E keeps failing) or "
        "`runpod` (RunPod first: an A2E outage); default the RENDER_PROVIDER setting.")
    first_poll_seconds: float | None = Field(
        default=None, description="Seconds from a submit to its first status poll; default "
        "A2E_RENDER_SECONDS (the expected render time).")
    poll_interval_seconds: float | None = Field(
        default=None, description="Shortest wait between two polls of one task (later polls "
        "back off to a quarter of the task's age, at most 10 min); default an eighth of the "
        "first poll's delay, at most 30 s.")
    max_wait_seconds: float | None = Field(
        default=None, description="A poll due within this is waited for in the run; later "
        "ones are left to the generation sensor. Default 60 s.")
    abandon_after_seconds: float | None = Field(
        default=None, description="A task still unfinished this long after its submit fails "
        "its reel as timed out; default 6 h.")
    late: bool = Field(
        default=False, description="Render reels whose slot is older than the stale age too "
        "(for a run that will post late); by default they are recorded as missed. The run "
        "tag `waifugen/post_late=true` does the same.")
    submit_until: str | None = Field(
        default=None, description="Submit only reels whose slot is at or before this UTC time "
        "(ISO 8601): the generation sensor's way of rendering the roster's earliest slots "
        "first within the A2E budget. Default: every due reel.")


def budget_guard(day: dt.date) -> Callable[[sa.Connection, int], str | None]:
    """Last check before paying: this reel must still fit the character's month."""
    def guard(conn: sa.Connection, reel_id: int) -> str | None:
        r = schema.reels
        cid, cost = conn.execute(sa.select(r.c.character_id, r.c.projected_credits)
                                 .where(r.c.id == reel_id)).one()
        view = budget_report(conn, cid, day, get_settings().a2e_monthly_credits).character
        if view.spent + cost > view.limit:
            return f"budget: {view.spent} + {cost} credits would pass the {view.limit} limit"
        return None
    return guard


RENDERABLE = schema.reels.c.status.in_(RENDERABLE_STATUSES)
# A reel with its video made: what the `reels` asset counts as its rows.
RENDERED_STATUSES = ("generated", "stored", "branded", "published")


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[reel_plans],
    group_name="content",
    kinds={"a2e", "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.reels),
    pool="video_api",
    check_specs=[dg.AssetCheckSpec(
        MADE_IN_TIME_CHECK, asset="reels", blocking=False,
        description="No reel of the partition missed its slot unrendered (WARN with the "
        "count and the reasons when some did).")],
    description="Each planned reel rendered by A2E (RunPod when A2E keeps failing), its task "
    "id saved before polling and its cost written to the credit ledger.",
)
def reels(context: dg.AssetExecutionContext, config: RenderConfig, database: DatabaseResource,
          a2e: A2EResource, runpod: RunPodResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    r, ch = schema.reels, schema.characters
    late = config.late or asks_late(context.run.tags)
    if late:  # asked for late work: reels that missed their slot are made after all
        with engine.begin() as conn:
            conn.execute(sa.update(r).where(r.c.character_id == character_id, r.c.date == day,
                                            r.c.status == "skipped")
                         .values(status="planned", failure_reason=None, next_attempt_at=None,
                                 updated_at=sa.func.now()))
    with engine.connect() as conn:
        avatar, voice = conn.execute(sa.select(ch.c.a2e_avatar_id, ch.c.a2e_voice_id)
                                     .where(ch.c.id == character_id)).one()
        rows = [dict(row) for row in conn.execute(
            sa.select(r).where(r.c.character_id == character_id, r.c.date == day, RENDERABLE)
            .order_by(r.c.scheduled_at, r.c.tier, r.c.slot)).mappings()]
    settings = get_settings()
    stop_on_config_error(lambda: check_before_spending(
        engine, [character_id], credentials=[a2e.resolved_api_key]))
    store = PostgresRateLimitStore(engine, "a2e")
    primary = A2EProvider(a2e.get_client(limiter=a2e_limiter(
        a2e.resolved_requests_per_hour(), store=store, max_wait=a2e.max_wait_seconds)))
    fallback = RunPodProvider(runpod.get_client()) if runpod.configured else None
    # RENDER_PROVIDER=runpod (or the run's `provider`): new renders go to RunPod first, A2E
    # only when RunPod fails; renders already at A2E are still polled there.
    if stop_on_config_error(lambda: render_order(config.provider,
                                                 settings.get("RENDER_PROVIDER"),
                                                 fallback is not None)) == "runpod":
        primary, fallback = fallback, primary
    first = (config.first_poll_seconds if config.first_poll_seconds is not None
             else settings.a2e_render_seconds)
    with Claims(engine) as claims:
        renderer = Renderer(
            engine, primary, fallback, claims=claims,
            polls=PollPlan(
                first=first,
                # Renders expected in minutes are not asked about every few seconds; the
                # sandbox's instant ones (A2E_RENDER_SECONDS=0) are polled at once.
                min_interval=config.poll_interval_seconds
                if config.poll_interval_seconds is not None else min(30.0, first / 8)),
            max_wait=config.max_wait_seconds if config.max_wait_seconds is not None else 60.0,
            abandon_after=config.abandon_after_seconds
            if config.abandon_after_seconds is not None else 6 * 3600.0,
            stale_after=None if late
            else dt.timedelta(hours=settings.publish_stale_after_hours),
            submit_until=parse_instant(config.submit_until) if config.submit_until else None,
            budget_guard=budget_guard(day))
        renderer.render_all(
            RenderJob(reel_id=row["id"], character_id=character_id, date=day,
                      script=row["plan"].get("script", ""), avatar_id=avatar,
                      voice_id=voice, scheduled_at=row["scheduled_at"])
            for row in rows)
    out = renderer.outcome
    for reel_id, reason in {**out.failed, **out.skipped}.items():
        context.log.warning("reel %s: %s", reel_id, reason)
    rendered = r.c.status.in_(RENDERED_STATUSES)
    with engine.connect() as conn:
        missed = dict(conn.execute(sa.select(r.c.id, r.c.failure_reason).where(
            r.c.character_id == character_id, r.c.date == day, r.c.status == "skipped")).all())
        reels_of_day = conn.scalar(sa.select(sa.func.count()).where(
            r.c.character_id == character_id, r.c.date == day))
        counts = row_counts(conn, sa.select(r.c.id).where(rendered), sa.select(r.c.id).where(
            rendered, r.c.character_id == character_id, r.c.date == day))
    check = check_result(
        MADE_IN_TIME_CHECK, character_id, day, passed=not missed,
        severity=dg.AssetCheckSeverity.WARN,
        summary=f"{len(missed)} of {reels_of_day} reel(s) missed their slot unrendered"
        if missed else f"no reel of {reels_of_day} missed its slot",
        metadata={"missed": len(missed), "reels": int(reels_of_day or 0),
                  "reasons": reasons_table(missed)})
    return dg.MaterializeResult(check_results=[check], metadata={
        "generated": len(out.generated),
        "failed": len(out.failed),
        "pending": len(out.pending),
        "skipped_missed_slot": len(out.skipped),
        "in_another_run": len(out.elsewhere),
        "via_fallback": len(out.fallback),
        "status_requests": out.polls,
        "reasons": reasons_table({**out.pending, **out.failed, **out.skipped}),
        **counts,
    })
