"""RunPod serverless (queue-based endpoints): the fallback video generator when A2E keeps failing.

Routes (below the `/runpod` mount; paths as https://api.runpod.ai):

- `POST /v2/{endpoint_id}/run` `{"input": {...}, "webhook"?, "policy"?}`
  -> `{"id", "status": "IN_QUEUE"}`
- `GET /v2/{endpoint_id}/status/{id}` -> `{"id", "status", "delayTime"?, "executionTime"?,
  "workerId"?, "output"? | "error"?}`
- `POST /v2/{endpoint_id}/cancel/{id}` -> `{"id", "status": "CANCELLED"}` (a finished job
  keeps its status)
- `GET /v2/{endpoint_id}/health` -> `{"jobs": {...}, "workers": {...}}`
- `GET|HEAD /files/{id}.mp4`: the job's video (no auth, like a bucket URL; Range requests)

Auth: `Authorization: Bearer <key>` (or the bare key, as RunPod also accepts) where the key is
`rpa_sandbox` optionally followed by `[A-Za-z0-9_-]` characters; anything else is HTTP 401
`{"error": ...}`. Request errors are HTTP 400 `{"error": ...}`; an unknown job (or one of
another endpoint) is 404 `{"error": "request does not exist"}`; bodies over 10 MB are 413.

Statuses move one step per status poll (`states_per_poll` per poll): IN_QUEUE -> IN_PROGRESS
-> COMPLETED (or FAILED). The worker behind the endpoint is ours, so its contract is ours too:
input `{"anchor_id": str, "text": str | "audio_url": str, "title"?, "resolution"?}`; output
`{"video_url", "duration", "width", "height"}`. An input the worker cannot use fails the job
(FAILED with `error`), like a handler raising; `/run` itself accepts any JSON object input.
The video is a real MP4 (sandbox.media) for the anchor, lasting the text's speech (2.5 words
per second) clamped to 3-4 s.

Control routes (no auth): `POST /_control/next_jobs` `{"outcome": "fail"|"slow"|"corrupt"|
"truncated", "count": 1, "endpoint_id"?, "polls"?, "message"?}` (endpoint-scoped entries are
used first, then global ones; `DELETE ?endpoint_id=` clears), `POST /_control/config`
`{"endpoint_id"?, "states_per_poll"?, "slow_polls"?}`, `GET /_control/state?endpoint_id=`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.control import BadControlBody, read_control_body
from sandbox.media import (
    HEIGHT,
    MP4,
    WIDTH,
    MediaCache,
    VideoSpec,
    clamp_seconds,
    corrupt,
    file_response,
)
from sandbox.state import pop_first
from sandbox.system import System, SystemContext

KEY = re.compile(r"rpa_sandbox[A-Za-z0-9_-]*")
ENDPOINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_BODY = 10 * 1024 * 1024
OUTCOMES = ("fail", "slow", "corrupt", "truncated")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
DEFAULTS: dict[str, Any] = {"states_per_poll": 1, "slow_polls": 5}
WORDS_PER_SECOND = 2.5

Handler = Callable[[Request, str], Awaitable[Any]]


class RunPodError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _worker_problem(job_input: Any) -> str | None:
    """Why our worker's handler would raise on this input, or None."""
    if not isinstance(job_input, dict):
        return "input must be an object"
    anchor = job_input.get("anchor_id")
    if not isinstance(anchor, str) or not anchor.strip():
        return "input.anchor_id is required (a string)"
    text, audio = job_input.get("text"), job_input.get("audio_url")
    if not (isinstance(text, str) and text.strip()) and not (
            isinstance(audio, str) and audio.startswith(("http://", "https://"))):
        return "input.text (a string) or input.audio_url (an http(s) URL) is required"
    return None


def _script(job: dict[str, Any]) -> list[str]:
    """The statuses a job moves through, one step per status poll."""
    steps = ["IN_QUEUE", "IN_PROGRESS"]
    if job["outcome"] == "slow":
        steps += ["IN_PROGRESS"] * job["slow_polls"]
    return [*steps, "FAILED" if job["outcome"] == "fail" else "COMPLETED"]


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _scope_of(value: Any) -> str | None:
    """The endpoint a control entry is scoped to (None: every endpoint), else 400."""
    if value is None:
        return None
    if not isinstance(value, str) or not ENDPOINT.fullmatch(value):
        raise RunPodError(400, "endpoint_id must be an endpoint id")
    return value


def _run_body(raw: bytes) -> dict[str, Any]:
    """The checked body of POST /run, else RunPodError."""
    if len(raw) > MAX_BODY:
        raise RunPodError(413, "request body is larger than 10 MB")
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise RunPodError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RunPodError(400, "request body must be a JSON object")
    if not isinstance(body.get("input"), dict):
        raise RunPodError(400, "input is required and must be a JSON object")
    unknown = sorted(set(body) - {"input", "webhook", "policy", "s3Config"})
    if unknown:
        raise RunPodError(400, f"unknown fields {unknown}")
    webhook = body.get("webhook")
    if webhook is not None and not (isinstance(webhook, str)
                                    and webhook.startswith(("http://", "https://"))):
        raise RunPodError(400, "webhook must be an http(s) URL")
    if body.get("policy") is not None and not isinstance(body["policy"], dict):
        raise RunPodError(400, "policy must be an object")
    return body


