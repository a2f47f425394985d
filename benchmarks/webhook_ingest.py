"""Inbound webhook ingest on loopback: `waifugen webhooks serve` against bare uvicorn + Starlette.

    python -m benchmarks.webhook_ingest [--events 20000] [--duplicates 0.10] [--concurrency 32]
                                        [--runs 3] [--client raw|httpx] [--target 500]
                                        [--server-url URL] [--docs PATH] [--no-docs]

A fresh database (embedded pgserver in a temp dir, or CREATE DATABASE on `--server-url` /
TEST_DATABASE_URL; benchmarks/scratch_db.py), migrated to head, with the benchmark character and
its Telegram bot (a `platform_accounts` row: platform `telegram`, `external_user_id` = the bot's
numeric id, which is how the service finds the bot of a character).

Two servers, each a subprocess on a free loopback port, up for the whole run and waited for by
polling GET /healthz:

- ours: the real command `waifugen webhooks serve --host 127.0.0.1 --port P` (the console script
  `waifugen = waifugen_assets.app.cli:main`) with DATABASE_URL = the scratch database,
  WAIFUGEN_MODE=sandbox, WAIFUGEN_HOME = a temp dir and the two webhook secrets the harness signs
  with. Per request it verifies, parses and stores (`inbound.store_events`).
- baseline: `python -m benchmarks.webhook_ingest --baseline-server P`: the same stack
  (uvicorn.run with the options of `webhooks.serve`: one process, access log at info, proxy
  headers, no server header) whose POST /fanvue/{character} and /telegram/{character} read the
  body and answer 200 {"stored": 1} without verifying or storing: what HTTP alone costs, so the
  ratio ours/baseline isolates verify + parse + store.

Load per run: `--events` unique events, a mix of Fanvue `subscriber.created`, `message.received`
and `tip.received` bodies and Telegram `/start` and text updates, each with its own event id
(fresh ids every run, so every run of ours stores all of them), plus `--duplicates` (a share of
the events) second deliveries of already-sent events (platform retries) placed at a random later
point of the sequence. Everything is built and signed before the timing (Fanvue signature
timestamp = now; a request older than 240 s at send time is re-signed, so a slow machine does not
trip the 300 s replay window). `--concurrency` keep-alive connections from this process send
them, each taking the next request when its previous one is answered; the time runs from the
first request to the last answer. Client: `raw` (default), a minimal HTTP/1.1 client on asyncio
streams (uvloop) sending pre-serialized requests, or `httpx` (httpx.AsyncClient); after the
measured runs one extra baseline run with the other client (a fresh load of at most 2,000
events) shows whether the load generator, rather than the server, sets the pace: httpx does, on
a small machine (about 1.3 ms of client CPU per request, worse with many connections). Baseline
and ours alternate `--runs` times (the same requests for both within a run); figures are
medians.

Checks (no loss), for ours: every answer is 200; each first delivery answers {"stored": 1} and
each duplicate {"stored": 0}, except when a duplicate overtakes its original (then exactly one of
the two says 1); afterwards `inbound_events` holds exactly the run's events as new rows, with the
expected (platform, event_id, event_type) set. The baseline must answer 200 {"stored": 1}
everywhere. `passed` = no loss and ours >= `--target` new events per second.
Results: docs/benchmarks.md, "## Webhook ingest: ...".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from benchmarks.report import DOCS, machine, write_section
from benchmarks.servers import Server, free_port, running
from resources.webhook_signing import sign_fanvue

HEADING = "## Webhook ingest: `waifugen webhooks serve` vs bare uvicorn + Starlette"
SECTION = "## Webhook ingest"
ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_S = 500.0
FANVUE_SECRET = "whsec_bench_fanvue_0123456789"
TELEGRAM_SECRET = "bench-telegram-secret-0123456789"
BOT_ID = 7_700_000_001
RESIGN_AFTER_S = 240  # the service accepts timestamps up to 300 s old
CLIENT_CHECK_EVENTS = 2000  # the other client's baseline run: a rate, so a slice of the load
SERVERS = ("baseline", "ours")
CLIENTS = ("raw", "httpx")
# (platform, kind, normalized event_type, share of the unique events)
MIX = (
    ("fanvue", "subscriber.created", "subscriber.new", 0.15),
    ("fanvue", "message.received", "message.received", 0.30),
    ("fanvue", "tip.received", "revenue.tip", 0.10),
    ("telegram", "start", "subscriber.new", 0.15),
    ("telegram", "text", "message.received", 0.30),
)
TEXTS = ("hi!", "how was your day?", "loved the last reel", "are you streaming tonight?",
         "good morning from Osaka", "just stopped by to say hello")


# --- the load -----------------------------------------------------------------------------------

@dataclass(slots=True)
class Delivery:
    """One POST, built before the timing; `raw` is the whole HTTP/1.1 request."""

    platform: str
    event_id: str
    event_type: str
    path: str
    body: bytes
    headers: dict[str, str]
    first: bool
    signed_at: int = 0
    raw: bytes = b""

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.event_id)

    def sign(self, now: int) -> None:
        if self.platform == "fanvue":
            self.headers["X-Fanvue-Signature"] = _sign_fanvue(self.body, now)
            self.signed_at = now
        lines = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1",
                 f"Content-Length: {len(self.body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self.raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def fresh(self) -> None:
        """Re-sign a Fanvue request whose timestamp is getting too old to be accepted."""
        if self.platform == "fanvue":
            now = int(time.time())
            if now - self.signed_at > RESIGN_AFTER_S:
                self.sign(now)


def _sign_fanvue(body: bytes, timestamp: int) -> str:
    return sign_fanvue(FANVUE_SECRET, body, timestamp)


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _fanvue_body(kind: str, event_id: str, fan: int, now: dt.datetime,
                 rng: random.Random) -> dict[str, Any]:
    user = f"8d1f0b2a-0000-4000-8000-{fan:012x}"
    if kind == "subscriber.created":
        data: dict[str, Any] = {"handle": f"fan{fan}", "displayName": f"Fan {fan}",
                                "subscribedAt": _iso(now), "tier": "standard",
                                "timezone": "Asia/Tokyo"}
    elif kind == "message.received":
        data = {"messageUuid": f"{event_id}-msg", "text": rng.choice(TEXTS),
                "sentAt": _iso(now)}
    else:
        data = {"amount": rng.choice((300, 500, 1000, 2500)), "currency": "USD"}
    return {"id": event_id, "type": kind, "createdAt": _iso(now),
            "creatorUuid": "bench-creator", "data": {"userUuid": user, **data}}


def _telegram_update(kind: str, update_id: int, fan: int, now: dt.datetime,
                     rng: random.Random, character: str) -> dict[str, Any]:
    chat = 100_000_000 + fan
    text = f"/start c-{character}" if kind == "start" else rng.choice(TEXTS)
    return {"update_id": update_id, "message": {
        "message_id": update_id % 1_000_000, "date": int(now.timestamp()), "text": text,
        "chat": {"id": chat, "type": "private", "first_name": f"Fan{fan}"},
        "from": {"id": chat, "is_bot": False, "first_name": f"Fan{fan}",
                 "username": f"fan{fan}"}}}


def build_load(run: int, events: int, duplicates: float, character: str,
               seed: int = 42) -> list[Delivery]:
    """`events` first deliveries and round(events * duplicates) retries of some of them, each
    placed after its original, all signed now (untimed)."""
    rng = random.Random(seed * 1000 + run)
    now = datetime.now(UTC).replace(microsecond=0)
    fans = max(1, events // 5)
    kinds = [m[:3] for m in MIX]
    weights = [m[3] for m in MIX]
    firsts: list[Delivery] = []
    for i in range(events):
        platform, kind, event_type = rng.choices(kinds, weights)[0]
        fan = rng.randrange(fans)
        if platform == "fanvue":
            event_id = f"evt_bench_r{run}_{i:07d}"
            body = _fanvue_body(kind, event_id, fan, now, rng)
            headers = {"Content-Type": "application/json"}
        else:
            update_id = (run + 1) * 10_000_000 + i
            event_id = f"{BOT_ID}:{update_id}"
            body = _telegram_update(kind, update_id, fan, now, rng, character)
            headers = {"Content-Type": "application/json",
                       "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        firsts.append(Delivery(platform, event_id, event_type, f"/{platform}/{character}",
                               json.dumps(body, separators=(",", ":")).encode(), headers,
                               first=True))
    placed = [(float(i), d) for i, d in enumerate(firsts)]
    for i in rng.sample(range(events), round(events * duplicates)):
        d = firsts[i]
        retry = Delivery(d.platform, d.event_id, d.event_type, d.path, d.body,
                         dict(d.headers), first=False)
        placed.append((rng.uniform(i + 0.5, events), retry))
    placed.sort(key=lambda p: p[0])
    load = [d for _, d in placed]
    signed = int(time.time())
    for d in load:
        d.sign(signed)
    return load


# --- the servers --------------------------------------------------------------------------------

def baseline_app() -> Any:
    """The HTTP stack alone: same routes, read the body, answer {"stored": 1}."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def receive(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"stored": 1})

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/fanvue/{character}", receive, methods=["POST"]),
        Route("/telegram/{character}", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def serve_baseline(port: int) -> None:
    import uvicorn

    # The options of waifugen_assets.subscribers.webhooks.serve.
    uvicorn.run(baseline_app(), host="127.0.0.1", port=port, log_level="info",
                proxy_headers=True, server_header=False)


def waifugen_command() -> list[str]:
    """The installed console script (pyproject: waifugen = waifugen_assets.app.cli:main)."""
    script = Path(sys.executable).with_name("waifugen")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "waifugen_assets.app.cli"]


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "WAIFUGEN_", "FANVUE_WEBHOOK_SECRET",
                                "TELEGRAM_WEBHOOK_SECRET", "WEBHOOKS_", "DAGSTER_HOME"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def service_env(database_url: str, home: Path) -> dict[str, str]:
    env = _base_env()
    env.update({"DATABASE_URL": database_url, "WAIFUGEN_MODE": "sandbox",
                "WAIFUGEN_HOME": str(home), "FANVUE_WEBHOOK_SECRET": FANVUE_SECRET,
                "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET})
    return env


# --- the load generators ------------------------------------------------------------------------

@dataclass
class Outcome:
    seconds: float
    status: list[int]
    body: list[bytes]
    latency: list[float]
    client_cpu_s: float


async def _raw_send(url: str, load: Sequence[Delivery], concurrency: int,
                    timeout: float) -> tuple[float, list[int], list[bytes], list[float]]:
    """A minimal HTTP/1.1 client: one asyncio stream per connection, pre-built requests,
    answers read by Content-Length (the servers always send it)."""
    host, port = url.removeprefix("http://").split(":")
    status = [0] * len(load)
    body = [b""] * len(load)
    latency = [0.0] * len(load)
    healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, int(port))

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       request: bytes) -> tuple[int, bytes, bool]:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        code = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
        end = lower.index(b"\r\n", at + 2)
        content = await reader.readexactly(int(lower[at + 17:end]))
        return code, content, b"\r\nconnection: close" in lower

    connections = [await connect() for _ in range(concurrency)]
    for reader, writer in connections:  # warm: every connection open and answered once
        await exchange(reader, writer, healthz)
    following = count()
    n = len(load)
    clock = time.perf_counter

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (i := next(following)) < n:
            d = load[i]
            d.fresh()
            started = clock()
            status[i], body[i], close = await exchange(reader, writer, d.raw)
            latency[i] = clock() - started
            if close:
                writer.close()
                reader, writer = await connect()
        writer.close()

    async with asyncio.timeout(timeout):
        started = clock()
        await asyncio.gather(*(worker(r, w) for r, w in connections))
        seconds = clock() - started
    return seconds, status, body, latency


