"""The milestone rules (milestones/phases.py) on their own, the day's slots a phase gives
(planning), and the database side on a real PostgreSQL: a demotion after the configured run of
low days, recorded and announced once, and two real processes recording at the same time."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.core import alerts, schema
from waifugen_assets.milestones.phases import (
    DOWN,
    UP,
    Reading,
    day_totals,
    decide,
    effective_on,
    window,
)
from waifugen_assets.milestones.records import update_phases
from waifugen_assets.planning.plans import day_slot_times
from waifugen_assets.roster.phases import DEFAULT_LADDER, PhaseLadder, phase_on

LOG = logging.getLogger(__name__)
D0 = dt.date(2026, 11, 10)
LAUNCH, GROWTH, ESTABLISHED = DEFAULT_LADDER.phases


def _day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def _ladder(demote_after_days: int) -> PhaseLadder:
    return PhaseLadder(DEFAULT_LADDER.phases, demote_after_days=demote_after_days)


def _totals(counts: list[int | None]) -> list:
    """One TikTok reading a day (None: no reading that day)."""
    readings = [Reading("tiktok", _day(n), c, n) for n, c in enumerate(counts) if c is not None]
    return day_totals(readings, [_day(n) for n in range(len(counts))])


# --- totals -------------------------------------------------------------------------------

def test_a_day_sums_each_platforms_latest_reading_and_a_missing_read_is_no_drop() -> None:
    readings = [Reading("tiktok", _day(0), 6000, 1), Reading("youtube", _day(0), 3000, 2),
                Reading("tiktok", _day(1), 6100, 3),  # YouTube hidden on day 1
                Reading("instagram", _day(2), 900, 4)]
    totals = day_totals(readings, [_day(n) for n in range(-1, 3)])
    assert [(t.day, t.followers) for t in totals] == [(_day(0), 9000), (_day(1), 9100),
                                                      (_day(2), 10000)]
    assert totals[-1].snapshot() == [
        {"platform": "instagram", "captured_on": _day(2).isoformat(), "followers": 900,
         "snapshot_id": 4},
        {"platform": "tiktok", "captured_on": _day(1).isoformat(), "followers": 6100,
         "snapshot_id": 3},
        {"platform": "youtube", "captured_on": _day(0).isoformat(), "followers": 3000,
         "snapshot_id": 2}]


# --- up -----------------------------------------------------------------------------------

def test_the_first_reading_at_a_threshold_crosses_it_and_one_jump_crosses_several() -> None:
    changes = decide(DEFAULT_LADDER, LAUNCH, None, _totals([9000, 10000, 12000]))
    assert [(c.phase, c.direction, c.crossed_on, c.threshold) for c in changes] == [
        (GROWTH, UP, _day(1), 10000)]
    both = decide(DEFAULT_LADDER, LAUNCH, None, _totals([9000, 60000]))
    assert [(c.previous, c.phase, c.crossed_on) for c in both] == [
        (LAUNCH, GROWTH, _day(1)), (GROWTH, ESTABLISHED, _day(1))]


def test_only_days_after_the_last_change_count() -> None:
    totals = _totals([12000, 13000, 14000])
    assert decide(DEFAULT_LADDER, GROWTH, _day(0), totals) == []
    assert decide(DEFAULT_LADDER, LAUNCH, _day(2), totals) == []  # a backfill of older days


# --- down ---------------------------------------------------------------------------------

def test_one_low_read_never_demotes_a_run_of_them_demotes_one_phase() -> None:
    ladder = _ladder(3)
    lows = [60000, 49000, 70000, 49000, 48000]  # single dips
    assert decide(ladder, ESTABLISHED, _day(-1), _totals(lows)) == []
    (down,) = decide(ladder, ESTABLISHED, _day(-1), _totals([60000, 49000, 48000, 9000]))
    assert (down.previous, down.phase, down.direction) == (ESTABLISHED, GROWTH, DOWN)
    assert (down.crossed_on, down.total.followers, down.threshold) == (_day(3), 9000, 50000)
    # a day not read (its total carried over) breaks the run; days before the last change
    # do not count
    assert decide(ladder, ESTABLISHED, _day(-1), _totals([49000, None, 48000, 47000])) == []
    assert decide(ladder, ESTABLISHED, _day(1), _totals([49000, 49000, 48000, 47000])) == []
    assert decide(_ladder(0), ESTABLISHED, None, _totals([0] * 30)) == []  # never


def test_the_window_covers_the_demotion_run_and_a_week() -> None:
    assert window(_ladder(0), D0) == [D0 - dt.timedelta(days=n) for n in range(6, -1, -1)]
    assert len(window(_ladder(14), D0)) == 14 and window(_ladder(14), D0)[-1] == D0


def test_a_change_takes_effect_on_the_next_local_day_not_yet_begun() -> None:
    assert effective_on(_day(0), _day(0)) == _day(1)
    assert effective_on(_day(0), _day(1)) == _day(2)  # recorded after the next day began


# --- the day's slots ----------------------------------------------------------------------

def test_a_phase_adds_slots_between_the_rosters_own_and_never_drops_one() -> None:
    mika = ["08:00", "12:30", "18:00", "21:30"]
    assert day_slot_times(mika, 4) == mika
    six = day_slot_times(mika, 6)
    assert six == ["08:00", "10:15", "12:30", "15:15", "18:00", "21:30"]
    eight = day_slot_times(mika, 8)
    assert len(eight) == 8 and set(six) <= set(eight) and [eight[0], eight[-1]] == mika[::3]
    listed = [f"{h:02d}:00" for h in range(8, 16)]
    assert day_slot_times(listed, 4) == listed  # explicit slots keep working at launch
    assert day_slot_times(["09:00"], 8) == ["09:00"]  # one time: no gap to fill
    assert day_slot_times(["09:00", "09:01"], 3) == ["09:00", "09:01"]


@given(st.sets(st.integers(0, 24 * 60 - 1), min_size=1, max_size=24), st.integers(1, 24))
def test_the_days_slots_keep_every_listed_time_inside_the_first_and_last(
        listed_minutes: set[int], count: int) -> None:
    listed = [f"{m // 60:02d}:{m % 60:02d}" for m in sorted(listed_minutes)]
    times = day_slot_times(listed, count)
    assert times == sorted(set(times)) and set(listed) <= set(times)
    assert (times[0], times[-1]) == (listed[0], listed[-1])
    room = max(listed_minutes) - min(listed_minutes) + 1  # whole minutes from first to last
    assert len(times) == max(len(listed), min(count, room))


# --- the database side --------------------------------------------------------------------

def _character(engine: sa.Engine, cid: str = "ana-sol", tz: str = "Europe/Lisbon") -> str:
    with engine.begin() as conn:
        conn.execute(insert(schema.characters).values(
            id=cid, name=cid.replace("-", " ").title(), age=25, timezone=tz,
            slots=["09:00", "13:00", "18:00", "21:00"]))
    return cid


def _read(engine: sa.Engine, cid: str, day: dt.date, **counts: int) -> None:
    with engine.begin() as conn:
        for platform, followers in counts.items():
            conn.execute(insert(schema.follower_snapshots).values(
                character_id=cid, platform=platform, captured_on=day, followers=followers))


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def _changes(engine: sa.Engine) -> list[tuple]:
    cp = schema.character_phases
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(cp.c.character_id, cp.c.previous_phase, cp.c.phase, cp.c.direction,
                      cp.c.crossed_on, cp.c.effective_on).order_by(cp.c.id))]


def test_a_demotion_needs_the_run_of_low_days_and_is_recorded_and_announced_once(
        engine: sa.Engine) -> None:
    ladder = _ladder(2)
    cid = _character(engine)
    readings = [12000, 9000, 11000, 9500, 9400, 9300]  # one low day, then two in a row
    for n, count in enumerate(readings):
        _read(engine, cid, _day(n), tiktok=count)
        run = update_phases(engine, ladder, _day(n), _noon(_day(n)))
        update_phases(engine, ladder, _day(n), _noon(_day(n)))  # a retry changes nothing
        with engine.connect() as conn:
            assert phase_on(conn, cid, _day(n + 1), ladder) == (GROWTH if n < 4 else LAUNCH)
        assert run.standings[0].total is not None
    assert _changes(engine) == [
        (cid, "launch", "growth", UP, _day(0), _day(1)),
        (cid, "growth", "launch", DOWN, _day(4), _day(5))]
    with engine.connect() as conn:
        texts = list(conn.scalars(sa.select(schema.alerts.c.text).order_by(schema.alerts.c.id)))
    assert len(texts) == 2 and "is back to launch: under 10,000 followers for 2 days" in texts[1]
    sent: list[str] = []
    alerts.send_pending(engine, sent.append, LOG)
    alerts.send_pending(engine, sent.append, LOG)
    assert sent == texts


def test_two_processes_recording_at_once_record_and_announce_each_crossing_once(
        engine: sa.Engine, db_url: str, tmp_path: Path) -> None:
    zones = ["Asia/Tokyo", "America/Los_Angeles", "Europe/Berlin", "UTC"]
    ids = [_character(engine, f"racer-{n}", zones[n % 4]) for n in range(40)]
    # The two runs look at different windows (days 0-6 and 1-7): alone, each would record
    # racer-0's and racer-3's day-0 crossings on a day of its own.
    totals = [[10000, 20000, 30000, 40000, 50000, 60000, 70000, 80000],
              [5000, 9000, 12000, 30000, 45000, 52000, 60000, 70000],
              [9999, 10000, 49999, 50000, 50001, 50002, 50003, 50004],
              [60000] * 8] * 10
    for cid, series in zip(ids, totals, strict=True):
        for n, total in enumerate(series):
            _read(engine, cid, _day(n), tiktok=total - total * 3 // 10,
                  instagram=total * 3 // 10)
    out = tmp_path / "sent.txt"
    code = textwrap.dedent(f"""
        import datetime as dt, logging, sys
        import sqlalchemy as sa
        from waifugen_assets.core import alerts
        from waifugen_assets.milestones.records import update_phases
        from waifugen_assets.roster.phases import DEFAULT_LADDER
        engine = sa.create_engine({db_url!r})
        day = dt.date.fromisoformat(sys.argv[1])
        sys.stdin.readline()  # both start together
        for n in range(3):  # the newest date and its retries, as a racing backfill would
            update_phases(engine, DEFAULT_LADDER, day, dt.datetime.now(dt.UTC))
        def send(text):
            with open({str(out)!r}, "a") as f:
                f.write(text + "\\n")
        alerts.send_pending(engine, send, logging.getLogger())
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, _day(day).isoformat()],
                              stdin=subprocess.PIPE, text=True) for day in (7, 6)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    changes = _changes(engine)
    assert sorted((c[0], c[2]) for c in changes) == sorted(
        (cid, phase) for cid in ids for phase in ("growth", "established"))
    lines = out.read_text().splitlines()
    assert len(lines) == len(changes) == len(set(lines))
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.alerts)
                           .where(schema.alerts.c.sent_at.is_(None))) == 0


