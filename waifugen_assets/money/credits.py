"""Credit budgets against the app database: limits, spend, commitments and alerts.

The pure rules live in `budget.py`; this module reads the ledger, budgets and reels, and
records alerts (the row is the intent, `sent_at` the outcome, so each threshold of each
period is announced once even across retries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.core import alerts, schema
from waifugen_assets.money.budget import (
    BudgetView,
    Level,
    character_limits,
    exhaustion_date,
    month_start,
    next_month,
    thresholds_reached,
)

PROVIDER = "a2e"
UNPAID = ("planned", "blocked")  # reels whose cost is still ahead of us


def ensure_budget(conn: sa.Connection, day: dt.date, default_limit: int,
                  provider: str = PROVIDER) -> int:
    """The provider's limit for the month of `day`, creating it from the default once."""
    b = schema.budgets
    period = month_start(day)
    conn.execute(insert(b).values(provider=provider, period_start=period,
                                  credits_limit=default_limit)
                 .on_conflict_do_nothing(index_elements=[b.c.provider, b.c.period_start]))
    return int(conn.scalar(sa.select(b.c.credits_limit).where(
        b.c.provider == provider, b.c.period_start == period)))


def _month(column: sa.ColumnElement, day: dt.date) -> sa.ColumnElement[bool]:
    return sa.and_(column >= month_start(day), column < next_month(day))


def spent_by_character(conn: sa.Connection, day: dt.date,
                       provider: str = PROVIDER) -> dict[str | None, int]:
    lg = schema.credit_ledger
    rows = conn.execute(
        sa.select(lg.c.character_id, sa.func.coalesce(sa.func.sum(lg.c.credits), 0))
        .where(lg.c.provider == provider, lg.c.kind == "task_cost", _month(lg.c.ledger_date, day))
        .group_by(lg.c.character_id))
    return {cid: int(total) for cid, total in rows}


def projected_by_character(conn: sa.Connection, day: dt.date) -> dict[str, int]:
    r = schema.reels
    rows = conn.execute(
        sa.select(r.c.character_id, sa.func.coalesce(sa.func.sum(r.c.projected_credits), 0))
        .where(r.c.status.in_(UNPAID), r.c.generation_task_id.is_(None), _month(r.c.date, day))
        .group_by(r.c.character_id))
    return {cid: int(total) for cid, total in rows}


def limits_by_character(conn: sa.Connection, total: int) -> dict[str, int]:
    ch = schema.characters
    shares = dict(conn.execute(sa.select(ch.c.id, ch.c.budget_share).where(ch.c.enabled)).all())
    return character_limits(total, {k: (None if v is None else float(v))
                                    for k, v in shares.items()})


@dataclass(frozen=True)
class BudgetReport:
    character: BudgetView
    roster: BudgetView
    exhaustion: dt.date | None


def budget_report(conn: sa.Connection, character_id: str, day: dt.date,
                  default_limit: int) -> BudgetReport:
    total = ensure_budget(conn, day, default_limit)
    spent, projected = spent_by_character(conn, day), projected_by_character(conn, day)
    limit = limits_by_character(conn, total).get(character_id, 0)
    mine = BudgetView(limit, spent.get(character_id, 0), projected.get(character_id, 0))
    roster = BudgetView(total, sum(spent.values()), sum(projected.values()))
    lg = schema.credit_ledger
    daily = dict(conn.execute(
        sa.select(lg.c.ledger_date, sa.func.sum(lg.c.credits))
        .where(lg.c.provider == PROVIDER, lg.c.kind == "task_cost",
               lg.c.character_id == character_id, _month(lg.c.ledger_date, day))
        .group_by(lg.c.ledger_date)).all())
    return BudgetReport(mine, roster, exhaustion_date(limit, daily, day, mine.projected))


def settle_blocked(conn: sa.Connection, character_id: str, view: BudgetView, day: dt.date,
                   *, whole_month: bool = False, block: bool = True) -> int:
    """The budget's rule for a character's unpaid reels of `day` (or of its month): over the
    limit, planned ones are blocked (when `block`); within it, blocked ones are planned again
    (the generation sensor renders them). Returns how many reels changed."""
    r = schema.reels
    unpaid = sa.and_(r.c.character_id == character_id, r.c.generation_task_id.is_(None),
                     _month(r.c.date, day) if whole_month else r.c.date == day)
    if view.level is Level.BLOCK:
        if not block:
            return 0
        return conn.execute(sa.update(r).where(unpaid, r.c.status == "planned").values(
            status="blocked", updated_at=sa.func.now(),
            failure_reason=f"budget: {view.committed} of {view.limit} credits committed"
        )).rowcount
    return conn.execute(sa.update(r).where(unpaid, r.c.status == "blocked").values(
        status="planned", failure_reason=None, updated_at=sa.func.now())).rowcount


