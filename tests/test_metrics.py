"""The metrics collector in process (operations/metrics.py): every family of the design table
with the values the seeded app database and Dagster instance call for; a failing section
shows in `waifugen_collector_errors` and leaves the rest; the bounded reads keep their
meaning (the post-attempt counter only grows across its hourly re-read)."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa
from metrics_world import (
    METRIC_NAMES,
    Expected,
    Key,
    dagster_instance,
    key,
    seed_app,
    seed_dagster,
)
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waifugen_assets.core import schema
from waifugen_assets.operations.metrics import FAMILIES, WaifugenCollector, build_registry
from waifugen_assets.operations.metrics_reads import AttemptTotals
from waifugen_assets.pipeline.instance_stats import RunStats


def scrape(registry) -> dict[Key, float]:
    """name+labels -> value, as a scraper reads the text exposition."""
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[key(sample.name, **sample.labels)] = sample.value
    return out


def check_against(found: dict[Key, float], exp: Expected) -> None:
    wrong = {k: (found.get(k), v) for k, v in exp.exact.items()
             if k not in found or not math.isclose(found[k], v, rel_tol=1e-9, abs_tol=1e-3)}
    assert not wrong, f"(found, expected): {wrong}"


@pytest.fixture
def instance(pg_server_url: str) -> Iterator[dg.DagsterInstance]:
    with dagster_instance(pg_server_url) as (inst, _):
        yield inst


@pytest.fixture
def seeded(engine: sa.Engine, instance: dg.DagsterInstance):
    exp = seed_app(engine)
    dagster = seed_dagster(instance, exp)
    return exp, dagster


def test_every_metric_has_the_seeded_values(engine: sa.Engine, instance: dg.DagsterInstance,
                                            seeded) -> None:
    exp, dagster = seeded
    found = scrape(build_registry(engine, RunStats(instance)))

    assert {k[0] for k in found} == set(METRIC_NAMES)
    assert [f.name for f in FAMILIES] == list(METRIC_NAMES)
    check_against(found, exp)
    # Nothing beyond what the seed calls for in the families with exact expectations.
    for name in ("waifugen_reels", "waifugen_posts", "waifugen_dm_messages",
                 "waifugen_comment_replies", "waifugen_post_attempts_total",
                 "waifugen_budget_used_ratio", "waifugen_quota_used_ratio",
                 "waifugen_last_post_timestamp_seconds", "waifugen_dagster_runs",
                 "waifugen_dagster_run_duration_seconds",
                 "waifugen_backup_last_success_timestamp_seconds"):
        assert {k for k in found if k[0] == name} == {k for k in exp.exact if k[0] == name}, name

    ages = {dict(k[1])["daemon"]: v for k, v in found.items()
            if k[0] == "waifugen_dagster_daemon_heartbeat_age_seconds"}
    elapsed = time.time() - dagster.seeded_at
    for daemon, age in dagster.heartbeat_ages.items():
        assert age <= ages[daemon] <= age + elapsed + 1
    never = set(instance.get_required_daemon_types()) - set(dagster.heartbeat_ages)
    assert never and all(ages[d] == math.inf for d in never)
    assert set(ages) == set(dagster.heartbeat_ages) | never

    for database in ("app", "dagster"):
        assert 0 < found[key("waifugen_db_probe_seconds", database=database)] < 10
    errors = {dict(k[1])["section"]: v for k, v in found.items()
              if k[0] == "waifugen_collector_errors"}
    assert errors and set(errors.values()) == {0.0}, errors


def test_a_missing_table_fails_its_section_only(engine: sa.Engine,
                                                instance: dg.DagsterInstance, seeded) -> None:
    exp, _ = seeded
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE backups"))
    found = scrape(build_registry(engine, RunStats(instance)))
    assert found[key("waifugen_collector_errors", section="backups")] == 1
    assert not [k for k in found if k[0].startswith("waifugen_backup_")]
    others = {k: v for k, v in found.items()
              if k[0] == "waifugen_collector_errors" and k != key(
                  "waifugen_collector_errors", section="backups")}
    assert others and set(others.values()) == {0.0}
    check_against(found, Expected(exp.now, {k: v for k, v in exp.exact.items()
                                            if not k[0].startswith("waifugen_backup_")}))


def test_a_broken_dagster_storage_fails_the_run_sections(engine: sa.Engine,
                                                         instance: dg.DagsterInstance,
                                                         seeded) -> None:
    with instance.run_storage.connect() as conn:  # the instance's own database
        conn.execute(sa.text("DROP TABLE runs CASCADE"))
    found = scrape(build_registry(engine, RunStats(instance)))
    assert found[key("waifugen_collector_errors", section="dagster_runs")] == 1
    assert not [k for k in found if k[0].startswith("waifugen_dagster_run")]
    # The heartbeats live in their own table, the app database is untouched.
    assert found[key("waifugen_collector_errors", section="dagster_daemons")] == 0
    assert key("waifugen_dagster_daemon_heartbeat_age_seconds", daemon="SENSOR") in found
    assert found[key("waifugen_a2e_credits_remaining")] == 4200


def test_an_unreachable_app_database_still_serves_dagster(pg_server_url: str,
                                                          instance: dg.DagsterInstance) -> None:
    from conftest import database_url

    gone = sa.create_engine(database_url(pg_server_url, "wg_no_such_database"))
    found = scrape(build_registry(gone, RunStats(instance)))
    errors = {dict(k[1])["section"]: v for k, v in found.items()
              if k[0] == "waifugen_collector_errors"}
    app = {"db_app", "credits", "budget", "reels", "post_attempts", "posts", "last_post",
           "dm_messages", "comment_replies", "quotas", "backups", "credentials", "report"}
    assert {s for s, v in errors.items() if v == 1} == app
    assert {s for s, v in errors.items() if v == 0} == {"db_dagster", "dagster_runs",
                                                        "dagster_daemons"}
    assert key("waifugen_db_probe_seconds", database="dagster") in found
    assert key("waifugen_db_probe_seconds", database="app") not in found


def test_registering_reads_nothing(pg_server_url: str, instance: dg.DagsterInstance) -> None:
    """describe() names the families without a query: a server starts whatever the state."""
    from conftest import database_url

    gone = sa.create_engine(database_url(pg_server_url, "wg_no_such_database"))
    collector = WaifugenCollector(gone, RunStats(instance))
    assert [m.name for m in collector.describe()] == [
        f.name.removesuffix("_total") for f in FAMILIES]


def test_attempt_totals_grow_across_the_hourly_reread(engine: sa.Engine) -> None:
    """The settled part (attempts older than a day) is re-read once an hour, the rest every
    time: an old attempt whose outcome is written late is counted at the next hourly read, a
    new one at once, and no total ever goes down."""
    exp = seed_app(engine)
    pa, sp = schema.post_attempts, schema.social_posts
    with engine.begin() as conn:
        old = conn.scalar(sa.select(sp.c.id).where(sp.c.platform == "youtube",
                                                   sp.c.state == "published"))
        new = conn.scalar(sa.select(sp.c.id).where(sp.c.platform == "tiktok",
                                                   sp.c.state == "failed_retryable"))
        conn.execute(sa.update(pa).where(pa.c.post_id == old)  # 70 h old, no outcome yet
                     .values(outcome=None, finished_at=None))
    totals = AttemptTotals(refresh_seconds=3600)
    t0 = exp.now.timestamp()
    reads = []
    with engine.connect() as conn:
        reads.append(totals.read(conn, t0))
    assert reads[0][("youtube", "success")] == 0
    with engine.begin() as conn:
        for post_id in (old, new):
            conn.execute(sa.update(pa).where(pa.c.post_id == post_id, pa.c.outcome.is_(None))
                         .values(outcome="success", finished_at=sa.func.now()))
    with engine.connect() as conn:
        reads.append(totals.read(conn, t0 + 60))
        reads.append(totals.read(conn, t0 + 3700))
    assert [r[("tiktok", "success")] for r in reads] == [0, 1, 1]  # live: at once
    assert [r[("youtube", "success")] for r in reads] == [0, 0, 1]  # settled: hourly
    for series in reads[0]:
        assert reads[0][series] <= reads[1][series] <= reads[2][series], series


def test_runout_is_absent_without_spend(engine: sa.Engine,
                                       instance: dg.DagsterInstance) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.credit_ledger).values(
            provider="a2e", kind="balance_snapshot", external_ref=f"balance:{today}",
            credits=777, ledger_date=today))
    found = scrape(build_registry(engine, RunStats(instance)))
    assert found[key("waifugen_a2e_credits_remaining")] == 777
    assert key("waifugen_a2e_credits_runout_timestamp_seconds") not in found
    assert key("waifugen_cost_per_reel_credits") not in found
    assert found[key("waifugen_budget_used_ratio", provider="a2e")] == 0


@pytest.mark.parametrize(("balance", "runs_out"), [
    (1000, dt.date(2026, 3, 20)),  # ceil(1000 * 7 / 700) = 10 days after the scrape's day
    (1, dt.date(2026, 3, 11)),  # less than a day's burn: tomorrow
    (0, dt.date(2026, 3, 10)),  # nothing left: today, already past (the alert fires)
])
def test_runout_is_the_forecast_days_utc_midnight(engine: sa.Engine,
                                                  instance: dg.DagsterInstance, balance: int,
                                                  runs_out: dt.date) -> None:
    """The credit ledger's forecast date as a timestamp (Prometheus' base unit): its UTC
    midnight, counted from the collector's own UTC day, late in the evening included."""
    now = dt.datetime(2026, 3, 10, 23, 59, 30, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.credit_ledger).values(
            provider="a2e", kind="balance_snapshot", external_ref="balance:2026-03-10",
            credits=balance, ledger_date=now.date(), occurred_at=now))
        for i, day in enumerate((now.date(), now.date() - dt.timedelta(days=6),
                                 now.date() - dt.timedelta(days=7))):  # the last is not in
            conn.execute(sa.insert(schema.credit_ledger).values(
                provider="a2e", kind="task_cost", external_ref=f"t{i}", credits=350,
                ledger_date=day))
    found = scrape(build_registry(engine, RunStats(instance), now=lambda: now))
    assert found[key("waifugen_a2e_credits_runout_timestamp_seconds")] == dt.datetime(
        runs_out.year, runs_out.month, runs_out.day, tzinfo=dt.UTC).timestamp()
