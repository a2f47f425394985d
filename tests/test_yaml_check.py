"""The YAML validation kit on its own: pydantic errors mapped to `file:line: field: message`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import PlainValidator, ValidationInfo

from waifugen_assets.core.yaml_check import (
    MAX_DEPTH,
    Bool,
    OptionalText,
    Slug,
    Text,
    YamlChecker,
    YamlError,
    YamlIssue,
    YamlModel,
    at_least_one,
    describe,
    display_text,
    format_version,
    integer,
    item_line,
    key_line,
    listing,
    mapping,
    node_line,
    number,
    one_of,
    show,
    valid,
    value_line,
)


def _color(value: Any, info: ValidationInfo) -> str:
    allowed = (info.context or {}).get("colors", ("red", "blue"))
    return one_of(allowed)(value)


def _tool(value: Any) -> str:
    if value not in ("hammer", "saw"):
        raise ValueError("unknown tool (allowed: hammer, saw)")
    return str(value)


class Part(YamlModel):
    name: Slug
    size: Annotated[int, PlainValidator(integer(1, 10))] = 1
    color: Annotated[str, PlainValidator(_color)] = "red"


class Owner(YamlModel):
    name: Text
    email: OptionalText = None


class Kit(YamlModel):
    id: Slug
    owner: Annotated[Owner | None, mapping("a mapping like {name: ...}")] = None
    parts: Annotated[
        list[Annotated[Part, mapping("a mapping of part fields")]],
        listing("a list of parts"), at_least_one("part"),
    ]
    tools: Annotated[
        dict[Annotated[str, PlainValidator(_tool)], Annotated[int, PlainValidator(integer(0))]],
        mapping("a mapping of tool to count"),
    ] = {}
    tags: list[str] = []  # a plain pydantic type: its errors get the kit's wording too
    weight: Annotated[float | None, PlainValidator(number(0, 50))] = None
    boxed: Bool = False


class KitFile(YamlModel):
    version: Annotated[int, PlainValidator(format_version(1, low=1))]
    kits: Annotated[list[Annotated[Kit, mapping("a mapping of kit fields")]], listing("a list")]


# Line numbers, for reading the expected messages: 3 the kit, 4 owner, 5 its name, 7 first
# part, 8 its size, 9 second part (flow), 10 tools.
VALID = """\
version: 1
kits:
  - id: basic
    owner:
      name: Ana
    parts:
      - name: bolt
        size: 2
      - {name: nut, color: blue}
    tools: {hammer: 1}
