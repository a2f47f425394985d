"""Sensor ticks against years of history: each sensor's and schedule's evaluation, timed on one
day of history and again on years of it, with the same "today" of unfinished work.

    python -m benchmarks sensor_ticks [--characters 1000] [--years 3] [--subscribers-per-day 2]
                                      [--history-days N] [--repeat 7] [--server-url URL]
                                      [--docs PATH] [--no-docs]

A scratch PostgreSQL database (embedded pgserver in a temp dir, or `--server-url` /
TEST_DATABASE_URL; dropped afterwards) is seeded with set-based SQL (generate_series): N
characters in the roster's eight time zones, four slots a day, TikTok, Instagram, YouTube,
Fanvue and Telegram accounts, the sequences of sequences.yaml, and

- today, the unfinished work (`Seeder.roster_and_today`), the same at every measurement:
  each character's reels of its local day by slot time (posted, being posted, rendering,
  waiting for A2E's budget, planned), A2E requests spent in the last hour, the subscribers
  whose sequences still run (joined in the last 17 days: the last step's day and expiry;
  every step come due so far sent or skipped), and DM work for a few characters (events not
  applied, due and doubtful messages, new subscribers with no message yet);
- history, the finished work, added oldest-last between measurements: per character and day
  four reels (70 % published everywhere, 25 % branded with the YouTube post skipped, 3 %
  failed, 2 % missed), their posts and one engagement snapshot per published post, and
  `--subscribers-per-day` subscribers whose sequences ended that day, every step sent or
  skipped, their events applied. Tables no sensor reads (videos, post attempts, the credit
  ledger) stay empty.

At each point (1 day, 30 days, 1 year, the whole history) the database is VACUUM ANALYZEd and
every tick is evaluated `--repeat` times after one warm-up through Dagster, as the daemon does
(build_sensor_context / build_schedule_context with the real definitions and resources, used
as context managers so they are closed), on the clock frozen at the same instant: `roster`,
`generation`, `posting`, `dms` (INBOUND_MODE=polling), `comments`, `daily_plans`,
`weekly_premium`, `engagement` (the hourly engagement schedule), and
`poll_reads`: what the `subscriber_poll` run the dms sensor asks for reads from the database
for every Fanvue and Telegram account (its HTTP calls are not timed). The run keys each asks
for are compared with the first point's (the same today: the same work).

Then every statement the ticks send to the app database is captured (SQLAlchemy's
before_cursor_execute) and EXPLAIN (ANALYZE, BUFFERS)ed on the largest history, and planned
again with enable_seqscan off: a statement that reads a history table by sequential scan even
then has no index to use, and one that does so in its plan on a table of 10,000 rows or more
reads all of history: either way the harness exits 1.

The result line:

    sensor_ticks: N characters, D days of history (R reels, P posts, S subscribers, M DMs),
    slowest tick T ms (name), largest ratio X (name)

T the slowest median tick on the whole history, X the largest median ratio whole history /
one day. Targets: under 200 ms a tick, ratio under 2. Results: docs/benchmarks.md,
"## Sensor ticks".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.report import DOCS, machine, write_section
from benchmarks.scratch_db import database, server, server_version
from benchmarks.settings_env import environment

TICKS = ("roster", "generation", "posting", "dms", "comments", "daily_plans",
         "weekly_premium", "engagement")
# Measured beside them, not a tick (no target): what the subscriber_poll run reads.
MEASURED = (*TICKS[:5], "poll_reads", *TICKS[5:])
HISTORY_TABLES = ("reels", "social_posts", "engagement_snapshots", "engagement_daily",
                  "follower_snapshots", "subscribers", "dm_messages", "inbound_events",
                  "post_attempts", "credit_ledger", "revenue_events", "videos", "comments",
                  "comment_replies", "comment_polls")
TARGET_MS, TARGET_RATIO = 200.0, 2.0
LARGE = 10_000  # rows from which a sequential scan of a history table is a finding
HEADING = "## Sensor ticks"


@dataclass
class Point:
    """One measurement: the history it had and each tick's timings (ms)."""

    days: int
    rows: dict[str, int]
    ms: dict[str, list[float]] = field(default_factory=dict)  # the whole evaluation
    db_ms: dict[str, list[float]] = field(default_factory=dict)  # in app database statements
    # Buffer pages the tick's statements touched (EXPLAIN ANALYZE, BUFFERS): its work in the
    # database, which the other processes on a shared machine do not blur as they do time.
    pages: dict[str, int] = field(default_factory=dict)
    requests: dict[str, list[str]] = field(default_factory=dict)
    load: float = 0.0  # the machine's 1-minute load average when measured

    def median(self, tick: str) -> float:
        return statistics.median(self.ms[tick])

    def db_median(self, tick: str) -> float:
        return statistics.median(self.db_ms[tick])


@dataclass
class Result:
    characters: int
    history_days: int
    subscribers_per_day: int
    repeat: int
    points: list[Point]
    plans: dict[str, list[dict[str, Any]]]  # tick -> [{"sql", "plan"}]
    seq_scans: list[str]  # history tables read by seq scan even with enable_seqscan off
    same_work: dict[str, bool]
    seed_s: float
    wall_s: float
    database: str
    db_size_gb: float

    @property
    def last(self) -> Point:
        return self.points[-1]

    def ratio(self, tick: str) -> float:
        return self.last.median(tick) / max(self.points[0].median(tick), 1e-6)

    @property
    def base(self) -> Point:
        """Where the pages ratio starts: 30 days, when every window a tick reads is full (last
        week's engagement), else the first point."""
        return next((p for p in self.points if p.days == 30), self.points[0])

    def pages_ratio(self, tick: str) -> float:
        return self.last.pages[tick] / max(self.base.pages[tick], 1)

    def slowest(self) -> tuple[str, float]:
        tick = max(TICKS, key=self.last.median)
        return tick, self.last.median(tick)

    def largest_ratio(self) -> tuple[str, float]:
        tick = max(TICKS, key=self.ratio)
        return tick, self.ratio(tick)

    def ok(self) -> bool:
        return not self.seq_scans and all(self.same_work.values())

    def line(self) -> str:
        rows = self.last.rows
        (slow, ms), (worst, ratio) = self.slowest(), self.largest_ratio()
        most = max(TICKS, key=self.pages_ratio)
        return (f"sensor_ticks: {self.characters} characters, {self.history_days} days of history "
                f"({rows['reels']:,} reels, {rows['social_posts']:,} posts, "
                f"{rows['subscribers']:,} subscribers, {rows['dm_messages']:,} DMs), slowest "
                f"tick {ms:.0f} ms ({slow}), largest ratio {ratio:.2f} ({worst}), pages x"
                f"{self.pages_ratio(most):.2f} from {self.base.days} d ({most})")