async def _httpx_send(url: str, load: Sequence[Delivery], concurrency: int,
                      timeout: float) -> tuple[float, list[int], list[bytes], list[float]]:
    status = [0] * len(load)
    body = [b""] * len(load)
    latency = [0.0] * len(load)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(client.get("/healthz") for _ in range(concurrency)))
        following = count()
        n = len(load)
        clock = time.perf_counter

        async def worker() -> None:
            while (i := next(following)) < n:
                d = load[i]
                d.fresh()
                t0 = clock()
                answer = await client.post(d.path, content=d.body, headers=d.headers)
                latency[i] = clock() - t0
                status[i], body[i] = answer.status_code, answer.content

        async with asyncio.timeout(timeout):
            started = clock()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = clock() - started
    return seconds, status, body, latency


def _event_loop() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return None
    return uvloop.new_event_loop


def send(url: str, load: Sequence[Delivery], concurrency: int, client: str) -> Outcome:
    timeout = 120 + len(load) / 20  # a stuck server fails the run instead of hanging it
    sender = _raw_send if client == "raw" else _httpx_send
    cpu = time.process_time()
    with asyncio.Runner(loop_factory=_event_loop()) as runner:
        seconds, status, body, latency = runner.run(sender(url, load, concurrency, timeout))
    return Outcome(seconds, status, body, latency, time.process_time() - cpu)


