"""The credit ledger's daily side (docs/credit-ledger.md): the A2E balance snapshot of a UTC
day, its reconciliation with the previous snapshot (a rise nothing explains is recorded as a
top-up), and the day's figures (`ledger_summary`) the asset and the daily report show.

Row conventions (provider `a2e` unless said):
- `balance_snapshot`: external_ref `balance:YYYY-MM-DD`, one per UTC day, `credits` = the
  remaining coins, `occurred_at` = when they were read, `in_flight_credits` = credits A2E had
  already taken for tasks not costed yet. A rerun of the day refreshes the row.
- `top_up`: external_ref `top_up:YYYY-MM-DD`, one per day, `occurred_at` = the snapshot that
  revealed it; rewritten (or removed) when the day is reconciled again.
- `task_cost` (written by rendering) is spend; RunPod's rows hold seconds of worker time.
- `adjustment`: a manual correction; never spend, but it explains a balance movement (see
  `reconcile.adjustment_direction`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import Settings, get_settings
from waifugen_assets.money import reconcile
from waifugen_assets.money.budget import WARN_AT, BudgetView, month_start
from waifugen_assets.money.credits import projected_by_character, spent_by_character
from waifugen_assets.money.reconcile import Movements, Reading, Reconciliation

PROVIDER = "a2e"
RUNPOD = "runpod"
READ_ATTEMPTS = 3  # balance reads while tasks keep starting or finishing around them
_UNIQUE = "uq_credit_ledger_provider_kind_external_ref"

lg, r = schema.credit_ledger, schema.reels


def snapshot_ref(day: dt.date) -> str:
    return f"balance:{day.isoformat()}"


def top_up_ref(day: dt.date) -> str:
    return f"top_up:{day.isoformat()}"


def why_not_readable(day: dt.date, now: dt.datetime) -> str | None:
    """None when `day`'s balance can be read now (it is today or yesterday in UTC), else why
    not: A2E tells only the balance of the moment."""
    today = now.astimezone(dt.UTC).date()
    if day > today:
        return f"{day.isoformat()} has not begun in UTC: there is no balance of it to read yet"
    if day < today - dt.timedelta(days=1):
        return (f"the A2E balance of a past day cannot be read any more (only on the day or "
                f"the day after, UTC); no snapshot of {day.isoformat()} was taken then")
    return None


# --- reading the balance ----------------------------------------------------------------------

class BalanceSource(Protocol):
    def remaining_coins(self) -> int: ...


@dataclass(frozen=True)
class InFlight:
    credits: int
    reels: frozenset[int]


def in_flight(conn: sa.Connection) -> InFlight:
    """A2E tasks submitted and not costed yet: their coins are already off the balance."""
    costed = sa.exists().where(lg.c.provider == PROVIDER, lg.c.kind == "task_cost",
                               lg.c.external_ref == r.c.generation_task_id)
    rows = conn.execute(sa.select(r.c.id, r.c.projected_credits).where(
        r.c.generation_provider == PROVIDER, r.c.status == "generating",
        r.c.generation_task_id.is_not(None), ~costed)).all()
    return InFlight(sum(int(c) for _, c in rows), frozenset(int(i) for i, _ in rows))


def read_balance(source: BalanceSource, engine: sa.Engine,
                 now: Callable[[], dt.datetime] = clock.now) -> Reading:
    """The balance and the in-flight credits that go with it: read again (up to
    READ_ATTEMPTS times) while the set of in-flight tasks changes around the read, since a
    task starting or finishing then would count on one side and not the other."""
    with engine.connect() as conn:
        before = in_flight(conn)
    for attempt in range(1, READ_ATTEMPTS + 1):
        coins = source.remaining_coins()
        at = now()
        with engine.connect() as conn:
            after = in_flight(conn)
        if after.reels == before.reels or attempt == READ_ATTEMPTS:
            return Reading(coins, after.credits, at)
        before = after
    raise AssertionError("unreachable")


# --- snapshots --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    id: int
    day: dt.date
    reading: Reading


def _snapshots() -> sa.Select:
    return sa.select(lg.c.id, lg.c.ledger_date, lg.c.credits, lg.c.in_flight_credits,
                     lg.c.occurred_at).where(lg.c.provider == PROVIDER,
                                             lg.c.kind == "balance_snapshot")


def _snapshot(row: sa.Row | None) -> Snapshot | None:
    if row is None:
        return None
    return Snapshot(int(row.id), row.ledger_date,
                    Reading(int(row.credits), int(row.in_flight_credits or 0), row.occurred_at))


def record_snapshot(conn: sa.Connection, day: dt.date, reading: Reading) -> Snapshot:
    """Write the day's snapshot, or refresh it (a rerun: its occurred_at moves)."""
    values = {"credits": reading.balance, "in_flight_credits": reading.in_flight,
              "occurred_at": reading.at, "ledger_date": day}
    row_id = conn.execute(
        insert(lg).values(provider=PROVIDER, kind="balance_snapshot",
                          external_ref=snapshot_ref(day), **values)
        .on_conflict_do_update(constraint=_UNIQUE, set_=values).returning(lg.c.id)).scalar_one()
    return Snapshot(int(row_id), day, reading)


