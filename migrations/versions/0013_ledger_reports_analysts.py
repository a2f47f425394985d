"""Credit ledger, the daily report and the analysts' role (issue 13).

- `credit_ledger`: kind `top_up` (credits bought, detected from a balance rise) and
  `in_flight_credits` on balance snapshots (credits taken for tasks not costed yet when the
  balance was read), which the reconciliation check needs.
- `report_messages`: the daily Telegram report's photo and message, one row each per day
  (the intent, written before the call; `unknown` is settled by asking Telegram).
- `alerts.remote_message_id`: the chat's id of each alert sent, so that settling an unknown
  report message never touches an alert.
- The role `waifugen_analyst` (NOLOGIN: analysts log in as their own roles granted it,
  docs/analytics.md) with USAGE on the `analytics` schema, where dbt builds the marts, and
  SELECT on what is there and what dbt creates later (dbt's `grants` config does the same on
  every build, whatever schema it is pointed at). Nothing in `public` is granted: no
  subscribers, tokens, credentials or inbound events. Roles belong to the whole server, so
  the role is created only if missing and the downgrade revokes what this database granted
  and drops the role only when no other database still uses it.

Revision ID: 0013_ledger_reports_analysts
Revises: 0012_character_phases
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_ledger_reports_analysts"
down_revision = "0012_character_phases"
branch_labels = None
depends_on = None

ROLE = "waifugen_analyst"
SCHEMA = "analytics"
OLD_KINDS = "kind IN ('task_cost', 'balance_snapshot', 'adjustment')"
NEW_KINDS = "kind IN ('task_cost', 'balance_snapshot', 'adjustment', 'top_up')"


def upgrade() -> None:
    op.add_column("credit_ledger", sa.Column("in_flight_credits", sa.BigInteger(),
                                             nullable=True))
    op.create_check_constraint(op.f("ck_credit_ledger_in_flight_credits_nonneg"),
                               "credit_ledger", "in_flight_credits >= 0")
    op.drop_constraint(op.f("ck_credit_ledger_kind"), "credit_ledger", type_="check")
    op.create_check_constraint(op.f("ck_credit_ledger_kind"), "credit_ledger", NEW_KINDS)

    op.add_column("alerts", sa.Column("remote_message_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "report_messages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="planned"),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("remote_message_id", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("part IN ('photo', 'text')", name=op.f("ck_report_messages_part")),
        sa.CheckConstraint("state IN ('planned', 'sending', 'sent', 'unknown', 'failed')",
                           name=op.f("ck_report_messages_state")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_report_messages_attempts_nonneg")),
        sa.CheckConstraint("state <> 'sent' OR sent_at IS NOT NULL",
                           name=op.f("ck_report_messages_sent_has_time")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_messages")),
        sa.UniqueConstraint("report_date", "part",
                            name=op.f("uq_report_messages_report_date_part")),
    )

    # CREATE ROLE has no IF NOT EXISTS, and two databases on one server may migrate at once.
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$""")
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT SELECT ON TABLES TO {ROLE}")


def downgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} REVOKE SELECT ON TABLES FROM {ROLE}")  # noqa: S608
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM {ROLE}")
    op.execute(f"""
        DO $$
        BEGIN
            DROP ROLE IF EXISTS {ROLE};
        EXCEPTION WHEN dependent_objects_still_exist THEN NULL;  -- another database uses it
        END $$""")
    op.drop_table("report_messages")
    op.drop_column("alerts", "remote_message_id")
    # Kept as adjustments (the money stays explained), not deleted.
    op.execute("UPDATE credit_ledger SET kind = 'adjustment', note = 'top-up: ' || "
               "coalesce(note, 'detected from a balance rise') WHERE kind = 'top_up'")
    op.drop_constraint(op.f("ck_credit_ledger_kind"), "credit_ledger", type_="check")
    op.create_check_constraint(op.f("ck_credit_ledger_kind"), "credit_ledger", OLD_KINDS)
    op.drop_constraint(op.f("ck_credit_ledger_in_flight_credits_nonneg"), "credit_ledger",
                       type_="check")
    op.drop_column("credit_ledger", "in_flight_credits")
