"""Analysts' logins: a PostgreSQL role per analyst, member of `waifugen_analyst` (migration
0013), which may read the marts' schema and nothing else.

The password is hashed here (SCRAM-SHA-256, by libpq's own function) so the clear text never
reaches the server's statement log.
"""

from __future__ import annotations

import re

import psycopg2.extensions
import sqlalchemy as sa

from waifugen_assets.core.config import ConfigError
from waifugen_assets.core.schema import ANALYST_ROLE, ANALYTICS_SCHEMA

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MIN_PASSWORD = 12


def _check(name: str, password: str) -> None:
    if not ROLE_NAME.match(name):
        raise ConfigError(f"analyst name {name!r}: use lowercase letters, digits and _ "
                          "(a PostgreSQL role name, at most 63 characters)")
    if name == ANALYST_ROLE or name.startswith("pg_"):
        raise ConfigError(f"analyst name {name!r} is reserved")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")


def add_analyst(engine: sa.Engine, name: str, password: str) -> bool:
    """Create the login `name` in the analysts' role (or reset its password and membership
    when it exists); returns True when the role was created."""
    _check(name, password)
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        hashed = psycopg2.extensions.encrypt_password(password, name, dbapi, "scram-sha-256")
        with dbapi.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            exists = cur.fetchone() is not None
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANALYST_ROLE,))
            if cur.fetchone() is None:
                raise ConfigError(f"the role {ANALYST_ROLE} does not exist: run "
                                  "`waifugen db upgrade` first")
            verb = "ALTER" if exists else "CREATE"
            # Identifiers checked above; the hash is a literal the driver quotes.
            cur.execute(f'{verb} ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                        "PASSWORD %s", (hashed,))
            cur.execute(f'GRANT {ANALYST_ROLE} TO "{name}"')
            cur.execute(f'ALTER ROLE "{name}" SET search_path = {ANALYTICS_SCHEMA}')
        dbapi.commit()
        return not exists
    finally:
        raw.close()


def analyst_logins(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
            "JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = :role ORDER BY 1"),
            {"role": ANALYST_ROLE}))
