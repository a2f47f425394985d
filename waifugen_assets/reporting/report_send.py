"""The daily report to the operators' Telegram chat, exactly once per date, part by part: the
photo (the chart, its HTML caption) first, then the message.

Each part has its `report_messages` row: the intent, inserted once per (date, part). A run
delivers under a per-date PostgreSQL advisory lock (a second run at the same time skips the
report: "busy"), and claims a part by moving it `planned | failed -> sending` in a committed
conditional UPDATE before the HTTP call, so a part is sent by one run only. Then:

- an answer: `sent`, with Telegram's message id and sent_at;
- a definite failure (Telegram refused it: 4xx other than 429; or 429/5xx/no connection after
  the client's retries): `failed` with the redacted error; the next run sends it again;
- no answer after the request went out (timeout, dropped connection), or an answer that is
  not one: `unknown`. A run that died mid-call leaves `sending` with nobody holding the lock,
  which the next run treats as `unknown` too.

`unknown` is never resent on its own. The next run reconciles: Telegram has no "get message",
but editing a message with the very content it already has answers "message is not modified",
which identifies it without changing it. The candidates are the SCAN_IDS message ids after the
newest id this chat is known (from report_messages) to have had before the attempt, skipping
ids known to be other parts; "message to edit not found" and "message can't be edited" (a
message that is not the bot's, or of another kind) are skipped. Found: `sent` with that id.
Not found: it stays `unknown` and the outcome says what to check and how to resend
(`waifugen report --date D --send --resend-unknown`).

Caveat of editing as a probe: a candidate that is another editable message of this bot of the
same kind (another text message of the bot in this chat, e.g. an alert the bot sent between
the reports) is changed by the edit ("edited"). Scanning stops there: the report's part is
then in the chat as that message (recorded as sent with that id) and the outcome says which
message was overwritten, so an operator can look.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.http import HttpError, InvalidResponse, PermanentError, UnknownOutcome
from resources.telegram import (
    TelegramClient,
    TelegramMessageNotEditable,
    TelegramMessageNotFound,
)
from waifugen_assets.core import schema
from waifugen_assets.core.redaction import redact

PARTS = ("photo", "text")  # in the order they are sent
SCAN_IDS = 20  # message ids a reconciliation tries
PARSE_MODE = "HTML"
MAX_ERROR = 500
# Telegram's answer to editing the caption of a text message or the text of a photo:
# "there is no caption in the message to edit" / "there is no text in the message to edit".
_OTHER_KIND = "in the message to edit"
_LOCK = sa.text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")

log = logging.getLogger(__name__)
rm = schema.report_messages


@dataclass(frozen=True)
class Report:
    """What is sent for one date: the chart, its caption, the message (HTML)."""

    day: dt.date
    png: bytes
    caption: str
    text: str

    def body(self, part: str) -> str:
        return self.caption if part == "photo" else self.text


@dataclass(frozen=True)
class PartOutcome:
    """What a run did with one part, and the state the part is in now."""

    part: str
    action: str  # sent | already_sent | reconciled | overwrote | unknown | failed | busy
    state: str  # the row's state afterwards (planned when busy before any attempt)
    message_id: int | None
    detail: str

    @property
    def delivered(self) -> bool:
        return self.state == "sent"


def unknown_hint(day: dt.date, part: str) -> str:
    """What an operator should do about a part that may not have reached the chat."""
    what = "photo" if part == "photo" else "message"
    return (f"the {what} of {day.isoformat()} may not have reached the chat; check it and run "
            f"`waifugen report --date {day.isoformat()} --send --resend-unknown`")


@contextmanager
def report_lock(engine: sa.Engine, day: dt.date) -> Iterator[bool]:
    """A session advisory lock on the date's report, held on a connection of its own for the
    whole delivery; yields False when another run holds it. A run that dies loses its
    session and with it the lock, so its `sending` rows are known to be abandoned."""
    key = f"waifugen:report:{day.isoformat()}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = bool(conn.scalar(_LOCK, {"key": key}))
        try:
            yield held
        finally:
            if held:
                conn.execute(_UNLOCK, {"key": key})


def plan(conn: sa.Connection, report: Report, chat_id: str) -> None:
    """The intent rows, once per (date, part); an existing row is left as it is."""
    for part in PARTS:
        conn.execute(insert(rm).values(report_date=report.day, part=part, chat_id=chat_id,
                                       body=report.body(part))
                     .on_conflict_do_nothing(index_elements=[rm.c.report_date, rm.c.part]))


def deliveries(conn: sa.Connection, day: dt.date) -> dict[str, dict[str, Any]]:
    """The rows of a date by part (no rows: never planned)."""
    rows = conn.execute(sa.select(rm).where(rm.c.report_date == day)).mappings().all()
    return {r["part"]: dict(r) for r in rows}


def deliver(engine: sa.Engine, client: TelegramClient, chat_id: str, report: Report, *,
            resend_unknown: bool = False) -> list[PartOutcome]:
    """Send what of the date's report is not in the chat yet (see the module doc)."""
    with engine.begin() as conn:
        plan(conn, report, chat_id)
    with report_lock(engine, report.day) as held:
        if not held:
            with engine.connect() as conn:
                rows = deliveries(conn, report.day)
            return [PartOutcome(p, "busy", rows[p]["state"], rows[p]["remote_message_id"],
                                "another run is delivering this report now") for p in PARTS]
        return [_deliver_part(engine, client, chat_id, report, part, resend_unknown)
                for part in PARTS]


