"""Rate limits as a sliding-window log shared by every process (resources/quota_store.py).

The PostgreSQL rate-limit store counted in fixed windows in `quota_usage`, which lets up to
twice a limit through around a window edge; platforms count in sliding windows and answered
429. Each acquisition is now a row of `rate_limit_log`, kept while inside its window.
`quota_usage` stays for fixed-window counters (YouTube units per Pacific day). What the store
took in windows that are still open moves to the log as taken at the window's start, so
nothing is forgotten (a daily cap stays spent) and each such row leaves the log no later than
its old window closed.

Revision ID: 0006_rate_limit_log
Revises: 0005_dm_scheduling
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from waifugen_assets.core.schema import QUOTA_SERVICES

revision = "0006_rate_limit_log"
down_revision = "0005_dm_scheduling"
branch_labels = None
depends_on = None

# The store's window kinds and their seconds. YouTube's ledger (platform youtube) is not the
# store's and stays in quota_usage.
_KINDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def upgrade() -> None:
    services = ", ".join(f"'{s}'" for s in QUOTA_SERVICES)
    op.create_table(
        "rate_limit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("account_key", sa.Text(), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"platform IN ({services})", name=op.f("ck_rate_limit_log_platform")),
        sa.CheckConstraint("units > 0", name=op.f("ck_rate_limit_log_units_positive")),
        sa.CheckConstraint("window_seconds > 0",
                           name=op.f("ck_rate_limit_log_window_seconds_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_log")),
    )
    op.create_index("ix_rate_limit_log_key", "rate_limit_log",
                    ["platform", "account_key", "window_seconds", "taken_at"])
    for kind, seconds in _KINDS.items():
        op.execute(sa.text("""
            INSERT INTO rate_limit_log (platform, account_key, window_seconds, taken_at, units)
            SELECT platform, account_key, :seconds, window_start, units FROM quota_usage
            WHERE platform <> 'youtube' AND window_kind = :kind AND units > 0
              AND window_start > now() - make_interval(secs => :seconds)
        """).bindparams(kind=kind, seconds=seconds))
    op.execute(sa.text("DELETE FROM quota_usage WHERE platform <> 'youtube'"))


def downgrade() -> None:
    op.drop_index("ix_rate_limit_log_key", table_name="rate_limit_log")
    op.drop_table("rate_limit_log")
