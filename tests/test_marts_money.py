"""The money marts (daily_revenue_summary, cost_per_reel, subscriber_funnel) built by the real
dbt on a seeded database, each compared row for row with what tests/analytics_money_world.py's
lists say it must hold, computed here in Python (no SQL).

One database and one `dbt build` (every model and data test) per module, then a full refresh
of the daily marts on the same data. The incremental test changes two days of the sources and
rebuilds one; the accounting-currency test builds into a schema of its own.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from analytics_money_world import (
    DAYS,
    EMPTY_DAY,
    GENERATED,
    World,
    at,
    build_world,
    inbound_row,
    ledger_row,
    local_day,
    revenue_row,
)
from conftest import create_database, drop_database
from dbt_run import dbt_build, failure_text

from waifugen_assets.core import schema
from waifugen_assets.core.config import Money

# One worker runs the whole module (the module database is built once).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("marts_money")]

MARTS = {
    "daily_revenue_summary": ("day", "character_id", "currency"),
    "cost_per_reel": ("day", "character_id"),
    "subscriber_funnel": ("character_id", "sequence_key", "step"),
}
Rows = dict[tuple, dict[str, Any]]
WEEK = dt.timedelta(days=7)


# --- independent computation -------------------------------------------------------------

def rnd(value: Fraction | int, places: int) -> Decimal:
    """PostgreSQL's numeric round(): half away from zero (every value here is >= 0)."""
    value = Fraction(value)
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def cents(amount: int, price: Decimal) -> int:
    return int(rnd(Fraction(amount) * Fraction(price), 0))


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def reel_character(world: World) -> dict[int, str]:
    return {r["id"]: r["character_id"] for r in world.reels}


def expected_daily_revenue_summary(world: World, money: Money) -> Rows:
    acc = money.currency
    revenue: dict[tuple, Counter] = defaultdict(Counter)
    for e in world.revenue_events:
        cid = e["character_id"]
        revenue[(local_day(cid, e["occurred_at"]), cid, e["currency"])][e["kind"]] += \
            e["amount_cents"]
    facts: dict[tuple, Counter] = defaultdict(Counter)
    for r in world.reels:
        if r["status"] in GENERATED:
            facts[(r["date"], r["character_id"])]["reels_generated"] += 1
    owner = reel_character(world)
    for row in world.credit_ledger:
        cid = row["character_id"] or owner.get(row["reel_id"])
        if row["kind"] == "task_cost" and cid:
            column = "credits_spent" if row["provider"] == "a2e" else "runpod_seconds"
            facts[(row["ledger_date"], cid)][column] += row["credits"]
    for s in world.subscribers:
        cid = s["character_id"]
        facts[(local_day(cid, s["subscribed_at"] or s["created_at"]), cid)]["new"] += 1
    for e in world.inbound_events:
        applied = e["processed_at"] is not None and e["error"] is None
        if e["event_type"] == "subscriber.cancelled" and applied:
            cid = e["character_id"] or world.subscriber(e["subscriber_id"])["character_id"]
            facts[(local_day(cid, e["occurred_at"] or e["received_at"]), cid)]["churn"] += 1

    def row(kinds: Counter, f: Counter, is_acc: bool) -> dict[str, Any]:
        gross = sum(kinds[k] for k in ("subscription", "renewal", "tip", "purchase"))
        credit_cost = cents(f["credits_spent"], money.credit_price_cents)
        runpod_cost = cents(f["runpod_seconds"], money.runpod_cents_per_second)
        net = gross - kinds["refund"]
        return {
            "is_accounting_currency": is_acc, "subscription_cents": kinds["subscription"],
            "renewal_cents": kinds["renewal"], "tip_cents": kinds["tip"],
            "purchase_cents": kinds["purchase"], "gross_revenue_cents": gross,
            "refund_cents": kinds["refund"], "net_revenue_cents": net,
            "new_subscribers": f["new"], "churned_subscribers": f["churn"],
            "reels_generated": f["reels_generated"], "credits_spent": f["credits_spent"],
            "credit_cost_cents": credit_cost, "runpod_seconds": f["runpod_seconds"],
            "runpod_cost_cents": runpod_cost, "total_cost_cents": credit_cost + runpod_cost,
            "margin_cents": net - credit_cost - runpod_cost,
        }

    data_days = [k[0] for k in revenue] + [k[0] for k in facts]
    out: Rows = {}
    for day in days_between(min(data_days), max(data_days)):
        for c in world.characters:
            cid = c["id"]
            out[(day, cid, acc)] = row(revenue.get((day, cid, acc), Counter()),
                                       facts.get((day, cid), Counter()), True)
    for (day, cid, currency), kinds in revenue.items():
        if currency != acc:
            out[(day, cid, currency)] = row(kinds, Counter(), False)
    return out


