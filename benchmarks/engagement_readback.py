"""Engagement read-back at scale: N characters' TikTok, Instagram and YouTube posts of the last
30 days read back through the real read code, on a first deploy and through a steady day.

    python -m benchmarks engagement_readback [--characters 100] [--days 30]
                                             [--server-url URL] [--docs PATH] [--no-docs]

A scratch PostgreSQL database (embedded pgserver in a temp dir, or `--server-url` /
TEST_DATABASE_URL; dropped afterwards) and the sandbox in its own process (`python -m
sandbox`, production limits: TikTok 600 reads a minute per token and endpoint, YouTube 10,000
units a project and Pacific day). N characters cycled from characters.yaml (its eight time
zones and local slots), each with a TikTok, an Instagram and a YouTube account and its sandbox
tokens (`sandbox_seeding.seed_sandbox_tokens`), 4 posts a day on each platform for `--days`
days before the first deploy and the day after it: published on the sandbox with
`POST /<platform>/_control/seed_posts` and in the app database as publishing leaves them
(reels, social_posts with remote_post_id and published_at, `metrics_next_at` 1 h after
publication, as migration 0010 sets it for posts that were live before).

Timed, per character, what the `engagement_metrics` asset does (waifugen_assets/engagement/
assets.py): due_posts and followers_due, build_clients, read_posts, store_readings,
read_followers, roll_up of today and yesterday; the pipeline clock
(`clock.running_from`) and the sandbox clock set together to each run's time.

- catch-up: the first deploy at minute 20 (the hourly schedule's) before a Pacific midnight:
  every post of the `--days` days is due at once;
- steady day: the next 24 hourly rounds (minute 20, one Pacific quota day); each round asks
  `characters_due` (the schedule's query) and runs only those characters, which read only
  what is due.

Verified: each round's due posts have exactly one new reading each (none missed, none read
twice, none left due after the round), no post is ever read twice at one snapshot age, the
YouTube units in the app's ledger (quota_usage) equal the YouTube calls the sandbox saw and
the sandbox's own count. Counted: the HTTP requests per platform (the sandbox's journal),
against the fewest batching allows (`readings.minimum_requests` per character run, plus one
follower read per account due), token refreshes apart.

The result line:

    engagement_readback: N characters, P posts; catch-up D due / S stored, R requests
    (minimum M), W s; steady day D due / S stored, R requests (minimum M), W s; YouTube units
    U (catch-up) + V a day of 10,000; exactly once: yes
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet
from ruamel.yaml import YAML

from benchmarks.report import DOCS, machine, write_section
from benchmarks.scratch_db import database, server, server_version
from benchmarks.servers import Server, free_port, running
from benchmarks.settings_env import environment
from resources.instagram import InstagramResource
from resources.tiktok import TikTokResource
from resources.youtube import YouTubeResource
from resources.youtube_quota import quota_window
from sandbox.systems.youtube import channel_id_for
from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.engagement.due import characters_due
from waifugen_assets.engagement.readings import (
    SNAPSHOT_AGES,
    ReadOutcome,
    ages_reached,
    due_posts,
    followers_due,
    minimum_requests,
    read_followers,
    read_posts,
    store_readings,
)
from waifugen_assets.engagement.rollup import roll_up
from waifugen_assets.publishing.social_clients import build_clients, character_accounts

HEADING = "## Engagement read-back"
ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("tiktok", "instagram", "youtube")
# The first deploy: minute 20 (the hourly schedule's), 40 minutes before a Pacific midnight, so
# the 24 hourly rounds after it are one YouTube quota day. No DST change in the 31 days before
# it in any of the roster's zones.
CATCH_UP = dt.datetime(2027, 1, 15, 7, 20, tzinfo=dt.UTC)
SEED = 20270115
YOUTUBE_DAILY_UNITS = 10_000
TIKTOK_PER_MINUTE = 600
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


# --- the roster and its posts --------------------------------------------------------------------

@dataclass(frozen=True)
class Character:
    id: str
    timezone: str
    slots: tuple[str, ...]  # local "HH:MM"


def roster(n: int) -> list[Character]:
    """N characters with the time zones and slots of characters.yaml, cycled."""
    base = YAML(typ="safe").load((ROOT / "characters.yaml").read_text(encoding="utf-8"))
    people = base["characters"]
    return [Character(f"bench-read-{i + 1:03d}", people[i % len(people)]["timezone"],
                      tuple(people[i % len(people)]["slots"])) for i in range(n)]


def slot_series(c: Character, catch_up: dt.datetime, days: int) -> list[dt.datetime]:
    """Each slot's first post: the first after catch_up - days - 1 h (its local time that day);
    a slot's posts follow daily, so `days` of them are at least an hour old at the catch-up
    and the next one is the steady day's."""
    zone, start = ZoneInfo(c.timezone), catch_up - days * DAY - HOUR
    firsts = []
    for hhmm in c.slots:
        hour, minute = (int(x) for x in hhmm.split(":"))
        at = dt.datetime.combine(start.astimezone(zone).date(), dt.time(hour, minute),
                                 tzinfo=zone).astimezone(dt.UTC)
        while at <= start:
            at += DAY
        firsts.append(at)
    return firsts


