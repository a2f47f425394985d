"""The seeded world of the money marts (tests/test_marts_money.py): plain lists of app-table
rows, inserted with SQLAlchemy Core, from which the test computes every mart in Python.

Ten local days (2026-03-24 .. 2026-04-02) for three characters in Tokyo (UTC+9), Berlin (CET,
then CEST from 2026-03-29) and Los Angeles (PDT, UTC-7):

- reels: published, generated, branded, stored, failed, planned and skipped ones, a premium
  reel, and one planned for the day after the last (the planner works ahead);
- credit ledger: A2E task costs (a failed render is charged too, a retried render twice),
  RunPod rows in seconds (one day's cost ends in half a cent), one cost recorded the day after
  its reel, one row without character (its reel's counts), one not tied to a reel; balance
  snapshots with in-flight credits, a top-up and an adjustment (none of them spend);
- revenue in USD, EUR (and GBP after `change_days`), with refunds, and events whose UTC day
  is not their local day (Tokyo after midnight, Los Angeles late evening);
- subscribers (one without subscribed_at, one forgotten), cancellations (applied, one without
  occurred_at, one unprocessed, one rejected), other event types that no mart reads;
- DM sequences and messages (sent, skipped, held, planned) with fan replies and payments
  inside, outside and exactly at the edge of the 7 days after a sent message;
- 2026-03-29 (EMPTY_DAY) with nothing at all, for any character in its own time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from waifugen_assets.core import schema

Row = dict[str, Any]

DAYS = [dt.date(2026, 3, 24) + dt.timedelta(days=i) for i in range(10)]
EMPTY_DAY = dt.date(2026, 3, 29)
AHEAD_DAY = DAYS[-1] + dt.timedelta(days=1)  # only a planned reel
ZONES = {"aiko": "Asia/Tokyo", "mei": "Europe/Berlin", "lena": "America/Los_Angeles"}
MAIN_CURRENCY = {"aiko": "USD", "mei": "EUR", "lena": "USD"}
GENERATED = ("generated", "stored", "branded", "published")  # dbt var generated_reel_statuses
STATUS_CYCLE = ("published", "failed", "generated", "planned", "branded", "stored", "skipped",
                "failed", "published")

# Insert order (foreign keys) and the tables the world fills.
TABLES = ("characters", "reels", "credit_ledger", "subscribers", "revenue_events",
          "inbound_events", "dm_sequences", "dm_messages")


def at(character_id: str, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """The UTC instant of a character's local wall time."""
    local = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(ZONES[character_id]))
    return local.astimezone(dt.UTC)


def local_day(character_id: str, ts: dt.datetime) -> dt.date:
    return ts.astimezone(ZoneInfo(ZONES[character_id])).date()


@dataclass
class World:
    characters: list[Row] = field(default_factory=list)
    reels: list[Row] = field(default_factory=list)
    credit_ledger: list[Row] = field(default_factory=list)
    subscribers: list[Row] = field(default_factory=list)
    revenue_events: list[Row] = field(default_factory=list)
    inbound_events: list[Row] = field(default_factory=list)
    dm_sequences: list[Row] = field(default_factory=list)
    dm_messages: list[Row] = field(default_factory=list)

    def rows(self, table: str) -> list[Row]:
        return getattr(self, table)

    def insert(self, engine: sa.Engine) -> None:
        with engine.begin() as conn:
            for table in TABLES:
                if self.rows(table):
                    conn.execute(sa.insert(schema.metadata.tables[table]), self.rows(table))

    def next_id(self, table: str) -> int:
        return max((r["id"] for r in self.rows(table)), default=0) + 1

    def subscriber(self, subscriber_id: int) -> Row:
        return next(s for s in self.subscribers if s["id"] == subscriber_id)


# ---------------------------------------------------------------------------------------------
# Row builders: every row of a table has the same keys (one executemany per table)
# ---------------------------------------------------------------------------------------------

def ledger_row(id_: int, provider: str, kind: str, credits: int, day: dt.date, *,
               character_id: str | None = None, reel_id: int | None = None,
               external_ref: str | None = None, in_flight: int | None = None,
               note: str | None = None) -> Row:
    return {"id": id_, "provider": provider, "kind": kind, "character_id": character_id,
            "reel_id": reel_id, "external_ref": external_ref, "credits": credits,
            "ledger_date": day, "occurred_at": dt.datetime.combine(day, dt.time(23), dt.UTC),
            "note": note, "in_flight_credits": in_flight}


