"""Subscriber DM sequences: what to send on which day after subscribing, read from
`sequences.yaml` and checked in full.

A sequence belongs to a subscriber tier and either to one character or to every character
(the default); `sequence_for` picks a character's own sequence over the default. Each step has
a day, a condition on the subscriber (tier, tags, score, has replied, spent) and one or more
A/B variants; `choose_variant` picks one from a stable hash, so a rerun picks the same one and
the variant's name can be recorded with the message. Whether a due step is sent now, later or
never is `dm_rules.decide`; what text goes out is `dm_safety.personalize`.

`load_sequences` reports every problem at once as `file:line: field: message`, like the roster
loader; the file format and its checks are in `sequence_file` (on the project's YAML kit,
waifugen_assets.core.yaml_check). Templates are run through the safety gate at load time, so
an unsafe template never reaches a subscriber.

Pure domain code: no database, no HTTP, no Dagster. docs/sequences.md describes the format.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from waifugen_assets.core.yaml_check import YamlChecker, YamlError, YamlIssue
from waifugen_assets.subscribers.sequence_file import (
    DEFAULT_EXPIRE_AFTER_HOURS,
    ConditionSpec,
    SequenceSpec,
    check_sequences,
)

# Re-exported: the constants of the file format are used with the model.
from waifugen_assets.subscribers.sequence_file import MAX_DAY as MAX_DAY
from waifugen_assets.subscribers.sequence_file import MAX_TEXT as MAX_TEXT
from waifugen_assets.subscribers.sequence_file import PLACEHOLDERS as PLACEHOLDERS
from waifugen_assets.subscribers.sequence_file import SCHEMA_VERSION as SCHEMA_VERSION
from waifugen_assets.subscribers.sequence_file import SUBSCRIBER_TIERS as SUBSCRIBER_TIERS


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
        for field in fields(self):
            value = getattr(self, field.name)
            if value not in ((), None):
                out[field.name] = list(value) if isinstance(value, tuple) else value
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


class SequenceIssue(YamlIssue):
    """One problem in a sequences file, printed as `file:line: field: message`."""


class SequenceError(YamlError):
    """The sequences file is unusable; `.issues` lists every problem, in file order."""

    issues: list[SequenceIssue]


def load_sequences(path: str | os.PathLike[str], *,
                   known_characters: Collection[str] | None = None,
                   allowed_hosts: Seq[str] = ()) -> list[Sequence]:
    """Read and validate a sequences file; raises SequenceError listing every problem.

    `known_characters`: if given, a sequence for another character id is an error.
    `allowed_hosts`: hosts templates may link to (the safety gate refuses any other link).
    """
    checker = YamlChecker(os.fspath(path), SequenceIssue)
    read = checker.read(path)
    if read is None:
        raise SequenceError(checker.issues)
    return _parse(checker, read[0], known_characters, allowed_hosts)


def parse_sequences(text: str, source: str = "sequences.yaml", *,
                    known_characters: Collection[str] | None = None,
                    allowed_hosts: Seq[str] = ()) -> list[Sequence]:
    """Validate sequences YAML held in memory; `source` is only used in the messages."""
    return _parse(YamlChecker(source, SequenceIssue), text, known_characters, allowed_hosts)


def _parse(checker: YamlChecker, text: str, known_characters: Collection[str] | None,
           allowed_hosts: Seq[str]) -> list[Sequence]:
    parsed = check_sequences(checker, text, known_characters=known_characters,
                             allowed_hosts=allowed_hosts)
    if parsed is None:
        raise SequenceError(checker.issues)
    return [_sequence(spec) for spec in parsed.sequences]


def _sequence(spec: SequenceSpec) -> Sequence:
    steps = []
    for index, step in enumerate(spec.steps):
        c = step.condition or ConditionSpec()
        condition = Condition(
            # A tier or tag listed twice counts once.
            tuple(dict.fromkeys(c.tiers)), tuple(dict.fromkeys(c.tags_any)),
            tuple(dict.fromkeys(c.tags_none)),
            None if c.min_score is None else float(c.min_score), c.has_replied,
            c.min_spent_cents,
        )
        variants = tuple(Variant(v.name, v.weight, v.text, v.prompt) for v in step.variants)
        steps.append(Step(index, step.day, step.name, condition, variants,
                          step.expire_after_hours))
    return Sequence(spec.character, spec.tier, spec.name, spec.version, tuple(steps))
