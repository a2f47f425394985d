"""The `waifugen` command line: database, roster, runs, status, sandbox and the dev stack."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import click

from waifugen_assets.app.cli_analysts import analysts
from waifugen_assets.app.cli_backup import backup
from waifugen_assets.app.cli_budget import budget
from waifugen_assets.app.cli_comments import comments
from waifugen_assets.app.cli_common import (
    DATE,
    _database_url,
    _fail,
    _migrated_url,
    _today,
    check_partition_date,
    port_option,
)
from waifugen_assets.app.cli_credentials import credentials
from waifugen_assets.app.cli_engagement import engagement
from waifugen_assets.app.cli_metrics import metrics
from waifugen_assets.app.cli_reels import reels
from waifugen_assets.app.cli_report import report
from waifugen_assets.app.cli_sandbox import sandbox
from waifugen_assets.app.cli_slots import slots
from waifugen_assets.app.cli_subscribers import dms, subscribers, webhooks
from waifugen_assets.core import redaction
from waifugen_assets.core.config import SANDBOX_DEFAULT_PORT, ConfigError, get_settings


class _Group(click.Group):
    """Turns configuration errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(str(exc))
        return None


@click.group(cls=_Group)
def main() -> None:
    """waifugen: daily content operations of AI virtual creators, on Dagster."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    redaction.install_log_filter()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # full URLs at INFO; ours are redacted
    # Warnings raised inside Dagster (beta/preview APIs it uses on itself) are for whoever
    # writes the definitions (`dagster dev` shows them); here they would break "one line on
    # stderr per failure".
    warnings.filterwarnings("ignore", module="dagster")
    # SIGTERM stops what a command started (sandbox, embedded PostgreSQL), as Ctrl-C does;
    # the default action would end the process without its cleanup.
    signal.signal(signal.SIGTERM, _interrupt)
    settings = get_settings()  # production: a missing setting stops here, by name
    from waifugen_assets.core import clock
    from waifugen_assets.core.tokens import TokenCipher, TokenError
    clock.now()  # a bad WAIFUGEN_NOW, or one in production, stops here too
    try:  # a key that is no Fernet key, before it is needed halfway through a run
        TokenCipher(settings.secret_keys)
    except TokenError as exc:
        raise ConfigError(str(exc)) from None


@main.command("config")
def config_cmd() -> None:
    """Show the effective settings (secrets masked)."""
    for name, value in get_settings().public_view().items():
        click.echo(f"{name:<22} {value}")


# --- db ---------------------------------------------------------------------------------------

@main.group()
def db() -> None:
    """App database migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the app database up to REVISION (default: head)."""
    from waifugen_assets.app.local_stack import migrate_serialized
    from waifugen_assets.core import migrate
    url = _database_url()
    migrate_serialized(url, revision)
    click.echo(f"app database at {migrate.current(url)}")


@db.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Migrate down to REVISION (default: one step; `base` removes every table)."""
    from waifugen_assets.core import migrate
    url = _database_url()
    migrate.downgrade(url, revision)
    click.echo(f"app database at {migrate.current(url) or 'base (empty)'}")


