"""Comment replies, exactly once (docs/comments.md).

One cycle for a character (`comment_cycle`, what the `comment_replies` asset runs):
1. fetch (fetch.py): switch the accounts on the first time, read each post that is due, store
   new top-level comments classified (new, held, skipped, own). The runs the comments sensor
   asks for skip it: the one comment_poll run a tick reads every character (poll.py);
2. plan: for each comment to answer that has no reply yet, compose the text (persona writer
   through the gate, else a template; disclosure always) and insert its one reply row
   (`planned`; UNIQUE per comment);
3. settle: a reply left `sending` (the run died) or `unknown` (the answer was lost) is looked
   up among the comment's replies on the platform before anything else: ours is there =
   `sent`; it is not = `planned` again, unless it was sent twice already (then `held`: a
   platform that hides replies must not get a third);
4. send: each due reply, under its claim: too late (skipped), the gate again (held), YouTube's
   units (deferred to the reset), the caps (wait), then `sending` committed with the count,
   the call, and `sent` / `unknown` / `deferred` / `failed` / back to `planned`.

A claim (core/claims.py, kind "reply") is taken before a reply row is read for settling or
sending, so two runs never work on one reply; the state is read again after the claim. The
clock is a parameter, so tests and simulations run any day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.http import (
    AuthError,
    HttpError,
    PermanentError,
    RateLimited,
    RetryableError,
    UnknownOutcome,
)
from waifugen_assets.comments.caps import Caps, take_slot
from waifugen_assets.comments.fetch import FetchStats, fetch
from waifugen_assets.comments.reply_text import Writer, compose, refusals
from waifugen_assets.comments.review import APPROVED
from waifugen_assets.comments.sources import CommentSource
from waifugen_assets.core import schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.subscribers.cycle import CharacterInfo

log = logging.getLogger(__name__)

RETRY_LATER = dt.timedelta(minutes=5)
AUTH_RETRY = dt.timedelta(hours=1)
MAX_SENDS = 2  # sends of one reply whose outcome stayed unknown before it is held
DOUBTFUL = ("sending", "unknown")
SENDABLE = ("planned", "deferred")


@dataclass
class CycleStats:
    fetch: FetchStats = field(default_factory=FetchStats)
    planned: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # sent, waiting, deferred, ...
    reasons: Counter[str] = field(default_factory=Counter)
    sources: dict[str, str] = field(default_factory=dict)  # platform -> "ok" or the problem


# --- rows -----------------------------------------------------------------------------------

def _set(engine: sa.Engine, reply_id: int, comment: Mapping[str, Any] | None = None,
         **values: Any) -> None:
    """Update a reply row (and, given `comment`, its comment's state and reason) at once."""
    cr, cm = schema.comment_replies, schema.comments
    with engine.begin() as conn:
        conn.execute(sa.update(cr).where(cr.c.id == reply_id)
                     .values(updated_at=sa.func.now(), **values))
        if comment:
            conn.execute(sa.update(cm).where(cm.c.id == sa.select(cr.c.comment_id).where(
                cr.c.id == reply_id).scalar_subquery()).values(updated_at=sa.func.now(),
                                                               **comment))


def _rows(engine: sa.Engine, character_id: str, where: sa.ColumnElement[bool],
          limit: int) -> list[dict[str, Any]]:
    cr, cm = schema.comment_replies, schema.comments
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(cr.c.id, cr.c.state, cr.c.text, cr.c.source, cr.c.attempts,
                      cm.c.id.label("comment_id"), cm.c.remote_comment_id, cm.c.platform,
                      cm.c.post_id, cm.c.commented_at, cm.c.classification,
                      cm.c.reason.label("comment_reason"))
            .join(cm, cm.c.id == cr.c.comment_id)
            .where(cm.c.character_id == character_id, where)
            .order_by(cm.c.commented_at, cr.c.id).limit(limit)).mappings()]


def _claim(engine: sa.Engine, claims: Claims | None, reply_id: int,
           states: tuple[str, ...]) -> bool:
    """Take the reply's claim, then check it is still in `states` (another run may have
    settled or sent it meanwhile). False: leave it alone."""
    if claims is None:
        return True
    if not claims.take("reply", reply_id):
        return False
    cr = schema.comment_replies
    with engine.connect() as conn:
        state = conn.scalar(sa.select(cr.c.state).where(cr.c.id == reply_id))
    if state in states:
        return True
    claims.release("reply", reply_id)
    return False


def _sent(engine: sa.Engine, reply_id: int, remote_id: str, now: dt.datetime,
          stats: CycleStats, outcome: str) -> None:
    _set(engine, reply_id, {"state": "answered", "reason": None}, state="sent",
         remote_reply_id=remote_id, sent_at=now, error=None, next_attempt_at=None)
    stats.outcomes[outcome] += 1


# --- 2. plan --------------------------------------------------------------------------------

