"""Subscriber DM sequences: what to send on which day after subscribing, read from
`sequences.yaml` and checked in full.

A sequence belongs to a subscriber tier and either to one character or to every character
(the default); `sequence_for` picks a character's own sequence over the default. Each step has
a day, a condition on the subscriber (tier, tags, score, has replied, spent) and one or more
A/B variants; `choose_variant` picks one from a stable hash, so a rerun picks the same one and
the variant's name can be recorded with the message. Whether a due step is sent now, later or
never is `dm_rules.decide`; what text goes out is `dm_safety.personalize`.

`load_sequences` reports every problem at once as `file:line: field: message`, like the roster
loader, with line numbers from ruamel.yaml's round-trip loader. Templates are run through the
safety gate at load time, so an unsafe template never reaches a subscriber.

Pure domain code: no database, no HTTP, no Dagster. docs/sequences.md describes the format.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from collections.abc import Callable, Collection, Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Formatter
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from waifugen_assets.dm_safety import gate

SCHEMA_VERSION = 1
# Subscriber tiers a sequence (and a condition) may name.
SUBSCRIBER_TIERS: tuple[str, ...] = ("standard", "vip")
# The only placeholders a template may use: the subscriber's display name (fallback: handle,
# then "there"), the subscriber's handle, the character's display name.
PLACEHOLDERS: tuple[str, ...] = ("name", "handle", "character")
DEFAULT_EXPIRE_AFTER_HOURS = 72
MAX_DAY = 365
MAX_TEXT = 2000  # a template; the platform limit is applied when the message is composed

_TOP_FIELDS = ("version", "sequences")
_SEQUENCE_FIELDS = ("character", "tier", "name", "version", "steps")
_STEP_FIELDS = ("day", "name", "condition", "expire_after_hours", "variants")
_CONDITION_FIELDS = ("tiers", "tags_any", "tags_none", "min_score", "has_replied",
                     "min_spent_cents")
_VARIANT_FIELDS = ("name", "weight", "text", "prompt")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TAG = re.compile(r"[a-z0-9]+(?:[_:-][a-z0-9]+)*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime (got naive {value})")


# --- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberFacts:
    """What the rules need to know about one subscriber, read at decision time."""

    id: int
    platform: str
    tier: str
    tags: frozenset[str]
    score: float
    timezone: str | None  # IANA name, None if unknown
    character_timezone: str | None
    subscribed_at: datetime
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    opted_out_at: datetime | None
    has_replied: bool
    spent_cents: int
    sent_last_24h: int = 0
    display_name: str | None = None
    handle: str | None = None

    def __post_init__(self) -> None:
        for name in ("subscribed_at", "last_inbound_at", "last_outbound_at", "opted_out_at"):
            _aware(name, getattr(self, name))
        if not isinstance(self.tags, frozenset):  # a list or set from a JSON column
            object.__setattr__(self, "tags", frozenset(self.tags))


@dataclass(frozen=True)
class Condition:
    """Who a step is for; every field that is set must hold (an empty condition always does)."""

    tiers: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()  # at least one of these tags
    tags_none: tuple[str, ...] = ()  # none of these tags
    min_score: float | None = None
    has_replied: bool | None = None
    min_spent_cents: int | None = None

    def matches(self, s: SubscriberFacts) -> str | None:
        """None if the subscriber qualifies, else why not (recorded with a skipped step)."""
        if self.tiers and s.tier not in self.tiers:
            return f"tier {s.tier} not in ({', '.join(self.tiers)})"
        if self.tags_any and not s.tags.intersection(self.tags_any):
            return f"none of the tags ({', '.join(self.tags_any)})"
        excluded = [t for t in self.tags_none if t in s.tags]
        if excluded:
            return f"has tag {', '.join(excluded)}"
        if self.min_score is not None and s.score < self.min_score:
            return f"score {s.score:g} below {self.min_score:g}"
        if self.has_replied is not None and s.has_replied != self.has_replied:
            return "has not replied" if self.has_replied else "has replied"
        if self.min_spent_cents is not None and s.spent_cents < self.min_spent_cents:
            return f"spent {s.spent_cents} cents, below {self.min_spent_cents}"
        return None

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, JSON-ready (as in the YAML)."""
        out: dict[str, Any] = {}
        for name in _CONDITION_FIELDS:
            value = getattr(self, name)
            if value not in ((), None):
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Variant:
    name: str  # recorded with the message (dm_messages.variant)
    weight: int  # > 0; a variant's share is weight / sum of the step's weights
    text: str  # template; placeholders: PLACEHOLDERS
    prompt: str | None  # optional instruction for the LLM rewrite


