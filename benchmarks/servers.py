"""Servers the harnesses start as subprocesses on loopback: a free port, readiness by polling a
health URL (never a fixed sleep), the process group stopped afterwards, CPU time read with
psutil."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    command: list[str]
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    def cpu_seconds(self) -> float:
        import psutil

        try:
            proc = psutil.Process(self.process.pid)
            total = sum(proc.cpu_times()[:2])
            for child in proc.children(recursive=True):
                with suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
        except psutil.Error:
            return 0.0
        return total

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait_ready(server: Server, health_path: str) -> None:
    """Poll GET `health_path` until it answers 200 (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    delay = 0.02
    with httpx.Client(timeout=5) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} server exited with {server.process.returncode}"
                                   f" before it was ready:\n{server.log_tail()}")
            with suppress(httpx.HTTPError):
                if client.get(f"{server.url}{health_path}").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} server not ready after {READY_TIMEOUT_S} s:\n"
                                   f"{server.log_tail()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def _stop(server: Server) -> None:
    """Terminate the server's process group and wait for it."""
    if server.process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], port: int,
            workdir: Path, health_path: str = "/healthz") -> Iterator[Server]:
    """`command` in its own process group, its output in workdir/<name>.log; yielded once
    GET `health_path` answers 200 on `port`, and stopped (the whole group) afterwards."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(name, command, f"http://127.0.0.1:{port}", process, log, port)
    try:
        _wait_ready(server, health_path)
        yield server
    finally:
        _stop(server)
