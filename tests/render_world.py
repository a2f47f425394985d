"""One character's day for the rendering tests against the A2E and RunPod sandboxes
(tests/test_generation.py, tests/test_runbook_flows.py): the clock at the start of the day
in New York, a Dagster instance with the roster loaded (fixtures), and runs of plans and reels."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from waifugen_assets.core import clock
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.rendering.assets import reels
from waifugen_assets.roster.assets import characters

DAY = dt.date(2026, 11, 24)
CID = "nova-castellane"  # America/New_York


# Fixtures: a test module imports them (`from render_world import instance, on_day`).
@pytest.fixture(autouse=True)
def on_day() -> Iterator[None]:
    """05:00 UTC on DAY, the start of DAY in New York: every slot is still ahead."""
    with clock.running_from(dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.UTC)):
        yield


@pytest.fixture
def instance(pipeline_resources: dict) -> Iterator[dg.DagsterInstance]:
    """A test instance with the roster loaded and CID's partition added."""
    with dg.instance_for_test() as inst:
        assert dg.materialize([characters], resources=pipeline_resources, instance=inst).success
        inst.add_dynamic_partitions(characters_partitions.name, [CID])
        yield inst


def run_day(resources: dict, instance: dg.DagsterInstance, *selection: dg.AssetsDefinition,
            run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """Materialize `selection` (of characters, reel_plans, reels) for CID on DAY."""
    return dg.materialize([characters, reel_plans, reels], selection=list(selection),
                          partition_key=partition_key(CID, DAY), resources=resources,
                          instance=instance, raise_on_error=False, run_config=run_config)
