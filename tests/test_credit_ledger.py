"""The `credit_ledger` asset materialized through Dagster against real PostgreSQL and the A2E
sandbox over HTTP: snapshots, reconciliation (in-flight tasks, top-ups, unexplained falls,
adjustments), a past day, A2E failing, RunPod time in cents. Expected numbers are computed
here from the rows and balances each test sets up."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from resources.a2e import A2EResource
from resources.database import DatabaseResource
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.money.assets import credit_ledger
from waifugen_assets.money.ledger import ledger_summary

UTC = dt.UTC
lg = schema.credit_ledger
TOL = get_settings().money.reconcile_tolerance_credits
D3, D4 = dt.date(2026, 12, 3), dt.date(2026, 12, 4)
AFTER_D3 = dt.datetime(2026, 12, 4, 0, 10, tzinfo=UTC)  # the report's time for D3
AFTER_D4 = dt.datetime(2026, 12, 5, 0, 10, tzinfo=UTC)


@pytest.fixture
def resources(db_url: str, sandbox) -> dict[str, object]:
    """The test database and an A2E sandbox account of this test's own."""
    return {"database": DatabaseResource(url=db_url),
            "a2e": A2EResource(api_key=f"sk_sandbox_ledger_{uuid.uuid4().hex[:10]}",
                               base_url=f"{sandbox.url}/a2e")}


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def set_coins(resources: dict, sandbox, coins: int) -> None:
    key = resources["a2e"].api_key
    httpx.post(f"{sandbox.url}/a2e/_control/config", json={"coins": coins},
               headers={"Authorization": f"Bearer {key}"}).raise_for_status()


