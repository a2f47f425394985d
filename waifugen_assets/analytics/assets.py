"""The dbt project in the asset graph: three `@dbt_assets` over one manifest, with disjoint
selections, so each runs where it belongs:

- `analytics_staging`: the staging views (unpartitioned; cheap, rebuilt by every daily run so a
  changed view is never older than the marts that read it);
- `analytics_daily`: the models tagged `daily` (incremental marts keyed by local day),
  partitioned on the same `daily_partitions` as the rest of the pipeline; a run rebuilds its
  days plus a look-back (window.py);
- `analytics_tables`: the whole-table marts (rankings, post performance, best hours, the
  subscriber funnel), unpartitioned, after the daily marts they read.

dbt tests on models are asset checks; sources map onto the Python assets that write them
(`meta.dagster.asset_key` in models/sources.yml, several tables may name one asset:
engagement_metrics writes three); every dbt asset is in the `analytics` group, owned by the
analytics team. The manifest is prepared at build time (project.py)."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from resources.database import DatabaseResource
from waifugen_assets.analytics import targets
from waifugen_assets.analytics.connection import dbt_environment
from waifugen_assets.analytics.project import DBT_DIR, dbt_executable, require_manifest
from waifugen_assets.analytics.window import dbt_vars, window_env
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.embedded_pg import advisory_lock
from waifugen_assets.core.schema import ANALYTICS_SCHEMA
from waifugen_assets.pipeline.catalog import ANALYTICS_TEAM
from waifugen_assets.pipeline.partitions import daily_partitions

DAILY_SELECT = "tag:daily"
DBT_LOCK = "waifugen:dbt-build"
STAGING_SELECT = "path:models/staging"
MARTS_SELECT = "path:models/marts"
MANIFEST = require_manifest()
GROUP = "analytics"

dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


class WaifugenDbtTranslator(DagsterDbtTranslator):
    """dbt models in the analytics group and team; sources keep the Python asset's own."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") == "source":
            return super().get_group_name(dbt_resource_props)
        return GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str] | None:
        if dbt_resource_props.get("resource_type") == "source":
            return super().get_owners(dbt_resource_props)
        return [ANALYTICS_TEAM]


# Source tests stay observations: as checks they would belong to the Python assets, and
# every job materializing `characters` or `reels` would start dbt to run them.
TRANSLATOR = WaifugenDbtTranslator(settings=DagsterDbtTranslatorSettings(
    enable_asset_checks=True,
    enable_duplicate_source_asset_keys=True,
    enable_source_tests_as_checks=False,
))


class DbtRunConfig(dg.Config):
    full_refresh: bool = False  # rebuild the daily marts from all history (--full-refresh)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource,
           database: DatabaseResource, args: list[str],
           window: tuple[dt.date, dt.date] | None = None,
           indirect_selection: str | None = None,
           env: dict[str, str] | None = None) -> Iterator[Any]:
    """`dbt <args>` streamed as Dagster events, each mart's with its row counts. The run's
    saved parse is kept for the next run (targets.keep_parse), its own target folder removed
    after, and folders of killed runs are swept."""
    target_dir = Path(dbt_project.project_dir) / dbt_project.target_path
    targets.sweep(target_dir)
    engine = database.get_engine()
    # One dbt build at a time per database: two (a schedule and a CLI run, two CLI runs) would
    # replace the same views and tables at once and fail each other.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock_conn, \
            advisory_lock(lock_conn, DBT_LOCK), \
            dbt_environment(database.resolved_url(), indirect_selection=indirect_selection,
                            extra=env):
        invocation = dbt.cli(args, context=context)
        try:
            for event in invocation.stream():
                yield _with_row_counts(event, engine, window)
            targets.keep_parse(invocation.target_path, target_dir)
        finally:
            targets.remove(invocation.target_path)


def _with_row_counts(event: Any, engine: sa.Engine,
                     window: tuple[dt.date, dt.date] | None) -> Any:
    """A mart's materialization with `dagster/row_count` (and, for a day's run, the rows of
    its days): dagster-dbt's own fetch_row_counts queries the relation named in the manifest,
    whose database is the one `dbt parse` saw at build time, not this run's."""
    if not isinstance(event, dg.Output | dg.AssetMaterialization):
        return event
    key = event.asset_key if isinstance(event, dg.AssetMaterialization) else None
    name = key.path[-1] if key else event.output_name
    if name.startswith("staging__") or (key and key.path[0] == "staging"):
        return event  # views: counting would run their query
    counts = mart_row_counts(engine, name, window)
    return event.with_metadata({**event.metadata, **counts}) if counts else event


def mart_row_counts(engine: sa.Engine, mart: str,
                    window: tuple[dt.date, dt.date] | None = None) -> dict[str, int]:
    table = sa.table(mart, sa.column("day"), schema=ANALYTICS_SCHEMA)
    try:
        with engine.connect() as conn:
            counts = {"dagster/row_count": int(conn.scalar(
                sa.select(sa.func.count()).select_from(table)) or 0)}
            if window is not None:
                first, last = window
                counts["dagster/partition_row_count"] = int(conn.scalar(
                    sa.select(sa.func.count()).select_from(table)
                    .where(table.c.day >= first, table.c.day <= last)) or 0)
    except sa.exc.DBAPIError:  # not a table in the marts' schema: no count, not a failure
        return {}
    return counts


def _dates(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    keys = context.partition_key_range  # one run for a backfill range (single_run policy)
    return dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)


@dbt_assets(manifest=MANIFEST, project=dbt_project, select=DAILY_SELECT,
            partitions_def=daily_partitions, dagster_dbt_translator=TRANSLATOR,
            name="dbt_daily_marts", backfill_policy=dg.BackfillPolicy.single_run())
def analytics_daily(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                    database: DatabaseResource, config: DbtRunConfig):
    args = ["build", "--vars", json.dumps(dbt_vars(get_settings().money))]
    if config.full_refresh:
        yield from _build(context, dbt, database, [*args, "--full-refresh"], env=window_env())
        return
    first, last = _dates(context)
    yield from _build(context, dbt, database, args, (first, last),
                      env=window_env(first, last))


@dbt_assets(manifest=MANIFEST, project=dbt_project, select=STAGING_SELECT,
            dagster_dbt_translator=TRANSLATOR, name="dbt_staging")
def analytics_staging(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                      database: DatabaseResource):
    args = ["build", "--vars", json.dumps(dbt_vars(get_settings().money))]
    # `cautious`: only tests whose parents are all views; a mart's relationship test to a
    # view runs with the mart (dbt's default, `eager`, would run it here, before the mart).
    yield from _build(context, dbt, database, args, indirect_selection="cautious")


@dbt_assets(manifest=MANIFEST, project=dbt_project, select=MARTS_SELECT, exclude=DAILY_SELECT,
            dagster_dbt_translator=TRANSLATOR, name="dbt_tables")
def analytics_tables(context: dg.AssetExecutionContext, dbt: DbtCliResource,
                     database: DatabaseResource):
    args = ["build", "--vars", json.dumps(dbt_vars(get_settings().money))]
    yield from _build(context, dbt, database, args)
