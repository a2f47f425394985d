"""The milestone rules, pure: a character's daily follower totals and the phase changes they
make. No database, no Dagster (records.py reads and writes; assets.py runs it daily).

A day's total is the sum, over the ladder's platforms (by default TikTok, Instagram and
YouTube), of each platform's latest reading on or before that day: a platform not read that
day (a failed or hidden read writes no row) counts with its last known number, so a missing
read is never a drop. A day before any reading has no total.

Up: the first day after the last recorded change whose total reaches the next phase's
threshold crosses it; a total that reaches several thresholds crosses each, that day. One
reading is enough: counts are read once a day and a real crossing should unlock the next day.

Down (the ladder's `demote_after_days`, N; 0 = never, never 1): one phase down only after N
consecutive days, all after the last change, each read in full (every platform that counts
read that day: nothing carried from an earlier day) and each below the current phase's
threshold. One bad read (a platform answering 0, a YouTube count abbreviated to three digits,
an account briefly gone) is one low day among N, and is never carried into the days after it
for this purpose, so it never demotes; going down takes one phase at a time. A platform no
longer read at all (an account switched off) leaves every later day not read in full: the
character is then never demoted, which errs on the side of keeping what it has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from waifugen_assets.roster.phases import Phase, PhaseLadder

UP, DOWN = "up", "down"
# Days looked back for a first crossing, so a schedule that missed a few days still records
# the crossing at the reading that made it (the window is longer when demotion needs it).
LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class Reading:
    """One platform's follower count on a local day (a follower_snapshots row)."""

    platform: str
    captured_on: dt.date
    followers: int
    snapshot_id: int


@dataclass(frozen=True)
class DayTotal:
    day: dt.date
    followers: int
    readings: tuple[Reading, ...]  # what was summed: each platform's latest by that day

    def snapshot(self) -> list[dict[str, object]]:
        """The readings as stored with a crossing (JSON)."""
        return [{"platform": r.platform, "captured_on": r.captured_on.isoformat(),
                 "followers": r.followers, "snapshot_id": r.snapshot_id}
                for r in self.readings]

    @property
    def fresh(self) -> bool:
        """Every reading summed was taken that day (nothing carried from an earlier day)."""
        return all(r.captured_on == self.day for r in self.readings)

    def by_platform(self) -> str:
        return ", ".join(f"{r.platform} {r.followers:,}" for r in self.readings)


@dataclass(frozen=True)
class Change:
    phase: Phase
    previous: Phase
    direction: str  # UP or DOWN
    total: DayTotal  # the reading that crossed (DOWN: the last of the low days)
    threshold: int  # the threshold crossed (DOWN: the one the totals stayed below)

    @property
    def crossed_on(self) -> dt.date:
        return self.total.day


def window(ladder: PhaseLadder, day: dt.date) -> list[dt.date]:
    """The days a run for `day` looks at, oldest first."""
    days = max(LOOKBACK_DAYS, ladder.demote_after_days)
    return [day - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]


def day_totals(readings: Iterable[Reading], days: Sequence[dt.date]) -> list[DayTotal]:
    """The total of each day in `days` (ascending) that has one. `readings` may include, per
    platform, one from before the first day (carried in)."""
    ordered = sorted(readings, key=lambda r: (r.captured_on, r.platform))
    latest: dict[str, Reading] = {}
    totals = []
    at = 0
    for day in days:
        while at < len(ordered) and ordered[at].captured_on <= day:
            latest[ordered[at].platform] = ordered[at]
            at += 1
        if latest:
            summed = tuple(latest[p] for p in sorted(latest))
            totals.append(DayTotal(day, sum(r.followers for r in summed), summed))
    return totals


def decide(ladder: PhaseLadder, current: Phase, since: dt.date | None,
           totals: Sequence[DayTotal]) -> list[Change]:
    """The changes the totals make from `current`, recorded last on `since` (None: never).
    Only days after `since` count: what came before is already in the record."""
    fresh = [t for t in totals if since is None or t.day > since]
    index = ladder.phases.index(current)  # a phase of the ladder (PhaseLadder.named)
    changes = []
    for total in fresh:
        while index + 1 < len(ladder.phases) and \
                total.followers >= ladder.phases[index + 1].followers:
            before, index = ladder.phases[index], index + 1
            changes.append(Change(ladder.phases[index], before, UP, total,
                                  ladder.phases[index].followers))
    if changes or index == 0 or ladder.demote_after_days == 0:
        return changes
    return _demotion(ladder, index, fresh)


def _demotion(ladder: PhaseLadder, index: int, fresh: Sequence[DayTotal]) -> list[Change]:
    n = ladder.demote_after_days
    last = list(fresh[-n:])
    if len(last) < n:
        return []
    consecutive = (last[-1].day - last[0].day).days == n - 1
    threshold = ladder.phases[index].followers
    # Only days read in full count: a low reading carried over a day without one is still
    # that one reading.
    if consecutive and all(t.fresh and t.followers < threshold for t in last):
        return [Change(ladder.phases[index - 1], ladder.phases[index], DOWN, last[-1], threshold)]
    return []


def effective_on(crossed_on: dt.date, local_today: dt.date) -> dt.date:
    """The first local day planned in the new phase: the day after the crossing, and never a
    day that has already begun for the character (its plan is made at its local midnight)."""
    return max(crossed_on, local_today) + dt.timedelta(days=1)


def announcement(name: str, character_id: str, change: Change, starts: dt.date,
                 ladder: PhaseLadder) -> str:
    """The operators' one-line Telegram message for a change."""
    phase = change.phase
    total = change.total
    if change.direction == UP:
        head = (f"waifugen milestone: {name} ({character_id}) reached {phase.name} at "
                f"{change.threshold:,} followers: {total.followers:,} on "
                f"{total.day.isoformat()} ({total.by_platform()}).")
    else:
        head = (f"waifugen milestone: {name} ({character_id}) is back to {phase.name}: under "
                f"{change.threshold:,} followers for {ladder.demote_after_days} days "
                f"({total.followers:,} on {total.day.isoformat()}).")
    return (f"{head} From {starts.isoformat()}, its local day: {phase.unlocks()}. "
            "Content stays general-audience.")