def revenue_row(id_: int, character_id: str, kind: str, amount: int, currency: str,
                occurred_at: dt.datetime, subscriber_id: int | None = None,
                platform: str = "fanvue") -> Row:
    return {"id": id_, "platform": platform, "event_id": f"rev-{id_}",
            "character_id": character_id, "subscriber_id": subscriber_id, "kind": kind,
            "amount_cents": amount, "currency": currency, "occurred_at": occurred_at}


def inbound_row(id_: int, event_type: str, *, subscriber_id: int | None,
                character_id: str | None, occurred_at: dt.datetime | None,
                received_at: dt.datetime, processed: bool = True,
                error: str | None = None, platform: str = "fanvue") -> Row:
    return {"id": id_, "platform": platform, "event_id": f"in-{id_}", "event_type": event_type,
            "character_id": character_id, "subscriber_id": subscriber_id,
            "external_id": None if subscriber_id is None else f"ext-{subscriber_id}",
            "occurred_at": occurred_at, "payload": {"secret": "not for analysts"},
            "data": {"text": "hi"}, "received_at": received_at,
            "processed_at": received_at + dt.timedelta(minutes=1) if processed else None,
            "error": error}


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------

def build_world() -> World:
    w = World()
    w.characters = [
        {"id": cid, "name": cid.title(), "age": 21 + i, "timezone": zone}
        for i, (cid, zone) in enumerate(ZONES.items())
    ]
    _reels_and_costs(w)
    _revenue(w)
    _subscribers_and_dms(w)
    check_world(w)
    return w


def _reels_and_costs(w: World) -> None:
    reel_id = 0
    for ci, cid in enumerate(ZONES):
        for di, day in enumerate(DAYS):
            if day == EMPTY_DAY:
                continue
            for slot in range(2 + (ci + di) % 3):
                reel_id += 1
                status = STATUS_CYCLE[(ci * 3 + di * 2 + slot) % len(STATUS_CYCLE)]
                provider = None
                if status not in ("planned", "skipped"):
                    provider = "runpod" if reel_id % 5 == 0 else "a2e"
                w.reels.append(_reel(reel_id, cid, day, slot, status, provider,
                                     projected=30 + 4 * slot + 2 * ci))
    # A premium reel and one planned ahead of the last day.
    for cid, day, tier, status in (("aiko", DAYS[2], "premium", "published"),
                                   ("lena", AHEAD_DAY, "standard", "planned")):
        reel_id += 1
        w.reels.append(_reel(reel_id, cid, day, 0, status,
                             "a2e" if status != "planned" else None, projected=55, tier=tier))

    for r in w.reels:
        lid = w.next_id("credit_ledger")
        rid, cid, day = r["id"], r["character_id"], r["date"]
        if r["status"] in GENERATED and r["generation_provider"] == "a2e":
            w.credit_ledger.append(ledger_row(lid, "a2e", "task_cost", 30 + (rid * 7) % 23, day,
                                              character_id=cid, reel_id=rid,
                                              external_ref=r["generation_task_id"]))
        elif r["status"] in GENERATED:  # RunPod render after a charged A2E failure
            w.credit_ledger.append(ledger_row(lid, "a2e", "task_cost", 12, day, character_id=cid,
                                              reel_id=rid, external_ref=f"a2e-failed-{rid}"))
            w.credit_ledger.append(ledger_row(lid + 1, "runpod", "task_cost",
                                              100 + (rid * 13) % 60, day, character_id=cid,
                                              reel_id=rid, external_ref=r["generation_task_id"]))
        elif r["status"] == "failed":
            provider = r["generation_provider"]
            w.credit_ledger.append(ledger_row(lid, provider, "task_cost",
                                              8 + rid % 6 if provider == "a2e" else 45, day,
                                              character_id=cid, reel_id=rid,
                                              external_ref=r["generation_task_id"]))

    # Special cases: a cost recorded the day after its reel, one without character, a cost not
    # tied to a reel, a RunPod day whose cost ends in half a cent.
    late = next(row for row in w.credit_ledger
                if row["character_id"] == "mei" and row["ledger_date"] == DAYS[2])
    late["ledger_date"] = DAYS[3]
    orphan = next(row for row in w.credit_ledger if row["character_id"] == "aiko"
                  and row["ledger_date"] == DAYS[4])
    orphan["character_id"] = None
    lid = w.next_id("credit_ledger")
    w.credit_ledger.append(ledger_row(lid, "a2e", "task_cost", 5, DAYS[1], character_id="lena",
                                      external_ref="a2e-preview-1"))
    half = next(r for r in w.reels if r["character_id"] == "lena" and r["date"] == DAYS[6]
                and r["status"] in GENERATED)
    w.credit_ledger.append(ledger_row(lid + 1, "runpod", "task_cost", 130, DAYS[6],
                                      character_id="lena", reel_id=half["id"],
                                      external_ref="runpod-extra-1"))
    # Not spend: balance snapshots, a top-up, an adjustment.
    lid += 2
    for i, day in enumerate(DAYS):
        if day != EMPTY_DAY:
            w.credit_ledger.append(ledger_row(lid, "a2e", "balance_snapshot", 50_000 - 300 * i,
                                              day, external_ref=f"balance:{day}",
                                              in_flight=3 * i))
            lid += 1
    w.credit_ledger.append(ledger_row(lid, "a2e", "top_up", 20_000, DAYS[6],
                                      external_ref=f"top_up:{DAYS[6]}"))
    w.credit_ledger.append(ledger_row(lid + 1, "a2e", "adjustment", 15, DAYS[1],
                                      character_id="aiko", external_ref="adjustment:1",
                                      note="manual correction"))