# --- the sandbox in its own process --------------------------------------------------------------

@contextlib.contextmanager
def sandbox(work: Path) -> Iterator[Server]:
    """`python -m sandbox` on a free loopback port with its production limits."""
    port = free_port()
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--state-dir",
               str(work / "sandbox"), "--seed", str(SEED)]
    with running("sandbox", command, dict(os.environ), port, work,
                 health_path="/_sandbox/health") as proc:
        yield proc


def set_sandbox_clock(http: httpx.Client, base: str, when: dt.datetime) -> None:
    """The sandbox's clock at `when`, running on at real speed (as clock.running_from)."""
    http.post(f"{base}/_sandbox/clock",
              json={"now": when.timestamp(), "frozen": False}).raise_for_status()


def journal_head(http: httpx.Client, base: str) -> int:
    entries = http.get(f"{base}/_sandbox/journal", params={"since": 0}).json()
    return max((e["id"] for e in entries), default=0)


# What each request was, by system and path below the mount.
_KINDS = {
    "tiktok": (("/v2/video/query/", "posts"), ("/v2/user/info/", "followers"),
               ("/v2/oauth/token/", "token")),
    "instagram": ((re.compile(r"/insights$"), "posts"),
                  (re.compile(r"^/v[\d.]+/\d+$"), "followers"),
                  ("refresh_access_token", "token")),
    "youtube": (("/youtube/v3/videos", "posts"), ("/youtube/v3/channels", "followers"),
                ("/oauth2/token", "token")),
}


def request_kind(system: str, path: str) -> str:
    if "/_control/" in path:
        return "control"
    for pattern, kind in _KINDS[system]:
        hit = pattern.search(path) if isinstance(pattern, re.Pattern) else pattern in path
        if hit:
            return kind
    return "other"


def journal_counts(http: httpx.Client, base: str, since: int) -> dict[str, Counter[str]]:
    """{platform: {kind: requests}} after journal id `since`; `refused` counts 429s."""
    out: dict[str, Counter[str]] = {}
    for system in PLATFORMS:
        counts: Counter[str] = Counter()
        for e in http.get(f"{base}/_sandbox/journal",
                          params={"system": system, "since": since}).json():
            counts[request_kind(system, e["path"])] += 1
            counts["refused"] += e.get("status") == 429
            counts["errors"] += (e.get("status") or 599) >= 400
        out[system] = counts
    return out


# --- seeding -------------------------------------------------------------------------------------

def _post(http: httpx.Client, url: str, body: dict[str, Any]) -> Any:
    response = http.post(url, json=body)
    response.raise_for_status()
    return response.json()


