"""The gate in front of every system: journals each request and applies faults.

Request bodies stream through: the gate's `receive` hands each chunk to the system app as it
arrives and feeds it to the journal's hash on the way. Just before the response starts, any
body the app did not read is drained through the hash too, so the journal has size and
sha256 of every body (even for 404s and faults) without ever holding it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from sandbox.connection import cut_connection
from sandbox.faults import FaultBook
from sandbox.journal import BodyRecorder, headers_record, query_record, utc_now
from sandbox.state import StateStore
from sandbox.system import System
from waifugen_assets.core.redaction import redact


def route_path(scope: Scope) -> str:
    """The request path below the system's mount ("/api/chat" for "/ollama/api/chat")."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


class SystemGate:
    def __init__(self, name: str, system: System, faults: FaultBook, store: StateStore) -> None:
        self.name = name
        self.system = system
        self.faults = faults
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.system.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send)
        path = route_path(scope)
        fault = self.faults.pick(self.name, scope["method"], path)
        started, when = time.monotonic(), utc_now()

        def record() -> None:
            if exchange.recorded:
                return
            exchange.recorded = True
            self.store.journal_append(self.name, {
                "system": self.name,
                "method": scope["method"],
                "path": redact(path),  # Telegram puts the bot token in the path
                "query": query_record(scope.get("query_string", b"")),
                "headers": headers_record(scope["headers"]),
                "content_type": exchange.body.media_type or None,
                "body": exchange.body.record(),
                "status": None if exchange.cut else exchange.status,
                "fault": fault and {"id": fault["id"], "action": fault["action"]},
                "time": when,
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            })

        # Journaled just before the last byte of the answer leaves, so a client that has its
        # answer always finds the entry (tests read the journal right after a request).
        exchange.before_last_byte = record
        try:
            await self._serve(fault, exchange)
        except ClientDisconnect:  # the client went away (killed, timed out): nothing to answer
            exchange.cut = True
        except BaseException:
            if exchange.status is None and not exchange.cut:
                exchange.status = 500  # uvicorn answers 500 for us
            raise
        finally:
            record()

    async def _serve(self, fault: dict[str, Any] | None, ex: _Exchange) -> None:
        app, action = self.system.app, fault and fault["action"]
        if fault is None:
            await app(ex.scope, ex.app_receive, ex.app_send)
        elif action == "delay" and fault["phase"] == "after":
            async def late_send(message: Message) -> None:
                if message["type"] == "http.response.start":  # the system has acted
                    await asyncio.sleep(fault["delay"])
                await ex.app_send(message)
            await app(ex.scope, ex.app_receive, late_send)
        elif action == "delay":
            await asyncio.sleep(fault["delay"])
            await app(ex.scope, ex.app_receive, ex.app_send)
        elif action in ("status", "rate_limit"):
            status = 429 if action == "rate_limit" else fault["status"]
            message = fault["message"] or (
                "rate limit exceeded" if action == "rate_limit"
                else f"sandbox fault {fault['id']}: injected HTTP {status}")
            response = self.system.error_response(status, message, fault["retry_after"])
            if fault["retry_after"] is not None and "retry-after" not in response.headers:
                response.headers["Retry-After"] = str(math.ceil(fault["retry_after"]))
            await response(ex.scope, ex.app_receive, ex.app_send)
        elif action == "drop":
            if fault["phase"] == "after":  # the system acts, but its answer never leaves
                await app(ex.scope, ex.app_receive, ex.swallow_send)
            else:
                await ex.drain()
            ex.cut = True
            await cut_connection(ex.scope, ex.receive, flush=False)
        elif action == "truncate":
            truncator = _Truncator(ex)
            await app(ex.scope, ex.app_receive, truncator.send)
            await truncator.finish()


class _Exchange:
    """One request's plumbing: the journaled receive/send pair and what was observed."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        headers = dict(scope["headers"])
        self.body = BodyRecorder(headers.get(b"content-type", b"").decode("latin-1"))
        self.status: int | None = None
        self.cut = False  # connection dropped or truncated: no status reached the client
        self.recorded = False
        self.before_last_byte: Callable[[], None] = lambda: None

    async def app_receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.body.feed(message.get("body", b""), message.get("more_body", False))
        return message

    async def drain(self) -> None:
        while not self.body.complete:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            self.body.feed(message.get("body", b""), message.get("more_body", False))

    async def app_send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self.drain()
            self.status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.before_last_byte()
        await self.send(message)

    async def swallow_send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self.drain()


class _Truncator:
    """Sends the real headers (full Content-Length) and half the body, then closes."""

    def __init__(self, exchange: _Exchange) -> None:
        self.ex = exchange
        self.budget: int | None = None  # body bytes still to send; None: not known yet

    async def send(self, message: Message) -> None:
        if self.ex.cut:
            return
        if message["type"] == "http.response.start":
            length = dict(message.get("headers", [])).get(b"content-length")
            if length is not None:
                self.budget = int(length) // 2
            await self.ex.app_send(message)
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.budget is None:  # streamed: the first chunk, or half of a lone chunk
            self.budget = len(body) if more else len(body) // 2
        part = body[: self.budget]
        self.budget -= len(part)
        await self.ex.send({"type": "http.response.body", "body": part, "more_body": True})
        if self.budget <= 0 or not more:
            self.ex.cut = True
            await cut_connection(self.ex.scope, self.ex.receive, flush=True)

    async def finish(self) -> None:
        if not self.ex.cut:  # the app ended without a body to cut
            self.ex.cut = True
            await cut_connection(self.ex.scope, self.ex.receive, flush=True)