# --- seeding ------------------------------------------------------------------------------------

ZONES = ("Asia/Tokyo", "Europe/Madrid", "America/New_York", "America/Sao_Paulo",
         "Australia/Sydney", "Europe/Berlin", "America/Los_Angeles", "Asia/Seoul")
SLOTS = ("09:00", "13:00", "18:00", "21:30")
ACCOUNTS = ("tiktok", "instagram", "youtube", "fanvue", "telegram")
CHUNK_DAYS = 61  # history is added two months per statement
A2E_KEY = "sk_bench_sensor_ticks"
# A plan the size the planner writes: script, caption, title, hashtags, per-platform texts.
PLAN = json.dumps({
    "title": "Morning routine, the honest version " + "x" * 30,
    "script": "Good morning! Today I am showing you my real morning routine. " * 8,
    "caption": "My morning routine, no filters (well, a few). What does yours look like? " * 2,
    "hashtags": ["morningroutine", "dayinmylife", "virtualcreator", "aiart", "vlog", "daily"],
    "disclosure": "AI-generated virtual creator. This video was made with AI.",
    "source": "llm",
    "platforms": {p: {"caption": "My morning routine, no filters. #morningroutine " * 2}
                  for p in ("tiktok", "instagram", "youtube")}})
DM_TEXT = ("Hi there, welcome! I'm really glad you're here. A little preview: my newest video "
           "goes up this week. [automated message]")
# Bytes a reel with its posts and snapshots, and a subscriber with its DMs and events, take
# with their indexes (measured on a 100-character run, rounded up).
BYTES_PER_REEL, BYTES_PER_SUBSCRIBER = 3_600, 2_200

_REELS = """
    INSERT INTO reels (character_id, date, slot, scheduled_at, plan, status, failure_reason,
        generation_provider, generation_task_id, generation_result_url, generation_attempts,
        generation_submitted_at, next_attempt_at, projected_credits, created_at, updated_at)
    SELECT x.cid, x.d, x.slot, x.at, CAST(:plan AS jsonb), x.status,
        CASE x.status WHEN 'failed' THEN 'a2e: render failed'
                      WHEN 'skipped' THEN 'missed: its slot passed unrendered' END,
        CASE WHEN x.status NOT IN ('planned', 'skipped') THEN 'a2e' END,
        CASE WHEN x.status NOT IN ('planned', 'skipped')
             THEN 'bench-' || x.cid || '-' || x.d || '-' || x.slot END,
        CASE WHEN x.status IN ('generated', 'stored', 'branded', 'published')
             THEN 'https://a2e.example/r/' || x.cid || '/' || x.d || '/' || x.slot END,
        CASE WHEN x.status NOT IN ('planned', 'skipped') THEN 1 ELSE 0 END,
        CASE WHEN x.status NOT IN ('planned', 'skipped') THEN x.at - interval '2 hours' END,
        CASE WHEN x.status = 'generating' THEN CAST(:now AS timestamptz)
             + CASE WHEN x.h % 3 = 0 THEN interval '-1 minute' ELSE interval '3 minutes' END
        END,
        30, x.at - interval '20 hours', least(x.at + interval '10 minutes', CAST(:now AS
                                                                              timestamptz))
    FROM (
        SELECT c.id AS cid, d.d, (s.n - 1)::smallint AS slot,
               (d.d + CAST(s.t AS time)) AT TIME ZONE c.timezone AS at,
               abs(hashtext(c.id || d.d::text || s.n::text)) % 100 AS h,
               CASE WHEN :today THEN CASE
                   WHEN (d.d + CAST(s.t AS time)) AT TIME ZONE c.timezone
                        <= CAST(:now AS timestamptz) - interval '1 hour'
                       THEN CASE WHEN abs(hashtext(c.id || s.n::text)) % 100 < 70
                                 THEN 'published' ELSE 'branded' END
                   WHEN (d.d + CAST(s.t AS time)) AT TIME ZONE c.timezone
                        <= CAST(:now AS timestamptz) THEN 'branded'
                   WHEN (d.d + CAST(s.t AS time)) AT TIME ZONE c.timezone
                        <= CAST(:now AS timestamptz) + interval '2 hours'
                       THEN CASE WHEN abs(hashtext(c.id || s.n::text)) % 100 < 50
                                 THEN 'generating'
                                 WHEN abs(hashtext(c.id || s.n::text)) % 100 < 70
                                 THEN 'stored' ELSE 'branded' END
                   ELSE 'planned' END
               ELSE CASE
                   WHEN abs(hashtext(c.id || d.d::text || s.n::text)) % 100 < 70 THEN 'published'
                   WHEN abs(hashtext(c.id || d.d::text || s.n::text)) % 100 < 95 THEN 'branded'
                   WHEN abs(hashtext(c.id || d.d::text || s.n::text)) % 100 < 98 THEN 'failed'
                   ELSE 'skipped' END
               END AS status
        FROM characters c
        CROSS JOIN generate_series(:lo, :hi) AS o(off)
        CROSS JOIN LATERAL (SELECT (CAST(:now AS timestamptz) AT TIME ZONE c.timezone)::date
                                   - o.off AS d) d
        CROSS JOIN LATERAL jsonb_array_elements_text(c.slots) WITH ORDINALITY AS s(t, n)
    ) x
"""

