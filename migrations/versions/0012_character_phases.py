"""Milestones (Workflow 05): each phase change of a character, recorded once.

- `character_phases`: character, phase and the phase before, direction (up; down after the
  configured run of low days), the local day and total of the follower reading that crossed,
  the threshold, the reading per platform (JSONB array), the first local day planned in the
  new phase (`effective_on`, after the crossing), when it was recorded. UNIQUE(character_id,
  phase, direction, crossed_on): a crossing is recorded once however often the asset runs.

Revision ID: 0012_character_phases
Revises: 0011_comment_replies
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_character_phases"
down_revision = "0011_comment_replies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "character_phases",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("character_id", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("previous_phase", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("crossed_on", sa.Date(), nullable=False),
        sa.Column("followers", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint("direction IN ('up', 'down')",
                           name=op.f("ck_character_phases_direction")),
        sa.CheckConstraint("followers >= 0", name=op.f("ck_character_phases_followers_nonneg")),
        sa.CheckConstraint("threshold >= 0", name=op.f("ck_character_phases_threshold_nonneg")),
        sa.CheckConstraint("effective_on > crossed_on",
                           name=op.f("ck_character_phases_effective_after_crossing")),
        sa.CheckConstraint("jsonb_typeof(snapshot) = 'array'",
                           name=op.f("ck_character_phases_snapshot_array")),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"],
                                name=op.f("fk_character_phases_character_id_characters"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_character_phases")),
        sa.UniqueConstraint(
            "character_id", "phase", "direction", "crossed_on",
            name=op.f("uq_character_phases_character_id_phase_direction_crossed_on")),
    )


def downgrade() -> None:
    op.drop_table("character_phases")
