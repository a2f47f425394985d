"""Jobs: what the CLI, sensors and schedules launch."""

from __future__ import annotations

import dagster as dg

from waifugen_assets.characters import characters
from waifugen_assets.partitions import character_daily_partitions

roster_job = dg.define_asset_job(
    "roster", selection=[characters], description="Validate the roster and upsert characters."
)

daily_content_job = dg.define_asset_job(
    "daily_content",
    selection=dg.AssetSelection.groups("content"),
    partitions_def=character_daily_partitions,
    description="One character's day: plan -> generate -> store -> brand -> publish.",
)
