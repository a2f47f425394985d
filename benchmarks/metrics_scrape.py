"""Scraping `waifugen metrics serve` over a year of history for 100 characters: the first
scrape after a start (the run window and the post-attempt totals read whole) and the steady
ones (every 15 s in deploy/prometheus/prometheus.yml, given up after 10 s), against the same
server over an empty database in the same run.

    python -m benchmarks metrics_scrape [--characters 100] [--days 365] [--scrapes 20]
                                        [--runs-per-character 10] [--server-url URL]
                                        [--docs PATH] [--no-docs]

Two scratch databases (embedded pgserver in a temp dir, or `--server-url` /
TEST_DATABASE_URL; dropped afterwards): the baseline, migrated, with the roster and today's
work only, and the measured one, seeded as the dbt build harness does
(benchmarks/dbt_build.py: reels, posts, snapshots, comments and replies, subscribers, DMs,
revenue, the credit ledger), plus a post attempt per post that left the queue (one in twenty
retried after an error). Each has its own sandbox home, whose Dagster instance holds
`--runs-per-character` runs per character created in the last 24 h (the window the endpoint
keeps).

The real command serves each database in a process of its own; the harness scrapes it over
HTTP with httpx. A scrape passes when it answers 200 with `waifugen_collector_errors` 0 for
every section (a section over its 5 s statement limit would say 1 and leave its metrics out).
Targets: the first scrape under 10 s (Prometheus's scrape timeout), the steady median under
1 s. Results: docs/benchmarks.md, "## Metrics scrape".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from benchmarks.dbt_build import seed
from benchmarks.report import DOCS, machine, write_section
from benchmarks.scratch_db import database, server, server_version
from benchmarks.servers import free_port, running
from benchmarks.settings_env import environment

HEADING = "## Metrics scrape"
TARGET_FIRST_S, TARGET_STEADY_S = 10.0, 1.0
JOBS = ("reels_day", "post_reels", "engagement", "dm_cycle", "comments")
_ATTEMPTS = """
    INSERT INTO post_attempts (post_id, attempt, started_at, finished_at, outcome, error)
    SELECT sp.id, a.n, sp.updated_at - (3 - a.n) * interval '10 minutes',
           sp.updated_at - (3 - a.n) * interval '10 minutes' + interval '20 seconds',
           CASE WHEN a.n = 2 OR sp.id % 20 <> 0 THEN
                CASE WHEN sp.state = 'failed' THEN 'permanent' ELSE 'success' END
                ELSE 'retryable' END,
           CASE WHEN a.n = 1 AND sp.id % 20 = 0 THEN 'HTTP 503 from the platform' END
    FROM social_posts sp
    CROSS JOIN generate_series(1, 2) AS a(n)
    WHERE sp.state NOT IN ('planned', 'skipped', 'deferred')
      AND (a.n = 1 OR sp.id % 20 = 0)
"""
_ERRORS = re.compile(r'^waifugen_collector_errors\{section="([^"]+)"\} (\S+)$', re.M)


def _total(text: str, family: str) -> int:
    """The sum of a family's samples in a scrape."""
    return int(sum(float(v) for v in re.findall(rf"^{family}\{{[^}}]*\}} (\S+)$", text, re.M)))


@dataclass
class Side:
    """One database served and scraped: the baseline or the measured one."""

    name: str
    rows: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    first: float = 0.0
    steady: list[float] = field(default_factory=list)
    samples: int = 0
    size_kb: float = 0.0
    failed_sections: list[str] = field(default_factory=list)
    runs_reported: int = 0  # waifugen_dagster_runs summed over jobs and statuses
    attempts_reported: int = 0  # waifugen_post_attempts_total summed

    def median(self) -> float:
        return statistics.median(self.steady)


