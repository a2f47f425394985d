"""The milestones job: one date's `character_phases` for the whole roster (the
`character_phases` schedule, once a day)."""
from __future__ import annotations

import dagster as dg

phases_job = dg.define_asset_job(
    "phases", selection=["character_phases"],  # partitioned by date alone
    description="Every character's phase from its latest follower readings: crossings "
    "recorded and announced once, the next local day planned in the new phase.",
)
