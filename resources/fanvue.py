"""Fanvue (official API): the creator, subscribers, smart lists, chats, DMs, OAuth refresh.

A typed client over the shared HTTP layer following docs/subscriber-channels.md (the wire
contract; PROTOCOLS.md section 6): every request carries `Authorization: Bearer <access
token>` and `X-Fanvue-API-Version: 2025-06-26`; Fanvue allows 100 requests per 60 s per token,
which is enforced here before sending (a `RateLimiter` keyed by the token's fingerprint; pass
`rate_store=PostgresRateLimitStore(engine, "fanvue")` to share the budget across processes).
A 429 is resent after its Retry-After by the layer.

Exactly once: `send_message` is a POST that is never resent once it may have reached Fanvue
(only a 429 or a request that never left is resent). A 5xx raises RetryableError and a lost
answer UnknownOutcome; reconcile with `messages(user_uuid)` (newest first): a message sent by
the creator, with our text, after the intent was recorded, is ours.

Errors (all HttpError subclasses): 401 -> AuthError (refresh the token once, then retry);
403 not_contactable -> FanvueNotContactable (the fan unsubscribed or blocked the creator:
stop messaging them); 410 -> FanvueVersionSunset (`.next_version`: the code must move to it);
404 -> FanvueNotFound; 400 -> FanvueValidationError (`.errors`: Fanvue's field list); a body
that lacks a field or has one of the wrong type -> InvalidResponse naming the field.

`refresh_tokens(...)` talks to the OAuth token endpoint (`<base>/oauth/token` by default).
Refresh tokens ROTATE (the contract's safe reading): the TokenSet's refresh_token replaces the
one sent, which stops working; store it at once (see waifugen_assets.core.tokens). A lost refresh
answer (UnknownOutcome) may have rotated the token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from resources.http import (
    IDEMPOTENT,
    InvalidResponse,
    Kind,
    Limit,
    Outcome,
    OwnsHttpClient,
    PermanentError,
    RateLimiter,
    RateLimitStore,
    RetryPolicy,
    by_header,
    classify_status,
    header_retry_after,
    json_body,
    json_request,
    make_client,
    parse_json_object,
)
from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.core.redaction import register_secret
from waifugen_assets.core.tokens import TokenSet

SYSTEM = "fanvue"
PRODUCTION_URL = "https://api.fanvue.com"
API_VERSION = "2025-06-26"
VERSION_HEADER = "X-Fanvue-API-Version"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path
SANDBOX_CLIENT_ID = "sandbox_fanvue_client"
SANDBOX_CLIENT_SECRET = "sandbox_fanvue_secret"  # noqa: S105 - the sandbox accepts any
REQUESTS_PER_WINDOW = 100
RATE_WINDOW = 60.0
MAX_PAGE_SIZE = 50
TEXT_MAX = 5000
_NEXT_VERSION = re.compile(r"\(nextVersion ([^)\s]+)\)")


# --- returned values ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FanvueCreator:
    uuid: str
    handle: str
    display_name: str


@dataclass(frozen=True)
class FanvueSubscriber:
    uuid: str
    handle: str
    display_name: str
    subscribed_at: datetime
    expires_at: datetime | None
    tier: str | None = None
    timezone: str | None = None  # IANA name, when the fan shared it


@dataclass(frozen=True)
class SmartList:
    uuid: str
    name: str
    count: int


@dataclass(frozen=True)
class FanvueChat:
    user_uuid: str
    handle: str
    display_name: str
    last_message_at: datetime | None
    unread_count: int


@dataclass(frozen=True)
class FanvueMessage:
    uuid: str
    text: str
    sent_at: datetime
    sender_uuid: str


# --- errors ------------------------------------------------------------------------------------

class FanvueNotContactable(PermanentError):
    """403 not_contactable: the fan unsubscribed or blocked the creator; do not retry."""


class FanvueVersionSunset(PermanentError):
    """410: Fanvue no longer serves our API version; `.next_version` is the one to move to."""

    def __init__(self, message: str, *, system: str = SYSTEM, status: int | None = None,
                 reason: str = "", next_version: str | None = None) -> None:
        super().__init__(message, system=system, status=status, reason=reason)
        self.next_version = next_version


class FanvueNotFound(PermanentError):
    """404: Fanvue does not know the user (or list)."""


class FanvueValidationError(PermanentError):
    """400 with Fanvue's `{"errors": [{"field", "message"}]}`; `.reason` lists them."""


