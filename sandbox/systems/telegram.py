"""Telegram Bot API: `/bot<token>/<method>`, many bots, subscribers, updates and webhooks.

Methods: getMe, sendMessage, getUpdates, setWebhook, deleteWebhook, getWebhookInfo, with the
`{"ok": true, "result": ...}` / `{"ok": false, "error_code", "description", "parameters"?}`
envelope. Parameters may come as query string, form or JSON, as Telegram accepts all three.
Contract: docs/subscriber-channels.md (Telegram), PROTOCOLS.md section 4.

Bots. The operators' alerts bot (SANDBOX_BOT_TOKEN) is registered in the state; besides it,
every token `<id>:AAsandbox_<account>` whose id is `resources.telegram.sandbox_bot_id(account)`
is a bot with username `<account, - as _>_bot` (a wrong id is 401, like any unknown token).
Bots are identified by id, so the slug and the @handle of a character name one bot.

Strict where the real API is: unknown chats 400 "chat not found"; users who exist but never
started this bot 403 "can't initiate conversation"; users who blocked it 403; text 1-4096
UTF-16 units; MarkdownV2 reserved characters must be escaped; getUpdates is 409 while a
webhook is set; setWebhook wants an https URL on port 443, 80, 88 or 8443 (sandbox: http to a
loopback host is accepted too) and a secret_token of 1-256 [A-Za-z0-9_-]. Rate limits, each
a 429 with `parameters.retry_after`: 30 messages a second per bot; per private chat 1 a second
with bursts of up to 3 (a token bucket); 20 a minute per group/supergroup chat.

Updates: each bot has a queue with increasing update_id. getUpdates returns up to `limit`
(1..100) from `offset`; an offset above an update_id confirms (drops) that update, a negative
offset keeps only the last -offset ones; `timeout` long-polls (at most 50 s). Updates of types
outside `allowed_updates` (remembered per bot, as Telegram does) are dropped.

Controls (below `/telegram/_control`; a bot is named by "bot" (username) or "token"):
- `POST start {"bot", "user_id"?, "first_name"?, "username"?, "language_code"?, "payload"?,
  "at"?}`: the user opens `https://t.me/<bot>?start=<payload>`: the private chat is started
  (and unblocked) and a message `/start <payload>` is queued. -> {user_id, chat_id, update_id,
  deep_link}.
- `POST act {"bot", "user_id", "action", "text"?, "amount"?, "at"?}`: reply (message text),
  stop (message "STOP"), block (my_chat_member -> "kicked"; sendMessage then answers 403),
  unblock (-> "member"), tip (message with successful_payment, currency XTR, total_amount).
- `POST simulate {"bot", "day": "YYYY-MM-DD", "starts"?, "payload"?}`: a seeded day of starts,
  replies, tips, stops and blocks, timestamped inside that UTC day; once per bot and day
  (again = the first answer, nothing queued).
- `POST deliver {"bot"}`: POSTs pending updates in order to the webhook URL (loopback only)
  with X-Telegram-Bot-Api-Secret-Token; 2xx drops an update, anything else stops the round
  and is reported by getWebhookInfo. -> {delivered, failed, pending}.
- `POST chats {"chat_id", "type"?, "started"?, "blocked"?, "bot"?}` sets a chat directly
  (default bot: the alerts bot). `GET sent?bot=&chat_id=` lists messages bots sent.
`at` is unix seconds or ISO 8601; without it an update carries the current time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resources.telegram import SANDBOX_ALERT_CHAT_ID as SANDBOX_ALERT_CHAT
from resources.telegram import (
    SANDBOX_BOT_TOKEN,
    SECRET_TOKEN,
    sandbox_bot_id,
    sandbox_bot_username,
    utf16_length,
)
from sandbox.system import System, SystemContext

SANDBOX_BOT = {"id": 7000000001, "is_bot": True, "first_name": "waifugen alerts",
               "username": "waifugen_alerts_bot"}
SANDBOX_ALERT_CHAT_ID = int(SANDBOX_ALERT_CHAT)
MAX_TEXT = 4096
PRIVATE_BURST = 3  # a private chat's bucket: 3 messages at once, refilled 1 a second
PRIVATE_PER_SECOND = 1.0
GROUP_PER_MINUTE = 20
BOT_PER_SECOND = 30
MAX_LONG_POLL = 50.0
WEBHOOK_PORTS = (443, 80, 88, 8443)
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction",
                                      "message_reaction_count"})
WEBHOOK_CONFLICT = ("Conflict: can't use getUpdates method while webhook is active; use "
                    "deleteWebhook to delete the webhook first")
_MDV2_RESERVED = re.compile(r"(?<!\\)[_*\[\]()~`>#+\-=|{}.!]")
_TOKEN = re.compile(r"(\d+):AAsandbox_([A-Za-z0-9_-]{1,64})")
_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")  # deep-link start parameter alphabet
_FIRST_NAMES = ("Alex", "Sam", "Kenji", "Maria", "Jonas", "Aiko", "Leo", "Priya", "Tom", "Yuki")
_LANGUAGES = ("en", "ja", "es", "de", "fr", "pt")
_REPLIES = ("hi!", "love your last video", "what are you playing tonight?", "good morning",
            "that was so funny", "when is the next stream?", "thanks for the message")
_TIPS = (50, 100, 250, 500)


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


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


def _ok(result: Any, description: str | None = None) -> Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return JSONResponse(body)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if request.method == "POST":
        if ctype.startswith("application/json"):
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise _bad("invalid JSON body") from None
            if not isinstance(body, dict):
                raise _bad("JSON body must be an object")
            params.update(body)
        elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            params.update(dict(await request.form()))
    return params


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name, default)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"field \"{name}\" must be an integer") from None


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _string_list(value: Any, name: str) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):  # query and form parameters carry JSON-serialized arrays
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{name} must be an array of strings")
    return value


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _unix(value: Any) -> int:
    """`at` of a control request: unix seconds or ISO 8601 (naive = UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())
    raise _ApiError(400, f"at must be unix seconds or ISO 8601, not {value!r}")