@dataclass(frozen=True)
class Step:
    index: int  # position in the sequence, from 0 (dm_messages.step)
    day: int  # days after subscribed_at
    name: str
    condition: Condition
    variants: tuple[Variant, ...]
    expire_after_hours: int = DEFAULT_EXPIRE_AFTER_HOURS


@dataclass(frozen=True)
class Sequence:
    character: str | None  # None: the default for every character
    tier: str
    name: str
    version: int
    steps: tuple[Step, ...]

    @property
    def key(self) -> str:
        """Stored with every message; a new version is a new key, so planned messages keep
        pointing at the definition they were planned from."""
        return f"{self.character or 'default'}/{self.tier}/{self.name}@{self.version}"

    def definition(self) -> dict[str, Any]:
        """JSON-ready, as stored in dm_sequences.definition."""
        return {
            "character": self.character, "tier": self.tier, "name": self.name,
            "version": self.version,
            "steps": [
                {"index": s.index, "day": s.day, "name": s.name,
                 "condition": s.condition.as_dict(), "expire_after_hours": s.expire_after_hours,
                 "variants": [{"name": v.name, "weight": v.weight, "text": v.text,
                               "prompt": v.prompt} for v in s.variants]}
                for s in self.steps
            ],
        }


# --- choosing -----------------------------------------------------------------------------


def sequence_for(sequences: Iterable[Sequence], character: str, tier: str) -> Sequence | None:
    """The character's own sequence for `tier`, else the default one for `tier`, else None."""
    default = None
    for seq in sequences:
        if seq.tier != tier:
            continue
        if seq.character == character:
            return seq
        if seq.character is None and default is None:
            default = seq
    return default


def due_at(step: Step, subscribed_at: datetime) -> datetime:
    """When `step` becomes due: `day` whole days (24 h each) after subscribing, in UTC."""
    _aware("subscribed_at", subscribed_at)
    return subscribed_at.astimezone(UTC) + timedelta(days=step.day)


def due_steps(seq: Sequence, subscriber_facts: SubscriberFacts, now: datetime,
              planned: set[int]) -> list[Step]:
    """Steps whose due time has come and whose index is not in `planned`, in order.

    Expired and conditional steps are included: `dm_rules.decide` records why they are
    skipped, so a step is decided exactly once.
    """
    _aware("now", now)
    return [s for s in seq.steps
            if s.index not in planned and due_at(s, subscriber_facts.subscribed_at) <= now]


def _bucket(*parts: object) -> int:
    """A stable 64-bit number from `parts` (same on every run and machine, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def choose_variant(step: Step, subscriber_id: int, sequence_key: str) -> Variant:
    """A variant picked in proportion to the weights, the same one for the same subscriber,
    sequence and step every time."""
    total = sum(v.weight for v in step.variants)
    if not step.variants or total <= 0:
        raise ValueError(f"step {step.name!r} has no variant with a positive weight")
    point = _bucket(sequence_key, step.index, subscriber_id) % total
    for variant in step.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("unreachable: point < total")  # pragma: no cover


def template_variables(facts: SubscriberFacts, character_name: str) -> dict[str, str]:
    """Values for the placeholders of a template, for this subscriber and character."""
    name = (facts.display_name or "").strip() or (facts.handle or "").strip().lstrip("@")
    return {"name": name or "there", "handle": (facts.handle or "").strip() or "there",
            "character": character_name}


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceIssue:
    """One problem in a sequences file, printed as `file:line: field: message`."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        label = f" {self.field}:" if self.field else ""
        return " ".join(f"{where}:{label} {self.message}".splitlines())


