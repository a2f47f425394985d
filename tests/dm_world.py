"""A character whose Fanvue creator and Telegram bot belong to one test, on the shared sandbox:
what the DM tests drive (tests/test_dms.py, tests/test_dm_crash.py)."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import httpx
import sqlalchemy as sa

from resources.fanvue import FanvueClient
from resources.telegram import TelegramClient, sandbox_bot_token, sandbox_bot_username
from sandbox.systems.fanvue import creator_uuid
from waifugen_assets.app.sandbox_seeding import seed_sandbox_subscriber_tokens
from waifugen_assets.core import schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.roster.assets import characters
from waifugen_assets.subscribers.assets import load_configured_sequences
from waifugen_assets.subscribers.channels import FanvueChannel, TelegramChannel
from waifugen_assets.subscribers.cycle import CycleStats, character_info, dm_cycle
from waifugen_assets.subscribers.polling import poll_fanvue, poll_telegram
from waifugen_assets.subscribers.rules import Rules

CID = "mika-hoshizora"  # Asia/Tokyo; has Fanvue and Telegram accounts in the roster
BIG = 10**6


class World:
    """One character whose Fanvue creator and Telegram bot are this test's own."""

    def __init__(self, url: str, engine: sa.Engine, suffix: str) -> None:
        self.url, self.engine = url, engine
        self.account = f"{CID}{suffix}"
        self.creator = creator_uuid(self.account)
        self.bot = sandbox_bot_username(self.account)
        httpx.post(f"{url}/fanvue/_control/creators",
                   json={"creator": self.account, "rate_limit": BIG}).raise_for_status()
        self.sequences = load_configured_sequences(engine)
        self.character = character_info(engine, CID)
        fanvue = FanvueClient(f"fv_at.sandbox.{self.account}", f"{url}/fanvue", limit=BIG)
        telegram = TelegramClient(sandbox_bot_token(self.account), f"{url}/telegram")
        self.channels = {"fanvue": FanvueChannel(fanvue, self.creator),
                         "telegram": TelegramChannel(telegram)}
        self.pollers = [lambda: poll_fanvue(engine, CID, fanvue, self.creator),
                        lambda: poll_telegram(engine, CID, telegram)]

    def cycle(self, now: dt.datetime, rules: Rules | None = None) -> CycleStats:
        return dm_cycle(self.engine, self.character, self.channels, self.sequences, now,
                        pollers=self.pollers, rules=rules)

    def fan(self, **body: object) -> str:
        r = httpx.post(f"{self.url}/fanvue/_control/subscribers",
                       json={"creator": self.account, **body})
        r.raise_for_status()
        return r.json()["uuid"]

    def fan_act(self, user: str, action: str, at: dt.datetime, **body: object) -> None:
        httpx.post(f"{self.url}/fanvue/_control/act", json={
            "creator": self.account, "userUuid": user, "action": action,
            "at": at.isoformat(), **body}).raise_for_status()

    def start(self, user_id: int, at: dt.datetime) -> None:
        httpx.post(f"{self.url}/telegram/_control/start", json={
            "bot": self.bot, "user_id": user_id, "first_name": "Sam", "payload": f"c-{CID}",
            "at": at.isoformat()}).raise_for_status()

    def fanvue_sent(self) -> list[dict]:
        return httpx.get(f"{self.url}/fanvue/_control/sent",
                         params={"creator": self.account}).json()

    def telegram_sent(self) -> list[dict]:
        return httpx.get(f"{self.url}/telegram/_control/sent", params={"bot": self.bot}).json()



def make_world(pipeline_resources: dict, engine: sa.Engine, sandbox_url: str,
               name: str) -> World:
    """The roster loaded, only CID's accounts kept, their sandbox tokens seeded. `name` (the
    test's id) names the creator and bot: the sandbox simulates the same audience each run
    (its randomness is seeded by the account name)."""
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
    pa = schema.platform_accounts
    with engine.begin() as conn:
        conn.execute(sa.delete(pa).where(pa.c.character_id != CID))
    suffix = "-" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:8]
    seed_sandbox_subscriber_tokens(TokenVault(engine, TokenCipher(get_settings().secret_keys)),
                                   suffix)
    return World(sandbox_url, engine, suffix)
