"""What the `waifugen` command groups share: date and port arguments checked before anything
starts, one-line failures, the app database URL after checking it answers and its schema."""

from __future__ import annotations

import datetime as dt
import sys

import click

from waifugen_assets.core import redaction
from waifugen_assets.core.config import ConfigError, get_settings

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _today() -> dt.date:
    """Today in UTC (the sandbox's own counters; characters' days are their local ones)."""
    from waifugen_assets.core import clock
    return clock.now().date()


def _fail(message: str) -> None:
    click.echo(redaction.redact(f"error: {message}"), err=True)
    sys.exit(1)


def _database_url() -> str:
    """The app database URL; a DATABASE_URL that is malformed or does not answer stops here
    in one line (the embedded server is started, or joined, instead when it is unset)."""
    from resources.database import check_connection, resolve_database_url

    settings = get_settings()
    url = resolve_database_url(settings)
    if settings.database_url:
        check_connection(url)
    return url


def port_option(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """A TCP port, checked before anything starts: one line and exit 1 (click's own range
    check is a usage error: exit 2 and the usage text)."""
    if value is not None and not 0 <= value <= 65535:
        raise ConfigError(f"{param.opts[0]} {value}: a port is a number from 0 to 65535")
    return value


def check_partition_date(day: dt.date) -> None:
    """Refuse a day the date partitions do not have, before anything starts. The range is
    read from the partitions definition now (its first date is a setting)."""
    from waifugen_assets.pipeline import partitions

    dates = partitions.daily_partitions
    if not dates.has_partition_key(day.isoformat()):
        raise ConfigError(f"--date {day} is not a partition date (the dates run from "
                          f"{dates.get_first_partition_key()} to "
                          f"{dates.get_last_partition_key()}); nothing was run")


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