@db.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head."""
    from waifugen_assets.core import migrate
    rev = migrate.current(_database_url())
    head = migrate.head()
    state = "up to date" if rev == head else "behind: run `waifugen db upgrade`"
    click.echo(f"{rev or 'base (empty)'} (head {head}, {state})")


# --- roster -----------------------------------------------------------------------------------

@main.group()
def roster() -> None:
    """The roster of characters."""


@roster.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def roster_check(file: Path | None) -> None:
    """Validate FILE (default: WAIFUGEN_ROSTER) and the phases.yaml beside it; print every
    error, exit 1 on any."""
    from waifugen_assets.roster.model import RosterError, load_roster
    from waifugen_assets.roster.phases import (
        PhaseError,
        ladder_summary,
        phases_for_roster,
        phases_path,
    )

    path = file or get_settings().roster_path
    failed = False
    try:
        loaded = load_roster(path)
    except RosterError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        click.echo(f"{len(exc.issues)} error(s) in {path}", err=True)
        failed = True
    try:
        ladder = phases_for_roster(path)
    except PhaseError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        click.echo(f"{len(exc.issues)} error(s) in {phases_path(path)}", err=True)
        failed = True
    if failed:
        sys.exit(1)
    click.echo(f"{path}: ok, {len(loaded.characters)} characters "
               f"({len(loaded.enabled())} enabled)")
    click.echo(ladder_summary(ladder, path))


# --- tokens -----------------------------------------------------------------------------------

@main.group()
def tokens() -> None:
    """Platform tokens, encrypted at rest (WAIFUGEN_SECRET_KEY)."""


def _vault():
    from resources.database import engine_for
    from waifugen_assets.core.tokens import TokenCipher, TokenVault

    return TokenVault(engine_for(_migrated_url()), TokenCipher(get_settings().secret_keys))


@tokens.command("set")
@click.argument("platform")
@click.argument("character")
@click.option("--access-token-file", type=click.File("r"), required=True,
              help="File (or - for stdin) holding the access token; never pass tokens as "
              "arguments, they would land in the shell history.")
@click.option("--refresh-token-file", type=click.File("r"), default=None)
@click.option("--expires-in", type=int, default=None, help="Seconds the access token lives.")
def tokens_set(platform: str, character: str, access_token_file: click.File,
               refresh_token_file: click.File | None, expires_in: int | None) -> None:
    """Store PLATFORM tokens for CHARACTER (after authorising the account)."""
    from waifugen_assets.core.tokens import TokenError, TokenSet

    access = access_token_file.read().strip()
    refresh = refresh_token_file.read().strip() if refresh_token_file else None
    if not access:
        _fail("the access token file is empty")
    vault = _vault()
    try:
        with vault.engine.begin() as conn:
            vault.save(conn, character, platform, TokenSet(access, refresh, expires_in, None))
    except TokenError as exc:
        _fail(str(exc))
    click.echo(f"stored {platform} tokens for {character} (encrypted, key "
               f"{vault.cipher.current_key_id})")


@tokens.command("rekey")
def tokens_rekey() -> None:
    """Re-encrypt every token with the newest key (run before retiring an old key)."""
    click.echo(f"re-encrypted {_vault().rekey()} account(s)")


@tokens.command("status")
def tokens_status() -> None:
    """Per account: whether a token is stored, when it expires, and the key it is under."""
    import sqlalchemy as sa

    from waifugen_assets.core import schema
    pa = schema.platform_accounts
    with _vault().engine.connect() as conn:
        rows = conn.execute(sa.select(pa.c.character_id, pa.c.platform, pa.c.status,
                                      pa.c.token_expires_at, pa.c.refresh_expires_at,
                                      pa.c.key_id, pa.c.access_token_enc.is_not(None))
                            .order_by(pa.c.character_id, pa.c.platform)).all()
    for cid, platform, status, expires, refresh_expires, key, has_token in rows:
        state = status if has_token else "no token"
        click.echo(f"{cid:<20} {platform:<10} {state:<13} access until {expires or '-'}  "
                   f"refresh until {refresh_expires or '-'}  key {key or '-'}")


# --- run and status ---------------------------------------------------------------------------

@main.command("run")
@click.option("--date", "day", type=DATE, default=None,
              help="Day to run for every character (default: each character's own local "
              "today).")
@click.option("--character", "characters", multiple=True, help="Only these characters.")
@click.option("--publish", "publish", type=click.Choice(["now", "due"]), default=None,
              help="now: post every branded reel of the day at once; due: only reels whose "
              "slot has come (the posting sensor posts the rest). Default: now in sandbox "
              "mode, due in production.")
@click.option("--post-late", is_flag=True, default=None,
              help="Post slots older than PUBLISH_STALE_AFTER_HOURS too (default: in sandbox "
              "mode with --publish now; otherwise they are recorded as skipped).")
@click.option("--sandbox-port", type=int, default=None, callback=port_option,
              help="Port of the sandbox, if this run starts it (0: any free port). Default: "
              f"this home's port ({SANDBOX_DEFAULT_PORT} at first, unless taken).")
@click.option("--no-analytics", "no_analytics", is_flag=True,
              help="The characters' days only: no credit ledger, marts, daily report or "
              "(sandbox) backup; their schedules make them.")
def run_cmd(day: dt.datetime | None, characters: tuple[str, ...], publish: str | None,
            post_late: bool | None, sandbox_port: int | None, no_analytics: bool) -> None:
    """Materialize each character's day into the Dagster instance; exit 1 if a run failed."""
    import dagster as dg

    from waifugen_assets.app.local_stack import (
        PublishMode,
        RunFailed,
        local_stack,
        prepare,
        prepare_comments,
        run_day,
    )
    from waifugen_assets.app.sandbox_seeding import simulate_sandbox_audience
    from waifugen_assets.core.preflight import check_before_spending

    # Everything the command line can get wrong is refused before anything starts.
    if day is not None:
        check_partition_date(day.date())
    listed = _check_files()  # a bad roster or sequences file: its problems, one per line
    unknown = sorted(set(characters) - set(listed))
    if unknown:
        _fail(f"not enabled characters in the roster: {', '.join(unknown)}; nothing was run")
    with local_stack(sandbox_port=sandbox_port) as stack:
        from waifugen_assets.definitions import defs

        instance = dg.DagsterInstance.get()
        try:
            enabled = prepare(stack, defs, instance)
        except RunFailed as exc:
            _fail(str(exc))
        chosen = list(characters) or enabled
        engine = _engine(stack.database_url)
        check_before_spending(engine, chosen)  # a ConfigError ends here, before any run
        days = _local_days(engine, chosen, day.date() if day else None)
        sandbox = stack.settings.is_sandbox
        when = publish or ("now" if sandbox else "due")
        mode = PublishMode(when, post_late if post_late is not None
                           else (sandbox and when == "now"))
        if stack.sandbox_url:  # the sandbox's fans of yesterday (UTC), for the DM runs
            simulate_sandbox_audience(stack.sandbox_url, chosen, day.date() if day else _today())
        after_publish = prepare_comments(engine, chosen, stack.sandbox_url)
        results = run_day(defs, instance, days, mode, after_publish)
        # No daemon runs the `status` sensor here: the day's report is refreshed by the CLI.
        from waifugen_assets.app.local_stack import PID_TAG
        from waifugen_assets.app.status import refresh_daily_status

        for line in refresh_daily_status(defs, instance, days, {PID_TAG: str(os.getpid())}):
            click.echo(redaction.redact(f"warning: {line}"), err=True)
        # The UTC day's ledger, marts and report, as the 00:10 schedule makes them; the
        # sandbox's operators' chat gets the report (once a day), production's only from
        # the schedule, for the day before.
        from waifugen_assets.app.analytics_run import run_analytics

        report_day = day.date() if day else _today()
        analytics = None
        if not no_analytics:
            analytics = run_analytics(defs, instance, report_day, send_report=sandbox,
                                      tags={"waifugen/trigger": "cli",
                                            PID_TAG: str(os.getpid())},
                                      log_dir=stack.settings.home / "logs")
            for line in analytics.failures:
                click.echo(redaction.redact(f"warning: analytics: {line}"), err=True)
        backup_ok, backup_line = True, None
        if sandbox and not no_analytics:  # production: the 6-hourly `backup` schedule
            from waifugen_assets.app.backup_run import backup_after_run

            backup_ok, backup_line = backup_after_run(stack.settings, stack.database_url,
                                                      instance)
        _print_status(stack.database_url, day.date() if day else None, chosen, as_json=False,
                      days=days)
        if stack.sandbox_url:  # what the sandbox platforms hold, counted there
            from waifugen_assets.app.status import sandbox_summary

            click.echo(sandbox_summary(stack.sandbox_url, _today()))
        if analytics is not None:
            click.echo(redaction.redact(analytics.summary(engine)))
        else:
            click.echo("analytics skipped (--no-analytics): the credit ledger, marts, daily "
                       "report and backup come from their schedules")
        if backup_line:
            click.echo(redaction.redact(backup_line), err=not backup_ok)
        failed = [r for r in results if r.failures]
        click.echo(f"\n{len(results)} character day(s) run, {len(failed)} failed "
                   f"(publish: {mode.when}{', late slots too' if mode.post_late else ''}); "
                   f"runs are in the Dagster instance at {os.environ['DAGSTER_HOME']} "
                   "(`make dev` shows them)")
    for r in failed:
        click.echo(redaction.redact(f"{r.character_id} {r.date}: " + "; ".join(r.failures)),
                   err=True)
    if failed or (analytics and analytics.failures) or not backup_ok:
        sys.exit(1)


