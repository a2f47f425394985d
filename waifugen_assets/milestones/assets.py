"""Milestones stage (Workflow 05): the daily `character_phases` asset.

One run a date for the whole roster: each enabled character's phase from its latest follower
readings (follower_snapshots, written by `engagement_metrics`), each crossing recorded once
with the reading that crossed it, announced once on Telegram through the one alert sender.
Planning reads the phase for the character's next local day (roster/phases.py). The ladder is
`phases.yaml` beside the roster file (defaults without one); a wrong file stops the run with
its problems, one line each, and nothing is recorded.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from resources.roster_file import RosterResource
from resources.telegram import TelegramResource
from waifugen_assets.core import alerts, clock, schema
from waifugen_assets.milestones.phases import DOWN, UP
from waifugen_assets.milestones.records import PhaseRun, update_phases
from waifugen_assets.pipeline.catalog import (
    CONTENT_TEAM,
    cell,
    md_table,
    row_counts,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import daily_partitions
from waifugen_assets.roster.phases import PhaseError, PhaseLadder, phases_for_roster


def load_ladder(roster: RosterResource) -> PhaseLadder:
    """The phases beside the roster file; a wrong file fails the run, one line per problem."""
    try:
        return phases_for_roster(roster.file())
    except PhaseError as exc:
        lines = [str(issue) for issue in exc.issues]
        raise dg.Failure(
            description=f"phases file has {len(lines)} error(s); nothing was recorded:\n"
            + "\n".join(lines),
            metadata={"errors": dg.MetadataValue.text("\n".join(lines))},
            allow_retries=False) from None


@dg.asset(
    partitions_def=daily_partitions,
    # The date dimension of engagement_metrics (character x date) maps onto this date.
    deps=["engagement_metrics"],
    group_name="milestones",
    kinds={"yaml", "postgres", "telegram"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.character_phases),
    description="Each character's phase (launch, growth, established: phases.yaml beside the "
    "roster) from its latest follower readings summed across platforms; every crossing "
    "recorded once with the reading that crossed it and announced once on Telegram; no "
    "demotion on one low read. Planning uses the phase from the character's next local day "
    "(daily slots, weekly premium eligibility). Every phase is general-audience.",
)
def character_phases(context: dg.AssetExecutionContext, database: DatabaseResource,
                     roster: RosterResource,
                     telegram: TelegramResource) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    ladder = load_ladder(roster)
    engine = database.get_engine()
    run = update_phases(engine, ladder, day, clock.now())
    for rec in run.recorded:
        context.log.info(f"{rec.character_id}: {rec.change.previous.name} -> "
                         f"{rec.change.phase.name} ({rec.change.direction}), crossed on "
                         f"{rec.change.crossed_on}, from {rec.effective_on}")
    alerts_note = alerts.send_pending(engine, telegram.send_alert if telegram.configured
                                      else None, context.log)
    cp = schema.character_phases
    with engine.connect() as conn:
        counts = row_counts(conn, sa.select(cp.c.id), sa.select(cp.c.id)
                            .where(cp.c.crossed_on == day))
    return dg.MaterializeResult(metadata={
        "characters": len(run.standings),
        "crossings": run.count(UP),
        "demotions": run.count(DOWN),
        **{f"in_{phase.name}": sum(1 for s in run.standings if s.phase == phase)
           for phase in ladder.phases},
        "phases": standings_table(run),
        "phases_file": str(ladder.path) if ladder.path else "defaults (no phases.yaml)",
        "alerts": alerts_note,
        **counts,
    })


def standings_table(run: PhaseRun) -> dg.MetadataValue:
    """Character | phase | followers that day | next milestone | change recorded by this run."""
    changed = {r.character_id: r for r in run.recorded}
    rows = []
    for s in run.standings:
        rec = changed.get(s.character_id)
        rows.append([
            cell(s.character_id), cell(s.phase.name),
            cell(f"{s.total.followers:,}" if s.total else "no reading"),
            cell(f"{s.next.name} at {s.next.followers:,}" if s.next else "-"),
            cell(f"{rec.change.previous.name} -> {rec.change.phase.name} from "
                 f"{rec.effective_on}" if rec else "-"),
        ])
    return md_table(["character", "phase", "followers", "next", "change"], rows)
