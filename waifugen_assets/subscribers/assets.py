"""The `dm_messages` asset: one character's subscriber DMs for a day (messaging.dm_cycle), and
the wiring of its channels from the accounts in the database."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from resources.database import DatabaseResource
from resources.fanvue import FanvueResource
from resources.ollama import OllamaResource
from resources.telegram import TelegramResource
from waifugen_assets.core import clock, schema
from waifugen_assets.core.accounts import learn_external_id, store_external_id
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import get_settings, project_root
from waifugen_assets.core.preflight import check_before_spending
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.catalog import (
    SUBSCRIBERS_TEAM,
    cell,
    check_result,
    md_table,
    table_metadata,
)
from waifugen_assets.pipeline.partitions import character_daily_partitions, split_partition_key
from waifugen_assets.pipeline.runs import stop_on_config_error
from waifugen_assets.roster.assets import characters
from waifugen_assets.subscribers.channels import (
    Channel,
    FanvueChannel,
    ManualChannel,
    TelegramChannel,
)
from waifugen_assets.subscribers.clients import fanvue_client, telegram_client
from waifugen_assets.subscribers.cycle import (
    Poller,
    character_info,
    dm_cycle,
    sync_sequences,
)
from waifugen_assets.subscribers.polling import poll_fanvue, poll_telegram
from waifugen_assets.subscribers.sequences import Sequence, load_sequences

DM_PLATFORMS = ("fanvue", "telegram", "onlyfans", "fansly")
# What the DM cycle counts per message (cycle.py): each a number on every materialization, so
# the UI can plot it; an outcome missing here still gets its own number.
DM_OUTCOMES = ("sent", "waiting", "skipped", "held", "failed", "unknown", "queued_manual",
               "reconciled_sent", "reconciled_not_sent")

# DMs within 30 minutes. Not a FreshnessPolicy: the dms sensor asks for a run only where
# there is DM work, so a quiet half hour without a materialization is not late. The check
# judges each run instead: a message that could have gone out 30 minutes ago and has not.
IN_TIME_CHECK = "dms_in_time"
DM_LATE_AFTER = dt.timedelta(minutes=30)
# Waits the rules decide on purpose (rules.decide): such a message can go only from its
# not_before (never, while the messaging window is shut). Every other wait (no channel, rate
# limited, an error to retry) pushes not_before on by minutes and still counts as late.
DELIBERATE_WAITS = ("not_due", "messaging_window", "quiet_hours", "frequency_cap")


def sequences_path() -> Path:
    configured = get_settings().get("WAIFUGEN_SEQUENCES")
    return Path(configured) if configured else project_root() / "sequences.yaml"


def load_configured_sequences(engine: sa.Engine) -> dict[int, Sequence]:
    """sequences.yaml, checked against the roster in the database, synced to dm_sequences."""
    with engine.connect() as conn:
        known = set(conn.execute(sa.select(schema.characters.c.id)).scalars())
    return sync_sequences(engine, load_sequences(sequences_path(), known_characters=known))


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
                client = fanvue_client(engine, vault, fanvue, character_id)
                creator = learn_external_id(engine, account, lambda c=client: c.me().uuid)
                channels[platform] = FanvueChannel(client, creator)
                pollers.append(lambda c=client, u=creator: poll_fanvue(
                    engine, character_id, c, u))
            elif platform == "telegram":
                bot = telegram_client(engine, vault, telegram, character_id)
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
    kinds={"fanvue", "telegram", "postgres"},
    owners=[SUBSCRIBERS_TEAM],
    metadata=table_metadata(schema.dm_messages),
    check_specs=[dg.AssetCheckSpec(
        IN_TIME_CHECK, asset="dm_messages", blocking=False,
        description="After the run, no message of the character is still unsent 30 minutes "
        "after it could have gone (due, and past any wait the rules chose: quiet hours, "
        "frequency cap); WARN with the count and the oldest.")],
    description="The character's subscriber DMs: events applied, due sequence steps planned "
    "(one intent row per subscriber x sequence x step), doubtful sends reconciled, due "
    "messages decided (opt-out, quiet hours, cap, windows) and sent exactly once.",
)
def dm_messages(context: dg.AssetExecutionContext, config: DmConfig,
                database: DatabaseResource, fanvue: FanvueResource,
                telegram: TelegramResource, ollama: OllamaResource) -> dg.MaterializeResult:
    character_id, day = split_partition_key(context.partition_key)
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

    info = character_info(engine, character_id)
    with Claims(engine) as claims:
        stats = dm_cycle(engine, info, channels, sequences,
                         now, pollers=pollers if poll else (), writer=writer, claims=claims)
    for reason, n in stats.reasons.items():
        context.log.info("%s: %s x%d", character_id, reason, n)
    with engine.connect() as conn:
        counts = _row_counts(conn, character_id, day, ZoneInfo(info.timezone))
        check = in_time_check(conn, character_id, day, now)
    outcomes = {k: stats.outcomes.get(k, 0) for k in (*DM_OUTCOMES, *sorted(stats.outcomes))}
    return dg.MaterializeResult(metadata={
        "polled": stats.polled, "applied": stats.applied, "planned": stats.planned,
        **outcomes,
        "reasons": md_table(["reason", "messages"], (
            [cell(reason), str(n)] for reason, n in stats.reasons.most_common())),
        "channels": ", ".join(sorted(channels)) or "-", "as_of": now.isoformat(), **counts},
        check_results=[check])


def _row_counts(conn: sa.Connection, character_id: str, day: dt.date,
                zone: ZoneInfo) -> dict[str, int]:
    """The character's messages (reached through its subscribers by index: a count of the
    whole table would grow with every character's), and of those the ones due on the
    partition's local day; one pass."""
    dm, s = schema.dm_messages, schema.subscribers
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    total, of_day = conn.execute(
        sa.select(sa.func.count(), sa.func.count().filter(dm.c.due_at >= start,
                                                          dm.c.due_at < end))
        .select_from(dm).join(s, s.c.id == dm.c.subscriber_id)
        .where(s.c.character_id == character_id)).one()
    return {"dagster/row_count": total, "dagster/partition_row_count": of_day}


def in_time_check(conn: sa.Connection, character_id: str, day: dt.date,
                  now: dt.datetime) -> dg.AssetCheckResult:
    dm, s = schema.dm_messages, schema.subscribers
    cutoff = now - DM_LATE_AFTER
    deliberate = dm.c.error.in_(DELIBERATE_WAITS)
    could_go = sa.case((deliberate, sa.func.greatest(dm.c.due_at, dm.c.not_before)),
                       else_=dm.c.due_at)
    late, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(could_go))
        .select_from(dm).join(s, s.c.id == dm.c.subscriber_id)
        .where(s.c.character_id == character_id, dm.c.state == "planned",
               dm.c.due_at <= cutoff,
               sa.or_(sa.not_(deliberate), dm.c.error.is_(None), dm.c.not_before <= cutoff))
    ).one()
    minutes = round((now - oldest).total_seconds() / 60, 1) if oldest else 0.0
    return check_result(
        IN_TIME_CHECK, character_id, day, passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        summary=f"{late} message(s) still unsent 30 minutes after they could go (the oldest "
        f"for {minutes} min)" if late else "no message unsent 30 minutes after it could go",
        metadata={"late": late, "oldest_late_minutes": minutes,
                  "late_after_minutes": int(DM_LATE_AFTER.total_seconds() // 60)})
