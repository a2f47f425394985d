"""Reporting jobs: `status` refreshes one date's `daily_status` (the `status` sensor, the
`daily_status` schedule, `waifugen run` at its end)."""

from __future__ import annotations

import dagster as dg

status_job = dg.define_asset_job(
    "status", selection=["daily_status"],  # partitioned by date alone
    description="One date's daily_status refreshed from the app database (no outside calls).",
)
