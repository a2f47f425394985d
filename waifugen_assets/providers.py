"""The video providers behind the `VideoProvider` protocol of render.py: A2E, RunPod."""

from __future__ import annotations

from dataclasses import dataclass

from resources.a2e import A2EClient
from resources.runpod import RunPodClient
from waifugen_assets.render import RenderJob, TaskState, seconds_to_credits

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

    def status(self, task_id: str) -> TaskState:
        task = self.client.task_status(task_id)
        return TaskState(terminal=task.terminal, succeeded=task.status.value == "succeeded",
                         result_url=task.result_url, message=task.message,
                         cost=task.cost_coins)

    def find(self, job: RenderJob) -> str | None:
        task = self.client.find_task_by_title(job.title)
        return task.id if task else None


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
