"""The format of `sequences.yaml`: its shape as pydantic models, and the rules checked on it.

`check_sequences` reports through a `YamlChecker` (waifugen_assets.core.yaml_check), so every
problem reads `file:line: field: message` and all of them are reported at once. Templates go
through the safety gate here, at load time, so an unsafe template never reaches a subscriber.
`sequences.py` turns the validated models into its dataclasses and re-exports the constants.

Pure domain code: no database, no HTTP, no Dagster. docs/sequences.md describes the format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from collections.abc import Sequence as Seq
from string import Formatter
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationInfo
from ruamel.yaml.comments import CommentedMap

from waifugen_assets.core.yaml_check import (
    OptionalText,
    Slug,
    Text,
    YamlChecker,
    YamlModel,
    at_least_one,
    boolean,
    describe,
    format_version,
    integer,
    listing,
    mapping,
    node_line,
    number,
    quote,
    slug,
    text,
    valid,
    value_line,
)
from waifugen_assets.subscribers.safety import gate

SCHEMA_VERSION = 1
# Subscriber tiers a sequence (and a condition) may name.
SUBSCRIBER_TIERS: tuple[str, ...] = ("standard", "vip")
# The only placeholders a template may use: the subscriber's display name (fallback: handle,
# then "there"), the subscriber's handle, the character's display name.
PLACEHOLDERS: tuple[str, ...] = ("name", "handle", "character")
DEFAULT_EXPIRE_AFTER_HOURS = 72
MAX_DAY = 365
MAX_TEXT = 2000  # a template; the platform limit is applied when the message is composed

_TAG = re.compile(r"[a-z0-9]+(?:[_:-][a-z0-9]+)*")


# --- values -------------------------------------------------------------------------------


def _tier(value: Any) -> str:
    if value not in SUBSCRIBER_TIERS:
        raise ValueError(f"unknown tier (allowed: {', '.join(SUBSCRIBER_TIERS)}; "
                         f"got {describe(value)})")
    return str(value)


def _tag(value: Any) -> str:
    tag = text(value)
    if not _TAG.fullmatch(tag):
        raise ValueError("must be a tag: lowercase letters and digits, words joined by _ : or - "
                         f"(got {quote(tag)})")
    return tag


def _character(value: Any, info: ValidationInfo) -> str | None:
    """None: the default for every character. Checked against the roster when the caller
    passes `known_characters` (in the validation context)."""
    if value is None:
        return None
    character = slug(value)
    known = (info.context or {}).get("known_characters")
    if known is not None and character not in known:
        raise ValueError(f"unknown character {quote(character)} (not in the roster)")
    return character


_day = integer(0, MAX_DAY)
Tier = Annotated[str, PlainValidator(_tier)]
Tag = Annotated[str, PlainValidator(_tag)]


# --- the file's shape ---------------------------------------------------------------------
# Declaration order is checking order and the order "expected one of" lists.


class VariantSpec(YamlModel):
    name: Slug  # recorded with the message
    weight: Annotated[int, PlainValidator(integer(1))]
    text: Text  # checked further by _check_template
    prompt: OptionalText = None


class ConditionSpec(YamlModel):
    tiers: Annotated[list[Tier], listing("a list")] = []
    tags_any: Annotated[list[Tag], listing("a list")] = []
    tags_none: Annotated[list[Tag], listing("a list")] = []
    # Optional, but an explicit null is refused like any other wrong value.
    min_score: Annotated[float | None, PlainValidator(number(0, 100))] = None
    has_replied: Annotated[bool | None, PlainValidator(boolean)] = None
    min_spent_cents: Annotated[int | None, PlainValidator(integer(0))] = None


class StepSpec(YamlModel):
    day: Annotated[int, PlainValidator(_day)]
    name: Slug
    condition: Annotated[
        ConditionSpec | None, mapping("a mapping of conditions", null=True)
    ] = None  # null: no condition
    expire_after_hours: Annotated[
        int, PlainValidator(integer(1, 24 * MAX_DAY))
    ] = DEFAULT_EXPIRE_AFTER_HOURS
    variants: Annotated[
        list[Annotated[VariantSpec, mapping("a mapping with name, weight and text")]],
        listing("a list of variants"), at_least_one("variant"),
    ]


class SequenceSpec(YamlModel):
    character: Annotated[str | None, PlainValidator(_character)] = None
    tier: Tier
    name: Slug
    version: Annotated[int, PlainValidator(integer(1))]
    steps: Annotated[
        list[Annotated[StepSpec, mapping("a mapping of step fields")]],
        listing("a list of steps"), at_least_one("step"),
    ]


class SequencesFile(YamlModel):
    version: Annotated[int, PlainValidator(format_version(SCHEMA_VERSION, low=1))]
    sequences: Annotated[
        list[Annotated[SequenceSpec, mapping("a mapping of sequence fields")]],
        listing("a list of sequences"),
    ]


# --- checking -----------------------------------------------------------------------------


def check_sequences(checker: YamlChecker, yaml_text: str, *,
                    known_characters: Collection[str] | None = None,
                    allowed_hosts: Seq[str] = ()) -> SequencesFile | None:
    """The validated file, or None; every problem found is reported to `checker`."""
    doc = checker.parse(yaml_text, expected="a mapping with 'version' and 'sequences'",
                        empty="expected 'version: 1' and a 'sequences' list")
    if doc is None:
        return None
    parsed = checker.validate(SequencesFile, doc, {"known_characters": known_characters})
    _check_across(checker, doc, allowed_hosts)
    return parsed if not checker.issues else None


# The rules below look at more than one value, or report more than one problem per value,
# so they run on the loaded tree (next to the model's errors) and skip what is invalid.


def _check_across(checker: YamlChecker, doc: CommentedMap, allowed_hosts: Seq[str]) -> None:
    items = doc.get("sequences")
    if not isinstance(items, list):
        return
    first: dict[tuple[Any, Any], int | None] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        path = f"sequences[{index}]"
        if isinstance(item.get("steps"), list):
            _check_steps(checker, item["steps"], f"{path}.steps", allowed_hosts)
        if checker.has_issues_under(path):  # only a valid sequence can clash with another
            continue
        owner = (item.get("character"), item.get("tier"))
        if owner in first:
            checker.report(node_line(item), path,
                           f"a second sequence for {owner[0] or 'default'}/{owner[1]} "
                           f"(first at line {first[owner]}); one per character and tier")
        else:
            first[owner] = node_line(item)


def _check_steps(checker: YamlChecker, steps: list[Any], path: str,
                 allowed_hosts: Seq[str]) -> None:
    day_line: dict[int, int | None] = {}
    name_line: dict[str, int | None] = {}
    last_day: tuple[int, int | None] | None = None  # (day, line) of the latest valid day
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        sub = f"{path}[{index}]"
        if isinstance(step.get("condition"), Mapping):
            _check_condition(checker, step["condition"], f"{sub}.condition")
        if isinstance(step.get("variants"), list):
            _check_variants(checker, step["variants"], f"{sub}.variants", allowed_hosts)
        day = valid(_day, step.get("day"))
        if day is not None:
            line = value_line(step, "day")
            if day in day_line:
                checker.report(line, f"{sub}.day",
                               f"duplicate day {day} (first used at line {day_line[day]})")
            elif last_day is not None and day < last_day[0]:
                checker.report(line, f"{sub}.day",
                               f"day {day} comes after day {last_day[0]} (line {last_day[1]}): "
                               "steps must be listed in day order")
            day_line.setdefault(day, line)
            if last_day is None or day > last_day[0]:
                last_day = (day, line)
        name = valid(slug, step.get("name"))
        if name is not None:
            line = value_line(step, "name")
            if name in name_line:
                checker.report(line, f"{sub}.name", f"duplicate step name {quote(name)} "
                               f"(first used at line {name_line[name]})")
            name_line.setdefault(name, line)


def _valid_list(convert: Callable[[Any], str], node: Mapping[str, Any],
                key: str) -> list[str] | None:
    """The list at `key` if it and all its items are valid ([] if absent), else None."""
    items = node.get(key, [])
    if not isinstance(items, list):
        return None
    values = [valid(convert, item) for item in items]
    return None if None in values else values  # type: ignore[return-value]


def _check_condition(checker: YamlChecker, cond: Mapping[str, Any], path: str) -> None:
    tags_any = _valid_list(_tag, cond, "tags_any")
    tags_none = _valid_list(_tag, cond, "tags_none")
    if tags_any is None or tags_none is None or _valid_list(_tier, cond, "tiers") is None:
        return
    both = sorted(set(tags_any) & set(tags_none))
    if both:
        checker.report(node_line(cond), path,
                       f"tag(s) {', '.join(both)} both required and excluded: never matches")


def _check_variants(checker: YamlChecker, variants: list[Any], path: str,
                    allowed_hosts: Seq[str]) -> None:
    name_line: dict[str, int | None] = {}
    for index, variant in enumerate(variants):
        if not isinstance(variant, Mapping):
            continue
        sub = f"{path}[{index}]"
        body = valid(text, variant.get("text"))
        if body is not None:
            line = value_line(variant, "text")
            if len(body) > MAX_TEXT:
                checker.report(line, f"{sub}.text",
                               f"too long: {len(body)} characters (at most {MAX_TEXT})")
            for problem in _placeholders(body):
                checker.report(line, f"{sub}.text", problem)
            _check_gate(checker, variant, "text", sub, body, allowed_hosts)
        prompt = valid(text, variant.get("prompt"))
        if prompt is not None:
            _check_gate(checker, variant, "prompt", sub, prompt, allowed_hosts)
        name = valid(slug, variant.get("name"))
        if name is not None:
            line = value_line(variant, "name")
            if name in name_line:
                checker.report(line, f"{sub}.name", f"duplicate variant name {quote(name)} "
                               f"(first used at line {name_line[name]})")
            name_line.setdefault(name, line)


def _check_gate(checker: YamlChecker, node: Mapping[str, Any], key: str, path: str,
                value: str, allowed_hosts: Seq[str]) -> None:
    for reason in gate(value, allowed_hosts):
        checker.report(value_line(node, key), f"{path}.{key}",
                       f"refused by the safety gate: {reason}")


def _placeholders(template: str) -> list[str]:
    """Problems with the `{placeholders}` of a template ("{{" and "}}" are literal braces)."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        return [f"bad braces ({exc}); write {{{{ and }}}} for literal braces"]
    problems = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{}" if name == "" else "{" + name + "}"
            problems.append(f"unknown placeholder {shown} (allowed: "
                            + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ")")
        elif spec or conversion:
            problems.append(f"placeholder {{{name}}} takes no format spec or conversion")
    return problems
