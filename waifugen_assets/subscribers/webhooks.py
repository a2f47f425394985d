"""The inbound webhook service (`waifugen webhooks serve`): verify, parse, store once, answer.

Per request: size limit (413), authenticity (401, nothing stored: missing or forged signature,
stale timestamp, wrong Telegram secret), known character (404; a path segment that is not a
character slug is never looked up), parse (400 naming the field; JSON PostgreSQL cannot store,
i.e. NUL characters, unpaired surrogates, NaN/Infinity, or nesting deeper than
MAX_JSON_DEPTH, is refused as a whole), Fanvue creator binding (403 when the event names
another creator than the character's account), store with `inbound.store_events` (200
`{"stored": 1}`, or `{"stored": 0}` for an event id already stored: platforms retry on non-2xx,
so a duplicate is not an error). No input is answered 500. Applying events is the pipeline's
job (`inbound.apply_pending`), never the request's, so answers stay fast.

Fanvue signs with one secret for every creator of the app, so the signature does not say which
character an event is for: the event's `creatorUuid` must be the character's Fanvue account
(`platform_accounts.external_user_id`, learned by a DM run). While that uuid is not known yet
the event is stored and `inbound.apply_pending` checks the binding instead.

Telegram event ids are `<bot id>:<update_id>`; the bot of a character comes from
`character_bots`, else from its `platform_accounts` row (platform `telegram`,
`external_user_id` = the bot's numeric id, which is also the prefix of its token). A character
without a known bot gets 404 on its Telegram route.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resources.webhook_signing import (
    FANVUE_SIGNATURE_HEADER,
    TELEGRAM_SECRET_HEADER,
    InvalidSignature,
    verify_fanvue,
    verify_telegram,
)
from waifugen_assets.core import schema
from waifugen_assets.subscribers import events, inbound

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32  # Telegram updates and Fanvue events nest fewer than 10 levels
CREATOR_CACHE_SECONDS = 60.0
_SLUG = re.compile(schema.CHARACTER_SLUG_PATTERN)


class _TooLarge(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _NotStorable(ValueError):
    """JSON that jsonb / text columns cannot hold; the message names the problem."""


def _no_constant(name: str) -> Any:
    raise _NotStorable(f"{name} is not a JSON number PostgreSQL can store")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: jsonb has no infinity
        raise _NotStorable(f"number out of range: {text[:40]}")
    return value


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise _NotStorable("contains a NUL character (\\u0000), which cannot be stored")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _NotStorable("contains an unpaired surrogate (not valid Unicode)") from None


def _check_storable(value: Any) -> None:
    """Walk the parsed body without recursion: depth, and every key and string."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _NotStorable(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)


def _json(body: bytes) -> Any:
    """The body as JSON the database can store, or _NotStorable / ValueError."""
    try:
        parsed = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # deeper than the interpreter's stack: refused like any deep body
        raise _NotStorable(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    _check_storable(parsed)
    return parsed


class _Directory:
    """Which characters exist and which Telegram bot is theirs (positive answers cached:
    characters are never deleted)."""

    def __init__(self, engine: sa.Engine, character_bots: Mapping[str, int] | None) -> None:
        self.engine = engine
        self.fixed_bots = dict(character_bots) if character_bots is not None else None
        self.known: set[str] = set()
        self.bots: dict[str, int] = {}
        # character -> (creator uuid or None, monotonic expiry): a uuid is learned (or replaced)
        # by a DM run at any time, so answers, "unknown" included, are kept only briefly.
        self.creators: dict[str, tuple[str | None, float]] = {}

    def character_exists(self, character_id: str) -> bool:
        if character_id in self.known:
            return True
        with self.engine.connect() as conn:
            found = conn.scalar(sa.select(schema.characters.c.id)
                                .where(schema.characters.c.id == character_id)) is not None
        if found:
            self.known.add(character_id)
        return found

    def telegram_bot(self, character_id: str) -> int | None:
        if self.fixed_bots is not None:
            return self.fixed_bots.get(character_id)
        if character_id in self.bots:
            return self.bots[character_id]
        pa = schema.platform_accounts
        with self.engine.connect() as conn:
            ref = conn.scalar(sa.select(pa.c.external_user_id).where(
                pa.c.character_id == character_id, pa.c.platform == "telegram"))
        if ref is None or not ref.isdigit():
            return None
        self.bots[character_id] = int(ref)
        return self.bots[character_id]

    def fanvue_creator(self, character_id: str, ttl: float) -> str | None:
        with self.engine.connect() as conn:
            uuid = inbound.fanvue_creators(conn, [character_id]).get(character_id)
        self.creators[character_id] = (uuid, time.monotonic() + ttl)
        return uuid


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, message)


