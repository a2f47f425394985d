"""The analysts' role on the real database: the marts yes; subscribers, platform accounts,
inbound events, credentials, staging views and the app tables no."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet
from dbt_run import dbt_build, failure_text
from sqlalchemy.engine import make_url

from waifugen_assets.analytics.access import add_analyst, analyst_logins
from waifugen_assets.core.config import ConfigError

pytestmark = pytest.mark.integration

FORBIDDEN = ("public.subscribers", "public.platform_accounts", "public.inbound_events",
             "public.credentials", "public.revenue_events", "public.dm_messages",
             "analytics_staging.stg_reels")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def analyst(engine: sa.Engine) -> Iterator[str]:
    name = f"analyst_{uuid.uuid4().hex[:10]}"
    yield name
    with engine.begin() as conn:  # roles belong to the server: leave none behind
        if conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}):
            conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
            conn.execute(sa.text(f'DROP ROLE "{name}"'))


def _as(db_url: str, name: str) -> sa.Engine:
    return sa.create_engine(make_url(db_url).set(username=name, password=PASSWORD))


def test_the_analyst_reads_the_marts_and_nothing_else(db_url: str, engine: sa.Engine,
                                                      analyst: str, tmp_path: Path) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO characters (id, name, age, timezone) "
                             "VALUES ('aiko', 'Aiko', 24, 'Asia/Tokyo')"))
        conn.execute(sa.text(
            "INSERT INTO subscribers (character_id, platform, external_id, handle) "
            "VALUES ('aiko', 'telegram', '12345', 'secret_handle')"))
    proc = dbt_build(db_url, tmp_path)
    assert proc.returncode == 0, failure_text(proc)

    assert add_analyst(engine, analyst, PASSWORD) is True
    assert analyst in analyst_logins(engine)
    reader = _as(db_url, analyst)
    try:
        with reader.connect() as conn:
            marts = conn.scalars(sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'analytics' ORDER BY 1")).all()
            assert "cost_per_reel" in marts
            for mart in marts:  # every mart readable, by its bare name (search_path)
                conn.execute(sa.text(f'SELECT count(*) FROM "{mart}"')).scalar_one()  # noqa: S608
        for table in FORBIDDEN:
            with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as err:
                conn.execute(sa.text(f"SELECT * FROM {table} LIMIT 1"))  # noqa: S608
            assert "permission denied" in str(err.value), table
        with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as err:
            conn.execute(sa.text("CREATE TABLE analytics.mine (x int)"))
        assert "permission denied" in str(err.value)
    finally:
        reader.dispose()

    # A rebuilt mart (dbt drops and recreates tables) stays readable: grants follow it.
    proc = dbt_build(db_url, tmp_path)
    assert proc.returncode == 0, failure_text(proc)
    reader = _as(db_url, analyst)
    try:
        with reader.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM cost_per_reel")).scalar_one()
    finally:
        reader.dispose()
    # Adding the same name again resets its password instead of failing.
    assert add_analyst(engine, analyst, PASSWORD) is False


@pytest.mark.parametrize(("name", "password", "message"), [
    ("Bad-Name", PASSWORD, "use lowercase letters"),
    ("waifugen_analyst", PASSWORD, "is reserved"),
    ("pg_monitor", PASSWORD, "is reserved"),
    ("bob", "short", "at least 12 characters"),
])
def test_bad_analyst_input_is_refused(engine: sa.Engine, name: str, password: str,
                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        add_analyst(engine, name, password)


def test_cli_refuses_a_bad_name_in_one_line(db_url: str, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    from waifugen_assets.app.cli import main
    from waifugen_assets.core.config import get_settings

    monkeypatch.setenv("WAIFUGEN_MODE", "production")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WAIFUGEN_SECRET_KEY", Fernet.generate_key().decode())
    for name in ("OLLAMA_HOST", "A2E_API_KEY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["analysts", "add", "Bad Name"], input=PASSWORD)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: analyst name 'Bad Name'")
