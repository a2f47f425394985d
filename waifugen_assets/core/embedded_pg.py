"""The embedded PostgreSQL of sandbox mode (pgserver, PostgreSQL 16, data under WAIFUGEN_HOME).

pgserver shares one postmaster between every process that asks for the same data directory and
stops it when the last of them exits, so the CLI, Dagster's webserver, daemon and run workers
can all call `embedded_database_url` and get the same server.
"""

from __future__ import annotations

import atexit
import json
import logging
import warnings
from functools import cache
from pathlib import Path

import psutil
import sqlalchemy as sa

APP_DATABASE = "waifugen"

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


def prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL, crash).

    pgserver stops the server when the last process in its handle list exits, but a killed
    process never removes itself, and the server would then run forever.
    """
    _, PostgresServer = _quietly_import_pgserver()
    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


@cache
def _server(pgdata: Path):  # pgserver's server class is not part of its public API
    pgserver, _ = _quietly_import_pgserver()
    pgdata.mkdir(parents=True, exist_ok=True)
    prune_dead_handles(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    # atexit runs last-registered first: prune before pgserver decides whether we are last.
    atexit.register(prune_dead_handles, pgdata)
    return server


def embedded_server_url(home: Path, database: str = "postgres") -> str:
    """Start (or join) the embedded server and return a URL for `database` on it."""
    return to_psycopg2(_server((home / "pgdata").resolve()).get_uri(database))


def stop_embedded(home: Path) -> None:
    """Stop the embedded server under `home` now, if this process started or joined it
    (otherwise pgserver stops it when the last process using it exits)."""
    pgdata = (home / "pgdata").resolve()
    if pgdata.is_dir():
        _server(pgdata).cleanup()


def ensure_database(server_url: str, name: str) -> None:
    """CREATE DATABASE name unless it exists (PostgreSQL has no IF NOT EXISTS for it)."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def embedded_database_url(home: Path, database: str = APP_DATABASE) -> str:
    ensure_database(embedded_server_url(home), database)
    return embedded_server_url(home, database)