# Posts of the reels after id :after: published everywhere, or (branded) TikTok and Instagram
# published and YouTube skipped (history) or deferred for its quota (today); a reel whose slot
# came in the last hour is being posted.
_POSTS = """
    INSERT INTO social_posts (reel_id, platform, account_id, state, ai_disclosure,
        remote_handle, remote_post_id, permalink, attempts, last_error, next_attempt_at,
        published_at, metrics_next_at, created_at, updated_at)
    SELECT y.id, y.platform, pa.id, y.state, true,
        CASE WHEN y.state <> 'skipped' AND y.state <> 'deferred' AND y.state <> 'planned'
             THEN 'h-' || y.id || '-' || y.platform END,
        CASE WHEN y.state = 'published' THEN y.platform || '-' || y.id END,
        CASE WHEN y.state = 'published' THEN 'https://' || y.platform || '.example/' || y.id END,
        CASE WHEN y.state IN ('planned', 'skipped') THEN 0 ELSE 1 END,
        CASE y.state WHEN 'skipped' THEN 'stale: its slot was over 3 h ago'
                     WHEN 'deferred' THEN 'youtube quota: daily units spent' END,
        CASE WHEN y.state = 'deferred' THEN CAST(:now AS timestamptz) + interval '6 hours' END,
        CASE WHEN y.state = 'published' THEN y.scheduled_at + interval '2 minutes' END,
        -- The next engagement reading: the first age (1 h, 6 h, 24 h, 3 d, 7 d, 30 d) the
        -- post has not reached, none after 30 days (engagement/readings.py); one in five of
        -- the last day's posts has the age it last reached still to read (due now).
        CASE WHEN y.state <> 'published' THEN NULL
             WHEN y.scheduled_at > CAST(:now AS timestamptz) - interval '1 day'
                  AND y.id % 5 = 0 THEN (
            SELECT y.scheduled_at + interval '2 minutes' + a.age
            FROM unnest(ARRAY[interval '1 hour', interval '6 hours']) a(age)
            WHERE y.scheduled_at + interval '2 minutes' + a.age <= CAST(:now AS timestamptz)
            ORDER BY a.age DESC LIMIT 1)
             ELSE (
            SELECT y.scheduled_at + interval '2 minutes' + a.age
            FROM unnest(ARRAY[interval '1 hour', interval '6 hours', interval '24 hours',
                              interval '3 days', interval '7 days', interval '30 days']) a(age)
            WHERE y.scheduled_at + interval '2 minutes' + a.age > CAST(:now AS timestamptz)
            ORDER BY a.age LIMIT 1) END,
        y.scheduled_at, least(y.scheduled_at + interval '2 minutes', CAST(:now AS timestamptz))
    FROM (
        SELECT r.id, r.character_id, r.scheduled_at, p.platform, CASE
            WHEN r.status = 'published' THEN 'published'
            WHEN r.scheduled_at > CAST(:now AS timestamptz) - interval '1 hour'
                THEN CASE p.platform WHEN 'tiktok' THEN 'published'
                                     WHEN 'instagram' THEN 'processing' ELSE 'planned' END
            WHEN p.platform <> 'youtube' THEN 'published'
            WHEN r.scheduled_at > CAST(:now AS timestamptz) - interval '1 day' THEN 'deferred'
            ELSE 'skipped' END AS state
        FROM reels r CROSS JOIN unnest(ARRAY['tiktok', 'instagram', 'youtube']) AS p(platform)
        WHERE r.id > :after AND r.status IN ('published', 'branded')
          AND r.scheduled_at <= CAST(:now AS timestamptz)
          AND (r.scheduled_at <= CAST(:now AS timestamptz) - interval '1 hour'
               OR r.id % 2 = 0)
    ) y
    JOIN platform_accounts pa ON pa.character_id = y.character_id AND pa.platform = y.platform
"""

_SNAPSHOTS = """
    INSERT INTO engagement_snapshots (post_id, captured_at, views, likes, comments, shares)
    SELECT sp.id, sp.published_at + interval '1 day', abs(hashtext(sp.id::text)) % 50000,
           abs(hashtext(sp.id::text)) % 3000, abs(hashtext(sp.id::text)) % 200,
           abs(hashtext(sp.id::text)) % 100
    FROM social_posts sp
    WHERE sp.id > :after AND sp.state = 'published'
      AND sp.published_at + interval '1 day' <= CAST(:now AS timestamptz)
"""

# The engagement stage's daily roll-up of those snapshots (one reading per post: its gain is
# its counters), what the weekly_premium schedule reads.
_DAILY = """
    INSERT INTO engagement_daily (character_id, date, platform, posts_read, views, likes,
        comments, shares, saves)
    SELECT r.character_id, (es.captured_at AT TIME ZONE 'UTC')::date, sp.platform, count(*),
           sum(es.views), sum(es.likes), sum(es.comments), sum(es.shares), 0
    FROM engagement_snapshots es
    JOIN social_posts sp ON sp.id = es.post_id
    JOIN reels r ON r.id = sp.reel_id
    WHERE es.id > :after
    GROUP BY 1, 2, 3
    ON CONFLICT (character_id, date, platform) DO UPDATE SET
        posts_read = engagement_daily.posts_read + excluded.posts_read,
        views = engagement_daily.views + excluded.views,
        likes = engagement_daily.likes + excluded.likes,
        comments = engagement_daily.comments + excluded.comments,
        shares = engagement_daily.shares + excluded.shares
"""

# Comment reads of the Instagram and YouTube posts after id :after (comments/due.py): each was
# read; those still in their 7-day window are read again later (not due now), except one in
# seven of the last day's, whose read is due. A third of them has a comment answered (its
# reply sent); one in ten of the last day's comments still waits for its answer.
_COMMENT_POLLS = """
    INSERT INTO comment_polls (post_id, character_id, last_polled_at, next_poll_at)
    SELECT sp.id, r.character_id, least(sp.published_at + interval '1 hour',
                                        CAST(:now AS timestamptz)),
           CASE WHEN sp.published_at <= CAST(:now AS timestamptz) - interval '7 days' THEN NULL
                WHEN sp.published_at > CAST(:now AS timestamptz) - interval '1 day'
                     AND sp.id % 7 = 0 THEN CAST(:now AS timestamptz) - interval '1 minute'
                ELSE CAST(:now AS timestamptz) + interval '30 minutes' END
    FROM social_posts sp JOIN reels r ON r.id = sp.reel_id
    WHERE sp.id > :after AND sp.state = 'published'
      AND sp.platform IN ('instagram', 'youtube')
"""
_COMMENTS = """
    INSERT INTO comments (post_id, character_id, platform, remote_comment_id, author_id,
        author_handle, text, commented_at, fetched_at, classification, state, updated_at)
    SELECT sp.id, r.character_id, sp.platform, 'c-' || sp.id, 'fan-' || sp.id % 9973,
           'fan_' || sp.id % 9973, 'What song is this?', sp.published_at + interval '2 hours',
           sp.published_at + interval '2 hours', 'question',
           CASE WHEN sp.published_at > CAST(:now AS timestamptz) - interval '1 day'
                     AND sp.id % 10 = 0 THEN 'new' ELSE 'answered' END,
           sp.published_at + interval '2 hours'
    FROM social_posts sp JOIN reels r ON r.id = sp.reel_id
    WHERE sp.id > :after AND sp.state = 'published' AND sp.id % 3 = 0
      AND sp.platform IN ('instagram', 'youtube')
      AND sp.published_at + interval '2 hours' <= CAST(:now AS timestamptz)
"""
_COMMENT_REPLIES = """
    INSERT INTO comment_replies (comment_id, text, source, state, remote_reply_id, attempts,
        attempted_at, created_at, updated_at, sent_at)
    SELECT c.id, 'Thank you! [AI-generated character]', 'template', 'sent', 'r-' || c.id, 1,
           c.fetched_at + interval '5 minutes', c.fetched_at, c.fetched_at,
           c.fetched_at + interval '5 minutes'
    FROM comments c WHERE c.id > :after AND c.state = 'answered'
"""

