"""Alembic environment: online migrations against the URL set by waifugen_assets.core.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from waifugen_assets.core.schema import metadata

config = context.config


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `waifugen db upgrade`")
run_migrations_online()
