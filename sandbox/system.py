"""What a sandbox system is: an ASGI app plus how it words errors, built from a context."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from sandbox.determinism import derive_rng
from sandbox.state import SystemState

# (status, message, retry_after seconds or None) -> the response the real service would send.
ErrorResponder = Callable[[int, str, float | None], Response]


def default_error_response(status: int, message: str, retry_after: float | None) -> Response:
    return JSONResponse({"error": message}, status_code=status)


@dataclass(frozen=True)
class System:
    app: ASGIApp
    # Used for injected status and rate_limit faults, so they look like the real API's errors.
    error_response: ErrorResponder = default_error_response


@dataclass(frozen=True)
class SystemContext:
    """Everything a system gets from the sandbox: its name, state, seeded randomness and
    the sandbox clock."""

    name: str
    seed: int
    state: SystemState
    # Epoch seconds; the sandbox passes its SandboxClock (real time unless /_sandbox/clock
    # moved it), so systems never read time.time() for anything a client can observe.
    time_source: Callable[[], float] = time.time

    def clock(self) -> float:
        """Now, in epoch seconds, by the sandbox clock."""
        return self.time_source()

    def rng(self, *parts: object) -> random.Random:
        """Randomness that depends only on the server seed, this system and `parts`."""
        return derive_rng(self.seed, self.name, *parts)


SystemFactory = Callable[[SystemContext], System]