def classify(response: httpx.Response) -> Outcome | None:
    """Fanvue's error bodies into reasons that keep what callers need (the contactability
    code, nextVersion, the validation fields); None lets the status code decide."""
    status = response.status_code
    if status < 400:
        return None
    body = json_body(response)
    body = body if isinstance(body, dict) else {}
    error, message = body.get("error"), body.get("message")
    words = ": ".join(str(p) for p in (error, message) if isinstance(p, str) and p)
    if status == 410:
        nxt = body.get("nextVersion")
        suffix = f" (nextVersion {nxt})" if isinstance(nxt, str) and nxt else ""
        return Outcome(Kind.PERMANENT, (words or "version sunset") + suffix)
    if status == 400 and isinstance(body.get("errors"), list):
        parts = [f"{e.get('field') or '?'}: {e.get('message') or ''}".rstrip(": ")
                 for e in body["errors"] if isinstance(e, dict)]
        return Outcome(Kind.PERMANENT, "; ".join(parts) or "validation failed")
    if words:
        return classify_status(status, reason=words, retry_after=header_retry_after(response))
    return None


def _refine(exc: PermanentError) -> PermanentError:
    """The shared layer's PermanentError as the Fanvue error it stands for."""
    kwargs = {"system": exc.system, "status": exc.status, "reason": exc.reason}
    if exc.status == 403 and exc.reason.startswith("not_contactable"):
        return FanvueNotContactable(str(exc), **kwargs)
    if exc.status == 410:
        match = _NEXT_VERSION.search(exc.reason)
        return FanvueVersionSunset(str(exc), next_version=match.group(1) if match else None,
                                   **kwargs)
    if exc.status == 404:
        return FanvueNotFound(str(exc), **kwargs)
    if exc.status == 400:
        return FanvueValidationError(str(exc), **kwargs)
    return exc


# --- parsing (pure) ----------------------------------------------------------------------------

def _invalid(where: str, problem: str) -> InvalidResponse:
    return InvalidResponse(f"{SYSTEM}: {where}: {problem}", system=SYSTEM, reason=problem)


def _str(obj: dict[str, Any], name: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not value and not optional):
        got = "missing" if name not in obj else f"a {type(value).__name__}"
        raise _invalid(where, f"field {name!r} must be a non-empty string, got {got}")
    return value


