"""Client-side rate limits, applied before a request is sent (quotas are tracked, not discovered).

A `RateLimiter` is one rule ("6 per 60 s") over many keys (one per token, per chat, per API key).
It counts with a sliding-window log: at most `limit` units in *any* window of `period` seconds,
which never overshoots a server that counts in fixed or sliding windows (a token bucket of the
same size can allow up to twice the limit across a window edge).

The log lives in a `RateLimitStore`. `MemoryRateLimitStore` serves one process;
`resources.quota_store.PostgresRateLimitStore` (one row per acquisition, the key locked with
pg_advisory_xact_lock, the database's clock) makes "100 per hour per key" hold across processes.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from resources.http.errors import RateLimited
from waifugen_assets.core import clock as _pipeline_clock

log = logging.getLogger("waifugen.http")


@runtime_checkable
class RateLimitStore(Protocol):
    def try_take(self, key: str, limit: int, period: float, cost: int,
                 now: float) -> tuple[float, object]:
        """Atomically take `cost` units of `key` if the last `period` seconds leave room.

        Returns (0.0, ticket) when taken, else (seconds until enough units free up, None) and
        nothing is taken. `now` is the caller's clock in seconds; a cross-process store should
        use one shared clock (the database's) instead, and must then agree with it about
        "seconds". The ticket names the units for `settle`.
        """
        ...

    def settle(self, key: str, ticket: object, now: float) -> None:
        """The request those units paid for got its answer (or failed) at `now`: count them
        from then. The platform counted the request somewhere between our take and its
        answer; counting from the answer means no later request can land inside its window
        there, however long this one travelled."""
        ...


class MemoryRateLimitStore:
    """Sliding-window logs in a dict, for one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, deque[list[float | int]]] = {}  # [stamp, cost, ticket], by stamp
        self._used: dict[str, int] = {}
        self._tickets = itertools.count(1)

    def try_take(self, key: str, limit: int, period: float, cost: int,
                 now: float) -> tuple[float, object]:
        with self._lock:
            log = self._logs.setdefault(key, deque())
            used = self._used.get(key, 0)
            while log and log[0][0] + period <= now:  # forget what left the window
                used -= int(log.popleft()[1])
            if used + cost <= limit:
                ticket = next(self._tickets)
                self._insert(log, [now, cost, ticket])
                self._used[key] = used + cost
                return 0.0, ticket
            self._used[key] = used
            return wait_for_room(((e[0], int(e[1])) for e in log), used + cost - limit,
                                 period, now), None

    def settle(self, key: str, ticket: object, now: float) -> None:
        with self._lock:
            log = self._logs.get(key)
            entry = next((e for e in log or () if e[2] == ticket), None)
            if log is None or entry is None or entry[0] >= now:
                return  # already left the window, or stamped later
            log.remove(entry)
            entry[0] = now
            self._insert(log, entry)

    @staticmethod
    def _insert(log: deque[list[float | int]], entry: list[float | int]) -> None:
        index = len(log)
        while index and log[index - 1][0] > entry[0]:  # almost always appended at the end
            index -= 1
        log.insert(index, entry)


def wait_for_room(log: Iterable[tuple[float, int]], excess: int, period: float,
                  now: float) -> float:
    """Seconds until `excess` units of a sliding-window log (oldest first: (time, units)
    entries inside the window) have left it: how long a refused caller must wait."""
    freed = 0
    for stamp, cost in log:
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
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError(f"rate limit {name}: need limit >= 1 and period > 0")
        self.name, self.limit, self.period, self.max_wait = name, limit, period, max_wait
        # Limiters with the same name share one budget per key in the process-wide store.
        self._store = store if store is not None else _DEFAULT_STORE
        # Default: the pipeline's clock, read at each call, so a simulated day waits in its
        # own time (a real sleep would never bring a frozen clock to the next slot).
        self._clock = clock or _pipeline_clock.timestamp
        self._sleep = sleep or _pipeline_clock.sleep

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.limit} per {self.period:g} s)"

    def acquire(self, key: str = "", cost: int = 1, *, max_wait: float | None = None) -> float:
        """Take `cost` units for `key`, sleeping if needed; returns the seconds waited.

        Raises RateLimited (with `retry_after`) at once when the wait would exceed `max_wait`.
        """
        start = self._clock()
        self.take(key, cost, max_wait=max_wait)
        return self._clock() - start

    def take(self, key: str = "", cost: int = 1, *, max_wait: float | None = None) -> Ticket:
        """`acquire`, returning the ticket to settle when the request has its answer."""
        if not 1 <= cost <= self.limit:
            raise ValueError(f"rate limit {self.name}: cost {cost} outside 1..{self.limit}")
        budget = self.max_wait if max_wait is None else max_wait
        store_key = f"{self.name}:{key}"
        start = self._clock()
        while True:
            now = self._clock()
            wait, handle = self._store.try_take(store_key, self.limit, self.period, cost, now)
            if wait <= 0:
                return Ticket(self, store_key, handle)
            if now - start + wait > budget:
                raise RateLimited(
                    f"{self.name}: client-side limit of {self.limit} per {self.period:g} s "
                    f"reached for key {key or '(all)'}; next slot in {wait:.1f} s, "
                    f"longer than the {budget:g} s we may wait",
                    system=self.name, retry_after=wait)
            log.info("rate limit %s: waiting %.2f s for a slot", self.name, wait)
            self._sleep(wait)

    def settle(self, ticket: Ticket) -> None:
        """Count the ticket's units from now (its request has its answer)."""
        try:
            self._store.settle(ticket.store_key, ticket.handle, self._clock())
        except Exception as exc:
            # The request is done and must not fail for this: the units stay counted from
            # their take, which is only less cautious about travel time.
            log.warning("rate limit %s: could not settle a ticket: %s", self.name,
                        type(exc).__name__)


@dataclass(frozen=True)
class Ticket:
    """Units taken from a limiter for one request; `settle()` once it has its answer."""

    limiter: RateLimiter
    store_key: str
    handle: object

    def settle(self) -> None:
        self.limiter.settle(self)


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
