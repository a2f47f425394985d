"""DM sensor (every 10 minutes): asks for a `subscriber_dms` run for each character that has
DM work, reading the app database only, so a quiet roster makes no runs.

Work is: stored events not applied yet (from the webhook service, or from the poll run),
planned messages whose time has come, sends whose outcome is in doubt, or a sequence step that
has come due for a subscriber with no message for it yet (the windows of
waifugen_assets/subscribers/due.py, which the DM cycle uses too). Each is read through an index
over open work only (unprocessed events, messages by state, reachable subscribers by join
time), so a tick does not grow with years of subscribers and messages.

With INBOUND_MODE=polling (the default) new subscribers and messages are only seen by asking
the platforms: the sensor also asks for one `subscriber_poll` run a tick (every character's
Fanvue and Telegram read in one process, unless the last one is still going), and the events
it stores are work on the next tick. The `subscriber_dms` runs it asks for do not poll again.
Run keys: `dm:<character>:<10-minute tick>` and `dm-poll:<tick>`, at most one of each a tick.
"""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
import sqlalchemy as sa

from resources.database import DatabaseResource
from sensors.generation import ACTIVE
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.pipeline.partitions import partition_key
from waifugen_assets.subscribers.cycle import DOUBTFUL
from waifugen_assets.subscribers.due import due_windows
from waifugen_assets.subscribers.jobs import subscriber_dms_job, subscriber_poll_job
from waifugen_assets.subscribers.polling import anyone_to_poll
from waifugen_assets.subscribers.sequences import SUBSCRIBER_TIERS, Sequence, sequence_for

TICK = dt.timedelta(minutes=10)
NO_POLL = {"ops": {"dm_messages": {"config": {"poll": False}}}}  # the poll run did it

# Is a step due for someone in its window who has no message for it yet? Characters that
# follow the same sequences share their windows (:groups); per character and window, one range
# probe of ix_subscribers_reachable_since (LIMIT 1 keeps it a probe: a join would read every
# subscriber ever), and per subscriber found, one of the messages' unique key.
_UNPLANNED_WINDOWS = sa.text("""
    SELECT DISTINCT c.character_id
    FROM unnest(CAST(:characters AS text[]), CAST(:groups AS integer[])) AS c(character_id, grp)
    JOIN unnest(CAST(:window_groups AS integer[]), CAST(:tiers AS text[]),
                CAST(:sequences AS bigint[]), CAST(:steps AS integer[]),
                CAST(:oldest AS timestamptz[]), CAST(:newest AS timestamptz[]))
         AS w(grp, tier, sequence_id, step, oldest, newest) ON w.grp = c.grp
    CROSS JOIN LATERAL (
        SELECT 1 FROM subscribers s
        WHERE s.character_id = c.character_id AND s.tier = w.tier
          AND s.opted_out_at IS NULL AND s.forgotten_at IS NULL
          AND s.subscribed_at > w.oldest AND s.subscribed_at <= w.newest
          AND NOT EXISTS (SELECT 1 FROM dm_messages m WHERE m.subscriber_id = s.id
                          AND m.sequence_id = w.sequence_id AND m.step = w.step)
        LIMIT 1) unplanned
""")


def characters_with_dm_work(conn: sa.Connection, now: dt.datetime,
                            sequences: list[Sequence]) -> list[tuple[str, str]]:
    """(character id, time zone) of each enabled character with DM work now."""
    c, ie, dm, s, ds = (schema.characters, schema.inbound_events, schema.dm_messages,
                        schema.subscribers, schema.dm_sequences)
    enabled = conn.execute(sa.select(c.c.id, c.c.timezone).where(c.c.enabled)
                           .order_by(c.c.id)).all()
    # Events stored and not applied (ix_inbound_events_unprocessed).
    busy = set(conn.scalars(sa.select(ie.c.character_id).distinct().where(
        ie.c.processed_at.is_(None), ie.c.character_id.is_not(None))))
    # Messages due or in doubt (dm_messages (state, due_at): sent and skipped ones not read).
    busy |= set(conn.scalars(
        sa.select(s.c.character_id).distinct().join(dm, dm.c.subscriber_id == s.c.id)
        .where(sa.or_(dm.c.state.in_(DOUBTFUL),
                      sa.and_(dm.c.state == "planned", dm.c.due_at <= now,
                              sa.or_(dm.c.not_before.is_(None), dm.c.not_before <= now))))))
    keys = dict(conn.execute(sa.select(ds.c.key, ds.c.id)).all())
    groups: dict[tuple[str | None, ...], int] = {}
    members: list[tuple[str, int]] = []
    windows: list[tuple[int, str, int, int, dt.datetime, dt.datetime]] = []
    for cid, _ in enabled:
        if cid in busy:
            continue
        followed = tuple(getattr(sequence_for(sequences, cid, tier), "key", None)
                         for tier in SUBSCRIBER_TIERS)
        if followed not in groups:
            groups[followed] = len(groups)
            windows += [(groups[followed], w.tier, keys.get(w.sequence.key, -1), w.step.index,
                         w.oldest, w.newest) for w in due_windows(sequences, cid, now)]
        members.append((cid, groups[followed]))
    if members and windows:
        columns = ("window_groups", "tiers", "sequences", "steps", "oldest", "newest")
        busy |= set(conn.scalars(_UNPLANNED_WINDOWS, {
            "characters": [m[0] for m in members], "groups": [m[1] for m in members],
            **{name: [w[i] for w in windows] for i, name in enumerate(columns)}}))
    return [(cid, tz) for cid, tz in enabled if cid in busy]


def poll_in_flight(instance: dg.DagsterInstance) -> bool:
    return bool(instance.get_runs(filters=dg.RunsFilter(job_name=subscriber_poll_job.name,
                                                        statuses=ACTIVE), limit=1))


@dg.sensor(
    name="dms",
    jobs=[subscriber_dms_job, subscriber_poll_job],
    minimum_interval_seconds=int(TICK.total_seconds()),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 minutes: a subscriber_dms run for each character with new events, "
    "due sequence steps or doubtful sends (DB only); with INBOUND_MODE=polling, one "
    "subscriber_poll run for every character's Fanvue and Telegram.",
)
def dm_sensor(context: dg.SensorEvaluationContext,
              database: DatabaseResource) -> dg.SensorResult:
    from waifugen_assets.subscribers.assets import sequences_path
    from waifugen_assets.subscribers.sequences import load_sequences

    now = clock.now()
    polling = (get_settings().get("INBOUND_MODE") or "polling") == "polling"
    sequences = load_sequences(sequences_path())
    with database.get_engine().connect() as conn:
        due = characters_with_dm_work(conn, now, sequences)
        poll = polling and anyone_to_poll(conn)
    tick = int(now.timestamp() // TICK.total_seconds())
    requests = [dg.RunRequest(job_name=subscriber_dms_job.name, run_key=f"dm:{cid}:{tick}",
                              partition_key=partition_key(cid, clock.local_today(tz, now)),
                              run_config=NO_POLL, tags={"waifugen/trigger": "dms"})
                for cid, tz in due]
    if poll and not poll_in_flight(context.instance):
        requests.append(dg.RunRequest(job_name=subscriber_poll_job.name,
                                      run_key=f"dm-poll:{tick}",
                                      tags={"waifugen/trigger": "dms"}))
    return dg.SensorResult(run_requests=requests)
