"""When to retry and how long to wait: pure functions, no network, no real sleeping in tests.

Safety rule (DESIGN.md section 6): a request is resent only when resending cannot act twice.
- The request never left (connect error, pool timeout): always safe.
- A 429: the server refused it without acting, safe unless the policy says otherwise.
- Anything else (5xx, read timeout, dropped connection): only for idempotent requests, i.e.
  GET/HEAD/OPTIONS/TRACE/PUT/DELETE, or a request carrying
  `extensions={"waifugen.idempotent": True}` (e.g. a POST with an idempotency key, or a read
  that happens to be a POST), or every request when `retry_non_idempotent=True`.
- And the body must be re-creatable: bytes/json/form bodies (httpx keeps them in memory) and
  multipart bodies whose files are bytes or seekable. A streaming body (iterator, generator,
  non-seekable file) is sent once, unless the request carries
  `extensions={"waifugen.body_factory": callable}` returning a fresh iterable of bytes.
"""

from __future__ import annotations

import random as _random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx

DEFAULT_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
IDEMPOTENT = "waifugen.idempotent"
BODY_FACTORY = "waifugen.body_factory"

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Longer Retry-After values are read as a week: callers can always schedule that (no inf).
RETRY_AFTER_CEILING = 7 * 86400.0


class Failure(StrEnum):
    """Why an attempt did not produce a usable response."""

    NOT_SENT = "not_sent"  # connect error / pool timeout: the server never saw the request
    UNKNOWN = "unknown"  # sent, then timeout or dropped connection: it may have acted
    RETRYABLE_STATUS = "retryable_status"  # 5xx, 408, 425
    RATE_LIMITED = "rate_limited"  # 429 (or an envelope saying so)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long between them, and which failures are worth another try."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A Retry-After longer than this is not slept through: RateLimited is raised instead.
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    retry_non_idempotent: bool = False
    rate_limited_is_safe: bool = True
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed."""
        return backoff_delay(attempt, self.base_delay, self.max_delay, self.random())

    def is_idempotent(self, request: httpx.Request) -> bool:
        marked = request.extensions.get(IDEMPOTENT)
        if marked is not None:  # an explicit mark wins both ways
            return bool(marked)
        return request.method.upper() in IDEMPOTENT_METHODS or self.retry_non_idempotent

    def may_retry(self, request: httpx.Request, failure: Failure) -> bool:
        """Whether resending `request` after `failure` cannot make the platform act twice."""
        if failure is Failure.NOT_SENT:
            return True  # the body was never read, so even a streaming body is intact
        if not body_replayable(request):
            return False
        if failure is Failure.RATE_LIMITED and self.rate_limited_is_safe:
            return True
        return self.is_idempotent(request)


NO_RETRY = RetryPolicy(max_attempts=1)


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter spreads the retries of many workers that failed together (AWS architecture
    blog, "Exponential Backoff And Jitter"). `rand` is a draw from [0, 1).
    """
    exponent = min(max(attempt - 1, 0), 64)  # bounded: 2.0**64 is finite, the cap applies
    ceiling = min(cap, base * 2.0**exponent)
    return min(max(rand, 0.0), 1.0) * ceiling


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return min(float(text), RETRY_AFTER_CEILING)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return min(max(0.0, (when - current).total_seconds()), RETRY_AFTER_CEILING)


def failure_of(exc: httpx.TransportError) -> Failure | None:
    """Classify a transport exception; None means a local bug that no retry can fix."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                  | httpx.ProxyError):
        return Failure.NOT_SENT
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return None
    return Failure.UNKNOWN


def body_replayable(request: httpx.Request) -> bool:
    """Whether the request body can be sent again byte for byte."""
    if callable(request.extensions.get(BODY_FACTORY)):
        return True
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        return True
    fields = getattr(stream, "fields", None)  # httpx's MultipartStream
    if isinstance(fields, list) and hasattr(stream, "boundary"):
        return all(_field_replayable(f) for f in fields)
    return False


def _field_replayable(item: object) -> bool:
    file = getattr(item, "file", None)
    if file is None or isinstance(file, str | bytes):
        return True  # a data field, or an in-memory file
    seekable = getattr(file, "seekable", None)
    return bool(seekable and seekable())  # httpx seeks files back to 0 when re-rendering


def rewind_body(request: httpx.Request) -> None:
    """Prepare the body for another attempt (only a body factory needs work)."""
    factory = request.extensions.get(BODY_FACTORY)
    if callable(factory):
        request.stream = _IterableStream(factory())


class _IterableStream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