def plan(engine: sa.Engine, character: CharacterInfo, writer: Writer | None,
         stats: CycleStats, limit: int = 200) -> None:
    """A reply row for each comment to answer that has none yet (its text frozen now)."""
    cm, cr = schema.comments, schema.comment_replies
    with engine.connect() as conn:
        todo = conn.execute(sa.select(cm.c.id, cm.c.text, cm.c.classification).where(
            cm.c.character_id == character.id, cm.c.state == "new",
            ~sa.exists().where(cr.c.comment_id == cm.c.id))
            .order_by(cm.c.commented_at, cm.c.id).limit(limit)).all()
    for comment_id, text, label in todo:
        draft = compose(text or "", label, character.persona, writer)
        with engine.begin() as conn:
            done = conn.execute(insert(cr).values(
                comment_id=comment_id, text=draft.text, source=draft.source, state="planned")
                .on_conflict_do_nothing(index_elements=[cr.c.comment_id])).rowcount
        stats.planned += done
        for why in draft.refused:
            stats.reasons[f"writer refused: {why.split(':')[0]}"] += 1


# --- 3. settle ------------------------------------------------------------------------------

def settle(engine: sa.Engine, character_id: str, sources: Mapping[str, CommentSource],
           now: dt.datetime, stats: CycleStats, claims: Claims | None = None) -> None:
    """Replies whose send may or may not have happened: ask the platform first."""
    cr = schema.comment_replies
    due = sa.and_(cr.c.state.in_(DOUBTFUL),
                  sa.or_(cr.c.next_attempt_at.is_(None), cr.c.next_attempt_at <= now))
    for row in _rows(engine, character_id, due, 1000):
        source = sources.get(row["platform"])
        if source is None:
            continue
        if not _claim(engine, claims, row["id"], DOUBTFUL):
            stats.reasons["in another run"] += 1
            continue
        try:
            _settle_one(engine, row, source, now, stats)
        finally:
            if claims is not None:
                claims.release("reply", row["id"])


def _settle_one(engine: sa.Engine, row: Mapping[str, Any], source: CommentSource,
                now: dt.datetime, stats: CycleStats) -> None:
    try:
        listed = source.replies(row["remote_comment_id"])
    except PermanentError as exc:
        if getattr(exc, "resume_at", None):  # YouTube's units: ask after the reset
            _set(engine, row["id"], next_attempt_at=exc.resume_at, error=str(exc)[:1000])
            stats.reasons["reconcile waits for the quota reset"] += 1
            return
        _set(engine, row["id"], {"state": "skipped", "reason": f"comment gone: {exc}"[:1000]},
             state="failed", error=f"cannot list the comment's replies: {exc}"[:1000])
        stats.outcomes["failed"] += 1
        return
    except HttpError as exc:  # asked again later; nothing is sent meanwhile
        _set(engine, row["id"], next_attempt_at=now + RETRY_LATER, error=str(exc)[:1000])
        stats.reasons["cannot reconcile yet"] += 1
        return
    ours = [r for r in listed if source.ours(r, row["text"])]
    if ours:
        _sent(engine, row["id"], ours[0].id, now, stats, "reconciled_sent")
    elif row["attempts"] >= MAX_SENDS:
        reason = (f"no reply of ours on the platform after {row['attempts']} sends whose "
                  "outcome was lost: check the comment there, then approve or skip")
        _set(engine, row["id"], {"state": "held", "reason": reason}, state="held",
             error=reason, next_attempt_at=None)
        stats.outcomes["held"] += 1
    else:
        _set(engine, row["id"], state="planned", next_attempt_at=None,
             error="not on the platform after a lost answer: sending again")
        stats.outcomes["reconciled_not_sent"] += 1


# --- 4. send --------------------------------------------------------------------------------

def send_due(engine: sa.Engine, character_id: str, sources: Mapping[str, CommentSource],
             now: dt.datetime, stats: CycleStats, caps: Caps,
             claims: Claims | None = None, limit: int = 500) -> None:
    cr = schema.comment_replies
    due = sa.and_(cr.c.state.in_(SENDABLE),
                  sa.or_(cr.c.next_attempt_at.is_(None), cr.c.next_attempt_at <= now))
    for row in _rows(engine, character_id, due, limit):
        if not _claim(engine, claims, row["id"], SENDABLE):
            stats.reasons["in another run"] += 1
            continue
        try:
            _send_one(engine, character_id, row, sources, now, stats, caps)
        finally:
            if claims is not None:
                claims.release("reply", row["id"])


def _wait(engine: sa.Engine, row: Mapping[str, Any], until: dt.datetime, reason: str,
          stats: CycleStats, state: str = "planned", outcome: str = "waiting") -> None:
    _set(engine, row["id"], state=state, next_attempt_at=until, error=reason[:1000])
    stats.outcomes[outcome] += 1
    stats.reasons[reason.split(":")[0]] += 1


