"""The manual-send queue of OnlyFans and Fansly (no public API: an operator sends by hand).

The DM planner puts a due message for these platforms in state `queued_manual`. `export_csv`
writes them for the operator (read-only: exporting twice gives the same file); `mark_sent`
records what the operator sent. Messages of subscribers who opted out or were forgotten since
they were queued are left out of the export: they must not be sent.

The export is opened in a spreadsheet, and handles and texts come from subscribers (CSV imports)
or a language model: a text cell starting with =, +, -, @, a tab or a carriage return would be
a formula there (CSV injection), so it is written with a leading `'` (OWASP's advice; the
spreadsheet shows the text without it). The file is the csv module's standard (excel, RFC 4180)
dialect: comma, quotes doubled, CRLF line ends.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

import sqlalchemy as sa

from waifugen_assets.core import schema

MANUAL_PLATFORMS = ("onlyfans", "fansly")
EXPORT_COLUMNS = ("message_id", "character", "platform", "subscriber_handle", "external_id",
                  "step", "variant", "due_at", "text")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet shows as text, never evaluates; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass(frozen=True)
class QueuedMessage:
    message_id: int
    character: str
    platform: str
    subscriber_handle: str | None
    external_id: str
    step: int
    variant: str | None
    due_at: dt.datetime
    text: str | None


class NotQueued(ValueError):
    """Some ids are not messages waiting in the manual queue; nothing was changed."""

    def __init__(self, problems: dict[int, str]) -> None:
        self.problems = problems
        listed = "; ".join(f"{i}: {why}" for i, why in sorted(problems.items()))
        super().__init__(f"not marked (nothing changed): {listed}")


def queued_messages(engine: sa.Engine, character_id: str | None = None) -> list[QueuedMessage]:
    """Messages waiting to be sent by hand, due first."""
    m, s = schema.dm_messages, schema.subscribers
    query = (sa.select(m.c.id, s.c.character_id, s.c.platform, s.c.handle, s.c.external_id,
                       m.c.step, m.c.variant, m.c.due_at, m.c.text)
             .join(s, s.c.id == m.c.subscriber_id)
             .where(m.c.state == "queued_manual", s.c.platform.in_(MANUAL_PLATFORMS),
                    s.c.opted_out_at.is_(None), s.c.forgotten_at.is_(None))
             .order_by(m.c.due_at, m.c.id))
    if character_id is not None:
        query = query.where(s.c.character_id == character_id)
    with engine.connect() as conn:
        return [QueuedMessage(*row) for row in conn.execute(query)]


def export_csv(engine: sa.Engine, out: TextIO, character_id: str | None = None) -> int:
    """Write the queue as CSV (EXPORT_COLUMNS, times in UTC ISO 8601, every text cell
    spreadsheet-safe); returns the row count."""
    writer = csv.writer(out)  # the standard excel dialect
    writer.writerow(EXPORT_COLUMNS)
    messages = queued_messages(engine, character_id)
    for q in messages:
        writer.writerow([spreadsheet_safe(cell) for cell in (
            q.message_id, q.character, q.platform, q.subscriber_handle or "", q.external_id,
            q.step, q.variant or "", q.due_at.astimezone(dt.UTC).isoformat(), q.text or "")])
    return len(messages)


def mark_sent(engine: sa.Engine, ids: Iterable[int], now: dt.datetime | None = None) -> int:
    """Move these `queued_manual` messages to `sent`, all or none: an id that is not a
    queued manual message raises NotQueued naming it and its state."""
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    stamp = now or dt.datetime.now(dt.UTC)
    m, s = schema.dm_messages, schema.subscribers
    with engine.begin() as conn:
        found = {row.id: row for row in conn.execute(
            sa.select(m.c.id, m.c.state, m.c.subscriber_id, s.c.platform)
            .join(s, s.c.id == m.c.subscriber_id)
            .where(m.c.id.in_(wanted)).with_for_update(of=m))}
        problems: dict[int, str] = {}
        for message_id in wanted:
            row = found.get(message_id)
            if row is None:
                problems[message_id] = "no such message"
            elif row.state != "queued_manual":
                problems[message_id] = f"state is {row.state}, not queued_manual"
            elif row.platform not in MANUAL_PLATFORMS:
                problems[message_id] = f"{row.platform} messages are sent automatically"
        if problems:
            raise NotQueued(problems)
        conn.execute(m.update().where(m.c.id.in_(wanted))
                     .values(state="sent", sent_at=stamp, error=None))
        conn.execute(s.update().where(s.c.id.in_({r.subscriber_id for r in found.values()}))
                     .values(last_outbound_at=sa.func.greatest(s.c.last_outbound_at, stamp)))
    return len(wanted)
