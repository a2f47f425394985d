"""What rendering talks about, apart from the renderer itself: a reel's render job, a task's
state as a provider reports it, the provider interface (with bulk status where it has one),
the circuit breaker that sends work to the fallback, and when to poll a running task."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from resources.http import HttpError, RateLimited


@dataclass(frozen=True)
class RenderJob:
    reel_id: int
    character_id: str
    date: dt.date
    script: str
    avatar_id: str | None
    voice_id: str | None
    scheduled_at: dt.datetime | None = None

    @property
    def title(self) -> str:
        """The provider-side name of the task: our idempotency key for reconciliation."""
        return f"waifugen-reel-{self.reel_id}"


@dataclass(frozen=True)
class TaskState:
    terminal: bool
    succeeded: bool
    result_url: str | None = None
    message: str = ""
    cost: int | None = None  # credits, when the provider reports them


class VideoProvider(Protocol):
    name: str

    def submit(self, job: RenderJob) -> str: ...
    def status(self, task_id: str) -> TaskState: ...
    def find(self, job: RenderJob) -> str | None: ...


Answers = dict[str, "TaskState | HttpError"]


def statuses(provider: VideoProvider, task_ids: list[str]) -> tuple[Answers, int]:
    """Each task's state (or the error asking it cost) and the requests made: in bulk when
    the provider can (`statuses`), else one status request per task."""
    bulk = getattr(provider, "statuses", None)
    if bulk is not None:
        return bulk(task_ids)
    return one_by_one(provider, task_ids)


def one_by_one(provider: VideoProvider, task_ids: Iterable[str]) -> tuple[Answers, int]:
    found: Answers = {}
    requests = 0
    for task_id in task_ids:
        if found and any(isinstance(a, RateLimited) for a in found.values()):
            found[task_id] = next(a for a in found.values() if isinstance(a, RateLimited))
            continue  # the budget is spent: asking again now only gets the same answer
        try:
            found[task_id] = provider.status(task_id)
        except HttpError as exc:
            found[task_id] = exc
        requests += 1
    return found, requests


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures of a provider, for `cooldown` seconds.

    Kept per process: a run renders a partition's reels in one process, and a breaker that
    forgets on restart only costs one more failed try."""

    threshold: int = 3
    cooldown: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _opened: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def is_open(self, provider: str) -> bool:
        with self._lock:
            opened = self._opened.get(provider)
            if opened is None:
                return False
            if self.clock() - opened >= self.cooldown:  # half-open: let one try through
                del self._opened[provider]
                self._failures[provider] = self.threshold - 1
                return False
            return True

    def failure(self, provider: str) -> None:
        with self._lock:
            self._failures[provider] = self._failures.get(provider, 0) + 1
            if self._failures[provider] >= self.threshold:
                self._opened[provider] = self.clock()

    def success(self, provider: str) -> None:
        with self._lock:
            self._failures[provider] = 0
            self._opened.pop(provider, None)


BREAKER = CircuitBreaker()
@dataclass(frozen=True)
class PollPlan:
    """When to ask about a running task: first at its expected render time, then backing off
    (a quarter of the time it has run so far, between `min_interval` and `max_interval`), so
    a slow render costs a few requests, not one a minute."""

    first: float = 240.0
    min_interval: float = 30.0
    max_interval: float = 600.0

    def next_poll(self, submitted_at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        if submitted_at is None:
            return now
        first = submitted_at + dt.timedelta(seconds=self.first)
        if now < first:
            return first
        elapsed = (now - submitted_at).total_seconds()
        wait = min(self.max_interval, max(self.min_interval, elapsed / 4))
        return now + dt.timedelta(seconds=wait)


def seconds_to_credits(ms: int | None) -> int | None:
    """RunPod bills worker time; its ledger unit is whole seconds."""
    return None if ms is None else math.ceil(ms / 1000)
