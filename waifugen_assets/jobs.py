"""Jobs: what the CLI, sensors and schedules launch.

A day's content moves through three jobs, each started by what knows it is time:
`plan` (the `daily_plans` schedule, at each character's local midnight), `render` (the
`generation` sensor, in slot order across the roster within A2E's request budget, until every
reel is branded) and `publish` (the `posting` sensor, when a slot comes). A retry of one never
re-runs the others. `daily_content` is the three in one run, for the CLI and manual launches.
"""

from __future__ import annotations

import dagster as dg

from waifugen_assets.characters import characters
from waifugen_assets.generation import reel_plans, reels
from waifugen_assets.social import social_posts
from waifugen_assets.videos import branded_videos, stored_videos

roster_job = dg.define_asset_job(
    "roster", selection=[characters], description="Validate the roster and upsert characters."
)

plan_job = dg.define_asset_job(
    "plan", selection=[reel_plans],
    description="One character's day planned: a reel per slot, the budget checked.",
)

render_job = dg.define_asset_job(
    "render", selection=[reels, stored_videos, branded_videos],
    description="One character's planned reels rendered (A2E), stored and branded; pending "
    "renders resumed. Launched by the generation sensor.",
)

publish_job = dg.define_asset_job(
    "publish", selection=[social_posts],
    description="One character's due branded reels published exactly once; stale slots "
    "skipped unless the run posts late. Launched by the posting sensor.",
)

daily_content_job = dg.define_asset_job(
    "daily_content",
    selection=dg.AssetSelection.groups("content"),  # partitioned character x date
    description="One character's whole day in one run: plan -> generate -> store -> brand -> "
    "publish (the CLI, manual launches).",
)

PREMIUM_CONFIG = {"ops": {"reel_plans": {"config": {"tier": "premium"}}}}

weekly_premium_job = dg.define_asset_job(
    "weekly_premium",
    selection=[reel_plans],
    config=PREMIUM_CONFIG,
    description="A premium reel planned for one of the week's Elite 8; the generation and "
    "posting sensors take it from there like any other reel.",
)

subscriber_dms_job = dg.define_asset_job(
    "subscriber_dms",
    selection=dg.AssetSelection.groups("subscribers"),  # partitioned character x date
    description="One character's subscriber DMs: apply events, plan due steps, send.",
)
