"""A scripted HTTP server for the HTTP layer's tests: Starlette on uvicorn, 127.0.0.1, port 0.

`server.script(Reply(503), Reply(200, json={...}))` returns a fresh path whose successive hits
get those replies (the last one repeats); `server.hits(path)` records what arrived. Replies can
also drop the connection after reading the request, or never answer until the client leaves.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

CHUNK = 64 * 1024
MAX_HANG_SECONDS = 5.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    # drop: close the connection after reading the request; hang: answer only if the client
    # is still there after MAX_HANG_SECONDS (it normally times out first).
    action: Literal["respond", "drop", "hang"] = "respond"


@dataclass(frozen=True)
class Hit:
    method: str
    query: str
    headers: dict[str, str]
    body: bytes


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._ready.set()  # also on failure, so start() never waits in vain


class ScriptedServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._hits: dict[str, list[Hit]] = {}
        self._ids = itertools.count(1)
        self.stream_gate = threading.Event()  # /stream waits on it after the first chunk
        self._starlette = Starlette(routes=[Route("/stream/{size:int}", self._stream)])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        config = uvicorn.Config(self._asgi, interface="asgi3", lifespan="off", http="h11",
                                log_level="warning", access_log=False, proxy_headers=False)
        self._server = _Uvicorn(config, self._ready)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="http-test-server", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        if not self._ready.wait(10) or not self._server.started:
            raise RuntimeError("test HTTP server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    # --- scripting ---------------------------------------------------------------------------

    def script(self, *replies: Reply, path: str | None = None) -> str:
        path = path or f"/s/{next(self._ids)}"
        with self._lock:
            self._scripts[path] = deque(replies)
            self._hits[path] = []
        return path

    def hits(self, path: str) -> list[Hit]:
        with self._lock:
            return list(self._hits.get(path, []))

    def url(self, path: str) -> str:
        return self.base_url + path

    # --- ASGI --------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Scripted paths are served raw: dropping a connection needs uvicorn's own `send`.
        if scope["type"] == "http" and scope["path"] in self._scripts:
            await self._scripted(scope, receive, send)
        else:
            await self._starlette(scope, receive, send)

    async def _scripted(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        path = scope["path"]
        with self._lock:
            self._hits[path].append(Hit(request.method, request.url.query,
                                        dict(request.headers), body))
            queue = self._scripts[path]
            reply = queue.popleft() if len(queue) > 1 else queue[0]
        if reply.action == "drop":
            await _drop_connection(receive, send)
        elif reply.action == "hang":
            await _wait_for_disconnect(receive)
        else:
            await _response(reply)(scope, receive, send)

    async def _stream(self, request: Request) -> StreamingResponse:
        size = request.path_params["size"]
        gate = self.stream_gate
        block = b"x" * CHUNK

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                part = block[: min(CHUNK, size - sent)]
                yield part
                sent += len(part)
                if sent == len(part) and not await anyio.to_thread.run_sync(gate.wait, 5):
                    # The client never saw the first chunk: it is buffering. Break the body.
                    raise RuntimeError("client did not read the first chunk")

        return StreamingResponse(chunks(), media_type="video/mp4",
                                 headers={"content-length": str(size)})


def _response(reply: Reply) -> Response:
    if reply.json is not None:
        return JSONResponse(reply.json, status_code=reply.status, headers=dict(reply.headers))
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


async def _drop_connection(receive: Receive, send: Send) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # uvicorn's h11 cycle keeps its asyncio transport here
        raise RuntimeError("cannot reach the connection to drop it (uvicorn internals changed)")
    transport.close()
    await _wait_for_disconnect(receive)


async def _wait_for_disconnect(receive: Receive) -> None:
    with anyio.move_on_after(MAX_HANG_SECONDS):
        while (await receive())["type"] != "http.disconnect":
            pass
