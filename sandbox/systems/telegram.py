"""Telegram Bot API: `/bot<token>/<method>`, many bots, subscribers, updates and webhooks.

Methods: getMe, sendMessage, sendPhoto, sendDocument, editMessageText, editMessageCaption,
getUpdates, setWebhook, deleteWebhook, getWebhookInfo, with the `{"ok": true, "result": ...}`
/ `{"ok": false, "error_code", "description", "parameters"?}` envelope. Parameters may come as
query string, form, multipart/form-data or JSON, as Telegram accepts all of them.
Contract: docs/subscriber-channels.md (Telegram), PROTOCOLS.md section 4.

Bots. The operators' alerts bot (SANDBOX_BOT_TOKEN) is registered in the state; besides it,
every token `<id>:AAsandbox_<account>` whose id is `sandbox_bot_id(account)` (from
waifugen_assets.core.sandbox_world, the facts both sides know) is a bot with username
`<account, - as _>_bot` (a wrong id is 401, like any unknown token).
Bots are identified by id, so the slug and the @handle of a character name one bot.

Strict where the real API is: unknown chats 400 "chat not found"; users who exist but never
started this bot 403 "can't initiate conversation"; users who blocked it 403; getUpdates is
409 while a webhook is set; setWebhook wants an https URL on port 443, 80, 88 or 8443
(sandbox: http to a loopback host is accepted too) and a secret_token of 1-256
[A-Za-z0-9_-]. Rate limits, each a 429 with `parameters.retry_after`: 30 messages a second
per bot; per private chat 1 a second with bursts of up to 3 (a token bucket); 20 a minute per
group/supergroup chat. Strings that are not valid UTF-8 (a lone surrogate): 400 "strings must
be encoded in UTF-8". Message dates follow the sandbox clock.

Formatting (telegram_entities, a port of tdlib's parsers): parse_mode is HTML, MarkdownV2 or
Markdown (any case), else 400 "unsupported parse_mode". Markup Telegram refuses is 400
"can't parse entities: <tdlib's words, with UTF-8 byte offsets>" (an HTML tag outside b,
strong, i, em, u, ins, s, strike, del, span class="tg-spoiler", tg-spoiler, a, code, pre,
blockquote; an unclosed or unmatched tag; an unescaped MarkdownV2 reserved character...).
Entities &lt; &gt; &amp; &quot; and numeric ones decode; any other & stays as typed. Lengths
count UTF-16 units of the text AFTER entity parsing: text 1-4096 ("message text is empty",
"message is too long"), caption 0-1024 ("message caption is too long"). A Message carries the
parsed text or caption plus `entities` / `caption_entities` when there are any.

sendPhoto / sendDocument (chat_id, photo | document, caption?, parse_mode?,
disable_notification?): the file is a multipart upload, a file_id this bot got before (a
document's id as a photo: "type of file mismatch"; unknown: "wrong file identifier/HTTP URL
specified") or an http(s) URL (never fetched: a photo gets one 0x0 PhotoSize, a document the
URL's last path segment as its name). Missing: "there is no photo in the request"; empty:
"file must be non-empty"; over 50 MB: 413 "Request Entity Too Large". A photo upload must be
at most 10 MB ("PHOTO_SAVE_FILE_INVALID"), a decodable PNG (chunk CRCs, IDAT inflating to
exactly the rows of IHDR) or JPEG (its SOF header) ("IMAGE_PROCESS_FAILED"), with width +
height <= 10000 and sides at most 20:1 ("PHOTO_INVALID_DIMENSIONS"); every one a 400 "Bad
Request: ...". The Message's `photo` lists PhotoSizes smallest first (thumbnails of 90, 320,
800, 1280 px on the longest side below the image's, then the image capped at 2560 px); the
last has the upload's file_size, the thumbnails an area-proportional estimate. `document` has
file_id, file_unique_id, file_name, mime_type (the part's content type, else guessed from
the name), file_size. Same chat checks and rate limits as sendMessage; message ids are one
sequence per bot and chat, shared by texts, files and the user's own messages.

editMessageText / editMessageCaption (chat_id, message_id, text | caption, parse_mode?): edit
a message this bot sent to that chat and answer the edited Message (with edit_date). Content
equal after parsing (text and entities) -> 400 "message is not modified: specified new
message content and reply markup are exactly the same as a current content and reply markup
of the message"; an id nobody in the chat has used -> "message to edit not found"; an id
of the user's message -> "message can't be edited"; editMessageCaption on a text -> "there is
no caption in the message to edit"; editMessageText on a photo or document -> "there is no
text in the message to edit". Edits are not rate limited here.

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
  (default bot: the alerts bot).
- `GET sent?bot=&chat_id=` lists messages bots sent (edits applied), by bot, chat and id: each
  the Message plus `kind` (text | photo | document) and `parse_mode`; files add `caption`,
  `source` (upload | file_id | url), `file_size` and `sha256` of the uploaded bytes,
  `disable_notification`, and `width`, `height`, `format` (png | jpeg) for photos or
  `file_name`, `mime_type` for documents. Nothing but this metadata is kept of a file.
`at` is unix seconds or ISO 8601; without it an update carries the current time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import json
import math
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.control import BadControlBody, read_control_body
from sandbox.system import System, SystemContext
from sandbox.systems.telegram_entities import PARSE_MODES, EntityError, Formatted, parse
from sandbox.systems.telegram_files import (
    MAX_DOCUMENT_BYTES,
    MAX_PHOTO_BYTES,
    Image,
    ImageError,
    dimensions_ok,
    file_ids,
    photo_sizes,
    read_image,
)
from waifugen_assets.core.sandbox_world import SANDBOX_ALERT_CHAT_ID as SANDBOX_ALERT_CHAT
from waifugen_assets.core.sandbox_world import (
    SANDBOX_BOT_TOKEN,
    sandbox_bot_id,
    sandbox_bot_username,
)

SANDBOX_BOT = {"id": 7000000001, "is_bot": True, "first_name": "waifugen alerts",
               "username": "waifugen_alerts_bot"}
SANDBOX_ALERT_CHAT_ID = int(SANDBOX_ALERT_CHAT)
MAX_TEXT = 4096
MAX_CAPTION = 1024
NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")
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
_TOKEN = re.compile(r"(\d+):AAsandbox_([A-Za-z0-9_-]{1,64})")
_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")  # deep-link start parameter alphabet
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # setWebhook's secret_token alphabet
_SURROGATE = re.compile("[\ud800-\udfff]")
_FIRST_NAMES = ("Alex", "Sam", "Kenji", "Maria", "Jonas", "Aiko", "Leo", "Priya", "Tom", "Yuki")
_LANGUAGES = ("en", "ja", "es", "de", "fr", "pt")
_REPLIES = ("hi!", "love your last video", "what are you playing tonight?", "good morning",
            "that was so funny", "when is the next stream?", "thanks for the message")
_TIPS = (50, 100, 250, 500)


class _ApiError(Exception):
    def __init__(self, status: int, description: str,
                 retry_after: float | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after


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


def utf16_length(text: str) -> int:
    """Telegram's length of a text: UTF-16 code units. Every code point is one unit, and one
    above U+FFFF (an emoji outside the BMP) is a surrogate pair, so one more. The sandbox's
    own count, not the client's, so a bug in one cannot hide behind the other. A lone
    surrogate has no UTF-16 encoding: ValueError."""
    lone = _SURROGATE.search(text)
    if lone is not None:
        raise ValueError(f"lone surrogate U+{ord(lone.group()):04X} at {lone.start()}")
    return len(text) + sum(1 for char in text if char > "\uffff")


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


def _when(body: dict[str, Any]) -> int:
    """A control request's `at`, or now."""
    return _unix(body["at"]) if body.get("at") is not None else int(time.time())


