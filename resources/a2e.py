"""A2E (video.a2e.ai): text-to-speech, talking-avatar videos, coin balance.

A small typed client over the shared HTTP layer (PROTOCOLS.md section 5): Bearer `sk_...`
token, `{"code": 0, "data": ...}` envelope (errors inside HTTP 200 bodies are classified by
`a2e_classifier`), a client-side limit of 100 requests per hour per API key.

Exactly once (DESIGN.md section 6):
- `generate_video` is a paid POST. It is never resent once it may have reached A2E: the shared
  layer resends a POST only when it never left (connect error) or was refused with a 429.
  A 5xx raises RetryableError and a lost answer UnknownOutcome; either way the caller must
  record the attempt and reconcile (A2E has no idempotency key) before paying again.
- `task_status` (POST awsResult) only reads, so it is marked idempotent and retried freely.
- `send_tts` is a POST too and is not marked idempotent: it is cheap to call again from the
  caller, so it is not silently resent.

Costs: `A2ETask.cost_coins` is the `coins` field of the status item when A2E (or the
sandbox) reports it, as A2E's newer task families do. When it is absent (None), the cost is
only visible as the drop in `remaining_coins()` across the task's creation: read the balance
just before `generate_video` and just after (with no other generation running on the key in
between) and record the difference, or reconcile the ledger from balance snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from resources.http import (
    IDEMPOTENT,
    InvalidResponse,
    Kind,
    Limit,
    Outcome,
    OwnsHttpClient,
    PermanentError,
    RateLimiter,
    RateLimitStore,
    RetryPolicy,
    a2e_classifier,
    by_header,
    fingerprint,
    header_retry_after,
    json_body,
    json_int,
    json_request,
    make_client,
)
from waifugen_assets.core.config import ConfigError, get_settings

SYSTEM = "a2e"
PRODUCTION_URL = "https://video.a2e.ai"
SANDBOX_API_KEY = "sk_sandbox_waifugen"
REQUESTS_PER_HOUR = 100
LIST_PAGE_SIZE = 100  # the most tasks one awsList request returns
RESOLUTIONS = (480, 720, 1080)


class A2EStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (A2EStatus.SUCCEEDED, A2EStatus.FAILED)


# video/awsResult states, and the newer task families' current_status values.
_STATUSES = {
    "init": A2EStatus.QUEUED, "start": A2EStatus.QUEUED, "pending": A2EStatus.QUEUED,
    "initialized": A2EStatus.QUEUED, "sent": A2EStatus.QUEUED,
    "process": A2EStatus.RUNNING, "processing": A2EStatus.RUNNING, "copy": A2EStatus.RUNNING,
    "success": A2EStatus.SUCCEEDED, "completed": A2EStatus.SUCCEEDED,
    "fail": A2EStatus.FAILED, "failed": A2EStatus.FAILED,
}


@dataclass(frozen=True)
class A2ETask:
    """One video task as A2E reports it, with the status normalised."""

    id: str
    status: A2EStatus
    raw_status: str  # A2E's own word: init, start, pending, process, copy, success, fail
    progress: int  # 0-100 (A2E's `process`)
    result_url: str | None  # the MP4, once succeeded; signed, expires: download at once
    message: str  # A2E's `msg`: the reason when failed
    cost_coins: int | None = None  # the item's `coins` when reported; see the module doc
    anchor_id: str | None = None
    title: str | None = None  # the name we gave the task (our idempotency key)

    @property
    def terminal(self) -> bool:
        return self.status.terminal


class A2ETaskNotFound(PermanentError):
    """A2E does not know the task (wrong id, another key's, or deleted)."""


def classify(response: httpx.Response) -> Outcome | None:
    """`a2e_classifier`, plus: A2E may answer HTTP 200 with code 401/403 for a bad token and
    429 when over its limit; those mean auth / rate limited, not a permanent refusal."""
    outcome = a2e_classifier(response)
    if outcome is None or response.status_code >= 400:
        return outcome
    body = json_body(response)
    code = json_int(body.get("code")) if isinstance(body, dict) else None
    if code in (401, 403):
        return Outcome(Kind.AUTH, outcome.reason)
    if code == 429:
        return Outcome(Kind.RATE_LIMITED, outcome.reason, header_retry_after(response))
    return outcome


def a2e_limiter(requests_per_hour: int = REQUESTS_PER_HOUR, *,
                store: RateLimitStore | None = None, max_wait: float = 30.0) -> RateLimiter:
    """The per-key request budget. Pass a cross-process `store` to share it between workers."""
    return RateLimiter(SYSTEM, requests_per_hour, 3600.0, store=store, max_wait=max_wait)




def rate_key(api_key: str) -> str:
    """The rate-limit store key of an API key's requests (see `A2EClient`'s limit)."""
    return f"{SYSTEM}:{fingerprint(f'Bearer {api_key}')}"


class A2EClient(OwnsHttpClient):
    """Typed calls to A2E; every request goes through resources.http (limits, retries, errors).

    `limiter` defaults to 100 requests/hour per API key in this process (`a2e_limiter`);
    `retry` to the shared layer's default policy; `inner` replaces the network transport.
    """

    def __init__(self, api_key: str, *, base_url: str = PRODUCTION_URL,
                 timeout: float | httpx.Timeout = 30.0, limiter: RateLimiter | None = None,
                 retry: RetryPolicy | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        if not api_key:
            raise ValueError("A2E needs an API key (sk_...)")
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter if limiter is not None else a2e_limiter()
        self._http = make_client(
            SYSTEM, base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "x-lang": "en-US"},
            timeout=timeout, retry=retry, classifier=classify, inner=inner,
            limits=[Limit(self.limiter, key=by_header("authorization"))])


    def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        return json_request(self._http, method, path, require=["data"], **kwargs)["data"]

    def _invalid(self, path: str, problem: str) -> InvalidResponse:
        return InvalidResponse(f"{SYSTEM}: {path}: {problem}", system=SYSTEM, reason=problem)

    # --- calls -------------------------------------------------------------------------------

    def remaining_coins(self) -> int:
        """The account's coin balance."""
        path = "/api/v1/user/remainingCoins"
        data = self._data("GET", path)
        coins = json_int(data.get("coins") if isinstance(data, dict) else data)
        if coins is None:
            raise self._invalid(path, f"no coin count in {str(data)[:80]!r}")
        return coins

    def send_tts(self, text: str, voice_id: str, *, speech_rate: float = 1.0,
                 custom_voice: bool = False) -> str:
        """Speak `text` with a voice from voice_list (`custom_voice`: a cloned voice's id);
        returns the audio URL to pass to `generate_video`."""
        path = "/api/v1/video/send_tts"
        voice_field = "user_voice_id" if custom_voice else "tts_id"
        data = self._data("POST", path, json={"msg": text, voice_field: voice_id,
                                              "speechRate": speech_rate})
        if not isinstance(data, str) or not data.startswith(("http://", "https://")):
            raise self._invalid(path, f"expected an audio URL, got {str(data)[:80]!r}")
        return data

    def generate_video(self, title: str, anchor_id: str, audio_url: str,
                       resolution: int = 1080, *, anchor_type: int = 0,
                       options: Mapping[str, Any] | None = None) -> str:
        """Start a paid talking-avatar video task; returns its id. Sent at most once.

        Store the id before polling. On RetryableError / UnknownOutcome the task may exist
        anyway: reconcile, never call again blindly. `options` adds generate fields
        (web_bg_width, isSkipRs, back_id, ...).
        """
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}")
        path = "/api/v1/video/generate"
        body = {**(options or {}), "title": title, "anchor_id": anchor_id,
                "anchor_type": anchor_type, "audioSrc": audio_url, "resolution": resolution}
        # A POST without the idempotent mark: never resent once it may have been received.
        data = self._data("POST", path, json=body, extensions={IDEMPOTENT: False})
        task_id = data.get("_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise self._invalid(path, f"no task _id in {str(data)[:80]!r}")
        return task_id

    def task_status(self, task_id: str) -> A2ETask:
        """The task's current state (a read: retried on 5xx, timeouts and 429)."""
        path = "/api/v1/video/awsResult"
        data = self._data("POST", path, json={"_id": task_id}, extensions={IDEMPOTENT: True})
        items = data if isinstance(data, list) else [data] if isinstance(data, dict) else None
        if items is None:
            raise self._invalid(path, f"expected a list of tasks, got {str(data)[:80]!r}")
        found = [i for i in items if isinstance(i, dict) and i.get("_id") in (task_id, None)]
        if not found:
            raise A2ETaskNotFound(f"{SYSTEM}: task {task_id} not found", system=SYSTEM,
                                  reason="task not found")
        return self._task(task_id, found[0])

    def list_tasks(self, page: int = 1, page_size: int = LIST_PAGE_SIZE) -> list[A2ETask]:
        """One page of the key's tasks, newest first, with their titles: one request for the
        status of many tasks (how renders are polled in bulk), and how a lost submit is found.

        The list route (`GET /api/v1/video/awsList?current=&pageSize=`) is used by several
        A2E clients but not in the excerpt of the official docs we have; its shape is assumed
        as `{"list": [...], "total": n}` (a bare list is accepted too). Items without an
        `_id` and a status word are left out rather than guessed at."""
        path = "/api/v1/video/awsList"
        data = self._data("GET", path, params={"current": page, "pageSize": page_size},
                          extensions={IDEMPOTENT: True})
        items = data.get("list") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise self._invalid(path, f"expected a task list, got {str(data)[:80]!r}")
        return [self._task(str(item["_id"]), item) for item in items
                if isinstance(item, dict) and item.get("_id")
                and (item.get("status") or item.get("current_status"))]

    def find_task_by_title(self, title: str, *, max_pages: int = 5,
                           page_size: int = 50) -> A2ETask | None:
        """The newest task with this title, or None: how a submit whose answer was lost
        (UnknownOutcome) is reconciled before paying again. Titles are our idempotency keys."""
        for page in range(1, max_pages + 1):
            tasks = self.list_tasks(page, page_size)
            for task in tasks:
                if task.title == title:
                    return task
            if len(tasks) < page_size:
                return None
        return None

    @staticmethod
    def _task(task_id: str, item: Mapping[str, Any]) -> A2ETask:
        raw = str(item.get("status") or item.get("current_status") or "").strip().lower()
        status = _STATUSES.get(raw, A2EStatus.RUNNING)  # an unknown word: keep polling
        result = item.get("result") or item.get("result_url") or None
        message = str(item.get("msg") or item.get("failed_message") or "")
        progress = json_int(item.get("process"))
        if status is A2EStatus.SUCCEEDED:
            progress = 100
            if not isinstance(result, str):
                status, message = A2EStatus.FAILED, "A2E reported success without a result URL"
        return A2ETask(
            id=str(item.get("_id") or task_id), status=status, raw_status=raw,
            progress=min(max(progress or 0, 0), 100),
            result_url=result if isinstance(result, str) else None,
            message=message or ("A2E task failed" if status is A2EStatus.FAILED else ""),
            cost_coins=json_int(item.get("coins")), anchor_id=item.get("anchor_id"),
            title=item.get("title") if isinstance(item.get("title"), str) else None)

    def cancel(self, task_id: str) -> None:
        """Delete the task (A2E has no separate cancel); PermanentError if A2E does not
        know it. A task deleted before it succeeded costs nothing (in the sandbox)."""
        self._data("DELETE", f"/api/v1/video/{task_id}")


class A2EResource(dg.ConfigurableResource):
    """A2E for the pipeline. Defaults come from settings: the sandbox's /a2e and key in
    sandbox mode; https://video.a2e.ai and A2E_API_KEY (required) in production."""

    api_key: str | None = Field(default=None, description="API token (sk_...); default "
                                "A2E_API_KEY, in sandbox mode the sandbox key.")
    base_url: str | None = Field(default=None, description="Default A2E_BASE_URL.")
    timeout_seconds: float | None = Field(default=None,
                                          description="Default HTTP_TIMEOUT_SECONDS.")
    requests_per_hour: int | None = Field(
        default=None, description="Client-side limit per API key, shared by every process; "
        "default A2E_REQUESTS_PER_HOUR (100, A2E's own limit).")
    max_wait_seconds: float = Field(
        default=30.0, description="Longest wait for a rate-limit slot before RateLimited.")

    def resolved_base_url(self) -> str:
        settings = get_settings()
        return (self.base_url or settings.service_url(
            "A2E_BASE_URL", SYSTEM, PRODUCTION_URL)).rstrip("/")

    def resolved_api_key(self) -> str:
        key = self.api_key or get_settings().get("A2E_API_KEY",
                                                 sandbox_default=SANDBOX_API_KEY)
        if not key:
            raise ConfigError("A2E_API_KEY is not set")
        return key

    def rate_key(self) -> str:
        """The key this API key's requests are counted under in the rate-limit store (a
        fingerprint, never the key): what the generation sensor reads its budget from."""
        return rate_key(self.resolved_api_key())

    def resolved_requests_per_hour(self) -> int:
        return self.requests_per_hour or get_settings().a2e_requests_per_hour

    def get_client(self, *, limiter: RateLimiter | None = None) -> A2EClient:
        settings = get_settings()
        key = self.resolved_api_key()
        return A2EClient(
            key, base_url=self.resolved_base_url(),
            timeout=self.timeout_seconds or settings.http_timeout,
            limiter=limiter or a2e_limiter(self.resolved_requests_per_hour(),
                                           max_wait=self.max_wait_seconds))
