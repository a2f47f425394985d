"""What a publish resume needs (upload URL, container id, session URI) on social_posts.

Revision ID: 0003_post_remote_state
Revises: 0002_generation_tracking
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_post_remote_state"
down_revision = "0002_generation_tracking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("social_posts", sa.Column(
        "remote_state", postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text("'{}'::jsonb"), nullable=False))


def downgrade() -> None:
    op.drop_column("social_posts", "remote_state")
