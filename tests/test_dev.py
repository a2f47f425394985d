"""`waifugen dev` (make dev): webserver + daemon in sandbox mode, one roster run, and Ctrl-C
stops every process it started, the embedded PostgreSQL too, on a loaded machine and when a
child holding the database had to be SIGKILLed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

DEADLINE_S = 300  # everything is slow with every core busy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, ready: Callable[[], Any], proc: subprocess.Popen[str]) -> Any:
    """Readiness probe: `ready()` returns something truthy, or the command died."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"waifugen dev exited early ({proc.returncode})"
        try:
            result = ready()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {DEADLINE_S}s")


def _processes_using(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(p.info["cmdline"] or []) + str(p.info["environ"] or "")
        except (psutil.Error, TypeError):
            continue
        if marker in text and p.pid != os.getpid():
            found.append(p)
    return found


def _left_running(marker: str, grace_s: float = 60.0) -> list[psutil.Process]:
    """Processes still using `marker` once those already on their way out have gone: a
    process's multiprocessing resource tracker (dbt's Manifest takes a spawn-context Lock
    when the definitions load) ends by itself when its parent has exited, but a moment
    later, and later still with every core busy. Something really left behind (PostgreSQL,
    the sandbox, a code server) is still there after `grace_s`."""
    deadline = time.monotonic() + grace_s
    while (left := _processes_using(marker)) and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=1)  # returns as soon as they exit
    return left


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """Every core busy (and one more): shutdowns get slow, the dagster dev children miss
    their grace and are SIGKILLed, as on a loaded CI machine."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range((os.cpu_count() or 1) + 1)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def _graphql(ui: int, query: str) -> dict[str, Any]:
    body = httpx.post(f"http://127.0.0.1:{ui}/graphql", json={"query": query}, timeout=30).json()
    assert "errors" not in body, body
    return body["data"]


ROSTER_TICKS = """{ sensorOrError(sensorSelector: {repositoryLocationName: "waifugen",
    repositoryName: "__repository__", sensorName: "roster"}) {
  ... on Sensor { sensorState { ticks(limit: 5) { status runIds } } } } }"""
ROSTER_RUNS = """{ runsOrError(filter: {pipelineName: "roster"}) {
  ... on Runs { results { runId } } } }"""


def _roster_tick_done(ui: int) -> list[dict[str, Any]]:
    ticks = _graphql(ui, ROSTER_TICKS)["sensorOrError"]["sensorState"]["ticks"]
    return [t for t in ticks if t["status"] in ("SUCCESS", "SKIPPED", "FAILURE")]


def _child_holding_the_database(home: Path, cli: subprocess.Popen[str]) -> int | None:
    """A process `waifugen dev` started that joined the embedded PostgreSQL (the code server
    evaluating sensors): it is in pgserver's handle list."""
    try:
        handles = json.loads((home / "pgdata" / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return None
    children = {c.pid for c in psutil.Process(cli.pid).children(recursive=True)}
    return next((pid for pid in handles if pid in children), None)


def test_dev_serves_ui_and_stops_everything(tmp_path: Path, busy_machine: None) -> None:
    home = tmp_path / "devhome"
    ui, sandbox = _free_port(), _free_port()
    env = {**os.environ, "WAIFUGEN_HOME": str(home)}
    log = tmp_path / "dev.log"  # a file, not a pipe: nobody reads a pipe while we wait
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "waifugen_assets.app.cli", "dev", "--port", str(ui),
             "--sandbox-port", str(sandbox)],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for("the UI", lambda: httpx.get(f"http://127.0.0.1:{ui}/server_info",
                                              timeout=5).status_code == 200, proc)
        assert httpx.get(f"http://127.0.0.1:{sandbox}/_sandbox/health").json()["ok"]
        query = '{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }'
        assert _graphql(ui, query)["repositoriesOrError"]["nodes"]
        assert _processes_using(str(home))  # webserver, daemon, code server, postgres

        # The roster was loaded once, by `waifugen dev` itself: the roster sensor's first
        # tick finds that run for the file's version and asks for no second one.
        ticks = _wait_for("a roster sensor tick", lambda: _roster_tick_done(ui), proc)
        assert all(t["status"] != "FAILURE" for t in ticks), ticks
        assert len(_graphql(ui, ROSTER_RUNS)["runsOrError"]["results"]) == 1

        # A child holding a handle on the embedded PostgreSQL hangs (SIGSTOP), so the
        # shutdown outlasts its grace and the child is SIGKILLed: it never lets go of its
        # handle, and until PID 1 reaps it (slowly in containers, or never) it is a zombie
        # that still "exists".
        victim = _wait_for("a child on the database",
                           lambda: _child_holding_the_database(home, proc), proc)
        psutil.Process(victim).suspend()

        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:  # a failed test must not leave the stack behind
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
            os.killpg(proc.pid, signal.SIGKILL)
    leftovers = _left_running(str(home))
    assert leftovers == [], [p.cmdline() for p in leftovers]
    assert proc.returncode == 0, log.read_text()[-3000:]
