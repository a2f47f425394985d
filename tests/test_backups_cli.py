"""`waifugen backup ...` as an operator runs it, in a subprocess: the runbook's restore steps
(docs/runbooks/database-corruption.md, its blocks marked `runbook-test`) run verbatim in bash,
and the one-line errors (unknown set, missing or mismatched client tools, a non-empty target)."""

from __future__ import annotations

import glob
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from backup_world import PG_BIN, rows, run_something, seed, sqlite_instance
from conftest import database_url, drop_database

from waifugen_assets.core import schema
from waifugen_assets.core.config import project_root
from waifugen_assets.operations.backups import list_sets, load_set

pytestmark = pytest.mark.integration

RUNBOOK = project_root() / "docs" / "runbooks" / "database-corruption.md"
# The `waifugen` command: the real entry point once app/cli.py registers the `backup` group,
# until then the same group under a stand-in `waifugen`.
SHIM = """\
import click
from waifugen_assets.app import cli
from waifugen_assets.app.cli_backup import backup
main = cli.main if "backup" in cli.main.commands else click.Group("waifugen", commands=[backup])
main()
"""


def runbook_block(name: str) -> str:
    found = re.search(rf"<!-- runbook-test: {name} -->\n```sh\n(.*?)```", RUNBOOK.read_text(),
                      re.S)
    assert found, f"{RUNBOOK} has no block marked runbook-test: {name}"
    return found.group(1)


def libpq_url(url: str) -> str:
    """The URL as an operator types it (psql, pg_restore and --to all take it)."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """A sandbox-mode environment on the test database, a Dagster instance with a run in it,
    and `waifugen` on the PATH, ahead of pgserver's PostgreSQL 16 tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "waifugen"
    script.write_text(f"#!{sys.executable}\n{SHIM}")
    script.chmod(0o755)
    with sqlite_instance(tmp_path / "dagster_home") as instance:
        run_something(instance)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "BACKUP_", "WAIFUGEN_", "DAGSTER_", "DATABASE_URL"))}
    env.update({"DATABASE_URL": db_url, "WAIFUGEN_HOME": str(tmp_path / "home"),
                "DAGSTER_HOME": str(tmp_path / "dagster_home"),
                "BACKUP_DIR": str(tmp_path / "backups"),
                "PATH": os.pathsep.join([str(bin_dir), str(PG_BIN), env.get("PATH", "")])})
    return env