def record_alerts(conn: sa.Connection, character_id: str | None, day: dt.date,
                  percent: float, provider: str = PROVIDER) -> list[tuple[int, int]]:
    """Record each threshold reached (once per provider x character x month x threshold) and
    raise its alert; returns (id, threshold) of the new ones."""
    a = schema.budget_alerts
    new = []
    for threshold in thresholds_reached(percent):
        row = conn.execute(
            insert(a).values(provider=provider, character_id=character_id,
                             period_start=month_start(day), threshold=threshold)
            .on_conflict_do_nothing(constraint="uq_budget_alerts_once")
            .returning(a.c.id)).first()
        if row is not None:
            new.append((row.id, threshold))
            who = character_id or "whole roster"
            alerts.record(conn, f"budget:{row.id}",
                          f"waifugen budget alert: {who} reached {threshold}% of its "
                          f"{provider.upper()} credits for {month_start(day):%Y-%m}.")
    return new


# --- the operators' view and changes of a month's budget (`waifugen budget`) -------------------

@dataclass(frozen=True)
class MonthBudget:
    period: dt.date  # first day of the month
    limit: int
    from_default: bool  # no row yet: the first planning run of the month records `limit`
    roster: BudgetView
    characters: dict[str, BudgetView]  # enabled characters, by their roster share
    blocked_reels: int  # reels the budget check held back, waiting for room
    blocked_days: int  # their character days (partitions to plan again)


def month_budget(conn: sa.Connection, day: dt.date, default_limit: int) -> MonthBudget:
    """The month of `day` as the budget check sees it; reads only."""
    b, r = schema.budgets, schema.reels
    found = conn.scalar(sa.select(b.c.credits_limit).where(
        b.c.provider == PROVIDER, b.c.period_start == month_start(day)))
    limit = int(found) if found is not None else default_limit
    spent, projected = spent_by_character(conn, day), projected_by_character(conn, day)
    characters = {cid: BudgetView(share, spent.get(cid, 0), projected.get(cid, 0))
                  for cid, share in sorted(limits_by_character(conn, limit).items())}
    reels, days = conn.execute(
        sa.select(sa.func.count(),
                  sa.func.count(sa.distinct(sa.tuple_(r.c.character_id, r.c.date))))
        .where(r.c.status == "blocked", _month(r.c.date, day))).one()
    return MonthBudget(month_start(day), limit, found is None,
                       BudgetView(limit, sum(spent.values()), sum(projected.values())),
                       characters, int(reels), int(days))


@dataclass(frozen=True)
class LimitChange:
    previous: int | None  # None: the month had no row
    rearmed: int  # budget alerts the new limit no longer reaches: announced again if reached
    unblocked: int  # blocked reels within their character's new limit, planned again


def set_month_limit(conn: sa.Connection, day: dt.date, credits: int) -> LimitChange:
    """Set the A2E limit of the month of `day` (the row created if missing), in the caller's
    transaction, and apply it as the budget check would: thresholds no longer reached are
    re-armed (`record_alerts` keeps one row per threshold and month), and blocked reels now
    within their character's limit are planned again. A lower limit blocks nothing here: the
    renderer checks the budget before each paid call."""
    if credits < 0:
        raise ValueError(f"a budget cannot be negative ({credits})")
    b = schema.budgets
    period = month_start(day)
    previous = conn.scalar(sa.select(b.c.credits_limit).where(
        b.c.provider == PROVIDER, b.c.period_start == period).with_for_update())
    conn.execute(insert(b).values(provider=PROVIDER, period_start=period, credits_limit=credits)
                 .on_conflict_do_update(index_elements=[b.c.provider, b.c.period_start],
                                        set_={"credits_limit": credits,
                                              "updated_at": sa.func.now()}))
    now = month_budget(conn, day, credits)
    a = schema.budget_alerts
    rearmed = unblocked = 0
    for cid, view in [(None, now.roster), *now.characters.items()]:
        who = a.c.character_id.is_(None) if cid is None else a.c.character_id == cid
        rearmed += conn.execute(sa.delete(a).where(
            a.c.provider == PROVIDER, a.c.period_start == period, who,
            a.c.threshold.not_in(thresholds_reached(view.percent)))).rowcount
        if cid is not None:
            unblocked += settle_blocked(conn, cid, view, day, whole_month=True, block=False)
    return LimitChange(None if previous is None else int(previous), rearmed, unblocked)
