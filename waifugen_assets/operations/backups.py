"""Backups of the app database, the Dagster database and the server's roles (one *set* per
`create`), recorded in the `backups` table with what each archive is later checked against:
its sha256 (computed while it was written), size, server version, Alembic revision, and the
row counts and sequence values at dump time.

The Dagster instance's storage is PostgreSQL in production (deploy/dagster.yaml: the
`dagster` database, from the DAGSTER_PG_* settings); in the sandbox it is SQLite files under
WAIFUGEN_HOME/dagster_home, which are copied with SQLite's backup API instead
(backup_dump.py). Verification and restores: backup_verify.py; retention: backup_retention.py.

Settings read here (BACKUP_DIR, BACKUP_S3_URL, PG_BIN_DIR) go through `backup_setting`, which
takes them from the app's settings table once they are listed there, else the environment.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import Settings
from waifugen_assets.core.embedded_pg import to_psycopg2
from waifugen_assets.operations import backup_store
from waifugen_assets.operations.backup_dump import (
    Dumped,
    dump_globals,
    dump_postgres,
    dump_sqlite,
)
from waifugen_assets.operations.backup_manifest import write_manifest
from waifugen_assets.operations.backup_model import (
    SET_ID_FORMAT,
    Archive,
    BackupConfig,
    BackupError,
    BackupSet,
    DagsterSource,
    one_line,
)
from waifugen_assets.operations.backup_store import S3Target
from waifugen_assets.operations.pg_tools import PgTools, check_major, find_tools
from waifugen_assets.operations.pg_tools import server_version as pg_server_version

# (setting, meaning, default): the lead moves these into core/config.py's SETTINGS.
BACKUP_SETTINGS = (
    ("BACKUP_DIR", "directory backup archives are written to (kept there also when uploaded)",
     "WAIFUGEN_HOME/backups"),
    ("BACKUP_S3_URL", "s3://bucket/prefix to upload backup archives to (S3 or R2; "
     "credentials, endpoint and region from the S3_* settings); unset = local only", None),
    ("PG_BIN_DIR", "directory of the PostgreSQL client tools (pg_dump, pg_restore, "
     "pg_dumpall, psql) of the server's major version", "pgserver's PostgreSQL 16 tools"),
)
T = schema.backups
__all__ = ["SET_ID_FORMAT", "Archive", "BackupConfig", "BackupError", "BackupSet",
           "DagsterSource", "create_backup", "dagster_source", "list_sets", "load_config",
           "load_set", "one_line"]


def dagster_source(instance: Any) -> DagsterSource:
    """The storage of a DagsterInstance (passed in: this module does not import Dagster).
    dagster-postgres storages carry their resolved URL (DAGSTER_PG_* filled in); the default
    SQLite storage lives under its `base_dir` (DAGSTER_HOME unless configured)."""
    url = getattr(instance.run_storage, "postgres_url", None)
    if url:
        return DagsterSource(url=to_psycopg2(url))
    data = getattr(instance.get_ref(), "storage_data", None)
    if data is not None and data.class_name == "DagsterSqliteStorage":
        import yaml

        base = (yaml.safe_load(data.config_yaml) or {}).get("base_dir")
        if isinstance(base, str):
            return DagsterSource(base_dir=Path(base))
    if type(instance.run_storage).__name__ == "SqliteRunStorage":
        return DagsterSource(base_dir=Path(instance.root_directory))
    raise BackupError(f"the Dagster instance's storage ({type(instance.run_storage).__name__}) "
                      "is neither PostgreSQL nor the default SQLite storage: cannot back it up")


def backup_setting(settings: Settings | None, name: str,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """A backup setting: from the settings table when it lists it, else the environment."""
    if settings is not None:
        try:
            return settings.get(name)
        except KeyError:
            pass
    return (os.environ if environ is None else environ).get(name) or None


def load_config(settings: Settings, app_url: str, dagster: DagsterSource | None,
                environ: Mapping[str, str] | None = None) -> BackupConfig:
    """Where and how to back up, from the settings (see BACKUP_SETTINGS)."""
    raw_dir = backup_setting(settings, "BACKUP_DIR", environ)
    s3 = None
    if raw_s3 := backup_setting(settings, "BACKUP_S3_URL", environ):
        bucket, prefix = backup_store.parse_s3_url(raw_s3)
        s3 = S3Target(bucket, prefix, endpoint_url=settings.get("S3_ENDPOINT_URL"),
                      region=settings.get("S3_REGION") or "auto",
                      key_id=settings.get("S3_ACCESS_KEY_ID"),
                      secret=settings.get("S3_SECRET_ACCESS_KEY"))
    return BackupConfig(app_url=to_psycopg2(app_url), dagster=dagster,
                        backup_dir=Path(raw_dir) if raw_dir else settings.home / "backups",
                        s3=s3, pg_bin_dir=backup_setting(settings, "PG_BIN_DIR", environ))


def engine_for_config(config: BackupConfig) -> sa.Engine:
    return sa.create_engine(config.app_url, poolclass=sa.NullPool)


def _archive(row: sa.Row) -> Archive:
    return Archive(**{f: getattr(row, f) for f in Archive.__dataclass_fields__})


def list_sets(engine: sa.Engine, include_pruned: bool = False,
              limit: int | None = None) -> list[BackupSet]:
    """Backup sets, newest first."""
    query = sa.select(T).order_by(T.c.started_at.desc(), T.c.set_id.desc(), T.c.database)
    if not include_pruned:
        query = query.where(T.c.state != "pruned")
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    sets: dict[str, BackupSet] = {}
    for row in rows:
        sets.setdefault(row.set_id, BackupSet(row.set_id, [])).archives.append(_archive(row))
    found = list(sets.values())
    return found[:limit] if limit else found


def load_set(engine: sa.Engine, set_id: str | None = None) -> BackupSet:
    """The set `set_id`, or the newest whose app archive is done; BackupError if none."""
    with engine.connect() as conn:
        if set_id is None:
            set_id = conn.execute(
                sa.select(T.c.set_id).where(T.c.database == "app", T.c.state == "done")
                .order_by(T.c.started_at.desc(), T.c.set_id.desc()).limit(1)).scalar()
            if set_id is None:
                raise BackupError("no finished backup set yet (`waifugen backup create`)")
        rows = conn.execute(sa.select(T).where(T.c.set_id == set_id)
                            .order_by(T.c.database)).all()
    if not rows:
        raise BackupError(f"no backup set {set_id} (`waifugen backup list` shows them)")
    return BackupSet(set_id, [_archive(r) for r in rows])


FILE_NAMES = {"app": "app.dump", "dagster": "dagster.dump", "globals": "globals.sql"}
SQLITE_FILE = "dagster.sqlite.tar.gz"


def _plan(config: BackupConfig) -> list[tuple[str, str]]:
    plan = [("app", FILE_NAMES["app"])]
    if config.dagster is not None:
        plan.append(("dagster", FILE_NAMES["dagster"] if config.dagster.url else SQLITE_FILE))
    if config.include_globals:
        plan.append(("globals", FILE_NAMES["globals"]))
    return plan


def check_tools(config: BackupConfig) -> PgTools:
    """The client tools, refused unless they match every PostgreSQL server to be dumped."""
    tools = find_tools(config.pg_bin_dir)
    urls = [("app database", config.app_url)]
    if config.dagster is not None and config.dagster.url:
        urls.append(("Dagster database", config.dagster.url))
    for what, url in urls:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                num, version = pg_server_version(conn)
        except sa.exc.OperationalError as exc:
            raise BackupError(f"cannot connect to the {what}: {one_line(exc.orig)}") from None
        finally:
            engine.dispose()
        check_major(tools, num, version, what)
    return tools


def _dump(config: BackupConfig, tools: PgTools, database: str,
          out: backup_store.HashingWriter) -> Dumped:
    if database == "app":
        return dump_postgres(tools, config.app_url, out)
    if database == "globals":
        return dump_globals(tools, config.app_url, out)
    assert config.dagster is not None
    if config.dagster.url:
        return dump_postgres(tools, config.dagster.url, out)
    assert config.dagster.base_dir is not None
    return dump_sqlite(config.dagster.base_dir, out)


def create_backup(config: BackupConfig, *, now: dt.datetime | None = None,
                  engine: sa.Engine | None = None) -> BackupSet:
    """Dump the app database, the Dagster database and the roles as one set; each archive's
    row ends `done` (with its checksum and facts) or `failed` (with its error). Raises
    BackupError before writing anything when the tools do not fit or the set exists."""
    started = clock.now() if now is None else now
    set_id = started.astimezone(dt.UTC).strftime(SET_ID_FORMAT)
    tools = check_tools(config)
    own = engine is None
    engine = engine or engine_for_config(config)
    try:
        plan = _plan(config)
        set_dir = config.backup_dir / set_id
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(T), [
                    {"set_id": set_id, "database": db, "state": "running",
                     "location": str(set_dir / name), "started_at": started}
                    for db, name in plan])
        except sa.exc.IntegrityError:
            raise BackupError(f"backup set {set_id} already exists") from None
        _close_interrupted(engine, config, started)
        t0 = time.monotonic()
        for database, name in plan:
            values = _write_one(config, tools, database, set_dir / name, set_id)
            values["finished_at"] = started + dt.timedelta(seconds=time.monotonic() - t0)
            with engine.begin() as conn:
                conn.execute(sa.update(T).where(T.c.set_id == set_id,
                                                T.c.database == database).values(**values))
        made = load_set(engine, set_id)
        if any(a.state == "done" for a in made.archives):
            problem = write_manifest(config, made)  # the catalog, beside the archives
            if problem is not None:  # the set is not where it should be: not ok, and said
                with engine.begin() as conn:
                    conn.execute(sa.update(T).where(
                        T.c.set_id == set_id, T.c.state == "done", T.c.error.is_(None))
                        .values(error=T.c.database + f": manifest not uploaded: {problem}"))
                made = load_set(engine, set_id)
        return made
    finally:
        if own:
            engine.dispose()


INTERRUPTED_AFTER = dt.timedelta(days=1)


def _close_interrupted(engine: sa.Engine, config: BackupConfig, now: dt.datetime) -> None:
    """Archives left `running` a day ago by a process that died: failed, partial files gone."""
    with engine.begin() as conn:
        stale = conn.execute(
            sa.update(T).where(T.c.state == "running", T.c.started_at < now - INTERRUPTED_AFTER)
            .values(state="failed", error="interrupted: the process making it ended first")
            .returning(T.c.location)).scalars().all()
    for location in stale:
        if not location.startswith("s3://"):
            Path(f"{location}.partial").unlink(missing_ok=True)


def _write_one(config: BackupConfig, tools: PgTools, database: str, path: Path,
               set_id: str) -> dict[str, Any]:
    """Write (and upload) one archive; the row's new values, `done` or `failed`. A good
    archive whose upload failed stays `done` where it was written, with the upload's error
    (the set is then not ok): losing the only copy over an S3 outage would be worse."""
    try:
        with backup_store.write_archive(path) as out:
            dumped = _dump(config, tools, database, out)
    except Exception as exc:  # tools, storage, database, disk: recorded on this archive's row
        # No file outlives a failed row (prune only removes finished sets' files).
        path.unlink(missing_ok=True)
        return {"state": "failed", "error": f"{database}: {one_line(exc)}"}
    location, error = str(path), None
    if config.s3 is not None:
        try:
            location = backup_store.upload(config.s3, path, set_id, out.sha256)
        except Exception as exc:
            error = f"{database}: not uploaded, kept at {path} only: {one_line(exc)}"
    return {"state": "done", "location": location, "error": error, "bytes": out.bytes,
            "sha256": out.sha256,
            "server_version": dumped.server_version,
            "alembic_revision": dumped.alembic_revision, "facts": dumped.facts}