def sandbox_coins(resources: dict, sandbox) -> int:
    key = resources["a2e"].api_key
    answer = httpx.get(f"{sandbox.url}/a2e/_control/state",
                       headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    return int(answer.json()["coins"])


def materialize(resources: dict, instance: dg.DagsterInstance, day: dt.date,
                at: dt.datetime) -> tuple[dg.ExecuteInProcessResult, dict, object]:
    """One run of the day's partition at `at` (UTC): (result, metadata, check evaluation)."""
    with clock.simulate(at):
        result = dg.materialize([credit_ledger], partition_key=day.isoformat(),
                                resources=resources, instance=instance, raise_on_error=False)
    if not result.success:
        return result, {}, None
    meta = {k: v.value for k, v in
            result.asset_materializations_for_node("credit_ledger")[0].metadata.items()}
    (check,) = result.get_asset_check_evaluations()
    return result, meta, check


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    (event,) = result.get_step_failure_events()
    data = event.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


def add_character(engine: sa.Engine, cid: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(id=cid, name=cid.title(), age=25,
                                                         timezone="UTC"))


def add_cost(engine: sa.Engine, cid: str, day: dt.date, slot: int, credits: int,
             projected: int, at: dt.datetime, provider: str = "a2e") -> int:
    """A reel rendered by `provider` and its task_cost row, as the renderer writes them."""
    r = schema.reels
    with engine.begin() as conn:
        reel = conn.execute(sa.insert(r).values(
            character_id=cid, date=day, slot=slot, scheduled_at=at, status="generated",
            generation_provider=provider, generation_task_id=f"task-{cid}-{day}-{slot}",
            projected_credits=projected).returning(r.c.id)).scalar_one()
        conn.execute(sa.insert(lg).values(
            provider=provider, kind="task_cost", character_id=cid, reel_id=reel,
            external_ref=f"task-{cid}-{day}-{slot}", credits=credits, ledger_date=day,
            occurred_at=at))
    return reel


def rows(engine: sa.Engine, kind: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(x) for x in conn.execute(
            sa.select(lg).where(lg.c.kind == kind).order_by(lg.c.occurred_at)).mappings()]


# --- the real renderer: first day, tasks in flight, then costed --------------------------------

def test_first_day_in_flight_then_costed_with_the_real_renderer(
        pipeline_resources: dict, engine: sa.Engine, sandbox) -> None:
    from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
    from waifugen_assets.planning.assets import reel_plans
    from waifugen_assets.rendering.assets import reels
    from waifugen_assets.roster.assets import characters

    cid, day, res = "nova-castellane", dt.date(2026, 11, 24), pipeline_resources
    content = [characters, reel_plans, reels]
    set_coins(res, sandbox, 50_000)
    key = res["a2e"].api_key  # every render finishes at its first status poll
    httpx.post(f"{sandbox.url}/a2e/_control/config", json={"states_per_poll": 10},
               headers={"Authorization": f"Bearer {key}"}).raise_for_status()
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=res, instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, [cid])

        # 1. The first snapshot: nothing to reconcile with.
        first_at = dt.datetime(2026, 11, 24, 0, 10, tzinfo=UTC)
        result, meta, check = materialize(res, instance, day - dt.timedelta(days=1), first_at)
        assert result.success and check.passed
        assert check.description == ("2026-11-23: no previous snapshot: nothing to reconcile "
                                     "yet (balance 50,000 credits)")
        assert meta["balance"] == 50_000 and meta["in_flight_credits"] == 0

        # 2. Reels submitted (A2E takes the coins) and left rendering.
        def render(at: dt.datetime, selection: list, config: dict) -> None:
            with clock.simulate(at):
                assert dg.materialize(content, selection=selection,
                                      partition_key=partition_key(cid, day), resources=res,
                                      instance=instance,
                                      run_config={"ops": {"reels": {"config": config}}}).success

        render(dt.datetime(2026, 11, 24, 5, 0, tzinfo=UTC), [reel_plans, reels],
               {"first_poll_seconds": 3600, "max_wait_seconds": 0})
        r = schema.reels
        with engine.connect() as conn:
            reel_rows = conn.execute(sa.select(r.c.status, r.c.projected_credits)
                                     .where(r.c.character_id == cid)).all()
        assert reel_rows and {s for s, _ in reel_rows} == {"generating"}
        projected = sum(p for _, p in reel_rows)
        taken = 50_000 - sandbox_coins(res, sandbox)
        assert taken > 0

        # 3. Today's snapshot while they render: the in-flight credits explain the fall.
        noon = dt.datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
        result, meta, check = materialize(res, instance, day, noon)
        assert result.success and check.passed
        assert meta["in_flight_credits"] == projected and meta["credits_spent"] == 0
        assert meta["unexplained_credits"] == -taken + projected
        assert abs(meta["unexplained_credits"]) <= TOL
        assert check.description.startswith(
            f"2026-11-24: the A2E balance moved {-taken:+,} credits between 2026-11-24 00:10 "
            "and 2026-11-24 12:00 UTC")

        # 4. The renders finish and are costed; the report's run the next night refreshes
        # the day's snapshot (a rerun: the same row, read later) and reconciles exactly.
        render(dt.datetime(2026, 11, 24, 13, 0, tzinfo=UTC), [reels],
               {"first_poll_seconds": 0, "poll_interval_seconds": 0})
        costs = rows(engine, "task_cost")
        assert len(costs) == len(reel_rows) and sum(c["credits"] for c in costs) == taken
        result, meta, check = materialize(res, instance, day,
                                          dt.datetime(2026, 11, 25, 0, 10, tzinfo=UTC))
        assert result.success and check.passed
        snaps = rows(engine, "balance_snapshot")
        assert [(s["ledger_date"], s["occurred_at"]) for s in snaps] == [
            (day - dt.timedelta(days=1), first_at),
            (day, dt.datetime(2026, 11, 25, 0, 10, tzinfo=UTC))]
        assert meta["unexplained_credits"] == 0 and meta["in_flight_credits"] == 0
        assert meta["credits_spent"] == taken and meta["reels_costed"] == len(reel_rows)
        assert meta["projected_credits"] == projected
        assert meta["actual_vs_projected_pct"] == round(100 * taken / projected, 1)
        balance = 50_000 - taken
        assert meta["balance"] == balance
        days_left = math.ceil(balance * 7 / taken)
        assert meta["days_left"] == days_left
        assert meta["forecast_date"] == (day + dt.timedelta(days=days_left)).isoformat()
        assert f"| {cid} | {len(reel_rows)} | {taken:,} | {projected:,} |" in meta["characters"]
        assert rows(engine, "top_up") == []


# --- seeded days: top-ups, unexplained falls, adjustments --------------------------------------

