"""The milestones' database side: read the follower readings, record each phase change once,
queue its announcement. Plain Python (the `character_phases` asset calls `update_phases`).

One run covers every enabled character: two queries read the window's readings and, per
platform, the last reading before it (an index lookup each, so a run does not grow with
history), one more the last recorded change. A character with a change is then written under
a transaction-scoped advisory lock of its own, its last change read again inside it: two
runs at once (a backfill racing the schedule, two dates) record each crossing once, and the
UNIQUE(character_id, phase, direction, crossed_on) is the backstop. The announcement is an
`alerts` row keyed `phase:<row id>`, written in the same transaction as the change, so a
crossing is announced exactly once however often the run is retried (core/alerts.py sends it).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.core import alerts, schema
from waifugen_assets.core.clock import local_today
from waifugen_assets.milestones.phases import (
    Change,
    DayTotal,
    Reading,
    announcement,
    day_totals,
    decide,
    effective_on,
    window,
)
from waifugen_assets.roster.phases import Phase, PhaseLadder

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    timezone: str


@dataclass(frozen=True)
class Recorded:
    character_id: str
    change: Change
    effective_on: dt.date
    row_id: int


@dataclass(frozen=True)
class Standing:
    """Where a character stands after a run, for the asset's metadata."""

    character_id: str
    phase: Phase
    total: DayTotal | None  # the day's total; None before any reading
    next: Phase | None


@dataclass
class PhaseRun:
    day: dt.date
    standings: list[Standing] = field(default_factory=list)
    recorded: list[Recorded] = field(default_factory=list)

    def count(self, direction: str) -> int:
        return sum(1 for r in self.recorded if r.change.direction == direction)


def update_phases(engine: sa.Engine, ladder: PhaseLadder, day: dt.date,
                  now: dt.datetime) -> PhaseRun:
    """Every enabled character's phase as of `day`'s readings; new changes recorded (once) and
    their announcements queued. `now` is the pipeline's clock (when a change takes effect)."""
    days = window(ladder, day)
    with engine.connect() as conn:
        people = _people(conn)
        readings = _readings(conn, [p.id for p in people], ladder.followers_from, days[0], day)
        last = _last_changes(conn, [p.id for p in people])
    run = PhaseRun(day)
    for person in people:
        totals = day_totals(readings.get(person.id, ()), days)
        current, since = _current(ladder, last.get(person.id))
        if decide(ladder, current, since, totals):
            run.recorded += _record(engine, ladder, person, totals, now)
            with engine.connect() as conn:
                current, _ = _current(ladder, _last_changes(conn, [person.id]).get(person.id))
        index = ladder.phases.index(current)
        following = ladder.phases[index + 1] if index + 1 < len(ladder.phases) else None
        on_day = totals[-1] if totals and totals[-1].day == day else None
        run.standings.append(Standing(person.id, current, on_day, following))
    return run


def _record(engine: sa.Engine, ladder: PhaseLadder, person: Person,
            totals: Sequence[DayTotal], now: dt.datetime) -> list[Recorded]:
    cp = schema.character_phases
    recorded = []
    with engine.begin() as conn:
        conn.execute(_LOCK, {"key": f"waifugen:phases:{person.id}"})
        current, since = _current(ladder, _last_changes(conn, [person.id]).get(person.id))
        today = local_today(person.timezone, now)
        for change in decide(ladder, current, since, totals):
            starts = effective_on(change.crossed_on, today)
            row_id = conn.execute(
                insert(cp).values(
                    character_id=person.id, phase=change.phase.name,
                    previous_phase=change.previous.name, direction=change.direction,
                    crossed_on=change.crossed_on, followers=change.total.followers,
                    threshold=change.threshold, snapshot=change.total.snapshot(),
                    effective_on=starts, recorded_at=now)
                .on_conflict_do_nothing(index_elements=[cp.c.character_id, cp.c.phase,
                                                        cp.c.direction, cp.c.crossed_on])
                .returning(cp.c.id)).scalar()
            if row_id is None:  # recorded before (the backstop; the lock makes this rare)
                continue
            alerts.record(conn, f"phase:{row_id}",
                          announcement(person.name, person.id, change, starts, ladder))
            recorded.append(Recorded(person.id, change, starts, row_id))
    return recorded


def _current(ladder: PhaseLadder, last: sa.Row | None) -> tuple[Phase, dt.date | None]:
    """The phase of the last recorded change (the first phase if none) and its day."""
    if last is None:
        return ladder.first, None
    return ladder.named(last.phase, last.followers), last.crossed_on


def _people(conn: sa.Connection) -> list[Person]:
    ch = schema.characters
    rows = conn.execute(sa.select(ch.c.id, ch.c.name, ch.c.timezone).where(ch.c.enabled)
                        .order_by(ch.c.id))
    return [Person(*row) for row in rows]


def _last_changes(conn: sa.Connection, ids: Sequence[str]) -> dict[str, sa.Row]:
    cp = schema.character_phases
    if not ids:
        return {}
    rows = conn.execute(  # a handful per character, ever: the last one of each wins
        sa.select(cp.c.character_id, cp.c.phase, cp.c.followers, cp.c.crossed_on)
        .where(cp.c.character_id.in_(list(ids)))
        .order_by(cp.c.character_id, cp.c.crossed_on, cp.c.id))
    return {row.character_id: row for row in rows}


def _readings(conn: sa.Connection, ids: Sequence[str], platforms: Sequence[str],
              first: dt.date, last: dt.date) -> dict[str, list[Reading]]:
    """Per character, the readings of the window [first, last] and, per platform, the last one
    before it (carried in: a platform not read for a while still counts)."""
    fs = schema.follower_snapshots
    out: dict[str, list[Reading]] = defaultdict(list)
    if not ids:
        return out
    inside = conn.execute(
        sa.select(fs.c.character_id, fs.c.platform, fs.c.captured_on, fs.c.followers, fs.c.id)
        .where(fs.c.character_id.in_(list(ids)), fs.c.platform.in_(list(platforms)),
               fs.c.captured_on >= first, fs.c.captured_on <= last))
    pairs = sa.values(sa.column("character_id", sa.Text), sa.column("platform", sa.Text),
                      name="pairs").data([(cid, p) for cid in ids for p in platforms])
    before = (sa.select(fs.c.captured_on, fs.c.followers, fs.c.id)
              .where(fs.c.character_id == pairs.c.character_id,
                     fs.c.platform == pairs.c.platform, fs.c.captured_on < first)
              .order_by(fs.c.captured_on.desc()).limit(1).lateral("before"))
    carried = conn.execute(
        sa.select(pairs.c.character_id, pairs.c.platform, before.c.captured_on,
                  before.c.followers, before.c.id)
        .select_from(pairs.join(before, sa.true())))
    for cid, platform, captured_on, followers, row_id in [*inside, *carried]:
        out[cid].append(Reading(platform, captured_on, int(followers), int(row_id)))
    return out
