"""The httpx transport every outbound call goes through: limits, retries, logging, errors.

It wraps another transport (httpx.HTTPTransport by default) so that both our own clients
(`make_client`) and third-party libraries that accept `transport=` (the ollama client) share
one behaviour. Response bodies are streamed, not buffered: only error bodies and, when a
classifier is set, JSON bodies up to `body_peek_limit` bytes are read before returning.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from resources.http.classify import (
    Classifier,
    Kind,
    Outcome,
    RetryAfterHook,
    classify_status,
    header_retry_after,
    reason_from_body,
)
from resources.http.errors import (
    AuthError,
    HttpError,
    PermanentError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
)
from resources.http.policy import Failure, RetryPolicy, failure_of, rewind_body
from resources.http.ratelimit import Limit, RateLimiter, Ticket
from waifugen_assets.core.redaction import MASK, SENSITIVE_KEYS, mask_url, redact, register_secret

log = logging.getLogger("waifugen.http")

OUTCOME = "waifugen.outcome"  # response.extensions key: the Outcome of the final attempt
SYSTEM = "waifugen.system"  # response.extensions key: the system name, for json_request
DEFAULT_TIMEOUT_SECONDS = 30.0  # the HTTP_TIMEOUT_SECONDS setting's default
BODY_PEEK_LIMIT = 1 << 20

# Query parameters that are credentials in signed URLs (S3/R2 presigned, Google API keys).
_SENSITIVE_PARAMS = SENSITIVE_KEYS | {
    "key", "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
}
_ERRORS: dict[Kind, type[HttpError]] = {
    Kind.RETRYABLE: RetryableError,
    Kind.AUTH: AuthError,
    Kind.PERMANENT: PermanentError,
}


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one (loading the CA bundle) costs tens
    of milliseconds, and a run builds many clients. Contexts are safe to share."""
    return httpx.create_ssl_context()  # what httpx would build (certifi bundle)


