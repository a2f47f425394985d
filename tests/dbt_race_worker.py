"""One run of the daily marts in a process of its own, for tests/test_dbt_lock.py.

    python tests/dbt_race_worker.py DATABASE_URL START END

START..END is the partition range: one day is what the 00:10 schedule runs, several what a
backfill runs in one go (the daily marts' single-run backfill policy). Prints one JSON line:
success, the failure's message, and the times of the run's dbt events (materializations and
check results), so the caller can see whether two runs' dbt builds overlapped.
"""

from __future__ import annotations

import json
import sys

import dagster as dg

from resources.database import DatabaseResource
from waifugen_assets.analytics.assets import analytics_daily, dbt_resource

DBT_EVENTS = (dg.DagsterEventType.ASSET_MATERIALIZATION,
              dg.DagsterEventType.ASSET_CHECK_EVALUATION)


def main(url: str, start: str, end: str) -> None:
    resources = {"dbt": dbt_resource(), "database": DatabaseResource(url=url)}
    tags = {"dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end}
    with dg.instance_for_test() as instance:
        result = dg.materialize([analytics_daily], resources=resources, instance=instance,
                                tags=tags, raise_on_error=False)
        times = [entry.timestamp for entry in instance.all_logs(result.run_id)
                 if entry.dagster_event and entry.dagster_event.event_type in DBT_EVENTS]
        failure = next((e.step_failure_data.error.message for e in result.all_events
                        if e.is_step_failure and e.step_failure_data.error), None)
    print(json.dumps({"success": result.success, "failure": failure, "events": times}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
