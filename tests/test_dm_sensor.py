"""The DM sensor reads the database only and asks for a run just for characters with DM work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from sensors.dms import NO_POLL, TICK, characters_with_dm_work, dm_sensor
from waifugen_assets.core import schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.pipeline.partitions import characters_partitions
from waifugen_assets.roster.assets import characters
from waifugen_assets.subscribers.assets import load_configured_sequences, sequences_path
from waifugen_assets.subscribers.polling import pollable_accounts
from waifugen_assets.subscribers.sequences import load_sequences

CID = "mika-hoshizora"
NOW = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def _busy(engine: sa.Engine, now: dt.datetime = NOW) -> list[str]:
    with engine.connect() as conn:
        return [cid for cid, _ in characters_with_dm_work(
            conn, now, load_sequences(sequences_path()))]


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
    # Polling mode: every character with an active Fanvue or Telegram account is read, by the
    # one poll run of a tick; an account alone is not work for a character's DM run.
    pa = schema.platform_accounts
    with engine.connect() as conn:
        automated = sorted(set(conn.execute(sa.select(pa.c.character_id).where(
            pa.c.platform.in_(("fanvue", "telegram")))).scalars()))
        assert automated and sorted({a["character_id"] for a in pollable_accounts(conn)}) \
            == automated

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


@pytest.fixture
def polling_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("INBOUND_MODE", "polling")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("INBOUND_MODE")
    get_settings.cache_clear()


def _reads(sandbox, since: int) -> list[str]:
    """The polling calls (Telegram getUpdates, Fanvue subscriber list) since journal id
    `since`."""
    return [e["path"] for e in sandbox.journal(since=since)
            if e["path"].endswith("/getUpdates") or e["path"].endswith("/subscribers")]


def test_polling_reads_every_account_in_one_run_and_only_work_makes_dm_runs(
        pipeline_resources: dict, engine: sa.Engine, db_url: str, sandbox,
        polling_mode: None, request: pytest.FixtureRequest) -> None:
    from dm_world import make_world

    from resources.fanvue import FanvueResource
    from waifugen_assets.core import clock
    from waifugen_assets.subscribers.assets import dm_messages
    from waifugen_assets.subscribers.jobs import subscriber_dms_job, subscriber_poll_job

    world = make_world(pipeline_resources, engine, sandbox.url, request.node.nodeid)
    # The code location's own jobs, on this test's database and sandbox.
    defs = dg.Definitions(assets=[characters, dm_messages],
                          jobs=[subscriber_dms_job, subscriber_poll_job],
                          resources={**pipeline_resources, "fanvue": FanvueResource(
                              base_url=f"{sandbox.url}/fanvue")})
    noon_tokyo = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance, clock.simulate(
            noon_tokyo, on_change=lambda t: sandbox.set_clock(t.timestamp())) as sim:
        instance.add_dynamic_partitions(characters_partitions.name, [CID])

        def tick() -> list[dg.RunRequest]:
            sim.advance(TICK.total_seconds())
            with dg.build_sensor_context(
                    instance=instance,
                    resources={"database": DatabaseResource(url=db_url)}) as context:
                return list(dm_sensor(context).run_requests)

        def run(req: dg.RunRequest) -> dg.ExecuteInProcessResult:
            result = defs.resolve_job_def(req.job_name).execute_in_process(
                instance=instance, partition_key=req.partition_key,
                run_config=req.run_config or {}, tags=dict(req.tags))
            assert result.success
            return result

        def stored(result: dg.ExecuteInProcessResult) -> int:
            (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
            return output.event_specific_data.metadata["events_stored"].value

        # A quiet roster: one poll run a tick, for every account, and no DM run.
        (poll,) = tick()
        assert (poll.job_name, poll.partition_key) == ("subscriber_poll", None)
        assert poll.run_key.startswith("dm-poll:")
        assert stored(run(poll)) == 0
        # Fans arrive: the sensor does not ask the platforms itself, the poll run does.
        world.fan(subscribedAt=(sim.now() - dt.timedelta(minutes=5)).isoformat(),
                  displayName="Aki", timezone="Asia/Tokyo")
        world.start(5550001, sim.now() - dt.timedelta(minutes=2))
        (poll,) = tick()
        assert poll.job_name == "subscriber_poll"
        assert stored(run(poll)) == 2
        # The next tick: a DM run for that character only, which does not poll again.
        requests = tick()
        (dm,) = [r for r in requests if r.job_name == "subscriber_dms"]
        assert [r.job_name for r in requests if r is not dm] == ["subscriber_poll"]
        assert dm.partition_key.startswith(f"{CID}|") and dm.run_key.startswith(f"dm:{CID}:")
        assert dm.run_config == NO_POLL
        since = max((e["id"] for e in sandbox.journal()), default=0)
        run(dm)
        assert _reads(sandbox, since) == []
        assert len(world.fanvue_sent()) == 1 and len(world.telegram_sent()) == 1
        # Quiet again: the poll run, no DM run.
        (poll,) = tick()
        assert poll.job_name == "subscriber_poll"
        # No active account to read: no poll run either.
        pa = schema.platform_accounts
        with engine.begin() as conn:
            conn.execute(sa.update(pa).values(status="needs_reauth"))
        assert tick() == []
        with engine.begin() as conn:
            conn.execute(sa.update(pa).values(status="active"))
        # No second poll while one is under way.
        instance.create_run_for_job(defs.resolve_job_def("subscriber_poll"), run_config={})
        assert tick() == []


def test_one_account_in_trouble_does_not_stop_the_poll(pipeline_resources: dict,
                                                       engine: sa.Engine, sandbox,
                                                       request: pytest.FixtureRequest) -> None:
    from dm_world import make_world

    from resources.fanvue import FanvueResource
    from resources.telegram import sandbox_bot_token
    from waifugen_assets.subscribers.jobs import subscriber_poll_job

    world = make_world(pipeline_resources, engine, sandbox.url, request.node.nodeid)
    world.fan(subscribedAt=(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat())
    sandbox.add_fault(system="telegram", route="*/getUpdates", action="status", status=401)
    resources = {"database": pipeline_resources["database"],
                 "telegram": pipeline_resources["telegram"],
                 "fanvue": FanvueResource(base_url=f"{sandbox.url}/fanvue")}
    with dg.instance_for_test() as instance:
        result = subscriber_poll_job.execute_in_process(instance=instance, resources=resources)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert (metadata["accounts"], metadata["read"], metadata["events_stored"]) == (2, 1, 1)
    assert list(metadata["failed"]) == [f"{CID}:telegram"]
    token = sandbox_bot_token(world.account)
    assert token not in str(metadata) and token.split(":")[1] not in str(metadata)


def test_the_poll_reads_offsets_from_the_end_of_an_index(engine: sa.Engine) -> None:
    """Read for every account at every tick, so neither may read all events ever stored."""
    from waifugen_assets.subscribers.polling import newest_fan_message, telegram_offset

    ie = schema.inbound_events
    at = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(
            id=CID, name="Mika", age=24, timezone="Asia/Tokyo"))
        conn.execute(sa.insert(ie), [
            {"platform": "telegram", "event_id": event_id, "event_type": "message.received"}
            for event_id in ("7:99", "7:100", "7:98", "70:5000", "8:100000")])
        conn.execute(sa.insert(ie), [
            {"platform": "fanvue", "event_id": f"poll:msg:{n}", "character_id": CID,
             "event_type": kind, "occurred_at": at + dt.timedelta(minutes=n)}
            for n, kind in ((1, "message.received"), (3, "message.received"),
                            (9, "subscriber.new"))])
    assert telegram_offset(engine, 7) == 101  # numerically, not as text ("99" > "100")
    assert telegram_offset(engine, 70) == 5001 and telegram_offset(engine, 9) is None
    assert newest_fan_message(engine, CID) == at + dt.timedelta(minutes=3)
    # The plans: each an index read, even where a sequential scan would be free to win.
    statements = []

    def capture(*args: object) -> None:
        statements.append(args[2:4])

    sa.event.listen(engine, "before_cursor_execute", capture)
    telegram_offset(engine, 7)
    newest_fan_message(engine, CID)
    sa.event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plans = ["\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}", params))
                 for sql, params in statements]
    assert "ix_inbound_events_telegram_update" in plans[0] and "Sort" not in plans[0]
    assert "ix_inbound_events_fanvue_messages" in plans[1]
