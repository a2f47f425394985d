"""Roster sensor: keeps the `characters` dynamic partitions equal to the enabled characters.

It reads only the roster file's hash and the app database (no outside calls), so a tick is
milliseconds. When the file changes it asks for a `characters` materialization (run_key = the
file hash, so each version is loaded once); the partitions follow the table on later ticks.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import dagster as dg

from resources.database import DatabaseResource
from resources.roster_file import RosterResource
from waifugen_assets.pipeline.partitions import characters_partitions
from waifugen_assets.roster.assets import enabled_character_ids, partition_changes
from waifugen_assets.roster.jobs import roster_job


def roster_run_key(fingerprint: str) -> str:
    """One `roster` run per version of the file (the CLI tags its own load with it too)."""
    return f"roster-{fingerprint}"


@dg.sensor(
    name="roster",
    job=roster_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Loads a changed roster file and syncs the characters partitions.",
)
def roster_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, roster: RosterResource
) -> dg.SensorResult:
    fingerprint = roster.fingerprint()
    run_requests = []
    if fingerprint not in ("missing", context.cursor):
        run_requests.append(dg.RunRequest(run_key=roster_run_key(fingerprint)))

    with database.get_engine().connect() as conn:
        wanted = enabled_character_ids(conn)
    existing = context.instance.get_dynamic_partitions(characters_partitions.name)
    to_add, to_remove = partition_changes(wanted, existing)
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if to_add:
        requests.append(characters_partitions.build_add_request(to_add))
    if to_remove:
        requests.append(characters_partitions.build_delete_request(to_remove))
    if to_add or to_remove:
        context.log.info("characters partitions: +%s -%s", to_add, to_remove)
    return dg.SensorResult(
        run_requests=run_requests, dynamic_partitions_requests=requests, cursor=fingerprint
    )
