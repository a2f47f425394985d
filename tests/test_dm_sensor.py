"""The DM sensor reads the database only and asks for a run just for characters with DM work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from sensors.dms import characters_with_dm_work, dm_sensor
from waifugen_assets.core import schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.pipeline.partitions import characters_partitions
from waifugen_assets.roster.assets import characters
from waifugen_assets.subscribers.assets import load_configured_sequences, sequences_path
from waifugen_assets.subscribers.sequences import load_sequences

CID = "mika-hoshizora"
NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def _busy(engine: sa.Engine, polling: bool = False, now: dt.datetime = NOW) -> list[str]:
    with engine.connect() as conn:
        return [cid for cid, _ in characters_with_dm_work(
            conn, now, load_sequences(sequences_path()), polling)]


def _subscriber(engine: sa.Engine, subscribed_at: dt.datetime, **values: object) -> int:
    s = schema.subscribers
    with engine.begin() as conn:
        return conn.scalar(sa.insert(s).values(
            character_id=CID, platform="telegram", external_id=str(subscribed_at.timestamp()),
            subscribed_at=subscribed_at, **values).returning(s.c.id))


def test_work_is_what_asks_for_a_run(pipeline_resources: dict, engine: sa.Engine) -> None:
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
    assert _busy(engine) == []
    # Polling mode: every character with an active Fanvue or Telegram account.
    pa = schema.platform_accounts
    with engine.connect() as conn:
        automated = sorted(set(conn.execute(sa.select(pa.c.character_id).where(
            pa.c.platform.in_(("fanvue", "telegram")))).scalars()))
    assert automated and _busy(engine, polling=True) == automated

    # An event stored by the webhook service and not applied yet.
    ie = schema.inbound_events
    with engine.begin() as conn:
        conn.execute(sa.insert(ie).values(platform="telegram", event_id="1:1",
                                          event_type="subscriber.new", character_id=CID))
    assert _busy(engine) == [CID]
    with engine.begin() as conn:
        conn.execute(sa.update(ie).values(processed_at=NOW))
    assert _busy(engine) == []

    # A subscriber whose day-0 step is due and not planned yet; expired ones are not work.
    _subscriber(engine, NOW - dt.timedelta(days=40))
    assert _busy(engine) == []
    sub = _subscriber(engine, NOW - dt.timedelta(hours=1))
    assert _busy(engine) == [CID]
    sequences = load_configured_sequences(engine)
    from waifugen_assets.subscribers.cycle import plan_due

    assert plan_due(engine, CID, NOW, sequences) == 1
    # Planned and due: still work; waiting for the morning: not until then.
    assert _busy(engine) == [CID]
    dm = schema.dm_messages
    with engine.begin() as conn:
        conn.execute(sa.update(dm).values(not_before=NOW + dt.timedelta(hours=5)))
    assert _busy(engine) == []
    assert _busy(engine, now=NOW + dt.timedelta(hours=5)) == [CID]
    # Sent: nothing left; a send in doubt is work again (it must be reconciled).
    with engine.begin() as conn:
        conn.execute(sa.update(dm).values(state="sent", sent_at=NOW))
    assert _busy(engine) == []
    with engine.begin() as conn:
        conn.execute(sa.update(dm).where(dm.c.subscriber_id == sub).values(state="unknown"))
    assert _busy(engine) == [CID]


@pytest.fixture
def webhooks_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("INBOUND_MODE", "webhooks")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("INBOUND_MODE")
    get_settings.cache_clear()


def test_the_sensor_asks_once_per_character_and_tick(pipeline_resources: dict,
                                                     engine: sa.Engine, db_url: str,
                                                     webhooks_mode: None) -> None:
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, [CID])
        _subscriber(engine, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        context = dg.build_sensor_context(instance=instance,
                                          resources={"database": DatabaseResource(url=db_url)})
        (request,) = dm_sensor(context).run_requests
        assert request.run_key.startswith(f"dm:{CID}:")
        assert request.partition_key.startswith(f"{CID}|")
