"""Posting sensor: asks for a `publish` run when a branded reel's slot has come and it is not
yet settled (published, given up or skipped as stale) on every publish platform of its
character.

Reads the app database only. One run per partition with due reels; its run key lists each due
reel as `<reel>.<n>`: n is 0 until some post of the reel waits for a retry whose time has
passed, then the reel's attempt count, so each due retry gets one run and a reel that is
merely in flight is never asked for twice. Slots older than two days are not looked at (long
stale).

The tick stays flat however many years of reels there are (benchmarks/sensor_ticks.py). It
reads the `branded` reels of the last two days by slot time (the partial index
`ix_reels_awaiting_post`: published reels, nearly all of history, are not in it; one left
`branded` by a skipped post is, but outside the two days the range never reaches it) and the
`published` ones with a post open again (a retry after the platform took it back: the open
states of the `social_posts (state, next_attempt_at)` index). A `published` reel was settled
on every platform its character had then; a platform account added later does not reopen it.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.core import clock, schema
from waifugen_assets.pipeline.partitions import partition_key
from waifugen_assets.publishing.flows import DONE, WAITING
from waifugen_assets.publishing.jobs import publish_job

LOOKBACK = dt.timedelta(days=2)  # older slots are long stale
OPEN = tuple(s for s in schema.POST_STATES if s not in DONE)  # a post not settled yet


def awaiting_publication(now: dt.datetime) -> sa.Subquery:
    """Ids of the reels whose slot came in the last two days and that may still need a post:
    `branded` ones, and `published` ones with a post open again. Each part is an index range
    scan over unfinished work only."""
    r, sp = schema.reels, schema.social_posts
    window = (r.c.scheduled_at <= now, r.c.scheduled_at > now - LOOKBACK)
    branded = sa.select(r.c.id).where(r.c.status == "branded", *window)
    reopened = (sa.select(sp.c.reel_id).join(r, r.c.id == sp.c.reel_id)
                .where(sp.c.state.in_(OPEN), r.c.status == "published", *window))
    return sa.union(branded, reopened).subquery("awaiting")


def due_posts(conn: sa.Connection,
              now: dt.datetime | None = None) -> list[tuple[int, str, object, int]]:
    """(reel id, character, date, n) for each reel the sensor should post now."""
    r, pa, sp = schema.reels, schema.platform_accounts, schema.social_posts
    now = now or clock.now()
    awaiting = awaiting_publication(now)
    platforms = (sa.select(sa.func.count()).where(
        pa.c.character_id == r.c.character_id, pa.c.platform.in_(schema.SOCIAL_PLATFORMS))
        .scalar_subquery())
    settled = (sa.select(sa.func.count()).where(sp.c.reel_id == r.c.id, sp.c.state.in_(DONE))
               .scalar_subquery())
    retry_due = sa.exists().where(sp.c.reel_id == r.c.id, sp.c.state.in_(WAITING),
                                  sa.or_(sp.c.next_attempt_at.is_(None),
                                         sp.c.next_attempt_at <= now))
    attempts = (sa.select(sa.func.coalesce(sa.func.sum(sp.c.attempts), 0))
                .where(sp.c.reel_id == r.c.id).scalar_subquery())
    rows = conn.execute(
        sa.select(r.c.id, r.c.character_id, r.c.date,
                  sa.case((retry_due, attempts), else_=0))
        .join(awaiting, awaiting.c.id == r.c.id)
        .where(settled < platforms)
        .order_by(r.c.scheduled_at, r.c.id)).all()
    return [(int(a), str(b), c, int(d)) for a, b, c, d in rows]


@dg.sensor(
    name="posting",
    job=publish_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a publish run for branded reels whose slot has come and that are "
    "not yet settled on every platform (DB only).",
)
def posting_sensor(context: dg.SensorEvaluationContext,
                   database: DatabaseResource) -> dg.SensorResult:
    with database.get_engine().connect() as conn:
        due = due_posts(conn)
    return dg.SensorResult(run_requests=posting_requests(due))


def posting_requests(due: list[tuple[int, str, object, int]]) -> list[dg.RunRequest]:
    """One publish run per partition with due reels; its run key names each due reel and its
    retry count, so the same work is asked for once and a new due reel or retry asks again."""
    by_partition: dict[tuple[str, object], list[str]] = {}
    for reel_id, cid, day, n in due:
        by_partition.setdefault((cid, day), []).append(f"{reel_id}.{n}")
    return [dg.RunRequest(run_key=f"post:{cid}|{day}:{','.join(work)}",
                          partition_key=partition_key(cid, day),  # type: ignore[arg-type]
                          tags={"waifugen/trigger": "posting"})
            for (cid, day), work in by_partition.items()]
