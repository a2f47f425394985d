"""The pipeline's one notion of "now": real time, or a simulated clock.

Everything that decides by time (what is due, a character's local day, quota days, token
expiry, rate-limit windows) asks `now()` / `timestamp()` here, so a simulation can run a
whole day with an injected clock instead of sleeping (benchmarks/day_at_scale.py), and a
test can ask what happens at 03:00 UTC. Bookkeeping stamps (`updated_at`) stay on the
database's clock.

A simulated clock is either set in-process (`simulate(...)`) or, in sandbox mode only, by the
`WAIFUGEN_NOW` setting (an ISO 8601 time: the clock starts there and runs on at real speed),
so a CLI process can be run "as of" a moment. Production always runs on real time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterator

_lock = threading.Lock()


class SimulatedClock:
    """A clock that moves only when told to (`set`, `advance`, or `sleep` in simulation).

    `on_change` hears each new time, e.g. to move the sandbox's clock along with ours."""

    def __init__(self, start: dt.datetime,
                 on_change: Callable[[dt.datetime], None] | None = None) -> None:
        self._now = _aware(start)
        self.on_change = on_change

    def now(self) -> dt.datetime:
        return self._now

    def set(self, when: dt.datetime) -> None:
        when = _aware(when)
        if when < self._now:
            raise ValueError(f"a simulated clock does not go back ({when} < {self._now})")
        self._now = when
        if self.on_change is not None:
            self.on_change(when)

    def advance(self, seconds: float) -> None:
        self.set(self._now + dt.timedelta(seconds=max(0.0, seconds)))


class _OffsetClock:
    """Real time shifted so that it read `start` when the process first asked (WAIFUGEN_NOW)."""

    def __init__(self, start: dt.datetime) -> None:
        self._offset = _aware(start).timestamp() - time.time()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(time.time() + self._offset, dt.UTC)


_active: SimulatedClock | _OffsetClock | None = None
_env_checked = False


def _aware(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError(f"{when} has no time zone: give an aware (UTC) time")
    return when.astimezone(dt.UTC)


def parse_instant(raw: str) -> dt.datetime:
    """An ISO 8601 time with its offset (`2026-12-05T03:00:00Z`); ValueError otherwise."""
    try:
        when = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 time (e.g. 2026-12-05T03:00:00Z)") from None
    if when.tzinfo is None:
        raise ValueError(f"{raw!r} has no UTC offset (add Z or +00:00)")
    return when.astimezone(dt.UTC)


def _from_environment() -> None:
    """WAIFUGEN_NOW, read once per process (sandbox mode only; production refuses it)."""
    global _active, _env_checked
    with _lock:
        if _env_checked:
            return
        _env_checked = True
        raw = os.environ.get("WAIFUGEN_NOW")
        if not raw or _active is not None:
            return
        from waifugen_assets.core.config import ConfigError, get_settings

        if not get_settings().is_sandbox:
            raise ConfigError("WAIFUGEN_NOW is for sandbox mode only: production runs on "
                              "real time")
        try:
            _active = _OffsetClock(parse_instant(raw))
        except ValueError as exc:
            raise ConfigError(f"WAIFUGEN_NOW: {exc}") from None


def now() -> dt.datetime:
    """The current time, aware, in UTC."""
    if not _env_checked:
        _from_environment()
    active = _active
    return dt.datetime.now(dt.UTC) if active is None else active.now()


def timestamp() -> float:
    """`now()` as seconds since the epoch."""
    return now().timestamp()


def simulated() -> bool:
    """True while a simulated clock (or WAIFUGEN_NOW) replaces real time."""
    if not _env_checked:
        _from_environment()
    return _active is not None


def sleep(seconds: float) -> None:
    """Wait: really, or by moving a simulated clock on (it would never get there otherwise)."""
    active = _active
    if isinstance(active, SimulatedClock):
        active.advance(seconds)
    elif seconds > 0:
        time.sleep(seconds)


@contextlib.contextmanager
def simulate(start: dt.datetime,
             on_change: Callable[[dt.datetime], None] | None = None) -> Iterator[SimulatedClock]:
    """Run the block on a simulated clock starting at `start` (benchmarks, tests)."""
    global _active
    clock = SimulatedClock(start, on_change)
    with _lock:
        previous, _active = _active, clock
    try:
        yield clock
    finally:
        with _lock:
            _active = previous


@contextlib.contextmanager
def running_from(start: dt.datetime) -> Iterator[None]:
    """Run the block as if it were `start`, the clock running on at real speed (tests)."""
    global _active
    with _lock:
        previous, _active = _active, _OffsetClock(start)
    try:
        yield
    finally:
        with _lock:
            _active = previous


def local_today(timezone: str, at: dt.datetime | None = None) -> dt.date:
    """The calendar date in `timezone` (a character's day) at `at` (default: now)."""
    from zoneinfo import ZoneInfo

    return (at or now()).astimezone(ZoneInfo(timezone)).date()
