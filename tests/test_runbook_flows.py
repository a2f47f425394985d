"""What docs/runbooks/a2e-down.md and credits-depleted.md say happens, against the sandbox.

If one of these fails after a change to rendering or budgets, the runbook is out of date:
update the page with the code.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa
from render_world import CID, DAY, at_start_of_day, roster_instance, run_day

from waifugen_assets.core import schema
from waifugen_assets.core.config import project_root
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.rendering.assets import reels
from waifugen_assets.rendering.tasks import BREAKER

RUNBOOKS = project_root() / "docs/runbooks"


@pytest.fixture(autouse=True)
def _on_day() -> Iterator[None]:
    with at_start_of_day():
        yield


@pytest.fixture
def instance(pipeline_resources: dict) -> Iterator[dg.DagsterInstance]:
    with roster_instance(pipeline_resources) as inst:
        yield inst


def _next_run() -> None:
    """Each run is a new process in production: its circuit breaker starts closed."""
    BREAKER.success("a2e")
    BREAKER.success("runpod")


def _reels(engine: sa.Engine) -> list[dict]:
    r = schema.reels
    with engine.connect() as conn:
        return [dict(x) for x in conn.execute(
            sa.select(r).where(r.c.character_id == CID).order_by(r.c.slot)).mappings()]


def _costs(engine: sa.Engine) -> list[tuple[str, int]]:
    lg = schema.credit_ledger
    with engine.connect() as conn:
        return [tuple(x) for x in conn.execute(
            sa.select(lg.c.provider, lg.c.reel_id).where(lg.c.kind == "task_cost")
            .order_by(lg.c.reel_id))]


def _sql(page: str, containing: str) -> str:
    blocks = re.findall(r"^[ \t]*```sql\n(.*?)^[ \t]*```", (RUNBOOKS / page).read_text(),
                        re.M | re.S)
    return next(textwrap.dedent(b) for b in blocks if containing in b)


def test_a2e_down_holds_three_reels_a_run_and_sends_the_rest_to_runpod(
        pipeline_resources, instance, engine, sandbox) -> None:
    down = sandbox.add_fault(system="a2e", route="*", action="status", status=503)
    first = run_day(pipeline_resources, instance, reel_plans, reels)
    assert first.success  # a reel that could not be rendered is on its row, not a failed run
    rows = _reels(engine)
    held = [r for r in rows if r["status"] == "generating"]
    assert len(rows) == 4 and len(held) == 3
    for r in held:
        assert r["generation_provider"] == "a2e" and r["generation_task_id"] is None
        assert r["failure_reason"].startswith("reconciling with a2e failed")
        assert r["next_attempt_at"] is not None
    assert [r["generation_provider"] for r in rows if r["status"] == "generated"] == ["runpod"]
    assert first.asset_materializations_for_node("reels")[0].metadata["via_fallback"].value == 1

    _next_run()  # still down: the held reels stay with A2E, none goes to RunPod
    assert run_day(pipeline_resources, instance, reels).success
    assert [r["status"] for r in _reels(engine)] == [r["status"] for r in rows]
    assert [p for p, _ in _costs(engine)] == ["runpod"]

    sandbox.remove_fault(down["id"])  # A2E answers again: no such task, so each is paid once
    _next_run()
    assert run_day(pipeline_resources, instance, reels).success
    after = _reels(engine)
    assert all(r["status"] == "generated" for r in after)
    assert sorted(p for p, _ in _costs(engine)) == ["a2e", "a2e", "a2e", "runpod"]
    assert all(r["generation_attempts"] == 1 for r in after)


def test_raising_the_budget_as_the_runbook_says_unblocks_the_day(
        pipeline_resources, instance, engine, sandbox) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.budgets).values(
            provider="a2e", period_start=DAY.replace(day=1), credits_limit=1))
    blocked = run_day(pipeline_resources, instance, reel_plans)
    assert not blocked.success  # the blocking budget check fails the plan run
    assert {r["status"] for r in _reels(engine)} == {"blocked"}
    with engine.connect() as conn:
        keys = set(conn.scalars(sa.select(schema.alerts.c.key)))
        thresholds = set(conn.scalars(sa.select(schema.budget_alerts.c.threshold)))
    assert thresholds == {50, 80, 100} and len(keys) == 6  # character and roster, once each

    raise_budget = _sql("credits-depleted.md", "INSERT INTO budgets")
    assert "DATE '2026-12-01'" in raise_budget
    with engine.begin() as conn:
        conn.exec_driver_sql(raise_budget.replace("2026-12-01", DAY.replace(day=1).isoformat()))
    replanned = run_day(pipeline_resources, instance, reel_plans)
    assert replanned.success
    assert {r["status"] for r in _reels(engine)} == {"planned"}
    assert run_day(pipeline_resources, instance, reels).success
    assert {r["status"] for r in _reels(engine)} == {"generated"}
