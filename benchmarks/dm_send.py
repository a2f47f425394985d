"""Sending DMs at the platforms' rate limits, with no duplicates: `messaging.send_due` against the
fastest schedule each limit allows, and against the bare client.

    python -m benchmarks.dm_send [--telegram 600] [--fanvue 200] [--headroom 400]
                                 [--server-url URL] [--docs PATH] [--no-docs]

A fresh database (benchmarks/scratch_db.py) with one character and the sequences of
sequences.yaml; the sandbox in a subprocess (`python -m sandbox`) on a free loopback port, so
its CPU is not this process's. Subscribers are created on the sandbox (Telegram users who
opened the bot, Fanvue fans) and inserted in `subscribers` as having joined five minutes ago in
a time zone where it is daytime; `plan_due` (untimed) makes their day-0 intents. What is timed
is `send_due`, the send step of every DM run: per message the rules (facts, score, cap, quiet
hours), the variant and template (no Ollama: the writer is off, so the numbers are the
pipeline's own), the intent committed as `sending`, the platform call through the shared HTTP
layer and its rate limiter, and `sent` committed with the platform's id.

Scenarios (one after another, each with subscribers of its own):

- telegram: one bot, the production wiring (`TelegramClient` with the PostgreSQL rate-limit
  store, as `dms.build_channels` builds it): Telegram allows about 30 messages a second per bot;
- fanvue: one creator token, production wiring: 100 requests per 60 s;
- headroom: a Fanvue creator whose sandbox limit is lifted and a client limiter far above it:
  how fast the pipeline itself can send, against the baseline of the same client's
  `send_message` called in a bare loop for as many other fans (no database at all).

The fastest schedule a limit of L per P seconds allows for N messages (a sliding window, as
the sandboxes count) sends message k at floor(k / L) * P, so the last one leaves at
floor((N - 1) / L) * P: the "limit-bound time". For each platform scenario the report gives the
elapsed time, its ratio to that bound, messages/s, how many requests the sandbox refused with
429 (what the platform saw; the HTTP layer absorbs them by waiting Retry-After) and the
duplicate check: on the sandbox, every subscriber received exactly one message, and every
intent is `sent` in the database. Results: docs/benchmarks.md, section "## DM sending ...".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

from benchmarks.report import DOCS, machine, write_section
from benchmarks.scratch_db import CHARACTER, database, server, server_version
from benchmarks.servers import free_port, running
from resources.fanvue import RATE_WINDOW, REQUESTS_PER_WINDOW, FanvueClient
from resources.quota_store import PostgresRateLimitStore
from resources.telegram import (
    MESSAGES_PER_SECOND_PER_BOT,
    TelegramClient,
    sandbox_bot_token,
    sandbox_bot_username,
)
from sandbox.systems.fanvue import creator_uuid
from waifugen_assets.core import schema
from waifugen_assets.subscribers.channels import Channel, FanvueChannel, TelegramChannel
from waifugen_assets.subscribers.cycle import (
    CharacterInfo,
    CycleStats,
    plan_due,
    send_due,
    sync_sequences,
)
from waifugen_assets.subscribers.sequences import Sequence, load_sequences

HEADING = "## DM sending: send_due at the platforms' rate limits"
ROOT = Path(__file__).resolve().parent.parent
CID = CHARACTER["id"]
BIG = 10**6
ZONES = ("Asia/Tokyo", "Asia/Kolkata", "Europe/Berlin", "America/New_York",
         "America/Los_Angeles", "Pacific/Auckland")


# --- the sandbox in its own process --------------------------------------------------------------

@contextmanager
def sandbox(work: Path) -> Iterator[str]:
    """`python -m sandbox` on a free loopback port (state under `work`); its URL once it
    answers, stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--state-dir",
               str(work / "sandbox")]
    with running("sandbox", command, dict(os.environ), port, work,
                 health_path="/_sandbox/health") as server:
        yield server.url


def _post(url: str, body: Mapping[str, Any], http: httpx.Client) -> dict[str, Any]:
    response = http.post(url, json=body)
    response.raise_for_status()
    return response.json()


def journal_429s(http: httpx.Client, base: str, system: str, since: int) -> tuple[int, int, int]:
    """(requests, of them 429, newest journal id) of `system` after journal id `since`."""
    entries = http.get(f"{base}/_sandbox/journal",
                       params={"system": system, "since": since}).json()
    refused = sum(1 for e in entries if e.get("status") == 429)
    return len(entries), refused, max((e["id"] for e in entries), default=since)


