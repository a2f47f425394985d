"""Sensor ticks flat in history: the queries of the sensors, the schedules and the poll run
read indexes that leave finished work out (benchmarks/sensor_ticks.py measures them on three
years of history).

- `ix_reels_awaiting_post`: reels `branded` and not yet published everywhere, by slot time (the
  posting sensor; it read every reel ever published before).
- `ix_engagement_snapshots_captured_at`: the weekly_premium schedule's last 7 days of
  snapshots (its aggregate read every snapshot before; its join back to the snapshots still
  does, in planning/premium.py).
- `ix_inbound_events_telegram_update`, `ix_inbound_events_fanvue_messages`: the poll run's
  Telegram offset (a bot's newest update) and newest Fanvue fan message per character, read
  for every account each DM tick (each read every event ever stored before).

Built CONCURRENTLY, outside the migration's transaction: on a database with years of history
the build takes a while, and a plain CREATE INDEX would stop writes to the table meanwhile.
A build that is interrupted leaves an invalid index behind: drop it, then upgrade again.

Revision ID: 0009_sensor_indexes
Revises: 0008_alerts
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_sensor_indexes"
down_revision = "0008_alerts"
branch_labels = None
depends_on = None

# name, table, columns or expressions, partial-index predicate
_INDEXES: tuple[tuple[str, str, list[str | sa.TextClause], str | None], ...] = (
    ("ix_reels_awaiting_post", "reels", ["scheduled_at"], "status = 'branded'"),
    ("ix_engagement_snapshots_captured_at", "engagement_snapshots", ["captured_at"], None),
    ("ix_inbound_events_telegram_update", "inbound_events",
     [sa.text("split_part(event_id, ':', 1)"), sa.text("length(event_id)"), "event_id"],
     "platform = 'telegram'"),
    ("ix_inbound_events_fanvue_messages", "inbound_events", ["character_id", "occurred_at"],
     "platform = 'fanvue' AND event_type = 'message.received'"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns, where in _INDEXES:
            op.create_index(name, table, columns, postgresql_concurrently=True,
                            postgresql_where=sa.text(where) if where else None)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _, _ in reversed(_INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True,
                          if_exists=True)
