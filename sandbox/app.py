"""The sandbox ASGI app: every registered system at `/<name>`, control routes at `/_sandbox`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.clock import SandboxClock
from sandbox.control import control_app
from sandbox.faults import FaultBook
from sandbox.gate import SystemGate
from sandbox.state import StateStore
from sandbox.system import SystemContext, SystemFactory

CONTROL_PREFIX = "_sandbox"


class SandboxApp:
    """ASGI app owning the state store; call `close()` once the server has stopped."""

    def __init__(self, state_dir: Path, seed: int,
                 systems: Mapping[str, SystemFactory] | None = None) -> None:
        if systems is None:
            from sandbox.systems import SYSTEMS

            systems = SYSTEMS
        self.state_dir = Path(state_dir)
        self.seed = seed
        self.store = StateStore(self.state_dir)
        self.faults = FaultBook(self.store, seed, systems)
        self.clock = SandboxClock(self.store)
        self.routes: dict[str, ASGIApp] = {}
        for name, factory in systems.items():
            context = SystemContext(name, seed, self.store.namespace(name), self.clock)
            self.routes[name] = SystemGate(name, factory(context), self.faults, self.store)
        self.routes[CONTROL_PREFIX] = control_app(self.store, self.faults, list(systems),
                                                  self.clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        root = scope.get("root_path", "")
        below_root = scope["path"][len(root):] if scope["path"].startswith(root) else scope["path"]
        first = below_root.lstrip("/").split("/", 1)[0]
        target = self.routes.get(first)
        if target is None:
            if scope["type"] == "http":
                systems = [n for n in self.routes if n != CONTROL_PREFIX]
                response = JSONResponse(
                    {"error": f"no sandbox system at /{first}", "systems": systems},
                    status_code=404)
                await response(scope, receive, send)
            return
        await target({**scope, "root_path": f"{root}/{first}"}, receive, send)

    def close(self) -> None:
        self.store.close()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_app(state_dir: Path, seed: int,
              systems: Mapping[str, SystemFactory] | None = None) -> SandboxApp:
    """The sandbox with `systems` (default: every registered one) on state in `state_dir`."""
    return SandboxApp(state_dir, seed, systems)
