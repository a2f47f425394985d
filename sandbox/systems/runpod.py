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
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

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
from sandbox.system import System, SystemContext
from sandbox.systems.a2e import pop_first

KEY = re.compile(r"rpa_sandbox[A-Za-z0-9_-]*")
ENDPOINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_BODY = 10 * 1024 * 1024
OUTCOMES = ("fail", "slow", "corrupt", "truncated")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
DEFAULTS: dict[str, Any] = {"states_per_poll": 1, "slow_polls": 5}
WORDS_PER_SECOND = 2.5


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


def _seconds(job_input: dict[str, Any]) -> float:
    text = job_input.get("text")
    if isinstance(text, str) and text.strip():
        return max(1.0, len(text.split()) / WORDS_PER_SECOND)
    digest = hashlib.sha256(str(job_input.get("audio_url")).encode()).hexdigest()
    return 5 + int(digest, 16) % 100 / 10


def create(ctx: SystemContext) -> System:
    state = ctx.state
    media = MediaCache(ctx.state.store.state_dir / "media")

    def config(endpoint: str | None) -> dict[str, Any]:
        merged = {**DEFAULTS, **state.get("config", {})}
        if endpoint is not None:
            merged.update(state.get(f"endpoint/{endpoint}/config", {}))
        return merged

    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization", "").strip()
        scheme, _, token = header.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else header
        if not KEY.fullmatch(key):
            raise RunPodError(401, "Unauthorized: invalid or missing API key")

    def endpoint_of(request: Request) -> str:
        endpoint = request.path_params["endpoint_id"]
        if not ENDPOINT.fullmatch(endpoint):
            raise RunPodError(404, f"endpoint {endpoint!r} not found")
        return endpoint

    def guarded(handler: Any) -> Any:
        async def route(request: Request) -> Response:
            try:
                authenticate(request)
                return JSONResponse(await handler(request, endpoint_of(request)))
            except RunPodError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
        return route

    async def run(request: Request, endpoint: str) -> Any:
        raw = await request.body()
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
        number = state.next_id("job")
        rng = ctx.rng("job", number)
        job_id = f"{uuid.UUID(int=rng.getrandbits(128), version=4)}-u1"
        plan = pop_first(state, f"queue/{endpoint}", "queue/*") or {}
        problem = _worker_problem(body["input"])
        outcome = "fail" if problem else plan.get("outcome", "ok")
        state.put(f"job/{job_id}", {
            "id": job_id, "endpoint": endpoint, "input": body["input"], "steps": 0,
            "status": "IN_QUEUE", "outcome": outcome,
            "slow_polls": plan.get("polls") or config(endpoint)["slow_polls"],
            "error": problem or plan.get("message") or "worker error: generation failed "
                                                        "(sandbox injected failure)",
            "delayTime": rng.randint(800, 6000), "executionTime": rng.randint(6000, 25000),
            "workerId": f"{rng.getrandbits(56):014x}",
        })
        return {"id": job_id, "status": "IN_QUEUE"}

    def script(job: dict[str, Any]) -> list[str]:
        steps = ["IN_QUEUE", "IN_PROGRESS"]
        if job["outcome"] == "slow":
            steps += ["IN_PROGRESS"] * job["slow_polls"]
        return [*steps, "FAILED" if job["outcome"] == "fail" else "COMPLETED"]

    def own_job(job_id: str, endpoint: str) -> dict[str, Any]:
        job = state.get(f"job/{job_id}")
        if job is None or job["endpoint"] != endpoint:
            raise RunPodError(404, "request does not exist")
        return job

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

    async def status(request: Request, endpoint: str) -> Any:
        job_id = request.path_params["job_id"]
        own_job(job_id, endpoint)
        per_poll = config(endpoint)["states_per_poll"]

        def change(job: dict[str, Any]) -> dict[str, Any]:
            if job["status"] in TERMINAL:
                return job
            steps = script(job)
            index = min(job["steps"] + per_poll, len(steps) - 1)
            return {**job, "steps": index, "status": steps[index]}

        return view(request, state.update(f"job/{job_id}", change, default={}))

    async def cancel(request: Request, endpoint: str) -> Any:
        job_id = request.path_params["job_id"]
        own_job(job_id, endpoint)
        job = state.update(f"job/{job_id}", lambda j: j if j["status"] in TERMINAL
                           else {**j, "status": "CANCELLED"}, default={})
        return {"id": job_id, "status": job["status"]}

    async def health(request: Request, endpoint: str) -> Any:
        jobs = [j for j in state.list_prefix("job/").values() if j["endpoint"] == endpoint]
        count = {s: sum(1 for j in jobs if j["status"] == s) for s in
                 ("COMPLETED", "FAILED", "IN_PROGRESS", "IN_QUEUE")}
        return {"jobs": {"completed": count["COMPLETED"], "failed": count["FAILED"],
                         "inProgress": count["IN_PROGRESS"], "inQueue": count["IN_QUEUE"],
                         "retried": 0},
                "workers": {"idle": 1, "running": min(count["IN_PROGRESS"], 3),
                            "initializing": 0, "ready": 1, "throttled": 0, "unhealthy": 0}}

    async def video_file(request: Request) -> Response:
        job = state.get(f"job/{request.path_params['job_id']}")
        if job is None or job["status"] != "COMPLETED":
            return PlainTextResponse("Not Found", status_code=404)
        spec = VideoSpec(job["input"]["anchor_id"], clamp_seconds(_seconds(job["input"])))
        data = await asyncio.to_thread(media.read, spec)
        if job["outcome"] == "corrupt":
            data = corrupt(data, ctx.rng("corrupt", job["id"]))
        return file_response(request, data, MP4, truncate=job["outcome"] == "truncated")

    # --- control -----------------------------------------------------------------------------

    def bad(message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=400)

    async def control_body(request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def scope_of(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not ENDPOINT.fullmatch(value):
            raise RunPodError(400, "endpoint_id must be an endpoint id")
        return value

    async def control_next_jobs(request: Request) -> Response:
        if request.method == "DELETE":
            try:
                endpoint = scope_of(request.query_params.get("endpoint_id"))
            except RunPodError as exc:
                return bad(exc.message)
            state.put(f"queue/{endpoint or '*'}", [])
            return JSONResponse({"queue": []})
        body = await control_body(request)
        if body is None:
            return bad("body must be a JSON object")
        try:
            endpoint = scope_of(body.get("endpoint_id"))
        except RunPodError as exc:
            return bad(exc.message)
        outcome, count, polls = body.get("outcome"), body.get("count", 1), body.get("polls")
        message = body.get("message")
        if outcome not in OUTCOMES:
            return bad(f"outcome must be one of {list(OUTCOMES)}")
        if not _is_int(count) or count < 1:
            return bad("count must be an integer >= 1")
        if polls is not None and (not _is_int(polls) or polls < 1):
            return bad("polls must be an integer >= 1")
        if message is not None and not isinstance(message, str):
            return bad("message must be a string")
        entry = {"outcome": outcome, "polls": polls, "message": message}
        queue = state.update(f"queue/{endpoint or '*'}", lambda q: [*q, *([entry] * count)],
                             default=[])
        return JSONResponse({"queue": queue})

    async def control_config(request: Request) -> Response:
        body = await control_body(request)
        if body is None:
            return bad("body must be a JSON object")
        try:
            endpoint = scope_of(body.pop("endpoint_id", None))
        except RunPodError as exc:
            return bad(exc.message)
        unknown = sorted(set(body) - set(DEFAULTS))
        if unknown:
            return bad(f"unknown config fields {unknown}; known: {sorted(DEFAULTS)}")
        for name, value in body.items():
            if not _is_int(value) or value < 1:
                return bad(f"{name} must be an integer >= 1")
        key = f"endpoint/{endpoint}/config" if endpoint else "config"
        state.update(key, lambda c: {**c, **body}, default={})
        return JSONResponse({"config": config(endpoint)})

    async def control_state(request: Request) -> Response:
        try:
            endpoint = scope_of(request.query_params.get("endpoint_id"))
        except RunPodError as exc:
            return bad(exc.message)
        return JSONResponse({"config": config(endpoint),
                             "queue": state.get(f"queue/{endpoint or '*'}", [])})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "method not allowed"}, status_code=405)

    app = Starlette(
        routes=[
            Route("/v2/{endpoint_id}/run", guarded(run), methods=["POST"]),
            Route("/v2/{endpoint_id}/status/{job_id}", guarded(status), methods=["GET"]),
            Route("/v2/{endpoint_id}/cancel/{job_id}", guarded(cancel), methods=["POST"]),
            Route("/v2/{endpoint_id}/health", guarded(health), methods=["GET"]),
            Route("/files/{job_id}.mp4", video_file, methods=["GET", "HEAD"]),
            Route("/_control/next_jobs", control_next_jobs, methods=["POST", "DELETE"]),
            Route("/_control/config", control_config, methods=["POST"]),
            Route("/_control/state", control_state, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )
    return System(app=app)
