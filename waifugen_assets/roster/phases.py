"""Phases (Workflow 05): the ladder a character climbs as its followers grow, read from
`phases.yaml` next to the roster file, and the phase a character is in on a given local day.

Every phase is general-audience. A phase unlocks volume and features, never content: the
file has no rating field, and one written there is refused (content_rating stays `general` on
TikTok, Instagram and YouTube, whatever the phase).

What a phase unlocks:
- `daily_slots`: reels planned a day. The roster's own `slots` are the character's day in
  the first phase and are never dropped; a later phase adds its daily_slots over the first
  phase's as times between them (planning: `reel_plans`, `day_slot_times`).
- `weekly_premium`: the character may be one of the week's Elite 8 (the `weekly_premium`
  schedule chooses only among eligible characters).
- `subscriber_channels`: the character may run subscriber channels (Fanvue, Telegram DMs);
  announced with the crossing. A character whose roster already lists subscriber accounts
  keeps them (the same rule as explicit slots: what the roster names explicitly keeps working).

No file means the default ladder below. A file with mistakes is refused as a whole, every
problem one line (`phases.yaml:12: phases[1].followers: ...`), by the project's YAML kit.

Which phase a character is in on a day: the newest `character_phases` row whose
`effective_on` is that day or earlier (the milestones stage writes them, each crossing once);
none yet: the first phase. Pure domain code and one read query; no Dagster.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import PlainValidator
from ruamel.yaml.comments import CommentedMap

from waifugen_assets.core import schema
from waifugen_assets.core.yaml_check import (
    Bool,
    Slug,
    YamlChecker,
    YamlError,
    YamlIssue,
    YamlModel,
    at_least_one,
    format_version,
    integer,
    item_line,
    listing,
    mapping,
    one_of,
    quote,
    valid,
    value_line,
)
from waifugen_assets.roster.model import MAX_SLOTS, PUBLISH_PLATFORMS

PHASES_FILE = "phases.yaml"
SCHEMA_VERSION = 1
MAX_PHASES = 12
DEFAULT_DEMOTE_AFTER_DAYS = 14
MAX_DEMOTE_AFTER_DAYS = 365


class PhaseIssue(YamlIssue):
    """One problem in a phases file, printed as `file:line: field: message`."""


class PhaseError(YamlError):
    """The phases file is unusable; `.issues` lists every problem found, in file order."""

    issues: list[PhaseIssue]


@dataclass(frozen=True)
class Phase:
    name: str
    followers: int  # reached at this many followers, summed over the ladder's platforms
    daily_slots: int
    weekly_premium: bool = False
    subscriber_channels: bool = False

    def unlocks(self) -> str:
        """What the phase gives, for announcements and metadata."""
        parts = [f"{self.daily_slots} daily slots"]
        if self.weekly_premium:
            parts.append("weekly premium eligibility")
        if self.subscriber_channels:
            parts.append("subscriber channels")
        return ", ".join(parts)


@dataclass(frozen=True)
class PhaseLadder:
    phases: tuple[Phase, ...]  # by followers, the first at 0
    followers_from: tuple[str, ...] = PUBLISH_PLATFORMS  # platforms whose followers are summed
    # Demoted one phase after this many consecutive days below the phase's threshold, each
    # with a read; 0 = never. Never 1: one low read must not demote.
    demote_after_days: int = DEFAULT_DEMOTE_AFTER_DAYS
    path: Path | None = None  # None: the defaults (no file)

    @property
    def first(self) -> Phase:
        return self.phases[0]

    def index(self, name: str) -> int | None:
        return next((i for i, p in enumerate(self.phases) if p.name == name), None)

    def named(self, name: str | None, followers: int | None = None) -> Phase:
        """The phase called `name`; a name no longer in the file (renamed, removed) is the
        highest phase that `followers` (the count recorded with it) reaches, else the first."""
        if name is not None and (i := self.index(name)) is not None:
            return self.phases[i]
        if followers is None:
            return self.first
        return self.reached(followers)

    def reached(self, followers: int) -> Phase:
        """The highest phase whose threshold `followers` reaches."""
        return [p for p in self.phases if p.followers <= followers][-1]


DEFAULT_LADDER = PhaseLadder((
    Phase("launch", 0, 4),
    Phase("growth", 10_000, 6, weekly_premium=True),
    Phase("established", 50_000, 8, weekly_premium=True, subscriber_channels=True),
))


# --- loading ------------------------------------------------------------------------------


def phases_path(roster_file: str | os.PathLike[str]) -> Path:
    """Where the phases file of a roster is: beside it."""
    return Path(roster_file).parent / PHASES_FILE


def phases_for_roster(roster_file: str | os.PathLike[str]) -> PhaseLadder:
    """The ladder beside `roster_file`: the file's when there is one (PhaseError if it is
    wrong), else the defaults."""
    path = phases_path(roster_file)
    if not path.exists():
        return DEFAULT_LADDER
    return load_phases(path)


def load_phases(path: str | os.PathLike[str]) -> PhaseLadder:
    """Read and validate a phases file; raises PhaseError listing every problem in it."""
    checker = YamlChecker(os.fspath(path), PhaseIssue)
    read = checker.read(path)
    if read is None:
        raise PhaseError(checker.issues)
    return _build(checker, read[0], Path(path))


def validate_phases_text(text: str, filename: str = PHASES_FILE) -> PhaseLadder:
    """Validate phases YAML held in memory; `filename` is only used in the messages."""
    return _build(YamlChecker(filename, PhaseIssue), text, None)


def _build(checker: YamlChecker, text: str, path: Path | None) -> PhaseLadder:
    doc = checker.parse(text, expected="a mapping with 'version' and 'phases'",
                        empty="expected 'version: 1' and a 'phases' list")
    if doc is not None:
        parsed = checker.validate(_PhasesFile, doc)
        _check_ladder(checker, doc)
        if parsed is not None and not checker.issues:
            return PhaseLadder(
                tuple(Phase(p.name, p.followers, p.daily_slots, p.weekly_premium,
                            p.subscriber_channels) for p in parsed.phases),
                tuple(parsed.followers_from), parsed.demote_after_days, path)
    raise PhaseError(checker.issues)


# --- the file's shape ---------------------------------------------------------------------


def _no_rating(value: Any) -> None:
    raise ValueError("phases unlock volume and features, never content: every phase is "
                     "general-audience; remove this field")


def _demote_after(value: Any) -> int:
    days = integer(0, MAX_DEMOTE_AFTER_DAYS)(value)
    if days == 1:
        raise ValueError("must be 0 (never demote) or at least 2: one low read must not "
                         "demote a character")
    return days


class _Phase(YamlModel):
    name: Slug
    followers: Annotated[int, PlainValidator(integer(0))]
    daily_slots: Annotated[int, PlainValidator(integer(1, MAX_SLOTS))]
    weekly_premium: Bool = False
    subscriber_channels: Bool = False
    content_rating: Annotated[None, PlainValidator(_no_rating)] = None


class _PhasesFile(YamlModel):
    version: Annotated[int, PlainValidator(format_version(SCHEMA_VERSION))]
    followers_from: Annotated[
        list[Annotated[str, PlainValidator(one_of(PUBLISH_PLATFORMS))]],
        listing("a list of platforms"), at_least_one("platform"),
    ] = list(PUBLISH_PLATFORMS)
    demote_after_days: Annotated[int, PlainValidator(_demote_after)] = DEFAULT_DEMOTE_AFTER_DAYS
    phases: Annotated[
        list[Annotated[_Phase, mapping("a mapping of phase fields")]],
        listing("a list of phases"), at_least_one("phase"),
    ]


# Unlocks that a later phase may not take back (a climb never loses a feature).
_FEATURES = ("weekly_premium", "subscriber_channels")


def _check_ladder(checker: YamlChecker, doc: CommentedMap) -> None:
    """Rules across phases and platforms, on the loaded tree: a ladder starts at 0 followers,
    climbs strictly, never lowers the slots or takes a feature back; names and platforms once."""
    platforms = doc.get("followers_from")
    if isinstance(platforms, list):
        seen: set[str] = set()
        for index, raw in enumerate(platforms):
            if isinstance(raw, str) and raw in seen:
                checker.report(item_line(platforms, index), f"followers_from[{index}]",
                               f"{raw} is listed twice")
            seen.add(raw)
    items = doc.get("phases")
    if not isinstance(items, list):
        return
    if len(items) > MAX_PHASES:
        checker.report(value_line(doc, "phases"), "phases",
                       f"must list at most {MAX_PHASES} phases (got {len(items)})")
    names: dict[str, int | None] = {}
    previous: Mapping[str, Any] | None = None
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            previous = None
            continue
        path = f"phases[{index}]"
        name = item.get("name")
        if isinstance(name, str) and name in names:
            checker.report(value_line(item, "name"), f"{path}.name",
                           f"duplicate phase {quote(name)} (first at line {names[name]})")
        elif isinstance(name, str):
            names[name] = value_line(item, "name")
        followers = valid(integer(0), item.get("followers"))
        if index == 0 and followers not in (None, 0):
            checker.report(value_line(item, "followers"), f"{path}.followers",
                           f"the first phase is where every character starts: must be 0 "
                           f"(got {followers})")
        if previous is not None:
            _check_step(checker, previous, item, path)
        previous = item


def _check_step(checker: YamlChecker, before: Mapping[str, Any], item: Mapping[str, Any],
                path: str) -> None:
    low = valid(integer(0), before.get("followers"))
    high = valid(integer(0), item.get("followers"))
    if low is not None and high is not None and high <= low:
        checker.report(value_line(item, "followers"), f"{path}.followers",
                       f"must be more than the phase before ({low}); phases climb")
    slots_before = valid(integer(1, MAX_SLOTS), before.get("daily_slots"))
    slots = valid(integer(1, MAX_SLOTS), item.get("daily_slots"))
    if slots_before is not None and slots is not None and slots < slots_before:
        checker.report(value_line(item, "daily_slots"), f"{path}.daily_slots",
                       f"must be at least the phase before's {slots_before}: a phase "
                       "unlocks volume, it never takes it back")
    for feature in _FEATURES:
        if before.get(feature) is True and item.get(feature) is False:
            checker.report(value_line(item, feature), f"{path}.{feature}",
                           "a later phase cannot take back what an earlier one unlocked")


# --- the phase on a day -------------------------------------------------------------------


def phases_on(conn: sa.Connection, days: Mapping[str, dt.date],
              ladder: PhaseLadder) -> dict[str, Phase]:
    """Each character's phase on its local day (`days`: character id -> date): the newest
    recorded change in effect by then, else the ladder's first phase. One query: a character
    has a handful of changes, ever."""
    cp = schema.character_phases
    current: dict[str, Phase] = {cid: ladder.first for cid in days}
    if not days:
        return current
    rows = conn.execute(
        sa.select(cp.c.character_id, cp.c.phase, cp.c.followers, cp.c.effective_on)
        .where(cp.c.character_id.in_(list(days)))
        .order_by(cp.c.character_id, cp.c.effective_on, cp.c.id))
    for cid, phase, followers, effective_on in rows:
        if effective_on <= days[cid]:  # later rows of a character win
            current[cid] = ladder.named(phase, followers)
    return current


def phase_on(conn: sa.Connection, character_id: str, day: dt.date,
             ladder: PhaseLadder) -> Phase:
    return phases_on(conn, {character_id: day}, ladder)[character_id]


def eligible_for_premium(conn: sa.Connection, days: Mapping[str, dt.date],
                         ladder: PhaseLadder) -> list[str]:
    """The characters whose phase on their day unlocks the weekly premium reel."""
    return [cid for cid, phase in phases_on(conn, days, ladder).items() if phase.weekly_premium]


def ladder_summary(ladder: PhaseLadder, roster_file: str | os.PathLike[str]) -> str:
    """One line for `waifugen roster check`: where the ladder comes from and its steps."""
    steps = ", ".join(f"{p.name} at {p.followers:,}" for p in ladder.phases)
    if ladder.path is None:
        return f"{phases_path(roster_file)}: not there, the defaults: {steps}"
    return f"{ladder.path}: ok, {len(ladder.phases)} phases: {steps}"
