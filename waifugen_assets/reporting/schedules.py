"""The `daily_status` schedule: each date's status refreshed once more when that day is over
for every enabled character (its last local midnight has passed), so a closed day's report
and `day_complete` check are final: missed slots, skipped and failed posts included. During
the day the `status` sensor refreshes it after publish runs.

The `daily_report` schedule: at 00:10 UTC, the report of the UTC day before."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.core import schema
from waifugen_assets.core.clock import local_today
from waifugen_assets.pipeline.partitions import LAUNCH_DATE
from waifugen_assets.reporting.jobs import daily_report_job, status_job

LOOKBACK_DAYS = 3  # a daemon down for a day or two still closes the days it missed


def closing_requests(zones: list[str], now: dt.datetime,
                     launch: dt.date = LAUNCH_DATE) -> list[dg.RunRequest]:
    """One run per recent date that is over in every zone of the roster; the run key makes
    it once per date, however many ticks see it closed."""
    if not zones:
        return []
    first_open = min(local_today(tz, now) for tz in zones)  # the westernmost local today
    days = [first_open - dt.timedelta(days=n) for n in range(1, LOOKBACK_DAYS + 1)]
    return [dg.RunRequest(run_key=f"close:{d.isoformat()}", partition_key=d.isoformat(),
                          tags={"waifugen/trigger": "schedule"})
            for d in sorted(days) if d >= launch]


@dg.schedule(
    name="daily_status",
    job=status_job,
    cron_schedule="20 * * * *",  # hourly: the roster's days end at each zone's midnight
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day per date: daily_status refreshed when that day is over for every "
    "enabled character, so the report and its day_complete check are final.",
)
def daily_status_schedule(context: dg.ScheduleEvaluationContext,
                          database: DatabaseResource) -> list[dg.RunRequest]:
    ch = schema.characters
    with database.get_engine().connect() as conn:
        zones = list(conn.execute(sa.select(ch.c.timezone).where(ch.c.enabled).distinct())
                     .scalars())
    return closing_requests(zones, context.scheduled_execution_time)


def report_request(scheduled: dt.datetime,
                   launch: dt.date = LAUNCH_DATE) -> list[dg.RunRequest]:
    """The run for the UTC day before `scheduled` (none before the launch date); the run key
    makes it once per date however often the tick is evaluated."""
    day = scheduled.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    if day < launch:
        return []
    return [dg.RunRequest(run_key=f"report:{day.isoformat()}", partition_key=day.isoformat(),
                          tags={"waifugen/trigger": "schedule"})]


@dg.schedule(
    name="daily_report",
    job=daily_report_job,
    cron_schedule="10 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:10 UTC: the report of the UTC day that just ended, sent to the "
    "operators' Telegram chat once (characters west of UTC are still in that day: the report "
    "says as of when).",
)
def daily_report_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    return report_request(context.scheduled_execution_time)
