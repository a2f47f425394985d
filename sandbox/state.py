"""State that survives restarts: per-system JSON documents and the request journal.

One SQLite file (`<state_dir>/sandbox.sqlite3`) in WAL mode. A single connection guarded by
a lock serves every thread: the sandbox's writes are tiny and a lock is simpler (and on one
file, no slower) than a connection pool. Calls are synchronous; at loopback request rates a
WAL commit costs tens of microseconds, so the event loop does not notice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_NAME = "sandbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    system TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (system, key)
);
CREATE TABLE IF NOT EXISTS journal (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so `since` stays meaningful
    system TEXT NOT NULL,
    entry  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_system ON journal (system, id);
"""


def _escape_like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class StateStore:
    """Thread-safe key/value documents per system, plus the journal."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.state_dir / DB_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process crashes
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Documents -------------------------------------------------------------------------

    def get(self, system: str, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM documents WHERE system=? AND key=?",
                                   (system, key)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, system: str, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO documents (system, key, value) VALUES (?, ?, ?)",
                       (system, key, json.dumps(value)))

    def put_many(self, system: str, items: dict[str, Any]) -> None:
        """Store several documents in one transaction (bulk seeding)."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO documents (system, key, value) "
                           "VALUES (?, ?, ?)",
                           [(system, key, json.dumps(value)) for key, value in items.items()])

    def delete(self, system: str, key: str) -> bool:
        with self._transaction() as db:
            cur = db.execute("DELETE FROM documents WHERE system=? AND key=?", (system, key))
        return cur.rowcount > 0

    def list_prefix(self, system: str, prefix: str = "") -> dict[str, Any]:
        """Documents whose key starts with `prefix`, in key order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM documents WHERE system=? AND key LIKE ? ESCAPE '\\' "
                "ORDER BY key", (system, _escape_like(prefix) + "%")).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def delete_prefix(self, system: str, prefix: str = "") -> int:
        with self._transaction() as db:
            cur = db.execute("DELETE FROM documents WHERE system=? AND key LIKE ? ESCAPE '\\'",
                             (system, _escape_like(prefix) + "%"))
        return cur.rowcount

    def update(self, system: str, key: str, change: Callable[[Any], Any],
               default: Any = None) -> Any:
        """Atomic read-modify-write: stores and returns `change(current or default)`."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM documents WHERE system=? AND key=?",
                             (system, key)).fetchone()
            value = change(default if row is None else json.loads(row[0]))
            db.execute("INSERT OR REPLACE INTO documents (system, key, value) VALUES (?, ?, ?)",
                       (system, key, json.dumps(value)))
        return value

    def next_id(self, system: str, counter: str) -> int:
        """1, 2, 3, ... per (system, counter), across restarts."""
        return int(self.update(system, f"_counter/{counter}", lambda n: n + 1, default=0))

    def next_ids(self, system: str, counter: str, count: int) -> range:
        """The next `count` numbers of `next_id`, taken at once."""
        last = int(self.update(system, f"_counter/{counter}", lambda n: n + count, default=0))
        return range(last - count + 1, last + 1)

    def namespace(self, system: str) -> SystemState:
        return SystemState(self, system)

    # Journal ---------------------------------------------------------------------------

    def journal_append(self, system: str, entry: dict[str, Any]) -> int:
        """Store `entry` (without an id) and return its id."""
        with self._transaction() as db:
            cur = db.execute("INSERT INTO journal (system, entry) VALUES (?, ?)",
                             (system, json.dumps(entry)))
        return int(cur.lastrowid or 0)

    def journal(self, system: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Entries with id > `since`, oldest first, each with its `id`."""
        sql = "SELECT id, entry FROM journal WHERE id > ?"
        args: tuple[Any, ...] = (since,)
        if system is not None:
            sql += " AND system = ?"
            args += (system,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [{"id": row_id, **json.loads(entry)} for row_id, entry in rows]

    def journal_clear(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM journal")


class SystemState:
    """One system's view of the store: the same API without the `system` argument."""

    def __init__(self, store: StateStore, system: str) -> None:
        self.store = store
        self.system = system

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get(self.system, key, default)

    def put(self, key: str, value: Any) -> None:
        self.store.put(self.system, key, value)

    def put_many(self, items: dict[str, Any]) -> None:
        self.store.put_many(self.system, items)

    def delete(self, key: str) -> bool:
        return self.store.delete(self.system, key)

    def list_prefix(self, prefix: str = "") -> dict[str, Any]:
        return self.store.list_prefix(self.system, prefix)

    def update(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        return self.store.update(self.system, key, change, default)

    def next_id(self, counter: str) -> int:
        return self.store.next_id(self.system, counter)

    def next_ids(self, counter: str, count: int) -> range:
        return self.store.next_ids(self.system, counter, count)


def append_new(state: SystemState, key: str, items: list[str]) -> None:
    """Append to the list at `key` the items it does not hold yet, in order (atomically): the
    per-account indexes of the platform fakes."""
    def change(known: list[str]) -> list[str]:
        have = set(known)
        return [*known, *(i for i in items if i not in have)]
    state.update(key, change, default=[])


def pop_first(state: SystemState, *keys: str) -> dict[str, Any] | None:
    """Take the first entry of the first non-empty queue among `keys` (atomically each)."""
    got: list[dict[str, Any]] = []

    def change(queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if queue and not got:
            got.append(queue[0])
            return queue[1:]
        return queue

    for key in keys:
        state.update(key, change, default=[])
        if got:
            return got[0]
    return None