def test_a_top_up_is_detected_once(resources: dict, instance, engine: sa.Engine,
                                   sandbox) -> None:
    add_character(engine, "ana")
    set_coins(resources, sandbox, 10_000)
    assert materialize(resources, instance, D3, AFTER_D3)[2].passed
    add_cost(engine, "ana", D4, 0, 300, 300, dt.datetime(2026, 12, 4, 10, tzinfo=UTC))
    set_coins(resources, sandbox, 10_000 - 300 + 5_000)  # someone bought 5,000 credits

    result, meta, check = materialize(resources, instance, D4, AFTER_D4)
    assert result.success and check.passed
    assert meta["top_up_credits"] == 5_000 and meta["unexplained_credits"] == 0
    assert check.description.endswith("; a top-up of 5,000 credits was recorded")
    (top_up,) = rows(engine, "top_up")
    assert (top_up["external_ref"], top_up["credits"], top_up["ledger_date"],
            top_up["occurred_at"]) == ("top_up:2026-12-04", 5_000, D4, AFTER_D4)
    assert top_up["note"] == ("detected: the A2E balance rose 5,000 credits more than task "
                              "costs explain between 2026-12-04 00:10 and 2026-12-05 00:10 UTC")
    assert meta["dagster/row_count"] == 3  # task cost, snapshot, top-up

    # A rerun later that day: the snapshot moves, the top-up is not counted twice.
    later = dt.datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    result, meta, check = materialize(resources, instance, D4, later)
    assert result.success and check.passed
    assert [(t["credits"], t["occurred_at"]) for t in rows(engine, "top_up")] == [
        (5_000, later)]
    assert meta["top_up_credits"] == 5_000 and meta["unexplained_credits"] == 0
    assert meta["dagster/row_count"] == 3
    assert meta["credits_spent"] == 300  # a top-up is not spend


def test_an_unexplained_fall_warns_until_an_adjustment_explains_it(
        resources: dict, instance, engine: sa.Engine, sandbox) -> None:
    add_character(engine, "ana")
    set_coins(resources, sandbox, 10_000)
    assert materialize(resources, instance, D3, AFTER_D3)[2].passed
    add_cost(engine, "ana", D4, 0, 200, 210, dt.datetime(2026, 12, 4, 9, tzinfo=UTC))
    set_coins(resources, sandbox, 10_000 - 200 - 1_240)

    result, meta, check = materialize(resources, instance, D4, AFTER_D4)
    assert result.success  # the check warns; the asset is fine
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == (
        "2026-12-04: 1,240 credits left the A2E balance between 2026-12-04 00:10 and "
        f"2026-12-05 00:10 UTC that no task cost explains (tolerance {TOL})")
    assert meta["unexplained_credits"] == check.metadata["unexplained_credits"].value == -1_240
    assert rows(engine, "top_up") == []

    # The operator finds the cause (credits used by hand) and records it inside the window.
    with engine.begin() as conn:
        conn.execute(sa.insert(lg).values(
            provider="a2e", kind="adjustment", credits=1_240, ledger_date=D4,
            occurred_at=dt.datetime(2026, 12, 4, 15, tzinfo=UTC),
            note="used by hand in the A2E web app"))
    result, meta, check = materialize(resources, instance, D4,
                                      dt.datetime(2026, 12, 5, 1, 0, tzinfo=UTC))
    assert check.passed and meta["unexplained_credits"] == 0
    assert meta["credits_spent"] == 200  # an adjustment is not spend


def test_a_fall_within_the_tolerance_passes(resources: dict, instance, engine: sa.Engine,
                                            sandbox) -> None:
    set_coins(resources, sandbox, 10_000)
    materialize(resources, instance, D3, AFTER_D3)
    set_coins(resources, sandbox, 10_000 - TOL)
    _, meta, check = materialize(resources, instance, D4, AFTER_D4)
    assert check.passed and meta["unexplained_credits"] == -TOL
    assert f"the ledger explains all but {-TOL:+,} (tolerance {TOL})" in check.description


# --- days that cannot be read ------------------------------------------------------------------

def test_a_past_day_is_not_read_and_says_so(resources: dict, instance, engine: sa.Engine,
                                            sandbox) -> None:
    set_coins(resources, sandbox, 7_000)
    mark = max((e["id"] for e in sandbox.journal()), default=0)
    result, meta, check = materialize(resources, instance, dt.date(2026, 12, 1), AFTER_D4)
    assert result.success and check.passed
    assert sandbox.journal("a2e", mark) == []  # A2E was not asked
    assert check.description.startswith(
        "2026-12-01: not checked: the A2E balance of a past day cannot be read any more")
    assert meta["balance"] is None and meta["balance_read_now"] is False
    assert meta["balance_not_read"].startswith("the A2E balance of a past day cannot be read")
    assert "not known: the A2E balance of a past day" in meta["summary"]
    assert rows(engine, "balance_snapshot") == []

    # A past day that had its snapshot keeps it: rerun later, it is reported, not re-read.
    materialize(resources, instance, D3, AFTER_D3)
    set_coins(resources, sandbox, 1)
    result, meta, check = materialize(resources, instance, D3, AFTER_D4)
    assert check.passed and meta["balance"] == 7_000 and meta["balance_read_now"] is False
    assert "(stored)" in meta["summary"]
    assert [s["occurred_at"] for s in rows(engine, "balance_snapshot")] == [AFTER_D3]