def _deliver_part(engine: sa.Engine, client: TelegramClient, chat_id: str, report: Report,
                  part: str, resend_unknown: bool) -> PartOutcome:
    with engine.connect() as conn:
        row = deliveries(conn, report.day)[part]
    if row["state"] == "sent":
        return PartOutcome(part, "already_sent", "sent", row["remote_message_id"],
                           f"sent before, as message {row['remote_message_id']}")
    if row["state"] == "sending":  # we hold the lock: the run that claimed it is gone
        _abandoned(engine, row)
        row = {**row, "state": "unknown"}
    if row["state"] == "unknown":
        found = _reconcile(engine, client, row)
        if found is not None:
            return found
        if not resend_unknown:
            return PartOutcome(part, "unknown", "unknown", None, unknown_hint(report.day, part))
    claimed = _claim(engine, row["id"], report.body(part), chat_id,
                     ("planned", "failed", "unknown") if resend_unknown else ("planned", "failed"))
    if claimed is None:  # changed under us (only by hand: we hold the lock)
        with engine.connect() as conn:
            now = deliveries(conn, report.day)[part]
        return PartOutcome(part, "busy", now["state"], now["remote_message_id"],
                           f"the row changed while claiming it (now {now['state']})")
    return _send(engine, client, chat_id, report, part, claimed)


