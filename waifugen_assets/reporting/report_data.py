"""The daily report's figures for one date D, read once: the marts in the `analytics` schema
(dbt builds them), a few app tables and the credit ledger's summary.

Calendar: D is a date of the date partitions. Each character's figures are those of its own
local day D (how reels, the ledger and the marts date everything), so the roster's day D is
over only when it is over in the westernmost character's zone; until then the report says
"as of HH:MM UTC".

The chart's 14 days come from the app tables (reels, social_posts, credit_ledger) with the
marts' own rules, so it has a history even before dbt has built those days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.core.config import Settings
from waifugen_assets.money.budget import WARN_AT, month_start
from waifugen_assets.money.ledger import ledger_summary, month_limit
from waifugen_assets.operations.credentials import report_line as credentials_report_line

HISTORY_DAYS = 14
TOP_CHARACTERS = 5
# reels.status values that mean A2E (or RunPod) produced the video: the dbt var
# `generated_reel_statuses` (dbt_analytics/dbt_project.yml), which the marts count with.
GENERATED_STATUSES = ("generated", "stored", "branded", "published")
MARTS = ("daily_revenue_summary", "cost_per_reel", "platform_performance")
BUILD_HINT = ("build the marts first: `make run` (or `waifugen run`) materializes them, "
              "or run `dbt build` in dbt_analytics/")


class MartsMissing(RuntimeError):
    """A mart the report reads has not been built yet; the message names it and the fix."""


@dataclass(frozen=True)
class Revenue:
    """One currency's money of the day, in its own cents (never converted)."""

    currency: str
    gross_cents: int
    refund_cents: int
    net_cents: int


@dataclass(frozen=True)
class History:
    """The chart's days (oldest first) and, per day, what the panels plot."""

    days: tuple[dt.date, ...]
    reels_generated: tuple[int, ...]
    posts_published: Mapping[str, tuple[int, ...]]  # platform -> per day
    credits_spent: tuple[int, ...]
    daily_budget: tuple[float, ...]  # the month's budget / days in that month


@dataclass(frozen=True)
class ReportData:
    day: dt.date
    read_at: dt.datetime  # UTC
    running: bool  # some character's local day D is not over yet
    currency: str  # the accounting currency: costs and margin
    # Credits (A2E)
    credit_balance: int | None  # None: no balance read yet
    credits_spent: int  # task costs of day D
    monthly_budget: int  # the month's A2E credits (the budgets row, else the setting)
    month_committed: int  # spent this month + projected for reels planned, not yet paid
    budget_used_pct: float | None  # committed / budget; None: no budget set (0 credits)
    top_up_credits: int
    unexplained_credits: int | None  # None: nothing to reconcile with (no two balances)
    exhaustion_date: dt.date | None
    days_left: int | None
    runpod_cents: int
    # Reels and posts
    reels_generated: int
    reels_by_status: Mapping[str, int]
    platforms: tuple[tuple[str, int], ...]  # (platform, posts published), most first
    characters: tuple[tuple[str, int], ...]  # (name, reels generated), top TOP_CHARACTERS
    more_characters: int  # characters with reels that are not in `characters`
    credits_per_reel: Decimal | None  # None: no reel generated
    target_credits_per_reel: int
    credit_price_cents: Decimal
    # Money
    revenue: tuple[Revenue, ...]  # the accounting currency first, then by currency code
    total_cost_cents: int
    margin_cents: int
    new_subscribers: int
    churned_subscribers: int
    history: History
    notes: tuple[str, ...] = field(default=())  # what the reader should know (missing data)

    @property
    def budget_level(self) -> str | None:
        """`exhausted` from 100 %, `warning` from 80 % (or credits committed with no budget),
        else None."""
        pct = self.budget_used_pct
        if pct is None:
            return "exhausted" if self.month_committed > 0 else None
        if pct >= 100:
            return "exhausted"
        return "warning" if pct >= WARN_AT else None

    @property
    def cents_per_reel(self) -> Decimal | None:
        if self.credits_per_reel is None:
            return None
        return cents(self.credits_per_reel * self.credit_price_cents)

    @property
    def target_cents_per_reel(self) -> Decimal:
        return cents(self.target_credits_per_reel * self.credit_price_cents)

    @property
    def vs_target_pct(self) -> Decimal | None:
        if self.credits_per_reel is None or self.target_credits_per_reel <= 0:
            return None
        return (self.credits_per_reel * 100 / self.target_credits_per_reel).quantize(
            Decimal("0.1"), ROUND_HALF_UP)

    @property
    def accounting_revenue(self) -> Revenue:
        for r in self.revenue:
            if r.currency == self.currency:
                return r
        return Revenue(self.currency, 0, 0, 0)

    @property
    def posts_published(self) -> int:
        return sum(n for _, n in self.platforms)


