"""Comments sensor (every 5 minutes), reading the app database only, so a quiet roster makes no
runs (waifugen_assets/comments/due.py, the one definition of what is due):

- one `comment_poll` run a tick when any enabled character has a post due a comment read (an
  Instagram or YouTube post in its 7-day reply window never read, or whose next read has come:
  young posts every few minutes, older ones hourly to daily; a YouTube channel at the pace of
  its youngest post), unless the last one is still queued or going. That run reads every
  character's due posts in one process and stores the new comments; it answers nothing.
- a `comments` run (the `comment_replies` asset, character x its local today) only for a
  character with answering work: a comment to answer without its reply yet, or a reply whose
  time has come (planned, deferred until YouTube's quota reset, a doubtful send to settle).
  These runs do not read again (the poll run did). Held comments wait for
  `waifugen comments review` and make no runs; nor does a character whose last comments run
  is still going.

So comments a poll run stores are answered by the runs of the next tick. Run keys:
`comment-poll:<5-minute tick>` and `comments:<character>:<5-minute tick>`.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from sensors.generation import ACTIVE
from waifugen_assets.comments.due import characters_to_answer, characters_to_read
from waifugen_assets.comments.jobs import comment_poll_job, comment_replies_job
from waifugen_assets.core import clock, schema
from waifugen_assets.pipeline.partitions import partition_key, split_partition_key

TICK = dt.timedelta(minutes=5)
NO_READ = {"ops": {"comment_replies": {"config": {"read": False}}}}  # the poll run reads


def due_characters(conn: sa.Connection, now: dt.datetime) -> list[tuple[str, str]]:
    """(character id, time zone) of each enabled character with answering work now."""
    busy = characters_to_answer(conn, now)
    if not busy:
        return []
    c = schema.characters
    return [(cid, tz) for cid, tz in conn.execute(
        sa.select(c.c.id, c.c.timezone).where(c.c.enabled, c.c.id.in_(sorted(busy)))
        .order_by(c.c.id))]


def characters_in_flight(instance: dg.DagsterInstance) -> set[str]:
    """Characters with a comments run queued or going."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=comment_replies_job.name,
                                                   statuses=ACTIVE))
    out = set()
    for run in runs:
        key = run.tags.get("dagster/partition")
        if key:
            out.add(split_partition_key(key)[0])
    return out


def poll_in_flight(instance: dg.DagsterInstance) -> bool:
    return bool(instance.get_runs(filters=dg.RunsFilter(job_name=comment_poll_job.name,
                                                        statuses=ACTIVE), limit=1))


@dg.sensor(
    name="comments",
    jobs=[comment_replies_job, comment_poll_job],
    minimum_interval_seconds=int(TICK.total_seconds()),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes (DB only): one comment_poll run when any Instagram or YouTube "
    "post is due a comment read; a comments run for each character with a comment to answer "
    "or a reply due.",
)
def comments_sensor(context: dg.SensorEvaluationContext,
                    database: DatabaseResource) -> dg.SensorResult:
    now = clock.now()
    with database.get_engine().connect() as conn:
        read = bool(characters_to_read(conn, now))
        due = due_characters(conn, now)
    going = characters_in_flight(context.instance) if due else set()
    tick = int(now.timestamp() // TICK.total_seconds())
    requests = [
        dg.RunRequest(job_name=comment_replies_job.name, run_key=f"comments:{cid}:{tick}",
                      partition_key=partition_key(cid, clock.local_today(tz, now)),
                      run_config=NO_READ, tags={"waifugen/trigger": "comments"})
        for cid, tz in due if cid not in going]
    if read and not poll_in_flight(context.instance):
        requests.append(dg.RunRequest(job_name=comment_poll_job.name,
                                      run_key=f"comment-poll:{tick}",
                                      tags={"waifugen/trigger": "comments"}))
    return dg.SensorResult(run_requests=requests)