def expected_cost_per_reel(world: World, money: Money) -> Rows:
    spend: dict[int, Counter] = defaultdict(Counter)
    for row in world.credit_ledger:
        if row["kind"] == "task_cost" and row["reel_id"] is not None:
            spend[row["reel_id"]][row["provider"]] += row["credits"]
    reels: dict[tuple, list] = defaultdict(list)
    for r in world.reels:
        reels[(r["date"], r["character_id"])].append(r)
    target = money.target_credits_per_reel
    out: Rows = {}
    all_days = [r["date"] for r in world.reels]
    for day in days_between(min(all_days), max(all_days)):
        for c in world.characters:
            mine = reels.get((day, c["id"]), [])
            generated = [r for r in mine if r["status"] in GENERATED]
            n = len(generated)
            credits = sum(spend[r["id"]]["a2e"] for r in mine)
            projected = sum(r["projected_credits"] for r in generated)
            out[(day, c["id"])] = {
                "reels_planned": len(mine), "reels_generated": n,
                "reels_failed": sum(r["status"] == "failed" for r in mine),
                "credits_spent": credits, "projected_credits": projected,
                "credits_per_reel": rnd(Fraction(credits, n), 2) if n else None,
                "projected_per_reel": rnd(Fraction(projected, n), 2) if n else None,
                "target_credits_per_reel": target,
                "vs_target_pct": rnd(Fraction(credits * 100, n * target), 1) if n else None,
                "cost_cents_per_reel": (rnd(Fraction(credits, n) * Fraction(
                    money.credit_price_cents), 2) if n else None),
                "runpod_seconds": sum(spend[r["id"]]["runpod"] for r in mine),
            }
    return out


def expected_subscriber_funnel(world: World, money: Money) -> Rows:
    sequences = {s["id"]: s for s in world.dm_sequences}
    replies = defaultdict(list)
    for e in world.inbound_events:
        if e["event_type"] == "message.received" and e["error"] is None:
            replies[e["subscriber_id"]].append(e["occurred_at"] or e["received_at"])
    payments = defaultdict(list)
    for e in world.revenue_events:
        if e["subscriber_id"] is not None:
            payments[e["subscriber_id"]].append(e)
    out: Rows = {}
    for m in world.dm_messages:
        sid, seq = m["subscriber_id"], sequences[m["sequence_id"]]
        key = (world.subscriber(sid)["character_id"], seq["key"], m["step"])
        row = out.setdefault(key, {"tier": seq["tier"], "sent": 0, "replied": 0,
                                   "converted": 0, "revenue_7d_cents": 0,
                                   "revenue_7d_other_currencies_cents": 0})
        if m["state"] != "sent":
            continue
        sent = m["sent_at"]
        row["sent"] += 1
        row["replied"] += any(sent < t <= sent + WEEK for t in replies[sid])
        paid = [e for e in payments[sid] if sent < e["occurred_at"] <= sent + WEEK]
        row["converted"] += any(e["kind"] != "refund" for e in paid)
        for e in paid:
            signed = -e["amount_cents"] if e["kind"] == "refund" else e["amount_cents"]
            column = ("revenue_7d_cents" if e["currency"] == money.currency
                      else "revenue_7d_other_currencies_cents")
            row[column] += signed
    for row in out.values():
        sent = row["sent"]
        row["reply_rate"] = rnd(Fraction(row["replied"], sent), 4) if sent else None
        row["conversion_rate"] = rnd(Fraction(row["converted"], sent), 4) if sent else None
    return out


EXPECTED = {
    "daily_revenue_summary": expected_daily_revenue_summary,
    "cost_per_reel": expected_cost_per_reel,
    "subscriber_funnel": expected_subscriber_funnel,
}


# --- the seed changes of the incremental test --------------------------------------------

