"""`waifugen slots suggest CHARACTER`: the local posting hours the engagement data supports,
beside the roster's current slots (from the dbt mart analytics.best_posting_hours)."""

from __future__ import annotations

from decimal import Decimal

import click

from waifugen_assets.app.cli_common import _app_engine, _fail

PLATFORMS = ("tiktok", "instagram", "youtube")  # core.schema.SOCIAL_PLATFORMS


@click.group()
def slots() -> None:
    """Posting slots: which local hours the data says to post at."""


def _views(value: Decimal) -> str:
    return f"{value:,.2f}"


def _lift(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@slots.command("suggest")
@click.argument("character")
@click.option("--platform", type=click.Choice(PLATFORMS), default=None,
              help="Only this platform (default: every platform the character posts on).")
@click.option("--top", default=3, show_default=True, type=click.IntRange(1, 24),
              help="How many hours to suggest.")
def slots_suggest(character: str, platform: str | None, top: int) -> None:
    """The best local hours by average views at 24 h (hours with at least 3 posts that have a
    24 h reading), their lift over the character's average, and how the current slots do."""
    from waifugen_assets.analytics.slots import MIN_POSTS_PER_HOUR, SlotsError, suggest_hours

    engine = _app_engine()
    try:
        with engine.connect() as conn:
            s = suggest_hours(conn, character, platform=platform, top=top)
    except SlotsError as exc:
        _fail(str(exc))
        return
    scope = "every platform" if platform is None else platform
    header = f"  {'local':<7}{'platform':<11}{'posts':>6}{'avg views 24h':>15}{'lift':>7}"
    if s.message:
        click.echo(f"{character} ({s.timezone}), {scope}")
        click.echo(s.message)
    else:
        click.echo(f"{character} ({s.timezone}), {scope}: {s.posts_with_reading} posts with a "
                   "24 h reading")
        click.echo(f"\nHours the data supports (at least {MIN_POSTS_PER_HOUR} posts each), "
                   "best first:")
        click.echo(f"{header}  slot now?")
        for h in s.hours:
            click.echo(f"  {h.label:<7}{h.platform:<11}{h.posts:>6}{_views(h.avg_views_24h):>15}"
                       f"{_lift(h.lift):>7}  {'yes' if s.is_current(h.local_hour) else 'no'}")
    click.echo(f"\nCurrent slots ({', '.join(c.slot for c in s.current) or 'none'}):")
    if s.current:
        click.echo(header.replace("local  ", "slot   "))
    for c in s.current:
        if not c.stats:
            click.echo(f"  {c.slot:<7}(no post with a 24 h reading in this hour)")
        for h in c.stats:
            note = "" if h.enough_data else f"  (fewer than {MIN_POSTS_PER_HOUR} posts)"
            click.echo(f"  {c.slot:<7}{h.platform:<11}{h.posts:>6}{_views(h.avg_views_24h):>15}"
                       f"{_lift(h.lift):>7}{note}")