def journal_head(http: httpx.Client, base: str) -> int:
    entries = http.get(f"{base}/_sandbox/journal", params={"since": 0}).json()
    return max((e["id"] for e in entries), default=0)


# --- subscribers ---------------------------------------------------------------------------------

def daytime_zone(now: dt.datetime) -> str:
    """A zone where it is 10:00-19:59 now, so quiet hours hold nothing back."""
    for zone in ZONES:
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 20:
            return zone
    raise RuntimeError("no daytime zone in the list")  # the zones span more than 24 h


def add_subscribers(engine: sa.Engine, platform: str, external_ids: list[str],
                    joined: dt.datetime, zone: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.subscribers), [
            {"character_id": CID, "platform": platform, "external_id": external,
             "display_name": f"Fan {n}", "timezone": zone, "subscribed_at": joined}
            for n, external in enumerate(external_ids)])


def telegram_users(http: httpx.Client, base: str, account: str, first_id: int,
                   n: int) -> list[str]:
    """n users who opened the bot (so it may write to them)."""
    bot = sandbox_bot_username(account)
    for user in range(first_id, first_id + n):
        _post(f"{base}/telegram/_control/start",
              {"bot": bot, "user_id": user, "first_name": "Fan", "payload": f"c-{CID}"}, http)
    return [str(u) for u in range(first_id, first_id + n)]


def fanvue_fans(http: httpx.Client, base: str, account: str, n: int,
                rate_limit: int | None = None) -> list[str]:
    creator: dict[str, Any] = {"creator": account}
    if rate_limit is not None:
        creator["rate_limit"] = rate_limit
    _post(f"{base}/fanvue/_control/creators", creator, http)
    return [_post(f"{base}/fanvue/_control/subscribers",
                  {"creator": account, "displayName": f"Fan {i}"}, http)["uuid"]
            for i in range(n)]


# --- one scenario --------------------------------------------------------------------------------

def states(engine: sa.Engine, platform: str) -> Counter[str]:
    dm, s = schema.dm_messages, schema.subscribers
    with engine.connect() as conn:
        return Counter(dict(conn.execute(
            sa.select(dm.c.state, sa.func.count()).join(s, s.c.id == dm.c.subscriber_id)
            .where(s.c.platform == platform).group_by(dm.c.state)).all()))


def limit_bound_s(n: int, limit: int, period: float) -> float:
    """When the last of n messages may leave at the earliest under `limit` per `period`."""
    return (n - 1) // limit * period


def send_scenario(engine: sa.Engine, character: CharacterInfo, channels: dict[str, Channel],
                  sequences: Mapping[int, Sequence], platform: str, recipients: list[str],
                  sent_on_sandbox: Any, http: httpx.Client, base: str, system: str,
                  limit: tuple[int, float] | None) -> dict[str, Any]:
    """Insert the recipients as subscribers, plan their welcome (untimed), time send_due."""
    now = datetime.now(UTC)
    add_subscribers(engine, platform, recipients, now - dt.timedelta(minutes=5),
                    daytime_zone(now))
    planned = plan_due(engine, CID, now, sequences)
    since = journal_head(http, base)
    stats = CycleStats()
    started = time.perf_counter()
    cpu = time.process_time()
    send_due(engine, character, channels, sequences, now, stats, limit=len(recipients) + 10)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    requests, refused, _ = journal_429s(http, base, system, since)
    received = Counter(sent_on_sandbox())
    db = states(engine, platform)
    row: dict[str, Any] = {
        "platform": platform, "messages": len(recipients), "planned": planned,
        "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
        "per_second": round(len(recipients) / seconds, 1), "requests": requests,
        "refused_429": refused, "outcomes": dict(stats.outcomes),
        "received": sum(received.values()),
        "duplicates": sum(c - 1 for c in received.values() if c > 1),
        "missing": len(set(recipients) - set(received)),
        "db_states": dict(db),
    }
    row["exactly_once"] = (row["duplicates"] == 0 and row["missing"] == 0
                           and row["received"] == len(recipients)
                           and db == Counter({"sent": len(recipients)}))
    if limit is not None:
        bound = limit_bound_s(len(recipients), *limit)
        row.update(limit=f"{limit[0]} per {limit[1]:g} s", limit_per_second=limit[0] / limit[1],
                   bound_s=bound, ratio_to_bound=round(seconds / bound, 3) if bound else None)
    return row


