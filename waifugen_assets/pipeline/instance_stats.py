"""What the Dagster instance says about runs and daemons, for the metrics endpoint
(waifugen_assets/operations/metrics.py): plain numbers, read through the instance's public
API (`get_run_records` / `get_runs_count` with a `RunsFilter`, `get_daemon_heartbeats`).

The endpoint is scraped every 15 s, so `RunStats` keeps the last 24 h of runs between scrapes:
the first scrape reads the runs created in the window, every later one only the runs updated
since the previous read (minus an overlap for clock skew between this process and whoever
wrote the run), and runs leave the cache when their creation falls out of the window.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa

WINDOW_SECONDS = 24 * 3600.0
OVERLAP_SECONDS = 120.0  # re-read runs updated this long before the last read
FIRST_READ_LIMIT = 20_000  # runs of the window read at the first scrape
UPDATE_READ_LIMIT = 5_000  # runs read per later scrape
# Every job seen in the window gets these (0 when none), so a first failure is a change of
# an existing series, not a new one.
ALWAYS_REPORTED = ("SUCCESS", "FAILURE", "CANCELED")
WAITING = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)


@dataclass(frozen=True)
class RunRow:
    job: str
    status: str
    created: float  # epoch seconds
    start: float | None
    end: float | None


def _row(record: dg.RunRecord) -> RunRow:
    run = record.dagster_run
    return RunRow(run.job_name, run.status.value, record.create_timestamp.timestamp(),
                  record.start_time, record.end_time)


class RunStats:
    """Runs and daemons of one Dagster instance, read at scrape time."""

    def __init__(self, instance: dg.DagsterInstance, *, window: float = WINDOW_SECONDS,
                 overlap: float = OVERLAP_SECONDS) -> None:
        self.instance, self.window, self.overlap = instance, window, overlap
        self._runs: dict[str, RunRow] = {}
        self._read_at: float | None = None

    def _refresh(self, now: float) -> None:
        start = now - self.window
        if self._read_at is None:
            runs_filter = dg.RunsFilter(created_after=_utc(start))
            limit = FIRST_READ_LIMIT
        else:
            runs_filter = dg.RunsFilter(updated_after=_utc(self._read_at - self.overlap))
            limit = UPDATE_READ_LIMIT
        records = self.instance.get_run_records(filters=runs_filter, limit=limit)
        for record in records:
            self._runs[record.dagster_run.run_id] = _row(record)
        self._runs = {k: r for k, r in self._runs.items() if r.created > start}
        self._read_at = now

    def runs(self, now: float | None = None) -> tuple[dict[tuple[str, str], int],
                                                     dict[str, float]]:
        """(runs created in the window per (job, status), duration in seconds of each job's
        newest finished run in the window)."""
        self._refresh(time.time() if now is None else now)
        counts: dict[tuple[str, str], int] = {}
        newest: dict[str, RunRow] = {}
        for row in self._runs.values():
            for status in ALWAYS_REPORTED:
                counts.setdefault((row.job, status), 0)
            counts[(row.job, row.status)] = counts.get((row.job, row.status), 0) + 1
            if row.start is not None and row.end is not None and (
                    row.job not in newest or row.end > (newest[row.job].end or 0.0)):
                newest[row.job] = row
        durations = {job: max(0.0, (r.end or 0.0) - (r.start or 0.0))
                     for job, r in newest.items()}
        return counts, durations

    def waiting(self) -> int:
        """Runs QUEUED or NOT_STARTED now (whenever they were created)."""
        return self.instance.get_runs_count(dg.RunsFilter(statuses=list(WAITING)))

    def heartbeat_ages(self, now: float | None = None) -> dict[str, float]:
        """Seconds since each daemon's last heartbeat; +Inf for a daemon this instance needs
        that never sent one (the daemon process is not running)."""
        now = time.time() if now is None else now
        beats: Mapping[str, object] = self.instance.get_daemon_heartbeats()
        ages = {kind: max(0.0, now - beat.timestamp)  # type: ignore[attr-defined]
                for kind, beat in beats.items()}
        for kind in self.instance.get_required_daemon_types():
            ages.setdefault(kind, math.inf)
        return ages

    def probe_seconds(self) -> float:
        """Connect to the instance's run storage and run `SELECT 1`: the time it took."""
        storage = self.instance.run_storage
        connect = getattr(storage, "connect", None)
        if connect is None:
            raise TypeError(f"the run storage {type(storage).__name__} is not SQL-backed")
        started = time.perf_counter()
        with connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return time.perf_counter() - started


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
