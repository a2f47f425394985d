"""Engagement read-back: snapshot ages on each post, the daily roll-up, Instagram reach.

- `social_posts.metrics_checkpoint` (snapshot ages taken) and `metrics_next_at` (when the next
  is due; NULL: none left) with a partial index over posts that still have one, so the hourly
  schedule's "what is due" does not grow with history. Posts published in the last 30 days get
  their first reading due now.
- `engagement_daily`: what each character's posts gained per day and platform, rolled up from
  the snapshots; the weekly_premium schedule reads a week of it instead of the snapshots.
- `engagement_snapshots.reach` (Instagram), `follower_snapshots.captured_at` (the day's last
  good read) and an index on `follower_snapshots.captured_on` (the schedule's "today").

Revision ID: 0010_engagement
Revises: 0009_sensor_indexes
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_engagement"
down_revision = "0009_sensor_indexes"
branch_labels = None
depends_on = None

_PLATFORMS = "'tiktok', 'instagram', 'youtube'"


def upgrade() -> None:
    op.add_column("social_posts", sa.Column("metrics_checkpoint", sa.SmallInteger(),
                                            nullable=False, server_default=sa.text("0")))
    op.add_column("social_posts", sa.Column("metrics_next_at", sa.DateTime(timezone=True)))
    op.execute("""
        UPDATE social_posts SET metrics_next_at = published_at + interval '1 hour'
        WHERE state = 'published' AND published_at > now() - interval '30 days'""")
    op.create_index("ix_social_posts_metrics_due", "social_posts", ["metrics_next_at"],
                    postgresql_where=sa.text("metrics_next_at IS NOT NULL"))
    op.add_column("engagement_snapshots", sa.Column("reach", sa.BigInteger()))
    op.create_check_constraint(op.f("ck_engagement_snapshots_reach_nonneg"),
                               "engagement_snapshots", "reach >= 0")
    op.add_column("follower_snapshots", sa.Column("captured_at", sa.DateTime(timezone=True)))
    op.create_index(op.f("ix_follower_snapshots_captured_on"), "follower_snapshots",
                    ["captured_on"])
    counters = ("posts_read", "views", "likes", "comments", "shares", "saves")
    op.create_table(
        "engagement_daily",
        sa.Column("character_id", sa.Text(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("posts_read", sa.Integer(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in counters[1:]),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"], ondelete="RESTRICT",
                                name=op.f("fk_engagement_daily_character_id_characters")),
        sa.PrimaryKeyConstraint("character_id", "date", "platform",
                                name=op.f("pk_engagement_daily")),
        sa.CheckConstraint(f"platform IN ({_PLATFORMS})",
                           name=op.f("ck_engagement_daily_platform")),
        *(sa.CheckConstraint(f"{c} >= 0", name=op.f(f"ck_engagement_daily_{c}_nonneg"))
          for c in counters),
    )
    op.create_index(op.f("ix_engagement_daily_date"), "engagement_daily", ["date"])


def downgrade() -> None:
    op.drop_table("engagement_daily")
    op.drop_index(op.f("ix_follower_snapshots_captured_on"), table_name="follower_snapshots")
    op.drop_column("follower_snapshots", "captured_at")
    op.drop_column("engagement_snapshots", "reach")
    op.drop_index("ix_social_posts_metrics_due", table_name="social_posts")
    op.drop_column("social_posts", "metrics_next_at")
    op.drop_column("social_posts", "metrics_checkpoint")
