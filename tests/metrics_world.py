"""A small app database and Dagster instance for the metrics tests (tests/test_metrics*.py):
rows of every table the collector reads, inside and outside its windows, and what each metric
must say about them (`Expected`). Times are relative to the moment of seeding; the windows
are days wide, so the seconds a test takes do not move a row across an edge."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa
from conftest import create_database, database_url, drop_database
from dagster._daemon.types import DaemonHeartbeat

from resources.youtube_quota import quota_window
from waifugen_assets.core import schema
from waifugen_assets.core.config import get_settings

UTC = dt.UTC
Key = tuple[str, tuple[tuple[str, str], ...]]  # (metric, sorted label pairs)

# Every family of the design table (docs: /work/notes/ops_metrics.md).
METRIC_NAMES = (
    "waifugen_a2e_credits_remaining", "waifugen_a2e_credits_runout_timestamp_seconds",
    "waifugen_budget_used_ratio", "waifugen_reels", "waifugen_cost_per_reel_credits",
    "waifugen_post_attempts_total", "waifugen_posts", "waifugen_last_post_timestamp_seconds",
    "waifugen_dagster_runs", "waifugen_dagster_run_duration_seconds",
    "waifugen_dagster_runs_queued", "waifugen_dagster_daemon_heartbeat_age_seconds",
    "waifugen_db_probe_seconds", "waifugen_dm_messages", "waifugen_comment_replies",
    "waifugen_quota_used_ratio", "waifugen_backup_last_success_timestamp_seconds",
    "waifugen_backup_last_verified_timestamp_seconds",
    "waifugen_credential_rotated_timestamp_seconds",
    "waifugen_report_last_sent_timestamp_seconds", "waifugen_collector_errors",
)


def key(metric: str, /, **labels: str) -> Key:
    return metric, tuple(sorted(labels.items()))


@dataclass
class Expected:
    now: dt.datetime
    exact: dict[Key, float] = field(default_factory=dict)

    def set(self, metric: str, value: float, /, **labels: str) -> None:
        self.exact[key(metric, **labels)] = float(value)


def _ins(conn: sa.Connection, table: sa.Table, **values: object) -> int:
    pk = table.c.id if "id" in table.c else None
    stmt = sa.insert(table).values(**values)
    return int(conn.execute(stmt.returning(pk)).scalar_one()) if pk is not None else 0


def seed_app(engine: sa.Engine, now: dt.datetime | None = None) -> Expected:
    now = now or dt.datetime.now(UTC)
    today = now.date()
    ago = lambda **kw: now - dt.timedelta(**kw)  # noqa: E731
    exp = Expected(now)
    ch, r, lg = schema.characters, schema.reels, schema.credit_ledger
    with engine.begin() as conn:
        for cid, enabled in (("aiko", True), ("bea", True), ("cora", False)):
            conn.execute(sa.insert(ch).values(id=cid, name=cid.title(), age=24,
                                              timezone="UTC", enabled=enabled))

        def reel(cid: str, day: dt.date, slot: int, status: str, **kw: object) -> int:
            return _ins(conn, r, character_id=cid, date=day, slot=slot, status=status,
                        scheduled_at=dt.datetime.combine(day, dt.time(12), UTC), **kw)

        today_1 = reel("aiko", today, 0, "published")
        reel("aiko", today, 1, "planned", projected_credits=90)
        reel("bea", today, 0, "generating", projected_credits=60, generation_provider="a2e",
             generation_task_id="task-gen")
        failed = reel("bea", today, 1, "failed")
        reel("cora", today, 0, "blocked", projected_credits=30)
        minus3 = reel("aiko", today - dt.timedelta(days=3), 0, "published")
        minus2 = reel("bea", today - dt.timedelta(days=2), 0, "published")
        minus10 = reel("aiko", today - dt.timedelta(days=10), 0, "published")
        cora_1 = reel("cora", today - dt.timedelta(days=1), 0, "published")
        for status in schema.REEL_STATUSES:
            exp.set("waifugen_reels", 0, stage=status)
        for status in ("published", "planned", "generating", "failed", "blocked"):
            exp.set("waifugen_reels", 1, stage=status)

        # Credits: snapshots of yesterday and today; this week's costs all on today (so the
        # month's budget is the same whatever the date), one 40 days back (no month, no week).
        yesterday = today - dt.timedelta(days=1)
        for day, credits, at in ((yesterday, 5000, ago(days=1)), (today, 4200, ago(hours=1))):
            conn.execute(sa.insert(lg).values(provider="a2e", kind="balance_snapshot",
                                              external_ref=f"balance:{day}", credits=credits,
                                              ledger_date=day, occurred_at=at))
        for ref, reel_id, credits in (("t1", today_1, 300), ("t2", minus3, 250),
                                      ("t3", minus3, 50), ("t4", minus2, 600), ("t5", None, 100)):
            conn.execute(sa.insert(lg).values(provider="a2e", kind="task_cost", external_ref=ref,
                                              reel_id=reel_id, credits=credits, ledger_date=today))
        conn.execute(sa.insert(lg).values(provider="a2e", kind="task_cost", external_ref="t6",
                                          credits=999, ledger_date=today - dt.timedelta(days=40)))
        conn.execute(sa.insert(lg).values(provider="runpod", kind="task_cost", external_ref="rp1",
                                          credits=120, ledger_date=today))
        exp.set("waifugen_a2e_credits_remaining", 4200)
        runs_out = today + dt.timedelta(days=23)  # ceil(4200 * 7 / 1300) days from today
        exp.set("waifugen_a2e_credits_runout_timestamp_seconds",
                dt.datetime.combine(runs_out, dt.time(), UTC).timestamp())
        exp.set("waifugen_cost_per_reel_credits", 400)  # 1200 credits over 3 reels
        month = today.replace(day=1)
        conn.execute(sa.insert(schema.budgets).values(provider="a2e", period_start=month,
                                                      credits_limit=10_000))
        conn.execute(sa.insert(schema.budgets).values(provider="runpod", period_start=month,
                                                      credits_limit=1_000))
        exp.set("waifugen_budget_used_ratio", (1300 + 90 + 30) / 10_000, provider="a2e")
        exp.set("waifugen_budget_used_ratio", 120 / 1000, provider="runpod")

        # Posts and their attempts (old ones first: ids grow with time, as in production).
        sp, pa = schema.social_posts, schema.post_attempts

        def post(reel_id: int, platform: str, state: str, published: dt.datetime | None = None
                 ) -> int:
            return _ins(conn, sp, reel_id=reel_id, platform=platform, state=state,
                        ai_disclosure=True, published_at=published)

        p_old = post(minus10, "instagram", "published", ago(days=10))
        p_yt = post(minus3, "youtube", "published", ago(hours=70))
        p_bea = post(minus2, "instagram", "published", ago(hours=30))
        post(cora_1, "tiktok", "published", ago(hours=1))
        p_perm = post(failed, "youtube", "failed_permanent")
        p_ig = post(today_1, "instagram", "published", ago(hours=2))
        p_tt = post(today_1, "tiktok", "failed_retryable")
        for platform in schema.SOCIAL_PLATFORMS:
            for state in schema.POST_STATES:
                exp.set("waifugen_posts", 0, platform=platform, state=state)
        for (platform, state), n in {("instagram", "published"): 2, ("youtube", "published"): 1,
                                     ("tiktok", "published"): 1, ("youtube", "failed_permanent"): 1,
                                     ("tiktok", "failed_retryable"): 1}.items():
            exp.set("waifugen_posts", n, platform=platform, state=state)
        exp.set("waifugen_last_post_timestamp_seconds", ago(hours=2).timestamp(), character="aiko")
        exp.set("waifugen_last_post_timestamp_seconds", ago(hours=30).timestamp(),
                character="bea")
        for post_id, attempt, outcome, started in (
                (p_old, 1, "success", ago(days=10)), (p_yt, 1, "success", ago(hours=70)),
                (p_perm, 1, "permanent", ago(hours=20)), (p_ig, 1, "retryable", ago(hours=3)),
                (p_ig, 2, "success", ago(hours=2)), (p_tt, 1, "rate_limited", ago(hours=2)),
                (p_tt, 2, None, ago(minutes=5))):
            conn.execute(sa.insert(pa).values(
                post_id=post_id, attempt=attempt, outcome=outcome, started_at=started,
                finished_at=None if outcome is None else started + dt.timedelta(seconds=30)))
        for platform in schema.SOCIAL_PLATFORMS:
            for outcome in schema.POST_ATTEMPT_OUTCOMES:
                exp.set("waifugen_post_attempts_total", 0, platform=platform, outcome=outcome)
        for (platform, outcome), n in {("instagram", "success"): 2,
                                       ("instagram", "retryable"): 1,
                                       ("tiktok", "rate_limited"): 1, ("youtube", "success"): 1,
                                       ("youtube", "permanent"): 1}.items():
            exp.set("waifugen_post_attempts_total", n, platform=platform, outcome=outcome)

        _seed_messages(conn, exp, p_ig, p_bea)
        _seed_operations(conn, exp)
    return exp


def _seed_messages(conn: sa.Connection, exp: Expected, post_a: int, post_b: int) -> None:
    now = exp.now
    ago = lambda **kw: now - dt.timedelta(**kw)  # noqa: E731
    sub = _ins(conn, schema.subscribers, character_id="aiko", platform="fanvue",
               external_id="fan-1")
    seq = _ins(conn, schema.dm_sequences, key="aiko/standard/welcome@1", character_id="aiko",
               tier="standard", definition={"steps": []})
    for step, state, created in ((1, "held", ago(days=20)), (2, "failed", ago(days=20)),
                                 (3, "queued_manual", ago(days=20)), (4, "sent", ago(days=1)),
                                 (5, "sent", ago(days=1)), (6, "planned", ago(days=1)),
                                 (7, "held", ago(hours=5))):
        conn.execute(sa.insert(schema.dm_messages).values(
            subscriber_id=sub, sequence_id=seq, step=step, state=state, due_at=created,
            created_at=created, sent_at=created if state == "sent" else None))
    for state in schema.DM_STATES:
        exp.set("waifugen_dm_messages", 0, state=state)
    for state, n in {"held": 2, "queued_manual": 1, "sent": 2, "planned": 1}.items():
        exp.set("waifugen_dm_messages", n, state=state)

    cm, cr = schema.comments, schema.comment_replies
    for i, (post_id, comment_state, reply_state, created) in enumerate((
            (post_b, "held", "held", ago(days=20)), (post_b, "answered", "failed", ago(days=20)),
            (post_b, "held", "held", ago(days=2)), (post_a, "answered", "sent", ago(days=1)),
            (post_a, "new", "planned", ago(hours=1)))):
        comment = _ins(conn, cm, post_id=post_id, character_id="aiko", platform="instagram",
                       remote_comment_id=f"c{i}", classification="question",
                       state=comment_state)
        conn.execute(sa.insert(cr).values(comment_id=comment, text="thanks!", state=reply_state,
                                          created_at=created,
                                          sent_at=created if reply_state == "sent" else None))
    for state in schema.REPLY_STATES:
        exp.set("waifugen_comment_replies", 0, state=state)
    for state, n in {"held": 2, "sent": 1, "planned": 1}.items():
        exp.set("waifugen_comment_replies", n, state=state)


def _seed_operations(conn: sa.Connection, exp: Expected) -> None:
    now = exp.now
    ago = lambda **kw: now - dt.timedelta(**kw)  # noqa: E731
    qu, rl = schema.quota_usage, schema.rate_limit_log
    window = quota_window(now)
    for account_key, start, units in (("proj-1", window, 2500), ("proj-1#inserts", window, 1),
                                      ("proj-2", window, 400),
                                      ("proj-1", window - dt.timedelta(days=1), 9999)):
        conn.execute(sa.insert(qu).values(platform="youtube", account_key=account_key,
                                          window_kind="day", window_start=start, units=units))
    for platform, account_key, period, units, taken in (
            ("a2e", "a2e:k1", 3600.0, 30, ago(minutes=10)), ("a2e", "a2e:k2", 3600.0, 10,
                                                             ago(minutes=20)),
            ("a2e", "a2e:k1", 3600.0, 50, ago(hours=2)),
            *(("instagram", "posts:1", 86400.0, 1, ago(hours=h)) for h in range(1, 11)),
            ("instagram", "posts:2", 86400.0, 3, ago(hours=1)),
            ("instagram", "posts:1", 86400.0, 20, ago(days=2)),
            ("instagram", "graph:abc", 86400.0, 40, ago(hours=1))):
        conn.execute(sa.insert(rl).values(platform=platform, account_key=account_key,
                                          window_seconds=period, units=units, taken_at=taken))
    exp.set("waifugen_quota_used_ratio", 2500 / 10_000, service="youtube", window="day")
    exp.set("waifugen_quota_used_ratio", 30 / get_settings().a2e_requests_per_hour,
            service="a2e", window="hour")
    exp.set("waifugen_quota_used_ratio", 10 / 50, service="instagram", window="rolling_24h")
    exp.set("waifugen_quota_used_ratio", 0, service="tiktok", window="rolling_24h")

    b = schema.backups
    sha = "0" * 64
    for set_id, database, state, finished, verified, result in (
            ("A", "app", "done", ago(hours=8), ago(days=3), {"ok": True}),
            ("B", "app", "done", ago(hours=2), None, None),
            ("B", "dagster", "done", ago(hours=2), ago(days=1), {"ok": False}),
            ("C", "app", "failed", None, None, None)):
        conn.execute(sa.insert(b).values(
            set_id=set_id, database=database, state=state, location=f"/b/{set_id}/{database}",
            sha256=sha if state == "done" else None, started_at=ago(hours=9),
            finished_at=finished, verified_at=verified, verify_result=result))
    exp.set("waifugen_backup_last_success_timestamp_seconds", ago(hours=2).timestamp(),
            database="app")
    exp.set("waifugen_backup_last_success_timestamp_seconds", ago(hours=2).timestamp(),
            database="dagster")
    exp.set("waifugen_backup_last_verified_timestamp_seconds", ago(days=3).timestamp())

    c = schema.credentials
    conn.execute(sa.insert(c).values(name="a2e", kind="api_key", created_at=ago(days=10)))
    conn.execute(sa.insert(c).values(name="telegram_bot", kind="bot_token",
                                     created_at=ago(days=100), rotated_at=ago(days=5)))
    exp.set("waifugen_credential_rotated_timestamp_seconds", ago(days=10).timestamp(), name="a2e")
    exp.set("waifugen_credential_rotated_timestamp_seconds", ago(days=5).timestamp(),
            name="telegram_bot")

    rm = schema.report_messages
    yesterday = now.date() - dt.timedelta(days=1)
    for day, part, state, sent in ((yesterday, "photo", "sent", ago(hours=20, minutes=1)),
                                   (yesterday, "text", "sent", ago(hours=20)),
                                   (now.date(), "text", "failed", None)):
        conn.execute(sa.insert(rm).values(report_date=day, part=part, chat_id="-100",
                                          state=state, body="report", sent_at=sent))
    exp.set("waifugen_report_last_sent_timestamp_seconds", ago(hours=20).timestamp())


# --- Dagster ---------------------------------------------------------------------------------

@dg.op
def _hello() -> int:
    return 1


@dg.op
def _boom() -> None:
    raise RuntimeError("this run fails on purpose")


@dg.job
def tiny_job() -> None:
    _hello()


@dg.job
def failing_job() -> None:
    _boom()


@contextmanager
def dagster_instance(pg_server_url: str) -> Iterator[tuple[dg.DagsterInstance, str]]:
    """An instance on its own PostgreSQL database (as deploy/dagster.yaml), DAGSTER_HOME set to
    its directory while open; yields it with the database's URL."""
    name = f"wg_dagster_{uuid.uuid4().hex[:12]}"
    create_database(pg_server_url, name)
    url = database_url(pg_server_url, name)
    try:
        with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}
                                  ) as instance:
            yield instance, url
    finally:
        drop_database(pg_server_url, name)


