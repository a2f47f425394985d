"""Platform accounts: the one place that learns an account's id on the platform.

Instagram's user id, Fanvue's creator uuid and a Telegram bot's id are not in the roster: they
come from the platform, asked with the account's token. They are asked once and kept with the
account (`platform_accounts.external_user_id`); a value the platform reports differently later
(a bot token replaced by another bot's) replaces the stored one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from waifugen_assets.core import schema


def learn_external_id(engine: sa.Engine, account: Mapping[str, Any],
                      lookup: Callable[[], str]) -> str:
    """The account's stored external id, or `lookup()` (one platform call) stored and returned."""
    known = account.get("external_user_id")
    if known:
        return str(known)
    return store_external_id(engine, account, lookup())


def store_external_id(engine: sa.Engine, account: Mapping[str, Any], external_id: str) -> str:
    """Keep `external_id` with the account unless it is already the stored one."""
    if account.get("external_user_id") != external_id:
        pa = schema.platform_accounts
        with engine.begin() as conn:
            conn.execute(sa.update(pa).where(pa.c.id == account["id"])
                         .values(external_user_id=external_id))
    return external_id
