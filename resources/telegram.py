"""Telegram Bot API client: operator alerts and reports (subscriber DMs come later).

sendMessage changes the world, so the shared HTTP layer resends it only when Telegram said
429 (nothing was sent) or the connection never opened; its `retry_after` body field is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from resources.http import (
    RateLimiter,
    RetryPolicy,
    json_request,
    make_client,
    telegram_classifier,
    telegram_retry_after,
)
from waifugen_assets.config import get_settings

# Bulk sending is ~30 messages/s per bot overall; the per-chat limits are enforced server side.
_GLOBAL = RateLimiter("telegram", 30, 1.0)
SANDBOX_BOT_TOKEN = "7000000001:AAsandbox_alerts_bot_token_000000000"  # noqa: S105 - sandbox only
SANDBOX_ALERT_CHAT_ID = "-1001000000001"


@dataclass
class TelegramClient:
    token: str
    base_url: str = "https://api.telegram.org"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self._http = make_client(
            "telegram", base_url=f"{self.base_url.rstrip('/')}/bot{self.token}",
            timeout=self.timeout, classifier=telegram_classifier,
            retry_after_from_response=telegram_retry_after, secrets=[self.token],
            retry=RetryPolicy(max_attempts=4, max_retry_after=60), limits=[_GLOBAL])

    def send_message(self, chat_id: str | int, text: str, parse_mode: str | None = None) -> int:
        """Send a message; returns Telegram's message_id."""
        payload: dict[str, object] = {"chat_id": chat_id, "text": text[:4096]}
        if parse_mode:
            payload["parse_mode"] = parse_mode
        body = json_request(self._http, "POST", "/sendMessage", json=payload,
                            require=["result"])
        return int(body["result"]["message_id"])

    def close(self) -> None:
        self._http.close()


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
                                      "https://api.telegram.org")
        return token, chat, base or "https://api.telegram.org"

    @property
    def configured(self) -> bool:
        token, chat, _ = self._resolved()
        return bool(token and chat)

    def send_alert(self, text: str) -> int:
        token, chat, base = self._resolved()
        if not (token and chat):
            raise RuntimeError("Telegram alerts are not configured (TELEGRAM_BOT_TOKEN, "
                               "TELEGRAM_ALERT_CHAT_ID)")
        client = TelegramClient(token, base, timeout=get_settings().http_timeout)
        try:
            return client.send_message(chat, text)
        finally:
            client.close()