@dataclass
class Result:
    characters: int
    days: int
    scrapes: int
    base: Side
    full: Side
    seed_s: float = 0.0
    database: str = ""

    def verdicts(self) -> dict[str, bool]:
        return {f"first scrape < {TARGET_FIRST_S:.0f} s": self.full.first < TARGET_FIRST_S,
                f"steady median < {TARGET_STEADY_S:.0f} s": self.full.median() < TARGET_STEADY_S,
                "no section failed": not (self.full.failed_sections
                                          or self.base.failed_sections),
                "runs and attempts as seeded": all(
                    s.runs_reported == s.runs
                    and s.attempts_reported == s.rows.get("post_attempts", 0)
                    for s in (self.base, self.full))}

    def ok(self) -> bool:
        return all(self.verdicts().values())

    def line(self) -> str:
        b, f = self.base, self.full
        return (f"metrics_scrape: {self.characters} characters x {self.days} days "
                f"({f.rows.get('social_posts', 0):,} posts, {f.rows.get('post_attempts', 0):,} "
                f"attempts, {f.runs:,} runs in the window): first scrape {f.first:.2f} s "
                f"(target {TARGET_FIRST_S:.0f}), steady {f.median():.3f} s (target "
                f"{TARGET_STEADY_S:.0f}), {f.samples:,} samples; empty database "
                f"{b.first:.2f} s and {b.median():.3f} s (ratios {f.first / b.first:.1f} and "
                f"{f.median() / b.median():.1f}); failed sections: "
                f"{', '.join(f.failed_sections + b.failed_sections) or 'none'}")


def _seed_runs(home: Path, characters: int, per_character: int) -> int:
    """Runs created now in the home's Dagster instance (its window), with every status."""
    import dagster as dg

    from waifugen_assets.app.local_stack import ensure_dagster_home
    from waifugen_assets.core.config import get_settings

    statuses = [dg.DagsterRunStatus.SUCCESS] * 17 + [dg.DagsterRunStatus.FAILURE,
                                                      dg.DagsterRunStatus.CANCELED,
                                                      dg.DagsterRunStatus.NOT_STARTED]
    with environment({"WAIFUGEN_HOME": str(home)}):
        os.environ.pop("DAGSTER_HOME", None)  # the sandbox instance of this home
        try:
            ensure_dagster_home(get_settings())
            with dg.DagsterInstance.get() as instance:
                total = characters * per_character
                for i in range(total):
                    instance.add_run(dg.DagsterRun(job_name=JOBS[i % len(JOBS)],
                                                   status=statuses[i % len(statuses)]))
        finally:
            os.environ.pop("DAGSTER_HOME", None)
    return total


def _scrape(client: httpx.Client, url: str) -> tuple[float, str]:
    start = time.perf_counter()
    response = client.get(url)
    took = time.perf_counter() - start
    response.raise_for_status()
    return took, response.text


def _measure(side: Side, db_url: str, home: Path, scrapes: int, work: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(WAIFUGEN_MODE="sandbox", WAIFUGEN_HOME=str(home), DATABASE_URL=db_url)
    command = [sys.executable, "-m", "waifugen_assets.app.cli", "metrics", "serve",
               "--port", str(port)]
    with running(f"metrics-{side.name}", command, env, port, work) as srv, \
            httpx.Client(timeout=30, trust_env=False) as client:
        url = f"{srv.url}/metrics"
        side.first, text = _scrape(client, url)
        for _ in range(scrapes):
            took, text = _scrape(client, url)
            side.steady.append(took)
    side.samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    side.size_kb = round(len(text.encode()) / 1024, 1)
    side.failed_sections = sorted(s for s, v in _ERRORS.findall(text) if float(v) != 0)
    side.runs_reported = _total(text, "waifugen_dagster_runs")
    side.attempts_reported = _total(text, "waifugen_post_attempts_total")


def _rows(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.scalar(sa.text(f"SELECT count(*) FROM {t}")))  # noqa: S608
                for t in ("characters", "reels", "social_posts", "post_attempts", "comments",
                          "comment_replies", "dm_messages", "credit_ledger")}


