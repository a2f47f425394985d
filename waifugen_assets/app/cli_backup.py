"""`waifugen backup create | list | verify | restore | prune | fetch`: backup sets of the app
database, the Dagster database and the server's roles (docs/runbooks/database-corruption.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from waifugen_assets.app.cli_common import _database_url, _fail
from waifugen_assets.core import redaction

DATABASES = click.Choice(["app", "dagster", "globals"])


MANIFEST = click.option(
    "--manifest", "from_manifest", is_flag=True,
    help="Find the set by the manifest beside its archives (BACKUP_DIR, else BACKUP_S3_URL) "
    "instead of the app database: for when the app database itself is lost.")


def _config(with_dagster: bool = False, from_manifest: bool = False):
    """The backup settings; with the Dagster instance's storage when a set is to be made.
    From manifests, the app database is not even connected to."""
    from waifugen_assets.core.config import get_settings
    from waifugen_assets.operations.backups import dagster_source, load_config

    settings = get_settings()
    app_url = (settings.database_url or "") if from_manifest else _database_url()
    source = None
    if with_dagster:
        import dagster as dg

        from waifugen_assets.app.local_stack import ensure_dagster_home

        ensure_dagster_home(settings)  # sandbox: WAIFUGEN_HOME/dagster_home
        with dg.DagsterInstance.get() as instance:
            source = dagster_source(instance)
    return load_config(settings, app_url, source)


def _guarded(action):
    """Run `action`; a backup, tool, storage or database failure is one line and exit 1."""
    import subprocess

    import sqlalchemy as sa

    from waifugen_assets.core.config import ConfigError
    from waifugen_assets.operations.backup_store import StoreError
    from waifugen_assets.operations.backups import BackupError, one_line
    from waifugen_assets.operations.pg_tools import ToolError

    try:
        return action()
    except (BackupError, ToolError, StoreError, ConfigError) as exc:
        _fail(str(exc))
    except sa.exc.ProgrammingError as exc:
        first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        hint = (" (is the app database migrated? `waifugen db upgrade`)"
                if "does not exist" in first else "")  # e.g. no `backups` table: old schema
        _fail(f"{one_line(Exception(first))}{hint}")
    except (sa.exc.SQLAlchemyError, OSError, subprocess.TimeoutExpired) as exc:
        _fail(f"{type(exc).__name__}: {one_line(exc)}")
    return None


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@click.group()
def backup() -> None:
    """Backups: make, list, verify (restore drill), restore and prune backup sets."""


@backup.command("create")
@click.option("--no-dagster", is_flag=True, help="Leave out the Dagster database.")
@click.option("--no-globals", is_flag=True, help="Leave out the server's roles.")
def backup_create(no_dagster: bool, no_globals: bool) -> None:
    """Make a backup set now: the app database, the Dagster database and the roles."""
    from dataclasses import replace

    from waifugen_assets.operations.backups import create_backup

    def make():
        config = _config(with_dagster=not no_dagster)
        return create_backup(replace(config, include_globals=not no_globals))

    made = _guarded(make)
    for a in made.archives:
        if a.state == "done":
            click.echo(f"{made.set_id} {a.database}: {a.bytes} bytes, sha256 {a.sha256}, "
                       f"{a.location}")
        if a.error:
            click.echo(redaction.redact(f"error: {made.set_id} {a.error}"), err=True)
    if not made.ok:
        raise SystemExit(1)


@backup.command("list")
@click.option("--all", "show_all", is_flag=True, help="Pruned sets too.")
@click.option("--json", "as_json", is_flag=True, help="Every recorded field, as JSON.")
@MANIFEST
def backup_list(show_all: bool, as_json: bool, from_manifest: bool) -> None:
    """Backup sets, newest first: each archive's state, size, checksum and last check."""
    from dataclasses import asdict

    import sqlalchemy as sa

    from waifugen_assets.operations.backup_manifest import manifest_set_ids, read_manifest
    from waifugen_assets.operations.backups import list_sets

    def read():
        if from_manifest:
            config = _config(from_manifest=True)
            return [read_manifest(config, s) for s in manifest_set_ids(config)]
        engine = sa.create_engine(_config().app_url, poolclass=sa.NullPool)
        try:
            return list_sets(engine, include_pruned=show_all)
        finally:
            engine.dispose()

    sets = _guarded(read)
    if as_json:
        click.echo(json.dumps([{"set_id": s.set_id, "archives": [asdict(a) for a in s.archives]}
                               for s in sets], default=str, indent=2))
        return
    if not sets:
        click.echo("(no backup sets yet: `waifugen backup create`)")
        return
    click.echo(f"{'SET':<17} {'DATABASE':<8} {'STATE':<7} {'BYTES':>12}  {'SHA256':<64}  "
               "VERIFIED")
    for s in sets:
        for a in s.archives:
            checked = "-"
            if a.verify_result is not None:
                checked = (f"{'ok' if a.verify_result.get('ok') else 'FAILED'} "
                           f"{_when(a.verified_at)}")
            click.echo(f"{s.set_id:<17} {a.database:<8} {a.state:<7} {a.bytes or 0:>12}  "
                       f"{a.sha256 or '-':<64}  {checked}")


