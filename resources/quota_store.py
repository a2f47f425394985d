"""A rate-limit store in PostgreSQL, so limits hold across every process of a deployment.

Implements the shared HTTP layer's `RateLimitStore` as a sliding-window log in the
`rate_limit_log` table: one row per acquisition, so "at most N in any P seconds" holds exactly,
which is how the platforms count (Telegram's 30 a second per bot, Fanvue's 100 a minute, ...).
Fixed windows would let up to 2N pass around a window edge, and the platform would answer 429:
a limit discovered by failing instead of tracked (benchmarks/dm_send.py shows the difference).

Each acquisition is one transaction: a transaction-scoped advisory lock on the key (so
concurrent workers queue per key, not per table), the rows that left the window deleted, the
rest summed, a row inserted if there is room. When the request has its answer, its row is
restamped with that time (`settle`): the platform counted the request somewhere in between,
so a later request can never land inside its window there (a request slower than a whole
window may find its row already pruned: it stays counted from its take). The clock is the
database's, shared by every process; the caller's `now` is used only while a simulated clock
runs (waifugen_assets.core.clock), so a simulated day counts its limits in its own time.
"""

from __future__ import annotations

import sqlalchemy as sa

from resources.http.ratelimit import wait_for_room
from waifugen_assets.core import clock
from waifugen_assets.core.schema import QUOTA_SERVICES

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
_NOW = sa.text("SELECT extract(epoch FROM clock_timestamp())::float8")
_PRUNE = sa.text("""
    DELETE FROM rate_limit_log
    WHERE platform = :platform AND account_key = :key AND window_seconds = :period
      AND taken_at <= to_timestamp(:now - :period)
""")
_LOG = sa.text("""
    SELECT extract(epoch FROM taken_at)::float8, units FROM rate_limit_log
    WHERE platform = :platform AND account_key = :key AND window_seconds = :period
    ORDER BY taken_at
""")
_TAKE = sa.text("""
    INSERT INTO rate_limit_log (platform, account_key, window_seconds, taken_at, units)
    VALUES (:platform, :key, :period, to_timestamp(:now), :cost)
    RETURNING id
""")
# A row that left the window meanwhile is gone: nothing to move.
_SETTLE = sa.text("""
    UPDATE rate_limit_log SET taken_at = greatest(taken_at, clock_timestamp()) WHERE id = :id
""")
_SETTLE_AT = sa.text("""
    UPDATE rate_limit_log SET taken_at = greatest(taken_at, to_timestamp(:now)) WHERE id = :id
""")
# Keys that stopped being used keep their last rows until a sweep: once per store.
_SWEEP = sa.text("""
    DELETE FROM rate_limit_log
    WHERE platform = :platform
      AND taken_at <= coalesce(to_timestamp(:now), now()) - make_interval(secs => window_seconds)
""")


class PostgresRateLimitStore:
    """Cross-process sliding-window budgets per (service, key, period)."""

    def __init__(self, engine: sa.Engine, service: str) -> None:
        if service not in QUOTA_SERVICES:
            raise ValueError(f"unknown quota service {service!r}")
        self.engine, self.service = engine, service
        self._swept = False

    def try_take(self, key: str, limit: int, period: float, cost: int,
                 now: float) -> tuple[float, object]:
        if period <= 0:
            raise ValueError(f"rate limit period must be positive, not {period}")
        params = {"platform": self.service, "key": key, "period": float(period)}
        with self.engine.begin() as conn:
            if not self._swept:
                conn.execute(_SWEEP, {"platform": self.service,
                                      "now": now if clock.simulated() else None})
                self._swept = True
            conn.execute(_LOCK, {"lock": f"rate:{self.service}:{key}:{float(period)!r}"})
            # The database's clock, shared by every process; a simulated day brings its own.
            db_now = now if clock.simulated() else float(conn.execute(_NOW).scalar_one())
            conn.execute(_PRUNE, {**params, "now": db_now})
            log = [(float(t), int(u)) for t, u in conn.execute(_LOG, params)]
            used = sum(units for _, units in log)
            if used + cost <= limit:
                row_id = conn.execute(_TAKE, {**params, "now": db_now, "cost": cost}).scalar_one()
                return 0.0, row_id
            return wait_for_room(log, used + cost - limit, period, db_now), None

    def settle(self, key: str, ticket: object, now: float) -> None:
        with self.engine.begin() as conn:
            if clock.simulated():
                conn.execute(_SETTLE_AT, {"id": ticket, "now": now})
            else:
                conn.execute(_SETTLE, {"id": ticket})

    def used(self, key: str, period: float) -> int:
        """Units taken for `key` in the last `period` seconds."""
        return self.usage(key, period)[0]

    def usage(self, key: str, period: float) -> tuple[int, float | None]:
        """(units taken for `key` in the last `period` seconds, epoch seconds at which the
        oldest of them leaves the window or None): what a planner may still spend, and when
        more frees up."""
        now = clock.timestamp() if clock.simulated() else None
        with self.engine.connect() as conn:
            units, oldest = conn.execute(sa.text("""
                SELECT coalesce(sum(units), 0), extract(epoch FROM min(taken_at))::float8
                FROM rate_limit_log
                WHERE platform = :platform AND account_key = :key AND window_seconds = :period
                  AND taken_at > coalesce(to_timestamp(:now), clock_timestamp())
                                 - make_interval(secs => :period)
            """), {"platform": self.service, "key": key, "period": float(period),
                   "now": now}).one()
        return int(units), None if oldest is None else float(oldest) + float(period)
