"""The metrics server: GET /metrics (the collector's registry, via prometheus_client's ASGI
app: Prometheus text or OpenMetrics as the scraper asks) and GET /healthz (the process is up;
the databases' state is in the metrics, `waifugen_collector_errors` and
`waifugen_db_probe_seconds`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464  # the port commonly used by Prometheus exporters of an application


class _Exposition:
    """prometheus_client's ASGI app as a route endpoint (an object, not a function, so
    Starlette hands it the raw ASGI call) at exactly /metrics: no redirect to /metrics/."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(registry: CollectorRegistry) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/metrics", _Exposition(make_asgi_app(registry)), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def serve(registry: CollectorRegistry, *, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT) -> None:
    """Run the server with uvicorn until interrupted (`waifugen metrics serve`)."""
    import uvicorn

    # No access log: a line every scrape says nothing the metrics do not.
    uvicorn.run(create_app(registry), host=host, port=port, log_level="info",
                access_log=False, server_header=False)