def _parse_mode(params: dict[str, Any]) -> str | None:
    mode = params.get("parse_mode")
    if mode in (None, ""):
        return None
    if not isinstance(mode, str) or mode.lower() not in (m.lower() for m in PARSE_MODES):
        raise _bad("unsupported parse_mode")
    return mode


def _formatted(text: str, mode: str | None) -> Formatted:
    """The text as Telegram keeps it, or the 400 it answers for bad markup."""
    try:
        return parse(text, mode)
    except EntityError as exc:
        raise _bad(f"can't parse entities: {exc}") from None
    except UnicodeEncodeError:
        raise _bad("strings must be encoded in UTF-8") from None


def _check_text(params: dict[str, Any]) -> tuple[Formatted, str | None]:
    """A message text checked as Telegram does: parse_mode, markup, then 1-4096 UTF-16 units
    of what is left after entity parsing."""
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _bad("message text is empty")
    mode = _parse_mode(params)
    formatted = _formatted(text, mode)
    if not formatted.text.strip():
        raise _bad("message text is empty")
    if utf16_length(formatted.text) > MAX_TEXT:
        raise _bad("message is too long")
    return formatted, mode


def _check_caption(params: dict[str, Any]) -> tuple[Formatted, str | None]:
    """A caption: optional, 0-1024 UTF-16 units after entity parsing."""
    mode = _parse_mode(params)
    caption = params.get("caption")
    if caption in (None, ""):
        return Formatted(""), mode
    formatted = _formatted(str(caption), mode)
    if utf16_length(formatted.text) > MAX_CAPTION:
        raise _bad("message caption is too long")
    return formatted, mode


def _chat_id(params: dict[str, Any]) -> str:
    chat_id = params.get("chat_id")
    if chat_id in (None, ""):
        raise _bad("chat_id is empty")
    return str(chat_id)


def _kind(record: dict[str, Any]) -> str:
    """text | photo | document: what a stored message is (records from before media too)."""
    meta = record.get("_sandbox") or {}
    return meta.get("kind") or next((k for k in ("photo", "document") if k in record), "text")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """The Message object the Bot API shows: the stored record without sandbox bookkeeping."""
    return {k: v for k, v in record.items() if k != "_sandbox"}


