"""Phases in configuration (phases.yaml beside the roster): the shipped file is the defaults,
every mistake is one line naming file, line and field, and a wrong file stops the runs that
read it (`character_phases`, `reel_plans`) before anything is recorded or planned. The asset
runs through Dagster on a real partition, Telegram on the sandbox over HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import insert

from resources.telegram import TelegramResource
from sandbox.server import SandboxServer
from waifugen_assets.core import schema
from waifugen_assets.core.config import project_root
from waifugen_assets.milestones.assets import character_phases
from waifugen_assets.pipeline.partitions import LAUNCH_DATE, characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.roster.assets import characters
from waifugen_assets.roster.phases import (
    DEFAULT_LADDER,
    PhaseError,
    load_phases,
    phases_for_roster,
    validate_phases_text,
)

GOOD = """version: 1
phases:
  - name: launch
    followers: 0
    daily_slots: 4
  - name: growth
    followers: 10000
    daily_slots: 6
    weekly_premium: true
"""


def test_the_shipped_file_is_the_defaults_and_no_file_means_the_defaults(
        tmp_path: Path) -> None:
    shipped = load_phases(project_root() / "phases.yaml")
    assert (shipped.phases, shipped.followers_from, shipped.demote_after_days) == (
        DEFAULT_LADDER.phases, DEFAULT_LADDER.followers_from, DEFAULT_LADDER.demote_after_days)
    assert phases_for_roster(tmp_path / "characters.yaml") is DEFAULT_LADDER
    (tmp_path / "phases.yaml").write_text(GOOD)
    ladder = phases_for_roster(tmp_path / "characters.yaml")
    assert [p.name for p in ladder.phases] == ["launch", "growth"]
    assert ladder.path == tmp_path / "phases.yaml" and ladder.demote_after_days == 14


@pytest.mark.parametrize(("text", "expected"), [
    ("", ["phases.yaml: file is empty (expected 'version: 1' and a 'phases' list)"]),
    ("version: 1\nphases: []\n", ["phases.yaml:2: phases: must list at least one phase"]),
    (GOOD.replace("version: 1", "version: 2"),
     ["phases.yaml:1: version: unsupported version 2 (this release reads version 1)"]),
    (GOOD.replace("followers: 0", "followers: 100"),
     ["phases.yaml:4: phases[0].followers: the first phase is where every character starts: "
      "must be 0 (got 100)"]),
    (GOOD.replace("followers: 10000", "followers: -5"),
     ["phases.yaml:7: phases[1].followers: must be at least 0 (got -5)"]),
    (GOOD.replace("followers: 10000", "followers: '10k'"),
     ["phases.yaml:7: phases[1].followers: must be a whole number (got string '10k')"]),
    (GOOD.replace("followers: 10000", "followers: 0"),
     ["phases.yaml:7: phases[1].followers: must be more than the phase before (0); phases "
      "climb"]),
    (GOOD.replace("daily_slots: 6", "daily_slots: 3"),
     ["phases.yaml:8: phases[1].daily_slots: must be at least the phase before's 4: a phase "
      "unlocks volume, it never takes it back"]),
    (GOOD.replace("daily_slots: 6", "daily_slots: 25"),
     ["phases.yaml:8: phases[1].daily_slots: must be between 1 and 24 (got 25)"]),
    (GOOD.replace("name: growth", "name: launch"),
     ["phases.yaml:6: phases[1].name: duplicate phase 'launch' (first at line 3)"]),
    (GOOD.replace("name: growth", "name: Growth Phase"),
     ["phases.yaml:6: phases[1].name: must be a slug: lowercase letters and digits in words "
      "joined by single hyphens (got 'Growth Phase')"]),
    (GOOD.replace("weekly_premium: true", "weekly_premium: yes"),
     ["phases.yaml:9: phases[1].weekly_premium: must be true or false (got string 'yes')"]),
    (GOOD.replace("    daily_slots: 4\n", "    daily_slots: 4\n    subscriber_channels: true\n")
     + "    subscriber_channels: false\n",
     ["phases.yaml:11: phases[1].subscriber_channels: a later phase cannot take back what an "
      "earlier one unlocked"]),
    (GOOD.replace("    daily_slots: 6\n", "    daily_slots: 6\n    content_rating: mature\n"),
     ["phases.yaml:9: phases[1].content_rating: phases unlock volume and features, never "
      "content: every phase is general-audience; remove this field"]),
    (GOOD.replace("    daily_slots: 6\n", "    daily_slot: 6\n"),
     ["phases.yaml:6: phases[1].daily_slots: required field is missing",
      "phases.yaml:8: phases[1].daily_slot: unknown field (did you mean 'daily_slots'?)"]),
    ("demote_after_days: 1\n" + GOOD,
     ["phases.yaml:1: demote_after_days: must be 0 (never demote) or at least 2: one low read "
      "must not demote a character"]),
    ("followers_from: [tiktok, onlyfans, tiktok]\n" + GOOD,
     ["phases.yaml:1: followers_from[1]: must be one of tiktok, instagram, youtube (got "
      "string 'onlyfans')", "phases.yaml:1: followers_from[2]: tiktok is listed twice"]),
    ("version: 1\nphases:\n  - name: launch\n    followers: 0\n    daily_slots: 4\n  bad",
     None),
])
def test_each_mistake_is_one_line_with_file_line_and_field(text: str,
                                                          expected: list[str] | None) -> None:
    with pytest.raises(PhaseError) as caught:
        validate_phases_text(text)
    lines = [str(issue) for issue in caught.value.issues]
    assert all("\n" not in line for line in lines)
    if expected is None:  # a YAML syntax error: its place and the parser's words
        assert len(lines) == 1 and lines[0].startswith("phases.yaml:6: invalid YAML")
    else:
        assert lines == expected


_LINES = st.sampled_from([
    "version: 1", "version: 2", "phases:", "  - name: launch", "  - name: growth",
    "    followers: 0", "    followers: 10000", "    followers: -1", "    followers: x",
    "    daily_slots: 4", "    daily_slots: 99", "    weekly_premium: true",
    "    weekly_premium: false", "    content_rating: general", "demote_after_days: 1",
    "followers_from: [tiktok, tiktok]", "  - 5", "phases: {}", "  bad", "\u202e: 1", "- [",
])


@given(st.lists(_LINES, max_size=14) | st.text(max_size=200))
def test_any_file_is_either_a_ladder_or_one_line_per_problem(text: str | list[str]) -> None:
    source = text if isinstance(text, str) else "\n".join(text)
    issues: list = []
    try:
        ladder = validate_phases_text(source)
    except PhaseError as exc:
        issues = exc.issues
        assert issues  # a refused file says why
        assert all("\n" not in str(i) and str(i).startswith("phases.yaml") for i in issues)
    if not issues:
        assert ladder.first.followers == 0 and len(ladder.phases) >= 1


@pytest.fixture(scope="module")
def alert_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox of this module's own for the operators' Telegram: its journal holds only
    these tests' announcements (other tests count the shared sandbox's messages)."""
    with SandboxServer(state_dir=tmp_path_factory.mktemp("alerts"), seed=1234) as server:
        yield server


