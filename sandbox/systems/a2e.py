"""A2E (video.a2e.ai): TTS, talking-avatar video tasks, coin balance, result downloads.

Routes (below the `/a2e` mount; paths as the real API, PROTOCOLS.md section 5):

- `GET /api/v1/user/remainingCoins` -> `{"coins": n}`
- `POST /api/v1/video/send_tts` `{"msg", "tts_id" | "user_voice_id", "speechRate"?,
  "country"?, "region"?}` -> the audio URL
- `POST /api/v1/video/generate` `{"title", "anchor_id", "audioSrc", "anchor_type"? (0|1),
  "resolution"? (480|720|1080, default 1080), "web_*"?, "isSkipRs"?, "back_id"?, ...}`
  -> `{"_id", "title", "anchor_id", "status": "init", "createdAt"}`
- `POST /api/v1/video/awsResult` `{"_id"}` -> `[{"_id", "status", "process", "result", "msg",
  "anchor_id", "title", "createdAt", "updatedAt", "coins", ...}]` (`[]` for an unknown id)
- `GET /api/v1/video/awsList?current=1&pageSize=10` (pageSize <= 100) -> `{"list": [items
  as awsResult's, newest first], "total", "current", "pageSize"}`
- `DELETE /api/v1/video/{_id}` -> `{"_id"}`
- `GET|HEAD /files/{_id}.mp4`: the result (no auth, like a CDN URL; Range requests)
- `GET|HEAD /files/tts/{id}.mp3`: the TTS audio (no auth; Range requests)

Auth: `Authorization: Bearer <key>` where the key is `sk_sandbox` optionally followed by
`[A-Za-z0-9_-]` characters (e.g. `sk_sandbox_waifugen`). Every key is its own account: its own
coin balance, request budget and tasks (another key's task ids are unknown to it). A missing or
invalid token gets HTTP 401 `{"code": 401, "msg": ...}`; the sandbox always uses a real HTTP
status for auth and rate limits, and HTTP 200 with a non-zero `code` for request errors.

Envelope: `{"code": 0, "data": ..., "trace_id": ...}`; errors `{"code", "msg", "trace_id"}`:
400 invalid request (HTTP 200), 401 bad token (HTTP 401), 402 insufficient coins (HTTP 200),
404 unknown task (HTTP 200; awsResult answers an empty list instead, like a query), 429
more than `rate_limit` requests per `rate_window` seconds for the key (HTTP 429 with
Retry-After; default 100 per hour, as A2E's API keys). Only `/api/v1` requests count, each
as one (an awsList page too), counted on the sandbox clock (`ctx.clock()`, like every time
here: createdAt, render progress, result URL expiry).

Costs: TTS is free; its speech lasts `max(1, words / (2.5 * speechRate))` seconds (0.1 s
steps). A video costs `ceil(speech seconds) * {480: 1, 720: 2, 1080: 3}[resolution]` coins,
taken from the balance when the task is created (not enough coins: code 402, no task) and
refunded if the task fails or is deleted before it succeeded. An `audioSrc` that is not one
of this sandbox's TTS URLs counts as `5 + (sha256(url) % 100) / 10` seconds. `awsResult`
items carry the task's cost as `coins` (0 once refunded): newer A2E task families return
`coins`, whether video/awsResult does is unverified, so `report_coins: false` turns it off
to exercise a client's balance-delta fallback. Accounts start with `start_coins` (100000).

Per-poll mode (`render_seconds` null, the default): tasks move one state per `awsResult` poll
(`states_per_poll` per poll; nothing happens between polls, so tests never wait): init ->
start -> pending -> process (50) -> copy (99) -> success (100, `result` set); an awsList
page is a poll of every unfinished task on it (clients poll in bulk with it).

Timed mode (`render_seconds` a number, fixed per task at creation): a task's state is a pure
function of the sandbox clock, so polling more or less often changes nothing. Its render time
is `render_seconds * f`, f in [0.75, 1.25] from `ctx.rng("render", task_id)` (a `slow` outcome
takes `1 + polls` times as long). At fraction x of it: init (x < 0.05), start (< 0.15),
pending (< 0.3), process (< 0.9, progress 1..98 rising with x), copy (99, < 1), success (x >=
1); a `fail` outcome stays in process until x = 1, then fails. awsResult and awsList both
compute it; `updatedAt` is when the shown state began. A failed timed task is refunded once
its render time has passed, by the next /api/v1 call of its key (so remainingCoins shows it
without anyone polling the task).

The result is a real MP4 (see sandbox.media): 360x640 H.264 + AAC whatever `resolution` says,
lasting the speech clamped to 3-4 s, its look fixed by `anchor_id`. Result URLs stop working
`result_ttl` seconds (3 days) after success (403).

Control routes (no auth; journaled like everything else):
- `POST /_control/next_jobs` `{"outcome": "fail"|"slow"|"corrupt"|"truncated", "count": 1,
  "polls": 5, "message": "..."}`: the next `count` tasks created get that outcome: fail
  (process, then `fail` with `msg`), slow (stays in `process` for `polls` more polls, progress
  rising; timed: takes `1 + polls` times as long), corrupt (the result downloads as bytes
  that are not an MP4), truncated (the result download promises the full Content-Length,
  sends half and closes). With an `Authorization:
  Bearer <key>` header only that key's tasks are affected (else any key's); key-scoped entries
  are used first. `DELETE` clears the queue (of the key, or the global one).
- `POST /_control/config` `{"rate_limit", "rate_window", "states_per_poll", "report_coins",
  "result_ttl", "slow_polls", "render_seconds", "start_coins", "coins", "reset_rate_limit":
  true}`: with a key header it sets that account's overrides (`coins` sets its balance,
  `reset_rate_limit` forgets its recent requests), else the defaults of every account.
- `GET /_control/state`: the effective config, and with a key header that account's balance,
  recent request count and queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.clock import iso
from sandbox.media import (
    MP3,
    MP4,
    AudioSpec,
    MediaCache,
    VideoSpec,
    clamp_seconds,
    corrupt,
    file_response,
)
from sandbox.state import SystemState
from sandbox.system import System, SystemContext

API = "/api/v1"
KEY = re.compile(r"sk_sandbox[A-Za-z0-9_-]*")
STATES = ("init", "start", "pending", "process", "copy", "success", "fail")
TERMINAL = ("success", "fail")
COINS_PER_SECOND = {480: 1, 720: 2, 1080: 3}
WORDS_PER_SECOND = 2.5
MAX_TTS_CHARS = 5000
OUTCOMES = ("fail", "slow", "corrupt", "truncated")
DEFAULTS: dict[str, Any] = {
    "start_coins": 100_000, "rate_limit": 100, "rate_window": 3600.0, "states_per_poll": 1,
    "report_coins": True, "result_ttl": 3 * 86400.0, "slow_polls": 5, "render_seconds": None,
}
# name -> (check, description) for control-route config values
_CONFIG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "start_coins": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "rate_limit": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "rate_window": (lambda v: _is_number(v) and v > 0, "a number of seconds > 0"),
    "states_per_poll": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "report_coins": (lambda v: isinstance(v, bool), "true or false"),
    "result_ttl": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
    "slow_polls": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "render_seconds": (lambda v: v is None or (_is_number(v) and 0 <= v < math.inf),
                       "a number of seconds >= 0, or null (states advance per poll)"),
}
# Timed mode: the fraction of a task's render time at which each early state begins. Then
# `process` (progress 1..98) until COPY_AT, `copy` (99), and at 1 `success`; a failing task
# stays in `process` until 1, then `fail`.
EARLY = (("init", 0.0), ("start", 0.05), ("pending", 0.15))
PROCESS_AT, COPY_AT = 0.3, 0.9
RENDER_SPREAD = (0.75, 1.25)
_TTS_PATH = re.compile(r".*/files/tts/([0-9a-f]{24})\.mp3")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def speech_seconds(text: str, rate: float = 1.0) -> float:
    """How long the sandbox's TTS says `text` takes (the basis of a video's cost)."""
    return round(max(1.0, len(text.split()) / (WORDS_PER_SECOND * rate)), 1)


def external_audio_seconds(url: str) -> float:
    return 5 + int(hashlib.sha256(url.encode()).hexdigest(), 16) % 100 / 10


def video_cost(seconds: float, resolution: int) -> int:
    """Coins for a video over `seconds` of speech at `resolution`."""
    return math.ceil(seconds) * COINS_PER_SECOND[resolution]


class A2EError(Exception):
    def __init__(self, code: int, msg: str, http_status: int = 200,
                 retry_after: float | None = None) -> None:
        super().__init__(msg)
        self.code, self.msg, self.http_status, self.retry_after = code, msg, http_status, \
            retry_after


def _script(task: dict[str, Any]) -> list[tuple[str, int]]:
    """(status, process) after 0, 1, 2, ... state steps."""
    steps = [("init", 0), ("start", 0), ("pending", 0)]
    if task["outcome"] == "slow":
        extra = task["slow_polls"]
        steps += [("process", round(90 * (i + 1) / (extra + 1))) for i in range(extra + 1)]
    else:
        steps.append(("process", 50))
    if task["outcome"] == "fail":
        return [*steps, ("fail", steps[-1][1])]
    return [*steps, ("copy", 99), ("success", 100)]


def timed_state(outcome: str, fraction: float) -> tuple[str, int, float]:
    """(status, process, fraction of the render time when that status and process began)
    of a timed task `fraction` of the way through its render time."""
    if fraction >= 1.0:
        return ("fail", 98, 1.0) if outcome == "fail" else ("success", 100, 1.0)
    process_end = 1.0 if outcome == "fail" else COPY_AT
    if fraction >= process_end:
        return "copy", 99, COPY_AT
    if fraction >= PROCESS_AT:
        span = process_end - PROCESS_AT
        step = min(97, math.floor(98 * (fraction - PROCESS_AT) / span))
        return "process", step + 1, PROCESS_AT + span * step / 98
    status, began = EARLY[0]  # also before creation (the clock was set back)
    for name, begins in EARLY:
        if fraction >= begins:
            status, began = name, begins
    return status, 0, began


def pop_first(state: SystemState, *keys: str) -> dict[str, Any] | None:
    """Take the first entry of the first non-empty queue among `keys` (atomically each)."""
    got: list[dict[str, Any]] = []

    def change(queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if queue and not got:
            got.append(queue[0])
            return queue[1:]
        return queue

    for key in keys:
        state.update(key, change, default=[])
        if got:
            return got[0]
    return None


def _error_body(code: int, message: str, trace: str) -> dict[str, Any]:
    return {"code": code, "msg": message, "trace_id": trace}


def create(ctx: SystemContext) -> System:
    state = ctx.state
    media = MediaCache(ctx.state.store.state_dir / "media")
    traces = itertools.count(1)

    def trace_id() -> str:
        return f"{ctx.rng('trace', next(traces)).getrandbits(64):016x}"

    def ok(data: Any) -> JSONResponse:
        return JSONResponse({"code": 0, "data": data, "trace_id": trace_id()})

    def fail(exc: A2EError) -> JSONResponse:
        response = JSONResponse(_error_body(exc.code, exc.msg, trace_id()),
                                status_code=exc.http_status)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    def new_id(kind: str) -> str:
        number = state.next_id(kind)
        return f"{ctx.rng(kind, number).getrandbits(96):024x}"

    def index_tasks() -> None:
        """Give tasks stored before per-key id lists existed theirs (once per state dir)."""
        if state.get("tasks_indexed"):
            return
        by_key: dict[str, list[dict[str, Any]]] = {}
        for task in state.list_prefix("task/").values():
            if not task.get("deleted"):
                by_key.setdefault(task["fp"], []).append(task)
        for fp, tasks in by_key.items():
            tasks.sort(key=lambda t: (t["createdAt"], t["_id"]))
            state.put(f"tasks/{fp}", [t["_id"] for t in tasks])
        state.put("tasks_indexed", True)

    index_tasks()

    # --- accounts, config, rate limit --------------------------------------------------------

    def config(fp: str | None) -> dict[str, Any]:
        merged = {**DEFAULTS, **state.get("config", {})}
        if fp is not None:
            merged.update(state.get(f"account/{fp}", {}).get("config", {}))
        return merged

    def account(fp: str) -> dict[str, Any]:
        existing = state.get(f"account/{fp}")
        if existing is not None and "coins" in existing:
            return existing
        start = config(fp)["start_coins"]
        return state.update(f"account/{fp}",
                            lambda a: a if "coins" in a else {**a, "coins": start}, default={})

    def adjust_coins(fp: str, delta: int, need: int = 0) -> int | None:
        """Add `delta` to the balance if it stays >= `need` after; the new balance or None."""
        account(fp)
        result: dict[str, int] = {}

        def change(acc: dict[str, Any]) -> dict[str, Any]:
            if acc["coins"] + delta < need:
                result["short"] = acc["coins"]
                return acc
            return {**acc, "coins": acc["coins"] + delta}

        updated = state.update(f"account/{fp}", change, default={})
        return None if "short" in result else updated["coins"]

    def admit(fp: str, now: float) -> None:
        cfg = config(fp)
        limit, window = cfg["rate_limit"], float(cfg["rate_window"])
        verdict: dict[str, float] = {}

        def change(log: list[float]) -> list[float]:
            # Requests "after" now (the clock was set back) have not happened yet.
            recent = [t for t in log if now - window < t <= now]
            if len(recent) >= limit:
                verdict["wait"] = recent[len(recent) - limit] + window - now
                return recent
            return [*recent, now]

        state.update(f"ratelog/{fp}", change, default=[])
        if "wait" in verdict:
            raise A2EError(429, f"Too many requests: at most {limit} requests per "
                                f"{window:g} s per API key", 429, verdict["wait"])

    def authenticate(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise A2EError(401, "Unauthorized: missing Authorization: Bearer token", 401)
        if not KEY.fullmatch(token.strip()):
            raise A2EError(401, "Unauthorized: invalid API token", 401)
        return fingerprint(token.strip())

    def api(handler: Callable[[Request, str, float], Awaitable[Any]]) -> Callable[
            [Request], Awaitable[Response]]:
        """An /api/v1 route: auth, one request off the key's budget, failed timed tasks
        refunded, then `handler(request, key fingerprint, now)` (one clock reading)."""
        async def endpoint(request: Request) -> Response:
            try:
                fp = authenticate(request)
                now = ctx.clock()
                admit(fp, now)
                settle(fp, now)
                return ok(await handler(request, fp, now))
            except A2EError as exc:
                return fail(exc)
        return endpoint

    # --- request bodies ----------------------------------------------------------------------

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise A2EError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise A2EError(400, "request body must be a JSON object")
        return body

    def text_field(body: dict[str, Any], name: str, *, required: bool = True,
                   max_len: int = 200) -> str | None:
        value = body.get(name)
        if value is None or (required and isinstance(value, str) and not value.strip()):
            if required:
                raise A2EError(400, f"{name} is required")
            return None
        if not isinstance(value, str):
            raise A2EError(400, f"{name} must be a string")
        if len(value) > max_len:
            raise A2EError(400, f"{name} is too long (at most {max_len} characters)")
        return value

    def check_optional(body: dict[str, Any]) -> None:
        for name in ("web_bg_width", "web_bg_height", "web_people_width",
                     "web_people_height", "web_people_x", "web_people_y"):
            value = body.get(name)
            if value is not None and not (_is_number(value) and value >= 0):
                raise A2EError(400, f"{name} must be a number >= 0")
        for name in ("isSkipRs", "isCaptionEnabled", "isToPublicPool"):
            value = body.get(name)
            if value is not None and not isinstance(value, bool):
                raise A2EError(400, f"{name} must be true or false")
        for name in ("back_id", "custom_back_id", "anchor_background_color"):
            text_field(body, name, required=False)

    # --- API routes --------------------------------------------------------------------------

    async def remaining_coins(request: Request, fp: str, now: float) -> Any:
        return {"coins": account(fp)["coins"]}

    async def send_tts(request: Request, fp: str, now: float) -> Any:
        body = await json_body(request)
        msg = text_field(body, "msg", max_len=MAX_TTS_CHARS) or ""
        voices = {n: body.get(n) for n in ("tts_id", "user_voice_id") if body.get(n) is not None}
        if not voices:
            raise A2EError(400, "tts_id or user_voice_id is required")
        if len(voices) > 1:
            raise A2EError(400, "give either tts_id or user_voice_id, not both")
        [(voice_field, voice)] = voices.items()
        if not isinstance(voice, str) or not voice.strip():
            raise A2EError(400, f"{voice_field} must be a non-empty string")
        rate = body.get("speechRate", 1.0)
        if not _is_number(rate) or not 0.5 <= rate <= 2.0:
            raise A2EError(400, "speechRate must be a number between 0.5 and 2")
        for name in ("country", "region"):
            text_field(body, name, required=False)
        tts_id = new_id("tts")
        state.put(f"tts/{tts_id}", {"voice": voice, "seconds": speech_seconds(msg, rate),
                                    "fp": fp, "createdAt": iso(now)})
        return f"{request.base_url}files/tts/{tts_id}.mp3"

    def audio_seconds(request: Request, url: str) -> float:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise A2EError(400, "audioSrc must be an http(s) URL")
        match = _TTS_PATH.fullmatch(parts.path)
        if match and parts.netloc == request.url.netloc:
            tts = state.get(f"tts/{match.group(1)}")
            if tts is None:
                raise A2EError(400, "audioSrc could not be downloaded: no such audio")
            return float(tts["seconds"])
        return external_audio_seconds(url)

    def render_time(task_id: str, fp: str, outcome: str, slow_polls: int) -> float | None:
        """The task's own render time in timed mode (fixed at creation), else None."""
        base = config(fp)["render_seconds"]
        if base is None:
            return None
        seconds = float(base) * ctx.rng("render", task_id).uniform(*RENDER_SPREAD)
        return seconds * (1 + slow_polls) if outcome == "slow" else seconds

    async def generate(request: Request, fp: str, now: float) -> Any:
        body = await json_body(request)
        title = text_field(body, "title") or ""
        anchor_id = text_field(body, "anchor_id", max_len=64) or ""
        audio_src = text_field(body, "audioSrc", max_len=2048) or ""
        anchor_type = body.get("anchor_type", 0)
        if anchor_type not in (0, 1) or isinstance(anchor_type, bool):
            raise A2EError(400, "anchor_type must be 0 (system avatar) or 1 (custom avatar)")
        resolution = body.get("resolution", 1080)
        if not _is_int(resolution) or resolution not in COINS_PER_SECOND:
            raise A2EError(400, f"resolution must be one of {sorted(COINS_PER_SECOND)}")
        check_optional(body)
        seconds = audio_seconds(request, audio_src)
        cost = video_cost(seconds, resolution)
        balance = adjust_coins(fp, -cost)
        if balance is None:
            have = account(fp)["coins"]
            raise A2EError(402, f"Insufficient coins: this video needs {cost} coins, "
                                f"the balance is {have}")
        plan = pop_first(state, f"queue/{fp}", "queue/*") or {}
        task_id = new_id("task")
        outcome = plan.get("outcome", "ok")
        slow_polls = plan.get("polls") or config(fp)["slow_polls"]
        render = render_time(task_id, fp, outcome, slow_polls)
        task = {
            "_id": task_id, "fp": fp, "title": title, "anchor_id": anchor_id,
            "anchor_type": anchor_type, "audioSrc": audio_src, "resolution": resolution,
            "seconds": seconds, "coins": cost, "refunded": False, "deleted": False,
            "outcome": outcome, "slow_polls": slow_polls, "render_seconds": render,
            "fail_msg": plan.get("message") or "Video generation failed: the avatar could "
                                               "not be rendered (sandbox injected failure)",
            "steps": 0, "status": "init", "process": 0, "created": now,
            "createdAt": iso(now), "updatedAt": iso(now), "finished": None,
        }
        state.put(f"task/{task_id}", task)
        state.update(f"tasks/{fp}", lambda ids: [*ids, task_id], default=[])
        if render is not None and outcome == "fail":  # refunded when due, polled or not
            state.update(f"settle/{fp}", lambda due: [*due, [now + render, task_id]],
                         default=[])
        return {"_id": task_id, "title": title, "anchor_id": anchor_id, "status": "init",
                "createdAt": task["createdAt"]}

    def refund(task_id: str) -> None:
        flipped: list[bool] = []

        def change(task: dict[str, Any]) -> dict[str, Any]:
            if task.get("refunded"):
                return task
            flipped.append(True)
            return {**task, "refunded": True}

        task = state.update(f"task/{task_id}", change, default={})
        if flipped:
            adjust_coins(task["fp"], task["coins"])

    def settle(fp: str, now: float) -> None:
        """Refund the key's timed tasks that have failed by `now`, polled or not."""
        pending = state.get(f"settle/{fp}", [])
        if not any(due <= now for due, _ in pending):
            return
        taken: list[str] = []

        def change(entries: list[list[Any]]) -> list[list[Any]]:
            taken.extend(task_id for due, task_id in entries if due <= now)
            return [[due, task_id] for due, task_id in entries if due > now]

        state.update(f"settle/{fp}", change, default=[])
        for task_id in taken:
            refund(task_id)

    def current(task: dict[str, Any], now: float) -> dict[str, Any]:
        """The task as a client sees it at `now`: stored (per-poll mode) or computed from
        the clock (timed mode)."""
        render = task.get("render_seconds")
        if render is None:
            return task
        elapsed = now - task["created"]
        fraction = elapsed / render if render > 0 else (math.inf if elapsed >= 0 else 0.0)
        status, process, began = timed_state(task["outcome"], fraction)
        return {**task, "status": status, "process": process,
                "updatedAt": iso(task["created"] + render * began),
                "finished": task["created"] + render if status in TERMINAL else None}

    def advance(task_id: str, fp: str, now: float) -> dict[str, Any]:
        """Per-poll mode: `states_per_poll` more states (stored)."""
        per_poll = config(fp)["states_per_poll"]

        def change(task: dict[str, Any]) -> dict[str, Any]:
            if task["status"] in TERMINAL:
                return task
            script = _script(task)
            steps = min(task["steps"] + per_poll, len(script) - 1)
            status, process = script[steps]
            return {**task, "steps": steps, "status": status, "process": process,
                    "updatedAt": iso(now), "finished": now if status in TERMINAL else None}

        task = state.update(f"task/{task_id}", change, default={})
        if task["status"] == "fail":
            refund(task_id)
            task = state.get(f"task/{task_id}")
        return task

    def item(request: Request, task: dict[str, Any]) -> dict[str, Any]:
        success = task["status"] == "success"
        out = {
            "_id": task["_id"], "title": task["title"], "anchor_id": task["anchor_id"],
            "anchor_type": task["anchor_type"], "status": task["status"],
            "process": task["process"],
            "result": f"{request.base_url}files/{task['_id']}.mp4" if success else "",
            "result_people_url": "", "result_bg_url": "",
            "msg": task["fail_msg"] if task["status"] == "fail" else "",
            "audioSrc": task["audioSrc"], "resolution": task["resolution"],
            "createdAt": task["createdAt"], "updatedAt": task["updatedAt"],
        }
        if config(task["fp"])["report_coins"]:
            out["coins"] = 0 if task["refunded"] else task["coins"]
        return out

    def own_task(task_id: Any, fp: str) -> dict[str, Any] | None:
        if not isinstance(task_id, str) or not re.fullmatch(r"[0-9a-f]{24}", task_id):
            return None
        task = state.get(f"task/{task_id}")
        if task is None or task["fp"] != fp or task["deleted"]:
            return None
        return task

    async def aws_result(request: Request, fp: str, now: float) -> Any:
        body = await json_body(request)
        task_id = text_field(body, "_id", max_len=64)
        task = own_task(task_id, fp)
        if task is None:
            return []
        if task.get("render_seconds") is None:
            return [item(request, advance(str(task_id), fp, now))]
        return [item(request, current(task, now))]

    async def aws_list(request: Request, fp: str, now: float) -> Any:
        """This key's tasks, newest first, paged: how a client finds a task whose submit
        answer it never received (the title is the client's idempotency key), and polls
        many at once. Reads only the page's tasks (the key's id list is kept in order)."""
        try:
            page_no = max(1, int(request.query_params.get("current", "1")))
            size = min(100, max(1, int(request.query_params.get("pageSize", "10"))))
        except ValueError:
            raise A2EError(400, "current and pageSize must be integers") from None
        ids = state.get(f"tasks/{fp}", [])  # oldest first
        stop = max(0, len(ids) - (page_no - 1) * size)  # just past the page's newest
        tasks = [state.get(f"task/{task_id}") for task_id in ids[max(0, stop - size):stop]]
        # Per-poll mode: a listing observes every task on the page, as a poll of each would.
        tasks = [advance(t["_id"], fp, now) if t is not None and not t["deleted"]
                 and t.get("render_seconds") is None else t for t in tasks]
        return {"list": [item(request, current(t, now)) for t in reversed(tasks)
                         if t is not None and not t["deleted"]],
                "total": len(ids), "current": page_no, "pageSize": size}

    async def delete_video(request: Request, fp: str, now: float) -> Any:
        task_id = request.path_params["task_id"]
        task = own_task(task_id, fp)
        if task is None:
            raise A2EError(404, f"video {task_id} not found")
        state.update(f"task/{task_id}", lambda t: {**t, "deleted": True}, default={})
        state.update(f"tasks/{fp}", lambda ids: [i for i in ids if i != task_id], default=[])
        if current(task, now)["status"] != "success":
            refund(task_id)
        return {"_id": task_id}

    # --- downloads ---------------------------------------------------------------------------

    async def result_file(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        task = state.get(f"task/{task_id}") if re.fullmatch(r"[0-9a-f]{24}", task_id) else None
        now = ctx.clock()
        if task is not None:
            task = current(task, now)
        if task is None or task["deleted"] or task["status"] != "success":
            return PlainTextResponse("Not Found", status_code=404)
        ttl = float(config(task["fp"])["result_ttl"])
        if task["finished"] is not None and now > task["finished"] + ttl:
            return PlainTextResponse("AccessDenied: Request has expired", status_code=403)
        spec = VideoSpec(task["anchor_id"], clamp_seconds(task["seconds"]))
        data = await asyncio.to_thread(media.read, spec)
        if task["outcome"] == "corrupt":
            data = corrupt(data, ctx.rng("corrupt", task_id))
        return file_response(request, data, MP4, truncate=task["outcome"] == "truncated")

    async def tts_file(request: Request) -> Response:
        tts_id = request.path_params["tts_id"]
        tts = state.get(f"tts/{tts_id}") if re.fullmatch(r"[0-9a-f]{24}", tts_id) else None
        if tts is None:
            return PlainTextResponse("Not Found", status_code=404)
        data = await asyncio.to_thread(media.read, AudioSpec(tts["voice"], tts["seconds"]))
        return file_response(request, data, MP3)

    # --- control -----------------------------------------------------------------------------

    def control_error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def control_key(request: Request) -> str | None:
        if "authorization" not in request.headers:
            return None
        return authenticate(request)

    async def control_json(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise A2EError(400, "invalid JSON") from None
        if not isinstance(body, dict):
            raise A2EError(400, "body must be a JSON object")
        return body

    def snapshot(fp: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"config": config(fp),
                               "queue": state.get(f"queue/{fp or '*'}", [])}
        if fp is not None:
            cfg, now = config(fp), ctx.clock()
            settle(fp, now)
            recent = [t for t in state.get(f"ratelog/{fp}", [])
                      if now - float(cfg["rate_window"]) < t <= now]
            out.update(coins=account(fp)["coins"], recent_requests=len(recent))
        return out

    async def control_state(request: Request) -> Response:
        try:
            return JSONResponse(snapshot(control_key(request)))
        except A2EError as exc:
            return control_error(exc.msg, exc.http_status if exc.http_status != 200 else 400)

    async def control_config(request: Request) -> Response:
        try:
            fp = control_key(request)
            body = await control_json(request)
        except A2EError as exc:
            return control_error(exc.msg, exc.http_status if exc.http_status != 200 else 400)
        known = {*_CONFIG_RULES, "coins", "reset_rate_limit"}
        unknown = sorted(set(body) - known)
        if unknown:
            return control_error(f"unknown config fields {unknown}; known: {sorted(known)}")
        settings = {k: v for k, v in body.items() if k in _CONFIG_RULES}
        for name, value in settings.items():
            check, description = _CONFIG_RULES[name]
            if not check(value):
                return control_error(f"{name} must be {description}")
        coins = body.get("coins")
        if coins is not None and (fp is None or not _is_int(coins) or coins < 0):
            return control_error("coins (an integer >= 0) needs an Authorization key header")
        if fp is None:
            state.update("config", lambda c: {**c, **settings}, default={})
        else:
            account(fp)
            state.update(f"account/{fp}", lambda a: {
                **a, "config": {**a.get("config", {}), **settings},
                **({"coins": coins} if coins is not None else {})}, default={})
            if body.get("reset_rate_limit"):
                state.put(f"ratelog/{fp}", [])
        return JSONResponse(snapshot(fp))

    async def control_next_jobs(request: Request) -> Response:
        try:
            fp = control_key(request)
            body = {} if request.method == "DELETE" else await control_json(request)
        except A2EError as exc:
            return control_error(exc.msg, exc.http_status if exc.http_status != 200 else 400)
        scope = f"queue/{fp or '*'}"
        if request.method == "DELETE":
            state.put(scope, [])
            return JSONResponse({"queue": []})
        outcome, count = body.get("outcome"), body.get("count", 1)
        polls, message = body.get("polls"), body.get("message")
        if outcome not in OUTCOMES:
            return control_error(f"outcome must be one of {list(OUTCOMES)}")
        if not _is_int(count) or count < 1:
            return control_error("count must be an integer >= 1")
        if polls is not None and (not _is_int(polls) or polls < 1):
            return control_error("polls must be an integer >= 1")
        if message is not None and not isinstance(message, str):
            return control_error("message must be a string")
        entry = {"outcome": outcome, "polls": polls, "message": message}
        queue = state.update(scope, lambda q: [*q, *([entry] * count)], default=[])
        return JSONResponse({"queue": queue})

    async def not_found(request: Request, exc: Exception) -> Response:
        return fail(A2EError(404, f"Not Found: {request.method} {request.url.path}", 404))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return fail(A2EError(405, f"Method Not Allowed: {request.method}", 405))

    app = Starlette(
        routes=[
            Route(f"{API}/user/remainingCoins", api(remaining_coins), methods=["GET"]),
            Route(f"{API}/video/send_tts", api(send_tts), methods=["POST"]),
            Route(f"{API}/video/generate", api(generate), methods=["POST"]),
            Route(f"{API}/video/awsResult", api(aws_result), methods=["POST"]),
            Route(f"{API}/video/awsList", api(aws_list), methods=["GET"]),
            Route(f"{API}/video/{{task_id}}", api(delete_video), methods=["DELETE"]),
            Route("/files/tts/{tts_id}.mp3", tts_file, methods=["GET", "HEAD"]),
            Route("/files/{task_id}.mp4", result_file, methods=["GET", "HEAD"]),
            Route("/_control/state", control_state, methods=["GET"]),
            Route("/_control/config", control_config, methods=["POST"]),
            Route("/_control/next_jobs", control_next_jobs, methods=["POST", "DELETE"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )

    def error_response(status: int, message: str, retry_after: float | None) -> Response:
        return JSONResponse(_error_body(status, message, trace_id()), status_code=status)

    return System(app=app, error_response=error_response)
