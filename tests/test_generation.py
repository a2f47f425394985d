"""The `reels` asset against the A2E and RunPod sandboxes: paid once, resumed, reconciled."""

from __future__ import annotations

import httpx
import pytest
import render_world
import sqlalchemy as sa
from render_world import CID, DAY, run_day

from waifugen_assets.core import clock, schema
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.rendering.assets import reels

# The day's fixtures (render_world): the clock at its start, the roster's instance.
on_day, instance = render_world.on_day, render_world.instance


def _a2e(pipeline_resources: dict, sandbox_server, path: str, **body: object) -> None:
    key = pipeline_resources["a2e"].api_key
    httpx.post(f"{sandbox_server.url}/a2e/_control/{path}", json=body,
               headers={"Authorization": f"Bearer {key}"}).raise_for_status()


def _rows(engine: sa.Engine) -> list[dict]:
    r = schema.reels
    with engine.connect() as conn:
        return [dict(x) for x in conn.execute(sa.select(r).where(r.c.character_id == CID)
                                              .order_by(r.c.slot)).mappings()]


def _titles(sandbox_server, since: int, answered_only: bool = True) -> list[str]:
    """Titles of generate requests (a dropped answer has status None but was paid)."""
    return [e["body"]["title"] for e in sandbox_server.journal("a2e", since)
            if e["path"] == "/api/v1/video/generate"
            and (e["status"] == 200 or not answered_only)]


def _mark(sandbox_server) -> int:
    return max((e["id"] for e in sandbox_server.journal()), default=0)


def _ledger(engine: sa.Engine) -> list[tuple]:
    lg = schema.credit_ledger
    with engine.connect() as conn:
        return conn.execute(sa.select(lg.c.provider, lg.c.reel_id, lg.c.external_ref,
                                      lg.c.credits).where(lg.c.character_id == CID)
                            .order_by(lg.c.reel_id)).all()


def test_every_reel_generated_once_with_its_cost(pipeline_resources, instance, engine,
                                                 sandbox_server) -> None:
    since = _mark(sandbox_server)
    result = run_day(pipeline_resources, instance, reel_plans, reels)
    assert result.success
    rows = _rows(engine)
    assert rows and all(r["status"] == "generated" for r in rows)
    assert all(r["generation_result_url"].endswith(".mp4") for r in rows)
    assert all(r["generation_attempts"] == 1 for r in rows)
    titles = _titles(sandbox_server, since)
    assert sorted(titles) == sorted(f"waifugen-reel-{r['id']}" for r in rows)
    ledger = _ledger(engine)
    assert [(p, reel) for p, reel, _, _ in ledger] == [("a2e", r["id"]) for r in rows]
    assert all(credits > 0 for *_, credits in ledger)

    again = run_day(pipeline_resources, instance, reels)  # nothing left to pay for
    assert again.success and _titles(sandbox_server, since) == titles
    assert _ledger(engine) == ledger


def test_a2e_failure_fails_that_reel_only(pipeline_resources, instance, engine,
                                          sandbox_server) -> None:
    _a2e(pipeline_resources, sandbox_server, "next_jobs", outcome="fail", count=1,
         message="face not detected")
    result = run_day(pipeline_resources, instance, reel_plans, reels)
    assert result.success
    statuses = [r["status"] for r in _rows(engine)]
    assert statuses.count("failed") == 1 and statuses.count("generated") == len(statuses) - 1
    failed = next(r for r in _rows(engine) if r["status"] == "failed")
    assert "face not detected" in failed["failure_reason"]
    assert failed["id"] not in [reel for _, reel, _, _ in _ledger(engine)]


def test_crash_mid_poll_resumes_without_paying_twice(pipeline_resources, instance, engine,
                                                     sandbox_server) -> None:
    since = _mark(sandbox_server)
    _a2e(pipeline_resources, sandbox_server, "next_jobs", outcome="slow", count=99, polls=3)
    # A run that stops waiting at once: every task is paid for and left running.
    first = run_day(pipeline_resources, instance, reel_plans, reels,
                    run_config={"ops": {"reels": {"config": {"max_wait_seconds": 0}}}})
    assert first.success
    rows = _rows(engine)
    assert all(r["status"] == "generating" and r["generation_task_id"] for r in rows)
    tasks = {r["id"]: r["generation_task_id"] for r in rows}
    rerun = run_day(pipeline_resources, instance, reels)
    assert rerun.success
    rows = _rows(engine)
    assert all(r["status"] == "generated" for r in rows)
    assert {r["id"]: r["generation_task_id"] for r in rows} == tasks
    assert len(_titles(sandbox_server, since)) == len(rows)  # one paid submit per reel
    assert len(_ledger(engine)) == len(rows)


