"""Running the sandbox: `serve` blocks (the CLI), `SandboxServer` runs it in a thread (tests).

Loopback only: the sandbox has no authentication worth the name and its journal shows what
clients sent, so it must never listen on a public interface.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn

from sandbox.app import SandboxApp, build_app
from sandbox.connection import SandboxH11Protocol

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SEED = 1234
logger = logging.getLogger(__name__)


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox only listens on loopback (127.0.0.1, ::1, localhost), "
                         f"not {host!r}: it has no real authentication and journals requests")


def _config(app: SandboxApp, host: str, port: int, *, quiet: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port,
        http=SandboxH11Protocol,  # h11 with connection control, for drop/truncate faults
        loop="asyncio", ws="none", lifespan="off",
        # A thread inside a test process must not reconfigure the process's logging.
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
        log_level="warning" if quiet else "info", access_log=not quiet,
        timeout_graceful_shutdown=5,  # then cancel requests still running (e.g. long delays)
    )


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          state_dir: Path | None = None, seed: int = DEFAULT_SEED) -> None:
    """Serve every registered system until interrupted (Ctrl-C)."""
    check_loopback(host)
    if state_dir is None:
        from waifugen_assets.core.config import get_settings

        state_dir = get_settings().sandbox_state
    app = build_app(Path(state_dir), seed)
    logger.info("sandbox state in %s, seed %d", state_dir, seed)
    try:
        uvicorn.Server(_config(app, host, port, quiet=False)).run()
    finally:
        app.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, or asyncio skips TCP_NODELAY on accepted sockets and every response
    # waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that tells a waiting thread when startup has finished."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self._ready.set()


class SandboxServer:
    """The sandbox on a free loopback port in a background thread, as a context manager."""

    def __init__(self, state_dir: Path, seed: int = DEFAULT_SEED, host: str = DEFAULT_HOST,
                 port: int = 0) -> None:
        check_loopback(host)
        self.state_dir = Path(state_dir)
        self.seed = seed
        self.host = host
        self.port = port
        self._app: SandboxApp | None = None
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._http: httpx.Client | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("sandbox server already started")
        self._app = build_app(self.state_dir, self.seed)
        try:
            sock = _listen(self.host, self.port)
        except OSError:
            self._app.close()
            self._app = None
            raise
        # Listening from here on: connections made before the loop runs wait in the backlog.
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        self._server = _ThreadServer(_config(self._app, self.host, self.port, quiet=True), ready)

        def run() -> None:
            try:
                self._server.run(sockets=[sock])  # type: ignore[union-attr]
            except BaseException as exc:  # uvicorn reports startup failure via SystemExit
                self._error = exc
            finally:
                sock.close()
                ready.set()

        self._thread = threading.Thread(target=run, name=f"sandbox:{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if not self._server.started:
            self._thread.join()
            self._app.close()
            raise RuntimeError("sandbox server failed to start") from self._error
        self._http = httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            if self._thread.is_alive():  # a client holds a request open: stop waiting for it
                self._server.force_exit = True
                self._thread.join()
        if self._app is not None:
            self._app.close()
        self._server = self._thread = self._app = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # Control-route helpers (real HTTP, like any other client) ----------------------------

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("sandbox server is not running")
        return self._http

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client().request(method, f"/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def journal(self, system: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"since": since}
        if system is not None:
            params["system"] = system
        return self._call("GET", "/journal", params=params)

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", json=spec)

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")

    def remove_fault(self, fault_id: int) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def clock(self) -> dict[str, Any]:
        """`{"now", "iso", "frozen", "offset", "real"}` of the sandbox clock."""
        return self._call("GET", "/clock")

    def set_clock(self, now: float | str | dt.datetime, frozen: bool = True) -> dict[str, Any]:
        """Set the sandbox clock to `now` (epoch seconds, ISO 8601 with offset, or an aware
        datetime); frozen it stays there, else it runs on at real speed."""
        if isinstance(now, dt.datetime):
            if now.tzinfo is None:
                raise ValueError("set_clock needs an aware datetime (with tzinfo)")
            now = now.timestamp()
        return self._call("POST", "/clock", json={"now": now, "frozen": frozen})

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the sandbox clock forward by `seconds` (>= 0)."""
        return self._call("POST", "/clock", json={"advance": seconds})

    def real_clock(self) -> dict[str, Any]:
        """Back to real time."""
        return self._call("DELETE", "/clock")
