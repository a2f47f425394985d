"""Which characters have engagement reading due: database only, for the hourly schedule.

A post with a reading left is in the partial index on `social_posts.metrics_next_at`, so the
question does not grow with years of posts; followers are due once per account and local day.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.core.clock import local_today


def characters_due(conn: sa.Connection, now: dt.datetime) -> dict[str, tuple[dt.date, str]]:
    """{character: (its local today, why)} for the enabled characters with a post reading or
    a follower count due; why is "N posts" and/or "followers"."""
    c, sp, r, pa, fs = (schema.characters, schema.social_posts, schema.reels,
                        schema.platform_accounts, schema.follower_snapshots)
    posts = dict(conn.execute(
        sa.select(r.c.character_id, sa.func.count())
        .select_from(sp).join(r, r.c.id == sp.c.reel_id)
        .where(sp.c.metrics_next_at.is_not(None), sp.c.metrics_next_at <= now)
        .group_by(r.c.character_id)).all())
    zones = dict(conn.execute(sa.select(c.c.id, c.c.timezone).where(c.c.enabled)).all())
    accounts: dict[str, int] = dict(conn.execute(
        sa.select(pa.c.character_id, sa.func.count())
        .where(pa.c.platform.in_(schema.SOCIAL_PLATFORMS), pa.c.status != "disabled")
        .group_by(pa.c.character_id)).all())
    # Local days are at most a day from the UTC date: two days of rows cover every zone.
    counted: dict[tuple[str, dt.date], int] = {
        (cid, day): n for cid, day, n in conn.execute(
            sa.select(fs.c.character_id, fs.c.captured_on, sa.func.count())
            .where(fs.c.captured_on >= now.date() - dt.timedelta(days=1))
            .group_by(fs.c.character_id, fs.c.captured_on)).all()}
    due: dict[str, tuple[dt.date, str]] = {}
    for cid, tz in zones.items():
        today, why = local_today(tz, now), []
        if posts.get(cid):
            why.append(f"{posts[cid]} posts")
        if accounts.get(cid, 0) > counted.get((cid, today), 0):
            why.append("followers")
        if why:
            due[cid] = (today, " and ".join(why))
    return due