def test_lost_submit_answer_is_reconciled_not_repaid(pipeline_resources, instance, engine,
                                                     sandbox_server) -> None:
    since = _mark(sandbox_server)
    sandbox_server.add_fault(system="a2e", route="/api/v1/video/generate", action="drop",
                             phase="after", times=1)
    result = run_day(pipeline_resources, instance, reel_plans, reels)
    assert result.success
    rows = _rows(engine)
    assert all(r["status"] == "generated" for r in rows)
    titles = _titles(sandbox_server, since, answered_only=False)
    assert len(titles) == len(set(titles)) == len(rows)  # the lost one was not resent


def test_breaker_sends_reels_to_runpod(pipeline_resources, instance, engine,
                                       sandbox_server) -> None:
    fault = sandbox_server.add_fault(system="a2e", route="/api/v1/video/generate",
                                     action="status", status=503)
    try:
        result = run_day(pipeline_resources, instance, reel_plans, reels)
    finally:
        sandbox_server.remove_fault(fault["id"])
    assert result.success
    rows = _rows(engine)
    meta = result.asset_materializations_for_node("reels")[0].metadata
    assert meta["via_fallback"].value >= 1
    providers = [r["generation_provider"] for r in rows if r["status"] == "generated"]
    assert "runpod" in providers
    assert {p for p, *_ in _ledger(engine)} == {"runpod"}


def test_budget_block_sends_nothing_to_a2e(pipeline_resources, instance, engine,
                                           sandbox_server) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.budgets).values(
            provider="a2e", period_start=DAY.replace(day=1), credits_limit=1))
    since = _mark(sandbox_server)
    result = run_day(pipeline_resources, instance, reel_plans, reels)
    assert not result.success  # the blocking budget check stopped the run
    assert sandbox_server.journal("a2e", since) == []
    assert {r["status"] for r in _rows(engine)} == {"blocked"}


def test_task_that_never_finishes_times_out(pipeline_resources, instance, engine,
                                            sandbox_server) -> None:
    # Normal renders finish by the first poll; one stays in "process" for 500 polls.
    _a2e(pipeline_resources, sandbox_server, "config", states_per_poll=10)
    _a2e(pipeline_resources, sandbox_server, "next_jobs", outcome="slow", count=1, polls=500)
    config = {"ops": {"reels": {"config": {"max_wait_seconds": 0,
                                           "abandon_after_seconds": 0}}}}
    result = run_day(pipeline_resources, instance, reel_plans, reels, run_config=config)
    assert result.success
    rows = _rows(engine)
    timed_out = [r for r in rows if r["status"] == "failed"]
    assert len(timed_out) == 1 and "timed out" in timed_out[0]["failure_reason"]
    assert timed_out[0]["generation_task_id"]  # the paid task stays on record


def test_a_submit_that_never_arrived_is_not_counted_twice(pipeline_resources, instance, engine,
                                                          sandbox_server) -> None:
    """A run died after recording its intent and before its submit left: the provider has no
    task by that title, so the attempt cost nothing and the rerun's submit is the first."""
    assert run_day(pipeline_resources, instance, reel_plans).success
    r = schema.reels
    with engine.begin() as conn:
        first = conn.scalar(sa.select(sa.func.min(r.c.id)).where(r.c.character_id == CID))
        conn.execute(sa.update(r).where(r.c.id == first).values(
            status="generating", generation_provider="a2e", generation_attempts=1,
            generation_submitted_at=clock.now()))
    since = _mark(sandbox_server)
    assert run_day(pipeline_resources, instance, reels).success
    row = next(x for x in _rows(engine) if x["id"] == first)
    assert row["status"] == "generated" and row["generation_attempts"] == 1
    assert _titles(sandbox_server, since).count(f"waifugen-reel-{first}") == 1


def test_render_provider_runpod_sends_every_new_render_to_runpod(
        pipeline_resources, instance, engine, sandbox_server) -> None:
    """RENDER_PROVIDER=runpod (an A2E outage, docs/runbooks/a2e-down.md): no submit reaches
    A2E, every reel is rendered by RunPod, and its cost is recorded under RunPod."""
    since = _mark(sandbox_server)
    result = run_day(pipeline_resources, instance, reel_plans, reels,
                     run_config={"ops": {"reels": {"config": {"provider": "runpod"}}}})
    assert result.success
    rows = _rows(engine)
    assert rows and {r["generation_provider"] for r in rows} == {"runpod"}
    assert all(r["status"] == "generated" for r in rows)
    assert _titles(sandbox_server, since) == []  # nothing submitted to A2E
    assert {p for p, *_ in _ledger(engine)} == {"runpod"}


@pytest.mark.parametrize(("requested", "setting", "configured", "message"), [
    ("fastest", None, True, "RENDER_PROVIDER='fastest': expected one of auto, runpod"),
    (None, "runpod", False, "RENDER_PROVIDER=runpod needs the RunPod fallback"),
])
def test_render_provider_is_checked(requested, setting, configured, message) -> None:
    from waifugen_assets.core.config import ConfigError
    from waifugen_assets.rendering.providers import render_order

    with pytest.raises(ConfigError, match=message):
        render_order(requested, setting, configured)
    assert render_order(None, None, False) == "auto"
    assert render_order(None, "runpod", True) == "runpod"