def bare_loop(client: FanvueClient, fans: list[str], text: str) -> dict[str, Any]:
    """The baseline: the client's send_message for each fan, nothing else."""
    started = time.perf_counter()
    cpu = time.process_time()
    for fan in fans:
        client.send_message(fan, text)
    seconds = time.perf_counter() - started
    return {"messages": len(fans), "seconds": round(seconds, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "per_second": round(len(fans) / seconds, 1)}


def run(server_url: str | None, *, telegram: int, fanvue: int, headroom: int) -> dict[str, Any]:
    before = machine()
    work = Path(tempfile.mkdtemp(prefix="wg-bench-send-"))
    try:
        return _run(work, server_url, before, telegram=telegram, fanvue=fanvue,
                    headroom=headroom)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, server_url: str | None, before: dict[str, Any], *, telegram: int,
         fanvue: int, headroom: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with server(server_url) as (admin_url, where), database(admin_url, "bench_send") as url, \
            sandbox(work) as base, httpx.Client(timeout=30) as http:
        engine = sa.create_engine(url)
        try:
            sequences = sync_sequences(engine, load_sequences(ROOT / "sequences.yaml"))
            character = CharacterInfo(CID, CHARACTER["name"], CHARACTER["persona"],
                                      CHARACTER["timezone"])
            account = f"{CID}-{os.getpid()}"
            if telegram:
                bot = TelegramClient(sandbox_bot_token(account), f"{base}/telegram",
                                     rate_store=PostgresRateLimitStore(engine, "telegram"))
                users = telegram_users(http, base, account, 7_000_000, telegram)
                rows.append(send_scenario(
                    engine, character, {"telegram": TelegramChannel(bot)}, sequences,
                    "telegram", users,
                    lambda: [str(m["chat"]["id"]) for m in http.get(
                        f"{base}/telegram/_control/sent",
                        params={"bot": sandbox_bot_username(account)}).json()],
                    http, base, "telegram", (MESSAGES_PER_SECOND_PER_BOT, 1.0)))
            if fanvue:
                fans = fanvue_fans(http, base, account, fanvue)
                client = FanvueClient(f"fv_at.sandbox.{account}", f"{base}/fanvue",
                                      rate_store=PostgresRateLimitStore(engine, "fanvue"))
                rows.append(send_scenario(
                    engine, character,
                    {"fanvue": FanvueChannel(client, creator_uuid(account))}, sequences,
                    "fanvue", fans, _fanvue_sent(http, base, account), http, base, "fanvue",
                    (REQUESTS_PER_WINDOW, RATE_WINDOW)))
            headroom_row = None
            if headroom:
                free = f"{account}-free"
                fans = fanvue_fans(http, base, free, headroom, rate_limit=BIG)
                others = fanvue_fans(http, base, free, headroom)
                client = FanvueClient(f"fv_at.sandbox.{free}", f"{base}/fanvue", limit=BIG)
                mine = set(fans)
                ours = send_scenario(
                    engine, character, {"fanvue": FanvueChannel(client, creator_uuid(free))},
                    sequences, "fanvue", fans,
                    lambda: [u for u in _fanvue_sent(http, base, free)() if u in mine],
                    http, base, "fanvue", None)
                # Only this scenario's intents count in its database check.
                ours["db_states"] = {"sent": ours["outcomes"].get("sent", 0)}
                ours["exactly_once"] = (ours["duplicates"] == 0 and ours["missing"] == 0
                                        and ours["outcomes"] == {"sent": headroom})
                bare = bare_loop(client, others, "Hi, welcome! (automated message)")
                headroom_row = {"pipeline": ours, "bare_client": bare,
                                "ratio_pipeline_to_bare": round(
                                    bare["per_second"] / ours["per_second"], 2)}
            version = server_version(engine)
        finally:
            engine.dispose()
    result = {
        "benchmark": "dm_send", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": before, "postgres": version, "server": where,
        "params": {"telegram": telegram, "fanvue": fanvue, "headroom": headroom},
        "rows": rows, "headroom": headroom_row,
        "load_before": before["load_1m"], "load_after": round(os.getloadavg()[0], 2),
    }
    checked = rows + ([headroom_row["pipeline"]] if headroom_row else [])
    result["exactly_once"] = all(r["exactly_once"] for r in checked)
    result["no_429"] = all(r["refused_429"] == 0 for r in rows)
    result["passed"] = result["exactly_once"] and result["no_429"]
    return result


def _fanvue_sent(http: httpx.Client, base: str, account: str) -> Any:
    def sent() -> list[str]:
        return [m["userUuid"] for m in http.get(f"{base}/fanvue/_control/sent",
                                                params={"creator": account}).json()]
    return sent


# --- the report ----------------------------------------------------------------------------------

def render(r: dict[str, Any]) -> str:
    m, p = r["machine"], r["params"]
    lines = [
        HEADING,
        "",
        f"Measured {r['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, PostgreSQL {r['postgres']} ({r['server']}). "
        f"`python -m benchmarks.dm_send --telegram {p['telegram']} --fanvue {p['fanvue']} "
        f"--headroom {p['headroom']}` (one run each; the limit-bound scenarios last as long as "
        "the limits make them).",
        "",
        "Timed: `messaging.send_due`, the send step of every DM run, over each subscriber's "
        "day-0 intent: the rules (facts, score and tags refreshed, cap, quiet hours), variant "
        "and template (the Ollama rewrite is off, so the time is the pipeline's own), the "
        "intent committed as `sending`, the call through the shared HTTP layer and its rate "
        "limiter, `sent` committed with the platform's id. The sandbox runs in its own process "
        "and counts like the platforms (sliding windows). Limit-bound time: when the last "
        "message may leave at the earliest, floor((N - 1) / L) x P for L per P seconds. "
        "Refused (429): requests the sandbox turned away (the HTTP layer waits Retry-After "
        "and sends again, so nothing is lost, but the platform saw us over its limit). "
        "Exactly once: on the sandbox every subscriber received one message, none twice, and "
        "every intent is `sent` in the database.",
        "",
        "| platform | limit | messages | elapsed | limit-bound time | ratio | messages/s "
        "| refused (429) | duplicates | missing | exactly once |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        ratio = f"{row['ratio_to_bound']:.2f}" if row.get("ratio_to_bound") else "n/a"
        lines.append(
            f"| {row['platform']} | {row['limit']} | {row['messages']} | {row['seconds']:.1f} s "
            f"| {row['bound_s']:.0f} s | {ratio} | {row['per_second']:.1f} "
            f"| {row['refused_429']} of {row['requests']} | {row['duplicates']} "
            f"| {row['missing']} | {row['exactly_once']} |")
    h = r.get("headroom")
    if h:
        ours, bare = h["pipeline"], h["bare_client"]
        lines += [
            "",
            "Headroom (a Fanvue creator with its limit lifted on the sandbox and in the client): "
            "how fast the pipeline itself sends, against the same client's `send_message` in a "
            "bare loop for as many other fans (no database, no rules):",
            "",
            "| what | messages | elapsed | messages/s | CPU (this process) |",
            "|---|---|---|---|---|",
            f"| send_due (pipeline) | {ours['messages']} | {ours['seconds']:.2f} s "
            f"| {ours['per_second']:.1f} | {ours['cpu_s']:.2f} s |",
            f"| bare client loop (baseline) | {bare['messages']} | {bare['seconds']:.2f} s "
            f"| {bare['per_second']:.1f} | {bare['cpu_s']:.2f} s |",
            "",
            f"The bare loop is {h['ratio_pipeline_to_bare']:.2f}x as fast: the exactly-once "
            "bookkeeping (two commits around each call, the rules' reads) is the difference. "
            f"The pipeline's {ours['per_second']:.0f} messages/s is "
            f"{ours['per_second'] / MESSAGES_PER_SECOND_PER_BOT:.1f}x Telegram's 30 per "
            f"second per bot and {ours['per_second'] * RATE_WINDOW / REQUESTS_PER_WINDOW:.0f}x "
            "Fanvue's 100 per minute: the limits, not the pipeline, set the pace. "
            f"Exactly once: {ours['exactly_once']}.",
        ]
    verdict = "PASS" if r["passed"] else "FAIL"
    lines += ["", f"Result: {verdict} (exactly once everywhere: {r['exactly_once']}; "
                  f"no request refused by a platform: {r['no_429']}).",
              "", f"Load average (1 min) {r['load_before']} before, {r['load_after']} after; "
                  "the machine is shared.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--telegram", type=int, default=600,
                        help="Telegram subscribers to message (0: skip)")
    parser.add_argument("--fanvue", type=int, default=200,
                        help="Fanvue fans to message at 100 per minute (0: skip)")
    parser.add_argument("--headroom", type=int, default=400,
                        help="fans for the limits-lifted comparison (0: skip)")
    parser.add_argument("--server-url", help="a PostgreSQL server to CREATE DATABASE on "
                        "(default: TEST_DATABASE_URL, else an embedded one in a temp dir)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if min(args.telegram, args.fanvue, args.headroom) < 0:
        parser.error("counts must be >= 0")
    result = run(args.server_url, telegram=args.telegram, fanvue=args.fanvue,
                 headroom=args.headroom)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(render(result), "## DM sending", docs=args.docs)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
