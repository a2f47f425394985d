"""`waifugen status`: per character, how far the day's reels got, posts per platform, budget,
and subscriber DMs (reachable subscribers; messages due by the end of the day by outcome).

Reel stages are cumulative: a branded reel was also generated and stored, so it counts in
each of those columns; `failed` counts reels that stopped with a failure. Stages later issues
add simply show 0 until reels reach them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from waifugen_assets import schema
from waifugen_assets.roster import PUBLISH_PLATFORMS

STAGES = ("planned", "generated", "stored", "branded", "published", "failed")
# Statuses that mean a reel has reached at least each stage.
_REACHED = {
    "planned": None,  # every reel was planned
    "generated": ("generated", "stored", "branded", "published"),
    "stored": ("stored", "branded", "published"),
    "branded": ("branded", "published"),
    "published": ("published",),
    "failed": ("failed",),
}
# Subscriber DMs due by the end of the day, by what happened to them.
DM_BUCKETS = {"sent": ("sent",), "waiting": ("planned", "sending", "unknown"),
              "held": ("held",), "manual": ("queued_manual",),
              "skipped": ("skipped", "failed")}
_POST_BUCKETS = {"published": ("published",),
                 "failed": ("failed_permanent",)}  # everything else is still pending


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def day_status(conn: sa.Connection, day: dt.date, monthly_credits_default: int,
               character_ids: list[str] | None = None) -> dict[str, Any]:
    ch, reels, posts = schema.characters, schema.reels, schema.social_posts
    query = sa.select(ch.c.id, ch.c.budget_share).where(ch.c.enabled).order_by(ch.c.id)
    if character_ids:
        query = query.where(ch.c.id.in_(character_ids))
    people = conn.execute(query).all()

    reel_counts: dict[str, dict[str, int]] = {}
    for cid, status, n in conn.execute(
        sa.select(reels.c.character_id, reels.c.status, sa.func.count())
        .where(reels.c.date == day).group_by(reels.c.character_id, reels.c.status)
    ):
        reel_counts.setdefault(cid, {})[status] = n

    post_counts: dict[str, dict[str, dict[str, int]]] = {}
    for cid, platform, state, n in conn.execute(
        sa.select(reels.c.character_id, posts.c.platform, posts.c.state, sa.func.count())
        .join(reels, reels.c.id == posts.c.reel_id)
        .where(reels.c.date == day)
        .group_by(reels.c.character_id, posts.c.platform, posts.c.state)
    ):
        bucket = next((b for b, states in _POST_BUCKETS.items() if state in states), "pending")
        per = post_counts.setdefault(cid, {}).setdefault(platform, {})
        per[bucket] = per.get(bucket, 0) + n

    dm, subs = schema.dm_messages, schema.subscribers
    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    dm_counts: dict[str, dict[str, int]] = {}
    for cid, state, n in conn.execute(
        sa.select(subs.c.character_id, dm.c.state, sa.func.count())
        .join(subs, subs.c.id == dm.c.subscriber_id).where(dm.c.due_at < end_of_day)
        .group_by(subs.c.character_id, dm.c.state)
    ):
        bucket = next(b for b, states in DM_BUCKETS.items() if state in states)
        per_dm = dm_counts.setdefault(cid, {})
        per_dm[bucket] = per_dm.get(bucket, 0) + n
    reachable = dict(conn.execute(
        sa.select(subs.c.character_id, sa.func.count())
        .where(subs.c.opted_out_at.is_(None), subs.c.forgotten_at.is_(None))
        .group_by(subs.c.character_id)).all())

    period = month_start(day)
    limit_total = conn.execute(
        sa.select(schema.budgets.c.credits_limit)
        .where(schema.budgets.c.provider == "a2e", schema.budgets.c.period_start == period)
    ).scalar()
    if limit_total is None:
        limit_total = monthly_credits_default
    ledger = schema.credit_ledger
    next_month = (period + dt.timedelta(days=32)).replace(day=1)
    used = dict(conn.execute(
        sa.select(ledger.c.character_id, sa.func.coalesce(sa.func.sum(ledger.c.credits), 0))
        .where(ledger.c.kind == "task_cost", ledger.c.ledger_date >= period,
               ledger.c.ledger_date < next_month)
        .group_by(ledger.c.character_id)
    ).all())

    out = []
    even_share = 100 / max(len(people), 1)  # characters without a share split evenly
    for cid, share in people:
        counts = reel_counts.get(cid, {})
        stages = {
            stage: (sum(counts.values()) if reached is None
                    else sum(counts.get(s, 0) for s in reached))
            for stage, reached in _REACHED.items()
        }
        platform_posts = {
            p: {k: post_counts.get(cid, {}).get(p, {}).get(k, 0)
                for k in ("published", "pending", "failed")}
            for p in PUBLISH_PLATFORMS
        }
        out.append({
            "id": cid,
            "reels": stages,
            "posts": platform_posts,
            "budget": {"used": int(used.get(cid, 0)),
                       "limit": int(limit_total * float(share or even_share) / 100)},
            "dms": {"subscribers": int(reachable.get(cid, 0)),
                    **{b: dm_counts.get(cid, {}).get(b, 0) for b in DM_BUCKETS}},
        })
    return {"date": day.isoformat(), "characters": out}


def render_text(report: dict[str, Any]) -> str:
    header = (f"{'character':<20}" + "".join(f"{s:>10}" for s in STAGES)
              + "   posts (published/pending/failed)      budget"
              + "   dms (subscribers: sent/waiting/held/manual/skipped)")
    lines = [f"waifugen status for {report['date']}", header]
    for c in report["characters"]:
        posts = "  ".join(f"{p[:2]} {v['published']}/{v['pending']}/{v['failed']}"
                          for p, v in c["posts"].items())
        lines.append(
            f"{c['id']:<20}" + "".join(f"{c['reels'][s]:>10}" for s in STAGES)
            + f"   {posts:<36}{c['budget']['used']:>6}/{c['budget']['limit']:<8}"
            + f"   {c['dms']['subscribers']}: " + "/".join(
                str(c["dms"][b]) for b in DM_BUCKETS)
        )
    if not report["characters"]:
        lines.append("(no enabled characters: run `waifugen run` to load the roster)")
    return "\n".join(lines)