def create_app(engine: sa.Engine, *, fanvue_secret: str, telegram_secret: str,
               character_bots: Mapping[str, int] | None = None,
               clock: Callable[[], float] = time.time,
               max_body_bytes: int = MAX_BODY_BYTES,
               creator_cache_seconds: float = CREATOR_CACHE_SECONDS) -> Starlette:
    """The ASGI app: POST /fanvue/{character}, POST /telegram/{character}, GET /healthz."""
    directory = _Directory(engine, character_bots)

    async def store(event: events.NormalizedEvent) -> JSONResponse:
        # The route has just checked the character exists: the store need not look again.
        stored = await run_in_threadpool(inbound.store_events, engine, [event],
                                         {event.character_id})
        return JSONResponse({"stored": stored})

    # Cached answers come straight from the event loop; only a miss costs a thread hop.
    async def character_exists(character: str) -> bool:
        if character in directory.known:
            return True
        return await run_in_threadpool(directory.character_exists, character)

    async def telegram_bot(character: str) -> int | None:
        if directory.fixed_bots is not None:
            return directory.fixed_bots.get(character)
        if character in directory.bots:
            return directory.bots[character]
        return await run_in_threadpool(directory.telegram_bot, character)

    async def fanvue_creator(character: str) -> str | None:
        cached = directory.creators.get(character)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return await run_in_threadpool(directory.fanvue_creator, character,
                                       creator_cache_seconds)

    async def checked(request: Request, verify: Callable[[bytes], None]) -> tuple[str, bytes]:
        """The route's character and body: size, signature and character checked, in the
        order that costs least for a bad request; _Reject carries the answer otherwise."""
        character = request.path_params["character"]
        try:
            body = await _body(request, max_body_bytes)
        except _TooLarge:
            raise _Reject(413, f"body larger than {max_body_bytes} bytes") from None
        try:
            verify(body)
        except InvalidSignature as exc:
            raise _Reject(401, exc.reason) from None
        except ValueError:  # e.g. a timestamp of more digits than int() converts
            raise _Reject(401, "malformed signature header") from None
        # Not a slug (a NUL byte, say): no such character, and never sent to the database.
        if not _SLUG.fullmatch(character) or not await character_exists(character):
            raise _Reject(404, "unknown character")
        return character, body

    def json_of(body: bytes) -> Any:
        try:
            return _json(body)
        except _NotStorable as exc:
            raise _Reject(400, f"body: {exc}") from None
        except ValueError:  # UnicodeDecodeError included
            raise _Reject(400, "body is not JSON") from None

    async def fanvue(request: Request) -> JSONResponse:
        def verify(body: bytes) -> None:
            verify_fanvue(fanvue_secret, request.headers.get(FANVUE_SIGNATURE_HEADER), body,
                          now=clock())

        try:
            character, body = await checked(request, verify)
            event = events.from_fanvue(json_of(body), character)
            expected = await fanvue_creator(character)
            if expected is not None and event.creator_uuid != expected:
                raise _Reject(403, "creatorUuid: the event is for another Fanvue creator "
                              f"than {character}'s account")
        except _Reject as rejected:
            return rejected.response
        except events.UnsupportedEvent as exc:
            return JSONResponse({"stored": 0, "ignored": str(exc)})
        except events.BadEvent as exc:
            return _error(400, str(exc))
        return await store(event)

    async def telegram(request: Request) -> JSONResponse:
        def verify(_: bytes) -> None:
            verify_telegram(telegram_secret, request.headers.get(TELEGRAM_SECRET_HEADER))

        try:
            character, body = await checked(request, verify)
            bot_id = await telegram_bot(character)
            if bot_id is None:
                raise _Reject(404, "no Telegram bot known for this character")
            event = events.from_telegram(json_of(body), character, bot_id)
        except _Reject as rejected:
            return rejected.response
        except events.BadEvent as exc:
            return _error(400, str(exc))
        if event is None:
            return JSONResponse({"stored": 0, "ignored": "update kind not used"})
        return await store(event)

    async def healthz(_: Request) -> JSONResponse:
        def ping() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await run_in_threadpool(ping)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return JSONResponse({"ok": False, "database": "unavailable"}, status_code=503)
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/fanvue/{character}", fanvue, methods=["POST"]),
        Route("/telegram/{character}", telegram, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def serve(engine: sa.Engine, *, host: str, port: int, fanvue_secret: str,
          telegram_secret: str) -> None:
    """Run the service with uvicorn until interrupted (`waifugen webhooks serve`)."""
    import uvicorn

    app = create_app(engine, fanvue_secret=fanvue_secret, telegram_secret=telegram_secret)
    # Access logs show paths and status only (no headers, so no secrets).
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True,
                server_header=False)
