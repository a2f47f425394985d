"""Where a subscriber's DM goes: one small adapter per platform over its client.

The sender (messaging.py) only knows this interface:
- `send(external_id, text) -> remote id`; raises `Unreachable` when the subscriber can no
  longer be messaged (unsubscribed, blocked the bot: stop for good), the HTTP layer's
  `RateLimited` (try later), `UnknownOutcome` (maybe sent: reconcile first) or other errors;
- `reconcile(external_id, text, since) -> remote id | None` after an unknown outcome: the id
  if the message is there, None if it certainly is not (safe to send again); raises
  `CannotReconcile` where the platform cannot tell, and the message is held for review.

OnlyFans and Fansly have no API: their messages go to the manual-send queue (`manual=True`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from resources.fanvue import TEXT_MAX as FANVUE_MAX_TEXT
from resources.fanvue import FanvueClient, FanvueNotContactable
from resources.telegram import MAX_TEXT as TELEGRAM_MAX_TEXT
from resources.telegram import TelegramClient, TelegramRecipientError


class Unreachable(Exception):
    """The platform says this subscriber cannot be messaged any more."""


class CannotReconcile(Exception):
    """The platform offers no way to see whether a message was delivered."""


class Channel(Protocol):
    platform: str
    max_len: int
    manual: bool

    def send(self, external_id: str, text: str) -> str: ...

    def reconcile(self, external_id: str, text: str, since: dt.datetime) -> str | None: ...


@dataclass
class FanvueChannel:
    client: FanvueClient
    creator_uuid: str
    platform: str = "fanvue"
    max_len: int = FANVUE_MAX_TEXT
    manual: bool = False

    def send(self, external_id: str, text: str) -> str:
        try:
            return self.client.send_message(external_id, text)
        except FanvueNotContactable as exc:
            raise Unreachable(f"fanvue: {exc}") from exc

    def reconcile(self, external_id: str, text: str, since: dt.datetime) -> str | None:
        # The chat's newest messages: ours is the creator's message with this exact text (each
        # step's text differs), no older than a day before the intent: a margin for clock
        # differences between us and Fanvue, which must not decide whether a fan gets a
        # message twice.
        for message in self.client.messages(external_id):
            if (message.sender_uuid == self.creator_uuid and message.text == text
                    and message.sent_at >= since - dt.timedelta(days=1)):
                return message.uuid
        return None


@dataclass
class TelegramChannel:
    client: TelegramClient
    platform: str = "telegram"
    max_len: int = TELEGRAM_MAX_TEXT - 96  # Telegram counts UTF-16 units: room for emoji
    manual: bool = False

    def send(self, external_id: str, text: str) -> str:
        try:
            return str(self.client.send_message(external_id, text))
        except TelegramRecipientError as exc:  # blocked, never started, chat gone
            raise Unreachable(f"telegram: {exc}") from exc

    def reconcile(self, external_id: str, text: str, since: dt.datetime) -> str | None:
        # The Bot API cannot list a chat's messages: a message whose answer was lost may or
        # may not have arrived. Hold it for an operator rather than risk sending it twice.
        raise CannotReconcile("the Telegram Bot API cannot read back sent messages")


@dataclass
class ManualChannel:
    """OnlyFans / Fansly: no API, so an operator sends the queued text by hand."""

    platform: str
    max_len: int = 1000
    manual: bool = True

    def send(self, external_id: str, text: str) -> str:
        raise RuntimeError(f"{self.platform} messages are sent by hand (waifugen dms export)")

    def reconcile(self, external_id: str, text: str, since: dt.datetime) -> str | None:
        raise CannotReconcile(f"{self.platform} messages are sent by hand")