def _int(obj: dict[str, Any], name: str, where: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        got = "missing" if name not in obj else f"a {type(value).__name__}"
        raise _invalid(where, f"field {name!r} must be an integer, got {got}")
    return value


def _time(obj: dict[str, Any], name: str, where: str, *, optional: bool = False) -> Any:
    raw = _str(obj, name, where, optional=optional)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(where, f"field {name!r} is not an ISO 8601 time: {raw[:40]!r}") from None
    # Fanvue writes UTC with a Z; a time without an offset is read as UTC too.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(where, f"expected an object, got a {type(value).__name__}")
    return value


def parse_creator(body: dict[str, Any]) -> FanvueCreator:
    where = "GET /users/me"
    return FanvueCreator(uuid=_str(body, "uuid", where), handle=_str(body, "handle", where),
                         display_name=_str(body, "displayName", where))


def parse_subscriber(item: Any, where: str) -> FanvueSubscriber:
    obj = _object(item, where)
    return FanvueSubscriber(
        uuid=_str(obj, "uuid", where), handle=_str(obj, "handle", where),
        display_name=_str(obj, "displayName", where),
        subscribed_at=_time(obj, "subscribedAt", where),
        expires_at=_time(obj, "expiresAt", where, optional=True),
        tier=_str(obj, "tier", where, optional=True),
        timezone=_str(obj, "timezone", where, optional=True))


def parse_smart_list(item: Any) -> SmartList:
    where = "GET /chats/lists/smart"
    obj = _object(item, where)
    return SmartList(uuid=_str(obj, "uuid", where), name=_str(obj, "name", where),
                     count=_int(obj, "count", where))


def parse_chat(item: Any) -> FanvueChat:
    where = "GET /chats"
    obj = _object(item, where)
    user = _object(obj.get("user"), f"{where}: user")
    return FanvueChat(user_uuid=_str(user, "uuid", where), handle=_str(user, "handle", where),
                      display_name=_str(user, "displayName", where),
                      last_message_at=_time(obj, "lastMessageAt", where, optional=True),
                      unread_count=_int(obj, "unreadMessagesCount", where))


def parse_message(item: Any, where: str) -> FanvueMessage:
    obj = _object(item, where)
    text = obj.get("text")
    if not isinstance(text, str):
        raise _invalid(where, f"field 'text' must be a string, got "
                              f"{'missing' if 'text' not in obj else type(text).__name__}")
    return FanvueMessage(uuid=_str(obj, "uuid", where), text=text,
                         sent_at=_time(obj, "sentAt", where),
                         sender_uuid=_str(obj, "senderUuid", where))


def _page(body: dict[str, Any], where: str) -> tuple[list[Any], bool]:
    data = body.get("data")
    if not isinstance(data, list):
        raise _invalid(where, "field 'data' must be a list")
    pagination = _object(body.get("pagination"), f"{where}: pagination")
    more = pagination.get("hasMore")
    if not isinstance(more, bool):
        raise _invalid(where, "field 'pagination.hasMore' must be true or false")
    if more and not data:
        raise _invalid(where, "hasMore is true on an empty page")  # would loop forever
    return data, more


def check_text(text: str) -> None:
    """Fanvue's rule for a message: 1..5000 characters."""
    if not isinstance(text, str) or not 1 <= len(text) <= TEXT_MAX:
        size = len(text) if isinstance(text, str) else type(text).__name__
        raise ValueError(f"Fanvue message text must be 1..{TEXT_MAX} characters, got {size}")


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE}, got {size!r}")


def _check_uuid(value: str, name: str) -> None:
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"{name} must be a non-empty id without '/', got {value!r}")


# --- the client --------------------------------------------------------------------------------

def fanvue_limiter(*, store: RateLimitStore | None = None, limit: int = REQUESTS_PER_WINDOW,
                   window: float = RATE_WINDOW, max_wait: float = RATE_WINDOW) -> RateLimiter:
    """Fanvue's per-token budget. Limiters named alike share one budget per token."""
    name = SYSTEM if (limit, window) == (REQUESTS_PER_WINDOW, RATE_WINDOW) \
        else f"{SYSTEM}.{limit}per{window:g}s"
    return RateLimiter(name, limit, window, store=store, max_wait=max_wait)


