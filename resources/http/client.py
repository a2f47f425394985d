"""Factories: `make_client` for our own clients, `make_transport` for third-party libraries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self

import httpx

from resources.http.classify import Classifier, Outcome, RetryAfterHook, classify_status
from resources.http.errors import InvalidResponse
from resources.http.policy import RetryPolicy
from resources.http.ratelimit import Limit, RateLimiter
from resources.http.transport import (
    DEFAULT_TIMEOUT_SECONDS,
    OUTCOME,
    SYSTEM,
    WaifugenTransport,
    as_timeout,
    error_for,
    tls_context,
)
from waifugen_assets.core.redaction import SENSITIVE_KEYS, register_secret

_SNIPPET = 60


def make_transport(
    system: str,
    *,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
    retry: RetryPolicy | None = None,
    limits: Iterable[Limit | RateLimiter] = (),
    classifier: Classifier | None = None,
    retry_after_from_response: RetryAfterHook | None = None,
    secrets: Iterable[str] = (),
    raise_errors: bool = False,
    inner: httpx.BaseTransport | None = None,
    pool: httpx.Limits | None = None,
) -> WaifugenTransport:
    """The shared transport, for libraries that take `transport=` (e.g. ollama.Client).

    `raise_errors=False` by default so the library still sees final error responses (ollama
    turns a 404 into ResponseError). `inner` replaces the network transport (a proxy, tests);
    `pool` sets connection pool limits of the default one.
    """
    for secret in secrets:
        register_secret(secret)
    if inner is None:
        # The process's one TLS context (tls_context): a fresh one per client cost ~18 ms.
        inner = (httpx.HTTPTransport(limits=pool, verify=tls_context()) if pool
                 else httpx.HTTPTransport(verify=tls_context()))
    return WaifugenTransport(
        system, inner=inner, timeout=timeout, retry=retry, limits=limits,
        classifier=classifier, retry_after_from_response=retry_after_from_response,
        raise_errors=raise_errors)


def make_client(
    system: str,
    *,
    base_url: str | httpx.URL = "",
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
    retry: RetryPolicy | None = None,
    limits: Iterable[Limit | RateLimiter] = (),
    classifier: Classifier | None = None,
    retry_after_from_response: RetryAfterHook | None = None,
    follow_redirects: bool = False,
    secrets: Iterable[str] = (),
    auth: httpx.Auth | None = None,
    inner: httpx.BaseTransport | None = None,
    pool: httpx.Limits | None = None,
) -> httpx.Client:
    """An httpx.Client whose every request goes through the shared layer and raises HttpError.

    `timeout` is HTTP_TIMEOUT_SECONDS (one number for connect/read/write/pool) or an
    httpx.Timeout. `secrets` are values to mask everywhere (e.g. a token inside a URL path);
    credentials in `headers` are registered automatically.
    """
    for name, value in (headers or {}).items():
        if name.lower() in SENSITIVE_KEYS:
            register_secret(value)
            register_secret(value.rpartition(" ")[2])
    transport = make_transport(
        system, timeout=timeout, retry=retry, limits=limits, classifier=classifier,
        retry_after_from_response=retry_after_from_response, secrets=secrets,
        raise_errors=True, inner=inner, pool=pool)
    return httpx.Client(
        base_url=base_url, headers=dict(headers or {}), timeout=as_timeout(timeout),
        transport=transport, follow_redirects=follow_redirects, auth=auth)


def json_request(client: httpx.Client, method: str, url: str | httpx.URL, *,
                 require: Iterable[str] = (), **kwargs: Any) -> dict[str, Any]:
    """Send a request and return its JSON object body; InvalidResponse if it is not one.

    `require` names top-level keys that must be present. Error statuses raise the matching
    HttpError even when the client's transport returns them (third-party mode).
    """
    response = client.request(method, url, **kwargs)
    system = response.extensions.get(SYSTEM, "http")
    outcome: Outcome = response.extensions.get(OUTCOME) or classify_status(response.status_code)
    if not outcome.ok:
        raise error_for(system, response.request, response.status_code, outcome)
    return parse_json_object(response, system=system, require=require)


def parse_json_object(response: httpx.Response, *, system: str,
                      require: Iterable[str] = ()) -> dict[str, Any]:
    """The body as a JSON object, or InvalidResponse naming system, path and the problem."""
    def invalid(problem: str) -> InvalidResponse:
        return InvalidResponse(
            f"{system}: {response.request.method} {response.request.url.path}: {problem}",
            system=system, status=response.status_code, reason=problem)

    content = response.read()
    if not content.strip():
        raise invalid(f"empty body where a JSON object was expected "
                      f"(HTTP {response.status_code})")
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "no content-type")
        start = content[:_SNIPPET].decode("utf-8", "replace")
        raise invalid(f"body is not JSON ({kind}, starts {start!r})") from None
    if not isinstance(body, dict):
        raise invalid(f"expected a JSON object, got {type(body).__name__}")
    missing = [key for key in require if key not in body]
    if missing:
        raise invalid(f"JSON object lacks {', '.join(missing)}")
    return body



class OwnsHttpClient:
    """`close()` and the context-manager protocol for a typed client holding `self._http`."""

    _http: httpx.Client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
