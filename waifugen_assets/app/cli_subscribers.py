"""`waifugen webhooks`, `waifugen subscribers` and `waifugen dms`: inbound events, subscriber
CSV import and forgetting, the manual DM queue."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from waifugen_assets.app.cli_common import _app_engine, _fail
from waifugen_assets.core.config import get_settings

# --- subscribers, inbound webhooks, manual DM queue ------------------------------------------

SANDBOX_FANVUE_WEBHOOK_SECRET = "sandbox-fanvue-webhook-secret"  # noqa: S105 (sandbox only)
SANDBOX_TELEGRAM_WEBHOOK_SECRET = "sandbox-telegram-webhook-secret"  # noqa: S105 (sandbox only)


@click.group()
def webhooks() -> None:
    """Inbound events from Fanvue and Telegram (signed webhooks)."""


@webhooks.command("serve")
@click.option("--host", default=None, help="Listen address (default: WEBHOOKS_HOST).")
@click.option("--port", default=None, type=int, help="Port (default: WEBHOOKS_PORT).")
def webhooks_serve(host: str | None, port: int | None) -> None:
    """Verify, deduplicate and store inbound events until interrupted (the pipeline applies
    them)."""
    from waifugen_assets.subscribers.webhooks import serve

    settings = get_settings()
    secrets: dict[str, str | None] = {}
    for name, sandbox_default in (("FANVUE_WEBHOOK_SECRET", SANDBOX_FANVUE_WEBHOOK_SECRET),
                                  ("TELEGRAM_WEBHOOK_SECRET", SANDBOX_TELEGRAM_WEBHOOK_SECRET)):
        secrets[name] = settings.get(name, sandbox_default=sandbox_default)
        if not secrets[name]:
            _fail(f"{name} is not set (set {name} or {name}_FILE)")
    the_host = host or settings.get("WEBHOOKS_HOST", default="127.0.0.1") or "127.0.0.1"
    raw_port = port if port is not None else settings.get("WEBHOOKS_PORT", default="8788")
    try:
        the_port = int(raw_port or 8788)
    except ValueError:
        _fail(f"WEBHOOKS_PORT={raw_port!r}: expected a whole number")
    engine = _app_engine()
    click.echo(f"webhooks on http://{the_host}:{the_port} (POST /fanvue/<character>, "
               "POST /telegram/<character>, GET /healthz)")
    serve(engine, host=the_host, port=the_port,
          fanvue_secret=secrets["FANVUE_WEBHOOK_SECRET"],
          telegram_secret=secrets["TELEGRAM_WEBHOOK_SECRET"])


@click.group()
def subscribers() -> None:
    """Subscribers: CSV import (OnlyFans, Fansly) and forgetting a person."""


@subscribers.command("import")
@click.argument("platform", type=click.Choice(["onlyfans", "fansly"]))
@click.argument("character")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def subscribers_import(platform: str, character: str, file: Path) -> None:
    """Import FILE (the platform's subscriber CSV export) for CHARACTER. Prints each bad row;
    exit 1 if any row was bad (the good rows are imported anyway)."""
    from waifugen_assets.subscribers.csv_import import ImportFileError, import_csv

    try:
        report = import_csv(_app_engine(), file, platform, character)  # type: ignore[arg-type]
    except ImportFileError as exc:
        _fail(f"{file}: {exc}")
    for error in report.errors:
        click.echo(f"{file}:{error}", err=True)
    click.echo(f"{file}: {report.imported} imported, {report.updated} updated, "
               f"{report.unchanged} unchanged, {len(report.errors)} bad row(s)")
    if report.errors:
        sys.exit(1)


@subscribers.command("forget")
@click.argument("platform", type=click.Choice(["fanvue", "telegram", "onlyfans", "fansly",
                                               "instagram"]))
@click.argument("external_id")
@click.option("--character", default=None, help="Only this character's subscriber (default: "
              "every character's).")
def subscribers_forget(platform: str, external_id: str, character: str | None) -> None:
    """Remove the personal data of subscriber EXTERNAL_ID on PLATFORM; revenue stays, anonymous."""
    from waifugen_assets.subscribers.forget import SubscriberNotFound, forget_subscriber

    try:
        report = forget_subscriber(_app_engine(), platform, external_id, character)
    except SubscriberNotFound as exc:
        _fail(str(exc))
    click.echo(f"forgot {report.subscribers} subscriber row(s) ({', '.join(report.characters)})"
               f": {report.messages} message(s) and {report.events} event(s) cleared, "
               f"{report.revenue_events_kept} revenue event(s) kept anonymously")


@click.group()
def dms() -> None:
    """Direct messages: the manual-send queue of OnlyFans and Fansly."""


@dms.command("export")
@click.option("--character", default=None, help="Only this character's messages.")
@click.option("--output", "output", type=click.Path(dir_okay=False, allow_dash=True),
              default="-", show_default=True, help="CSV file, or - for stdout.")
def dms_export(character: str | None, output: str) -> None:
    """Write the messages waiting to be sent by hand as CSV (read-only)."""
    from waifugen_assets.subscribers.manual_queue import export_csv

    engine = _app_engine()
    if output == "-":
        count = export_csv(engine, sys.stdout, character)
    else:
        with open(output, "w", encoding="utf-8", newline="") as out:
            count = export_csv(engine, out, character)
    click.echo(f"{count} message(s) to send by hand", err=True)


@dms.command("mark-sent")
@click.argument("ids", nargs=-1, required=True, type=int)
def dms_mark_sent(ids: tuple[int, ...]) -> None:
    """Record that messages IDS (from `dms export`) were sent by hand; all or none."""
    from waifugen_assets.subscribers.manual_queue import NotQueued, mark_sent

    try:
        count = mark_sent(_app_engine(), ids)
    except NotQueued as exc:
        _fail(str(exc))
    click.echo(f"{count} message(s) marked sent")


# --- sandbox and dev --------------------------------------------------------------------------
