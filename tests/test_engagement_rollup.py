"""The daily roll-up of lifetime counters into gains (real PostgreSQL), what weekly_premium
reads from it, and that readings move a post's checkpoint in the same transaction."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from resources.engagement_model import PostCounters
from waifugen_assets.core import schema
from waifugen_assets.engagement.readings import DuePost, store_readings
from waifugen_assets.engagement.rollup import day_bounds, roll_up
from waifugen_assets.planning.premium import engagement_last_week

TOKYO = "Asia/Tokyo"
DAY = dt.date(2026, 11, 20)
START, END = day_bounds(DAY, TOKYO)


def _character(conn: sa.Connection, cid: str) -> None:
    conn.execute(sa.insert(schema.characters).values(
        id=cid, name=cid.title(), persona="cheerful", age=24, timezone=TOKYO,
        slots=["08:30", "19:00"]))


def _post(conn: sa.Connection, cid: str, platform: str, published: dt.datetime,
          slot: int = 0) -> int:
    reel = conn.execute(sa.insert(schema.reels).values(
        character_id=cid, date=published.date(), slot=slot, scheduled_at=published,
        plan={}).returning(schema.reels.c.id)).scalar_one()
    return conn.execute(sa.insert(schema.social_posts).values(
        reel_id=reel, platform=platform, ai_disclosure=True, state="published",
        remote_post_id=f"{platform}-{reel}", published_at=published)
        .returning(schema.social_posts.c.id)).scalar_one()


def _snap(conn: sa.Connection, post: int, at: dt.datetime, views: int, likes: int | None) -> None:
    conn.execute(sa.insert(schema.engagement_snapshots).values(
        post_id=post, captured_at=at, views=views, likes=likes, comments=1, shares=0))


def _daily(conn: sa.Connection, cid: str, day: dt.date) -> dict[str, sa.Row]:
    d = schema.engagement_daily
    return {r.platform: r for r in conn.execute(
        sa.select(d).where(d.c.character_id == cid, d.c.date == day))}


def test_a_days_gain_is_the_last_reading_minus_the_one_before_the_day(engine) -> None:
    with engine.begin() as conn:
        _character(conn, "aiko")
        old = _post(conn, "aiko", "youtube", START - dt.timedelta(days=2))
        new = _post(conn, "aiko", "youtube", START + dt.timedelta(hours=2), slot=1)
        ig = _post(conn, "aiko", "instagram", START + dt.timedelta(hours=2), slot=2)
        _snap(conn, old, START - dt.timedelta(hours=5), 1000, 100)
        _snap(conn, old, START + dt.timedelta(hours=3), 1500, 90)  # a like taken back
        _snap(conn, old, START + dt.timedelta(hours=9), 1700, 95)  # the day's last reading
        _snap(conn, new, START + dt.timedelta(hours=3), 40, 4)
        _snap(conn, new, END + dt.timedelta(hours=1), 900, 50)  # tomorrow: not this day
        _snap(conn, ig, START + dt.timedelta(hours=8), 70, None)  # likes not reported
        assert roll_up(conn, "aiko", DAY, TOKYO) == 2
        rows = _daily(conn, "aiko", DAY)
    yt = rows["youtube"]
    assert (yt.posts_read, yt.views, yt.likes, yt.comments) == (2, 700 + 40, 0 + 4, 0 + 1)
    assert (rows["instagram"].views, rows["instagram"].likes) == (70, 0)
    with engine.begin() as conn:  # the next day: the new post's gain over its first reading
        roll_up(conn, "aiko", DAY + dt.timedelta(days=1), TOKYO)
        nxt = _daily(conn, "aiko", DAY + dt.timedelta(days=1))["youtube"]
        assert (nxt.posts_read, nxt.views, nxt.likes) == (1, 860, 46)
        # Recomputed, not added: a rerun gives the same row.
        roll_up(conn, "aiko", DAY, TOKYO)
        assert _daily(conn, "aiko", DAY)["youtube"].views == 740


def test_weekly_premium_reads_the_weeks_gains(engine) -> None:
    d = schema.engagement_daily
    as_of = dt.date(2026, 11, 29)
    with engine.begin() as conn:
        for cid in ("aiko", "bea", "cora"):
            _character(conn, cid)
        rows = [("aiko", 1, 100), ("aiko", 7, 50),
                ("aiko", 8, 10_000),  # before the week
                ("bea", 0, 10_000),  # the day itself: not in the 7 days before it
                ("bea", 3, 7), ("cora", 2, 0)]
        for cid, days_before, views in rows:
            conn.execute(sa.insert(d).values(character_id=cid,
                                             date=as_of - dt.timedelta(days=days_before),
                                             platform="tiktok",
                                             posts_read=1, views=views, likes=1, comments=0,
                                             shares=0, saves=5))
        assert engagement_last_week(conn, as_of) == {"aiko": 152, "bea": 8, "cora": 1}


def test_a_reading_moves_the_checkpoint_with_it(engine) -> None:
    published = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
    with engine.begin() as conn:
        _character(conn, "aiko")
        post = _post(conn, "aiko", "tiktok", published)
    due = DuePost(post, "tiktok", "x", published)
    counters = PostCounters(views=10, likes=1, comments=0, shares=0, saves=None)
    at = published + dt.timedelta(hours=30)  # late for 24 h: 1 h, 6 h and 24 h are behind it
    assert store_readings(engine, [(due, counters)], at) == 1
    assert store_readings(engine, [(due, counters)], at) == 0  # same instant: stored once
    sp = schema.social_posts
    with engine.connect() as conn:
        row = conn.execute(sa.select(sp.c.metrics_checkpoint, sp.c.metrics_next_at)
                           .where(sp.c.id == post)).one()
    assert row == (3, published + dt.timedelta(days=3))
    store_readings(engine, [(due, None)], published + dt.timedelta(days=31))  # no metrics
    with engine.connect() as conn:
        assert conn.execute(sa.select(sp.c.metrics_checkpoint, sp.c.metrics_next_at)
                            .where(sp.c.id == post)).one() == (6, None)
