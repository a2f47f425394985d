"""`waifugen metrics serve` as a process, scraped over HTTP: every family of the design table
with the seeded values, an exposition `promtool check metrics` accepts, a real Prometheus on
loopback that scrapes it and answers a query with the seeded value, a broken section that is
reported and not a 500, and a bad DATABASE_URL that stops the server in one line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from metrics_world import METRIC_NAMES, dagster_instance, key, seed_app, seed_dagster
from prometheus_client.parser import text_string_to_metric_families
from test_metrics import check_against

DEADLINE_S = 90.0
SERVE = [sys.executable, "-m", "waifugen_assets.app.cli_metrics", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: `make tools` (Debian package prometheus)"
    return found


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def wait_until(check, what: str, proc: subprocess.Popen, log: Path) -> object:
    """Poll `check` (None = not yet) until the deadline; fail early if `proc` exits."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited {proc.returncode}:\n"
                                 + log.read_text()[-3000:])
        result = check()
        if result is not None:
            return result
        time.sleep(0.2)  # between polls only; the condition is what ends the wait
    raise AssertionError(f"{what}: not within {DEADLINE_S} s:\n" + log.read_text()[-3000:])


def lint(exposition: str) -> tuple[int, list[str]]:
    done = subprocess.run([tool("promtool"), "check", "metrics"], input=exposition,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, sorted((done.stdout + done.stderr).splitlines())


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=10)
    except httpx.TransportError:
        return None


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path


@pytest.fixture
def world(engine: sa.Engine, pg_server_url: str):
    with dagster_instance(pg_server_url) as (instance, _):
        exp = seed_app(engine)
        seed_dagster(instance, exp)
        yield exp, instance


@pytest.fixture
def server(world, db_url: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / "server.log"
    # instance_for_test has set DAGSTER_HOME to the seeded instance's directory.
    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(tmp_path / "home")}
    assert env.get("DAGSTER_HOME")
    with log.open("w") as out:
        proc = subprocess.Popen([*SERVE, "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ((r := _get(f"{url}/healthz")) is not None and r.status_code == 200)
                   or None, "the metrics server answering /healthz", proc, log)
        yield Server(url, port, proc, log)
    finally:
        stop(proc)


def parse(text: str) -> dict:
    return {key(s.name, **s.labels): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_endpoint_serves_every_metric_and_passes_promtool(world, server: Server) -> None:
    exp, _ = world
    assert httpx.get(f"{server.url}/healthz").json() == {"ok": True}
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = parse(response.text)
    assert {k[0] for k in found} == set(METRIC_NAMES)
    check_against(found, exp)
    assert {v for k, v in found.items() if k[0] == "waifugen_collector_errors"} == {0.0}

    # The whole exposition lints clean: exit 0, not a word (units in base units, counters
    # ending in _total, help on every family).
    assert lint(response.text) == (0, [])

    # What Prometheus asks for: OpenMetrics, the counter under its _total name.
    om = httpx.get(f"{server.url}/metrics",
                   headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    assert "waifugen_post_attempts_total{" in om.text
    assert httpx.get(f"{server.url}/nothing-here").status_code == 404


def test_a_broken_section_is_reported_not_a_500(world, server: Server,
                                                engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE credentials"))
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    found = parse(response.text)
    assert found[key("waifugen_collector_errors", section="credentials")] == 1
    assert not [k for k in found if k[0] == "waifugen_credential_rotated_timestamp_seconds"]
    assert found[key("waifugen_collector_errors", section="reels")] == 0
    assert found[key("waifugen_a2e_credits_remaining")] == 4200
    log = server.log.read_text()
    assert "section credentials failed" in log and "Traceback" not in log


def test_a_real_prometheus_scrapes_the_endpoint(world, server: Server,
                                                tmp_path: Path) -> None:
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: waifugen\n    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n")
    log = tmp_path / "prometheus.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    api = f"http://127.0.0.1:{prom_port}/api/v1/query"

    def value(query: str):
        def check():
            r = _get(f"{api}?query={query}")
            if r is None or r.status_code != 200:
                return None
            result = r.json()["data"]["result"]
            return result[0]["value"][1] if result else None
        return check

    try:
        assert wait_until(value("waifugen_a2e_credits_remaining"), "Prometheus reading the "
                          "seeded balance", proc, log) == "4200"
        assert wait_until(value('up{job="waifugen"}'), "the target up", proc, log) == "1"
        counter = 'waifugen_post_attempts_total{platform="instagram",outcome="success"}'
        assert wait_until(value(counter), "the counter", proc, log) == "2"
    finally:
        stop(proc)


@pytest.mark.parametrize(("database_url", "says"), [
    ("mysql://waifugen:sEcReT-pw-123@db.example/waifugen", "DATABASE_URL is a mysql URL"),
    ("postgresql://waifugen:sEcReT-pw-123@127.0.0.1:{closed}/waifugen",
     "cannot connect to the app database waifugen on 127.0.0.1"),
])
def test_a_bad_database_url_stops_in_one_line(database_url: str, says: str,
                                              tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url.format(closed=free_port()),
           "WAIFUGEN_HOME": str(tmp_path / "home")}
    done = subprocess.run([*SERVE, "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert "sEcReT-pw-123" not in done.stderr + done.stdout


def test_a_port_out_of_range_stops_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home")}
    done = subprocess.run([*SERVE, "--port", "70000"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: --port 70000: a port is a number from 0 to 65535"

