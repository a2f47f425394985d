"""Engagement score and automatic tags of a subscriber, from inbound events and revenue.

The score (0..100) is a weighted sum of three parts, each in 0..1:
- recency: 0.5 ** (days since the last inbound message / RECENCY_HALF_LIFE_DAYS), 0 if never;
- frequency: 1 - 0.5 ** (inbound messages in 30 days / FREQUENCY_HALF_COUNT), saturating;
- money: log(1 + spent in 90 days / 100) / log(1 + MONEY_FULL_CENTS / 100), capped at 1.

Tags are rules over the same facts (new, engaged, silent, at_risk, whale, opted_out).
docs/engagement.md states every formula and threshold; a test keeps it in step with the
constants here. Pure domain code: the caller counts the events (SQL) or uses `facts_from`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

RECENCY_HALF_LIFE_DAYS = 7  # the recency part halves every week without a message
FREQUENCY_HALF_COUNT = 4  # 4 inbound messages in 30 days give half the frequency part
MONEY_FULL_CENTS = 20_000  # spending this much (in cents) in 90 days gives the full money part
RECENCY_WEIGHT = 0.4
FREQUENCY_WEIGHT = 0.3
MONEY_WEIGHT = 0.3
INBOUND_WINDOW_DAYS = 30  # inbound_30d counts messages in this many days
SPEND_WINDOW_DAYS = 90  # spent_cents_90d counts revenue in this many days

NEW_DAYS = 7  # "new": subscribed less than this many days ago
ENGAGED_RECENT_DAYS = 7  # "engaged": last inbound less than this many days ago ...
ENGAGED_MIN_INBOUND_30D = 3  # ... and at least this many inbound messages in 30 days
SILENT_DAYS = 14  # "silent": no inbound for at least this many days (or never, once not new)
WHALE_MIN_CENTS = 50_000  # "whale": at least this much spent in total (cents)

TAGS: tuple[str, ...] = ("new", "engaged", "silent", "at_risk", "whale", "opted_out")
_DAY = timedelta(days=1)


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime (got naive {value})")


@dataclass(frozen=True)
class EngagementFacts:
    now: datetime
    subscribed_at: datetime
    last_inbound_at: datetime | None  # the subscriber's last message to us; None = never
    inbound_30d: int  # messages from the subscriber in the last 30 days
    spent_cents_90d: int  # net revenue from the subscriber in the last 90 days
    spent_cents_total: int  # net revenue from the subscriber ever
    opted_out: bool

    def __post_init__(self) -> None:
        for name in ("now", "subscribed_at", "last_inbound_at"):
            _aware(name, getattr(self, name))
        for name in ("inbound_30d", "spent_cents_90d", "spent_cents_total"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative (got {getattr(self, name)})")

    def days_since_inbound(self) -> float | None:
        if self.last_inbound_at is None:
            return None
        return max(0.0, (self.now - self.last_inbound_at) / _DAY)  # a future time counts as now

    def days_subscribed(self) -> float:
        return max(0.0, (self.now - self.subscribed_at) / _DAY)


def recency(f: EngagementFacts) -> float:
    days = f.days_since_inbound()
    return 0.0 if days is None else 0.5 ** (days / RECENCY_HALF_LIFE_DAYS)


def frequency(f: EngagementFacts) -> float:
    return 1.0 - 0.5 ** (f.inbound_30d / FREQUENCY_HALF_COUNT)


def money(f: EngagementFacts) -> float:
    part = math.log1p(f.spent_cents_90d / 100) / math.log1p(MONEY_FULL_CENTS / 100)
    return min(1.0, part)


def score(f: EngagementFacts) -> float:
    """0..100, rounded to 2 decimals (the subscribers.score column)."""
    total = (RECENCY_WEIGHT * recency(f) + FREQUENCY_WEIGHT * frequency(f)
             + MONEY_WEIGHT * money(f))
    return round(min(100.0, max(0.0, 100.0 * total)), 2)


def tags(f: EngagementFacts) -> frozenset[str]:
    """The automatic tags; docs/engagement.md states each rule."""
    out: set[str] = set()
    since = f.days_since_inbound()
    subscribed = f.days_subscribed()
    if subscribed < NEW_DAYS:
        out.add("new")
    if (since is not None and since < ENGAGED_RECENT_DAYS
            and f.inbound_30d >= ENGAGED_MIN_INBOUND_30D):
        out.add("engaged")
    silent = since >= SILENT_DAYS if since is not None else subscribed >= NEW_DAYS
    if silent:
        out.add("silent")
        # Gone quiet after showing interest: wrote within 30 days or paid within 90.
        if f.inbound_30d > 0 or f.spent_cents_90d > 0:
            out.add("at_risk")
    if f.spent_cents_total >= WHALE_MIN_CENTS:
        out.add("whale")
    if f.opted_out:
        out.add("opted_out")
    return frozenset(out)


def facts_from(now: datetime, subscribed_at: datetime, inbound_at: Iterable[datetime],
               payments: Iterable[tuple[datetime, int]], opted_out: bool) -> EngagementFacts:
    """EngagementFacts from raw events: inbound message times and (time, cents) payments, a
    refund as negative cents. Events after `now` are ignored; net sums stop at 0."""
    _aware("now", now)
    inbound = [t for t in inbound_at if _checked(t) <= now]
    paid = [(t, cents) for t, cents in payments if _checked(t) <= now]
    since_30 = now - timedelta(days=INBOUND_WINDOW_DAYS)
    since_90 = now - timedelta(days=SPEND_WINDOW_DAYS)
    return EngagementFacts(
        now=now, subscribed_at=subscribed_at,
        last_inbound_at=max(inbound, default=None),
        inbound_30d=sum(1 for t in inbound if t > since_30),
        spent_cents_90d=max(0, sum(c for t, c in paid if t > since_90)),
        spent_cents_total=max(0, sum(c for _, c in paid)),
        opted_out=opted_out,
    )


def _checked(t: datetime) -> datetime:
    _aware("event time", t)
    return t
