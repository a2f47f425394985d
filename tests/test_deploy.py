"""The deployment files: Dagster instance configs, pool script, image and docker-compose.yml.

Instance configs go through Dagster's own validation (`dagster_instance_config`), the
production storage config is resolved with its env vars down to the SQLAlchemy URL without
connecting, and the sandbox instance is really instantiated. docker-compose.yml is checked
structurally (no Docker engine here); `docker compose config -q` runs too when the compose
plugin is installed. The `integration` test brings the production instance up on a real
PostgreSQL, runs `dagster instance migrate` and deploy/set-pools.sh against it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import ConfigurableClassData, class_from_code_pointer
from dagster_postgres.utils import pg_url_from_config
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
IMAGE_ROOT = "/opt/waifugen"  # WORKDIR of deploy/Dockerfile: COPY . . lands here
VENV_BIN = Path(sys.executable).parent

EXPECTED_POOLS = {
    "tiktok": 1, "instagram": 1, "youtube": 1, "video_api": 2, "llm": 2, "telegram": 1,
    "fanvue": 1, "ffmpeg": 2,
}
APP_SERVICES = {"migrate", "codeserver", "webserver", "daemon", "webhooks", "metrics"}
LONG_RUNNING = {"postgres", "codeserver", "webserver", "daemon", "webhooks", "metrics",
                "prometheus", "alertmanager", "grafana", "nginx"}
SECRET_SETTINGS = {  # must only ever arrive as NAME_FILE
    "DATABASE_URL", "WAIFUGEN_SECRET_KEY", "DAGSTER_PG_PASSWORD", "DBT_PG_PASSWORD",
    "POSTGRES_PASSWORD",
}
PG_ENV = {
    "DAGSTER_PG_HOST": "postgres", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "waifugen",
    "DAGSTER_PG_PASSWORD": "not-a-real-password", "DAGSTER_PG_DB": "dagster",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def instance_dir(tmp_path: Path, source: str, rewrite_paths: bool = False) -> Path:
    """A DAGSTER_HOME holding deploy/<source> as dagster.yaml (optionally with the image's
    absolute storage paths moved under tmp_path so nothing is written outside it)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = load_yaml(DEPLOY / source)
    if rewrite_paths:
        config["local_artifact_storage"]["config"]["base_dir"] = str(tmp_path / "storage")
        config["compute_logs"]["config"]["base_dir"] = str(tmp_path / "storage" / "logs")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home


# --- Dagster instance configs --------------------------------------------------------------


@pytest.mark.parametrize("filename", ["dagster.yaml", "dagster.sandbox.yaml"])
def test_instance_config_passes_dagster_validation(filename: str) -> None:
    config, custom_class = dagster_instance_config(str(DEPLOY), filename)
    assert custom_class is None

    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] > 0
    assert {limit["key"] for limit in runs["tag_concurrency_limits"]} >= {"dagster/backfill"}
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["run_retries"] == {
        "enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False,
    }
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_runtime_seconds"] > 0
    assert config["telemetry"] == {"enabled": False}