# --- checks -------------------------------------------------------------------------------------

def _stored(answer: bytes) -> int | None:
    try:
        parsed = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or set(parsed) != {"stored"}:
        return None
    value = parsed["stored"]
    return value if value in (0, 1) and not isinstance(value, bool) else None


def check_answers(load: Sequence[Delivery], outcome: Outcome, *, stores: bool) -> dict[str, Any]:
    """Every answer 200 with a `stored` count; for a storing server, exactly one delivery of
    each event says 1 (the first, unless a retry overtook it)."""
    non_200 = sum(1 for s in outcome.status if s != 200)
    bad_body = 0
    said: dict[tuple[str, str], list[tuple[bool, int]]] = {}
    for d, answer in zip(load, outcome.body, strict=True):
        stored = _stored(answer)
        if stored is None:
            bad_body += 1
            continue
        said.setdefault(d.key, []).append((d.first, stored))
    firsts = sum(1 for d in load if d.first)
    if not stores:
        wrong = sum(1 for answers in said.values() for _, s in answers if s != 1)
        return {"non_200": non_200, "bad_body": bad_body, "wrong_count": wrong,
                "ok": non_200 == 0 and bad_body == 0 and wrong == 0}
    first_1 = dup_0 = raced = wrong = 0
    for answers in said.values():
        ones = sum(s for _, s in answers)
        if ones != 1:
            wrong += 1
            continue
        for first, s in answers:
            first_1 += first and s == 1
            dup_0 += (not first) and s == 0
        raced += any(first and s == 0 for first, s in answers)
    keys_answered = len(said)
    return {"non_200": non_200, "bad_body": bad_body, "events_not_counted_once": wrong,
            "first_stored_1": first_1, "duplicates_stored_0": dup_0,
            "raced_duplicates": raced, "events_answered": keys_answered,
            "ok": (non_200 == 0 and bad_body == 0 and wrong == 0 and keys_answered == firsts)}


