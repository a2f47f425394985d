"""One alert sender: every operator alert is a row keyed once, sent once.

- `alerts`: key (unique), text, created_at, sent_at. Budget alerts are keyed `budget:<id>`.
- `budget_alerts.sent_at` moves there (an unsent budget alert becomes an unsent `alerts` row).

Revision ID: 0008_alerts
Revises: 0007_day_at_scale
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_alerts"
down_revision = "0007_day_at_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_alerts_key")),
    )
    op.execute("""
        INSERT INTO alerts (key, text, created_at, sent_at)
        SELECT 'budget:' || id,
               'waifugen budget alert: ' || coalesce(character_id, 'whole roster') || ' reached '
               || threshold || '% of its ' || upper(provider) || ' credits for '
               || to_char(period_start, 'YYYY-MM') || '.',
               created_at, sent_at
        FROM budget_alerts""")
    op.drop_column("budget_alerts", "sent_at")


def downgrade() -> None:
    op.add_column("budget_alerts", sa.Column("sent_at", sa.DateTime(timezone=True)))
    op.execute("""
        UPDATE budget_alerts b SET sent_at = a.sent_at
        FROM alerts a WHERE a.key = 'budget:' || b.id""")
    op.drop_table("alerts")