def _check_files() -> list[str]:
    """The roster and the sequences file, validated before anything starts; returns the
    enabled characters."""
    from waifugen_assets.roster.model import RosterError, load_roster
    from waifugen_assets.roster.phases import PhaseError, phases_for_roster, phases_path
    from waifugen_assets.subscribers.assets import sequences_path
    from waifugen_assets.subscribers.sequences import SequenceError, load_sequences

    path = get_settings().roster_path
    try:
        roster = load_roster(path)
    except RosterError as exc:
        _print_issues(exc.issues, path, "roster")
        sys.exit(1)
    try:
        phases_for_roster(path)
    except PhaseError as exc:
        _print_issues(exc.issues, phases_path(path), "phases file")
        sys.exit(1)
    seq_path = sequences_path()
    try:
        load_sequences(seq_path, known_characters={c.id for c in roster.characters})
    except SequenceError as exc:
        _print_issues(exc.issues, seq_path, "sequences file")
        sys.exit(1)
    return [c.id for c in roster.enabled()]


def _print_issues(issues: list, path: Path, what: str) -> None:
    for issue in issues:
        click.echo(redaction.redact(str(issue)), err=True)
    click.echo(f"error: {len(issues)} error(s) in the {what} {path}; nothing was run",
               err=True)


def _engine(url: str):
    from resources.database import engine_for

    return engine_for(url)