def check_rows(engine: sa.Engine, load: Sequence[Delivery], after_id: int) -> dict[str, Any]:
    """The rows this run added: exactly its events, with their normalized types."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT platform, event_id, event_type FROM inbound_events WHERE id > :after"),
            {"after": after_id}).all()
    expected = {(d.platform, d.event_id, d.event_type) for d in load if d.first}
    got = {tuple(r) for r in rows}
    return {"new_rows": len(rows), "expected": len(expected),
            "lost": len(expected - got), "unexpected": len(got - expected),
            "ok": len(rows) == len(expected) and got == expected}


def _max_id(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM inbound_events")))


# --- measuring ----------------------------------------------------------------------------------

def _quantiles_ms(latency: Sequence[float]) -> tuple[float, float]:
    if len(latency) < 2:
        return (latency[0] * 1000, latency[0] * 1000) if latency else (0.0, 0.0)
    cuts = statistics.quantiles(latency, n=100, method="inclusive")
    return round(cuts[49] * 1000, 2), round(cuts[98] * 1000, 2)


def _machine_busy(before: Any, after: Any) -> float:
    """Share of all cores' time spent busy between two psutil.cpu_times() readings."""
    spent = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0)
                                         - getattr(before, "iowait", 0.0))
    return round(1 - idle / spent, 3) if spent > 0 else 0.0


