"""`waifugen engagement show`: a character's engagement read back, day by day."""

from __future__ import annotations

import datetime as dt

import click

from waifugen_assets.app.cli_common import _app_engine, _fail


@click.group()
def engagement() -> None:
    """Engagement read back from TikTok, Instagram and YouTube."""


@engagement.command("show")
@click.argument("character")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 400),
              help="How many local days, ending today.")
def engagement_show(character: str, days: int) -> None:
    """Per day and platform what the character's posts gained, followers per account, and
    its most viewed posts of the period."""
    import sqlalchemy as sa

    from waifugen_assets.core import clock, schema
    from waifugen_assets.engagement.summary import (
        daily_gains,
        followers,
        number,
        top_posts,
    )

    engine = _app_engine()
    with engine.connect() as conn:
        c = schema.characters
        zone = conn.scalar(sa.select(c.c.timezone).where(c.c.id == character))
        if zone is None:
            _fail(f"unknown character {character!r}: not in the database (run `waifugen run` "
                  "or check the roster)")
        last = clock.local_today(zone)
        first = last - dt.timedelta(days=days - 1)
        gains = daily_gains(conn, character, first, last)
        counts = followers(conn, character, first, last)
        top = top_posts(conn, character, clock.now() - dt.timedelta(days=days))
    click.echo(f"{character}: engagement {first} .. {last} ({zone})")
    click.echo(f"\n{'date':<12}{'platform':<11}{'posts':>6}{'views':>12}{'likes':>10}"
               f"{'comments':>10}{'shares':>8}")
    for g in gains:
        click.echo(f"{g['date']!s:<12}{g['platform']:<11}{g['posts_read']:>6}"
                   f"{number(g['views']):>12}{number(g['likes']):>10}"
                   f"{number(g['comments']):>10}{number(g['shares']):>8}")
    if not gains:
        click.echo("(no readings in these days: the engagement schedule reads posts from an "
                   "hour after they go out)")
    click.echo(f"\n{'date':<12}{'platform':<11}{'followers':>12}")
    for f in counts:
        click.echo(f"{f['captured_on']!s:<12}{f['platform']:<11}{number(f['followers']):>12}")
    if not counts:
        click.echo("(no follower counts in these days)")
    click.echo("\nMost viewed posts:")
    for t in top:
        click.echo(f"  {t.platform:<10} {t.slot_date}  {number(t.views):>10} views  "
                   f"{t.url or '(no public link yet)'}")
    if not top:
        click.echo("  (none read in these days)")