class SequenceError(ValueError):
    """The sequences file is unusable; `.issues` lists every problem, in file order."""

    def __init__(self, issues: list[SequenceIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def load_sequences(path: str | os.PathLike[str], *,
                   known_characters: Collection[str] | None = None,
                   allowed_hosts: Seq[str] = ()) -> list[Sequence]:
    """Read and validate a sequences file; raises SequenceError listing every problem.

    `known_characters`: if given, a sequence for another character id is an error.
    `allowed_hosts`: hosts templates may link to (the safety gate refuses any other link).
    """
    filename = os.fspath(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise SequenceError([SequenceIssue(filename, None, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        issue = SequenceIssue(filename, None, "", f"not UTF-8 text (bad byte at offset "
                              f"{exc.start})")
        raise SequenceError([issue]) from None
    except OSError as exc:
        issue = SequenceIssue(filename, None, "", f"cannot read file: {exc.strerror or exc}")
        raise SequenceError([issue]) from None
    return parse_sequences(text, filename, known_characters=known_characters,
                           allowed_hosts=allowed_hosts)


def parse_sequences(text: str, source: str = "sequences.yaml", *,
                    known_characters: Collection[str] | None = None,
                    allowed_hosts: Seq[str] = ()) -> list[Sequence]:
    """Validate sequences YAML held in memory; `source` is only used in the messages."""
    checker = _Checker(source, known_characters, allowed_hosts)
    sequences = checker.check_text(text)
    if checker.issues:
        raise SequenceError(sorted(checker.issues, key=lambda i: i.line or 0))
    return sequences


# --- validation ---------------------------------------------------------------------------

T = TypeVar("T")


class _Invalid(Exception):
    """A converter's complaint about one value; the checker adds file, line and field."""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return f"{type(value).__name__} value"


def _quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be text (got {_describe(value)})")
    if not value.strip():
        raise _Invalid("must not be empty")
    return str(value)


def _slug(value: Any) -> str:
    text = _text(value)
    if not _SLUG.fullmatch(text):
        raise _Invalid("must be a slug: lowercase letters and digits in words joined by "
                       f"single hyphens (got {_quote(text)})")
    return text


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be a whole number (got {_describe(value)})")
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise _Invalid(f"must be {bound} (got {value})")
        return int(value)

    return convert


def _score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"must be a number (got {_describe(value)})")
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise _Invalid(f"must be between 0 and 100 (got {value})")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false (got {_describe(value)})")
    return value


def _tier(value: Any) -> str:
    if value not in SUBSCRIBER_TIERS:
        raise _Invalid(f"unknown tier (allowed: {', '.join(SUBSCRIBER_TIERS)}; "
                       f"got {_describe(value)})")
    return str(value)


def _tag(value: Any) -> str:
    text = _text(value)
    if not _TAG.fullmatch(text):
        raise _Invalid(f"must be a tag: lowercase letters and digits, words joined by _ : or - "
                       f"(got {_quote(text)})")
    return text


def _placeholders(text: str) -> list[str]:
    """Problems with the `{placeholders}` of a template ("{{" and "}}" are literal braces)."""
    try:
        parsed = list(Formatter().parse(text))
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


def _join(path: str, key: Any) -> str:
    segment = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else _quote(str(key))
    return f"{path}.{segment}" if path else segment


def _node_line(node: Any) -> int:
    return int(node.lc.line) + 1


def _key_line(node: CommentedMap, key: Any) -> int:
    try:
        return int(node.lc.key(key)[0]) + 1
    except KeyError:  # a key merged in with `<<: *anchor` has no position of its own
        return _node_line(node)


def _value_line(node: CommentedMap, key: Any) -> int:
    if node[key] is None:  # a null has no token; ruamel places it at the next one
        return _key_line(node, key)
    try:
        return int(node.lc.value(key)[0]) + 1
    except KeyError:
        return _node_line(node)


def _item_line(node: CommentedSeq, index: int) -> int:
    return int(node.lc.item(index)[0]) + 1


_REQUIRED: Any = object()


class _Checker:
    """Walks the loaded YAML tree, collecting every issue instead of stopping at the first."""

    def __init__(self, filename: str, known_characters: Collection[str] | None,
                 allowed_hosts: Seq[str]) -> None:
        self.filename = filename
        self.known_characters = known_characters
        self.allowed_hosts = allowed_hosts
        self.issues: list[SequenceIssue] = []

    def report(self, line: int | None, path: str, message: str) -> None:
        self.issues.append(SequenceIssue(self.filename, line, path, message))

    def check_text(self, text: str) -> list[Sequence]:
        try:
            doc = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            parts = [p for p in (exc.context, exc.problem) if p]
            where = f" at column {mark.column + 1}" if mark is not None else ""
            self.report(mark.line + 1 if mark is not None else None, "",
                        f"invalid YAML{where}: {': '.join(parts)}")
            return []
        except ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            self.report(line, "", f"invalid YAML: character U+{code:04X} is not allowed")
            return []
        except YAMLError as exc:
            self.report(None, "", f"invalid YAML: {exc}")
            return []
        if doc is None:
            self.report(None, "", "file is empty (expected 'version: 1' and a 'sequences' list)")
            return []
        if not isinstance(doc, CommentedMap):
            line = YAML(typ="rt").compose(text).start_mark.line + 1
            self.report(line, "", "top level must be a mapping with 'version' and 'sequences' "
                        f"(got {_describe(doc)})")
            return []
        self.check_keys(doc, "", _TOP_FIELDS)
        version = self.field(doc, "version", "", _integer(1))
        if version is not None and version != SCHEMA_VERSION:
            self.report(_value_line(doc, "version"), "version",
                        f"unsupported version {version} (this release reads version "
                        f"{SCHEMA_VERSION})")
        if not self.present(doc, "sequences", ""):
            return []
        items = doc["sequences"]
        if not isinstance(items, CommentedSeq):
            self.report(_value_line(doc, "sequences"), "sequences",
                        f"must be a list of sequences (got {_describe(items)})")
            return []
        out: list[Sequence] = []
        first: dict[tuple[str | None, str], int] = {}
        for index, item in enumerate(items):
            path = f"sequences[{index}]"
            if not isinstance(item, CommentedMap):
                self.report(_item_line(items, index), path,
                            f"must be a mapping of sequence fields (got {_describe(item)})")
                continue
            seq = self.check_sequence(item, path)
            if seq is None:
                continue
            owner = (seq.character, seq.tier)
            if owner in first:
                self.report(_node_line(item), path,
                            f"a second sequence for {seq.character or 'default'}/{seq.tier} "
                            f"(first at line {first[owner]}); one per character and tier")
                continue
            first[owner] = _node_line(item)
            out.append(seq)
        return out

    def check_keys(self, node: CommentedMap, path: str, allowed: tuple[str, ...]) -> None:
        for key in node:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"expected one of: {', '.join(allowed)}")
            self.report(_key_line(node, key), _join(path, key), f"unknown field ({hint})")

    def present(self, node: CommentedMap, key: str, path: str) -> bool:
        if key in node:
            return True
        self.report(_node_line(node), _join(path, key), "required field is missing")
        return False

    def field(self, node: CommentedMap, key: str, path: str, convert: Callable[[Any], T],
              default: Any = _REQUIRED) -> T | None:
        if key not in node:
            if default is _REQUIRED:
                self.present(node, key, path)
                return None
            return default  # type: ignore[no-any-return]
        try:
            return convert(node[key])
        except _Invalid as exc:
            self.report(_value_line(node, key), _join(path, key), str(exc))
            return None

    def list_of(self, node: CommentedMap, key: str, path: str,
                convert: Callable[[Any], T]) -> tuple[T, ...] | None:
        """An optional list field, each item converted; None after reporting a problem."""
        if key not in node:
            return ()
        items = node[key]
        path = _join(path, key)
        if not isinstance(items, CommentedSeq):
            self.report(_value_line(node, key), path, f"must be a list (got {_describe(items)})")
            return None
        out: list[T] = []
        ok = True
        for index, raw in enumerate(items):
            try:
                value = convert(raw)
            except _Invalid as exc:
                self.report(_item_line(items, index), f"{path}[{index}]", str(exc))
                ok = False
                continue
            if value not in out:
                out.append(value)
        return tuple(out) if ok else None

    def check_sequence(self, node: CommentedMap, path: str) -> Sequence | None:
        before = len(self.issues)
        self.check_keys(node, path, _SEQUENCE_FIELDS)
        character = None
        if node.get("character") is not None:
            character = self.field(node, "character", path, _slug)
            if (character is not None and self.known_characters is not None
                    and character not in self.known_characters):
                self.report(_value_line(node, "character"), _join(path, "character"),
                            f"unknown character {_quote(character)} (not in the roster)")
        tier = self.field(node, "tier", path, _tier)
        name = self.field(node, "name", path, _slug)
        version = self.field(node, "version", path, _integer(1))
        steps = self.check_steps(node, path)
        if len(self.issues) > before or tier is None or name is None or version is None:
            return None
        return Sequence(character, tier, name, version, steps)

    def check_steps(self, node: CommentedMap, path: str) -> tuple[Step, ...]:
        if not self.present(node, "steps", path):
            return ()
        items = node["steps"]
        path = _join(path, "steps")
        if not isinstance(items, CommentedSeq):
            self.report(_value_line(node, "steps"), path,
                        f"must be a list of steps (got {_describe(items)})")
            return ()
        if not items:
            self.report(_value_line(node, "steps"), path, "must list at least one step")
        steps: list[Step] = []
        day_line: dict[int, int] = {}
        name_line: dict[str, int] = {}
        last_day: tuple[int, int] | None = None  # (day, line) of the previous valid day
        for index, item in enumerate(items):
            sub = f"{path}[{index}]"
            if not isinstance(item, CommentedMap):
                self.report(_item_line(items, index), sub,
                            f"must be a mapping of step fields (got {_describe(item)})")
                continue
            step = self.check_step(item, sub, index)
            day = self.valid_day(item)
            if day is not None:
                line = _value_line(item, "day")
                if day in day_line:
                    self.report(line, _join(sub, "day"),
                                f"duplicate day {day} (first used at line {day_line[day]})")
                elif last_day is not None and day < last_day[0]:
                    self.report(line, _join(sub, "day"),
                                f"day {day} comes after day {last_day[0]} (line {last_day[1]}): "
                                "steps must be listed in day order")
                day_line.setdefault(day, line)
                if last_day is None or day > last_day[0]:
                    last_day = (day, line)
            step_name = item.get("name")
            if isinstance(step_name, str) and _SLUG.fullmatch(step_name):
                line = _value_line(item, "name")
                if step_name in name_line:
                    self.report(line, _join(sub, "name"),
                                f"duplicate step name {_quote(step_name)} (first used at line "
                                f"{name_line[step_name]})")
                name_line.setdefault(step_name, line)
            if step is not None:
                steps.append(step)
        return tuple(steps)

    @staticmethod
    def valid_day(item: CommentedMap) -> int | None:
        try:
            return _integer(0, MAX_DAY)(item.get("day"))
        except _Invalid:
            return None

    def check_step(self, node: CommentedMap, path: str, index: int) -> Step | None:
        before = len(self.issues)
        self.check_keys(node, path, _STEP_FIELDS)
        day = self.field(node, "day", path, _integer(0, MAX_DAY))
        name = self.field(node, "name", path, _slug)
        expire = self.field(node, "expire_after_hours", path, _integer(1, 24 * MAX_DAY),
                            DEFAULT_EXPIRE_AFTER_HOURS)
        condition = self.check_condition(node, path)
        variants = self.check_variants(node, path)
        if len(self.issues) > before or day is None or name is None or expire is None:
            return None
        return Step(index, day, name, condition or Condition(), variants, expire)

    def check_condition(self, node: CommentedMap, path: str) -> Condition | None:
        if node.get("condition") is None:
            return Condition()
        cond = node["condition"]
        path = _join(path, "condition")
        if not isinstance(cond, CommentedMap):
            self.report(_value_line(node, "condition"), path,
                        f"must be a mapping of conditions (got {_describe(cond)})")
            return None
        self.check_keys(cond, path, _CONDITION_FIELDS)
        tiers = self.list_of(cond, "tiers", path, _tier)
        tags_any = self.list_of(cond, "tags_any", path, _tag)
        tags_none = self.list_of(cond, "tags_none", path, _tag)
        min_score = self.field(cond, "min_score", path, _score, None)
        has_replied = self.field(cond, "has_replied", path, _boolean, None)
        min_spent = self.field(cond, "min_spent_cents", path, _integer(0), None)
        if tiers is None or tags_any is None or tags_none is None:
            return None
        both = sorted(set(tags_any) & set(tags_none))
        if both:
            self.report(_node_line(cond), path,
                        f"tag(s) {', '.join(both)} both required and excluded: never matches")
        return Condition(tiers, tags_any, tags_none, min_score, has_replied, min_spent)

    def check_variants(self, node: CommentedMap, path: str) -> tuple[Variant, ...]:
        if not self.present(node, "variants", path):
            return ()
        items = node["variants"]
        path = _join(path, "variants")
        if not isinstance(items, CommentedSeq):
            self.report(_value_line(node, "variants"), path,
                        f"must be a list of variants (got {_describe(items)})")
            return ()
        if not items:
            self.report(_value_line(node, "variants"), path, "must list at least one variant")
        variants: list[Variant] = []
        name_line: dict[str, int] = {}
        for index, item in enumerate(items):
            sub = f"{path}[{index}]"
            if not isinstance(item, CommentedMap):
                self.report(_item_line(items, index), sub,
                            f"must be a mapping with name, weight and text (got "
                            f"{_describe(item)})")
                continue
            before = len(self.issues)
            self.check_keys(item, sub, _VARIANT_FIELDS)
            name = self.field(item, "name", sub, _slug)
            weight = self.field(item, "weight", sub, _integer(1))
            text = self.field(item, "text", sub, _text)
            prompt = None if item.get("prompt") is None else self.field(item, "prompt", sub,
                                                                         _text)
            if text is not None:
                self.check_template(item, "text", sub, text)
            if prompt is not None:
                self.check_gate(item, "prompt", sub, prompt)
            if name is not None:
                if name in name_line:
                    self.report(_value_line(item, "name"), _join(sub, "name"),
                                f"duplicate variant name {_quote(name)} (first used at line "
                                f"{name_line[name]})")
                name_line.setdefault(name, _value_line(item, "name"))
            if len(self.issues) == before and name and weight and text:
                variants.append(Variant(name, weight, text, prompt))
        return tuple(variants)

    def check_template(self, node: CommentedMap, key: str, path: str, text: str) -> None:
        line = _value_line(node, key)
        if len(text) > MAX_TEXT:
            self.report(line, _join(path, key),
                        f"too long: {len(text)} characters (at most {MAX_TEXT})")
        for problem in _placeholders(text):
            self.report(line, _join(path, key), problem)
        self.check_gate(node, key, path, text)

    def check_gate(self, node: CommentedMap, key: str, path: str, text: str) -> None:
        for reason in gate(text, self.allowed_hosts):
            self.report(_value_line(node, key), _join(path, key),
                        f"refused by the safety gate: {reason}")