"""


def check(text: str, context: Any = None) -> tuple[KitFile | None, list[str]]:
    checker = YamlChecker("kit.yaml")
    doc = checker.parse(text, expected="a mapping with 'version' and 'kits'",
                        empty="expected 'version: 1' and a 'kits' list")
    parsed = None if doc is None else checker.validate(KitFile, doc, context)
    return parsed, [str(issue) for issue in checker.issues]


def problems(text: str, context: Any = None) -> list[str]:
    parsed, found = check(text, context)
    assert parsed is None
    return found


def broken(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


def test_a_valid_file_gives_the_model() -> None:
    parsed, found = check(VALID)
    assert found == []
    assert parsed is not None
    (kit,) = parsed.kits
    assert kit.owner == Owner(name="Ana")
    assert [(p.name, p.size, p.color) for p in kit.parts] == [("bolt", 2, "red"),
                                                               ("nut", 1, "blue")]
    assert kit.tools == {"hammer": 1}
    assert type(kit.owner.name) is str  # not ruamel's scalar-string subclass


@pytest.mark.parametrize(("old", "new", "expected"), [
    # nested mapping, block style: the value's own line
    ("name: Ana", "name: 7", "kit.yaml:5: kits[0].owner.name: must be text (got integer 7)"),
    # list item in a block list, then a flow mapping inside a list
    ("size: 2", "size: 11", "kit.yaml:8: kits[0].parts[0].size: must be between 1 and 10 "
     "(got 11)"),
    ("color: blue", "color: green", "kit.yaml:9: kits[0].parts[1].color: must be one of red, "
     "blue (got string 'green')"),
    # the list item itself has the wrong shape: the item's line
    ("      - {name: nut, color: blue}", "      - nut",
     "kit.yaml:9: kits[0].parts[1]: must be a mapping of part fields (got string 'nut')"),
    # a null value has no token: the key's line
    ("name: Ana", "name:", "kit.yaml:5: kits[0].owner.name: must be text (got null)"),
    ("    owner:\n      name: Ana\n", "    owner:\n",
     "kit.yaml:4: kits[0].owner: must be a mapping like {name: ...} (got null)"),
    # a missing field: the first line of the mapping that lacks it
    ("      - name: bolt\n", "      - color: red\n",
     "kit.yaml:7: kits[0].parts[0].name: required field is missing"),
    ("  - id: basic\n", "  - boxed: true\n", "kit.yaml:3: kits[0].id: required field is missing"),
    ("version: 1\n", "", "kit.yaml:1: version: required field is missing"),
    # container shapes and emptiness
    ("    parts:\n      - name: bolt\n        size: 2\n      - {name: nut, color: blue}\n",
     "    parts: []\n", "kit.yaml:6: kits[0].parts: must list at least one part"),
    ("    tools: {hammer: 1}", "    tools: [hammer]",
     "kit.yaml:10: kits[0].tools: must be a mapping of tool to count (got list)"),
    # a mapping's key that fails its own check, at the key's line
    ("{hammer: 1}", "{hammer: 1, drill: x}",
     "kit.yaml:10: kits[0].tools.drill: unknown tool (allowed: hammer, saw)"),
    ("version: 1", "version: 2",
     "kit.yaml:1: version: unsupported version 2 (this release reads version 1)"),
    ("version: 1", "version: 0", "kit.yaml:1: version: must be at least 1 (got 0)"),
])
def test_each_error_is_one_line_at_the_right_place(old: str, new: str, expected: str) -> None:
    assert problems(broken(old, new)) == [expected]


@pytest.mark.parametrize(("line", "expected"), [
    ("    boxed: yes\n", "kit.yaml:11: kits[0].boxed: must be true or false (got string 'yes')"),
    ("    boxed: 1\n", "kit.yaml:11: kits[0].boxed: must be true or false (got integer 1)"),
    ("    weight: .nan\n", "kit.yaml:11: kits[0].weight: must be between 0 and 50 (got nan)"),
    ("    weight: 1e999\n", "kit.yaml:11: kits[0].weight: must be between 0 and 50 (got inf)"),
    ("    weight: '3'\n", "kit.yaml:11: kits[0].weight: must be a number (got string '3')"),
    ("    weight: null\n", "kit.yaml:11: kits[0].weight: must be a number (got null)"),
    ("    weight: 2026-01-01\n",
     "kit.yaml:11: kits[0].weight: must be a number (got date 2026-01-01)"),
    ("    tags: x\n", "kit.yaml:11: kits[0].tags: must be a list (got string 'x')"),
    ("    tags: [a, 5]\n", "kit.yaml:11: kits[0].tags[1]: must be text (got integer 5)"),
    ("    tags: [a, true]\n", "kit.yaml:11: kits[0].tags[1]: must be text (got boolean true)"),
])
def test_wrong_types_say_what_was_found(line: str, expected: str) -> None:
    assert problems(VALID + line) == [expected]


def test_unknown_fields_suggest_the_field_meant_or_list_the_allowed() -> None:
    assert problems(broken("size: 2", "szie: 2")) == [
        "kit.yaml:8: kits[0].parts[0].szie: unknown field (did you mean 'size'?)"]
    assert problems(VALID + "    colour: red\n") == [
        "kit.yaml:11: kits[0].colour: unknown field (expected one of: id, owner, parts, tools, "
        "tags, weight, boxed)"]
    assert problems("version: 1\nkits: []\nkitz: 1\n") == [
        "kit.yaml:3: kitz: unknown field (did you mean 'kits'?)"]


def test_odd_keys_are_quoted_in_the_field_path() -> None:
    found = problems(VALID + "    'two words': 1\n    3: x\n    [a, b]: y\n")
    assert [f.split(": unknown field")[0] for f in found] == [
        "kit.yaml:11: kits[0].'two words'", "kit.yaml:12: kits[0].'3'",
        "kit.yaml:13: kits[0].\"('a', 'b')\"",  # a tuple to ruamel, shown as its str()
    ]


def test_a_typo_is_reported_before_the_field_it_left_missing() -> None:
    assert problems(broken("{name: nut, color: blue}", "{nmae: nut, color: blue}")) == [
        "kit.yaml:9: kits[0].parts[1].nmae: unknown field (did you mean 'name'?)",
        "kit.yaml:9: kits[0].parts[1].name: required field is missing",
    ]


def test_what_is_under_an_invalid_key_is_not_reported() -> None:
    assert problems(broken("{hammer: 1}", "{hammer: 1, drill: [x]}")) == [
        "kit.yaml:10: kits[0].tools.drill: unknown tool (allowed: hammer, saw)"]


def test_several_errors_are_reported_together_in_line_order() -> None:
    text = (VALID.replace("size: 2", "size: 0").replace("version: 1", "version: 3")
            .replace("color: blue", "colr: blue").replace("name: Ana", "name: ''"))
    assert problems(text + "  - id: Second\n    parts: nope\n") == [
        "kit.yaml:1: version: unsupported version 3 (this release reads version 1)",
        "kit.yaml:5: kits[0].owner.name: must not be empty",
        "kit.yaml:8: kits[0].parts[0].size: must be between 1 and 10 (got 0)",
        "kit.yaml:9: kits[0].parts[1].colr: unknown field (did you mean 'color'?)",
        "kit.yaml:11: kits[1].id: must be a slug: lowercase letters and digits in words joined "
        "by single hyphens (got 'Second')",
        "kit.yaml:12: kits[1].parts: must be a list of parts (got string 'nope')",
    ]


def test_post_checks_report_with_the_line_helpers_and_sort_in() -> None:
    checker = YamlChecker("kit.yaml")
    doc = checker.parse(broken("name: nut", "name: bolt"), expected="a mapping", empty="")
    assert doc is not None and checker.validate(KitFile, doc) is not None
    parts = doc["kits"][0]["parts"]
    first = value_line(parts[0], "name")
    checker.report(item_line(parts, 1), "kits[0].parts[1].name",
                   f"duplicate name (first at line {first})")
    checker.report(key_line(doc, "kits"), "kits", "a file-wide rule")
    assert [str(i) for i in checker.issues] == [
        "kit.yaml:2: kits: a file-wide rule",
        "kit.yaml:9: kits[0].parts[1].name: duplicate name (first at line 7)",
    ]
    assert node_line(doc["kits"][0]) == 3
    assert checker.has_issues_under("kits[0]")
    assert checker.has_issues_under("kits")
    assert not checker.has_issues_under("kits[0].parts[0]")


def test_validators_get_the_context() -> None:
    text = broken("color: blue", "color: green")
    assert check(text, {"colors": ("green",)})[1] == []
    assert problems(VALID, {"colors": ("green",)}) == [
        "kit.yaml:9: kits[0].parts[1].color: must be one of green (got string 'blue')"]


def test_merged_keys_fall_back_to_the_mapping_line() -> None:
    text = VALID + "  - <<: {id: other, parts: [{name: x, size: 0}]}\n    boxed: true\n"
    assert problems(text) == [
        "kit.yaml:11: kits[1].parts[0].size: must be between 1 and 10 (got 0)"]


# --- the file as a whole ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert problems(text) == ["kit.yaml: file is empty (expected 'version: 1' and a 'kits' list)"]


@pytest.mark.parametrize(("text", "expected"), [
    ("- a\n- b\n", "kit.yaml:1: top level must be a mapping with 'version' and 'kits' (got list)"),
    ("# a kit\n\njust text\n", "kit.yaml:3: top level must be a mapping with 'version' and "
     "'kits' (got string 'just text')"),
    ("42\n", "kit.yaml:1: top level must be a mapping with 'version' and 'kits' "
     "(got integer 42)"),
])
def test_top_level_must_be_a_mapping(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_duplicate_keys_are_a_syntax_error_with_both_lines() -> None:
    assert problems(broken("        size: 2\n", "        size: 2\n        size: 3\n")) == [
        "kit.yaml:9: invalid YAML at column 9: while constructing a mapping (line 7): "
        'found duplicate key "size" with value "3" (original value: "2")'
    ]


def test_syntax_errors_give_line_and_column() -> None:
    assert problems(broken("{name: nut, color: blue}", "{name: nut, color: blue")) == [
        "kit.yaml:10: invalid YAML at column 10: while parsing a flow mapping (line 9): "
        "expected ',' or '}', but got ':'"
    ]
    assert problems("version: 1\nkits: \x07\n") == [
        "kit.yaml:2: invalid YAML: character U+0007 is not allowed"]


def test_read_reports_what_keeps_a_file_from_being_read(tmp_path: Path) -> None:
    path = tmp_path / "kit.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\n")
    assert YamlChecker(str(path)).read(path) == ("version: 1\n", path.read_bytes())
    cases = [
        (tmp_path / "missing.yaml", "file not found"),
        (tmp_path, "is a directory, not a file"),
    ]
    for where, expected in cases:
        checker = YamlChecker(str(where))
        assert checker.read(where) is None
        assert [str(i) for i in checker.issues] == [f"{where}: {expected}"]
    path.write_bytes(b"version: 1\nkits: \xff\n")
    checker = YamlChecker("kit.yaml")
    assert checker.read(path) is None
    assert [str(i) for i in checker.issues] == [
        "kit.yaml:2: not UTF-8 text (bad byte at offset 17)"]


# --- hostile input ------------------------------------------------------------------------
# Whatever the file holds, the checker reports issues; it never raises anything else.


def test_nesting_deeper_than_the_limit_is_refused_where_it_passes_it() -> None:
    # The top mapping is level 1, so the 32nd "[" (column 6 + 32) opens level 33.
    too_deep = "version: 1\nkits: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    assert problems(too_deep) == [
        f"kit.yaml:2: invalid YAML at column {6 + MAX_DEPTH}: nested more than {MAX_DEPTH} "
        "levels deep"]
    deepest = "version: 1\nkits: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert problems(deepest) == ["kit.yaml:2: kits[0]: must be a mapping of kit fields (got list)"]


@pytest.mark.parametrize("text", [
    "kits: " + "[" * 100_000,  # not even closed: refused before the parser reaches the end
    "kits: " + "{a: " * 5_000 + "1" + "}" * 5_000,
    "kits:\n" + "".join("  " * level + "- \n" for level in range(1, 2_000)),
])
def test_nesting_that_would_exhaust_the_stack_is_a_yaml_error(text: str) -> None:
    (issue,) = problems(text)
    assert issue.endswith(f"nested more than {MAX_DEPTH} levels deep")


@pytest.mark.parametrize(("value", "reason"), [
    ("2026-02-30", "day is out of range for month"),
    ("2026-01-01t25:00:00", "hour must be in 0..23"),
    ("!!int twelve", "invalid literal for int() with base 10: 'twelve'"),
    ("!!float x", "could not convert string to float: 'x'"),
    ("1" * 5000, "Exceeds the limit (4300 digits) for integer string conversion: value has "
     "5000 digits"),
])
def test_a_value_python_cannot_build_is_a_yaml_error_at_the_value(value: str, reason: str) -> None:
    assert problems(VALID + f"    weight: {value}\n") == [
        f"kit.yaml:11: invalid YAML at column 13: cannot read this value ({reason})"]


def test_a_mapping_python_cannot_build_is_a_yaml_error_at_the_mapping() -> None:
    # A duplicate key too long to print: ruamel's own message about it cannot be formatted.
    huge = "0x" + "f" * 5000
    assert problems(f"version: 1\n? {huge}\n: 1\n? {huge}\n: 2\n") == [
        "kit.yaml:1: invalid YAML at column 1: cannot read this value (Exceeds the limit "
        "(4300 digits) for integer string conversion)"]


def test_integers_too_long_to_print_are_shown_by_their_size() -> None:
    huge = 16**5000  # 0xfff...: ruamel reads hex of any length, str() refuses it
    assert show(10**23) == "100000000000000000000000"
    assert show(huge) == "an integer of 6021 digits or so"
    assert describe(-huge) == "an integer of 6021 digits or so"
    assert describe(10**23) == "integer 100000000000000000000000"
    with pytest.raises(ValueError, match=r"must be between 1 and 10 \(got an integer of 6021 "):
        integer(1, 10)(huge)
    assert problems(broken("version: 1", "version: 0x" + "f" * 5000)) == [
        "kit.yaml:1: version: unsupported version an integer of 6021 digits or so (this release "
        "reads version 1)"]


@pytest.mark.parametrize(("value", "named"), [
    ("a\u202eb", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("a\u2067b", "U+2067 (RIGHT-TO-LEFT ISOLATE)"),
    ("a\x1b[2Jb", "U+001B (a control character)"),
    ("a\tb", "U+0009 (a control character)"),
    ("a\x85b", "U+0085 (a control character)"),  # NEL, a C1 line break
    ("a\u2029b", "U+2029 (PARAGRAPH SEPARATOR)"),
])
def test_display_text_names_the_code_point_it_refuses(value: str, named: str) -> None:
    for newlines in (False, True):
        with pytest.raises(ValueError, match="must not contain") as caught:
            display_text(value, newlines=newlines)
        assert str(caught.value) == (f"must not contain {named} at character 2: control and "
                                     "bidi formatting characters are not allowed")
        assert value[1] not in str(caught.value)


def test_display_text_takes_any_script_and_line_feeds_only_when_asked() -> None:
    assert display_text("Lucía 美咲 ليلى \u200f👩\u200d🍳") == "Lucía 美咲 ليلى \u200f👩\u200d🍳"
    assert display_text("two\nlines", newlines=True) == "two\nlines"
    with pytest.raises(ValueError, match=r"must not contain U\+000A \(a control character\)"):
        display_text("two\nlines")
    with pytest.raises(ValueError, match="must not be empty"):
        display_text(" ")


def test_an_issue_never_prints_a_control_or_bidi_character_raw() -> None:
    checker = YamlChecker("kit.yaml")
    checker.report(3, "a", "x\x1b[2Jy\u202ez\x9b\x7f")
    assert [str(i) for i in checker.issues] == ["kit.yaml:3: a: x\\u001b[2Jy\\u202ez\\u009b\\u007f"]
    # ruamel's own messages quote keys raw; the issue escapes them.
    (issue,) = problems(VALID + "    colo\u202er: 1\n    colo\u202er: 2\n")
    assert "\u202e" not in issue
    assert 'found duplicate key "colo\\u202er"' in issue


# --- the pieces ---------------------------------------------------------------------------


class _Issue(YamlIssue):
    """A caller's own issue type (RosterIssue, SequenceIssue)."""


