"""Inbound events keep what apply and forget need; subscribers keep imported spend.

inbound_events: external_id (the subscriber's platform id, so an event not applied yet can be
anonymised), occurred_at, data (normalized fields), error (why an event was rejected), a CHECK
on the normalized event types and lookup indexes. subscribers: lifetime spend reported by a
CSV export, as an aggregate.

Revision ID: 0004_subscribers_inbound
Revises: 0003_post_remote_state
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_subscribers_inbound"
down_revision = "0003_post_remote_state"
branch_labels = None
depends_on = None

EVENT_TYPES = (
    "subscriber.new", "subscriber.renewal", "subscriber.cancelled", "subscriber.blocked",
    "message.received", "revenue.tip", "revenue.purchase",
)


def upgrade() -> None:
    op.add_column("inbound_events", sa.Column("external_id", sa.Text(), nullable=True))
    op.add_column("inbound_events", sa.Column("occurred_at", sa.DateTime(timezone=True),
                                              nullable=True))
    op.add_column("inbound_events", sa.Column(
        "data", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("inbound_events", sa.Column("error", sa.Text(), nullable=True))
    op.create_index(op.f("ix_inbound_events_platform_external_id"), "inbound_events",
                    ["platform", "external_id"])
    op.create_index(op.f("ix_inbound_events_subscriber_id"), "inbound_events",
                    ["subscriber_id"])
    listed = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    op.create_check_constraint(op.f("ck_inbound_events_event_type"), "inbound_events",
                               f"event_type IN ({listed})")

    op.add_column("subscribers", sa.Column("imported_spend_cents", sa.BigInteger(),
                                           nullable=True))
    op.add_column("subscribers", sa.Column("imported_spend_currency", sa.CHAR(3),
                                           nullable=True))
    op.create_check_constraint(op.f("ck_subscribers_imported_spend_cents_nonneg"),
                               "subscribers", "imported_spend_cents >= 0")
    op.create_check_constraint(op.f("ck_subscribers_imported_spend_currency_iso4217"),
                               "subscribers", "imported_spend_currency ~ '^[A-Z]{3}$'")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_subscribers_imported_spend_currency_iso4217"), "subscribers",
                       type_="check")
    op.drop_constraint(op.f("ck_subscribers_imported_spend_cents_nonneg"), "subscribers",
                       type_="check")
    op.drop_column("subscribers", "imported_spend_currency")
    op.drop_column("subscribers", "imported_spend_cents")

    op.drop_constraint(op.f("ck_inbound_events_event_type"), "inbound_events", type_="check")
    op.drop_index(op.f("ix_inbound_events_subscriber_id"), table_name="inbound_events")
    op.drop_index(op.f("ix_inbound_events_platform_external_id"), table_name="inbound_events")
    op.drop_column("inbound_events", "error")
    op.drop_column("inbound_events", "data")
    op.drop_column("inbound_events", "occurred_at")
    op.drop_column("inbound_events", "external_id")