def _reel(id_: int, cid: str, day: dt.date, slot: int, status: str, provider: str | None, *,
          projected: int, tier: str = "standard") -> Row:
    return {"id": id_, "character_id": cid, "date": day, "slot": slot, "tier": tier,
            "scheduled_at": at(cid, day, 9 + 4 * slot), "status": status,
            "generation_provider": provider,
            "generation_task_id": None if provider is None else f"{provider}-task-{id_}",
            "projected_credits": projected}


def _revenue(w: World) -> None:
    """Revenue not tied to a subscriber: a subscription or renewal every day, tips, purchases,
    refunds; hours chosen so many events fall on another UTC day than their local day."""
    for ci, cid in enumerate(ZONES):
        main = MAIN_CURRENCY[cid]
        for di, day in enumerate(DAYS):
            if day == EMPTY_DAY:
                continue
            hour = (0, 12, 23)[(di + ci) % 3]
            kind = "subscription" if di % 3 == 0 else "renewal"
            w.revenue_events.append(revenue_row(w.next_id("revenue_events"), cid, kind,
                                                999 + 100 * ci, main, at(cid, day, hour, 30)))
            if di % 2 == 1:
                currency = "USD" if cid == "mei" else main
                w.revenue_events.append(revenue_row(w.next_id("revenue_events"), cid, "tip",
                                                    500 + 37 * di, currency,
                                                    at(cid, day, (hour + 7) % 24, 15)))
            if di % 4 == 2:
                currency = "EUR" if cid == "lena" else main
                w.revenue_events.append(revenue_row(w.next_id("revenue_events"), cid,
                                                    "purchase", 1299, currency,
                                                    at(cid, day, 23, 45)))
    for cid, day, amount, currency in (("aiko", DAYS[2], 999, "USD"),
                                       ("mei", DAYS[7], 500, "EUR"),
                                       ("lena", DAYS[8], 2500, "USD")):  # more than that day
        w.revenue_events.append(revenue_row(w.next_id("revenue_events"), cid, "refund", amount,
                                            currency, at(cid, day, 0, 10)))