def run(characters: int, days: int, scrapes: int, runs_per_character: int,
        server_url: str | None, progress: Callable[[str], None] = print) -> Result:
    from benchmarks.sensor_ticks import Seeder

    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    result = Result(characters, days, scrapes, Side("empty"), Side("seeded"))
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wg-metrics-")))
        srv, where = stack.enter_context(server(server_url))
        for side in (result.base, result.full):
            db_url = stack.enter_context(database(srv, f"metrics_{side.name}"))
            home = tmp / side.name
            with environment({"WAIFUGEN_MODE": "sandbox", "WAIFUGEN_HOME": str(home),
                              "DATABASE_URL": db_url}):
                engine = sa.create_engine(db_url)
                stack.callback(engine.dispose)
                start = time.perf_counter()
                if side is result.full:
                    seed(engine, now, characters, days, progress)
                    with engine.begin() as conn:
                        conn.execute(sa.text(_ATTEMPTS))
                    Seeder(engine, now, characters, 0).vacuum()
                    result.seed_s = time.perf_counter() - start
                    result.database = f"PostgreSQL {server_version(engine)}, {where}"
                else:
                    Seeder(engine, now, characters, 0).roster_and_today(lambda _: None)
                side.rows = _rows(engine)
                side.runs = _seed_runs(home, characters,
                                       runs_per_character if side is result.full else 0)
            progress(f"  {side.name}: {side.rows}, {side.runs:,} runs")
            _measure(side, db_url, home, scrapes, tmp)
            progress(f"  {side.name}: first {side.first:.2f} s, steady median "
                     f"{side.median():.3f} s, {side.samples:,} samples")
    return result


def render(result: Result, when: str, command: str) -> str:
    m = machine()
    b, f = result.base, result.full
    lines = [
        f"{HEADING} (`{command}`)", "",
        f"Measured {when} on {m['cpu']} ({m['cores']} cores, {m['ram_gb']} GB RAM, load "
        f"{m['load_1m']}), {result.database}; seeding took {result.seed_s:.0f} s (not "
        "timed). `waifugen metrics serve` in its own process, scraped over HTTP.", "",
        f"**{result.line()}**", "",
        "| database | first scrape s | steady median s | steady max s | samples | KiB |",
        "|---|---|---|---|---|---|",
        *(f"| {s.name} | {s.first:.2f} | {s.median():.3f} | {max(s.steady):.3f} | "
          f"{s.samples:,} | {s.size_kb} |" for s in (b, f)), "",
        "| verdict | passed |", "|---|---|",
        *(f"| {name} | {'yes' if ok else '**no**'} |"
          for name, ok in result.verdicts().items()), "",
        "| table | rows |", "|---|---|",
        *(f"| {t} | {n:,} |" for t, n in f.rows.items()),
        f"| Dagster runs in the window | {f.runs:,} |", "",
        "The first scrape after a start reads the 24 h run window and the post-attempt totals "
        "whole; later ones read only what changed (pipeline/instance_stats.py, "
        "operations/metrics_reads.py `AttemptTotals`). The empty database is the same server "
        "and sections with nothing to read: the ratio is what the data costs.", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--characters", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--scrapes", type=int, default=20, help="steady scrapes to time")
    parser.add_argument("--runs-per-character", type=int, default=10,
                        help="Dagster runs per character in the last 24 h")
    parser.add_argument("--server-url")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if min(args.characters, args.days, args.scrapes) < 1 or args.runs_per_character < 0:
        parser.error("need --characters, --days and --scrapes of at least 1, "
                     "--runs-per-character of at least 0")
    result = run(args.characters, args.days, args.scrapes, args.runs_per_character,
                 args.server_url)
    print(result.line())
    if not args.no_docs:
        command = (f"python -m benchmarks metrics_scrape --characters {args.characters} "
                   f"--days {args.days} --scrapes {args.scrapes} --runs-per-character "
                   f"{args.runs_per_character}")
        write_section(render(result, dt.date.today().isoformat(), command), HEADING,
                      docs=args.docs)
    return 0 if result.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
