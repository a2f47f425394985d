"""`waifugen dev` (make dev): webserver + daemon in sandbox mode; Ctrl-C stops every child."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen[str], deadline_s: float) -> None:
    """Readiness probe: the webserver answers, or the command died (then fail with its log)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "waifugen dev exited early"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready after {deadline_s}s")


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


def test_dev_serves_ui_and_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "devhome"
    ui, sandbox = _free_port(), _free_port()
    env = {**os.environ, "WAIFUGEN_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "waifugen_assets.app.cli", "dev", "--port", str(ui),
         "--sandbox-port", str(sandbox)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{ui}/server_info", proc, 180)
        assert httpx.get(f"http://127.0.0.1:{sandbox}/_sandbox/health").json()["ok"]
        query = '{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }'
        body = httpx.post(f"http://127.0.0.1:{ui}/graphql", json={"query": query}).json()
        assert body["data"]["repositoriesOrError"]["nodes"], body
        assert _processes_using(str(home))  # webserver, daemon, code server, postgres

        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    leftovers = _processes_using(str(home))
    assert leftovers == [], [p.cmdline() for p in leftovers]
    assert proc.returncode == 0
