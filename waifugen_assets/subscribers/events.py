"""Inbound subscriber events, normalized: a Fanvue webhook body, a Telegram update or what a
polling run read, as one `NormalizedEvent` (storing and applying them is inbound.py).

Choices the contract leaves open:

- Telegram `successful_payment` is a `revenue.tip` whose `amount_cents` is `total_amount`
  unchanged: the smallest unit of the currency (cents for USD, whole Stars for `XTR`). XTR
  amounts are therefore Stars, not cents, and must never be summed with fiat currencies.
- Telegram `/start` (any payload, or none: the bot belongs to one character) is
  `subscriber.new`; `my_chat_member` with status `kicked` is `subscriber.blocked`; the user
  coming back (status `member`) is ignored: only the `/start` that follows is an opt-in.
  Messages from groups and channels, edits, callbacks and other update kinds are ignored.
- Fanvue event types not in the contract raise `UnsupportedEvent` (the webhook answers 200 and
  stores nothing, so Fanvue does not retry them forever).
- An unparseable fan time zone is dropped (NULL), not a reason to lose the event.
- A Fanvue event names its creator (`creatorUuid`, required); binding it to the character whose
  URL it was posted to is the webhook service's job (and apply's, docs/subscribers.md).
- Ids are at most 200 characters and amounts at most a bigint: longer keys do not fit the
  database's indexes, so such an event is refused here rather than by the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from waifugen_assets.core import schema

log = logging.getLogger(__name__)
UTC = dt.UTC
EVENT_TYPES = schema.INBOUND_EVENT_TYPES
OPT_OUT_TYPES = frozenset({"subscriber.cancelled", "subscriber.blocked"})
REVENUE_KIND = {
    "subscriber.new": "subscription",
    "subscriber.renewal": "renewal",
    "revenue.tip": "tip",
    "revenue.purchase": "purchase",
}
FANVUE_TYPES = {
    "subscriber.created": "subscriber.new",
    "subscriber.renewed": "subscriber.renewal",
    "subscriber.cancelled": "subscriber.cancelled",
    "message.received": "message.received",
    "tip.received": "revenue.tip",
    "purchase.completed": "revenue.purchase",
}
MAX_EVENT_ID = 200
MAX_EXTERNAL_ID = 200  # subscriber ids and creator uuids: indexed columns, so bounded
MAX_AMOUNT = 2**63 - 1  # revenue_events.amount_cents is a bigint
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_START = re.compile(r"^/start(@[A-Za-z0-9_]+)?(\s+(?P<arg>\S+))?\s*$")


class BadEvent(ValueError):
    """A platform payload we cannot use; `field` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnsupportedEvent(BadEvent):
    """A well-formed event of a kind we do not handle (acknowledged, not stored)."""


@dataclass(frozen=True)
class NormalizedEvent:
    platform: str
    event_id: str
    event_type: str
    character_id: str
    external_id: str
    occurred_at: dt.datetime
    handle: str | None = None
    display_name: str | None = None
    text: str | None = None
    amount_cents: int | None = None
    currency: str | None = None
    timezone: str | None = None
    tier: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    creator_uuid: str | None = None  # Fanvue: the creator the event names (not stored apart)

    def __post_init__(self) -> None:
        if self.event_type not in EVENT_TYPES:
            raise BadEvent("event_type", f"{self.event_type!r} is not a normalized type")
        if self.occurred_at.tzinfo is None:
            raise BadEvent("occurred_at", "must be timezone-aware")
        if not self.event_id or len(self.event_id) > MAX_EVENT_ID:
            raise BadEvent("event_id", f"must be 1..{MAX_EVENT_ID} characters")
        if not self.external_id:
            raise BadEvent("external_id", "missing")
        if len(self.external_id) > MAX_EXTERNAL_ID:
            raise BadEvent("external_id", f"longer than {MAX_EXTERNAL_ID} characters")

    def data(self) -> dict[str, Any]:
        """The normalized details stored beside the raw payload (personal: forget nulls it)."""
        values = {"handle": self.handle, "display_name": self.display_name, "text": self.text,
                  "amount_cents": self.amount_cents, "currency": self.currency,
                  "timezone": self.timezone, "tier": self.tier}
        return {k: v for k, v in values.items() if v is not None}


# --- field readers ------------------------------------------------------------------------------

