"""The roster: who the characters are, read from `characters.yaml` and checked in full.

`load_roster` reports every problem in the file at once, each as one line that an operator can
jump to (`characters.yaml:14: characters[2].age: must be at least 18 (got 17)`), because a
roster with three typos should not take three deploys to fix. The file's shape is the
pydantic models below, checked with the project's YAML kit (waifugen_assets.core.yaml_check),
which takes the line numbers from ruamel.yaml's round-trip loader; the rules across characters
(duplicate ids and slots, the budget) are post-checks on the loaded tree. Texts that reach a
terminal or a caption (name, persona, handles, watermark) refuse control and bidi formatting
characters, and a watermark image must be a file inside the roster file's folder.

Pure domain code: no database, no Dagster. The `characters` asset validates the file with it
and upserts the result.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import PlainValidator, ValidationInfo
from ruamel.yaml.comments import CommentedMap

from waifugen_assets.core.yaml_check import (
    Bool,
    DisplayParagraph,
    DisplayText,
    Slug,
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
    number,
    one_of,
    quote,
    show,
    slug,
    text,
    valid,
    value_line,
)

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
MAX_AGE = 120  # no person is older; also keeps the value well inside the INTEGER column
MAX_SLOTS = 24

_SLOT = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
# A URL or protocol prefix (`http:`, `file:`, ffmpeg's `concat:`): the image must be a path.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


# --- issues -------------------------------------------------------------------------------


class RosterIssue(YamlIssue):
    """One problem in a roster file, printed as `file:line: field: message`."""


class RosterError(YamlError):
    """The roster file is unusable; `.issues` lists every problem found, in file order."""

    issues: list[RosterIssue]


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


def parse_slot(value: Any) -> str:
    """A slot as "HH:MM" (24-hour, zero-padded); raises ValueError saying what is wrong."""
    if not isinstance(value, str) or not _SLOT.fullmatch(value):
        raise ValueError(f'must be a time "HH:MM" from 00:00 to 23:59 (got {describe(value)})')
    return str(value)


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
    """Read and validate a roster file; raises RosterError listing every problem in it.
    Watermark images are resolved in the file's folder, symlinks followed."""
    checker = YamlChecker(os.fspath(path), RosterIssue)
    read = checker.read(path)
    if read is None:
        raise RosterError(checker.issues)
    content, data = read
    return _build(checker, content, Path(path), hashlib.sha256(data).hexdigest(),
                  Path(path).parent)


def validate_roster_text(text: str, filename: str = "characters.yaml", *,
                         folder: str | os.PathLike[str] | None = None) -> Roster:
    """Validate roster YAML held in memory; `filename` is only used in the messages. Watermark
    images are resolved in `folder` (symlinks followed); without one they are checked as text
    only (relative, no `..` out, no scheme)."""
    checker = YamlChecker(filename, RosterIssue)
    return _build(checker, text, None, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                  None if folder is None else Path(folder))


def _build(checker: YamlChecker, content: str, path: Path | None, digest: str,
           folder: Path | None) -> Roster:
    doc = checker.parse(content, expected="a mapping with 'version' and 'characters'",
                        empty="expected 'version: 1' and a 'characters' list")
    if doc is not None:
        parsed = checker.validate(_RosterFile, doc, context={"folder": folder})
        _check_across(checker, doc)
        if parsed is not None and not checker.issues:
            return Roster(tuple(_character(c) for c in parsed.characters), path, digest)
    raise RosterError(checker.issues)


# --- validation ---------------------------------------------------------------------------
# The file's shape as pydantic models (yaml_check turns their errors into `file:line: field:
# message`), then the rules across characters, checked on the loaded tree.


def _timezone(value: Any) -> str:
    key = text(value)
    try:
        # "localtime" is the machine's own zone: a roster must not change with the server.
        if key == "localtime":
            raise ZoneInfoNotFoundError(key)
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {quote(key)} (expected an IANA name such as 'Europe/Madrid')"
        ) from None
    return key


def _platform(value: Any) -> str:
    if value not in PLATFORMS:
        raise ValueError(f"unknown platform (allowed: {', '.join(PLATFORMS)})")
    return str(value)


_share = number(0, 100)
_adult = integer(MIN_AGE)


def _age(value: Any) -> int:
    age = _adult(value)
    if age > MAX_AGE:
        raise ValueError(f"must be at most {MAX_AGE} (got {show(age)})")
    return age


def _image(value: Any, info: ValidationInfo) -> str | None:
    """A logo path relative to the roster file's folder and inside it, symlinks followed when
    the folder is known, so branding never reads a file that was not put there for it."""
    if value is None:
        return None  # no logo
    image = display_text(value)
    if _SCHEME.match(image):
        raise ValueError(f"must be a file path, not a URL or protocol (got {quote(image)})")
    if os.path.isabs(image):
        raise ValueError("must be a path relative to the roster file's folder, not an absolute "
                         f"path (got {quote(image)})")
    outside = f"must stay inside the roster file's folder (got {quote(image)}"
    if os.path.normpath(image).split(os.sep)[0] == "..":
        raise ValueError(outside + ")")
    folder = (info.context or {}).get("folder")
    if folder is not None:
        try:
            root = folder.resolve()
            target = (root / image).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise ValueError(f"cannot be resolved: {exc}") from None
        if not target.is_relative_to(root):  # a symlink out of the folder
            raise ValueError(f"{outside}, which leads to {str(target)!r})")
    return image


class _Account(YamlModel):
    account: DisplayText
    enabled: Bool = True


