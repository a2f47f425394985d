"""Telegram Bot API client: operator alerts and, one bot per character, subscriber DMs.

Wire contract: docs/subscriber-channels.md (Telegram) and PROTOCOLS.md section 4.

Exactly once: sendMessage changes the world, so the shared HTTP layer resends it only when
Telegram said 429 (nothing was sent; its `parameters.retry_after` is honoured) or the
connection never opened. Reads (getMe, getUpdates, getWebhookInfo) and the webhook setters,
whose effect is the same however often they run, are retried freely.

Limits, taken before a request leaves (Telegram's FAQ; it publishes no exact numbers):
- about 30 messages a second per bot (keyed by a fingerprint of the token, never the token);
- 1 message a second per private chat, 20 a minute per group/supergroup/channel (a chat id
  below zero or an @username), keyed by bot + chat.
They live in the process-wide memory store unless `rate_store` is given (e.g.
resources.quota_store.PostgresRateLimitStore(engine, "telegram")) to share them between
processes. Either way a limit counts sliding windows, each message from the moment its answer
arrived, so Telegram never sees more than its limit in any second (benchmarks/dm_send.py).

Photos and documents (sendPhoto, sendDocument) go up as multipart/form-data and are sent at
most once, like sendMessage: the HTTP layer resends the upload only after a 429 or a
connection that never opened (the bytes are in memory, so the body can be rebuilt). A
connection lost after the request went out raises UnknownOutcome: reconcile before sending
again, e.g. by editing the message you believe was sent to the same content, which answers
"not_modified" if it is there. Edits (editMessageText, editMessageCaption) are safe to retry
(a repeated edit is "not modified"), so they are retried like reads; a retried edit may thus
report "not_modified" although the first attempt did the edit.

Errors: a subscriber who blocked the bot raises TelegramBlocked, one who never pressed Start
TelegramCannotInitiate, an unknown chat TelegramChatNotFound (all PermanentError subclasses
with `.chat_id`); an edit of a message that is not there TelegramMessageNotFound, of one the
bot may not edit (not its own) TelegramMessageNotEditable. A text or caption Telegram would
refuse is a ValueError before anything is sent: empty text, over 4096 (text) or 1024 (caption)
UTF-16 units of what is shown (with parse_mode="HTML" counted after entity parsing:
html_text_length; other modes are left to Telegram), bad HTML, a photo over 10 MB or a file
over 50 MB. Only `TelegramResource.send_alert` shortens over-long text.

Sandbox bots: `sandbox_bot_token(account)` is the token the sandbox accepts for a character's
bot (`<id>:AAsandbox_<account>`, the id derived from the account), so sandbox mode can seed a
token per character.
"""

from __future__ import annotations

import mimetypes
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import httpx
from pydantic import Field

from resources.http import (
    IDEMPOTENT,
    InvalidResponse,
    Limit,
    PermanentError,
    RateLimiter,
    RateLimitStore,
    RetryPolicy,
    fingerprint,
    json_request,
    make_client,
    telegram_classifier,
    telegram_retry_after,
)
from resources.telegram_html import (  # noqa: F401 (html_text_length re-exported)
    html_text_length,
    html_visible_text,
)
from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.core.redaction import register_secret
from waifugen_assets.core.sandbox_world import (  # noqa: F401 (re-exported for callers)
    SANDBOX_ALERT_CHAT_ID,
    SANDBOX_BOT_TOKEN,
    sandbox_bot_id,
    sandbox_bot_token,
    sandbox_bot_username,
)

SYSTEM = "telegram"
PRODUCTION_URL = "https://api.telegram.org"
MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts text (entity offsets use them too)
MAX_CAPTION = 1024  # UTF-16 code units of a photo's or document's caption
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # Telegram's limit for uploaded photos
MAX_FILE_BYTES = 50 * 1024 * 1024  # and for any other uploaded file
MESSAGES_PER_SECOND_PER_BOT = 30
SECONDS_PER_PRIVATE_MESSAGE = 1.0
GROUP_MESSAGES_PER_MINUTE = 20
MAX_UPDATES = 100
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # setWebhook's secret_token alphabet
_CHAT_EXTENSION = "waifugen.telegram.chat"  # request extension: the chat a message goes to


# --- errors ------------------------------------------------------------------------------------

class TelegramRecipientError(PermanentError):
    """The chat cannot receive messages from this bot; `.chat_id` says which chat."""

    def __init__(self, message: str, *, system: str = SYSTEM, status: int | None = None,
                 reason: str = "", chat_id: str | int | None = None) -> None:
        super().__init__(message, system=system, status=status, reason=reason)
        self.chat_id = chat_id


