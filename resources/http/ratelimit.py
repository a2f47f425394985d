"""Client-side rate limits, applied before a request is sent (quotas are tracked, not discovered).

A `RateLimiter` is one rule ("6 per 60 s") over many keys (one per token, per chat, per API key).
It counts with a sliding-window log: at most `limit` units in *any* window of `period` seconds,
which never overshoots a server that counts in fixed or sliding windows (a token bucket of the
same size can allow up to twice the limit across a window edge).

The log lives in a `RateLimitStore`. `MemoryRateLimitStore` serves one process; a store backed by
PostgreSQL (one row per acquisition, key locked with pg_advisory_xact_lock, the same
`try_acquire` contract, the database's clock) makes "100 per hour per key" hold across processes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from resources.http.errors import RateLimited

log = logging.getLogger("waifugen.http")


@runtime_checkable
class RateLimitStore(Protocol):
    def try_acquire(self, key: str, limit: int, period: float, cost: int, now: float) -> float:
        """Atomically take `cost` units of `key` if the last `period` seconds leave room.

        Returns 0.0 when taken, else the seconds until enough units free up (nothing taken).
        `now` is the caller's clock in seconds; a cross-process store should use one shared
        clock (the database's) instead, and must then agree with it about "seconds".
        """
        ...


class MemoryRateLimitStore:
    """Sliding-window logs in a dict, for one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, deque[tuple[float, int]]] = {}
        self._used: dict[str, int] = {}

    def try_acquire(self, key: str, limit: int, period: float, cost: int, now: float) -> float:
        with self._lock:
            log = self._logs.setdefault(key, deque())
            used = self._used.get(key, 0)
            while log and log[0][0] + period <= now:  # forget what left the window
                used -= log.popleft()[1]
            if used + cost <= limit:
                log.append((now, cost))
                self._used[key] = used + cost
                return 0.0
            self._used[key] = used
            return self._wait(log, used + cost - limit, period, now)

    @staticmethod
    def _wait(log: deque[tuple[float, int]], excess: int, period: float, now: float) -> float:
        freed = 0
        for stamp, cost in log:  # oldest first: when have enough units left the window?
            freed += cost
            if freed >= excess:
                # Clamped: float rounding must neither report "taken" (0) nor exceed a period.
                return min(period, max(stamp + period - now, _MIN_WAIT))
        return period  # unreachable while cost <= limit


_DEFAULT_STORE = MemoryRateLimitStore()
_MIN_WAIT = 1e-6


class RateLimiter:
    """`limit` units per `period` seconds for each key; `acquire` waits up to `max_wait`."""

    def __init__(
        self,
        name: str,
        limit: int,
        period: float,
        *,
        max_wait: float = 30.0,
        store: RateLimitStore | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError(f"rate limit {name}: need limit >= 1 and period > 0")
        self.name, self.limit, self.period, self.max_wait = name, limit, period, max_wait
        # Limiters with the same name share one budget per key in the process-wide store.
        self._store = store if store is not None else _DEFAULT_STORE
        self._clock, self._sleep = clock, sleep

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.limit} per {self.period:g} s)"

    def acquire(self, key: str = "", cost: int = 1, *, max_wait: float | None = None) -> float:
        """Take `cost` units for `key`, sleeping if needed; returns the seconds waited.

        Raises RateLimited (with `retry_after`) at once when the wait would exceed `max_wait`.
        """
        if not 1 <= cost <= self.limit:
            raise ValueError(f"rate limit {self.name}: cost {cost} outside 1..{self.limit}")
        budget = self.max_wait if max_wait is None else max_wait
        store_key = f"{self.name}:{key}"
        start = self._clock()
        while True:
            now = self._clock()
            wait = self._store.try_acquire(store_key, self.limit, self.period, cost, now)
            if wait <= 0:
                return now - start
            if now - start + wait > budget:
                raise RateLimited(
                    f"{self.name}: client-side limit of {self.limit} per {self.period:g} s "
                    f"reached for key {key or '(all)'}; next slot in {wait:.1f} s, "
                    f"longer than the {budget:g} s we may wait",
                    system=self.name, retry_after=wait)
            log.info("rate limit %s: waiting %.2f s for a slot", self.name, wait)
            self._sleep(wait)


KeyFunction = Callable[[httpx.Request], str | None]


def every_request(request: httpx.Request) -> str:
    return ""


@dataclass(frozen=True)
class Limit:
    """Apply `limiter` to requests for which `key(request)` is not None, under that key."""

    limiter: RateLimiter
    key: KeyFunction = every_request
    cost: int = 1


def fingerprint(secret: str) -> str:
    """A stable short key for a credential, so limiter keys and DB rows never hold the token."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def by_header(name: str) -> KeyFunction:
    """Key by a header's value, fingerprinted: e.g. by_header("authorization") = per token."""
    def key(request: httpx.Request) -> str | None:
        value = request.headers.get(name)
        return fingerprint(value) if value else None
    return key


def when_path(prefix: str, key: KeyFunction = every_request) -> KeyFunction:
    """Restrict a limit to paths starting with `prefix` (e.g. TikTok's /v2/post/publish/)."""
    def scoped(request: httpx.Request) -> str | None:
        return key(request) if request.url.path.startswith(prefix) else None
    return scoped
