"""The `backup` job: one backup set, retention and, when due, a restore drill."""

from __future__ import annotations

import dagster as dg

backup_job = dg.define_asset_job(
    "backup", selection=["backups"],
    # A dump that hangs (a lock it waits on) must not hold a run slot for ever.
    tags={"dagster/max_runtime": 3 * 3600},
    description="A backup set of the app and the Dagster database and the roles, old sets "
    "pruned (grandfather-father-son), a restore drill when the last one is 6 days old.",
)
