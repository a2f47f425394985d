"""Cutting a client's TCP connection from inside the ASGI app, for drop/truncate faults.

An ASGI app can only send HTTP messages: if it raises before starting a response, uvicorn
answers 500, which is not what a dropped connection looks like. `SandboxH11Protocol` (h11,
chosen explicitly so the behaviour does not depend on whether httptools is installed) puts a
`ConnectionControl` for the request's transport into `scope["extensions"]`.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

EXTENSION = "sandbox.connection"


class ConnectionControl:
    def __init__(self, protocol: H11Protocol) -> None:
        self._protocol = protocol

    def abort(self) -> None:
        """Close now, discarding anything not yet written: the client gets no response."""
        self._protocol.transport.abort()

    def close(self) -> None:
        """Close after what was written so far reaches the client (a truncated response)."""
        self._protocol.transport.close()


class SandboxH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner: ASGIApp = self.app
        control = ConnectionControl(self)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[EXTENSION] = control
            await inner(scope, receive, send)

        self.app = app


async def cut_connection(scope: Scope, receive: Receive, *, flush: bool) -> None:
    """Close the request's connection and return once the server has noticed.

    Returning earlier would make uvicorn think the app forgot to respond and log an error
    (or try to send a 500 into the closed socket).
    """
    control = scope.get("extensions", {}).get(EXTENSION)
    if not isinstance(control, ConnectionControl):
        raise RuntimeError("dropping a connection needs the sandbox HTTP protocol "
                           "(run the app with sandbox.server)")
    if flush:
        control.close()
    else:
        control.abort()
    while (await receive())["type"] != "http.disconnect":
        pass  # unread request body: discard it
