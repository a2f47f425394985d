"""`waifugen metrics serve`: the Prometheus endpoint over the app database and the Dagster
instance (docs: the metrics in waifugen_assets/operations/metrics.py)."""

from __future__ import annotations

import click

from waifugen_assets.app.cli_common import _database_url, _fail, port_option
from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.operations.metrics_app import DEFAULT_HOST, DEFAULT_PORT


@click.group()
def metrics() -> None:
    """Prometheus metrics of the pipeline, read at scrape time."""


def _instance():  # -> dg.DagsterInstance
    """The Dagster instance of DAGSTER_HOME (in sandbox mode, the local one, created once)."""
    import dagster as dg

    from waifugen_assets.app.local_stack import ensure_dagster_home

    home = ensure_dagster_home(get_settings())
    try:
        return dg.DagsterInstance.get()
    except Exception as exc:  # its storage config or its database: one line, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot open the Dagster instance of DAGSTER_HOME={home}: "
                          f"{first}") from None


@metrics.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Listen address.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int,
              callback=port_option, help="Port.")
def metrics_serve(host: str, port: int) -> None:
    """Serve GET /metrics (Prometheus) and GET /healthz until interrupted."""
    import sqlalchemy as sa

    from waifugen_assets.operations.metrics import CONNECT_TIMEOUT_S, build_registry
    from waifugen_assets.operations.metrics_app import serve
    from waifugen_assets.pipeline.instance_stats import RunStats

    try:
        url = _database_url()  # a malformed or unreachable DATABASE_URL stops here
        instance = _instance()
    except ConfigError as exc:
        _fail(str(exc))
    # Its own engine: a bounded connect, so a database that stops answering costs a scrape
    # seconds, not the operating system's TCP timeout.
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=0,
                              connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    click.echo(f"metrics on http://{host}:{port}/metrics (GET /healthz)")
    serve(build_registry(engine, RunStats(instance)), host=host, port=port)


if __name__ == "__main__":  # `python -m waifugen_assets.app.cli_metrics serve`, standalone
    try:
        metrics()
    except ConfigError as exc:  # what the `waifugen` group does for every command
        _fail(str(exc))
