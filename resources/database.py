"""The app database (PostgreSQL) as a Dagster resource.

In sandbox mode with no DATABASE_URL the URL is the embedded pgserver under WAIFUGEN_HOME;
otherwise DATABASE_URL (or DATABASE_URL_FILE). The URL is resolved when a run uses the
resource, never stored in resource config, so it cannot show up in the Dagster UI.
"""

from __future__ import annotations

import threading

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from waifugen_assets.core.config import ConfigError, Settings, get_settings
from waifugen_assets.core.embedded_pg import embedded_database_url, to_psycopg2

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return to_psycopg2(settings.database_url)
    if settings.is_sandbox:
        return embedded_database_url(settings.home)
    raise ConfigError("DATABASE_URL is not set (set DATABASE_URL or DATABASE_URL_FILE)")


def engine_for(url: str) -> sa.Engine:
    """One pooled engine per URL per process."""
    url = to_psycopg2(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _engines[url] = engine
        return engine


class DatabaseResource(dg.ConfigurableResource):
    """The app database. `url` is for tests; deployments leave it unset."""

    url: str | None = Field(default=None, description="Override; normally from the settings.")

    def get_engine(self) -> sa.Engine:
        return engine_for(self.url or resolve_database_url(get_settings()))
