"""`waifugen reels retry-refused`: reels A2E refused for lack of coins, planned again once the
balance is back (docs/runbooks/credits-depleted.md, 'Top up at A2E')."""

from __future__ import annotations

import datetime as dt

import click

from waifugen_assets.app.cli_common import _app_engine
from waifugen_assets.core import clock
from waifugen_assets.core.config import get_settings


@click.group()
def reels() -> None:
    """Reels: retrying what A2E refused for lack of coins."""


@reels.command("retry-refused")
@click.option("--dry-run", is_flag=True, help="Only list them; change nothing.")
def reels_retry_refused(dry_run: bool) -> None:
    """Put the reels A2E refused for lack of coins (code 402: no task was created, nothing was
    charged) back to planned, when their slot is at most PUBLISH_STALE_AFTER_HOURS old; the
    generation sensor renders them. Top up first: a refusal again fails them again."""
    from waifugen_assets.rendering.retry import retry_refused

    hours = get_settings().publish_stale_after_hours
    with _app_engine().begin() as conn:
        done = retry_refused(conn, clock.now(), dt.timedelta(hours=hours), dry_run=dry_run)
    verb = "would be planned again" if dry_run else "planned again"
    click.echo(f"{len(done.reels)} reel(s) refused for lack of coins {verb}"
               + (":" if done.reels else ""))
    for reel_id, character, date, slot in done.reels:
        click.echo(f"  reel {reel_id}: {character} {date} slot {slot}")
    if done.too_late:
        click.echo(f"{done.too_late} more left failed: their slot is over {hours:g} h old "
                   "(PUBLISH_STALE_AFTER_HOURS)")