@pytest.mark.parametrize("late", [False, True])
def test_a_crossing_recorded_late_starts_after_the_day_already_planned(engine: sa.Engine,
                                                                      late: bool) -> None:
    cid = _character(engine, "kai-tokyo", "Asia/Tokyo")
    _read(engine, cid, _day(0), youtube=10000)
    # 14:00 UTC is 23:00 in Tokyo; 16:00 UTC is already the next day there (planned at 15:00)
    now = dt.datetime.combine(_day(0), dt.time(16 if late else 14), tzinfo=dt.UTC)
    (rec,) = update_phases(engine, DEFAULT_LADDER, _day(0), now).recorded
    assert rec.effective_on == _day(2 if late else 1)


def test_a_recorder_waits_for_the_change_another_is_writing_and_does_not_repeat_it(
        engine: sa.Engine, db_url: str) -> None:
    """A run for another date would record the same crossing on a day of its own: it waits
    for the character's lock, then reads the change made meanwhile and records nothing."""
    cid = _character(engine, "kai-wait", "UTC")
    for n in range(8):
        _read(engine, cid, _day(n), tiktok=60000)
    cp = schema.character_phases
    code = textwrap.dedent(f"""
        import datetime as dt
        import sqlalchemy as sa
        from waifugen_assets.milestones.records import update_phases
        from waifugen_assets.roster.phases import DEFAULT_LADDER
        engine = sa.create_engine({db_url!r})
        run = update_phases(engine, DEFAULT_LADDER, dt.date.fromisoformat({_day(6).isoformat()!r}),
                            dt.datetime.now(dt.UTC))
        print(len(run.recorded))
    """)
    with engine.connect() as holder:
        with holder.begin():
            # The other run, mid-write: it holds the character's lock and has written its
            # crossings (the day-7 run's window begins on day 1), not committed yet.
            holder.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                           {"k": f"waifugen:phases:{cid}"})
            for previous, phase, threshold in (("launch", "growth", 10000),
                                               ("growth", "established", 50000)):
                holder.execute(insert(cp).values(
                    character_id=cid, phase=phase, previous_phase=previous, direction=UP,
                    crossed_on=_day(1), followers=60000, threshold=threshold, snapshot=[],
                    effective_on=_day(8), recorded_at=dt.datetime.now(dt.UTC)))
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                    text=True)
            _wait_for_lock_waiter(engine, proc)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.strip() == "0"
    assert [(c[2], c[4]) for c in _changes(engine)] == [("growth", _day(1)),
                                                        ("established", _day(1))]


def _wait_for_lock_waiter(engine: sa.Engine, proc: subprocess.Popen) -> None:
    """Until the process waits for an advisory lock (it read, found a change to make, and
    asked for the character's lock); it must not finish first."""
    waiting = sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND NOT granted")
    with engine.connect() as conn:
        while not conn.execute(waiting).scalar_one():
            assert proc.poll() is None, "the recorder finished without waiting for the lock"
            conn.rollback()