def day_snapshot(conn: sa.Connection, day: dt.date) -> Snapshot | None:
    return _snapshot(conn.execute(_snapshots().where(lg.c.external_ref == snapshot_ref(day)))
                     .first())


def previous_snapshot(conn: sa.Connection, snap: Snapshot) -> Snapshot | None:
    """The newest snapshot read before this one (by time read, not by day)."""
    return _snapshot(conn.execute(
        _snapshots().where(lg.c.occurred_at < snap.reading.at, lg.c.id != snap.id)
        .order_by(lg.c.occurred_at.desc(), lg.c.id.desc()).limit(1)).first())


# --- reconciliation ---------------------------------------------------------------------------

def movements(conn: sa.Connection, since: dt.datetime, until: dt.datetime,
              without_ref: str | None = None) -> Movements:
    """Task costs, top-ups and adjustments recorded in (since, until]."""
    rows = conn.execute(sa.select(lg.c.kind, lg.c.credits, lg.c.note, lg.c.external_ref).where(
        lg.c.provider == PROVIDER, lg.c.kind.in_(("task_cost", "top_up", "adjustment")),
        lg.c.occurred_at > since, lg.c.occurred_at <= until)).all()
    totals = {"spend": 0, "top_ups": 0, "adjustments_in": 0, "adjustments_out": 0}
    for kind, credits, note, ref in rows:
        if kind == "task_cost":
            totals["spend"] += int(credits)
        elif kind == "top_up" and ref != without_ref:
            totals["top_ups"] += int(credits)
        elif kind == "adjustment":
            way = reconcile.adjustment_direction(note)
            totals["adjustments_in" if way > 0 else "adjustments_out"] += int(credits)
    return Movements(**totals)


@dataclass(frozen=True)
class DayReconciliation:
    day: dt.date
    snapshot: Snapshot | None
    previous: Snapshot | None
    result: Reconciliation | None  # None: no snapshot of the day, or none before it
    top_up: int  # credits recorded as the day's top-up (0: none)


def reconcile_day(conn: sa.Connection, day: dt.date, tolerance: int, *,
                  record: bool) -> DayReconciliation:
    """Reconcile the day's snapshot with the previous one. With `record`, a rise beyond the
    tolerance that nothing else explains becomes (or updates) the day's top-up row, and a
    top-up row an earlier run wrote is removed when nothing is left for it to explain."""
    snap = day_snapshot(conn, day)
    prev = previous_snapshot(conn, snap) if snap is not None else None
    if snap is None or prev is None:
        return DayReconciliation(day, snap, prev, None, _top_up_of(conn, day))
    ref = top_up_ref(day)
    if record:
        others = movements(conn, prev.reading.at, snap.reading.at, without_ref=ref)
        rise = reconcile.detected_top_up(
            Reconciliation(prev.reading, snap.reading, others).unexplained, tolerance)
        _write_top_up(conn, day, rise, prev.reading.at, snap.reading.at)
    result = Reconciliation(prev.reading, snap.reading,
                            movements(conn, prev.reading.at, snap.reading.at))
    return DayReconciliation(day, snap, prev, result, _top_up_of(conn, day))


def _write_top_up(conn: sa.Connection, day: dt.date, credits: int, since: dt.datetime,
                  until: dt.datetime) -> None:
    where = (lg.c.provider == PROVIDER, lg.c.kind == "top_up", lg.c.external_ref == top_up_ref(day))
    if credits <= 0:
        conn.execute(sa.delete(lg).where(*where))
        return
    values = {"credits": credits, "occurred_at": until, "ledger_date": day,
              "note": (f"detected: the A2E balance rose {credits:,} credits more than task "
                       f"costs explain between {since.astimezone(dt.UTC):%Y-%m-%d %H:%M} "
                       f"and {until.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC")}
    conn.execute(insert(lg).values(provider=PROVIDER, kind="top_up",
                                   external_ref=top_up_ref(day), **values)
                 .on_conflict_do_update(constraint=_UNIQUE, set_=values))


def _top_up_of(conn: sa.Connection, day: dt.date) -> int:
    return _sum(conn, lg.c.provider == PROVIDER, lg.c.kind == "top_up", lg.c.ledger_date == day)


# --- the day's figures ------------------------------------------------------------------------

def _sum(conn: sa.Connection, *where: sa.ColumnElement[bool]) -> int:
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(lg.c.credits), 0))
                           .where(*where)) or 0)