def seed_world(engine: sa.Engine, http: httpx.Client, base: str, people: list[Character],
               days: int, catch_up: dt.datetime) -> dict[str, int]:
    """Characters, accounts, tokens; each slot's days + 1 posts on the three sandboxes and as
    reels and social_posts in the app database."""
    c, pa, r, sp = schema.characters, schema.platform_accounts, schema.reels, schema.social_posts
    with engine.begin() as conn:
        conn.execute(sa.insert(c), [{"id": p.id, "name": p.id.title(), "persona": "a streamer",
                                     "age": 25, "timezone": p.timezone, "slots": list(p.slots)}
                                    for p in people])
        for p in people:
            ig = http.get(f"{base}/instagram/_control/account", params={
                "access_token": f"IGAAsandbox{p.id.replace('-', '')}"}).json()
            conn.execute(sa.insert(pa), [
                {"character_id": p.id, "platform": platform, "account_ref": f"@{p.id}",
                 "external_user_id": ig["ig_user_id"] if platform == "instagram" else None}
                for platform in PLATFORMS])
    seed_sandbox_tokens(TokenVault(engine, TokenCipher(get_settings().secret_keys)))
    totals: Counter[str] = Counter()
    for p in people:
        zone = ZoneInfo(p.timezone)
        with engine.connect() as conn:
            accounts = dict(conn.execute(sa.select(pa.c.platform, pa.c.id).where(
                pa.c.character_id == p.id)).all())
            ig_user = conn.scalar(sa.select(pa.c.external_user_id).where(
                pa.c.character_id == p.id, pa.c.platform == "instagram"))
        targets = {"tiktok": ("tiktok", {"account": p.id}),
                   "instagram": ("instagram", {"ig_user_id": ig_user}),
                   "youtube": ("youtube", {"channel": channel_id_for(f"1//sandbox-{p.id}")})}
        reels, posts = [], []
        for slot, first in enumerate(slot_series(p, catch_up, days)):
            times = [first + n * DAY for n in range(days + 1)]
            ids: dict[str, list[str]] = {}
            for platform, (system, who) in targets.items():
                answer = _post(http, f"{base}/{system}/_control/seed_posts", {
                    **who, "count": days + 1, "at": first.timestamp(), "spacing": 86400})
                if platform == "tiktok":
                    ids[platform] = [str(v["post_id"]) for v in answer]
                elif platform == "instagram":
                    ids[platform] = [str(v["id"]) for v in answer]
                else:
                    ids[platform] = [str(v["id"]) for v in answer["videos"]]
            for n, at in enumerate(times):
                reels.append({"character_id": p.id, "date": at.astimezone(zone).date(),
                              "slot": slot, "scheduled_at": at, "status": "published"})
                posts.append({platform: ids[platform][n] for platform in PLATFORMS})
        with engine.begin() as conn:
            reel_ids = conn.execute(sa.insert(r).returning(r.c.id, sort_by_parameter_order=True),
                                    reels).scalars().all()
            conn.execute(sa.insert(sp), [
                {"reel_id": reel_id, "platform": platform, "account_id": accounts[platform],
                 "state": "published", "ai_disclosure": True, "attempts": 1,
                 "remote_post_id": remote[platform], "published_at": reel["scheduled_at"],
                 "metrics_checkpoint": 0, "metrics_next_at": reel["scheduled_at"] + HOUR}
                for reel_id, reel, remote in zip(reel_ids, reels, posts, strict=True)
                for platform in PLATFORMS])
        totals["reels"] += len(reels)
        totals["posts"] += len(reels) * len(PLATFORMS)
        totals["catch_up_posts"] += sum(1 for x in reels if x["scheduled_at"] <= catch_up - HOUR)
    totals["catch_up_posts"] *= len(PLATFORMS)
    return dict(totals)


# --- one character's run, as the engagement_metrics asset does it ---------------------------------

PHASES = ("select", "clients", "read", "store", "followers", "roll_up")


@dataclass
class Tally:
    """What a scenario's character runs did, summed."""

    runs: int = 0
    due: Counter[str] = field(default_factory=Counter)
    snapshots: Counter[str] = field(default_factory=Counter)
    stored: int = 0
    no_metrics: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    minimum: Counter[str] = field(default_factory=Counter)
    followers_due: Counter[str] = field(default_factory=Counter)
    followers_read: Counter[str] = field(default_factory=Counter)
    most_in_a_run: Counter[str] = field(default_factory=Counter)
    day_due: dict[str, Counter[str]] = field(default_factory=dict)  # per character
    phases: Counter[str] = field(default_factory=Counter)
    run_seconds: list[float] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    due_ids: set[int] = field(default_factory=set)
    due_twice: int = 0


class Reader:
    """The clients' resources and the vault, built once; `run(character)` is one asset run."""

    def __init__(self, engine: sa.Engine, base: str, youtube_client_id: str) -> None:
        self.engine = engine
        self.vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
        self.tiktok = TikTokResource(base_url=f"{base}/tiktok")
        self.instagram = InstagramResource(base_url=f"{base}/instagram")
        self.youtube = YouTubeResource(base_url=f"{base}/youtube",
                                       token_url=f"{base}/youtube/oauth2",
                                       client_id=youtube_client_id,
                                       client_secret="GOCSPX-sandbox-waifugen")

    def run(self, c: Character, tally: Tally) -> None:
        marks = [time.perf_counter()]
        now = clock.now()
        today = clock.local_today(c.timezone, now)
        with self.engine.connect() as conn:
            accounts = character_accounts(conn, c.id)
            posts = due_posts(conn, c.id, now)
            follow = followers_due(conn, c.id, today)
        marks.append(time.perf_counter())
        clients = build_clients(self.engine, self.vault, c.id, accounts, tiktok=self.tiktok,
                                instagram=self.instagram, youtube=self.youtube)
        marks.append(time.perf_counter())
        outcome = ReadOutcome()
        try:
            readings = read_posts(clients, posts, outcome, now)
            marks.append(time.perf_counter())
            tally.stored += store_readings(self.engine, readings, now)
            marks.append(time.perf_counter())
            read_followers(self.engine, clients, outcome, now, today, follow)
            marks.append(time.perf_counter())
        finally:
            clients.close()
        with self.engine.begin() as conn:
            for rolled in {today, today - DAY}:
                roll_up(conn, c.id, rolled, c.timezone)
        marks.append(time.perf_counter())
        for phase, (a, b) in zip(PHASES, itertools.pairwise(marks), strict=True):
            tally.phases[phase] += b - a
        tally.run_seconds.append(marks[-1] - marks[0])
        tally.runs += 1
        ids = {p.id for p in posts}
        tally.due_twice += len(ids & tally.due_ids)
        tally.due_ids |= ids
        for counts, got in ((tally.due, outcome.due), (tally.snapshots, outcome.snapshots),
                            (tally.no_metrics, outcome.no_metrics),
                            (tally.deferred, outcome.deferred), (tally.failed, outcome.failed),
                            (tally.requests, outcome.requests)):
            counts.update(got)
        tally.day_due.setdefault(c.id, Counter()).update(outcome.due)
        tally.minimum.update(minimum_requests(outcome.due))
        tally.minimum.update(follow)
        tally.followers_due.update(follow)
        tally.followers_read.update(outcome.followers.keys())
        for platform, n in outcome.requests.items():
            tally.most_in_a_run[platform] = max(tally.most_in_a_run[platform], n)
        for platform, reason in outcome.reasons.items():
            tally.reasons[f"{platform}: {reason}"] += 1


