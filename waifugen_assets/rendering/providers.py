"""The video providers behind the `VideoProvider` protocol of render.py: A2E, RunPod."""

from __future__ import annotations

from dataclasses import dataclass

from resources.a2e import LIST_PAGE_SIZE, A2EClient, A2ETask, A2ETaskNotFound
from resources.http import HttpError, RateLimited
from resources.runpod import RunPodClient
from waifugen_assets.core.config import ConfigError
from waifugen_assets.rendering.tasks import (
    Answers,
    RenderJob,
    TaskState,
    one_by_one,
    seconds_to_credits,
)

DEFAULT_VOICE = "en-US-female-1"  # used when a character has no A2E voice configured


@dataclass
class A2EProvider:
    """TTS, then a talking-avatar video named after the reel (our idempotency key)."""

    client: A2EClient
    resolution: int = 1080
    name: str = "a2e"

    def submit(self, job: RenderJob) -> str:
        if not job.avatar_id:
            raise ValueError(f"{job.character_id} has no A2E avatar id in the roster")
        audio = self.client.send_tts(job.script, job.voice_id or DEFAULT_VOICE)
        return self.client.generate_video(job.title, job.avatar_id, audio,
                                          resolution=self.resolution)

    bulk_status: bool = True  # poll several tasks with one list request (awsList)
    max_list_pages: int = 2

    def status(self, task_id: str) -> TaskState:
        try:
            return _state(self.client.task_status(task_id))
        except A2ETaskNotFound:  # deleted or never ours: it will not finish
            return TaskState(terminal=True, succeeded=False,
                             message=f"A2E does not know task {task_id} (deleted?)")

    def statuses(self, task_ids: list[str]) -> tuple[Answers, int]:
        """Several tasks' states: the list route's newest pages first (one request each, up
        to 100 tasks), then one status request for any task not found there. A list route
        that fails (not offered, unexpected shape) is not used again by this provider."""
        wanted = set(task_ids)
        found: Answers = {}
        requests = 0
        if len(wanted) > 1 and self.bulk_status:
            for page in range(1, self.max_list_pages + 1):
                try:
                    tasks = self.client.list_tasks(page, LIST_PAGE_SIZE)
                except RateLimited as exc:
                    return dict.fromkeys(task_ids, exc), requests
                except HttpError:
                    requests += 1
                    self.bulk_status = False
                    break
                requests += 1
                found.update({t.id: _state(t) for t in tasks if t.id in wanted})
                if wanted <= found.keys() or len(tasks) < LIST_PAGE_SIZE:
                    break
        rest, more = one_by_one(self, [t for t in task_ids if t not in found])
        return {**found, **rest}, requests + more

    def find(self, job: RenderJob) -> str | None:
        task = self.client.find_task_by_title(job.title)
        return task.id if task else None


def _state(task: A2ETask) -> TaskState:
    return TaskState(terminal=task.terminal, succeeded=task.status.value == "succeeded",
                     result_url=task.result_url, message=task.message, cost=task.cost_coins)


@dataclass
class RunPodProvider:
    """The serverless fallback worker (our own worker contract: anchor + text -> video)."""

    client: RunPodClient
    name: str = "runpod"
    can_list: bool = False  # no job search: an unknown submit outcome is held for review

    def submit(self, job: RenderJob) -> str:
        return self.client.run({"anchor_id": job.avatar_id or job.character_id,
                                "text": job.script, "title": job.title})

    def status(self, task_id: str) -> TaskState:
        found = self.client.status(task_id)
        return TaskState(terminal=found.terminal, succeeded=found.succeeded,
                         result_url=found.video_url, message=found.error or "",
                         cost=seconds_to_credits(found.execution_ms))

    def find(self, job: RenderJob) -> str | None:
        return None


RENDER_PROVIDERS = ("auto", "runpod")


def render_order(requested: str | None, setting: str | None, runpod_configured: bool) -> str:
    """Which provider new renders go to first: `auto` (A2E, RunPod when A2E keeps failing) or
    `runpod` (RunPod, A2E only when RunPod fails), from the run's config, else the
    RENDER_PROVIDER setting (docs/runbooks/a2e-down.md: forcing the fallback in an outage)."""
    choice = requested or setting or "auto"
    if choice not in RENDER_PROVIDERS:
        raise ConfigError(f"RENDER_PROVIDER={choice!r}: expected one of "
                          f"{', '.join(RENDER_PROVIDERS)}")
    if choice == "runpod" and not runpod_configured:
        raise ConfigError("RENDER_PROVIDER=runpod needs the RunPod fallback: set "
                          "RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID")
    return choice
