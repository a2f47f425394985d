"""Writing one archive, with the facts it is later checked against.

- A PostgreSQL database: `pg_dump -Fc --no-owner` of an exported snapshot, so the row counts
  taken in that same snapshot are exactly what the archive holds. Sequences are not
  transactional: their values are read before pg_dump starts, so the archive's can only be
  the same or higher (the same when nothing was written meanwhile).
- The server's roles: `pg_dumpall --globals-only` (as a non-superuser, who cannot read
  password hashes, with --no-role-passwords).
- A Dagster instance on SQLite (the sandbox): every `*.db` file of its storage copied with
  SQLite's online backup API (each file consistent on its own, WAL included), in a tar.gz.
"""

from __future__ import annotations

import sqlite3
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from waifugen_assets.operations.backup_store import HashingWriter
from waifugen_assets.operations.pg_tools import (
    PgTools,
    ToolError,
    first_error,
    libpq,
    server_version,
    tool_env,
)

# Every schema but PostgreSQL's own (catalogs, TOAST, other sessions' temporary tables).
_TABLES = sa.text(
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1, 2")
_SEQUENCES = sa.text(
    "SELECT schemaname, sequencename, last_value FROM pg_sequences "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
    "AND schemaname !~ '^pg_(toast|temp)' ORDER BY 1, 2")


@dataclass
class Dumped:
    server_version: str
    alembic_revision: str | None
    facts: dict[str, Any] = field(default_factory=dict)


def table_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows of every ordinary and partitioned table outside the system schemas."""
    quote = conn.dialect.identifier_preparer.quote
    return {f"{schema}.{table}": int(conn.execute(sa.text(
                f"SELECT count(*) FROM {quote(schema)}.{quote(table)}"  # noqa: S608 quoted names
            )).scalar_one()) for schema, table in conn.execute(_TABLES).all()}


def sequence_values(conn: sa.Connection) -> dict[str, int | None]:
    """last_value of every sequence (None: never used)."""
    rows = conn.execute(_SEQUENCES).all()
    return {f"{s}.{n}": (int(v) if v is not None else None) for s, n, v in rows}


def alembic_revision(conn: sa.Connection) -> str | None:
    """The Alembic revision (the app's, or Dagster's own storage schema's), if any."""
    if conn.execute(sa.text("SELECT to_regclass('public.alembic_version')")).scalar() is None:
        return None
    return conn.execute(sa.text("SELECT version_num FROM public.alembic_version")).scalar()


def pg_facts(conn: sa.Connection) -> dict[str, Any]:
    return {"tables": table_counts(conn), "sequences": sequence_values(conn)}


def dump_postgres(tools: PgTools, url: str, out: HashingWriter) -> Dumped:
    """pg_dump -Fc of the database at `url` into `out`, and its facts."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                _, version = server_version(conn)
                snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
                sequences = sequence_values(conn)  # before pg_dump reads them (see above)
                revision = alembic_revision(conn)
                uri, env = libpq(url)
                args = [tools.path("pg_dump"), "-Fc", "--no-owner", f"--snapshot={snapshot}",
                        "--dbname", uri]
                proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=tool_env(env))
                errors: list[bytes] = []
                reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()),
                                          daemon=True)
                reader.start()
                try:
                    tables = table_counts(conn)  # same snapshot as the archive
                    while chunk := proc.stdout.read(1024 * 1024):
                        out.write(chunk)
                except BaseException:
                    proc.kill()  # it may be blocked writing to a pipe nobody reads now
                    raise
                finally:
                    code = proc.wait()
                    reader.join(timeout=60)
                if code != 0:
                    raise ToolError("pg_dump failed (exit {}): {}".format(
                        code, first_error(b"".join(errors).decode(errors="replace"))))
    finally:
        engine.dispose()
    return Dumped(version, revision, {"tables": tables, "sequences": sequences})


def dump_globals(tools: PgTools, url: str, out: HashingWriter) -> Dumped:
    """The server's roles (and tablespaces): pg_dumpall --globals-only."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            _, version = server_version(conn)
            superuser = bool(conn.execute(sa.text(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar())
            roles = sorted(conn.execute(sa.text(
                "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_'")).scalars())
    finally:
        engine.dispose()
    uri, env = libpq(url)
    args = [tools.path("pg_dumpall"), "--globals-only", "--dbname", uri]
    if not superuser:  # pg_authid (password hashes) is readable by superusers only
        args.append("--no-role-passwords")
    proc = subprocess.run(args, capture_output=True, env=tool_env(env), timeout=600)
    if proc.returncode != 0:
        raise ToolError(f"pg_dumpall failed (exit {proc.returncode}): "
                        f"{first_error(proc.stderr.decode(errors='replace'))}")
    out.write(proc.stdout)
    return Dumped(version, None, {"tables": {}, "sequences": {}, "roles": roles,
                                  "role_passwords": superuser})


def sqlite_files(base_dir: Path) -> list[Path]:
    return sorted(p for p in base_dir.rglob("*.db") if p.is_file())


def sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY name")]
    return {n: int(conn.execute(
                f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"'  # noqa: S608 quoted
            ).fetchone()[0]) for n in names}


def sqlite_revision(conn: sqlite3.Connection) -> str | None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def dump_sqlite(base_dir: Path, out: HashingWriter) -> Dumped:
    """Every SQLite file of a Dagster storage directory, copied online, as one tar.gz."""
    files = sqlite_files(base_dir)
    if not files:
        raise ToolError(f"no Dagster SQLite storage (*.db) under {base_dir}")
    tables: dict[str, int] = {}
    revision = None
    with tempfile.TemporaryDirectory(prefix="wg-sqlite-") as tmp, \
            tarfile.open(fileobj=out, mode="w|gz") as tar:  # type: ignore[call-overload]
        for src in files:
            rel = src.relative_to(base_dir).as_posix()
            copy = Path(tmp) / "copy.db"
            source = sqlite3.connect(src, timeout=60)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # one step: a consistent copy even while written
                tables.update({f"{rel}:{name}": n for name, n in sqlite_counts(target).items()})
                if rel == "history/runs.db":
                    revision = sqlite_revision(target)
            finally:
                target.close()
                source.close()
            tar.add(copy, arcname=rel)
            copy.unlink()
    return Dumped(f"SQLite {sqlite3.sqlite_version}", revision,
                  {"tables": tables, "sequences": {}, "files": [f.relative_to(base_dir)
                                                                .as_posix() for f in files]})
