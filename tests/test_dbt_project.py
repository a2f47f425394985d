"""dbt_analytics: the project parses, its sources map onto the Python assets, dagster-dbt agrees.

`dbt parse` needs no database: it runs here with DBT_PG_HOST pointing at a name that cannot
resolve, so a connection attempt would fail the test. The `integration` test builds the models
and runs the data tests against a migrated app database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_dbt import DbtCliResource, dbt_assets
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "dbt_analytics"
VENV_BIN = Path(sys.executable).parent
PACKAGE = "waifugen_analytics"

# App table -> Python asset that writes it (None: written by sensors/operators, no asset).
SOURCE_ASSETS: dict[str, str | None] = {
    "characters": "characters",
    "reels": "reels",
    "videos": "branded_videos",
    "social_posts": "social_posts",
    "engagement_snapshots": "engagement_metrics",
    "follower_snapshots": None,
    "subscribers": None,
    "dm_messages": "dm_messages",
    "revenue_events": None,
    "credit_ledger": "credit_ledger",
    "budgets": None,
}
PYTHON_ASSETS = {
    "characters", "reel_plans", "reels", "stored_videos", "branded_videos", "social_posts",
    "engagement_metrics", "comment_replies", "dm_messages", "credit_ledger",
}
MODELS = {
    "stg_reels": ("view", {"reels"}),
    "stg_social_posts": ("view", {"social_posts"}),
    "stg_credit_ledger": ("view", {"credit_ledger"}),
    "cost_per_reel": ("table", set()),
}


def dbt_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
               DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1", **extra)
    return env


def run_dbt(args: list[str], tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dbt", *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=300,
    )


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
    assert set(models) == set(MODELS)
    for name, (materialized, source_tables) in MODELS.items():
        node = models[name]
        assert node["config"]["materialized"] == materialized, name
        sources = {manifest["sources"][s]["name"] for s in node["depends_on"]["nodes"]
                   if s.startswith("source.")}
        assert sources == source_tables, name
    mart_parents = set(models["cost_per_reel"]["depends_on"]["nodes"])
    assert mart_parents == {f"model.{PACKAGE}.stg_reels", f"model.{PACKAGE}.stg_credit_ledger"}


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
    mapped = [a for a in SOURCE_ASSETS.values() if a]
    assert len(mapped) == len(set(mapped)), "dagster-dbt rejects duplicate source asset keys"


def test_schema_tests(manifest: dict[str, Any]) -> None:
    tests = {
        (n["attached_node"].rsplit(".", 1)[-1], n["column_name"], n["test_metadata"]["name"])
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and n.get("attached_node")
    }
    for model, column in (("cost_per_reel", "partition_key"), ("stg_reels", "reel_id"),
                          ("stg_social_posts", "post_id"), ("stg_credit_ledger", "entry_id")):
        assert (model, column, "unique") in tests
        assert (model, column, "not_null") in tests
    for column in ("character_id", "reel_date", "reels_generated", "credits_spent"):
        assert ("cost_per_reel", column, "not_null") in tests


def test_dagster_dbt_puts_models_downstream_of_python_assets(manifest_path: Path) -> None:
    """The default translator turns the source meta into deps on the Python assets' keys."""

    # `context` unannotated: with `from __future__ import annotations` Dagster 1.13 rejects the
    # string annotation "AssetExecutionContext".
    @dbt_assets(manifest=manifest_path)
    def analytics(context, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    stg = {name: dg.AssetKey(["staging", name])
           for name in ("stg_reels", "stg_social_posts", "stg_credit_ledger")}
    assert analytics.asset_deps == {
        stg["stg_reels"]: {dg.AssetKey("reels")},
        stg["stg_social_posts"]: {dg.AssetKey("social_posts")},
        stg["stg_credit_ledger"]: {dg.AssetKey("credit_ledger")},
        dg.AssetKey("cost_per_reel"): {stg["stg_reels"], stg["stg_credit_ledger"]},
    }
    # Model data tests become asset checks (unique/not_null on the mart's partition_key).
    assert dg.AssetCheckKey(dg.AssetKey("cost_per_reel"), "unique_cost_per_reel_partition_key") \
        in analytics.check_keys


SEED_SQL = """
INSERT INTO characters (id, name, age, timezone) VALUES
    ('aiko', 'Aiko', 24, 'Asia/Tokyo'), ('mei', 'Mei', 22, 'Europe/Berlin');
INSERT INTO reels (id, character_id, date, slot, scheduled_at, status) VALUES
    (1, 'aiko', '2026-01-02', 0, '2026-01-01T23:30:00Z', 'published'),
    (2, 'aiko', '2026-01-02', 1, '2026-01-02T09:00:00Z', 'failed'),
    (3, 'mei',  '2026-01-02', 0, '2026-01-02T08:00:00Z', 'planned');
INSERT INTO credit_ledger (provider, kind, character_id, reel_id, external_ref, credits,
                           ledger_date) VALUES
    ('a2e', 'task_cost', 'aiko', 1, 'task-1', 30, '2026-01-02'),
    ('a2e', 'task_cost', 'aiko', 2, 'task-2', 25, '2026-01-02'),
    ('a2e', 'balance_snapshot', NULL, NULL, NULL, 19945, '2026-01-02');
"""


@pytest.mark.integration
def test_models_build_on_the_migrated_app_database(db_url: str, tmp_path: Path) -> None:
    """`dbt build` (models + data tests) on the real schema, and the mart's numbers."""
    url = make_url(db_url)
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names(schema="public"))
        needed = {"characters", "reels", "social_posts", "credit_ledger"}
        if not needed <= tables:
            pytest.skip(f"the migrations do not create {sorted(needed - tables)} yet")
        with engine.begin() as conn:
            for statement in SEED_SQL.split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement))

        env = dbt_env(
            DBT_PG_HOST=str(url.query.get("host") or url.host or "127.0.0.1"),
            DBT_PG_PORT=str(url.port or 5432), DBT_PG_USER=url.username or "postgres",
            DBT_PG_PASSWORD=url.password or "", DBT_PG_DBNAME=str(url.database),
            DBT_PG_SCHEMA="analytics_test",
        )
        proc = run_dbt(["build"], tmp_path, env)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr

        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT partition_key, reels_planned, reels_generated, credits_spent,"
                " credits_per_generated_reel FROM analytics_test.cost_per_reel"
                " ORDER BY partition_key")).all()
    finally:
        engine.dispose()
    # Failed generations count as cost; balance snapshots are not spend.
    assert [tuple(r) for r in rows] == [
        ("aiko|2026-01-02", 2, 1, 55, Decimal("55.00")),
        ("mei|2026-01-02", 1, 0, 0, None),
    ]
