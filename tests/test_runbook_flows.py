"""What docs/runbooks/a2e-down.md and credits-depleted.md say happens, against the sandbox.

If one of these fails after a change to rendering or budgets, the runbook is out of date:
update the page with the code.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import textwrap
from pathlib import Path

import httpx
import render_world
import sqlalchemy as sa
from click.testing import CliRunner, Result
from render_world import CID, DAY, run_day

from waifugen_assets.app.cli import main
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings, project_root
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.rendering.assets import reels
from waifugen_assets.rendering.retry import REFUSED_FOR_COINS
from waifugen_assets.rendering.tasks import BREAKER

RUNBOOKS = project_root() / "docs/runbooks"

# The day's fixtures (render_world): the clock at its start, the roster's instance.
on_day, instance = render_world.on_day, render_world.instance


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


def _commands(page: str, starting: str) -> list[list[str]]:
    """The commands of a runbook's shell blocks that start with `starting` (what the page
    tells the operator to type), split as the shell would, comments dropped."""
    blocks = re.findall(r"^[ \t]*```(?:sh|bash)\n(.*?)^[ \t]*```", (RUNBOOKS / page).read_text(),
                        re.M | re.S)
    return [shlex.split(line, comments=True) for b in blocks
            for line in textwrap.dedent(b).splitlines() if line.strip().startswith(starting)]


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


def waifugen(db_url: str, home: Path, *args: str) -> Result:
    """The `waifugen` command in this process (its clock is the test's), on the test
    database; each command reads the settings afresh, as a process of its own would."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url,
                                                        "WAIFUGEN_HOME": str(home)})
    finally:
        get_settings.cache_clear()


def test_raising_the_budget_as_the_runbook_says_unblocks_the_day(
        pipeline_resources, instance, engine, sandbox, db_url, tmp_path) -> None:
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

    planned = sum(r["projected_credits"] for r in _reels(engine))
    # Not enough: the character's share of 100 is still committed; nothing changes.
    short = waifugen(db_url, tmp_path, "budget", "set", "100", "--month", "2026-11")
    assert short.output.splitlines() == [
        f"A2E budget 2026-11: 1 -> 100 credits; committed {planned:,} "
        f"({100 * planned / 100:.1f} %)",
        "warning: the month has committed the whole new limit: planning blocks new reels",
        "4 reel(s) on 1 character day(s) stay blocked: their characters' shares are still "
        "committed"]
    assert {r["status"] for r in _reels(engine)} == {"blocked"}

    (command,) = _commands("credits-depleted.md", "waifugen budget set")
    assert command == ["waifugen", "budget", "set", "30000", "--month", "2026-12"]
    raised = waifugen(db_url, tmp_path, "budget", "set", "30000", "--month", "2026-11")
    assert raised.exit_code == 0, raised.output
    assert raised.output.splitlines() == [
        f"A2E budget 2026-11: 100 -> 30,000 credits; committed {planned:,} "
        f"({100 * planned / 30000:.1f} %)",
        "6 budget alert(s) re-armed: sent again when the new limit's thresholds are reached",
        "4 blocked reel(s) planned again: the generation sensor renders them"]
    assert {r["status"] for r in _reels(engine)} == {"planned"}
    shown = waifugen(db_url, tmp_path, "budget", "show", "--month", "2026-11").output
    assert "blocked: 0 reel(s) on 0 character day(s)" in shown
    mine = next(line.split() for line in shown.splitlines() if line.startswith(CID))
    assert mine[2:4] == ["0", f"{planned:,}"]  # spent, planned
    with engine.connect() as conn:
        assert conn.scalar(sa.select(schema.budgets.c.credits_limit)) == 30000
        assert not conn.scalar(sa.select(sa.func.count()).select_from(schema.budget_alerts))
        assert len(set(conn.scalars(sa.select(schema.alerts.c.key)))) == 6  # history kept
    replanned = run_day(pipeline_resources, instance, reel_plans)
    assert replanned.success
    assert {r["status"] for r in _reels(engine)} == {"planned"}
    assert run_day(pipeline_resources, instance, reels).success
    assert {r["status"] for r in _reels(engine)} == {"generated"}


def _a2e_coins(pipeline_resources: dict, sandbox_server, coins: int) -> None:
    key = pipeline_resources["a2e"].api_key
    httpx.post(f"{sandbox_server.url}/a2e/_control/config", json={"coins": coins},
               headers={"Authorization": f"Bearer {key}"}).raise_for_status()


def test_reels_refused_for_lack_of_coins_are_retried_after_a_top_up(
        pipeline_resources, instance, engine, sandbox_server, db_url, tmp_path) -> None:
    _a2e_coins(pipeline_resources, sandbox_server, 0)
    assert run_day(pipeline_resources, instance, reel_plans, reels).success
    rows = _reels(engine)
    refused = [r["id"] for r in rows if r["status"] == "failed"]
    assert len(refused) == 3  # then the breaker opened: the fourth went to RunPod
    for r in rows:
        if r["id"] in refused:
            assert r["failure_reason"].startswith(REFUSED_FOR_COINS), r["failure_reason"]
            assert r["generation_task_id"] is None
    assert [p for p, _ in _costs(engine)] == ["runpod"]

    with clock.running_from(dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)):
        late = waifugen(db_url, tmp_path, "reels", "retry-refused", "--dry-run")
    assert late.output.splitlines() == [
        "0 reel(s) refused for lack of coins would be planned again",
        "3 more left failed: their slot is over 3 h old (PUBLISH_STALE_AFTER_HOURS)"]
    listed = waifugen(db_url, tmp_path, "reels", "retry-refused", "--dry-run")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0] == \
        "3 reel(s) refused for lack of coins would be planned again:"
    assert [r["status"] for r in _reels(engine)] == [r["status"] for r in rows]  # unchanged

    _a2e_coins(pipeline_resources, sandbox_server, 10_000)  # topped up
    dry, command = _commands("credits-depleted.md", "waifugen reels retry-refused")
    assert dry == [*command, "--dry-run"]
    retried = waifugen(db_url, tmp_path, *command[1:])
    assert retried.exit_code == 0, retried.output
    lines = retried.output.splitlines()
    assert lines[0] == "3 reel(s) refused for lack of coins planned again:"
    assert [int(line.split()[1].rstrip(":")) for line in lines[1:]] == sorted(refused)
    assert waifugen(db_url, tmp_path, "reels", "retry-refused").output.startswith("0 reel(s)")

    _next_run()
    assert run_day(pipeline_resources, instance, reels).success
    assert {r["status"] for r in _reels(engine)} == {"generated"}
    assert sorted(p for p, _ in _costs(engine)) == ["a2e", "a2e", "a2e", "runpod"]  # once each