@dataclass(frozen=True)
class DagsterSeed:
    heartbeat_ages: dict[str, float]  # seconds old when seeded
    seeded_at: float


def seed_dagster(instance: dg.DagsterInstance, exp: Expected) -> DagsterSeed:
    """Two successful runs of tiny_job, a failed one of failing_job, one waiting to start;
    heartbeats of two daemons."""
    for _ in range(2):
        assert tiny_job.execute_in_process(instance=instance).success
    assert not failing_job.execute_in_process(instance=instance, raise_on_error=False).success
    # Created, never launched: NOT_STARTED (a QUEUED run needs a code location's origin).
    instance.create_run_for_job(tiny_job)
    for job, status, n in (("tiny_job", "SUCCESS", 2), ("tiny_job", "NOT_STARTED", 1),
                           ("tiny_job", "FAILURE", 0), ("tiny_job", "CANCELED", 0),
                           ("failing_job", "FAILURE", 1), ("failing_job", "SUCCESS", 0),
                           ("failing_job", "CANCELED", 0)):
        exp.set("waifugen_dagster_runs", n, job=job, status=status)
    exp.set("waifugen_dagster_runs_queued", 1)
    for job in ("tiny_job", "failing_job"):
        (newest,) = instance.get_run_records(
            dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS,
                                                  dg.DagsterRunStatus.FAILURE]),
            limit=1, order_by="end_time", ascending=False)
        exp.set("waifugen_dagster_run_duration_seconds", newest.end_time - newest.start_time,
                job=job)
    seeded_at = time.time()
    ages = {"SENSOR": 42.0, "SCHEDULER": 7.0}
    for daemon, age in ages.items():
        instance.add_daemon_heartbeat(DaemonHeartbeat(timestamp=seeded_at - age,
                                                      daemon_type=daemon, daemon_id="test"))
    return DagsterSeed(ages, seeded_at)