# --- checks --------------------------------------------------------------------------------------

def check_round(engine: sa.Engine, since: dt.datetime, tally_ids: set[int]) -> Counter[str]:
    """After a round that began at `since`: each due post read once, nothing due left."""
    with engine.connect() as conn:
        read = dict(conn.execute(sa.text(
            "SELECT post_id, count(*) FROM engagement_snapshots WHERE captured_at >= :since "
            "GROUP BY post_id"), {"since": since}).all())
        left = conn.scalar(sa.text(
            "SELECT count(*) FROM social_posts WHERE metrics_next_at <= :since"),
            {"since": since})
    return Counter({"read_twice": sum(1 for n in read.values() if n > 1),
                    "missed": len(tally_ids - set(read)), "unasked": len(set(read) - tally_ids),
                    "left_due": int(left or 0), "readings": sum(read.values())})


def expected_steady(engine: sa.Engine) -> dict[str, int]:
    """The readings the snapshot ages call for in the steady day, from the posts' publication
    times alone: one per post and hourly round in which one of its ages (or more) falls."""
    rounds = [CATCH_UP + k * HOUR for k in range(25)]
    out: Counter[str] = Counter()
    with engine.connect() as conn:
        for platform, published in conn.execute(sa.text(
                "SELECT platform, published_at FROM social_posts")):
            out[platform] += len({bisect.bisect_left(rounds, published + age)
                                  for age in SNAPSHOT_AGES
                                  if rounds[0] < published + age <= rounds[-1]})
    return dict(out)


def ages_read_twice(engine: sa.Engine) -> int:
    """Readings of a post at a snapshot age it already had a reading for (must be 0)."""
    twice, last = 0, (None, -1)
    with engine.connect() as conn:
        for post, captured, published in conn.execute(sa.text(
                "SELECT es.post_id, es.captured_at, sp.published_at FROM engagement_snapshots es"
                " JOIN social_posts sp ON sp.id = es.post_id ORDER BY es.post_id, "
                "es.captured_at")):
            age = ages_reached(captured - published)
            if post == last[0] and age <= last[1]:
                twice += 1
            last = (post, age)
    return twice


def ledger_units(engine: sa.Engine, client_id: str, when: dt.datetime) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(
            "SELECT units FROM quota_usage WHERE platform = 'youtube' AND account_key = :key "
            "AND window_kind = 'day' AND window_start = :window"),
            {"key": client_id, "window": quota_window(when)}) or 0)


def sandbox_units(http: httpx.Client, base: str, client_id: str) -> int:
    view = http.get(f"{base}/youtube/_control/quota", params={"client_id": client_id}).json()
    return int(view["used"].get("units", 0))


# --- the scenarios -------------------------------------------------------------------------------