# One follower count per account and local day for the days :lo..:hi before now; today's
# (day 0) is missing for one character in ten, whose engagement run is then due.
_FOLLOWERS = """
    INSERT INTO follower_snapshots (character_id, platform, captured_on, followers, captured_at)
    SELECT pa.character_id, pa.platform, d.d, 1000 + abs(hashtext(pa.character_id)) % 50000,
           CAST(:now AS timestamptz) - make_interval(days => o.off)
    FROM platform_accounts pa
    JOIN characters c ON c.id = pa.character_id
    CROSS JOIN generate_series(:lo, :hi) AS o(off)
    CROSS JOIN LATERAL (SELECT (CAST(:now AS timestamptz) AT TIME ZONE c.timezone)::date
                               - o.off AS d) d
    WHERE pa.platform IN ('tiktok', 'instagram', 'youtube')
      AND (o.off > 0 OR abs(hashtext(c.id)) % 10 <> 0)
"""

# :per_day subscribers per character for each of the days :lo..:hi before now (day 0: the
# last 24 hours), one in five VIP, a third of them having written back.
_SUBSCRIBERS = """
    INSERT INTO subscribers (character_id, platform, external_id, handle, display_name, tier,
        tags, score, subscribed_at, last_inbound_at, last_outbound_at, created_at, updated_at)
    SELECT c.id, CASE WHEN k % 2 = 0 THEN 'fanvue' ELSE 'telegram' END,
           'bench-' || o.off || '-' || k, 'fan_' || o.off || '_' || k, 'Fan ' || k,
           CASE WHEN x.h < 20 THEN 'vip' ELSE 'standard' END, '["new"]'::jsonb, 10, x.at,
           CASE WHEN x.h % 3 = 0 THEN least(x.at + interval '1 hour',
                                            CAST(:now AS timestamptz)) END,
           x.at, x.at, x.at
    FROM characters c
    CROSS JOIN generate_series(:lo, :hi) AS o(off)
    CROSS JOIN generate_series(1, :per_day) AS k
    CROSS JOIN LATERAL (SELECT CAST(:now AS timestamptz) - make_interval(days => o.off)
                               - make_interval(secs => 60 + abs(hashtext(c.id || o.off || k))
                                                          % 86000) AS at,
                               abs(hashtext(c.id || k || o.off)) % 100 AS h) x
"""

# Every step of the subscriber's sequence that has come due: sent, or skipped (its condition).
_DMS = """
    INSERT INTO dm_messages (subscriber_id, sequence_id, step, variant, state, due_at, text,
        remote_message_id, sent_at, created_at, updated_at)
    SELECT s.id, st.sequence_id, st.step, 'warm', x.state,
           s.subscribed_at + make_interval(days => st.day),
           CASE WHEN x.state = 'sent' THEN CAST(:text AS text) END,
           CASE WHEN x.state = 'sent' THEN 'm-' || s.id || '-' || st.step END,
           CASE WHEN x.state = 'sent' THEN least(s.subscribed_at
                + make_interval(days => st.day, mins => 3), CAST(:now AS timestamptz)) END,
           s.subscribed_at + make_interval(days => st.day),
           least(s.subscribed_at + make_interval(days => st.day, mins => 3),
                 CAST(:now AS timestamptz))
    FROM subscribers s
    JOIN unnest(CAST(:tiers AS text[]), CAST(:sequences AS bigint[]), CAST(:steps AS int[]),
                CAST(:days AS int[]), CAST(:sent_pct AS int[]))
         AS st(tier, sequence_id, step, day, sent_pct) ON st.tier = s.tier
    CROSS JOIN LATERAL (SELECT CASE WHEN abs(hashtext(s.id || ':' || st.step)) % 100
                                         < st.sent_pct THEN 'sent' ELSE 'skipped' END AS state) x
    WHERE s.id > :after
      AND s.subscribed_at + make_interval(days => st.day) <= CAST(:now AS timestamptz)
"""

# A subscriber's events, applied: it subscribed, and a third wrote back. Event ids as the
# platforms make them: Telegram `<bot>:<update>` (updates counting up), Fanvue `poll:...`.
_EVENTS = """
    INSERT INTO inbound_events (platform, event_id, event_type, character_id, subscriber_id,
        external_id, occurred_at, payload, data, received_at, processed_at)
    SELECT s.platform, CASE WHEN s.platform = 'telegram'
               THEN bot.external_user_id || ':' || (2 * s.id + e.n)
               ELSE 'poll:' || e.kind || ':' || s.id END,
           e.type, s.character_id, s.id, s.external_id, e.at, '{"source": "bench"}'::jsonb,
           '{"handle": "fan"}'::jsonb, e.at, e.at + interval '1 minute'
    FROM subscribers s
    JOIN platform_accounts bot ON bot.character_id = s.character_id
                              AND bot.platform = 'telegram'
    CROSS JOIN LATERAL (VALUES (0, 'sub', 'subscriber.new', s.subscribed_at),
                               (1, 'msg', 'message.received', s.last_inbound_at))
         e(n, kind, type, at)
    WHERE s.id > :after AND e.at IS NOT NULL
"""

