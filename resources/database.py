"""The app database (PostgreSQL) as a Dagster resource.

In sandbox mode with no DATABASE_URL the URL is the embedded pgserver under WAIFUGEN_HOME;
otherwise DATABASE_URL (or DATABASE_URL_FILE). The URL is resolved when a run uses the
resource, never stored in resource config, so it cannot show up in the Dagster UI.
"""

from __future__ import annotations

import importlib.util
import threading

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from waifugen_assets.core import redaction
from waifugen_assets.core.config import ConfigError, Settings, get_settings
from waifugen_assets.core.embedded_pg import embedded_database_url, to_psycopg2

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()
URL_SHAPE = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
# The driver module SQLAlchemy imports for each PostgreSQL driver name.
_DRIVER_MODULES = {"psycopg": "psycopg", "asyncpg": "asyncpg", "pg8000": "pg8000",
                   "psycopg2cffi": "psycopg2cffi"}


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return checked_database_url(settings.database_url)
    if settings.is_sandbox:
        return embedded_database_url(settings.home)
    raise ConfigError("DATABASE_URL is not set (set DATABASE_URL or DATABASE_URL_FILE)")


def checked_database_url(raw: str) -> str:
    """DATABASE_URL as the psycopg2 URL SQLAlchemy connects with, or a ConfigError saying
    what is wrong with it (without the URL: it holds the password)."""
    try:
        url = sa.engine.make_url(raw.strip())
    except sa.exc.ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a database URL: expected {URL_SHAPE}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(f"DATABASE_URL is a {backend} URL; the app database is PostgreSQL: "
                          f"{URL_SHAPE}")
    if driver not in ("", "psycopg2"):
        installed = importlib.util.find_spec(_DRIVER_MODULES.get(driver, driver)) is not None
        raise ConfigError(
            f"DATABASE_URL asks for the driver {driver} (postgresql+{driver}://), which "
            f"{'waifugen does not use' if installed else 'is not installed'}: write "
            f"postgresql:// (waifugen connects with psycopg2)")
    return to_psycopg2(url.render_as_string(hide_password=False))


def check_connection(url: str, timeout_s: int = 10) -> None:
    """Connect once, or raise a ConfigError saying where and why not, in one line."""
    engine = sa.create_engine(to_psycopg2(url), poolclass=sa.NullPool,
                              connect_args={"connect_timeout": timeout_s})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        where = sa.engine.make_url(url)
        reason = next((line.strip() for line in str(exc.orig).splitlines() if line.strip()),
                      type(exc.orig).__name__)
        raise ConfigError(redaction.redact(
            f"cannot connect to the app database {where.database or ''} on "
            f"{where.host or 'the local socket'}{f':{where.port}' if where.port else ''} "
            f"(DATABASE_URL): {reason}")) from None
    finally:
        engine.dispose()


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

    def resolved_url(self) -> str:
        """The URL this resource connects to (for tools that open their own connection: dbt)."""
        return self.url or resolve_database_url(get_settings())

    def get_engine(self) -> sa.Engine:
        return engine_for(self.resolved_url())
