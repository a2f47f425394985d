"""Generation sensor: keeps every planned reel moving to `branded`, within A2E's request budget.

Each tick (every minute) reads the app database only: the unfinished reels whose time has
come (a new plan, a submit that waited for the rate limit or an outage, a render whose next
status poll is due, a download to retry, a reel whose slot passed unmade), and what the A2E
API key has spent in the last hour (`rate_limit_log`, the store every process counts in).
It then asks for `render` runs:

- work already paid for first (status polls, reconciling a lost submit, downloads): a
  partition's due polls cost one request (the list route answers for many tasks at once);
- then new renders in slot order across the whole roster, two requests each (TTS, submit),
  while the hour's budget lasts. A partition's run gets `submit_until` = its latest granted
  slot, so a run never submits a later slot ahead of another character's earlier one.

A partition with a render run still queued or running is left alone; the run key names the
partition and a fingerprint of its due work (plus the hour, so work a crashed run left
behind is asked for again). What cannot be made in time is not dropped: the run records a
reel whose slot passed unmade as `skipped` (missed), and `waifugen status` counts it.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt
import hashlib
from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa

from resources.a2e import A2EResource
from resources.database import DatabaseResource
from resources.quota_store import PostgresRateLimitStore
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.pipeline.partitions import partition_key
from waifugen_assets.rendering.jobs import render_job

LOOKBACK = dt.timedelta(days=2)  # unfinished reels older than this are not looked at
SUBMIT_REQUESTS = 2  # TTS + generate
POLL_REQUESTS = 1  # a partition's due polls: one list request (or one awsResult)
NOTHING = "1970-01-01T00:00:00+00:00"  # submit_until for a run that may submit nothing
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
          dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dataclass(frozen=True)
class Due:
    reel_id: int
    character_id: str
    date: dt.date
    scheduled_at: dt.datetime
    status: str
    has_task: bool
    next_attempt_at: dt.datetime | None


@dataclass
class Grant:
    """One partition's render run: what it may do and the requests it is expected to cost."""

    character_id: str
    date: dt.date
    requests: int = 0
    submit_until: dt.datetime | None = None
    work: list[str] = field(default_factory=list)
    first_slot: dt.datetime | None = None


@dataclass
class Plan:
    grants: list[Grant]
    budget: int  # requests free in the current hour when the tick began
    waiting_for_budget: int  # due new renders not granted this tick
    earliest_waiting: dt.datetime | None  # the earliest slot among them


def due_reels(conn: sa.Connection, now: dt.datetime) -> list[Due]:
    """Unfinished reels of the last two days whose time has come, earliest slot first."""
    r = schema.reels
    rows = conn.execute(
        sa.select(r.c.id, r.c.character_id, r.c.date, r.c.scheduled_at, r.c.status,
                  r.c.generation_task_id.is_not(None), r.c.next_attempt_at)
        .where(r.c.status.in_(schema.UNFINISHED_REEL_STATUSES),  # the partial index
               r.c.scheduled_at > now - LOOKBACK,
               sa.or_(r.c.next_attempt_at.is_(None), r.c.next_attempt_at <= now))
        .order_by(r.c.scheduled_at, r.c.id)).all()
    return [Due(*row) for row in rows]


