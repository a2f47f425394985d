"""Reply caps: at most N replies per post per hour and M per account per day, counted in the
same transaction that commits a reply's `sending` state.

The count is of our own rows (replies attempted in the window: `attempted_at`), under a
transaction-scoped advisory lock per account, so two processes replying for one account queue
for the count and can never together pass a cap. A reply over a cap stays planned with
`next_attempt_at` = when the oldest reply in the full window leaves it. Caps are ours (a
public reply storm looks like spam to the platforms and to people); the platforms' own limits
(Instagram's hourly writes, YouTube's units) are answered where they bite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from waifugen_assets.core import schema

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
# Past this, a doubtful send is settled by listing the comment's replies (an answer can be
# late; a send whose process is still alive holds its claim anyway).
RECONCILE_AFTER = dt.timedelta(minutes=2)
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class Caps:
    per_post_hour: int = 10
    per_account_day: int = 50
    # A comment older than this when its turn comes is not answered any more (a reply days
    # late, after a backlog or a long outage, reads as a bot).
    answer_within: dt.timedelta = dt.timedelta(days=3)


@dataclass(frozen=True)
class Slot:
    """The outcome of asking for a send slot: taken (the reply is now `sending`) or the time
    the cap frees up and which cap it was."""

    taken: bool
    retry_at: dt.datetime | None = None
    cap: str = ""


def _oldest(conn: sa.Connection, where: sa.ColumnElement[bool], since: dt.datetime,
            limit: int) -> tuple[int, dt.datetime | None]:
    cr, cm = schema.comment_replies, schema.comments
    rows = conn.execute(sa.select(cr.c.attempted_at).join(cm, cm.c.id == cr.c.comment_id)
                        .where(where, cr.c.attempted_at > since,
                               cr.c.state.in_(("sending", "sent", "unknown")))
                        .order_by(cr.c.attempted_at.desc()).limit(limit)).scalars().all()
    return len(rows), (rows[-1] if rows else None)


def take_slot(engine: sa.Engine, reply_id: int, post_id: int, character_id: str,
              platform: str, caps: Caps, now: dt.datetime) -> Slot:
    """Count the caps and, if there is room, commit the reply as `sending` (the intent, with
    its frozen text, before the call), one more attempt at `now`."""
    cr, cm = schema.comment_replies, schema.comments
    with engine.begin() as conn:
        conn.execute(_LOCK, {"key": f"comment-replies:{character_id}:{platform}"})
        for where, period, limit, name in (
                (cm.c.post_id == post_id, HOUR, caps.per_post_hour,
                 f"{caps.per_post_hour} replies per post per hour"),
                (sa.and_(cm.c.character_id == character_id, cm.c.platform == platform), DAY,
                 caps.per_account_day, f"{caps.per_account_day} replies per account per day")):
            count, oldest = _oldest(conn, where, now - period, limit)
            if count >= limit:
                return Slot(False, (oldest or now) + period, name)
        conn.execute(sa.update(cr).where(cr.c.id == reply_id).values(
            state="sending", attempts=cr.c.attempts + 1, attempted_at=now,
            next_attempt_at=now + RECONCILE_AFTER, error=None, updated_at=sa.func.now()))
    return Slot(True)
