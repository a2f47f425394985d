"""The `credit_ledger` asset: the A2E balance snapshot of a UTC day, reconciled with the
previous one (`ledger_reconciles` warns about credits no task cost explains), and the day's
spend, top-ups, forecast, budget and RunPod time (docs/credit-ledger.md)."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
from typing import Any

import dagster as dg
import sqlalchemy as sa

from resources.a2e import A2EResource, a2e_limiter
from resources.database import DatabaseResource
from resources.http import AuthError, HttpError
from resources.quota_store import PostgresRateLimitStore
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.redaction import redact
from waifugen_assets.money import ledger
from waifugen_assets.money.credits import ensure_budget
from waifugen_assets.money.reconcile import Reading
from waifugen_assets.pipeline.catalog import CONTENT_TEAM, cell, md_table, table_metadata
from waifugen_assets.pipeline.partitions import daily_partitions
from waifugen_assets.pipeline.runs import stop_on_config_error

RECONCILES_CHECK = "ledger_reconciles"


@dg.asset(
    partitions_def=daily_partitions,
    # Lineage only: the date dimension of `reels` maps onto this date (inferred).
    deps=["reels"],
    group_name="money",
    kinds={"postgres"},
    owners=[CONTENT_TEAM],
    metadata=table_metadata(schema.credit_ledger),
    check_specs=[dg.AssetCheckSpec(
        RECONCILES_CHECK, asset="credit_ledger", blocking=False,
        description="The A2E balance moved as the ledger explains (task costs, tasks in "
        "flight, top-ups, adjustments) since the previous snapshot, within "
        "CREDIT_RECONCILE_TOLERANCE_CREDITS; a warning names the credits nothing explains and "
        "the window. A day without a snapshot says why it was not checked.")],
    description="The A2E credit ledger of a UTC day: the balance read from A2E (on the day "
    "or the day after; one snapshot a day, refreshed by a rerun) with the credits of tasks "
    "still rendering, reconciled with the previous snapshot; a rise nothing explains is "
    "recorded as the day's top-up. Shows the day's spend per character against the "
    "projection, when the balance runs out at the 7-day burn, the month's budget and the "
    "RunPod fallback's time in cents.",
)
def credit_ledger(context: dg.AssetExecutionContext, database: DatabaseResource,
                  a2e: A2EResource) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    settings = get_settings()
    engine = database.get_engine()
    why_not = ledger.why_not_readable(day, clock.now())
    reading = None if why_not else _read_balance(a2e, engine, day)
    # One transaction: the snapshot, the month's budget row and a top-up go in together.
    with engine.begin() as conn:
        if reading is not None:
            ledger.record_snapshot(conn, day, reading)
        ensure_budget(conn, day, settings.a2e_monthly_credits)
        ledger.reconcile_day(conn, day, settings.money.reconcile_tolerance_credits,
                             record=True)
    with engine.connect() as conn:
        summary = ledger.ledger_summary(conn, day, settings)
    if reading is None:
        if summary["balance"] is not None:
            why_not += (f"; the stored snapshot read {_when(summary['balance_read_at'])} UTC "
                        "is used")
        context.log.info("credit_ledger %s: balance not read: %s", day, why_not)
    return dg.MaterializeResult(metadata=metadata(summary, reading is not None, why_not),
                                check_results=[reconciles(summary, why_not)])


def _read_balance(a2e: A2EResource, engine: sa.Engine, day: dt.date) -> Reading:
    """The balance now; A2E failing stops the run with one line (nothing is written)."""
    client = stop_on_config_error(lambda: a2e.get_client(limiter=a2e_limiter(
        a2e.resolved_requests_per_hour(), store=PostgresRateLimitStore(engine, "a2e"),
        max_wait=a2e.max_wait_seconds)))
    try:
        return ledger.read_balance(client, engine)
    except HttpError as exc:
        raise dg.Failure(
            description=redact(f"A2E balance of {day.isoformat()} not read: {exc}"),
            allow_retries=not isinstance(exc, AuthError)) from None
    finally:
        client.close()


def _when(at: dt.datetime) -> str:
    return f"{at.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def reconciles(s: dict[str, Any], why_not: str | None) -> dg.AssetCheckResult:
    """Warns when credits left the balance beyond the tolerance with nothing to explain them;
    passes (saying so) on the first day and on a day without a snapshot."""
    tol, day = s["tolerance_credits"], s["day"].isoformat()
    passed = True
    if s["reconciliation"] == "no_snapshot":
        summary = f"not checked: {why_not or 'no balance snapshot of the day'}"
    elif s["reconciliation"] == "first":
        summary = (f"no previous snapshot: nothing to reconcile yet (balance "
                   f"{s['balance']:,} credits)")
    else:
        u, window = s["unexplained_credits"], (f"between {_when(s['window_start'])} and "
                                               f"{_when(s['window_end'])} UTC")
        passed = u >= -tol  # a rise beyond it was just recorded as a top-up
        if u < -tol:
            summary = (f"{-u:,} credits left the A2E balance {window} that no task cost "
                       f"explains (tolerance {tol})")
        else:
            summary = (f"the A2E balance moved {s['balance_change']:+,} credits {window}; "
                       f"the ledger explains all but {u:+,} (tolerance {tol})")
        if s["top_up_credits"]:
            summary += f"; a top-up of {s['top_up_credits']:,} credits was recorded"
    return dg.AssetCheckResult(
        check_name=RECONCILES_CHECK, passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=redact(f"{day}: {summary}"),
        metadata={"date": day, "checked": s["reconciliation"] == "reconciled",
                  "unexplained_credits": s["unexplained_credits"],
                  "balance_change": s["balance_change"], "expected_change": s["expected_change"],
                  "top_up_credits": s["top_up_credits"], "tolerance_credits": tol,
                  "window_start": _when(s["window_start"]) if s["window_start"] else None,
                  "window_end": _when(s["window_end"]) if s["window_end"] else None})


def metadata(s: dict[str, Any], read_now: bool, why_not: str | None) -> dict[str, Any]:
    numbers = {k: s[k] for k in (
        "balance", "in_flight_credits", "credits_spent", "credits_cost_cents", "reels_costed",
        "projected_credits", "actual_vs_projected_pct", "top_up_credits",
        "unexplained_credits", "avg_daily_spend_7d", "days_left", "budget_used_pct",
        "runpod_seconds", "runpod_cost_cents")}
    return {
        "summary": dg.MetadataValue.md(summary_markdown(s, read_now, why_not)),
        "characters": md_table(
            ["character", "reels generated", "credits", "projected credits",
             "actual vs projected %"],
            ([cell(c["character_id"] or "(none)"), f"{c['reels']:,}", f"{c['credits']:,}",
              f"{c['projected_credits']:,}", _pct(c["actual_vs_projected_pct"])]
             for c in s["characters"])),
        **numbers,
        "balance_read_now": read_now,
        "balance_not_read": None if read_now else why_not,
        "forecast_date": s["forecast_date"].isoformat() if s["forecast_date"] else None,
        "dagster/row_count": s["ledger_rows"],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def summary_markdown(s: dict[str, Any], read_now: bool, why_not: str | None) -> str:
    lines = []
    if s["budget_warning"]:
        lines.append(f"**Warning: {_pct(s['budget_used_pct'])} of the A2E budget of "
                     f"{s['budget_month']:%Y-%m} ({s['budget_limit']:,} credits) is spent or "
                     f"committed.**\n")
    if s["balance"] is None:
        balance = f"not known: {why_not}"
    else:
        balance = (f"{s['balance']:,} credits, read {_when(s['balance_read_at'])} UTC"
                   f"{'' if read_now else ' (stored)'}; {s['in_flight_credits']:,} in flight")
    if s["reconciliation"] == "reconciled":
        check = (f"{s['unexplained_credits']:+,} unexplained between "
                 f"{_when(s['window_start'])} and {_when(s['window_end'])} UTC (balance "
                 f"{s['balance_change']:+,}, ledger {s['expected_change']:+,}; tolerance "
                 f"{s['tolerance_credits']})")
    else:
        check = ("no previous snapshot" if s["reconciliation"] == "first"
                 else "not checked: no snapshot")
    forecast = (f"runs out {s['forecast_date']:%Y-%m-%d} ({s['days_left']} days) at "
                f"{s['avg_daily_spend_7d']:,} credits/day (7-day average)"
                if s["forecast_date"] else "no forecast (no balance or no spend in 7 days)")
    rows = [
        ("balance", balance),
        ("spent (A2E)", f"{s['credits_spent']:,} credits ({s['credits_cost_cents']:,} cents "
                        f"{s['currency']}), {s['reels_costed']} reel(s); projected "
                        f"{s['projected_credits']:,} ({_pct(s['actual_vs_projected_pct'])})"),
        ("top-ups", f"{s['top_up_credits']:,} credits"),
        ("reconciliation", check),
        ("forecast", forecast),
        ("budget", f"{_pct(s['budget_used_pct'])} of {s['budget_limit']:,} credits for "
                   f"{s['budget_month']:%Y-%m} (spent + planned: {s['budget_committed']:,})"),
        ("RunPod (fallback)", f"{s['runpod_seconds']:,} s = {s['runpod_cost_cents']:,} cents "
                              f"{s['currency']}"),
    ]
    lines += ["| | |", "|---|---|", *(f"| {k} | {cell(v)} |" for k, v in rows)]
    return "\n".join(lines)