def measure(server: Server, load: Sequence[Delivery], concurrency: int, client: str,
            engine: sa.Engine | None) -> dict[str, Any]:
    """One timed pass of `load` at `server`; for ours (engine given) the rows are checked."""
    import psutil

    after = _max_id(engine) if engine is not None else 0
    cpu = server.cpu_seconds()
    machine_cpu = psutil.cpu_times()
    outcome = send(server.url, load, concurrency, client)
    busy = _machine_busy(machine_cpu, psutil.cpu_times())
    server_cpu = server.cpu_seconds() - cpu
    alive = server.process.poll() is None
    answers = check_answers(load, outcome, stores=engine is not None)
    rows = check_rows(engine, load, after) if engine is not None else None
    events = sum(1 for d in load if d.first)
    p50, p99 = _quantiles_ms(outcome.latency)
    return {
        "server": server.name, "client": client, "seconds": round(outcome.seconds, 3),
        "requests": len(load), "events": events,
        "events_per_s": round(events / outcome.seconds, 1),
        "requests_per_s": round(len(load) / outcome.seconds, 1),
        "p50_ms": p50, "p99_ms": p99,
        "server_cpu_s": round(server_cpu, 2), "client_cpu_s": round(outcome.client_cpu_s, 2),
        "machine_busy": busy, "alive": alive, "answers": answers, "rows": rows,
        "no_loss": alive and answers["ok"] and (rows is None or rows["ok"]),
    }


def _setup_database(url: str, character: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO platform_accounts (character_id, platform, account_ref, "
                "external_user_id) VALUES (:c, 'telegram', :ref, :bot)"),
                {"c": character, "ref": "@bench_dms_bot", "bot": str(BOT_ID)})
    finally:
        engine.dispose()


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 2)

    rows = [s["rows"] for s in samples if s["rows"] is not None]
    return {
        "events_per_s": round(statistics.median(s["events_per_s"] for s in samples), 1),
        "requests_per_s": round(statistics.median(s["requests_per_s"] for s in samples), 1),
        "p50_ms": median("p50_ms"), "p99_ms": median("p99_ms"),
        "seconds": median("seconds"), "server_cpu_s": median("server_cpu_s"),
        "client_cpu_s": median("client_cpu_s"), "machine_busy": median("machine_busy"),
        "runs_events_per_s": [s["events_per_s"] for s in samples],
        "stored_rows": [r["new_rows"] for r in rows] if rows else None,
        "lost": sum(r["lost"] for r in rows) if rows else 0,
        "no_loss": all(s["no_loss"] for s in samples),
    }


def run(server_url: str | None, *, events: int, duplicates: float, concurrency: int,
        runs: int, client: str = "raw", target: float = TARGET_PER_S,
        client_check: bool = True) -> dict[str, Any]:
    from benchmarks.scratch_db import CHARACTER, database, server, server_version

    before = machine()
    character = str(CHARACTER["id"])
    workdir = Path(tempfile.mkdtemp(prefix="wg-bench-webhooks-"))
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    check: dict[str, Any] | None = None
    try:
        with server(server_url) as (admin_url, where), \
                database(admin_url, "bench_webhooks") as url:
            _setup_database(url, character)
            engine = sa.create_engine(url)
            home = workdir / "home"
            home.mkdir()
            try:
                version = server_version(engine)
                ours_port, base_port = free_port(), free_port()
                ours_cmd = [*waifugen_command(), "webhooks", "serve", "--host", "127.0.0.1",
                            "--port", str(ours_port)]
                base_cmd = [sys.executable, "-m", "benchmarks.webhook_ingest",
                            "--baseline-server", str(base_port)]
                with running("ours", ours_cmd, service_env(url, home), ours_port,
                             workdir) as ours, \
                        running("baseline", base_cmd, _base_env(), base_port,
                                workdir) as baseline:
                    for index in range(runs):
                        load = build_load(index, events, duplicates, character)
                        samples["baseline"].append(
                            measure(baseline, load, concurrency, client, None))
                        samples["ours"].append(measure(ours, load, concurrency, client, engine))
                    if client_check:
                        other = "httpx" if client == "raw" else "raw"
                        load = build_load(runs, min(events, CLIENT_CHECK_EVENTS), duplicates,
                                          character)
                        check = measure(baseline, load, concurrency, other, None)
                    commands = {"ours": _shown(ours.command, ours_port),
                                "baseline": _shown(base_cmd, base_port)}
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {name: _summary(samples[name]) for name in SERVERS}
    base_rate = summary["baseline"]["events_per_s"]
    summary["ours"]["ratio_to_baseline"] = (
        round(summary["ours"]["events_per_s"] / base_rate, 3) if base_rate else None)
    summary["baseline"]["ratio_to_baseline"] = 1.0
    no_loss = summary["ours"]["no_loss"] and summary["baseline"]["no_loss"]
    result = {
        "benchmark": "webhook_ingest", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": before, "postgres": version, "server": where,
        "params": {"events": events, "duplicates": duplicates,
                   "duplicate_deliveries": round(events * duplicates),
                   "concurrency": concurrency, "runs": runs, "client": client,
                   "mix": {f"{p} {k}": share for p, k, _, share in MIX}},
        "commands": commands, "summary": summary, "samples": samples, "client_check": check,
        "load_before": before["load_1m"], "load_after": round(os.getloadavg()[0], 2),
        "target_per_s": target,
    }
    result["no_loss"] = no_loss
    result["meets_target"] = summary["ours"]["events_per_s"] >= target
    result["passed"] = no_loss and result["meets_target"]
    return result


