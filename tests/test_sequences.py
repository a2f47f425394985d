"""DM sequences: the shipped sequences.yaml, every load error with its line, conditions,
due steps and the deterministic weighted A/B choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waifugen_assets.core.config import project_root
from waifugen_assets.subscribers.safety import gate, personalize
from waifugen_assets.subscribers.sequences import (
    PLACEHOLDERS,
    Condition,
    Sequence,
    SequenceError,
    SequenceIssue,
    Step,
    SubscriberFacts,
    Variant,
    choose_variant,
    due_at,
    due_steps,
    load_sequences,
    parse_sequences,
    sequence_for,
    template_variables,
)

SHIPPED = project_root() / "sequences.yaml"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

# Line numbers, for reading the expected messages: 3 "- tier", 7 first step (day 0),
# 10 its variant, 11 weight, 12 text, 13 second step (day 3), 15 condition, 19 its text.
VALID = """\
version: 1
sequences:
  - tier: standard
    name: welcome
    version: 1
    steps:
      - day: 0
        name: hello
        variants:
          - name: a
            weight: 1
            text: "Hi {name}, welcome!"
      - day: 3
        name: check-in
        condition: {tiers: [standard], tags_any: [engaged]}
        variants:
          - name: a
            weight: 1
            text: "How are you, {name}?"
