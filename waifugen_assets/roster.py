"""The roster: who the characters are, read from `characters.yaml` and checked in full.

`load_roster` reports every problem in the file at once, each as one line that an operator can
jump to (`characters.yaml:14: characters[2].age: must be at least 18 (got 17)`), because a
roster with three typos should not take three deploys to fix. Line numbers come from
ruamel.yaml's round-trip loader, which remembers where every key, value and list item was.

Pure domain code: no database, no Dagster. The `characters` asset validates the file with it
and upserts the result.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

SCHEMA_VERSION = 1

# Where reels are published (official APIs, general-audience content only; DESIGN section 8).
PUBLISH_PLATFORMS: tuple[str, ...] = ("tiktok", "instagram", "youtube")
# Where paying subscribers are messaged. OnlyFans and Fansly have no public API: CSV import
# and a manual-send queue, never session automation.
SUBSCRIBER_PLATFORMS: tuple[str, ...] = ("fanvue", "telegram", "onlyfans", "fansly")
PLATFORMS: tuple[str, ...] = PUBLISH_PLATFORMS + SUBSCRIBER_PLATFORMS

# A character's rating is the ceiling for its reels; only `general` ever reaches the
# publish platforms, whatever the character's rating.
CONTENT_RATINGS: tuple[str, ...] = ("general", "mature")
WATERMARK_POSITIONS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
MIN_AGE = 18
MAX_SLOTS = 24

_TOP_FIELDS = ("version", "characters")
_CHARACTER_FIELDS = (
    "id", "name", "persona", "age", "timezone", "enabled", "budget_share", "content_rating",
    "slots", "platforms", "watermark", "a2e",
)
_ACCOUNT_FIELDS = ("account", "enabled")
_WATERMARK_FIELDS = ("text", "image", "position", "opacity")
_A2E_FIELDS = ("avatar_id", "voice_id")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SLOT = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
# Path segments that need no quoting in a field path (anything else is shown repr()-quoted,
# which also keeps a stray newline in a key from breaking the one-line format).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --- issues -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterIssue:
    """One problem in a roster file, printed as `file:line: field: message`."""

    file: str
    line: int | None  # 1-based; None when the problem has no place (file missing, empty)
    field: str  # e.g. "characters[2].slots[1]"; "" for file-level problems
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        text = f"{where}:{field} {self.message}"
        return " ".join(text.splitlines())  # one issue, one line, whatever the input held


class RosterError(ValueError):
    """The roster file is unusable; `.issues` lists every problem found, in file order."""

    def __init__(self, issues: list[RosterIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


# --- the validated roster -----------------------------------------------------------------


@dataclass(frozen=True)
class PlatformAccount:
    platform: str  # one of PLATFORMS
    account: str  # the account's handle/reference on that platform; never a credential
    enabled: bool = True


@dataclass(frozen=True)
class Watermark:
    text: str  # usually the "@handle"
    image: str | None = None  # logo path, relative to the roster file's directory
    position: str = "bottom-right"  # one of WATERMARK_POSITIONS
    opacity: float = 0.8

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as stored in the characters table."""
        return asdict(self)


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    persona: str
    age: int
    timezone: str  # IANA name
    # "HH:MM" local times in time-of-day order, so slot numbers stay put when the file's
    # list is merely reordered.
    slots: tuple[str, ...]
    platforms: Mapping[str, PlatformAccount]  # read-only, in file order
    enabled: bool = True
    # Percent of the monthly credit budget; None: an even part of what explicit shares leave
    # (see Roster.budget_shares).
    budget_share: float | None = None
    content_rating: str = "general"
    watermark: Watermark | None = None
    a2e_avatar_id: str | None = None  # anchor id from A2E's character_list
    a2e_voice_id: str | None = None  # tts_id from A2E's voice_list

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances per key

    def slot_times(self) -> list[time]:
        return [time.fromisoformat(slot) for slot in self.slots]

    def scheduled_at(self, day: date, slot_index: int) -> datetime:
        """When slot `slot_index` falls on the local calendar date `day`, as an aware UTC time."""
        if not 0 <= slot_index < len(self.slots):
            raise IndexError(
                f"{self.id} has {len(self.slots)} slot(s); there is no slot {slot_index}"
            )
        return local_slot_utc(day, self.slots[slot_index], self.zone)


