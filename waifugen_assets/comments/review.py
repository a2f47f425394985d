"""The review queue: comments held for a person (unsafe, doubtful, or a reply whose fate the
platform would not tell), and what an operator decides (`waifugen comments review`).

- approve: the comment gets its reply after all. With a text, the operator's (through the
  same gate, the disclosure added); without one, a reply held with its text keeps it, and a
  doubtful comment gets its class's template. An unsafe comment is never answered with text
  nobody wrote for it: it needs a text. The reply becomes `planned`; the next run sends it
  (the comments sensor sees it), within the caps, exactly once like any other.
- skip: the comment is never answered; a held reply row is closed as `failed` (kept: it may
  record sends whose answer was lost).

Row locks (SELECT ... FOR UPDATE) make two operators' decisions on one comment take turns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.comments.reply_text import operator_reply, template_reply
from waifugen_assets.core import schema

APPROVED = "approved by an operator"
SKIPPED = "skipped by an operator"


class ReviewError(ValueError):
    """An operator's decision that cannot be applied; the message says why, in one line."""


@dataclass(frozen=True)
class HeldComment:
    id: int
    character_id: str
    platform: str
    classification: str | None
    reason: str | None
    text: str | None
    author: str | None
    commented_at: dt.datetime | None
    draft: str | None  # the reply held with the comment, if any
    permalink: str | None


def held(engine: sa.Engine, character_id: str | None = None) -> list[HeldComment]:
    """Held comments, oldest first (ix_comments_open)."""
    cm, cr, sp = schema.comments, schema.comment_replies, schema.social_posts
    query = (sa.select(cm.c.id, cm.c.character_id, cm.c.platform, cm.c.classification,
                       cm.c.reason, cm.c.text, cm.c.author_handle, cm.c.commented_at,
                       cr.c.text.label("draft"), sp.c.permalink)
             .outerjoin(cr, cr.c.comment_id == cm.c.id).join(sp, sp.c.id == cm.c.post_id)
             .where(cm.c.state == "held").order_by(cm.c.commented_at, cm.c.id))
    if character_id:
        query = query.where(cm.c.character_id == character_id)
    with engine.connect() as conn:
        return [HeldComment(*row) for row in conn.execute(query)]


def _locked(conn: sa.Connection, comment_id: int) -> tuple[sa.Row, sa.Row | None]:
    cm, cr = schema.comments, schema.comment_replies
    comment = conn.execute(sa.select(cm.c.state, cm.c.classification, cm.c.reason)
                           .where(cm.c.id == comment_id).with_for_update()).one_or_none()
    if comment is None:
        raise ReviewError(f"there is no comment {comment_id}")
    reply = conn.execute(sa.select(cr.c.id, cr.c.state, cr.c.text, cr.c.source)
                         .where(cr.c.comment_id == comment_id).with_for_update()).one_or_none()
    if comment.state != "held":
        raise ReviewError(f"comment {comment_id} is {comment.state}, not held: there is "
                          "nothing to decide")
    if reply is not None and reply.state != "held":
        raise ReviewError(f"comment {comment_id} already has a reply ({reply.state})")
    return comment, reply


def approve(engine: sa.Engine, comment_id: int, text: str | None = None) -> str:
    """Let a held comment be answered; returns the reply text that will be sent."""
    cm, cr = schema.comments, schema.comment_replies
    with engine.begin() as conn:
        comment, reply = _locked(conn, comment_id)
        if text is not None:
            try:
                body, source = operator_reply(text), "operator"
            except ValueError as exc:
                raise ReviewError(f"comment {comment_id}: {exc}") from None
        elif reply is not None:
            body, source = reply.text, reply.source
        elif comment.classification == "unsafe":
            raise ReviewError(f"comment {comment_id} is unsafe ({comment.reason}): approve it "
                              "with --text, the reply an operator wrote for it")
        else:
            body, source = template_reply(comment.classification or "neutral"), "template"
        values = {"text": body, "source": source, "state": "planned", "next_attempt_at": None,
                  "error": APPROVED, "updated_at": sa.func.now()}
        conn.execute(insert(cr).values(comment_id=comment_id, **values)
                     .on_conflict_do_update(index_elements=[cr.c.comment_id], set_=values))
        conn.execute(sa.update(cm).where(cm.c.id == comment_id).values(
            state="new", reason=APPROVED, updated_at=sa.func.now()))
    return body


def skip(engine: sa.Engine, comment_id: int) -> None:
    """Never answer a held comment."""
    cm, cr = schema.comments, schema.comment_replies
    with engine.begin() as conn:
        _, reply = _locked(conn, comment_id)
        if reply is not None:
            conn.execute(sa.update(cr).where(cr.c.id == reply.id).values(
                state="failed", error=SKIPPED, next_attempt_at=None,
                updated_at=sa.func.now()))
        conn.execute(sa.update(cm).where(cm.c.id == comment_id).values(
            state="skipped", reason=SKIPPED, updated_at=sa.func.now()))
