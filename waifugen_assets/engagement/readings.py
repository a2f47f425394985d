"""One character's engagement read-back: the posts whose next snapshot age is due, read in
the fewest calls each platform allows, stored as raw lifetime counters; followers once per
account and day.

Reads only: a rerun or a backfill takes another snapshot at most, never changes anything on a
platform. A post's checkpoint moves on only after its reading is stored (or the platform said
it has no metrics for it), in the same transaction, so a crash leaves it due.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.engagement_model import AccountStats, PostCounters
from waifugen_assets.core import schema
from waifugen_assets.publishing.social_clients import SocialClients

# The ages at which a post is read (ANALYTICS_OPS.md section 3): early growth, the first day,
# the first week, the month. After the last one a post is not read again.
SNAPSHOT_AGES: tuple[dt.timedelta, ...] = (
    dt.timedelta(hours=1), dt.timedelta(hours=6), dt.timedelta(hours=24),
    dt.timedelta(days=3), dt.timedelta(days=7), dt.timedelta(days=30))
AGE_LABELS = ("1h", "6h", "24h", "3d", "7d", "30d")
TIKTOK_BATCH, YOUTUBE_BATCH = 20, 50  # ids per video/query/ and per videos.list call


def ages_reached(age: dt.timedelta) -> int:
    """How many snapshot ages a post of this age has reached (0..6)."""
    return sum(1 for a in SNAPSHOT_AGES if age >= a)


def next_snapshot_at(published_at: dt.datetime, taken: int) -> dt.datetime | None:
    return published_at + SNAPSHOT_AGES[taken] if taken < len(SNAPSHOT_AGES) else None


@dataclass(frozen=True)
class DuePost:
    id: int
    platform: str
    remote_post_id: str
    published_at: dt.datetime


@dataclass
class ReadOutcome:
    """What one read did, per platform; every post due is in exactly one of the counts."""

    due: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, int] = field(default_factory=dict)
    no_metrics: dict[str, int] = field(default_factory=dict)  # TikTok: not visible to the app
    deferred: dict[str, int] = field(default_factory=dict)  # YouTube units spent
    failed: dict[str, int] = field(default_factory=dict)
    followers: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, counts: dict[str, int], platform: str, n: int = 1) -> None:
        counts[platform] = counts.get(platform, 0) + n


def due_posts(conn: sa.Connection, character_id: str, now: dt.datetime) -> list[DuePost]:
    """The character's live posts with a snapshot due (the partial index on metrics_next_at
    keeps this to posts that still have one)."""
    sp, r = schema.social_posts, schema.reels
    rows = conn.execute(
        sa.select(sp.c.id, sp.c.platform, sp.c.remote_post_id, sp.c.published_at)
        .join(r, r.c.id == sp.c.reel_id)
        .where(sp.c.metrics_next_at.is_not(None), sp.c.metrics_next_at <= now,
               r.c.character_id == character_id, sp.c.state == "published",
               sp.c.remote_post_id.is_not(None))
        .order_by(sp.c.platform, sp.c.published_at, sp.c.id)).all()
    return [DuePost(*row) for row in rows]


def readable_posts(conn: sa.Connection, character_id: str, now: dt.datetime) -> list[DuePost]:
    """Every live post of the character with a reading left, due or not (an early read)."""
    forever = dt.datetime.max.replace(tzinfo=dt.UTC)
    return [p for p in due_posts(conn, character_id, forever) if p.published_at <= now]


def store_readings(engine: sa.Engine, readings: Sequence[tuple[DuePost, PostCounters | None]],
                   now: dt.datetime) -> int:
    """Snapshots for the readings (None: the platform has no metrics for the post), and each
    post's checkpoint moved past every age it has reached, in one transaction."""
    sp, es = schema.social_posts, schema.engagement_snapshots
    stored = 0
    with engine.begin() as conn:
        for post, counters in readings:
            if counters is not None:
                stored += conn.execute(insert(es).values(
                    post_id=post.id, captured_at=now, views=counters.views,
                    likes=counters.likes, comments=counters.comments, shares=counters.shares,
                    saves=counters.saves, reach=counters.reach)
                    .on_conflict_do_nothing(index_elements=[es.c.post_id, es.c.captured_at])
                ).rowcount
            taken = ages_reached(now - post.published_at)  # 0: read early, 1 h still due
            conn.execute(sa.update(sp).where(sp.c.id == post.id).values(
                metrics_checkpoint=taken,
                metrics_next_at=next_snapshot_at(post.published_at, taken)))
    return stored


