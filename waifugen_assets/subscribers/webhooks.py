"""The inbound webhook service (`waifugen webhooks serve`): verify, parse, store once, answer.

Per request: size limit (413), authenticity (401, nothing stored: missing or forged signature,
stale timestamp, wrong Telegram secret), known character (404), parse (400 naming the field),
store with `inbound.store_events` (200 `{"stored": 1}`, or `{"stored": 0}` for an event id
already stored: platforms retry on non-2xx, so a duplicate is not an error). Applying events is
the pipeline's job (`inbound.apply_pending`), never the request's, so answers stay fast.

Telegram event ids are `<bot id>:<update_id>`; the bot of a character comes from
`character_bots`, else from its `platform_accounts` row (platform `telegram`,
`external_user_id` = the bot's numeric id, which is also the prefix of its token). A character
without a known bot gets 404 on its Telegram route.
"""

from __future__ import annotations

import json
import logging
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


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _INVALID


_INVALID = object()


class _Directory:
    """Which characters exist and which Telegram bot is theirs (positive answers cached:
    characters are never deleted)."""

    def __init__(self, engine: sa.Engine, character_bots: Mapping[str, int] | None) -> None:
        self.engine = engine
        self.fixed_bots = dict(character_bots) if character_bots is not None else None
        self.known: set[str] = set()
        self.bots: dict[str, int] = {}

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


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, message)


def create_app(engine: sa.Engine, *, fanvue_secret: str, telegram_secret: str,
               character_bots: Mapping[str, int] | None = None,
               clock: Callable[[], float] = time.time,
               max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
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
        if not await character_exists(character):
            raise _Reject(404, "unknown character")
        return character, body

    def json_of(body: bytes) -> Any:
        parsed = _json(body)
        if parsed is _INVALID:
            raise _Reject(400, "body is not JSON")
        return parsed

    async def fanvue(request: Request) -> JSONResponse:
        def verify(body: bytes) -> None:
            verify_fanvue(fanvue_secret, request.headers.get(FANVUE_SIGNATURE_HEADER), body,
                          now=clock())

        try:
            character, body = await checked(request, verify)
            event = events.from_fanvue(json_of(body), character)
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