class WaifugenTransport(httpx.BaseTransport):
    """Rate limits, then attempts with retries per `retry`, one redacted log line per attempt.

    `raise_errors=True` (our own clients) turns a final non-ok outcome into an HttpError;
    `False` (third-party libraries) returns the last response so the library's own error
    handling still works, and re-raises httpx's own exception when no response came back.
    """

    def __init__(
        self,
        system: str,
        *,
        inner: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        limits: Iterable[Limit | RateLimiter] = (),
        classifier: Classifier | None = None,
        retry_after_from_response: RetryAfterHook | None = None,
        raise_errors: bool = False,
        body_peek_limit: int = BODY_PEEK_LIMIT,
    ) -> None:
        self.system = system
        self._inner = inner if inner is not None else httpx.HTTPTransport(verify=tls_context())
        self._timeout = as_timeout(timeout)
        self._retry = retry if retry is not None else RetryPolicy()
        self._limits = tuple(x if isinstance(x, Limit) else Limit(x) for x in limits)
        self._classifier = classifier
        self._retry_after_hook = retry_after_from_response
        self._raise_errors = raise_errors
        self._peek_limit = body_peek_limit

    def close(self) -> None:
        self._inner.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        register_request_secrets(request)
        request.extensions = {**request.extensions, "timeout": self._timeouts_for(request)}
        attempt = 1
        while True:
            result = self._attempt(request, attempt)
            if isinstance(result, httpx.Response):
                return result
            self._retry.sleep(result)
            attempt += 1
            rewind_body(request)

    # --- one attempt: a response to return, or the delay before the next attempt --------------

    def _attempt(self, request: httpx.Request, attempt: int) -> httpx.Response | float:
        tickets = self._take_limits(request)
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
            response, outcome = self._classify(request, response)
        except httpx.TransportError as exc:
            return self._after_exception(request, attempt, started, exc)
        finally:
            # The platform counted the request somewhere before now: from now on, then.
            for ticket in tickets:
                ticket.settle()
        response.extensions[OUTCOME] = outcome
        response.extensions[SYSTEM] = self.system
        if outcome.kind is Kind.OK:
            self._log(request, attempt, started, str(response.status_code), logging.DEBUG)
            return response
        delay = self._retry_delay(request, attempt, outcome)
        self._log(request, attempt, started, f"{response.status_code} {outcome.kind}",
                  logging.INFO, delay)
        if delay is not None:
            response.close()
            return delay
        return self._give_up(request, response, outcome)

    def _after_exception(self, request: httpx.Request, attempt: int, started: float,
                         exc: httpx.TransportError) -> float:
        failure = failure_of(exc)
        retry = (failure is not None and attempt < self._retry.max_attempts
                 and self._retry.may_retry(request, failure))
        delay = self._retry.backoff(attempt) if retry else None
        self._log(request, attempt, started, type(exc).__name__, logging.INFO, delay)
        if delay is not None:
            return delay
        if not self._raise_errors or failure is None:
            raise exc
        raise self._exception_error(request, exc, failure, attempt) from exc

    def _retry_delay(self, request: httpx.Request, attempt: int, outcome: Outcome) -> float | None:
        if outcome.kind not in (Kind.RETRYABLE, Kind.RATE_LIMITED):
            return None
        if outcome.retry_after is not None and outcome.retry_after > self._retry.max_retry_after:
            return None  # the caller reschedules instead of a worker sleeping for that long
        failure = Failure.RATE_LIMITED if outcome.kind is Kind.RATE_LIMITED \
            else Failure.RETRYABLE_STATUS
        if attempt >= self._retry.max_attempts or not self._retry.may_retry(request, failure):
            return None
        return outcome.retry_after if outcome.retry_after is not None \
            else self._retry.backoff(attempt)

    # --- classification ----------------------------------------------------------------------

    def _classify(self, request: httpx.Request,
                  response: httpx.Response) -> tuple[httpx.Response, Outcome]:
        peek: httpx.Response | None = None
        if response.status_code >= 400 or (self._classifier and _is_json(response)):
            response, peek = buffer_body(request, response, self._peek_limit)
        outcome = self._classifier(peek) if self._classifier and peek is not None else None
        if outcome is None:
            reason = reason_from_body(peek) if peek is not None else response.reason_phrase
            outcome = classify_status(response.status_code, reason=reason,
                                      retry_statuses=self._retry.retry_statuses)
        if outcome.kind in (Kind.RETRYABLE, Kind.RATE_LIMITED) and outcome.retry_after is None:
            hook = self._retry_after_hook
            hooked = hook(peek) if hook is not None and peek is not None else None
            retry_after = hooked if hooked is not None else header_retry_after(response)
            outcome = replace(outcome, retry_after=retry_after)
        return response, outcome

    # --- giving up ---------------------------------------------------------------------------

    def _give_up(self, request: httpx.Request, response: httpx.Response,
                 outcome: Outcome) -> httpx.Response:
        if not self._raise_errors:
            return response
        response.close()
        retry_after = outcome.retry_after
        over_cap = retry_after is not None and retry_after > self._retry.max_retry_after
        raise error_for(self.system, request, response.status_code, outcome, over_cap=over_cap)

    def _exception_error(self, request: httpx.Request, exc: httpx.TransportError,
                         failure: Failure, attempt: int) -> HttpError:
        where = f"{self.system}: {request.method} {request.url.path}"
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        tries = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
        if failure is Failure.UNKNOWN and not self._retry.may_retry(request, failure):
            return UnknownOutcome(
                f"{where}: no answer after the request was sent ({detail}); the platform may "
                f"have acted on it: reconcile before sending again", system=self.system)
        return RetryableError(f"{where}: {detail} {tries}", system=self.system, reason=detail)

    # --- helpers -----------------------------------------------------------------------------

    def _take_limits(self, request: httpx.Request) -> list[Ticket]:
        # Limits are taken in order; if a later one refuses, earlier units stay spent (the safe
        # direction: we under-use a quota rather than exceed it).
        tickets = []
        for limit in self._limits:
            key = limit.key(request)
            if key is not None:
                tickets.append(limit.limiter.take(key, limit.cost))
        return tickets

    def _timeouts_for(self, request: httpx.Request) -> dict[str, float | None]:
        """The request's timeouts, with every unbounded phase given our default.

        Third-party clients often pass timeout=None (ollama does); an unbounded read can hang
        a run forever, so a client that needs longer must say how long.
        """
        given = request.extensions.get("timeout") or {}
        return {phase: given.get(phase) if given.get(phase) is not None else default
                for phase, default in self._timeout.as_dict().items()}

    def _log(self, request: httpx.Request, attempt: int, started: float, result: str,
             level: int, delay: float | None = None) -> None:
        if not log.isEnabledFor(level):
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        then = f", retrying in {delay:.2f} s" if delay is not None else ""
        message = (f"{self.system} {request.method} {safe_url(request.url)} -> {result} "
                   f"in {elapsed_ms:.0f} ms (attempt {attempt}/{self._retry.max_attempts}{then})")
        log.log(level, redact(message), extra={
            "http_system": self.system, "http_method": request.method, "http_result": result,
            "elapsed_ms": round(elapsed_ms), "attempt": attempt,
        })


