"""When comment work is due: the one definition, used by the reads (which posts to read now,
when to read each again), the comment_poll run (which characters to read) and the comments
sensor (whether to ask for a poll run, which characters get a reply run).

A post is read for comments during its reply window (7 days after publication), often while
young and rarely later: most comments come in the first hours, and every YouTube read costs a
unit. A YouTube channel is read as a whole (one listing for all its videos) at the pace of its
youngest post in its window. Reading is due for a character with a post never read yet (in its
window) or whose `next_poll_at` has come: the comment_poll run reads it. Answering is due for a
comment to answer that has no reply row yet, or a reply whose time has come (planned, deferred
until the quota reset, or a doubtful send to settle): a comment_replies run answers it. Each
is read through an index over open work only, so a tick does not grow with history (held
comments wait for a person and make no runs).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from waifugen_assets.core import schema

REPLY_WINDOW = dt.timedelta(days=7)
UNREAD_LOOKBACK = dt.timedelta(hours=6)  # the sensor's look for posts never read (see below)
_H = dt.timedelta(hours=1)
# (age below which, read every): Instagram reads cost no units; YouTube's cost one each.
TIERS: dict[str, tuple[tuple[dt.timedelta, dt.timedelta], ...]] = {
    "instagram": ((6 * _H, dt.timedelta(minutes=5)), (24 * _H, dt.timedelta(minutes=15)),
                  (72 * _H, _H), (REPLY_WINDOW, 6 * _H)),
    "youtube": ((6 * _H, dt.timedelta(minutes=15)), (24 * _H, _H), (72 * _H, 6 * _H),
                (REPLY_WINDOW, 24 * _H)),
}
COMMENT_PLATFORMS = tuple(TIERS)


def poll_interval(platform: str, age: dt.timedelta) -> dt.timedelta | None:
    """How long until a post of this age is read again; None once its window is over."""
    for below, every in TIERS[platform]:
        if age < below:
            return every
    return None


def next_poll(platform: str, published_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """When a post read `now` is read next (never after its window closes): None = done."""
    every = poll_interval(platform, now - published_at)
    if every is None:
        return None
    return min(now + every, published_at + REPLY_WINDOW)


def _window_posts(now: dt.datetime) -> sa.Select:
    """Published Instagram and YouTube posts inside their reply window
    (ix_social_posts_comment_window)."""
    sp, r = schema.social_posts, schema.reels
    return (sa.select(sp.c.id, sp.c.platform, r.c.character_id)
            .join(r, r.c.id == sp.c.reel_id)
            .where(sp.c.state == "published", sp.c.platform.in_(COMMENT_PLATFORMS),
                   sp.c.published_at > now - REPLY_WINDOW, sp.c.published_at <= now,
                   sp.c.remote_post_id.is_not(None)))


def posts_to_read(conn: sa.Connection, character_id: str,
                  now: dt.datetime) -> list[tuple[int, str]]:
    """(post id, platform) of the character's posts whose comments are due a read now: those
    never read (in their window), then those whose read time has come, oldest first (a post
    read at its window's end has its last read then, and none after). A YouTube channel is
    read as a whole when any of its posts is due (fetch.read_channel)."""
    cp, sp, r = schema.comment_polls, schema.social_posts, schema.reels
    unread = conn.execute(_window_posts(now).outerjoin(cp, cp.c.post_id == sp.c.id).where(
        r.c.character_id == character_id, cp.c.post_id.is_(None)).order_by(sp.c.id)).all()
    due = conn.execute(sa.select(cp.c.post_id, sp.c.platform)
                       .join(sp, sp.c.id == cp.c.post_id).where(
        cp.c.character_id == character_id, cp.c.next_poll_at.is_not(None),
        cp.c.next_poll_at <= now).order_by(cp.c.next_poll_at, cp.c.post_id)).all()
    return [(row.id, row.platform) for row in unread] + [(p, f) for p, f in due]


def channel_posts(conn: sa.Connection, character_id: str, now: dt.datetime,
                  platform: str = "youtube") -> list[sa.Row]:
    """The character's posts on `platform` that a channel-wide read covers now: those in
    their window never read yet, and those still polled (`next_poll_at` set: in their window,
    or past it and owed one last read). Rows: id, remote_post_id, published_at,
    last_polled_at."""
    cp, sp, r = schema.comment_polls, schema.social_posts, schema.reels
    columns = (sp.c.id, sp.c.remote_post_id, sp.c.published_at, cp.c.last_polled_at)
    unread = conn.execute(_window_posts(now).with_only_columns(*columns)
                          .outerjoin(cp, cp.c.post_id == sp.c.id)
                          .where(r.c.character_id == character_id, sp.c.platform == platform,
                                 cp.c.post_id.is_(None))).all()
    polled = conn.execute(sa.select(*columns).join(sp, sp.c.id == cp.c.post_id).where(
        cp.c.character_id == character_id, cp.c.next_poll_at.is_not(None),
        sp.c.platform == platform, sp.c.remote_post_id.is_not(None))).all()
    return sorted([*unread, *polled], key=lambda row: row.id)


def characters_to_read(conn: sa.Connection, now: dt.datetime) -> list[str]:
    """The enabled characters with a post due a comment read now: a post in its window never
    read, or one whose read time has come (the comment_poll run reads them; the sensor asks
    for that run when there is any)."""
    cp, c, sp = schema.comment_polls, schema.characters, schema.social_posts
    # Posts never read are the ones published since the last poll run (a post whose read
    # failed has its poll row, with a next read): a recent slice of the window is enough,
    # and the tick stays flat however many posts the 7-day window holds.
    unread = _window_posts(now).outerjoin(cp, cp.c.post_id == sp.c.id).where(
        cp.c.post_id.is_(None), sp.c.published_at > now - UNREAD_LOOKBACK)
    busy = {row.character_id for row in conn.execute(unread)}
    busy |= set(conn.scalars(sa.select(cp.c.character_id).distinct().where(
        cp.c.next_poll_at.is_not(None), cp.c.next_poll_at <= now)))
    if not busy:
        return []
    return list(conn.scalars(sa.select(c.c.id).where(c.c.enabled, c.c.id.in_(sorted(busy)))
                             .order_by(c.c.id)))


def characters_to_answer(conn: sa.Connection, now: dt.datetime) -> set[str]:
    """The characters a comment_replies run has answering work for now: a comment to answer
    without its reply yet, or a reply whose time has come (planned, deferred past the quota
    reset, a doubtful send to settle). Held comments make none."""
    cm, cr = schema.comments, schema.comment_replies
    busy = set(conn.scalars(sa.select(cm.c.character_id).distinct().where(
        cm.c.state == "new",
        ~sa.exists().where(cr.c.comment_id == cm.c.id))))
    busy |= set(conn.scalars(
        sa.select(cm.c.character_id).distinct().join(cr, cr.c.comment_id == cm.c.id).where(
            cr.c.state.in_(schema.OPEN_REPLY_STATES),
            sa.or_(cr.c.next_attempt_at.is_(None), cr.c.next_attempt_at <= now))))
    return busy
