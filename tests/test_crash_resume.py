"""Kill `waifugen run` (SIGKILL) while it polls A2E, rerun it: every reel is paid for once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from waifugen_assets.core import schema

DAY = "2026-11-25"
CID = "greta-vollmond"


def _cli_env(db_url: str, home: Path, sandbox_url: str, key: str) -> dict[str, str]:
    return {**os.environ, "WAIFUGEN_HOME": str(home), "DATABASE_URL": db_url,
            "WAIFUGEN_SANDBOX_URL": sandbox_url, "A2E_API_KEY": key}


def _run(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "waifugen_assets.app.cli", "run", "--date", DAY,
                             "--character", CID, "--no-analytics"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _all_tasks_saved(engine: sa.Engine) -> bool:
    """Every reel of the day paid for, its task id on record, and none finished: polling."""
    r = schema.reels
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.status, r.c.generation_task_id)
                            .where(r.c.character_id == CID)).all()
    return bool(rows) and all(s == "generating" and t for s, t in rows)


def test_kill_mid_poll_then_rerun(db_url: str, engine: sa.Engine, tmp_path: Path,
                                  sandbox_server) -> None:
    key = f"sk_sandbox_{uuid.uuid4().hex[:10]}"
    env = _cli_env(db_url, tmp_path / "home", sandbox_server.url, key)
    since = max((e["id"] for e in sandbox_server.journal()), default=0)
    # Status polls (one task's, or the list route's many) answer slowly: the kill lands
    # while the run waits for them.
    slow = sandbox_server.add_fault(system="a2e", route="/api/v1/video/aws*",
                                    action="delay", delay=0.4)
    proc = _run(env)
    try:
        deadline = time.monotonic() + 120
        while not _all_tasks_saved(engine):  # polling has begun
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "no task was ever submitted"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # no cleanup, no atexit: a crash
        proc.wait(timeout=30)
    finally:
        sandbox_server.remove_fault(slow["id"])
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    rerun = _run(env)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out

    r = schema.reels
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.id, r.c.status, r.c.generation_attempts)
                            .where(r.c.character_id == CID)).all()
        ledger = conn.execute(sa.select(schema.credit_ledger.c.reel_id)
                              .where(schema.credit_ledger.c.character_id == CID)).scalars().all()
    assert rows and {status for _, status, _ in rows} == {"published"}
    assert all(attempts == 1 for *_, attempts in rows)
    titles = [e["body"]["title"] for e in sandbox_server.journal("a2e", since)
              if e["path"] == "/api/v1/video/generate"]
    assert sorted(titles) == sorted(f"waifugen-reel-{reel_id}" for reel_id, *_ in rows)
    assert sorted(ledger) == sorted(reel_id for reel_id, *_ in rows)
