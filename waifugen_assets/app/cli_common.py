"""What the `waifugen` command groups share: date arguments, one-line failures, the app
database URL after checking its schema."""

from __future__ import annotations

import datetime as dt
import sys

import click

from waifugen_assets.core import redaction
from waifugen_assets.core.config import get_settings

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _today() -> dt.date:
    """Today in UTC (the sandbox's own counters; characters' days are their local ones)."""
    from waifugen_assets.core import clock
    return clock.now().date()


def _fail(message: str) -> None:
    click.echo(redaction.redact(f"error: {message}"), err=True)
    sys.exit(1)


def _database_url() -> str:
    from resources.database import resolve_database_url

    return resolve_database_url(get_settings())


def _migrated_url() -> str:
    """The app database URL, after checking that its schema is current."""
    from waifugen_assets.core import migrate
    url = _database_url()
    current = migrate.current(url)
    if current is None:
        _fail("the app database is empty: run `waifugen db upgrade` or `make run` first")
    if current != migrate.head():
        _fail(f"the app database is at {current}, the code needs {migrate.head()}: run "
              "`waifugen db upgrade`")
    return url


def _app_engine():
    from resources.database import engine_for

    return engine_for(_migrated_url())
