"""The sandbox-wide clock: real time, or a time set (frozen or running) through `/_sandbox/clock`.

Systems read it as `ctx.clock()` instead of `time.time()`, so a whole production day can be
simulated by moving the clock instead of sleeping. The setting is kept in the state store and
cached in memory (the clock is read many times per request; only this process writes it).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from typing import Any

from sandbox.state import StateStore

NAMESPACE = "_sandbox"
KEY = "clock"
# datetime cannot show times outside years 1..9999; the sandbox keeps to 1970..9999.
MAX_EPOCH = 253402300799.0


def iso(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds and a `Z`, as the clock route shows it."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class ClockError(ValueError):
    """A clock request that cannot be honoured (answered 400)."""


def parse_instant(value: Any, name: str = "now") -> float:
    """Epoch seconds from a number or an ISO 8601 string with a UTC offset."""
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ClockError(f"{name} must be epoch seconds or ISO 8601 "
                             f"(e.g. 2026-05-01T08:00:00Z), not {value!r}") from None
        if moment.tzinfo is None:
            raise ClockError(f"{name} {value!r} has no UTC offset: add Z or e.g. +02:00")
        epoch = moment.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        epoch = float(value)
    else:
        raise ClockError(f"{name} must be epoch seconds (a number) or an ISO 8601 string")
    if not math.isfinite(epoch) or not 0 <= epoch <= MAX_EPOCH:
        raise ClockError(f"{name} must lie between 1970-01-01 and 9999-12-31")
    return epoch


class SandboxClock:
    """Epoch seconds for every system. Persisted setting (absent = real time):
    `{"now": epoch, "frozen": bool, "real_at": time.time() when set}`."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._setting: dict[str, Any] | None = store.get(NAMESPACE, KEY)

    def __call__(self) -> float:
        return self._at(self._setting, time.time())

    @staticmethod
    def _at(setting: dict[str, Any] | None, real: float) -> float:
        if setting is None:
            return real
        if setting["frozen"]:
            return float(setting["now"])
        return float(setting["now"]) + (real - float(setting["real_at"]))

    def describe(self) -> dict[str, Any]:
        setting, real = self._setting, time.time()
        now = self._at(setting, real)
        return {"now": now, "iso": iso(now), "frozen": bool(setting and setting["frozen"]),
                "offset": now - real, "real": setting is None}

    def set(self, now: float, frozen: bool = True) -> dict[str, Any]:
        with self._lock:
            self._save({"now": now, "frozen": frozen, "real_at": time.time()})
        return self.describe()

    def advance(self, seconds: float) -> dict[str, Any]:
        if not math.isfinite(seconds) or seconds < 0:
            raise ClockError(f"advance must be a number of seconds >= 0, not {seconds!r}: the "
                             f"clock does not move backwards (POST {{\"now\": ...}} sets it)")
        with self._lock:
            real = time.time()
            now = self._at(self._setting, real) + seconds
            if now > MAX_EPOCH:
                raise ClockError("advance would move the clock past 9999-12-31")
            frozen = bool(self._setting and self._setting["frozen"])
            self._save({"now": now, "frozen": frozen, "real_at": real})
        return self.describe()

    def real(self) -> dict[str, Any]:
        with self._lock:
            self._store.delete(NAMESPACE, KEY)
            self._setting = None
        return self.describe()

    def _save(self, setting: dict[str, Any]) -> None:
        self._store.put(NAMESPACE, KEY, setting)
        self._setting = setting
