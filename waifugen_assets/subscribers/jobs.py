"""The subscriber DM job, launched by the DM sensor."""
from __future__ import annotations

import dagster as dg

subscriber_dms_job = dg.define_asset_job(
    "subscriber_dms",
    selection=dg.AssetSelection.groups("subscribers"),  # partitioned character x date
    description="One character's subscriber DMs: apply events, plan due steps, send.",
)
