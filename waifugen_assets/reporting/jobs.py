"""Reporting jobs: `status` refreshes one date's `daily_status` (the `status` sensor, the
`daily_status` schedule, `waifugen run` at its end); `daily_analytics` makes one UTC date's
report from scratch: the staging views, that day's credit ledger, the daily marts (the day and
its look-back), then the report, built and sent (the `daily_report` schedule, Workflow 07)."""

from __future__ import annotations

import dagster as dg

status_job = dg.define_asset_job(
    "status", selection=["daily_status"],  # partitioned by date alone
    description="One date's daily_status refreshed from the app database (no outside calls).",
)

# Selected by key, not by importing the analytics stage (a lower layer's definitions): the
# three daily marts (partitioned on the same dates) and the staging views they read.
DAILY_MARTS = ("daily_revenue_summary", "cost_per_reel", "platform_performance")
daily_report_job = dg.define_asset_job(
    "daily_analytics",
    selection=(dg.AssetSelection.key_prefixes(["staging"])
               | dg.AssetSelection.assets("credit_ledger", *DAILY_MARTS, "daily_report")),
    description="One date's daily report: built from the marts and the credit ledger, sent "
    "to the operators' Telegram chat once.",
)