def change_days(world: World, engine: sa.Engine) -> None:
    """Change local day DAYS[3] (a currency disappears, a new one appears, events whose UTC day
    is the day before and after, a failed reel rendered after all, a churn, a new subscriber)
    and DAYS[6] (revenue and a rendered reel that a DAYS[3] run must not pick up), in the lists
    and the database."""
    d3, d6 = DAYS[3], DAYS[6]
    gone = [e["id"] for e in world.revenue_events if e["character_id"] == "mei"
            and e["currency"] == "EUR" and local_day("mei", e["occurred_at"]) == d3]
    rid = world.next_id("revenue_events")
    new_revenue = [
        revenue_row(rid, "aiko", "tip", 777, "GBP", at("aiko", d3, 0, 30)),
        revenue_row(rid + 1, "lena", "purchase", 4321, "USD", at("lena", d3, 23, 30)),
        revenue_row(rid + 2, "aiko", "tip", 5000, "USD", at("aiko", d6, 12)),
    ]
    reel = next(r for r in world.reels if r["date"] == d3 and r["status"] == "failed")
    later = next(r for r in world.reels if r["date"] == d6 and r["status"] == "planned")
    cost = ledger_row(world.next_id("credit_ledger"), "a2e", "task_cost", 41, d3,
                      character_id=reel["character_id"], reel_id=reel["id"],
                      external_ref=f"a2e-retry-{reel['id']}")
    joined = at("lena", d3, 12)
    subscriber = {**world.subscriber(9), "id": world.next_id("subscribers"),
                  "external_id": "ext-new", "handle": "newfan", "subscribed_at": joined,
                  "created_at": joined}
    cancel = inbound_row(world.next_id("inbound_events"), "subscriber.cancelled",
                         subscriber_id=3, character_id="aiko", occurred_at=at("aiko", d3, 20),
                         received_at=at("aiko", d3, 20, 5))
    assert gone, "the seed has mei's EUR revenue on the changed day"
    with engine.begin() as conn:
        conn.execute(sa.delete(schema.revenue_events)
                     .where(schema.revenue_events.c.id.in_(gone)))
        conn.execute(sa.insert(schema.revenue_events), new_revenue)
        for r in (reel, later):
            conn.execute(sa.update(schema.reels).where(schema.reels.c.id == r["id"])
                         .values(status="published"))
        conn.execute(sa.insert(schema.credit_ledger), [cost])
        conn.execute(sa.insert(schema.subscribers), [subscriber])
        conn.execute(sa.insert(schema.inbound_events), [cancel])
    world.revenue_events = [e for e in world.revenue_events if e["id"] not in gone]
    world.revenue_events += new_revenue
    reel["status"] = later["status"] = "published"
    world.credit_ledger.append(cost)
    world.subscribers.append(subscriber)
    world.inbound_events.append(cancel)


# --- the database, built once ------------------------------------------------------------

@dataclass
class Built:
    url: str
    engine: sa.Engine
    world: World
    work_dir: Path
    first: dict[str, Rows]       # the marts after the first build
    refreshed: dict[str, Rows]   # the daily marts after --full-refresh on the same data