@pytest.fixture
def alert_chat(alert_sandbox: SandboxServer) -> str:
    """An operators' chat of this test's own."""
    chat = f"-100{uuid.uuid4().int % 10**10:010d}"
    httpx.post(f"{alert_sandbox.url}/telegram/_control/chats",
               json={"chat_id": chat, "type": "supergroup"}).raise_for_status()
    return chat


def _failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.description


def test_the_asset_through_dagster_records_and_announces_once_and_a_wrong_file_stops_it(
        pipeline_resources: dict, engine: sa.Engine, alert_sandbox: SandboxServer,
        alert_chat: str) -> None:
    day = LAUNCH_DATE  # a real partition
    resources = {**pipeline_resources, "telegram": TelegramResource(
        base_url=f"{alert_sandbox.url}/telegram", alert_chat_id=alert_chat)}
    roster_file = Path(pipeline_resources["roster"].path)
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=resources, instance=instance).success
        with engine.begin() as conn:
            conn.execute(insert(schema.follower_snapshots).values([
                {"character_id": "lucia-marvento", "platform": p, "captured_on": day,
                 "followers": n} for p, n in (("tiktok", 7000), ("instagram", 2500),
                                             ("youtube", 600))]))
        for _ in range(2):  # the second run finds it recorded: nothing new, nothing sent
            result = dg.materialize([character_phases], partition_key=day.isoformat(),
                                    resources=resources, instance=instance)
        assert result.success
        metadata = result.asset_materializations_for_node("character_phases")[0].metadata
        assert metadata["crossings"].value == 0 and metadata["in_growth"].value == 1
        assert "lucia-marvento | growth | 10,100 | established at 50,000" in \
            metadata["phases"].value
        texts = [m.get("text") for m in httpx.get(f"{alert_sandbox.url}/telegram/_control/sent",
                                              params={"chat_id": alert_chat}).json()]
        assert len(texts) == 1 and texts[0].startswith(
            "waifugen milestone: Lucía Marvento (lucia-marvento) reached growth at 10,000 "
            f"followers: 10,100 on {day.isoformat()} (instagram 2,500, tiktok 7,000, "
            "youtube 600).")
        assert "6 daily slots, weekly premium eligibility" in texts[0]

        (roster_file.parent / "phases.yaml").write_text(GOOD.replace("daily_slots: 6",
                                                                     "daily_slots: 2"))
        description = _failure(dg.materialize(
            [character_phases], partition_key=day.isoformat(), resources=resources,
            instance=instance, raise_on_error=False))
        assert description.splitlines() == [
            "phases file has 1 error(s); nothing was recorded:",
            f"{roster_file.parent / 'phases.yaml'}:8: phases[1].daily_slots: must be at least "
            "the phase before's 4: a phase unlocks volume, it never takes it back"]

        instance.add_dynamic_partitions(characters_partitions.name, ["lucia-marvento"])
        description = _failure(dg.materialize(
            [characters, reel_plans], selection=[reel_plans],
            partition_key=partition_key("lucia-marvento", day + dt.timedelta(days=1)),
            resources=resources, instance=instance, raise_on_error=False))
        assert description.splitlines()[0] == "phases file has 1 error(s); nothing was planned:"
        assert description.splitlines()[1].endswith("phases[1].daily_slots: must be at least "
                                                    "the phase before's 4: a phase unlocks "
                                                    "volume, it never takes it back")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.reels)) == 0
        assert conn.scalar(sa.select(sa.func.count())
                           .select_from(schema.character_phases)) == 1
