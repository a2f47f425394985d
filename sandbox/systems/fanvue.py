"""Fanvue API (docs/subscriber-channels.md) with a simulated audience and signed webhooks.

Routes below the `/fanvue` mount (https://api.fanvue.com); every API route needs
`X-Fanvue-API-Version` (missing or malformed: 400; older than the creator's current version,
2025-06-26 by default: 410 `{"error","message","nextVersion"}`; newer: 400) and
`Authorization: Bearer <access token>` (401 `{"error"}`), in that order:

- `GET /users/me` -> `{uuid, handle, displayName}`
- `GET /subscribers?page&size` -> the creator's active subscribers (not cancelled or blocked),
  oldest first: `{"data": [...], "pagination": {page, size, hasMore}}`; page >= 1 (default 1),
  size 1..50 (default 20), else 400 `{"errors": [{"field", "message"}]}`
- `GET /chats/lists/smart` -> `{"data": [{uuid, name, count}]}`: Subscribers, Expired
  subscribers (cancelled), Tippers; `GET /chats/lists/smart/{uuid}?page&size` -> its members
- `GET /chats?page&size` -> chats (fans with at least one message), most recent first:
  `{"user": {uuid, handle, displayName}, "lastMessageAt", "unreadMessagesCount"}`
- `GET /chats/{userUuid}/messages?page&size` -> `{uuid, text, sentAt, senderUuid}`, newest first
- `POST /chats/{userUuid}/message {"text", "mediaUuids"?, "price"?}` -> `{"messageUuid"}`;
  text 1..5000 characters, mediaUuids a list of strings, price null or an integer >= 300
  (400 `{"errors"}`); unknown user 404 `{"message"}`; cancelled or blocked 403
  `{"error": "not_contactable", "message": "User is not contactable"}`
- `POST /oauth/token` (form: grant_type=refresh_token, refresh_token, client_id,
  client_secret) -> `{access_token, refresh_token, expires_in, token_type, scope}`; no version
  header needed; errors `{"error", "error_description"}` (400 invalid_request /
  invalid_grant / unsupported_grant_type)

Rate limit: `rate_limit` (100) requests per `rate_window` (60 s) per access token, sliding
window; every authenticated answer carries X-RateLimit-Limit / -Remaining / -Reset (seconds
until a slot frees); beyond it 429 `{"error": "rate_limited", "message"}` + Retry-After.

Tokens need no seeding: `fv_at.sandbox.<account>` is an access token of creator `<account>`
(`[A-Za-z0-9_-]{1,64}`, created on first use, uuid derived from the account name) and
`fv_rt.sandbox.<account>` its refresh token. Refresh tokens ROTATE: the n-th refresh returns
`fv_at.sandbox.<account>.<n>` / `fv_rt.sandbox.<account>.<n>`, and only the newest refresh
token works (else 400 invalid_grant). Access tokens never expire by themselves;
`POST /_control/expire_token {"access_token"}` makes one answer 401 for good.

Simulated audience: deterministic from the seed, the creator and an INJECTED day or time (the
wall clock is used only for `at`-less control actions, sends and webhook signatures):
- `POST /_control/creators {"creator", "handle"?, "displayName"?, "api_version"?,
  "rate_limit"?, "rate_window"?}` -> the creator (config for tests: a sunset, small limits)
- `POST /_control/subscribers {"creator", "handle"?, "displayName"?, "subscribedAt"?,
  "timezone"?, "tier"?}` -> the subscriber; emits `subscriber.created`.
  `GET /_control/subscribers?creator=` -> every subscriber with `status`.
- `POST /_control/act {"creator", "userUuid", "action", "text"?, "amount"?, "currency"?,
  "at"?}` -> `{"event": body or null, "subscriber"}`. reply / stop (text "STOP"):
  message.received (the fan's message is in the chat); cancel: subscriber.cancelled; renew:
  subscriber.renewed (active again unless blocked, expiresAt + 30 days); tip: tip.received;
  purchase: purchase.completed; block: no event (the contract has no such webhook; the next
  send gets 403). cancel and block make the user not contactable.
- `POST /_control/simulate {"creator", "day": "YYYY-MM-DD", "signups"?}` -> `{"day", "new",
  "events"}`: sign-ups, replies, an occasional STOP, tip, purchase, cancellation and the
  renewals of subscriptions whose 30-day period ends that day, at times inside the day; the
  same for the same seed,
  creator, day and prior state; a day already simulated returns its events again (`new`
  false) and creates nothing.
- `GET /_control/events?creator=&after=<event id>` -> webhook bodies in creation order.
- `POST /_control/deliver {"url", "secret", "creator"?}` -> `{"delivered", "failed"}`:
  POSTs every undelivered event (loopback URLs only) signed with X-Fanvue-Signature; 2xx
  marks it delivered, anything else is tried again by the next call.
- `GET /_control/sent?creator=` -> what the creator sent: `{userUuid, text, uuid, sentAt}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.control import BadControlBody, read_control_body
from sandbox.system import System, SystemContext

CURRENT_VERSION = "2025-06-26"
VERSION_HEADER = "x-fanvue-api-version"
ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}")
ACCESS_TOKEN = re.compile(r"fv_at\.sandbox\.([A-Za-z0-9_-]{1,64})(?:\.([1-9][0-9]{0,8}))?")
REFRESH_TOKEN = re.compile(r"fv_rt\.sandbox\.([A-Za-z0-9_-]{1,64})(?:\.([1-9][0-9]{0,8}))?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 50, 20
TEXT_MAX = 5000
MIN_PRICE = 300
SUBSCRIPTION_DAYS = 30
ACCESS_TTL = 3600
SCOPE = "openid offline_access read:self read:chat write:chat read:creator read:fan"
DEFAULTS: dict[str, Any] = {"rate_limit": 100, "rate_window": 60.0,
                            "api_version": CURRENT_VERSION}
TIER_PRICES = {"basic": 999, "vip": 1999}
ACTIONS = ("reply", "stop", "cancel", "renew", "tip", "purchase", "block")
SMART_LISTS = (("subscribers", "Subscribers"), ("expired_subscribers", "Expired subscribers"),
               ("tippers", "Tippers"))
TIMEZONES = ("America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin",
             "Asia/Tokyo", "Australia/Sydney", None)
_ADJECTIVES = ("sunny", "quiet", "lucky", "midnight", "velvet", "cosmic", "gentle", "wild")
_NOUNS = ("fox", "river", "pixel", "comet", "maple", "tiger", "echo", "rider")
_REPLIES = ("hey! loved the new video", "good morning 😊", "what are you up to today?",
            "haha that was cute", "can't wait for the next one", "thanks for the message!",
            "you made my day", "where was that filmed?")


class FanvueError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def validation(field: str, message: str) -> FanvueError:
    return FanvueError(_json({"errors": [{"field": field, "message": message}]}, 400))


def error_response(status: int, message: str, retry_after: float | None) -> Response:
    """Fanvue's error bodies, also for injected faults."""
    if status == 429:
        seconds = max(1, math.ceil(retry_after or 1))
        return _json({"error": "rate_limited", "message": message or "Too many requests"}, 429,
                     {"Retry-After": str(seconds)})
    if status == 400:
        return _json({"errors": [{"field": "", "message": message}]}, 400)
    if status == 404:
        return _json({"message": message or "Not found"}, 404)
    if status == 410:
        return _json({"error": "gone", "message": message, "nextVersion": CURRENT_VERSION}, 410)
    if status >= 500:
        return _json({"error": "internal_error", "message": message}, status)
    return _json({"error": message or "error"}, status)


