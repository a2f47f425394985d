"""Credit reconciliation and forecasts: pure arithmetic, no database (docs/credit-ledger.md).

Between two A2E balance readings the balance should move by what the ledger explains:

    expected = - task costs recorded in the window
               - (in-flight credits now - in-flight credits then)
               + top-ups recorded in the window
               + adjustments that put credits back - adjustments that took credits
    unexplained = (balance now - balance then) - expected

A2E takes a video's coins when the task is created and refunds a task that fails, so a task
still rendering at a reading has already left the balance without a cost row: the reading
carries those credits (`in_flight`, the reels' projected credits) and the change in them is
part of what is explained. Positive unexplained credits are a rise nothing explains (a top-up);
negative ones left the balance unexplained.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

FORECAST_DAYS = 7  # the forecast's burn rate: average daily spend over this many days
# An adjustment whose note starts with one of these put credits back on the balance (a
# refund by A2E, a grant; the 0013 downgrade writes top-ups as "top-up: ..."); any other
# adjustment explains credits that left it (e.g. used by hand in A2E's web app).
CREDITS_IN_PREFIXES = ("+", "top-up", "top_up")


@dataclass(frozen=True)
class Reading:
    """One balance reading: the balance and the credits already taken for uncosted tasks."""

    balance: int
    in_flight: int
    at: dt.datetime


@dataclass(frozen=True)
class Movements:
    """What the ledger recorded between two readings (credits, all >= 0)."""

    spend: int = 0  # A2E task costs
    top_ups: int = 0
    adjustments_in: int = 0
    adjustments_out: int = 0


@dataclass(frozen=True)
class Reconciliation:
    previous: Reading
    current: Reading
    movements: Movements

    @property
    def actual_change(self) -> int:
        return self.current.balance - self.previous.balance

    @property
    def in_flight_change(self) -> int:
        return self.current.in_flight - self.previous.in_flight

    @property
    def expected_change(self) -> int:
        m = self.movements
        return (-m.spend - self.in_flight_change + m.top_ups
                + m.adjustments_in - m.adjustments_out)

    @property
    def unexplained(self) -> int:
        return self.actual_change - self.expected_change


def within(unexplained: int, tolerance: int) -> bool:
    return abs(unexplained) <= tolerance


def detected_top_up(unexplained: int, tolerance: int) -> int:
    """Credits to record as a top-up: a rise beyond the tolerance, else 0 (a fall never is)."""
    return unexplained if unexplained > tolerance else 0


def adjustment_direction(note: str | None) -> int:
    """+1 when an adjustment put credits back (its note starts with "+" or "top-up"), else -1."""
    return 1 if (note or "").strip().lower().startswith(CREDITS_IN_PREFIXES) else -1


@dataclass(frozen=True)
class Forecast:
    average_daily_spend: float  # over FORECAST_DAYS days
    days_left: int | None  # days from the day until the one the balance runs out on
    runs_out_on: dt.date | None


def forecast(day: dt.date, balance: int | None, spend: int,
             days: int = FORECAST_DAYS) -> Forecast:
    """When `balance` runs out at the average daily spend of the `days` days ending `day`
    (`spend` is their total): None when there is no balance or no spend."""
    average = round(spend / days, 1)
    if balance is None or spend <= 0:
        return Forecast(average, None, None)
    days_left = math.ceil(Decimal(balance) * days / spend)  # exact: no float rounding
    return Forecast(average, days_left, day + dt.timedelta(days=days_left))


def cents(amount: int, cents_per_unit: Decimal) -> int:
    """`amount` units at `cents_per_unit`, rounded to whole cents half away from zero (as
    PostgreSQL's numeric round(), which the marts use)."""
    return int((Decimal(amount) * cents_per_unit).quantize(Decimal(1), ROUND_HALF_UP))


def percent(actual: int, projected: int) -> float | None:
    """actual / projected x 100, one decimal; None without a projection."""
    return round(100.0 * actual / projected, 1) if projected > 0 else None
