"""Generation stage: `reel_plans` (the day's slots become planned reels) and `reels`
(each plan rendered by the video provider, paid once; see render.py).

Idempotent: a reel is identified by (character, date, tier, slot) and a plan, once written, is
never rewritten by a re-materialization (later stages may already be working from it). A
second run of the same partition therefore writes nothing and reports the reels as existing.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects.postgresql import insert

from resources.a2e import A2EResource, a2e_limiter
from resources.database import DatabaseResource
from resources.ollama import OllamaResource
from resources.quota_store import PostgresRateLimitStore
from resources.runpod import RunPodResource
from resources.telegram import TelegramResource
from waifugen_assets import schema
from waifugen_assets.budget import CostModel, Level
from waifugen_assets.characters import characters
from waifugen_assets.claims import Claims
from waifugen_assets.clock import parse_instant
from waifugen_assets.config import get_settings
from waifugen_assets.credits import budget_report, mark_sent, record_alerts, unsent_alerts
from waifugen_assets.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.planning import PlanRequest, plan_texts
from waifugen_assets.preflight import check_before_spending, stop_on_config_error
from waifugen_assets.providers import A2EProvider, RunPodProvider
from waifugen_assets.render import RENDERABLE as RENDERABLE_STATUSES
from waifugen_assets.render import PollPlan, Renderer, RenderJob
from waifugen_assets.roster import local_slot_utc
from waifugen_assets.schema import REEL_TIERS
from waifugen_assets.staleness import asks_late

COST_MODEL = CostModel()


BUDGET_CHECK = "budget"
MADE_IN_TIME_CHECK = "made_in_time"


class PlanConfig(dg.Config):
    tier: str = Field(default="standard", description="`standard` (the day's slots) or "
                      "`premium` (one premium reel, at the day's last slot time).")


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[characters],
    group_name="content",
    kinds={"ollama", "postgres"},
    pool="llm",
    check_specs=[dg.AssetCheckSpec(
        BUDGET_CHECK, asset="reel_plans", blocking=True,
        description="Spent + projected credits against the character's monthly budget: WARN "
        "from 80 %, ERROR from 100 % (blocks generation).")],
    description="The day's posting slots of one character as planned reels (script, caption, "
    "hashtags, title, AI disclosure), written by the LLM with a template fallback.",
)
def reel_plans(
    context: dg.AssetExecutionContext, config: PlanConfig, database: DatabaseResource,
    ollama: OllamaResource, telegram: TelegramResource,
) -> dg.MaterializeResult:
    if config.tier not in REEL_TIERS:
        raise dg.Failure(f"tier {config.tier!r} is not one of {', '.join(REEL_TIERS)}",
                         allow_retries=False)
    character_id, day = split_partition_key(context.partition_key)
    engine = database.get_engine()
    ch = schema.characters
    reels = schema.reels
    with engine.connect() as conn:
        row = conn.execute(sa.select(ch).where(ch.c.id == character_id)).mappings().first()
        existing = set(conn.execute(
            sa.select(reels.c.slot).where(
                reels.c.character_id == character_id, reels.c.date == day,
                reels.c.tier == config.tier)
        ).scalars())
    if row is None:
        raise dg.Failure(f"character {character_id!r} is not in the characters table; "
                         "materialize `characters` first", allow_retries=False)
    if not row["enabled"]:
        context.log.info("character %s is disabled: nothing planned", character_id)
        return dg.MaterializeResult(
            metadata={"planned": 0, "existing": len(existing), "note": "character disabled"},
            check_results=[dg.AssetCheckResult(check_name=BUDGET_CHECK, passed=True,
                                               metadata={"note": "character disabled"})])

    zone = ZoneInfo(row["timezone"])
    writer = ollama.plan_writer()
    new_rows = []
    # Premium: one reel a week, at the evening (last) slot, alongside the standard ones.
    times = row["slots"][-1:] if config.tier == "premium" else row["slots"]
    for slot, hhmm in enumerate(times):
        if slot in existing:
            continue
        req = PlanRequest(character_id=character_id, character_name=row["name"],
                          persona=row["persona"], date=day, slot=slot, slot_time=hhmm,
                          tier=config.tier)
        texts = plan_texts(req, writer)
        new_rows.append({
            "character_id": character_id, "date": day, "slot": slot, "tier": config.tier,
            "content_rating": row["content_rating"],
            "scheduled_at": local_slot_utc(day, hhmm, zone),
            "plan": {**texts, "slot_time": hhmm}, "status": "planned",
            "projected_credits": COST_MODEL.project(texts["script"]),
        })

    inserted = 0
    with engine.begin() as conn:
        if new_rows:
            stmt = insert(reels).values(new_rows).on_conflict_do_nothing(
                index_elements=[reels.c.character_id, reels.c.date, reels.c.tier, reels.c.slot])
            inserted = len(conn.execute(stmt.returning(reels.c.id)).all())
        check = budget_check(conn, character_id, day)
    alerts_note = send_pending_alerts(database, telegram, context.log)
    sources = [r["plan"]["source"] for r in new_rows]
    return dg.MaterializeResult(
        metadata={
            "planned": inserted,
            "existing": len(existing),
            "slots": len(times),
            "tier": config.tier,
            "llm_plans": sources.count("ollama"),
            "template_fallbacks": sources.count("template"),
            "alerts": alerts_note,
        },
        check_results=[check],
    )


def budget_check(conn: sa.Connection, character_id: str, day: dt.date) -> dg.AssetCheckResult:
    """Evaluate the budget, block or unblock the day's unpaid reels, and queue alerts."""
    report = budget_report(conn, character_id, day, get_settings().a2e_monthly_credits)
    view = report.character
    r = schema.reels
    day_unpaid = sa.and_(r.c.character_id == character_id, r.c.date == day,
                         r.c.generation_task_id.is_(None))
    if view.level is Level.BLOCK:
        conn.execute(sa.update(r).where(day_unpaid, r.c.status == "planned").values(
            status="blocked", updated_at=sa.func.now(),
            failure_reason=f"budget: {view.committed} of {view.limit} credits committed"))
    else:
        conn.execute(sa.update(r).where(day_unpaid, r.c.status == "blocked").values(
            status="planned", failure_reason=None, updated_at=sa.func.now()))
    record_alerts(conn, character_id, day, view.percent)
    record_alerts(conn, None, day, report.roster.percent)
    return dg.AssetCheckResult(
        check_name=BUDGET_CHECK,
        passed=view.level is Level.OK,
        severity=dg.AssetCheckSeverity.ERROR if view.level is Level.BLOCK
        else dg.AssetCheckSeverity.WARN,
        metadata={
            "level": view.level.value,
            "limit": view.limit,
            "spent": view.spent,
            "projected": view.projected,
            "percent": round(view.percent, 1) if view.percent != float("inf") else -1,
            "roster_percent": round(report.roster.percent, 1),
            "projected_exhaustion": report.exhaustion.isoformat() if report.exhaustion
            else "not this month",
        },
    )


