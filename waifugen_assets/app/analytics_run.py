"""The analytics end of `waifugen run`: the credit ledger, the marts and the daily report for
one UTC day, in the order the schedules run them (the daily_analytics job at 00:10, then the
whole-table marts at 00:30). dbt's own output goes to a log file under WAIFUGEN_HOME/logs
(Dagster keeps it with each run too), not to the terminal."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from waifugen_assets.app.local_stack import QUIET, failure_messages, one_line
from waifugen_assets.core import schema

NOT_MARTS = ("credit_ledger", "daily_report")


@dataclass
class AnalyticsRun:
    day: dt.date
    failures: list[str] = field(default_factory=list)
    marts: int = 0  # dbt marts materialized
    checks_passed: int = 0
    checks_failed: int = 0
    log: Path | None = None

    def summary(self, engine: sa.Engine) -> str:
        """One line: what was built, and where the day's report stands in the chat."""
        rm = schema.report_messages
        with engine.connect() as conn:
            parts = dict(conn.execute(sa.select(rm.c.part, rm.c.state)
                                      .where(rm.c.report_date == self.day)).all())
        report = ", ".join(f"{p} {parts[p]}" for p in ("photo", "text") if p in parts) \
            or "not sent (sandbox only; production sends from the 00:10 UTC schedule)"
        checks = f"{self.checks_passed} dbt tests passed"
        if self.checks_failed:
            checks += f", {self.checks_failed} failed"
        return (f"analytics for {self.day} (UTC): credit ledger, {self.marts} marts built, "
                f"{checks}; daily report: {report}"
                + (f"; dbt output in {self.log}" if self.log else ""))


def run_analytics(defs: dg.Definitions, instance: dg.DagsterInstance, day: dt.date, *,
                  send_report: bool, tags: Mapping[str, str], log_dir: Path) -> AnalyticsRun:
    """`daily_analytics` job for `day` (staging views, credit_ledger, the daily marts, the
    report; sent only when `send_report`), then the `analytics_tables` job. A failed run is a
    line in `failures`: the day's content runs already succeeded or failed on their own."""
    steps = [
        ("daily_analytics", day.isoformat(),
         {**QUIET, "ops": {"daily_report": {"config": {"send": send_report}}}}),
        ("analytics_tables", None, QUIET),
    ]
    log_dir.mkdir(parents=True, exist_ok=True)
    outcome = AnalyticsRun(day, log=log_dir / f"dbt-{day.isoformat()}.log")
    # dagster-dbt writes dbt's events to stdout and its own notes through Python logging
    # (which partial parse it copied, which selection it used): the log file, not the terminal.
    dbt_logger = logging.getLogger("dagster.builtin")
    level = dbt_logger.level
    with outcome.log.open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        dbt_logger.setLevel(logging.WARNING)
        try:
            _run_jobs(defs, instance, steps, tags, outcome)
        finally:
            dbt_logger.setLevel(level)
    return outcome


def _run_jobs(defs: dg.Definitions, instance: dg.DagsterInstance, steps: list,
              tags: Mapping[str, str], outcome: AnalyticsRun) -> None:
    for name, key, run_config in steps:
        job = defs.resolve_job_def(name)
        try:
            result = job.execute_in_process(partition_key=key, instance=instance,
                                            raise_on_error=False, tags=dict(tags),
                                            run_config=run_config)
        except Exception as exc:
            outcome.failures.append(one_line(f"{name}: {type(exc).__name__}: {exc}"))
            continue
        if not result.success:
            outcome.failures.extend(f"{name}: {m}" for m in failure_messages(result))
        outcome.marts += sum(1 for e in result.get_asset_materialization_events()
                             if e.asset_key.path[0] != "staging"
                             and e.asset_key.to_user_string() not in NOT_MARTS)
        for check in result.get_asset_check_evaluations():
            if check.passed:
                outcome.checks_passed += 1
            else:
                outcome.checks_failed += 1
