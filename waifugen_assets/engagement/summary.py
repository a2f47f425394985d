"""What the engagement_metrics materialization and `waifugen engagement show` print: the day's
gains per platform, followers per account, and the character's top posts with links."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from waifugen_assets.core import schema
from waifugen_assets.engagement.rollup import COUNTERS
from waifugen_assets.publishing.live_posts import post_url

TOP_POSTS = 5


@dataclass(frozen=True)
class TopPost:
    platform: str
    slot_date: dt.date
    url: str | None
    views: int | None
    likes: int | None
    comments: int | None
    shares: int | None
    read_at: dt.datetime


def daily_gains(conn: sa.Connection, character_id: str, first: dt.date,
                last: dt.date) -> list[dict[str, object]]:
    """engagement_daily rows of the character for first..last, newest first."""
    d = schema.engagement_daily
    rows = conn.execute(sa.select(d).where(d.c.character_id == character_id,
                                           d.c.date >= first, d.c.date <= last)
                        .order_by(d.c.date.desc(), d.c.platform)).mappings()
    return [dict(r) for r in rows]


def followers(conn: sa.Connection, character_id: str, first: dt.date,
              last: dt.date) -> list[dict[str, object]]:
    fs = schema.follower_snapshots
    rows = conn.execute(sa.select(fs.c.captured_on, fs.c.platform, fs.c.followers)
                        .where(fs.c.character_id == character_id, fs.c.captured_on >= first,
                               fs.c.captured_on <= last)
                        .order_by(fs.c.captured_on.desc(), fs.c.platform)).mappings()
    return [dict(r) for r in rows]


def latest_followers(conn: sa.Connection, character_id: str) -> dict[str, int]:
    fs = schema.follower_snapshots
    rows = conn.execute(sa.select(fs.c.platform, fs.c.followers)
                        .where(fs.c.character_id == character_id)
                        .ext(distinct_on(fs.c.platform))
                        .order_by(fs.c.platform, fs.c.captured_on.desc())).all()
    return {p: int(n) for p, n in rows}


def top_posts(conn: sa.Connection, character_id: str, since: dt.datetime,
              limit: int = TOP_POSTS) -> list[TopPost]:
    """The character's most viewed posts among those read since `since` (latest reading)."""
    sp, r, es, pa = (schema.social_posts, schema.reels, schema.engagement_snapshots,
                     schema.platform_accounts)
    latest = (sa.select(es.c.post_id, es.c.captured_at, es.c.views, es.c.likes, es.c.comments,
                        es.c.shares)
              .join(sp, sp.c.id == es.c.post_id).join(r, r.c.id == sp.c.reel_id)
              .where(r.c.character_id == character_id, es.c.captured_at >= since)
              .ext(distinct_on(es.c.post_id)).order_by(es.c.post_id, es.c.captured_at.desc())
              .subquery())
    rows = conn.execute(
        sa.select(sp.c.platform, r.c.date, sp.c.state, sp.c.remote_post_id, sp.c.permalink,
                  pa.c.account_ref, latest.c.views, latest.c.likes, latest.c.comments,
                  latest.c.shares, latest.c.captured_at)
        .join(sp, sp.c.id == latest.c.post_id).join(r, r.c.id == sp.c.reel_id)
        .outerjoin(pa, pa.c.id == sp.c.account_id)
        .order_by(sa.func.coalesce(latest.c.views, -1).desc(), sp.c.id)
        .limit(limit)).all()
    return [TopPost(row.platform, row.date,
                    post_url(row.platform, row.state, row.remote_post_id, row.permalink,
                             row.account_ref),
                    row.views, row.likes, row.comments, row.shares, row.captured_at)
            for row in rows]


def totals_by_platform(rows: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        per = out.setdefault(str(row["platform"]), dict.fromkeys(("posts_read", *COUNTERS), 0))
        for key in per:
            per[key] += int(row[key] or 0)  # type: ignore[call-overload]
    return out


def number(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"
