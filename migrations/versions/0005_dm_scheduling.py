"""DM scheduling: a message's earliest retry time, and the index the due-step selection uses.

Revision ID: 0005_dm_scheduling
Revises: 0004_subscribers_inbound
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_dm_scheduling"
down_revision = "0004_subscribers_inbound"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dm_messages", sa.Column("not_before", sa.DateTime(timezone=True),
                                           nullable=True))
    op.create_index("ix_subscribers_reachable_since", "subscribers",
                    ["character_id", "tier", "subscribed_at"],
                    postgresql_where=sa.text("opted_out_at IS NULL AND forgotten_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_subscribers_reachable_since", table_name="subscribers")
    op.drop_column("dm_messages", "not_before")
