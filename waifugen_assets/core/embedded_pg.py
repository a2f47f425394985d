"""The embedded PostgreSQL of sandbox mode (pgserver, PostgreSQL 16, data under WAIFUGEN_HOME).

pgserver shares one postmaster between every process that asks for the same data directory and
stops it when the last of them exits, so the CLI, Dagster's webserver, daemon and run workers
can all call `embedded_database_url` and get the same server.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import sqlalchemy as sa

APP_DATABASE = "waifugen"
# psutil derives create_time from the boot time in whole seconds: allow for that rounding.
_PID_REUSE_SLACK_S = 2.0

_lock = threading.Lock()
_servers: dict[Path, object] = {}  # data directory -> the pgserver handle this process holds
_ensured: set[tuple[str, str]] = set()  # (server URL, database) known to exist

logging.getLogger("pgserver").setLevel(logging.WARNING)


def to_psycopg2(url: str) -> str:
    """SQLAlchemy 2.1 maps `postgresql://` to psycopg 3; this project uses psycopg2 throughout."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _quietly_import_pgserver():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); /tmp is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.postgres_server import PostgresServer
    return pgserver, PostgresServer


def handle_alive(pid: int, listed_at: float) -> bool:
    """Whether a pid in pgserver's handle list (last written at `listed_at`) is a live user.

    A killed process whose parent died too stays a zombie where PID 1 does not reap orphans
    (containers): `psutil.pid_exists` still says yes, but it will never let go of its handle.
    A process created after the list was last written is a reused pid, not the one listed."""
    try:
        proc = psutil.Process(pid)
        return (proc.status() != psutil.STATUS_ZOMBIE
                and proc.create_time() <= listed_at + _PID_REUSE_SLACK_S)
    except psutil.NoSuchProcess:  # ZombieProcess is one too
        return False
    except psutil.AccessDenied:  # someone else's process: it may be using the server
        return True


def prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL, crash).

    pgserver stops the server when the last process in its handle list exits, but a killed
    process never removes itself, and the server would then run forever.
    """
    _, PostgresServer = _quietly_import_pgserver()
    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            listed_at = handles.stat().st_mtime
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if handle_alive(pid, listed_at)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _server(pgdata: Path):  # pgserver's server class is not part of its public API
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            pgserver, _ = _quietly_import_pgserver()
            pgdata.mkdir(parents=True, exist_ok=True)
            prune_dead_handles(pgdata)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = pgserver.get_server(pgdata, cleanup_mode="stop")
            # atexit runs last-registered first: prune before pgserver decides whether we
            # are the last user.
            atexit.register(prune_dead_handles, pgdata)
            _servers[pgdata] = server
        return server


def embedded_server_url(home: Path, database: str = "postgres") -> str:
    """Start (or join) the embedded server and return a URL for `database` on it."""
    return to_psycopg2(_server((home / "pgdata").resolve()).get_uri(database))


def stop_embedded(home: Path) -> None:
    """Let go of the embedded server under `home` if this process started or joined it: it
    stops now unless another live process still uses it (then the last of them stops it)."""
    pgdata = (home / "pgdata").resolve()
    with _lock:
        server = _servers.pop(pgdata, None)
        _ensured.clear()
    if server is None:
        return
    prune_dead_handles(pgdata)
    server.cleanup()
    # pgserver keeps the handle object while others use the server; a later start in this
    # process must register itself again.
    _, PostgresServer = _quietly_import_pgserver()
    PostgresServer._instances.pop(pgdata, None)


@contextlib.contextmanager
def advisory_lock(conn: sa.Connection, key: str, poll_s: float = 0.1) -> Iterator[None]:
    """Hold the lock `key` on `conn` (autocommit), waiting for it: one process at a time,
    across every process using the database. Released with the block, or when the session
    ends however the process ends.

    Waiting is a try every `poll_s`, not a blocking pg_advisory_lock: a statement blocked on
    the lock would itself block the holder's CREATE INDEX CONCURRENTLY (it waits for every
    running statement of the database), a deadlock PostgreSQL cannot see."""
    try_lock = sa.text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
    while not conn.execute(try_lock, {"key": key}).scalar_one():
        time.sleep(poll_s)
    try:
        yield
    finally:
        conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"),
                     {"key": key})


def ensure_database(server_url: str, name: str) -> None:
    """CREATE DATABASE name unless it exists (PostgreSQL has no IF NOT EXISTS for it).

    Processes starting at once on a fresh server (two `make run`s, `make dev` and its code
    server) would both see it missing and one CREATE would fail: they take turns."""
    if (server_url, name) in _ensured:
        return
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn, advisory_lock(conn, f"waifugen:create-database:{name}"):
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    _ensured.add((server_url, name))


def embedded_database_url(home: Path, database: str = APP_DATABASE) -> str:
    ensure_database(embedded_server_url(home), database)
    return embedded_server_url(home, database)
