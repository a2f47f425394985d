"""The day of each character: how far its reels got, posts per platform, budget, subscriber
DMs (reachable subscribers; messages due by the end of the day by outcome) and what is not
done yet with its reason. `waifugen status` prints it; the `daily_status` asset renders it.

Reel stages are cumulative: a branded reel was also generated and stored, so it counts in
each of those columns; `failed` counts reels that stopped with a failure. Stages later issues
add simply show 0 until reels reach them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from waifugen_assets.comments.summary import held_by_character, sent_by_character
from waifugen_assets.core import clock, schema
from waifugen_assets.engagement.rollup import gains_between
from waifugen_assets.engagement.summary import latest_followers
from waifugen_assets.roster.model import PUBLISH_PLATFORMS
from waifugen_assets.roster.phases import DEFAULT_LADDER, PhaseLadder, phases_on

STAGES = ("planned", "generated", "stored", "branded", "published", "failed", "missed")
# Statuses that mean a reel has reached at least each stage.
_REACHED = {
    "planned": None,  # every reel was planned
    "generated": ("generated", "stored", "branded", "published"),
    "stored": ("stored", "branded", "published"),
    "branded": ("branded", "published"),
    "published": ("published",),
    "failed": ("failed",),
    "missed": ("skipped",),  # its slot passed before it could be rendered
}
# Subscriber DMs due by the end of the day, by what happened to them.
DM_BUCKETS = {"sent": ("sent",), "waiting": ("planned", "sending", "unknown"),
              "held": ("held",), "manual": ("queued_manual",),
              "skipped": ("skipped", "failed")}
_POST_BUCKETS = {"published": ("published",),
                 "deferred": ("deferred",),  # waiting for a quota or window
                 "skipped": ("skipped",),  # stale when it came due: not posted on purpose
                 "failed": ("failed_permanent",)}  # everything else is still pending
POST_COLUMNS = ("published", "pending", "deferred", "skipped", "failed")
# Reels that are not done yet (or missed): each is named in `open` with its reason.
_OPEN_REELS = ("planned", "generating", "blocked", "generated", "stored", "skipped")


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def day_status(conn: sa.Connection, day: dt.date | None, monthly_credits_default: int,
               character_ids: list[str] | None = None,
               days: Mapping[str, dt.date] | None = None,
               ladder: PhaseLadder = DEFAULT_LADDER) -> dict[str, Any]:
    """The day of each character: `day`, or its entry in `days`, or (both None) its own
    local today; its phase on that day by `ladder` (phases.yaml beside the roster)."""
    ch, reels, posts = schema.characters, schema.reels, schema.social_posts
    query = (sa.select(ch.c.id, ch.c.budget_share, ch.c.timezone).where(ch.c.enabled)
             .order_by(ch.c.id))
    if character_ids:
        query = query.where(ch.c.id.in_(character_ids))
    people = conn.execute(query).all()
    given = days or {}
    days = {cid: day or given.get(cid) or clock.local_today(tz) for cid, _, tz in people}
    pairs = sa.tuple_(reels.c.character_id, reels.c.date).in_(list(days.items())) \
        if days else sa.false()

    reel_counts: dict[str, dict[str, int]] = {}
    for cid, status, n in conn.execute(
        sa.select(reels.c.character_id, reels.c.status, sa.func.count())
        .where(pairs).group_by(reels.c.character_id, reels.c.status)
    ):
        reel_counts.setdefault(cid, {})[status] = n

    post_counts: dict[str, dict[str, dict[str, int]]] = {}
    for cid, platform, state, n in conn.execute(
        sa.select(reels.c.character_id, posts.c.platform, posts.c.state, sa.func.count())
        .join(reels, reels.c.id == posts.c.reel_id)
        .where(pairs)
        .group_by(reels.c.character_id, posts.c.platform, posts.c.state)
    ):
        bucket = next((b for b, states in _POST_BUCKETS.items() if state in states), "pending")
        per = post_counts.setdefault(cid, {}).setdefault(platform, {})
        per[bucket] = per.get(bucket, 0) + n

    # What is not done yet, and why: nothing unfinished hides behind a green run.
    waiting: dict[str, dict[str, int]] = {}
    failed: dict[str, dict[str, int]] = {}
    for cid, what, reason, n in conn.execute(
        sa.select(reels.c.character_id, reels.c.status, reels.c.failure_reason,
                  sa.func.count())
        .where(pairs, reels.c.status.in_((*_OPEN_REELS, "failed")))
        .group_by(reels.c.character_id, reels.c.status, reels.c.failure_reason)
    ):
        into = failed if what == "failed" else waiting
        key = f"reels {what}: {_short(reason) if reason else 'in progress'}"
        into.setdefault(cid, {})[key] = into.get(cid, {}).get(key, 0) + n
    for cid, platform, state, reason, n in conn.execute(
        sa.select(reels.c.character_id, posts.c.platform, posts.c.state, posts.c.last_error,
                  sa.func.count())
        .join(reels, reels.c.id == posts.c.reel_id)
        .where(pairs, posts.c.state.not_in(("published",)))
        .group_by(reels.c.character_id, posts.c.platform, posts.c.state, posts.c.last_error)
    ):
        key = f"{platform} posts {state}: {_short(reason) if reason else 'in progress'}"
        waiting.setdefault(cid, {})[key] = waiting.get(cid, {}).get(key, 0) + n

    zones = {cid: tz for cid, _, tz in people}
    dm_counts, reachable = _dms(conn, days, zones)
    now = clock.now()
    phases = phases_on(conn, days, ladder)
    replies_sent = sent_by_character(conn, now - dt.timedelta(hours=24))
    replies_held = held_by_character(conn)
    used_by_month = _credits(conn, days, monthly_credits_default)

    out = []
    even_share = 100 / max(len(people), 1)  # characters without a share split evenly
    for cid, share, tz in people:
        limit_total, used = used_by_month[month_start(days[cid])]
        counts = reel_counts.get(cid, {})
        stages = {
            stage: (sum(counts.values()) if reached is None
                    else sum(counts.get(s, 0) for s in reached))
            for stage, reached in _REACHED.items()
        }
        platform_posts = {
            p: {k: post_counts.get(cid, {}).get(p, {}).get(k, 0) for k in POST_COLUMNS}
            for p in PUBLISH_PLATFORMS
        }
        out.append({
            "id": cid,
            "date": days[cid].isoformat(),
            "timezone": tz,
            "reels": stages,
            "posts": platform_posts,
            "budget": {"used": int(used.get(cid, 0)),
                       "limit": int(limit_total * float(share or even_share) / 100)},
            "dms": {"subscribers": int(reachable.get(cid, 0)),
                    **{b: dm_counts.get(cid, {}).get(b, 0) for b in DM_BUCKETS}},
            "phase": phases[cid].name,
            "engagement": {**_engagement(conn, cid, now),
                           "replies_sent_24h": int(replies_sent.get(cid, 0)),
                           "replies_held": int(replies_held.get(cid, 0))},
            "open": dict(sorted(waiting.get(cid, {}).items())),
            "failed": dict(sorted(failed.get(cid, {}).items())),
        })
    return {"date": day.isoformat() if day else None, "characters": out}


def _engagement(conn: sa.Connection, character_id: str, now: dt.datetime) -> dict[str, int]:
    """Views the character's posts gained in the last 24 hours (from the readings) and its
    followers across platforms (each account's latest count)."""
    gains = gains_between(conn, character_id, now - dt.timedelta(hours=24), now)
    return {"views_24h": sum(g["views"] for g in gains.values()),
            "followers": sum(latest_followers(conn, character_id).values())}


def _dms(conn: sa.Connection, days: Mapping[str, dt.date], zones: Mapping[str, str]
         ) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """(DMs due by the end of each character's day, by bucket; reachable subscribers)."""
    dm, subs = schema.dm_messages, schema.subscribers
    ends = {cid: dt.datetime.combine(d + dt.timedelta(days=1), dt.time(),
                                     tzinfo=ZoneInfo(zones[cid])) for cid, d in days.items()}
    latest_end = max(ends.values(), default=dt.datetime.now(dt.UTC))
    dm_counts: dict[str, dict[str, int]] = {}
    for cid, due_at, state in conn.execute(
        sa.select(subs.c.character_id, dm.c.due_at, dm.c.state)
        .join(subs, subs.c.id == dm.c.subscriber_id)
        .where(dm.c.due_at < latest_end, subs.c.character_id.in_(list(days)))
    ):
        if due_at >= ends[cid]:  # due after the end of this character's day
            continue
        bucket = next(b for b, states in DM_BUCKETS.items() if state in states)
        per_dm = dm_counts.setdefault(cid, {})
        per_dm[bucket] = per_dm.get(bucket, 0) + 1
    reachable = dict(conn.execute(
        sa.select(subs.c.character_id, sa.func.count())
        .where(subs.c.opted_out_at.is_(None), subs.c.forgotten_at.is_(None))
        .group_by(subs.c.character_id)).all())
    return dm_counts, reachable


def _credits(conn: sa.Connection, days: Mapping[str, dt.date], monthly_credits_default: int
             ) -> dict[dt.date, tuple[int, dict[str, int]]]:
    """Per month of the days: (the roster's A2E credit limit, credits used per character)."""
    ledger = schema.credit_ledger
    used_by_month: dict[dt.date, tuple[int, dict[str, int]]] = {}
    for period in {month_start(d) for d in days.values()}:
        limit_total = conn.execute(
            sa.select(schema.budgets.c.credits_limit)
            .where(schema.budgets.c.provider == "a2e", schema.budgets.c.period_start == period)
        ).scalar()
        next_month = (period + dt.timedelta(days=32)).replace(day=1)
        used_by_month[period] = (
            monthly_credits_default if limit_total is None else int(limit_total),
            dict(conn.execute(
                sa.select(ledger.c.character_id,
                          sa.func.coalesce(sa.func.sum(ledger.c.credits), 0))
                .where(ledger.c.kind == "task_cost", ledger.c.ledger_date >= period,
                       ledger.c.ledger_date < next_month)
                .group_by(ledger.c.character_id)).all()))
    return used_by_month


def _short(reason: str) -> str:
    """A reason without its varying numbers' tail (ids, seconds), so like ones group."""
    text = re.sub(r"\b(retry in|next try at|next status check at) [^;)]*", r"\1 …", reason)
    text = re.sub(r"\btask [0-9a-f]{8,}\b", "task …", text)
    return text[:120]
