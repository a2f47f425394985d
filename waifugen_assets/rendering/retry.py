"""Reels A2E refused for lack of coins, back to `planned` once the balance is back
(`waifugen reels retry-refused`; docs/runbooks/credits-depleted.md).

A refused submit created nothing at A2E (code 402: no task, nothing charged), so planning the
reel again cannot pay twice; the generation sensor renders it like any planned reel. Only
reels whose slot is still postable come back: an older one would be recorded as missed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from waifugen_assets.core import schema

REFUSED_FOR_COINS = "a2e refused the task: code 402"  # renderer._fail's words for A2E's 402


@dataclass(frozen=True)
class Retried:
    reels: list[tuple[int, str, dt.date, int]]  # (id, character, date, slot) now planned
    too_late: int  # refused too, but their slot is older than the stale limit: left failed


def _refused(r: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [r.c.status == "failed", r.c.generation_task_id.is_(None),
            r.c.failure_reason.startswith(REFUSED_FOR_COINS, autoescape=True)]


def retry_refused(conn: sa.Connection, now: dt.datetime, stale_after: dt.timedelta,
                  *, dry_run: bool = False) -> Retried:
    """Plan again, in the caller's transaction, every reel refused for lack of coins whose
    slot is after `now - stale_after`; with `dry_run`, only say which."""
    r = schema.reels
    fresh = r.c.scheduled_at > now - stale_after
    too_late = int(conn.scalar(sa.select(sa.func.count()).select_from(r)
                               .where(*_refused(r), ~fresh)) or 0)
    columns = (r.c.id, r.c.character_id, r.c.date, r.c.slot)
    if dry_run:
        rows = conn.execute(sa.select(*columns).where(*_refused(r), fresh)).all()
    else:
        rows = conn.execute(
            sa.update(r).where(*_refused(r), fresh)
            .values(status="planned", failure_reason=None, generation_provider=None,
                    generation_submitted_at=None, next_attempt_at=None, updated_at=now)
            .returning(*columns)).all()
    return Retried(sorted((int(i), c, d, int(s)) for i, c, d, s in rows), too_late)
