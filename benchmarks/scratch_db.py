"""A throwaway PostgreSQL database for the DM benchmarks, made the way tests/conftest.py makes one.

The server is `--server-url` when given (any PostgreSQL the harness may CREATE DATABASE on),
else TEST_DATABASE_URL, else an embedded pgserver (PostgreSQL 16) in a temporary directory that
is removed afterwards, so a benchmark never touches `.waifugen/`. The database is migrated to
head with `waifugen_assets.core.migrate.upgrade` and dropped on exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from waifugen_assets.core import migrate
from waifugen_assets.core.embedded_pg import embedded_server_url, stop_embedded, to_psycopg2

# The benchmarks' one character: a fictional adult, as the roster requires.
CHARACTER = {"id": "bench-dms", "name": "Bench", "persona": "a friendly streamer", "age": 25,
             "timezone": "Asia/Tokyo"}


@contextmanager
def server(server_url: str | None = None) -> Iterator[tuple[str, str]]:
    """(URL of a database we may run CREATE DATABASE from, where it is: for the report)."""
    url = server_url or os.environ.get("TEST_DATABASE_URL")
    if url:
        yield to_psycopg2(url), "given server"
        return
    home = Path(tempfile.mkdtemp(prefix="wg-bench-pg-"))
    try:
        yield embedded_server_url(home), "embedded pgserver (PostgreSQL 16) in a temp dir"
    finally:
        stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)


def _admin(server_url: str) -> sa.Engine:
    return sa.create_engine(server_url, isolation_level="AUTOCOMMIT")


@contextmanager
def database(server_url: str, prefix: str) -> Iterator[str]:
    """A fresh database at migration head with the benchmark character; dropped afterwards."""
    name = f"wg_{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO characters (id, name, persona, age, timezone) "
                "VALUES (:id, :name, :persona, :age, :timezone)"), CHARACTER)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(sa.text("SHOW server_version"))).split(" ")[0]
