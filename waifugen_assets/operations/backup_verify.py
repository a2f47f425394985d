"""Checking and restoring backups. The checksum comes first, always: an archive whose sha256
(or size) differs from the one recorded when it was written is refused before anything is
restored, in one line naming the archive and both checksums.

`verify_set` restores each PostgreSQL archive into a scratch database (`wg_verify_...`,
dropped afterwards), compares its row counts, Alembic revision and sequence values with the
facts recorded at dump time, and records `verified_at` and `verify_result` on the row
(`{"ok": true|false, "stage": ..., ...}`). SQLite archives (the sandbox's Dagster storage) are
unpacked into a temporary directory and checked with `PRAGMA integrity_check`; the roles
archive must create every role recorded.

Restoring into a database the operator names: backup_restore.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from waifugen_assets.core import clock, schema
from waifugen_assets.core.embedded_pg import to_psycopg2
from waifugen_assets.operations import backup_store
from waifugen_assets.operations.backup_dump import (
    alembic_revision,
    sequence_values,
    sqlite_counts,
    sqlite_revision,
    table_counts,
)
from waifugen_assets.operations.backups import (
    Archive,
    BackupConfig,
    BackupError,
    engine_for_config,
    load_set,
    one_line,
)
from waifugen_assets.operations.pg_tools import (
    PgTools,
    ToolError,
    check_major,
    find_tools,
    libpq,
    run_tool,
    server_version,
)

T = schema.backups


class ChecksumMismatch(BackupError):
    """The archive is not the one that was written: nothing was restored from it."""


@dataclass
class ArchiveCheck:
    database: str
    ok: bool
    detail: str
    result: dict[str, Any] = field(default_factory=dict)


def check_checksum(archive: Archive, path: Path) -> None:
    """Refuse an archive that is not byte for byte the one written (ChecksumMismatch)."""
    size, sha = backup_store.hash_file(path)
    if sha != archive.sha256 or size != archive.bytes:
        raise ChecksumMismatch(
            f"archive {archive.location}: sha256 {sha} ({size} bytes) does not match the "
            f"recorded sha256 {archive.sha256} ({archive.bytes} bytes); refused, nothing "
            "was restored from it")


def compare_facts(recorded: dict[str, Any], actual: dict[str, Any],
                  revision: str | None, actual_revision: str | None) -> list[str]:
    """What differs between the facts recorded at dump time and a restored copy. Sequences
    may be ahead (they are read before pg_dump starts and are not transactional), never
    behind."""
    diffs = []
    if revision != actual_revision:
        diffs.append(f"alembic revision {actual_revision}, recorded {revision}")
    want, got = recorded.get("tables", {}), actual.get("tables", {})
    for name in sorted(set(want) | set(got)):
        if want.get(name) != got.get(name):
            diffs.append(f"table {name}: {got.get(name, 'missing')} rows, recorded "
                         f"{want.get(name, 'none')}")
    want_seq, got_seq = recorded.get("sequences", {}), actual.get("sequences", {})
    for name in sorted(set(want_seq) | set(got_seq)):
        w, g = want_seq.get(name), got_seq.get(name)
        if name not in got_seq or name not in want_seq or (w is not None and (g or 0) < w):
            diffs.append(f"sequence {name}: {g if name in got_seq else 'missing'}, recorded "
                         f"{w if name in want_seq else 'none'}")
    return diffs


def pg_facts_of(url: str) -> tuple[dict[str, Any], str | None]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return ({"tables": table_counts(conn), "sequences": sequence_values(conn)},
                    alembic_revision(conn))
    finally:
        engine.dispose()


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(to_psycopg2(url), poolclass=sa.NullPool,
                            isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def scratch_database(server_url: str, tools: PgTools, label: str) -> Iterator[str]:
    """A new empty database (from template0) on the server of `server_url`, dropped after."""
    name = f"wg_verify_{label}_{secrets.token_hex(3)}"[:63].lower()
    admin = _admin(server_url)
    try:
        with admin.connect() as conn:
            num, version = server_version(conn)
            check_major(tools, num, version, "scratch")
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
        try:
            yield sa.engine.make_url(to_psycopg2(server_url)).set(database=name) \
                .render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pg_restore(tools: PgTools, path: Path, url: str, clean: bool = False) -> None:
    uri, env = libpq(url)
    args = ["--exit-on-error", "--single-transaction", "--no-owner"]
    if clean:
        args += ["--clean", "--if-exists"]
    run_tool(tools, "pg_restore", [*args, "--dbname", uri, str(path)], env)


def _check_pg(archive: Archive, path: Path, tools: PgTools, server_url: str,
              label: str) -> ArchiveCheck:
    with scratch_database(server_url, tools, label) as url:
        pg_restore(tools, path, url)
        facts, revision = pg_facts_of(url)
    diffs = compare_facts(archive.facts, facts, archive.alembic_revision, revision)
    tables, seqs = len(facts["tables"]), len(facts["sequences"])
    detail = (f"restored into a scratch database: {tables} tables, {seqs} sequences, "
              f"revision {revision}" + (f"; differs: {'; '.join(diffs)}" if diffs else ""))
    return ArchiveCheck(archive.database, not diffs, detail,
                        {"stage": "compare", "tables": tables, "sequences": seqs,
                         "rows": sum(facts["tables"].values()), "differences": diffs})


def unpack_sqlite(path: Path, dest: Path) -> dict[str, Any]:
    """Unpack a SQLite archive; its files' integrity and row counts (BackupError if bad)."""
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    tables: dict[str, int] = {}
    revision = None
    for db in sorted(dest.rglob("*.db")):
        rel = db.relative_to(dest).as_posix()
        conn = sqlite3.connect(db)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{rel}: integrity_check says {check}")
            tables.update({f"{rel}:{n}": c for n, c in sqlite_counts(conn).items()})
            if rel == "history/runs.db":
                revision = sqlite_revision(conn)
        finally:
            conn.close()
    return {"tables": tables, "sequences": {}, "revision": revision}