def cents(value: Decimal) -> Decimal:
    """Cents to two decimals (a cost per reel is a fraction of a cent per credit)."""
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def check_marts(conn: sa.Connection, marts: Sequence[str] = MARTS) -> None:
    """MartsMissing naming every mart the report needs that does not exist."""
    missing = [m for m in marts if conn.scalar(
        sa.text("SELECT to_regclass(:name)"),
        {"name": f"{schema.ANALYTICS_SCHEMA}.{m}"}) is None]
    if missing:
        names = ", ".join(f"{schema.ANALYTICS_SCHEMA}.{m}" for m in missing)
        raise MartsMissing(f"the daily report reads {names}, which "
                           f"{'does' if len(missing) == 1 else 'do'} not exist: {BUILD_HINT}")


def read_report(conn: sa.Connection, day: dt.date, now: dt.datetime,
                settings: Settings) -> ReportData:
    """Everything the report shows for date `day`, as read at `now`."""
    money = settings.money
    check_marts(conn)
    ledger = ledger_summary(conn, day, settings)
    mart = _mart_day(conn, day, money.currency)
    per_character = _characters(conn, day)
    platforms = _platforms(conn, day)
    generated = sum(n for _, n in per_character)
    credits_on_reels = mart["reel_credits"]
    notes = []
    if not mart["rows"]:
        notes.append(f"no analytics rows for {day}: the marts have not been built for this "
                     "date (or nothing happened on it)")
    # Credentials at 75 days or more (rotate by 90): operations/credentials.py.
    aging = credentials_report_line(conn, now)
    if aging:
        notes.append(aging)
    return ReportData(
        day=day, read_at=now, running=_running(conn, day, now), currency=money.currency,
        credit_balance=_opt_int(ledger["balance"]),
        credits_spent=int(ledger["credits_spent"]),
        monthly_budget=int(ledger["budget_limit"]),
        month_committed=int(ledger["budget_committed"]),
        budget_used_pct=_opt_float(ledger["budget_used_pct"]),
        top_up_credits=int(ledger["top_up_credits"]),
        unexplained_credits=_opt_int(ledger["unexplained_credits"]),
        exhaustion_date=ledger["forecast_date"],
        days_left=_opt_int(ledger["days_left"]),
        runpod_cents=int(ledger["runpod_cost_cents"]),
        reels_generated=generated,
        reels_by_status=_reels_by_status(conn, day),
        platforms=platforms,
        characters=tuple(per_character[:TOP_CHARACTERS]),
        more_characters=max(0, len(per_character) - TOP_CHARACTERS),
        credits_per_reel=(cents(Decimal(credits_on_reels) / generated) if generated else None),
        target_credits_per_reel=money.target_credits_per_reel,
        credit_price_cents=money.credit_price_cents,
        revenue=mart["revenue"],
        total_cost_cents=mart["total_cost_cents"],
        margin_cents=mart["margin_cents"],
        new_subscribers=mart["new_subscribers"],
        churned_subscribers=mart["churned_subscribers"],
        history=read_history(conn, day, settings.a2e_monthly_credits),
        notes=tuple(notes),
    )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _mart(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns), schema=schema.ANALYTICS_SCHEMA)


_REVENUE = _mart("daily_revenue_summary", "day", "currency", "gross_revenue_cents",
                 "refund_cents", "net_revenue_cents", "total_cost_cents", "margin_cents",
                 "new_subscribers", "churned_subscribers")
_COST = _mart("cost_per_reel", "day", "character_id", "reels_generated", "credits_spent")
_PLATFORMS = _mart("platform_performance", "day", "platform", "posts_published")


def _mart_day(conn: sa.Connection, day: dt.date, currency: str) -> dict[str, Any]:
    """daily_revenue_summary and cost_per_reel summed over the roster for `day`."""
    m, f = _REVENUE.c, sa.func
    rows = conn.execute(
        sa.select(m.currency, f.sum(m.gross_revenue_cents).label("gross"),
                  f.sum(m.refund_cents).label("refunds"),
                  f.sum(m.net_revenue_cents).label("net"),
                  f.sum(m.total_cost_cents).label("cost"), f.sum(m.margin_cents).label("margin"),
                  f.sum(m.new_subscribers).label("new_subs"),
                  f.sum(m.churned_subscribers).label("churned"))
        .where(m.day == day).group_by(m.currency)).mappings().all()
    revenue = [Revenue(r["currency"], int(r["gross"]), int(r["refunds"]), int(r["net"]))
               for r in rows]
    if not any(r.currency == currency for r in revenue):
        revenue.append(Revenue(currency, 0, 0, 0))
    revenue.sort(key=lambda r: (r.currency != currency, r.currency))
    acct = next((r for r in rows if r["currency"] == currency), None)
    reel_credits = conn.scalar(sa.select(f.coalesce(f.sum(_COST.c.credits_spent), 0))
                               .where(_COST.c.day == day))

    def total(key: str) -> int:
        return int(acct[key]) if acct is not None else 0

    return {"rows": len(rows), "revenue": tuple(revenue), "total_cost_cents": total("cost"),
            "margin_cents": total("margin"), "new_subscribers": total("new_subs"),
            "churned_subscribers": total("churned"), "reel_credits": int(reel_credits)}


