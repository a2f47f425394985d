"""`waifugen report`: the daily report of a date, printed as Markdown and, with --send, sent
to the operators' Telegram chat exactly once (docs/daily-report.md)."""

from __future__ import annotations

import datetime as dt

import click

from waifugen_assets.app.cli_common import DATE, _app_engine, _fail, _today, check_partition_date


@click.command("report")
@click.option("--date", "day", type=DATE, default=None,
              help="The report's date (YYYY-MM-DD); default: yesterday (UTC).")
@click.option("--send", is_flag=True, help="Send it to the operators' Telegram chat (once: "
              "what is already there is not sent again).")
@click.option("--resend-unknown", is_flag=True, help="With --send: send again a part whose "
              "earlier send had no answer and that was not found in the chat (check the chat "
              "first).")
def report(day: dt.datetime | None, send: bool, resend_unknown: bool) -> None:
    """Build the daily report of a date from the marts and the credit ledger; print it."""
    from resources.telegram import TelegramResource
    from waifugen_assets.core import clock
    from waifugen_assets.core.config import get_settings
    from waifugen_assets.reporting.report_build import NOT_CONFIGURED, build_report, send_report
    from waifugen_assets.reporting.report_data import MartsMissing

    if resend_unknown and not send:
        _fail("--resend-unknown needs --send")
    date = day.date() if day else _today() - dt.timedelta(days=1)
    check_partition_date(date)
    engine = _app_engine()
    try:
        built = build_report(engine, date, clock.now(), get_settings())
    except MartsMissing as exc:
        _fail(str(exc))
        return
    click.echo(built.markdown)
    if not send:
        return
    outcomes = send_report(engine, TelegramResource(), built, resend_unknown=resend_unknown)
    click.echo("")
    if outcomes is None:
        _fail(NOT_CONFIGURED)
        return
    for o in outcomes:
        click.echo(f"{o.part}: {o.action}: {o.detail}")
    if any(o.state in ("unknown", "failed") for o in outcomes):
        raise SystemExit(1)
