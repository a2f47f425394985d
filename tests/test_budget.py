"""Budgets before spending: pure rules, then the blocking check on real PostgreSQL + sandbox."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import dagster as dg
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from waifugen_assets.core import schema
from waifugen_assets.money.budget import (
    BudgetView,
    CostModel,
    Level,
    character_limits,
    exhaustion_date,
    thresholds_reached,
)
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.roster.assets import characters

DAY = dt.date(2026, 11, 25)
_refs = itertools.count()


@pytest.mark.parametrize(("spent", "projected", "level"), [
    (0, 0, Level.OK), (700, 99, Level.OK), (700, 100, Level.WARN), (990, 9, Level.WARN),
    (1000, 0, Level.BLOCK), (900, 200, Level.BLOCK),
])
def test_levels(spent: int, projected: int, level: Level) -> None:
    assert BudgetView(limit=1000, spent=spent, projected=projected).level is level


def test_zero_limit_blocks_any_spend() -> None:
    assert BudgetView(0, 0, 0).level is Level.OK
    assert BudgetView(0, 0, 5).level is Level.BLOCK


def test_limits_split_named_and_unnamed_shares() -> None:
    limits = character_limits(10_000, {"a": 50.0, "b": 20.0, "c": None, "d": None})
    assert limits == {"a": 5000, "b": 2000, "c": 1500, "d": 1500}


@given(st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                       st.one_of(st.none(), st.floats(0, 25)), max_size=8),
       st.integers(0, 10**7))
def test_limits_never_exceed_the_total(shares: dict, total: int) -> None:
    assert sum(character_limits(total, shares).values()) <= total


def test_shares_over_100_are_scaled_down() -> None:
    # found by the property above: 22 + 18 + 24 + 18 + 20 = 102 %
    limits = character_limits(50, {"a": 22.0, "b": 18.0, "c": 24.0, "d": 18.0, "e": 20.0})
    assert sum(limits.values()) <= 50


def test_thresholds() -> None:
    assert thresholds_reached(49.9) == []
    assert thresholds_reached(80) == [50, 80]
    assert thresholds_reached(math.inf) == [50, 80, 100]


def test_exhaustion_date() -> None:
    # 100 credits a day for the first 10 days of November: 1000 more last 10 days.
    daily = {dt.date(2026, 11, d): 100 for d in range(1, 11)}
    assert exhaustion_date(2000, daily, dt.date(2026, 11, 10)) == dt.date(2026, 11, 20)
    assert exhaustion_date(10_000, daily, dt.date(2026, 11, 10)) is None  # not this month
    assert exhaustion_date(500, daily, dt.date(2026, 11, 10)) == dt.date(2026, 11, 10)
    assert exhaustion_date(500, {}, dt.date(2026, 11, 10)) is None


def test_cost_model_grows_with_the_script() -> None:
    model = CostModel(credits_per_second=2, credits_per_tts=1)
    assert model.project("hi") == 3 * 2 + 1  # minimum length
    assert model.project("word " * 50) == 20 * 2 + 1


# --- the check, materialized ------------------------------------------------------------------

def _spend(engine: sa.Engine, character_id: str, credits: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.credit_ledger).values(
            provider="a2e", kind="task_cost", character_id=character_id,
            external_ref=f"test-{next(_refs)}", credits=credits, ledger_date=DAY,
            occurred_at=dt.datetime.now(dt.UTC)))


def _plan(resources: dict, instance: dg.DagsterInstance, cid: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([characters, reel_plans], selection=[reel_plans],
                          partition_key=partition_key(cid, DAY), resources=resources,
                          instance=instance, raise_on_error=False)


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_budget_check_warns_blocks_alerts_once_and_unblocks(
        pipeline_resources, engine: sa.Engine, sandbox_server) -> None:
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        cid = "mika-hoshizora"
        instance.add_dynamic_partitions(characters_partitions.name, [cid])
        first = _plan(pipeline_resources, instance, cid)
        assert first.success and _check(first).passed
        meta = _check(first).metadata
        limit, projected = meta["limit"].value, meta["projected"].value
        assert projected > 0 and limit > 0

        _spend(engine, cid, int(limit * 0.85) - projected)
        warned = _plan(pipeline_resources, instance, cid)
        evaluation = _check(warned)
        assert warned.success and not evaluation.passed
        assert evaluation.severity is dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["level"].value == "warn"

        _spend(engine, cid, int(limit * 0.2))
        blocked = _plan(pipeline_resources, instance, cid)
        evaluation = _check(blocked)
        assert not evaluation.passed
        assert evaluation.severity is dg.AssetCheckSeverity.ERROR
        assert not blocked.success  # blocking: nothing downstream may run
        with engine.connect() as conn:
            statuses = set(conn.execute(sa.select(schema.reels.c.status).where(
                schema.reels.c.character_id == cid)).scalars())
        assert statuses == {"blocked"}

        # One alert per threshold and period, however often the check runs.
        _plan(pipeline_resources, instance, cid)
        with engine.connect() as conn:
            b, a = schema.budget_alerts, schema.alerts
            alerts = conn.execute(sa.select(b.c.threshold, a.c.sent_at).join(
                a, a.c.key == sa.func.concat("budget:", b.c.id)).where(
                b.c.character_id == cid)).all()
        assert sorted(t for t, _ in alerts) == [50, 80, 100]
        assert all(sent is not None for _, sent in alerts)
        texts = [e["body"]["text"] for e in sandbox_server.journal("telegram")
                 if e["path"].endswith("/sendMessage") and cid in str(e["body"])]
        assert len(texts) == 3

        # A bigger budget unblocks the day's reels.
        with engine.begin() as conn:
            conn.execute(sa.update(schema.budgets).values(credits_limit=10_000_000))
        again = _plan(pipeline_resources, instance, cid)
        assert again.success and _check(again).passed
        with engine.connect() as conn:
            statuses = set(conn.execute(sa.select(schema.reels.c.status).where(
                schema.reels.c.character_id == cid)).scalars())
        assert statuses == {"planned"}