def _characters(conn: sa.Connection, day: dt.date) -> list[tuple[str, int]]:
    """(name, reels generated) of every character that generated reels on `day`, most first
    (ties by name, then id, so the order is stable)."""
    m, ch = _COST.c, schema.characters
    name = sa.func.coalesce(ch.c.name, m.character_id).label("name")
    n = sa.func.sum(m.reels_generated).label("n")
    rows = conn.execute(
        sa.select(name, n).select_from(_COST.outerjoin(ch, ch.c.id == m.character_id))
        .where(m.day == day, m.reels_generated > 0)
        .group_by(m.character_id, ch.c.name)
        .order_by(n.desc(), name, m.character_id)).all()
    return [(str(who), int(count)) for who, count in rows]


def _platforms(conn: sa.Connection, day: dt.date) -> tuple[tuple[str, int], ...]:
    m = _PLATFORMS.c
    n = sa.func.sum(m.posts_published).label("n")
    rows = conn.execute(sa.select(m.platform, n).where(m.day == day).group_by(m.platform)
                        .order_by(n.desc(), m.platform)).all()
    return tuple((str(p), int(count)) for p, count in rows)


def _reels_by_status(conn: sa.Connection, day: dt.date) -> dict[str, int]:
    r = schema.reels
    rows = conn.execute(sa.select(r.c.status, sa.func.count()).where(r.c.date == day)
                        .group_by(r.c.status)).all()
    counts = dict(rows)
    return {s: int(counts[s]) for s in schema.REEL_STATUSES if s in counts}


def _running(conn: sa.Connection, day: dt.date, now: dt.datetime) -> bool:
    """Whether day `day` has not ended yet for some enabled character (UTC when none)."""
    ch = schema.characters
    zones = conn.execute(sa.select(ch.c.timezone).where(ch.c.enabled).distinct()).scalars()
    return any(now.astimezone(ZoneInfo(z)).date() <= day for z in [*zones, "UTC"])


def read_history(conn: sa.Connection, day: dt.date, default_monthly_credits: int,
                 days: int = HISTORY_DAYS) -> History:
    """The `days` days ending with `day`, from the app tables."""
    first = day - dt.timedelta(days=days - 1)
    dates = tuple(first + dt.timedelta(days=i) for i in range(days))
    r, sp, lg = schema.reels, schema.social_posts, schema.credit_ledger
    reels = dict(conn.execute(
        sa.select(r.c.date, sa.func.count())
        .where(r.c.date.between(first, day), r.c.status.in_(GENERATED_STATUSES))
        .group_by(r.c.date)).all())
    posts: dict[str, dict[dt.date, int]] = {p: {} for p in schema.SOCIAL_PLATFORMS}
    for platform, date, n in conn.execute(
            sa.select(sp.c.platform, r.c.date, sa.func.count())
            .join(r, r.c.id == sp.c.reel_id)
            .where(r.c.date.between(first, day), sp.c.state == "published")
            .group_by(sp.c.platform, r.c.date)):
        posts.setdefault(platform, {})[date] = int(n)
    credits = dict(conn.execute(
        sa.select(lg.c.ledger_date, sa.func.sum(lg.c.credits))
        .where(lg.c.ledger_date.between(first, day), lg.c.provider == "a2e",
               lg.c.kind == "task_cost")
        .group_by(lg.c.ledger_date)).all())
    budgets = {m: month_limit(conn, m, default_monthly_credits)
               for m in sorted({month_start(d) for d in dates})}
    return History(
        days=dates,
        reels_generated=tuple(int(reels.get(d, 0)) for d in dates),
        posts_published={p: tuple(by_day.get(d, 0) for d in dates)
                         for p, by_day in posts.items()},
        credits_spent=tuple(int(credits.get(d, 0)) for d in dates),
        daily_budget=tuple(budgets[month_start(d)] / _days_in_month(d) for d in dates),
    )


def _days_in_month(day: dt.date) -> int:
    start = month_start(day)
    return ((start + dt.timedelta(days=32)).replace(day=1) - start).days
