"""`waifugen status`: the report of waifugen_assets.reporting.status as text, and the
`daily_status` refresh a CLI run ends with (so the Dagster UI shows the day it ran)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from waifugen_assets.reporting.status import DM_BUCKETS, POST_COLUMNS, STAGES, day_status

__all__ = ["day_status", "refresh_daily_status", "render_text"]


def render_text(report: dict[str, Any]) -> str:
    header = (f"{'character':<20}{'date':<11}{'phase':<12}" + "".join(f"{s:>10}" for s in STAGES)
              + "   posts (published/pending/deferred/skipped/failed)        budget"
              + "   dms (subscribers: sent/waiting/held/manual/skipped)"
              + "   views 24h  followers  replies 24h/held")
    title = (f"waifugen status for {report['date']}" if report["date"]
             else "waifugen status, each character's local today")
    lines = [title, header]
    for c in report["characters"]:
        posts = "  ".join(f"{p[:2]} " + "/".join(str(v[k]) for k in POST_COLUMNS)
                          for p, v in c["posts"].items())
        lines.append(
            f"{c['id']:<20}{c['date']:<11}{c['phase']:<12}"
            + "".join(f"{c['reels'][s]:>10}" for s in STAGES)
            + f"   {posts:<54}{c['budget']['used']:>6}/{c['budget']['limit']:<8}"
            + f"   {c['dms']['subscribers']}: " + "/".join(
                str(c["dms"][b]) for b in DM_BUCKETS)
            + f"   {c['engagement']['views_24h']:>9,}  {c['engagement']['followers']:>9,}"
            + f"  {c['engagement']['replies_sent_24h']}/{c['engagement']['replies_held']}"
        )
    notes = [f"  {c['id']}: {n} {what}" for c in report["characters"]
             for what, n in c.get("open", {}).items()]
    if notes:
        lines += ["", "Not done yet (the generation and posting sensors resume what can be):",
                  *notes]
    failed = [f"  {c['id']}: {n} {what}" for c in report["characters"]
              for what, n in c.get("failed", {}).items()]
    if failed:
        lines += ["", "Failed (not retried):", *failed]
    if report["characters"]:
        lines += ["", "Comments: Instagram and YouTube are answered (`waifugen comments review` "
                  "lists held ones); TikTok offers no comment API to this kind of app."]
    if not report["characters"]:
        lines.append("(no enabled characters: run `waifugen run` to load the roster)")
    return "\n".join(lines)


def refresh_daily_status(defs: dg.Definitions, instance: dg.DagsterInstance,
                         days: Mapping[str, dt.date] | Iterable[dt.date],
                         tags: Mapping[str, str] | None = None) -> list[str]:
    """Materialize `daily_status` for each date a run worked on (the daemon's `status`
    sensor does this after publish runs; a CLI run has no daemon). Returns one line per
    failed refresh: the day's own runs already succeeded or failed on their own, so a
    failed report is told, not raised."""
    dates = sorted(set(days.values() if isinstance(days, Mapping) else days))
    job = defs.resolve_job_def("status")
    failures = []
    for day in dates:
        result = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False,
            tags={"waifugen/trigger": "cli", **(tags or {})},
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        if not result.success:
            failures.append(f"daily_status {day}: run {result.run_id} failed (see the "
                            "Dagster UI)")
    return failures


def sandbox_summary(url: str, today: dt.date) -> str:
    """What the sandbox platforms hold, counted there: posts per platform (a reel posted twice
    on an account shows), and the comment replies sent through their APIs."""
    from sandbox.published import (
        comment_replies,
        operator_reports,
        published,
        render,
        render_replies,
        render_reports,
        summarize,
    )

    return "\n".join([
        "", "On the sandbox platforms (every day so far; twice = a reel posted more than once "
        "on an account):", render(summarize(published(url), today)),
        "", "Comment replies on the sandbox platforms (twice = a comment answered more than "
        "once; unsafe/own = a sexual, minors or own comment answered):",
        render_replies(comment_replies(url)),
        "", "Daily reports in the operators' Telegram chat (one photo and one message a day):",
        render_reports(operator_reports(url))])
