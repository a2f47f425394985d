"""Inbound events: normalization of every platform event, storing once, applying on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.subscribers import inbound
from waifugen_assets.subscribers.events import (
    BadEvent,
    NormalizedEvent,
    UnsupportedEvent,
    events_from_fanvue_messages,
    events_from_fanvue_subscribers,
    events_from_telegram_updates,
    from_fanvue,
    from_telegram,
)
from waifugen_assets.subscribers.inbound import apply_pending, store_events

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
BOT = 777000
CHAR = "aiko-tanaka"
FAN = "0b6f3c1e-0000-4000-8000-000000000001"


def add_character(engine: sa.Engine, slug: str = CHAR) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(
            id=slug, name=slug.title(), age=24, timezone="Asia/Tokyo"))


def fanvue_body(kind: str, data: dict[str, Any], event_id: str = "evt_1",
                created: str = "2026-11-25T10:00:00Z") -> dict[str, Any]:
    return {"id": event_id, "type": kind, "createdAt": created, "creatorUuid": "creator-1",
            "data": {"userUuid": FAN, **data}}


def tg_message(update_id: int, text: str | None = None, chat_id: int = 4242,
               date: int = int(T0.timestamp()), **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": update_id, "date": date,
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ken", "last_name": "Sato",
                 "username": "kensato"}, **extra}
    if text is not None:
        message["text"] = text
    return {"update_id": update_id, "message": message}


def rows(engine: sa.Engine, table: sa.Table, *exclude: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    return [{k: v for k, v in r.items() if k not in exclude} for r in result]


# --- Fanvue normalization -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("subscriber.created",
         {"handle": "ken", "displayName": "Ken", "subscribedAt": "2026-11-25T09:00:00+01:00",
          "tier": "vip", "timezone": "Europe/Paris"},
         {"event_type": "subscriber.new", "handle": "ken", "display_name": "Ken", "tier": "vip",
          "timezone": "Europe/Paris", "occurred_at": dt.datetime(2026, 11, 25, 8, tzinfo=UTC)}),
        ("subscriber.renewed", {"amount": 999, "currency": "usd"},
         {"event_type": "subscriber.renewal", "amount_cents": 999, "currency": "USD"}),
        ("subscriber.cancelled", {}, {"event_type": "subscriber.cancelled", "occurred_at": T0}),
        ("message.received",
         {"messageUuid": "m1", "text": "hi!", "sentAt": "2026-11-25T10:05:00Z"},
         {"event_type": "message.received", "text": "hi!",
          "occurred_at": T0 + dt.timedelta(minutes=5)}),
        ("tip.received", {"amount": 500, "currency": "EUR"},
         {"event_type": "revenue.tip", "amount_cents": 500, "currency": "EUR"}),
        ("purchase.completed", {"purchaseUuid": "p1", "amount": 1500, "currency": "USD"},
         {"event_type": "revenue.purchase", "amount_cents": 1500, "currency": "USD"}),
    ],
)
def test_fanvue_event_types(kind: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    body = fanvue_body(kind, data)
    event = from_fanvue(body, CHAR)
    assert (event.platform, event.event_id, event.character_id, event.external_id) == (
        "fanvue", "evt_1", CHAR, FAN)
    for name, value in expected.items():
        assert getattr(event, name) == value, name
    assert event.payload == body
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"type": "tip.received", "createdAt": "2026-11-25T10:00:00Z", "data": {}}, "id"),
        (fanvue_body("tip.received", {"amount": 5, "currency": "USD"}, created="yesterday"),
         "createdAt"),
        (fanvue_body("tip.received", {"amount": 5, "currency": "USD"},
                     created="2026-11-25T10:00:00"), "createdAt"),
        ({**fanvue_body("tip.received", {}), "data": {"amount": 5, "currency": "USD"}},
         "data.userUuid"),
        (fanvue_body("tip.received", {"amount": -5, "currency": "USD"}), "data.amount"),
        (fanvue_body("tip.received", {"amount": "5", "currency": "USD"}), "data.amount"),
        (fanvue_body("tip.received", {"amount": 5, "currency": "dollars"}), "data.currency"),
        (fanvue_body("subscriber.renewed", {"currency": "USD"}), "data.amount"),
        (fanvue_body("message.received", {"messageUuid": "m"}), "data.text"),
        ({**fanvue_body("tip.received", {}), "data": "nope"}, "data"),
        ({k: v for k, v in fanvue_body("tip.received", {}).items() if k != "creatorUuid"},
         "creatorUuid"),
        ({**fanvue_body("tip.received", {}), "creatorUuid": 7}, "creatorUuid"),
        ({**fanvue_body("tip.received", {}), "creatorUuid": "c" * 201}, "creatorUuid"),
        (fanvue_body("tip.received", {"userUuid": "u" * 201, "amount": 5, "currency": "USD"}),
         "data.userUuid"),
        (fanvue_body("tip.received", {"amount": 2**63, "currency": "USD"}), "data.amount"),
        (fanvue_body("tip.received", {"amount": 5, "currency": "USD"},
                     created="0001-01-01T00:00:00+01:00"), "createdAt"),
    ],
)
def test_fanvue_bad_payloads_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(BadEvent) as info:
        from_fanvue(body, CHAR)
    assert info.value.field == field
    assert not isinstance(info.value, UnsupportedEvent)


def test_fanvue_unknown_type_is_unsupported_and_bad_timezone_dropped() -> None:
    with pytest.raises(UnsupportedEvent, match="type"):
        from_fanvue(fanvue_body("story.liked", {}), CHAR)
    event = from_fanvue(fanvue_body("subscriber.created", {"timezone": "Mars/Olympus"}), CHAR)
    assert event.timezone is None and event.occurred_at == T0
    assert event.creator_uuid == "creator-1"
    # Names ZoneInfo cannot load for other reasons (a directory, a path, NUL) are dropped too.
    for name in ("America", "/etc/passwd", "../x", "Europe/\x00", "zone.tab"):
        odd = from_fanvue(fanvue_body("subscriber.created", {"timezone": name}), CHAR)
        assert odd.timezone is None, name


# --- Telegram normalization -----------------------------------------------------------------------

def test_telegram_start_is_a_new_subscriber() -> None:
    for text in ("/start c-aiko-tanaka", "/start", "/start@AikoBot c-aiko-tanaka-summer"):
        event = from_telegram(tg_message(10, text), CHAR, BOT)
        assert event is not None
        assert (event.event_type, event.event_id, event.external_id) == (
            "subscriber.new", f"{BOT}:10", "4242")
        assert (event.handle, event.display_name, event.occurred_at) == ("kensato", "Ken Sato",
                                                                         T0)


def test_telegram_text_and_payment_and_block() -> None:
    msg = from_telegram(tg_message(11, "hello there"), CHAR, BOT)
    assert msg is not None and (msg.event_type, msg.text) == ("message.received", "hello there")
    photo = from_telegram(tg_message(12, caption="look", photo=[{"file_id": "x"}]), CHAR, BOT)
    assert photo is not None and (photo.event_type, photo.text) == ("message.received", "look")

    paid = from_telegram(tg_message(13, successful_payment={
        "currency": "XTR", "total_amount": 250, "invoice_payload": "tip",
        "telegram_payment_charge_id": "ch_1"}), CHAR, BOT)
    assert paid is not None
    assert (paid.event_type, paid.amount_cents, paid.currency) == ("revenue.tip", 250, "XTR")

    blocked = from_telegram({"update_id": 14, "my_chat_member": {
        "chat": {"id": 4242, "type": "private"}, "from": {"id": 4242, "first_name": "Ken"},
        "date": int(T0.timestamp()), "old_chat_member": {"status": "member"},
        "new_chat_member": {"status": "kicked"}}}, CHAR, BOT)
    assert blocked is not None
    assert (blocked.event_type, blocked.external_id, blocked.event_id) == (
        "subscriber.blocked", "4242", f"{BOT}:14")


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 20, "my_chat_member": {
            "chat": {"id": 1, "type": "private"}, "date": 1,
            "new_chat_member": {"status": "member"}}},
        {"update_id": 21, "edited_message": tg_message(21, "edited")["message"]},
        {"update_id": 22, "message": {**tg_message(22, "hi")["message"],
                                      "chat": {"id": -100, "type": "group"}}},
        {"update_id": 23, "callback_query": {"id": "q"}},
    ],
)
def test_telegram_ignored_updates(update: dict[str, Any]) -> None:
    assert from_telegram(update, CHAR, BOT) is None


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"message": {}}, "update_id"),
        ({"update_id": 1, "message": "x"}, "message"),
        ({"update_id": 1, "message": {"date": 1, "chat": {"type": "private"}}},
         "message.chat.id"),
        ({"update_id": 1, "message": {"chat": {"id": 1, "type": "private"}}}, "message.date"),
        (tg_message(1, successful_payment={"currency": "XTR"}),
         "message.successful_payment.total_amount"),
        (tg_message(1, successful_payment={"currency": "stars", "total_amount": 5}),
         "message.successful_payment.currency"),
        (tg_message(1, "hi", date=10**20), "message.date"),
        (tg_message(1, "hi", date=-(10**20)), "message.date"),
        (tg_message(1, "hi", chat_id=10**250), "message.chat.id"),
        ({"update_id": 1, "my_chat_member": {"chat": {"id": 1, "type": "private"},
                                             "date": 10**20,
                                             "new_chat_member": {"status": "kicked"}}},
         "my_chat_member.date"),
    ],
)
def test_telegram_bad_updates_name_the_field(update: dict[str, Any], field: str) -> None:
    with pytest.raises(BadEvent) as info:
        from_telegram(update, CHAR, BOT)
    assert info.value.field == field


def test_normalized_event_rejects_unknown_type_and_naive_time() -> None:
    with pytest.raises(BadEvent, match="event_type"):
        NormalizedEvent("fanvue", "e", "subscriber.exploded", CHAR, FAN, T0)
    with pytest.raises(BadEvent, match="occurred_at"):
        NormalizedEvent("fanvue", "e", "subscriber.new", CHAR, FAN, T0.replace(tzinfo=None))
    # The subscriber id is indexed: a longer one would fail in the database instead.
    with pytest.raises(BadEvent, match="external_id: longer than 200 characters"):
        NormalizedEvent("fanvue", "e", "subscriber.new", CHAR, "x" * 201, T0)


# --- polling fallback -----------------------------------------------------------------------------

def test_polling_helpers_make_stable_events(engine: sa.Engine) -> None:
    add_character(engine)
    updates = [tg_message(1, "/start c-aiko-tanaka"), {"update_id": 2, "callback_query": {}},
               {"update_id": 3, "message": {"chat": {"type": "private"}}},  # bad: skipped
               tg_message(4, "hello")]
    tg = events_from_telegram_updates(updates, CHAR, BOT)
    assert [(e.event_id, e.event_type) for e in tg] == [
        (f"{BOT}:1", "subscriber.new"), (f"{BOT}:4", "message.received")]

    subs = [
        {"uuid": "u1", "handle": "a", "displayName": "A", "subscribedAt": "2026-11-01T00:00:00Z",
         "expiresAt": None, "timezone": "Asia/Seoul"},
        SimpleNamespace(uuid="u2", handle="b", display_name="B", subscribed_at=T0,
                        expires_at=None, tier="vip", timezone=None),
    ]
    fv = events_from_fanvue_subscribers(subs, CHAR)
    assert [e.event_id for e in fv] == ["poll:sub:u1:2026-11-01T00:00:00+00:00",
                                        f"poll:sub:u2:{T0.isoformat()}"]
    assert (fv[0].timezone, fv[1].tier, fv[1].display_name) == ("Asia/Seoul", "vip", "B")

    messages = [
        {"uuid": "m1", "text": "STOP", "sentAt": "2026-11-25T11:00:00Z", "senderUuid": "u1"},
        SimpleNamespace(uuid="m2", text="our reply", sent_at=T0, sender_uuid="creator"),
    ]
    fm = events_from_fanvue_messages(messages, CHAR, "creator")
    assert [(e.event_id, e.external_id, e.text) for e in fm] == [("poll:msg:m1", "u1", "STOP")]

    assert store_events(engine, [*tg, *fv, *fm]) == 5
    # The next poll sees the same snapshot: nothing new.
    again = [*events_from_telegram_updates(updates, CHAR, BOT),
             *events_from_fanvue_subscribers(subs, CHAR),
             *events_from_fanvue_messages(messages, CHAR, "creator")]
    assert store_events(engine, again) == 0
    stats = apply_pending(engine)
    assert (stats.applied, stats.opt_outs) == (5, 1)


# --- store ----------------------------------------------------------------------------------------

def test_store_once_per_event_id(engine: sa.Engine) -> None:
    add_character(engine)
    event = from_fanvue(fanvue_body("tip.received", {"amount": 5, "currency": "USD"}), CHAR)
    assert store_events(engine, [event, event]) == 1
    assert store_events(engine, [event]) == 0
    other = from_fanvue(fanvue_body("tip.received", {"amount": 5, "currency": "USD"},
                                    event_id="evt_2"), CHAR)
    assert store_events(engine, [event, other]) == 1
    assert store_events(engine, []) == 0
    stored = rows(engine, schema.inbound_events)
    assert [(r["event_id"], r["external_id"], r["data"]) for r in stored] == [
        ("evt_1", FAN, {"amount_cents": 5, "currency": "USD"}),
        ("evt_2", FAN, {"amount_cents": 5, "currency": "USD"})]
    assert stored[0]["payload"]["type"] == "tip.received"
    assert all(r["processed_at"] is None for r in stored)


def test_a_batch_larger_than_one_statement_is_stored_once(engine: sa.Engine) -> None:
    # Speed is benchmarks/webhook_ingest.py's business; here: batches split, nothing twice.
    add_character(engine)
    events = [from_fanvue(fanvue_body("message.received",
                                      {"messageUuid": f"m{i}", "text": f"hi {i}"},
                                      event_id=f"evt_{i}"), CHAR) for i in range(2500)]
    assert store_events(engine, events) == 2500
    assert store_events(engine, events[::3]) == 0
    assert len(rows(engine, schema.inbound_events)) == 2500


def test_unknown_character_is_kept_and_rejected(engine: sa.Engine) -> None:
    add_character(engine)
    ghost = from_fanvue(fanvue_body("tip.received", {"amount": 5, "currency": "USD"},
                                    event_id="evt_ghost"), "no-such-character")
    good = from_fanvue(fanvue_body("tip.received", {"amount": 7, "currency": "USD"}), CHAR)
    # The webhook service vouches for the character it routed to; others are still looked up.
    assert store_events(engine, [ghost, good], known_characters={CHAR}) == 2
    stats = apply_pending(engine, now=T0)
    assert (stats.applied, stats.rejected, stats.revenue_events) == (1, 1, 1)
    by_id = {r["event_id"]: r for r in rows(engine, schema.inbound_events)}
    assert by_id["evt_ghost"]["character_id"] is None
    assert "unknown character 'no-such-character'" in by_id["evt_ghost"]["error"]
    assert by_id["evt_ghost"]["processed_at"] == T0
    assert by_id["evt_1"]["error"] is None and by_id["evt_1"]["subscriber_id"] is not None
    assert apply_pending(engine).rejected == 0  # not retried


# --- apply ----------------------------------------------------------------------------------------

def lifecycle_events() -> list[NormalizedEvent]:
    def fv(kind: str, data: dict[str, Any], n: int, minutes: int) -> NormalizedEvent:
        created = (T0 + dt.timedelta(minutes=minutes)).isoformat()
        return from_fanvue(fanvue_body(kind, data, event_id=f"evt_{n}", created=created), CHAR)

    tg = [from_telegram(tg_message(100, "/start c-aiko-tanaka"), CHAR, BOT),
          from_telegram(tg_message(101, "hey", date=int(T0.timestamp()) + 60), CHAR, BOT),
          from_telegram(tg_message(102, successful_payment={"currency": "XTR",
                                                            "total_amount": 50}), CHAR, BOT)]
    return [
        fv("subscriber.created", {"handle": "ken", "displayName": "Ken", "tier": "vip",
                                  "timezone": "Europe/Berlin",
                                  "subscribedAt": T0.isoformat()}, 1, 0),
        fv("message.received", {"messageUuid": "m1", "text": "love your videos",
                                "sentAt": (T0 + dt.timedelta(minutes=1)).isoformat()}, 2, 1),
        fv("tip.received", {"amount": 500, "currency": "USD"}, 3, 2),
        fv("subscriber.renewed", {"amount": 999, "currency": "USD"}, 4, 3),
        fv("purchase.completed", {"purchaseUuid": "p", "amount": 1500, "currency": "USD"}, 5, 4),
        *[e for e in tg if e is not None],
    ]


def test_apply_builds_subscribers_and_revenue(engine: sa.Engine) -> None:
    add_character(engine)
    assert store_events(engine, lifecycle_events()) == 8
    stats = apply_pending(engine, now=T0 + dt.timedelta(hours=1))
    assert (stats.applied, stats.rejected, stats.subscribers_created) == (8, 0, 2)
    assert stats.revenue_events == 4 and stats.opt_outs == 0
    assert stats.by_type == {"subscriber.new": 2, "message.received": 2, "revenue.tip": 2,
                             "subscriber.renewal": 1, "revenue.purchase": 1}

    subs = {r["platform"]: r for r in rows(engine, schema.subscribers)}
    fan = subs["fanvue"]
    assert (fan["external_id"], fan["handle"], fan["display_name"], fan["tier"],
            fan["timezone"]) == (FAN, "ken", "Ken", "vip", "Europe/Berlin")
    assert fan["subscribed_at"] == T0 and fan["last_inbound_at"] == T0 + dt.timedelta(minutes=1)
    assert fan["opted_out_at"] is None
    tg = subs["telegram"]
    assert (tg["external_id"], tg["handle"], tg["display_name"], tg["tier"]) == (
        "4242", "kensato", "Ken Sato", "standard")
    assert tg["last_inbound_at"] == T0 + dt.timedelta(minutes=1)

    revenue = {(r["platform"], r["kind"]): r for r in rows(engine, schema.revenue_events)}
    assert {k: (r["amount_cents"], r["currency"]) for k, r in revenue.items()} == {
        ("fanvue", "tip"): (500, "USD"), ("fanvue", "renewal"): (999, "USD"),
        ("fanvue", "purchase"): (1500, "USD"), ("telegram", "tip"): (50, "XTR")}
    assert revenue[("telegram", "tip")]["event_id"] == f"{BOT}:102"
    assert all(r["subscriber_id"] == fan["id"] for k, r in revenue.items() if k[0] == "fanvue")
    events = rows(engine, schema.inbound_events)
    assert all(e["processed_at"] is not None and e["error"] is None for e in events)
    assert {e["subscriber_id"] for e in events} == {fan["id"], tg["id"]}


def test_apply_twice_changes_nothing(engine: sa.Engine) -> None:
    add_character(engine)
    store_events(engine, lifecycle_events())
    apply_pending(engine)
    before = [rows(engine, t) for t in (schema.subscribers, schema.revenue_events,
                                        schema.inbound_events)]
    stats = apply_pending(engine)
    assert (stats.applied, stats.rejected) == (0, 0)
    after = [rows(engine, t) for t in (schema.subscribers, schema.revenue_events,
                                       schema.inbound_events)]
    assert after == before

    # Even re-applying every event (processed_at reset) gives the same subscribers and revenue.
    with engine.begin() as conn:
        conn.execute(sa.update(schema.inbound_events).values(processed_at=None))
    assert apply_pending(engine).applied == 8
    assert rows(engine, schema.subscribers, "updated_at") == [
        {k: v for k, v in r.items() if k != "updated_at"} for r in before[0]]
    assert rows(engine, schema.revenue_events) == before[1]


def fan_state(engine: sa.Engine) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.subscribers.c.opted_out_at,
                                      schema.subscribers.c.subscribed_at)).one()


def test_opt_out_message_sets_opted_out_at(engine: sa.Engine) -> None:
    add_character(engine)
    store_events(engine, [from_telegram(tg_message(1, "/start c-aiko-tanaka"), CHAR, BOT),
                          from_telegram(tg_message(2, "don't stop"), CHAR, BOT)])
    apply_pending(engine)
    assert fan_state(engine).opted_out_at is None
    stop_at = int(T0.timestamp()) + 600
    store_events(engine, [from_telegram(tg_message(3, "STOP!", date=stop_at), CHAR, BOT)])
    assert apply_pending(engine).opt_outs == 1
    assert fan_state(engine).opted_out_at == dt.datetime.fromtimestamp(stop_at, tz=UTC)
    # A later /start is an explicit opt-in again.
    store_events(engine, [from_telegram(tg_message(4, "/start", date=stop_at + 60), CHAR, BOT)])
    apply_pending(engine)
    assert fan_state(engine).opted_out_at is None


@pytest.mark.parametrize("kind", ["subscriber.cancelled", "subscriber.blocked"])
def test_cancel_and_block_opt_out_in_any_order(engine: sa.Engine, kind: str) -> None:
    add_character(engine)
    sub = NormalizedEvent("fanvue", "e-sub", "subscriber.new", CHAR, FAN, T0)
    stop = NormalizedEvent("fanvue", "e-stop", kind, CHAR, FAN, T0 + dt.timedelta(days=1))
    # The opt-out is stored (and applied) before the older subscription: still opted out.
    store_events(engine, [stop])
    apply_pending(engine)
    store_events(engine, [sub])
    apply_pending(engine)
    state = fan_state(engine)
    assert state.opted_out_at == T0 + dt.timedelta(days=1) and state.subscribed_at == T0
    # An opt-out older than the latest subscription does not count.
    old = NormalizedEvent("fanvue", "e-old", kind, CHAR, "fan-2", T0 - dt.timedelta(days=1))
    new = NormalizedEvent("fanvue", "e-new", "subscriber.new", CHAR, "fan-2", T0)
    store_events(engine, [new])
    apply_pending(engine)
    store_events(engine, [old])
    apply_pending(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(schema.subscribers.c.opted_out_at).where(
            schema.subscribers.c.external_id == "fan-2")) is None


def test_locked_events_are_skipped_not_waited_for(engine: sa.Engine) -> None:
    add_character(engine)
    events = [NormalizedEvent("fanvue", f"e{i}", "revenue.tip", CHAR, f"fan-{i}", T0,
                              amount_cents=100, currency="USD") for i in range(10)]
    store_events(engine, events)
    ie = schema.inbound_events
    other = engine.connect()
    try:
        other.begin()
        # Another applier holds the three oldest events.
        held = other.scalars(sa.select(ie.c.id).order_by(ie.c.received_at, ie.c.id).limit(3)
                             .with_for_update(skip_locked=True)).all()
        assert len(held) == 3
        stats = apply_pending(engine)
        assert stats.applied == 7
        other.rollback()
    finally:
        other.close()
    assert apply_pending(engine).applied == 3
    assert len(rows(engine, schema.revenue_events)) == 10


def test_concurrent_appliers_apply_each_event_once(engine: sa.Engine) -> None:
    add_character(engine)
    n = 1200
    store_events(engine, [NormalizedEvent("fanvue", f"e{i}", "revenue.tip", CHAR, f"fan-{i % 50}",
                                          T0 + dt.timedelta(seconds=i), amount_cents=1,
                                          currency="USD") for i in range(n)])
    barrier = threading.Barrier(2)
    results: list[list[inbound.ApplyStats]] = [[], []]
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        try:
            barrier.wait()
            while True:
                stats = apply_pending(engine, limit=40)
                results[slot].append(stats)
                if stats.applied == 0 and stats.rejected == 0:
                    return
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = [sum(s.applied for s in r) for r in results]
    assert sum(applied) == n and all(s.rejected == 0 for r in results for s in r)
    assert sum(s.revenue_events for r in results for s in r) == n
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.revenue_events)) == n
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.subscribers)) == 50
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.inbound_events)
                           .where(schema.inbound_events.c.processed_at.is_(None))) == 0


def test_event_the_database_refuses_is_rejected_alone(engine: sa.Engine) -> None:
    add_character(engine)
    bad = NormalizedEvent("fanvue", "e-bad", "revenue.tip", CHAR, FAN, T0, amount_cents=5,
                          currency="usd")  # lower case: the currency CHECK refuses it
    good = NormalizedEvent("fanvue", "e-good", "revenue.tip", CHAR, FAN, T0, amount_cents=7,
                           currency="USD")
    store_events(engine, [bad, good])
    stats = apply_pending(engine)
    assert (stats.applied, stats.rejected, stats.revenue_events) == (1, 1, 1)
    by_id = {r["event_id"]: r for r in rows(engine, schema.inbound_events)}
    assert by_id["e-bad"]["error"] == "could not apply: CheckViolation"
    assert by_id["e-bad"]["processed_at"] is not None and by_id["e-good"]["error"] is None
    assert [r["amount_cents"] for r in rows(engine, schema.revenue_events)] == [7]


# --- the Fanvue creator binding, at apply time ----------------------------------------------------

def test_apply_rejects_an_event_for_another_creator_once_the_uuid_is_known(
        engine: sa.Engine) -> None:
    add_character(engine)
    add_character(engine, "mei-lin")
    with engine.begin() as conn:
        for slug, uuid in ((CHAR, "creator-1"), ("mei-lin", None)):
            conn.execute(sa.insert(schema.platform_accounts).values(
                character_id=slug, platform="fanvue", account_ref=slug, external_user_id=uuid))

    def tip(event_id: str, creator: str, character: str) -> NormalizedEvent:
        body = {**fanvue_body("tip.received", {"amount": 5, "currency": "USD"},
                              event_id=event_id), "creatorUuid": creator}
        return from_fanvue(body, character)

    store_events(engine, [
        tip("ours", "creator-1", CHAR),
        tip("theirs", "creator-2", CHAR),  # Aiko's uuid is known and is not creator-2
        tip("unknown-yet", "creator-2", "mei-lin"),  # Mei's uuid is not known: applied
        # Polled events carry no creatorUuid: read with the character's own token, so bound.
        NormalizedEvent("fanvue", "poll:msg:1", "message.received", CHAR, FAN, T0, text="hi",
                        payload={"source": "poll:messages"}),
        # A Telegram update is never checked against a Fanvue creator, whatever it holds.
        NormalizedEvent("telegram", f"{BOT}:1", "message.received", CHAR, "4242", T0,
                        text="hi", payload={"creatorUuid": "creator-9"}),
    ])
    stats = apply_pending(engine, now=T0)
    assert (stats.applied, stats.rejected, stats.revenue_events) == (4, 1, 2)
    by_id = {r["event_id"]: r for r in rows(engine, schema.inbound_events)}
    assert by_id["theirs"]["error"] == inbound.WRONG_CREATOR
    assert by_id["theirs"]["processed_at"] == T0 and by_id["theirs"]["subscriber_id"] is None
    assert all(by_id[e]["error"] is None for e in ("ours", "unknown-yet", "poll:msg:1",
                                                   f"{BOT}:1"))
    assert sorted(r["event_id"] for r in rows(engine, schema.revenue_events)) == [
        "ours", "unknown-yet"]