class FanvueClient(OwnsHttpClient):
    """Typed calls for one creator's access token; every request goes through resources.http.

    `limit`/`window` override Fanvue's 100 requests / 60 s (tests); `max_wait` is how long a
    call may wait for a slot before RateLimited; `retry` and `inner` as in make_client.
    """

    def __init__(self, access_token: str, base_url: str, *, timeout: float = 30.0,
                 rate_store: RateLimitStore | None = None, limit: int = REQUESTS_PER_WINDOW,
                 window: float = RATE_WINDOW, max_wait: float = RATE_WINDOW,
                 retry: RetryPolicy | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        if not access_token:
            raise ValueError("Fanvue needs an access token")
        self.base_url = base_url.rstrip("/")
        self.limiter = fanvue_limiter(store=rate_store, limit=limit, window=window,
                                      max_wait=max_wait)
        self._http = make_client(
            SYSTEM, base_url=self.base_url,
            headers={"Authorization": f"Bearer {access_token}", VERSION_HEADER: API_VERSION,
                     "Accept": "application/json"},
            timeout=timeout, retry=retry, classifier=classify, inner=inner,
            limits=[Limit(self.limiter, key=by_header("authorization"))])

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return json_request(self._http, "GET", path, params=params)
        except PermanentError as exc:
            raise _refine(exc) from exc

    def _pages(self, path: str, size: int) -> Iterator[Any]:
        _check_size(size)
        page = 1
        while True:
            data, more = _page(self._get(path, {"page": page, "size": size}), f"GET {path}")
            yield from data
            if not more:
                return
            page += 1

    def me(self) -> FanvueCreator:
        return parse_creator(self._get("/users/me"))

    def subscribers(self, page_size: int = MAX_PAGE_SIZE) -> Iterator[FanvueSubscriber]:
        """Every subscriber, all pages (fetched lazily)."""
        for item in self._pages("/subscribers", page_size):
            yield parse_subscriber(item, "GET /subscribers")

    def smart_lists(self) -> list[SmartList]:
        body = self._get("/chats/lists/smart")
        data = body.get("data")
        if not isinstance(data, list):
            raise _invalid("GET /chats/lists/smart", "field 'data' must be a list")
        return [parse_smart_list(item) for item in data]

    def smart_list_members(self, list_uuid: str,
                           page_size: int = MAX_PAGE_SIZE) -> Iterator[FanvueSubscriber]:
        _check_uuid(list_uuid, "list_uuid")
        path = f"/chats/lists/smart/{list_uuid}"
        for item in self._pages(path, page_size):
            yield parse_subscriber(item, f"GET {path}")

    def chats(self, page_size: int = MAX_PAGE_SIZE) -> Iterator[FanvueChat]:
        for item in self._pages("/chats", page_size):
            yield parse_chat(item)

    def messages(self, user_uuid: str, limit: int = MAX_PAGE_SIZE) -> list[FanvueMessage]:
        """Up to `limit` messages of the chat with `user_uuid`, newest first."""
        _check_uuid(user_uuid, "user_uuid")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        path = f"/chats/{user_uuid}/messages"
        out: list[FanvueMessage] = []
        for item in self._pages(path, min(limit, MAX_PAGE_SIZE)):
            out.append(parse_message(item, f"GET {path}"))
            if len(out) >= limit:
                break
        return out

    def send_message(self, user_uuid: str, text: str) -> str:
        """Send a DM; returns Fanvue's messageUuid. Sent at most once (see the module doc)."""
        _check_uuid(user_uuid, "user_uuid")
        check_text(text)
        path = f"/chats/{user_uuid}/message"
        try:
            body = json_request(self._http, "POST", path, json={"text": text},
                                extensions={IDEMPOTENT: False})
        except PermanentError as exc:
            raise _refine(exc) from exc
        return _str(body, "messageUuid", f"POST {path}")


# --- OAuth -------------------------------------------------------------------------------------

def oauth_classify(response: httpx.Response) -> Outcome | None:
    """`{"error": "invalid_grant", ...}`: a refresh token or client Fanvue no longer accepts
    means authorising again (AuthError)."""
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, str) or not error:
        return None
    reason = f"{error}: {body.get('error_description') or ''}".rstrip(": ")
    if error in ("invalid_grant", "invalid_client", "unauthorized_client", "access_denied"):
        return Outcome(Kind.AUTH, reason)
    return classify_status(response.status_code if response.status_code >= 400 else 400,
                           reason=reason, retry_after=header_retry_after(response))


