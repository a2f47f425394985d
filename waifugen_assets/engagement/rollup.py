"""The daily roll-up: what each character's posts gained on a local day, per platform.

Counters are lifetime totals, so a day's gain for a post is its last reading before the day's
end minus its last reading before the day began (nothing before: the whole reading). A
counter a platform lowered (likes taken back, spam views removed) counts as no gain, never as
a negative one. Recomputed from the snapshots each time, so a rerun gives the same rows.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

COUNTERS = ("views", "likes", "comments", "shares", "saves")
# A post is read until 30 days old, a few hours late at most: only those can have a reading.
READ_WINDOW = dt.timedelta(days=32)

# Each post's gain over [:day_start, :day_end), summed per platform. Column names come from
# COUNTERS; every value is bound.
_GAINS = f"""
    WITH posts AS (
        SELECT sp.id, sp.platform FROM social_posts sp JOIN reels r ON r.id = sp.reel_id
        WHERE r.character_id = :character_id AND sp.published_at < :day_end
          AND sp.published_at >= :day_start - CAST(:window AS interval)
    ), last_in AS (
        SELECT DISTINCT ON (es.post_id) es.post_id, {", ".join(f"es.{c}" for c in COUNTERS)}
        FROM engagement_snapshots es JOIN posts p ON p.id = es.post_id
        WHERE es.captured_at >= :day_start AND es.captured_at < :day_end
        ORDER BY es.post_id, es.captured_at DESC
    ), last_before AS (
        SELECT DISTINCT ON (es.post_id) es.post_id, {", ".join(f"es.{c}" for c in COUNTERS)}
        FROM engagement_snapshots es JOIN last_in i ON i.post_id = es.post_id
        WHERE es.captured_at < :day_start
        ORDER BY es.post_id, es.captured_at DESC
    )
    SELECT p.platform, count(*) AS posts_read,
           {", ".join(f"coalesce(sum(greatest(coalesce(i.{c}, 0) - coalesce(b.{c}, 0), 0)), 0)"
                      f" AS {c}" for c in COUNTERS)}
    FROM last_in i JOIN posts p ON p.id = i.post_id
    LEFT JOIN last_before b ON b.post_id = i.post_id
    GROUP BY p.platform
"""  # noqa: S608

_ROLL_UP = sa.text(f"""
    INSERT INTO engagement_daily (character_id, date, platform, posts_read,
                                  {", ".join(COUNTERS)})
    SELECT :character_id, :day, g.* FROM ({_GAINS}) g
    ON CONFLICT (character_id, date, platform) DO UPDATE SET
        posts_read = excluded.posts_read,
        {", ".join(f"{c} = excluded.{c}" for c in COUNTERS)},
        updated_at = now()
""")  # noqa: S608


def day_bounds(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The character's local day as UTC instants [start, end)."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def roll_up(conn: sa.Connection, character_id: str, day: dt.date, timezone: str) -> int:
    """engagement_daily rows for the character's `day`; the number of platforms written."""
    start, end = day_bounds(day, timezone)
    return conn.execute(_ROLL_UP, {"character_id": character_id, "day": day,
                                   "day_start": start, "day_end": end,
                                   "window": f"{READ_WINDOW.days} days"}).rowcount


def gains_between(conn: sa.Connection, character_id: str, start: dt.datetime,
                  end: dt.datetime) -> dict[str, dict[str, int]]:
    """{platform: {posts_read, views, ...}} the character's posts gained in [start, end)
    (`waifugen status`'s last 24 hours)."""
    rows = conn.execute(sa.text(_GAINS), {"character_id": character_id, "day_start": start,
                                          "day_end": end,
                                          "window": f"{READ_WINDOW.days} days"}).mappings()
    return {r["platform"]: {k: int(v) for k, v in r.items() if k != "platform"} for r in rows}