@pytest.mark.parametrize("fault", ["auth", "down"])
def test_a2e_failing_fails_the_run_with_one_line_and_writes_nothing(
        resources: dict, instance, engine: sa.Engine, sandbox, fault: str) -> None:
    if fault == "auth":
        key = "sk_live_not_a_real_key_123456"
        resources = {**resources, "a2e": A2EResource(api_key=key,
                                                     base_url=resources["a2e"].base_url)}
    else:
        sandbox.add_fault(system="a2e", route="/api/v1/user/remainingCoins", action="status",
                          status=503)
    result, _, _ = materialize(resources, instance, D4, AFTER_D4)
    assert not result.success
    text = failure_text(result)
    assert text.startswith("A2E balance of 2026-12-04 not read: ") and "\n" not in text
    assert ("401" in text) if fault == "auth" else ("503" in text)
    assert "sk_live_not_a_real_key" not in text
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(lg)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.budgets)) == 0


# --- spend, RunPod, forecast and budget figures ------------------------------------------------

def test_runpod_time_in_cents_apart_and_the_budget_warning(
        resources: dict, instance, engine: sa.Engine, sandbox) -> None:
    add_character(engine, "ana")
    add_character(engine, "bea")
    at = dt.datetime(2026, 12, 4, 8, tzinfo=UTC)
    a2e_costs = [("ana", 0, 4_000, 3_900), ("ana", 1, 5_000, 5_100), ("bea", 0, 7_500, 7_500)]
    for cid, slot, credits, projected in a2e_costs:
        add_cost(engine, cid, D4, slot, credits, projected, at)
    runpod = [("ana", 2, 125), ("bea", 1, 345)]  # seconds of worker time
    for cid, slot, seconds in runpod:
        add_cost(engine, cid, D4, slot, seconds, 60, at, provider="runpod")
    earlier = dt.date(2026, 11, 28)  # the first of the 7 days; the day before is not in them
    add_cost(engine, "bea", earlier, 0, 700, 700, at - dt.timedelta(days=7))
    add_cost(engine, "bea", earlier - dt.timedelta(days=1), 0, 9_999, 1, at)
    set_coins(resources, sandbox, 40_000)

    result, meta, check = materialize(resources, instance, D4, AFTER_D4)
    assert result.success and check.passed  # the first snapshot
    spent = sum(c for _, _, c, _ in a2e_costs)
    assert meta["credits_spent"] == spent == 16_500
    seconds = sum(s for *_, s in runpod)
    cents = int((Decimal(seconds) * get_settings().money.runpod_cents_per_second)
                .to_integral_value(rounding="ROUND_HALF_UP"))
    assert (meta["runpod_seconds"], meta["runpod_cost_cents"]) == (470, 24) == (seconds, cents)
    assert meta["projected_credits"] == 3_900 + 5_100 + 7_500
    assert meta["actual_vs_projected_pct"] == round(100 * 16_500 / 16_500, 1)
    assert "| ana | 2 | 9,000 | 9,000 | 100.0 % |" in meta["characters"]
    assert "| bea | 1 | 7,500 | 7,500 | 100.0 % |" in meta["characters"]
    # 7-day burn: D4 and 2026-11-28..12-03 -> (16,500 + 700) / 7 a day.
    week = 16_500 + 700
    assert meta["avg_daily_spend_7d"] == round(week / 7, 1)
    assert meta["days_left"] == math.ceil(40_000 * 7 / week) == 17
    assert meta["forecast_date"] == "2026-12-21"
    # The month: 16,500 of the default 20,000 (no planned reels) = 82.5 %, past 80 %.
    assert get_settings().a2e_monthly_credits == 20_000
    assert meta["budget_used_pct"] == 82.5
    assert meta["summary"].startswith("**Warning: 82.5 % of the A2E budget of 2026-12")

    with engine.connect() as conn:
        summary = ledger_summary(conn, D4)
    assert summary["balance"] == 40_000 and summary["runpod_cost_cents"] == 24
    assert summary["budget_warning"] is True and summary["reconciliation"] == "first"
