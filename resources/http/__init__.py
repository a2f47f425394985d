"""The one shared HTTP layer: timeouts, retries, Retry-After, rate limits, error classes, redaction.

Every client in `resources/` builds on it:

    client = make_client("fanvue", base_url="https://api.fanvue.com",
                         headers={"Authorization": f"Bearer {token}"},
                         timeout=settings.http_timeout,
                         limits=[RateLimiter("fanvue", 100, 60)])
    body = json_request(client, "GET", "/chats", require=["data"])

Third-party libraries that accept an httpx transport get the same behaviour:

    ollama.Client(host=settings.ollama_host, transport=make_transport("ollama"))

What the transport does per request: acquire every applicable client-side rate limit; send
(response bodies stream through untouched); classify the response (status code, or the
client's `classifier` for errors inside 200 bodies); retry what is safe to retry with full-jitter
backoff or the server's Retry-After (header, or `retry_after_from_response` for bodies such as
Telegram's); log one redacted line per attempt on the `waifugen.http` logger; and finally
return the response or raise an `HttpError` subclass (`make_client`), whose message names the
system and URL path but never a credential. Retry safety rules: see `policy`.

Mark a POST safe to resend with `extensions={"waifugen.idempotent": True}`; give a streaming
upload a way to be resent with `extensions={"waifugen.body_factory": make_chunks}`.
Sync only: the pipeline runs in Dagster's synchronous ops.
"""

from resources.http.bodies import file_range
from resources.http.classify import (
    OK,
    Classifier,
    Kind,
    Outcome,
    RetryAfterHook,
    a2e_classifier,
    classify_status,
    header_retry_after,
    json_body,
    reason_from_body,
    telegram_classifier,
    telegram_retry_after,
)
from resources.http.client import (
    OwnsHttpClient,
    json_request,
    make_client,
    make_transport,
    parse_json_object,
)
from resources.http.errors import (
    AuthError,
    HttpError,
    InvalidResponse,
    PermanentError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
)
from resources.http.policy import (
    BODY_FACTORY,
    DEFAULT_RETRY_STATUSES,
    IDEMPOTENT,
    IDEMPOTENT_METHODS,
    NO_RETRY,
    Failure,
    RetryPolicy,
    backoff_delay,
    body_replayable,
    failure_of,
    parse_retry_after,
)
from resources.http.ratelimit import (
    Limit,
    MemoryRateLimitStore,
    RateLimiter,
    RateLimitStore,
    Ticket,
    by_header,
    every_request,
    fingerprint,
    wait_for_room,
    when_path,
)
from resources.http.transport import (
    DEFAULT_TIMEOUT_SECONDS,
    OUTCOME,
    SYSTEM,
    WaifugenTransport,
    as_timeout,
    error_for,
    safe_url,
)
from resources.http.values import json_int

__all__ = [
    "BODY_FACTORY",
    "DEFAULT_RETRY_STATUSES",
    "DEFAULT_TIMEOUT_SECONDS",
    "IDEMPOTENT",
    "IDEMPOTENT_METHODS",
    "NO_RETRY",
    "OK",
    "OUTCOME",
    "SYSTEM",
    "AuthError",
    "Classifier",
    "Failure",
    "HttpError",
    "InvalidResponse",
    "Kind",
    "Limit",
    "MemoryRateLimitStore",
    "Outcome",
    "OwnsHttpClient",
    "PermanentError",
    "RateLimitStore",
    "RateLimited",
    "RateLimiter",
    "RetryAfterHook",
    "RetryPolicy",
    "RetryableError",
    "Ticket",
    "UnknownOutcome",
    "WaifugenTransport",
    "a2e_classifier",
    "as_timeout",
    "backoff_delay",
    "body_replayable",
    "by_header",
    "classify_status",
    "error_for",
    "every_request",
    "failure_of",
    "file_range",
    "fingerprint",
    "header_retry_after",
    "json_body",
    "json_int",
    "json_request",
    "make_client",
    "make_transport",
    "parse_json_object",
    "parse_retry_after",
    "reason_from_body",
    "safe_url",
    "telegram_classifier",
    "telegram_retry_after",
    "wait_for_room",
    "when_path",
]
