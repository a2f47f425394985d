"""Jobs: what the CLI, sensors and schedules launch."""

from __future__ import annotations

import dagster as dg

from waifugen_assets.characters import characters

roster_job = dg.define_asset_job(
    "roster", selection=[characters], description="Validate the roster and upsert characters."
)

daily_content_job = dg.define_asset_job(
    "daily_content",
    selection=dg.AssetSelection.groups("content"),  # partitioned character x date
    description="One character's day: plan -> generate -> store -> brand -> publish.",
)

PREMIUM_CONFIG = {"ops": {"reel_plans": {"config": {"tier": "premium"}}}}

weekly_premium_job = dg.define_asset_job(
    "weekly_premium",
    selection=dg.AssetSelection.groups("content"),
    config=PREMIUM_CONFIG,
    description="A premium reel for one of the week's Elite 8, through the same stages.",
)

subscriber_dms_job = dg.define_asset_job(
    "subscriber_dms",
    selection=dg.AssetSelection.groups("subscribers"),  # partitioned character x date
    description="One character's subscriber DMs: apply events, plan due steps, send.",
)