class _Watermark(YamlModel):
    text: DisplayText
    image: Annotated[str | None, PlainValidator(_image)] = None  # null is fine: no logo
    position: Annotated[str, PlainValidator(one_of(WATERMARK_POSITIONS))] = "bottom-right"
    opacity: Annotated[float, PlainValidator(number(0, 1))] = 0.8


class _A2E(YamlModel):
    avatar_id: DisplayText
    voice_id: DisplayText


class _Character(YamlModel):
    # Declaration order is checking order and the order "expected one of" lists.
    id: Slug
    name: DisplayText
    persona: DisplayParagraph  # a paragraph: line feeds are fine
    age: Annotated[int, PlainValidator(_age)]
    timezone: Annotated[str, PlainValidator(_timezone)]
    enabled: Bool = True
    # Optional, but an explicit null is refused like any other non-number.
    budget_share: Annotated[float | None, PlainValidator(_share)] = None
    content_rating: Annotated[str, PlainValidator(one_of(CONTENT_RATINGS))] = "general"
    slots: Annotated[
        list[Annotated[str, PlainValidator(parse_slot)]],
        listing('a list of "HH:MM" times'), at_least_one("slot"),
    ]
    platforms: Annotated[
        dict[
            Annotated[str, PlainValidator(_platform)],
            Annotated[_Account, mapping("a mapping like {account: '@handle'}")],
        ],
        mapping("a mapping of platform to {account: ...}"), at_least_one("platform"),
    ]
    watermark: Annotated[_Watermark | None, mapping("a mapping like {text: '@handle'}")] = None
    a2e: Annotated[_A2E | None, mapping("a mapping with avatar_id and voice_id")] = None


class _RosterFile(YamlModel):
    version: Annotated[int, PlainValidator(format_version(SCHEMA_VERSION))]
    characters: Annotated[
        list[Annotated[_Character, mapping("a mapping of character fields")]],
        listing("a list of characters"),
    ]


def _character(c: _Character) -> Character:
    return Character(
        id=c.id, name=c.name, persona=c.persona, age=c.age, timezone=c.timezone,
        slots=tuple(sorted(c.slots)),  # "HH:MM" sorts as the times do
        platforms=MappingProxyType({name: PlatformAccount(name, a.account, a.enabled)
                                    for name, a in c.platforms.items()}),
        enabled=c.enabled, budget_share=c.budget_share, content_rating=c.content_rating,
        watermark=None if c.watermark is None else Watermark(**c.watermark.model_dump()),
        a2e_avatar_id=c.a2e.avatar_id if c.a2e else None,  # nested in the file, flat here
        a2e_voice_id=c.a2e.voice_id if c.a2e else None,  # (as in the characters table)
    )


def _check_across(checker: YamlChecker, doc: CommentedMap) -> None:
    """Rules about more than one value: duplicate ids, slots and accounts, too many slots, and
    the budget. Checked on the loaded tree, so they are reported next to the field errors."""
    items = doc.get("characters")
    if not isinstance(items, list):
        return
    first_id_line: dict[str, int | None] = {}
    first_account_line: dict[tuple[str, str], int | None] = {}
    enabled_shares: list[float] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        path = f"characters[{index}]"
        _check_slots(checker, item, f"{path}.slots")
        _check_accounts(checker, item, path, first_account_line)
        share = valid(_share, item.get("budget_share"))
        if share is not None and item.get("enabled", True) is True:
            enabled_shares.append(share)
        ident = valid(slug, item.get("id"))
        if ident is not None:
            line = value_line(item, "id")
            if ident in first_id_line:
                checker.report(line, f"{path}.id", f"duplicate id {quote(ident)} "
                               f"(first used at line {first_id_line[ident]})")
            else:
                first_id_line[ident] = line
    # Counted from every valid share, so a typo elsewhere cannot hide an over-budget roster.
    total = math.fsum(enabled_shares)
    if total > 100 + 1e-9:
        checker.report(
            key_line(doc, "characters"), "characters[*].budget_share",
            f"budget shares of enabled characters sum to {total:.10g} (must be at most 100)",
        )


def _check_accounts(checker: YamlChecker, item: Mapping[str, Any], path: str,
                    first_line: dict[tuple[str, str], int | None]) -> None:
    """An account belongs to one character (the database holds each platform's handle once)."""
    platforms = item.get("platforms")
    if not isinstance(platforms, Mapping):
        return
    for platform, entry in platforms.items():
        account = valid(display_text, entry.get("account")) if isinstance(entry, Mapping) else None
        if platform not in PLATFORMS or account is None:
            continue
        line = value_line(entry, "account")
        if (platform, account) in first_line:
            checker.report(line, f"{path}.platforms.{platform}.account",
                           f"{platform} account {quote(account)} is another character's "
                           f"(first used at line {first_line[platform, account]})")
        else:
            first_line[platform, account] = line


def _check_slots(checker: YamlChecker, item: Mapping[str, Any], path: str) -> None:
    slots = item.get("slots")
    if not isinstance(slots, list):
        return
    if len(slots) > MAX_SLOTS:  # here, not on the model, so bad items are reported as well
        checker.report(value_line(item, "slots"), path,
                       f"must list at most {MAX_SLOTS} slots (got {len(slots)})")
    first_line: dict[str, int | None] = {}
    for index, raw in enumerate(slots):
        slot = valid(parse_slot, raw)
        if slot is None:
            continue
        line = item_line(slots, index)
        if slot in first_line:
            checker.report(line, f"{path}[{index}]",
                           f"duplicate slot {slot} (first listed at line {first_line[slot]})")
        else:
            first_line[slot] = line