@pytest.fixture
def targets(pg_server_url: str) -> Iterator[list[str]]:
    names = [f"wg_restored_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    yield names
    for name in names:
        drop_database(pg_server_url, name)


def waifugen(env: dict[str, str], *args: str, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["waifugen", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_the_runbook_restores_run_as_written(cli_env: dict[str, str], db_url: str,
                                             engine: sa.Engine, pg_server_url: str,
                                             targets: list[str], tmp_path: Path) -> None:
    seed(engine)
    made = waifugen(cli_env, "backup", "create")
    assert made.returncode == 0, made.stderr
    set_id = made.stdout.split()[0]
    assert [line.split()[1] for line in made.stdout.splitlines()] == [
        "app:", "dagster:", "globals:"]
    assert load_set(engine, set_id).ok

    cli_target, tools_target = targets
    env = {**cli_env, "SET": set_id, "TARGET_DB": tools_target,
           "SERVER_URL": libpq_url(pg_server_url),
           "TARGET_URL": libpq_url(database_url(pg_server_url, cli_target))}
    done = bash(runbook_block("cli"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{set_id} app: ok: restored into a scratch database" in done.stdout
    assert f"{set_id} dagster: ok: " in done.stdout and f"{set_id} globals: ok: " in done.stdout
    assert f"{set_id} app: restored into " in done.stdout and "(created)" in done.stdout
    assert rows(database_url(pg_server_url, cli_target), schema.credentials) == rows(
        db_url, schema.credentials)

    env["TARGET_URL"] = libpq_url(database_url(pg_server_url, tools_target))
    work = tmp_path / "by-hand"
    work.mkdir()
    done = bash(runbook_block("tools"), env, work)
    assert done.returncode == 0, done.stderr
    recorded = load_set(engine, set_id).archive("app")
    assert done.stdout.splitlines() == [f"{recorded.sha256}  app.dump", "CREATE DATABASE",
                                        "0014_operations"]
    assert rows(database_url(pg_server_url, tools_target), schema.credentials) == rows(
        db_url, schema.credentials)

    listed = waifugen(cli_env, "backup", "list")
    assert listed.returncode == 0 and recorded.sha256 in listed.stdout
    pruned = waifugen(cli_env, "backup", "prune", "--dry-run")
    assert pruned.returncode == 0 and pruned.stdout == "kept 1 set(s); would prune 0\n"


def test_with_the_app_database_gone_the_manifest_finds_the_set(
        cli_env: dict[str, str], db_url: str, engine: sa.Engine, pg_server_url: str,
        targets: list[str], tmp_path: Path) -> None:
    seed(engine)
    before = rows(db_url, schema.credentials)
    made = waifugen(cli_env, "backup", "create", "--no-dagster")
    assert made.returncode == 0, made.stderr
    set_id = made.stdout.split()[0]
    engine.dispose()
    drop_database(pg_server_url, sa.engine.make_url(db_url).database)  # the catalog goes too

    env = {**cli_env, "SET": set_id,
           "TARGET_URL": libpq_url(database_url(pg_server_url, targets[0]))}
    done = bash(runbook_block("lost"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{set_id}  app      done" in done.stdout
    assert f"{set_id} app: restored into " in done.stdout
    assert rows(database_url(pg_server_url, targets[0]), schema.credentials) == before
    # Without --manifest the lost database is what the command says.
    line = _one_line_error(waifugen(cli_env, "backup", "restore", set_id, "--to",
                                    env["TARGET_URL"]))
    assert "does not exist" in line


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    return result.stderr.strip()


def test_unknown_set_is_one_line(cli_env: dict[str, str]) -> None:
    line = _one_line_error(waifugen(cli_env, "backup", "verify", "20200101T000000Z"))
    assert line == "error: no backup set 20200101T000000Z (`waifugen backup list` shows them)"
    line = _one_line_error(waifugen(cli_env, "backup", "restore", "20200101T000000Z",
                                    "--to", "postgresql://nobody@/nowhere"))
    assert line.startswith("error: no backup set 20200101T000000Z")


@pytest.mark.parametrize("case", ["missing", "empty", "other major"])
def test_client_tools_problems_are_one_line_and_nothing_is_written(
        case: str, cli_env: dict[str, str], engine: sa.Engine, tmp_path: Path) -> None:
    if case == "missing":
        where = str(tmp_path / "no-such-dir")
        expected = f"error: PG_BIN_DIR={where}: no such directory"
    elif case == "empty":
        where = str(tmp_path / "empty")
        Path(where).mkdir()
        expected = (f"error: PG_BIN_DIR={where}: missing pg_dump, pg_restore, pg_dumpall, "
                    "psql")
    else:  # Debian's own PostgreSQL client (15 on bookworm) against the 16 server
        others = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
                  if not d.startswith("/usr/lib/postgresql/16/")]
        assert others, "no PostgreSQL client of another major version (apt: postgresql-client)"
        where = others[0]
        expected = (r"error: PostgreSQL client tools \d+\.\d+ \(" + re.escape(where)
                    + r"\) do not match the app database server 16\.\d+: set PG_BIN_DIR to "
                    "PostgreSQL 16 client tools")
    line = _one_line_error(waifugen({**cli_env, "PG_BIN_DIR": where}, "backup", "create"))
    assert re.match(re.escape(expected) if case != "other major" else expected, line), line
    assert list_sets(engine, include_pruned=True) == []
    assert not (tmp_path / "backups").exists()


def test_a_non_empty_target_is_refused_in_one_line(cli_env: dict[str, str], db_url: str) -> None:
    made = waifugen(cli_env, "backup", "create", "--no-dagster", "--no-globals")
    assert made.returncode == 0, made.stderr
    set_id = made.stdout.split()[0]
    line = _one_line_error(waifugen(cli_env, "backup", "restore", set_id, "--to",
                                    libpq_url(db_url)))
    assert re.fullmatch(r"error: restore target .* is not empty \(\d+ relations\): refused; "
                        r"--force restores over it \(pg_restore --clean --if-exists\)", line)


def test_an_unmigrated_database_is_one_line(cli_env: dict[str, str], empty_db_url: str) -> None:
    line = _one_line_error(waifugen({**cli_env, "DATABASE_URL": empty_db_url}, "backup", "list"))
    assert line == ('error: relation "backups" does not exist (is the app database migrated? '
                    "`waifugen db upgrade`)")


def test_fetch_writes_an_owner_only_copy_and_a_bad_place_is_one_line(
        cli_env: dict[str, str], tmp_path: Path) -> None:
    """A roles dump holds password hashes: the copy is 0600 whatever the umask, and whole."""
    made = waifugen(cli_env, "backup", "create", "--no-dagster")
    assert made.returncode == 0, made.stderr
    (set_id,) = {line.split()[0] for line in made.stdout.splitlines()}
    out = tmp_path / "fetched"
    out.mkdir()
    for database in ("app", "globals"):
        fetched = waifugen(cli_env, "backup", "fetch", set_id, "--database", database,
                           "--out", str(out))
        assert fetched.returncode == 0, fetched.stderr
        path = Path(fetched.stdout.strip())
        assert path.parent == out and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["app.dump", "globals.sql"]  # no partials
    a_file = out / "app.dump"
    line = _one_line_error(waifugen(cli_env, "backup", "fetch", set_id, "--out",
                                    str(a_file / "x.dump")))
    # A file where a directory would have to be: the error and the path, in one line.
    assert line == f"error: FileExistsError: [Errno 17] File exists: '{a_file}'"
