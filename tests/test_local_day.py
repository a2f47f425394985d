"""A character's day is its local day everywhere: the clock, schedules, sensors, CLI, status.

At 03:00 UTC it is 19:00 the evening before in Los Angeles and 12:00 noon in Tokyo: the Los
Angeles character's day is the previous date, the Tokyo character's the next one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.core import clock, schema
from waifugen_assets.pipeline.partitions import characters_partitions
from waifugen_assets.planning.schedules import daily_plans_schedule
from waifugen_assets.roster.assets import characters

NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
LA, TOKYO = "skye-halloran", "mika-hoshizora"
BEFORE, AFTER = dt.date(2026, 11, 25), dt.date(2026, 11, 26)


def test_the_clock_gives_each_zone_its_own_date() -> None:
    with clock.running_from(NOW):
        assert clock.local_today("America/Los_Angeles") == BEFORE
        assert clock.local_today("Asia/Tokyo") == AFTER
        assert clock.now() - NOW < dt.timedelta(seconds=5)
    assert clock.now().date() >= dt.date(2026, 12, 5)  # real time again outside


def test_waifugen_now_is_refused_in_production(tmp_path: Path) -> None:
    env = {**os.environ, "WAIFUGEN_MODE": "production", "WAIFUGEN_NOW": "2026-11-26T03:00:00Z",
           "DATABASE_URL": "postgresql://x@127.0.0.1/x", "OLLAMA_HOST": "http://127.0.0.1:1",
           "WAIFUGEN_SECRET_KEY": "k", "A2E_API_KEY": "sk_x", "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "from waifugen_assets.core import clock; "
                           "clock.now()"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "WAIFUGEN_NOW is for sandbox mode only" in proc.stderr


def test_schedule_and_sensors_use_local_days(pipeline_resources: dict, db_url: str) -> None:
    from sensors.dms import dm_sensor

    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        with pipeline_resources["database"].get_engine().connect() as conn:
            ids = list(conn.execute(sa.select(schema.characters.c.id)).scalars())
        instance.add_dynamic_partitions(characters_partitions.name, ids)
        database = DatabaseResource(url=db_url)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=NOW,
                                       resources={"database": database}) as ctx:
            planned = {r.partition_key.keys_by_dimension["character"]:
                       r.partition_key.keys_by_dimension["date"]
                       for r in daily_plans_schedule(ctx)}
        # DM work (an event not applied yet) for two characters: the sensor asks for their
        # runs, each on the character's own day (the poll run of the tick has no partition).
        with pipeline_resources["database"].get_engine().begin() as conn:
            conn.execute(sa.insert(schema.inbound_events), [
                {"platform": "telegram", "event_id": f"local-day-{cid}",
                 "event_type": "message.received", "character_id": cid, "occurred_at": NOW}
                for cid in ("nova-castellane", TOKYO)])
        with clock.running_from(NOW):
            sensed = {r.partition_key.keys_by_dimension["character"]:
                      r.partition_key.keys_by_dimension["date"]
                      for r in dm_sensor(dg.build_sensor_context(
                          instance=instance, resources={"database": database})).run_requests
                      if r.partition_key is not None}
    assert planned[LA] == BEFORE.isoformat() and planned[TOKYO] == AFTER.isoformat()
    # New York at 03:00 UTC is 22:00 the evening before.
    assert sensed["nova-castellane"] == BEFORE.isoformat()
    assert sensed[TOKYO] == AFTER.isoformat()


def test_cli_runs_and_reports_each_characters_local_day(db_url: str, engine: sa.Engine,
                                                        tmp_path: Path) -> None:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url,
           "WAIFUGEN_NOW": NOW.isoformat()}
    cli = [sys.executable, "-m", "waifugen_assets.app.cli"]
    run = subprocess.run([*cli, "run", "--character", LA, "--character", TOKYO,
                          "--publish", "due", "--sandbox-port", "0", "--no-analytics"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    r, sp = schema.reels, schema.social_posts
    with engine.connect() as conn:
        days = dict(conn.execute(sa.select(r.c.character_id, r.c.date).distinct()).all())
        posted = conn.execute(sa.select(r.c.character_id, r.c.scheduled_at)
                              .join(sp, sp.c.reel_id == r.c.id)
                              .where(sp.c.state == "published")).all()
        missed = conn.execute(sa.select(r.c.character_id, r.c.scheduled_at)
                              .where(r.c.status == "skipped")).all()
    assert days == {LA: BEFORE, TOKYO: AFTER}
    # Only slots that had come were posted, and none that had gone stale (3 h).
    assert posted and all(NOW - dt.timedelta(hours=3) <= at <= NOW for _, at in posted)
    # LA's 09:00 and 12:00 (17:00 and 20:00 UTC) and Tokyo's 08:00 (23:00 UTC) were
    # already stale: recorded as missed, not rendered.
    assert sorted((c, at.hour) for c, at in missed) == [(TOKYO, 23), (LA, 17), (LA, 20)]

    status = json.loads(subprocess.run([*cli, "status", "--json"], env=env,
                                       capture_output=True, text=True).stdout)
    by_id = {c["id"]: c for c in status["characters"]}
    assert by_id[LA]["date"] == BEFORE.isoformat()
    assert by_id[TOKYO]["date"] == AFTER.isoformat()
    assert by_id[LA]["reels"]["missed"] == 2 and by_id[TOKYO]["reels"]["missed"] == 1


@pytest.mark.parametrize("raw", ["yesterday", "2026-11-26T03:00:00"])
def test_a_bad_waifugen_now_is_a_clear_error(raw: str, tmp_path: Path) -> None:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path), "WAIFUGEN_NOW": raw}
    proc = subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", "status"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: WAIFUGEN_NOW: ")