def test_issues_have_the_callers_type_and_stay_on_one_line() -> None:
    checker = YamlChecker("kit.yaml", _Issue)
    checker.report(3, "a", "first\nsecond")
    checker.report(None, "", "file-level")
    assert checker.issues == [_Issue("kit.yaml", None, "", "file-level"),
                              _Issue("kit.yaml", 3, "a", "first\nsecond")]
    error = YamlError(checker.issues)
    assert isinstance(error, ValueError)
    assert str(error) == "kit.yaml: file-level\nkit.yaml:3: a: first second"


def test_validators_and_describe() -> None:
    assert valid(integer(0, 5), 3) == 3
    assert valid(integer(0, 5), True) is None
    assert valid(number(0, 1), 10**400) is None  # no overflow on huge integers
    assert number(0, 100)(40) == 40 and type(number(0, 100)(40)) is int
    with pytest.raises(ValueError, match=r"must be at most 5 \(got 6\)"):
        integer(high=5)(6)
    assert describe([1]) == "list"
    assert describe({"a": 1}) == "mapping"
    assert describe("x" * 50) == "string 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"
    assert describe(b"x") == "bytes value"


def test_a_plain_dict_validates_without_lines() -> None:
    checker = YamlChecker("kit.yaml")
    assert checker.validate(KitFile, {"version": 1, "kits": [{"id": "x"}]}) is None
    assert [str(i) for i in checker.issues] == ["kit.yaml: kits[0].parts: required field is "
                                                "missing"]
