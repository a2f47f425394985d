"""`waifugen budget show | set`: the month's A2E credit budget, the `budgets` row the budget
check of `reel_plans` reads (docs/runbooks/credits-depleted.md). A2E_MONTHLY_CREDITS only
seeds a month's row the first time a run needs it; changing a month already started is this
command's job."""

from __future__ import annotations

import datetime as dt
import re

import click

from waifugen_assets.app.cli_common import _app_engine
from waifugen_assets.core import clock
from waifugen_assets.core.config import get_settings

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def _month(_: click.Context, __: click.Parameter, value: str | None) -> dt.date:
    """YYYY-MM as its first day; none: the current UTC month."""
    if value is None:
        return clock.now().astimezone(dt.UTC).date().replace(day=1)
    match = _MONTH.fullmatch(value.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise click.BadParameter(f"{value!r} is not a month: write YYYY-MM, e.g. 2026-12")
    return dt.date(int(match[1]), int(match[2]), 1)


MONTH_OPTION = click.option(
    "--month", callback=_month, metavar="YYYY-MM",
    help="The month (of the characters' local days). Default: the current UTC month.")


@click.group()
def budget() -> None:
    """The month's A2E credit budget that planning checks reels against."""


def _pct(percent: float) -> str:
    return "no limit left" if percent == float("inf") else f"{percent:.1f} %"


@budget.command("show")
@MONTH_OPTION
def budget_show(month: dt.date) -> None:
    """The limit, what is spent and planned against it, per character, and what is blocked."""
    from waifugen_assets.money.credits import month_budget

    default = get_settings().a2e_monthly_credits
    with _app_engine().connect() as conn:
        m = month_budget(conn, month, default)
    source = ("A2E_MONTHLY_CREDITS; recorded by the month's first planning run"
              if m.from_default else "the month's row")
    click.echo(f"A2E budget {m.period:%Y-%m}: {m.limit:,} credits ({source})")
    click.echo(f"spent {m.roster.spent:,}, planned {m.roster.projected:,}: "
               f"{_pct(m.roster.percent)} committed")
    click.echo(f"blocked: {m.blocked_reels} reel(s) on {m.blocked_days} character day(s)")
    if m.characters:
        click.echo(f"\n{'character':<28}{'limit':>10}{'spent':>10}{'planned':>10}{'used':>14}")
        for cid, v in m.characters.items():
            click.echo(f"{cid:<28}{v.limit:>10,}{v.spent:>10,}{v.projected:>10,}"
                       f"{_pct(v.percent):>14}")


@budget.command("set")
@click.argument("credits", type=click.IntRange(min=0))
@MONTH_OPTION
def budget_set(credits: int, month: dt.date) -> None:
    """Set the month's limit to CREDITS (shared by the roster by each character's
    budget_share). Months before last month are refused: nothing plans against them."""
    from waifugen_assets.money.credits import month_budget, set_month_limit

    this_month = clock.now().astimezone(dt.UTC).date().replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    if month < last_month:
        raise click.BadParameter(f"{month:%Y-%m} is over: nothing plans against it any more "
                                 f"(the earliest month you can set is {last_month:%Y-%m})",
                                 param_hint="'--month'")
    with _app_engine().begin() as conn:
        change = set_month_limit(conn, month, credits)
        m = month_budget(conn, month, credits)
    before = ("no row (A2E_MONTHLY_CREDITS)" if change.previous is None
              else f"{change.previous:,}")
    click.echo(f"A2E budget {month:%Y-%m}: {before} -> {credits:,} credits; committed "
               f"{m.roster.committed:,} ({_pct(m.roster.percent)})")
    if change.rearmed:
        click.echo(f"{change.rearmed} budget alert(s) re-armed: sent again when the new "
                   "limit's thresholds are reached")
    if change.unblocked:
        click.echo(f"{change.unblocked} blocked reel(s) planned again: the generation sensor "
                   "renders them")
    if m.roster.committed >= credits and m.roster.committed > 0:
        click.echo("warning: the month has committed the whole new limit: planning blocks "
                   "new reels")
    if m.blocked_reels:
        click.echo(f"{m.blocked_reels} reel(s) on {m.blocked_days} character day(s) stay "
                   "blocked: their characters' shares are still committed")
