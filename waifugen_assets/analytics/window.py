"""What a dbt run is told: the window of local days a daily mart rebuilds, and the money
settings. Plain Python so the arithmetic is testable without Dagster.

The window goes through the environment (DBT_WINDOW_MIN_DATE / DBT_WINDOW_MAX_DATE, read by
dbt_analytics/macros/window.sql only when a model runs), not through `--vars`: vars that change
every run make dbt parse the whole project again each time (seconds of a daily run's
5-second budget; docs/benchmarks.md "dbt build"). The `min_date` / `max_date` vars still
override it for ad-hoc runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from waifugen_assets.core.config import Money

# Rebuild this many days before the partition's day too: late data (a render costed, a
# refund, a reading of yesterday's posts) lands on days already built.
LOOKBACK_DAYS = 3
EVERYTHING = ("2000-01-01", "9999-12-31")


def window_vars(first: dt.date, last: dt.date, lookback_days: int = LOOKBACK_DAYS
                ) -> dict[str, str]:
    """Half-open [min_date, max_date) covering first - lookback .. last."""
    if last < first:
        raise ValueError(f"partition range ends ({last}) before it starts ({first})")
    return {"min_date": (first - dt.timedelta(days=lookback_days)).isoformat(),
            "max_date": (last + dt.timedelta(days=1)).isoformat()}


def window_env(first: dt.date | None = None, last: dt.date | None = None,
               lookback_days: int = LOOKBACK_DAYS) -> dict[str, str]:
    """The window as dbt's environment; no dates: everything (a --full-refresh)."""
    if first is None:
        low, high = EVERYTHING
    else:
        w = window_vars(first, last or first, lookback_days)
        low, high = w["min_date"], w["max_date"]
    return {"DBT_WINDOW_MIN_DATE": low, "DBT_WINDOW_MAX_DATE": high}


def dbt_vars(money: Money) -> dict[str, Any]:
    """The vars of every run: the same on every run, so dbt's saved parse stays valid."""
    return dict(money.dbt_vars())