def _subscribers_and_dms(w: World) -> None:
    d = DAYS
    # (id, character, platform, tier, subscribed local (day, hour) or None, forgotten)
    subs = [
        (1, "aiko", "fanvue", "standard", (d[0], 10), False),
        (2, "aiko", "fanvue", "vip", (d[1], 20), False),
        (3, "aiko", "telegram", "standard", (d[3], 0), False),
        (4, "aiko", "fanvue", "vip", (d[6], 12), False),
        (5, "mei", "fanvue", "standard", (d[0], 23), False),
        (6, "mei", "telegram", "standard", (d[2], 9), False),
        (7, "mei", "fanvue", "standard", None, False),  # no subscribed_at: created_at counts
        (8, "mei", "fanvue", "vip", (d[8], 18), False),
        (9, "lena", "fanvue", "standard", (d[1], 22), False),
        (10, "lena", "telegram", "standard", (d[2], 8), True),
        (11, "lena", "fanvue", "vip", (d[7], 14), False),
        (12, "lena", "fanvue", "standard", (d[8], 23), False),
    ]
    for sid, cid, platform, tier, when, forgotten in subs:
        created = at(cid, d[4], 12) if when is None else at(cid, when[0], when[1], 30)
        w.subscribers.append({
            "id": sid, "character_id": cid, "platform": platform,
            "external_id": f"forgotten-{sid}" if forgotten else f"ext-{sid}",
            "handle": None if forgotten else f"fan{sid}", "tier": tier,
            "subscribed_at": None if when is None else created, "created_at": created,
            "forgotten_at": at(cid, d[9], 8) if forgotten else None})

    w.dm_sequences = [
        {"id": 1, "key": "default/standard/welcome-series@1", "character_id": None,
         "tier": "standard", "definition": {"steps": 3}},
        {"id": 2, "key": "default/vip/vip-welcome@1", "character_id": None, "tier": "vip",
         "definition": {"steps": 3}},
        {"id": 3, "key": "aiko/vip/aiko-vip@2", "character_id": "aiko", "tier": "vip",
         "definition": {"steps": 3}},
    ]

    def sequence_of(s: Row) -> int:
        if s["tier"] == "standard":
            return 1
        return 3 if s["character_id"] == "aiko" else 2

    # Per subscriber: (step, state, hours after subscribing); sent ones get sent_at = due_at.
    plans: dict[int, list[tuple[int, str, float]]] = {
        1: [(0, "sent", 1), (1, "sent", 48), (2, "sent", 96)],
        2: [(0, "sent", 1), (1, "skipped", 48), (2, "sent", 74)],
        3: [(0, "sent", 2), (1, "held", 30)],
        4: [(0, "sent", 1), (1, "planned", 48)],
        5: [(0, "sent", 1), (1, "sent", 60), (2, "skipped", 120)],
        6: [(0, "sent", 1), (1, "sent", 48)],
        7: [(0, "sent", 1), (1, "held", 48)],
        8: [(0, "held", 1)],
        9: [(0, "sent", 1), (1, "sent", 38)],
        10: [(0, "sent", 1), (1, "sent", 48)],
        11: [(0, "sent", 1), (1, "planned", 48)],
        12: [(0, "planned", 1)],
    }
    mid = 0
    for sid, steps in plans.items():
        s = w.subscriber(sid)
        start = s["subscribed_at"] or s["created_at"]
        for step, state, hours in steps:
            mid += 1
            due = start + dt.timedelta(hours=hours)
            w.dm_messages.append({
                "id": mid, "subscriber_id": sid, "sequence_id": sequence_of(s), "step": step,
                "state": state, "due_at": due, "text": "hello there",
                "sent_at": due if state == "sent" else None})

    def sent_at(sid: int, step: int) -> dt.datetime:
        return next(m["sent_at"] for m in w.dm_messages
                    if m["subscriber_id"] == sid and m["step"] == step)

    hour, day7 = dt.timedelta(hours=1), dt.timedelta(days=7)
    # Fan messages: (subscriber, time, rejected)
    replies = [
        (1, sent_at(1, 0) + dt.timedelta(days=1), False),  # inside step 0's 7 days
        (2, sent_at(2, 0) + dt.timedelta(days=8), False),  # outside step 0, inside step 2
        (5, sent_at(5, 1) + 3 * hour, False),
        (6, sent_at(6, 1) + dt.timedelta(days=6), False),
        (9, sent_at(9, 0) + day7, False),                  # exactly 7 days: counts
        (9, sent_at(9, 0) + 2 * hour, True),               # rejected: never counts
        (10, sent_at(10, 0) + 5 * hour, False),            # forgotten subscriber: still counts
        (11, sent_at(11, 0) - hour, False),                # before the DM: not a reply
    ]
    for sid, when, rejected in replies:
        s = w.subscriber(sid)
        w.inbound_events.append(inbound_row(
            w.next_id("inbound_events"), "message.received", subscriber_id=sid,
            character_id=s["character_id"], occurred_at=when, received_at=when + hour,
            error="could not apply" if rejected else None, platform=s["platform"]))
    # Payments of subscribers: (subscriber, kind, cents, currency, time)
    payments = [
        (1, "tip", 700, "USD", sent_at(1, 1) + 5 * hour),       # steps 0 and 1 convert
        (2, "purchase", 1500, "EUR", sent_at(2, 0) + dt.timedelta(days=2)),  # other currency
        (2, "refund", 500, "EUR", sent_at(2, 0) + dt.timedelta(days=2, hours=20)),
        (5, "renewal", 899, "EUR", sent_at(5, 0) + day7 + 11 * hour),  # outside step 0
        (6, "tip", 300, "USD", sent_at(6, 1)),                   # at sent_at: only step 0
        (9, "refund", 200, "USD", sent_at(9, 0) + 3 * hour),     # a refund alone: no conversion
        (11, "tip", 1000, "USD", sent_at(11, 0) + 20 * hour),
        (11, "tip", 250, "EUR", sent_at(11, 0) + 22 * hour),
    ]
    for sid, kind, cents, currency, when in payments:
        s = w.subscriber(sid)
        w.revenue_events.append(revenue_row(w.next_id("revenue_events"), s["character_id"],
                                            kind, cents, currency, when, subscriber_id=sid,
                                            platform=s["platform"]))
    # Cancellations: (subscriber, local day, hour, occurred_at known, processed, error)
    cancels = [
        (1, d[4], 0, True, True, None),         # Tokyo after midnight: UTC day before
        (6, d[7], 15, True, True, None),
        (10, d[8], 23, False, True, None),      # no occurred_at: received_at's local day
        (4, d[6], 18, True, False, None),       # not processed yet: not churn
        (12, d[9], 12, True, True, "subscriber not found"),  # rejected: not churn
    ]
    for sid, day, hr, known, processed, error in cancels:
        s = w.subscriber(sid)
        when = at(s["character_id"], day, hr, 30)
        w.inbound_events.append(inbound_row(
            w.next_id("inbound_events"), "subscriber.cancelled", subscriber_id=sid,
            # One event names only its subscriber: the character comes from there.
            character_id=None if sid == 6 else s["character_id"],
            occurred_at=when if known else None, received_at=when, processed=processed,
            error=error, platform=s["platform"]))
    # Event types no mart reads.
    for event_type, sid in (("subscriber.new", 2), ("revenue.tip", 3)):
        s = w.subscriber(sid)
        when = at(s["character_id"], d[7], 10)
        w.inbound_events.append(inbound_row(
            w.next_id("inbound_events"), event_type, subscriber_id=sid,
            character_id=s["character_id"], occurred_at=when, received_at=when,
            platform=s["platform"]))


def check_world(w: World) -> None:
    """The seed is what the docstring says: nothing happens on EMPTY_DAY, anywhere."""
    days: list[tuple[str, dt.date]] = [(r["character_id"], r["date"]) for r in w.reels]
    days += [(r["character_id"], r["ledger_date"]) for r in w.credit_ledger
             if r["character_id"]]
    days += [(r["character_id"], local_day(r["character_id"], r["occurred_at"]))
             for r in w.revenue_events]
    for s in w.subscribers:
        days.append((s["character_id"], local_day(s["character_id"], s["created_at"])))
    for e in w.inbound_events:
        cid = w.subscriber(e["subscriber_id"])["character_id"]
        days.append((cid, local_day(cid, e["occurred_at"] or e["received_at"])))
    for m in w.dm_messages:
        cid = w.subscriber(m["subscriber_id"])["character_id"]
        days += [(cid, local_day(cid, t)) for t in (m["due_at"], m["sent_at"]) if t]
    on_empty = [x for x in days if x[1] == EMPTY_DAY]
    assert not on_empty, f"seed rows on the empty day: {on_empty}"
    assert not [r for r in w.credit_ledger if r["ledger_date"] == EMPTY_DAY]
