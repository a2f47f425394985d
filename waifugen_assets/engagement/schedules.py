"""The hourly engagement schedule: one run per character with a reading due, none elsewhere."""

from __future__ import annotations

import dagster as dg

from resources.database import DatabaseResource
from waifugen_assets.engagement.due import characters_due
from waifugen_assets.engagement.jobs import engagement_job
from waifugen_assets.pipeline.partitions import partition_key


@dg.schedule(
    name="engagement_hourly",
    job=engagement_job,
    cron_schedule="20 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: an engagement run for each character with a post reading (1 h, 6 h, "
    "24 h, 3 d, 7 d, 30 d of age) or the day's follower count due; database only.",
)
def engagement_schedule(context: dg.ScheduleEvaluationContext,
                        database: DatabaseResource) -> list[dg.RunRequest]:
    now = context.scheduled_execution_time
    with database.get_engine().connect() as conn:
        due = characters_due(conn, now)
    known = set(context.instance.get_dynamic_partitions("characters"))
    hour = now.strftime("%Y-%m-%dT%H")
    requests = []
    for cid, (today, why) in sorted(due.items()):
        if cid not in known:  # the roster sensor has not added its partition yet
            continue
        key = partition_key(cid, today)
        requests.append(dg.RunRequest(run_key=f"engagement:{key}:{hour}", partition_key=key,
                                      tags={"waifugen/trigger": "schedule",
                                            "waifugen/engagement_due": why}))
    return requests