def send_pending_alerts(database: DatabaseResource, telegram: TelegramResource,
                        log: logging.Logger | dg.DagsterLogManager) -> str:
    """Send every recorded, unsent budget alert; failures stay queued for the next run."""
    engine = database.get_engine()
    with engine.connect() as conn:
        pending = unsent_alerts(conn)
    if not pending:
        return "none pending"
    if not telegram.configured:
        return f"{len(pending)} queued: Telegram not configured"
    sent = 0
    a = schema.budget_alerts
    with Claims(engine) as claims:
        for alert in pending:
            # Two plans finishing together must not both send it: claim, then look again.
            if not claims.take("alert", alert.id):
                continue
            with engine.connect() as conn:
                if conn.scalar(sa.select(a.c.sent_at).where(a.c.id == alert.id)) is not None:
                    continue
            who = alert.character_id or "whole roster"
            text = (f"waifugen budget alert: {who} reached {alert.threshold}% of its "
                    f"{alert.provider.upper()} credits for {alert.period_start:%Y-%m}.")
            try:
                telegram.send_alert(text)
            except Exception as exc:  # an alert must never fail the plan; retried later
                log.warning("budget alert %s not sent: %s", alert.id, exc)
                continue
            with engine.begin() as conn:
                mark_sent(conn, [alert.id])
            sent += 1
    return f"{sent} sent, {len(pending) - sent} queued or sent by another run"


class RenderConfig(dg.Config):
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


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[reel_plans],
    group_name="content",
    kinds={"a2e", "postgres"},
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
    with engine.connect() as conn:
        missed = dict(conn.execute(sa.select(r.c.id, r.c.failure_reason).where(
            r.c.character_id == character_id, r.c.date == day, r.c.status == "skipped")).all())
    check = dg.AssetCheckResult(
        check_name=MADE_IN_TIME_CHECK, passed=not missed, severity=dg.AssetCheckSeverity.WARN,
        metadata={"missed": len(missed),
                  "reasons": dg.MetadataValue.json({str(k): v for k, v in missed.items()})})
    return dg.MaterializeResult(check_results=[check], metadata={
        "generated": len(out.generated),
        "failed": len(out.failed),
        "pending": len(out.pending),
        "skipped_missed_slot": len(out.skipped),
        "in_another_run": len(out.elsewhere),
        "via_fallback": len(out.fallback),
        "status_requests": out.polls,
        "reasons": dg.MetadataValue.json(
            {str(k): v for k, v in {**out.pending, **out.failed, **out.skipped}.items()}),
    })
