"""Day at scale: one simulated day of N characters, at the providers' production limits.

    python -m benchmarks day_at_scale [--characters 32] [--render-seconds 240]
                                      [--requests-per-hour 100] [--tick 60] [--timezone TZ]
                                      [--server-url URL] [--docs PATH] [--no-docs]

The roster is characters.yaml cycled to N characters (clones get `-2`, `-3`, ... ids and
handles; every one keeps its time zone and its four local slots, or all move to `--timezone`:
the worst case for A2E's hourly budget, every day beginning at the same midnight). Everything
real but the clock: a fresh PostgreSQL database (embedded pgserver in a temp dir, or
`--server-url` / TEST_DATABASE_URL), the sandbox over HTTP with its production limits (A2E: 100
requests an hour per key, renders of `--render-seconds` x 0.75-1.25 each, TikTok's 6 inits a
minute and daily cap, Instagram's 50 publishes a day, YouTube's 10,000 units a day with 1,600
an upload), real ffmpeg branding, the code location's own schedules, sensors and jobs on a
temporary Dagster instance.

The clock is injected (waifugen_assets.core.clock.simulate, and the sandbox's /_sandbox/clock
follows it): from just before the easternmost character's local midnight to an hour and a half
after the westernmost one's last slot, every `--tick` seconds the `daily_plans` schedule (at
minute 5), then the `generation` and `posting` sensors are evaluated, and the runs they ask for
are executed in process, one after the other, at that moment (a run that waits for a poll
moves the clock on). Run keys are deduplicated as Dagster does.

The result line:

    day_at_scale: N characters, R reels, ready before slot P%, published once Q%, deferred D,
    posted twice T, A2E requests per reel K, wall W s

R planned reels; P the share branded by their slot time; Q the posts the platforms hold exactly
once, as a share of the posts their quotas allowed (every platform of every reel that was made,
less D); D posts a platform quota deferred (YouTube's daily units): still waiting at the end,
or skipped as stale because the quota freed up hours after their slot; T
reels posted more than once on an account (counted on the sandbox); K A2E API requests (TTS,
submit, status, list: the sandbox's journal) per reel rendered, against the 3 a reel costs at
the least when each task is polled by itself; W wall-clock seconds of the whole simulation.
Results: docs/benchmarks.md, "## Day at scale: N characters".
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import logging
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from ruamel.yaml import YAML

from benchmarks.report import DOCS, machine, write_section
from benchmarks.scratch_db import database, server
from benchmarks.settings_env import environment

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261205
PLATFORMS = ("tiktok", "instagram", "youtube")
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def build_roster(n: int, dest: Path, timezone: str | None = None) -> list[dict[str, Any]]:
    """characters.yaml cycled to `n` characters (all moved to `timezone` if given); written
    to `dest`."""
    yaml = YAML()
    data = yaml.load((ROOT / "characters.yaml").read_text(encoding="utf-8"))
    base = list(data["characters"])
    people = []
    for i in range(n):
        c = copy.deepcopy(base[i % len(base)])
        copy_no = i // len(base) + 1
        if copy_no > 1:
            c["id"] = f"{c['id']}-{copy_no}"
            c["name"] = f"{c['name']} {copy_no}"
            for account in c["platforms"].values():
                account["account"] = f"{account['account']}{copy_no}"
        c.pop("budget_share", None)  # an even split of the month's credits
        if timezone:
            c["timezone"] = timezone
        c["enabled"] = True
        people.append(c)
    data["characters"] = people
    with dest.open("w", encoding="utf-8") as out:
        yaml.dump(data, out)
    return [dict(c) for c in people]


def slot_times(people: list[dict[str, Any]], day: dt.date) -> list[dt.datetime]:
    out = []
    for c in people:
        zone = ZoneInfo(c["timezone"])
        for hhmm in c["slots"]:
            hour, minute = (int(x) for x in hhmm.split(":"))
            out.append(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
                       .astimezone(dt.UTC))
    return out


@dataclass
class DayResult:
    characters: int
    reels: int
    ready_before_slot: int
    branded: int
    missed: int
    posts_allowed: int
    published_once: int
    deferred: int
    skipped_stale: int
    posted_twice: int
    posted_within_5_min: int
    a2e_requests: int
    a2e_refused: int  # answered 429: a limit discovered by failing (should be 0)
    rendered: int
    wall_s: float
    simulated_hours: float
    runs: dict[str, int] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    open_reels: dict[str, int] = field(default_factory=dict)
    open_posts: dict[str, int] = field(default_factory=dict)

    @property
    def ready_pct(self) -> float:
        return 100.0 * self.ready_before_slot / max(self.reels, 1)

    @property
    def published_pct(self) -> float:
        return 100.0 * self.published_once / max(self.posts_allowed, 1)

    @property
    def requests_per_reel(self) -> float:
        return self.a2e_requests / max(self.rendered, 1)

    def line(self) -> str:
        return (f"day_at_scale: {self.characters} characters, {self.reels} reels, ready before "
                f"slot {self.ready_pct:.1f}%, published once {self.published_pct:.1f}%, "
                f"deferred {self.deferred}, posted twice {self.posted_twice}, A2E requests per "
                f"reel {self.requests_per_reel:.2f}, wall {self.wall_s:.0f} s")


def simulate(n: int, *, render_seconds: float = 240.0, requests_per_hour: int = 100,
             tick: float = 60.0, server_url: str | None = None, timezone: str | None = None,
             progress: bool = True) -> DayResult:
    from sandbox.published import published, summarize
    from sandbox.server import SandboxServer

    wall = time.perf_counter()
    day = dt.datetime.now(dt.UTC).date()  # a partition that exists whatever today is
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wg-day-")))
        srv, _ = stack.enter_context(server(server_url))
        db_url = stack.enter_context(database(srv, "day"))
        people = build_roster(n, tmp / "characters.yaml", timezone)
        slots = slot_times(people, day)
        start = min(dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(c["timezone"]))
                    .astimezone(dt.UTC) for c in people) - dt.timedelta(minutes=10)
        end = max(slots) + dt.timedelta(minutes=90)
        sandbox = stack.enter_context(SandboxServer(tmp / "sandbox", seed=SEED))
        sandbox.set_clock(start.timestamp(), frozen=True)
        key = f"sk_sandbox_day{uuid.uuid4().hex[:8]}"
        import httpx

        httpx.post(f"{sandbox.url}/a2e/_control/config", timeout=10, json={
            "render_seconds": render_seconds, "rate_limit": requests_per_hour,
            "rate_window": 3600.0}).raise_for_status()
        stack.enter_context(environment({
            "WAIFUGEN_MODE": "sandbox", "WAIFUGEN_HOME": str(tmp / "home"),
            "DATABASE_URL": db_url, "WAIFUGEN_SANDBOX_URL": sandbox.url,
            "WAIFUGEN_ROSTER": str(tmp / "characters.yaml"), "A2E_API_KEY": key,
            "A2E_REQUESTS_PER_HOUR": str(requests_per_hour),
            "A2E_RENDER_SECONDS": str(render_seconds),
            "A2E_MONTHLY_CREDITS": str(10_000_000), "VIDEO_DIR": str(tmp / "videos"),
            "WAIFUGEN_SECRET_KEY": _fernet_key()}))
        result = _run_day(sandbox, people, day, start, end, tick, progress)
        posts = published(sandbox.url)
        summary = {row["platform"]: row for row in summarize(posts, None)}
        per_post = Counter((p.platform, p.account, p.reel) for p in posts)
        calls = [e for e in sandbox.journal("a2e") if e["path"].startswith("/api/v1/")]
        refused = sum(1 for e in calls if e["status"] == 429)
        engine = sa.create_engine(db_url)
        try:
            counts = _database_counts(engine)
        finally:
            engine.dispose()
        ready = sum(1 for reel_id, at in result["ready_at"].items()
                    if at <= result["scheduled"][reel_id])
        on_time = sum(1 for post, at in result["posted_at"].items()
                      if at - result["scheduled"][post[0]] <= dt.timedelta(minutes=5))
        branded = counts["branded"]
        return DayResult(
            characters=n, reels=counts["reels"], ready_before_slot=ready, branded=branded,
            missed=counts["missed"],
            posts_allowed=branded * len(PLATFORMS) - counts["deferred"],
            published_once=sum(1 for k in per_post.values() if k == 1),
            deferred=counts["deferred"], skipped_stale=counts["skipped_posts"],
            posted_twice=sum(row["published_twice"] for row in summary.values()),
            posted_within_5_min=on_time, a2e_requests=len(calls), a2e_refused=refused,
            rendered=counts["rendered"],
            wall_s=time.perf_counter() - wall,
            simulated_hours=(result["now"] - start).total_seconds() / 3600,
            runs=result["runs"], open_reels=counts["open"], open_posts=counts["open_posts"],
            limits={"a2e_requests_per_hour": requests_per_hour,
                    "render_seconds": render_seconds, "tick_s": tick,
                    "youtube": "10,000 units a day per project, 1,600 an upload",
                    "tiktok": "6 inits a minute per account, daily cap",
                    "instagram": "50 publishes a day per account",
                    "timezone": timezone or "the roster's 8 zones, cycled"})


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _run_day(sandbox: Any, people: list[dict[str, Any]], day: dt.date, start: dt.datetime,
             end: dt.datetime, tick: float, progress: bool) -> dict[str, Any]:
    import dagster as dg

    from resources.a2e import A2EResource
    from resources.database import DatabaseResource
    from sensors.generation import generation_sensor
    from sensors.posting import posting_sensor
    from waifugen_assets.app.local_stack import sync_partitions
    from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
    from waifugen_assets.core import clock, schema
    from waifugen_assets.planning.schedules import daily_plans_schedule

    def follow(when: dt.datetime) -> None:  # the sandbox keeps our time
        sandbox.set_clock(when.timestamp(), frozen=True)

    instances = contextlib.ExitStack()

    def stack_instance() -> dg.DagsterInstance:  # schedules need an instance with a ref
        return instances.enter_context(dg.instance_for_test())

    # The sensors' info lines ("N reels wait for the A2E budget") are for a daemon's log;
    # here they would be thousands of lines.
    logging.getLogger("dagster").setLevel(logging.WARNING)
    runs: Counter[str] = Counter()
    used: set[str] = set()
    ready_at: dict[int, dt.datetime] = {}
    posted_at: dict[tuple[int, str], dt.datetime] = {}
    with instances, clock.simulate(start, on_change=follow) as sim:
        from waifugen_assets.definitions import defs

        instance = stack_instance()
        roster = defs.resolve_job_def("roster").execute_in_process(
            instance=instance, run_config=QUIET)
        assert roster.success, "the roster did not load"
        sync_partitions(instance, [c["id"] for c in people])
        database = DatabaseResource()
        engine = database.get_engine()
        from waifugen_assets.core.config import get_settings
        from waifugen_assets.core.tokens import TokenCipher, TokenVault

        seed_sandbox_tokens(TokenVault(engine, TokenCipher(get_settings().secret_keys)))
        resources = {"database": database, "a2e": A2EResource()}

        def launch(job: str, request: dg.RunRequest) -> None:
            if request.run_key in used:
                return
            used.add(request.run_key or "")
            config = {**QUIET, **(request.run_config or {})}
            defs.resolve_job_def(job).execute_in_process(
                partition_key=request.partition_key, instance=instance, run_config=config,
                tags=dict(request.tags), raise_on_error=False)
            runs[job] += 1

        r, sp = schema.reels, schema.social_posts
        next_report = start
        while sim.now() < end:
            now = sim.now()
            if now.minute == 5 or now == start:
                # Contexts are closed after use: one keeps what it opened (an instance of its
                # own, resources) until then.
                with dg.build_schedule_context(instance=instance, scheduled_execution_time=now,
                                               resources={"database": database}) as ctx:
                    planned = list(daily_plans_schedule(ctx))
                for request in planned:
                    # One day is simulated: the days before and after are not planned.
                    if request.partition_key.keys_by_dimension["date"] == day.isoformat():
                        launch("plan", request)
            for sensor, job in ((generation_sensor, "render"), (posting_sensor, "publish")):
                with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                    requests = sensor(ctx).run_requests
                for request in requests:
                    launch(job, request)
            stamp = sim.now()  # a run that waited for a poll moved the clock on
            with engine.connect() as conn:
                for reel_id in conn.execute(sa.select(r.c.id).where(
                        r.c.status.in_(("branded", "published")))).scalars():
                    ready_at.setdefault(reel_id, stamp)
                for reel_id, platform in conn.execute(sa.select(sp.c.reel_id, sp.c.platform)
                                                      .where(sp.c.state == "published")):
                    posted_at.setdefault((reel_id, platform), stamp)
            if progress and stamp >= next_report:
                print(f"  {stamp:%Y-%m-%d %H:%M} UTC: {len(ready_at)} reels ready, "
                      f"{len(posted_at)} posts, runs {dict(runs)}", flush=True)
                next_report = stamp + dt.timedelta(hours=2)
            # The next tick: a minute after this one began, or now if the runs took longer.
            sim.set(max(stamp, now + dt.timedelta(seconds=tick)))
        with engine.connect() as conn:
            scheduled = dict(conn.execute(sa.select(r.c.id, r.c.scheduled_at)).all())
        return {"runs": dict(runs), "ready_at": ready_at, "posted_at": posted_at,
                "scheduled": scheduled, "now": sim.now()}


def _database_counts(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        reels = dict(conn.execute(sa.text(
            "SELECT status, count(*) FROM reels GROUP BY status")).all())
        posts = dict(conn.execute(sa.text(
            "SELECT state, count(*) FROM social_posts GROUP BY state")).all())
        # Posts a platform quota kept from going out: deferred when their slot came, then
        # either still waiting or skipped as stale by the time the quota freed up.
        quota_blocked = conn.scalar(sa.text(
            "SELECT count(*) FROM social_posts p WHERE p.state IN ('deferred', 'skipped') "
            "AND EXISTS (SELECT 1 FROM post_attempts a WHERE a.post_id = p.id "
            "AND a.outcome = 'rate_limited')"))
        rendered = conn.scalar(sa.text(
            "SELECT count(*) FROM reels WHERE generation_task_id IS NOT NULL"))
        # Reasons up to their first colon ("stale", "youtube daily quota spent"), so like
        # ones group whatever their slot and hours.
        post_reasons = dict(conn.execute(sa.text(
            "SELECT platform || ' ' || state || ': ' || coalesce(split_part(last_error, ':', 1),"
            " '-'), count(*) FROM social_posts WHERE state <> 'published' GROUP BY 1")).all())
        reasons = dict(conn.execute(sa.text(
            "SELECT status || ': ' || coalesce(split_part(failure_reason, ':', 1), '-'), "
            "count(*) FROM reels WHERE status NOT IN ('branded', 'published') GROUP BY 1")).all())
    return {"reels": sum(reels.values()), "missed": reels.get("skipped", 0),
            "branded": reels.get("branded", 0) + reels.get("published", 0),
            "deferred": int(quota_blocked or 0), "skipped_posts": posts.get("skipped", 0),
            "rendered": int(rendered or 0), "open": reasons, "open_posts": post_reasons}


def render(result: DayResult, when: str, heading: str) -> str:
    m, r = machine(), result
    rows = [
        ("reels planned", r.reels),
        ("ready (branded) before their slot", f"{r.ready_before_slot} ({r.ready_pct:.1f} %)"),
        ("missed (slot passed unrendered, not paid)", r.missed),
        ("posts the quotas allowed / published exactly once",
         f"{r.posts_allowed} / {r.published_once} ({r.published_pct:.1f} %)"),
        ("posts deferred by a platform quota (still waiting, or stale once it freed up)",
         r.deferred),
        ("posts skipped as stale (any reason)", r.skipped_stale),
        ("reels posted twice on an account (sandbox count)", r.posted_twice),
        ("posts live within 5 min of their slot", r.posted_within_5_min),
        ("A2E requests / reels rendered",
         f"{r.a2e_requests} / {r.rendered} = {r.requests_per_reel:.2f} per reel (each task "
         f"polled by itself needs at least 3: ratio {r.requests_per_reel / 3:.2f})"),
        ("A2E requests refused with 429 (limits are tracked, not discovered)", r.a2e_refused),
        ("runs", ", ".join(f"{k} {v}" for k, v in sorted(r.runs.items()))),
        ("wall clock", f"{r.wall_s:.0f} s"),
    ]
    limits = r.limits
    return "\n".join([
        heading, "",
        f"Measured {when} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python "
        f"{m['python']}. `python -m benchmarks day_at_scale --characters {r.characters}"
        + (f" --timezone {limits['timezone']}" if "/" in limits["timezone"] else "")
        + (f" --requests-per-hour {limits['a2e_requests_per_hour']}"
           if limits["a2e_requests_per_hour"] != 100 else "")
        + "`: one "
        f"simulated day ({r.simulated_hours:.1f} h of injected clock) through the real "
        "schedules, sensors and jobs, the sandbox at production limits (A2E "
        f"{limits['a2e_requests_per_hour']} requests an hour, renders of "
        f"{limits['render_seconds']:g} s x 0.75-1.25; YouTube {limits['youtube']}; TikTok "
        f"{limits['tiktok']}; Instagram {limits['instagram']}); time zones: "
        f"{limits['timezone']}.", "",
        f"    {r.line()}", "",
        "| measure | value |", "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows), "",
        "Reels not branded at the end, by status and reason: "
        + (json.dumps(r.open_reels) if r.open_reels else "none") + ".", "",
        "Posts not published at the end, by platform, state and reason: "
        + (json.dumps(r.open_posts) if r.open_posts else "none") + ".", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--characters", type=int, default=32)
    parser.add_argument("--render-seconds", type=float, default=240.0)
    parser.add_argument("--requests-per-hour", type=int, default=100)
    parser.add_argument("--tick", type=float, default=60.0)
    parser.add_argument("--timezone", help="put every character in this zone (the worst case "
                        "for A2E's hourly budget: every day starts at the same midnight)")
    parser.add_argument("--server-url", help="a PostgreSQL server to CREATE DATABASE on "
                        "(default: TEST_DATABASE_URL, else an embedded one in a temp dir)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.characters < 1 or args.tick <= 0 or args.requests_per_hour < 1:
        parser.error("need --characters >= 1, --tick > 0 and --requests-per-hour >= 1")
    if args.timezone:
        try:
            ZoneInfo(args.timezone)
        except (KeyError, ValueError):
            parser.error(f"--timezone {args.timezone!r} is not an IANA time zone")
    result = simulate(args.characters, render_seconds=args.render_seconds,
                      requests_per_hour=args.requests_per_hour, tick=args.tick,
                      server_url=args.server_url, timezone=args.timezone)
    print(json.dumps({**asdict(result), "line": result.line()}, indent=2, default=str))
    print(result.line())
    if not args.no_docs:
        heading = f"## Day at scale: {args.characters} characters" + (
            f" in {args.timezone}" if args.timezone else "") + (
            f", A2E at {args.requests_per_hour} requests an hour"
            if args.requests_per_hour != 100 else "")
        write_section(render(result, dt.date.today().isoformat(), heading), heading,
                      docs=args.docs)
    return 0 if result.posted_twice == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
