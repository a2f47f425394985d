"""Subscriber DMs end to end: the Fanvue and Telegram sandboxes over HTTP, real PostgreSQL, an
injected clock (a simulated fortnight runs in seconds, nothing sleeps)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from dm_world import World, make_world

from waifugen_assets.core import schema
from waifugen_assets.subscribers.assets import load_configured_sequences
from waifugen_assets.subscribers.channels import ManualChannel
from waifugen_assets.subscribers.csv_import import import_csv
from waifugen_assets.subscribers.cycle import character_info, dm_cycle
from waifugen_assets.subscribers.manual_queue import export_csv, mark_sent
from waifugen_assets.subscribers.rules import Rules
from waifugen_assets.subscribers.safety import DISCLOSURE


@pytest.fixture
def world(pipeline_resources: dict, engine: sa.Engine, sandbox,
          request: pytest.FixtureRequest) -> World:
    return make_world(pipeline_resources, engine, sandbox.url, request.node.nodeid)


def _messages(engine: sa.Engine) -> list[dict]:
    dm, s = schema.dm_messages, schema.subscribers
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(dm, s.c.platform, s.c.external_id, s.c.timezone, s.c.subscribed_at,
                      s.c.opted_out_at).join(s, s.c.id == dm.c.subscriber_id)
            .order_by(dm.c.id)).mappings()]


NOON_TOKYO = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)


def test_new_subscribers_get_the_day_0_welcome_once(world: World, engine: sa.Engine) -> None:
    fan = world.fan(subscribedAt=(NOON_TOKYO - dt.timedelta(minutes=20)).isoformat(),
                    displayName="Aki", timezone="Asia/Tokyo")
    world.start(5550001, NOON_TOKYO - dt.timedelta(minutes=10))
    stats = world.cycle(NOON_TOKYO)
    assert stats.outcomes["sent"] == 2, stats
    (fv,) = world.fanvue_sent()
    (tg,) = world.telegram_sent()
    assert fv["userUuid"] == fan and tg["chat"]["id"] == 5550001
    for text in (fv["text"], tg["text"]):
        assert text.endswith(DISCLOSURE)
    assert "Aki" in fv["text"]
    sent = [m for m in _messages(engine) if m["state"] == "sent"]
    assert {(m["platform"], m["step"]) for m in sent} == {("fanvue", 0), ("telegram", 0)}
    assert all(m["variant"] and m["remote_message_id"] for m in sent)
    # Later runs the same day: nothing new.
    for minutes in (10, 20, 240):
        world.cycle(NOON_TOKYO + dt.timedelta(minutes=minutes))
    assert len(world.fanvue_sent()) == 1 and len(world.telegram_sent()) == 1


def test_quiet_hours_hold_the_message_until_morning(world: World, engine: sa.Engine) -> None:
    # 03:00 UTC is 04:00 in Madrid: the fan sleeps; it goes out at 09:00 their time.
    world.fan(subscribedAt=(NOON_TOKYO - dt.timedelta(minutes=5)).isoformat(),
              timezone="Europe/Madrid")
    stats = world.cycle(NOON_TOKYO)
    assert stats.outcomes == Counter({"waiting": 1}) and stats.reasons["quiet_hours"] == 1
    (msg,) = _messages(engine)
    wake = dt.datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("Europe/Madrid"))
    assert msg["state"] == "planned" and msg["not_before"] == wake
    world.cycle(wake - dt.timedelta(minutes=1))
    assert world.fanvue_sent() == []
    world.cycle(wake + dt.timedelta(minutes=1))
    assert len(world.fanvue_sent()) == 1


def test_opted_out_and_blocked_subscribers_get_nothing(world: World, engine: sa.Engine) -> None:
    early = NOON_TOKYO - dt.timedelta(hours=2)
    stopper = world.fan(subscribedAt=early.isoformat(), timezone="Asia/Tokyo")
    world.fan_act(stopper, "stop", early + dt.timedelta(minutes=1))
    world.start(5550002, early)
    httpx.post(f"{world.url}/telegram/_control/act", json={
        "bot": world.bot, "user_id": 5550002, "action": "block",
        "at": (early + dt.timedelta(minutes=1)).isoformat()}).raise_for_status()
    world.cycle(NOON_TOKYO)
    assert world.fanvue_sent() == [] and world.telegram_sent() == []
    s = schema.subscribers
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).where(s.c.opted_out_at.is_(None))) == 0


def test_a_cancelled_fan_is_stopped_by_the_platform_answer(world: World, engine: sa.Engine,
                                                          ) -> None:
    # Polling sees no cancellation event; Fanvue refuses the send (not contactable).
    fan = world.fan(subscribedAt=(NOON_TOKYO - dt.timedelta(minutes=30)).isoformat(),
                    timezone="Asia/Tokyo")
    world.cycle(NOON_TOKYO - dt.timedelta(minutes=29))  # polled and planned: welcome sent
    world.fan_act(fan, "cancel", NOON_TOKYO - dt.timedelta(minutes=20))
    s, dm = schema.subscribers, schema.dm_messages
    with engine.begin() as conn:  # a second message is due: make the welcome step again due
        conn.execute(sa.update(dm).values(state="planned", sent_at=None))
    stats = world.cycle(NOON_TOKYO)
    assert stats.reasons["unreachable"] == 1
    with engine.connect() as conn:
        assert conn.scalar(sa.select(s.c.opted_out_at).where(s.c.external_id == fan))


def test_a_fortnight_delivers_days_0_3_7_14_to_eligible_subscribers_only(
        world: World, engine: sa.Engine) -> None:
    start = dt.date(2026, 11, 1)
    rules = Rules()
    fan_regular = None
    for d in range(16):
        day = start + dt.timedelta(days=d)
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
        httpx.post(f"{world.url}/fanvue/_control/simulate", json={
            "creator": world.account, "day": day.isoformat(), "signups": 3}).raise_for_status()
        httpx.post(f"{world.url}/telegram/_control/simulate", json={
            "bot": world.bot, "day": day.isoformat(), "starts": 3}).raise_for_status()
        if d == 0:  # one fan who writes every day and tips: engaged, eligible for everything
            fan_regular = world.fan(subscribedAt=(midnight + dt.timedelta(hours=1)).isoformat(),
                                    displayName="Regular", timezone="Asia/Tokyo", tier="standard")
        status = {f["uuid"]: f["status"] for f in httpx.get(
            f"{world.url}/fanvue/_control/subscribers", params={"creator": world.account}).json()}
        if status[fan_regular] == "cancelled":  # the simulation let them lapse: they renew
            world.fan_act(fan_regular, "renew", midnight + dt.timedelta(minutes=30))
        world.fan_act(fan_regular, "reply", midnight + dt.timedelta(hours=2),
                      text=f"hello again, day {d}")
        if d in (2, 6):
            world.fan_act(fan_regular, "tip", midnight + dt.timedelta(hours=2, minutes=5),
                          amount=2500)
        for hour in range(0, 24, 2):
            world.cycle(midnight + dt.timedelta(hours=hour, minutes=7), rules)

    messages = _messages(engine)
    sent = [m for m in messages if m["state"] == "sent"]
    # Exactly once: what the platforms received is what the database says was sent.
    fv, tg = world.fanvue_sent(), world.telegram_sent()
    assert len(fv) == sum(m["platform"] == "fanvue" for m in sent)
    assert len(tg) == sum(m["platform"] == "telegram" for m in sent)
    # (Telegram numbers messages per chat.)
    assert len({(m["external_id"], m["remote_message_id"]) for m in sent}) == len(sent)
    assert all(m["text"].endswith(DISCLOSURE) for m in sent)
    # Every step of the default sequence went to someone; the regular fan got all four.
    seq_days = {step.index: step.day for seq in world.sequences.values() for step in seq.steps}
    assert {m["step"] for m in sent} == {0, 1, 2, 3}
    regular = sorted((m["step"], m["sent_at"]) for m in sent if m["external_id"] == fan_regular)
    assert [s for s, _ in regular] == [0, 1, 2, 3], [
        (m["step"], m["state"], m["error"], m["due_at"]) for m in messages
        if m["external_id"] == fan_regular]
    ie = schema.inbound_events
    with engine.connect() as conn:
        replies = defaultdict(list)
        for sub_id, at in conn.execute(sa.select(ie.c.subscriber_id, ie.c.occurred_at).where(
                ie.c.event_type == "message.received")):
            replies[sub_id].append(at)
    per_sub: dict[int, list[dt.datetime]] = defaultdict(list)
    for m in sent:
        due = m["subscribed_at"] + dt.timedelta(days=seq_days[m["step"]])
        assert due <= m["sent_at"] <= due + dt.timedelta(hours=72), m
        zone = ZoneInfo(m["timezone"] or "Asia/Tokyo")
        assert not rules.is_quiet(m["sent_at"].astimezone(zone).time()), m
        assert m["opted_out_at"] is None or m["opted_out_at"] > m["sent_at"], m
        if m["step"] == 2:  # day 7 is for subscribers who have written back
            assert any(t < m["sent_at"] for t in replies[m["subscriber_id"]]), m
        per_sub[m["subscriber_id"]].append(m["sent_at"])
    for times in per_sub.values():  # the frequency cap
        times.sort()
        for i, t in enumerate(times):
            assert sum(t <= u < t + dt.timedelta(hours=24) for u in times[i:]) <= 2
    # The ineligible were skipped, with the reason recorded, and got nothing.
    skipped = Counter(m["error"].split(" ")[0] for m in messages if m["state"] == "skipped")
    assert skipped, "nobody was ineligible: the simulation did not test eligibility"
    assert all(m["sent_at"] is None for m in messages if m["state"] == "skipped")


def test_onlyfans_subscribers_go_to_the_manual_queue_never_to_an_api(
        pipeline_resources: dict, engine: sa.Engine, sandbox, tmp_path) -> None:
    """Lucía has an OnlyFans account: her CSV subscribers' welcomes wait for an operator."""
    make_world(pipeline_resources, engine, sandbox.url, "manual-queue")  # roster, sequences
    pa = schema.platform_accounts
    with engine.begin() as conn:  # make_world keeps one character's accounts: add Lucía's
        conn.execute(sa.insert(pa).values(character_id="lucia-marvento", platform="onlyfans",
                                          account_ref="luciamarvento"))
    export = tmp_path / "fans.csv"
    export.write_text("Name,Username,Subscribed,Total spent\n"
                      "Ana,@ana_b,2026-11-25 01:00,$12.00\n"
                      "Ben,ben_c,not a date,$3.00\n"
                      "Cai,cai_d,2026-11-24 22:00,$0\n", encoding="utf-8")
    report = import_csv(engine, export, "onlyfans", "lucia-marvento")
    assert report.imported == 2 and [e.line for e in report.errors] == [3]
    sequences = load_configured_sequences(engine)
    lucia = character_info(engine, "lucia-marvento")
    noon_madrid = dt.datetime(2026, 11, 25, 11, 0, tzinfo=dt.UTC)
    stats = dm_cycle(engine, lucia, {"onlyfans": ManualChannel("onlyfans")}, sequences,
                     noon_madrid)
    assert stats.outcomes["queued_manual"] == 2
    out = io.StringIO()
    assert export_csv(engine, out, "lucia-marvento") == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["subscriber_handle"] for r in rows} == {"ana_b", "cai_d"}
    assert all(r["text"].endswith(DISCLOSURE) and r["variant"] for r in rows)
    ids = [int(r["message_id"]) for r in rows]
    assert mark_sent(engine, ids, now=noon_madrid) == 2
    dm_cycle(engine, lucia, {"onlyfans": ManualChannel("onlyfans")}, sequences,
             noon_madrid + dt.timedelta(hours=1))
    assert {m["state"] for m in _messages(engine)} == {"sent"}