class TelegramBlocked(TelegramRecipientError):
    """403 "bot was blocked by the user": stop messaging this subscriber."""


class TelegramCannotInitiate(TelegramRecipientError):
    """403 "bot can't initiate conversation with a user": they never pressed Start."""


class TelegramChatNotFound(TelegramRecipientError):
    """400 "chat not found": a wrong id, or a chat the bot was never in."""


_RECIPIENT_ERRORS: tuple[tuple[str, type[TelegramRecipientError]], ...] = (
    ("bot was blocked by the user", TelegramBlocked),
    ("can't initiate conversation", TelegramCannotInitiate),
    ("chat not found", TelegramChatNotFound),
    ("user is deactivated", TelegramRecipientError),
)


class TelegramMessageNotFound(PermanentError):
    """400 "message to edit not found": no such message in that chat."""


class TelegramMessageNotEditable(PermanentError):
    """400 "message can't be edited": not this bot's message (or too old to edit)."""


class TelegramNotConfigured(RuntimeError):
    """TELEGRAM_BOT_TOKEN or TELEGRAM_ALERT_CHAT_ID is unset (production)."""


_EDIT_ERRORS: tuple[tuple[str, type[PermanentError]], ...] = (
    ("message to edit not found", TelegramMessageNotFound),
    ("message can't be edited", TelegramMessageNotEditable),
)
_NOT_MODIFIED = "message is not modified"


def _typed(error: PermanentError, chat_id: str | int) -> PermanentError:
    reason = error.reason.lower()
    for words, cls in _RECIPIENT_ERRORS:
        if words in reason:
            return cls(str(error), system=error.system, status=error.status,
                       reason=error.reason, chat_id=chat_id)
    return error


# --- text --------------------------------------------------------------------------------------

def utf16_length(text: str) -> int:
    """Telegram's length of a text: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _shown(text: str, parse_mode: str | None) -> str:
    """What Telegram will show of `text`: HTML parsed (ValueError if it cannot be), any other
    text as it is."""
    return html_visible_text(text) if (parse_mode or "").lower() == "html" else text


def check_text(text: str, parse_mode: str | None = None) -> None:
    """ValueError naming the problem if Telegram would refuse this message text (HTML is
    measured after entity parsing; MarkdownV2/Markdown are only checked for emptiness)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Telegram message text is empty")
    shown = _shown(text, parse_mode)
    if not shown.strip():
        raise ValueError("Telegram message text is empty once its HTML tags are removed")
    if (parse_mode or "").lower() in ("markdownv2", "markdown"):
        return
    length = utf16_length(shown)
    if length > MAX_TEXT:
        raise ValueError(f"Telegram message text is {length} UTF-16 units long; the limit is "
                         f"{MAX_TEXT}: split or shorten it")


def check_caption(html: str, parse_mode: str | None = "HTML") -> None:
    """ValueError naming the length if Telegram would refuse this caption: over 1024 UTF-16
    units of visible text (HTML after entity parsing), or HTML it cannot parse."""
    if (parse_mode or "").lower() in ("markdownv2", "markdown"):
        return
    length = utf16_length(_shown(html, parse_mode))
    if length > MAX_CAPTION:
        raise ValueError(f"Telegram caption is {length} UTF-16 units long after entity "
                         f"parsing; the limit is {MAX_CAPTION}: shorten it")