def local_slot_utc(day: date, slot: str, zone: ZoneInfo) -> datetime:
    """A local "HH:MM" slot on the local calendar date `day`, as an aware UTC time.

    Wall-clock times that DST makes odd are resolved the PEP 495 way (fold=0), so every
    slot happens exactly once a day and the call never fails:
    - in a spring-forward gap the time moves forward by the gap's length (New York,
      2026-03-08: 02:30 does not exist and becomes 03:30 EDT = 07:30 UTC), as dateutil's
      `resolve_imaginary` does;
    - in a fall-back fold the first occurrence wins (New York, 2026-11-01: 01:30 happens
      twice; the slot is 01:30 EDT = 05:30 UTC, not the repeat an hour later).
    """
    if isinstance(day, datetime):  # a datetime is a date; its own zone would be ignored
        raise TypeError("takes the local calendar date, not a datetime")
    hour, minute = (int(part) for part in slot.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Roster:
    characters: tuple[Character, ...]
    path: Path | None  # None when validated from text
    sha256: str  # of the file's bytes: tells a changed roster from a re-read one

    def enabled(self) -> tuple[Character, ...]:
        return tuple(c for c in self.characters if c.enabled)

    @cached_property
    def by_id(self) -> Mapping[str, Character]:
        return MappingProxyType({c.id: c for c in self.characters})

    def budget_shares(self) -> dict[str, float]:
        """Percent of the monthly budget per enabled character: its own share if it names one,
        else an even part of what the named shares leave (possibly 0)."""
        enabled = self.enabled()
        named = math.fsum(c.budget_share for c in enabled if c.budget_share is not None)
        unnamed = sum(1 for c in enabled if c.budget_share is None)
        even = max(0.0, 100 - named) / unnamed if unnamed else 0.0
        return {c.id: even if c.budget_share is None else c.budget_share for c in enabled}


# --- loading ------------------------------------------------------------------------------


def load_roster(path: str | os.PathLike[str]) -> Roster:
    """Read and validate a roster file; raises RosterError listing every problem in it."""
    filename = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RosterError([RosterIssue(filename, None, "", "file not found")]) from None
    except IsADirectoryError:
        raise RosterError([RosterIssue(filename, None, "", "is a directory, not a file")]) from None
    except OSError as exc:
        issue = RosterIssue(filename, None, "", f"cannot read file: {exc.strerror or exc}")
        raise RosterError([issue]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        issue = RosterIssue(filename, line, "", f"not UTF-8 text (bad byte at offset {exc.start})")
        raise RosterError([issue]) from None
    return _build(text, filename, Path(path), hashlib.sha256(data).hexdigest())


def validate_roster_text(text: str, filename: str = "characters.yaml") -> Roster:
    """Validate roster YAML held in memory; `filename` is only used in the messages."""
    return _build(text, filename, None, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _build(text: str, filename: str, path: Path | None, digest: str) -> Roster:
    checker = _Checker(filename)
    characters = checker.check_text(text)
    if checker.issues:
        # Stable sort: file order, problems of the same line in the order they were found.
        raise RosterError(sorted(checker.issues, key=lambda i: i.line or 0))
    return Roster(characters=characters, path=path, sha256=digest)


# --- validation ---------------------------------------------------------------------------

T = TypeVar("T")


class _Invalid(Exception):
    """A converter's complaint about one value; the checker adds file, line and field."""


def _quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _describe(value: Any) -> str:
    """A value as YAML would name it, for "(got ...)" in messages."""
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
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, date):
        return f"date {value.isoformat()}"
    return f"{type(value).__name__} value"


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be text (got {_describe(value)})")
    if not value.strip():
        raise _Invalid("must not be empty")
    return str(value)  # drop ruamel's scalar-string subclasses


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _slug(value: Any) -> str:
    text = _text(value)
    if not _SLUG.fullmatch(text):
        raise _Invalid(
            "must be a slug: lowercase letters and digits in words joined by single hyphens "
            f"(got {_quote(text)})"
        )
    return text


def _integer(value: Any) -> int:
    # bool is an int in Python, but `age: true` is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be a whole number (got {_describe(value)})")
    return int(value)


def _age(value: Any) -> int:
    age = _integer(value)
    if age < MIN_AGE:
        raise _Invalid(f"must be at least {MIN_AGE} (got {age})")
    return age


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false (got {_describe(value)})")
    return value


def _number_between(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"must be a number (got {_describe(value)})")
        if not (math.isfinite(value) and low <= value <= high):
            raise _Invalid(f"must be between {low:g} and {high:g} (got {value})")
        return int(value) if isinstance(value, int) else float(value)

    return convert


_share = _number_between(0, 100)


def _valid(convert: Callable[[Any], T], value: Any) -> T | None:
    try:
        return convert(value)
    except _Invalid:
        return None


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            raise _Invalid(f"must be one of {', '.join(options)} (got {_describe(value)})")
        return str(value)

    return convert


def _timezone(value: Any) -> str:
    key = _text(value)
    try:
        # "localtime" is the machine's own zone: a roster must not change with the server.
        if key == "localtime":
            raise ZoneInfoNotFoundError(key)
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _Invalid(
            f"unknown time zone {_quote(key)} (expected an IANA name such as 'Europe/Madrid')"
        ) from None
    return key


def parse_slot(value: Any) -> str:
    """A slot as "HH:MM" (24-hour, zero-padded); raises ValueError saying what is wrong."""
    if not isinstance(value, str) or not _SLOT.fullmatch(value):
        got = _describe(value)
        raise ValueError(f'must be a time "HH:MM" from 00:00 to 23:59 (got {got})')
    return str(value)


def _slot(value: Any) -> str:
    try:
        return parse_slot(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _join(path: str, key: Any) -> str:
    segment = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else _quote(str(key))
    return f"{path}.{segment}" if path else segment


def _node_line(node: Any) -> int:
    return node.lc.line + 1


def _key_line(node: CommentedMap, key: Any) -> int:
    try:
        return node.lc.key(key)[0] + 1
    except KeyError:  # a key merged in with `<<: *anchor` has no position of its own
        return _node_line(node)


def _value_line(node: CommentedMap, key: Any) -> int:
    # A null value has no token of its own; ruamel places it where the next token starts.
    if node[key] is None:
        return _key_line(node, key)
    try:
        return node.lc.value(key)[0] + 1
    except KeyError:
        return _node_line(node)


def _item_line(node: CommentedSeq, index: int) -> int:
    return node.lc.item(index)[0] + 1


_REQUIRED: Any = object()


class _Checker:
    """Walks the loaded YAML tree, collecting every issue instead of stopping at the first."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.issues: list[RosterIssue] = []

    def report(self, line: int | None, field: str, message: str) -> None:
        self.issues.append(RosterIssue(self.filename, line, field, message))

    def check_text(self, text: str) -> tuple[Character, ...]:
        try:
            doc = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            self.report_yaml_error(exc)
            return ()
        except ReaderError as exc:  # a character YAML does not allow; no mark, a position
            line = text.count("\n", 0, exc.position) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            self.report(line, "", f"invalid YAML: character U+{code:04X} is not allowed")
            return ()
        except YAMLError as exc:  # anything else the parser raises is still the file's fault
            self.report(None, "", f"invalid YAML: {exc}")
            return ()
        return self.check_document(doc, text)

    def report_yaml_error(self, exc: MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        parts = []
        if exc.context:  # e.g. "while parsing a flow sequence", and where that began
            began = f" (line {exc.context_mark.line + 1})" if exc.context_mark else ""
            parts.append(f"{exc.context}{began}")
        if exc.problem:
            parts.append(exc.problem)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        self.report(
            mark.line + 1 if mark is not None else None, "",
            f"invalid YAML{where}: {': '.join(parts)}",
        )

    def check_document(self, doc: Any, text: str) -> tuple[Character, ...]:
        if doc is None:
            self.report(None, "", "file is empty (expected 'version: 1' and a 'characters' list)")
            return ()
        if not isinstance(doc, CommentedMap):
            # Scalars carry no position; composing again (error path only) finds the node.
            line = YAML(typ="rt").compose(text).start_mark.line + 1
            self.report(
                line, "", f"top level must be a mapping with 'version' and 'characters' "
                f"(got {_describe(doc)})",
            )
            return ()
        self.check_keys(doc, "", _TOP_FIELDS)
        version = self.field(doc, "version", "", _integer)
        if version is not None and version != SCHEMA_VERSION:
            self.report(
                _value_line(doc, "version"), "version",
                f"unsupported version {version} (this release reads version {SCHEMA_VERSION})",
            )
        if not self.present(doc, "characters", ""):
            return ()
        items = doc["characters"]
        if not isinstance(items, CommentedSeq):
            self.report(
                _value_line(doc, "characters"), "characters",
                f"must be a list of characters (got {_describe(items)})",
            )
            return ()

        characters: list[Character] = []
        first_id_line: dict[str, int] = {}
        enabled_shares: list[float] = []
        for index, item in enumerate(items):
            path = f"characters[{index}]"
            if not isinstance(item, CommentedMap):
                self.report(
                    _item_line(items, index), path,
                    f"must be a mapping of character fields (got {_describe(item)})",
                )
                continue
            character = self.check_character(item, path)
            share = _valid(_share, item.get("budget_share"))
            if share is not None and item.get("enabled", True) is True:
                enabled_shares.append(share)
            ident = item.get("id")
            if isinstance(ident, str) and _SLUG.fullmatch(ident):
                line = _value_line(item, "id")
                if ident in first_id_line:
                    self.report(
                        line, f"{path}.id",
                        f"duplicate id {_quote(ident)} (first used at line {first_id_line[ident]})",
                    )
                else:
                    first_id_line[ident] = line
            if character is not None:
                characters.append(character)

        # Counted from every valid share, so a typo elsewhere cannot hide an over-budget roster.
        total = math.fsum(enabled_shares)
        if total > 100 + 1e-9:
            self.report(
                _key_line(doc, "characters"), "characters[*].budget_share",
                f"budget shares of enabled characters sum to {total:.10g} (must be at most 100)",
            )
        return tuple(characters)

    def check_keys(self, node: CommentedMap, path: str, allowed: tuple[str, ...]) -> None:
        for key in node:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"expected one of: {', '.join(allowed)}")
            self.report(_key_line(node, key), _join(path, key), f"unknown field ({hint})")

    def present(self, node: CommentedMap, key: str, path: str) -> bool:
        """Whether a required field is there; reported at the mapping's first line if not."""
        if key in node:
            return True
        self.report(_node_line(node), _join(path, key), "required field is missing")
        return False

    def field(
        self, node: CommentedMap, key: str, path: str, convert: Callable[[Any], T],
        default: Any = _REQUIRED,
    ) -> T | None:
        """`convert(node[key])`, or None after reporting why it is missing or invalid."""
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

    def mapping(self, node: CommentedMap, key: str, path: str, what: str) -> CommentedMap | None:
        value = node[key]
        if isinstance(value, CommentedMap):
            return value
        self.report(
            _value_line(node, key), _join(path, key), f"must be {what} (got {_describe(value)})"
        )
        return None

    def check_character(self, node: CommentedMap, path: str) -> Character | None:
        before = len(self.issues)
        self.check_keys(node, path, _CHARACTER_FIELDS)
        values = {
            "id": self.field(node, "id", path, _slug),
            "name": self.field(node, "name", path, _text),
            "persona": self.field(node, "persona", path, _text),
            "age": self.field(node, "age", path, _age),
            "timezone": self.field(node, "timezone", path, _timezone),
            "enabled": self.field(node, "enabled", path, _boolean, True),
            "budget_share": self.field(node, "budget_share", path, _share, None),
            "content_rating": self.field(
                node, "content_rating", path, _one_of(CONTENT_RATINGS), "general"
            ),
            "slots": self.check_slots(node, path),
            "platforms": self.check_platforms(node, path),
            "watermark": self.check_watermark(node, path),
        }
        values["a2e_avatar_id"], values["a2e_voice_id"] = self.check_a2e(node, path)
        if len(self.issues) > before:
            return None
        return Character(**values)

    def check_slots(self, node: CommentedMap, path: str) -> tuple[str, ...]:
        if not self.present(node, "slots", path):
            return ()
        slots = node["slots"]
        path = _join(path, "slots")
        if not isinstance(slots, CommentedSeq):
            self.report(
                _value_line(node, "slots"), path,
                f'must be a list of "HH:MM" times (got {_describe(slots)})',
            )
            return ()
        if not slots:
            self.report(_value_line(node, "slots"), path, "must list at least one slot")
        elif len(slots) > MAX_SLOTS:
            self.report(
                _value_line(node, "slots"), path,
                f"must list at most {MAX_SLOTS} slots (got {len(slots)})",
            )
        first_line: dict[str, int] = {}
        for index, raw in enumerate(slots):
            line = _item_line(slots, index)
            try:
                slot = _slot(raw)
            except _Invalid as exc:
                self.report(line, f"{path}[{index}]", str(exc))
                continue
            if slot in first_line:
                self.report(
                    line, f"{path}[{index}]",
                    f"duplicate slot {slot} (first listed at line {first_line[slot]})",
                )
            else:
                first_line[slot] = line
        return tuple(sorted(first_line))  # "HH:MM" sorts as the times do

    def check_platforms(self, node: CommentedMap, path: str) -> Mapping[str, PlatformAccount]:
        accounts: dict[str, PlatformAccount] = {}
        if not self.present(node, "platforms", path):
            return accounts
        platforms = self.mapping(node, "platforms", path, "a mapping of platform to {account: ...}")
        if platforms is None:
            return accounts
        path = _join(path, "platforms")
        if not platforms:
            self.report(_value_line(node, "platforms"), path, "must list at least one platform")
        for name in platforms:
            sub = _join(path, name)
            if name not in PLATFORMS:
                self.report(
                    _key_line(platforms, name), sub,
                    f"unknown platform (allowed: {', '.join(PLATFORMS)})",
                )
                continue
            entry = self.mapping(platforms, name, path, "a mapping like {account: '@handle'}")
            if entry is None:
                continue
            self.check_keys(entry, sub, _ACCOUNT_FIELDS)
            account = self.field(entry, "account", sub, _text)
            enabled = self.field(entry, "enabled", sub, _boolean, True)
            if account is not None and enabled is not None:
                accounts[name] = PlatformAccount(name, account, enabled)
        return MappingProxyType(accounts)

    def check_watermark(self, node: CommentedMap, path: str) -> Watermark | None:
        if "watermark" not in node:
            return None
        mark = self.mapping(node, "watermark", path, "a mapping like {text: '@handle'}")
        if mark is None:
            return None
        path = _join(path, "watermark")
        self.check_keys(mark, path, _WATERMARK_FIELDS)
        text = self.field(mark, "text", path, _text)
        image = self.field(mark, "image", path, _optional_text, None)
        position = self.field(mark, "position", path, _one_of(WATERMARK_POSITIONS), "bottom-right")
        opacity = self.field(mark, "opacity", path, _number_between(0, 1), 0.8)
        if text is None or position is None or opacity is None:
            return None
        return Watermark(text=text, image=image, position=position, opacity=opacity)

    def check_a2e(self, node: CommentedMap, path: str) -> tuple[str | None, str | None]:
        """(avatar_id, voice_id): nested in the file, flat on Character like the table."""
        if "a2e" not in node:
            return None, None
        a2e = self.mapping(node, "a2e", path, "a mapping with avatar_id and voice_id")
        if a2e is None:
            return None, None
        path = _join(path, "a2e")
        self.check_keys(a2e, path, _A2E_FIELDS)
        return self.field(a2e, "avatar_id", path, _text), self.field(a2e, "voice_id", path, _text)