def scenario(name: str, tally: Tally, journal: dict[str, Counter[str]], seconds: float,
             cpu: float, sandbox_cpu: float, checks: Counter[str], units: dict[str, int],
             rounds: int) -> dict[str, Any]:
    per_run = sorted(tally.run_seconds)
    return {
        "name": name, "rounds": rounds, "runs": tally.runs, "seconds": round(seconds, 1),
        "cpu_s": round(cpu, 1), "sandbox_cpu_s": round(sandbox_cpu, 1),
        "run_median_ms": round(1000 * statistics.median(per_run), 1) if per_run else 0,
        "run_max_ms": round(1000 * per_run[-1], 1) if per_run else 0,
        "phases_s": {k: round(tally.phases[k], 1) for k in PHASES},
        "due": dict(tally.due), "snapshots": dict(tally.snapshots), "stored": tally.stored,
        "no_metrics": dict(tally.no_metrics), "deferred": dict(tally.deferred),
        "failed": dict(tally.failed), "reasons": dict(tally.reasons),
        "requests_counted": dict(tally.requests), "minimum": dict(tally.minimum),
        "followers_due": dict(tally.followers_due),
        "followers_read": dict(tally.followers_read),
        "most_in_a_run": dict(tally.most_in_a_run),
        "journal": {p: dict(c) for p, c in journal.items()},
        "once_a_day_minimum": once_a_day_minimum(tally),
        "checks": dict(checks), "due_twice": tally.due_twice, "units": units,
    }


def once_a_day_minimum(tally: Tally) -> dict[str, int]:
    """The calls the day's readings would need read in one batch per character (yardstick)."""
    out: Counter[str] = Counter()
    for due in tally.day_due.values():
        out.update(minimum_requests(due))
    return dict(out)


def run_catch_up(reader: Reader, people: list[Character], http: httpx.Client, base: str,
                 sandbox_proc: Server, client_id: str) -> dict[str, Any]:
    tally, head = Tally(), journal_head(http, base)
    set_sandbox_clock(http, base, CATCH_UP)
    started, cpu, sandbox_cpu = time.perf_counter(), time.process_time(), sandbox_proc.cpu_seconds()
    with clock.running_from(CATCH_UP):
        for c in people:
            reader.run(c, tally)
    seconds = time.perf_counter() - started
    cpu, sandbox_cpu = time.process_time() - cpu, sandbox_proc.cpu_seconds() - sandbox_cpu
    checks = check_round(reader.engine, CATCH_UP, tally.due_ids)
    units = {"ledger": ledger_units(reader.engine, client_id, CATCH_UP),
             "sandbox": sandbox_units(http, base, client_id)}
    return scenario("catch-up", tally, journal_counts(http, base, head), seconds, cpu,
                    sandbox_cpu, checks, units, 1)


def run_steady_day(reader: Reader, people: list[Character], http: httpx.Client, base: str,
                   sandbox_proc: Server, client_id: str, progress: bool) -> dict[str, Any]:
    by_id = {c.id: c for c in people}
    tally, head, checks = Tally(), journal_head(http, base), Counter[str]()
    started, cpu, sandbox_cpu = time.perf_counter(), time.process_time(), sandbox_proc.cpu_seconds()
    schedule_s, rounds = 0.0, []
    for hour in range(1, 25):
        at = CATCH_UP + hour * HOUR
        set_sandbox_clock(http, base, at)
        round_tally = Tally()
        begun = time.perf_counter()
        with clock.running_from(at):
            tick = time.perf_counter()
            with reader.engine.connect() as conn:
                due = characters_due(conn, clock.now())
            schedule_s += time.perf_counter() - tick
            for cid in sorted(due):
                reader.run(by_id[cid], round_tally)
        got = check_round(reader.engine, at, round_tally.due_ids)
        checks.update(got)
        rounds.append({"at": at.strftime("%H:%M"), "characters": round_tally.runs,
                       "due": sum(round_tally.due.values()), "readings": got["readings"],
                       "seconds": round(time.perf_counter() - begun, 2)})
        if progress:
            print(f"  {at:%Y-%m-%d %H:%M} UTC: {round_tally.runs} characters, "
                  f"{sum(round_tally.due.values())} due, {got['readings']} read", flush=True)
        _merge(tally, round_tally)
    seconds = time.perf_counter() - started
    cpu, sandbox_cpu = time.process_time() - cpu, sandbox_proc.cpu_seconds() - sandbox_cpu
    units = {"ledger": ledger_units(reader.engine, client_id, CATCH_UP + HOUR),
             "sandbox": sandbox_units(http, base, client_id)}
    result = scenario("steady day", tally, journal_counts(http, base, head), seconds, cpu,
                      sandbox_cpu, checks, units, 24)
    result["schedule_s"] = round(schedule_s, 2)
    result["per_round"] = rounds
    return result


def _merge(into: Tally, part: Tally) -> None:
    into.runs += part.runs
    into.stored += part.stored
    into.due_twice += part.due_twice
    for name in ("due", "snapshots", "no_metrics", "deferred", "failed", "requests", "minimum",
                 "followers_due", "followers_read", "phases", "reasons"):
        getattr(into, name).update(getattr(part, name))
    for platform, n in part.most_in_a_run.items():
        into.most_in_a_run[platform] = max(into.most_in_a_run[platform], n)
    for cid, due in part.day_due.items():
        into.day_due.setdefault(cid, Counter()).update(due)
    into.run_seconds += part.run_seconds
    into.due_ids |= part.due_ids


