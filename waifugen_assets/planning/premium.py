"""Weekly premium ("Elite 8"): which characters get a premium reel this week.

The eight with the most engagement over the last seven days; without engagement data (a new
deployment) the roster rotates by ISO week so every character gets its turn. Ties break by id
so the choice is deterministic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from waifugen_assets.core import schema

ELITE_SIZE = 8


def choose_elite(enabled: Sequence[str], engagement: Mapping[str, int], as_of: dt.date,
                 size: int = ELITE_SIZE) -> list[str]:
    ids = sorted(enabled)
    if not ids:
        return []
    scored = [cid for cid in ids if engagement.get(cid, 0) > 0]
    if scored:
        ranked = sorted(ids, key=lambda cid: (-engagement.get(cid, 0), cid))
        return ranked[:size]
    week = as_of.isocalendar().week
    start = (week * size) % len(ids)
    rotated = ids[start:] + ids[:start]
    return rotated[:size]


def engagement_last_week(conn: sa.Connection, as_of: dt.date) -> dict[str, int]:
    """Views + likes + comments + shares per character over the 7 days before `as_of`,
    from each post's latest snapshot in that window."""
    e, p, r = schema.engagement_snapshots, schema.social_posts, schema.reels
    since = dt.datetime.combine(as_of - dt.timedelta(days=7), dt.time(), tzinfo=dt.UTC)
    until = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    latest = (sa.select(e.c.post_id, sa.func.max(e.c.captured_at).label("at"))
              .where(e.c.captured_at >= since, e.c.captured_at < until)
              .group_by(e.c.post_id).subquery())
    score = sum(sa.func.coalesce(c, 0) for c in (e.c.views, e.c.likes, e.c.comments, e.c.shares))
    rows = conn.execute(
        sa.select(r.c.character_id, sa.func.sum(score))
        # The window again on the join: the planner then reads only the week's snapshots,
        # not every snapshot of each post (benchmarks/sensor_ticks.py, weekly_premium).
        .select_from(latest.join(e, sa.and_(e.c.post_id == latest.c.post_id,
                                            e.c.captured_at == latest.c.at,
                                            e.c.captured_at >= since, e.c.captured_at < until))
                     .join(p, p.c.id == e.c.post_id).join(r, r.c.id == p.c.reel_id))
        .group_by(r.c.character_id))
    return {cid: int(total or 0) for cid, total in rows}
