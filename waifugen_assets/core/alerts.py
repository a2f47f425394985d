"""The one alert sender: every operator alert is recorded once per key, then sent once.

`record` writes the intent row (a repeated key is a no-op, so a retried run or a check that
runs every hour raises the alert once); `send_pending` sends every unsent row, each claimed
first so two runs finishing together do not both send it, and marks it sent. A send that
fails leaves the row unsent for the next run: an alert never fails the run that raised it.
The sending function is passed in (the operators' Telegram chat in production), so this
module needs no client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from waifugen_assets.core import schema
from waifugen_assets.core.claims import Claims

MAX_TEXT = 1000  # Telegram's limit is 4,096; an alert is one line


def record(conn: sa.Connection, key: str, text: str) -> bool:
    """Record the alert `key` once; True when this call recorded it."""
    a = schema.alerts
    row = conn.execute(insert(a).values(key=key, text=text[:MAX_TEXT])
                       .on_conflict_do_nothing(constraint="uq_alerts_key")
                       .returning(a.c.id)).first()
    return row is not None


def raise_alert(engine: sa.Engine, key: str, text: str) -> bool:
    """`record` in its own transaction."""
    with engine.begin() as conn:
        return record(conn, key, text)


def send_pending(engine: sa.Engine, send: Callable[[str], Any] | None,
                 log: logging.Logger | Any) -> str:
    """Send every unsent alert with `send` (None: not configured, they stay queued)."""
    a = schema.alerts
    with engine.connect() as conn:
        pending = conn.execute(sa.select(a.c.id, a.c.text).where(a.c.sent_at.is_(None))
                               .order_by(a.c.id)).all()
    if not pending:
        return "none pending"
    if send is None:
        return f"{len(pending)} queued: Telegram not configured"
    sent = 0
    with Claims(engine) as claims:
        for alert in pending:
            if not claims.take("alert", alert.id):  # another run is sending it
                continue
            with engine.connect() as conn:  # claimed: look again, it may have gone meanwhile
                if conn.scalar(sa.select(a.c.sent_at).where(a.c.id == alert.id)) is not None:
                    continue
            try:
                message_id = send(alert.text)
            except Exception as exc:  # an alert never fails the run; retried by the next one
                log.warning("alert %s not sent: %s", alert.id, exc)
                continue
            with engine.begin() as conn:
                conn.execute(sa.update(a).where(a.c.id == alert.id).values(
                    sent_at=sa.func.now(),
                    remote_message_id=message_id if isinstance(message_id, int) else None))
            sent += 1
    return f"{sent} sent, {len(pending) - sent} queued or sent by another run"
