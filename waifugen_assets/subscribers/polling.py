"""The polling fallback for deployments without webhooks: what the channels have for us,
stored as inbound events (deduplicated by event id, so polling twice stores nothing new).

Telegram: getUpdates from the offset after the newest update already stored; the last call
(offset past everything seen) confirms every update, including those we ignore.
Fanvue: the subscriber list (new subscriptions) and the chats with messages newer than the
newest fan message stored. Cancellations, tips and purchases arrive only by webhook; without
webhooks a cancelled fan is found when a send is refused as not contactable.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from resources.fanvue import FanvueClient
from resources.telegram import TelegramClient
from waifugen_assets.core import schema
from waifugen_assets.subscribers import events, inbound

MAX_BATCHES = 50  # 5,000 Telegram updates per run at most; the rest come next run


def telegram_offset(engine: sa.Engine, bot_id: int) -> int | None:
    """The update id after the newest stored one of this bot (event ids `<bot>:<update>`)."""
    ie = schema.inbound_events
    prefix = f"{bot_id}:"
    with engine.connect() as conn:
        newest = conn.scalar(sa.select(sa.func.max(sa.cast(
            sa.func.split_part(ie.c.event_id, ":", 2), sa.BigInteger)))
            .where(ie.c.platform == "telegram", ie.c.event_id.startswith(prefix)))
    return None if newest is None else int(newest) + 1


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


def _newest_fan_message(engine: sa.Engine, character_id: str) -> dt.datetime | None:
    ie = schema.inbound_events
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.max(ie.c.occurred_at)).where(
            ie.c.platform == "fanvue", ie.c.character_id == character_id,
            ie.c.event_type == "message.received"))


def poll_fanvue(engine: sa.Engine, character_id: str, client: FanvueClient,
                creator_uuid: str) -> int:
    stored = inbound.store_events(engine, events.events_from_fanvue_subscribers(
        client.subscribers(), character_id))
    since = _newest_fan_message(engine, character_id)
    for chat in client.chats():
        if chat.last_message_at is None or (since is not None and chat.last_message_at <= since):
            continue
        stored += inbound.store_events(engine, events.events_from_fanvue_messages(
            client.messages(chat.user_uuid), character_id, creator_uuid))
    return stored
