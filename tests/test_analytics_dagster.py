"""The dbt project in Dagster: partitions and vars, lineage onto the Python assets, dbt tests as
checks, real materializations (dbt subprocess on the real database), per-run target folders
removed, and a failed build's message."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.analytics import targets
from waifugen_assets.analytics.assets import (
    analytics_daily,
    analytics_staging,
    analytics_tables,
    dbt_project,
    dbt_resource,
)
from waifugen_assets.analytics.connection import connection_env, dbt_environment
from waifugen_assets.analytics.project import manifest_is_current
from waifugen_assets.analytics.window import LOOKBACK_DAYS, dbt_vars, window_env, window_vars
from waifugen_assets.core.config import Money
from waifugen_assets.pipeline.partitions import daily_partitions

DAILY_MARTS = {"daily_revenue_summary", "cost_per_reel", "platform_performance"}
TABLE_MARTS = {"character_ranking", "post_performance", "subscriber_funnel",
               "best_posting_hours"}


def test_window_is_the_days_and_their_look_back() -> None:
    day = dt.date(2026, 12, 4)
    assert window_vars(day, day) == {"min_date": "2026-12-01", "max_date": "2026-12-05"}
    assert LOOKBACK_DAYS == 3
    assert window_vars(day, dt.date(2026, 12, 10), lookback_days=0) == {
        "min_date": "2026-12-04", "max_date": "2026-12-11"}
    with pytest.raises(ValueError, match="ends"):
        window_vars(day, day - dt.timedelta(days=1))
    assert window_env(day) == {"DBT_WINDOW_MIN_DATE": "2026-12-01",
                               "DBT_WINDOW_MAX_DATE": "2026-12-05"}
    assert window_env() == {"DBT_WINDOW_MIN_DATE": "2000-01-01",
                            "DBT_WINDOW_MAX_DATE": "9999-12-31"}
    # The vars are the same on every run (a var that changes costs dbt a full parse).
    money = Money(currency="EUR", target_credits_per_reel=55)
    assert dbt_vars(money) == {"accounting_currency": "EUR", "credit_price_cents": "1",
                               "runpod_cents_per_second": "0.05",
                               "target_credits_per_reel": 55}


def test_connection_env_and_restore(monkeypatch: pytest.MonkeyPatch) -> None:
    env = connection_env("postgresql+psycopg2://app:s3cret@db.example:6543/wg?sslmode=require")
    assert env == {"DBT_PG_HOST": "db.example", "DBT_PG_PORT": "6543", "DBT_PG_USER": "app",
                   "DBT_PG_PASSWORD": "s3cret", "DBT_PG_DBNAME": "wg",
                   "DBT_PG_SCHEMA": "analytics", "DBT_PG_SSLMODE": "require"}
    # pgserver's URL: a Unix socket directory as the host.
    socket = connection_env("postgresql://postgres:@/wg?host=/tmp/pg")
    assert socket["DBT_PG_HOST"] == "/tmp/pg" and socket["DBT_PG_PASSWORD"] == ""
    monkeypatch.setenv("DBT_PG_HOST", "before")
    monkeypatch.delenv("DBT_INDIRECT_SELECTION", raising=False)
    monkeypatch.delenv("DBT_PG_PASSWORD", raising=False)
    with dbt_environment("postgresql://u:pw@h:1/d"):
        assert os.environ["DBT_PG_HOST"] == "h" and os.environ["DBT_PG_PASSWORD"] == "pw"
    assert os.environ["DBT_PG_HOST"] == "before" and "DBT_PG_PASSWORD" not in os.environ
    with dbt_environment("postgresql://u:pw@h:1/d", indirect_selection="cautious"):
        assert os.environ["DBT_INDIRECT_SELECTION"] == "cautious"
    assert "DBT_INDIRECT_SELECTION" not in os.environ


def test_sweep_removes_only_old_per_run_folders(tmp_path: Path) -> None:
    now = time.time()
    old = tmp_path / "dbt_daily_marts-1a2b3c4-5d6e7f8"
    young = tmp_path / "dbt_tables-aaaaaaa-bbbbbbb"
    for d in (old, young, tmp_path / "compiled"):
        d.mkdir()
        (d / "run_results.json").write_text("{}")
    (tmp_path / "manifest.json").write_text("{}")
    os.utime(old, (now - 2 * 86400, now - 2 * 86400))
    os.utime(tmp_path / "compiled", (now - 2 * 86400, now - 2 * 86400))
    assert targets.sweep(tmp_path, now) == [old]
    assert young.exists() and (tmp_path / "compiled").exists()
    assert (tmp_path / "manifest.json").exists()
    assert targets.sweep(tmp_path / "missing", now) == []


def test_keep_parse_replaces_the_projects_saved_parse(tmp_path: Path) -> None:
    run, target = tmp_path / "dbt_daily_marts-1a2b3c4-5d6e7f8", tmp_path
    run.mkdir()
    (target / "partial_parse.msgpack").write_bytes(b"old")
    targets.keep_parse(run, target)  # a run that saved no parse: the old one stays
    assert (target / "partial_parse.msgpack").read_bytes() == b"old"
    (run / "partial_parse.msgpack").write_bytes(b"new")
    targets.keep_parse(run, target)
    assert (target / "partial_parse.msgpack").read_bytes() == b"new"
    assert sorted(p.name for p in target.iterdir()) == [run.name, "partial_parse.msgpack"]


def test_manifest_is_prepared() -> None:
    assert manifest_is_current(), "run `make setup` (dbt parse)"
    assert dbt_project.manifest_path.exists()


def test_dbt_assets_in_the_graph() -> None:
    daily = {k.to_user_string() for k in analytics_daily.keys}
    tables = {k.to_user_string() for k in analytics_tables.keys}
    staging = {k.to_user_string() for k in analytics_staging.keys}
    assert daily == DAILY_MARTS and tables == TABLE_MARTS
    assert staging and all(k.startswith("staging/") for k in staging)
    assert analytics_daily.partitions_def is daily_partitions  # the same object: mappings inferred
    assert analytics_tables.partitions_def is None and analytics_staging.partitions_def is None
    # Sources sit on the Python assets that write them.
    deps = {k.to_user_string(): {d.to_user_string() for d in v}
            for k, v in analytics_staging.asset_deps.items()}
    assert "reels" in deps["staging/stg_reels"]
    assert "credit_ledger" in deps["staging/stg_credit_ledger"]
    assert "engagement_metrics" in deps["staging/stg_engagement_snapshots"]
    for key in analytics_daily.keys:
        assert analytics_daily.specs_by_key[key].group_name == "analytics"
        assert analytics_daily.specs_by_key[key].owners == ["team:analytics"]
    # dbt tests on models are checks (each mart's grain); source tests are not checks of the
    # Python assets (every content job would start dbt to run them).
    checks = {(c.asset_key.to_user_string(), c.name)
              for a in (analytics_staging, analytics_daily, analytics_tables)
              for c in a.check_keys}
    for mart in DAILY_MARTS | TABLE_MARTS:
        assert any(a == mart and n.startswith("unique_combination") for a, n in checks), mart
    assert not [c for c in checks if c[1].startswith("source_")]
    assert ("daily_revenue_summary",
            "relationships_daily_revenue_summary_character_id__character_id__ref_stg_characters_"
            ) in checks


def test_definitions_schedule_the_analytics() -> None:
    from waifugen_assets.definitions import defs

    job = defs.resolve_job_def("daily_analytics")
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"credit_ledger", "daily_report", "staging/stg_reels"} | DAILY_MARTS <= selected
    tables = defs.resolve_job_def("analytics_tables")
    assert {k.to_user_string() for k in tables.asset_layer.executable_asset_keys} >= TABLE_MARTS
    names = {s.name for s in defs.schedules}
    assert {"daily_report", "analytics_tables"} <= names


SEED = """
INSERT INTO characters (id, name, age, timezone) VALUES ('aiko', 'Aiko', 24, 'Asia/Tokyo');
INSERT INTO reels (id, character_id, date, slot, scheduled_at, status, projected_credits,
                   generation_provider, generation_task_id) VALUES
    (1, 'aiko', '2026-12-03', 0, '2026-12-02T23:30:00Z', 'published', 30, 'a2e', 't1'),
    (2, 'aiko', '2026-12-04', 0, '2026-12-03T23:30:00Z', 'published', 30, 'a2e', 't2');
