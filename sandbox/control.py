"""The `/_sandbox` control routes: health, the request journal, fault injection, the clock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.clock import ClockError, SandboxClock, parse_instant
from sandbox.faults import FaultBook, FaultSpecError
from sandbox.state import StateStore


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def apply_clock_request(clock: SandboxClock, body: Any) -> dict[str, Any]:
    """Carry out a POST /_sandbox/clock body; ClockError (-> 400) when it is not valid."""
    if not isinstance(body, dict):
        raise ClockError('body must be a JSON object: {"now", "frozen"?}, {"advance"} or '
                         '{"real": true}')
    unknown = sorted(set(body) - {"now", "frozen", "advance", "real"})
    if unknown:
        raise ClockError(f"unknown fields {unknown}; known: advance, frozen, now, real")
    given = [name for name in ("now", "advance", "real") if name in body]
    if len(given) != 1:
        raise ClockError("give exactly one of now, advance, real")
    if "frozen" in body and given != ["now"]:
        raise ClockError("frozen goes with now")
    if "real" in body:
        if body["real"] is not True:
            raise ClockError("real must be true (to leave real time, POST {\"now\": ...})")
        return clock.real()
    if "advance" in body:
        seconds = body["advance"]
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ClockError("advance must be a number of seconds >= 0")
        return clock.advance(float(seconds))
    frozen = body.get("frozen", True)
    if not isinstance(frozen, bool):
        raise ClockError("frozen must be true or false")
    return clock.set(parse_instant(body["now"]), frozen)


def control_app(store: StateStore, faults: FaultBook, systems: Sequence[str],
                clock: SandboxClock) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "systems": list(systems)})

    async def journal(request: Request) -> Response:
        system = request.query_params.get("system") or None
        if system is not None and system not in systems:
            return _error(400, f"unknown system {system!r}; systems: {list(systems)}")
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return _error(400, "since must be an integer journal id")
        return JSONResponse(store.journal(system, since))

    async def clear_journal(request: Request) -> Response:
        store.journal_clear()
        return JSONResponse({"ok": True})

    async def list_faults(request: Request) -> Response:
        return JSONResponse(faults.list_faults())

    async def add_fault(request: Request) -> Response:
        try:
            spec = json.loads(await request.body())
            return JSONResponse(faults.add(spec), status_code=201)
        except ValueError as exc:  # also json.JSONDecodeError
            reason = str(exc) if isinstance(exc, FaultSpecError) else f"invalid JSON: {exc}"
            return _error(400, reason)

    async def clear_faults(request: Request) -> Response:
        faults.clear()
        return JSONResponse({"ok": True})

    async def get_fault(request: Request) -> Response:
        fault_id = request.path_params["fault_id"]
        found = [f for f in faults.list_faults() if f["id"] == fault_id]
        return JSONResponse(found[0]) if found else _error(404, f"no fault {fault_id}")

    async def remove_fault(request: Request) -> Response:
        fault_id = request.path_params["fault_id"]
        if faults.remove(fault_id):
            return JSONResponse({"ok": True})
        return _error(404, f"no fault {fault_id}")

    async def get_clock(request: Request) -> Response:
        return JSONResponse(clock.describe())

    async def post_clock(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
            return JSONResponse(apply_clock_request(clock, body))
        except ValueError as exc:  # ClockError, json.JSONDecodeError
            return _error(400, str(exc) if isinstance(exc, ClockError) else f"invalid JSON: {exc}")

    async def real_clock(request: Request) -> Response:
        return JSONResponse(clock.real())

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/journal", journal, methods=["GET"]),
        Route("/journal", clear_journal, methods=["DELETE"]),
        Route("/faults", list_faults, methods=["GET"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", clear_faults, methods=["DELETE"]),
        Route("/faults/{fault_id:int}", get_fault, methods=["GET"]),
        Route("/faults/{fault_id:int}", remove_fault, methods=["DELETE"]),
        Route("/clock", get_clock, methods=["GET"]),
        Route("/clock", post_clock, methods=["POST"]),
        Route("/clock", real_clock, methods=["DELETE"]),
    ])


class BadControlBody(ValueError):
    """A control route's body is not a JSON object; the message says which."""


async def read_control_body(request: Request) -> dict[str, Any]:
    """The JSON object a control route was sent (`{}` for an empty body), the one reader every
    system uses; BadControlBody names what is wrong, and each system words it as its API
    would."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadControlBody("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadControlBody("body must be a JSON object")
    return body
