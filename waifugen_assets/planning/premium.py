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
from waifugen_assets.core.clock import local_today
from waifugen_assets.roster.phases import PhaseLadder, eligible_for_premium

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
    """Views + likes + comments + shares each character's posts gained over the 7 days before
    `as_of`, from the daily roll-up (`engagement_daily`, written by the engagement stage): a
    week of small rows for the roster, whatever the history (benchmarks/sensor_ticks.py)."""
    d = schema.engagement_daily
    score = d.c.views + d.c.likes + d.c.comments + d.c.shares
    rows = conn.execute(
        sa.select(d.c.character_id, sa.func.sum(score))
        .where(d.c.date >= as_of - dt.timedelta(days=7), d.c.date < as_of)
        .group_by(d.c.character_id))
    return {cid: int(total or 0) for cid, total in rows}


def premium_eligible(conn: sa.Connection, zones: Mapping[str, str], now: dt.datetime,
                     ladder: PhaseLadder) -> set[str]:
    """The characters (id -> time zone) whose phase on their local day at `now` unlocks the
    weekly premium reel (phases.yaml beside the roster: growth and above by default)."""
    days = {cid: local_today(tz, now) for cid, tz in zones.items()}
    return set(eligible_for_premium(conn, days, ladder))