# Today's DM work, for a few characters by their place in the roster: an event not applied
# (1 in 50), a due message (1 in 50), a message waiting for the morning (1 in 50: not work), a
# send in doubt (1 in 200), a subscriber whose day-0 step has no message yet (1 in 33).
_DM_WORK = """
    WITH c AS (SELECT id, row_number() OVER (ORDER BY id) AS i FROM characters),
    events AS (
        INSERT INTO inbound_events (platform, event_id, event_type, character_id, external_id,
                                    occurred_at, payload, data, received_at)
        SELECT 'telegram', bot.external_user_id || ':' || 999999999999, 'subscriber.new', c.id,
               'today-' || c.id, CAST(:now AS timestamptz) - interval '2 minutes', '{}'::jsonb,
               '{}'::jsonb, CAST(:now AS timestamptz) - interval '2 minutes'
        FROM c JOIN platform_accounts bot ON bot.character_id = c.id
                                         AND bot.platform = 'telegram'
        WHERE c.i % 50 = 1 RETURNING 1),
    subs AS (
        INSERT INTO subscribers (character_id, platform, external_id, tier, subscribed_at)
        SELECT c.id, 'fanvue', 'today-' || c.id, 'standard', CAST(:now AS timestamptz)
               - CASE WHEN c.i % 33 = 5 THEN interval '10 minutes' ELSE interval '20 minutes' END
        FROM c WHERE c.i % 50 IN (2, 3) OR c.i % 200 = 4 OR c.i % 33 = 5
        RETURNING id, character_id, subscribed_at)
    INSERT INTO dm_messages (subscriber_id, sequence_id, step, state, due_at, not_before, text)
    SELECT subs.id, :sequence, 0, CASE WHEN c.i % 200 = 4 THEN 'unknown' ELSE 'planned' END,
           subs.subscribed_at, CASE WHEN c.i % 50 = 3 AND c.i % 200 <> 4
               THEN CAST(:now AS timestamptz) + interval '5 hours' END,
           CASE WHEN c.i % 200 = 4 THEN CAST(:text AS text) END
    FROM subs JOIN c ON c.id = subs.character_id WHERE c.i % 33 <> 5
"""


def estimate_bytes(characters: int, days: int, subscribers_per_day: int) -> int:
    """Today and `days` of history (17 days of running sequences on top for subscribers)."""
    return characters * ((days + 1) * len(SLOTS) * BYTES_PER_REEL
                         + (days + 17) * subscribers_per_day * BYTES_PER_SUBSCRIBER)


