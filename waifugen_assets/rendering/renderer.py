"""Rendering reels with a video provider, exactly once per reel (DESIGN.md section 6).

Per reel the database row is the ledger of what happened:
1. claim: the run takes the reel's claim (claims.py) and reads the row again, so a second
   process working on the same day skips the reel instead of paying for it twice;
2. intent: status `generating`, provider, attempts+1, submitted_at: committed *before* the
   paid submit, so a crash after it is visible;
3. the remote task id and the time of its first status poll (`next_attempt_at`), committed
   the moment the provider returns the id;
4. status polls when they are due, in bulk where the provider can (A2E's list route: one
   request for up to 100 tasks), backing off while the task runs; once the task is terminal,
   in one transaction, status `generated` with the result URL and the task's cost in
   credit_ledger (unique per provider task).

A run never waits long: a poll due within `max_wait` is waited for, anything later is left
with its `next_attempt_at` for the generation sensor, which asks for a run when the time
comes. A submit refused by the A2E request budget goes back to `planned` with the time the
budget frees up. A task still unfinished `abandon_after` after its submit fails its reel
("timed out"); a reel not yet submitted whose slot is older than `stale_after` is `skipped`:
it could no longer be posted, so it is not paid for.

A rerun resumes: `generating` with a task id polls that task; `generating` without one means
the submit's outcome is unknown, so the provider is asked (A2E: find the task by its title,
which is our idempotency key) before anything is paid again. Provider failures fail that
reel with the provider's reason; repeated failures open a circuit breaker that sends new
reels to the fallback provider (RunPod) when one is configured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.http import HttpError, PermanentError, RateLimited, UnknownOutcome
from waifugen_assets.core import clock, schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.rendering.tasks import (
    BREAKER,
    CircuitBreaker,
    PollPlan,
    RenderJob,
    TaskState,
    VideoProvider,
    statuses,
)

_HOLD = object()  # a submit whose outcome is unknown and cannot be resolved now


@dataclass
class RenderOutcome:
    generated: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    pending: dict[int, str] = field(default_factory=dict)  # left for the sensor / next run
    skipped: dict[int, str] = field(default_factory=dict)  # slot passed before it was made
    fallback: list[int] = field(default_factory=list)
    elsewhere: list[int] = field(default_factory=list)  # claimed by another run
    polls: int = 0  # status requests this run made (one bulk request counts once)


@dataclass
class _Waiting:
    job: RenderJob
    provider: VideoProvider
    task_id: str
    submitted_at: dt.datetime | None
    next_poll: dt.datetime
    polls: int = 0


@dataclass
class Renderer:
    engine: sa.Engine
    primary: VideoProvider
    fallback: VideoProvider | None = None
    breaker: CircuitBreaker = field(default_factory=lambda: BREAKER)  # shared per process
    polls: PollPlan = field(default_factory=PollPlan)
    max_wait: float = 60.0  # a poll due within this is waited for in the run
    max_polls_per_run: int = 10  # per task: a run never spins on one task
    abandon_after: float = 6 * 3600.0  # after this long since submit, the reel fails
    stale_after: dt.timedelta | None = None  # an unsubmitted reel this far past its slot: skip
    submit_until: dt.datetime | None = None  # submit only slots up to here (sensor's order)
    claims: Claims | None = None
    now: Callable[[], dt.datetime] = clock.now
    sleep: Callable[[float], None] = clock.sleep
    budget_guard: Callable[[sa.Connection, int], str | None] = field(
        default=lambda conn, reel_id: None)
    outcome: RenderOutcome = field(default_factory=RenderOutcome)
    _reasons: dict[int, str] = field(default_factory=dict)
    _waiting: dict[int, _Waiting] = field(default_factory=dict)
    _rate_limited: dict[str, tuple[dt.datetime, str]] = field(default_factory=dict)

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

    # --- a run --------------------------------------------------------------------------------

    def render_all(self, jobs: Iterable[RenderJob]) -> RenderOutcome:
        """Submit what is due, poll what is due, wait for polls due within `max_wait`."""
        try:
            for job in jobs:
                if self.claims is not None and not self.claims.take("reel", job.reel_id):
                    self.outcome.elsewhere.append(job.reel_id)
                    self.outcome.pending[job.reel_id] = "being rendered by another run"
                    continue
                row = _row(self.engine, job.reel_id)
                if row is None or row["status"] not in RENDERABLE:
                    self._release(job.reel_id)
                    continue
                self.render(job, row)
            self._poll_loop()
        finally:
            for reel_id in list(self._waiting):
                self._release(reel_id)
        return self.outcome

    def _release(self, reel_id: int) -> None:
        if self.claims is not None:
            self.claims.release("reel", reel_id)

    # --- the per-reel state machine ------------------------------------------------------------

    def render(self, job: RenderJob, row: Mapping[str, Any]) -> None:
        """One step for one reel (the caller holds its claim and read `row` after taking it)."""
        try:
            self._render(job, row)
        finally:
            if job.reel_id not in self._waiting:
                self._release(job.reel_id)

    def _render(self, job: RenderJob, row: Mapping[str, Any]) -> None:
        provider = self.providers().get(row["generation_provider"] or "")
        task_id = row["generation_task_id"]
        if row["status"] in ("generating", "failed") and task_id and provider:
            # Resume what was already paid for, at its poll time.
            self._wait_for(job, provider, task_id, row["generation_submitted_at"],
                           row["next_attempt_at"] or self.now())
            return
        if row["status"] == "generating" and provider:
            # The last submit's outcome is unknown: ask before paying again.
            found = self._reconcile(job, provider)
            if found is _HOLD:
                return
            if found is not None:
                self._wait_for(job, provider, str(found), row["generation_submitted_at"],
                               self.now())
                return
            # The provider surely has no such task: that attempt cost nothing, take it back.
            self._revert(job, f"{provider.name} has no task {job.title}: the last submit "
                              "never arrived", pending=False)
        now = self.now()
        if self.stale_after is not None and job.scheduled_at is not None \
                and job.scheduled_at + self.stale_after < now:
            reason = (f"missed: its slot ({job.scheduled_at:%Y-%m-%d %H:%M} UTC) passed "
                      "before it could be rendered")
            last = row.get("failure_reason")
            if last:
                reason += f" (last: {last})"
            with self.engine.begin() as conn:
                conn.execute(_update(job.reel_id, status="skipped", next_attempt_at=None,
                                     failure_reason=reason[:1000]))
            self.outcome.skipped[job.reel_id] = reason
            return
        if row["next_attempt_at"] is not None and row["next_attempt_at"] > now:
            self.outcome.pending[job.reel_id] = (
                f"{row['failure_reason'] or 'waiting'}; next try at "
                f"{row['next_attempt_at']:%H:%M:%S} UTC")
            return
        if self.submit_until is not None and job.scheduled_at is not None \
                and job.scheduled_at > self.submit_until:
            self.outcome.pending[job.reel_id] = ("waiting its turn: earlier slots of the "
                                                 "roster are rendered first")
            return
        self._submit_new(job)

    def _reconcile(self, job: RenderJob, provider: VideoProvider) -> str | object | None:
        """The task id if the provider has it, None if it surely does not, else _HOLD."""
        if not getattr(provider, "can_list", True):
            return self._hold(job, f"{provider.name} cannot list tasks: the outcome of the "
                              f"submit of {job.title} is unknown; held for review")
        try:
            found = provider.find(job)
        except RateLimited as exc:
            return self._hold(job, f"reconciling with {provider.name} waits for its rate "
                              f"limit ({exc.retry_after or 0:.0f} s)",
                              retry_after=exc.retry_after)
        except HttpError as exc:
            return self._hold(job, f"reconciling with {provider.name} failed: {exc}")
        if found is not None:
            self._save_task(job, provider, found, self.now())
        return found

    def _hold(self, job: RenderJob, reason: str, retry_after: float | None = None) -> object:
        until = self.now() + dt.timedelta(seconds=retry_after or self.polls.min_interval)
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="generating", failure_reason=reason,
                                 next_attempt_at=until))
        self.outcome.pending[job.reel_id] = reason
        return _HOLD

    def _submit_new(self, job: RenderJob) -> None:
        tried: set[str] = set()
        while (provider := self.choose()) is not None and provider.name not in tried:
            tried.add(provider.name)
            limited = self._rate_limited.get(provider.name)
            if limited is not None:  # the budget said no this run: do not even ask
                self._wait(job, limited[1], limited[0])
                return
            task_id = self._submit(job, provider)
            if task_id is _HOLD:
                return
            if task_id is not None:
                if provider is not self.primary:
                    self.outcome.fallback.append(job.reel_id)
                now = self.now()
                self._wait_for(job, provider, str(task_id), now,
                               self.polls.next_poll(now, now))
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
                conn.execute(_update(job.reel_id, status="blocked", failure_reason=blocked,
                                     next_attempt_at=None))
                self.outcome.pending[job.reel_id] = blocked
                return None
            conn.execute(_update(
                job.reel_id, status="generating", generation_provider=provider.name,
                generation_task_id=None, failure_reason=None, next_attempt_at=None,
                generation_attempts=schema.reels.c.generation_attempts + 1,
                generation_submitted_at=self.now()))
        try:
            task_id = provider.submit(job)
        except RateLimited as exc:
            wait = exc.retry_after or self.polls.min_interval
            until = self.now() + dt.timedelta(seconds=wait)
            reason = f"{provider.name} rate limit: retry in {wait:.0f} s"
            self._rate_limited[provider.name] = (until, reason)
            self._revert(job, reason, until=until)
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
        self._save_task(job, provider, task_id, self.polls.next_poll(self.now(), self.now()))
        return task_id

    # --- polling -------------------------------------------------------------------------------

    def _wait_for(self, job: RenderJob, provider: VideoProvider, task_id: str,
                  submitted_at: dt.datetime | None, next_poll: dt.datetime) -> None:
        self._waiting[job.reel_id] = _Waiting(job, provider, task_id, submitted_at, next_poll)

    def _poll_loop(self) -> None:
        while self._waiting:
            now = self.now()
            due = [w for w in self._waiting.values() if w.next_poll <= now]
            if not due:
                soonest = min(w.next_poll for w in self._waiting.values())
                wait = (soonest - now).total_seconds()
                if wait > self.max_wait:
                    break
                self.sleep(wait)
                continue
            by_provider: dict[str, list[_Waiting]] = {}
            for w in due:
                by_provider.setdefault(w.provider.name, []).append(w)
            for items in by_provider.values():
                self._poll(items)
        for reel_id, w in list(self._waiting.items()):  # left for the generation sensor
            self._leave(w)
            del self._waiting[reel_id]

    def _poll(self, items: list[_Waiting]) -> None:
        provider = items[0].provider
        answers, requests = statuses(provider, [w.task_id for w in items])
        self.outcome.polls += requests
        for w in items:
            answer = answers.get(w.task_id)
            w.polls += 1
            if isinstance(answer, RateLimited):
                w.next_poll = self.now() + dt.timedelta(
                    seconds=answer.retry_after or self.polls.min_interval)
                self._leave(w, f"{provider.name} rate limit: status asked again later")
                del self._waiting[w.job.reel_id]
            elif isinstance(answer, HttpError) or answer is None:
                reason = f"{provider.name} status failed: {answer or 'no answer'}"
                w.next_poll = self.now() + dt.timedelta(seconds=self.polls.min_interval)
                self._leave(w, reason)
                del self._waiting[w.job.reel_id]
            elif answer.terminal:
                self._finish(w, answer)
                del self._waiting[w.job.reel_id]
                self._release(w.job.reel_id)
            else:
                age = self._age(w)
                if age is not None and age >= self.abandon_after:
                    self.breaker.failure(provider.name)
                    self._fail(w.job, f"{provider.name} task {w.task_id} timed out: not "
                                      f"finished {age / 60:.0f} min after it was submitted")
                    del self._waiting[w.job.reel_id]
                    self._release(w.job.reel_id)
                    continue
                w.next_poll = self.polls.next_poll(w.submitted_at, self.now())
                if w.polls >= self.max_polls_per_run:
                    self._leave(w)
                    del self._waiting[w.job.reel_id]

    def _leave(self, w: _Waiting, reason: str | None = None) -> None:
        """Still running: the generation sensor asks for a run at `next_poll`."""
        with self.engine.begin() as conn:
            conn.execute(_update(w.job.reel_id, status="generating", failure_reason=reason,
                                 next_attempt_at=w.next_poll))
        self.outcome.pending[w.job.reel_id] = reason or (
            f"{w.provider.name} task {w.task_id} rendering; next status check at "
            f"{w.next_poll:%H:%M:%S} UTC")
        self._release(w.job.reel_id)

    def _finish(self, w: _Waiting, state: TaskState) -> None:
        job, provider, task_id = w.job, w.provider, w.task_id
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
                ledger_date=job.date, occurred_at=self.now(),
                note=None if state.cost is not None else "estimated: provider gave no cost",
            ).on_conflict_do_nothing(constraint="uq_credit_ledger_provider_kind_external_ref"))
            conn.execute(_update(job.reel_id, status="generated", failure_reason=None,
                                 next_attempt_at=None, generation_result_url=state.result_url))
        self.outcome.generated.append(job.reel_id)
        self.outcome.pending.pop(job.reel_id, None)

    def _age(self, w: _Waiting) -> float | None:
        """Seconds since the reel's last paid submit."""
        if w.submitted_at is None:
            return None
        return (self.now() - w.submitted_at).total_seconds()

    # --- row updates ---------------------------------------------------------------------------

    def _save_task(self, job: RenderJob, provider: VideoProvider, task_id: str,
                   next_poll: dt.datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, generation_task_id=task_id,
                                 generation_provider=provider.name, status="generating",
                                 next_attempt_at=next_poll))

    def _fail(self, job: RenderJob, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="failed", failure_reason=reason[:1000],
                                 next_attempt_at=None))
        self.outcome.failed[job.reel_id] = reason
        self.outcome.pending.pop(job.reel_id, None)

    def _wait(self, job: RenderJob, reason: str, until: dt.datetime) -> None:
        """Not submitted (nothing was tried): wait until `until`."""
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, failure_reason=reason, next_attempt_at=until))
        self.outcome.pending[job.reel_id] = reason

    def _revert(self, job: RenderJob, reason: str, pending: bool = True,
                until: dt.datetime | None = None) -> None:
        """Nothing was created: back to planned, for the fallback or a later run."""
        with self.engine.begin() as conn:
            conn.execute(_update(job.reel_id, status="planned", generation_provider=None,
                                 generation_submitted_at=None, failure_reason=reason,
                                 next_attempt_at=until,
                                 generation_attempts=schema.reels.c.generation_attempts - 1))
        self._reasons[job.reel_id] = reason
        if pending:
            self.outcome.pending[job.reel_id] = reason


RENDERABLE = ("planned", "generating")


def _row(engine: sa.Engine, reel_id: int) -> dict[str, Any] | None:
    r = schema.reels
    with engine.connect() as conn:
        row = conn.execute(sa.select(r).where(r.c.id == reel_id)).mappings().first()
    return dict(row) if row is not None else None


def _update(reel_id: int, **values: Any) -> sa.Update:
    return (sa.update(schema.reels).where(schema.reels.c.id == reel_id)
            .values(**values, updated_at=sa.func.now()))
