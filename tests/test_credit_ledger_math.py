"""The ledger's arithmetic (reconcile.py, pure) and its database helpers that need no Dagster:
the reconciliation formula, top-up detection, adjustments, forecast, cents, which days can be
read, a balance read that races a finishing task, and the keys of `ledger_summary`."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from resources.a2e import A2EClient
from waifugen_assets.core import schema
from waifugen_assets.money import reconcile
from waifugen_assets.money.ledger import in_flight, ledger_summary, read_balance, why_not_readable
from waifugen_assets.money.reconcile import Movements, Reading, Reconciliation

T0 = dt.datetime(2026, 12, 4, 0, 10, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=1)


def rec(prev: tuple[int, int], now: tuple[int, int], **moved: int) -> Reconciliation:
    return Reconciliation(Reading(*prev, T0), Reading(*now, T1), Movements(**moved))


# --- the formula --------------------------------------------------------------------------------

def test_costs_recorded_in_the_window_explain_the_fall() -> None:
    r = rec((10_000, 0), (9_700, 0), spend=300)
    assert (r.actual_change, r.expected_change, r.unexplained) == (-300, -300, 0)


def test_tasks_in_flight_explain_credits_taken_before_their_cost_is_recorded() -> None:
    # Submitted in the window, still rendering: A2E took 270, the ledger has no cost yet.
    assert rec((10_000, 0), (9_730, 270)).unexplained == 0
    # In flight at the previous reading, costed in this window: nothing moves now.
    assert rec((9_730, 270), (9_730, 0), spend=270).unexplained == 0
    # ... costed a little above the projection: the difference shows, as a small rise.
    assert rec((9_730, 270), (9_730, 0), spend=273).unexplained == 3


def test_a_failed_task_refunded_in_the_window_is_explained() -> None:
    # In flight at the previous reading (taken), failed since: refunded, never costed.
    assert rec((9_730, 270), (10_000, 0)).unexplained == 0


def test_top_ups_and_adjustments_are_explained_movements() -> None:
    assert rec((1_000, 0), (5_700, 0), spend=300, top_ups=5_000).unexplained == 0
    assert rec((1_000, 0), (760, 0), adjustments_out=240).unexplained == 0
    assert rec((1_000, 0), (1_050, 0), adjustments_in=50).unexplained == 0


@pytest.mark.parametrize(("note", "way"), [
    ("+50 refunded by A2E support", 1), ("top-up: detected from a balance rise", 1),
    ("Top_up bought by card", 1), ("used by hand in the web app", -1), ("-40", -1), (None, -1)])
def test_an_adjustment_takes_credits_unless_its_note_says_they_came_in(note, way) -> None:
    assert reconcile.adjustment_direction(note) == way


@pytest.mark.parametrize(("unexplained", "top_up"), [(21, 21), (20, 0), (0, 0), (-500, 0),
                                                     (5_000, 5_000)])
def test_only_a_rise_beyond_the_tolerance_is_a_top_up(unexplained: int, top_up: int) -> None:
    assert reconcile.detected_top_up(unexplained, 20) == top_up
    assert reconcile.within(unexplained, 20) == (abs(unexplained) <= 20)


# --- forecast, money ----------------------------------------------------------------------------

DAY = dt.date(2026, 12, 4)


@pytest.mark.parametrize(("balance", "spend", "days_left"), [
    (1_000, 700, 10),  # 100 a day: gone on the 10th day
    (1_050, 700, 11),  # half a day's burn more: the 11th
    (0, 700, 0),  # nothing left: today
    (40_000, 17_200, 17),  # 40,000 * 7 / 17,200 = 16.3 -> the 17th
])
def test_the_balance_runs_out_at_the_seven_day_burn(balance: int, spend: int,
                                                    days_left: int) -> None:
    fc = reconcile.forecast(DAY, balance, spend)
    assert fc.days_left == days_left
    assert fc.runs_out_on == DAY + dt.timedelta(days=days_left)
    assert fc.average_daily_spend == round(spend / 7, 1)


def test_no_forecast_without_spend_or_balance() -> None:
    assert reconcile.forecast(DAY, 5_000, 0) == reconcile.Forecast(0.0, None, None)
    assert reconcile.forecast(DAY, None, 700).runs_out_on is None


@pytest.mark.parametrize(("seconds", "cents"), [(470, 24), (10, 1), (9, 0), (0, 0),
                                                (1_000, 50)])
def test_runpod_seconds_in_whole_cents_half_away_from_zero(seconds: int, cents: int) -> None:
    assert reconcile.cents(seconds, Decimal("0.05")) == cents


def test_percent_of_the_projection() -> None:
    assert reconcile.percent(183, 189) == 96.8
    assert reconcile.percent(10, 0) is None


# --- which days can be read ---------------------------------------------------------------------

@pytest.mark.parametrize(("day", "readable"), [
    (dt.date(2026, 12, 5), True), (dt.date(2026, 12, 4), True),
    (dt.date(2026, 12, 3), False), (dt.date(2026, 12, 6), False)])
def test_only_today_and_yesterday_in_utc_can_be_read(day: dt.date, readable: bool) -> None:
    assert (why_not_readable(day, dt.datetime(2026, 12, 5, 0, 10, tzinfo=dt.UTC)) is None) \
        == readable


def test_the_utc_day_counts_not_the_clock_zone() -> None:
    at = dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 23:00 UTC
    assert why_not_readable(dt.date(2026, 12, 3), at) is None  # yesterday in UTC
    assert "has not begun in UTC" in why_not_readable(dt.date(2026, 12, 5), at)


# --- the database side --------------------------------------------------------------------------

def _reel_in_flight(engine: sa.Engine, projected: int) -> int:
    r = schema.reels
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(id="ana", name="Ana", age=25,
                                                         timezone="UTC"))
        return conn.execute(sa.insert(r).values(
            character_id="ana", date=DAY, slot=0, scheduled_at=T0, status="generating",
            generation_provider="a2e", generation_task_id="task-1",
            projected_credits=projected).returning(r.c.id)).scalar_one()


class FinishesOnFirstRead:
    """The real A2E client, while the renderer costs a task during the first balance read
    (a race no sandbox timing can produce on demand)."""

    def __init__(self, client: A2EClient, engine: sa.Engine, reel_id: int) -> None:
        self.client, self.engine, self.reel_id, self.reads = client, engine, reel_id, 0

    def remaining_coins(self) -> int:
        self.reads += 1
        coins = self.client.remaining_coins()
        if self.reads == 1:
            with self.engine.begin() as conn:
                conn.execute(sa.update(schema.reels).where(schema.reels.c.id == self.reel_id)
                             .values(status="generated"))
                conn.execute(sa.insert(schema.credit_ledger).values(
                    provider="a2e", kind="task_cost", character_id="ana", reel_id=self.reel_id,
                    external_ref="task-1", credits=90, ledger_date=DAY, occurred_at=T0))
        return coins


def test_a_balance_read_is_repeated_while_a_task_finishes_around_it(engine: sa.Engine,
                                                                   sandbox) -> None:
    reel = _reel_in_flight(engine, 90)
    with engine.connect() as conn:
        assert in_flight(conn).credits == 90
    client = A2EClient(f"sk_sandbox_ledger_{uuid.uuid4().hex[:10]}",
                       base_url=f"{sandbox.url}/a2e")
    with client:
        racing = FinishesOnFirstRead(client, engine, reel)
        reading = read_balance(racing, engine, now=lambda: T1)
        steady = read_balance(client, engine, now=lambda: T1)
    assert racing.reads == 2  # the first read's in-flight set changed under it
    assert reading == steady == Reading(100_000, 0, T1)  # a new account's coins, none in flight


SUMMARY_KEYS = {
    "day", "balance", "balance_read_at", "in_flight_credits", "reconciliation",
    "window_start", "window_end", "balance_change", "expected_change", "unexplained_credits",
    "within_tolerance", "tolerance_credits", "top_up_credits", "credits_spent",
    "credits_cost_cents", "reels_costed", "projected_credits", "actual_vs_projected_pct",
    "characters", "spend_7d", "avg_daily_spend_7d", "forecast_date", "days_left",
    "budget_month", "budget_limit", "budget_committed", "budget_used_pct", "budget_warning",
    "runpod_seconds", "runpod_cost_cents", "currency", "ledger_rows"}


def test_ledger_summary_of_an_empty_day_has_every_documented_key(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        summary = ledger_summary(conn, DAY)
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.budgets)) == 0
    assert set(summary) == SUMMARY_KEYS
    assert summary["reconciliation"] == "no_snapshot" and summary["balance"] is None
    assert summary["credits_spent"] == summary["ledger_rows"] == 0
    assert summary["budget_used_pct"] == 0.0 and summary["budget_warning"] is False
    assert summary["forecast_date"] is None and summary["characters"] == []
