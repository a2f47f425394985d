"""What a response means: ok, retryable, rate_limited, auth or permanent.

The default reads only the status code. Systems that report errors inside 200 bodies supply a
`Classifier`; it receives a response whose body is already in memory (the transport buffers a
body only for errors and, when a classifier is set, for JSON up to 1 MiB, so video downloads are
never buffered) and returns an `Outcome`, or None to fall back to the status code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from resources.http.policy import DEFAULT_RETRY_STATUSES, parse_retry_after

_REASON_LIMIT = 300


class Kind(StrEnum):
    OK = "ok"
    RETRYABLE = "retryable"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"  # refresh the token once, then retry
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str = ""  # the platform's own words, for errors and alerts
    retry_after: float | None = None  # seconds, when the platform said

    @property
    def ok(self) -> bool:
        return self.kind is Kind.OK


OK = Outcome(Kind.OK)

Classifier = Callable[[httpx.Response], Outcome | None]
RetryAfterHook = Callable[[httpx.Response], float | None]


def classify_status(
    status: int,
    *,
    retry_statuses: Collection[int] = DEFAULT_RETRY_STATUSES,
    reason: str = "",
    retry_after: float | None = None,
) -> Outcome:
    """Default meaning of a status code (1xx-3xx are ok: YouTube's 308 is a normal answer)."""
    if status < 400:
        return OK
    if status == 429:
        return Outcome(Kind.RATE_LIMITED, reason, retry_after)
    if status == 401:
        return Outcome(Kind.AUTH, reason)
    if status in retry_statuses:
        return Outcome(Kind.RETRYABLE, reason, retry_after)
    return Outcome(Kind.PERMANENT, reason)


def header_retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def json_body(response: httpx.Response) -> Any:
    """The parsed body of a buffered response, or None when it is not JSON."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def reason_from_body(response: httpx.Response) -> str:
    """The platform's error text from the common envelopes, else the start of the body."""
    body = json_body(response)
    reason = _reason_from_json(body) if isinstance(body, dict) else ""
    if not reason:
        text = " ".join(response.content[:_REASON_LIMIT].decode("utf-8", "replace").split())
        reason = text or response.reason_phrase
    return reason[:_REASON_LIMIT]


def _reason_from_json(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):  # Graph, YouTube, TikTok: {"error": {"code", "message", ...}}
        parts = [error.get("code"), error.get("message")]
        details = error.get("errors")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            parts.append(details[0].get("reason"))  # YouTube: quotaExceeded, uploadLimitExceeded
        return ": ".join(str(p) for p in parts if isinstance(p, str) and p)
    for key in ("error", "description", "message", "msg"):  # Ollama, Telegram, Fanvue, A2E
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    errors = body.get("errors")  # Fanvue validation errors
    if isinstance(errors, list) and errors:
        return str(errors[0])
    return ""


# --- Envelope classifiers for systems that answer 200 with an error inside -------------------

def telegram_retry_after(response: httpx.Response) -> float | None:
    """Telegram puts the delay in the body: {"parameters": {"retry_after": 5}}."""
    body = json_body(response)
    params = body.get("parameters") if isinstance(body, dict) else None
    value = params.get("retry_after") if isinstance(params, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def telegram_classifier(response: httpx.Response) -> Outcome | None:
    """{"ok": false, "error_code": 429, "description": ..., "parameters": {"retry_after": 3}}."""
    body = json_body(response)
    if not isinstance(body, dict) or body.get("ok") is not False:
        return None
    code = body.get("error_code")
    if not isinstance(code, int) or code < 400:
        code = response.status_code if response.status_code >= 400 else 400
    return classify_status(code, reason=str(body.get("description") or ""),
                           retry_after=telegram_retry_after(response))


def a2e_classifier(response: httpx.Response) -> Outcome | None:
    """A2E answers {"code": 0, "data": ...}; any other code is an error, often inside a 200."""
    body = json_body(response)
    if not isinstance(body, dict) or body.get("code", 0) in (0, "0"):
        return None
    text = body.get("msg") or body.get("message") or ""
    reason = f"code {body.get('code')}: {text}".rstrip(": ")
    if response.status_code >= 400:
        return classify_status(response.status_code, reason=reason,
                               retry_after=header_retry_after(response))
    return Outcome(Kind.PERMANENT, reason)
