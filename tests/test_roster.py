"""The roster file: the shipped characters.yaml, every rejection rule, and slot scheduling."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, time
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from waifugen_assets.core.config import project_root
from waifugen_assets.roster.model import (
    MAX_AGE,
    MAX_SLOTS,
    PLATFORMS,
    PUBLISH_PLATFORMS,
    SUBSCRIBER_PLATFORMS,
    Character,
    PlatformAccount,
    Roster,
    RosterError,
    RosterIssue,
    Watermark,
    load_roster,
    parse_slot,
    validate_roster_text,
)

DATA = Path(__file__).parent / "data" / "rosters"
SHIPPED = project_root() / "characters.yaml"

# One valid character; each case below breaks one line of it. Line numbers, for reading the
# expected messages: 2 characters, 3 id, 6 age, 7 timezone, 8 budget_share, 9 slots,
# 10 platforms, 11 tiktok.
VALID = """\
version: 1
characters:
  - id: ana-sol
    name: Ana Sol
    persona: A travel vlogger who films night markets.
    age: 25
    timezone: Europe/Madrid
    budget_share: 40
    slots: ["09:00", "18:00"]
    platforms:
      tiktok: {account: "@anasol"}
"""


def write(tmp_path: Path, text: str, name: str = "characters.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def broken(old: str, new: str) -> str:
    assert old in VALID, old  # a case that stopped matching would silently test nothing
    return VALID.replace(old, new, 1)


def renamed(text: str, ident: str) -> str:
    """ana-sol's id and handle as `ident`'s: an account belongs to one character."""
    return text.replace("ana-sol", ident).replace("@anasol", f"@{ident}")


def problems(path: Path | str) -> list[str]:
    with pytest.raises(RosterError) as caught:
        load_roster(path)
    return [str(issue) for issue in caught.value.issues]


def outcome(text: str, filename: str = "characters.yaml") -> Roster | list[RosterIssue]:
    """The roster, or the issues it was rejected with (for tests that accept either)."""
    try:
        return validate_roster_text(text, filename)
    except RosterError as exc:
        return exc.issues


def text_problems(text: str, filename: str = "characters.yaml") -> list[str]:
    with pytest.raises(RosterError) as caught:
        validate_roster_text(text, filename)
    return [str(issue) for issue in caught.value.issues]


# --- the shipped roster -------------------------------------------------------------------


def test_shipped_roster_loads_with_eight_adult_characters() -> None:
    roster = load_roster(SHIPPED)

    assert len(roster.characters) == 8
    assert all(21 <= c.age <= 34 for c in roster.characters)
    ids = [c.id for c in roster.characters]
    assert len(set(ids)) == len(ids)
    assert set(roster.by_id) == set(ids)
    assert sum(c.budget_share or 0 for c in roster.enabled()) <= 100
    assert sum(roster.budget_shares().values()) == 100
    assert len({c.timezone for c in roster.characters}) == 8
    assert roster.path == SHIPPED
    assert roster.sha256 == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()


def test_shipped_characters_are_complete_and_general_audience() -> None:
    for character in load_roster(SHIPPED).characters:
        platforms = set(character.platforms)
        assert set(PUBLISH_PLATFORMS) <= platforms, character.id
        assert platforms & set(SUBSCRIBER_PLATFORMS), character.id
        assert character.content_rating == "general"
        assert len(character.slots) == 4
        assert character.watermark is not None
        assert character.watermark.text.startswith("@")
        assert character.a2e_avatar_id
        assert character.a2e_voice_id
        sentences = re.findall(r"[.!?](?:\s|$)", character.persona)
        assert 2 <= len(sentences) <= 3, character.id


def test_text_and_file_give_the_same_characters(tmp_path: Path) -> None:
    from_file = load_roster(write(tmp_path, VALID))
    from_text = validate_roster_text(VALID)

    assert from_text.characters == from_file.characters
    assert from_text.sha256 == from_file.sha256
    assert from_text.path is None


def test_defaults_and_slot_order() -> None:
    text = broken('slots: ["09:00", "18:00"]', 'slots: ["18:00", "07:05", "09:00"]')
    (ana,) = validate_roster_text(text).characters

    assert ana == Character(
        id="ana-sol", name="Ana Sol", persona="A travel vlogger who films night markets.",
        age=25, timezone="Europe/Madrid", slots=("07:05", "09:00", "18:00"),
        platforms=ana.platforms, budget_share=40,
    )
    assert ana.enabled
    assert ana.content_rating == "general"
    assert ana.watermark is None
    assert ana.a2e_avatar_id is None
    assert ana.a2e_voice_id is None
    assert ana.slot_times() == [time(7, 5), time(9), time(18)]
    assert ana.zone.key == "Europe/Madrid"
    assert dict(ana.platforms) == {"tiktok": PlatformAccount("tiktok", "@anasol", enabled=True)}
    with pytest.raises(TypeError):
        ana.platforms["youtube"] = PlatformAccount("youtube", "@x")  # type: ignore[index]


def test_optional_blocks() -> None:
    text = broken("    age: 25\n", """\
    age: 25
    watermark: {text: "@anasol", image: logos/ana.png, position: top-left, opacity: 0.5}
    a2e: {avatar_id: av-1, voice_id: vo-1}
