"""Planning stage: `reel_plans`, the day's slots become planned reels, with the budget check.

Idempotent: a reel is identified by (character, date, tier, slot) and a plan, once written, is
never rewritten by a re-materialization (later stages may already be working from it). A
second run of the same partition therefore writes nothing and reports the reels as existing.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects.postgresql import insert

from resources.database import DatabaseResource
from resources.ollama import OllamaResource
from resources.roster_file import RosterResource
from resources.telegram import TelegramResource
from waifugen_assets.core import alerts, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.schema import REEL_TIERS
from waifugen_assets.money.budget import CostModel, Level
from waifugen_assets.money.credits import budget_report, record_alerts, settle_blocked
from waifugen_assets.pipeline.catalog import (
    CONTENT_TEAM,
    check_result,
    row_counts,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.planning.plans import PlanRequest, day_slot_times, llm_writer, plan_texts
from waifugen_assets.roster.assets import characters
from waifugen_assets.roster.model import local_slot_utc
from waifugen_assets.roster.phases import PhaseError, phase_on, phases_for_roster

COST_MODEL = CostModel()


BUDGET_CHECK = "budget"

class PlanConfig(dg.Config):
    tier: str = Field(default="standard", description="`standard` (the day's slots) or "
                      "`premium` (one premium reel, at the day's last slot time).")


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[characters],
    group_name="content",
    kinds={"ollama", "postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.reels),
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
    ollama: OllamaResource, telegram: TelegramResource, roster: RosterResource,
) -> dg.MaterializeResult:
    if config.tier not in REEL_TIERS:
        raise dg.Failure(f"tier {config.tier!r} is not one of {', '.join(REEL_TIERS)}",
                         allow_retries=False)
    try:  # the character's phase says how many reels a day (docs/milestones.md)
        ladder = phases_for_roster(roster.file())
    except PhaseError as exc:
        raise dg.Failure(f"phases file has {len(exc.issues)} error(s); nothing was planned:\n"
                         f"{exc}", allow_retries=False) from None
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
        phase = phase_on(conn, character_id, day, ladder)  # recorded before this day began
    if row is None:
        raise dg.Failure(f"character {character_id!r} is not in the characters table; "
                         "materialize `characters` first", allow_retries=False)
    if not row["enabled"]:
        context.log.info("character %s is disabled: nothing planned", character_id)
        with engine.connect() as conn:
            counts = _row_counts(conn, character_id, day)
        return dg.MaterializeResult(
            metadata={"planned": 0, "existing": len(existing), "note": "character disabled",
                      **counts},
            check_results=[check_result(
                BUDGET_CHECK, character_id, day, passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                summary="character disabled: nothing planned, nothing to judge",
                metadata={"note": "character disabled"})])

    zone = ZoneInfo(row["timezone"])
    writer = llm_writer(ollama)
    new_rows = []
    # Premium: one reel a week, at the evening (last) slot, alongside the standard ones.
    # The roster's slots are the character's first-phase day; a later phase adds its slots
    # over the first phase's on top (4 listed: 4, 6, 8; 2 listed: 2, 4, 6 by default).
    times = (row["slots"][-1:] if config.tier == "premium"
             else day_slot_times(row["slots"], len(row["slots"]) + phase.daily_slots
                                 - ladder.first.daily_slots))
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
        counts = _row_counts(conn, character_id, day)
    alerts_note = alerts.send_pending(engine, telegram.send_alert if telegram.configured
                                      else None, context.log)
    sources = [r["plan"]["source"] for r in new_rows]
    return dg.MaterializeResult(
        metadata={
            "planned": inserted,
            "existing": len(existing),
            "slots": len(times),
            "tier": config.tier,
            "phase": phase.name,
            "llm_plans": sources.count("ollama"),
            "template_fallbacks": sources.count("template"),
            "alerts": alerts_note,
            **counts,
        },
        check_results=[check],
    )


def _row_counts(conn: sa.Connection, character_id: str, day: dt.date) -> dict[str, object]:
    r = schema.reels
    return row_counts(conn, sa.select(r.c.id),
                      sa.select(r.c.id).where(r.c.character_id == character_id, r.c.date == day))


def budget_check(conn: sa.Connection, character_id: str, day: dt.date) -> dg.AssetCheckResult:
    """Evaluate the budget, block or unblock the day's unpaid reels, and queue alerts."""
    report = budget_report(conn, character_id, day, get_settings().a2e_monthly_credits)
    view = report.character
    settle_blocked(conn, character_id, view, day)
    record_alerts(conn, character_id, day, view.percent)
    record_alerts(conn, None, day, report.roster.percent)
    finite = view.percent != float("inf")
    return check_result(
        BUDGET_CHECK, character_id, day,
        passed=view.level is Level.OK,
        severity=dg.AssetCheckSeverity.ERROR if view.level is Level.BLOCK
        else dg.AssetCheckSeverity.WARN,
        summary=f"budget {view.level.value}: {view.spent} spent + {view.projected} projected "
        f"of {view.limit} credits"
        + (f" ({view.percent:.1f} %)" if finite else " (no credits for this character)"),
        metadata={
            "level": view.level.value,
            "limit": view.limit,
            "spent": view.spent,
            "projected": view.projected,
            "committed": view.committed,
            "percent": round(view.percent, 1) if finite else -1,  # -1: over a zero limit
            "roster_percent": round(report.roster.percent, 1)
            if report.roster.percent != float("inf") else -1,
            "projected_exhaustion": report.exhaustion.isoformat() if report.exhaustion
            else "not this month",
        },
    )
