"""A rate-limit store in PostgreSQL, so limits hold across every process of a deployment.

Implements the shared HTTP layer's `RateLimitStore` on the `quota_usage` table with fixed
windows aligned to the period (an hour limit counts 10:00-11:00, 11:00-12:00, ...). One
conditional upsert takes the units or takes nothing, so concurrent workers can never exceed
the limit inside a window; at a window boundary two windows' worth can pass in a short span,
which is the price of one row per window instead of a row per request. The clock is the
database's, shared by every process.
"""

from __future__ import annotations

import sqlalchemy as sa

from waifugen_assets.schema import QUOTA_SERVICES

WINDOW_KINDS = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}

_TAKE = sa.text("""
    INSERT INTO quota_usage (platform, account_key, window_kind, window_start, units)
    VALUES (:platform, :key, :kind,
            to_timestamp(floor(extract(epoch FROM now()) / :period) * :period), :cost)
    ON CONFLICT ON CONSTRAINT uq_quota_usage_window DO UPDATE
        SET units = quota_usage.units + EXCLUDED.units, updated_at = now()
        WHERE quota_usage.units + EXCLUDED.units <= :limit
    RETURNING units
""")
_WAIT = sa.text("""
    SELECT (floor(extract(epoch FROM now()) / :period) + 1) * :period - extract(epoch FROM now())
""")


class PostgresRateLimitStore:
    """Cross-process budget per (service, key, window)."""

    def __init__(self, engine: sa.Engine, service: str) -> None:
        if service not in QUOTA_SERVICES:
            raise ValueError(f"unknown quota service {service!r}")
        self.engine, self.service = engine, service

    def try_acquire(self, key: str, limit: int, period: float, cost: int, now: float) -> float:
        kind = WINDOW_KINDS.get(float(period))
        if kind is None:
            raise ValueError(f"period {period} s has no window kind ({sorted(WINDOW_KINDS)})")
        params = {"platform": self.service, "key": key, "kind": kind, "period": period,
                  "cost": cost, "limit": limit}
        with self.engine.begin() as conn:
            taken = conn.execute(_TAKE, params).first()
            if taken is not None and taken.units <= limit:
                return 0.0
            if taken is not None:  # a fresh row whose first cost already exceeds the limit
                conn.rollback()
            return max(0.001, float(conn.execute(_WAIT, {"period": period}).scalar_one()))

    def used(self, key: str, period: float) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("""
                SELECT coalesce(sum(units), 0) FROM quota_usage
                WHERE platform = :p AND account_key = :k AND window_kind = :kind
                  AND window_start = to_timestamp(
                      floor(extract(epoch FROM now()) / :period) * :period)
            """), {"p": self.service, "k": key, "kind": WINDOW_KINDS[float(period)],
                   "period": period}).scalar_one())
