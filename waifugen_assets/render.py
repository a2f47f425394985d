"""Rendering reels with a video provider, exactly once per reel (DESIGN.md section 6).

Per reel the database row is the ledger of what happened:
1. intent: status `generating`, provider, attempts+1, submitted_at: committed *before* the
   paid submit, so a crash after it is visible;
2. the remote task id, committed the moment the provider returns it;
3. polling until the task is terminal; then, in one transaction, status `generated` with the
   result URL and the task's cost in credit_ledger (unique per provider task). A task still
   running when the run's wait ends is resumed by the next run; one still unfinished
   `abandon_after` seconds after its submit fails the reel ("timed out").

A rerun resumes: `generating` with a task id polls that task; `generating` without one means
the submit's outcome is unknown, so the provider is asked (A2E: find the task by its title,
which is our idempotency key) before anything is paid again. Provider failures
fail that reel with the provider's reason; repeated failures open a circuit breaker that
sends new reels to the fallback provider (RunPod) when one is configured.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.http import HttpError, PermanentError, RateLimited, UnknownOutcome
from waifugen_assets import schema


@dataclass(frozen=True)
class RenderJob:
    reel_id: int
    character_id: str
    date: dt.date
    script: str
    avatar_id: str | None
    voice_id: str | None

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
_HOLD = object()  # a submit whose outcome is unknown and cannot be resolved now


@dataclass
class RenderOutcome:
    generated: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    pending: dict[int, str] = field(default_factory=dict)  # left for the next run
    fallback: list[int] = field(default_factory=list)


@dataclass
class Renderer:
    engine: sa.Engine
    primary: VideoProvider
    fallback: VideoProvider | None = None
    breaker: CircuitBreaker = field(default_factory=lambda: BREAKER)  # shared per process
    poll_interval: float = 0.0
    max_wait: float = 60.0  # per run; an unfinished task is resumed by the next run
    abandon_after: float = 6 * 3600.0  # after this long since submit, the reel fails
    sleep: Callable[[float], None] = time.sleep
    budget_guard: Callable[[sa.Connection, int], str | None] = field(
        default=lambda conn, reel_id: None)
    outcome: RenderOutcome = field(default_factory=RenderOutcome)
    _reasons: dict[int, str] = field(default_factory=dict)

    def providers(self) -> dict[str, VideoProvider]:
        found = {self.primary.name: self.primary}
        if self.fallback is not None:
            found[self.fallback.name] = self.fallback
        return found

    def choose(self) -> VideoProvider | None:
        if not self.breaker.is_open(self.primary.name):
            return self.primary
        if self.fallback is not None and not self.breaker.is_open(self.fallback.name):
            return self.fallback
        return None

    # --- the per-reel state machine ------------------------------------------------------------

    def render(self, job: RenderJob, row: dict[str, Any]) -> None:
        provider = self.providers().get(row["generation_provider"] or "")
        task_id = row["generation_task_id"]
        if row["status"] in ("generating", "failed") and task_id and provider:
            self._await(job, provider, task_id)  # resume what was already paid for
            return
        if row["status"] == "generating" and provider:
            # The last submit's outcome is unknown: ask before paying again.
            found = self._reconcile(job, provider)
            if found is _HOLD:
                return
            if found is not None:
                self._await(job, provider, found)
                return
        self._submit_new(job)

    def _reconcile(self, job: RenderJob, provider: VideoProvider) -> str | object | None:
        """The task id if the provider has it, None if it surely does not, else _HOLD."""
        if not getattr(provider, "can_list", True):
            return self._hold(job, f"{provider.name} cannot list tasks: the outcome of the "
                              f"submit of {job.title} is unknown; held for review")
        try:
            found = provider.find(job)
        except HttpError as exc:
            return self._hold(job, f"reconciling with {provider.name} failed: {exc}")
        if found is not None:
            self._save_task(job, provider, found)
        return found

    def _hold(self, job: RenderJob, reason: str) -> object:
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="generating", failure_reason=reason))
        self.outcome.pending[job.reel_id] = reason
        return _HOLD

    def _submit_new(self, job: RenderJob) -> None:
        tried: set[str] = set()
        while (provider := self.choose()) is not None and provider.name not in tried:
            tried.add(provider.name)
            task_id = self._submit(job, provider)
            if task_id is _HOLD:
                return
            if task_id is not None:
                if provider is not self.primary:
                    self.outcome.fallback.append(job.reel_id)
                self._await(job, provider, str(task_id))
                return
            if job.reel_id in self.outcome.failed or job.reel_id in self.outcome.pending:
                return
        self.outcome.pending.setdefault(job.reel_id, self._reasons.get(
            job.reel_id, "every video provider is failing (circuit breaker open)"))

    def _submit(self, job: RenderJob, provider: VideoProvider) -> str | object | None:
        """One paid submit: the task id, None when surely nothing was created, or _HOLD."""
        with self.engine.begin() as conn:
            blocked = self.budget_guard(conn, job.reel_id)
            if blocked:
                conn.execute(_update(job.reel_id, status="blocked", failure_reason=blocked))
                self.outcome.pending[job.reel_id] = blocked
                return None
            conn.execute(_update(
                job.reel_id, status="generating", generation_provider=provider.name,
                generation_task_id=None, failure_reason=None,
                generation_attempts=schema.reels.c.generation_attempts + 1,
                generation_submitted_at=sa.func.now()))
        try:
            task_id = provider.submit(job)
        except RateLimited as exc:
            self._revert(job, f"{provider.name} rate limit: retry in "
                              f"{exc.retry_after or 0:.0f} s")
            return None
        except PermanentError as exc:
            self.breaker.failure(provider.name)
            self._fail(job, f"{provider.name} refused the task: {exc.reason or exc}")
            return None
        except (UnknownOutcome, HttpError) as exc:
            # A lost answer or a 5xx on a paid submit may still have created the task.
            self.breaker.failure(provider.name)
            found = self._reconcile(job, provider)
            if found is None:
                self._revert(job, f"{provider.name} submit failed and created nothing: {exc}",
                             pending=False)
            return found
        except ValueError as exc:  # bad input of ours, e.g. no avatar configured
            self._fail(job, str(exc))
            return None
        self._save_task(job, provider, task_id)
        return task_id

    def _await(self, job: RenderJob, provider: VideoProvider, task_id: str) -> None:
        deadline = time.monotonic() + self.max_wait
        while True:
            try:
                state = provider.status(task_id)
            except HttpError as exc:
                self.outcome.pending[job.reel_id] = f"{provider.name} status failed: {exc}"
                self._mark_generating(job)
                return
            if state.terminal:
                break
            if time.monotonic() >= deadline:
                age = self._age(job.reel_id)
                if age is not None and age >= self.abandon_after:
                    self.breaker.failure(provider.name)
                    self._fail(job, f"{provider.name} task {task_id} timed out: not finished "
                                    f"{age / 60:.0f} min after it was submitted")
                    return
                self.outcome.pending[job.reel_id] = (
                    f"{provider.name} task {task_id} still running after {self.max_wait:g} s; "
                    "the next run resumes it")
                self._mark_generating(job)
                return
            self.sleep(self.poll_interval)
        if not state.succeeded or not state.result_url:
            self.breaker.failure(provider.name)
            reason = state.message or "no result URL"
            self._fail(job, f"{provider.name} task {task_id} failed: {reason}")
            return
        self.breaker.success(provider.name)
        with self.engine.begin() as conn:
            projected = conn.scalar(sa.select(schema.reels.c.projected_credits)
                                    .where(schema.reels.c.id == job.reel_id))
            cost = state.cost if state.cost is not None else int(projected or 0)
            conn.execute(insert(schema.credit_ledger).values(
                provider=provider.name, kind="task_cost", character_id=job.character_id,
                reel_id=job.reel_id, external_ref=task_id, credits=max(0, cost),
                ledger_date=job.date, occurred_at=dt.datetime.now(dt.UTC),
                note=None if state.cost is not None else "estimated: provider gave no cost",
            ).on_conflict_do_nothing(constraint="uq_credit_ledger_provider_kind_external_ref"))
            conn.execute(_update(job.reel_id, status="generated", failure_reason=None,
                                 generation_result_url=state.result_url))
        self.outcome.generated.append(job.reel_id)

    # --- row updates ---------------------------------------------------------------------------

    def _save_task(self, job: RenderJob, provider: VideoProvider, task_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, generation_task_id=task_id,
                                 generation_provider=provider.name, status="generating"))

    def _age(self, reel_id: int) -> float | None:
        """Seconds since the reel's last paid submit (database clock)."""
        r = schema.reels
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(sa.func.extract(
                "epoch", sa.func.now() - r.c.generation_submitted_at)).where(r.c.id == reel_id))

    def _mark_generating(self, job: RenderJob) -> None:
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="generating", failure_reason=None))

    def _fail(self, job: RenderJob, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="failed", failure_reason=reason[:1000]))
        self.outcome.failed[job.reel_id] = reason

    def _revert(self, job: RenderJob, reason: str, pending: bool = True) -> None:
        """Nothing was created: back to planned, for the fallback or a later run."""
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="planned", generation_provider=None,
                                 generation_submitted_at=None, failure_reason=reason,
                                 generation_attempts=schema.reels.c.generation_attempts - 1))
        self._reasons[job.reel_id] = reason
        if pending:
            self.outcome.pending[job.reel_id] = reason


def _update(reel_id: int, **values: Any) -> sa.Update:
    return (sa.update(schema.reels).where(schema.reels.c.id == reel_id)
            .values(**values, updated_at=sa.func.now()))


def seconds_to_credits(ms: int | None) -> int | None:
    """RunPod bills worker time; its ledger unit is whole seconds."""
    return None if ms is None else math.ceil(ms / 1000)
