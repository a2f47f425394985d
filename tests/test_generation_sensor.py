"""The generation sensor: renders in slot order across the roster, within A2E's hourly budget."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.a2e import A2EResource
from resources.database import DatabaseResource
from resources.quota_store import PostgresRateLimitStore
from sensors.generation import (
    NOTHING,
    SUBMIT_REQUESTS,
    Due,
    due_reels,
    generation_sensor,
    plan_runs,
)
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import project_root
from waifugen_assets.roster.assets import sync_roster
from waifugen_assets.roster.model import load_roster

NOW = dt.datetime(2026, 12, 5, 6, 0, tzinfo=dt.UTC)
STALE = dt.timedelta(hours=3)
DAY = dt.date(2026, 12, 5)


def due(reel_id: int, cid: str, hours: float, status: str = "planned") -> Due:
    return Due(reel_id, cid, DAY, NOW + dt.timedelta(hours=hours), status,
               status == "generating", None)


def test_new_renders_go_in_slot_order_across_characters_within_the_budget() -> None:
    work = [due(1, "a", 1), due(2, "b", 2), due(3, "a", 3), due(4, "c", 4), due(5, "b", 5)]
    plan = plan_runs(work, budget=3 * SUBMIT_REQUESTS, now=NOW, stale_after=STALE)
    granted = {(g.character_id, g.submit_until) for g in plan.grants}
    # The three earliest slots: a's at +1 h and +3 h, b's at +2 h. c and b's +5 h wait.
    assert granted == {("a", NOW + dt.timedelta(hours=3)), ("b", NOW + dt.timedelta(hours=2))}
    assert plan.waiting_for_budget == 2 and plan.earliest_waiting == NOW + dt.timedelta(hours=4)
    assert [g.character_id for g in plan.grants] == ["a", "b"]  # earliest slot first


def test_polls_come_before_new_renders_and_cost_one_request_per_partition() -> None:
    work = [due(1, "a", 1), due(2, "b", 2, "generating"), due(3, "b", 3, "generating"),
            due(4, "c", 0.5)]
    plan = plan_runs(work, budget=1 + SUBMIT_REQUESTS, now=NOW, stale_after=STALE)
    by = {g.character_id: g for g in plan.grants}
    assert by["b"].requests == 1 and by["b"].submit_until is None  # two polls, one request
    assert by["c"].submit_until == NOW + dt.timedelta(hours=0.5)  # the earliest new slot
    assert "a" not in by and plan.waiting_for_budget == 1


def test_no_budget_still_records_missed_slots_and_retries_downloads() -> None:
    work = [due(1, "a", -4), due(2, "b", 1, "generated"), due(3, "c", 1)]
    plan = plan_runs(work, budget=0, now=NOW, stale_after=STALE)
    by = {g.character_id: g for g in plan.grants}
    assert set(by) == {"a", "b"} and all(g.requests == 0 for g in plan.grants)
    assert by["a"].work == ["1m"] and by["b"].work == ["2d"]
    assert plan.waiting_for_budget == 1


def test_a_busy_partition_is_left_to_its_run() -> None:
    work = [due(1, "a", 1), due(2, "b", 2)]
    plan = plan_runs(work, budget=100, now=NOW, stale_after=STALE, busy={f"a|{DAY}"})
    assert [g.character_id for g in plan.grants] == ["b"]


@pytest.fixture
def roster_db(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        sync_roster(conn, load_roster(project_root() / "characters.yaml"))
    return engine


def _reel(conn: sa.Connection, cid: str, slot: int, at: dt.datetime, status: str = "planned",
          next_attempt_at: dt.datetime | None = None, day: dt.date = DAY) -> int:
    r = schema.reels
    return conn.execute(sa.insert(r).values(
        character_id=cid, date=day, slot=slot, scheduled_at=at, status=status,
        plan={"script": "hi"}, next_attempt_at=next_attempt_at,
        generation_provider="a2e" if status == "generating" else None,
        generation_task_id=uuid.uuid4().hex if status == "generating" else None,
    ).returning(r.c.id)).scalar_one()


def test_sensor_reads_due_work_and_the_spent_budget(roster_db: sa.Engine, db_url: str) -> None:
    key = f"sk_sandbox_{uuid.uuid4().hex[:8]}"
    a2e = A2EResource(api_key=key, requests_per_hour=10)
    with roster_db.begin() as conn:
        early = _reel(conn, "mika-hoshizora", 0, NOW + dt.timedelta(minutes=30))
        _reel(conn, "lucia-marvento", 0, NOW + dt.timedelta(hours=2))
        _reel(conn, "lucia-marvento", 1, NOW + dt.timedelta(hours=4))
        _reel(conn, "greta-vollmond", 0, NOW + dt.timedelta(hours=1), "generating",
              next_attempt_at=NOW - dt.timedelta(seconds=5))
        _reel(conn, "greta-vollmond", 1, NOW + dt.timedelta(hours=2), "generating",
              next_attempt_at=NOW + dt.timedelta(minutes=5))  # its poll is not due yet
        _reel(conn, "nova-castellane", 0, NOW + dt.timedelta(hours=1), "branded")
        _reel(conn, "bia-luzeiro", 0, NOW - dt.timedelta(days=3), "planned",
              day=DAY - dt.timedelta(days=3))  # long gone: not looked at
    with clock.running_from(NOW):
        with roster_db.connect() as conn:
            assert next(d.reel_id for d in due_reels(conn, clock.now())) == early
        # 5 of the key's 10 requests this hour are spent: room for one poll + two renders.
        store = PostgresRateLimitStore(roster_db, "a2e")
        for _ in range(5):
            store.try_take(a2e.rate_key(), 10, 3600.0, 1, clock.timestamp())
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(
                instance=instance, resources={"database": DatabaseResource(url=db_url),
                                              "a2e": a2e})
            result = generation_sensor(context)
    requests = {r.partition_key.keys_by_dimension["character"]: r
                for r in result.run_requests}
    assert set(requests) == {"mika-hoshizora", "greta-vollmond", "lucia-marvento"}
    until = {c: r.run_config["ops"]["reels"]["config"]["submit_until"]
             for c, r in requests.items()}
    assert until["greta-vollmond"] == NOTHING  # a poll only
    assert dt.datetime.fromisoformat(until["lucia-marvento"]) == NOW + dt.timedelta(hours=2)
    assert {r.tags["waifugen/a2e_requests"] for r in requests.values()} == {"1", "2"}
    assert all(r.run_key.startswith("render:") for r in requests.values())
