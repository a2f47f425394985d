"""What the backup tests share: a config on the test server with pgserver's PostgreSQL 16
tools, seeded rows with sequences moved on, real Dagster instances (SQLite as in the sandbox,
PostgreSQL as in production) with a run in them, and the databases a set was restored into."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.core.config import project_root
from waifugen_assets.operations.backups import BackupConfig, DagsterSource
from waifugen_assets.operations.pg_tools import pgserver_bin_dir

PG_BIN = pgserver_bin_dir()
assert PG_BIN is not None, "pgserver's PostgreSQL binaries are missing (pip install pgserver)"
NOW = dt.datetime(2026, 12, 5, 6, 0, 7, tzinfo=dt.UTC)
# A server nobody listens on (a socket directory that does not exist): anything that tried
# to create a scratch database there would fail with a connection error, not a checksum one.
NOWHERE = f"postgresql+psycopg2://postgres@/postgres?host=/nonexistent-{uuid.uuid4().hex}"


def make_config(db_url: str, tmp_path: Path, dagster: DagsterSource | None = None,
                **kw: object) -> BackupConfig:
    return BackupConfig(app_url=db_url, dagster=dagster, backup_dir=tmp_path / "backups",
                        pg_bin_dir=str(PG_BIN), **kw)  # type: ignore[arg-type]


def seed(engine: sa.Engine) -> None:
    """Rows in a few tables, some deleted again, and sequences moved past the rows."""
    cred = schema.credentials
    with engine.begin() as conn:
        conn.execute(sa.insert(cred), [{"name": f"tiktok:c{i}", "kind": "oauth_token"}
                                       for i in range(7)])
        conn.execute(sa.delete(cred).where(cred.c.name.in_(["tiktok:c1", "tiktok:c4"])))
        conn.execute(sa.text("SELECT setval('alerts_id_seq', 4242)"))


def sequence_next(url: str, name: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            return int(conn.execute(sa.text("SELECT nextval(:s)"), {"s": name}).scalar_one())
    finally:
        engine.dispose()


def rows(url: str, table: sa.Table) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]
    finally:
        engine.dispose()


def databases_like(server_url: str, prefix: str) -> list[str]:
    engine = sa.create_engine(server_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT datname FROM pg_database WHERE starts_with(datname, :p)"),
                {"p": prefix}).scalars())
    finally:
        engine.dispose()


@dg.asset
def tiny() -> int:
    return 1


def run_something(instance: dg.DagsterInstance) -> str:
    """One real run in the instance: runs, event logs, an asset materialization."""
    result = dg.materialize([tiny], instance=instance)
    assert result.success
    return result.run_id


def sqlite_instance(home: Path) -> dg.DagsterInstance:
    """A Dagster instance as the sandbox makes it: deploy/dagster.sandbox.yaml, SQLite."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project_root() / "deploy" / "dagster.sandbox.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def postgres_instance(home: Path, url: str) -> dg.DagsterInstance:
    """A Dagster instance on dagster-postgres storage; its URL comes from the environment
    ({env: ...}), as deploy/dagster.yaml's settings do."""
    home.mkdir(parents=True, exist_ok=True)
    variable = f"WG_TEST_DAGSTER_URL_{uuid.uuid4().hex[:8]}"
    os.environ[variable] = url
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {{env: {variable}}}\n"
        "telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))