def _listed(record: dict[str, Any]) -> dict[str, Any]:
    """A `sent` listing entry: the Message plus kind, parse_mode and, for files, their facts."""
    meta = {"kind": _kind(record), "parse_mode": None, **(record.get("_sandbox") or {})}
    entry = {**_public(record), **meta}
    if meta["kind"] != "text":
        entry.setdefault("caption", None)
    return entry


def _mime_type(name: str, declared: str | None) -> str:
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _check_webhook_url(url: str) -> None:
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


def _day_plan(rng: Any, starts: int, payload: str, midnight: int
              ) -> tuple[list[int], list[tuple[int, int, int, str, dict[str, Any]]]]:
    """A simulated day: its users, and (time, user#, seq, action, fields) events."""
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
    return users, plan


def _control_error(exc: _ApiError) -> Response:
    return JSONResponse({"ok": False, "description": exc.description}, status_code=exc.status)


ControlHandler = Callable[[dict[str, Any], dict[str, Any]], Any]


class TelegramSystem:
    """Telegram's Bot API for many bots: their chats and users, update queues (getUpdates or
    webhooks) and rate limits, with control routes that act as the users."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.alerts_bot_id: int = SANDBOX_BOT["id"]
        self.throttle = _Throttle()
        self.wakeups: dict[int, asyncio.Event] = {}
        self._migrate()

    def _migrate(self) -> None:
        """Register the alerts bot; move chats from before bots had their own chats."""
        state = self.state
        if state.get("bots") is None:
            state.put("bots", {SANDBOX_BOT_TOKEN: SANDBOX_BOT})
        legacy = state.get("chats")  # state dirs from before bots had their own chats
        if legacy is None:
            legacy = {str(SANDBOX_ALERT_CHAT_ID): {"type": "supergroup",
                                                   "title": "waifugen operators",
                                                   "started": True}}
        for chat_id, chat in legacy.items():
            key = self.chat_key(self.alerts_bot_id, chat_id)
            if state.get(key) is None:
                state.put(key, chat)
        state.put("chats", {})

    # --- helpers: bots, chats, users -----------------------------------------------------------

    def bot_for_token(self, token: str) -> dict[str, Any] | None:
        registered = self.state.get("bots", {}).get(token)
        if registered is not None:
            return registered
        match = _TOKEN.fullmatch(token)
        if match is None or int(match.group(1)) != sandbox_bot_id(match.group(2)):
            return None
        return _derived_bot(match.group(2))

    def bot_for_control(self, body: dict[str, Any]) -> dict[str, Any]:
        token, name = body.get("token"), body.get("bot")
        if isinstance(token, str) and token:
            bot = self.bot_for_token(token)
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

    @staticmethod
    def chat_key(bot_id: int, chat_id: int | str) -> str:
        return f"chat:{bot_id}:{chat_id}"

    def user_record(self, user_id: int) -> dict[str, Any] | None:
        return self.state.get(f"user:{user_id}")

    @staticmethod
    def private_chat(user: dict[str, Any]) -> dict[str, Any]:
        chat = {"id": user["id"], "first_name": user["first_name"], "type": "private"}
        if user.get("username"):
            chat["username"] = user["username"]
        return chat

    def next_message_id(self, bot_id: int, chat_id: int | str) -> int:
        return self.state.next_id(f"message:{bot_id}:{chat_id}")

    # --- helpers: the update queue -------------------------------------------------------------

    def enqueue(self, bot_id: int, kind: str, body: dict[str, Any]) -> int:
        update_id = self.state.next_id(f"update:{bot_id}")
        self.state.put(f"update:{bot_id}:{update_id:012d}", {"update_id": update_id, kind: body})
        if bot_id in self.wakeups:
            self.wakeups[bot_id].set()
        return update_id

    def allowed(self, bot_id: int) -> Callable[[dict[str, Any]], bool]:
        chosen = self.state.get(f"allowed_updates:{bot_id}")
        if chosen:
            return lambda update: _update_type(update) in chosen
        return lambda update: _update_type(update) not in DEFAULT_EXCLUDED_UPDATES

    def pending(self, bot_id: int) -> list[tuple[str, dict[str, Any]]]:
        """Queued updates in order; those of types the bot does not want are dropped."""
        wanted = self.allowed(bot_id)
        kept = []
        for key, update in self.state.list_prefix(f"update:{bot_id}:").items():
            if wanted(update):
                kept.append((key, update))
            else:
                self.state.delete(key)
        return kept

    def drop_pending(self, bot_id: int) -> None:
        for update_key, _ in self.pending(bot_id):
            self.state.delete(update_key)

    def message_update(self, bot: dict[str, Any], user: dict[str, Any], date: int,
                       **fields: Any) -> int:
        message = {"message_id": self.next_message_id(bot["id"], user["id"]), "from": user,
                   "chat": self.private_chat(user), "date": date, **fields}
        return self.enqueue(bot["id"], "message", message)

    def member_update(self, bot: dict[str, Any], user: dict[str, Any], date: int, old: str,
                      new: str) -> int:
        me = {k: bot[k] for k in ("id", "is_bot", "first_name", "username")}
        change = {"chat": self.private_chat(user), "from": user, "date": date,
                  "old_chat_member": {"user": me, "status": old},
                  "new_chat_member": {"user": me, "status": new,
                                      **({"until_date": 0} if new == "kicked" else {})}}
        return self.enqueue(bot["id"], "my_chat_member", change)

    # --- helpers: users acting -----------------------------------------------------------------

    def start_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """The user who presses Start (created, or updated from `body`), stored."""
        user_id = body.get("user_id")
        if user_id is None:
            user_id = 1_000_000_000 + self.state.next_id("user")
        elif isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
            raise _ApiError(400, "user_id must be a positive integer")
        user = self.user_record(user_id) or {"id": user_id, "is_bot": False,
                                             "first_name": f"Fan {user_id % 10_000}"}
        for name in ("first_name", "username", "language_code"):
            if isinstance(body.get(name), str) and body[name]:
                user[name] = body[name]
        self.state.put(f"user:{user_id}", user)
        return user

    def start(self, bot: dict[str, Any], body: dict[str, Any], date: int) -> dict[str, Any]:
        payload = body.get("payload")
        if payload not in (None, "") and not (isinstance(payload, str)
                                              and _PAYLOAD.fullmatch(payload)):
            raise _ApiError(400, "payload: 1-64 characters of A-Z, a-z, 0-9, _ and - "
                                 "(Telegram's deep-link start parameter)")
        user = self.start_user(body)
        user_id = user["id"]
        key = self.chat_key(bot["id"], user_id)
        chat = self.state.get(key) or {"type": "private"}
        was_blocked = bool(chat.get("blocked"))
        self.state.put(key, {**chat, "started": True, "blocked": False})
        if was_blocked:  # pressing Start again unblocks the bot
            self.member_update(bot, user, date, "kicked", "member")
        text = f"/start {payload}" if payload else "/start"
        update_id = self.message_update(
            bot, user, date, text=text,
            entities=[{"offset": 0, "length": 6, "type": "bot_command"}])
        link = f"https://t.me/{bot['username']}" + (f"?start={payload}" if payload else "")
        return {"ok": True, "user_id": user_id, "chat_id": user_id, "update_id": update_id,
                "deep_link": link}

    def act(self, bot: dict[str, Any], body: dict[str, Any], date: int) -> dict[str, Any]:
        action, user_id = body.get("action"), body.get("user_id")
        if action not in ("reply", "stop", "block", "unblock", "tip"):
            raise _ApiError(400, "action must be reply, stop, block, unblock or tip")
        user = self.user_record(user_id) if isinstance(user_id, int) else None
        key = self.chat_key(bot["id"], user_id)
        chat = self.state.get(key)
        if user is None or chat is None or not chat.get("started"):
            raise _ApiError(404, f"user {user_id} has no chat with {bot['username']}: "
                                 "start it first")
        blocked = bool(chat.get("blocked"))
        if action == "block" or action == "unblock":
            return self.toggle_block(bot, user, chat, key, action == "block", date)
        if blocked:
            raise _ApiError(409, "the user blocked the bot: unblock (or start) first")
        if action == "tip":
            return self.tip(bot, user, body.get("amount"), date)
        text = "STOP" if action == "stop" else body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "reply needs a non-empty text")
        return {"ok": True, "update_id": self.message_update(bot, user, date, text=text)}

    def toggle_block(self, bot: dict[str, Any], user: dict[str, Any], chat: dict[str, Any],
                     key: str, block: bool, date: int) -> dict[str, Any]:
        blocked = bool(chat.get("blocked"))
        if blocked == block:
            raise _ApiError(409, f"the user has {'already' if blocked else 'not'} "
                                 "blocked the bot")
        self.state.put(key, {**chat, "blocked": block})
        old, new = ("member", "kicked") if block else ("kicked", "member")
        return {"ok": True, "update_id": self.member_update(bot, user, date, old, new)}

    def tip(self, bot: dict[str, Any], user: dict[str, Any], amount: Any,
            date: int) -> dict[str, Any]:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise _ApiError(400, "tip needs amount: a whole number of Stars, at least 1")
        charge = f"sandbox-{bot['id']}-{user['id']}-{self.state.next_id('charge')}"
        payment = {"currency": "XTR", "total_amount": amount, "invoice_payload": "tip",
                   "telegram_payment_charge_id": charge, "provider_payment_charge_id": ""}
        return {"ok": True,
                "update_id": self.message_update(bot, user, date, successful_payment=payment)}

    def simulate(self, bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        try:
            day = dt.date.fromisoformat(str(body.get("day")))
        except ValueError:
            raise _ApiError(400, "day must be YYYY-MM-DD") from None
        done_key = f"simulated:{bot['id']}:{day.isoformat()}"
        done = self.state.get(done_key)
        if done is not None:
            return {**done, "already_simulated": True}
        rng = self.ctx.rng("simulate", bot["username"].lower(), day.isoformat())
        starts = body.get("starts")
        if starts is None:
            starts = rng.randint(2, 6)
        if isinstance(starts, bool) or not isinstance(starts, int) or not 0 <= starts <= 500:
            raise _ApiError(400, "starts must be a whole number 0..500")
        slug = bot["username"].removesuffix("_bot").replace("_", "-")
        payload = body.get("payload") or f"c-{slug}"[:64]
        midnight = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())
        users, plan = _day_plan(rng, starts, payload, midnight)
        events = self.play(bot, users, plan)
        summary = {"ok": True, "bot": bot["username"], "day": day.isoformat(),
                   "starts": starts, "users": users, "events": events}
        self.state.put(done_key, summary)
        return summary

    def play(self, bot: dict[str, Any], users: list[int],
             plan: list[tuple[int, int, int, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Carry out a simulated day's events in time order; what happened."""
        events = []
        for at, n, _, action, fields in sorted(plan, key=lambda e: e[:3]):
            user_id = users[n - 1]
            if action == "start":
                update_id = self.start(bot, fields, at)["update_id"]
            else:
                update_id = self.act(bot, {"action": action, "user_id": user_id, **fields},
                                     at)["update_id"]
            events.append({"user_id": user_id, "action": action, "date": at,
                           "update_id": update_id, **fields})
        return events

    # --- API routes: Bot API methods -----------------------------------------------------------

    async def method(self, request: Request) -> Response:
        bot = self.bot_for_token(request.path_params["token"])
        if bot is None:
            return _error(401, "Unauthorized")
        name = request.path_params["method"]
        try:
            params = await _params(request)
            if name == "getMe":
                return _ok(bot)
            if name == "sendMessage":
                return self.send_message(bot, params)
            if name in ("sendPhoto", "sendDocument"):
                return await self.send_file(bot, params, name.removeprefix("send").lower())
            if name in ("editMessageText", "editMessageCaption"):
                field = "text" if name == "editMessageText" else "caption"
                return self.edit_message(bot, params, field)
            if name == "getUpdates":
                return await self.get_updates(bot, params)
            if name == "setWebhook":
                return self.set_webhook(bot, params)
            if name == "deleteWebhook":
                return self.delete_webhook(bot, params)
            if name == "getWebhookInfo":
                return self.webhook_info(bot)
        except _ApiError as exc:
            return _error(exc.status, exc.description, exc.retry_after)
        return _error(404, "Not Found")

    def now(self) -> int:
        return int(self.ctx.clock())

    def send_message(self, bot: dict[str, Any], params: dict[str, Any]) -> Response:
        chat_id = _chat_id(params)
        formatted, mode = _check_text(params)
        chat = self.reachable_chat(bot, chat_id)
        message = self.new_message(bot, chat_id, chat, text=formatted.text)
        if formatted.entities:
            message["entities"] = formatted.entities
        return _ok(self.store_message(bot, chat_id, message, {"kind": "text", "parse_mode": mode}))

    def reachable_chat(self, bot: dict[str, Any], chat_id: str) -> dict[str, Any]:
        """The chat a new message goes to, after Telegram's checks and rate limits."""
        chat = self.state.get(self.chat_key(bot["id"], chat_id))
        if chat is None:
            known_user = chat_id.isdigit() and self.user_record(int(chat_id)) is not None
            if not known_user:
                raise _bad("chat not found")
            chat = {"type": "private", "started": False}
        if chat.get("blocked"):
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if not chat.get("started"):
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        wait = self.throttle.take(bot["id"], chat_id, chat.get("type", "private") != "private")
        if wait is not None:
            raise _ApiError(429, f"Too Many Requests: retry after {math.ceil(wait)}", wait)
        return chat

    def new_message(self, bot: dict[str, Any], chat_id: str, chat: dict[str, Any],
                    **content: Any) -> dict[str, Any]:
        """A Message from `bot` with the chat's next message id (sequential per bot and chat)."""
        return {"message_id": self.next_message_id(bot["id"], chat_id), "date": self.now(),
                "chat": self.described_chat(chat_id, chat), "from": bot, **content}

    def store_message(self, bot: dict[str, Any], chat_id: str, message: dict[str, Any],
                      meta: dict[str, Any]) -> dict[str, Any]:
        """Keep a sent message (with what only the `sent` listing shows); its public form."""
        key = f"sent:{bot['id']}:{chat_id}:{message['message_id']:08d}"
        self.state.put(key, {**message, "_sandbox": meta})
        return message

    # --- sendPhoto, sendDocument -------------------------------------------------------------

    async def send_file(self, bot: dict[str, Any], params: dict[str, Any],
                        kind: str) -> Response:
        chat_id = _chat_id(params)
        caption, mode = _check_caption(params)
        media, meta = await self.media(bot, params, kind)
        chat = self.reachable_chat(bot, chat_id)
        message = self.new_message(bot, chat_id, chat, **{kind: media})
        if caption.text:
            message["caption"] = caption.text
        if caption.entities:
            message["caption_entities"] = caption.entities
        meta = {"kind": kind, "parse_mode": mode, **meta,
                "disable_notification": _flag(params.get("disable_notification"))}
        return _ok(self.store_message(bot, chat_id, message, meta))

    async def media(self, bot: dict[str, Any], params: dict[str, Any],
                    kind: str) -> tuple[Any, dict[str, Any]]:
        """(the Message's `photo` list or `document`, the listing's facts) for `params[kind]`:
        an upload, a file_id this bot has seen, or an http(s) URL."""
        value = params.get(kind)
        if isinstance(value, UploadFile):
            data = await value.read()
            if not data:
                raise _bad("file must be non-empty")
            if len(data) > MAX_DOCUMENT_BYTES:
                raise _ApiError(413, "Request Entity Too Large")
            if kind == "photo":
                return self.uploaded_photo(bot, data)
            return self.uploaded_document(bot, data, value.filename or "document",
                                          value.content_type)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return self.linked_file(bot, kind, value)
        if isinstance(value, str) and value:
            record = self.state.get(f"file:{bot['id']}:{value}")
            if record is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            if record["kind"] != kind:
                raise _bad("type of file mismatch")
            return record["media"], {**record["meta"], "source": "file_id"}
        raise _bad(f"there is no {kind} in the request")

    def uploaded_photo(self, bot: dict[str, Any], data: bytes) -> tuple[Any, dict[str, Any]]:
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad("PHOTO_SAVE_FILE_INVALID")

        def check(image: Image) -> None:
            if not dimensions_ok(image.width, image.height):
                raise _bad("PHOTO_INVALID_DIMENSIONS")

        try:
            image = read_image(data, on_header=check)
        except ImageError:
            raise _bad("IMAGE_PROCESS_FAILED") from None
        sha = hashlib.sha256(data).hexdigest()
        area = image.width * image.height
        photo = []
        for letter, width, height in photo_sizes(image.width, image.height):
            file_id, unique = file_ids(bot["id"], "photo", sha, letter)
            # Telegram re-encodes every size; the largest carries the upload's byte count and
            # the thumbnails an estimate in proportion to their area.
            size = len(data) if letter == "w" else max(1, len(data) * width * height // area)
            photo.append({"file_id": file_id, "file_unique_id": unique, "file_size": size,
                          "width": width, "height": height})
        meta = {"source": "upload", "file_size": len(data), "sha256": sha,
                "width": image.width, "height": image.height, "format": image.format}
        self.remember_file(bot, "photo", [p["file_id"] for p in photo], photo, meta)
        return photo, meta

    def uploaded_document(self, bot: dict[str, Any], data: bytes, name: str,
                          declared: str | None) -> tuple[Any, dict[str, Any]]:
        sha = hashlib.sha256(data).hexdigest()
        file_id, unique = file_ids(bot["id"], "document", sha, name)
        document = {"file_name": name, "mime_type": _mime_type(name, declared),
                    "file_id": file_id, "file_unique_id": unique, "file_size": len(data)}
        meta = {"source": "upload", "file_size": len(data), "sha256": sha, "file_name": name,
                "mime_type": document["mime_type"]}
        self.remember_file(bot, "document", [file_id], document, meta)
        return document, meta

    def linked_file(self, bot: dict[str, Any], kind: str,
                    url: str) -> tuple[Any, dict[str, Any]]:
        """A file Telegram would download from `url`. The sandbox never calls out, so it
        knows no bytes: one 0x0 PhotoSize, or a document named after the URL's last segment."""
        key = hashlib.sha256(url.encode()).hexdigest()
        file_id, unique = file_ids(bot["id"], kind, key, "url")
        meta = {"source": "url", "url": url, "file_size": None, "sha256": None}
        if kind == "photo":
            return [{"file_id": file_id, "file_unique_id": unique, "width": 0,
                     "height": 0}], {**meta, "width": 0, "height": 0}
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "document"
        document = {"file_name": name, "mime_type": _mime_type(name, None),
                    "file_id": file_id, "file_unique_id": unique}
        return document, {**meta, "file_name": name, "mime_type": document["mime_type"]}

    def remember_file(self, bot: dict[str, Any], kind: str, ids: list[str], media: Any,
                      meta: dict[str, Any]) -> None:
        """Each file id can be sent again by this bot (metadata only: no bytes are kept)."""
        record = {"kind": kind, "media": media, "meta": meta}
        self.state.put_many({f"file:{bot['id']}:{file_id}": record for file_id in ids})

    # --- editMessageText, editMessageCaption ---------------------------------------------------

    def edit_message(self, bot: dict[str, Any], params: dict[str, Any], field: str) -> Response:
        """Replace the text (field "text") or caption of a message this bot sent."""
        chat_id = _chat_id(params)
        message_id = _int(params, "message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        formatted, mode = _check_text(params) if field == "text" else _check_caption(params)
        chat = self.state.get(self.chat_key(bot["id"], chat_id))
        if chat is None:
            raise _bad("chat not found")
        if chat.get("blocked"):
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        key = f"sent:{bot['id']}:{chat_id}:{message_id:08d}"
        record = self.state.get(key)
        if record is None:
            # Ids are sequential per bot and chat: a taken id that is not ours is the user's.
            last = self.state.get(f"_counter/message:{bot['id']}:{chat_id}", 0)
            raise _bad("message can't be edited" if 1 <= message_id <= last
                       else "message to edit not found")
        kind = _kind(record)
        if field == "text" and kind != "text":
            raise _bad("there is no text in the message to edit")
        if field == "caption" and kind == "text":
            raise _bad("there is no caption in the message to edit")
        entities = "entities" if field == "text" else "caption_entities"
        if (record.get(field) or "", record.get(entities) or []) == (formatted.text,
                                                                     formatted.entities):
            raise _bad(NOT_MODIFIED)
        edited = {k: v for k, v in record.items() if k not in (field, entities)}
        if formatted.text:
            edited[field] = formatted.text
        if formatted.entities:
            edited[entities] = formatted.entities
        edited["edit_date"] = self.now()
        edited["_sandbox"] = {**(record.get("_sandbox") or {"kind": kind}), "parse_mode": mode}
        self.state.put(key, edited)
        return _ok(_public(edited))

    def described_chat(self, chat_id: str, chat: dict[str, Any]) -> dict[str, Any]:
        """A sent message's `chat`: the user's private chat, or the stored chat's id/type."""
        chat_type = chat.get("type", "private")
        described = {"id": int(chat_id), "type": chat_type}
        if "title" in chat:
            described["title"] = chat["title"]
        user = self.user_record(int(chat_id)) if chat_type == "private" else None
        if user is not None:
            described = self.private_chat(user)
        return described

    async def get_updates(self, bot: dict[str, Any], params: dict[str, Any]) -> Response:
        if self.state.get(f"webhook:{bot['id']}"):
            return _error(409, WEBHOOK_CONFLICT)
        offset = _int(params, "offset", 0) or 0
        limit = _int(params, "limit", 100)
        if limit is None or not 1 <= limit <= 100:
            raise _bad("limit must be between 1 and 100")
        timeout = min(float(_int(params, "timeout", 0) or 0), MAX_LONG_POLL)
        self.remember_allowed(bot, params)
        queue = self.confirm(bot["id"], offset)
        if not queue:
            queue = await self.long_poll(bot["id"], offset, timeout)
        return _ok([update for _, update in queue[:limit]])

    def remember_allowed(self, bot: dict[str, Any], params: dict[str, Any]) -> None:
        chosen = _string_list(params.get("allowed_updates"), "allowed_updates")
        if chosen is not None:
            self.state.put(f"allowed_updates:{bot['id']}", chosen)

    def confirm(self, bot_id: int, offset: int) -> list[tuple[str, dict[str, Any]]]:
        """Drop the updates `offset` confirms; those left, in order."""
        queue = self.pending(bot_id)
        if offset < 0:  # keep the last -offset updates, forget the rest
            for key, _ in queue[:offset]:
                self.state.delete(key)
            return queue[offset:]
        if offset > 0:
            for key, update in queue:
                if update["update_id"] < offset:
                    self.state.delete(key)
            return [(k, u) for k, u in queue if u["update_id"] >= offset]
        return queue

    async def long_poll(self, bot_id: int, offset: int,
                        timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Wait up to `timeout` seconds for an update at or above `offset`."""
        queue: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while not queue and (left := deadline - time.monotonic()) > 0:
            event = self.wakeups.setdefault(bot_id, asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                break
            queue = [(k, u) for k, u in self.pending(bot_id) if u["update_id"] >= offset]
        return queue

    def set_webhook(self, bot: dict[str, Any], params: dict[str, Any]) -> Response:
        url = str(params.get("url") or "")
        key = f"webhook:{bot['id']}"
        if _flag(params.get("drop_pending_updates")):
            self.drop_pending(bot["id"])
        if not url:
            self.state.delete(key)
            return _ok(True, "Webhook was deleted")
        _check_webhook_url(url)
        secret = params.get("secret_token")
        if secret not in (None, "") and not (isinstance(secret, str)
                                             and SECRET_TOKEN.fullmatch(secret)):
            raise _bad("secret token contains unallowed characters")
        self.remember_allowed(bot, params)
        hook = {"url": url, "secret_token": secret or None}
        same = self.state.get(key, {}).get("url") == url
        self.state.put(key, hook)
        return _ok(True, "Webhook is already set" if same else "Webhook was set")

    def delete_webhook(self, bot: dict[str, Any], params: dict[str, Any]) -> Response:
        if _flag(params.get("drop_pending_updates")):
            self.drop_pending(bot["id"])
        existed = self.state.delete(f"webhook:{bot['id']}")
        return _ok(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    def webhook_info(self, bot: dict[str, Any]) -> Response:
        hook = self.state.get(f"webhook:{bot['id']}") or {}
        info: dict[str, Any] = {"url": hook.get("url", ""), "has_custom_certificate": False,
                                "pending_update_count": len(self.pending(bot["id"]))}
        if hook:
            info["max_connections"] = 40
            for name in ("last_error_date", "last_error_message"):
                if hook.get(name) is not None:
                    info[name] = hook[name]
        chosen = self.state.get(f"allowed_updates:{bot['id']}")
        if hook and chosen:
            info["allowed_updates"] = chosen
        return _ok(info)

    # --- control routes ------------------------------------------------------------------------

    def control(self, handler: ControlHandler, *,
                default_token: str | None = None) -> Callable[[Request], Awaitable[Response]]:
        """A control route: its JSON object body, the bot it names, then `handler(bot, body)`."""
        async def endpoint(request: Request) -> Response:
            try:
                try:
                    body = await read_control_body(request)
                except BadControlBody:
                    raise _ApiError(400, "the body must be a JSON object") from None
                if default_token and not (body.get("bot") or body.get("token")):
                    body["token"] = default_token
                result = handler(self.bot_for_control(body), body)
                if asyncio.iscoroutine(result):
                    result = await result
                return JSONResponse(result)
            except _ApiError as exc:
                return _control_error(exc)
        return endpoint

    def control_start(self, bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return self.start(bot, body, _when(body))

    def control_act(self, bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return self.act(bot, body, _when(body))

    async def control_deliver(self, bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return await self.deliver(bot)

    async def deliver(self, bot: dict[str, Any]) -> dict[str, Any]:
        key = f"webhook:{bot['id']}"
        hook = self.state.get(key)
        if not hook:
            raise _ApiError(409, f"{bot['username']} has no webhook: setWebhook first")
        if not _loopback(urlsplit(hook["url"]).hostname):
            raise _ApiError(409, "the sandbox delivers only to loopback webhook URLs")
        delivered, error = await self.post_updates(bot["id"], hook)
        failed = 0 if error is None else 1  # Telegram retries it before any later update
        current = self.state.get(key)
        if current and error is not None:
            self.state.put(key, {**current, "last_error_date": int(time.time()),
                                 "last_error_message": error})
        return {"ok": True, "delivered": delivered, "failed": failed,
                "pending": len(self.pending(bot["id"]))}

    async def post_updates(self, bot_id: int, hook: dict[str, Any]) -> tuple[int, str | None]:
        """POST pending updates in order until one fails: (delivered, the failure or None)."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]} \
            if hook.get("secret_token") else {}
        delivered = 0
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
            for update_key, update in self.pending(bot_id):
                try:
                    answer = await client.post(hook["url"], json=update, headers=headers)
                except httpx.HTTPError as exc:
                    return delivered, f"Connection failed: {type(exc).__name__}"
                if not 200 <= answer.status_code < 300:
                    return delivered, (f"Wrong response from the webhook: "
                                       f"{answer.status_code} {answer.reason_phrase}")
                self.state.delete(update_key)
                delivered += 1
        return delivered, None

    def set_chat(self, bot: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        chat_id = body.get("chat_id")
        if chat_id in (None, ""):
            raise _ApiError(400, "chat_id is required")
        self.state.put(self.chat_key(bot["id"], chat_id), {
            "type": body.get("type", "private"), "started": bool(body.get("started", True)),
            "blocked": bool(body.get("blocked", False))})
        return {"ok": True}

    async def sent(self, request: Request) -> Response:
        chat_id = request.query_params.get("chat_id", "")
        bot_id: int | None = None
        if request.query_params.get("bot"):
            try:
                bot_id = self.bot_for_control({"bot": request.query_params["bot"]})["id"]
            except _ApiError as exc:
                return _control_error(exc)
        messages = [_listed(m) for m in self.state.list_prefix("sent:").values()
                    if (not chat_id or str(m["chat"]["id"]) == chat_id)
                    and (bot_id is None or m["from"]["id"] == bot_id)]
        return JSONResponse(messages)

    def routes(self) -> list[Route]:
        control = self.control
        return [
            Route("/bot{token}/{method}", self.method, methods=["GET", "POST"]),
            Route("/_control/chats", control(self.set_chat, default_token=SANDBOX_BOT_TOKEN),
                  methods=["POST"]),
            Route("/_control/start", control(self.control_start), methods=["POST"]),
            Route("/_control/act", control(self.control_act), methods=["POST"]),
            Route("/_control/simulate", control(self.simulate), methods=["POST"]),
            Route("/_control/deliver", control(self.control_deliver), methods=["POST"]),
            Route("/_control/sent", self.sent, methods=["GET"]),
        ]

    def system(self) -> System:
        return System(app=Starlette(routes=self.routes()), error_response=error_response)


def create(ctx: SystemContext) -> System:
    return TelegramSystem(ctx).system()