def _obj(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadEvent(name, "expected an object")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadEvent(f"{where}{key}", "missing" if value is None else "expected a non-empty "
                       "string")
    return value.strip()


def _id(value: str, name: str) -> str:
    if len(value) > MAX_EXTERNAL_ID:
        raise BadEvent(name, f"longer than {MAX_EXTERNAL_ID} characters")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadEvent(f"{where}{key}", "missing" if value is None else "expected an integer")
    return value


def _time(value: Any, name: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadEvent(name, f"not an ISO 8601 time: {value[:40]!r}") from None
    else:
        raise BadEvent(name, "missing" if value is None else "expected an ISO 8601 time")
    if parsed.tzinfo is None:
        raise BadEvent(name, "time has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted by its offset
        raise BadEvent(name, f"out of range: {value!s:.40}") from None


def _amount(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = _int(obj, key, where)
    if value < 0:
        raise BadEvent(f"{where}{key}", "must not be negative")
    if value > MAX_AMOUNT:
        raise BadEvent(f"{where}{key}", "too large")
    return value


def _currency(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise BadEvent(f"{where}{key}", "expected a 3-letter ISO 4217 code")
    return value.upper()


def valid_timezone(value: Any) -> str | None:
    """The IANA name if it is one, else None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a directory
        return None
    return value


def _get(obj: Any, *names: str) -> Any:
    """A field of a dict or a duck-typed object, under any of its spellings."""
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


# --- Fanvue -------------------------------------------------------------------------------------

def from_fanvue(body: dict[str, Any], character_id: str) -> NormalizedEvent:
    """A Fanvue webhook body (docs/subscriber-channels.md) as a normalized event."""
    body = _obj(body, "body")
    event_id = _str(body, "id", "")
    if len(event_id) > MAX_EVENT_ID:
        raise BadEvent("id", f"longer than {MAX_EVENT_ID} characters")
    kind = _str(body, "type", "")
    if kind not in FANVUE_TYPES:
        raise UnsupportedEvent("type", f"unsupported Fanvue event type {kind[:60]!r}")
    event_type = FANVUE_TYPES[kind]
    creator = _id(_str(body, "creatorUuid", ""), "creatorUuid")
    created = _time(body.get("createdAt"), "createdAt")
    data = _obj(body.get("data"), "data")
    user = _id(_str(data, "userUuid", "data."), "data.userUuid")
    fields: dict[str, Any] = {}
    occurred = created
    if event_type == "subscriber.new":
        fields["handle"] = _str(data, "handle", "data.", optional=True)
        fields["display_name"] = _str(data, "displayName", "data.", optional=True)
        fields["tier"] = _str(data, "tier", "data.", optional=True)
        fields["timezone"] = valid_timezone(data.get("timezone"))
        if data.get("subscribedAt") is not None:
            occurred = _time(data["subscribedAt"], "data.subscribedAt")
        if data.get("amount") is not None:  # not in the contract; recorded when present
            fields["amount_cents"] = _amount(data, "amount", "data.")
            fields["currency"] = _currency(data, "currency", "data.")
    elif event_type in ("subscriber.renewal", "revenue.tip", "revenue.purchase"):
        fields["amount_cents"] = _amount(data, "amount", "data.")
        fields["currency"] = _currency(data, "currency", "data.")
    elif event_type == "message.received":
        text = data.get("text")
        if not isinstance(text, str):
            raise BadEvent("data.text", "missing" if text is None else "expected a string")
        fields["text"] = text
        _str(data, "messageUuid", "data.")
        if data.get("sentAt") is not None:
            occurred = _time(data["sentAt"], "data.sentAt")
    return NormalizedEvent(platform="fanvue", event_id=event_id, event_type=event_type,
                           character_id=character_id, external_id=user, occurred_at=occurred,
                           payload=body, creator_uuid=creator, **fields)


# --- Telegram -----------------------------------------------------------------------------------

def _telegram_time(msg: Mapping[str, Any], where: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(_int(msg, "date", where), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise BadEvent(f"{where}date", "not a Unix time in range") from None


def _telegram_person(sender: Any) -> dict[str, Any]:
    if not isinstance(sender, dict):
        return {}
    names = [n for n in (sender.get("first_name"), sender.get("last_name"))
             if isinstance(n, str) and n.strip()]
    username = sender.get("username")
    return {"handle": username if isinstance(username, str) and username else None,
            "display_name": " ".join(names) or None}


def from_telegram(update: dict[str, Any], character_id: str,
                  bot_id: int) -> NormalizedEvent | None:
    """A Telegram update as a normalized event, or None for updates we ignore."""
    update = _obj(update, "update")
    update_id = _int(update, "update_id", "")
    event_id = f"{bot_id}:{update_id}"
    base = {"platform": "telegram", "event_id": event_id, "character_id": character_id,
            "payload": update}

    if "my_chat_member" in update:
        member = _obj(update["my_chat_member"], "my_chat_member")
        chat = _obj(member.get("chat"), "my_chat_member.chat")
        if chat.get("type") != "private":
            return None
        new = _obj(member.get("new_chat_member"), "my_chat_member.new_chat_member")
        if new.get("status") != "kicked":
            return None  # unblocked: wait for the user's /start before messaging again
        return NormalizedEvent(
            event_type="subscriber.blocked",
            external_id=_id(str(_int(chat, "id", "chat.")), "my_chat_member.chat.id"),
            occurred_at=_telegram_time(member, "my_chat_member."),
            **_telegram_person(member.get("from")), **base)

    if "message" not in update:
        return None  # edited messages, callbacks, channel posts, ...
    msg = _obj(update["message"], "message")
    chat = _obj(msg.get("chat"), "message.chat")
    if chat.get("type") != "private":
        return None
    external_id = _id(str(_int(chat, "id", "message.chat.")), "message.chat.id")
    occurred = _telegram_time(msg, "message.")
    person = _telegram_person(msg.get("from"))

    if "successful_payment" in msg:
        payment = _obj(msg["successful_payment"], "message.successful_payment")
        return NormalizedEvent(
            event_type="revenue.tip", external_id=external_id, occurred_at=occurred,
            amount_cents=_amount(payment, "total_amount", "message.successful_payment."),
            currency=_currency(payment, "currency", "message.successful_payment."),
            **person, **base)

    text = msg.get("text")
    if text is not None and not isinstance(text, str):
        raise BadEvent("message.text", "expected a string")
    if text is not None and _START.match(text):
        return NormalizedEvent(event_type="subscriber.new", external_id=external_id,
                               occurred_at=occurred, **person, **base)
    caption = msg.get("caption")
    return NormalizedEvent(
        event_type="message.received", external_id=external_id, occurred_at=occurred,
        text=text if text is not None else caption if isinstance(caption, str) else None,
        **person, **base)


# --- polling fallback ---------------------------------------------------------------------------

def events_from_telegram_updates(updates: Iterable[dict[str, Any]], character_id: str,
                                 bot_id: int) -> list[NormalizedEvent]:
    """getUpdates results as events. A malformed update is logged and skipped, so one bad
    update cannot stop the offset from moving on."""
    events = []
    for update in updates:
        try:
            event = from_telegram(update, character_id, bot_id)
        except BadEvent as exc:
            uid = update.get("update_id") if isinstance(update, dict) else None
            log.warning("skipping Telegram update %s of bot %s: %s", uid, bot_id, exc)
            continue
        if event is not None:
            events.append(event)
    return events


def events_from_fanvue_subscribers(subscribers: Iterable[Any],
                                   character_id: str) -> list[NormalizedEvent]:
    """A /subscribers snapshot as subscriber.new events, id `poll:sub:<uuid>:<subscribedAt>`:
    the same subscription polled again is the same event."""
    events = []
    for sub in subscribers:
        uuid = _get(sub, "uuid")
        if not isinstance(uuid, str) or not uuid:
            raise BadEvent("uuid", "missing")
        subscribed = _time(_get(sub, "subscribed_at", "subscribedAt"), "subscribedAt")
        payload = {k: _jsonable(_get(sub, *names)) for k, names in (
            ("uuid", ("uuid",)), ("handle", ("handle",)),
            ("displayName", ("display_name", "displayName")),
            ("subscribedAt", ("subscribed_at", "subscribedAt")),
            ("expiresAt", ("expires_at", "expiresAt")), ("tier", ("tier",)),
            ("timezone", ("timezone",)))}
        events.append(NormalizedEvent(
            platform="fanvue", event_id=f"poll:sub:{uuid}:{subscribed.isoformat()}",
            event_type="subscriber.new", character_id=character_id, external_id=uuid,
            occurred_at=subscribed, handle=_get(sub, "handle") or None,
            display_name=_get(sub, "display_name", "displayName") or None,
            tier=_get(sub, "tier") or None, timezone=valid_timezone(_get(sub, "timezone")),
            payload={"source": "poll:subscribers", **payload}))
    return events


def events_from_fanvue_messages(messages: Iterable[Any], character_id: str,
                                creator_uuid: str) -> list[NormalizedEvent]:
    """Chat messages as message.received events (id `poll:msg:<uuid>`); the creator's own
    messages are skipped."""
    events = []
    for message in messages:
        sender = _get(message, "sender_uuid", "senderUuid")
        if sender == creator_uuid:
            continue
        uuid = _get(message, "uuid")
        if not isinstance(uuid, str) or not uuid:
            raise BadEvent("uuid", "missing")
        if not isinstance(sender, str) or not sender:
            raise BadEvent("senderUuid", "missing")
        text = _get(message, "text")
        sent = _time(_get(message, "sent_at", "sentAt"), "sentAt")
        events.append(NormalizedEvent(
            platform="fanvue", event_id=f"poll:msg:{uuid}", event_type="message.received",
            character_id=character_id, external_id=sender, occurred_at=sent,
            text=text if isinstance(text, str) else None,
            payload={"source": "poll:messages", "uuid": uuid, "text": text,
                     "sentAt": sent.isoformat(), "senderUuid": sender}))
    return events
