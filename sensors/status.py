"""Status sensor: asks for a `status` run (the date's `daily_status`) when publish runs for
that date have finished since the date's status was last refreshed.

Reads the Dagster instance only: finished `publish` and `daily_content` runs since its cursor
(the newest run update it has seen, a bounded batch per tick), and per date they touched, the
start of the run behind the latest `daily_status` materialization. One request per date per
tick, keyed by the newest publish run it answers (`status:<date>:<run id>`): a tick that sees
the same runs again asks for nothing, and a burst of publish runs between two ticks asks for
one refresh, not one per run.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
import json

import dagster as dg

from waifugen_assets.pipeline.partitions import LAUNCH_DATE, split_partition_key
from waifugen_assets.publishing.jobs import daily_content_job, publish_job
from waifugen_assets.reporting.jobs import status_job

PUBLISH_JOBS = frozenset({publish_job.name, daily_content_job.name})
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED]
DAILY_STATUS = dg.AssetKey("daily_status")
LOOKBACK = dt.timedelta(days=2)  # first tick: publish runs of the last two days
BATCH = 500  # run records per tick: the tick stays flat however many runs piled up


def publish_runs_since(instance: dg.DagsterInstance, since: dt.datetime
                       ) -> tuple[dict[dt.date, tuple[float, str]], dt.datetime | None]:
    """Per date, (end time, run id) of the newest publish run finished after `since`; and
    the newest run update seen (the next cursor), None if there was none."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=FINISHED, updated_after=since), limit=BATCH,
        order_by="update_timestamp", ascending=True)
    newest: dict[dt.date, tuple[float, str]] = {}
    for record in records:
        run = record.dagster_run
        key = run.tags.get("dagster/partition")
        if run.job_name not in PUBLISH_JOBS or not key:
            continue
        try:
            _, day = split_partition_key(key)
        except ValueError:  # not a character|date key: not a day's run
            continue
        ended = record.end_time or record.update_timestamp.timestamp()
        if day not in newest or ended > newest[day][0]:
            newest[day] = (ended, run.run_id)
    return newest, (records[-1].update_timestamp if records else None)


def refreshed_at(instance: dg.DagsterInstance, day: dt.date) -> float | None:
    """When the date's latest `daily_status` began reading the database: the start of the
    run that materialized it (a publish run that ended after that start may be missing)."""
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DAILY_STATUS, asset_partitions=[day.isoformat()]),
        limit=1).records
    if not found:
        return None
    run = instance.get_run_record_by_id(found[0].run_id)
    return (run.start_time if run is not None and run.start_time else None) \
        or found[0].timestamp


def status_requests(instance: dg.DagsterInstance, newest: dict[dt.date, tuple[float, str]]
                    ) -> list[dg.RunRequest]:
    requests = []
    for day, (ended, run_id) in sorted(newest.items()):
        if day < LAUNCH_DATE:  # no partition (the launch date moved on)
            continue
        last = refreshed_at(instance, day)
        if last is not None and last >= ended:
            continue
        requests.append(dg.RunRequest(run_key=f"status:{day.isoformat()}:{run_id}",
                                      partition_key=day.isoformat(),
                                      tags={"waifugen/trigger": "status"}))
    return requests


@dg.sensor(
    name="status",
    job=status_job,
    minimum_interval_seconds=300,  # at most one refresh per date every five minutes
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a daily_status refresh for each date whose publish runs finished "
    "since its last refresh (Dagster instance only).",
)
def status_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    since = (dt.datetime.fromisoformat(cursor["since"]) if "since" in cursor
             else dt.datetime.now(dt.UTC) - LOOKBACK)
    newest, seen = publish_runs_since(context.instance, since)
    return dg.SensorResult(
        run_requests=status_requests(context.instance, newest),
        cursor=json.dumps({"since": (seen or since).isoformat()}))