class Seeder:
    """Set-based inserts into the scratch database, relative to one frozen `now`."""

    def __init__(self, engine: sa.Engine, now: dt.datetime, characters: int,
                 subscribers_per_day: int) -> None:
        self.engine, self.now = engine, now
        self.characters, self.per_day = characters, subscribers_per_day
        self.a2e_key = A2E_KEY
        self.steps: dict[str, list[int]] = {}
        self.span = 1  # days a subscriber's sequence runs: their subscribers are today's work

    def _run(self, sql: str, **params: Any) -> int:
        with self.engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            return conn.execute(sa.text(sql), {"now": self.now, **params}).rowcount

    def _max_id(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(sa.column("id")), 0))
                                   .select_from(sa.table(table))) or 0)

    def roster_and_today(self, progress: Callable[[str], None]) -> list[str]:
        """The characters, their accounts and sequences, and today's work; their ids."""
        from resources.a2e import rate_key
        from waifugen_assets.subscribers.cycle import sync_sequences
        from waifugen_assets.subscribers.sequences import load_sequences

        self._run("DELETE FROM characters")  # scratch_db's one DM character
        self._run("""
            INSERT INTO characters (id, name, persona, age, timezone, slots, a2e_avatar_id,
                                    a2e_voice_id)
            SELECT 'bench-' || lpad(i::text, 5, '0'), 'Bench ' || i, 'a friendly creator', 25,
                   (CAST(:zones AS text[]))[1 + i % 8], CAST(:slots AS jsonb), 'av-' || i,
                   'vo-' || i
            FROM generate_series(1, :n) i""", zones=list(ZONES), slots=json.dumps(SLOTS),
                  n=self.characters)
        self._run("""
            INSERT INTO platform_accounts (character_id, platform, account_ref, external_user_id)
            SELECT c.id, p, c.id || '-' || p, CASE WHEN p = 'telegram'
                   THEN (7000000000 + substr(c.id, 7)::bigint)::text END
            FROM characters c, unnest(CAST(:p AS text[])) p""", p=list(ACCOUNTS))
        root = Path(__file__).resolve().parent.parent
        synced = sync_sequences(self.engine, load_sequences(root / "sequences.yaml"))
        for sid, seq in synced.items():
            for step in seq.steps:
                self.span = max(self.span, step.day + math.ceil(step.expire_after_hours / 24))
                for key, value in (("tiers", seq.tier), ("sequences", sid),
                                   ("steps", step.index), ("days", step.day),
                                   ("sent_pct", 40 if step.condition.as_dict() else 100)):
                    self.steps.setdefault(key, []).append(value)
        standard = next(sid for sid, seq in synced.items()
                        if seq.tier == "standard" and seq.character is None)
        start = time.perf_counter()
        self._reels(0, 0, today=True)
        self._subscribers(0, self.span - 1)
        self._run(_DM_WORK, sequence=standard, text=DM_TEXT)
        # Two in three characters have grown past the launch phase (phases.yaml defaults):
        # weekly_premium chooses among them.
        self._run("""
            INSERT INTO character_phases (character_id, phase, previous_phase, direction,
                crossed_on, followers, threshold, snapshot, effective_on, recorded_at)
            SELECT c.id, 'growth', 'launch', 'up', CAST(:now AS date) - 200, 10000, 10000,
                   '[]'::jsonb, CAST(:now AS date) - 199, CAST(:now AS timestamptz)
            FROM characters c WHERE abs(hashtext(c.id)) % 3 <> 0""")
        # 60 of the key's 100 A2E requests this hour are spent.
        self._run("""
            INSERT INTO rate_limit_log (platform, account_key, window_seconds, taken_at, units)
            SELECT 'a2e', :key, 3600, CAST(:now AS timestamptz) - make_interval(mins => k), 1
            FROM generate_series(1, 60) k""", key=rate_key(self.a2e_key))
        progress(f"  roster of {self.characters} and today seeded in "
                 f"{time.perf_counter() - start:.1f} s")
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.text("SELECT id FROM characters ORDER BY id")))

    def _reels(self, lo: int, hi: int, today: bool = False) -> tuple[int, int]:
        reels, posts = self._max_id("reels"), self._max_id("social_posts")
        n = self._run(_REELS, lo=lo, hi=hi, today=today, plan=PLAN)
        p = self._run(_POSTS, after=reels)
        snapshots = self._max_id("engagement_snapshots")
        self._run(_SNAPSHOTS, after=posts)
        self._run(_DAILY, after=snapshots)
        self._run(_FOLLOWERS, lo=lo, hi=hi)
        comments = self._max_id("comments")
        self._run(_COMMENT_POLLS, after=posts)
        self._run(_COMMENTS, after=posts)
        self._run(_COMMENT_REPLIES, after=comments)
        return n, p

    def _subscribers(self, lo: int, hi: int) -> int:
        after = self._max_id("subscribers")
        n = self._run(_SUBSCRIBERS, lo=lo, hi=hi, per_day=self.per_day)
        self._run(_DMS, after=after, text=DM_TEXT, **self.steps)
        self._run(_EVENTS, after=after)
        return n

    def history(self, first: int, last: int, progress: Callable[[str], None]) -> None:
        """Days `first`..`last` before today, newest first, in chunks: the reels of those days,
        and the subscribers whose sequences ended on them."""
        for lo in range(first, last + 1, CHUNK_DAYS):
            hi = min(lo + CHUNK_DAYS - 1, last)
            start = time.perf_counter()
            reels, posts = self._reels(lo, hi)
            subs = self._subscribers(lo + self.span - 1, hi + self.span - 1)
            progress(f"  history days {lo}-{hi}: {reels:,} reels, {posts:,} posts, {subs:,} "
                     f"subscribers in {time.perf_counter() - start:.0f} s")

    def vacuum(self) -> None:
        """Statistics up to date, and the bulk writes flushed before anything is timed."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
            conn.execute(sa.text("CHECKPOINT"))


class Ticks:
    """Each tick evaluated the way the daemon does, on one Dagster instance."""

    def __init__(self, instance: Any, db_url: str, roster_file: Path, a2e_key: str,
                 now: dt.datetime) -> None:
        from resources.a2e import A2EResource
        from resources.database import DatabaseResource
        from resources.roster_file import RosterResource

        self.instance, self.now = instance, now
        self.database = DatabaseResource(url=db_url)
        self.roster = RosterResource(path=str(roster_file))
        self.a2e = A2EResource(api_key=a2e_key, requests_per_hour=100)

    def evaluate(self, tick: str) -> list[str]:
        """The tick's run requests, as run keys (job:key)."""
        import dagster as dg

        from sensors.comments import comments_sensor
        from sensors.dms import dm_sensor
        from sensors.generation import generation_sensor
        from sensors.posting import posting_sensor
        from sensors.roster import roster_sensor
        from waifugen_assets.engagement.schedules import engagement_schedule
        from waifugen_assets.planning.schedules import (
            daily_plans_schedule,
            weekly_premium_schedule,
        )

        db = {"database": self.database}
        if tick == "poll_reads":
            return self.poll_reads()
        if tick in ("daily_plans", "weekly_premium", "engagement"):
            schedule = {"daily_plans": daily_plans_schedule,
                        "weekly_premium": weekly_premium_schedule,
                        "engagement": engagement_schedule}[tick]
            with dg.build_schedule_context(instance=self.instance, resources=db,
                                           scheduled_execution_time=self.now) as ctx:
                requests = list(schedule(ctx))
        else:
            sensor, resources, cursor = {
                "roster": (roster_sensor, {**db, "roster": self.roster},
                           self.roster.fingerprint()),
                "generation": (generation_sensor, {**db, "a2e": self.a2e}, None),
                "posting": (posting_sensor, db, None),
                "dms": (dm_sensor, db, None),
                "comments": (comments_sensor, db, None),
            }[tick]
            with dg.build_sensor_context(instance=self.instance, resources=resources,
                                         cursor=cursor) as ctx:
                requests = list(sensor(ctx).run_requests)
        return sorted(f"{r.job_name or tick}:{r.run_key}" for r in requests)

    def poll_reads(self) -> list[str]:
        """What the `subscriber_poll` run reads from the app database for every account before
        asking the platforms (its HTTP calls are not timed here): the accounts, each Telegram
        bot's offset and each Fanvue creator's newest fan message."""
        from waifugen_assets.subscribers.polling import (
            newest_fan_message,
            pollable_accounts,
            telegram_offset,
        )

        engine = self.database.get_engine()
        with engine.connect() as conn:
            accounts = pollable_accounts(conn)
        for account in accounts:
            if account["platform"] == "telegram":
                telegram_offset(engine, int(account["external_user_id"]))
            else:
                newest_fan_message(engine, account["character_id"])
        return []

    def measure(self, point: Point, repeat: int, db_name: str) -> None:
        """`repeat` rounds of every tick, after a warm-up round (caches, the connection
        pool); rounds rather than one tick at a time, so noise from the other processes on the
        machine spreads over all ticks alike."""
        for tick in MEASURED:
            self.evaluate(tick)
        for _ in range(repeat):
            for tick in MEASURED:
                with timed(db_name) as in_db:
                    start = time.perf_counter()
                    point.requests[tick] = self.evaluate(tick)
                    point.ms.setdefault(tick, []).append((time.perf_counter() - start) * 1000)
                point.db_ms.setdefault(tick, []).append(in_db[0])
        point.load = round(os.getloadavg()[0], 1)
        engine = self.database.get_engine()
        for tick in MEASURED:
            with captured(db_name) as statements:
                self.evaluate(tick)
            point.pages[tick] = sum(pages(engine, sql, params) for sql, params in statements
                                    if sql.lstrip().upper().startswith(("SELECT", "WITH")))


@contextlib.contextmanager
def timed(db_name: str) -> Iterator[list[float]]:
    """Milliseconds spent in statements to the app database meanwhile (execute and fetch: the
    driver reads the whole answer inside execute)."""
    total = [0.0]

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        conn.info["wg_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        started = conn.info.pop("wg_started", None)
        if started is not None and conn.engine.url.database == db_name:
            total[0] += (time.perf_counter() - started) * 1000

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    try:
        yield total
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)


