"""Run the dbt project against a test database, the way the tests and benchmarks need it.

`dbt_build(db_url, work_dir, ...)` runs `dbt <command>` in a subprocess with the profile's
DBT_PG_* variables taken from the database URL, and the target/log paths under `work_dir`
(never inside the checkout). Returns the completed process; callers assert on returncode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "dbt_analytics"
VENV_BIN = Path(sys.executable).parent


def dbt_env(db_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a dbt subprocess: no inherited DBT_*, the venv's bin on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
               DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")
    if db_url is not None:
        url = make_url(db_url)
        env.update(
            DBT_PG_HOST=str(url.query.get("host") or url.host or "127.0.0.1"),
            DBT_PG_PORT=str(url.port or 5432), DBT_PG_USER=url.username or "postgres",
            DBT_PG_PASSWORD=url.password or "", DBT_PG_DBNAME=str(url.database))
    env.update(extra)
    return env


def run_dbt(args: list[str], work_dir: Path, env: dict[str, str],
            timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dbt", *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs")],
        env=env, cwd=work_dir, capture_output=True, text=True, timeout=timeout,
    )


def dbt_build(db_url: str, work_dir: Path, *, select: str | None = None,
              dbt_vars: dict[str, Any] | None = None, full_refresh: bool = False,
              command: str = "build", schema: str = "analytics") -> subprocess.CompletedProcess:
    """`dbt build` (models and their data tests) into `schema` of the database at db_url."""
    args = [command]
    if select:
        args += ["--select", select]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    if full_refresh:
        args.append("--full-refresh")
    return run_dbt(args, work_dir, dbt_env(db_url, DBT_PG_SCHEMA=schema))


def failure_text(proc: subprocess.CompletedProcess) -> str:
    """The end of dbt's output, for an assertion message."""
    return (proc.stdout[-6000:] + proc.stderr[-2000:])


@contextmanager
def built_database(pg_server_url: str, template_db: str, prefix: str,
                   seed: Callable[[sa.Engine], None], work_dir: Path) -> Iterator[str]:
    """A database of its own (a copy of the migrated template), seeded by `seed`, with the
    whole dbt project built once (models and their tests: a selection would also pick tests
    of models it does not build); dropped afterwards. Yields its URL."""
    from conftest import create_database, drop_database

    name = f"wg_{prefix}_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_server_url, name, template=template_db)
    try:
        engine = sa.create_engine(url)
        try:
            seed(engine)
        finally:
            engine.dispose()
        proc = dbt_build(url, work_dir)
        assert proc.returncode == 0, failure_text(proc)
        yield url
    finally:
        drop_database(pg_server_url, name)