"""


def facts(**overrides: object) -> SubscriberFacts:
    values: dict[str, object] = {
        "id": 7, "platform": "fanvue", "tier": "standard", "tags": frozenset({"engaged"}),
        "score": 40.0, "timezone": "Europe/Madrid", "character_timezone": "Asia/Tokyo",
        "subscribed_at": T0, "last_inbound_at": None, "last_outbound_at": None,
        "opted_out_at": None, "has_replied": True, "spent_cents": 1500,
    }
    values.update(overrides)
    return SubscriberFacts(**values)  # type: ignore[arg-type]


def errors(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(SequenceError) as info:
        parse_sequences(text, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == "\n".join(str(i) for i in info.value.issues)
    return [str(i) for i in info.value.issues]


# --- the shipped file ---------------------------------------------------------------------


def test_shipped_sequences_load_and_follow_the_default_plan() -> None:
    sequences = load_sequences(SHIPPED)
    standard = sequence_for(sequences, "mika-hoshizora", "standard")
    assert standard is not None and standard.character is None
    assert [(s.day, s.name) for s in standard.steps] == [
        (0, "welcome"), (3, "check-in"), (7, "custom-offer"), (14, "vip-invite")]
    assert [s.index for s in standard.steps] == [0, 1, 2, 3]
    assert len(standard.steps[0].variants) >= 2
    assert "preview" in standard.steps[0].variants[0].text
    assert standard.steps[1].condition.tiers == ("standard",)  # the upsell: standard only
    assert standard.steps[2].condition != Condition()
    assert standard.steps[3].condition != Condition()
    assert standard.key == "default/standard/welcome-series@1"
    vip = sequence_for(sequences, "mika-hoshizora", "vip")
    assert vip is not None and [s.day for s in vip.steps] == [0, 3, 7, 14]
    assert not any("upgrade" in v.text.lower() for s in vip.steps for v in s.variants)


def test_shipped_texts_pass_the_gate_and_personalize() -> None:
    for seq in load_sequences(SHIPPED):
        for step in seq.steps:
            for variant in step.variants:
                assert gate(variant.text) == [], (seq.key, step.name, variant.name)
                out = personalize(
                    variant.text, variables={"name": "Sam", "handle": "@sam",
                                             "character": "Mika"},
                    persona="A retro-gaming streamer.", prompt=variant.prompt, writer=None,
                    max_len=1000)
                assert "Sam" in out.text and "{" not in out.text


def test_definition_is_json_ready_and_complete() -> None:
    seq = load_sequences(SHIPPED)[0]
    data = json.loads(json.dumps(seq.definition()))
    assert data["tier"] == "standard" and data["character"] is None
    assert [s["day"] for s in data["steps"]] == [s.day for s in seq.steps]
    assert data["steps"][1]["condition"] == {"tiers": ["standard"]}
    assert data["steps"][0]["variants"][0]["weight"] == seq.steps[0].variants[0].weight


# --- the model ----------------------------------------------------------------------------


def test_sequence_key_names_character_tier_name_and_version() -> None:
    assert Sequence("mika-hoshizora", "vip", "intro", 3, ()).key == "mika-hoshizora/vip/intro@3"
    assert Sequence(None, "standard", "intro", 1, ()).key == "default/standard/intro@1"


@pytest.mark.parametrize(("condition", "subscriber", "reason"), [
    (Condition(tiers=("vip",)), {"tier": "standard"}, "tier standard not in (vip)"),
    (Condition(tiers=("standard", "vip")), {"tier": "vip"}, None),
    (Condition(tags_any=("whale", "engaged")), {"tags": frozenset({"new"})},
     "none of the tags (whale, engaged)"),
    (Condition(tags_any=("whale", "engaged")), {"tags": frozenset({"engaged"})}, None),
    (Condition(tags_none=("silent",)), {"tags": frozenset({"silent", "new"})},
     "has tag silent"),
    (Condition(min_score=20), {"score": 19.99}, "score 19.99 below 20"),
    (Condition(min_score=20), {"score": 20.0}, None),
    (Condition(has_replied=True), {"has_replied": False}, "has not replied"),
    (Condition(has_replied=False), {"has_replied": True}, "has replied"),
    (Condition(min_spent_cents=1000), {"spent_cents": 999}, "spent 999 cents, below 1000"),
    (Condition(min_spent_cents=1000), {"spent_cents": 1000}, None),
    (Condition(), {"tier": "vip", "tags": frozenset(), "score": 0.0}, None),
])
def test_condition_matches_or_says_why_not(
    condition: Condition, subscriber: dict[str, object], reason: str | None
) -> None:
    assert condition.matches(facts(**subscriber)) == reason


def test_facts_reject_naive_times_and_take_tags_from_any_iterable() -> None:
    with pytest.raises(ValueError, match="subscribed_at must be a timezone-aware"):
        facts(subscribed_at=datetime(2026, 5, 1, 12, 0))
    with pytest.raises(ValueError, match="last_inbound_at"):
        facts(last_inbound_at=datetime(2026, 5, 1, 12, 0))
    assert facts(tags=["a", "b", "a"]).tags == frozenset({"a", "b"})


def test_template_variables_fall_back_when_the_subscriber_has_no_name() -> None:
    assert template_variables(facts(display_name="Ana", handle="@ana"), "Mika") == {
        "name": "Ana", "handle": "@ana", "character": "Mika"}
    assert template_variables(facts(handle="@ana"), "Mika")["name"] == "ana"
    assert template_variables(facts(display_name="  "), "Mika")["name"] == "there"
    assert set(template_variables(facts(), "Mika")) == set(PLACEHOLDERS)


def test_character_sequence_wins_over_the_default() -> None:
    default = Sequence(None, "standard", "welcome", 1, ())
    mika = Sequence("mika", "standard", "welcome", 2, ())
    vip = Sequence(None, "vip", "welcome", 1, ())
    sequences = [default, mika, vip]
    assert sequence_for(sequences, "mika", "standard") is mika
    assert sequence_for(sequences, "lucia", "standard") is default
    assert sequence_for(sequences, "mika", "vip") is vip
    assert sequence_for([mika], "lucia", "standard") is None
    assert sequence_for(sequences, "mika", "gold") is None


def _step(index: int, day: int) -> Step:
    return Step(index, day, f"s{index}", Condition(), (Variant("a", 1, "hi", None),))


def test_due_steps_are_those_whose_time_has_come_and_not_planned() -> None:
    seq = Sequence(None, "standard", "w", 1, (_step(0, 0), _step(1, 3), _step(2, 7)))
    subscriber = facts(subscribed_at=T0)
    assert due_at(seq.steps[1], T0) == T0 + timedelta(days=3)
    assert [s.index for s in due_steps(seq, subscriber, T0, set())] == [0]
    just_before = T0 + timedelta(days=3) - timedelta(microseconds=1)
    assert [s.index for s in due_steps(seq, subscriber, just_before, set())] == [0]
    at_day_3 = T0 + timedelta(days=3)
    assert [s.index for s in due_steps(seq, subscriber, at_day_3, set())] == [0, 1]
    assert [s.index for s in due_steps(seq, subscriber, at_day_3, {0})] == [1]
    later = T0 + timedelta(days=30)
    assert [s.index for s in due_steps(seq, subscriber, later, {1})] == [0, 2]
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        due_steps(seq, subscriber, datetime(2026, 6, 1), set())


def test_due_at_is_utc_whatever_zone_the_subscription_time_has() -> None:
    madrid = T0.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Madrid"))
    due = due_at(_step(0, 7), madrid)
    assert due == T0 + timedelta(days=7) and due.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(_step(0, 7), datetime(2026, 5, 1))


# --- A/B variants -------------------------------------------------------------------------


def _ab_step(weights: list[int]) -> Step:
    variants = tuple(Variant(f"v{i}", w, f"text {i}", None) for i, w in enumerate(weights))
    return Step(0, 0, "welcome", Condition(), variants)


def test_choose_variant_is_deterministic_and_depends_on_subscriber_and_sequence() -> None:
    step = _ab_step([1, 1])
    first = [choose_variant(step, sid, "default/standard/w@1").name for sid in range(200)]
    again = [choose_variant(step, sid, "default/standard/w@1").name for sid in range(200)]
    other = [choose_variant(step, sid, "default/standard/w@2").name for sid in range(200)]
    assert first == again
    assert first != other  # a new version reshuffles
    assert set(first) == {"v0", "v1"}


def test_choose_variant_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from waifugen_assets.subscribers.sequences import (\n"
        "    Condition, Step, Variant, choose_variant)\n"
        "s = Step(0, 0, 'w', Condition(), tuple(Variant(f'v{i}', i + 1, 't', None) "
        "for i in range(3)))\n"
        "print(','.join(choose_variant(s, n, 'mika/vip/x@1').name for n in range(100)))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, check=True, cwd=project_root())
        outputs.add(result.stdout.strip())
    step = Step(0, 0, "w", Condition(), tuple(Variant(f"v{i}", i + 1, "t", None)
                                              for i in range(3)))
    here = ",".join(choose_variant(step, n, "mika/vip/x@1").name for n in range(100))
    assert outputs == {here}


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=4),
       key=st.text(min_size=1, max_size=30))
def test_variant_split_approaches_the_weights(weights: list[int], key: str) -> None:
    step = _ab_step(weights)
    n = 4000
    counts = Counter(choose_variant(step, sid, key).name for sid in range(n))
    total = sum(weights)
    for i, weight in enumerate(weights):
        # 4000 draws: the standard error of a share is at most 0.008; 0.045 is > 5 of them.
        assert abs(counts[f"v{i}"] / n - weight / total) < 0.045


def test_choose_variant_needs_a_variant() -> None:
    with pytest.raises(ValueError, match="no variant"):
        choose_variant(Step(0, 0, "empty", Condition(), ()), 1, "k")


# --- load errors --------------------------------------------------------------------------


def test_valid_text_parses() -> None:
    [seq] = parse_sequences(VALID)
    assert seq.key == "default/standard/welcome@1"
    assert seq.steps[1].condition == Condition(tiers=("standard",), tags_any=("engaged",))
    assert seq.steps[0].expire_after_hours == 72
    assert seq.steps[0].variants == (Variant("a", 1, "Hi {name}, welcome!", None),)


_W = '            weight: {}\n            text: "Hi'  # the first variant's weight
CASES = [
    # (what to replace in VALID, with what, the expected first issue)
    ("  - tier: standard\n    name: welcome", "  - name: welcome",
     "sequences.yaml:3: sequences[0].tier: required field is missing"),
    ("tier: standard", "tier: gold",
     "sequences.yaml:3: sequences[0].tier: unknown tier (allowed: standard, vip; "
     "got string 'gold')"),
    ("    version: 1\n    steps", "    steps",
     "sequences.yaml:3: sequences[0].version: required field is missing"),
    ("    version: 1\n    steps", "    version: 0\n    steps",
     "sequences.yaml:5: sequences[0].version: must be at least 1 (got 0)"),
    ("name: welcome", "name: Welcome Series",
     "sequences.yaml:4: sequences[0].name: must be a slug"),
    ("day: 0", "day: 5",
     "sequences.yaml:13: sequences[0].steps[1].day: day 3 comes after day 5 (line 7): "
     "steps must be listed in day order"),
    ("day: 3", "day: 0",
     "sequences.yaml:13: sequences[0].steps[1].day: duplicate day 0 (first used at line 7)"),
    ("day: 3", "day: -1",
     "sequences.yaml:13: sequences[0].steps[1].day: must be between 0 and 365 (got -1)"),
    ("day: 3", "day: three",
     "sequences.yaml:13: sequences[0].steps[1].day: must be a whole number (got string "
     "'three')"),
    ("      - day: 3\n", "      - dya: 3\n",
     "sequences.yaml:13: sequences[0].steps[1].dya: unknown field (did you mean 'day'?)"),
    ("name: check-in", "name: hello",
     "sequences.yaml:14: sequences[0].steps[1].name: duplicate step name 'hello' (first used "
     "at line 8)"),
    ("Hi {name}, welcome!", "Hi {first_name}, welcome!",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: unknown placeholder "
     "{first_name} (allowed: {name}, {handle}, {character})"),
    ("Hi {name}, welcome!", "Hi {}, welcome!",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: unknown placeholder {}"),
    ("Hi {name}, welcome!", "Hi {name, welcome!",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: bad braces"),
    ("Hi {name}, welcome!", "Hi {name!r:>10}, welcome!",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: placeholder {name} takes no "
     "format spec or conversion"),
    (_W.format(1), _W.format('0'),
     "sequences.yaml:11: sequences[0].steps[0].variants[0].weight: must be at least 1 (got 0)"),
    (_W.format(1), _W.format('-3'),
     "sequences.yaml:11: sequences[0].steps[0].variants[0].weight: must be at least 1 (got -3)"),
    (_W.format(1), _W.format('0.5'),
     "sequences.yaml:11: sequences[0].steps[0].variants[0].weight: must be a whole number "
     "(got number 0.5)"),
    ("            text: \"Hi {name}, welcome!\"\n", "",
     "sequences.yaml:10: sequences[0].steps[0].variants[0].text: required field is missing"),
    ("            text: \"Hi {name}, welcome!\"", "            text: \"  \"",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: must not be empty"),
    ("tiers: [standard]", "tiers: [standard, gold]",
     "sequences.yaml:15: sequences[0].steps[1].condition.tiers[1]: unknown tier"),
    ("tags_any: [engaged]", "tags_any: [engaged], min_score: 150",
     "sequences.yaml:15: sequences[0].steps[1].condition.min_score: must be between 0 and 100 "
     "(got 150)"),
    ("tags_any: [engaged]", "tags_any: [engaged], has_replied: yes",
     "sequences.yaml:15: sequences[0].steps[1].condition.has_replied: must be true or false "
     "(got string 'yes')"),
    ("tags_any: [engaged]", "tags_any: [engaged], min_spent_cents: -5",
     "sequences.yaml:15: sequences[0].steps[1].condition.min_spent_cents: must be at least 0"),
    ("tags_any: [engaged]", "tags_any: [engaged], tags_none: [engaged]",
     "sequences.yaml:15: sequences[0].steps[1].condition: tag(s) engaged both required and "
     "excluded"),
    ("tags_any: [engaged]", "tags_any: [Big Spender]",
     "sequences.yaml:15: sequences[0].steps[1].condition.tags_any[0]: must be a tag"),
    ("tags_any: [engaged]", "tag_any: [engaged]",
     "sequences.yaml:15: sequences[0].steps[1].condition.tag_any: unknown field (did you mean "
     "'tags_any'?)"),
    ("condition: {tiers: [standard], tags_any: [engaged]}", "condition: [standard]",
     "sequences.yaml:15: sequences[0].steps[1].condition: must be a mapping of conditions"),
    ("      - day: 0\n        name: hello\n        variants:\n          - name: a\n"
     "            weight: 1\n            text: \"Hi {name}, welcome!\"\n",
     "      - day: 0\n        name: hello\n        variants: []\n",
     "sequences.yaml:9: sequences[0].steps[0].variants: must list at least one variant"),
    ("          - name: a\n            weight: 1\n            text: \"How",
     "          - name: a\n            weight: 1\n            text: \"Hi\"\n"
     "          - name: a\n            weight: 1\n            text: \"How",
     "sequences.yaml:20: sequences[0].steps[1].variants[1].name: duplicate variant name 'a' "
     "(first used at line 17)"),
    ("Hi {name}, welcome!", "Hi {name}, send me your nudes!",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: refused by the safety gate: "
     "sexual content: 'nudes'"),
    ("Hi {name}, welcome!", "Hi {name}, tip me on PayPal!",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: refused by the safety gate: "
     "off-platform payment: 'paypal'"),
    ("Hi {name}, welcome!", "Hi {name}, see https://example.com/x",
     "sequences.yaml:12: sequences[0].steps[0].variants[0].text: refused by the safety gate: "
     "link to a host that is not allowed: 'example.com'"),
    ("            text: \"Hi {name}, welcome!\"",
     "            text: \"Hi {name}, welcome!\"\n            prompt: \"Make it sexy\"",
     "sequences.yaml:13: sequences[0].steps[0].variants[0].prompt: refused by the safety gate"),
    ("      - day: 0\n", "      - day: 0\n        expire_after_hours: 0\n",
     "sequences.yaml:8: sequences[0].steps[0].expire_after_hours: must be between 1 and 8760 "
     "(got 0)"),
    ("    steps:\n", "    steps: []\n    unused:\n",
     "sequences.yaml:6: sequences[0].steps: must list at least one step"),
    ("  - tier: standard", "  - character: Mika!\n    tier: standard",
     "sequences.yaml:3: sequences[0].character: must be a slug"),
    ("version: 1\nsequences", "version: 2\nsequences",
     "sequences.yaml:1: version: unsupported version 2 (this release reads version 1)"),
    ("condition: {tiers: [standard], tags_any: [engaged]}",
     "condition: {tiers: [standard, tags_any: [engaged]}",
     "sequences.yaml:15: invalid YAML at column"),
    ("        name: hello\n", "        name: hello\n       bad: indent\n",
     "sequences.yaml:9: invalid YAML"),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES,
                         ids=[c[2].split(": ", 2)[-1][:40] for c in CASES])
def test_each_load_error_names_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in VALID
    found = errors(VALID.replace(old, new, 1))
    assert any(f.startswith(expected) for f in found), found


def test_every_problem_is_listed_in_line_order() -> None:
    text = (VALID.replace("tier: standard", "tier: gold")
            .replace("day: 3", "day: 0")
            .replace("{name}, welcome", "{nom}, welcome")
            .replace("            weight: 1\n            text: \"How",
                     "            weight: 0\n            text: \"How"))
    found = errors(text)
    lines = [int(f.split(":")[1]) for f in found]
    assert lines == [3, 12, 13, 18]
    assert len(found) == 4


def test_a_second_sequence_for_the_same_owner_and_tier_is_an_error() -> None:
    second = VALID.split("sequences:\n", 1)[1].replace("name: welcome", "name: other")
    found = errors(VALID + second)
    assert found == ["sequences.yaml:20: sequences[1]: a second sequence for default/standard "
                     "(first at line 3); one per character and tier"]
    mika = second.replace("  - tier: standard", "  - character: mika\n    tier: standard")
    seqs = parse_sequences(VALID + mika)
    assert [s.key for s in seqs] == ["default/standard/welcome@1", "mika/standard/other@1"]


def test_unknown_character_is_an_error_only_when_the_roster_is_given() -> None:
    text = VALID.replace("  - tier: standard", "  - character: zoe\n    tier: standard")
    assert parse_sequences(text)[0].character == "zoe"
    assert errors(text, known_characters={"mika"}) == [
        "sequences.yaml:3: sequences[0].character: unknown character 'zoe' (not in the roster)"]
    assert parse_sequences(text, known_characters={"zoe"})[0].key == "zoe/standard/welcome@1"


def test_links_to_allowed_hosts_pass_at_load() -> None:
    text = VALID.replace("Hi {name}, welcome!", "Hi {name}, see https://www.fanvue.com/mika")
    assert errors(text)[0].endswith("link to a host that is not allowed: 'www.fanvue.com'")
    [seq] = parse_sequences(text, allowed_hosts=["fanvue.com"])
    assert "fanvue.com/mika" in seq.steps[0].variants[0].text


@pytest.mark.parametrize(("text", "expected"), [
    ("", "sequences.yaml: file is empty"),
    ("# only a comment\n", "sequences.yaml: file is empty"),
    ("- a\n- b\n", "sequences.yaml:1: top level must be a mapping"),
    ("version: 1\n", "sequences.yaml:1: sequences: required field is missing"),
    ("version: 1\nsequences: {}\n", "sequences.yaml:2: sequences: must be a list of sequences"),
    ("version: 1\nsequences:\n  - just text\n",
     "sequences.yaml:3: sequences[0]: must be a mapping of sequence fields"),
    ("version: 1\nsequences: []\nextra: 1\n", "sequences.yaml:3: extra: unknown field"),
    ("version: 1\nsequences: [\n", "sequences.yaml:"),
])
def test_file_level_problems(text: str, expected: str) -> None:
    assert errors(text)[0].startswith(expected)


def test_load_sequences_reads_files_and_reports_missing_ones(tmp_path: Path) -> None:
    path = tmp_path / "seq.yaml"
    path.write_text(VALID.replace("day: 3", "day: 0"), encoding="utf-8")
    with pytest.raises(SequenceError) as info:
        load_sequences(path)
    assert info.value.issues[0] == SequenceIssue(
        str(path), 13, "sequences[0].steps[1].day", "duplicate day 0 (first used at line 7)")
    with pytest.raises(SequenceError, match="file not found"):
        load_sequences(tmp_path / "missing.yaml")
    path.write_bytes(b"version: 1\n\xff\n")
    with pytest.raises(SequenceError, match="not UTF-8"):
        load_sequences(path)
    path.write_text(VALID, encoding="utf-8")
    assert load_sequences(path)[0].key == "default/standard/welcome@1"
