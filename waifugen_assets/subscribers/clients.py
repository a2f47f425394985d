"""A character's authorised Fanvue and Telegram clients, built one way for the DM run and the
poll run: the stored token from the vault, the rate limits shared across processes."""

from __future__ import annotations

import sqlalchemy as sa

from resources.fanvue import FanvueClient, FanvueResource
from resources.quota_store import PostgresRateLimitStore
from resources.telegram import TelegramClient, TelegramResource
from waifugen_assets.core.tokens import TokenError, TokenSet, TokenVault


def fanvue_client(engine: sa.Engine, vault: TokenVault, fanvue: FanvueResource,
                  character_id: str) -> FanvueClient:
    token = vault.access_token(character_id, "fanvue", fanvue.refresher())
    return fanvue.client(token, rate_store=PostgresRateLimitStore(engine, "fanvue"))


def telegram_client(engine: sa.Engine, vault: TokenVault, telegram: TelegramResource,
                    character_id: str) -> TelegramClient:
    token = vault.access_token(character_id, "telegram", _no_refresh)
    return telegram.bot_client(token, rate_store=PostgresRateLimitStore(engine, "telegram"))


def _no_refresh(_: str) -> TokenSet:
    """A bot token does not expire; one stored with an expiry is set again, not refreshed."""
    raise TokenError("telegram tokens cannot be refreshed: set a new one")