""")
    (ana,) = validate_roster_text(text).characters

    assert ana.watermark is not None
    assert ana.watermark.as_dict() == {
        "text": "@anasol", "image": "logos/ana.png", "position": "top-left", "opacity": 0.5,
    }
    assert (ana.a2e_avatar_id, ana.a2e_voice_id) == ("av-1", "vo-1")
    (plain,) = validate_roster_text(broken("    age: 25\n", "    age: 25\n    watermark:"
                                           " {text: '@ana'}\n")).characters
    assert plain.watermark == Watermark(text="@ana", image=None, position="bottom-right",
                                        opacity=0.8)


def test_budget_shares_split_what_named_shares_leave() -> None:
    rest = VALID.split("characters:\n", 1)[1].replace("    budget_share: 40\n", "")
    text = (VALID + renamed(rest, "bo-2") + renamed(rest, "cy-3")
            + renamed(rest, "di-4").replace("age: 25", "age: 25\n    enabled: false"))
    roster = validate_roster_text(text)

    assert roster.by_id["bo-2"].budget_share is None
    assert roster.budget_shares() == {"ana-sol": 40, "bo-2": 30.0, "cy-3": 30.0}


def test_enabled_and_by_id() -> None:
    text = VALID + """\
  - id: bo-2
    name: Bo
    persona: A cook.
    age: 40
    timezone: Asia/Seoul
    enabled: false
    budget_share: 90
    slots: ["12:00"]
    platforms: {youtube: {account: "@bo", enabled: false}}