def _send_one(engine: sa.Engine, character_id: str, row: Mapping[str, Any],
              sources: Mapping[str, CommentSource], now: dt.datetime, stats: CycleStats,
              caps: Caps) -> None:
    source = sources.get(row["platform"])
    if source is None:
        _wait(engine, row, now + AUTH_RETRY, f"no usable {row['platform']} account", stats)
        return
    approved = row["comment_reason"] == APPROVED  # an operator's decision is not late
    if (not approved and row["commented_at"] is not None
            and now - row["commented_at"] > caps.answer_within):
        hours = caps.answer_within.total_seconds() / 3600
        reason = f"too late to answer: the comment is older than {hours:g} h"
        _set(engine, row["id"], {"state": "skipped", "reason": reason}, state="failed",
             error=reason, next_attempt_at=None)
        stats.outcomes["too_late"] += 1
        return
    problems = refusals(row["text"])
    if problems:  # defence in depth: a stored text that no longer passes is never sent
        reason = "reply refused by the safety gate: " + "; ".join(problems)
        _set(engine, row["id"], {"state": "held", "reason": reason[:1000]}, state="held",
             error=reason[:1000], next_attempt_at=None)
        stats.outcomes["held"] += 1
        return
    resume = source.reply_deferred_until(now)
    if resume is not None:
        _wait(engine, row, resume, "youtube daily units spent: deferred to the reset", stats,
              state="deferred", outcome="deferred")
        return
    slot = take_slot(engine, row["id"], row["post_id"], character_id, row["platform"], caps,
                     now)
    if not slot.taken:
        assert slot.retry_at is not None
        _wait(engine, row, slot.retry_at, f"cap: {slot.cap}", stats)
        return
    _deliver(engine, row, source, now, stats)


def _not_sent(engine: sa.Engine, row: Mapping[str, Any], state: str, until: dt.datetime,
              reason: str, stats: CycleStats, outcome: str) -> None:
    """The platform certainly did not act: the attempt is taken back (count and caps)."""
    cr = schema.comment_replies
    _set(engine, row["id"], state=state, next_attempt_at=until, error=reason[:1000],
         attempts=sa.func.greatest(cr.c.attempts - 1, 0), attempted_at=None)
    stats.outcomes[outcome] += 1
    stats.reasons[reason.split(":")[0]] += 1


def _deliver(engine: sa.Engine, row: Mapping[str, Any], source: CommentSource,
             now: dt.datetime, stats: CycleStats) -> None:
    try:
        remote = source.reply(row["remote_comment_id"], row["text"])
    except UnknownOutcome as exc:
        _set(engine, row["id"], state="unknown", error=f"settled next run: {exc}"[:1000])
        stats.outcomes["unknown"] += 1
    except RateLimited as exc:
        wait = dt.timedelta(seconds=exc.retry_after or 60)
        _not_sent(engine, row, "planned", now + wait, f"rate limited: {exc}", stats, "waiting")
    except PermanentError as exc:
        resume = getattr(exc, "resume_at", None)
        if resume is not None:  # YouTube: 403 quotaExceeded, or our own gate refused it
            _not_sent(engine, row, "deferred", resume,
                      f"youtube daily units spent: {exc}", stats, "deferred")
        elif isinstance(exc, AuthError):
            _not_sent(engine, row, "planned", now + AUTH_RETRY,
                      f"{row['platform']} authorisation failed: {exc}", stats, "waiting")
        else:
            reason = f"refused by {row['platform']}: {exc.reason or exc}"[:1000]
            _set(engine, row["id"], {"state": "skipped", "reason": reason}, state="failed",
                 error=reason, next_attempt_at=None)
            stats.outcomes["failed"] += 1
    except AuthError as exc:
        _not_sent(engine, row, "planned", now + AUTH_RETRY,
                  f"{row['platform']} authorisation failed: {exc}", stats, "waiting")
    except RetryableError as exc:
        if exc.status is not None and exc.status >= 500:  # the platform may have acted
            _set(engine, row["id"], state="unknown",
                 error=f"settled next run: {exc}"[:1000])
            stats.outcomes["unknown"] += 1
        else:  # refused before acting (connection refused, a transient 4xx): later
            _not_sent(engine, row, "planned", now + RETRY_LATER, f"retryable error: {exc}",
                      stats, "waiting")
    except (HttpError, OSError, ValueError) as exc:  # nothing sent (the layer knows): later
        _not_sent(engine, row, "planned", now + RETRY_LATER, f"retryable error: {exc}", stats,
                  "waiting")
    else:
        _sent(engine, row["id"], remote, now, stats, "sent")


# --- the cycle ------------------------------------------------------------------------------

def comment_cycle(engine: sa.Engine, character: CharacterInfo,
                  sources: Mapping[str, CommentSource], now: dt.datetime, *,
                  writer: Writer | None = None, caps: Caps | None = None,
                  claims: Claims | None = None, read: bool = True) -> CycleStats:
    """One character's cycle; `read=False` answers only (the comment_poll run has read)."""
    stats = CycleStats(sources={p: "ok" for p in sources})
    if read:
        fetch(engine, character.id, sources, now, stats.fetch)
    plan(engine, character, writer, stats)
    settle(engine, character.id, sources, now, stats, claims)
    send_due(engine, character.id, sources, now, stats, caps or Caps(), claims)
    return stats
