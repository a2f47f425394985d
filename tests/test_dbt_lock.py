"""Two analytics runs on one database take turns: the 00:10 schedule's day and a backfill's
range, started together in processes of their own. dbt replaces the same views and tables, so
two builds at once fail each other; analytics/assets.py holds an advisory lock around each."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.analytics.assets import DBT_LOCK, analytics_staging, dbt_resource
from waifugen_assets.core.embedded_pg import advisory_lock

WORKER = Path(__file__).with_name("dbt_race_worker.py")
DEADLINE_S = 300
WAITING = sa.text("""
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND query LIKE 'SELECT pg_try_advisory_lock(hashtextextended(%' AND query LIKE :key""")
DAILY_MARTS_BUILT = sa.text("""
    SELECT count(*) FROM information_schema.tables
    WHERE table_schema = 'analytics' AND table_name = 'platform_performance'""")


def _waiting_for_the_lock(conn: sa.Connection) -> int:
    return int(conn.execute(WAITING, {"key": f"%{DBT_LOCK}%"}).scalar_one())


@pytest.mark.integration
def test_a_schedule_and_a_backfill_take_turns_on_the_dbt_lock(db_url: str,
                                                               engine: sa.Engine) -> None:
    resources = {"dbt": dbt_resource(), "database": DatabaseResource(url=db_url)}
    with dg.instance_for_test() as instance:  # the views the daily marts read
        assert dg.materialize([analytics_staging], resources=resources,
                              instance=instance).success

    ranges = [("2026-12-04", "2026-12-04"), ("2026-11-20", "2026-12-03")]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as holder, \
            advisory_lock(holder, DBT_LOCK):
        runs = [subprocess.Popen([sys.executable, str(WORKER), db_url, start, end],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for start, end in ranges]
        deadline = time.monotonic() + DEADLINE_S
        # Autocommit: within one transaction pg_stat_activity is a snapshot that never changes.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as probe:
            # Both runs got as far as the lock, and wait there while this test holds it.
            while _waiting_for_the_lock(probe) < len(runs):
                assert all(r.poll() is None for r in runs), [r.communicate() for r in runs]
                assert time.monotonic() < deadline, "the runs never reached the dbt lock"
                time.sleep(0.2)  # readiness probe on other processes: nothing to wait on
            assert probe.execute(DAILY_MARTS_BUILT).scalar_one() == 0  # no dbt ran yet
            assert all(r.poll() is None for r in runs)

    reports = []
    for run in runs:
        out, err = run.communicate(timeout=DEADLINE_S)
        assert run.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["failure"] for r in reports] == [None, None]
    assert all(r["success"] and r["events"] for r in reports)
    # One build after the other: the first's last event before the second's first.
    first, second = sorted(reports, key=lambda r: min(r["events"]))
    assert max(first["events"]) < min(second["events"])
    with engine.connect() as conn:
        assert conn.execute(DAILY_MARTS_BUILT).scalar_one() == 1