def _next_jobs_entry(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(queue entry, count) of a POST /_control/next_jobs body, else RunPodError (400)."""
    outcome, count, polls = body.get("outcome"), body.get("count", 1), body.get("polls")
    message = body.get("message")
    if outcome not in OUTCOMES:
        raise RunPodError(400, f"outcome must be one of {list(OUTCOMES)}")
    if not _is_int(count) or count < 1:
        raise RunPodError(400, "count must be an integer >= 1")
    if polls is not None and (not _is_int(polls) or polls < 1):
        raise RunPodError(400, "polls must be an integer >= 1")
    if message is not None and not isinstance(message, str):
        raise RunPodError(400, "message must be a string")
    return {"outcome": outcome, "polls": polls, "message": message}, count


def _seconds(job_input: dict[str, Any]) -> float:
    text = job_input.get("text")
    if isinstance(text, str) and text.strip():
        return max(1.0, len(text.split()) / WORDS_PER_SECOND)
    digest = hashlib.sha256(str(job_input.get("audio_url")).encode()).hexdigest()
    return 5 + int(digest, 16) % 100 / 10


class RunPodSystem:
    """RunPod serverless queue endpoints whose worker turns an anchor and a text into an MP4."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.media = MediaCache(ctx.state.store.state_dir / "media")

    # --- helpers ---------------------------------------------------------------------------

    def config(self, endpoint: str | None) -> dict[str, Any]:
        merged = {**DEFAULTS, **self.state.get("config", {})}
        if endpoint is not None:
            merged.update(self.state.get(f"endpoint/{endpoint}/config", {}))
        return merged

    @staticmethod
    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization", "").strip()
        scheme, _, token = header.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else header
        if not KEY.fullmatch(key):
            raise RunPodError(401, "Unauthorized: invalid or missing API key")

    @staticmethod
    def endpoint_of(request: Request) -> str:
        endpoint = request.path_params["endpoint_id"]
        if not ENDPOINT.fullmatch(endpoint):
            raise RunPodError(404, f"endpoint {endpoint!r} not found")
        return endpoint

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """An API route: auth, the endpoint id, and RunPod's error shape around `handler`."""
        async def route(request: Request) -> Response:
            try:
                self.authenticate(request)
                return JSONResponse(await handler(request, self.endpoint_of(request)))
            except RunPodError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
        return route

    def own_job(self, job_id: str, endpoint: str) -> dict[str, Any]:
        job = self.state.get(f"job/{job_id}")
        if job is None or job["endpoint"] != endpoint:
            raise RunPodError(404, "request does not exist")
        return job

    def new_job(self, endpoint: str, job_input: dict[str, Any]) -> str:
        """Record a queued job (its fate decided now: the control queue, the input); its id."""
        number = self.state.next_id("job")
        rng = self.ctx.rng("job", number)
        job_id = f"{uuid.UUID(int=rng.getrandbits(128), version=4)}-u1"
        plan = pop_first(self.state, f"queue/{endpoint}", "queue/*") or {}
        problem = _worker_problem(job_input)
        outcome = "fail" if problem else plan.get("outcome", "ok")
        self.state.put(f"job/{job_id}", {
            "id": job_id, "endpoint": endpoint, "input": job_input, "steps": 0,
            "status": "IN_QUEUE", "outcome": outcome,
            "slow_polls": plan.get("polls") or self.config(endpoint)["slow_polls"],
            "error": problem or plan.get("message") or "worker error: generation failed "
                                                        "(sandbox injected failure)",
            "delayTime": rng.randint(800, 6000), "executionTime": rng.randint(6000, 25000),
            "workerId": f"{rng.getrandbits(56):014x}",
        })
        return job_id

    @staticmethod
    def view(request: Request, job: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": job["id"], "status": job["status"]}
        if job["status"] == "IN_QUEUE":
            return out
        out.update(delayTime=job["delayTime"], workerId=job["workerId"])
        if job["status"] == "COMPLETED":
            out.update(executionTime=job["executionTime"], output={
                "video_url": f"{request.base_url}files/{job['id']}.mp4",
                "duration": clamp_seconds(_seconds(job["input"])),
                "width": WIDTH, "height": HEIGHT})
        elif job["status"] == "FAILED":
            out.update(executionTime=job["executionTime"] // 4, error=job["error"])
        return out

    # --- API routes ------------------------------------------------------------------------

    async def run(self, request: Request, endpoint: str) -> Any:
        body = _run_body(await request.body())
        return {"id": self.new_job(endpoint, body["input"]), "status": "IN_QUEUE"}

    async def status(self, request: Request, endpoint: str) -> Any:
        job_id = request.path_params["job_id"]
        self.own_job(job_id, endpoint)
        per_poll = self.config(endpoint)["states_per_poll"]

        def change(job: dict[str, Any]) -> dict[str, Any]:
            if job["status"] in TERMINAL:
                return job
            steps = _script(job)
            index = min(job["steps"] + per_poll, len(steps) - 1)
            return {**job, "steps": index, "status": steps[index]}

        return self.view(request, self.state.update(f"job/{job_id}", change, default={}))

    async def cancel(self, request: Request, endpoint: str) -> Any:
        job_id = request.path_params["job_id"]
        self.own_job(job_id, endpoint)
        job = self.state.update(f"job/{job_id}", lambda j: j if j["status"] in TERMINAL
                                else {**j, "status": "CANCELLED"}, default={})
        return {"id": job_id, "status": job["status"]}

    async def health(self, request: Request, endpoint: str) -> Any:
        jobs = [j for j in self.state.list_prefix("job/").values() if j["endpoint"] == endpoint]
        count = {s: sum(1 for j in jobs if j["status"] == s) for s in
                 ("COMPLETED", "FAILED", "IN_PROGRESS", "IN_QUEUE")}
        return {"jobs": {"completed": count["COMPLETED"], "failed": count["FAILED"],
                         "inProgress": count["IN_PROGRESS"], "inQueue": count["IN_QUEUE"],
                         "retried": 0},
                "workers": {"idle": 1, "running": min(count["IN_PROGRESS"], 3),
                            "initializing": 0, "ready": 1, "throttled": 0, "unhealthy": 0}}

    async def video_file(self, request: Request) -> Response:
        job = self.state.get(f"job/{request.path_params['job_id']}")
        if job is None or job["status"] != "COMPLETED":
            return PlainTextResponse("Not Found", status_code=404)
        spec = VideoSpec(job["input"]["anchor_id"], clamp_seconds(_seconds(job["input"])))
        data = await asyncio.to_thread(self.media.read, spec)
        if job["outcome"] == "corrupt":
            data = corrupt(data, self.ctx.rng("corrupt", job["id"]))
        return file_response(request, data, MP4, truncate=job["outcome"] == "truncated")

    # --- control routes --------------------------------------------------------------------

    async def control_next_jobs(self, request: Request) -> Response:
        try:
            if request.method == "DELETE":
                endpoint = _scope_of(request.query_params.get("endpoint_id"))
                self.state.put(f"queue/{endpoint or '*'}", [])
                return JSONResponse({"queue": []})
            body = await read_control_body(request)
            endpoint = _scope_of(body.get("endpoint_id"))
            entry, count = _next_jobs_entry(body)
        except BadControlBody:
            return _bad("body must be a JSON object")
        except RunPodError as exc:
            return _bad(exc.message)
        queue = self.state.update(f"queue/{endpoint or '*'}",
                                  lambda q: [*q, *([entry] * count)], default=[])
        return JSONResponse({"queue": queue})

    async def control_config(self, request: Request) -> Response:
        try:
            body = await read_control_body(request)
            endpoint = _scope_of(body.pop("endpoint_id", None))
        except BadControlBody:
            return _bad("body must be a JSON object")
        except RunPodError as exc:
            return _bad(exc.message)
        unknown = sorted(set(body) - set(DEFAULTS))
        if unknown:
            return _bad(f"unknown config fields {unknown}; known: {sorted(DEFAULTS)}")
        for name, value in body.items():
            if not _is_int(value) or value < 1:
                return _bad(f"{name} must be an integer >= 1")
        key = f"endpoint/{endpoint}/config" if endpoint else "config"
        self.state.update(key, lambda c: {**c, **body}, default={})
        return JSONResponse({"config": self.config(endpoint)})

    async def control_state(self, request: Request) -> Response:
        try:
            endpoint = _scope_of(request.query_params.get("endpoint_id"))
        except RunPodError as exc:
            return _bad(exc.message)
        return JSONResponse({"config": self.config(endpoint),
                             "queue": self.state.get(f"queue/{endpoint or '*'}", [])})

    @staticmethod
    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    @staticmethod
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "method not allowed"}, status_code=405)

    def routes(self) -> list[Route]:
        return [
            Route("/v2/{endpoint_id}/run", self.guarded(self.run), methods=["POST"]),
            Route("/v2/{endpoint_id}/status/{job_id}", self.guarded(self.status),
                  methods=["GET"]),
            Route("/v2/{endpoint_id}/cancel/{job_id}", self.guarded(self.cancel),
                  methods=["POST"]),
            Route("/v2/{endpoint_id}/health", self.guarded(self.health), methods=["GET"]),
            Route("/files/{job_id}.mp4", self.video_file, methods=["GET", "HEAD"]),
            Route("/_control/next_jobs", self.control_next_jobs, methods=["POST", "DELETE"]),
            Route("/_control/config", self.control_config, methods=["POST"]),
            Route("/_control/state", self.control_state, methods=["GET"]),
        ]

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app)


def create(ctx: SystemContext) -> System:
    return RunPodSystem(ctx).system()
