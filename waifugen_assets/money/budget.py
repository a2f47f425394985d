"""Credit budgets, pure domain logic: projections, thresholds and exhaustion dates.

A character's monthly limit is its `budget_share` percent of the provider's monthly credits
(characters without a share split what the named shares leave). Spend is what the ledger
recorded this month; commitment is spend plus the projected cost of reels planned but not yet
generated. The budget check compares the commitment with the limit *before* anything is paid:
WARN from 80 %, ERROR (blocking: nothing downstream runs) from 100 %. Alerts go out once per
threshold (50/80/100) and period.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

ALERT_THRESHOLDS = (50, 80, 100)
WARN_AT = 80
BLOCK_AT = 100

# A2E bills talking-avatar video by length. These are planning estimates; the ledger keeps
# what each task really cost, and the projection only has to be conservative.
WORDS_PER_SECOND = 2.5
MIN_SECONDS, MAX_SECONDS = 3, 180


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    BLOCK = "block"


@dataclass(frozen=True)
class CostModel:
    # A2E at 1080p: 3 coins per started second of speech; TTS is free.
    credits_per_second: float = 3.0
    credits_per_tts: int = 0

    def estimate_seconds(self, script: str) -> int:
        words = len(re.findall(r"\w+", script))
        return max(MIN_SECONDS, min(MAX_SECONDS, math.ceil(words / WORDS_PER_SECOND)))

    def project(self, script: str) -> int:
        """Credits a reel with this script is expected to cost (TTS + avatar video)."""
        return math.ceil(self.estimate_seconds(script) * self.credits_per_second) + \
            self.credits_per_tts


@dataclass(frozen=True)
class BudgetView:
    limit: int
    spent: int
    projected: int  # planned, not yet generated

    @property
    def committed(self) -> int:
        return self.spent + self.projected

    @property
    def percent(self) -> float:
        if self.limit <= 0:
            return math.inf if self.committed > 0 else 0.0
        return 100.0 * self.committed / self.limit

    @property
    def level(self) -> Level:
        if self.percent >= BLOCK_AT and self.committed > 0:
            return Level.BLOCK
        if self.percent >= WARN_AT:
            return Level.WARN
        return Level.OK


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (month_start(day) + dt.timedelta(days=32)).replace(day=1)


def character_limits(total: int, shares: Mapping[str, float | None]) -> dict[str, int]:
    """Each character's credits: its share, or an even part of what named shares leave.

    The roster refuses shares over 100 % in total; should the table say otherwise (edited by
    hand), the named shares are scaled down so the limits never add up to more than the total.
    """
    named = sum(s for s in shares.values() if s is not None)
    unnamed = [cid for cid, s in shares.items() if s is None]
    scale = 100.0 / named if named > 100 else 1.0
    rest = max(0.0, 100.0 - named) / len(unnamed) if unnamed else 0.0
    return {cid: math.floor(total * (rest if s is None else float(s) * scale) / 100)
            for cid, s in shares.items()}


def thresholds_reached(percent: float, thresholds: Sequence[int] = ALERT_THRESHOLDS) -> list[int]:
    return [t for t in thresholds if percent >= t]


def exhaustion_date(limit: int, daily_spend: Mapping[dt.date, int], today: dt.date,
                    projected: int = 0) -> dt.date | None:
    """When the limit runs out at this month's average daily burn, or None if not this month.

    The burn rate is spend per elapsed day of the month (today included); committed-but-unpaid
    credits count as already spent.
    """
    start = month_start(today)
    spent = sum(v for d, v in daily_spend.items() if start <= d <= today) + projected
    if spent >= limit:
        return today
    elapsed = (today - start).days + 1
    rate = spent / elapsed
    if rate <= 0:
        return None
    day = today + dt.timedelta(days=math.ceil((limit - spent) / rate))
    return day if day < next_month(today) else None
