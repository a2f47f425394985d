"""Publishing jobs: `publish` (the posting sensor, when a slot comes) and `daily_content`,
the whole day in one run for the CLI and manual launches."""
from __future__ import annotations

import dagster as dg

publish_job = dg.define_asset_job(
    "publish", selection=["social_posts"],
    description="One character's due branded reels published exactly once; stale slots "
    "skipped unless the run posts late. Launched by the posting sensor.",
)

daily_content_job = dg.define_asset_job(
    "daily_content",
    selection=dg.AssetSelection.groups("content"),  # partitioned character x date
    description="One character's whole day in one run: plan -> generate -> store -> brand -> "
    "publish (the CLI, manual launches).",
)
