"""Reading comments: each due post's new top-level comments stored once, classified as they are
stored, and the post's next read scheduled (comments/due.py).

Instagram is read per post (`GET /{media}/comments`: no units, paged in full). YouTube is read
per channel: one `commentThreads.list?allThreadsRelatedToChannelId=` listing, newest first, for
every video of the channel (1 unit a page of 100, whatever the number of videos), paged back to
the channel's last read (minus an hour), when any of its posts is due; its posts are then read
again together at the pace of the youngest one in its window (`read_channel`).

What is stored: comments by others from after the account's switch-on, with their class and
state (new: to answer; held: unsafe or doubtful; skipped: spam or hostile), and the account's
own comments (state own: never answered). Comments from before the switch-on are not stored at
all (never answered, and nothing of the commenter kept), nor comments written after their
post's reply window closed. Replies under comments are not stored: a reply is only ever
written to a top-level comment (Instagram allows nothing else), and the replies are listed
only to settle a doubtful send. Reading sends nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.social_comments import RemoteComment
from waifugen_assets.comments.classify import classify
from waifugen_assets.comments.due import (
    REPLY_WINDOW,
    channel_posts,
    next_poll,
    poll_interval,
    posts_to_read,
)
from waifugen_assets.comments.sources import CommentSource
from waifugen_assets.core import schema
from waifugen_assets.core.config import ConfigError

log = logging.getLogger(__name__)

MAX_PAGES = 20  # per Instagram post and read: 1,000 comments
CHANNEL_PAGES = 50  # per YouTube channel and read: 5,000 threads (50 units)
OVERLAP = dt.timedelta(hours=1)  # newest-first paging stops this far before the last read
NOT_IN_WINDOW = "not on a post in its reply window"


@dataclass
class FetchStats:
    posts_read: int = 0
    fetched: int = 0
    stored: int = 0
    states: Counter[str] = field(default_factory=Counter)  # new, held, skipped, own
    classes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # not stored: why
    failed: dict[str, str] = field(default_factory=dict)  # "<platform> post 12" -> why
    accounts: set[str] = field(default_factory=set)  # platforms read (at least one post)
    pages: Counter[str] = field(default_factory=Counter)  # listing pages by platform

    def add(self, other: FetchStats, prefix: str) -> None:
        """Count `other` (one character's reads) in these totals; its failures and accounts
        named with `prefix` (the character)."""
        self.posts_read += other.posts_read
        self.fetched += other.fetched
        self.stored += other.stored
        self.states.update(other.states)
        self.classes.update(other.classes)
        self.skipped.update(other.skipped)
        self.pages.update(other.pages)
        self.failed.update({f"{prefix} {k}": why for k, why in other.failed.items()})
        self.accounts |= {f"{prefix} {platform}" for platform in other.accounts}


def switch_on(engine: sa.Engine, account_id: int, now: dt.datetime) -> dt.datetime:
    """When automatic replies were switched on for the account: `now` the first time, to the
    second (the platforms time comments to the second)."""
    ca = schema.comment_accounts
    stmt = insert(ca).values(account_id=account_id, switched_on_at=now.replace(microsecond=0))
    with engine.begin() as conn:  # the earliest time wins: a later run never moves it on
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[ca.c.account_id],
            set_={"switched_on_at": sa.func.least(ca.c.switched_on_at,
                                                  stmt.excluded.switched_on_at)},
            where=stmt.excluded.switched_on_at < ca.c.switched_on_at))
        return conn.scalar(sa.select(ca.c.switched_on_at).where(ca.c.account_id == account_id))


def switch_on_character(engine: sa.Engine, character_id: str, at: dt.datetime) -> int:
    """Switch automatic replies on for the character's Instagram and YouTube accounts at `at`
    (or keep an earlier time): e.g. `waifugen run` before it publishes, so comments on the
    day's posts are answered. Returns how many accounts."""
    pa = schema.platform_accounts
    with engine.connect() as conn:
        ids = conn.execute(sa.select(pa.c.id).where(
            pa.c.character_id == character_id, pa.c.platform.in_(("instagram", "youtube")),
            pa.c.status != "disabled")).scalars().all()
    for account_id in ids:
        switch_on(engine, account_id, at)
    return len(ids)


def _decide(comment: RemoteComment, own_id: str) -> dict[str, object]:
    if comment.author_id == own_id:
        return {"state": "own", "classification": None, "reason": "the account's own comment"}
    found = classify(comment.text)
    state = "held" if found.hold else "skipped" if found.skip else "new"
    return {"state": state, "classification": found.label, "reason": found.reason or None}


def store_comments(engine: sa.Engine, character_id: str, post_id: int, platform: str,
                   comments: list[RemoteComment], own_id: str, switched_on: dt.datetime,
                   stats: FetchStats) -> None:
    """Insert what is new (by the platform's comment id; a comment seen again is left as
    it is) with its class and state."""
    cm = schema.comments
    rows = []
    for comment in comments:
        if comment.parent_id is not None:
            continue
        stats.fetched += 1
        if comment.published_at is None or comment.published_at < switched_on:
            stats.skipped["before replies were switched on"] += 1
            continue
        rows.append({"post_id": post_id, "character_id": character_id, "platform": platform,
                     "remote_comment_id": comment.id, "author_id": comment.author_id,
                     "author_handle": comment.author_name, "text": comment.text,
                     "commented_at": comment.published_at, **_decide(comment, own_id)})
    if not rows:
        return
    with engine.begin() as conn:
        stored = conn.execute(insert(cm).values(rows).on_conflict_do_nothing(
            index_elements=[cm.c.platform, cm.c.remote_comment_id])
            .returning(cm.c.state, cm.c.classification)).all()
    stats.stored += len(stored)
    for state, label in stored:
        stats.states[state] += 1
        if label:
            stats.classes[label] += 1


def _read(source: CommentSource, remote_post_id: str, stop_before: dt.datetime,
          stats: FetchStats) -> list[RemoteComment]:
    comments: list[RemoteComment] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page, cursor = source.page(remote_post_id, cursor)
        stats.pages[source.platform] += 1
        comments += page
        if cursor is None:
            break
        if source.newest_first and any(c.published_at is not None and c.published_at
                                       < stop_before for c in page if c.parent_id is None):
            break
    return comments


def _poll_row(engine: sa.Engine, post_id: int, character_id: str, **values: object) -> None:
    cp = schema.comment_polls
    with engine.begin() as conn:
        conn.execute(insert(cp).values(post_id=post_id, character_id=character_id, **values)
                     .on_conflict_do_update(index_elements=[cp.c.post_id],
                                            set_={**values, "updated_at": sa.func.now()}))


def _retry_at(exc: Exception, platform: str, published_at: dt.datetime, now: dt.datetime,
              upcoming: dt.datetime | None) -> dt.datetime | None:
    """When a failed read is tried again: after YouTube's quota reset when its units are
    spent, else at the post's next read time (none once its window is over)."""
    resume = getattr(exc, "resume_at", None)
    every = poll_interval(platform, now - published_at) or dt.timedelta(0)
    return resume or (now + every if upcoming else None)


def read_post(engine: sa.Engine, character_id: str, post_id: int,
              sources: Mapping[str, CommentSource], switched_on: Mapping[str, dt.datetime],
              now: dt.datetime, stats: FetchStats) -> None:
    """Read one post's comments, store them, schedule its next read; a failed read is
    recorded on the poll row and retried at the post's next read time."""
    sp, cp = schema.social_posts, schema.comment_polls
    with engine.connect() as conn:
        post = conn.execute(sa.select(sp.c.platform, sp.c.remote_post_id, sp.c.published_at,
                                      cp.c.last_polled_at)
                            .outerjoin(cp, cp.c.post_id == sp.c.id)
                            .where(sp.c.id == post_id)).one()
    source = sources.get(post.platform)
    upcoming = next_poll(post.platform, post.published_at, now)
    if source is None:  # no usable account: try again at the post's next read time
        _poll_row(engine, post_id, character_id, next_poll_at=upcoming,
                  error=f"no usable {post.platform} account")
        stats.failed[f"{post.platform} post {post_id}"] = f"no usable {post.platform} account"
        return
    since = switched_on[post.platform]
    stop_before = max(since, (post.last_polled_at or since) - OVERLAP)
    try:
        comments = _read(source, post.remote_post_id, stop_before, stats)
    except ConfigError:
        raise
    except Exception as exc:  # the platform's error, a token to authorise again: this post
        retry = _retry_at(exc, post.platform, post.published_at, now, upcoming)
        _poll_row(engine, post_id, character_id, next_poll_at=retry, error=str(exc)[:1000])
        stats.failed[f"{post.platform} post {post_id}"] = str(exc)[:300]
        log.warning("%s: comments of post %s not read: %s", character_id, post_id, exc)
        return
    store_comments(engine, character_id, post_id, post.platform, comments, source.own_id,
                   since, stats)
    _poll_row(engine, post_id, character_id, last_polled_at=now, next_poll_at=upcoming,
              error=None)
    stats.posts_read += 1
    stats.accounts.add(post.platform)


def _read_channel(source: CommentSource, stop_before: dt.datetime,
                  stats: FetchStats) -> dict[str, list[RemoteComment]]:
    """The channel's comments newer than `stop_before` (and a page's worth more), by video."""
    by_video: dict[str, list[RemoteComment]] = {}
    cursor: str | None = None
    for _ in range(CHANNEL_PAGES):
        page, cursor = source.channel_page(cursor)
        stats.pages[source.platform] += 1
        for video_id, comment in page:
            by_video.setdefault(video_id, []).append(comment)
        if cursor is None or any(c.parent_id is None and c.published_at is not None
                                 and c.published_at < stop_before for _, c in page):
            break
    else:  # a flood: what is older than the last page is not read (counted, logged)
        stats.skipped[f"channel reads cut at {CHANNEL_PAGES} pages"] += 1
        log.warning("youtube channel %s: read cut at %d pages", source.own_id, CHANNEL_PAGES)
    return by_video


def _count(stats: FetchStats, why: str, comments: list[RemoteComment]) -> None:
    """Top-level comments read and not stored, by why (replies are never stored)."""
    n = sum(1 for c in comments if c.parent_id is None)
    if n:
        stats.skipped[why] += n


def read_channel(engine: sa.Engine, character_id: str, source: CommentSource | None,
                 switched_on: Mapping[str, dt.datetime], now: dt.datetime,
                 stats: FetchStats) -> None:
    """Read a YouTube channel's comments in one listing and store those on its posts that
    are still polled (due.channel_posts), each within its post's window. The posts are read
    again together: at the pace of the youngest one in its window (due.TIERS), a post past its
    window gets that one last read and none after."""
    platform = "youtube"
    with engine.connect() as conn:
        posts = channel_posts(conn, character_id, now, platform)
    if not posts:
        return
    youngest = max(p.published_at for p in posts)
    upcoming = next_poll(platform, youngest, now)

    def schedule(at: dt.datetime | None, **values: object) -> None:
        for p in posts:
            open_ = at is not None and now < p.published_at + REPLY_WINDOW
            _poll_row(engine, p.id, character_id, next_poll_at=at if open_ else None, **values)

    if source is None:  # no usable account: try again at the channel's next read time
        schedule(upcoming, error=f"no usable {platform} account")
        stats.failed[f"{platform} channel"] = f"no usable {platform} account"
        return
    since = switched_on[platform]
    oldest = min(p.last_polled_at or p.published_at for p in posts)
    stop_before = max(since, oldest - OVERLAP)
    try:
        by_video = _read_channel(source, stop_before, stats)
    except ConfigError:
        raise
    except Exception as exc:  # the platform's error, a token to authorise again: this channel
        resume = _retry_at(exc, platform, youngest, now, upcoming)
        for p in posts:  # all of them, or the sensor asks for a poll every tick
            _poll_row(engine, p.id, character_id, next_poll_at=resume, error=str(exc)[:1000])
        stats.failed[f"{platform} channel"] = str(exc)[:300]
        log.warning("%s: youtube channel comments not read: %s", character_id, exc)
        return
    for p in posts:
        closes = p.published_at + REPLY_WINDOW
        comments = by_video.pop(p.remote_post_id, [])
        late = [c for c in comments if c.published_at is not None and c.published_at > closes]
        kept = [c for c in comments if c.published_at is None or c.published_at <= closes]
        _count(stats, "after the post's reply window", late)
        store_comments(engine, character_id, p.id, platform, kept, source.own_id, since,
                       stats)
    _count(stats, NOT_IN_WINDOW, [c for comments in by_video.values() for c in comments])
    schedule(upcoming, last_polled_at=now, error=None)
    stats.posts_read += len(posts)
    stats.accounts.add(platform)


def fetch(engine: sa.Engine, character_id: str, sources: Mapping[str, CommentSource],
          now: dt.datetime, stats: FetchStats, limit: int = 500) -> None:
    """Switch the accounts on (the first time), then read every post that is due: Instagram
    post by post, a YouTube channel in one listing when any of its posts is due."""
    switched_on = {p: switch_on(engine, s.account_id, now) for p, s in sources.items()}
    with engine.connect() as conn:
        due = posts_to_read(conn, character_id, now)[:limit]
    if any(platform == "youtube" for _, platform in due):
        read_channel(engine, character_id, sources.get("youtube"), switched_on, now, stats)
    for post_id, platform in due:
        if platform != "youtube":
            read_post(engine, character_id, post_id, sources, switched_on, now, stats)
