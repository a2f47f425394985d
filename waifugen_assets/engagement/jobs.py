"""The engagement job: one character's read-back, asked for hourly where a reading is due."""
from __future__ import annotations

import dagster as dg

engagement_job = dg.define_asset_job(
    "engagement", selection=["engagement_metrics"],
    description="One character's engagement read-back: the posts whose next age (1 h, 6 h, "
    "24 h, 3 d, 7 d, 30 d) has come, followers once a day, the daily roll-up.",
)
