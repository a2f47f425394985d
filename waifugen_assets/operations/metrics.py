"""The Prometheus metrics of waifugen (docs: /metrics of `waifugen metrics serve`).

A `prometheus_client` custom collector in its own `CollectorRegistry`, evaluated when scraped
(no Pushgateway: a run that crashed or never started would never push). It reads the app
database (operations/metrics_reads.py) and the Dagster instance (pipeline/instance_stats.py).

Each section is read on its own: a section that fails (a table missing, the Dagster storage
down, a query over its time limit) sets `waifugen_collector_errors{section}` to 1 and leaves
its metrics out of this scrape; the rest is still served with HTTP 200. A section's samples are
kept only when the whole section succeeded, so a scrape never shows half a section.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waifugen_assets.core import clock, redaction
from waifugen_assets.core.config import Settings, get_settings
from waifugen_assets.operations import metrics_reads as reads
from waifugen_assets.operations.metrics_reads import Context, Sample
from waifugen_assets.pipeline.instance_stats import RunStats

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 5000  # one section's queries; Prometheus gives up on a scrape at 10 s
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Family:
    name: str  # as exposed (a counter's name ends in _total)
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    help: str
    section: str  # which part of the collector produces it

    def empty(self) -> Metric:
        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return cls(self.name, self.help, labels=list(self.labels))


def _g(name: str, labels: tuple[str, ...], help_: str, section: str) -> Family:
    return Family(name, "gauge", labels, help_, section)


# The metric names other parts rely on (alert rules, dashboards): the design's table.
FAMILIES: tuple[Family, ...] = (
    _g("waifugen_a2e_credits_remaining", (), "Newest A2E balance snapshot (credit_ledger).",
       "credits"),
    _g("waifugen_a2e_credits_runout_timestamp_seconds", (), "UTC midnight of the day the A2E "
       "balance runs out at the 7-day average spend (absent without spend).", "credits"),
    _g("waifugen_budget_used_ratio", ("provider",), "This month's committed credits / the "
       "month's limit.", "budget"),
    _g("waifugen_reels", ("stage",), "Reels of the current UTC day's partitions by status.",
       "reels"),
    _g("waifugen_cost_per_reel_credits", (), "A2E credits per reel costed in the last 7 days.",
       "credits"),
    Family("waifugen_post_attempts_total", "counter", ("platform", "outcome"),
           "Publish attempts (post_attempts rows) by outcome.", "post_attempts"),
    _g("waifugen_posts", ("platform", "state"), "Social posts of the last 7 days' reels by "
       "state.", "posts"),
    _g("waifugen_last_post_timestamp_seconds", ("character",), "Newest published_at per "
       "enabled character.", "last_post"),
    _g("waifugen_dagster_runs", ("job", "status"), "Dagster runs created in the last 24 h by "
       "job and status.", "dagster_runs"),
    _g("waifugen_dagster_run_duration_seconds", ("job",), "Duration of the newest finished "
       "run per job (last 24 h).", "dagster_runs"),
    _g("waifugen_dagster_runs_queued", (), "Dagster runs QUEUED or NOT_STARTED now.",
       "dagster_runs"),
    _g("waifugen_dagster_daemon_heartbeat_age_seconds", ("daemon",), "Seconds since each "
       "Dagster daemon's last heartbeat (+Inf: a required daemon never sent one).",
       "dagster_daemons"),
    _g("waifugen_db_probe_seconds", ("database",), "Time to connect and run SELECT 1 at "
       "scrape time.", "db_app|db_dagster"),
    _g("waifugen_dm_messages", ("state",), "DMs created in the last 7 days by state (held and "
       "queued_manual: all).", "dm_messages"),
    _g("waifugen_comment_replies", ("state",), "Comment replies created in the last 7 days by "
       "state (held: all).", "comment_replies"),
    _g("waifugen_quota_used_ratio", ("service", "window"), "Used / limit of tracked quotas "
       "(busiest key).", "quotas"),
    _g("waifugen_backup_last_success_timestamp_seconds", ("database",), "finished_at of the "
       "newest done backup archive per database.", "backups"),
    _g("waifugen_backup_last_verified_timestamp_seconds", (), "Newest verified_at of an "
       "archive whose restore drill passed.", "backups"),
    _g("waifugen_credential_rotated_timestamp_seconds", ("name",), "When each credential was "
       "last rotated (else created).", "credentials"),
    _g("waifugen_report_last_sent_timestamp_seconds", (), "Newest sent_at of the daily "
       "report's messages.", "report"),
    _g("waifugen_collector_errors", ("section",), "1 when a section of the collector failed "
       "this scrape (its metrics are left out; the rest is served).", "collector"),
)
BY_NAME = {f.name: f for f in FAMILIES}

AppRead = Callable[[sa.Connection, Context], list[Sample]]


class WaifugenCollector(Collector):
    """Reads everything at scrape time; `runs` holds the only state kept between scrapes
    (the Dagster run window), with the post-attempt totals."""

    def __init__(self, engine: sa.Engine, runs: RunStats, *, settings: Settings | None = None,
                 now: Callable[[], dt.datetime] = clock.now,
                 statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> None:
        self.engine, self.runs = engine, runs
        self.settings = settings or get_settings()
        self.now = now
        self.statement_timeout_ms = statement_timeout_ms
        # Its own connections without a pool, so the probe times a real connect.
        self._probe_engine = sa.create_engine(
            engine.url, poolclass=sa.NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        self._attempts = reads.AttemptTotals()
        self.app_sections: tuple[tuple[str, AppRead], ...] = (
            ("credits", reads.credits), ("budget", reads.budget), ("reels", reads.reels),
            ("post_attempts", lambda c, x: reads.attempts(c, x, self._attempts)),
            ("posts", reads.posts), ("last_post", reads.last_posts),
            ("dm_messages", reads.dm_messages), ("comment_replies", reads.comment_replies),
            ("quotas", reads.quotas), ("backups", reads.backups),
            ("credentials", reads.credentials), ("report", reads.report))

    def describe(self) -> Iterator[Metric]:
        """The families without reading anything (registration must not query)."""
        for family in FAMILIES:
            yield family.empty()

    def collect(self) -> Iterator[Metric]:
        families = {f.name: f.empty() for f in FAMILIES}
        errors: dict[str, int] = {}
        logged: list[Exception] = []  # a database that is down: said once, not per section

        def run(section: str, read: Callable[[], list[Sample]]) -> Exception | None:
            try:
                samples = read()
            except Exception as exc:  # any failure stays inside its section
                errors[section] = 1
                if not any(exc is seen for seen in logged):
                    logged.append(exc)
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    log.warning("metrics: section %s failed: %s: %s", section,
                                type(exc).__name__, redaction.redact(first)[:300])
                return exc
            errors[section] = 0
            for name, labels, value in samples:
                family = BY_NAME[name]
                families[name].add_metric([labels[k] for k in family.labels], value)
            return None

        def unreachable(exc: Exception) -> list[Sample]:
            raise exc

        ctx = Context(self.now(), self.settings)
        # A database that does not answer the probe is not asked again by every section (each
        # would wait out its own connect timeout, past the scrape's).
        app_down = run("db_app", lambda: [("waifugen_db_probe_seconds", {"database": "app"},
                                           self._probe_app())])
        with ExitStack() as stack:
            connection = _LazyConnection(self.engine, stack, app_down)
            for section, read in self.app_sections:
                run(section, lambda read=read: connection.section(  # type: ignore[misc]
                    read, ctx, self.statement_timeout_ms))
        dagster_down = run("db_dagster", lambda: [
            ("waifugen_db_probe_seconds", {"database": "dagster"}, self.runs.probe_seconds())])
        run("dagster_runs", lambda: unreachable(dagster_down) if dagster_down
            else self._dagster_runs())
        run("dagster_daemons", lambda: unreachable(dagster_down) if dagster_down else [
            ("waifugen_dagster_daemon_heartbeat_age_seconds", {"daemon": d}, age)
            for d, age in sorted(self.runs.heartbeat_ages().items())])
        for section, failed in errors.items():
            families["waifugen_collector_errors"].add_metric([section], float(failed))
        yield from families.values()

    def _probe_app(self) -> float:
        started = time.perf_counter()
        with self._probe_engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return time.perf_counter() - started

    def _dagster_runs(self) -> list[Sample]:
        counts, durations = self.runs.runs()
        out: list[Sample] = [("waifugen_dagster_runs", {"job": j, "status": s}, float(n))
                             for (j, s), n in sorted(counts.items())]
        out += [("waifugen_dagster_run_duration_seconds", {"job": j}, d)
                for j, d in sorted(durations.items())]
        out.append(("waifugen_dagster_runs_queued", {}, float(self.runs.waiting())))
        return out


class _LazyConnection:
    """One app-database connection per scrape, opened by the first section that needs it;
    each section in its own transaction with a statement time limit. When the connect fails,
    every later section fails at once with the same error (no second connect timeout)."""

    def __init__(self, engine: sa.Engine, stack: ExitStack,
                 error: Exception | None = None) -> None:
        self.engine, self.stack = engine, stack
        self._conn: sa.Connection | None = None
        self._error = error

    def section(self, read: AppRead, ctx: Context, timeout_ms: int) -> list[Sample]:
        if self._error is not None:
            raise self._error
        if self._conn is None:
            try:
                self._conn = self.stack.enter_context(self.engine.connect())
            except Exception as exc:
                self._error = exc
                raise
        with self._conn.begin():
            self._conn.execute(sa.text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            return read(self._conn, ctx)


def build_registry(engine: sa.Engine, runs: RunStats, **kw: object) -> CollectorRegistry:
    """A dedicated registry holding only the waifugen collector (no process metrics: the
    scrape reflects the pipeline, not this server)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WaifugenCollector(engine, runs, **kw))  # type: ignore[arg-type]
    return registry