def fit_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to at most `limit` UTF-16 units, never inside a surrogate pair."""
    if utf16_length(text) <= limit:
        return text
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text


# --- limits ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TelegramLimiters:
    """The three client-side budgets (see the module doc)."""

    per_bot: RateLimiter
    per_chat: RateLimiter
    per_group: RateLimiter


def telegram_limiters(*, store: RateLimitStore | None = None, max_wait: float = 60.0,
                      clock: Callable[[], float] = time.time) -> TelegramLimiters:
    """Telegram's budgets; `store` shares them across processes, `clock` is for tests.

    A send waits up to `max_wait` seconds for its slot (a group's 21st message in a minute
    may need most of a minute), then raises RateLimited without sending.
    """
    return TelegramLimiters(
        per_bot=RateLimiter(SYSTEM, MESSAGES_PER_SECOND_PER_BOT, 1.0, store=store,
                            max_wait=max_wait, clock=clock),
        per_chat=RateLimiter(f"{SYSTEM}-chat", 1, SECONDS_PER_PRIVATE_MESSAGE, store=store,
                             max_wait=max_wait, clock=clock),
        per_group=RateLimiter(f"{SYSTEM}-group", GROUP_MESSAGES_PER_MINUTE, 60.0, store=store,
                              max_wait=max_wait, clock=clock))


_PROCESS_LIMITERS = telegram_limiters()


def is_group_chat(chat_id: str | int) -> bool:
    """Groups, supergroups and channels have negative ids (or are addressed as @username)."""
    return str(chat_id).startswith(("-", "@"))


def _limits(bot: str, limiters: TelegramLimiters) -> list[Limit]:
    def messages(request: httpx.Request) -> str | None:
        return bot if _CHAT_EXTENSION in request.extensions else None

    def chats(group: bool) -> Callable[[httpx.Request], str | None]:
        def key(request: httpx.Request) -> str | None:
            chat = request.extensions.get(_CHAT_EXTENSION)
            if chat is None or is_group_chat(chat) != group:
                return None
            return f"{bot}:{fingerprint(str(chat))}"  # no user ids in quota rows
        return key

    return [Limit(limiters.per_bot, messages), Limit(limiters.per_chat, chats(False)),
            Limit(limiters.per_group, chats(True))]


# --- the client --------------------------------------------------------------------------------

@dataclass
class TelegramClient:
    """One bot. `rate_store` shares the limits across processes; `limiters` replaces them."""

    token: str
    base_url: str = PRODUCTION_URL
    timeout: float = 30.0
    rate_store: RateLimitStore | None = None
    limiters: TelegramLimiters | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.token or ":" not in self.token:
            raise ValueError("a Telegram bot token looks like <bot id>:<secret>")
        limiters = self.limiters or (telegram_limiters(store=self.rate_store)
                                     if self.rate_store is not None else _PROCESS_LIMITERS)
        self.bot_key = fingerprint(self.token)
        self._http = make_client(
            SYSTEM, base_url=f"{self.base_url.rstrip('/')}/bot{self.token}",
            timeout=self.timeout, classifier=telegram_classifier,
            retry_after_from_response=telegram_retry_after, secrets=[self.token],
            retry=RetryPolicy(max_attempts=4, max_retry_after=60),
            limits=_limits(self.bot_key, limiters))

    def __repr__(self) -> str:
        return f"TelegramClient(bot={self.bot_key}, base_url={self.base_url!r})"

    @property
    def bot_id(self) -> int:
        """The bot's numeric id: the token's part before the colon (event ids use it)."""
        return int(self.token.split(":", 1)[0])

    def _result(self, method: str, path: str, **kwargs: Any) -> Any:
        return json_request(self._http, method, path, require=["result"], **kwargs)["result"]

    def _invalid(self, path: str, problem: str) -> InvalidResponse:
        return InvalidResponse(f"{SYSTEM}: {path}: {problem}", system=SYSTEM, reason=problem)

    def get_me(self) -> dict[str, Any]:
        """The bot itself: {"id", "is_bot", "first_name", "username", ...}."""
        me = self._result("GET", "/getMe")
        if not isinstance(me, dict) or "id" not in me:
            raise self._invalid("/getMe", "no bot user in the answer")
        return me

    def send_message(self, chat_id: str | int, text: str, parse_mode: str | None = None) -> int:
        """Send a message; returns Telegram's message_id. Sent at most once.

        ValueError for text Telegram would refuse (nothing is sent); TelegramBlocked,
        TelegramCannotInitiate, TelegramChatNotFound for recipients it cannot reach.
        """
        check_text(text, parse_mode)
        payload: dict[str, object] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            payload["parse_mode"] = parse_mode
        return self._send("/sendMessage", chat_id, json=payload)

    def _send(self, path: str, chat_id: str | int, **kwargs: Any) -> int:
        """POST a new message (never resent once it may have arrived); its message_id."""
        try:
            message = self._result("POST", path, extensions={_CHAT_EXTENSION: str(chat_id)},
                                   **kwargs)
        except PermanentError as exc:
            typed = _typed(exc, chat_id)
            if typed is exc:
                raise
            raise typed from exc
        if not isinstance(message, dict) or "message_id" not in message:
            raise self._invalid(path, "no message_id in the answer")
        return int(message["message_id"])

    def send_photo(self, chat_id: str | int, png: bytes, *, caption: str | None = None,
                   parse_mode: str | None = None, filename: str = "report.png") -> int:
        """Upload an image (PNG or JPEG, at most 10 MB) as a photo; returns its message_id.

        Sent at most once (see the module doc). ValueError before sending for an empty or
        too large image or a caption Telegram would refuse; Telegram itself answers 400
        PHOTO_INVALID_DIMENSIONS (width + height over 10000, sides over 20:1) or
        IMAGE_PROCESS_FAILED (not an image) as PermanentError."""
        if not png:
            raise ValueError("Telegram photo is empty")
        if len(png) > MAX_PHOTO_BYTES:
            raise ValueError(f"Telegram photo is {len(png)} bytes; the limit is "
                             f"{MAX_PHOTO_BYTES} (10 MB): send it as a document")
        return self._send_file("/sendPhoto", "photo", chat_id, png, filename, caption,
                               parse_mode)

    def send_document(self, chat_id: str | int, data: bytes, filename: str, *,
                      caption: str | None = None, parse_mode: str | None = None) -> int:
        """Upload a file (at most 50 MB) as a document named `filename`; its message_id."""
        if not data:
            raise ValueError(f"Telegram document {filename!r} is empty")
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"Telegram document {filename!r} is {len(data)} bytes; the limit "
                             f"is {MAX_FILE_BYTES} (50 MB)")
        return self._send_file("/sendDocument", "document", chat_id, data, filename, caption,
                               parse_mode)

    def _send_file(self, path: str, field_name: str, chat_id: str | int, data: bytes,
                   filename: str, caption: str | None, parse_mode: str | None) -> int:
        form: dict[str, str] = {"chat_id": str(chat_id)}
        if caption:
            check_caption(caption, parse_mode)
            form["caption"] = caption
        if parse_mode:
            form["parse_mode"] = parse_mode
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        # bytes, not a stream: the multipart body can be rebuilt for a resend after a 429.
        return self._send(path, chat_id, data=form, files={field_name: (filename, data, mime)})

    def edit_message_text(self, chat_id: str | int, message_id: int, text: str,
                          parse_mode: str | None = None, *, retry: bool = True
                          ) -> Literal["edited", "not_modified"]:
        """Replace the text of a message this bot sent. "not_modified" when it already reads
        exactly so (which also proves the message exists). TelegramMessageNotFound,
        TelegramMessageNotEditable, or PermanentError ("there is no text in the message to
        edit" for a photo). `retry=False` for a probe: a retried edit whose first try changed
        the message answers "not_modified" and would hide that change."""
        check_text(text, parse_mode)
        return self._edit("/editMessageText", chat_id, message_id, "text", text, parse_mode,
                          retry)

    def edit_message_caption(self, chat_id: str | int, message_id: int, caption: str,
                             parse_mode: str | None = None, *, retry: bool = True
                             ) -> Literal["edited", "not_modified"]:
        """Replace the caption of a photo or document this bot sent; as edit_message_text."""
        check_caption(caption, parse_mode)
        return self._edit("/editMessageCaption", chat_id, message_id, "caption", caption,
                          parse_mode, retry)

    def _edit(self, path: str, chat_id: str | int, message_id: int, field_name: str,
              content: str, parse_mode: str | None, retry: bool = True
              ) -> Literal["edited", "not_modified"]:
        payload: dict[str, object] = {"chat_id": chat_id, "message_id": message_id,
                                      field_name: content}
        if parse_mode:
            payload["parse_mode"] = parse_mode
        try:
            message = self._result("POST", path, json=payload,
                                   extensions={IDEMPOTENT: True} if retry else None)
        except PermanentError as exc:
            reason = exc.reason.lower()
            if _NOT_MODIFIED in reason:
                return "not_modified"
            for words, cls in _EDIT_ERRORS:
                if words in reason:
                    raise cls(str(exc), system=exc.system, status=exc.status,
                              reason=exc.reason) from exc
            typed = _typed(exc, chat_id)
            if typed is exc:
                raise
            raise typed from exc
        if not isinstance(message, dict | bool):
            raise self._invalid(path, "result is neither a message nor true")
        return "edited"

    def get_updates(self, offset: int | None = None, limit: int = MAX_UPDATES, timeout: int = 0,
                    allowed_updates: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Pending updates (polling). `offset` = last update_id + 1 confirms (drops) every
        earlier one; `timeout` > 0 long-polls that many seconds. Safe to retry."""
        if not 1 <= limit <= MAX_UPDATES:
            raise ValueError(f"getUpdates limit must be 1..{MAX_UPDATES}, not {limit}")
        if timeout < 0:
            raise ValueError("getUpdates timeout must be >= 0 seconds")
        payload: dict[str, object] = {"limit": limit, "timeout": timeout}
        if offset is not None:
            payload["offset"] = offset
        if allowed_updates is not None:
            payload["allowed_updates"] = list(allowed_updates)
        updates = self._result("POST", "/getUpdates", json=payload,
                               extensions={IDEMPOTENT: True},
                               timeout=httpx.Timeout(self.timeout + timeout))
        if not isinstance(updates, list) or not all(
                isinstance(u, dict) and isinstance(u.get("update_id"), int) for u in updates):
            raise self._invalid("/getUpdates", "result is not a list of updates")
        return updates

    def set_webhook(self, url: str, secret_token: str,
                    allowed_updates: Sequence[str] | None = None) -> None:
        """Have Telegram POST updates to `url` with header X-Telegram-Bot-Api-Secret-Token."""
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"webhook url must be an https URL, not {url!r}")
        if not SECRET_TOKEN.fullmatch(secret_token):
            raise ValueError("webhook secret_token must be 1-256 characters of A-Z, a-z, 0-9, "
                             "_ and -")
        register_secret(secret_token)
        payload: dict[str, object] = {"url": url, "secret_token": secret_token}
        if allowed_updates is not None:
            payload["allowed_updates"] = list(allowed_updates)
        self._result("POST", "/setWebhook", json=payload, extensions={IDEMPOTENT: True})

    def delete_webhook(self, drop_pending_updates: bool = False) -> None:
        """Back to polling; `drop_pending_updates` forgets the queue."""
        self._result("POST", "/deleteWebhook",
                     json={"drop_pending_updates": drop_pending_updates},
                     extensions={IDEMPOTENT: True})

    def get_webhook_info(self) -> dict[str, Any]:
        """{"url" ("" when polling), "pending_update_count", "last_error_message"?, ...}."""
        info = self._result("GET", "/getWebhookInfo")
        if not isinstance(info, dict) or "pending_update_count" not in info:
            raise self._invalid("/getWebhookInfo", "no pending_update_count in the answer")
        return info

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TelegramClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TelegramResource(dg.ConfigurableResource):
    """The operators' bot. Unconfigured in production = alerts are recorded but not sent."""

    bot_token: str | None = Field(default=None, description="Default TELEGRAM_BOT_TOKEN.")
    alert_chat_id: str | None = Field(default=None, description="Default "
                                      "TELEGRAM_ALERT_CHAT_ID.")
    base_url: str | None = Field(default=None, description="Default TELEGRAM_API_URL.")

    def _resolved(self) -> tuple[str | None, str | None, str]:
        s = get_settings()
        token = self.bot_token or s.get("TELEGRAM_BOT_TOKEN", SANDBOX_BOT_TOKEN)
        chat = self.alert_chat_id or s.get("TELEGRAM_ALERT_CHAT_ID", SANDBOX_ALERT_CHAT_ID)
        base = self.base_url or s.get("TELEGRAM_API_URL", s.sandbox_service("telegram"),
                                      PRODUCTION_URL)
        return token, chat, base or PRODUCTION_URL

    @property
    def configured(self) -> bool:
        token, chat, _ = self._resolved()
        return bool(token and chat)

    def bot_client(self, token: str, *, rate_store: RateLimitStore | None = None
                   ) -> TelegramClient:
        """A client for one character's bot at the configured API URL; close it after use."""
        _, _, base = self._resolved()
        return TelegramClient(token, base, timeout=get_settings().http_timeout,
                              rate_store=rate_store)

    def report_client(self) -> tuple[TelegramClient, str]:
        """(a client of the operators' bot, the operators' chat id) for the daily report;
        close the client after use. TelegramNotConfigured when the token or chat is unset
        (sandbox mode defaults both to the sandbox's alerts bot and chat)."""
        token, chat, base = self._resolved()
        if not (token and chat):
            missing = [name for name, value in (("TELEGRAM_BOT_TOKEN", token),
                                                ("TELEGRAM_ALERT_CHAT_ID", chat)) if not value]
            raise TelegramNotConfigured(f"Telegram report chat is not configured: set "
                                        f"{' and '.join(missing)}")
        try:
            return TelegramClient(token, base, timeout=get_settings().http_timeout), str(chat)
        except ValueError as exc:  # a malformed token: the setting's problem, in one line
            raise ConfigError(f"TELEGRAM_BOT_TOKEN: {exc}") from None

    def send_alert(self, text: str) -> int:
        """Send to the operators' chat; over-long text is shortened, not refused."""
        token, chat, base = self._resolved()
        if not (token and chat):
            raise RuntimeError("Telegram alerts are not configured (TELEGRAM_BOT_TOKEN, "
                               "TELEGRAM_ALERT_CHAT_ID)")
        with TelegramClient(token, base, timeout=get_settings().http_timeout) as client:
            return client.send_message(chat, fit_text(text))
