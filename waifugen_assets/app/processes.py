"""Processes the CLI starts and stops: this home's sandbox server, and Dagster's process group.

One sandbox server process per WAIFUGEN_HOME, shared by every `waifugen run` and `dev` on it
and stopped by the last of them to leave (as pgserver shares the embedded PostgreSQL). Its
port is remembered in the home, so the URLs the app database stores stay valid from one start
to the next, and a port taken by someone else (another checkout's `make dev`) is not fatal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from waifugen_assets.core.config import SANDBOX_DEFAULT_PORT, ConfigError, project_root

SANDBOX_REGISTRY = "sandbox.json"  # {"port": P, "server": [pid, created], "users": [...]}
SANDBOX_START_TIMEOUT_S = 120.0


def home_sandbox_url(home: Path) -> str | None:
    """The URL of this home's sandbox if a process serves it now (reads only: the registry
    is replaced whole, never written in place)."""
    registry = _read_registry(home)
    server = registry.get("server")
    return f"http://127.0.0.1:{registry['port']}" if server and _running(server) else None


@contextlib.contextmanager
def home_sandbox(home: Path, seed: int, port: int | None = None) -> Iterator[str]:
    """Use this home's sandbox: the one a process serves already (whatever `port` says),
    else one started now and stopped when the last process using it leaves.

    `port` (0 = any free port) is used as given, or the start fails in one line. Without it
    the home's remembered port is used, else SANDBOX_DEFAULT_PORT; when that is taken by
    someone else (another checkout's `make dev`), a free port, remembered from then on."""
    me = _identity(psutil.Process())
    with _home_lock(home):
        registry = _read_registry(home)
        server = registry.get("server")
        if not (server and _running(server) and _healthy(registry["port"])):
            if server and _running(server):  # alive but not answering: replace it
                _stop_process(server)
            registry["port"], registry["server"] = _start_sandbox(home, seed, port,
                                                                  registry.get("port"))
        registry["users"] = [u for u in registry.get("users", []) if _running(u)] + [me]
        _write_registry(home, registry)
    try:
        yield f"http://127.0.0.1:{registry['port']}"
    finally:
        with _home_lock(home):
            registry = _read_registry(home)
            registry["users"] = [u for u in registry.get("users", [])
                                 if u != me and _running(u)]
            if not registry["users"] and registry.get("server"):
                _stop_process(registry["server"])
                registry["server"] = None
            _write_registry(home, registry)


def _start_sandbox(home: Path, seed: int, requested: int | None,
                   remembered: int | None) -> tuple[int, list[float]]:
    # Without a request: the home's port, else a free one (its port is someone else's now).
    candidates = ([requested] if requested is not None
                  else [remembered or SANDBOX_DEFAULT_PORT, 0])
    for wanted in candidates:
        port = wanted or _free_port()
        if not port_free(port):
            if requested is not None:
                raise ConfigError(f"cannot start the sandbox on 127.0.0.1:{port}: the port is "
                                  "in use (choose another with --sandbox-port, 0 = any free)")
            continue
        if wanted != candidates[0]:
            print(f"sandbox: 127.0.0.1:{candidates[0]} is in use (another checkout's sandbox?);"
                  f" this home's sandbox uses 127.0.0.1:{port} from now on")
        return port, _spawn_sandbox(home, seed, port)
    raise AssertionError("unreachable: the last candidate is a free port")


def _spawn_sandbox(home: Path, seed: int, port: int) -> list[float]:
    """`python -m sandbox` in a session of its own (Ctrl-C in the terminal is for us, and we
    stop it), ready when it listens on `port` and answers."""
    from waifugen_assets.app.sandbox_seeding import configure_sandbox_world

    log_path = home / "sandbox.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--port", str(port), "--state-dir",
             str(home / "sandbox"), "--seed", str(seed)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=project_root(), start_new_session=True)
    _children[proc.pid] = proc
    deadline = time.monotonic() + SANDBOX_START_TIMEOUT_S
    while not (_listens(proc.pid, port) and _healthy(port)):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            _children.pop(proc.pid, None)
            lines = log_path.read_text(errors="replace").strip().splitlines() or ["no output"]
            raise ConfigError(f"the sandbox did not start on 127.0.0.1:{port}: {lines[-1]} "
                              f"(log: {log_path})")
        time.sleep(0.1)  # polling a child's readiness: nothing to wait on instead
    configure_sandbox_world(f"http://127.0.0.1:{port}")
    return _identity(psutil.Process(proc.pid))


_children: dict[int, subprocess.Popen[bytes]] = {}  # sandboxes this process started


def _identity(proc: psutil.Process) -> list[float]:
    """[pid, creation time]: a pid alone may be reused by an unrelated process."""
    return [proc.pid, proc.create_time()]


def _running(identity: list[float]) -> bool:
    """Alive, and the same process (a zombie is dead: PID 1 may never reap it here)."""
    try:
        proc = psutil.Process(int(identity[0]))
        return (abs(proc.create_time() - identity[1]) < 0.5
                and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _stop_process(identity: list[float], grace_s: float = 15.0) -> None:
    """SIGTERM (the sandbox shuts down cleanly), SIGKILL after `grace_s`; reaped if ours."""
    pid = int(identity[0])
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if not _running(identity):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while _running(identity) and time.monotonic() < deadline:
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:
        child.wait()


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """One process at a time changes the home's sandbox registry; released by the kernel
    however the holder ends."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "sandbox.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read_registry(home: Path) -> dict:
    try:
        return json.loads((home / SANDBOX_REGISTRY).read_text())
    except (OSError, ValueError):
        return {}


def _write_registry(home: Path, registry: dict) -> None:
    partial = home / f".{SANDBOX_REGISTRY}.{os.getpid()}"
    partial.write_text(json.dumps(registry))
    os.replace(partial, home / SANDBOX_REGISTRY)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listens(pid: int, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in psutil.Process(pid).net_connections("tcp"))
    except psutil.Error:
        return False


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=5,
                         trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def stop_process_group(child: subprocess.Popen[bytes], grace_s: float = 15.0,
                       settle_s: float = 30.0) -> None:
    """SIGINT the child's group (what Ctrl-C does), SIGKILL whatever is left of it after
    `grace_s`, and return once no process of the group runs any more, so what they held
    (pgserver handles) can be pruned. `dagster dev` started from a script ignores SIGTERM,
    hence the group and SIGINT."""
    group = child.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # stragglers: run workers, a stuck code server
    child.wait()
    deadline = time.monotonic() + settle_s
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL takes effect at once, the exits take a moment


def _group_members(group: int) -> list[int]:
    """Running processes of a process group (zombies excluded: orphans are never reaped
    where PID 1 does not reap, and they hold nothing)."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError):
            if (os.getpgid(proc.pid) == group
                    and proc.info["status"] != psutil.STATUS_ZOMBIE):
                members.append(proc.pid)
    return members