@contextlib.contextmanager
def captured(db_name: str) -> Iterator[list[tuple[str, Any]]]:
    """Every statement sent to the app database (not Dagster's own sqlite) meanwhile."""
    statements: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if conn.engine.url.database == db_name:
            statements.append((statement, parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)


def pages(engine: sa.Engine, statement: str, parameters: Any) -> int:
    """Buffer pages (shared hits and reads) the statement touches, run once."""
    with engine.connect() as conn:
        doc = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}",
                                   parameters).scalar_one()
        conn.rollback()
    plan = (json.loads(doc) if isinstance(doc, str) else doc)[0]["Plan"]
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def explain(engine: sa.Engine, statement: str, parameters: Any, analyze: bool) -> str:
    with engine.connect() as conn:
        if not analyze:
            conn.exec_driver_sql("SET enable_seqscan = off")
        option = "ANALYZE, BUFFERS" if analyze else "COSTS OFF"
        rows = conn.exec_driver_sql(f"EXPLAIN ({option}) {statement}", parameters).all()
        conn.rollback()
    return "\n".join(r[0] for r in rows)


def plans_of(ticks: Ticks, engine: sa.Engine, rows: dict[str, int]
             ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Each tick's statements with their plans on this database, and the history tables a
    statement reads by sequential scan: even with enable_seqscan off (no index it can use),
    or in its plan here when the table has LARGE rows or more (on a small table a sequential
    scan is the right plan)."""
    plans: dict[str, list[dict[str, Any]]] = {}
    seq_scans: list[str] = []
    name = engine.url.database or ""
    for tick in MEASURED:
        with captured(name) as statements:
            ticks.evaluate(tick)
        plans[tick] = []
        seen: set[str] = set()
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")) \
                    or statement in seen:  # the poll reads: the same two for every account
                continue
            seen.add(statement)
            forced = explain(engine, statement, parameters, analyze=False) + " "
            plan = explain(engine, statement, parameters, analyze=True)
            for table in HISTORY_TABLES:
                if f"Seq Scan on {table} " in forced:
                    seq_scans.append(f"{tick}: {table} (no index it can use)")
                elif rows.get(table, 0) >= LARGE and f"Seq Scan on {table} " in plan + " ":
                    seq_scans.append(f"{tick}: {table} ({rows[table]:,} rows)")
            plans[tick].append({"sql": " ".join(statement.split()), "plan": plan})
    return plans, sorted(set(seq_scans))


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.scalar(sa.select(sa.func.count()).select_from(sa.table(t))) or 0)
                for t in HISTORY_TABLES}


def checkpoints(history_days: int) -> list[int]:
    return sorted({d for d in (1, 30, 365) if d < history_days} | {history_days})


def run(characters: int, history_days: int, subscribers_per_day: int, repeat: int,
        server_url: str | None, progress: Callable[[str], None] = print) -> Result:
    import dagster as dg

    from waifugen_assets.core import clock
    from waifugen_assets.pipeline.partitions import characters_partitions

    wall = time.perf_counter()
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wg-ticks-")))
        srv, where = stack.enter_context(server(server_url))
        db_url = stack.enter_context(database(srv, "ticks"))
        stack.enter_context(environment({
            "WAIFUGEN_MODE": "sandbox", "WAIFUGEN_HOME": str(tmp / "home"),
            "DATABASE_URL": db_url, "INBOUND_MODE": "polling"}))
        engine = sa.create_engine(db_url)
        stack.callback(engine.dispose)
        seeder = Seeder(engine, now, characters, subscribers_per_day)
        seed_start = time.perf_counter()
        ids = seeder.roster_and_today(progress)
        instance = stack.enter_context(dg.instance_for_test())
        instance.add_dynamic_partitions(characters_partitions.name, ids)
        # The generation sensor's "N reels wait for the A2E budget" is for a daemon's log
        # (each sensor context logs through a console logger of its own).
        logging.disable(logging.INFO)
        stack.callback(logging.disable, logging.NOTSET)
        roster_file = tmp / "characters.yaml"
        shutil.copyfile(Path(__file__).resolve().parent.parent / "characters.yaml", roster_file)
        stack.enter_context(clock.simulate(now))
        ticks = Ticks(instance, db_url, roster_file, seeder.a2e_key, now)
        points: list[Point] = []
        seeded = 0
        seed_s = time.perf_counter() - seed_start
        for days in checkpoints(history_days):
            start = time.perf_counter()
            seeder.history(seeded + 1, days, progress)  # days before today, newest first
            seeder.vacuum()
            seed_s += time.perf_counter() - start
            seeded = days
            point = Point(days, row_counts(engine))
            ticks.measure(point, repeat, engine.url.database or "")
            points.append(point)
            progress(f"  {days} days of history, median ms (in the database, pages): "
                     + ", ".join(f"{t} {point.median(t):.1f} ({point.db_median(t):.1f}, "
                                 f"{point.pages[t]})" for t in MEASURED)
                     + f"; load {point.load}")
        plans, seq_scans = plans_of(ticks, engine, points[-1].rows)
        same = {t: all(p.requests[t] == points[0].requests[t] for p in points) for t in MEASURED
                if t != "weekly_premium"}  # its choice follows last week's engagement
        with engine.connect() as conn:
            size = conn.scalar(sa.text("SELECT pg_database_size(current_database())"))
        version = server_version(engine)
    return Result(characters, history_days, subscribers_per_day, repeat, points, plans,
                  seq_scans, same, seed_s, time.perf_counter() - wall,
                  f"PostgreSQL {version}, {where}", round((size or 0) / 1e9, 1))


def render(result: Result, when: str, command: str) -> str:
    m, r = machine(), result
    month = next((p for p in r.points if p.days == 30), None)
    days = " | ".join(f"{p.days} d" for p in r.points)
    line = "---:|" * len(r.points)
    times = ["| tick | runs asked | " + days + " | ratio to 1 d"
             + (" | ratio to 30 d" if month else "") + " | slowest |",
             "|---|---:|" + line + "---:|" * (3 if month else 2)]
    work = ["| tick | pages: " + days + f" | pages ratio to {r.base.days} d | in the database "
            "(ms): " + days + " |",
            "|---|" + line + "---:|" + line]
    for tick in MEASURED:
        times.append(
            f"| {tick} | {len(r.last.requests[tick])} | "
            + " | ".join(f"{p.median(tick):.1f}" for p in r.points)
            + f" | {r.ratio(tick):.2f}"
            + (f" | {r.last.median(tick) / max(month.median(tick), 1e-6):.2f}" if month else "")
            + f" | {max(r.last.ms[tick]):.1f} |")
        work.append(f"| {tick} | " + " | ".join(f"{p.pages[tick]:,}" for p in r.points)
                    + f" | {r.pages_ratio(tick):.2f} | "
                    + " | ".join(f"{p.db_median(tick):.1f}" for p in r.points) + " |")
    sizes = "; ".join(f"{p.days} d: {p.rows['reels']:,} reels, {p.rows['social_posts']:,} "
                      f"posts, {p.rows['engagement_snapshots']:,} engagement snapshots, "
                      f"{p.rows['subscribers']:,} subscribers, {p.rows['dm_messages']:,} DMs, "
                      f"{p.rows['inbound_events']:,} inbound events"
                      for p in (r.points[0], r.last))
    (slow, ms), (worst, ratio) = r.slowest(), r.largest_ratio()
    most = max(TICKS, key=r.pages_ratio)
    verdict = (f"Slowest tick {ms:.0f} ms ({slow}; target {TARGET_MS:.0f} ms), largest time "
               f"ratio to one day {ratio:.2f} ({worst}; target {TARGET_RATIO:g}), largest pages "
               f"ratio to {r.base.days} days {r.pages_ratio(most):.2f} ({most}). The same run "
               "keys at every point: "
               f"{'yes' if all(r.same_work.values()) else r.same_work}. History tables read by "
               "sequential scan: " + (", ".join(r.seq_scans) if r.seq_scans else "none") + ".")
    out = [HEADING, "",
           f"Measured {when} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python "
           f"{m['python']}, {r.database}; the machine was shared (1-minute load average at the "
           "points: " + ", ".join(f"{p.load}" for p in r.points) + f"). `{command}`: "
           f"{r.characters} characters, {r.history_days} days of history ({r.db_size_gb} GB "
           f"database, seeded in {r.seed_s:.0f} s), {r.subscribers_per_day} new subscribers "
           "per character a day, the same today at every point. Sizes: " + sizes + ".", "",
           f"    {r.line()}", "",
           f"Milliseconds per tick, median of {r.repeat} evaluations through Dagster after a "
           "warm-up (the tick's context built and closed inside the timing: a schedule's "
           "context opens the Dagster instance from its ref, as the daemon's code server "
           "does). `poll_reads` is what the `subscriber_poll` run reads from the database for "
           "every Fanvue and Telegram account before asking them.", "", *times, "",
           "The work in the app database: buffer pages the tick's statements touch (EXPLAIN "
           "ANALYZE, BUFFERS; what the machine's other load does not change) and the "
           "milliseconds spent in them (median). weekly_premium reads a week of the daily "
           "engagement roll-up (a row per character, day and platform: about 21,000 rows at "
           "1,000 characters), which the first week of history fills; its pages are the heap "
           "pages those rows lie on (upserts spread them), at most one a row, whatever the "
           "history. The comments tick reads the posts of the last 6 hours never read and the "
           "due reads: bounded by the hours, not the history; its pages move with the plan "
           "the statistics choose. Pages that rise once and then stay (posting, poll_reads) "
           "are a level more in the B-tree indexes a tick probes as a table grows from "
           "thousands of rows to millions: logarithmic, not linear.", "", *work, "",
           verdict, "",
           "The plans on the whole history (EXPLAIN ANALYZE, BUFFERS), statement by statement "
           "(a statement longer than 600 characters is cut here):", ""]
    for tick in MEASURED:
        out += [f"**{tick}**", ""]
        for item in r.plans[tick]:
            out += ["```", item["sql"][:600] + ("..." if len(item["sql"]) > 600 else ""), "",
                    item["plan"], "```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--characters", type=int, default=1000)
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--history-days", type=int,
                        help="days of history (overrides --years)")
    parser.add_argument("--subscribers-per-day", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--server-url", help="a PostgreSQL server to CREATE DATABASE on "
                        "(default: TEST_DATABASE_URL, else an embedded one in a temp dir)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    # Ctrl-C or SIGTERM ends it through its cleanup (the scratch database dropped, the embedded
    # server stopped), even started in the background, where the shell ignores SIGINT and
    # Dagster points SIGTERM at SIGINT's handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    days = args.history_days if args.history_days is not None else round(365 * args.years)
    if args.characters < 1 or days < 1 or args.repeat < 1 or args.subscribers_per_day < 0:
        parser.error("need --characters >= 1, at least one day of history, --repeat >= 1 and "
                     "--subscribers-per-day >= 0")
    need = estimate_bytes(args.characters, days, args.subscribers_per_day)
    url = args.server_url or os.environ.get("TEST_DATABASE_URL")
    if not url:  # the embedded server keeps its data in the temp dir
        free = shutil.disk_usage(tempfile.gettempdir()).free
        if free < 1.5 * need:
            parser.error(f"about {need / 1e9:.0f} GB of data needs {1.5 * need / 1e9:.0f} GB "
                         f"free in {tempfile.gettempdir()}, which has {free / 1e9:.0f} GB: "
                         "use fewer --characters or --years")
    result = run(args.characters, days, args.subscribers_per_day, args.repeat, args.server_url)
    summary = {k: v for k, v in asdict(result).items() if k not in ("plans", "points")}
    summary["points"] = [{"days": p.days, "rows": p.rows,
                          "median_ms": {t: round(p.median(t), 1) for t in MEASURED},
                          "pages": p.pages, "load": p.load,
                          "requests": {t: len(p.requests[t]) for t in MEASURED}}
                         for p in result.points]
    print(json.dumps({**summary, "line": result.line()}, indent=2, default=str))
    print(result.line())
    if not args.no_docs:
        command = (f"python -m benchmarks sensor_ticks --characters {args.characters} "
                   f"--history-days {days} --subscribers-per-day {args.subscribers_per_day}")
        write_section(render(result, dt.date.today().isoformat(), command), HEADING,
                      docs=args.docs)
    return 0 if result.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