def per_character(conn: sa.Connection, day: dt.date) -> list[dict[str, Any]]:
    """A2E reels costed on the ledger day, per character: reels, credits, their projection."""
    per_reel = (sa.select(lg.c.character_id, lg.c.reel_id,
                          sa.func.sum(lg.c.credits).label("credits"))
                .where(lg.c.provider == PROVIDER, lg.c.kind == "task_cost",
                       lg.c.ledger_date == day)
                .group_by(lg.c.character_id, lg.c.reel_id).subquery())
    rows = conn.execute(
        sa.select(per_reel.c.character_id, sa.func.count(per_reel.c.reel_id),
                  sa.func.sum(per_reel.c.credits),
                  sa.func.coalesce(sa.func.sum(r.c.projected_credits), 0))
        .select_from(per_reel.outerjoin(r, r.c.id == per_reel.c.reel_id))
        .group_by(per_reel.c.character_id)
        .order_by(sa.func.coalesce(per_reel.c.character_id, ""))).all()
    return [{"character_id": cid, "reels": int(n), "credits": int(credits),
             "projected_credits": int(projected),
             "actual_vs_projected_pct": reconcile.percent(int(credits), int(projected))}
            for cid, n, credits, projected in rows]


def month_limit(conn: sa.Connection, day: dt.date, default_limit: int) -> int:
    """The A2E limit of the month (the budgets row `ensure_budget` creates, else the
    default it would create it with): read only."""
    b = schema.budgets
    found = conn.scalar(sa.select(b.c.credits_limit).where(
        b.c.provider == PROVIDER, b.c.period_start == month_start(day)))
    return int(found) if found is not None else default_limit


def budget_view(conn: sa.Connection, day: dt.date, default_limit: int) -> BudgetView:
    """The whole roster's month, as the budget check sees it (spent + planned)."""
    return BudgetView(month_limit(conn, day, default_limit),
                      sum(spent_by_character(conn, day, PROVIDER).values()),
                      sum(projected_by_character(conn, day).values()))


def ledger_summary(conn: sa.Connection, day: dt.date,
                   settings: Settings | None = None) -> dict[str, Any]:
    """The ledger's day in plain values (read only; the keys are listed in
    docs/credit-ledger.md). What the `credit_ledger` asset shows and the daily report sends."""
    settings = settings or get_settings()
    money = settings.money
    rec = reconcile_day(conn, day, money.reconcile_tolerance_credits, record=False)
    a2e_cost = (lg.c.provider == PROVIDER, lg.c.kind == "task_cost")
    spent = _sum(conn, *a2e_cost, lg.c.ledger_date == day)
    week = _sum(conn, *a2e_cost, lg.c.ledger_date <= day,
                lg.c.ledger_date > day - dt.timedelta(days=reconcile.FORECAST_DAYS))
    runpod = _sum(conn, lg.c.provider == RUNPOD, lg.c.kind == "task_cost",
                  lg.c.ledger_date == day)
    characters = per_character(conn, day)
    projected = sum(c["projected_credits"] for c in characters)
    balance = rec.snapshot.reading.balance if rec.snapshot else None
    fc = reconcile.forecast(day, balance, week)
    budget = budget_view(conn, day, settings.a2e_monthly_credits)
    used = round(budget.percent, 1) if budget.limit > 0 else None
    res = rec.result
    return {
        "day": day,
        "balance": balance,
        "balance_read_at": rec.snapshot.reading.at if rec.snapshot else None,
        "in_flight_credits": rec.snapshot.reading.in_flight if rec.snapshot else None,
        "reconciliation": ("no_snapshot" if rec.snapshot is None
                           else "first" if res is None else "reconciled"),
        "window_start": res.previous.at if res else None,
        "window_end": res.current.at if res else None,
        "balance_change": res.actual_change if res else None,
        "expected_change": res.expected_change if res else None,
        "unexplained_credits": res.unexplained if res else None,
        "within_tolerance": (reconcile.within(res.unexplained, money.reconcile_tolerance_credits)
                             if res else None),
        "tolerance_credits": money.reconcile_tolerance_credits,
        "top_up_credits": rec.top_up,
        "credits_spent": spent,
        "credits_cost_cents": reconcile.cents(spent, money.credit_price_cents),
        "reels_costed": sum(c["reels"] for c in characters),
        "projected_credits": projected,
        "actual_vs_projected_pct": reconcile.percent(spent, projected),
        "characters": characters,
        "spend_7d": week,
        "avg_daily_spend_7d": fc.average_daily_spend,
        "forecast_date": fc.runs_out_on,
        "days_left": fc.days_left,
        "budget_month": month_start(day),
        "budget_limit": budget.limit,
        "budget_committed": budget.committed,
        "budget_used_pct": used,
        # No limit at all while credits are committed is past any threshold.
        "budget_warning": (used >= WARN_AT) if used is not None else budget.committed > 0,
        "runpod_seconds": runpod,
        "runpod_cost_cents": reconcile.cents(runpod, money.runpod_cents_per_second),
        "currency": money.currency,
        "ledger_rows": int(conn.scalar(sa.select(sa.func.count()).select_from(lg)
                                       .where(lg.c.ledger_date == day)) or 0),
    }
