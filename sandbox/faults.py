"""Fault specs: validation, persistence and the decision whether one fires for a request.

A fault matches a request by system, an fnmatch glob on the path below the system's mount and
optionally the method. Matching faults are tried in id order; each is rolled with its own
seeded stream, keyed by (server seed, the fault's spec, how many requests it has seen), so a
fault's pattern of hits is the same on every run whatever other traffic or faults exist and
it carries on where it left off after a restart.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Collection
from typing import Any

from sandbox.determinism import derive_rng
from sandbox.state import StateStore

NAMESPACE = "_sandbox"
ACTIONS = ("status", "rate_limit", "delay", "drop", "truncate")
# drop / delay: before the system handles the request, or after it acted (the answer is lost
# or late: the client's timeout fires although the platform did the work).
PHASES = ("before", "after")
_FIELDS = {"system", "route", "method", "action", "status", "retry_after", "delay",
           "probability", "times", "phase", "message"}
# What a fault's random stream is keyed by: its spec, not its id or counters.
_IDENTITY = ("system", "route", "method", "action", "status", "retry_after", "delay",
             "probability", "times", "phase")


class FaultSpecError(ValueError):
    pass


def _number(spec: dict[str, Any], name: str, default: float | None, low: float,
            high: float | None = None) -> float | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{name} must be a number")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise FaultSpecError(f"{name} must be {bound}")
    return float(value)


def validate(spec: object, systems: Collection[str]) -> dict[str, Any]:
    """A normalised fault (without id/counters) or FaultSpecError naming the problem."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault is a JSON object")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise FaultSpecError(f"unknown fault fields: {sorted(unknown)}")
    system = spec.get("system")
    if system not in systems:
        raise FaultSpecError(f"system must be one of {sorted(systems)}")
    action = spec.get("action")
    if action not in ACTIONS:
        raise FaultSpecError(f"action must be one of {list(ACTIONS)}")
    route = spec.get("route", "*")
    method = spec.get("method")
    if not isinstance(route, str) or not route:
        raise FaultSpecError("route must be a non-empty glob string")
    if method is not None and not isinstance(method, str):
        raise FaultSpecError("method must be a string")
    status = spec.get("status")
    if action == "status":
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultSpecError("status faults need an integer status between 100 and 599")
    elif status is not None:
        raise FaultSpecError("status is only for the 'status' action")
    retry_after = _number(spec, "retry_after", 1 if action == "rate_limit" else None, 0)
    delay = _number(spec, "delay", None, 0)
    if action == "delay" and delay is None:
        raise FaultSpecError("delay faults need delay (seconds)")
    times = spec.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise FaultSpecError("times must be a positive integer")
    phase = spec.get("phase", "before")
    if phase not in PHASES:
        raise FaultSpecError(f"phase must be one of {list(PHASES)}")
    message = spec.get("message")
    if message is not None and not isinstance(message, str):
        raise FaultSpecError("message must be a string")
    return {
        "system": system, "route": route, "method": method.upper() if method else None,
        "action": action, "status": status, "retry_after": retry_after, "delay": delay,
        "probability": _number(spec, "probability", 1, 0, 1), "times": times,
        "phase": phase if action in ("drop", "delay") else None, "message": message,
    }


class FaultBook:
    """The active faults: in memory for the per-request lookup, written through to state."""

    def __init__(self, store: StateStore, seed: int, systems: Collection[str]) -> None:
        self._store = store
        self._seed = seed
        self._systems = frozenset(systems)
        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = list(store.list_prefix(NAMESPACE, "faults/").values())

    def add(self, spec: object) -> dict[str, Any]:
        fault = validate(spec, self._systems)
        with self._lock:
            fault = {"id": self._store.next_id(NAMESPACE, "fault"), **fault, "seen": 0, "fired": 0}
            self._save(fault)
            self._faults.append(fault)
            return dict(fault)

    def list_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            kept = [f for f in self._faults if f["id"] != fault_id]
            if len(kept) == len(self._faults):
                return False
            self._faults = kept
            self._store.delete(NAMESPACE, _key(fault_id))
            return True

    def clear(self) -> None:
        with self._lock:
            self._faults = []
            self._store.delete_prefix(NAMESPACE, "faults/")

    def pick(self, system: str, method: str, path: str) -> dict[str, Any] | None:
        """The fault that fires for this request, if any (its counters are updated)."""
        with self._lock:
            for fault in self._faults:
                if not _matches(fault, system, method, path):
                    continue
                fault["seen"] += 1
                identity = {k: fault[k] for k in _IDENTITY}
                fires = derive_rng(self._seed, "fault", identity, fault["seen"]).random() \
                    < fault["probability"]
                if fires:
                    fault["fired"] += 1
                self._save(fault)
                if fires:
                    return dict(fault)
            return None

    def _save(self, fault: dict[str, Any]) -> None:
        self._store.put(NAMESPACE, _key(fault["id"]), fault)


def _key(fault_id: int) -> str:
    return f"faults/{fault_id:010d}"


def _matches(fault: dict[str, Any], system: str, method: str, path: str) -> bool:
    if fault["system"] != system:
        return False
    if fault["times"] is not None and fault["fired"] >= fault["times"]:
        return False
    if fault["method"] is not None and fault["method"] != method.upper():
        return False
    return fnmatch.fnmatchcase(path, fault["route"])
