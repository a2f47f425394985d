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
from sandbox.control import BadControlBody, read_control_body
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
from sandbox.state import pop_first
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


def _error_body(code: int, message: str, trace: str) -> dict[str, Any]:
    return {"code": code, "msg": message, "trace_id": trace}


def _control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _control_failure(exc: A2EError) -> JSONResponse:
    """A control route's answer to an A2EError (a request error, HTTP 200 in the API, is 400)."""
    return _control_error(exc.msg, exc.http_status if exc.http_status != 200 else 400)


def _text_field(body: dict[str, Any], name: str, *, required: bool = True,
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


def _check_optional(body: dict[str, Any]) -> None:
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
        _text_field(body, name, required=False)


def _tts_voice(body: dict[str, Any]) -> str:
    """send_tts's voice: exactly one of tts_id and user_voice_id, a non-empty string."""
    voices = {n: body.get(n) for n in ("tts_id", "user_voice_id") if body.get(n) is not None}
    if not voices:
        raise A2EError(400, "tts_id or user_voice_id is required")
    if len(voices) > 1:
        raise A2EError(400, "give either tts_id or user_voice_id, not both")
    [(voice_field, voice)] = voices.items()
    if not isinstance(voice, str) or not voice.strip():
        raise A2EError(400, f"{voice_field} must be a non-empty string")
    return voice


def _video_request(body: dict[str, Any]) -> dict[str, Any]:
    """generate's fields, checked: title, anchor_id, audioSrc, anchor_type, resolution."""
    fields = {
        "title": _text_field(body, "title") or "",
        "anchor_id": _text_field(body, "anchor_id", max_len=64) or "",
        "audioSrc": _text_field(body, "audioSrc", max_len=2048) or "",
    }
    anchor_type = body.get("anchor_type", 0)
    if anchor_type not in (0, 1) or isinstance(anchor_type, bool):
        raise A2EError(400, "anchor_type must be 0 (system avatar) or 1 (custom avatar)")
    resolution = body.get("resolution", 1080)
    if not _is_int(resolution) or resolution not in COINS_PER_SECOND:
        raise A2EError(400, f"resolution must be one of {sorted(COINS_PER_SECOND)}")
    _check_optional(body)
    return {**fields, "anchor_type": anchor_type, "resolution": resolution}


def _current(task: dict[str, Any], now: float) -> dict[str, Any]:
    """The task as a client sees it at `now`: stored (per-poll mode) or computed from the
    clock (timed mode)."""
    render = task.get("render_seconds")
    if render is None:
        return task
    elapsed = now - task["created"]
    fraction = elapsed / render if render > 0 else (math.inf if elapsed >= 0 else 0.0)
    status, process, began = timed_state(task["outcome"], fraction)
    return {**task, "status": status, "process": process,
            "updatedAt": iso(task["created"] + render * began),
            "finished": task["created"] + render if status in TERMINAL else None}


def _config_problem(body: dict[str, Any], fp: str | None) -> str | None:
    """What is wrong with a POST /_control/config body, or None."""
    known = {*_CONFIG_RULES, "coins", "reset_rate_limit"}
    unknown = sorted(set(body) - known)
    if unknown:
        return f"unknown config fields {unknown}; known: {sorted(known)}"
    for name, value in body.items():
        if name in _CONFIG_RULES:
            check, description = _CONFIG_RULES[name]
            if not check(value):
                return f"{name} must be {description}"
    coins = body.get("coins")
    if coins is not None and (fp is None or not _is_int(coins) or coins < 0):
        return "coins (an integer >= 0) needs an Authorization key header"
    return None


def _next_jobs_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with a POST /_control/next_jobs body, or None."""
    outcome, count = body.get("outcome"), body.get("count", 1)
    polls, message = body.get("polls"), body.get("message")
    if outcome not in OUTCOMES:
        return f"outcome must be one of {list(OUTCOMES)}"
    if not _is_int(count) or count < 1:
        return "count must be an integer >= 1"
    if polls is not None and (not _is_int(polls) or polls < 1):
        return "polls must be an integer >= 1"
    if message is not None and not isinstance(message, str):
        return "message must be a string"
    return None


ApiHandler = Callable[[Request, str, float], Awaitable[Any]]


class A2ESystem:
    """A2E's video API: per-key accounts (coins, rate limit, tasks), TTS, avatar video tasks
    that render per poll or on the clock, and downloadable results."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.media = MediaCache(ctx.state.store.state_dir / "media")
        self.traces = itertools.count(1)
        self.index_tasks()

    # --- helpers: envelope, ids ----------------------------------------------------------------

    def trace_id(self) -> str:
        return f"{self.ctx.rng('trace', next(self.traces)).getrandbits(64):016x}"

    def ok(self, data: Any) -> JSONResponse:
        return JSONResponse({"code": 0, "data": data, "trace_id": self.trace_id()})

    def fail(self, exc: A2EError) -> JSONResponse:
        response = JSONResponse(_error_body(exc.code, exc.msg, self.trace_id()),
                                status_code=exc.http_status)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    def error_response(self, status: int, message: str, retry_after: float | None) -> Response:
        return JSONResponse(_error_body(status, message, self.trace_id()), status_code=status)

    def new_id(self, kind: str) -> str:
        number = self.state.next_id(kind)
        return f"{self.ctx.rng(kind, number).getrandbits(96):024x}"

    def index_tasks(self) -> None:
        """Give tasks stored before per-key id lists existed theirs (once per state dir)."""
        state = self.state
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

    # --- helpers: accounts, config, rate limit -------------------------------------------------

    def config(self, fp: str | None) -> dict[str, Any]:
        merged = {**DEFAULTS, **self.state.get("config", {})}
        if fp is not None:
            merged.update(self.state.get(f"account/{fp}", {}).get("config", {}))
        return merged

    def account(self, fp: str) -> dict[str, Any]:
        existing = self.state.get(f"account/{fp}")
        if existing is not None and "coins" in existing:
            return existing
        start = self.config(fp)["start_coins"]
        return self.state.update(f"account/{fp}",
                                 lambda a: a if "coins" in a else {**a, "coins": start},
                                 default={})

    def adjust_coins(self, fp: str, delta: int, need: int = 0) -> int | None:
        """Add `delta` to the balance if it stays >= `need` after; the new balance or None."""
        self.account(fp)
        result: dict[str, int] = {}

        def change(acc: dict[str, Any]) -> dict[str, Any]:
            if acc["coins"] + delta < need:
                result["short"] = acc["coins"]
                return acc
            return {**acc, "coins": acc["coins"] + delta}

        updated = self.state.update(f"account/{fp}", change, default={})
        return None if "short" in result else updated["coins"]

    def admit(self, fp: str, now: float) -> None:
        cfg = self.config(fp)
        limit, window = cfg["rate_limit"], float(cfg["rate_window"])
        verdict: dict[str, float] = {}

        def change(log: list[float]) -> list[float]:
            # Requests "after" now (the clock was set back) have not happened yet.
            recent = [t for t in log if now - window < t <= now]
            if len(recent) >= limit:
                verdict["wait"] = recent[len(recent) - limit] + window - now
                return recent
            return [*recent, now]

        self.state.update(f"ratelog/{fp}", change, default=[])
        if "wait" in verdict:
            raise A2EError(429, f"Too many requests: at most {limit} requests per "
                                f"{window:g} s per API key", 429, verdict["wait"])

    @staticmethod
    def authenticate(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise A2EError(401, "Unauthorized: missing Authorization: Bearer token", 401)
        if not KEY.fullmatch(token.strip()):
            raise A2EError(401, "Unauthorized: invalid API token", 401)
        return fingerprint(token.strip())

    def api(self, handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        """An /api/v1 route: auth, one request off the key's budget, failed timed tasks
        refunded, then `handler(request, key fingerprint, now)` (one clock reading)."""
        async def endpoint(request: Request) -> Response:
            try:
                fp = self.authenticate(request)
                now = self.ctx.clock()
                self.admit(fp, now)
                self.settle(fp, now)
                return self.ok(await handler(request, fp, now))
            except A2EError as exc:
                return self.fail(exc)
        return endpoint

    @staticmethod
    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise A2EError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise A2EError(400, "request body must be a JSON object")
        return body

    # --- helpers: tasks ------------------------------------------------------------------------

    def audio_seconds(self, request: Request, url: str) -> float:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise A2EError(400, "audioSrc must be an http(s) URL")
        match = _TTS_PATH.fullmatch(parts.path)
        if match and parts.netloc == request.url.netloc:
            tts = self.state.get(f"tts/{match.group(1)}")
            if tts is None:
                raise A2EError(400, "audioSrc could not be downloaded: no such audio")
            return float(tts["seconds"])
        return external_audio_seconds(url)

    def render_time(self, task_id: str, fp: str, outcome: str,
                    slow_polls: int) -> float | None:
        """The task's own render time in timed mode (fixed at creation), else None."""
        base = self.config(fp)["render_seconds"]
        if base is None:
            return None
        seconds = float(base) * self.ctx.rng("render", task_id).uniform(*RENDER_SPREAD)
        return seconds * (1 + slow_polls) if outcome == "slow" else seconds

    def charge(self, fp: str, cost: int) -> None:
        """Take a video's cost from the balance, or code 402 (nothing taken)."""
        if self.adjust_coins(fp, -cost) is None:
            have = self.account(fp)["coins"]
            raise A2EError(402, f"Insufficient coins: this video needs {cost} coins, "
                                f"the balance is {have}")

    def new_task(self, fp: str, video: dict[str, Any], seconds: float, cost: int,
                 now: float) -> dict[str, Any]:
        """Store a paid-for task (its fate from the control queue), listed under the key."""
        plan = pop_first(self.state, f"queue/{fp}", "queue/*") or {}
        task_id = self.new_id("task")
        outcome = plan.get("outcome", "ok")
        slow_polls = plan.get("polls") or self.config(fp)["slow_polls"]
        render = self.render_time(task_id, fp, outcome, slow_polls)
        task = {
            "_id": task_id, "fp": fp, "title": video["title"], "anchor_id": video["anchor_id"],
            "anchor_type": video["anchor_type"], "audioSrc": video["audioSrc"],
            "resolution": video["resolution"],
            "seconds": seconds, "coins": cost, "refunded": False, "deleted": False,
            "outcome": outcome, "slow_polls": slow_polls, "render_seconds": render,
            "fail_msg": plan.get("message") or "Video generation failed: the avatar could "
                                               "not be rendered (sandbox injected failure)",
            "steps": 0, "status": "init", "process": 0, "created": now,
            "createdAt": iso(now), "updatedAt": iso(now), "finished": None,
        }
        self.state.put(f"task/{task_id}", task)
        self.state.update(f"tasks/{fp}", lambda ids: [*ids, task_id], default=[])
        if render is not None and outcome == "fail":  # refunded when due, polled or not
            self.state.update(f"settle/{fp}", lambda due: [*due, [now + render, task_id]],
                              default=[])
        return task

    def refund(self, task_id: str) -> None:
        flipped: list[bool] = []

        def change(task: dict[str, Any]) -> dict[str, Any]:
            if task.get("refunded"):
                return task
            flipped.append(True)
            return {**task, "refunded": True}

        task = self.state.update(f"task/{task_id}", change, default={})
        if flipped:
            self.adjust_coins(task["fp"], task["coins"])

    def settle(self, fp: str, now: float) -> None:
        """Refund the key's timed tasks that have failed by `now`, polled or not."""
        pending = self.state.get(f"settle/{fp}", [])
        if not any(due <= now for due, _ in pending):
            return
        taken: list[str] = []

        def change(entries: list[list[Any]]) -> list[list[Any]]:
            taken.extend(task_id for due, task_id in entries if due <= now)
            return [[due, task_id] for due, task_id in entries if due > now]

        self.state.update(f"settle/{fp}", change, default=[])
        for task_id in taken:
            self.refund(task_id)

    def advance(self, task_id: str, fp: str, now: float) -> dict[str, Any]:
        """Per-poll mode: `states_per_poll` more states (stored)."""
        per_poll = self.config(fp)["states_per_poll"]

        def change(task: dict[str, Any]) -> dict[str, Any]:
            if task["status"] in TERMINAL:
                return task
            script = _script(task)
            steps = min(task["steps"] + per_poll, len(script) - 1)
            status, process = script[steps]
            return {**task, "steps": steps, "status": status, "process": process,
                    "updatedAt": iso(now), "finished": now if status in TERMINAL else None}

        task = self.state.update(f"task/{task_id}", change, default={})
        if task["status"] == "fail":
            self.refund(task_id)
            task = self.state.get(f"task/{task_id}")
        return task

    def item(self, request: Request, task: dict[str, Any]) -> dict[str, Any]:
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
        if self.config(task["fp"])["report_coins"]:
            out["coins"] = 0 if task["refunded"] else task["coins"]
        return out

    def own_task(self, task_id: Any, fp: str) -> dict[str, Any] | None:
        if not isinstance(task_id, str) or not re.fullmatch(r"[0-9a-f]{24}", task_id):
            return None
        task = self.state.get(f"task/{task_id}")
        if task is None or task["fp"] != fp or task["deleted"]:
            return None
        return task

    # --- API routes ----------------------------------------------------------------------------

    async def remaining_coins(self, request: Request, fp: str, now: float) -> Any:
        return {"coins": self.account(fp)["coins"]}

    async def send_tts(self, request: Request, fp: str, now: float) -> Any:
        body = await self.json_body(request)
        msg = _text_field(body, "msg", max_len=MAX_TTS_CHARS) or ""
        voice = _tts_voice(body)
        rate = body.get("speechRate", 1.0)
        if not _is_number(rate) or not 0.5 <= rate <= 2.0:
            raise A2EError(400, "speechRate must be a number between 0.5 and 2")
        for name in ("country", "region"):
            _text_field(body, name, required=False)
        tts_id = self.new_id("tts")
        self.state.put(f"tts/{tts_id}", {"voice": voice, "seconds": speech_seconds(msg, rate),
                                         "fp": fp, "createdAt": iso(now)})
        return f"{request.base_url}files/tts/{tts_id}.mp3"

    async def generate(self, request: Request, fp: str, now: float) -> Any:
        video = _video_request(await self.json_body(request))
        seconds = self.audio_seconds(request, video["audioSrc"])
        cost = video_cost(seconds, video["resolution"])
        self.charge(fp, cost)
        task = self.new_task(fp, video, seconds, cost, now)
        return {"_id": task["_id"], "title": task["title"], "anchor_id": task["anchor_id"],
                "status": "init", "createdAt": task["createdAt"]}

    async def aws_result(self, request: Request, fp: str, now: float) -> Any:
        body = await self.json_body(request)
        task_id = _text_field(body, "_id", max_len=64)
        task = self.own_task(task_id, fp)
        if task is None:
            return []
        if task.get("render_seconds") is None:
            return [self.item(request, self.advance(str(task_id), fp, now))]
        return [self.item(request, _current(task, now))]

    async def aws_list(self, request: Request, fp: str, now: float) -> Any:
        """This key's tasks, newest first, paged: how a client finds a task whose submit
        answer it never received (the title is the client's idempotency key), and polls
        many at once. Reads only the page's tasks (the key's id list is kept in order)."""
        try:
            page_no = max(1, int(request.query_params.get("current", "1")))
            size = min(100, max(1, int(request.query_params.get("pageSize", "10"))))
        except ValueError:
            raise A2EError(400, "current and pageSize must be integers") from None
        ids = self.state.get(f"tasks/{fp}", [])  # oldest first
        stop = max(0, len(ids) - (page_no - 1) * size)  # just past the page's newest
        tasks = [self.state.get(f"task/{task_id}") for task_id in ids[max(0, stop - size):stop]]
        # Per-poll mode: a listing observes every task on the page, as a poll of each would.
        tasks = [self.advance(t["_id"], fp, now) if t is not None and not t["deleted"]
                 and t.get("render_seconds") is None else t for t in tasks]
        return {"list": [self.item(request, _current(t, now)) for t in reversed(tasks)
                         if t is not None and not t["deleted"]],
                "total": len(ids), "current": page_no, "pageSize": size}

    async def delete_video(self, request: Request, fp: str, now: float) -> Any:
        task_id = request.path_params["task_id"]
        task = self.own_task(task_id, fp)
        if task is None:
            raise A2EError(404, f"video {task_id} not found")
        self.state.update(f"task/{task_id}", lambda t: {**t, "deleted": True}, default={})
        self.state.update(f"tasks/{fp}", lambda ids: [i for i in ids if i != task_id],
                          default=[])
        if _current(task, now)["status"] != "success":
            self.refund(task_id)
        return {"_id": task_id}

    # --- API routes: downloads -----------------------------------------------------------------

    async def result_file(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        task = self.state.get(f"task/{task_id}") if re.fullmatch(r"[0-9a-f]{24}", task_id) \
            else None
        now = self.ctx.clock()
        if task is not None:
            task = _current(task, now)
        if task is None or task["deleted"] or task["status"] != "success":
            return PlainTextResponse("Not Found", status_code=404)
        ttl = float(self.config(task["fp"])["result_ttl"])
        if task["finished"] is not None and now > task["finished"] + ttl:
            return PlainTextResponse("AccessDenied: Request has expired", status_code=403)
        spec = VideoSpec(task["anchor_id"], clamp_seconds(task["seconds"]))
        data = await asyncio.to_thread(self.media.read, spec)
        if task["outcome"] == "corrupt":
            data = corrupt(data, self.ctx.rng("corrupt", task_id))
        return file_response(request, data, MP4, truncate=task["outcome"] == "truncated")

    async def tts_file(self, request: Request) -> Response:
        tts_id = request.path_params["tts_id"]
        tts = self.state.get(f"tts/{tts_id}") if re.fullmatch(r"[0-9a-f]{24}", tts_id) \
            else None
        if tts is None:
            return PlainTextResponse("Not Found", status_code=404)
        data = await asyncio.to_thread(self.media.read, AudioSpec(tts["voice"], tts["seconds"]))
        return file_response(request, data, MP3)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.fail(A2EError(404, f"Not Found: {request.method} {request.url.path}", 404))

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.fail(A2EError(405, f"Method Not Allowed: {request.method}", 405))

    # --- control routes ------------------------------------------------------------------------

    def control_key(self, request: Request) -> str | None:
        if "authorization" not in request.headers:
            return None
        return self.authenticate(request)

    def snapshot(self, fp: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"config": self.config(fp),
                               "queue": self.state.get(f"queue/{fp or '*'}", [])}
        if fp is not None:
            cfg, now = self.config(fp), self.ctx.clock()
            self.settle(fp, now)
            recent = [t for t in self.state.get(f"ratelog/{fp}", [])
                      if now - float(cfg["rate_window"]) < t <= now]
            out.update(coins=self.account(fp)["coins"], recent_requests=len(recent))
        return out

    async def control_state(self, request: Request) -> Response:
        try:
            return JSONResponse(self.snapshot(self.control_key(request)))
        except A2EError as exc:
            return _control_failure(exc)

    async def control_config(self, request: Request) -> Response:
        try:
            fp = self.control_key(request)
            body = await read_control_body(request)
        except BadControlBody as exc:
            return _control_error(str(exc))
        except A2EError as exc:
            return _control_failure(exc)
        problem = _config_problem(body, fp)
        if problem is not None:
            return _control_error(problem)
        self.apply_config(body, fp)
        return JSONResponse(self.snapshot(fp))

    def apply_config(self, body: dict[str, Any], fp: str | None) -> None:
        """Set the defaults (no key) or the key's overrides, balance and rate-limit log."""
        settings = {k: v for k, v in body.items() if k in _CONFIG_RULES}
        coins = body.get("coins")
        if fp is None:
            self.state.update("config", lambda c: {**c, **settings}, default={})
            return
        self.account(fp)
        self.state.update(f"account/{fp}", lambda a: {
            **a, "config": {**a.get("config", {}), **settings},
            **({"coins": coins} if coins is not None else {})}, default={})
        if body.get("reset_rate_limit"):
            self.state.put(f"ratelog/{fp}", [])

    async def control_next_jobs(self, request: Request) -> Response:
        try:
            fp = self.control_key(request)
            body = {} if request.method == "DELETE" else await read_control_body(request)
        except BadControlBody as exc:
            return _control_error(str(exc))
        except A2EError as exc:
            return _control_failure(exc)
        scope = f"queue/{fp or '*'}"
        if request.method == "DELETE":
            self.state.put(scope, [])
            return JSONResponse({"queue": []})
        problem = _next_jobs_problem(body)
        if problem is not None:
            return _control_error(problem)
        entry = {"outcome": body["outcome"], "polls": body.get("polls"),
                 "message": body.get("message")}
        count = body.get("count", 1)
        queue = self.state.update(scope, lambda q: [*q, *([entry] * count)], default=[])
        return JSONResponse({"queue": queue})

    def routes(self) -> list[Route]:
        api = self.api
        return [
            Route(f"{API}/user/remainingCoins", api(self.remaining_coins), methods=["GET"]),
            Route(f"{API}/video/send_tts", api(self.send_tts), methods=["POST"]),
            Route(f"{API}/video/generate", api(self.generate), methods=["POST"]),
            Route(f"{API}/video/awsResult", api(self.aws_result), methods=["POST"]),
            Route(f"{API}/video/awsList", api(self.aws_list), methods=["GET"]),
            Route(f"{API}/video/{{task_id}}", api(self.delete_video), methods=["DELETE"]),
            Route("/files/tts/{tts_id}.mp3", self.tts_file, methods=["GET", "HEAD"]),
            Route("/files/{task_id}.mp4", self.result_file, methods=["GET", "HEAD"]),
            Route("/_control/state", self.control_state, methods=["GET"]),
            Route("/_control/config", self.control_config, methods=["POST"]),
            Route("/_control/next_jobs", self.control_next_jobs, methods=["POST", "DELETE"]),
        ]

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app, error_response=self.error_response)


def create(ctx: SystemContext) -> System:
    return A2ESystem(ctx).system()
