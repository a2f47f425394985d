"""The day at scale: reels wait for their next attempt, and missed or stale work is recorded.

- `reels.next_attempt_at`: when the generation sensor should look at a reel again (a submit
  retried after A2E's rate limit or an outage, or a render's next status poll), with a partial
  index over unfinished reels so the sensor's tick does not grow with history.
- reel status `skipped`: not rendered because its slot passed first.
- post state `skipped`: not posted because its slot was stale when it came due.

Revision ID: 0007_day_at_scale
Revises: 0006_rate_limit_log
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_day_at_scale"
down_revision = "0006_rate_limit_log"
branch_labels = None
depends_on = None

_REELS_BEFORE = ("planned", "blocked", "generating", "generated", "stored", "branded",
                 "published", "failed")
_POSTS_BEFORE = ("planned", "initiated", "uploaded", "processing", "published",
                 "failed_retryable", "failed_permanent", "unknown", "deferred")
_UNDISCLOSED_BEFORE = ("planned", "deferred", "failed_permanent")
_UNFINISHED = ("planned", "generating", "generated", "stored")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _checks(reels: tuple[str, ...], posts: tuple[str, ...], undisclosed: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_reels_status"), "reels", type_="check")
    op.create_check_constraint(op.f("ck_reels_status"), "reels", f"status IN ({_in(reels)})")
    op.drop_constraint(op.f("ck_social_posts_state"), "social_posts", type_="check")
    op.create_check_constraint(op.f("ck_social_posts_state"), "social_posts",
                               f"state IN ({_in(posts)})")
    op.drop_constraint(op.f("ck_social_posts_disclosed_before_sending"), "social_posts",
                       type_="check")
    op.create_check_constraint(op.f("ck_social_posts_disclosed_before_sending"), "social_posts",
                               f"ai_disclosure OR state IN ({_in(undisclosed)})")


def upgrade() -> None:
    op.add_column("reels", sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                     nullable=True))
    op.create_index("ix_reels_unfinished", "reels", ["scheduled_at"],
                    postgresql_where=sa.text(f"status IN ({_in(_UNFINISHED)})"))
    _checks((*_REELS_BEFORE, "skipped"), (*_POSTS_BEFORE, "skipped"),
            (*_UNDISCLOSED_BEFORE, "skipped"))


def downgrade() -> None:
    # Skipped work goes back to where the older code can see it: reels to failed, posts to
    # failed_permanent, with their reasons kept.
    op.execute("UPDATE reels SET status = 'failed' WHERE status = 'skipped'")
    op.execute("UPDATE social_posts SET state = 'failed_permanent' WHERE state = 'skipped'")
    _checks(_REELS_BEFORE, _POSTS_BEFORE, _UNDISCLOSED_BEFORE)
    op.drop_index("ix_reels_unfinished", table_name="reels")
    op.drop_column("reels", "next_attempt_at")
