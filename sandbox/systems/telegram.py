"""Telegram Bot API: `/bot<token>/<method>` with getMe and sendMessage.

Strict where the real API is: unknown tokens get 401, unknown chats 400 "chat not found",
users who never started the bot 403, text must be 1-4096 characters, MarkdownV2 reserved
characters must be escaped, and chats are rate limited (20 messages a minute per chat, 30 a
second overall) with 429 and `parameters.retry_after`. Parameters may come as query string,
form or JSON, as Telegram accepts all three. Sent messages are kept in the system's state.

The sandbox knows one bot (SANDBOX_BOT_TOKEN) and one operator chat (SANDBOX_ALERT_CHAT_ID);
`POST /_control/chats {"chat_id": ..., "started": true}` adds chats (subscribers who opened
the bot) for later issues.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resources.telegram import SANDBOX_ALERT_CHAT_ID as SANDBOX_ALERT_CHAT
from resources.telegram import SANDBOX_BOT_TOKEN
from sandbox.system import System, SystemContext

SANDBOX_BOT = {"id": 7000000001, "is_bot": True, "first_name": "waifugen alerts",
               "username": "waifugen_alerts_bot"}
SANDBOX_ALERT_CHAT_ID = int(SANDBOX_ALERT_CHAT)
MAX_TEXT = 4096
PER_CHAT_PER_MINUTE = 20
GLOBAL_PER_SECOND = 30
_MDV2_RESERVED = re.compile(r"(?<!\\)[_*\[\]()~`>#+\-=|{}.!]")


def _error(status: int, description: str, retry_after: float | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    headers = {}
    if retry_after is not None:
        seconds = max(1, math.ceil(retry_after))
        body["parameters"] = {"retry_after": seconds}
        headers["Retry-After"] = str(seconds)
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(status: int, message: str, retry_after: float | None) -> Response:
    if status == 429:
        return _error(429, f"Too Many Requests: retry after {math.ceil(retry_after or 1)}",
                      retry_after or 1)
    return _error(status, message)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if request.method == "POST":
        if ctype.startswith("application/json"):
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise _BadRequest("Bad Request: invalid JSON body") from None
            if not isinstance(body, dict):
                raise _BadRequest("Bad Request: JSON body must be an object")
            params.update(body)
        elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            params.update(dict(await request.form()))
    return params


class _BadRequest(Exception):
    pass


def create(ctx: SystemContext) -> System:
    state = ctx.state
    if state.get("chats") is None:
        state.put("chats", {str(SANDBOX_ALERT_CHAT_ID): {"type": "supergroup",
                                                         "title": "waifugen operators",
                                                         "started": True}})
    if state.get("bots") is None:
        state.put("bots", {SANDBOX_BOT_TOKEN: SANDBOX_BOT})
    recent: dict[str, list[float]] = {}

    def throttle(chat_key: str) -> float | None:
        """Seconds to wait if this message would break a limit, else None (and count it)."""
        now = time.monotonic()
        per_chat = [t for t in recent.get(chat_key, []) if now - t < 60]
        everyone = [t for t in recent.get("*", []) if now - t < 1]
        if len(per_chat) >= PER_CHAT_PER_MINUTE:
            return 60 - (now - per_chat[0])
        if len(everyone) >= GLOBAL_PER_SECOND:
            return 1 - (now - everyone[0])
        recent[chat_key] = [*per_chat, now]
        recent["*"] = [*everyone, now]
        return None

    async def method(request: Request) -> Response:
        bot = state.get("bots", {}).get(request.path_params["token"])
        if bot is None:
            return _error(401, "Unauthorized")
        name = request.path_params["method"]
        try:
            params = await _params(request)
        except _BadRequest as exc:
            return _error(400, str(exc))
        if name == "getMe":
            return JSONResponse({"ok": True, "result": bot})
        if name != "sendMessage":
            return _error(404, "Not Found")
        try:
            return send_message(bot, params)
        except _BadRequest as exc:
            return _error(400, str(exc))

    def send_message(bot: dict[str, Any], params: dict[str, Any]) -> Response:
        chat_id, text = params.get("chat_id"), params.get("text")
        if chat_id in (None, ""):
            raise _BadRequest("Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            raise _BadRequest("Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise _BadRequest("Bad Request: message is too long")
        mode = params.get("parse_mode")
        if mode not in (None, "", "MarkdownV2", "HTML", "Markdown"):
            raise _BadRequest(f"Bad Request: unsupported parse_mode {mode!r}")
        if mode == "MarkdownV2" and (m := _MDV2_RESERVED.search(text)):
            raise _BadRequest(
                f"Bad Request: can't parse entities: Character '{m.group()}' is reserved and "
                "must be escaped with the preceding '\\'")
        chat = state.get("chats", {}).get(str(chat_id))
        if chat is None:
            raise _BadRequest("Bad Request: chat not found")
        if chat.get("blocked"):
            return _error(403, "Forbidden: bot was blocked by the user")
        if not chat.get("started"):
            return _error(403, "Forbidden: bot can't initiate conversation with a user")
        wait = throttle(str(chat_id))
        if wait is not None:
            return error_response(429, "", wait)
        message_id = state.next_id(f"message:{chat_id}")
        message = {"message_id": message_id, "date": int(dt.datetime.now(dt.UTC).timestamp()),
                   "chat": {"id": int(chat_id), "type": chat.get("type", "private"),
                            **({"title": chat["title"]} if "title" in chat else {})},
                   "from": bot, "text": text}
        state.put(f"sent:{chat_id}:{message_id:08d}", message)
        return JSONResponse({"ok": True, "result": message})

    async def add_chat(request: Request) -> Response:
        body = await request.json()
        chat_id = str(body["chat_id"])
        state.update("chats", lambda chats: {**(chats or {}), chat_id: {
            "type": body.get("type", "private"), "started": bool(body.get("started", True)),
            "blocked": bool(body.get("blocked", False))}}, default={})
        return JSONResponse({"ok": True})

    async def sent(request: Request) -> Response:
        chat_id = request.query_params.get("chat_id", "")
        prefix = f"sent:{chat_id}:" if chat_id else "sent:"
        return JSONResponse(list(state.list_prefix(prefix).values()))

    app = Starlette(routes=[
        Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
        Route("/_control/chats", add_chat, methods=["POST"]),
        Route("/_control/sent", sent, methods=["GET"]),
    ])
    return System(app=app, error_response=error_response)
