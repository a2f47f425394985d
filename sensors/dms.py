"""DM sensor (every 10 minutes): asks for a `subscriber_dms` run for each character that has
DM work, reading the app database only.

Work is: stored events not applied yet (webhooks), planned messages whose time has come,
sends whose outcome is in doubt, or a sequence step that has come due for a subscriber (the
windows of waifugen_assets/subscribers/due.py, which the DM cycle uses too). With
INBOUND_MODE=polling new subscribers are only seen by asking the platforms, so every character
with a Fanvue or Telegram account gets a run.
The run key is `dm:<character>:<10-minute tick>`: at most one run per character per tick.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.pipeline.partitions import partition_key
from waifugen_assets.subscribers.due import due_windows
from waifugen_assets.subscribers.jobs import subscriber_dms_job
from waifugen_assets.subscribers.sequences import Sequence

TICK = dt.timedelta(minutes=10)


def characters_with_dm_work(conn: sa.Connection, now: dt.datetime,
                            sequences: list[Sequence], polling: bool) -> list[tuple[str, str]]:
    """(character id, time zone) of each enabled character with DM work now."""
    c, ie, dm, s, pa = (schema.characters, schema.inbound_events, schema.dm_messages,
                        schema.subscribers, schema.platform_accounts)
    ds = schema.dm_sequences
    work = [
        sa.exists().where(ie.c.character_id == c.c.id, ie.c.processed_at.is_(None)),
        sa.exists().where(s.c.character_id == c.c.id, dm.c.subscriber_id == s.c.id, sa.or_(
            dm.c.state.in_(("sending", "unknown")),
            sa.and_(dm.c.state == "planned", dm.c.due_at <= now,
                    sa.or_(dm.c.not_before.is_(None), dm.c.not_before <= now)))),
    ]
    if polling:
        work.append(sa.exists().where(pa.c.character_id == c.c.id,
                                      pa.c.platform.in_(("fanvue", "telegram")),
                                      pa.c.status == "active"))
    rows = conn.execute(sa.select(c.c.id, c.c.timezone).where(c.c.enabled).order_by(c.c.id)).all()
    keys = dict(conn.execute(sa.select(ds.c.key, ds.c.id)).all())
    busy = {r.id for r in conn.execute(sa.select(c.c.id).where(c.c.enabled, sa.or_(*work)))}
    for cid, _ in rows:
        if cid in busy:
            continue
        for w in due_windows(sequences, cid, now):
            planned = sa.exists().where(dm.c.subscriber_id == s.c.id,
                                        dm.c.sequence_id == keys.get(w.sequence.key, -1),
                                        dm.c.step == w.step.index)
            if conn.scalar(sa.select(sa.exists().where(
                    s.c.character_id == cid, s.c.tier == w.tier, s.c.opted_out_at.is_(None),
                    s.c.forgotten_at.is_(None), s.c.subscribed_at > w.oldest,
                    s.c.subscribed_at <= w.newest, ~planned))):
                busy.add(cid)
                break
    return [(cid, tz) for cid, tz in rows if cid in busy]


@dg.sensor(
    name="dms",
    job=subscriber_dms_job,
    minimum_interval_seconds=int(TICK.total_seconds()),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 minutes: a subscriber_dms run for each character with new "
    "subscribers, due sequence steps or doubtful sends (DB only).",
)
def dm_sensor(context: dg.SensorEvaluationContext,
              database: DatabaseResource) -> dg.SensorResult:
    from waifugen_assets.subscribers.assets import sequences_path
    from waifugen_assets.subscribers.sequences import load_sequences

    now = clock.now()
    polling = (get_settings().get("INBOUND_MODE") or "polling") == "polling"
    sequences = load_sequences(sequences_path())
    with database.get_engine().connect() as conn:
        due = characters_with_dm_work(conn, now, sequences, polling)
    tick = int(now.timestamp() // TICK.total_seconds())
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=f"dm:{cid}:{tick}",
                      partition_key=partition_key(cid, clock.local_today(tz, now)),
                      tags={"waifugen/trigger": "dms"})
        for cid, tz in due])
