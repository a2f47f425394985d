"""dbt_analytics: the project parses, its sources map onto the Python assets, dagster-dbt agrees.

`dbt parse` needs no database: it runs here with DBT_PG_HOST pointing at a name that cannot
resolve, so a connection attempt would fail the test. The marts' numbers are tested in
test_marts_money.py and test_marts_content.py, their place in Dagster in
test_analytics_dagster.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dbt_run import PROJECT, dbt_env, run_dbt

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PACKAGE = "waifugen_analytics"

# App table -> Python asset that writes it (None: written by sensors/operators, no asset).
SOURCE_ASSETS: dict[str, str | None] = {
    "characters": "characters",
    "reels": "reels",
    "videos": "branded_videos",
    "social_posts": "social_posts",
    "engagement_snapshots": "engagement_metrics",
    "engagement_daily": "engagement_metrics",
    "follower_snapshots": "engagement_metrics",
    "character_phases": "character_phases",
    "subscribers": None,
    "inbound_events": None,
    "dm_sequences": None,
    "dm_messages": "dm_messages",
    "revenue_events": None,
    "credit_ledger": "credit_ledger",
    "budgets": None,
}
PYTHON_ASSETS = {
    "characters", "reel_plans", "reels", "stored_videos", "branded_videos", "social_posts",
    "engagement_metrics", "comment_replies", "character_phases", "dm_messages", "credit_ledger",
}
# The marts (issue 13): daily ones are incremental and tagged `daily`, the rest tables.
DAILY_MARTS = {"daily_revenue_summary", "cost_per_reel", "platform_performance"}
TABLE_MARTS = {"character_ranking", "post_performance", "subscriber_funnel",
               "best_posting_hours"}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dbt")
    # An unresolvable host: parse must not try to connect.
    proc = run_dbt(["parse", "--no-partial-parse"], tmp,
                   dbt_env(DBT_PG_HOST="db.invalid", DBT_PG_PASSWORD="unused"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp / "target" / "manifest.json"


@pytest.fixture(scope="module")
def manifest(manifest_path: Path) -> dict[str, Any]:
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def test_project_files() -> None:
    project = yaml.safe_load((PROJECT / "dbt_project.yml").read_text(encoding="utf-8"))
    assert project["name"] == PACKAGE
    assert project["profile"] == "waifugen"
    # No hub packages: `dbt deps` cannot reach the hub from here or from CI.
    assert not (PROJECT / "packages.yml").exists()
    assert not (PROJECT / "dependencies.yml").exists()

    profiles = yaml.safe_load((PROJECT / "profiles.yml").read_text(encoding="utf-8"))
    (output,) = profiles["waifugen"]["outputs"].values()
    assert output["type"] == "postgres"
    for key, var in (("host", "DBT_PG_HOST"), ("user", "DBT_PG_USER"),
                     ("password", "DBT_PG_PASSWORD"), ("dbname", "DBT_PG_DBNAME"),
                     ("port", "DBT_PG_PORT"), ("schema", "DBT_PG_SCHEMA")):
        assert f"env_var('{var}'" in str(output[key]), key
    assert str(output["password"]) == "{{ env_var('DBT_PG_PASSWORD', '') }}"


def test_manifest_has_the_models(manifest: dict[str, Any]) -> None:
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    staging = {name for name, n in models.items() if n["path"].startswith("staging/")}
    assert set(models) - staging == DAILY_MARTS | TABLE_MARTS
    for name in staging:
        assert models[name]["config"]["materialized"] == "view", name
        assert name.startswith("stg_"), name
    for name in DAILY_MARTS:
        config = models[name]["config"]
        assert config["materialized"] == "incremental" and "daily" in config["tags"], name
        assert config["incremental_strategy"] == "delete+insert", name
    for name in TABLE_MARTS:
        assert models[name]["config"]["materialized"] == "table", name
        assert "daily" not in models[name]["config"]["tags"], name
    for name in DAILY_MARTS | TABLE_MARTS:  # marts read staging and marts, never sources
        parents = models[name]["depends_on"]["nodes"]
        assert parents and not [p for p in parents if p.startswith("source.")], name
        # Analysts may read every mart (dbt grants it after each build).
        assert models[name]["config"]["grants"] == {"select": ["waifugen_analyst"]}, name
        assert models[name]["description"], name
        undocumented = [c for c, col in models[name]["columns"].items()
                        if not col.get("description")]
        assert not undocumented, (name, undocumented)


def test_manifest_has_the_sources_and_their_asset_keys(manifest: dict[str, Any]) -> None:
    sources = {s["name"]: s for s in manifest["sources"].values()}
    assert set(sources) == set(SOURCE_ASSETS)
    for table, asset in SOURCE_ASSETS.items():
        source = sources[table]
        assert source["source_name"] == "app"
        assert source["schema"] == "public"
        meta = source["config"].get("meta") or source.get("meta") or {}
        if asset is None:
            assert "dagster" not in meta, table
        else:
            assert meta["dagster"]["asset_key"] == [asset], table
            assert asset in PYTHON_ASSETS
    # engagement_metrics writes three tables: the translator allows duplicate source keys.
    from waifugen_assets.analytics.assets import TRANSLATOR

    assert TRANSLATOR.settings.enable_duplicate_source_asset_keys


def test_every_mart_tests_its_grain(manifest: dict[str, Any]) -> None:
    grains = {n["attached_node"].rsplit(".", 1)[-1]
              for n in manifest["nodes"].values()
              if n["resource_type"] == "test" and n.get("attached_node")
              and n["test_metadata"]["name"] == "unique_combination"}
    assert grains >= DAILY_MARTS | TABLE_MARTS
