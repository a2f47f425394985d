"""Shared fixtures: a real PostgreSQL for every test that needs one.

The server is TEST_DATABASE_URL when set (any PostgreSQL the tests may create databases on,
e.g. the machine's own: postgresql://postgres@127.0.0.1:5432/postgres), else an embedded
pgserver under .waifugen/test-pg. Each xdist worker migrates one template database once;
each test gets a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests never see each
other's rows and the migrations run on every test session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings
from sqlalchemy.engine import make_url

from waifugen_assets.core import migrate
from waifugen_assets.core.config import project_root
from waifugen_assets.core.embedded_pg import embedded_server_url, to_psycopg2

# CI explores the same examples on every run (a red build must mean a regression); local runs
# keep exploring new ones, and what they find is added as a regular test.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

def pytest_configure(config: pytest.Config) -> None:
    """The dbt manifest the code location loads, parsed once before xdist starts workers
    (`make test` has done it already unless a dbt file changed since)."""
    if not hasattr(config, "workerinput"):
        from waifugen_assets.analytics.project import ensure_manifest
        from waifugen_assets.core.config import ConfigError

        try:
            ensure_manifest()
        except ConfigError as exc:  # tests that load the definitions fail, naming it
            print(f"warning: {exc}")


# Tests must never pick up an operator's production settings.
for _name in ("WAIFUGEN_MODE", "DATABASE_URL", "WAIFUGEN_SECRET_KEY", "DAGSTER_HOME"):
    os.environ.pop(_name, None)


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a database on the test server that we can run CREATE DATABASE from."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return to_psycopg2(url)
    return embedded_server_url(project_root() / ".waifugen" / "test-pg")


def database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    engine = _admin(server_url)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{suffix}'))
    engine.dispose()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    engine = _admin(server_url)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def template_db(pg_server_url: str, worker_id: str) -> Iterator[str]:
    """A database migrated to head, copied for each test.

    Named by process too: several pytest sessions (developers, helpers, CI) may share a server.
    """
    name = f"wg_template_{worker_id}_{os.getpid()}"
    url = create_database(pg_server_url, name)
    migrate.upgrade(url)
    yield name
    drop_database(pg_server_url, name)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no tables (for migration tests)."""
    name = f"wg_empty_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh database at migration head."""
    name = f"wg_test_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server_url, name, template=template_db)
    drop_database(pg_server_url, name)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def project_dir() -> Path:
    return project_root()


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The sandbox (every outside system) over real HTTP on a free loopback port."""
    from sandbox.server import SandboxServer

    with SandboxServer(state_dir=tmp_path_factory.mktemp("sandbox"), seed=1234) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_breaker() -> None:
    """The render circuit breaker is per process: no test inherits another's failures."""
    from waifugen_assets.rendering.tasks import BREAKER

    BREAKER.success("a2e")
    BREAKER.success("runpod")


@pytest.fixture
def sandbox(sandbox_server):
    """The shared sandbox with no faults and its clock on real time, before and after this
    test (a test may move the sandbox clock; the next one must not inherit it)."""
    sandbox_server.clear_faults()
    sandbox_server.real_clock()
    yield sandbox_server
    sandbox_server.clear_faults()
    sandbox_server.real_clock()


@pytest.fixture
def pipeline_resources(db_url: str, sandbox_server, tmp_path: Path) -> dict[str, object]:
    """Resources for materializing assets: the test database, the sandbox, a copied roster."""
    import shutil

    from resources.a2e import A2EResource
    from resources.database import DatabaseResource
    from resources.ffmpeg import FfmpegResource
    from resources.instagram import InstagramResource
    from resources.ollama import OllamaResource
    from resources.roster_file import RosterResource
    from resources.runpod import RunPodResource
    from resources.telegram import TelegramResource
    from resources.tiktok import TikTokResource
    from resources.video_store import VideoStoreResource
    from resources.youtube import YouTubeResource

    roster = tmp_path / "characters.yaml"
    shutil.copyfile(project_root() / "characters.yaml", roster)
    # Each test is its own A2E account and RunPod endpoint: balances, rate budgets and
    # injected job outcomes never leak between tests.
    account = uuid.uuid4().hex[:10]
    return {
        "database": DatabaseResource(url=db_url),
        "roster": RosterResource(path=str(roster)),
        "ollama": OllamaResource(host=f"{sandbox_server.url}/ollama"),
        "telegram": TelegramResource(base_url=f"{sandbox_server.url}/telegram"),
        "a2e": A2EResource(api_key=f"sk_sandbox_{account}", base_url=f"{sandbox_server.url}/a2e"),
        "runpod": RunPodResource(api_key="rpa_sandbox_test", endpoint_id=f"ep-{account}",
                                 base_url=f"{sandbox_server.url}/runpod"),
        "video_store": VideoStoreResource(local_root=str(tmp_path / "videos"),
                                          public_base_url="https://media.example.test/v",
                                          work_dir=str(tmp_path / "downloads"),
                                          sandbox_url=sandbox_server.url),
        "ffmpeg": FfmpegResource(),
        # Platform accounts get per-test names when tokens are seeded (publishing tests);
        # the YouTube project (client id) is per test too, so quotas never leak.
        "tiktok": TikTokResource(base_url=f"{sandbox_server.url}/tiktok"),
        "instagram": InstagramResource(base_url=f"{sandbox_server.url}/instagram"),
        "youtube": YouTubeResource(
            base_url=f"{sandbox_server.url}/youtube",
            token_url=f"{sandbox_server.url}/youtube/oauth2",
            client_id=f"wg-{account}.apps.googleusercontent.com",
            client_secret="GOCSPX-sandbox-waifugen"),
    }


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 (and IAM) server on a free loopback port, for a module's tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
