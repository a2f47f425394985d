"""Property-based tests of the roster loader: whatever the file holds, the answer is a Roster
or a RosterError whose every issue is one printable line with a place; never another exception.

Examples are derandomized (the same ones on every run) and few, so the file runs in seconds.
The shapes come from three strategies: any text, YAML-ish lines built from the tokens that
break parsers and constructors, and whole rosters near the valid one with hostile values in
every field (dumped by ruamel, so most of them get past the parser to the rules).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from waifugen_assets.core import schema
from waifugen_assets.core.yaml_check import UNSAFE_CHARACTERS
from waifugen_assets.roster.assets import sync_roster
from waifugen_assets.roster.model import (
    MAX_AGE,
    MIN_AGE,
    PLATFORMS,
    Roster,
    RosterError,
    validate_roster_text,
)

FUZZ = settings(derandomize=True, deadline=None, max_examples=200)

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
    watermark: {text: "@anasol", image: logos/ana.png}
"""


def outcome(text: str, folder: Path | None = None) -> Roster | None:
    """The roster, or None after checking every issue of the RosterError; anything else raised
    fails the test."""
    try:
        roster = validate_roster_text(text, "fuzz.yaml", folder=folder)
    except RosterError as exc:
        error = exc
    else:
        assert_sound(roster, folder)
        event("accepted")
        return roster
    assert error.issues
    last_line = len(text.splitlines()) + 1  # ruamel also breaks lines at \r, \x85, \u2028
    for issue in error.issues:
        shown = str(issue)
        assert shown.startswith("fuzz.yaml")
        assert len(shown.splitlines()) == 1, shown
        assert not UNSAFE_CHARACTERS.search(shown), shown
        if issue.line is None:  # only the empty file has no place in it
            assert issue.field or issue.message.startswith("file is empty"), shown
        else:
            assert 1 <= issue.line <= last_line, shown
    assert str(error) == "\n".join(str(issue) for issue in error.issues)
    event("refused")
    return None


def assert_sound(roster: Roster, folder: Path | None) -> None:
    """What every accepted roster keeps to, whatever the strategy made."""
    for c in roster.characters:
        assert MIN_AGE <= c.age <= MAX_AGE
        assert set(c.platforms) <= set(PLATFORMS)
        shown = [c.name, c.persona.replace("\n", " "), c.a2e_avatar_id or "",
                 c.a2e_voice_id or "", *(a.account for a in c.platforms.values())]
        if c.watermark is not None:
            shown += [c.watermark.text, c.watermark.image or ""]
        assert not any(UNSAFE_CHARACTERS.search(text) for text in shown), c
        image = c.watermark.image if c.watermark else None
        if image:
            assert not os.path.isabs(image) and ":" not in image.split("/")[0]
            assert os.path.normpath(image).split(os.sep)[0] != ".."
            if folder is not None:
                assert (folder / image).resolve().is_relative_to(folder.resolve())


# --- any text -------------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_roster_or_a_roster_error(text: str) -> None:
    outcome(text)


# --- YAML-ish lines ----------------------------------------------------------------------------

HUGE_HEX = "0x" + "f" * 5000  # ruamel reads it; Python will not print it in decimal
TOKENS = st.sampled_from([
    "version", "characters", "id", "name", "persona", "age", "timezone", "slots", "platforms",
    "tiktok", "account", "watermark", "image", "a2e", "voice_id", "- ", ": ", ":", "? ", ", ",
    "[", "]", "{", "}", "&a ", "*a", "<<: ", "!!int ", "!!float ", "!!binary ", "!!set ",
    "!!omap ", "!!timestamp ", "!tag ", "'", '"', "# ", "|", ">-", "\\u202e", "\\e[2J", "\\",
    "%YAML 1.1", "---", "...", "~", "null", "true", "yes", "25", "17", "1e400", ".nan", "0o17",
    "100000000000000000000000", "1" * 5000, HUGE_HEX, "2026-02-30", "2026-01-01t25:00:00",
    '"09:00"', "24:00", "Europe/Madrid", "localtime", "../../../../etc/passwd", "/etc/passwd",
    "http://x/logo.png", "file:logo.png", "\u202e", "\u2066", "\x85", "\u2028", "\ufeff",
    "\t", "\r", "\x1b", " ", "  ", "\n", "\n  ", "\n    ", "\n  - ",
])
LINE = st.tuples(st.integers(0, 4), st.lists(TOKENS, max_size=6)).map(
    lambda parts: "  " * parts[0] + "".join(parts[1]))