def _local_days(engine, ids: list[str], fixed: dt.date | None) -> dict[str, dt.date]:
    """Each character's day: `fixed` when given, else its own local today."""
    import sqlalchemy as sa

    from waifugen_assets.core import clock, schema
    ch = schema.characters
    with engine.connect() as conn:
        zones = dict(conn.execute(sa.select(ch.c.id, ch.c.timezone)
                                  .where(ch.c.id.in_(ids))).all())
    return {cid: fixed or clock.local_today(zones[cid]) for cid in ids}


def _print_status(url: str, day: dt.date | None, ids: list[str] | None, as_json: bool,
                  days: dict[str, dt.date] | None = None) -> None:
    from resources.database import engine_for
    from waifugen_assets.app.status import day_status, render_text
    from waifugen_assets.roster.phases import PhaseError, phases_for_roster, phases_path

    settings = get_settings()
    try:
        ladder = phases_for_roster(settings.roster_path)
    except PhaseError as exc:
        _fail(f"{phases_path(settings.roster_path)}: {len(exc.issues)} error(s), the first: "
              f"{exc.issues[0]} (`waifugen roster check` lists them)")
    with engine_for(url).connect() as conn:
        report = day_status(conn, day, settings.a2e_monthly_credits, ids, days, ladder)
    click.echo(json.dumps(report, indent=2) if as_json else render_text(report))


@main.command("status")
@click.option("--date", "day", type=DATE, default=None,
              help="Day (default: each character's own local today).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(day: dt.datetime | None, as_json: bool) -> None:
    """Per character: reels per stage, posts per platform, budget use."""
    _print_status(_migrated_url(), day.date() if day else None, None, as_json)


@main.command("dev")
@click.option("--port", default=3000, show_default=True, callback=port_option,
              help="Dagster UI port.")
@click.option("--sandbox-port", type=int, default=None, callback=port_option,
              help="Port of the sandbox, if this starts it (0: any free port). Default: this "
              f"home's port ({SANDBOX_DEFAULT_PORT} at first, unless taken).")
def dev_cmd(port: int, sandbox_port: int | None) -> None:
    """Dagster webserver + daemon on 127.0.0.1 (sandbox mode); Ctrl-C stops everything."""
    import dagster as dg

    from waifugen_assets.app.local_stack import RunFailed, local_stack, prepare
    from waifugen_assets.app.processes import port_free, stop_process_group
    from waifugen_assets.core.config import project_root

    if not port_free(port):
        _fail(f"cannot serve the Dagster UI on 127.0.0.1:{port}: the port is in use (another "
              "`make dev`?); choose another with --port")
    # Explicit handlers: a parent may have left SIGINT ignored (background jobs), and a
    # SIGTERM must stop what we started as Ctrl-C does.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    with local_stack(sandbox_port=sandbox_port) as stack:
        from waifugen_assets.definitions import defs

        try:
            prepare(stack, defs, dg.DagsterInstance.get())
        except RunFailed as exc:
            _fail(str(exc))
        argv = [str(Path(sys.executable).with_name("dagster")), "dev", "-w",
                str(project_root() / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
        # Own process group: `dagster dev` ignores SIGTERM from a script, so we stop the group.
        child = subprocess.Popen(argv, cwd=project_root(), env=os.environ.copy(),
                                 start_new_session=True)
        click.echo(f"Dagster UI on http://127.0.0.1:{port}  (sandbox: {stack.sandbox_url}); "
                   "Ctrl-C stops everything")
        try:
            child.wait()
        except KeyboardInterrupt:
            pass
        finally:
            # Stopping takes seconds: a second Ctrl-C must not leave half of it running.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            stop_process_group(child)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


for _group in (webhooks, subscribers, dms, engagement, comments, analysts, sandbox, slots,
               report, metrics, credentials, backup, budget, reels):
    main.add_command(_group)

if __name__ == "__main__":
    main()
