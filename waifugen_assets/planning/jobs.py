"""Planning jobs: `plan` (the `daily_plans` schedule, at each character's local midnight) and
`weekly_premium`. Selections name assets by key so jobs import no assets (see
docs/architecture.md: a retry of one job never re-runs the others)."""
from __future__ import annotations

import dagster as dg

plan_job = dg.define_asset_job(
    "plan", selection=["reel_plans"],
    description="One character's day planned: a reel per slot, the budget checked.",
)

PREMIUM_CONFIG = {"ops": {"reel_plans": {"config": {"tier": "premium"}}}}

weekly_premium_job = dg.define_asset_job(
    "weekly_premium",
    selection=["reel_plans"],
    config=PREMIUM_CONFIG,
    description="A premium reel planned for one of the week's Elite 8; the generation and "
    "posting sensors take it from there like any other reel.",
)