def _update_type(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")


class _Throttle:
    """Telegram's limits per bot and chat, on the server's monotonic clock (not persisted)."""

    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def _window_wait(self, key: str, limit: int, period: float, now: float) -> float:
        recent = [t for t in self._windows.get(key, []) if now - t < period]
        self._windows[key] = recent
        return period - (now - recent[0]) if len(recent) >= limit else 0.0

    def take(self, bot_id: int, chat_id: str, group: bool) -> float | None:
        """Seconds to wait if this message would break a limit (nothing counted), else None."""
        now = time.monotonic()
        bot_key, chat_key = f"bot:{bot_id}", f"chat:{bot_id}:{chat_id}"
        waits = [self._window_wait(bot_key, BOT_PER_SECOND, 1.0, now)]
        tokens = 0.0
        if group:
            waits.append(self._window_wait(chat_key, GROUP_PER_MINUTE, 60.0, now))
        else:
            held, when = self._buckets.get(chat_key, (float(PRIVATE_BURST), now))
            tokens = min(float(PRIVATE_BURST), held + (now - when) * PRIVATE_PER_SECOND)
            waits.append((1.0 - tokens) / PRIVATE_PER_SECOND if tokens < 1.0 else 0.0)
        if max(waits) > 0:
            return max(waits)
        self._windows[bot_key].append(now)
        if group:
            self._windows[chat_key].append(now)
        else:
            self._buckets[chat_key] = (tokens - 1.0, now)
        return None


def _derived_bot(account: str) -> dict[str, Any]:
    words = re.split(r"[-_]+", account)
    return {"id": sandbox_bot_id(account), "is_bot": True,
            "first_name": " ".join(w.capitalize() for w in words if w) or account,
            "username": sandbox_bot_username(account), "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False}


def create(ctx: SystemContext) -> System:
    state = ctx.state
    alerts_bot_id = SANDBOX_BOT["id"]
    if state.get("bots") is None:
        state.put("bots", {SANDBOX_BOT_TOKEN: SANDBOX_BOT})
    legacy = state.get("chats")  # state dirs from before bots had their own chats
    if legacy is None:
        legacy = {str(SANDBOX_ALERT_CHAT_ID): {"type": "supergroup", "title": "waifugen operators",
                                               "started": True}}
    for chat_id, chat in legacy.items():
        if state.get(f"chat:{alerts_bot_id}:{chat_id}") is None:
            state.put(f"chat:{alerts_bot_id}:{chat_id}", chat)
    state.put("chats", {})
    throttle = _Throttle()
    wakeups: dict[int, asyncio.Event] = {}

    # --- bots, chats, users ------------------------------------------------------------------

    def bot_for_token(token: str) -> dict[str, Any] | None:
        registered = state.get("bots", {}).get(token)
        if registered is not None:
            return registered
        match = _TOKEN.fullmatch(token)
        if match is None or int(match.group(1)) != sandbox_bot_id(match.group(2)):
            return None
        return _derived_bot(match.group(2))

    def bot_for_control(body: dict[str, Any]) -> dict[str, Any]:
        token, name = body.get("token"), body.get("bot")
        if isinstance(token, str) and token:
            bot = bot_for_token(token)
            if bot is None:
                raise _ApiError(401, "Unauthorized: not a sandbox bot token")
            return bot
        if not isinstance(name, str) or not name.strip("@"):
            raise _ApiError(400, "name the bot: \"bot\" (its username) or \"token\"")
        name = name.removeprefix("@")
        if name.lower() == SANDBOX_BOT["username"]:
            return SANDBOX_BOT
        if not name.lower().endswith("_bot"):
            raise _ApiError(400, f"sandbox bot usernames end in _bot, not {name!r}")
        try:
            return _derived_bot(name)
        except ValueError as exc:
            raise _ApiError(400, str(exc)) from None

    def chat_key(bot_id: int, chat_id: int | str) -> str:
        return f"chat:{bot_id}:{chat_id}"

    def user_record(user_id: int) -> dict[str, Any] | None:
        return state.get(f"user:{user_id}")

    def private_chat(user: dict[str, Any]) -> dict[str, Any]:
        chat = {"id": user["id"], "first_name": user["first_name"], "type": "private"}
        if user.get("username"):
            chat["username"] = user["username"]
        return chat

    def next_message_id(bot_id: int, chat_id: int | str) -> int:
        return state.next_id(f"message:{bot_id}:{chat_id}")

    # --- the update queue --------------------------------------------------------------------

    def enqueue(bot_id: int, kind: str, body: dict[str, Any]) -> int:
        update_id = state.next_id(f"update:{bot_id}")
        state.put(f"update:{bot_id}:{update_id:012d}", {"update_id": update_id, kind: body})
        if bot_id in wakeups:
            wakeups[bot_id].set()
        return update_id

    def allowed(bot_id: int) -> Callable[[dict[str, Any]], bool]:
        chosen = state.get(f"allowed_updates:{bot_id}")
        if chosen:
            return lambda update: _update_type(update) in chosen
        return lambda update: _update_type(update) not in DEFAULT_EXCLUDED_UPDATES

    def pending(bot_id: int) -> list[tuple[str, dict[str, Any]]]:
        """Queued updates in order; those of types the bot does not want are dropped."""
        wanted = allowed(bot_id)
        kept = []
        for key, update in state.list_prefix(f"update:{bot_id}:").items():
            if wanted(update):
                kept.append((key, update))
            else:
                state.delete(key)
        return kept

    def message_update(bot: dict[str, Any], user: dict[str, Any], date: int,
                       **fields: Any) -> int:
        message = {"message_id": next_message_id(bot["id"], user["id"]), "from": user,
                   "chat": private_chat(user), "date": date, **fields}
        return enqueue(bot["id"], "message", message)

    def member_update(bot: dict[str, Any], user: dict[str, Any], date: int, old: str,
                      new: str) -> int:
        me = {k: bot[k] for k in ("id", "is_bot", "first_name", "username")}
        change = {"chat": private_chat(user), "from": user, "date": date,
                  "old_chat_member": {"user": me, "status": old},
                  "new_chat_member": {"user": me, "status": new,
                                      **({"until_date": 0} if new == "kicked" else {})}}
        return enqueue(bot["id"], "my_chat_member", change)

    # --- users acting ------------------------------------------------------------------------

    def start(bot: dict[str, Any], body: dict[str, Any], date: int) -> dict[str, Any]:
        payload = body.get("payload")
        if payload not in (None, "") and not (isinstance(payload, str)
                                              and _PAYLOAD.fullmatch(payload)):
            raise _ApiError(400, "payload: 1-64 characters of A-Z, a-z, 0-9, _ and - "
                                 "(Telegram's deep-link start parameter)")
        user_id = body.get("user_id")
        if user_id is None:
            user_id = 1_000_000_000 + state.next_id("user")
        elif isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
            raise _ApiError(400, "user_id must be a positive integer")
        user = user_record(user_id) or {"id": user_id, "is_bot": False,
                                        "first_name": f"Fan {user_id % 10_000}"}
        for name in ("first_name", "username", "language_code"):
            if isinstance(body.get(name), str) and body[name]:
                user[name] = body[name]
        state.put(f"user:{user_id}", user)
        key = chat_key(bot["id"], user_id)
        chat = state.get(key) or {"type": "private"}
        was_blocked = bool(chat.get("blocked"))
        state.put(key, {**chat, "started": True, "blocked": False})
        if was_blocked:  # pressing Start again unblocks the bot
            member_update(bot, user, date, "kicked", "member")
        text = f"/start {payload}" if payload else "/start"
        update_id = message_update(bot, user, date, text=text,
                                   entities=[{"offset": 0, "length": 6, "type": "bot_command"}])
        link = f"https://t.me/{bot['username']}" + (f"?start={payload}" if payload else "")
        return {"ok": True, "user_id": user_id, "chat_id": user_id, "update_id": update_id,
                "deep_link": link}

    def act(bot: dict[str, Any], body: dict[str, Any], date: int) -> dict[str, Any]:
        action, user_id = body.get("action"), body.get("user_id")
        if action not in ("reply", "stop", "block", "unblock", "tip"):
            raise _ApiError(400, "action must be reply, stop, block, unblock or tip")
        user = user_record(user_id) if isinstance(user_id, int) else None
        key = chat_key(bot["id"], user_id)
        chat = state.get(key)
        if user is None or chat is None or not chat.get("started"):
            raise _ApiError(404, f"user {user_id} has no chat with {bot['username']}: "
                                 "start it first")
        blocked = bool(chat.get("blocked"))
        if action == "block" or action == "unblock":
            if blocked == (action == "block"):
                raise _ApiError(409, f"the user has {'already' if blocked else 'not'} "
                                     "blocked the bot")
            state.put(key, {**chat, "blocked": action == "block"})
            old, new = ("member", "kicked") if action == "block" else ("kicked", "member")
            return {"ok": True, "update_id": member_update(bot, user, date, old, new)}
        if blocked:
            raise _ApiError(409, "the user blocked the bot: unblock (or start) first")
        if action == "tip":
            amount = body.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
                raise _ApiError(400, "tip needs amount: a whole number of Stars, at least 1")
            charge = f"sandbox-{bot['id']}-{user_id}-{state.next_id('charge')}"
            payment = {"currency": "XTR", "total_amount": amount, "invoice_payload": "tip",
                       "telegram_payment_charge_id": charge, "provider_payment_charge_id": ""}
            return {"ok": True,
                    "update_id": message_update(bot, user, date, successful_payment=payment)}
        text = "STOP" if action == "stop" else body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "reply needs a non-empty text")
        return {"ok": True, "update_id": message_update(bot, user, date, text=text)}

    def simulate(bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        try:
            day = dt.date.fromisoformat(str(body.get("day")))
        except ValueError:
            raise _ApiError(400, "day must be YYYY-MM-DD") from None
        done_key = f"simulated:{bot['id']}:{day.isoformat()}"
        done = state.get(done_key)
        if done is not None:
            return {**done, "already_simulated": True}
        rng = ctx.rng("simulate", bot["username"].lower(), day.isoformat())
        starts = body.get("starts")
        if starts is None:
            starts = rng.randint(2, 6)
        if isinstance(starts, bool) or not isinstance(starts, int) or not 0 <= starts <= 500:
            raise _ApiError(400, "starts must be a whole number 0..500")
        slug = bot["username"].removesuffix("_bot").replace("_", "-")
        payload = body.get("payload") or f"c-{slug}"[:64]
        midnight = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())
        users: list[int] = []
        plan: list[tuple[int, int, int, str, dict[str, Any]]] = []  # (time, user#, seq, ...)
        while len(users) < starts:
            user_id = 2_000_000_000 + rng.randrange(1_000_000_000)
            if user_id in users:
                continue
            users.append(user_id)
            n = len(users)
            at = midnight + rng.randrange(0, 86_400 - 7_200)
            plan.append((at, n, 0, "start", {
                "user_id": user_id, "payload": payload, "first_name": rng.choice(_FIRST_NAMES),
                "language_code": rng.choice(_LANGUAGES)}))
            for seq in range(1, rng.choice((0, 1, 1, 2, 3)) + 1):
                at += rng.randint(30, 1_200)
                plan.append((at, n, seq, "reply", {"text": rng.choice(_REPLIES)}))
            if rng.random() < 0.2:
                at += rng.randint(30, 1_200)
                plan.append((at, n, 10, "tip", {"amount": rng.choice(_TIPS)}))
            ending = rng.random()
            if ending < 0.15:
                plan.append((at + rng.randint(30, 1_200), n, 11, "stop", {}))
            elif ending < 0.25:
                plan.append((at + rng.randint(30, 1_200), n, 11, "block", {}))
        events = []
        for at, n, _, action, fields in sorted(plan, key=lambda e: e[:3]):
            user_id = users[n - 1]
            if action == "start":
                update_id = start(bot, fields, at)["update_id"]
            else:
                update_id = act(bot, {"action": action, "user_id": user_id, **fields},
                                at)["update_id"]
            events.append({"user_id": user_id, "action": action, "date": at,
                           "update_id": update_id, **fields})
        summary = {"ok": True, "bot": bot["username"], "day": day.isoformat(),
                   "starts": starts, "users": users, "events": events}
        state.put(done_key, summary)
        return summary

    # --- Bot API methods ---------------------------------------------------------------------

    def send_message(bot: dict[str, Any], params: dict[str, Any]) -> Response:
        chat_id, text = params.get("chat_id"), params.get("text")
        if chat_id in (None, ""):
            raise _bad("chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            raise _bad("message text is empty")
        if utf16_length(text) > MAX_TEXT:
            raise _bad("message is too long")
        mode = params.get("parse_mode")
        if mode not in (None, "", "MarkdownV2", "HTML", "Markdown"):
            raise _bad(f"unsupported parse_mode {mode!r}")
        if mode == "MarkdownV2" and (m := _MDV2_RESERVED.search(text)):
            raise _bad(f"can't parse entities: Character '{m.group()}' is reserved and must "
                       "be escaped with the preceding '\\'")
        chat_id = str(chat_id)
        chat = state.get(chat_key(bot["id"], chat_id))
        if chat is None:
            known_user = chat_id.isdigit() and user_record(int(chat_id)) is not None
            if not known_user:
                raise _bad("chat not found")
            chat = {"type": "private", "started": False}
        if chat.get("blocked"):
            return _error(403, "Forbidden: bot was blocked by the user")
        if not chat.get("started"):
            return _error(403, "Forbidden: bot can't initiate conversation with a user")
        chat_type = chat.get("type", "private")
        wait = throttle.take(bot["id"], chat_id, chat_type != "private")
        if wait is not None:
            return error_response(429, "", wait)
        message_id = next_message_id(bot["id"], chat_id)
        described = {"id": int(chat_id), "type": chat_type}
        if "title" in chat:
            described["title"] = chat["title"]
        user = user_record(int(chat_id)) if chat_type == "private" else None
        if user is not None:
            described = private_chat(user)
        message = {"message_id": message_id, "date": int(time.time()), "chat": described,
                   "from": bot, "text": text}
        state.put(f"sent:{bot['id']}:{chat_id}:{message_id:08d}", message)
        return _ok(message)

    async def get_updates(bot: dict[str, Any], params: dict[str, Any]) -> Response:
        if state.get(f"webhook:{bot['id']}"):
            return _error(409, WEBHOOK_CONFLICT)
        offset = _int(params, "offset", 0) or 0
        limit = _int(params, "limit", 100)
        if limit is None or not 1 <= limit <= 100:
            raise _bad("limit must be between 1 and 100")
        timeout = min(float(_int(params, "timeout", 0) or 0), MAX_LONG_POLL)
        chosen = _string_list(params.get("allowed_updates"), "allowed_updates")
        if chosen is not None:
            state.put(f"allowed_updates:{bot['id']}", chosen)
        queue = pending(bot["id"])
        if offset < 0:  # keep the last -offset updates, forget the rest
            for key, _ in queue[:offset]:
                state.delete(key)
            queue = queue[offset:]
        elif offset > 0:
            for key, update in queue:
                if update["update_id"] < offset:
                    state.delete(key)
            queue = [(k, u) for k, u in queue if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not queue and (left := deadline - time.monotonic()) > 0:
            event = wakeups.setdefault(bot["id"], asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                break
            queue = [(k, u) for k, u in pending(bot["id"]) if u["update_id"] >= offset]
        return _ok([update for _, update in queue[:limit]])

    def set_webhook(bot: dict[str, Any], params: dict[str, Any]) -> Response:
        url = str(params.get("url") or "")
        key = f"webhook:{bot['id']}"
        if _flag(params.get("drop_pending_updates")):
            for update_key, _ in pending(bot["id"]):
                state.delete(update_key)
        if not url:
            state.delete(key)
            return _ok(True, "Webhook was deleted")
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise _bad("bad webhook: invalid port") from None
        if parts.scheme == "http" and _loopback(parts.hostname):
            pass  # sandbox only: a local receiver
        elif parts.scheme != "https" or not parts.hostname:
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        elif (port or 443) not in WEBHOOK_PORTS:
            raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = params.get("secret_token")
        if secret not in (None, "") and not (isinstance(secret, str)
                                             and SECRET_TOKEN.fullmatch(secret)):
            raise _bad("secret token contains unallowed characters")
        chosen = _string_list(params.get("allowed_updates"), "allowed_updates")
        if chosen is not None:
            state.put(f"allowed_updates:{bot['id']}", chosen)
        hook = {"url": url, "secret_token": secret or None}
        same = state.get(key, {}).get("url") == url
        state.put(key, hook)
        return _ok(True, "Webhook is already set" if same else "Webhook was set")

    def delete_webhook(bot: dict[str, Any], params: dict[str, Any]) -> Response:
        if _flag(params.get("drop_pending_updates")):
            for update_key, _ in pending(bot["id"]):
                state.delete(update_key)
        existed = state.delete(f"webhook:{bot['id']}")
        return _ok(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    def webhook_info(bot: dict[str, Any]) -> Response:
        hook = state.get(f"webhook:{bot['id']}") or {}
        info: dict[str, Any] = {"url": hook.get("url", ""), "has_custom_certificate": False,
                                "pending_update_count": len(pending(bot["id"]))}
        if hook:
            info["max_connections"] = 40
            for name in ("last_error_date", "last_error_message"):
                if hook.get(name) is not None:
                    info[name] = hook[name]
        chosen = state.get(f"allowed_updates:{bot['id']}")
        if hook and chosen:
            info["allowed_updates"] = chosen
        return _ok(info)

    async def method(request: Request) -> Response:
        bot = bot_for_token(request.path_params["token"])
        if bot is None:
            return _error(401, "Unauthorized")
        name = request.path_params["method"]
        try:
            params = await _params(request)
            if name == "getMe":
                return _ok(bot)
            if name == "sendMessage":
                return send_message(bot, params)
            if name == "getUpdates":
                return await get_updates(bot, params)
            if name == "setWebhook":
                return set_webhook(bot, params)
            if name == "deleteWebhook":
                return delete_webhook(bot, params)
            if name == "getWebhookInfo":
                return webhook_info(bot)
        except _ApiError as exc:
            return _error(exc.status, exc.description)
        return _error(404, "Not Found")

    # --- control routes ----------------------------------------------------------------------

    async def deliver(bot: dict[str, Any]) -> dict[str, Any]:
        key = f"webhook:{bot['id']}"
        hook = state.get(key)
        if not hook:
            raise _ApiError(409, f"{bot['username']} has no webhook: setWebhook first")
        if not _loopback(urlsplit(hook["url"]).hostname):
            raise _ApiError(409, "the sandbox delivers only to loopback webhook URLs")
        headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]} \
            if hook.get("secret_token") else {}
        delivered = failed = 0
        error: str | None = None
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
            for update_key, update in pending(bot["id"]):
                try:
                    answer = await client.post(hook["url"], json=update, headers=headers)
                except httpx.HTTPError as exc:
                    error = f"Connection failed: {type(exc).__name__}"
                else:
                    if 200 <= answer.status_code < 300:
                        state.delete(update_key)
                        delivered += 1
                        continue
                    error = (f"Wrong response from the webhook: {answer.status_code} "
                             f"{answer.reason_phrase}")
                failed = 1  # Telegram retries this update before any later one
                break
        current = state.get(key)
        if current and error is not None:
            state.put(key, {**current, "last_error_date": int(time.time()),
                            "last_error_message": error})
        return {"ok": True, "delivered": delivered, "failed": failed,
                "pending": len(pending(bot["id"]))}

    def control(handler: Callable[[dict[str, Any], dict[str, Any]], Any], *,
                default_token: str | None = None) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                body = None
            try:
                if not isinstance(body, dict):
                    raise _ApiError(400, "the body must be a JSON object")
                if default_token and not (body.get("bot") or body.get("token")):
                    body["token"] = default_token
                result = handler(bot_for_control(body), body)
                if asyncio.iscoroutine(result):
                    result = await result
                return JSONResponse(result)
            except _ApiError as exc:
                return JSONResponse({"ok": False, "description": exc.description},
                                    status_code=exc.status)
        return endpoint

    def when(body: dict[str, Any]) -> int:
        return _unix(body["at"]) if body.get("at") is not None else int(time.time())

    def set_chat(bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        chat_id = body.get("chat_id")
        if chat_id in (None, ""):
            raise _ApiError(400, "chat_id is required")
        state.put(chat_key(bot["id"], chat_id), {
            "type": body.get("type", "private"), "started": bool(body.get("started", True)),
            "blocked": bool(body.get("blocked", False))})
        return {"ok": True}

    async def sent(request: Request) -> Response:
        chat_id = request.query_params.get("chat_id", "")
        bot_id: int | None = None
        if request.query_params.get("bot"):
            try:
                bot_id = bot_for_control({"bot": request.query_params["bot"]})["id"]
            except _ApiError as exc:
                return JSONResponse({"ok": False, "description": exc.description},
                                    status_code=exc.status)
        messages = [m for m in state.list_prefix("sent:").values()
                    if (not chat_id or str(m["chat"]["id"]) == chat_id)
                    and (bot_id is None or m["from"]["id"] == bot_id)]
        return JSONResponse(messages)

    app = Starlette(routes=[
        Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
        Route("/_control/chats", control(set_chat, default_token=SANDBOX_BOT_TOKEN),
              methods=["POST"]),
        Route("/_control/start", control(lambda bot, body: start(bot, body, when(body))),
              methods=["POST"]),
        Route("/_control/act", control(lambda bot, body: act(bot, body, when(body))),
              methods=["POST"]),
        Route("/_control/simulate", control(simulate), methods=["POST"]),
        Route("/_control/deliver", control(lambda bot, body: deliver(bot)), methods=["POST"]),
        Route("/_control/sent", sent, methods=["GET"]),
    ])
    return System(app=app, error_response=error_response)

