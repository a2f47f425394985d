"""Posting sensor: asks for a `daily_content` run when a branded reel's slot has come and it is
not yet published (or given up) on every publish platform of its character.

Reads the app database only. The run key is `post:<reel>:<n>`: n is 0 until some post of the
reel waits for a retry whose time has passed, then the reel's attempt count, so each due retry
gets one run and a reel that is merely in flight is never asked for twice.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets import schema
from waifugen_assets.jobs import daily_content_job
from waifugen_assets.partitions import partition_key
from waifugen_assets.publishing import DONE, WAITING


def due_posts(conn: sa.Connection) -> list[tuple[int, str, object, int]]:
    """(reel id, character, date, n) for each reel the sensor should post now."""
    r, pa, sp = schema.reels, schema.platform_accounts, schema.social_posts
    now = sa.func.now()
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
        # `published` too: a post the platform FAILED after acceptance reopens its reel
        .where(r.c.status.in_(("branded", "published")), r.c.scheduled_at <= now,
               settled < platforms)
        .order_by(r.c.scheduled_at, r.c.id)).all()
    return [(int(a), str(b), c, int(d)) for a, b, c, d in rows]


@dg.sensor(
    name="posting",
    job=daily_content_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a daily_content run for branded reels whose slot has come and that "
    "are not yet published on every platform.",
)
def posting_sensor(context: dg.SensorEvaluationContext,
                   database: DatabaseResource) -> dg.SensorResult:
    with database.get_engine().connect() as conn:
        due = due_posts(conn)
    requests = [dg.RunRequest(run_key=f"post:{reel_id}:{n}",
                              partition_key=partition_key(cid, day),
                              tags={"waifugen/trigger": "posting"})
                for reel_id, cid, day, n in due]
    return dg.SensorResult(run_requests=requests)
