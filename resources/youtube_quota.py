"""YouTube's daily units counted before each call, across processes, refusing what does not fit.

`UnitsGate` is a `YouTubeClient` `on_quota` callback. It keeps the same `quota_usage` rows as
publishing's YouTubeFlow (platform "youtube", the API project as account_key, one row per
bucket and Pacific day; the units bucket under the project's own key), so uploads, metric
reads and comment replies share one daily budget per project. Each call is counted in one
statement that adds its cost only if the total stays within the ledger's limit (minus
`reserve_units`), so concurrent workers can never together overspend. A call that does not fit
raises QuotaExceeded (deferrable, `resume_at` = the next Pacific midnight) before anything is
sent: the request never reaches YouTube.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from resources.youtube import UNITS, QuotaExceeded, QuotaLedger, next_reset
from waifugen_assets.core import clock

_TAKE = sa.text("""
    INSERT INTO quota_usage (platform, account_key, window_kind, window_start, units)
    VALUES ('youtube', :key, 'day', :window, :units)
    ON CONFLICT ON CONSTRAINT uq_quota_usage_window DO UPDATE
    SET units = quota_usage.units + EXCLUDED.units, updated_at = now()
    WHERE quota_usage.units + EXCLUDED.units <= :cap
    RETURNING units
""")
_USED = sa.text("""
    SELECT account_key, units FROM quota_usage
    WHERE platform = 'youtube' AND window_kind = 'day' AND window_start = :window
      AND account_key = ANY(:keys)
""")


def quota_window(now: dt.datetime) -> dt.datetime:
    """The start (UTC) of the Pacific quota day `now` falls in: the row's window_start."""
    return next_reset(now) - dt.timedelta(days=1)


class UnitsGate:
    """`on_quota` that counts a call's units in quota_usage before it is sent, or refuses it.

    `reserve_units` keeps that many units of the units bucket for other work (e.g. a metric
    reader that must leave room for the day's uploads); the gate refuses a call that would
    eat into them.
    """

    def __init__(self, engine: sa.Engine, quota_key: str, ledger: QuotaLedger | None = None,
                 *, reserve_units: int = 0) -> None:
        if not quota_key:
            raise ValueError("the quota key is the API project (its OAuth client id)")
        self.engine, self.quota_key = engine, quota_key
        self.ledger = ledger or QuotaLedger()
        self.reserve_units = reserve_units

    def bucket_key(self, bucket: str) -> str:
        return self.quota_key if bucket == UNITS else f"{self.quota_key}#{bucket}"

    def __call__(self, operation: str) -> None:
        now = clock.now()
        window = quota_window(now)
        limits = self.ledger.limits()
        with self.engine.begin() as conn:
            for bucket, units in self.ledger.cost(operation).items():
                cap = limits.get(bucket, 0) - (self.reserve_units if bucket == UNITS else 0)
                taken = units <= cap and conn.execute(_TAKE, {
                    "key": self.bucket_key(bucket), "window": window, "units": units,
                    "cap": cap}).first() is not None
                if not taken:  # raising inside the block rolls back every bucket taken
                    raise self._refused(operation, bucket, units, now)

    def _refused(self, operation: str, bucket: str, units: int,
                 now: dt.datetime) -> QuotaExceeded:
        keeping = f", keeping {self.reserve_units} in reserve" if bucket == UNITS \
            and self.reserve_units else ""
        resume = next_reset(now)
        return QuotaExceeded(
            f"youtube: {operation} needs {units} {bucket} but project {self.quota_key} has "
            f"not that much left today{keeping}: not sent; resumes {resume:%Y-%m-%d %H:%M} UTC",
            reason=f"quotaExceeded: local {bucket} budget", status=None, resume_at=resume)

    def used(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Units spent today per bucket of the ledger."""
        keys = {self.bucket_key(b): b for b in self.ledger.limits()}
        with self.engine.connect() as conn:
            rows = conn.execute(_USED, {"window": quota_window(now or clock.now()),
                                        "keys": list(keys)}).all()
        used = dict.fromkeys(keys.values(), 0)
        used.update({keys[key]: int(units) for key, units in rows})
        return used