@FUZZ
@given(st.lists(LINE, max_size=14).map("\n".join))
def test_yaml_ish_lines_are_a_roster_or_a_roster_error(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID)), TOKENS), min_size=1, max_size=4))
def test_the_valid_roster_with_tokens_inserted_is_a_roster_or_a_roster_error(
    edits: list[tuple[int, str]]
) -> None:
    text = VALID
    for at, token in sorted(edits, reverse=True):  # from the end, so offsets stay put
        text = text[:at] + token + text[at:]
    outcome(text)


# --- whole rosters with hostile values --------------------------------------------------------
# Each field draws a hostile value once in `one_in` draws and a valid one otherwise, so a share
# of rosters are accepted (and can be written to the database) and every rule still gets hit.

UNSAFE = ["\u202e", "\u202a", "\u2066", "\u2069", "\x1b", "\x00", "\x7f", "\x9b", "\r",
          "\n", "\t", "\x85", "\u2028"]
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
                 st.text(max_size=5), st.lists(st.integers(0, 3), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2))
GOOD_TEXT = st.one_of(
    st.sampled_from(["Ana Sol", "Lucía Marvento", "美咲", "ليلى", "👩\u200d🍳 Chef"]),
    st.text(st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=12)
    .filter(lambda text: text.strip() and not UNSAFE_CHARACTERS.search(text)),
)
BAD_TEXT = st.one_of(
    st.sampled_from([" ", "", "a\nb"]), st.text(max_size=12), JUNK,
    st.tuples(st.sampled_from(["Ana", "@x", ""]), st.sampled_from(UNSAFE),
              st.sampled_from(["Sol", "", " y"])).map("".join),
)
SEGMENT = st.sampled_from(["..", ".", "logos", "ana.png", "linked", "loop.png", "", "etc",
                           "passwd", "a:b"])
BAD_IMAGE = st.tuples(
    st.sampled_from(["", "/", "//", "./", "http://cdn/", "file:", "concat:", "C:\\"]),
    st.lists(SEGMENT, min_size=1, max_size=5).map("/".join),
).map("".join) | JUNK


