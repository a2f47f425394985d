"""Facts of the sandbox world that both sides know: the app (to seed its sandbox accounts)
and the sandbox (to recognise them). Kept here so the sandbox never imports a client it fakes.

Bots: the operators' alerts bot, and one bot per character account whose id derives from its
username, so `mika-hoshizora` and `@mika_hoshizora_bot` name one bot.
"""

from __future__ import annotations

import hashlib
import re

SANDBOX_BOT_TOKEN = "7000000001:AAsandbox_alerts_bot_token_000000000"  # noqa: S105 - sandbox only
SANDBOX_ALERT_CHAT_ID = "-1001000000001"
_ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SANDBOX_BOT_ID_BASE = 6_000_000_000  # 10-digit ids like real bots', apart from 7000000001


# --- character bots ------------------------------------------------------------------------------

def _sandbox_account(account: str) -> str:
    name = account.strip().removeprefix("@")
    if name.lower().endswith("_bot"):
        name = name[:-4]
    if not _ACCOUNT.fullmatch(name):
        raise ValueError(f"sandbox bot account {account!r}: use 1-64 letters, digits, _ or - "
                         "(a character slug or its @..._bot handle)")
    return name


def sandbox_bot_username(account: str) -> str:
    """The sandbox bot's username: the account with - as _, plus `_bot`."""
    return f"{_sandbox_account(account).replace('-', '_')}_bot"


def sandbox_bot_id(account: str) -> int:
    """The sandbox bot's numeric id, derived from its username (case-insensitive, as
    Telegram usernames are), so `mika-hoshizora` and `@mika_hoshizora_bot` are one bot."""
    digest = hashlib.sha256(sandbox_bot_username(account).lower().encode()).hexdigest()
    return _SANDBOX_BOT_ID_BASE + int(digest[:12], 16) % 1_000_000_000


def sandbox_bot_token(account: str) -> str:
    """The token the sandbox accepts for a character's bot: `<id>:AAsandbox_<account>`.

    `account` is a character slug (`mika-hoshizora`) or a bot handle (`@mika_hoshizora_bot`).
    """
    return f"{sandbox_bot_id(account)}:AAsandbox_{_sandbox_account(account)}"