def _shown(command: Sequence[str], port: int) -> str:
    """The command as a reader would type it: no venv path, the free port as PORT."""
    parts = [Path(part).name if index == 0 else "PORT" if part == str(port) else part
             for index, part in enumerate(command)]
    return " ".join(parts)


# --- the report ---------------------------------------------------------------------------------

def render(r: dict[str, Any]) -> str:
    m, p, s = r["machine"], r["params"], r["summary"]
    base, ours = s["baseline"], s["ours"]
    word = "PASS" if r["passed"] else "FAIL"
    client_words = {
        "raw": "a minimal HTTP/1.1 client on asyncio streams (uvloop) writing pre-serialized "
               "requests and reading answers by Content-Length",
        "httpx": "httpx.AsyncClient (uvloop)",
    }
    mix = ", ".join(f"{name} {share:.0%}" for name, share in p["mix"].items())
    lines = [
        HEADING,
        "",
        f"Measured {r['date']} on {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, PostgreSQL {r['postgres']} ({r['server']}). "
        f"`python -m benchmarks.webhook_ingest` ({p['events']:,} events + "
        f"{p['duplicate_deliveries']:,} duplicate deliveries per run, {p['concurrency']} "
        f"keep-alive connections, {p['runs']} run{'s' if p['runs'] != 1 else ''} per server, "
        "interleaved; medians).",
        "",
        f"Ours: the real command `{r['commands']['ours']}` in a subprocess (DATABASE_URL = a "
        "scratch database at migration head, WAIFUGEN_MODE=sandbox, a temp WAIFUGEN_HOME): per "
        "request the signature or secret token is verified, the body parsed and normalized, "
        "and the event stored with `inbound.store_events` (INSERT ... ON CONFLICT DO NOTHING). "
        f"Baseline: `{r['commands']['baseline']}`, the same uvicorn + Starlette stack with the "
        "options of `webhooks.serve` (one process, access log, proxy headers), whose two POST "
        "routes read the body and answer 200 {\"stored\": 1} without verifying or storing: the "
        "HTTP cost alone, so the ratio isolates verify + parse + store.",
        "",
        f"Load: a mix of {mix}, each event with its own id (fresh ids every run), plus "
        f"{p['duplicates']:.0%} second deliveries of already-sent events (platform retries) at "
        "random later points; built and signed (Fanvue `t=` = now) before the timing; both "
        "servers get the same requests in a run. Time: first request to last answer. "
        "events/s = unique events per second; requests/s counts the duplicates too.",
        "",
        "| server | events/s | requests/s | ratio to baseline | p50 | p99 | server CPU / wall "
        "| new rows stored | lost | runs (events/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in (("baseline (HTTP only)", base), ("ours", ours)):
        stored = ", ".join(f"{n:,}" for n in row["stored_rows"]) if row["stored_rows"] else "-"
        lines.append(
            f"| {name} | {row['events_per_s']:,.0f} | {row['requests_per_s']:,.0f} | "
            f"{row['ratio_to_baseline']:.2f} | {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms | "
            f"{row['server_cpu_s']:.1f} s / {row['seconds']:.1f} s | {stored} | "
            f"{row['lost'] if row['stored_rows'] else '-'} | "
            f"{', '.join(f'{v:,.0f}' for v in row['runs_events_per_s'])} |")
    answers = [x["answers"] for x in r["samples"]["ours"]]
    rows_ok = all(x["rows"]["ok"] for x in r["samples"]["ours"])
    lines += [
        "",
        f"Checks (ours, every run): non-200 answers {sum(a['non_200'] for a in answers)}, "
        f"events not answered `stored: 1` exactly once "
        f"{sum(a['events_not_counted_once'] for a in answers)}, duplicates answered "
        f"`stored: 0` {sum(a['duplicates_stored_0'] for a in answers):,} of "
        f"{p['duplicate_deliveries'] * p['runs']:,} ({sum(a['raced_duplicates'] for a in answers)}"
        " overtook their original, which then said 0), `inbound_events` rows = the run's "
        f"(platform, event_id, event_type) set: {rows_ok}; no loss: {r['no_loss']}.",
        "",
        f"Target: at least {r['target_per_s']:,.0f} events/s with no loss: ours "
        f"{ours['events_per_s']:,.0f}/s, lost {ours['lost']}: {word}.",
        "",
        f"Load generator: {p['concurrency']} connections from the harness process, "
        f"{client_words[p['client']]}; its CPU is {ours['client_cpu_s']:.1f} s per ours run, "
        f"{base['client_cpu_s']:.1f} s per baseline run.",
    ]
    check = r.get("client_check")
    if check:
        lines[-1] += (
            f" With {client_words[check['client']]} instead, the baseline took "
            f"{check['events_per_s']:,.0f} events/s ({check['client_cpu_s']:.1f} s client CPU "
            f"for {check['requests']:,} requests, one run) against "
            f"{base['events_per_s']:,.0f}/s: "
            + ("that client, not the server, would set the baseline's pace."
               if check["events_per_s"] < 0.8 * base["events_per_s"]
               else "the client is not what limits the baseline."))
    lines += ["", f"Load average (1 min) {r['load_before']} before, {r['load_after']} after; "
                  "servers, PostgreSQL and the load generator share the cores (whole machine "
                  f"busy during the runs: baseline {base['machine_busy']:.0%}, ours "
                  f"{ours['machine_busy']:.0%} of {m['cores']} cores). Server CPU is the server "
                  "process's own (user + sys), PostgreSQL's not included.", ""]
    return "\n".join(lines)


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a share between 0 and 1, e.g. 0.10")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="unique events per run")
    parser.add_argument("--duplicates", type=_share, default=0.10,
                        help="second deliveries, as a share of the events")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--client", choices=CLIENTS, default="raw",
                        help="load generator (the other one gets one extra baseline run)")
    parser.add_argument("--no-client-check", action="store_true",
                        help="skip the extra baseline run with the other client")
    parser.add_argument("--target", type=float, default=TARGET_PER_S,
                        help="events/s ours must reach to pass (0: loss checks only)")
    parser.add_argument("--server-url", help="a PostgreSQL server to CREATE DATABASE on "
                        "(default: TEST_DATABASE_URL, else an embedded one in a temp dir)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--baseline-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server is not None:
        serve_baseline(args.baseline_server)
        return 0
    if args.runs < 1 or args.events < 1 or args.concurrency < 1:
        parser.error("need --runs, --events and --concurrency >= 1")
    result = run(args.server_url, events=args.events, duplicates=args.duplicates,
                 concurrency=args.concurrency, runs=args.runs, client=args.client,
                 target=args.target, client_check=not args.no_client_check)
    print(json.dumps(result, indent=2))
    if not args.no_docs:
        write_section(render(result), SECTION, docs=args.docs)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
