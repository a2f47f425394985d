"""The `daily_status` asset: the roster's day at a glance in the Dagster UI, and its
`day_complete` check (a warning that names what is pending, deferred, skipped or failed).
The `daily_report` asset: the day's report for the operators, sent to Telegram once, and its
`report_delivered` check."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
from pydantic import Field

from resources.database import DatabaseResource
from resources.instagram import InstagramResource
from resources.telegram import TelegramResource
from resources.tiktok import TikTokResource
from resources.youtube import YouTubeResource
from waifugen_assets.core import clock
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.redaction import redact
from waifugen_assets.pipeline.partitions import daily_partitions
from waifugen_assets.reporting.day_markdown import (
    findings,
    live_posts,
    render_markdown,
    totals,
    unposted,
)
from waifugen_assets.reporting.report_build import NOT_CONFIGURED, build_report, send_report
from waifugen_assets.reporting.report_data import MartsMissing
from waifugen_assets.reporting.report_send import PartOutcome
from waifugen_assets.reporting.status import day_status
from waifugen_assets.roster.phases import phases_for_roster

DAY_COMPLETE = "day_complete"
MAX_DESCRIPTION = 1000  # the check's description names the first items; metadata has all


@dg.asset(
    partitions_def=daily_partitions,
    # The date dimension of the character x date assets maps onto this date (inferred).
    deps=["reels", "social_posts", "dm_messages"],
    group_name="reporting",
    kinds={"postgres"},
    check_specs=[dg.AssetCheckSpec(
        DAY_COMPLETE, asset="daily_status", blocking=False,
        description="Every character's day is done: every planned reel published on each "
        "platform, nothing pending, deferred, skipped or failed (a warning names each item "
        "and its reason).")],
    description="The day at a glance, one row per character for that date: reels per stage, "
    "posts per platform with links to the live posts, budget used, DMs due, what waits and "
    "why. Refreshed by the `status` sensor after publish runs and by the `daily_status` "
    "schedule once the day is over everywhere.",
)
def daily_status(context: dg.AssetExecutionContext, database: DatabaseResource,
                 tiktok: TikTokResource, instagram: InstagramResource,
                 youtube: YouTubeResource) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    settings = get_settings()
    bases = ({"tiktok": tiktok.resolved_base_url(), "instagram": instagram.resolved_urls()[0],
              "youtube": youtube.resolved_base_url()} if settings.is_sandbox else None)
    read_at = clock.now()
    with database.get_engine().connect() as conn:
        report = day_status(conn, day, settings.a2e_monthly_credits,
                            ladder=phases_for_roster(settings.roster_path))
        days = {c["id"]: day for c in report["characters"]}
        posts = live_posts(conn, days, bases)
        waiting_slots = unposted(conn, days)
    waits = findings(report, read_at, waiting_slots)
    numbers = totals(report, waits, waiting_slots)
    context.log.info(f"daily_status {day}: {numbers['characters']} character(s), "
                     f"{numbers['posts_published']} posts live, {len(waits)} item(s) waiting")
    return dg.MaterializeResult(
        metadata={
            "status": dg.MetadataValue.md(render_markdown(report, posts, read_at, waits)),
            "read_at": dg.MetadataValue.timestamp(read_at),
            "dagster/row_count": numbers["characters"],
            **numbers,
        },
        check_results=[day_complete(day, waits, numbers)],
    )


def day_complete(day: dt.date, waits: list[str],
                 numbers: dict[str, int | float]) -> dg.AssetCheckResult:
    """Passes when nothing waits; otherwise a warning naming each item and its reason."""
    summary = ("nothing waits" if not waits
               else f"{len(waits)} item(s) not done: " + "; ".join(waits))
    if len(summary) > MAX_DESCRIPTION:
        summary = summary[: MAX_DESCRIPTION - 1] + "…"
    counts = {k: numbers[k] for k in ("reels_pending", "reels_unposted", "reels_failed",
                                      "reels_missed", "posts_pending", "posts_deferred",
                                      "posts_skipped", "posts_failed")}
    return dg.AssetCheckResult(
        check_name=DAY_COMPLETE, passed=not waits, severity=dg.AssetCheckSeverity.WARN,
        description=redact(f"{day.isoformat()}: {summary}"),
        metadata={"date": day.isoformat(),
                  "waiting": dg.MetadataValue.md(
                      "\n".join(f"- {redact(w)}" for w in waits) or "nothing"),
                  **counts})


# --- daily_report ------------------------------------------------------------------------------

REPORT_DELIVERED = "report_delivered"


class DailyReportConfig(dg.Config):
    send: bool = Field(default=True, description="Send the report to the operators' Telegram "
                       "chat (once per date: a rerun sends only what is not there yet).")


@dg.asset(
    partitions_def=daily_partitions,
    deps=["credit_ledger", "daily_revenue_summary", "cost_per_reel", "platform_performance"],
    group_name="reporting",
    kinds={"postgres", "telegram"},
    check_specs=[dg.AssetCheckSpec(
        REPORT_DELIVERED, asset="daily_report", blocking=False,
        description="The report's photo and message are in the operators' chat (a warning "
        "names a part whose send failed or whose outcome is unknown, and what to do).")],
    description="The day's report for the operators (docs/daily-report.md): A2E credits "
    "(balance, spent, budget, top-ups, unexplained, forecast), reels, platforms, characters, "
    "cost per reel against the target, revenue per currency, margin and subscribers, with a "
    "chart of the last 14 days. Sent to Telegram once per date (photo, then message); the "
    "same report as Markdown and the chart are in this asset's metadata.",
)
def daily_report(context: dg.AssetExecutionContext, config: DailyReportConfig,
                 database: DatabaseResource, telegram: TelegramResource) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    engine = database.get_engine()
    try:
        built = build_report(engine, day, clock.now(), get_settings())
    except MartsMissing as exc:
        raise dg.Failure(description=str(exc)) from None
    outcomes = (send_report(engine, telegram, built) if config.send else [])
    data = built.data
    if not config.send:
        delivery = "not sent: the run's config says send: false"
    elif outcomes is None:
        delivery = NOT_CONFIGURED
    else:
        delivery = "; ".join(f"{o.part}: {o.detail}" for o in outcomes)
    context.log.info(f"daily_report {day}: {redact(delivery)}")
    parts = {f"{o.part}_delivery": o.action for o in outcomes or []}
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(built.markdown),
            "chart": dg.MetadataValue.md(built.chart_markdown()),
            "delivery": dg.MetadataValue.text(redact(delivery)),
            **parts,
            "credits_spent": data.credits_spent,
            "reels_generated": data.reels_generated,
            "posts_published": data.posts_published,
            f"net_revenue_{data.currency.lower()}_cents": data.accounting_revenue.net_cents,
            f"margin_{data.currency.lower()}_cents": data.margin_cents,
            "budget_used_pct": data.budget_used_pct if data.budget_used_pct is not None
            else dg.MetadataValue.null(),
            "read_at": dg.MetadataValue.timestamp(data.read_at),
        },
        check_results=[report_delivered(day, outcomes if config.send else [], delivery)],
    )


def report_delivered(day: dt.date, outcomes: list[PartOutcome] | None,
                     delivery: str) -> dg.AssetCheckResult:
    """Passes when every part is in the chat, or when nothing was to be sent (not configured
    or send: false, which the description says); warns naming each part that is not, or
    whose reconciliation overwrote another message of the bot."""
    problems = [o for o in outcomes or [] if not o.delivered or o.action == "overwrote"]
    description = (f"{day.isoformat()}: " + ("; ".join(f"{o.part} {o.action}: {o.detail}"
                                                       for o in problems) or delivery))
    return dg.AssetCheckResult(
        check_name=REPORT_DELIVERED, passed=not problems,
        severity=dg.AssetCheckSeverity.WARN, description=redact(description)[:MAX_DESCRIPTION],
        metadata={"date": day.isoformat(),
                  **{o.part: f"{o.state} ({o.message_id or '-'})" for o in outcomes or []}})
