"""Operations (issue 14): backups and credential ages.

- `backups`: one row per archive a `waifugen backup create` writes (the app database, the
  Dagster database, the server's globals), with its sha256, size, server version, Alembic
  revision, row counts and sequence values at dump time, and the outcome of the last
  verification (a restore into a scratch database). UNIQUE(set_id, database).
- `credentials.fingerprint` (a sha256 prefix of the value in use, never the value) and
  `credentials.validated_at` (when a cheap authenticated read last accepted it).

Revision ID: 0014_operations
Revises: 0013_ledger_reports_analysts
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_operations"
down_revision = "0013_ledger_reports_analysts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("credentials", sa.Column("fingerprint", sa.Text(), nullable=True))
    op.add_column("credentials", sa.Column("validated_at", sa.DateTime(timezone=True),
                                           nullable=True))
    op.create_table(
        "backups",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("set_id", sa.Text(), nullable=False),
        sa.Column("database", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="running"),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.CHAR(64), nullable=True),
        sa.Column("server_version", sa.Text(), nullable=True),
        sa.Column("alembic_revision", sa.Text(), nullable=True),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verify_result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint("database IN ('app', 'dagster', 'globals')",
                           name=op.f("ck_backups_database")),
        sa.CheckConstraint("state IN ('running', 'done', 'failed', 'pruned')",
                           name=op.f("ck_backups_state")),
        sa.CheckConstraint("bytes >= 0", name=op.f("ck_backups_bytes_nonneg")),
        sa.CheckConstraint("sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'",
                           name=op.f("ck_backups_sha256_hex")),
        sa.CheckConstraint("state <> 'done' OR (sha256 IS NOT NULL AND finished_at IS NOT NULL)",
                           name=op.f("ck_backups_done_has_checksum")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
        sa.UniqueConstraint("set_id", "database", name=op.f("uq_backups_set_id_database")),
    )
    op.create_index(op.f("ix_backups_finished_at"), "backups", ["finished_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_backups_finished_at"), table_name="backups")
    op.drop_table("backups")
    op.drop_column("credentials", "validated_at")
    op.drop_column("credentials", "fingerprint")
