"""PostgreSQL client tools (pg_dump, pg_restore, pg_dumpall, psql) for backups: where they
are, whether their major version matches the server's, and how they are run.

Where: the setting PG_BIN_DIR if set, else pgserver's PostgreSQL 16 build (a dependency: the
embedded sandbox server, the tests and the production image all have it), else the PATH.
A client of another major version than the server is refused in one line naming both: an
older pg_dump aborts on a newer server, and a newer one writes archives that an older
pg_restore cannot read.

Connections: the tools get a libpq URI without the password and the password in PGPASSWORD,
so it never appears in a process listing or an error message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from waifugen_assets.core import redaction

TOOLS = ("pg_dump", "pg_restore", "pg_dumpall", "psql")


class ToolError(RuntimeError):
    """The client tools are missing, of the wrong version, or one of them failed (one line)."""


@dataclass(frozen=True)
class PgTools:
    bin_dir: Path
    version: str  # e.g. "16.2"
    source: str  # where bin_dir came from: "PG_BIN_DIR", "pgserver", "PATH"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def path(self, tool: str) -> str:
        return str(self.bin_dir / tool)


def pgserver_bin_dir() -> Path | None:
    """pgserver's bundled PostgreSQL binaries (found without starting anything)."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.origin:
        return None
    found = Path(spec.origin).parent / "pginstall" / "bin"
    return found if (found / "pg_dump").exists() else None


def find_tools(bin_dir: str | os.PathLike[str] | None = None) -> PgTools:
    """The client tools: `bin_dir` (the PG_BIN_DIR setting) when given, else pgserver's, else
    those on the PATH; each of TOOLS must be there."""
    if bin_dir:
        where, source = Path(bin_dir), "PG_BIN_DIR"
        if not where.is_dir():
            raise ToolError(f"PG_BIN_DIR={where}: no such directory (it should hold pg_dump, "
                            "pg_restore, pg_dumpall and psql of the server's major version)")
    else:
        pgserver = pgserver_bin_dir()
        on_path = shutil.which("pg_dump")
        if pgserver is not None:
            where, source = pgserver, "pgserver"
        elif on_path:
            where, source = Path(on_path).parent, "PATH"
        else:
            raise ToolError("no PostgreSQL client tools: pgserver is not installed and pg_dump "
                            "is not on the PATH; set PG_BIN_DIR")
    missing = [t for t in TOOLS if not os.access(where / t, os.X_OK)]
    if missing:
        raise ToolError(f"{source}={where}: missing {', '.join(missing)} "
                        "(PG_BIN_DIR must hold pg_dump, pg_restore, pg_dumpall and psql)")
    out = subprocess.run([str(where / "pg_dump"), "--version"], capture_output=True,
                         text=True, timeout=30)
    found = re.search(r"(\d+(?:\.\d+)?)", out.stdout)
    if out.returncode != 0 or not found:
        raise ToolError(f"{where / 'pg_dump'} --version failed: "
                        f"{_last_line(out.stderr or out.stdout)}")
    return PgTools(where, found.group(1), source)


def server_version(conn: sa.Connection) -> tuple[int, str]:
    """(server_version_num, server_version), e.g. (160002, "16.2")."""
    num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    text = str(conn.execute(sa.text("SHOW server_version")).scalar_one()).split()[0]
    return num, text


def check_major(tools: PgTools, version_num: int, version: str, what: str) -> None:
    """Refuse a client whose major version differs from the server's (`what`: which one)."""
    major = version_num // 10000
    if tools.major != major:
        raise ToolError(
            f"PostgreSQL client tools {tools.version} ({tools.bin_dir}) do not match the "
            f"{what} server {version}: set PG_BIN_DIR to PostgreSQL {major} client tools "
            f"(docker compose: run them inside the postgres:{major} container)")


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy URL as (libpq URI without the password, environment with PGPASSWORD)."""
    parsed = sa.engine.make_url(url)
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    # URL.set() ignores None: build the URL anew, without the password.
    bare = sa.engine.URL.create("postgresql", username=parsed.username, host=parsed.host,
                                port=parsed.port, database=parsed.database, query=parsed.query)
    return bare.render_as_string(hide_password=False), env


def tool_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The process environment for a tool: this one's, minus libpq variables that would
    override the URI we pass (a PGPASSWORD of another server, say), plus `extra`."""
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith("PG") and k not in ("PGTZ",))}
    return {**base, "PGCONNECT_TIMEOUT": "30", **extra}


def run_tool(tools: PgTools, tool: str, args: list[str], env: Mapping[str, str],
             timeout: float = 3600) -> str:
    """Run a tool to completion; its stdout, or a ToolError naming it and its last stderr
    line (redacted)."""
    proc = subprocess.run([tools.path(tool), *args], capture_output=True, text=True,
                          env=tool_env(env), timeout=timeout)
    if proc.returncode != 0:
        raise ToolError(f"{tool} failed (exit {proc.returncode}): {_last_line(proc.stderr)}")
    return proc.stdout


def first_error(stderr: str) -> str:
    """The line that says what went wrong (pg_restore ends with a summary line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return redaction.redact((errors or lines or ["no message"])[0])


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return redaction.redact(lines[-1] if lines else "no message")