def plan_runs(due: list[Due], budget: int, now: dt.datetime, stale_after: dt.timedelta,
              busy: set[str] = frozenset()) -> Plan:  # type: ignore[assignment]
    """Which partitions to run and what each may submit, within `budget` A2E requests."""
    grants: dict[str, Grant] = {}

    def grant(d: Due) -> Grant:
        key = f"{d.character_id}|{d.date}"
        found = grants.get(key)
        if found is None:
            found = grants[key] = Grant(d.character_id, d.date)
        if found.first_slot is None or d.scheduled_at < found.first_slot:
            found.first_slot = d.scheduled_at
        return found

    left = budget
    polled: set[str] = set()
    mine = sorted((d for d in due if f"{d.character_id}|{d.date}" not in busy),
                  key=lambda d: (d.scheduled_at, d.reel_id))
    # 1. What is paid for already, or costs nothing at A2E, or only records a missed slot.
    for d in mine:
        key = f"{d.character_id}|{d.date}"
        missed = d.status == "planned" and d.scheduled_at + stale_after < now
        if d.status == "generating":
            if key not in polled:
                if left < POLL_REQUESTS:
                    continue
                left -= POLL_REQUESTS
                polled.add(key)
                grant(d).requests += POLL_REQUESTS
            grant(d).work.append(f"{d.reel_id}p")
        elif d.status in ("generated", "stored") or missed:
            grant(d).work.append(f"{d.reel_id}{'m' if missed else 'd'}")
    # 2. New renders, earliest slot first across the roster, while the budget lasts.
    waiting, earliest = 0, None
    for d in mine:
        if d.status != "planned" or d.scheduled_at + stale_after < now:
            continue
        if left < SUBMIT_REQUESTS:
            waiting += 1
            earliest = earliest or d.scheduled_at
            continue
        left -= SUBMIT_REQUESTS
        g = grant(d)
        g.requests += SUBMIT_REQUESTS
        g.submit_until = max(g.submit_until or d.scheduled_at, d.scheduled_at)
        g.work.append(f"{d.reel_id}s")
    ordered = sorted(grants.values(), key=lambda g: (g.first_slot or now, g.character_id))
    return Plan(ordered, budget, waiting, earliest)


def run_key(g: Grant, due: list[Due], now: dt.datetime) -> str:
    """The partition, a fingerprint of its due work, and the hour."""
    mine = [d for d in due if d.character_id == g.character_id and d.date == g.date]
    fingerprint = hashlib.sha256(";".join(
        f"{d.reel_id}:{d.status}:{d.next_attempt_at.timestamp() if d.next_attempt_at else 0}"
        for d in mine).encode()).hexdigest()[:12]
    return f"render:{g.character_id}|{g.date}:{fingerprint}:{now:%Y%m%d%H}"


def requests_for(plan: Plan, due: list[Due], now: dt.datetime) -> list[dg.RunRequest]:
    return [dg.RunRequest(
        run_key=run_key(g, due, now),
        partition_key=partition_key(g.character_id, g.date),
        run_config={"ops": {"reels": {"config": {
            "submit_until": g.submit_until.isoformat() if g.submit_until else NOTHING}}}},
        tags={"waifugen/trigger": "generation", "waifugen/a2e_requests": str(g.requests)})
        for g in plan.grants]


def active_runs(instance: dg.DagsterInstance) -> tuple[set[str], int]:
    """Partitions with a render run queued or running (tag `dagster/partition`), and the A2E
    requests granted to those runs: counted as spent until they are (a conservative
    double count for what they have spent already)."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=render_job.name, statuses=ACTIVE))
    busy = {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}
    granted = sum(int(run.tags.get("waifugen/a2e_requests", "0") or 0) for run in runs)
    return busy, granted


def a2e_budget(database: DatabaseResource, a2e: A2EResource) -> int:
    """A2E requests still free in the last hour for the configured API key."""
    store = PostgresRateLimitStore(database.get_engine(), "a2e")
    used, _ = store.usage(a2e.rate_key(), 3600.0)
    return max(0, a2e.resolved_requests_per_hour() - used)


@dg.sensor(
    name="generation",
    job=render_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: render runs for planned reels in slot order across the roster "
    "within A2E's hourly request budget, and for renders whose status poll is due (DB only).",
)
def generation_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource,
                      a2e: A2EResource) -> dg.SensorResult:
    now = clock.now()
    with database.get_engine().connect() as conn:
        due = due_reels(conn, now)
    if not due:
        return dg.SensorResult(run_requests=[])
    stale_after = dt.timedelta(hours=get_settings().publish_stale_after_hours)
    busy, granted = active_runs(context.instance)
    plan = plan_runs(due, max(0, a2e_budget(database, a2e) - granted), now, stale_after, busy)
    if plan.waiting_for_budget:
        context.log.info("%d reel(s) wait for the A2E budget (%d requests/hour); earliest "
                         "slot %s", plan.waiting_for_budget, a2e.resolved_requests_per_hour(),
                         plan.earliest_waiting)
    return dg.SensorResult(run_requests=requests_for(plan, due, now))
