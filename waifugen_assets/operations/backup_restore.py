"""`waifugen backup restore SET --to TARGET`: one archive of a set restored where the operator
says (docs/runbooks/database-corruption.md).

The checksum gate comes first (backup_verify.check_checksum). Then the target:
- PostgreSQL (app, dagster): a database URL. Created when it does not exist; refused when it
  holds any relation, unless forced (then pg_restore --clean --if-exists restores over it).
  `pg_restore --exit-on-error --single-transaction --no-owner`: all or nothing. The restored
  database is compared with the facts recorded at dump time, as `verify` does.
- SQLite (the sandbox's Dagster storage): a directory (the instance's DAGSTER_HOME); refused
  when it already holds SQLite files, unless forced. Stop Dagster first.
- globals: a database URL of the server whose roles are to be created (psql). Roles that
  exist already are not created again; the archive's ALTER ROLE still sets their attributes
  (and, from a superuser's dump, their passwords) as archived.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from waifugen_assets.core.embedded_pg import to_psycopg2
from waifugen_assets.core.redaction import mask_url
from waifugen_assets.operations import backup_store
from waifugen_assets.operations.backup_dump import sqlite_files, table_counts
from waifugen_assets.operations.backup_manifest import read_manifest
from waifugen_assets.operations.backup_verify import (
    check_checksum,
    compare_facts,
    pg_facts_of,
    pg_restore,
    unpack_sqlite,
)
from waifugen_assets.operations.backups import (
    Archive,
    BackupConfig,
    BackupError,
    BackupSet,
    engine_for_config,
    load_set,
    one_line,
)
from waifugen_assets.operations.pg_tools import (
    PgTools,
    check_major,
    find_tools,
    libpq,
    server_version,
    tool_env,
)


@dataclass
class RestoreReport:
    set_id: str
    database: str
    target: str  # printable (no password)
    differences: list[str]
    created: bool = False
    note: str = ""


def target_relations(url: str) -> int | None:
    """Relations outside the system schemas in the database at `url`; None if there is no
    such database."""
    engine = sa.create_engine(to_psycopg2(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname !~ '^pg_(toast|temp)'")).scalar_one())
    except sa.exc.OperationalError as exc:
        if "does not exist" in str(exc.orig) and "database" in str(exc.orig):
            return None
        raise BackupError(f"cannot connect to the restore target: {one_line(exc.orig)}") \
            from None
    finally:
        engine.dispose()


def create_target(url: str, tools: PgTools) -> None:
    """CREATE DATABASE (from template0) for a target that does not exist yet, through the
    server's `postgres` database."""
    parsed = sa.engine.make_url(to_psycopg2(url))
    admin = sa.create_engine(parsed.set(database="postgres"), poolclass=sa.NullPool,
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            num, version = server_version(conn)
            check_major(tools, num, version, "restore target")
            quoted = conn.dialect.identifier_preparer.quote(parsed.database or "")
            conn.execute(sa.text(f"CREATE DATABASE {quoted} TEMPLATE template0"))
    finally:
        admin.dispose()


def _restore_pg(archive: Archive, path: Path, tools: PgTools, to: str,
                force: bool) -> RestoreReport:
    shown = mask_url(to)
    relations = target_relations(to)
    created = relations is None
    if created:
        create_target(to, tools)
    elif relations and not force:
        raise BackupError(f"restore target {shown} is not empty ({relations} relations): "
                          "refused; --force restores over it (pg_restore --clean --if-exists)")
    else:
        engine = sa.create_engine(to_psycopg2(to), poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                num, version = server_version(conn)
                present = set(table_counts(conn))
        finally:
            engine.dispose()
        check_major(tools, num, version, "restore target")
        # --clean drops only what the archive holds: a table it lacks (a later migration's)
        # would survive beside the restored ones, a database neither old nor new.
        extra = sorted(present - set(archive.facts.get("tables", {})))
        if relations and extra:
            raise BackupError(
                f"restore target {shown} has {len(extra)} table(s) the backup does not "
                f"({', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}): restoring over "
                "it would leave a mix; restore into a new database (docs/runbooks/"
                "database-corruption.md, 3a) or drop them first; nothing was changed")
    pg_restore(tools, path, to_psycopg2(to), clean=bool(relations))
    facts, revision = pg_facts_of(to_psycopg2(to))
    return RestoreReport(archive.set_id, archive.database, shown,
                         compare_facts(archive.facts, facts, archive.alembic_revision,
                                       revision), created)


def _restore_sqlite(archive: Archive, path: Path, to: str, force: bool) -> RestoreReport:
    target = Path(to)
    present = sqlite_files(target) if target.is_dir() else []
    if present and not force:
        raise BackupError(f"restore target {target} already holds {len(present)} SQLite "
                          "files: refused; stop Dagster, then --force replaces them")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=target) as tmp:
        found = unpack_sqlite(path, Path(tmp))  # integrity first, then swap the files in
        for db in sqlite_files(Path(tmp)):
            dest = target / db.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            for stale in ("-wal", "-shm", "-journal"):  # a stale WAL would be replayed
                Path(f"{dest}{stale}").unlink(missing_ok=True)
            os.replace(db, dest)
    return RestoreReport(archive.set_id, archive.database, str(target),
                         compare_facts(archive.facts, found, archive.alembic_revision,
                                       found["revision"]))


def _restore_globals(archive: Archive, path: Path, tools: PgTools, to: str) -> RestoreReport:
    uri, env = libpq(to_psycopg2(to))
    import subprocess

    proc = subprocess.run([tools.path("psql"), "-X", "-q", "--dbname", uri, "-f", str(path)],
                          capture_output=True, text=True, env=tool_env(env), timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if "ERROR:" in ln]
    existing = [ln for ln in errors if "already exists" in ln]
    others = [ln for ln in errors if ln not in existing]
    if proc.returncode != 0 or others:
        raise BackupError(f"psql failed restoring the roles: "
                          f"{one_line(Exception((others or [proc.stderr or 'no message'])[0]))}")
    return RestoreReport(archive.set_id, archive.database, mask_url(to), [],
                         note=f"{len(existing)} role(s) existed already: not created again, "
                         "their attributes set as archived")


def _find(config: BackupConfig, set_id: str, engine: sa.Engine | None,
          from_manifest: bool) -> BackupSet:
    """The set from the `backups` table, or (`from_manifest`: the app database is lost) from
    the manifest beside its archives."""
    if from_manifest:
        return read_manifest(config, set_id)
    own = engine is None
    engine = engine or engine_for_config(config)
    try:
        return load_set(engine, set_id)
    finally:
        if own:
            engine.dispose()


def restore_set(config: BackupConfig, set_id: str, to: str, database: str = "app", *,
                force: bool = False, engine: sa.Engine | None = None,
                from_manifest: bool = False) -> RestoreReport:
    """Restore the `database` archive of set `set_id` into `to` (see the module doc)."""
    archive = _find(config, set_id, engine, from_manifest).archive(database)
    if archive is None:
        raise BackupError(f"backup set {set_id} has no {database} archive")
    if archive.state != "done":
        raise BackupError(f"the {database} archive of set {set_id} is {archive.state}: "
                          "nothing to restore")
    sqlite = archive.location.endswith(".tar.gz")
    tools = None if sqlite else find_tools(config.pg_bin_dir)
    with backup_store.fetched(archive.location, config.s3, config.backup_dir) as path:
        check_checksum(archive, path)  # before the target is even looked at
        if sqlite:
            return _restore_sqlite(archive, path, to, force)
        assert tools is not None
        if database == "globals":
            return _restore_globals(archive, path, tools, to)
        return _restore_pg(archive, path, tools, to, force)


def copy_archive(config: BackupConfig, set_id: str, database: str, dest: Path | BinaryIO,
                 from_manifest: bool = False) -> Path | None:
    """The archive itself, checked, copied to `dest` (a file, a directory or a stream such as
    stdout), for restoring with the tools by hand. The path written, if a file."""
    archive = _find(config, set_id, None, from_manifest).archive(database)
    if archive is None or archive.state != "done":
        raise BackupError(f"backup set {set_id} has no finished {database} archive")
    with backup_store.fetched(archive.location, config.s3, config.backup_dir) as path:
        check_checksum(archive, path)
        if not isinstance(dest, Path):
            with path.open("rb") as f:
                shutil.copyfileobj(f, dest, backup_store.CHUNK)
            dest.flush()
            return None
        out = dest / Path(archive.location).name if dest.is_dir() else dest
        # Whole or not at all, and owner-only: a roles dump holds password hashes.
        with backup_store.write_archive(out) as copy, path.open("rb") as f:
            shutil.copyfileobj(f, copy, backup_store.CHUNK)
    return out