def _check_sqlite(archive: Archive, path: Path, work_dir: Path) -> ArchiveCheck:
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=work_dir) as tmp:
        found = unpack_sqlite(path, Path(tmp))
    diffs = compare_facts(archive.facts, found, archive.alembic_revision, found["revision"])
    n = len(archive.facts.get("files", []))
    return ArchiveCheck(archive.database, not diffs,
                        f"{n} SQLite files intact, {len(found['tables'])} tables"
                        + (f"; differs: {'; '.join(diffs)}" if diffs else ""),
                        {"stage": "compare", "files": n, "differences": diffs})


def _check_globals(archive: Archive, path: Path) -> ArchiveCheck:
    text = path.read_text(encoding="utf-8", errors="replace")
    missing = [r for r in archive.facts.get("roles", [])
               if f"CREATE ROLE {r};" not in text and f'CREATE ROLE "{r}";' not in text]
    detail = (f"{len(archive.facts.get('roles', []))} roles"
              + (f"; missing: {', '.join(missing)}" if missing else ""))
    return ArchiveCheck(archive.database, not missing, detail,
                        {"stage": "compare", "missing_roles": missing})


def _check_one(config: BackupConfig, archive: Archive, tools: PgTools | None,
               scratch_url: str) -> ArchiveCheck:
    if archive.state != "done":
        return ArchiveCheck(archive.database, False, f"not verified: the archive is "
                            f"{archive.state}" + (f" ({archive.error})" if archive.error else ""),
                            {"stage": "state"})
    try:
        with backup_store.fetched(archive.location, config.s3, config.backup_dir) as path:
            check_checksum(archive, path)  # before anything reads the archive's contents
            if archive.database == "globals":
                return _check_globals(archive, path)
            if archive.location.endswith(".tar.gz"):
                return _check_sqlite(archive, path, config.backup_dir)
            assert tools is not None
            return _check_pg(archive, path, tools, scratch_url,
                             f"{archive.set_id}_{archive.database}")
    except ChecksumMismatch as exc:
        return ArchiveCheck(archive.database, False, str(exc), {"stage": "checksum"})
    except (BackupError, ToolError, backup_store.StoreError, sa.exc.SQLAlchemyError,
            OSError, tarfile.TarError, sqlite3.Error) as exc:
        return ArchiveCheck(archive.database, False, one_line(exc), {"stage": "restore"})


def verify_set(config: BackupConfig, set_id: str | None = None, *,
               now: dt.datetime | None = None, scratch_url: str | None = None,
               engine: sa.Engine | None = None) -> tuple[str, list[ArchiveCheck]]:
    """Verify every archive of a set (default: the newest finished one); record the outcome
    on each row. Returns (set_id, one check per archive)."""
    own = engine is None
    engine = engine or engine_for_config(config)
    try:
        backup_set = load_set(engine, set_id)
        if not any(a.state == "done" for a in backup_set.archives):
            states = ", ".join(f"{a.database} {a.state}" for a in backup_set.archives)
            raise BackupError(f"backup set {backup_set.set_id} has nothing to verify ({states})")
        needs_pg = any(a.state == "done" and a.database != "globals"
                       and not a.location.endswith(".tar.gz") for a in backup_set.archives)
        tools = find_tools(config.pg_bin_dir) if needs_pg else None
        checks = []
        for archive in backup_set.archives:
            check = _check_one(config, archive, tools, scratch_url or config.app_url)
            when = clock.now() if now is None else now
            result = {"ok": check.ok, "detail": check.detail, "location": archive.location,
                      "checked_at": when.isoformat(), **check.result}
            with engine.begin() as conn:
                conn.execute(sa.update(T).where(T.c.set_id == backup_set.set_id,
                                                T.c.database == archive.database)
                             .values(verified_at=when, verify_result=result))
            checks.append(check)
        return backup_set.set_id, checks
    finally:
        if own:
            engine.dispose()


def last_passing_verify(config: BackupConfig, engine: sa.Engine | None = None
                        ) -> dt.datetime | None:
    """When a restore drill last passed (any archive's newest passing verification)."""
    own = engine is None
    engine = engine or engine_for_config(config)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(T.c.verified_at)).where(
                T.c.verify_result["ok"].as_boolean().is_(True))).scalar()
    finally:
        if own:
            engine.dispose()
