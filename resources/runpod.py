"""RunPod serverless: the video generation fallback when A2E keeps failing.

A queue-based endpoint running our talking-avatar worker: `POST /v2/{endpoint}/run` queues a
job, `GET /v2/{endpoint}/status/{id}` polls it (IN_QUEUE -> IN_PROGRESS -> COMPLETED with
`output`, or FAILED with `error`), `POST /v2/{endpoint}/cancel/{id}` stops it.

The worker's contract (ours, see sandbox/systems/runpod.py): input `{"anchor_id", "text" or
"audio_url", "title"?, "resolution"?}`, output `{"video_url", "duration", "width", "height"}`.

Exactly once: `run` is paid (GPU seconds) and not marked idempotent, so the shared layer never
resends it after it may have arrived; store the job id before polling. `status` is a GET and
is retried on 5xx/timeouts like any read.
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
    OwnsHttpClient,
    RetryPolicy,
    json_request,
    make_client,
)
from waifugen_assets.core.config import ConfigError, get_settings

SYSTEM = "runpod"
PRODUCTION_URL = "https://api.runpod.ai"
SANDBOX_API_KEY = "rpa_sandbox_waifugen"
SANDBOX_ENDPOINT_ID = "waifugen-fallback"


class RunPodStatus(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in (RunPodStatus.COMPLETED, RunPodStatus.FAILED, RunPodStatus.CANCELLED,
                        RunPodStatus.TIMED_OUT)


@dataclass(frozen=True)
class RunPodJob:
    id: str
    status: RunPodStatus
    output: Any = None
    error: str | None = None
    delay_ms: int | None = None  # time in the queue
    execution_ms: int | None = None  # billed worker time

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def succeeded(self) -> bool:
        return self.status is RunPodStatus.COMPLETED

    @property
    def video_url(self) -> str | None:
        url = self.output.get("video_url") if isinstance(self.output, dict) else None
        return url if isinstance(url, str) and url else None


def _ms(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RunPodClient(OwnsHttpClient):
    """Typed calls to one serverless endpoint over resources.http."""

    def __init__(self, api_key: str, endpoint_id: str, *, base_url: str = PRODUCTION_URL,
                 timeout: float | httpx.Timeout = 30.0, retry: RetryPolicy | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        if not api_key or not endpoint_id:
            raise ValueError("RunPod needs an API key and an endpoint id")
        self.endpoint_id = endpoint_id
        self._http = make_client(
            SYSTEM, base_url=f"{base_url.rstrip('/')}/v2/{endpoint_id}",
            headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout, retry=retry,
            inner=inner)


    def run(self, job_input: Mapping[str, Any], *, webhook: str | None = None) -> str:
        """Queue a job (sent at most once); returns its id."""
        body: dict[str, Any] = {"input": dict(job_input)}
        if webhook:
            body["webhook"] = webhook
        data = json_request(self._http, "POST", "/run", json=body, require=["id"],
                            extensions={IDEMPOTENT: False})
        if not isinstance(data["id"], str) or not data["id"]:
            raise InvalidResponse(f"{SYSTEM}: /run: no job id", system=SYSTEM,
                                  reason="no job id")
        return data["id"]

    def status(self, job_id: str) -> RunPodJob:
        return self._job(json_request(self._http, "GET", f"/status/{job_id}",
                                      require=["status"]), job_id)

    def cancel(self, job_id: str) -> RunPodJob:
        return self._job(json_request(self._http, "POST", f"/cancel/{job_id}",
                                      require=["status"], extensions={IDEMPOTENT: True}),
                         job_id)

    @staticmethod
    def _job(data: dict[str, Any], job_id: str) -> RunPodJob:
        try:
            status = RunPodStatus(str(data["status"]).upper())
        except ValueError:
            raise InvalidResponse(f"{SYSTEM}: unknown job status {data['status']!r}",
                                  system=SYSTEM, reason="unknown status") from None
        error = data.get("error")
        if status is RunPodStatus.FAILED and not error:
            error = "RunPod job failed"
        return RunPodJob(id=str(data.get("id") or job_id), status=status,
                         output=data.get("output"),
                         error=str(error) if error is not None else None,
                         delay_ms=_ms(data.get("delayTime")),
                         execution_ms=_ms(data.get("executionTime")))


class RunPodResource(dg.ConfigurableResource):
    """The fallback endpoint. Defaults from settings (RUNPOD_API_KEY, RUNPOD_ENDPOINT_ID,
    RUNPOD_BASE_URL); sandbox mode has a sandbox key and endpoint. An empty `endpoint_id`
    means "no fallback" even where a default exists."""

    api_key: str | None = Field(default=None, description="Default RUNPOD_API_KEY.")
    endpoint_id: str | None = Field(default=None, description="Default RUNPOD_ENDPOINT_ID; "
                                    "\"\" = no fallback.")
    base_url: str | None = Field(default=None, description="Default RUNPOD_BASE_URL.")
    timeout_seconds: float | None = Field(default=None,
                                          description="Default HTTP_TIMEOUT_SECONDS.")

    def _key(self) -> str | None:
        return self.api_key or get_settings().get("RUNPOD_API_KEY",
                                                  sandbox_default=SANDBOX_API_KEY)

    def _endpoint(self) -> str | None:
        if self.endpoint_id is not None:
            return self.endpoint_id or None
        return get_settings().get("RUNPOD_ENDPOINT_ID", sandbox_default=SANDBOX_ENDPOINT_ID)

    @property
    def configured(self) -> bool:
        """Whether a fallback endpoint (and a key for it) is set."""
        return bool(self._endpoint() and self._key())

    def get_client(self) -> RunPodClient:
        key, endpoint = self._key(), self._endpoint()
        if not key or not endpoint:
            raise ConfigError("the RunPod fallback needs RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID")
        settings = get_settings()
        base = (self.base_url or settings.service_url(
            "RUNPOD_BASE_URL", SYSTEM, PRODUCTION_URL)).rstrip("/")
        return RunPodClient(key, endpoint, base_url=base,
                            timeout=self.timeout_seconds or settings.http_timeout)