def test_instance_validation_is_strict(tmp_path: Path) -> None:
    """The helper above really validates: a misspelled key is an error."""
    config = load_yaml(DEPLOY / "dagster.yaml")
    config["run_retries"]["retry_on_op_failure"] = False
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def test_production_storage_is_postgres_psycopg2_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolve the storage config the way dagster-postgres does, down to an engine, offline."""
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    ref = InstanceRef.from_dir(str(instance_dir(tmp_path, "dagster.yaml")))

    # Every configured class can be imported from the module named in the file.
    for data in (ref.local_artifact_storage_data, ref.compute_logs_data, ref.run_coordinator_data,
                 ref.run_launcher_data, ref.run_storage_data, ref.event_storage_data,
                 ref.schedule_storage_data):
        assert isinstance(data, ConfigurableClassData)
        class_from_code_pointer(data.module_name, data.class_name)

    assert ref.storage_data is not None
    assert ref.storage_data.class_name == "DagsterPostgresStorage"
    for data in (ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data):
        assert data.class_name.startswith("Postgres"), data.class_name
        cls = class_from_code_pointer(data.module_name, data.class_name)
        processed = process_config(cls.config_type(), data.config_dict)  # resolves {env: ...}
        assert processed.success, processed.errors
        url = make_url(pg_url_from_config(processed.value))
        assert url.drivername == "postgresql+psycopg2"
        assert (url.host, url.port, url.username, url.database) == (
            "postgres", 5432, "waifugen", "dagster")
        assert url.password == PG_ENV["DAGSTER_PG_PASSWORD"]
        engine = sa.create_engine(url)  # no connection is made
        assert engine.dialect.driver == "psycopg2"
        engine.dispose()

    # Without the scheme SQLAlchemy 2.1 would pick psycopg 3 for the same URL.
    assert sa.__version__ < "2.1" or make_url("postgresql://u@h/d").get_dialect().driver == (
        "psycopg")


def test_production_storage_needs_its_env_vars(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    ref = InstanceRef.from_dir(str(instance_dir(tmp_path, "dagster.yaml")))
    data = ref.run_storage_data
    cls = class_from_code_pointer(data.module_name, data.class_name)
    processed = process_config(cls.config_type(), data.config_dict)
    assert not processed.success
    assert "DAGSTER_PG_" in str(processed.errors)


def test_sandbox_instance_instantiates(tmp_path: Path) -> None:
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.run_coordinator import QueuedRunCoordinator

    home = instance_dir(tmp_path, "dagster.sandbox.yaml")
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, DefaultRunLauncher)
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled
        assert instance.event_log_storage.supports_global_concurrency_limits
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        # Storage stays inside the instance directory (SQLite), nothing under the repo.
        assert str(instance.root_directory).startswith(str(home))
        instance.event_log_storage.set_concurrency_slots("video_api", 2)
        assert instance.event_log_storage.get_concurrency_info("video_api").slot_count == 2
    finally:
        instance.dispose()


# --- deploy/*.sh --------------------------------------------------------------------------


# deploy/deploy.sh is bash on the host (tests/test_deploy_ops.py: bash -n, shellcheck, runs).
@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOY.glob("*.sh")
                                          if p.name != "deploy.sh"))
def test_shell_scripts_are_executable_posix_sh(script: str) -> None:
    path = DEPLOY / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert path.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(path)], check=True)


def _fake_dagster(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    fake = tmp_path / "fake-dagster"
    fake.write_text(f'#!/bin/sh\necho "$DAGSTER_HOME $*" >> {shlex.quote(str(log))}\n',
                    encoding="utf-8")
    fake.chmod(0o755)
    return fake, log


def test_set_pools_sets_every_pool(tmp_path: Path) -> None:
    fake, log = _fake_dagster(tmp_path)
    env = {"PATH": os.environ["PATH"], "DAGSTER": str(fake), "DAGSTER_HOME": "/x/home"}
    subprocess.run([str(DEPLOY / "set-pools.sh")], env=env, check=True, capture_output=True)
    calls = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    assert all(c[:4] == ["/x/home", "instance", "concurrency", "set"] for c in calls), calls
    assert {c[4]: int(c[5]) for c in calls} == EXPECTED_POOLS
    assert len(calls) == len(EXPECTED_POOLS)


def test_set_pools_refuses_without_dagster_home(tmp_path: Path) -> None:
    fake, log = _fake_dagster(tmp_path)
    proc = subprocess.run([str(DEPLOY / "set-pools.sh")],
                          env={"PATH": os.environ["PATH"], "DAGSTER": str(fake)},
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "DAGSTER_HOME" in proc.stderr
    assert not log.exists()


def test_every_pool_used_in_code_has_a_limit() -> None:
    """Pools named in the code location (`pool="..."`) all get a limit from set-pools.sh."""
    used = set()
    for path in (ROOT / "waifugen_assets").rglob("*.py"):
        used |= set(re.findall(r"\bpool\s*=\s*[\"']([A-Za-z0-9_\-]+)[\"']",
                               path.read_text(encoding="utf-8")))
    assert used <= set(EXPECTED_POOLS), f"pools without a limit: {used - set(EXPECTED_POOLS)}"


def test_entrypoint_exports_only_dagster_and_dbt_passwords(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret value\n", encoding="utf-8")
    url = tmp_path / "url"
    url.write_text("postgresql://u:p@h/d\n", encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "DAGSTER_PG_PASSWORD_FILE": str(secret),
           "DBT_PG_PASSWORD_FILE": str(secret), "DATABASE_URL_FILE": str(url)}
    out = subprocess.run([str(DEPLOY / "docker-entrypoint.sh"), "env"], env=env,
                         check=True, capture_output=True, text=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert values["DAGSTER_PG_PASSWORD"] == "s3cret value"
    assert values["DBT_PG_PASSWORD"] == "s3cret value"
    assert "DATABASE_URL" not in values  # the app reads DATABASE_URL_FILE itself

    env["DAGSTER_PG_PASSWORD_FILE"] = str(tmp_path / "missing")
    proc = subprocess.run([str(DEPLOY / "docker-entrypoint.sh"), "true"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "DAGSTER_PG_PASSWORD_FILE" in proc.stderr


# --- image ------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile() -> None:
    ins = _dockerfile_instructions()
    args = {word: [rest for w, rest in ins if w == word] for word, _ in ins}
    assert args["FROM"] == ["python:3.11-slim"]
    assert args["WORKDIR"] == [IMAGE_ROOT]
    assert args["USER"]
    assert args["USER"][-1] not in ("root", "0")
    assert set(args["EXPOSE"][0].split()) == {"3000", "4000"}
    runs = " ".join(args["RUN"])
    assert "pip install ." in runs
    assert "deploy/dagster.yaml /opt/dagster/home/dagster.yaml" in runs
    env = " ".join(args["ENV"])
    assert "DAGSTER_HOME=/opt/dagster/home" in env
    assert "WAIFUGEN_MODE=production" in env
    entrypoint = yaml.safe_load(args["ENTRYPOINT"][0])
    assert entrypoint == [f"{IMAGE_ROOT}/deploy/docker-entrypoint.sh"]
    # Files named by COPY exist in the build context.
    for rest in args["COPY"]:
        for src in rest.split()[:-1]:
            if not src.startswith("--"):
                assert (ROOT / src).exists(), src


def test_dockerignore_keeps_out_local_state_and_secrets() -> None:
    entries = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".waifugen", ".git", "deploy/secrets"} <= entries
    assert "**/__pycache__" in entries
    # ... but not what the image needs.
    for needed in ("pyproject.toml", "README.md", "deploy", "dbt_analytics", "migrations",
                   "waifugen_assets"):
        assert needed not in entries


def test_postgres_init_creates_app_and_dagster_databases() -> None:
    sql = (DEPLOY / "postgres-init.sql").read_text(encoding="utf-8")
    created = set(re.findall(r"CREATE DATABASE (\w+)", sql, flags=re.IGNORECASE))
    assert created == {"waifugen", "dagster"}


# --- docker-compose.yml -----------------------------------------------------------------


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    proc = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return proc.returncode == 0


def _image_path_to_repo(path: str) -> Path | None:
    """/opt/waifugen/deploy/x -> <repo>/deploy/x; relative paths are relative to WORKDIR."""
    if path.startswith(IMAGE_ROOT + "/"):
        return ROOT / path[len(IMAGE_ROOT) + 1:]
    if not path.startswith("/") and "/" in path:
        return ROOT / path
    return None


def _words(command: Any) -> list[str]:
    if isinstance(command, str):
        return shlex.split(command)
    words: list[str] = []
    for part in command:
        words.extend(shlex.split(part) if " " in part else [part])
    return words


def _option(words: list[str], *names: str) -> str:
    for i, word in enumerate(words):
        if word in names:
            return words[i + 1]
    raise AssertionError(f"none of {names} in {words}")


def test_compose_file_structure(tmp_path: Path) -> None:
    compose = load_yaml(COMPOSE)
    services: dict[str, Any] = compose["services"]
    assert set(services) == {"postgres", "migrate", "codeserver", "webserver", "daemon",
                             "ollama", "webhooks", "metrics", "prometheus", "alertmanager",
                             "grafana", "nginx"}
    assert services["ollama"].get("profiles") == ["ollama"]  # optional, off by default

    # Production mode and the same image everywhere the app runs; one service builds it.
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    builders = [name for name, svc in services.items() if "build" in svc]
    assert builders == ["migrate"]
    build = services["migrate"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["WAIFUGEN_MODE"] == "production", name
        assert env["DAGSTER_HOME"] == "/opt/dagster/home", name
        assert services[name].get("init") is True, name

    # Secrets: file secrets under deploy/secrets (git- and docker-ignored), passed as *_FILE.
    declared = compose["secrets"]
    for name, spec in declared.items():
        assert set(spec) == {"file"}, name
        source = ROOT / spec["file"]
        assert source.parent == DEPLOY / "secrets", name
        ignored = subprocess.run(["git", "check-ignore", "-q", str(source)], cwd=ROOT)
        assert ignored.returncode == 0, f"{spec['file']} is not git-ignored"
    for name, svc in services.items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        assert not SECRET_SETTINGS & set(env), f"{name}: secret passed inline"
        for key, value in env.items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, key)
                assert value.removeprefix("/run/secrets/") in svc["secrets"], (name, key)
                assert value.removeprefix("/run/secrets/") in declared, (name, key)
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"://[^\s/:@]+:[^\s/@]+@", text), "credentials in a URL"
    assert not re.search(r"(?i)(password|secret|token|key)\s*:\s*['\"]?[A-Za-z0-9+/=_-]{12,}",
                         text), "something that looks like a secret value"

    # App database and Dagster storage: same server, separate databases.
    env = services["codeserver"]["environment"]
    assert env["DAGSTER_PG_DB"] == "dagster"
    assert env["DBT_PG_DBNAME"] == "waifugen"
    assert env["DAGSTER_PG_HOST"] == env["DBT_PG_HOST"] == "postgres"

    # Published ports are on the host's loopback only (the public ones behind the host's TLS
    # proxy: nginx for videos, webhooks).
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"webserver", "webhooks", "metrics", "grafana", "nginx"}
    for ports in published.values():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), port
    assert "127.0.0.1:3000:3000" in published["webserver"]

    # Restart policies and health checks.
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["restart"] == "no"
    # Health checks bypass the entrypoint: one that opens the Dagster instance must call it.
    daemon_check = services["daemon"]["healthcheck"]["test"]
    assert daemon_check[1:3] == [f"{IMAGE_ROOT}/deploy/docker-entrypoint.sh", "dagster-daemon"]

    # Start order: postgres healthy -> migrate done -> codeserver healthy -> webserver/daemon.
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["codeserver"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully")
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["codeserver"]["condition"] == "service_healthy"

    # Commands: the code location, the workspace, the migrations.
    code = _words(services["codeserver"]["command"])
    assert code[:3] == ["dagster", "code-server", "start"]
    assert _option(code, "-m", "--module-name") == "waifugen_assets.definitions"
    assert _option(code, "--location-name") == "waifugen"
    assert _option(code, "-h", "--host") == "0.0.0.0"  # noqa: S104 (inside the container)
    code_port = int(_option(code, "-p", "--port"))
    assert code_port == 4000
    web = _words(services["webserver"]["command"])
    assert web[0] == "dagster-webserver"
    daemon = _words(services["daemon"]["command"])
    assert daemon[:2] == ["dagster-daemon", "run"]
    for words in (web, daemon):
        workspace = _image_path_to_repo(_option(words, "-w", "--workspace"))
        assert workspace == DEPLOY / "workspace.yaml"
        (server,) = load_yaml(workspace)["load_from"]
        assert server["grpc_server"] == {"host": "codeserver", "port": code_port,
                                         "location_name": "waifugen"}
    migrate = " ".join(_words(services["migrate"]["command"]))
    assert "waifugen db upgrade" in migrate
    assert "dagster instance migrate" in migrate
    assert "deploy/set-pools.sh" in migrate

    # Every file the compose file points at exists in the repository.
    referenced: list[Path] = []
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                referenced.append(ROOT / source)
            else:
                assert source in compose["volumes"], source
        for word in _words(svc.get("command", [])):
            path = _image_path_to_repo(word)
            if path is not None and word.endswith((".yaml", ".yml", ".sh", ".sql")):
                referenced.append(path)
    assert referenced
    for path in referenced:
        assert path.exists(), f"{path} is referenced by docker-compose.yml but missing"

    # Shared volumes: videos where runs execute, Dagster's storage wherever logs are read.
    def mounts(name: str) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in services[name].get("volumes", [])}

    assert mounts("codeserver")["/var/lib/waifugen"] == "waifugen_data"
    # nginx serves VIDEO_DIR (WAIFUGEN_HOME/videos) read-only where deploy/nginx aliases it.
    assert "waifugen_data:/srv/waifugen:ro" in services["nginx"]["volumes"]
    assert "alias /srv/waifugen/videos/;" in (DEPLOY / "nginx" / "videos.conf").read_text()
    for name in ("codeserver", "migrate"):
        assert mounts(name)["/var/lib/waifugen-backups"] == "backups", name
    for name in ("codeserver", "webserver", "daemon"):
        assert mounts(name)["/opt/dagster/storage"] == "dagster_storage", name

    # When the compose plugin exists, Compose itself must accept the file.
    if _compose_available():
        project = tmp_path / "project"
        (project / "deploy" / "secrets").mkdir(parents=True)
        shutil.copy(COMPOSE, project / "docker-compose.yml")
        for name in ("postgres-init.sql", "Dockerfile"):
            shutil.copy(DEPLOY / name, project / "deploy" / name)
        for spec in declared.values():
            (project / spec["file"]).write_text("dummy\n", encoding="utf-8")
        proc = subprocess.run(["docker", "compose", "config", "-q"], cwd=project,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# --- production instance on a real PostgreSQL ------------------------------------------------


@pytest.fixture
def dagster_pg_env(pg_server_url: str) -> Iterator[dict[str, str]]:
    """DAGSTER_PG_* for a fresh database on the test server (socket-only servers via PGHOST)."""
    server = make_url(pg_server_url)
    name = f"wg_dagster_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    env = {
        "DAGSTER_PG_HOST": server.host or "",
        "DAGSTER_PG_PORT": str(server.port or 5432),
        "DAGSTER_PG_USER": server.username or "postgres",
        "DAGSTER_PG_PASSWORD": server.password or "",
        "DAGSTER_PG_DB": name,
    }
    socket_dir = server.query.get("host")
    if socket_dir:  # e.g. the embedded pgserver: libpq takes an empty host from PGHOST
        env["PGHOST"] = str(socket_dir)
    try:
        yield env
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.integration
def test_production_instance_on_postgres(tmp_path: Path, dagster_pg_env: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    home = instance_dir(tmp_path, "dagster.yaml", rewrite_paths=True)
    env = {**os.environ, **dagster_pg_env, "DAGSTER_HOME": str(home),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    canary = "canary-password-must-not-print"
    if not env["DAGSTER_PG_PASSWORD"]:  # trust auth: any password is accepted, so watch one
        env["DAGSTER_PG_PASSWORD"] = canary

    # What the compose `migrate` service runs after the app migrations.
    migrate = subprocess.run(["dagster", "instance", "migrate"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr
    assert env["DAGSTER_PG_PASSWORD"] not in migrate.stdout + migrate.stderr
    assert "PostgresRunStorage" in migrate.stdout
    pools = subprocess.run([str(DEPLOY / "set-pools.sh")], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert pools.returncode == 0, pools.stderr

    for key in (*dagster_pg_env, "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(key, env[key])
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_runs() == []
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert limits == EXPECTED_POOLS
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