def error_for(system: str, request: httpx.Request, status: int, outcome: Outcome, *,
              over_cap: bool = False) -> HttpError:
    """The exception for a final non-ok outcome; `over_cap`: a Retry-After we would not wait."""
    text = f"{system}: {request.method} {request.url.path}: HTTP {status} ({outcome.kind})"
    if outcome.reason:
        text += f": {outcome.reason}"
    if outcome.kind is Kind.RATE_LIMITED or over_cap:
        if outcome.retry_after is not None:
            text += f"; retry after {outcome.retry_after:g} s"
        return RateLimited(text, system=system, status=status, reason=outcome.reason,
                           retry_after=outcome.retry_after)
    return _ERRORS[outcome.kind](text, system=system, status=status, reason=outcome.reason,
                                 retry_after=outcome.retry_after)


def as_timeout(value: float | httpx.Timeout | None) -> httpx.Timeout:
    """connect/read/write/pool timeouts from one number (HTTP_TIMEOUT_SECONDS) or a Timeout."""
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(DEFAULT_TIMEOUT_SECONDS if value is None else float(value))


def safe_url(url: httpx.URL | str) -> str:
    """The URL with credential query parameters and any password masked, for logs."""
    parts = urlsplit(str(url))
    if parts.query:
        pairs = [(k, MASK if k.lower() in _SENSITIVE_PARAMS else v)
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(pairs, safe="*"))
    return mask_url(urlunsplit(parts))


def register_request_secrets(request: httpx.Request) -> None:
    """Credentials this request carries become redaction secrets before anything is logged."""
    for name, value in request.headers.items():
        if name.lower() in SENSITIVE_KEYS:
            register_secret(value)
            register_secret(value.rpartition(" ")[2])  # the token without "Bearer "/"OAuth "
    for name, value in request.url.params.multi_items():
        if name.lower() in _SENSITIVE_PARAMS:
            register_secret(value)
    if request.url.password:
        register_secret(request.url.password)


def _is_json(response: httpx.Response) -> bool:
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def buffer_body(request: httpx.Request, response: httpx.Response,
                limit: int) -> tuple[httpx.Response, httpx.Response | None]:
    """Read a small body into memory: (response to return, copy to inspect or None).

    Bodies over `limit` are left streaming (the part already read is replayed first) and get
    no copy, so a classifier never forces a large download into memory.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return response, None
    chunks: list[bytes] = []
    size = 0
    stream = iter(response.stream)
    for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            response.stream = _PrefixedStream(chunks, stream, response.stream)
            return response, None
    response.stream.close()
    raw = b"".join(chunks)
    peek = _copy(request, response, raw)
    peek.read()  # decoded once here, so classifiers can use .content / .json() freely
    return _copy(request, response, raw), peek


def _copy(request: httpx.Request, response: httpx.Response, raw: bytes) -> httpx.Response:
    # Raw (still encoded) bytes with the original headers: decoding happens once, on read.
    return httpx.Response(response.status_code, headers=response.headers,
                          stream=httpx.ByteStream(raw), extensions=dict(response.extensions),
                          request=request)


class _PrefixedStream(httpx.SyncByteStream):
    def __init__(self, prefix: Sequence[bytes], rest: Iterator[bytes],
                 original: httpx.SyncByteStream) -> None:
        self._prefix, self._rest, self._original = prefix, rest, original

    def __iter__(self) -> Iterator[bytes]:
        yield from self._prefix
        yield from self._rest

    def close(self) -> None:
        self._original.close()
