"""The subscriber jobs, launched by the DM sensor: `subscriber_dms` (one character's DMs) and
`subscriber_poll` (INBOUND_MODE=polling: every character's Fanvue and Telegram read in one run,
the events stored; the sensor then asks for `subscriber_dms` runs only where there is work)."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import dagster as dg

from resources.database import DatabaseResource
from resources.fanvue import FanvueResource
from resources.telegram import TelegramResource
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.runs import stop_on_config_error
from waifugen_assets.subscribers.clients import fanvue_client, telegram_client
from waifugen_assets.subscribers.polling import poll_accounts, pollable_accounts

subscriber_dms_job = dg.define_asset_job(
    "subscriber_dms",
    selection=dg.AssetSelection.groups("subscribers"),  # partitioned character x date
    description="One character's subscriber DMs: apply events, plan due steps, send.",
)


@dg.op(out=dg.Out(dg.Nothing), description="Reads Fanvue (subscribers, chats) and Telegram "
       "(getUpdates) for every enabled character with an active account; stores new events.")
def poll_subscriber_channels(context: dg.OpExecutionContext, database: DatabaseResource,
                             fanvue: FanvueResource,
                             telegram: TelegramResource) -> dg.Output[None]:
    engine = database.get_engine()
    vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))

    with engine.connect() as conn:
        accounts = pollable_accounts(conn)
    stats = stop_on_config_error(lambda: poll_accounts(
        engine, accounts, lambda cid: fanvue_client(engine, vault, fanvue, cid),
        lambda cid: telegram_client(engine, vault, telegram, cid)))
    for account, reason in stats.failed.items():
        context.log.warning("%s not polled: %s", account, reason)
    return dg.Output(None, metadata={
        "accounts": len(accounts), "read": stats.accounts, "events_stored": stats.stored,
        "failed": dg.MetadataValue.json(stats.failed)})


@dg.job(name="subscriber_poll", description="INBOUND_MODE=polling: one run per DM sensor tick "
        "reads Fanvue and Telegram for every character and stores the new events; the dms "
        "sensor's next tick asks for subscriber_dms runs where they made work.")
def subscriber_poll_job() -> None:
    poll_subscriber_channels()
