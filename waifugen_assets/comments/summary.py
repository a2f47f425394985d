"""What a comment_replies run reports, read from the database: the character's held comments,
its replies of the day, and the safety audit of every reply that reached a platform (the
`reply_safety` check), plus the counts status shows. Pure SQL and Python, no Dagster."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from waifugen_assets.comments.reply_text import refusals
from waifugen_assets.core import schema

REACHED = ("sending", "sent", "unknown")  # a reply that may be on the platform


@dataclass(frozen=True)
class Unsafe:
    reply_id: int
    comment_id: int
    why: str


def day_bounds(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(), zone)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)


def held_rows(conn: sa.Connection, character_id: str, limit: int = 100) -> list[sa.Row]:
    cm = schema.comments
    return conn.execute(sa.select(cm.c.id, cm.c.platform, cm.c.classification, cm.c.reason)
                        .where(cm.c.character_id == character_id, cm.c.state == "held")
                        .order_by(cm.c.commented_at, cm.c.id).limit(limit)).all()


def sent_rows(conn: sa.Connection, character_id: str, start: dt.datetime,
              end: dt.datetime, limit: int = 100) -> list[sa.Row]:
    """Replies sent in [start, end): comment class, the reply, where the post is."""
    cm, cr, sp = schema.comments, schema.comment_replies, schema.social_posts
    return conn.execute(
        sa.select(cm.c.id, cm.c.platform, cm.c.classification, cr.c.source, cr.c.text,
                  sp.c.permalink)
        .join(cm, cm.c.id == cr.c.comment_id).join(sp, sp.c.id == cm.c.post_id)
        .where(cm.c.character_id == character_id, cr.c.state == "sent",
               cr.c.sent_at >= start, cr.c.sent_at < end)
        .order_by(cr.c.sent_at).limit(limit)).all()


def counts(conn: sa.Connection, character_id: str, start: dt.datetime,
           end: dt.datetime) -> dict[str, int]:
    """The character's comments by state now (held, new, ...), and its replies sent in
    [start, end) and all-time rows (for the row counts)."""
    cm, cr = schema.comments, schema.comment_replies
    by_state = dict(conn.execute(sa.select(cm.c.state, sa.func.count())
                                 .where(cm.c.character_id == character_id)
                                 .group_by(cm.c.state)).all())
    replies, sent_today = conn.execute(
        sa.select(sa.func.count(), sa.func.count().filter(cr.c.state == "sent",
                                                          cr.c.sent_at >= start,
                                                          cr.c.sent_at < end))
        .select_from(cr).join(cm, cm.c.id == cr.c.comment_id)
        .where(cm.c.character_id == character_id)).one()
    out = {f"comments_{s}": int(by_state.get(s, 0)) for s in schema.COMMENT_STATES}
    return {**out, "replies": int(replies), "replies_sent_today": int(sent_today)}


def unsafe_replies(conn: sa.Connection, character_id: str, since: dt.datetime) -> list[Unsafe]:
    """Replies tried since `since` that break a rule: no disclosure or refused by the gate,
    an answer to the account's own comment, or generated text answering an unsafe comment
    (only an operator's own text may answer one)."""
    cm, cr = schema.comments, schema.comment_replies
    rows = conn.execute(
        sa.select(cr.c.id, cm.c.id, cr.c.text, cr.c.source, cm.c.state, cm.c.classification)
        .join(cm, cm.c.id == cr.c.comment_id)
        .where(cm.c.character_id == character_id, cr.c.state.in_(REACHED),
               cr.c.attempted_at >= since)).all()
    found = []
    for reply_id, comment_id, text, source, state, label in rows:
        problems = refusals(text)
        if state == "own":
            problems.append("answers the account's own comment")
        if label == "unsafe" and source != "operator":
            problems.append(f"{source} text answers an unsafe comment")
        if problems:
            found.append(Unsafe(reply_id, comment_id, "; ".join(problems)))
    return found


def held_by_character(conn: sa.Connection) -> dict[str, int]:
    """Held comments per character (ix_comments_open): what `waifugen status` can show."""
    cm = schema.comments
    return dict(conn.execute(sa.select(cm.c.character_id, sa.func.count())
                             .where(cm.c.state == "held").group_by(cm.c.character_id)).all())


def sent_by_character(conn: sa.Connection, since: dt.datetime) -> dict[str, int]:
    """Replies sent since `since` per character (the partial index on attempted_at)."""
    cm, cr = schema.comments, schema.comment_replies
    return dict(conn.execute(
        sa.select(cm.c.character_id, sa.func.count()).join(cm, cm.c.id == cr.c.comment_id)
        .where(cr.c.attempted_at >= since, cr.c.state == "sent")
        .group_by(cm.c.character_id)).all())
