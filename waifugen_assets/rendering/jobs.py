"""The render job, launched by the generation sensor in slot order across the roster within
A2E's request budget until every reel is branded."""
from __future__ import annotations

import dagster as dg

render_job = dg.define_asset_job(
    "render", selection=["reels", "stored_videos", "branded_videos"],
    description="One character's planned reels rendered (A2E), stored and branded; pending "
    "renders resumed. Launched by the generation sensor.",
)