def refresh_tokens(token_url: str, client_id: str, client_secret: str, refresh_token: str, *,
                   timeout: float = 30.0, retry: RetryPolicy | None = None) -> TokenSet:
    """A new access token AND a new refresh token from `token_url` (the full endpoint URL).

    AuthError when Fanvue rejects the refresh token or the client: authorise again. Never
    resent once it may have arrived: a lost answer (UnknownOutcome) may have rotated it."""
    for secret in (client_secret, refresh_token):
        register_secret(secret)
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": client_id, "client_secret": client_secret}
    # The shared layer raises the HttpError for any error answer (invalid_grant: AuthError).
    with make_client(SYSTEM, timeout=timeout, retry=retry, classifier=oauth_classify) as http:
        response = http.request("POST", token_url, data=form,
                                headers={"Accept": "application/json"},
                                extensions={IDEMPOTENT: False})
        response.read()
    body = parse_json_object(response, system=SYSTEM, require=["access_token"])
    where = f"POST {httpx.URL(token_url).path}"
    access = _str(body, "access_token", where)
    register_secret(access)
    new_refresh = body.get("refresh_token")
    fresh = new_refresh if isinstance(new_refresh, str) and new_refresh else None
    register_secret(fresh)
    expires = body.get("expires_in")
    return TokenSet(access_token=access, refresh_token=fresh,
                    expires_in=expires if isinstance(expires, int)
                    and not isinstance(expires, bool) else None,
                    refresh_expires_in=None)


# --- Dagster resource --------------------------------------------------------------------------

class FanvueResource(dg.ConfigurableResource):
    """Fanvue for the pipeline. Defaults come from settings: the sandbox's /fanvue and its
    app credentials in sandbox mode; https://api.fanvue.com and FANVUE_CLIENT_ID /
    FANVUE_CLIENT_SECRET in production. Access tokens come from the caller (per creator)."""

    base_url: str | None = Field(default=None, description="Default FANVUE_API_URL.")
    client_id: str | None = Field(default=None, description="Default FANVUE_CLIENT_ID.")
    client_secret: str | None = Field(default=None,
                                      description="Default FANVUE_CLIENT_SECRET.")
    token_url: str | None = Field(default=None, description="OAuth token endpoint; default "
                                  "<base_url>/oauth/token.")
    timeout_seconds: float | None = Field(default=None,
                                          description="Default HTTP_TIMEOUT_SECONDS.")

    def resolved_base_url(self) -> str:
        return (self.base_url or get_settings().service_url(
            "FANVUE_API_URL", SYSTEM, PRODUCTION_URL)).rstrip("/")

    def resolved_token_url(self) -> str:
        return self.token_url or f"{self.resolved_base_url()}{TOKEN_PATH}"

    def _timeout(self) -> float:
        return self.timeout_seconds or get_settings().http_timeout

    def client(self, access_token: str,
               rate_store: RateLimitStore | None = None) -> FanvueClient:
        return FanvueClient(access_token, self.resolved_base_url(), timeout=self._timeout(),
                            rate_store=rate_store)

    def credentials(self) -> tuple[str, str]:
        settings = get_settings()
        client_id = self.client_id or settings.get("FANVUE_CLIENT_ID",
                                                   sandbox_default=SANDBOX_CLIENT_ID)
        secret = self.client_secret or settings.get("FANVUE_CLIENT_SECRET",
                                                    sandbox_default=SANDBOX_CLIENT_SECRET)
        if not client_id or not secret:
            raise ConfigError("FANVUE_CLIENT_ID and FANVUE_CLIENT_SECRET must be set")
        return client_id, secret

    def refresher(self) -> Callable[[str], TokenSet]:
        """`refresh_tokens` with this app's credentials: what waifugen_assets.core.tokens calls."""
        client_id, secret = self.credentials()
        url, timeout = self.resolved_token_url(), self._timeout()
        return lambda token: refresh_tokens(url, client_id, secret, token, timeout=timeout)