INSERT INTO credit_ledger (provider, kind, character_id, reel_id, external_ref, credits,
                           ledger_date) VALUES
    ('a2e', 'task_cost', 'aiko', 1, 't1', 28, '2026-12-03'),
    ('a2e', 'task_cost', 'aiko', 2, 't2', 33, '2026-12-04');
"""


def _seed(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for statement in SEED.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))


@pytest.mark.integration
def test_materialize_tables_then_a_day(db_url: str, engine: sa.Engine) -> None:
    _seed(engine)
    target_dir = Path(dbt_project.project_dir) / dbt_project.target_path
    before = {p.name for p in target_dir.iterdir()}
    resources = {"dbt": dbt_resource(), "database": DatabaseResource(url=db_url)}
    with dg.instance_for_test() as instance:
        staging = dg.materialize([analytics_staging], resources=resources, instance=instance)
        assert staging.success
        day = dg.materialize([analytics_daily], partition_key="2026-12-04",
                             resources=resources, instance=instance)
        assert day.success
        tables = dg.materialize([analytics_tables], resources=resources, instance=instance)
        assert tables.success
        materialized = {e.asset_key.to_user_string()
                        for e in day.get_asset_materialization_events()}
        assert materialized == DAILY_MARTS
        checks = day.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)
        meta = next(e.materialization.metadata for e in day.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey("cost_per_reel"))
        assert meta["dagster/row_count"].value >= 1
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT day, credits_spent FROM analytics.cost_per_reel ORDER BY day")).all()
    assert [(r.day.isoformat(), r.credits_spent) for r in rows] == [
        ("2026-12-03", 28), ("2026-12-04", 33)]
    # Each run removed its own target folder.
    assert {p.name for p in target_dir.iterdir()} == before


@pytest.mark.integration
def test_a_failed_build_fails_the_run_naming_dbt(empty_db_url: str) -> None:
    """No app tables (a database never migrated): the run fails and says why."""
    resources = {"dbt": dbt_resource(), "database": DatabaseResource(url=empty_db_url)}
    with dg.instance_for_test() as instance:
        result = dg.materialize([analytics_staging], resources=resources, instance=instance,
                                raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "dbt" in message.lower()