@backup.command("verify")
@click.argument("set_id", required=False)
@click.option("--scratch-url", default=None, help="Server to restore into (a database URL on "
              "it); default: the app database's server. A scratch database is created "
              "there and dropped.")
def backup_verify(set_id: str | None, scratch_url: str | None) -> None:
    """Restore drill of SET (default: the newest): checksum first, then a restore into a
    scratch database and a comparison with what was recorded at dump time."""
    from waifugen_assets.operations.backup_verify import verify_set

    verified, checks = _guarded(lambda: verify_set(_config(), set_id, scratch_url=scratch_url))
    for c in checks:
        if c.ok:
            click.echo(f"{verified} {c.database}: ok: {c.detail}")
        else:
            click.echo(redaction.redact(f"error: {verified} {c.database}: {c.detail}"), err=True)
    if not all(c.ok for c in checks):
        raise SystemExit(1)


@backup.command("restore")
@click.argument("set_id")
@click.option("--to", "target", required=True, help="Database URL to restore into (created "
              "if missing); for the sandbox's Dagster SQLite archive, a directory.")
@click.option("--database", default="app", type=DATABASES, show_default=True,
              help="Which archive of the set.")
@click.option("--force", is_flag=True, help="Restore over a non-empty target "
              "(pg_restore --clean --if-exists; SQLite files replaced).")
@MANIFEST
def backup_restore(set_id: str, target: str, database: str, force: bool,
                   from_manifest: bool) -> None:
    """Restore one archive of SET into TARGET, after checking its checksum."""
    from waifugen_assets.operations.backup_restore import restore_set

    report = _guarded(lambda: restore_set(_config(from_manifest=from_manifest), set_id, target,
                                          database, force=force, from_manifest=from_manifest))
    made = " (created)" if report.created else ""
    click.echo(f"{set_id} {database}: restored into {report.target}{made}"
               + (f"; {report.note}" if report.note else ""))
    for line in report.differences:
        click.echo(redaction.redact(f"warning: differs from the facts recorded at dump time: "
                                    f"{line}"), err=True)
    if report.differences:
        raise SystemExit(1)


@backup.command("prune")
@click.option("--dry-run", is_flag=True, help="Only say which sets would go.")
def backup_prune(dry_run: bool) -> None:
    """Keep the last 8 sets, one a day for 14 days, one a week for 8 weeks; delete the rest
    (rows stay, marked pruned)."""
    from waifugen_assets.operations.backup_retention import prune

    report = _guarded(lambda: prune(_config(), dry_run=dry_run))
    verb = "would prune" if dry_run else "pruned"
    click.echo(f"kept {len(report.kept)} set(s); {verb} {len(report.pruned)}"
               + (f": {', '.join(report.pruned)}" if report.pruned else ""))
    for line in report.errors:
        click.echo(redaction.redact(f"error: {line}"), err=True)
    if report.errors:
        raise SystemExit(1)


@backup.command("fetch")
@click.argument("set_id")
@click.option("--database", default="app", type=DATABASES, show_default=True)
@click.option("--out", default=".", show_default=True, help="File or directory to copy the "
              "archive to; '-': standard output (e.g. into `docker compose exec -T postgres "
              "pg_restore`).")
@MANIFEST
def backup_fetch(set_id: str, database: str, out: str, from_manifest: bool) -> None:
    """Copy one archive of SET (downloaded if remote) after checking its checksum: for
    restoring by hand with pg_restore."""
    from waifugen_assets.operations.backup_restore import copy_archive

    def copy(dest):
        return copy_archive(_config(from_manifest=from_manifest), set_id, database, dest,
                            from_manifest=from_manifest)

    if out == "-":
        _guarded(lambda: copy(click.get_binary_stream("stdout")))
        return
    path = _guarded(lambda: copy(Path(out)))
    click.echo(str(path))
