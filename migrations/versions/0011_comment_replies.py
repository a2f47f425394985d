"""Comment replies: a comment's class and decision, its one reply's delivery, the account's
switch-on time and each post's polling.

- `comments`: `character_id` (from the post's reel), `author_id`, `classification`
  (question, compliment, neutral, spam, hostile, unsafe), `state` (new, answered, held,
  skipped, own), `reason`, `updated_at`; the partial index `ix_comments_open` over comments
  still to answer or held for review.
- `comment_replies`: states `sending` (committed before the call) and `deferred` (YouTube's
  units spent) beside planned / sent / unknown / failed / held; `source` (llm, template,
  operator), `attempts`, `attempted_at` (what the caps count), `next_attempt_at`,
  `updated_at`; a sent reply has its time; `ix_comment_replies_open` over replies with work.
- `comment_accounts`: when automatic replies were switched on per account (comments from
  before are never answered).
- `comment_polls`: per post, when its comments were read and are read next (NULL once its
  reply window is over), with `ix_comment_polls_due` over posts still polled.
- `ix_social_posts_comment_window`: published Instagram and YouTube posts by publication time
  (the comments sensor's "new post in its reply window, not polled yet").

Revision ID: 0011_comment_replies
Revises: 0010_engagement
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_comment_replies"
down_revision = "0010_engagement"
branch_labels = None
depends_on = None

_CLASSES = "'question', 'compliment', 'neutral', 'spam', 'hostile', 'unsafe'"
_COMMENT_STATES = "'new', 'answered', 'held', 'skipped', 'own'"
_OLD_REPLY_STATES = "'planned', 'sent', 'failed', 'unknown', 'held'"
_REPLY_STATES = "'planned', 'sending', 'sent', 'unknown', 'failed', 'deferred', 'held'"
_OPEN = "state IN ('planned', 'sending', 'unknown', 'deferred')"


def _ts(name: str, nullable: bool = True, now: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if now else None)


def upgrade() -> None:
    # comments
    op.add_column("comments", sa.Column("character_id", sa.Text()))
    op.execute("""
        UPDATE comments c SET character_id = r.character_id
        FROM social_posts p JOIN reels r ON r.id = p.reel_id WHERE p.id = c.post_id""")
    op.alter_column("comments", "character_id", nullable=False)
    op.create_foreign_key(op.f("fk_comments_character_id_characters"), "comments",
                          "characters", ["character_id"], ["id"], ondelete="RESTRICT")
    op.add_column("comments", sa.Column("author_id", sa.Text()))
    op.add_column("comments", sa.Column("classification", sa.Text()))
    op.add_column("comments", sa.Column("state", sa.Text(), nullable=False,
                                        server_default="new"))
    op.add_column("comments", sa.Column("reason", sa.Text()))
    op.add_column("comments", _ts("updated_at", nullable=False, now=True))
    # Comments stored before this revision were never classified: held for review.
    op.execute("UPDATE comments SET classification = 'neutral', state = 'held', "
               "reason = 'stored before classification existed' WHERE classification IS NULL")
    op.create_check_constraint(op.f("ck_comments_classification"), "comments",
                               f"classification IN ({_CLASSES})")
    op.create_check_constraint(op.f("ck_comments_state"), "comments",
                               f"state IN ({_COMMENT_STATES})")
    op.create_check_constraint(op.f("ck_comments_classified"), "comments",
                               "state = 'own' OR classification IS NOT NULL")
    op.create_index("ix_comments_open", "comments", ["character_id", "state"],
                    postgresql_where=sa.text("state IN ('new', 'held')"))

    # comment_replies
    op.drop_constraint(op.f("ck_comment_replies_state"), "comment_replies", type_="check")
    op.create_check_constraint(op.f("ck_comment_replies_state"), "comment_replies",
                               f"state IN ({_REPLY_STATES})")
    op.add_column("comment_replies", sa.Column("source", sa.Text(), nullable=False,
                                               server_default="template"))
    op.create_check_constraint(op.f("ck_comment_replies_source"), "comment_replies",
                               "source IN ('llm', 'template', 'operator')")
    op.add_column("comment_replies", sa.Column("attempts", sa.Integer(), nullable=False,
                                               server_default=sa.text("0")))
    op.create_check_constraint(op.f("ck_comment_replies_attempts_nonneg"), "comment_replies",
                               "attempts >= 0")
    op.add_column("comment_replies", _ts("attempted_at"))
    op.add_column("comment_replies", _ts("next_attempt_at"))
    op.add_column("comment_replies", _ts("updated_at", nullable=False, now=True))
    op.execute("UPDATE comment_replies SET sent_at = coalesce(sent_at, created_at) "
               "WHERE state = 'sent'")
    op.create_check_constraint(op.f("ck_comment_replies_sent_has_time"), "comment_replies",
                               "state <> 'sent' OR sent_at IS NOT NULL")
    op.create_index("ix_comment_replies_open", "comment_replies", ["next_attempt_at"],
                    postgresql_where=sa.text(_OPEN))
    op.create_index(op.f("ix_comment_replies_attempted_at"), "comment_replies",
                    ["attempted_at"], postgresql_where=sa.text("attempted_at IS NOT NULL"))

    op.create_table(
        "comment_accounts",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        _ts("switched_on_at", nullable=False),
        _ts("created_at", nullable=False, now=True),
        sa.ForeignKeyConstraint(["account_id"], ["platform_accounts.id"], ondelete="RESTRICT",
                                name=op.f("fk_comment_accounts_account_id_platform_accounts")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_comment_accounts")),
    )
    op.create_table(
        "comment_polls",
        sa.Column("post_id", sa.BigInteger(), nullable=False),
        sa.Column("character_id", sa.Text(), nullable=False),
        _ts("last_polled_at"),
        _ts("next_poll_at"),
        sa.Column("error", sa.Text()),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        sa.ForeignKeyConstraint(["post_id"], ["social_posts.id"], ondelete="RESTRICT",
                                name=op.f("fk_comment_polls_post_id_social_posts")),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"], ondelete="RESTRICT",
                                name=op.f("fk_comment_polls_character_id_characters")),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_comment_polls")),
    )
    op.create_index("ix_comment_polls_due", "comment_polls", ["next_poll_at"],
                    postgresql_where=sa.text("next_poll_at IS NOT NULL"))
    op.create_index("ix_social_posts_comment_window", "social_posts", ["published_at"],
                    postgresql_where=sa.text(
                        "state = 'published' AND platform IN ('instagram', 'youtube')"))


def downgrade() -> None:
    op.drop_index("ix_social_posts_comment_window", table_name="social_posts")
    op.drop_table("comment_polls")
    op.drop_table("comment_accounts")

    op.drop_index(op.f("ix_comment_replies_attempted_at"), table_name="comment_replies")
    op.drop_index("ix_comment_replies_open", table_name="comment_replies")
    for name in ("sent_has_time", "attempts_nonneg", "source"):
        op.drop_constraint(op.f(f"ck_comment_replies_{name}"), "comment_replies", type_="check")
    for column in ("updated_at", "next_attempt_at", "attempted_at", "attempts", "source"):
        op.drop_column("comment_replies", column)
    # The states the old CHECK does not know fold into the nearest old one.
    op.execute("UPDATE comment_replies SET state = CASE state WHEN 'sending' THEN 'unknown' "
               "WHEN 'deferred' THEN 'planned' ELSE state END")
    op.drop_constraint(op.f("ck_comment_replies_state"), "comment_replies", type_="check")
    op.create_check_constraint(op.f("ck_comment_replies_state"), "comment_replies",
                               f"state IN ({_OLD_REPLY_STATES})")

    op.drop_index("ix_comments_open", table_name="comments")
    for name in ("classified", "state", "classification"):
        op.drop_constraint(op.f(f"ck_comments_{name}"), "comments", type_="check")
    op.drop_constraint(op.f("fk_comments_character_id_characters"), "comments",
                       type_="foreignkey")
    for column in ("updated_at", "reason", "state", "classification", "author_id",
                   "character_id"):
        op.drop_column("comments", column)
