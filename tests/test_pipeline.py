"""The asset graph against real PostgreSQL and the sandbox over HTTP: characters -> reel_plans."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.ollama import OllamaResource
from waifugen_assets.core import schema
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.roster.assets import characters

DAY = dt.date(2026, 11, 25)


@pytest.fixture
def roster_file(pipeline_resources: dict[str, object]) -> Path:
    return Path(pipeline_resources["roster"].path)


@pytest.fixture
def resources(pipeline_resources: dict[str, object]) -> dict[str, object]:
    return pipeline_resources


def _load_roster(resources: dict[str, object], instance: dg.DagsterInstance) -> list[str]:
    assert dg.materialize([characters], resources=resources, instance=instance).success
    engine = resources["database"].get_engine()
    with engine.connect() as conn:
        ids = list(conn.execute(sa.select(schema.characters.c.id)).scalars())
    instance.add_dynamic_partitions(characters_partitions.name, ids)
    return ids


def _reels(engine: sa.Engine, character_id: str) -> list[dict]:
    r = schema.reels
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(
            sa.select(r).where(r.c.character_id == character_id).order_by(r.c.slot)
        ).mappings()]


def test_roster_load_is_idempotent(resources, engine: sa.Engine) -> None:
    with dg.instance_for_test() as instance:
        ids = _load_roster(resources, instance)
        assert len(ids) == 8
        with engine.connect() as conn:
            before = conn.execute(sa.select(schema.characters.c.id,
                                            schema.characters.c.updated_at)).all()
        result = dg.materialize([characters], resources=resources, instance=instance)
        meta = result.asset_materializations_for_node("characters")[0].metadata
        assert meta["added"].value == "-" and meta["updated"].value == "-"
        with engine.connect() as conn:
            after = conn.execute(sa.select(schema.characters.c.id,
                                           schema.characters.c.updated_at)).all()
        assert sorted(before) == sorted(after)


def test_bad_roster_writes_nothing(resources, roster_file: Path, engine: sa.Engine) -> None:
    # Make the first character a minor: the whole load must be refused.
    lines = roster_file.read_text().splitlines()
    first_age = next(i for i, line in enumerate(lines) if line.strip().startswith("age:"))
    lines[first_age] = lines[first_age].split("age:")[0] + "age: 17"
    roster_file.write_text("\n".join(lines) + "\n")
    with dg.instance_for_test() as instance:
        result = dg.materialize([characters], resources=resources, instance=instance,
                                raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert f"characters.yaml:{first_age + 1}:" in description and "age" in description
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.characters)) == 0


def test_reel_plans_one_row_per_slot_and_idempotent(resources, engine: sa.Engine,
                                                   sandbox_server) -> None:
    with dg.instance_for_test() as instance:
        ids = _load_roster(resources, instance)
        cid = ids[0]
        key = partition_key(cid, DAY)
        since = max((e["id"] for e in sandbox_server.journal("ollama")), default=0)
        result = dg.materialize([characters, reel_plans], selection=[reel_plans],
                                partition_key=key, resources=resources, instance=instance)
        assert result.success
        first = _reels(engine, cid)
        with engine.connect() as conn:
            slots = conn.scalar(sa.select(schema.characters.c.slots)
                                .where(schema.characters.c.id == cid))
        assert [r["slot"] for r in first] == list(range(len(slots)))
        assert all(r["status"] == "planned" and r["date"] == DAY for r in first)
        assert all(r["plan"]["source"] == "ollama" for r in first)
        assert all(r["plan"]["disclosure"] for r in first)
        assert all(r["scheduled_at"].tzinfo is not None for r in first)
        chats = [e for e in sandbox_server.journal("ollama")
                 if e["id"] > since and e["path"] == "/api/chat"]
        assert len(chats) == len(slots)

        again = dg.materialize([characters, reel_plans], selection=[reel_plans],
                               partition_key=key, resources=resources, instance=instance)
        meta = again.asset_materializations_for_node("reel_plans")[0].metadata
        assert meta["planned"].value == 0 and meta["existing"].value == len(slots)
        assert _reels(engine, cid) == first


def test_ollama_down_falls_back_to_templates(resources, engine: sa.Engine) -> None:
    resources = {**resources, "ollama": OllamaResource(host="http://127.0.0.1:9",
                                                       timeout_seconds=2)}
    with dg.instance_for_test() as instance:
        cid = _load_roster(resources, instance)[1]
        result = dg.materialize([characters, reel_plans], selection=[reel_plans],
                                partition_key=partition_key(cid, DAY), resources=resources,
                                instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node("reel_plans")[0].metadata
    assert meta["template_fallbacks"].value == meta["planned"].value > 0
    plans = [r["plan"] for r in _reels(engine, cid)]
    assert all(p["source"] == "template" and "fallback_reason" in p for p in plans)
    assert all(p["caption"] and p["hashtags"] and p["disclosure"] for p in plans)


def test_removed_character_is_disabled_not_deleted(resources, roster_file: Path,
                                                   engine: sa.Engine) -> None:
    with dg.instance_for_test() as instance:
        ids = _load_roster(resources, instance)
        from ruamel.yaml import YAML

        yaml = YAML()
        doc = yaml.load(roster_file)
        removed = doc["characters"][-1]["id"]
        del doc["characters"][-1]
        with roster_file.open("w") as fh:
            yaml.dump(doc, fh)
        assert dg.materialize([characters], resources=resources, instance=instance).success
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(schema.characters.c.id,
                                           schema.characters.c.enabled)).all())
    assert len(rows) == len(ids) and rows[removed] is False
    assert sum(rows.values()) == len(ids) - 1


def test_ollama_junk_falls_back_to_templates(resources, engine: sa.Engine,
                                             sandbox_server) -> None:
    """A cut-off answer (invalid JSON) from Ollama: the plan still gets made, from templates."""
    fault = sandbox_server.add_fault(system="ollama", route="/api/chat", action="truncate")
    try:
        with dg.instance_for_test() as instance:
            cid = _load_roster(resources, instance)[2]
            result = dg.materialize([characters, reel_plans], selection=[reel_plans],
                                    partition_key=partition_key(cid, DAY),
                                    resources=resources, instance=instance)
    finally:
        sandbox_server.remove_fault(fault["id"])
    assert result.success
    plans = [r["plan"] for r in _reels(engine, cid)]
    assert plans and all(p["source"] == "template" and p["fallback_reason"] for p in plans)
    assert all(p["platforms"]["tiktok"]["is_aigc"] for p in plans)