def _claim(engine: sa.Engine, row_id: int, body: str, chat_id: str,
           from_states: tuple[str, ...]) -> dt.datetime | None:
    """planned|failed(|unknown) -> sending, committed before the call; the claim's time."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(rm).where(rm.c.id == row_id, rm.c.state.in_(from_states))
            .values(state="sending", attempts=rm.c.attempts + 1, body=body, chat_id=chat_id,
                    error=None)
            .returning(rm.c.updated_at)).scalar()


def _send(engine: sa.Engine, client: TelegramClient, chat_id: str, report: Report,
          part: str, claimed_at: dt.datetime) -> PartOutcome:
    body = report.body(part)
    try:
        if part == "photo":
            message_id = client.send_photo(chat_id, report.png, caption=body,
                                           parse_mode=PARSE_MODE)
        else:
            message_id = client.send_message(chat_id, body, parse_mode=PARSE_MODE)
    except Exception as exc:  # every way it ends is recorded; none fails the run
        state = _state_after(exc)
        error = redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR]
        log.warning("daily report %s %s: %s", report.day, part, error)
        with engine.begin() as conn:
            # An unknown row keeps its attempt's time as updated_at: reconciliation searches
            # from the messages the chat had before it.
            extra = {"updated_at": claimed_at} if state == "unknown" else {}
            conn.execute(sa.update(rm).where(rm.c.report_date == report.day, rm.c.part == part)
                         .values(state=state, error=error, **extra))
        detail = unknown_hint(report.day, part) if state == "unknown" else \
            f"{error} (the next run sends it again)"
        return PartOutcome(part, state, state, None, detail)
    _mark_sent(engine, report.day, part, message_id, None)
    return PartOutcome(part, "sent", "sent", message_id, f"sent as message {message_id}")


def _state_after(exc: Exception) -> str:
    """`failed` when Telegram definitely did not post it, else `unknown`."""
    if isinstance(exc, UnknownOutcome | InvalidResponse):
        return "unknown"  # sent, and no (usable) answer: it may be in the chat
    if isinstance(exc, HttpError | ValueError):
        # Refused (4xx), or gave up on 429/5xx/no connection; or never sent. A 5xx is taken
        # as "not posted" (what Telegram's 5xx usually mean): as unknown, every ordinary
        # outage would wait for an operator; the cost is a rare duplicate part.
        return "failed"
    return "unknown"


def _mark_sent(engine: sa.Engine, day: dt.date, part: str, message_id: int,
               error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(rm).where(rm.c.report_date == day, rm.c.part == part)
                     .values(state="sent", remote_message_id=message_id,
                             sent_at=sa.func.now(), error=error))


def _abandoned(engine: sa.Engine, row: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(rm).where(rm.c.id == row["id"], rm.c.state == "sending")
                     .values(state="unknown", updated_at=row["updated_at"],
                             error="the run sending it stopped before its answer was recorded"))


# --- reconciliation ----------------------------------------------------------------------------

def candidate_ids(conn: sa.Connection, row: dict[str, Any], scan: int = SCAN_IDS) -> list[int]:
    """Message ids where the part may be, nearest first: after the newest id the chat had
    before the attempt (row.updated_at), or, when none, before the oldest id it got after."""
    chat = (rm.c.chat_id == row["chat_id"]) & rm.c.remote_message_id.is_not(None)
    known = set(conn.execute(sa.select(rm.c.remote_message_id).where(chat)).scalars())
    # Alerts go to the operators' chat through the same bot: never a candidate (an edit with
    # the report's text would overwrite one). Their ids also bound the search.
    al = schema.alerts
    sent_alert = al.c.remote_message_id.is_not(None)
    alert_ids = set(conn.execute(sa.select(al.c.remote_message_id).where(sent_alert)).scalars())
    known |= alert_ids
    attempted = row["updated_at"]
    before = max((v for v in (
        conn.scalar(sa.select(sa.func.max(rm.c.remote_message_id))
                    .where(chat, rm.c.sent_at <= attempted)),
        conn.scalar(sa.select(sa.func.max(al.c.remote_message_id))
                    .where(sent_alert, al.c.sent_at <= attempted))) if v is not None),
        default=None)
    after = conn.scalar(sa.select(sa.func.min(rm.c.remote_message_id))
                        .where(chat, rm.c.sent_at > attempted))
    if before is not None:
        ids = range(before + 1, before + 1 + scan)
    elif after is not None:
        ids = range(after - 1, max(0, after - 1 - scan), -1)
    else:
        return []
    return [i for i in ids if i not in known]


def _reconcile(engine: sa.Engine, client: TelegramClient,
               row: dict[str, Any]) -> PartOutcome | None:
    """The part's outcome when the chat has it, else None (it stays unknown)."""
    part, chat, body = row["part"], row["chat_id"], row["body"]
    edit: Callable[..., str] = (client.edit_message_caption if part == "photo"
                                else client.edit_message_text)
    with engine.connect() as conn:
        candidates = candidate_ids(conn, row)
    for message_id in candidates:
        try:
            result = edit(chat, message_id, body, parse_mode=PARSE_MODE, retry=False)
        except (TelegramMessageNotFound, TelegramMessageNotEditable):
            continue
        except PermanentError as exc:
            if _OTHER_KIND in exc.reason.lower():  # a text where a photo is sought, or back
                continue
            log.warning("daily report %s %s: reconciliation stopped at message %s: %s",
                        row["report_date"], part, message_id, exc)
            return None
        except (HttpError, httpx.HTTPError) as exc:  # unclear: stop, the part stays unknown
            log.warning("daily report %s %s: reconciliation stopped at message %s: %s",
                        row["report_date"], part, message_id, exc)
            return None
        if result == "not_modified":
            _mark_sent(engine, row["report_date"], part, message_id, None)
            return PartOutcome(part, "reconciled", "sent", message_id,
                               f"its answer was lost; found in the chat as message "
                               f"{message_id} (not sent again)")
        note = (f"reconciling overwrote message {message_id} (a message of this bot that was "
                f"not this part): it now shows this part; check the chat")
        _mark_sent(engine, row["report_date"], part, message_id, note)
        return PartOutcome(part, "overwrote", "sent", message_id, note)
    return None