def rosters(one_in: int) -> st.SearchStrategy[dict[str, object]]:
    def mostly(valid: st.SearchStrategy[object], hostile: st.SearchStrategy[object],
               ) -> st.SearchStrategy[object]:
        return st.integers(1, one_in).flatmap(lambda n: hostile if n == 1 else valid)

    text = mostly(GOOD_TEXT, BAD_TEXT)
    # Few handles, so characters share one now and then (the database keeps one per platform).
    handle = mostly(st.sampled_from(["@anasol", "@bo", "@cy.3", "美咲"]), BAD_TEXT)
    age = mostly(st.integers(MIN_AGE, MAX_AGE),
                 st.one_of(st.integers(-(10**30), 10**30),
                           st.sampled_from([MIN_AGE - 1, MAX_AGE + 1, 2**31, 10**23, True, 25.0,
                                            "25", None])))
    image = mostly(st.sampled_from([None, "logos/ana.png", "./logos/../logos/ana.png",
                                    "logos/new.png"]), BAD_IMAGE)
    slots = mostly(
        st.lists(st.sampled_from(["09:00", "12:30", "18:00", "23:59", "00:00"]), min_size=1,
                 max_size=4, unique=True),
        st.lists(st.one_of(st.sampled_from(["09:00", "24:00", "9:00"]), st.text(max_size=6),
                           st.integers(0, 2400)), max_size=4) | JUNK,
    )
    account = st.fixed_dictionaries({"account": handle},
                                    optional={"enabled": mostly(st.booleans(), JUNK)})
    platforms = mostly(
        st.dictionaries(st.sampled_from(PLATFORMS), account, min_size=1, max_size=3),
        st.dictionaries(st.sampled_from([*PLATFORMS, "myspace"]), account | JUNK, max_size=3)
        | JUNK,
    )
    watermark = st.fixed_dictionaries({"text": handle}, optional={
        "image": image,
        "position": mostly(st.just("top-left"), st.just("center") | JUNK),
        "opacity": mostly(st.floats(0, 1), st.floats(-1, 2) | JUNK),
    })
    character = st.fixed_dictionaries(
        {
            "id": mostly(st.sampled_from(["ana-sol", "bo-2", "cy"]),
                         st.sampled_from(["Bad_Id", ""]) | JUNK),
            "name": text,
            "persona": mostly(GOOD_TEXT | st.just("Two lines.\nOf a persona."), BAD_TEXT),
            "age": age,
            "timezone": mostly(st.sampled_from(["Europe/Madrid", "Asia/Tokyo", "UTC"]),
                               st.sampled_from(["localtime", "Mars/Olympus", "../../etc/passwd"])
                               | JUNK),
            "slots": slots,
            "platforms": platforms,
        },
        optional={
            "enabled": mostly(st.booleans(), JUNK),
            "budget_share": mostly(st.integers(0, 30) | st.floats(0, 30),
                                   st.floats(31, 150) | JUNK),
            "content_rating": mostly(st.sampled_from(["general", "mature"]),
                                     st.just("spicy") | JUNK),
            "watermark": mostly(watermark, JUNK),
            "a2e": mostly(st.fixed_dictionaries({"avatar_id": text, "voice_id": text}), JUNK),
        },
    )
    return st.fixed_dictionaries({
        "version": mostly(st.just(1), st.sampled_from([2, "1"]) | JUNK),
        "characters": st.lists(character, min_size=1, max_size=3),
    })


def dump(data: object, flow: bool) -> str:
    out = StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    yaml.dump(data, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A roster folder with a real logo, a link out of the folder and a link loop."""
    root = tmp_path_factory.mktemp("fuzz-roster")
    (root / "roster" / "logos").mkdir(parents=True)
    (root / "roster" / "logos" / "ana.png").write_bytes(b"png")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "ana.png").write_bytes(b"secret")
    (root / "roster" / "linked").symlink_to(root / "elsewhere", target_is_directory=True)
    (root / "roster" / "loop.png").symlink_to(root / "roster" / "loop.png")
    return root / "roster"


@FUZZ
@given(rosters(one_in=5), st.booleans())
def test_rosters_with_hostile_values_are_a_roster_or_a_roster_error(
    folder: Path, data: dict[str, object], flow: bool
) -> None:
    text = dump(data, flow)
    outcome(text)  # as text alone
    outcome(text, folder)  # and with the folder, where links are followed


@pytest.fixture
def connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        yield conn


@pytest.mark.integration
@settings(derandomize=True, deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # rolled back each time
@given(rosters(one_in=40))
def test_every_accepted_roster_can_be_written_to_the_database(
    connection: sa.Connection, data: dict[str, object]
) -> None:
    roster = outcome(dump(data, flow=True))
    if roster is None:
        return
    with connection.begin() as transaction:
        sync = sync_roster(connection, roster)
        assert sorted(sync.added) == sorted(c.id for c in roster.characters)
        rows = connection.execute(sa.select(schema.characters.c.id, schema.characters.c.age,
                                            schema.characters.c.name)).all()
        assert sorted(rows) == sorted((c.id, c.age, c.name) for c in roster.characters)
        transaction.rollback()
