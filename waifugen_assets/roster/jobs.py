"""The roster job: the roster sensor launches it when characters.yaml changes."""
from __future__ import annotations

import dagster as dg

roster_job = dg.define_asset_job(
    "roster", selection=["characters"], description="Validate the roster and upsert characters."
)