def _batches(items: Sequence[DuePost], size: int) -> list[Sequence[DuePost]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def read_posts(clients: SocialClients, posts: Sequence[DuePost], outcome: ReadOutcome,
               now: dt.datetime) -> list[tuple[DuePost, PostCounters | None]]:
    """Readings for the due posts, platform by platform; a platform that fails leaves its
    posts due (counted, with the reason) and never stops the others."""
    readings: list[tuple[DuePost, PostCounters | None]] = []
    by_platform: dict[str, list[DuePost]] = {}
    for post in posts:
        by_platform.setdefault(post.platform, []).append(post)
        outcome.add(outcome.due, post.platform)
    for platform, items in by_platform.items():
        client = clients.get(platform)
        if client is None:
            outcome.add(outcome.failed, platform, len(items))
            outcome.reasons[platform] = clients.problems.get(platform, "no account")
            continue
        try:
            readings += _read_platform(clients, platform, items, outcome, now)
        except Exception as exc:  # counted and reported; the next hour retries
            done = {p.id for p, _ in readings}
            left = [p for p in items if p.id not in done]
            outcome.add(outcome.failed, platform, len(left))
            outcome.reasons[platform] = f"{type(exc).__name__}: {exc}"
    return readings


def _read_platform(clients: SocialClients, platform: str, items: list[DuePost],
                   outcome: ReadOutcome, now: dt.datetime,
                   ) -> list[tuple[DuePost, PostCounters | None]]:
    out: list[tuple[DuePost, PostCounters | None]] = []
    if platform == "instagram":
        for post in items:
            counters = clients.call(platform, lambda p=post: clients.instagram.media_insights(
                p.remote_post_id))
            outcome.add(outcome.requests, platform)
            out.append((post, counters))
            outcome.add(outcome.snapshots, platform)
        return out
    size = TIKTOK_BATCH if platform == "tiktok" else YOUTUBE_BATCH
    batches = _batches(items, size)
    if platform == "youtube":
        batches = _youtube_affordable(clients, batches, outcome, now)
    read: Callable[[list[str]], dict[str, PostCounters]] = (
        clients.tiktok.query_videos if platform == "tiktok" else clients.youtube.video_counters)
    for batch in batches:
        ids = [p.remote_post_id for p in batch]
        answer = clients.call(platform, lambda ids=ids: read(ids))
        outcome.add(outcome.requests, platform)
        for post in batch:
            counters = answer.get(post.remote_post_id)
            out.append((post, counters))
            outcome.add(outcome.snapshots if counters is not None else outcome.no_metrics,
                        platform)
    return out


def _youtube_affordable(clients: SocialClients, batches: list[Sequence[DuePost]],
                        outcome: ReadOutcome, now: dt.datetime) -> list[Sequence[DuePost]]:
    """The batches the project's units still allow today (1 unit each); the rest deferred."""
    units = clients.youtube_units
    if units is None:
        return batches
    used = units.used(now)
    affordable = []
    for batch in batches:
        if not units.quota.fits("videos.list", used):
            outcome.add(outcome.deferred, "youtube", len(batch))
            outcome.reasons["youtube"] = "youtube quota: the day's units are spent"
            continue
        affordable.append(batch)
        for bucket, cost in units.quota.cost("videos.list").items():
            used[bucket] = used.get(bucket, 0) + cost
    return affordable


def read_followers(engine: sa.Engine, clients: SocialClients, outcome: ReadOutcome,
                   now: dt.datetime, day: dt.date, platforms: set[str]) -> None:
    """Followers of the accounts in `platforms` (those without a row for `day`: once a day,
    so YouTube spends one unit per channel a day); a hidden or unavailable count writes
    nothing and is read again next hour."""
    fs = schema.follower_snapshots
    reads: dict[str, Callable[[], AccountStats]] = {}
    if clients.tiktok is not None and "tiktok" in platforms:
        reads["tiktok"] = clients.tiktok.user_stats
    if clients.instagram is not None and "instagram" in platforms:
        reads["instagram"] = clients.instagram.followers
    if (clients.youtube is not None and "youtube" in platforms
            and _youtube_fits(clients, "channels.list", now)):
        reads["youtube"] = clients.youtube.channel_stats
    for platform, read in reads.items():
        try:
            stats = clients.call(platform, read)
        except Exception as exc:  # counted and reported; the next hour retries
            outcome.reasons[f"{platform} followers"] = f"{type(exc).__name__}: {exc}"
            continue
        outcome.add(outcome.requests, platform)
        if stats.followers is None:
            continue
        outcome.followers[platform] = stats.followers
        values: dict[str, Any] = {"character_id": clients.character_id, "platform": platform,
                                  "captured_on": day, "followers": stats.followers,
                                  "captured_at": now}
        with engine.begin() as conn:
            conn.execute(insert(fs).values(**values).on_conflict_do_update(
                index_elements=[fs.c.character_id, fs.c.platform, fs.c.captured_on],
                set_={"followers": stats.followers, "captured_at": now}))


def _youtube_fits(clients: SocialClients, operation: str, now: dt.datetime) -> bool:
    units = clients.youtube_units
    return units is None or units.quota.fits(operation, units.used(now))


def followers_due(conn: sa.Connection, character_id: str, day: dt.date) -> set[str]:
    """The platforms of the character without a follower row for `day` yet."""
    fs, pa = schema.follower_snapshots, schema.platform_accounts
    have = set(conn.scalars(sa.select(fs.c.platform).where(
        fs.c.character_id == character_id, fs.c.captured_on == day)))
    accounts = set(conn.scalars(sa.select(pa.c.platform).where(
        pa.c.character_id == character_id, pa.c.status != "disabled",
        pa.c.platform.in_(("tiktok", "instagram", "youtube")))))
    return accounts - have


def minimum_requests(due: dict[str, int]) -> dict[str, int]:
    """The fewest calls batching allows for these posts (the benchmark's yardstick)."""
    return {"tiktok": math.ceil(due.get("tiktok", 0) / TIKTOK_BATCH),
            "instagram": due.get("instagram", 0),
            "youtube": math.ceil(due.get("youtube", 0) / YOUTUBE_BATCH)}
