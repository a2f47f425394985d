"""The `backup` schedule: a backup set every 6 hours (the BackupStale alert fires at 7 h)."""

from __future__ import annotations

import dagster as dg

from waifugen_assets.operations.jobs import backup_job

backup_schedule = dg.ScheduleDefinition(
    name="backup",
    job=backup_job,
    cron_schedule="0 */6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 6 hours (00, 06, 12, 18 UTC): a backup set, retention, and a restore "
    "drill when due.",
)
