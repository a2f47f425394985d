"""The polling fallback for deployments without webhooks: what the channels have for us,
stored as inbound events (deduplicated by event id, so polling twice stores nothing new).

Telegram: getUpdates from the offset after the newest update already stored; the last call
(offset past everything seen) confirms every update, including those we ignore.
Fanvue: the subscriber list (new subscriptions) and the chats with messages newer than the
newest fan message stored. Cancellations, tips and purchases arrive only by webhook; without
webhooks a cancelled fan is found when a send is refused as not contactable.

`poll_accounts` reads every active Fanvue and Telegram account of the enabled characters in
one go: the `subscriber_poll` run the DM sensor asks for once a tick (INBOUND_MODE=polling),
after which only the characters with something to do get a `subscriber_dms` run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from resources.fanvue import FanvueClient
from resources.telegram import TelegramClient
from waifugen_assets.core import schema
from waifugen_assets.core.accounts import learn_external_id, store_external_id
from waifugen_assets.core.config import ConfigError
from waifugen_assets.subscribers import events, inbound

MAX_BATCHES = 50  # 5,000 Telegram updates per run at most; the rest come next run
POLLED_PLATFORMS = ("fanvue", "telegram")  # the channels with an API to ask


def telegram_offset(engine: sa.Engine, bot_id: int) -> int | None:
    """The update id after the newest stored one of this bot (event ids `<bot>:<update>`):
    the bot's last entry in ix_inbound_events_telegram_update (one index step, however many
    events history holds)."""
    ie = schema.inbound_events
    with engine.connect() as conn:
        newest = conn.scalar(
            sa.select(ie.c.event_id)
            .where(ie.c.platform == "telegram",
                   sa.func.split_part(ie.c.event_id, ":", 1) == str(bot_id))
            .order_by(sa.func.length(ie.c.event_id).desc(), ie.c.event_id.desc()).limit(1))
    return None if newest is None else int(newest.split(":", 1)[1]) + 1


def poll_telegram(engine: sa.Engine, character_id: str, client: TelegramClient) -> int:
    offset, stored = telegram_offset(engine, client.bot_id), 0
    for _ in range(MAX_BATCHES):
        updates = client.get_updates(offset=offset)
        if not updates:
            break
        stored += inbound.store_events(engine, events.events_from_telegram_updates(
            updates, character_id, client.bot_id))
        offset = max(int(u["update_id"]) for u in updates) + 1
    return stored


def newest_fan_message(engine: sa.Engine, character_id: str) -> dt.datetime | None:
    """From the end of ix_inbound_events_fanvue_messages."""
    ie = schema.inbound_events
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.max(ie.c.occurred_at)).where(
            ie.c.platform == "fanvue", ie.c.character_id == character_id,
            ie.c.event_type == "message.received"))


def poll_fanvue(engine: sa.Engine, character_id: str, client: FanvueClient,
                creator_uuid: str) -> int:
    stored = inbound.store_events(engine, events.events_from_fanvue_subscribers(
        client.subscribers(), character_id))
    since = newest_fan_message(engine, character_id)
    for chat in client.chats():
        if chat.last_message_at is None or (since is not None and chat.last_message_at <= since):
            continue
        stored += inbound.store_events(engine, events.events_from_fanvue_messages(
            client.messages(chat.user_uuid), character_id, creator_uuid))
    return stored


def _pollable() -> sa.Select[Any]:
    pa, c = schema.platform_accounts, schema.characters
    return (sa.select(pa).join(c, c.c.id == pa.c.character_id)
            .where(c.c.enabled, pa.c.platform.in_(POLLED_PLATFORMS), pa.c.status == "active"))


def pollable_accounts(conn: sa.Connection) -> list[dict[str, Any]]:
    """The active Fanvue and Telegram accounts of the enabled characters, by character."""
    pa = schema.platform_accounts
    return [dict(row) for row in conn.execute(
        _pollable().order_by(pa.c.character_id, pa.c.platform)).mappings()]


def anyone_to_poll(conn: sa.Connection) -> bool:
    """Whether there is such an account (the DM sensor asks for a poll run only then)."""
    return bool(conn.scalar(sa.select(sa.exists(_pollable()))))


@dataclass
class PollStats:
    accounts: int = 0  # read
    stored: int = 0  # new events
    failed: dict[str, str] = field(default_factory=dict)  # "<character>:<platform>" -> why


def poll_accounts(engine: sa.Engine, accounts: list[Mapping[str, Any]],
                  fanvue_client: Callable[[str], FanvueClient],
                  telegram_client: Callable[[str], TelegramClient]) -> PollStats:
    """Read each account and store what arrived. `fanvue_client(character)` and
    `telegram_client(character)` give the character's authorised client (closed here after
    use: a run reads hundreds of accounts). One account's trouble (a platform error, a token
    to authorise again) is recorded and the others are read; a configuration error (a token
    that does not decrypt) stops the poll."""
    stats = PollStats()
    for account in accounts:
        cid, platform = str(account["character_id"]), str(account["platform"])
        try:
            if platform == "fanvue":
                with fanvue_client(cid) as client:
                    creator = learn_external_id(engine, account, lambda c=client: c.me().uuid)
                    stats.stored += poll_fanvue(engine, cid, client, creator)
            elif platform == "telegram":
                with telegram_client(cid) as bot:
                    store_external_id(engine, account, str(bot.bot_id))  # the webhook route
                    stats.stored += poll_telegram(engine, cid, bot)
            else:
                continue
        except ConfigError:
            raise
        except Exception as exc:  # one account never stops the others
            stats.failed[f"{cid}:{platform}"] = str(exc)[:300]
            continue
        stats.accounts += 1
    return stats
