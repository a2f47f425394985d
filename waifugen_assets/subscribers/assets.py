"""The `dm_messages` asset: one character's subscriber DMs for a day (messaging.dm_cycle), and
the wiring of its channels from the accounts in the database."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from resources.database import DatabaseResource
from resources.fanvue import FanvueResource
from resources.ollama import OllamaResource
from resources.quota_store import PostgresRateLimitStore
from resources.telegram import TelegramResource
from waifugen_assets.core import clock, schema
from waifugen_assets.core.accounts import learn_external_id, store_external_id
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import get_settings, project_root
from waifugen_assets.core.preflight import check_before_spending
from waifugen_assets.core.tokens import TokenCipher, TokenError, TokenSet, TokenVault
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.pipeline.runs import stop_on_config_error
from waifugen_assets.roster.assets import characters
from waifugen_assets.subscribers.channels import (
    Channel,
    FanvueChannel,
    ManualChannel,
    TelegramChannel,
)
from waifugen_assets.subscribers.cycle import (
    Poller,
    character_info,
    dm_cycle,
    sync_sequences,
)
from waifugen_assets.subscribers.polling import poll_fanvue, poll_telegram
from waifugen_assets.subscribers.sequences import Sequence, load_sequences

DM_PLATFORMS = ("fanvue", "telegram", "onlyfans", "fansly")


def sequences_path() -> Path:
    configured = get_settings().get("WAIFUGEN_SEQUENCES")
    return Path(configured) if configured else project_root() / "sequences.yaml"


def load_configured_sequences(engine: sa.Engine) -> dict[int, Sequence]:
    """sequences.yaml, checked against the roster in the database, synced to dm_sequences."""
    with engine.connect() as conn:
        known = set(conn.execute(sa.select(schema.characters.c.id)).scalars())
    return sync_sequences(engine, load_sequences(sequences_path(), known_characters=known))


def _no_refresh(platform: str) -> Callable[[str], TokenSet]:
    def refresh(_: str) -> TokenSet:
        raise TokenError(f"{platform} tokens cannot be refreshed: set a new one")
    return refresh


def build_channels(engine: sa.Engine, character_id: str, vault: TokenVault,
                   fanvue: FanvueResource, telegram: TelegramResource,
                   log: Callable[[str], None]) -> tuple[dict[str, Channel], list[Poller]]:
    """A channel (and, for polling, a poller) per subscriber account of the character. An
    account that cannot be used is logged and left out: its messages wait, nothing is lost."""
    pa = schema.platform_accounts
    with engine.connect() as conn:
        accounts = [dict(a) for a in conn.execute(sa.select(pa).where(
            pa.c.character_id == character_id, pa.c.platform.in_(DM_PLATFORMS),
            pa.c.status != "disabled")).mappings()]
    channels: dict[str, Channel] = {}
    pollers: list[Poller] = []
    for account in accounts:
        platform = account["platform"]
        try:
            if platform in ("onlyfans", "fansly"):
                channels[platform] = ManualChannel(platform)
            elif platform == "fanvue":
                token = vault.access_token(character_id, platform, fanvue.refresher())
                client = fanvue.client(token, rate_store=PostgresRateLimitStore(engine, "fanvue"))
                creator = learn_external_id(engine, account, lambda c=client: c.me().uuid)
                channels[platform] = FanvueChannel(client, creator)
                pollers.append(lambda c=client, u=creator: poll_fanvue(
                    engine, character_id, c, u))
            elif platform == "telegram":
                token = vault.access_token(character_id, platform, _no_refresh(platform))
                bot = telegram.bot_client(token,
                                          rate_store=PostgresRateLimitStore(engine, "telegram"))
                store_external_id(engine, account, str(bot.bot_id))  # the webhook route needs it
                channels[platform] = TelegramChannel(bot)
                pollers.append(lambda b=bot: poll_telegram(engine, character_id, b))
        except Exception as exc:  # one account never blocks the others
            log(f"{character_id}: {platform} not usable: {exc}")
    return channels, pollers


class DmConfig(dg.Config):
    now: str | None = Field(
        default=None, description="ISO time to run as (simulations, replays); default: now.")
    poll: bool | None = Field(
        default=None, description="Ask Telegram and Fanvue for new events (the fallback "
        "without webhooks); default: INBOUND_MODE == polling.")


@dg.asset(
    partitions_def=character_daily_partitions,
    deps=[characters],
    group_name="subscribers",
    kinds={"fanvue", "telegram"},
    description="The character's subscriber DMs: events applied, due sequence steps planned "
    "(one intent row per subscriber x sequence x step), doubtful sends reconciled, due "
    "messages decided (opt-out, quiet hours, cap, windows) and sent exactly once.",
)
def dm_messages(context: dg.AssetExecutionContext, config: DmConfig,
                database: DatabaseResource, fanvue: FanvueResource,
                telegram: TelegramResource, ollama: OllamaResource) -> dg.MaterializeResult:
    character_id, _ = split_partition_key(context.partition_key)
    settings = get_settings()
    engine = database.get_engine()
    now = dt.datetime.fromisoformat(config.now) if config.now else clock.now()
    if now.tzinfo is None:
        raise ValueError(f"DmConfig.now {config.now!r} needs a UTC offset (e.g. ...Z)")
    poll = config.poll if config.poll is not None else (
        (settings.get("INBOUND_MODE") or "polling") == "polling")
    sequences = load_configured_sequences(engine)
    stop_on_config_error(lambda: check_before_spending(engine, [character_id]))
    vault = TokenVault(engine, TokenCipher(settings.secret_keys))
    channels, pollers = build_channels(engine, character_id, vault, fanvue, telegram,
                                       context.log.warning)

    def writer(system: str, user: str) -> str | None:
        return ollama.chat_text(system, user)

    with Claims(engine) as claims:
        stats = dm_cycle(engine, character_info(engine, character_id), channels, sequences,
                         now, pollers=pollers if poll else (), writer=writer, claims=claims)
    for reason, n in stats.reasons.items():
        context.log.info("%s: %s x%d", character_id, reason, n)
    return dg.MaterializeResult(metadata={
        **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
           for k, v in stats.as_metadata().items()},
        "channels": sorted(channels), "as_of": now.isoformat()})
