"""The roster sensor: file changes request a `characters` run; partitions follow the table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from resources.roster_file import RosterResource
from sensors.roster import roster_sensor
from waifugen_assets.core import schema
from waifugen_assets.pipeline.partitions import characters_partitions
from waifugen_assets.roster.assets import sync_roster
from waifugen_assets.roster.model import load_roster


def _tick(instance: dg.DagsterInstance, db_url: str, roster: Path,
          cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"database": DatabaseResource(url=db_url),
                   "roster": RosterResource(path=str(roster))},
    )
    return roster_sensor(context)


def test_sensor_adds_and_removes_partitions(db_url: str, engine: sa.Engine,
                                            project_dir: Path) -> None:
    roster_path = project_dir / "characters.yaml"
    fingerprint = hashlib.sha256(roster_path.read_bytes()).hexdigest()
    with dg.instance_for_test() as instance:
        # Nothing in the table yet: the sensor asks for the roster to be loaded.
        first = _tick(instance, db_url, roster_path)
        assert [r.run_key for r in first.run_requests] == [f"roster-{fingerprint}"]
        assert first.dynamic_partitions_requests == []
        assert first.cursor == fingerprint

        with engine.begin() as conn:
            sync_roster(conn, load_roster(roster_path))
        second = _tick(instance, db_url, roster_path, cursor=fingerprint)
        assert second.run_requests == []  # same file: no new run
        (add,) = second.dynamic_partitions_requests
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert add.partitions_def_name == characters_partitions.name
        enabled = [c.id for c in load_roster(roster_path).enabled()]
        assert sorted(add.partition_keys) == sorted(enabled)

        instance.add_dynamic_partitions(characters_partitions.name, list(add.partition_keys))
        assert _tick(instance, db_url, roster_path, cursor=fingerprint)\
            .dynamic_partitions_requests == []

        gone = enabled[0]
        with engine.begin() as conn:
            conn.execute(sa.update(schema.characters).where(schema.characters.c.id == gone)
                         .values(enabled=False))
        (delete,) = _tick(instance, db_url, roster_path,
                          cursor=fingerprint).dynamic_partitions_requests
        assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
        assert list(delete.partition_keys) == [gone]


def test_changed_file_requests_a_new_load(db_url: str, tmp_path: Path,
                                          project_dir: Path) -> None:
    roster_path = tmp_path / "characters.yaml"
    roster_path.write_bytes((project_dir / "characters.yaml").read_bytes())
    with dg.instance_for_test() as instance:
        cursor = _tick(instance, db_url, roster_path).cursor
        roster_path.write_text(roster_path.read_text() + "\n# edited\n")
        result = _tick(instance, db_url, roster_path, cursor=cursor)
        assert len(result.run_requests) == 1 and result.cursor != cursor
