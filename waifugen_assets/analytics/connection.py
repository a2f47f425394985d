"""The dbt profile's connection (dbt_analytics/profiles.yml reads DBT_PG_*) from the app
database URL, set in this process's environment only while a dbt command starts.

dagster-dbt builds the dbt subprocess's environment from `os.environ` and opens its own
adapter in this process, so the variables must be in `os.environ`; they are restored after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from waifugen_assets.core.schema import ANALYTICS_SCHEMA


def connection_env(url: str, schema: str = ANALYTICS_SCHEMA) -> dict[str, str]:
    """DBT_PG_* for the database at `url` (a Unix socket directory is a host to libpq)."""
    u = make_url(url)
    return {
        "DBT_PG_HOST": str(u.query.get("host") or u.host or "127.0.0.1"),
        "DBT_PG_PORT": str(u.port or 5432),
        "DBT_PG_USER": u.username or "postgres",
        "DBT_PG_PASSWORD": u.password or "",
        "DBT_PG_DBNAME": str(u.database),
        "DBT_PG_SCHEMA": schema,
        "DBT_PG_SSLMODE": str(u.query.get("sslmode") or "prefer"),
    }


@contextmanager
def dbt_environment(url: str, schema: str = ANALYTICS_SCHEMA,
                    indirect_selection: str | None = None,
                    extra: dict[str, str] | None = None) -> Iterator[None]:
    """The profile's variables, `extra` (the daily window), and dbt's indirect selection when
    given (which tests run with the models a command selects; dagster-dbt overrides it when
    it runs a subset of the checks)."""
    wanted = {**connection_env(url, schema), **(extra or {})}
    if indirect_selection:
        wanted["DBT_INDIRECT_SELECTION"] = indirect_selection
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
