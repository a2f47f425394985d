"""Schedules: each character's day planned at its local midnight, and the weekly premium reel.

They read only the app database and emit run requests with run keys (so a tick that repeats
never launches a second run for the same partition); the work happens inside the runs.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.core import schema
from waifugen_assets.core.clock import local_today
from waifugen_assets.core.config import get_settings
from waifugen_assets.pipeline.partitions import partition_key
from waifugen_assets.planning.jobs import plan_job, weekly_premium_job
from waifugen_assets.planning.premium import choose_elite, engagement_last_week, premium_eligible
from waifugen_assets.roster.phases import phases_for_roster


def _enabled(conn: sa.Connection) -> list[tuple[str, str]]:
    ch = schema.characters
    rows = conn.execute(sa.select(ch.c.id, ch.c.timezone).where(ch.c.enabled).order_by(ch.c.id))
    return [(cid, tz) for cid, tz in rows]


def daily_requests(characters: list[tuple[str, str]], now: dt.datetime,
                   known: set[str]) -> list[dg.RunRequest]:
    """One plan run per character for its local 'today', as soon as that day has begun."""
    requests = []
    for cid, tz in characters:
        if cid not in known:  # the roster sensor has not added its partition yet
            continue
        key = partition_key(cid, local_today(tz, now))
        requests.append(dg.RunRequest(run_key=f"daily:{key}", partition_key=key,
                                      tags={"waifugen/trigger": "schedule"}))
    return requests


@dg.schedule(
    name="daily_plans",
    job=plan_job,
    cron_schedule="5 * * * *",  # hourly: each character's day starts at its own midnight
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Plans each character's local day once, as soon as it begins; the "
    "generation sensor renders it, the posting sensor publishes it.",
)
def daily_plans_schedule(context: dg.ScheduleEvaluationContext,
                         database: DatabaseResource) -> list[dg.RunRequest]:
    with database.get_engine().connect() as conn:
        characters = _enabled(conn)
    known = set(context.instance.get_dynamic_partitions("characters"))
    return daily_requests(characters, context.scheduled_execution_time, known)


@dg.schedule(
    name="weekly_premium",
    job=weekly_premium_job,
    cron_schedule="0 12 * * 0",  # Sundays 12:00 UTC
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="A premium reel for the Elite 8: best engagement over the last 7 days, among "
    "the characters whose phase unlocks weekly premium (phases.yaml).",
)
def weekly_premium_schedule(context: dg.ScheduleEvaluationContext,
                            database: DatabaseResource) -> list[dg.RunRequest]:
    now = context.scheduled_execution_time
    day = now.date()
    ladder = phases_for_roster(get_settings().roster_path)  # a wrong file: the tick fails
    with database.get_engine().connect() as conn:
        enabled = dict(_enabled(conn))
        engagement = engagement_last_week(conn, day)
        # Only characters whose phase unlocks it (docs/milestones.md).
        eligible = premium_eligible(conn, enabled, now, ladder)
    known = set(context.instance.get_dynamic_partitions("characters"))
    elite = choose_elite([c for c in enabled if c in known and c in eligible], engagement, day)
    keys = {cid: partition_key(cid, local_today(enabled[cid], now)) for cid in elite}
    return [dg.RunRequest(run_key=f"premium:{key}", partition_key=key,
                          tags={"waifugen/trigger": "schedule", "waifugen/tier": "premium"})
            for key in keys.values()]
