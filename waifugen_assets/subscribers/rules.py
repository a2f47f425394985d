"""Whether a due sequence step is sent now, later or never (DESIGN section 8).

`decide` applies the rules in a fixed order, and the first that stops a message wins:

1. opted out                   -> skip "opted_out"   (nothing is ever sent after an opt-out)
2. older than the step allows  -> skip "expired"     (a day-0 welcome a week late is noise)
3. not due yet                 -> wait "not_due" until the due time
4. the step's condition fails  -> skip with the condition's reason
5. the platform's messaging window is closed (Instagram: 24 h after the subscriber's last
   message)                    -> wait "messaging_window", no time: re-decided when they write
6. quiet hours in the subscriber's zone -> wait "quiet_hours" until they end (DST-correct)
7. frequency cap reached       -> wait "frequency_cap" until 24 h after the last message
8. otherwise                   -> send

Skips are final; a wait is re-decided at `not_before` (or on the next inbound message).
Pure domain code: no database, no HTTP, no Dagster. docs/sequences.md explains each rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from waifugen_assets.subscribers.sequences import Step, SubscriberFacts

# Meta's standard messaging window: an automated message may only answer within 24 h of the
# user's own last message. Platforms not listed have no window (Telegram: once the user has
# started the bot; Fanvue: subscribers).
DEFAULT_WINDOWS: Mapping[str, timedelta] = MappingProxyType({"instagram": timedelta(hours=24)})
_DAY = timedelta(hours=24)
_UTC = ZoneInfo("UTC")


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime (got naive {value})")


@dataclass(frozen=True)
class Rules:
    quiet_start: time = time(22, 0)  # local wall-clock time; quiet hours may wrap midnight
    quiet_end: time = time(9, 0)  # equal start and end: no quiet hours
    cap_per_24h: int = 2  # sequence messages per subscriber in any 24 h
    windows: Mapping[str, timedelta] = field(default_factory=lambda: DEFAULT_WINDOWS)

    def __post_init__(self) -> None:
        if self.cap_per_24h < 1:
            raise ValueError(f"cap_per_24h must be at least 1 (got {self.cap_per_24h})")
        for t in (self.quiet_start, self.quiet_end):
            if t.tzinfo is not None:
                raise ValueError("quiet hours are local wall-clock times: no tzinfo")
        for platform, window in self.windows.items():
            if window <= timedelta(0):
                raise ValueError(f"messaging window of {platform} must be positive")

    def is_quiet(self, local: time) -> bool:
        """Whether a local wall-clock time falls in quiet hours [start, end)."""
        start, end, t = self.quiet_start, self.quiet_end, local.replace(tzinfo=None)
        if start == end:
            return False
        if start < end:
            return start <= t < end
        return t >= start or t < end  # wraps midnight


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "wait", "skip"]
    reason: str
    not_before: datetime | None  # for "wait": when to decide again; None = on a new event


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    # "localtime" is the server's own zone, never a subscriber's.
    if not name or name == "localtime":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def local_zone(facts: SubscriberFacts) -> ZoneInfo:
    """The subscriber's zone, else the character's, else UTC (an invalid name is skipped)."""
    for name in (facts.timezone, facts.character_timezone):
        zone = _zone(name) if isinstance(name, str) else None
        if zone is not None:
            return zone
    return _UTC


def quiet_until(now: datetime, zone: ZoneInfo, rules: Rules) -> datetime | None:
    """If `now` is in quiet hours in `zone`, the UTC instant they end; else None.

    The end is `quiet_end` on the right local date. In a DST gap it moves forward by the gap
    (PEP 495 fold=0); in a fold the first occurrence is used unless it is already past, then
    the second.
    """
    local = now.astimezone(zone)
    if not rules.is_quiet(local.time()):
        return None
    end = rules.quiet_end
    day: date = local.date()
    if rules.quiet_start > end and local.time().replace(tzinfo=None) >= rules.quiet_start:
        day += timedelta(days=1)  # the evening part of a window that wraps midnight
    wall = datetime.combine(day, end, tzinfo=zone)
    for candidate in (wall, wall.replace(fold=1)):
        utc = candidate.astimezone(UTC)
        if utc > now:
            return utc
    return now.astimezone(UTC) + timedelta(minutes=1)  # pragma: no cover - defensive


def decide(facts: SubscriberFacts, step: Step, due: datetime, now: datetime,
           rules: Rules) -> Decision:
    """What to do with `step` (due at `due`) for this subscriber at `now`; see the module doc."""
    _aware("due", due)
    _aware("now", now)
    now = now.astimezone(UTC)
    if facts.opted_out_at is not None:
        return Decision("skip", "opted_out", None)
    if now > due + timedelta(hours=step.expire_after_hours):
        return Decision("skip", "expired", None)
    if now < due:
        return Decision("wait", "not_due", due.astimezone(UTC))
    reason = step.condition.matches(facts)
    if reason is not None:
        return Decision("skip", reason, None)
    window = rules.windows.get(facts.platform)
    if window is not None and (facts.last_inbound_at is None
                               or now - facts.last_inbound_at >= window):
        return Decision("wait", "messaging_window", None)
    until = quiet_until(now, local_zone(facts), rules)
    if until is not None:
        return Decision("wait", "quiet_hours", until)
    if facts.sent_last_24h >= rules.cap_per_24h:
        last = facts.last_outbound_at
        resume = last.astimezone(UTC) + _DAY if last is not None else None
        # A count that disagrees with last_outbound_at: wait a full day rather than spin.
        if resume is None or resume <= now:
            resume = now + _DAY
        return Decision("wait", "frequency_cap", resume)
    return Decision("send", "ok", None)