# --- the whole run -------------------------------------------------------------------------------

def run(n: int, days: int, server_url: str | None, progress: bool = True) -> dict[str, Any]:
    before = machine()
    wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="wg-bench-read-"))
    client_id = f"wg-bench-{uuid.uuid4().hex[:8]}.apps.googleusercontent.com"
    people = roster(n)
    try:
        with server(server_url) as (admin_url, where), \
                database(admin_url, "bench_read") as url, sandbox(work) as proc, \
                httpx.Client(timeout=60) as http, environment({
                    "WAIFUGEN_MODE": "sandbox", "WAIFUGEN_HOME": str(work / "home"),
                    "DATABASE_URL": url, "WAIFUGEN_SANDBOX_URL": proc.url,
                    "WAIFUGEN_SECRET_KEY": Fernet.generate_key().decode()}):
            engine = sa.create_engine(url)
            try:
                with engine.begin() as conn:  # scratch_db's own character is not ours
                    conn.execute(sa.text("DELETE FROM characters"))
                set_sandbox_clock(http, proc.url, CATCH_UP)
                seeding = time.perf_counter()
                with clock.running_from(CATCH_UP):  # token expiry from the deploy's time
                    world = seed_world(engine, http, proc.url, people, days, CATCH_UP)
                world["seed_s"] = round(time.perf_counter() - seeding, 1)
                if progress:
                    print(f"  seeded {world['posts']} posts in {world['seed_s']} s", flush=True)
                reader = Reader(engine, proc.url, client_id)
                catch_up = run_catch_up(reader, people, http, proc.url, proc, client_id)
                if progress:
                    print(f"  catch-up: {sum(catch_up['due'].values())} due in "
                          f"{catch_up['seconds']} s", flush=True)
                steady = run_steady_day(reader, people, http, proc.url, proc, client_id,
                                        progress)
                twice = ages_read_twice(engine)
                steady["expected"] = expected_steady(engine)
                version = server_version(engine)
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "engagement_readback", "date": dt.date.today().isoformat(),
        "machine": before, "postgres": version, "server": where,
        "params": {"characters": n, "days": days, "catch_up": CATCH_UP.isoformat()},
        "world": world, "catch_up": catch_up, "steady": steady, "ages_read_twice": twice,
        "wall_s": round(time.perf_counter() - wall, 1),
        "load_before": before["load_1m"], "load_after": round(os.getloadavg()[0], 2),
    }
    result["verdicts"] = verdicts(result)
    result["passed"] = all(result["verdicts"].values())
    result["line"] = line(result)
    return result


def api_requests(s: dict[str, Any], platform: str) -> int:
    """Reads the sandbox saw (posts and followers), token refreshes and control calls apart."""
    j = s["journal"][platform]
    return int(j.get("posts", 0) + j.get("followers", 0))


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    out = {}
    for s in (r["catch_up"], r["steady"]):
        due, c, name = sum(s["due"].values()), s["checks"], s["name"]
        out[f"{name}: every due post read once"] = (
            due == s["stored"] == sum(s["snapshots"].values()) == c.get("readings", 0)
            and not any(c.get(k, 0) for k in ("read_twice", "missed", "unasked", "left_due"))
            and s["due_twice"] == 0 and not s["failed"] and not s["deferred"]
            and not s["no_metrics"])
        out[f"{name}: requests counted = requests seen"] = all(
            s["requests_counted"].get(p, 0) == api_requests(s, p) for p in PLATFORMS)
        out[f"{name}: at least the minimum"] = all(
            api_requests(s, p) >= s["minimum"].get(p, 0) for p in PLATFORMS)
        out[f"{name}: YouTube units = calls"] = (
            s["units"]["ledger"] == s["units"]["sandbox"] == api_requests(s, "youtube"))
        out[f"{name}: no 429"] = all(s["journal"][p].get("refused", 0) == 0 for p in PLATFORMS)
    out["steady day: readings as the snapshot ages call for"] = (
        r["steady"]["due"] == r["steady"]["expected"])
    out["catch-up: every post of the days due"] = (
        sum(r["catch_up"]["due"].values()) == r["world"]["catch_up_posts"])
    out["no age read twice"] = r["ages_read_twice"] == 0
    return out


