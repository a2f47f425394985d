"""Generation tracking on reels: result URL, paid attempts, submission time.

Revision ID: 0002_generation_tracking
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_generation_tracking"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reels", sa.Column("generation_result_url", sa.Text(), nullable=True))
    op.add_column("reels", sa.Column("generation_attempts", sa.Integer(),
                                     server_default=sa.text("0"), nullable=False))
    op.add_column("reels", sa.Column("generation_submitted_at", sa.DateTime(timezone=True),
                                     nullable=True))
    op.create_check_constraint(op.f("ck_reels_generation_attempts_nonneg"), "reels",
                               "generation_attempts >= 0")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_reels_generation_attempts_nonneg"), "reels", type_="check")
    op.drop_column("reels", "generation_submitted_at")
    op.drop_column("reels", "generation_attempts")
    op.drop_column("reels", "generation_result_url")
