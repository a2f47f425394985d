"""Backfills of past days through Dagster (`dagster job backfill`, runs launched by the
instance's run launcher in their own processes): nothing is posted late unless asked.

One character, two past days, and the clock of every process set by WAIFUGEN_NOW:
1. day A is made while its slots are still ahead (rendered and branded, nothing due yet);
2. days later, a plain backfill of A and B: A's posts are skipped as stale, B's reels are
   not even rendered (missed, nothing paid): nothing reaches any platform;
3. the same days backfilled with the tag `waifugen/post_late=true`: both are made and posted,
   each reel once per platform, within the platforms' quotas.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sandbox.published import published, summarize
from sandbox.server import SandboxServer
from waifugen_assets.app.local_stack import SANDBOX_SEED
from waifugen_assets.app.sandbox_seeding import configure_sandbox_world
from waifugen_assets.core import schema
from waifugen_assets.core.config import project_root

pytestmark = pytest.mark.integration

CID = "lucia-marvento"  # Europe/Madrid
DAY_A, DAY_B = "2026-11-20", "2026-11-21"
INSTANCE = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
telemetry:
  enabled: false
"""


@pytest.fixture
def world(db_url: str, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    roster = tmp_path / "characters.yaml"
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load((project_root() / "characters.yaml").read_text())
    data["characters"] = [c for c in data["characters"] if c["id"] == CID]
    with roster.open("w") as out:
        yaml.dump(data, out)
    with SandboxServer(tmp_path / "sandbox", seed=SANDBOX_SEED) as sandbox:
        configure_sandbox_world(sandbox.url)
        env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": db_url,
               "WAIFUGEN_HOME": str(tmp_path / "home"), "WAIFUGEN_ROSTER": str(roster),
               "WAIFUGEN_SANDBOX_URL": sandbox.url,
               "A2E_API_KEY": f"sk_sandbox_{uuid.uuid4().hex[:8]}"}
        # The roster, partitions and sandbox tokens, as `waifugen run` prepares them.
        # Tokens are stored as of the first backfill's time, the clock all runs start from.
        setup = subprocess.run([sys.executable, "-c", _PREPARE], text=True,
                               env={**env, "WAIFUGEN_NOW": "2026-11-19T23:00:00Z"},
                               capture_output=True, timeout=300)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        yield env, sandbox


_PREPARE = """
import dagster as dg
from waifugen_assets.app.local_stack import local_stack, prepare
with local_stack() as stack:
    from waifugen_assets.definitions import defs
    with dg.DagsterInstance.get() as instance:
        prepare(stack, defs, instance)
"""


def backfill(env: dict[str, str], sandbox: SandboxServer, now: str, *days: str,
             tags: str | None = None) -> list:
    """`dagster job backfill` of daily_content for `days` at time `now` (the pipeline's and
    the sandbox's clock, running from there); waits for its runs."""
    env = {**env, "WAIFUGEN_NOW": now}
    sandbox.set_clock(now, frozen=False)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        before = {r.run_id for r in instance.get_runs()}
    argv = [str(Path(sys.executable).with_name("dagster")), "job", "backfill", "-w",
            str(project_root() / "workspace.yaml"), "-j", "daily_content", "--noprompt",
            "--partitions", ",".join(f"{CID}|{d}" for d in days)]
    if tags:
        argv += ["--tags", tags]
    proc = subprocess.run(argv, env=env, cwd=project_root(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.monotonic() + 300
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        while True:
            runs = [r for r in instance.get_runs() if r.run_id not in before]
            if len(runs) == len(days) and all(r.is_finished for r in runs):
                return runs
            assert time.monotonic() < deadline, [(r.run_id, r.status) for r in runs]
            time.sleep(0.5)  # polling the run storage for the launched runs' outcome


def _reels(engine: sa.Engine) -> dict[str, list[str]]:
    r = schema.reels
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.date, r.c.status).order_by(r.c.slot)).all()
    out: dict[str, list[str]] = {}
    for day, status in rows:
        out.setdefault(day.isoformat(), []).append(status)
    return out


def _posts(engine: sa.Engine) -> dict[str, list[str]]:
    r, sp = schema.reels, schema.social_posts
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.date, sp.c.state).join(r, r.c.id == sp.c.reel_id)
                            .order_by(r.c.slot)).all()
    out: dict[str, list[str]] = {}
    for day, state in rows:
        out.setdefault(day.isoformat(), []).append(state)
    return out


def _post_states(engine: sa.Engine) -> dict[str, list[str]]:
    sp = schema.social_posts
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sp.c.platform, sp.c.state)).all()
    out: dict[str, list[str]] = {}
    for platform, state in rows:
        out.setdefault(platform, []).append(state)
    return {k: sorted(v) for k, v in out.items()}


def _reasons(engine: sa.Engine) -> list[str]:
    sp = schema.social_posts
    with engine.connect() as conn:
        return list(conn.execute(sa.select(sp.c.last_error).where(sp.c.last_error.is_not(None)))
                    .scalars())


def _generates(sandbox: SandboxServer) -> int:
    return sum(1 for e in sandbox.journal("a2e") if e["path"] == "/api/v1/video/generate")


def test_backfills_post_nothing_late_unless_asked(world, engine) -> None:
    env, sandbox = world
    # 1. Day A made at its very start (00:30 in Madrid): rendered, nothing due to post.
    (run,) = backfill(env, sandbox, "2026-11-19T23:30:00Z", DAY_A)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert _reels(engine) == {DAY_A: ["branded"] * 4}
    paid = _generates(sandbox)
    assert paid == 4

    # 2. Four days later, a plain backfill of A and B.
    runs = backfill(env, sandbox, "2026-11-25T12:00:00Z", DAY_A, DAY_B)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert _posts(engine)[DAY_A] == ["skipped"] * 12  # 4 reels x 3 platforms, not posted
    assert _reels(engine)[DAY_B] == ["skipped"] * 4  # missed: never rendered ...
    assert _generates(sandbox) == paid  # ... so never paid for
    assert DAY_B not in _posts(engine)
    assert published(sandbox.url) == []  # nothing reached any platform

    # 3. Asked to post late: both days are made and posted, each reel once per platform.
    # One day at a time: TikTok takes 6 inits a minute per account (both days are 8).
    late = '{"waifugen/post_late": "true"}'
    runs = [*backfill(env, sandbox, "2026-11-25T12:05:00Z", DAY_A, tags=late),
            *backfill(env, sandbox, "2026-11-25T12:07:00Z", DAY_B, tags=late)]
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    states = _post_states(engine)
    assert states["tiktok"] == states["instagram"] == ["published"] * 8
    # YouTube's default project quota (10,000 units, 1,600 an upload) takes 6 uploads a
    # day: the other two wait for the next quota day, counted before sending.
    assert states["youtube"] == ["deferred"] * 2 + ["published"] * 6, _reasons(engine)
    summary = {row["platform"]: row for row in summarize(published(sandbox.url), None)}
    for platform, posted in (("tiktok", 8), ("instagram", 8), ("youtube", 6)):
        assert summary[platform]["posts"] == summary[platform]["reels"] == posted
        assert summary[platform]["published_twice"] == 0