"""
    roster = validate_roster_text(text)  # 40 + 90 is fine: bo-2 is disabled

    assert [c.id for c in roster.enabled()] == ["ana-sol"]
    assert roster.by_id["bo-2"].budget_share == 90
    assert roster.by_id["bo-2"].platforms["youtube"] == PlatformAccount("youtube", "@bo", False)
    with pytest.raises(TypeError):
        roster.by_id["x"] = roster.characters[0]  # type: ignore[index]


def test_up_to_24_slots_are_fine() -> None:
    slots = ", ".join(f'"{h:02d}:00"' for h in range(24))
    (ana,) = validate_roster_text(broken('["09:00", "18:00"]', f"[{slots}]")).characters
    assert len(ana.slots) == MAX_SLOTS == 24


# --- one mistake, one line ----------------------------------------------------------------

CASES = [
    ("age: 25", "age: 17", "characters.yaml:6: characters[0].age: must be at least 18 (got 17)"),
    ("    age: 25\n", "",
     "characters.yaml:3: characters[0].age: required field is missing"),
    ("age: 25", 'age: "25"',
     "characters.yaml:6: characters[0].age: must be a whole number (got string '25')"),
    ("age: 25", "age: true",
     "characters.yaml:6: characters[0].age: must be a whole number (got boolean true)"),
    ("age: 25", "age: 25.5",
     "characters.yaml:6: characters[0].age: must be a whole number (got number 25.5)"),
    ("age: 25", "age:",
     "characters.yaml:6: characters[0].age: must be a whole number (got null)"),
    ("age: 25", "age: 121", "characters.yaml:6: characters[0].age: must be at most 120 (got 121)"),
    ("age: 25", "age: 100000000000000000000000",  # 10^23 fails the INTEGER column
     "characters.yaml:6: characters[0].age: must be at most 120 (got 100000000000000000000000)"),
    ("age: 25", "age: 0x" + "f" * 5000,  # read by ruamel, too long for Python to print
     "characters.yaml:6: characters[0].age: must be at most 120 (got an integer of 6021 digits "
     "or so)"),
    ("id: ana-sol", "id: Ana_Sol",
     "characters.yaml:3: characters[0].id: must be a slug: lowercase letters and digits in "
     "words joined by single hyphens (got 'Ana_Sol')"),
    ("id: ana-sol", "id: ana--sol",
     "characters.yaml:3: characters[0].id: must be a slug: lowercase letters and digits in "
     "words joined by single hyphens (got 'ana--sol')"),
    ("    name: Ana Sol\n", "",
     "characters.yaml:3: characters[0].name: required field is missing"),
    ("name: Ana Sol", 'name: "  "', "characters.yaml:4: characters[0].name: must not be empty"),
    ("persona: A travel vlogger who films night markets.", "persona: [a, b]",
     "characters.yaml:5: characters[0].persona: must be text (got list)"),
    ("timezone: Europe/Madrid", "timezone: Mars/Olympus",
     "characters.yaml:7: characters[0].timezone: unknown time zone 'Mars/Olympus' "
     "(expected an IANA name such as 'Europe/Madrid')"),
    ("timezone: Europe/Madrid", "timezone: localtime",
     "characters.yaml:7: characters[0].timezone: unknown time zone 'localtime' "
     "(expected an IANA name such as 'Europe/Madrid')"),
    ("timezone: Europe/Madrid", "timezone: America",
     "characters.yaml:7: characters[0].timezone: unknown time zone 'America' "
     "(expected an IANA name such as 'Europe/Madrid')"),
    ("budget_share: 40", "budget_share: 120",
     "characters.yaml:8: characters[0].budget_share: must be between 0 and 100 (got 120)"),
    ("budget_share: 40", "budget_share: -0.5",
     "characters.yaml:8: characters[0].budget_share: must be between 0 and 100 (got -0.5)"),
    ("budget_share: 40", "budget_share: .nan",
     "characters.yaml:8: characters[0].budget_share: must be between 0 and 100 (got nan)"),
    ("budget_share: 40", "budget_share: 40%",
     "characters.yaml:8: characters[0].budget_share: must be a number (got string '40%')"),
    ('"18:00"]', '"24:00"]',
     'characters.yaml:9: characters[0].slots[1]: must be a time "HH:MM" from 00:00 to 23:59 '
     "(got string '24:00')"),
    ('"09:00",', '"9:00",',
     'characters.yaml:9: characters[0].slots[0]: must be a time "HH:MM" from 00:00 to 23:59 '
     "(got string '9:00')"),
    ('"09:00",', '"09:60",',
     'characters.yaml:9: characters[0].slots[0]: must be a time "HH:MM" from 00:00 to 23:59 '
     "(got string '09:60')"),
    ('"09:00",', "0900,",
     'characters.yaml:9: characters[0].slots[0]: must be a time "HH:MM" from 00:00 to 23:59 '
     "(got integer 900)"),
    ('"18:00"]', '"09:00"]',
     "characters.yaml:9: characters[0].slots[1]: duplicate slot 09:00 "
     "(first listed at line 9)"),
    ('["09:00", "18:00"]', "[]",
     "characters.yaml:9: characters[0].slots: must list at least one slot"),
    ('["09:00", "18:00"]', '"09:00"',
     'characters.yaml:9: characters[0].slots: must be a list of "HH:MM" times '
     "(got string '09:00')"),
    ("tiktok:", "tiktokk:",
     "characters.yaml:11: characters[0].platforms.tiktokk: unknown platform "
     "(allowed: tiktok, instagram, youtube, fanvue, telegram, onlyfans, fansly)"),
    ('{account: "@anasol"}', '"@anasol"',
     "characters.yaml:11: characters[0].platforms.tiktok: must be a mapping like "
     "{account: '@handle'} (got string '@anasol')"),
    ('{account: "@anasol"}', '{account: "@anasol", enabled: 1}',
     "characters.yaml:11: characters[0].platforms.tiktok.enabled: must be true or false "
     "(got integer 1)"),
    ('    platforms:\n      tiktok: {account: "@anasol"}\n', "",
     "characters.yaml:3: characters[0].platforms: required field is missing"),
    ('    platforms:\n      tiktok: {account: "@anasol"}\n', "    platforms: {}\n",
     "characters.yaml:10: characters[0].platforms: must list at least one platform"),
    ("    age: 25\n", "    age: 25\n    enabled: yes\n",
     "characters.yaml:7: characters[0].enabled: must be true or false (got string 'yes')"),
    ("    age: 25\n", "    age: 25\n    content_rating: spicy\n",
     "characters.yaml:7: characters[0].content_rating: must be one of general, mature "
     "(got string 'spicy')"),
    ("    age: 25\n", "    age: 25\n    hobby: chess\n",
     "characters.yaml:7: characters[0].hobby: unknown field (expected one of: id, name, "
     "persona, age, timezone, enabled, budget_share, content_rating, slots, platforms, "
     "watermark, a2e)"),
    ("    age: 25\n", "    age: 25\n    watermark: {text: '@ana', position: center}\n",
     "characters.yaml:7: characters[0].watermark.position: must be one of top-left, top-right, "
     "bottom-left, bottom-right (got string 'center')"),
    ("    age: 25\n", "    age: 25\n    watermark: {text: '@ana', opacity: 1.5}\n",
     "characters.yaml:7: characters[0].watermark.opacity: must be between 0 and 1 (got 1.5)"),
    ("    age: 25\n", "    age: 25\n    watermark: '@ana'\n",
     "characters.yaml:7: characters[0].watermark: must be a mapping like {text: '@handle'} "
     "(got string '@ana')"),
    ("    age: 25\n", "    age: 25\n    a2e: {avatar_id: av1}\n",
     "characters.yaml:7: characters[0].a2e.voice_id: required field is missing"),
    ("version: 1", "version: 2",
     "characters.yaml:1: version: unsupported version 2 (this release reads version 1)"),
    ("version: 1\n", "",
     "characters.yaml:1: version: required field is missing"),
    ("version: 1\n", "version: 1\nowner: me\n",
     "characters.yaml:2: owner: unknown field (expected one of: version, characters)"),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_each_mistake_is_one_exact_line(
    tmp_path: Path, old: str, new: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, broken(old, new))
    monkeypatch.chdir(tmp_path)  # the message names the file as the caller gave it
    assert problems("characters.yaml") == [expected]


def test_issue_fields() -> None:
    with pytest.raises(RosterError) as caught:
        validate_roster_text(broken("age: 25", "age: 17"), "roster/prod.yaml")
    assert caught.value.issues == [
        RosterIssue("roster/prod.yaml", 6, "characters[0].age", "must be at least 18 (got 17)")
    ]
    assert str(caught.value) == (
        "roster/prod.yaml:6: characters[0].age: must be at least 18 (got 17)"
    )


def test_typo_in_a_field_name_reports_the_typo_and_the_missing_field() -> None:
    assert text_problems(broken("timezone:", "timzone:")) == [
        "characters.yaml:3: characters[0].timezone: required field is missing",
        "characters.yaml:7: characters[0].timzone: unknown field (did you mean 'timezone'?)",
    ]
    assert text_problems(broken('{account: "@anasol"}', '{acount: "@anasol"}')) == [
        "characters.yaml:11: characters[0].platforms.tiktok.acount: unknown field "
        "(did you mean 'account'?)",
        "characters.yaml:11: characters[0].platforms.tiktok.account: required field is missing",
    ]


def test_duplicate_slot_in_a_block_list_points_at_the_repeat() -> None:
    text = broken('slots: ["09:00", "18:00"]', 'slots:\n      - "09:00"\n      - "18:00"\n'
                  '      - "09:00"')
    assert text_problems(text) == [
        "characters.yaml:12: characters[0].slots[2]: duplicate slot 09:00 "
        "(first listed at line 10)"
    ]


def test_too_many_slots() -> None:
    slots = ", ".join(f'"{h:02d}:{m:02d}"' for h in range(13) for m in (0, 30))
    assert text_problems(broken('["09:00", "18:00"]', f"[{slots}]")) == [
        "characters.yaml:9: characters[0].slots: must list at most 24 slots (got 26)"
    ]


def test_duplicate_id_points_at_the_second_and_names_the_first() -> None:
    second = VALID.split("characters:\n", 1)[1].replace("budget_share: 40", "budget_share: 10")
    second = second.replace("@anasol", "@anasol2")  # only the id repeats
    assert text_problems(VALID + second) == [
        "characters.yaml:12: characters[1].id: duplicate id 'ana-sol' (first used at line 3)"
    ]


def test_an_account_shared_by_two_characters_points_at_the_second() -> None:
    # The database keeps each platform's handle once; the insert used to fail on it.
    second = VALID.split("characters:\n", 1)[1].replace("ana-sol", "bo-2")
    second = second.replace("budget_share: 40", "budget_share: 10")
    assert text_problems(VALID + second) == [
        "characters.yaml:20: characters[1].platforms.tiktok.account: tiktok account '@anasol' "
        "is another character's (first used at line 11)"
    ]
    other_platform = second.replace("tiktok:", "instagram:")  # the same handle elsewhere is fine
    assert len(validate_roster_text(VALID + other_platform).characters) == 2


def test_budget_shares_of_enabled_characters_over_100_are_reported_once() -> None:
    second = renamed(VALID.split("characters:\n", 1)[1], "bo-2")
    third = second.replace("bo-2", "cy-3").replace("budget_share: 40", "budget_share: 30.5")
    assert text_problems(VALID + second + third) == [
        "characters.yaml:2: characters[*].budget_share: budget shares of enabled characters "
        "sum to 110.5 (must be at most 100)"
    ]
    # A disabled character's share is not spent, so it does not count.
    disabled = third.replace("    age: 25\n", "    age: 25\n    enabled: false\n")
    assert len(validate_roster_text(VALID + second + disabled).enabled()) == 2


def test_an_invalid_character_still_counts_towards_the_budget() -> None:
    second = renamed(VALID.split("characters:\n", 1)[1], "bo-2")
    second = second.replace("budget_share: 40", "budget_share: 70").replace("age: 25", "age: 16")
    assert text_problems(VALID + second) == [
        "characters.yaml:2: characters[*].budget_share: budget shares of enabled characters "
        "sum to 110 (must be at most 100)",
        "characters.yaml:15: characters[1].age: must be at least 18 (got 16)",
    ]


def test_every_mistake_is_reported_in_one_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    assert problems("broken.yaml") == [
        "broken.yaml:3: charactors: unknown field (did you mean 'characters'?)",
        "broken.yaml:4: characters[*].budget_share: budget shares of enabled characters sum to "
        "110 (must be at most 100)",
        "broken.yaml:5: characters[0].id: must be a slug: lowercase letters and digits in words "
        "joined by single hyphens (got 'Mika_H')",
        "broken.yaml:6: characters[0].name: must not be empty",
        "broken.yaml:8: characters[0].age: must be at least 18 (got 17)",
        "broken.yaml:9: characters[0].timezone: unknown time zone 'Asia/Tokio' (expected an "
        "IANA name such as 'Europe/Madrid')",
        "broken.yaml:10: characters[0].enabled: must be true or false (got string 'yes')",
        "broken.yaml:11: characters[0].budget_share: must be between 0 and 100 (got 120)",
        'broken.yaml:13: characters[0].slots[0]: must be a time "HH:MM" from 00:00 to 23:59 '
        "(got string '8:00')",
        "broken.yaml:15: characters[0].slots[2]: duplicate slot 12:30 (first listed at line 14)",
        "broken.yaml:17: characters[0].platforms.tiktokk: unknown platform (allowed: tiktok, "
        "instagram, youtube, fanvue, telegram, onlyfans, fansly)",
        "broken.yaml:18: characters[0].platforms.youtube: must be a mapping like "
        "{account: '@handle'} (got string '@mika')",
        "broken.yaml:19: characters[0].watermark.position: must be one of top-left, top-right, "
        "bottom-left, bottom-right (got string 'center')",
        "broken.yaml:19: characters[0].watermark.opacity: must be between 0 and 1 (got 1.5)",
        "broken.yaml:29: characters[2].id: duplicate id 'lucia' (first used at line 20)",
    ]


# --- hostile input: where the logo is, how old, what a name holds ---------------------------
# Each was accepted once and failed later (branding, the database insert, a terminal).

IMAGE_LINE = 7  # the watermark line `with_image` adds


def with_image(image: str) -> str:
    return broken("    age: 25\n", "    age: 25\n    watermark: {text: '@anasol', image: "
                  f"{json.dumps(image)}}}\n")


def image_problem(message: str) -> str:
    return f"characters.yaml:{IMAGE_LINE}: characters[0].watermark.image: {message}"


OUTSIDE = "must stay inside the roster file's folder"

BAD_IMAGES = [
    ("../../../../etc/passwd", f"{OUTSIDE} (got '../../../../etc/passwd')"),
    ("logos/../../shared/logo.png", f"{OUTSIDE} (got 'logos/../../shared/logo.png')"),
    ("..", f"{OUTSIDE} (got '..')"),
    ("/etc/passwd", "must be a path relative to the roster file's folder, not an absolute path "
     "(got '/etc/passwd')"),
    ("//cdn.example.com/logo.png", "must be a path relative to the roster file's folder, not an "
     "absolute path (got '//cdn.example.com/logo.png')"),
    ("https://cdn.example.com/logo.png", "must be a file path, not a URL or protocol "
     "(got 'https://cdn.example.com/logo.png')"),
    ("file:logo.png", "must be a file path, not a URL or protocol (got 'file:logo.png')"),
    ("concat:a.png|b.png", "must be a file path, not a URL or protocol (got 'concat:a.png|b.png')"),
    ("", "must not be empty"),
]


@pytest.mark.parametrize(("image", "expected"), BAD_IMAGES)
def test_watermark_image_outside_the_folder_or_with_a_scheme_is_refused(
    tmp_path: Path, image: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, with_image(image))
    monkeypatch.chdir(tmp_path)
    assert problems("characters.yaml") == [image_problem(expected)]
    # Checked as text alone too, without a folder to resolve in.
    assert text_problems(with_image(image)) == [image_problem(expected)]


def test_watermark_image_symlinked_out_of_the_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, elsewhere = tmp_path / "roster", tmp_path / "elsewhere"
    (folder / "logos").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.png").write_bytes(b"not a logo")
    (folder / "logo.png").symlink_to(elsewhere / "secret.png")
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "loop.png").symlink_to(folder / "loop.png")
    monkeypatch.chdir(folder)
    target = elsewhere.resolve() / "secret.png"

    for image in ("logo.png", "linked/secret.png", "logos/../linked/secret.png"):
        write(folder, with_image(image))
        expected = image_problem(f"{OUTSIDE} (got {image!r}, which leads to '{target}')")
        assert problems("characters.yaml") == [expected], image
        assert isinstance(outcome(with_image(image)), Roster)  # text alone sees no links
        with pytest.raises(RosterError) as caught:
            validate_roster_text(with_image(image), folder=folder)
        assert [str(i) for i in caught.value.issues] == [expected]
    write(folder, with_image("loop.png"))
    (issue,) = problems("characters.yaml")
    assert issue.startswith(image_problem("cannot be resolved: ")), issue


def test_watermark_images_inside_the_folder_are_fine_through_links(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "logos" / "v2").mkdir(parents=True)
    (real / "logos" / "v2" / "ana.png").write_bytes(b"png")
    (real / "logos" / "current.png").symlink_to(real / "logos" / "v2" / "ana.png")
    (tmp_path / "deployed").symlink_to(real, target_is_directory=True)  # the folder is a link
    for image in ("logos/v2/ana.png", "logos/current.png", "./logos/../logos/current.png",
                  "logos/not-there-yet.png"):  # a missing logo is branding's to report
        path = write(tmp_path / "deployed", with_image(image))
        (ana,) = load_roster(path).characters
        assert ana.watermark is not None and ana.watermark.image == image


UNSAFE_CHARACTERS = [
    ("\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("\u202a", "U+202A (LEFT-TO-RIGHT EMBEDDING)"),
    ("\u2066", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
    ("\u2069", "U+2069 (POP DIRECTIONAL ISOLATE)"),
    ("\x1b", "U+001B (a control character)"),  # ESC: terminal escape sequences
    ("\r", "U+000D (a control character)"),  # rewrites the terminal line
    ("\x00", "U+0000 (a control character)"),  # PostgreSQL text cannot hold it
    ("\x7f", "U+007F (a control character)"),  # DEL
    ("\x9b", "U+009B (a control character)"),  # C1 CSI
    ("\u2028", "U+2028 (LINE SEPARATOR)"),
]
# (text in VALID, the field, its line): each field gets "@ana<character>los".
DISPLAY_FIELDS = [
    ("name: Ana Sol", "characters[0].name", 4),
    ("persona: A travel vlogger who films night markets.", "characters[0].persona", 5),
    ('tiktok: {account: "@anasol"}', "characters[0].platforms.tiktok.account", 11),
    ("    age: 25\n", "characters[0].watermark.text", 7),
    ("    age: 25\n", "characters[0].a2e.voice_id", 7),
]


def _with_value(old: str, field: str, value: str) -> str:
    quoted = json.dumps(value)  # \uXXXX escapes: YAML double quotes read them back
    if field.endswith("watermark.text"):
        return broken(old, f"    age: 25\n    watermark: {{text: {quoted}}}\n")
    if field.endswith("a2e.voice_id"):
        return broken(old, f"    age: 25\n    a2e: {{avatar_id: av1, voice_id: {quoted}}}\n")
    key, _ = old.split(":", 1)
    if key == "tiktok":
        return broken(old, f"tiktok: {{account: {quoted}}}")
    return broken(old, f"{key}: {quoted}")


@pytest.mark.parametrize(("char", "named"), UNSAFE_CHARACTERS)
@pytest.mark.parametrize(("old", "field", "line"), DISPLAY_FIELDS)
def test_control_and_bidi_characters_in_displayed_texts_are_named_not_echoed(
    char: str, named: str, old: str, field: str, line: int
) -> None:
    issues = text_problems(_with_value(old, field, f"@ana{char}los"))
    assert issues == [f"characters.yaml:{line}: {field}: must not contain {named} at character 5: "
                      "control and bidi formatting characters are not allowed"]
    assert char not in issues[0]


def test_a_raw_bidi_override_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("name: Ana Sol", "name: Ana \u202eloS"))
    assert problems(path) == [
        f"{path}:4: characters[0].name: must not contain U+202E (RIGHT-TO-LEFT OVERRIDE) at "
        "character 5: control and bidi formatting characters are not allowed"]


def test_names_in_any_script_and_a_persona_paragraph_are_fine() -> None:
    text = (VALID.replace("name: Ana Sol", 'name: "Lucía 美咲 ليلى 👩\u200d🍳"')
            .replace("persona: A travel vlogger who films night markets.",
                     "persona: |\n      A travel vlogger.\n      She films night markets."))
    (ana,) = validate_roster_text(text).characters
    assert ana.name == "Lucía 美咲 ليلى 👩\u200d🍳"  # a zero-width joiner inside an emoji stays
    assert ana.persona == "A travel vlogger.\nShe films night markets.\n"
    assert text_problems(VALID.replace("name: Ana Sol", 'name: "Ana\\nSol"')) == [
        "characters.yaml:4: characters[0].name: must not contain U+000A (a control character) "
        "at character 4: control and bidi formatting characters are not allowed"]


def test_the_oldest_age_is_accepted() -> None:
    (ana,) = validate_roster_text(broken("age: 25", f"age: {MAX_AGE}")).characters
    assert ana.age == MAX_AGE == 120


def test_roster_check_cli_refuses_each_with_its_line_and_exit_1(tmp_path: Path) -> None:
    text = (broken("age: 25", "age: 100000000000000000000000")
            .replace("name: Ana Sol", 'name: "Ana \\u202eloS"')
            .replace("    budget_share: 40\n", "    budget_share: 40\n    watermark: "
                     "{text: '@anasol', image: ../../../../etc/passwd}\n"))
    path = write(tmp_path, text)
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", "roster", "check",
                           str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{path}:4: characters[0].name: must not contain U+202E (RIGHT-TO-LEFT OVERRIDE) at "
        "character 5: control and bidi formatting characters are not allowed",
        f"{path}:6: characters[0].age: must be at most 120 (got 100000000000000000000000)",
        f"{path}:9: characters[0].watermark.image: {OUTSIDE} (got '../../../../etc/passwd')",
        f"3 error(s) in {path}",
    ]


# --- the file as a whole ------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}: file not found"]


def test_directory_is_not_a_roster(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}: is a directory, not a file"]


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing here yet\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert problems(path) == [
        f"{path}: file is empty (expected 'version: 1' and a 'characters' list)"
    ]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "characters.yaml"
    path.write_bytes(VALID.replace("Ana Sol", "Ana S\xf3l").encode("latin-1"))
    assert problems(path) == [f"{path}:4: not UTF-8 text (bad byte at offset 54)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- ana\n- bo\n", "r.yaml:1: top level must be a mapping with 'version' and "
         "'characters' (got list)"),
        ("# roster\n\njust text\n", "r.yaml:3: top level must be a mapping with 'version' and "
         "'characters' (got string 'just text')"),
        ("version: 1\ncharacters:\n  ana: {}\n",
         "r.yaml:3: characters: must be a list of characters (got mapping)"),
        ("version: 1\ncharacters:\n", "r.yaml:2: characters: must be a list of characters "
         "(got null)"),
        ("version: 1\n", "r.yaml:1: characters: required field is missing"),
        ("version: 1\ncharacters:\n  - ana\n",
         "r.yaml:3: characters[0]: must be a mapping of character fields (got string 'ana')"),
    ],
)
def test_wrong_shape(text: str, expected: str) -> None:
    assert text_problems(text, "r.yaml") == [expected]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('slots: ["09:00", "18:00"]', 'slots: ["09:00", "18:00"',
         "characters.yaml:10: invalid YAML at column 5: while parsing a flow sequence (line 9): "
         "expected ',' or ']', but got '<scalar>'"),
        ("    age: 25\n", "    age: 25\n    age: 26\n",
         "characters.yaml:7: invalid YAML at column 5: while constructing a mapping (line 3): "
         'found duplicate key "age" with value "26" (original value: "25")'),
        ("name: Ana Sol", "name: Ana: Sol",
         "characters.yaml:4: invalid YAML at column 14: mapping values are not allowed here"),
        ("    age: 25\n", "\tage: 25\n",
         "characters.yaml:6: invalid YAML at column 1: while scanning for the next token: "
         "found character '\\t' that cannot start any token"),
    ],
)
def test_yaml_syntax_errors_give_the_parser_line_and_column(
    old: str, new: str, expected: str
) -> None:
    assert text_problems(broken(old, new)) == [expected]


# --- scheduling ---------------------------------------------------------------------------


def one_character(timezone: str, slots: list[str]) -> Character:
    text = broken("Europe/Madrid", timezone).replace(
        '["09:00", "18:00"]', json.dumps(slots)
    )
    (character,) = validate_roster_text(text).characters
    return character


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "day", "slot", "expected"),
    [
        ("Asia/Tokyo", date(2026, 1, 15), "08:00", utc(2026, 1, 14, 23, 0)),  # previous UTC day
        ("Asia/Seoul", date(2026, 7, 1), "22:00", utc(2026, 7, 1, 13, 0)),
        ("Europe/Madrid", date(2026, 1, 15), "09:30", utc(2026, 1, 15, 8, 30)),  # CET
        ("Europe/Madrid", date(2026, 7, 15), "09:30", utc(2026, 7, 15, 7, 30)),  # CEST
        ("America/New_York", date(2026, 1, 15), "09:00", utc(2026, 1, 15, 14, 0)),  # EST
        ("America/New_York", date(2026, 7, 15), "09:00", utc(2026, 7, 15, 13, 0)),  # EDT
        ("America/Los_Angeles", date(2026, 1, 10), "19:30", utc(2026, 1, 11, 3, 30)),  # next day
        ("America/Sao_Paulo", date(2026, 1, 15), "12:00", utc(2026, 1, 15, 15, 0)),  # no DST
        ("Australia/Sydney", date(2026, 1, 10), "07:00", utc(2026, 1, 9, 20, 0)),  # AEDT
        ("Australia/Sydney", date(2026, 7, 10), "07:00", utc(2026, 7, 9, 21, 0)),  # AEST
    ],
)
def test_scheduled_at_converts_local_slot_to_utc(
    timezone: str, day: date, slot: str, expected: datetime
) -> None:
    at = one_character(timezone, [slot]).scheduled_at(day, 0)
    assert at == expected
    assert at.tzinfo is UTC


def test_spring_forward_gap_moves_the_slot_forward_by_the_gap() -> None:
    # New York, 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT, so 02:30 never happens.
    nyc = one_character("America/New_York", ["01:30", "02:30", "03:30"])
    day = date(2026, 3, 8)
    assert [nyc.scheduled_at(day, i) for i in range(3)] == [
        utc(2026, 3, 8, 6, 30),  # 01:30 EST
        utc(2026, 3, 8, 7, 30),  # "02:30" -> 03:30 EDT
        utc(2026, 3, 8, 7, 30),  # 03:30 EDT
    ]


def test_fall_back_fold_takes_the_first_occurrence() -> None:
    # New York, 2026-11-01: 01:00-02:00 happens twice (EDT, then EST).
    nyc = one_character("America/New_York", ["00:30", "01:30", "02:30"])
    day = date(2026, 11, 1)
    assert [nyc.scheduled_at(day, i) for i in range(3)] == [
        utc(2026, 11, 1, 4, 30),  # 00:30 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, not 06:30 (the EST repeat)
        utc(2026, 11, 1, 7, 30),  # 02:30 EST
    ]


def test_southern_hemisphere_transitions() -> None:
    sydney = one_character("Australia/Sydney", ["02:30"])
    assert sydney.scheduled_at(date(2026, 4, 5), 0) == utc(2026, 4, 4, 15, 30)  # fold: AEDT
    assert sydney.scheduled_at(date(2026, 10, 4), 0) == utc(2026, 10, 3, 16, 30)  # gap -> 03:30


def test_scheduled_at_rejects_bad_arguments() -> None:
    ana = one_character("Europe/Madrid", ["09:00", "18:00"])
    with pytest.raises(IndexError, match="ana-sol has 2 slot"):
        ana.scheduled_at(date(2026, 1, 1), 2)
    with pytest.raises(IndexError):
        ana.scheduled_at(date(2026, 1, 1), -1)
    with pytest.raises(TypeError, match="local calendar date"):
        ana.scheduled_at(datetime(2026, 1, 1, tzinfo=UTC), 0)


# --- properties ---------------------------------------------------------------------------

SLOT_LIKE = st.one_of(
    st.text(max_size=8),
    st.from_regex(r"[0-9]{1,3}:[0-9]{1,3}", fullmatch=True),
    st.builds("{:02d}:{:02d}".format, st.integers(0, 30), st.integers(0, 70)),
)


def _is_hh_mm(value: str) -> bool:
    """Independent oracle: strptime, plus the exact width and ASCII digits the format wants."""
    if len(value) != 5 or not value.isascii():
        return False
    try:
        datetime.strptime(value, "%H:%M")
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(SLOT_LIKE)
def test_any_slot_string_is_accepted_or_rejected_with_a_message(slot: str) -> None:
    # json.dumps gives a double-quoted scalar, which YAML 1.2 reads back as the same string.
    result = outcome(broken('["09:00", "18:00"]', f"[{json.dumps(slot)}]"))
    if _is_hh_mm(slot):
        assert isinstance(result, Roster)
        assert result.characters[0].slots == (slot,)
        assert result.characters[0].slot_times()[0].strftime("%H:%M") == slot
    else:
        assert isinstance(result, list)
        (issue,) = result
        assert (issue.line, issue.field) == (9, "characters[0].slots[0]")
        assert issue.message.startswith('must be a time "HH:MM" from 00:00 to 23:59 (got ')
        assert len(str(issue).splitlines()) == 1


def _parse_or_message(value: object) -> str:
    try:
        return parse_slot(value)
    except ValueError as exc:
        return f"error: {exc}"


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)))
def test_parse_slot_returns_the_slot_or_raises_value_error(value: object) -> None:
    result = _parse_or_message(value)  # anything but ValueError would escape and fail
    assert result == value or result.startswith('error: must be a time "HH:MM"')


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from([
    "id", "name", "persona", "age", "timezone", "enabled", "budget_share", "content_rating",
    "slots", "platforms", "watermark", "a2e", "tiktok", "", "x y",
])


def assert_well_formed(issues: list[RosterIssue], text: str) -> None:
    assert issues
    last_line = len(text.splitlines()) + 1  # ruamel also breaks lines at \r, \x85, \u2028
    for issue in issues:
        assert issue.file == "fuzz.yaml"
        assert issue.line is None or 1 <= issue.line <= last_line
        assert len(str(issue).splitlines()) == 1


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(FIELD_NAMES, YAML_VALUES, max_size=8))
def test_any_character_shape_is_validated_without_crashing(fields: dict[str, object]) -> None:
    out = StringIO()
    YAML(typ="safe", pure=True).dump({"version": 1, "characters": [fields]}, out)
    text = out.getvalue()
    result = outcome(text, "fuzz.yaml")
    if isinstance(result, Roster):
        (character,) = result.characters
        assert character.age >= 18
        assert set(PLATFORMS) >= set(character.platforms)
    else:
        assert_well_formed(result, text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_roster_or_a_roster_error(text: str) -> None:
    result = outcome(text, "fuzz.yaml")
    if not isinstance(result, Roster):
        assert_well_formed(result, text)