def _iso(moment: dt.datetime) -> str:
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(dt.UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _parse_time(raw: Any, field: str) -> dt.datetime:
    if not isinstance(raw, str):
        raise validation(field, "must be an ISO 8601 time")
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise validation(field, "must be an ISO 8601 time") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uuid_of(*parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def creator_uuid(account: str) -> str:
    """The creator's uuid: derived from the account name alone, so tests can predict it."""
    return _uuid_of("fanvue-creator", account)


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- webhook signatures ------------------------------------------------------------------------
# Written here from the published scheme (docs/subscriber-channels.md: Stripe-style), never
# imported from the client, so a bug in the client's signer cannot hide behind the fake:
#     X-Fanvue-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

SIGNATURE_HEADER = "X-Fanvue-Signature"


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Fanvue-Signature value for the raw `body` sent at `timestamp` (unix seconds)."""
    seconds = int(timestamp)
    signed = str(seconds).encode("ascii") + b"." + body
    mac = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={seconds},v1={mac}"


# --- pure helpers ------------------------------------------------------------------------------

def _bad(message: str, status: int = 400) -> JSONResponse:
    return _json({"error": message}, status)


def _unauthorized(detail: str) -> FanvueError:
    return FanvueError(_json({"error": f"Unauthorized: {detail}"}, 401))


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _account_of(raw: Any) -> str:
    if not isinstance(raw, str) or not ACCOUNT.fullmatch(raw):
        raise FanvueError(_bad("creator must match [A-Za-z0-9_-]{1,64}"))
    return raw


def _maybe_account(raw: Any) -> str | None:
    return None if raw is None else _account_of(raw)


def _optional_time(body: dict[str, Any], name: str) -> dt.datetime:
    try:
        return _now() if body.get(name) is None else _parse_time(body[name], name)
    except FanvueError:
        raise FanvueError(_bad(f"{name} must be an ISO 8601 time")) from None


def _public_sub(sub: dict[str, Any]) -> dict[str, Any]:
    out = {k: sub[k] for k in ("uuid", "handle", "displayName", "subscribedAt", "expiresAt")}
    out.update({k: sub[k] for k in ("tier", "timezone") if sub.get(k)})
    return out


def _contactable(sub: dict[str, Any]) -> bool:
    return sub["status"] == "active"


def _paging(request: Request) -> tuple[int, int]:
    values = []
    for name, default, high in (("page", 1, None), ("size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)):
        raw = request.query_params.get(name)
        if raw is None:
            values.append(default)
            continue
        if not raw.isdigit() or int(raw) < 1 or (high is not None and int(raw) > high):
            bound = f"between 1 and {high}" if high else "an integer >= 1"
            raise validation(name, f"must be {bound}")
        values.append(int(raw))
    return values[0], values[1]


def _page_of(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
    page, size = _paging(request)
    start = (page - 1) * size
    return _json({"data": items[start:start + size],
                  "pagination": {"page": page, "size": size,
                                 "hasMore": start + size < len(items)}})


def _smart_uuid(account: str, key: str) -> str:
    return _uuid_of("fanvue-smart-list", account, key)


def _unread(sub: dict[str, Any], newest_first: list[dict[str, Any]]) -> int:
    """The fan's messages since the creator's last one."""
    unread = 0
    for message in newest_first:
        if message["senderUuid"] != sub["uuid"]:
            break
        unread += 1
    return unread


async def _message_body(request: Request) -> tuple[str, list[str], int | None]:
    """(text, mediaUuids, price) of a send, else 400 {"errors"}."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise validation("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise validation("body", "must be a JSON object")
    text = body.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= TEXT_MAX:
        raise validation("text", f"must be a string of 1 to {TEXT_MAX} characters")
    media = body.get("mediaUuids", [])
    if not isinstance(media, list) or not all(isinstance(m, str) and m for m in media):
        raise validation("mediaUuids", "must be a list of media uuids")
    price = body.get("price")
    if price is not None and (not _is_int(price) or price < MIN_PRICE):
        raise validation("price", f"must be null or an integer >= {MIN_PRICE}")
    return text, media, price


def _oauth_error(error: str, description: str) -> JSONResponse:
    return _json({"error": error, "error_description": description}, 400)


async def _refresh_form(request: Request) -> tuple[dict[str, str], JSONResponse | None]:
    """(form, None) of a refresh_token grant, else ({}, the OAuth error answer)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}, _oauth_error("invalid_request",
                                "Content-Type must be application/x-www-form-urlencoded")
    try:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}, _oauth_error("invalid_request", "the body is not form data")
    for name in ("grant_type", "client_id", "client_secret"):
        if not form.get(name):
            return {}, _oauth_error("invalid_request", f"{name} is required")
    if form["grant_type"] != "refresh_token":
        return {}, _oauth_error("unsupported_grant_type",
                                f"grant_type {form['grant_type']} is not supported here")
    return form, None


def _strings(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The given non-null `names` of `body`, each a non-empty string, else 400."""
    fields: dict[str, str] = {}
    for name in names:
        if body.get(name) is not None:
            if not isinstance(body[name], str) or not body[name]:
                raise FanvueError(_bad(f"{name} must be a non-empty string"))
            fields[name] = body[name]
    return fields


def _creator_changes(body: dict[str, Any],
                     config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(profile changes, new config) of a POST /_control/creators body, else 400."""
    changes: dict[str, Any] = {}
    for name in ("handle", "displayName"):
        if name in body:
            if not isinstance(body[name], str) or not body[name]:
                raise FanvueError(_bad(f"{name} must be a non-empty string"))
            changes[name] = body[name]
    cfg = dict(config)
    if "api_version" in body:
        if not isinstance(body["api_version"], str) or not DATE.fullmatch(body["api_version"]):
            raise FanvueError(_bad("api_version must be YYYY-MM-DD"))
        cfg["api_version"] = body["api_version"]
    if "rate_limit" in body:
        if not _is_int(body["rate_limit"]) or body["rate_limit"] < 1:
            raise FanvueError(_bad("rate_limit must be an integer >= 1"))
        cfg["rate_limit"] = body["rate_limit"]
    if "rate_window" in body:
        window = body["rate_window"]
        if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
            raise FanvueError(_bad("rate_window must be a number of seconds > 0"))
        cfg["rate_window"] = float(window)
    return changes, cfg


def _act_options(body: dict[str, Any]) -> dict[str, Any]:
    """text, amount and currency of a POST /_control/act body, else 400."""
    text, amount = body.get("text"), body.get("amount")
    if text is not None and (not isinstance(text, str) or not 1 <= len(text) <= TEXT_MAX):
        raise FanvueError(_bad(f"text must be a string of 1 to {TEXT_MAX} characters"))
    if amount is not None and (not _is_int(amount) or amount < 1):
        raise FanvueError(_bad("amount must be a positive integer (cents)"))
    currency = body.get("currency", "USD")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise FanvueError(_bad("currency must be a 3-letter ISO code"))
    return {"text": text, "amount": amount, "currency": currency}


def _simulated_day(body: dict[str, Any]) -> tuple[dt.date, int | None]:
    """(day, signups) of a POST /_control/simulate body, else 400."""
    day_raw, signups = body.get("day"), body.get("signups")
    try:
        day = dt.date.fromisoformat(day_raw) if isinstance(day_raw, str) and DATE.fullmatch(
            day_raw) else None
    except ValueError:
        day = None
    if day is None:
        raise FanvueError(_bad("day must be a date YYYY-MM-DD"))
    if signups is not None and (not _is_int(signups) or not 0 <= signups <= 500):
        raise FanvueError(_bad("signups must be an integer 0..500"))
    return day, signups


def _delivery_target(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """(url, secret, creator or None) of a POST /_control/deliver body, else 400."""
    url, secret = body.get("url"), body.get("secret")
    account = _maybe_account(body.get("creator"))
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise FanvueError(_bad("url must be an http(s) URL"))
    host = httpx.URL(url).host
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise FanvueError(_bad("the sandbox delivers to loopback URLs only"))
    if not isinstance(secret, str) or not secret:
        raise FanvueError(_bad("secret is required"))
    return url, secret, account


Plan = list[tuple[dt.datetime, int, str, Any]]
Handler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class FanvueSystem:
    """Fanvue's creator API (subscribers, chats, sends, OAuth refresh) over a deterministic
    simulated audience whose actions become signed webhook events."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.rate_logs: dict[str, deque[float]] = {}
        self.deliver_lock = asyncio.Lock()

    # --- helpers: creators, config, tokens ---------------------------------------------------

    def rng_uuid(self, *parts: object) -> str:
        return str(uuid.UUID(int=self.ctx.rng(*parts).getrandbits(128), version=4))

    def creator(self, account: str) -> dict[str, Any]:
        existing = self.state.get(f"creator/{account}")
        if existing is not None:
            return existing
        return self.state.update(f"creator/{account}", lambda c: c or {
            "account": account, "uuid": creator_uuid(account), "handle": account.lower(),
            "displayName": account, "config": {}, "refresh_gen": 0}, default=None)

    def config(self, account: str) -> dict[str, Any]:
        return {**DEFAULTS, **self.creator(account)["config"]}

    def authenticate(self, request: Request) -> tuple[str, str]:
        """(account, token fingerprint) of a valid access token, else 401."""
        token = _bearer(request)
        if token is None:
            raise _unauthorized("missing Authorization: Bearer header")
        match = ACCESS_TOKEN.fullmatch(token)
        if match is None:
            raise _unauthorized("unknown access token")
        account, generation = match.group(1), int(match.group(2) or 0)
        if generation > self.creator(account)["refresh_gen"]:
            raise _unauthorized("unknown access token")
        fp = _fingerprint(token)
        if self.state.get(f"expired/{fp}"):
            raise _unauthorized("the access token has expired")
        return account, fp

    def check_version(self, request: Request) -> None:
        version = request.headers.get(VERSION_HEADER)
        if not version:
            raise validation("X-Fanvue-API-Version", "header is required")
        if not DATE.fullmatch(version):
            raise validation("X-Fanvue-API-Version", "must be a date (YYYY-MM-DD)")
        # Which version the API serves can be set per creator (to test a sunset), so look at
        # whose token this is without validating it yet.
        match = ACCESS_TOKEN.fullmatch(_bearer(request) or "")
        current = self.config(match.group(1))["api_version"] if match else CURRENT_VERSION
        if version < current:
            raise FanvueError(_json({
                "error": "gone", "message": f"API version {version} has been sunset",
                "nextVersion": current}, 410))
        if version > current:
            raise validation("X-Fanvue-API-Version", f"unsupported version {version}")

    def admit(self, account: str, fp: str) -> dict[str, str]:
        """Count one request against the token's window; the X-RateLimit-* headers, or 429."""
        cfg = self.config(account)
        limit, window, now = int(cfg["rate_limit"]), float(cfg["rate_window"]), time.monotonic()
        log = self.rate_logs.setdefault(fp, deque())
        while log and log[0] <= now - window:
            log.popleft()
        refused = len(log) >= limit
        if not refused:
            log.append(now)
        reset = max(1, math.ceil(log[0] + window - now)) if log else math.ceil(window)
        headers = {"X-RateLimit-Limit": str(limit),
                   "X-RateLimit-Remaining": str(max(0, limit - len(log))),
                   "X-RateLimit-Reset": str(reset)}
        if refused:
            raise FanvueError(_json({"error": "rate_limited", "message": (
                f"Rate limit of {limit} requests per {window:g} s exceeded")}, 429,
                {**headers, "Retry-After": str(reset)}))
        return headers

    def api(self, handler: Handler) -> Endpoint:
        """An API route: version header, auth and rate limit around `handler`."""
        async def endpoint(request: Request) -> Response:
            try:
                self.check_version(request)
                account, fp = self.authenticate(request)
                headers = self.admit(account, fp)
            except FanvueError as exc:
                return exc.response
            try:
                response = await handler(request, account)
            except FanvueError as exc:
                response = exc.response
            response.headers.update(headers)
            return response
        return endpoint

    def control(self, handler: Endpoint) -> Endpoint:
        """A control route: FanvueError and a bad JSON body become their answers."""
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except BadControlBody as exc:
                return _bad(str(exc))
            except FanvueError as exc:
                return exc.response
        return endpoint

    # --- helpers: subscribers, messages, events ----------------------------------------------

    def subscriber(self, account: str, user_uuid: str) -> dict[str, Any]:
        sub = self.state.get(f"sub/{account}/{user_uuid}")
        if sub is None:
            raise FanvueError(_json({"message": f"User {user_uuid} not found"}, 404))
        return sub

    def subscribers_of(self, account: str) -> list[dict[str, Any]]:
        return sorted(self.state.list_prefix(f"sub/{account}/").values(),
                      key=lambda s: s["seq"])

    def emit(self, account: str, kind: str, data: dict[str, Any], at: dt.datetime,
             event_id: str) -> dict[str, Any]:
        body = {"id": f"evt_{event_id}", "type": kind, "createdAt": _iso(at),
                "creatorUuid": self.creator(account)["uuid"], "data": data}
        seq = self.state.next_id("event")
        self.state.put(f"event/{account}/{seq:010d}", {
            "seq": seq, "body": body, "delivered": False, "attempts": 0, "last_status": None})
        return body

    def events_of(self, account: str | None) -> list[dict[str, Any]]:
        found = self.state.list_prefix(f"event/{account}/" if account else "event/").values()
        return sorted(found, key=lambda e: e["seq"])

    def store_message(self, account: str, user_uuid: str, message: dict[str, Any]) -> None:
        seq = self.state.next_id("message")
        self.state.put(f"msg/{account}/{user_uuid}/{seq:010d}", {**message, "seq": seq})

    def messages_of(self, account: str, user_uuid: str) -> list[dict[str, Any]]:
        found = self.state.list_prefix(f"msg/{account}/{user_uuid}/").values()
        return sorted(found, key=lambda m: (_parse_time(m["sentAt"], "sentAt"), m["seq"]),
                      reverse=True)

    def smart_members(self, account: str, key: str) -> list[dict[str, Any]]:
        subs = self.subscribers_of(account)
        if key == "subscribers":
            return [s for s in subs if _contactable(s)]
        if key == "expired_subscribers":
            return [s for s in subs if s["status"] == "cancelled"]
        return [s for s in subs if s.get("tips", 0) > 0 and s["status"] != "blocked"]

    def add_subscriber(self, account: str, fields: dict[str, Any], at: dt.datetime,
                       ids: tuple[object, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
        rng = self.ctx.rng("subscriber", account, *ids)
        adjective, noun = rng.choice(_ADJECTIVES), rng.choice(_NOUNS)
        user_uuid = self.rng_uuid("subscriber-uuid", account, *ids)
        handle = fields.get("handle") or f"{adjective}{noun}{rng.randrange(10, 1000)}"
        tier = fields.get("tier") or rng.choice(("basic", "basic", "vip"))
        timezone = fields.get("timezone") if "timezone" in fields else rng.choice(TIMEZONES)
        sub = {"uuid": user_uuid, "handle": handle,
               "displayName": fields.get("displayName") or f"{adjective.title()} "
                                                            f"{noun.title()}",
               "subscribedAt": _iso(at),
               "expiresAt": _iso(at + dt.timedelta(days=SUBSCRIPTION_DAYS)),
               "tier": tier, "timezone": timezone, "status": "active",
               "seq": self.state.next_id(f"sub/{account}"), "tips": 0}
        self.state.put(f"sub/{account}/{user_uuid}", sub)
        data = {"userUuid": user_uuid, "handle": sub["handle"],
                "displayName": sub["displayName"], "subscribedAt": sub["subscribedAt"]}
        data.update({k: sub[k] for k in ("tier", "timezone") if sub.get(k)})
        return sub, self.emit(account, "subscriber.created", data, at,
                              self.rng_uuid("event", account, *ids))

    # --- helpers: fan actions ----------------------------------------------------------------

    def act(self, account: str, sub: dict[str, Any], action: str, at: dt.datetime,
            ids: tuple[object, ...], text: str | None = None, amount: int | None = None,
            currency: str = "USD") -> dict[str, Any] | None:
        """One fan action: the state change and the webhook event (None for block)."""
        event_id = self.rng_uuid("event", account, *ids)
        if action in ("reply", "stop"):
            return self.fan_message(account, sub, "STOP" if action == "stop" else text, at,
                                    ids, event_id)
        if action in ("cancel", "block"):
            return self.fan_leaves(account, sub, action, at, event_id)
        if action == "renew":
            return self.fan_renews(account, sub, at, event_id, amount, currency)
        user_uuid, key = sub["uuid"], f"sub/{account}/{sub['uuid']}"
        if action == "tip":
            value = amount if amount is not None else 500
            self.state.update(key, lambda s: {**s, "tips": s.get("tips", 0) + value})
            return self.emit(account, "tip.received", {
                "userUuid": user_uuid, "amount": value, "currency": currency}, at, event_id)
        value = amount if amount is not None else 1500  # purchase
        return self.emit(account, "purchase.completed", {
            "userUuid": user_uuid, "purchaseUuid": self.rng_uuid("purchase", account, *ids),
            "amount": value, "currency": currency}, at, event_id)

    def fan_message(self, account: str, sub: dict[str, Any], words: str | None,
                    at: dt.datetime, ids: tuple[object, ...], event_id: str) -> dict[str, Any]:
        user_uuid = sub["uuid"]
        if words is None:
            words = self.ctx.rng("reply-text", account, *ids).choice(_REPLIES)
        message_uuid = self.rng_uuid("message", account, *ids)
        self.store_message(account, user_uuid, {"uuid": message_uuid, "text": words,
                                                "sentAt": _iso(at), "senderUuid": user_uuid})
        return self.emit(account, "message.received", {
            "userUuid": user_uuid, "messageUuid": message_uuid, "text": words,
            "sentAt": _iso(at)}, at, event_id)

    def fan_leaves(self, account: str, sub: dict[str, Any], action: str, at: dt.datetime,
                   event_id: str) -> dict[str, Any] | None:
        status = "cancelled" if action == "cancel" else "blocked"
        self.state.update(f"sub/{account}/{sub['uuid']}", lambda s: {
            **s, "status": status if s["status"] != "blocked" else "blocked"})
        if action == "block":
            return None
        return self.emit(account, "subscriber.cancelled", {"userUuid": sub["uuid"]}, at,
                         event_id)

    def fan_renews(self, account: str, sub: dict[str, Any], at: dt.datetime, event_id: str,
                   amount: int | None, currency: str) -> dict[str, Any]:
        price = amount if amount is not None else TIER_PRICES.get(sub.get("tier") or "",
                                                                  TIER_PRICES["basic"])

        def renew(s: dict[str, Any]) -> dict[str, Any]:
            expires = max(_parse_time(s["expiresAt"], "expiresAt"), at)
            return {**s, "status": "blocked" if s["status"] == "blocked" else "active",
                    "expiresAt": _iso(expires + dt.timedelta(days=SUBSCRIPTION_DAYS))}

        self.state.update(f"sub/{account}/{sub['uuid']}", renew)
        return self.emit(account, "subscriber.renewed", {
            "userUuid": sub["uuid"], "amount": price, "currency": currency}, at, event_id)

    # --- helpers: the simulated day ----------------------------------------------------------

    def day_plan(self, account: str, day: dt.date, signups: int | None) -> Plan:
        """(time, order, action, who) of everything that happens that day, in order; who is a
        sign-up's index or a user uuid. A sign-up's hello comes strictly later than the
        sign-up, so sorting keeps them apart."""
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        rng = self.ctx.rng("simulate", account, day.isoformat())
        count = signups if signups is not None else rng.randint(1, 4)

        def at(r: Any) -> dt.datetime:
            return start + dt.timedelta(seconds=r.randrange(86400))

        end_of_day = start + dt.timedelta(seconds=86399)
        plan: Plan = []
        for i in range(count):
            joined = at(rng)
            plan.append((joined, len(plan), "signup", i))
            r = self.ctx.rng("simulate-new", account, day.isoformat(), i)
            if r.random() < 0.5 and joined < end_of_day:
                left = int((end_of_day - joined).total_seconds())
                plan.append((joined + dt.timedelta(seconds=r.randint(1, left)), len(plan),
                             "hello", i))
        for sub in self.subscribers_of(account):
            subscribed = _parse_time(sub["subscribedAt"], "subscribedAt")
            if subscribed >= start or sub["status"] != "active":
                continue
            r = self.ctx.rng("simulate-fan", account, day.isoformat(), sub["uuid"])
            expires = _parse_time(sub["expiresAt"], "expiresAt")
            if expires.date() == day:  # the 30-day period ends today: it renews
                plan.append((expires, len(plan), "renew", sub["uuid"]))
            for action, chance in (("reply", 0.35), ("reply", 0.1), ("tip", 0.08),
                                   ("purchase", 0.05), ("stop", 0.03), ("cancel", 0.03)):
                if r.random() < chance:
                    plan.append((at(r), len(plan), action, sub["uuid"]))
        plan.sort(key=lambda p: (p[0], p[1]))
        return plan

    def run_plan(self, account: str, day: dt.date, plan: Plan) -> list[dict[str, Any]]:
        """Carry out a day's plan; the events it created."""
        created: list[dict[str, Any]] = []
        joined_uuids: dict[int, str] = {}
        for step, (moment, _, action, who) in enumerate(plan):
            ids = ("simulate", day.isoformat(), step)
            if action == "signup":
                sub, event = self.add_subscriber(account, {}, moment, ids)
                joined_uuids[who] = sub["uuid"]
                created.append(event)
                continue
            user_uuid = joined_uuids[who] if action == "hello" else who
            sub = self.state.get(f"sub/{account}/{user_uuid}")
            event = self.act(account, sub, "reply" if action == "hello" else action, moment,
                             ids)
            if event is not None:
                created.append(event)
        return created

    def simulate(self, account: str, day: dt.date, signups: int | None) -> dict[str, Any]:
        done_key = f"simulated/{account}/{day.isoformat()}"
        done = self.state.get(done_key)
        if done is not None:
            wanted = set(done)
            return {"day": day.isoformat(), "new": False,
                    "events": [e["body"] for e in self.events_of(account)
                               if e["body"]["id"] in wanted]}
        self.creator(account)
        self.state.put(done_key, [])  # claimed first: a concurrent or repeated call adds nothing
        created = self.run_plan(account, day, self.day_plan(account, day, signups))
        self.state.put(done_key, [e["id"] for e in created])
        return {"day": day.isoformat(), "new": True, "events": created}

    # --- helpers: delivery -------------------------------------------------------------------

    async def deliver_one(self, client: httpx.AsyncClient, url: str, secret: str, key: str,
                          record: dict[str, Any]) -> bool:
        """POST one event, signed; record the attempt; whether it was accepted (2xx)."""
        raw = json.dumps(record["body"], separators=(",", ":")).encode()
        signature = sign_webhook(secret, raw, int(time.time()))
        try:
            answer = await client.post(url, content=raw, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: signature})
            status: int | None = answer.status_code
        except httpx.HTTPError:
            status = None
        ok = status is not None and 200 <= status < 300
        self.state.update(key, lambda r: {
            **r, "delivered": ok, "attempts": r["attempts"] + 1, "last_status": status})
        return ok

    # --- API routes --------------------------------------------------------------------------

    async def users_me(self, request: Request, account: str) -> Response:
        c = self.creator(account)
        return _json({"uuid": c["uuid"], "handle": c["handle"], "displayName": c["displayName"]})

    async def list_subscribers(self, request: Request, account: str) -> Response:
        return _page_of(request, [_public_sub(s) for s in self.subscribers_of(account)
                                  if _contactable(s)])

    async def smart_lists(self, request: Request, account: str) -> Response:
        return _json({"data": [{"uuid": _smart_uuid(account, key), "name": name,
                                "count": len(self.smart_members(account, key))}
                               for key, name in SMART_LISTS]})

    async def smart_list(self, request: Request, account: str) -> Response:
        wanted = request.path_params["uuid"]
        for key, _ in SMART_LISTS:
            if _smart_uuid(account, key) == wanted:
                return _page_of(request, [_public_sub(s)
                                          for s in self.smart_members(account, key)])
        raise FanvueError(_json({"message": f"Smart list {wanted} not found"}, 404))

    async def list_chats(self, request: Request, account: str) -> Response:
        chats = []
        for sub in self.subscribers_of(account):
            found = self.messages_of(account, sub["uuid"])
            if found:
                chats.append({"user": {"uuid": sub["uuid"], "handle": sub["handle"],
                                       "displayName": sub["displayName"]},
                              "lastMessageAt": found[0]["sentAt"],
                              "unreadMessagesCount": _unread(sub, found)})
        chats.sort(key=lambda c: _parse_time(c["lastMessageAt"], "lastMessageAt"),
                   reverse=True)
        return _page_of(request, chats)

    async def list_messages(self, request: Request, account: str) -> Response:
        user_uuid = request.path_params["user"]
        self.subscriber(account, user_uuid)
        return _page_of(request, [{k: m[k] for k in ("uuid", "text", "sentAt", "senderUuid")}
                                  for m in self.messages_of(account, user_uuid)])

    async def send_message(self, request: Request, account: str) -> Response:
        text, _media, _price = await _message_body(request)
        sub = self.subscriber(account, request.path_params["user"])
        if not _contactable(sub):
            raise FanvueError(_json({"error": "not_contactable",
                                     "message": "User is not contactable"}, 403))
        message_uuid = self.rng_uuid("sent", account, self.state.next_id("sent"))
        self.store_message(account, sub["uuid"], {"uuid": message_uuid, "text": text,
                                                  "sentAt": _iso(_now()),
                                                  "senderUuid": self.creator(account)["uuid"]})
        return _json({"messageUuid": message_uuid})

    async def oauth_token(self, request: Request) -> Response:
        form, error = await _refresh_form(request)
        if error is not None:
            return error
        match = REFRESH_TOKEN.fullmatch(form.get("refresh_token", ""))
        if match is None:
            return _oauth_error("invalid_grant", "unknown refresh token")
        account, generation = match.group(1), int(match.group(2) or 0)
        rotated: list[int] = []

        def rotate(c: dict[str, Any]) -> dict[str, Any]:
            if c["refresh_gen"] != generation:
                return c
            rotated.append(generation + 1)
            return {**c, "refresh_gen": generation + 1}

        self.creator(account)
        self.state.update(f"creator/{account}", rotate)
        if not rotated:
            return _oauth_error("invalid_grant", "the refresh token has been used or revoked")
        n = rotated[0]
        return _json({"access_token": f"fv_at.sandbox.{account}.{n}",
                      "refresh_token": f"fv_rt.sandbox.{account}.{n}",
                      "expires_in": ACCESS_TTL, "token_type": "Bearer", "scope": SCOPE})

    # --- control routes ----------------------------------------------------------------------

    async def control_creators(self, request: Request) -> Response:
        body = await read_control_body(request)
        account = _account_of(body.get("creator"))
        changes, cfg = _creator_changes(body, self.creator(account)["config"])
        c = self.state.update(f"creator/{account}", lambda d: {**d, **changes, "config": cfg})
        suffix = f".{c['refresh_gen']}" if c["refresh_gen"] else ""
        return _json({"creator": account, "uuid": c["uuid"], "handle": c["handle"],
                      "displayName": c["displayName"], "config": {**DEFAULTS, **cfg},
                      "access_token": f"fv_at.sandbox.{account}{suffix}",
                      "refresh_token": f"fv_rt.sandbox.{account}{suffix}"})

    async def control_subscribers(self, request: Request) -> Response:
        if request.method == "GET":
            account = _account_of(request.query_params.get("creator"))
            return _json([{**_public_sub(s), "status": s["status"], "tips": s["tips"]}
                          for s in self.subscribers_of(account)])
        body = await read_control_body(request)
        account = _account_of(body.get("creator"))
        fields = _strings(body, ("handle", "displayName", "timezone", "tier"))
        at = _optional_time(body, "subscribedAt")
        self.creator(account)
        sub, event = self.add_subscriber(account, fields, at,
                                         ("control", self.state.next_id(f"control/{account}")))
        return _json({**_public_sub(sub), "status": sub["status"], "event": event})

    async def control_act(self, request: Request) -> Response:
        body = await read_control_body(request)
        account = _account_of(body.get("creator"))
        action = body.get("action")
        if action not in ACTIONS:
            return _bad(f"action must be one of {list(ACTIONS)}")
        user_uuid = body.get("userUuid")
        if not isinstance(user_uuid, str):
            return _bad("userUuid is required")
        sub = self.state.get(f"sub/{account}/{user_uuid}")
        if sub is None:
            return _bad(f"creator {account} has no subscriber {user_uuid}", 404)
        options = _act_options(body)
        at = _optional_time(body, "at")
        event = self.act(account, sub, action, at,
                         ("control", self.state.next_id(f"control/{account}")), **options)
        after = self.state.get(f"sub/{account}/{user_uuid}")
        return _json({"event": event, "subscriber": {**_public_sub(after),
                                                     "status": after["status"]}})

    async def control_simulate(self, request: Request) -> Response:
        body = await read_control_body(request)
        account = _account_of(body.get("creator"))
        day, signups = _simulated_day(body)
        return _json(self.simulate(account, day, signups))

    async def control_events(self, request: Request) -> Response:
        account = _maybe_account(request.query_params.get("creator"))
        events = self.events_of(account)
        after = request.query_params.get("after")
        if after:
            ids = [e["body"]["id"] for e in events]
            if after not in ids:
                return _bad(f"unknown event id {after}", 404)
            events = events[ids.index(after) + 1:]
        return _json([e["body"] for e in events])

    async def control_deliver(self, request: Request) -> Response:
        body = await read_control_body(request)
        url, secret, account = _delivery_target(body)
        delivered = failed = 0
        async with self.deliver_lock, httpx.AsyncClient(timeout=10.0) as client:
            pending = sorted(self.state.list_prefix(
                f"event/{account}/" if account else "event/").items(),
                key=lambda item: item[1]["seq"])
            for key, record in pending:
                if record["delivered"]:
                    continue
                ok = await self.deliver_one(client, url, secret, key, record)
                delivered, failed = delivered + ok, failed + (not ok)
        return _json({"delivered": delivered, "failed": failed})

    async def control_sent(self, request: Request) -> Response:
        account = _account_of(request.query_params.get("creator"))
        me = self.creator(account)["uuid"]
        sent = [m for m in self.state.list_prefix(f"msg/{account}/").items()
                if m[1]["senderUuid"] == me]
        sent.sort(key=lambda item: item[1]["seq"])
        return _json([{"userUuid": key.split("/")[2], "text": m["text"], "uuid": m["uuid"],
                       "sentAt": m["sentAt"]} for key, m in sent])

    async def control_expire(self, request: Request) -> Response:
        body = await read_control_body(request)
        token = body.get("access_token")
        if not isinstance(token, str) or ACCESS_TOKEN.fullmatch(token) is None:
            return _bad("access_token must be a sandbox access token (fv_at.sandbox.<account>)",
                        404)
        self.state.put(f"expired/{_fingerprint(token)}", True)
        return _json({"expired": True})

    @staticmethod
    async def not_found(request: Request, exc: Exception) -> Response:
        return _json({"message": f"Not found: {request.url.path}"}, 404)

    @staticmethod
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json({"error": f"Method not allowed: {request.method}"}, 405)

    def routes(self) -> list[Route]:
        api, control = self.api, self.control
        return [
            Route("/users/me", api(self.users_me), methods=["GET"]),
            Route("/subscribers", api(self.list_subscribers), methods=["GET"]),
            Route("/chats/lists/smart", api(self.smart_lists), methods=["GET"]),
            Route("/chats/lists/smart/{uuid}", api(self.smart_list), methods=["GET"]),
            Route("/chats", api(self.list_chats), methods=["GET"]),
            Route("/chats/{user}/messages", api(self.list_messages), methods=["GET"]),
            Route("/chats/{user}/message", api(self.send_message), methods=["POST"]),
            Route("/oauth/token", self.oauth_token, methods=["POST"]),
            Route("/_control/creators", control(self.control_creators), methods=["POST"]),
            Route("/_control/subscribers", control(self.control_subscribers),
                  methods=["GET", "POST"]),
            Route("/_control/act", control(self.control_act), methods=["POST"]),
            Route("/_control/simulate", control(self.control_simulate), methods=["POST"]),
            Route("/_control/events", control(self.control_events), methods=["GET"]),
            Route("/_control/deliver", control(self.control_deliver), methods=["POST"]),
            Route("/_control/sent", control(self.control_sent), methods=["GET"]),
            Route("/_control/expire_token", control(self.control_expire), methods=["POST"]),
        ]

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app, error_response=error_response)


def create(ctx: SystemContext) -> System:
    return FanvueSystem(ctx).system()
