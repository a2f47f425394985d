"""After the daily report (00:10 UTC) has rebuilt the previous day's daily marts, the
whole-table marts that read them (character_ranking) are rebuilt."""

import dagster as dg

from waifugen_assets.analytics.jobs import analytics_tables_job

analytics_tables_schedule = dg.ScheduleDefinition(
    name="analytics_tables", job=analytics_tables_job, cron_schedule="30 0 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuilds the whole-table marts at 00:30 UTC, after the daily report.",
)
