"""Jobs of the analytics stage. The staging views and the daily marts run in the
`daily_analytics` job (reporting/jobs.py), right before the report that reads them; this job
rebuilds the whole-table marts (rankings, post performance, best hours, the subscriber
funnel) after it."""

import dagster as dg

from waifugen_assets.analytics.assets import analytics_tables

analytics_tables_job = dg.define_asset_job(
    "analytics_tables", selection=dg.AssetSelection.assets(analytics_tables),
    description="Staging views and the whole-table marts (dbt build, then their dbt tests).",
)