def read_mart(engine: sa.Engine, mart: str, schema_name: str = "analytics") -> Rows:
    keys = MARTS[mart]
    table = sa.Table(mart, sa.MetaData(), schema=schema_name, autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    out: Rows = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        assert key not in out, f"{mart}: duplicate key {key}"
        out[key] = {k: v for k, v in r.items() if k not in keys}
    return out


def assert_rows(mart: str, actual: Rows, expected: Rows) -> None:
    missing = sorted(set(expected) - set(actual), key=str)
    extra = sorted(set(actual) - set(expected), key=str)
    assert not missing and not extra, f"{mart}: missing rows {missing[:5]}, extra {extra[:5]}"
    wrong = [(k, {c: (actual[k][c], v) for c, v in expected[k].items() if actual[k][c] != v})
             for k in sorted(expected, key=str) if actual[k] != expected[k]]
    assert not wrong, f"{mart}: {len(wrong)} rows differ (actual, expected): {wrong[:3]}"


@pytest.fixture(scope="module")
def built(pg_server_url: str, template_db: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    name = f"wg_marts_money_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_server_url, name, template=template_db)
    engine = sa.create_engine(url)
    try:
        world = build_world()
        world.insert(engine)
        work_dir = tmp_path_factory.mktemp("dbt_money")
        proc = dbt_build(url, work_dir)  # every model and data test, the project's vars
        assert proc.returncode == 0, failure_text(proc)
        first = {mart: read_mart(engine, mart) for mart in MARTS}
        proc = dbt_build(url, work_dir, command="run", select="tag:daily", full_refresh=True)
        assert proc.returncode == 0, failure_text(proc)
        refreshed = {mart: read_mart(engine, mart) for mart in ("daily_revenue_summary",
                                                                "cost_per_reel")}
        yield Built(url, engine, world, work_dir, first, refreshed)
    finally:
        engine.dispose()
        drop_database(pg_server_url, name)


# --- tests -------------------------------------------------------------------------------

@pytest.mark.parametrize("mart", list(MARTS))
def test_mart_matches_the_seed(built: Built, mart: str) -> None:
    """The first build (project default vars = the default Money settings) holds exactly the
    rows computed in Python from the seed."""
    assert_rows(mart, built.first[mart], EXPECTED[mart](build_world(), Money()))


def test_the_seed_covers_what_the_marts_must_handle(built: Built) -> None:
    """The seed's edge cases reach the marts (guards against a seed that tests nothing)."""
    summary, cost = built.first["daily_revenue_summary"], built.first["cost_per_reel"]
    empty = {k: v for k, v in summary.items() if k[0] == EMPTY_DAY}
    assert len(empty) == 3 and all(
        v["gross_revenue_cents"] == v["total_cost_cents"] == v["reels_generated"] == 0
        for v in empty.values())
    assert all(v["reels_planned"] == 0 for k, v in cost.items() if k[0] == EMPTY_DAY)
    assert {k[2] for k in summary} == {"USD", "EUR"}
    assert any(v["net_revenue_cents"] < 0 for v in summary.values())  # refund > that day
    assert any(v["runpod_seconds"] * 5 % 100 == 50 for v in summary.values())  # half a cent
    assert sum(v["churned_subscribers"] for v in summary.values()) == 3
    funnel = built.first["subscriber_funnel"]
    assert any(v["sent"] == 0 for v in funnel.values())
    assert all(v["converted"] <= v["sent"] for v in funnel.values())
    assert any(v["revenue_7d_other_currencies_cents"] for v in funnel.values())


def test_full_refresh_gives_the_same_rows(built: Built) -> None:
    for mart, rows in built.refreshed.items():
        assert_rows(mart, rows, built.first[mart])


def test_one_day_window_rebuilds_exactly_that_day(built: Built) -> None:
    """After DAYS[3] and DAYS[6] change, a run over [DAYS[3], DAYS[4]) shows DAYS[3] as it
    is now and every other day as it was (DAYS[6] still without its new revenue)."""
    before = copy.deepcopy(built.world)
    change_days(built.world, built.engine)
    day = DAYS[3]
    proc = dbt_build(built.url, built.work_dir, command="run", select="tag:daily",
                     dbt_vars={"min_date": day.isoformat(),
                               "max_date": (day + dt.timedelta(days=1)).isoformat()})
    assert proc.returncode == 0, failure_text(proc)
    for mart in ("daily_revenue_summary", "cost_per_reel"):
        old = EXPECTED[mart](before, Money())
        new = EXPECTED[mart](built.world, Money())
        assert {k: v for k, v in old.items() if k[0] == day} != \
            {k: v for k, v in new.items() if k[0] == day}, "the change must show on the day"
        assert any(old.get(k) != v for k, v in new.items() if k[0] == DAYS[6]), \
            "the other changed day must differ too, or the test proves nothing"
        expected = {k: v for k, v in old.items() if k[0] != day}
        expected |= {k: v for k, v in new.items() if k[0] == day}
        assert_rows(mart, read_mart(built.engine, mart), expected)


def test_accounting_currency_comes_from_the_vars(built: Built) -> None:
    """EUR as accounting currency, other prices and target: costs and counts move to the EUR
    rows, USD rows carry revenue only (built into a schema of its own)."""
    money = Money(currency="EUR", credit_price_cents=Decimal("1.5"),
                  runpod_cents_per_second=Decimal("0.07"), target_credits_per_reel=35)
    proc = dbt_build(built.url, built.work_dir, command="run", schema="analytics_eur",
                     select="+daily_revenue_summary +cost_per_reel +subscriber_funnel",
                     dbt_vars=money.dbt_vars())
    assert proc.returncode == 0, failure_text(proc)
    for mart in MARTS:
        actual = read_mart(built.engine, mart, "analytics_eur")
        assert_rows(mart, actual, EXPECTED[mart](built.world, money))
    summary = read_mart(built.engine, "daily_revenue_summary", "analytics_eur")
    assert any(v["total_cost_cents"] for k, v in summary.items() if k[2] == "EUR")
    assert all(v["total_cost_cents"] == 0 and not v["is_accounting_currency"]
               for k, v in summary.items() if k[2] == "USD")