def line(r: dict[str, Any]) -> str:
    def part(s: dict[str, Any]) -> str:
        made = sum(api_requests(s, p) for p in PLATFORMS)
        return (f"{sum(s['due'].values()):,} due / {s['stored']:,} stored, {made:,} requests "
                f"(minimum {sum(s['minimum'].values()):,}), {s['seconds']:.0f} s")

    c, s = r["catch_up"], r["steady"]
    return (f"engagement_readback: {r['params']['characters']} characters, "
            f"{r['world']['catch_up_posts']:,} posts; catch-up {part(c)}; steady day {part(s)}; "
            f"YouTube units {c['units']['ledger']:,} (catch-up) + {s['units']['ledger']:,} a day "
            f"of {YOUTUBE_DAILY_UNITS:,}; exactly once: {'yes' if r['passed'] else 'NO'}")


# --- the report ----------------------------------------------------------------------------------

def once_a_day(s: dict[str, Any], platform: str) -> int:
    """The calls the scenario's readings would need read in one batch per character."""
    return (s["once_a_day_minimum"].get(platform, 0)
            + s["followers_due"].get(platform, 0))


def render(r: dict[str, Any]) -> str:
    m, p, w = r["machine"], r["params"], r["world"]
    n = p["characters"]
    rows = []
    for s in (r["catch_up"], r["steady"]):
        for platform in PLATFORMS:
            j = s["journal"][platform]
            made, least = api_requests(s, platform), s["minimum"].get(platform, 0)
            rows.append(
                f"| {s['name']} | {platform} | {s['due'].get(platform, 0):,} "
                f"| {s['snapshots'].get(platform, 0):,} | {made:,} "
                f"({j.get('followers', 0)} follower reads) | {least:,} "
                f"| {made / least if least else 0:.2f} | {once_a_day(s, platform):,} "
                f"| {j.get('token', 0):,} | {s['most_in_a_run'].get(platform, 0)} |")
    times = []
    for s in (r["catch_up"], r["steady"]):
        ph = s["phases_s"]
        times.append(
            f"| {s['name']} | {s['rounds']} | {s['runs']:,} | {s['seconds']:.1f} s "
            f"| {s['run_median_ms']:.0f} / {s['run_max_ms']:.0f} ms "
            f"| {ph['select']:.1f} / {ph['clients']:.1f} / {ph['read']:.1f} / {ph['store']:.1f}"
            f" / {ph['followers']:.1f} / {ph['roll_up']:.1f} s "
            f"| {s['cpu_s']:.1f} s | {s['sandbox_cpu_s']:.1f} s |")
    lines = [
        HEADING, "",
        f"Measured {r['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, PostgreSQL {r['postgres']} ({r['server']}); the sandbox in its "
        f"own process. `python -m benchmarks engagement_readback --characters {n}"
        + (f" --days {p['days']}" if p["days"] != 30 else "") + "`: "
        f"{n} characters (the zones and slots of characters.yaml, cycled), each with TikTok, "
        f"Instagram and YouTube accounts and 4 posts a day on each for {p['days']} days "
        f"({w['catch_up_posts']:,} posts; {w['posts'] - w['catch_up_posts']:,} more on the day "
        f"after), seeded on the sandbox (`_control/seed_posts`) and in the database as "
        f"publishing leaves them (seeding took {w['seed_s']:.0f} s). A character run is "
        "what `engagement_metrics` does (due_posts, followers_due, build_clients, read_posts, "
        "store_readings, read_followers, roll_up of today and yesterday), one character after "
        "another in this process, with the pipeline and sandbox clocks set together; the "
        f"sandbox at production limits (TikTok {TIKTOK_PER_MINUTE} reads a minute per token "
        f"and endpoint, YouTube {YOUTUBE_DAILY_UNITS:,} units a project and day, classic "
        "costs).", "",
        f"    {r['line']}", "",
        f"- **catch-up**: the first deploy ({p['catch_up'][:16].replace('T', ' ')} UTC): every "
        f"post of the {p['days']} days is due at once;",
        "- **steady day**: the 24 hourly rounds after it (minute 20, one Pacific quota day); "
        "each round runs only the characters `characters_due` names (the schedule's query, "
        f"{r['steady']['schedule_s']:.2f} s for all 24 rounds), and they read only what is "
        "due.", "",
        "Requests: what the sandbox received (its journal), post and follower reads. Minimum: "
        "what batching allows for the same readings in the same runs (TikTok 20 ids a call, "
        "YouTube 50, Instagram one call a post, one follower read per account due; "
        "`readings.minimum_requests`), so 1.00 means no call wasted. One batch a day: the "
        "calls if each character's readings of the scenario were read in a single run. Token "
        "refreshes (a YouTube access token lasts an hour, TikTok's two) are apart.", "",
        "| scenario | platform | readings due | stored | requests | minimum | ratio "
        "| one batch a day | token refreshes | most calls in one run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        "| scenario | rounds | character runs | wall | run median / max | due query / clients "
        "/ HTTP reads / store / followers / roll-up | CPU (this process) | CPU (sandbox) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
        *times, "",
        time_note(r["steady"]), "",
        *quota_lines(r), "",
        "Checks: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in
                               r["verdicts"].items()) + ".", "",
        f"Whole run {r['wall_s']:.0f} s. Load average (1 min) {r['load_before']} before, "
        f"{r['load_after']} after; the machine is shared.", ""]
    return "\n".join(lines)


