"""The `character_phases` schedule: once a day, the newest date's phases for the roster.

09:40 UTC: after the hourly engagement run at :20 (followers are read once per local day, at
the first run of that day), when every zone from UTC-9 to UTC+14 has read the day's followers,
and before 10:00 UTC, when the newest date partition (today at UTC+14) moves on. A crossing
then takes effect on each character's next local day (`effective_on`). Database only.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from waifugen_assets.core.clock import local_today
from waifugen_assets.milestones.jobs import phases_job
from waifugen_assets.pipeline.partitions import EARLIEST_TIMEZONE, LAUNCH_DATE


def phases_request(now: dt.datetime, launch: dt.date = LAUNCH_DATE) -> list[dg.RunRequest]:
    """One run for the newest date that has begun anywhere; the run key makes it once a date."""
    day = local_today(EARLIEST_TIMEZONE, now)
    if day < launch:
        return []
    return [dg.RunRequest(run_key=f"phases:{day.isoformat()}", partition_key=day.isoformat(),
                          tags={"waifugen/trigger": "schedule"})]


@dg.schedule(
    name="character_phases",
    job=phases_job,
    cron_schedule="40 9 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day: every character's phase from the day's follower readings; a "
    "crossing is recorded and announced once and planned from the character's next local day.",
)
def character_phases_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    return phases_request(context.scheduled_execution_time)
