"""Schedules: daily runs per character's local day, the weekly Elite 8 with rotation among the
characters whose phase unlocks it."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.core import schema
from waifugen_assets.definitions import defs
from waifugen_assets.milestones.records import update_phases
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.planning.jobs import PREMIUM_CONFIG
from waifugen_assets.planning.premium import choose_elite
from waifugen_assets.planning.schedules import daily_plans_schedule, weekly_premium_schedule
from waifugen_assets.roster.assets import characters
from waifugen_assets.roster.phases import DEFAULT_LADDER

IDS = [f"c{i:02d}" for i in range(12)]


def test_elite_rotates_without_data_and_ranks_with_it() -> None:
    week1 = choose_elite(IDS, {}, dt.date(2026, 11, 1))
    week2 = choose_elite(IDS, {}, dt.date(2026, 11, 8))
    assert len(week1) == len(week2) == 8 and week1 != week2
    # over a few weeks every character gets a turn
    seen = {c for d in range(0, 28, 7) for c in choose_elite(IDS, {}, dt.date(2026, 11, 1)
                                                             + dt.timedelta(days=d))}
    assert seen == set(IDS)
    ranked = choose_elite(IDS, {"c05": 900, "c01": 900, "c07": 10}, dt.date(2026, 11, 1), 2)
    assert ranked == ["c01", "c05"]


def _loaded(pipeline_resources: dict, instance: dg.DagsterInstance) -> list[str]:
    assert dg.materialize([characters], resources=pipeline_resources, instance=instance).success
    with pipeline_resources["database"].get_engine().connect() as conn:
        ids = list(conn.execute(sa.select(schema.characters.c.id)).scalars())
    instance.add_dynamic_partitions(characters_partitions.name, ids)
    return ids


def test_daily_schedule_uses_each_local_day(pipeline_resources: dict, db_url: str) -> None:
    with dg.instance_for_test() as instance:
        _loaded(pipeline_resources, instance)
        # 2026-11-25 20:05 UTC: already the 26th in Tokyo and Sydney, the 25th in New York.
        when = dt.datetime(2026, 11, 25, 20, 5, tzinfo=dt.UTC)
        # Closed after use: a schedule context enters an instance of its own when asked for
        # `context.instance`, and leaves Dagster's current-instance state pointing at it.
        with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when,
                resources={"database": DatabaseResource(url=db_url)}) as ctx:
            requests = {r.partition_key.keys_by_dimension["character"]:
                        r.partition_key.keys_by_dimension["date"]
                        for r in daily_plans_schedule(ctx)}
    assert requests["mika-hoshizora"] == "2026-11-26"  # Asia/Tokyo
    assert requests["tessa-wrenfield"] == "2026-11-26"  # Australia/Sydney
    assert requests["nova-castellane"] == "2026-11-25"  # America/New_York
    assert len(requests) == 8


def test_weekly_premium_plans_one_premium_reel(pipeline_resources: dict, db_url: str,
                                               engine: sa.Engine) -> None:
    sunday = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        ids = _loaded(pipeline_resources, instance)
        # Weekly premium is unlocked by the growth phase (phases.yaml): all but one have grown.
        grown, thursday = ids[1:], sunday.date() - dt.timedelta(days=3)
        with engine.begin() as conn:
            conn.execute(sa.insert(schema.follower_snapshots), [
                {"character_id": cid, "platform": "tiktok", "captured_on": thursday,
                 "followers": 12_000} for cid in grown])
        update_phases(engine, DEFAULT_LADDER, thursday, sunday - dt.timedelta(days=3))
        with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=sunday,
                resources={"database": DatabaseResource(url=db_url)}) as ctx:
            requests = weekly_premium_schedule(ctx)
        assert len(requests) == min(8, len(grown))
        assert {r.partition_key.keys_by_dimension["character"] for r in requests} <= set(grown)
        assert all(r.run_key.startswith("premium:") for r in requests)
        assert defs.resolve_job_def("weekly_premium") is not None
        cid = requests[0].partition_key.keys_by_dimension["character"]
        result = dg.materialize(
            [characters, reel_plans], selection=[reel_plans],
            partition_key=partition_key(cid, sunday.date()), resources=pipeline_resources,
            instance=instance, run_config=PREMIUM_CONFIG)
        assert result.success
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.reels.c.tier, schema.reels.c.plan)
                            .where(schema.reels.c.character_id == cid)).all()
    assert [tier for tier, _ in rows] == ["premium"]
    assert rows[0].plan["disclosure"]