def time_note(s: dict[str, Any]) -> str:
    ph, runs = s["phases_s"], max(s["runs"], 1)
    return (f"In the steady day a character run took {s['run_median_ms']:.0f} ms at the "
            f"median: building its clients {1000 * ph['clients'] / runs:.0f} ms "
            f"({100 * ph['clients'] / s['seconds']:.0f} % of the day's wall time), its HTTP "
            f"reads {1000 * ph['read'] / runs:.0f} ms, the roll-up "
            f"{1000 * ph['roll_up'] / runs:.0f} ms. In production each is a Dagster run of "
            "its own (the schedule asks for one per character with something due), whose "
            "start-up is not included here.")


def quota_lines(r: dict[str, Any]) -> list[str]:
    n = r["params"]["characters"]
    c, s = r["catch_up"], r["steady"]
    scale = 100 / n
    day_units, once = s["units"]["ledger"], c["units"]["ledger"]
    day_100 = round(day_units * scale)
    batch_100 = round(once_a_day(s, "youtube") * scale)
    uploads_left = max(0, YOUTUBE_DAILY_UNITS - day_100) // 1600
    tiktok_most = max(c["most_in_a_run"].get("tiktok", 0), s["most_in_a_run"].get("tiktok", 0))
    longest = max(c["run_max_ms"], s["run_max_ms"]) / 1000
    ig_day = api_requests(s, "instagram") / n
    measured = n == 100
    return [
        "Quota arithmetic for 100 characters a day ("
        + ("measured" if measured else f"measured with {n}, scaled") + "; every YouTube read "
        "costs 1 unit; token refreshes cost none):", "",
        f"- **YouTube**: the steady day spent {day_units:,} units"
        + ("" if measured else f" for {n} characters") + f" ({day_units / n:.1f} a character: "
        "one `videos.list` per hourly round with a due video, one `channels.list` a day)"
        + ("" if measured else f", so about {day_100:,} a day for 100 characters") + ": "
        f"{100 * day_100 / YOUTUBE_DAILY_UNITS:.0f} % of the project's "
        f"{YOUTUBE_DAILY_UNITS:,}, leaving room for {uploads_left} classic uploads (1,600 "
        "units each) or comment replies (50 each). The same readings in one batch a day per "
        f"character would cost about {batch_100:,}: the hourly cadence, not batching, sets "
        f"what reads cost. The first deploy's catch-up costs {once:,} units"
        + ("" if measured else f" ({round(once * scale):,} for 100)") + ", once. (4 YouTube "
        "posts a day per character assume the per-upload bucket quota; with the classic quota "
        "the project uploads about 6 a day in all, and has that many fewer videos to read.)",
        f"- **TikTok**: at most {tiktok_most} calls in one character run (one token; the "
        f"longest run took {longest:.1f} s) against {TIKTOK_PER_MINUTE} a minute per token and "
        f"endpoint: {TIKTOK_PER_MINUTE / max(tiktok_most, 1):.0f}x below the limit, catch-up "
        "included.",
        f"- **Instagram**: one insights call per reading: {ig_day:.0f} calls a character a day "
        f"in steady state, {c['most_in_a_run'].get('instagram', 0)} on one account in the "
        "catch-up (its largest run). Instagram API calls fall under Meta's Business Use Case "
        "limits (per account, scaled by its audience), which the sandbox does not enforce on "
        "reads; the catch-up is the worst case.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--characters", type=int, default=100)
    parser.add_argument("--days", type=int, default=30,
                        help="days of posts before the first deploy (4 a day a platform)")
    parser.add_argument("--server-url", help="a PostgreSQL server to CREATE DATABASE on "
                        "(default: TEST_DATABASE_URL, else an embedded one in a temp dir)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.characters < 1 or not 1 <= args.days <= 60:
        parser.error("need --characters >= 1 and --days between 1 and 60")
    result = run(args.characters, args.days, args.server_url)
    print(json.dumps(result, indent=2, default=str))
    print(result["line"])
    if not args.no_docs:
        write_section(render(result), HEADING, docs=args.docs)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
