"""Claims: at most one process at a time works on a row whose work calls the outside world.

Every outward side effect (a render submit, a publish init/container/upload session, a DM, a
comment reply, an alert) has its intent row before the call (DESIGN.md section 6). A claim
makes that row one process's for as long as it works on it, so a second process (a
sensor-launched run racing a backfill, two `waifugen run`s) skips the row instead of
repeating the call.

A claim is a PostgreSQL session-level advisory lock on ("waifugen:<kind>:<id>"), held on a
connection of its own in autocommit mode (no transaction stays open while a platform takes
its time). Why a lock and not a lease column: a process that dies, however it dies, loses its
database session and with it the claim, at once, so a rerun never waits for an expiry; and a
slow process keeps its claim for as long as it lives, so no expiry can hand its row to a
second process mid-upload. What a crashed holder left behind is the row's recorded state
(intent, saved handle), which the next holder reconciles with the platform before sending
anything again, as before.

Take the claim, then read the row: a state read before the claim may be stale.
Session locks need a session that is the process's own: through a pooler, use session
pooling (not PgBouncer's transaction mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import sqlalchemy as sa

_TRY = sa.text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_HELD = sa.text("""
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(:key, 0)
""")

KINDS = ("reel", "post", "dm", "alert", "reply")


def claim_key(kind: str, row_id: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown claim kind {kind!r}; one of {', '.join(KINDS)}")
    return f"waifugen:{kind}:{int(row_id)}"


class Claims:
    """The claims one worker holds, on one dedicated connection. Not shared between threads:
    a session's advisory locks are re-entrant, so two threads on one would both "win"."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._conn: sa.Connection | None = None
        self._held: set[str] = set()

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def take(self, kind: str, row_id: int) -> bool:
        """True if this worker now holds the row (or already did); False if another does."""
        key = claim_key(kind, row_id)
        if key in self._held:
            return True
        if self._connection().execute(_TRY, {"key": key}).scalar_one():
            self._held.add(key)
            return True
        return False

    def release(self, kind: str, row_id: int) -> None:
        key = claim_key(kind, row_id)
        if key in self._held and self._conn is not None:
            self._conn.execute(_UNLOCK, {"key": key})
            self._held.discard(key)

    @contextlib.contextmanager
    def hold(self, kind: str, row_id: int) -> Iterator[bool]:
        """`with claims.hold("post", id) as mine:` work on the row only if `mine`."""
        mine = self.take(kind, row_id)
        try:
            yield mine
        finally:
            if mine:
                self.release(kind, row_id)

    def close(self) -> None:
        """Release everything (the connection goes back to the pool clean)."""
        if self._conn is None:
            return
        try:
            if self._held:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
        finally:
            self._held.clear()
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def is_claimed(engine: sa.Engine, kind: str, row_id: int) -> bool:
    """Whether some session holds the row's claim (diagnostics and tests)."""
    with engine.connect() as conn:
        return bool(conn.execute(_HELD, {"key": claim_key(kind, row_id)}).scalar_one())
