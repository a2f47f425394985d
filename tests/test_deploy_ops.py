"""The deploy pipeline: GitHub workflows (actionlint) and deploy/deploy.sh.

deploy.sh runs for real against a fake `docker` (and a fake `ssh`) on PATH and a loopback
HTTP server standing in for the health URLs and the webserver's GraphQL API (tests/
deploy_rig.py): the order of the steps, the drain, the rollback, SSH with a key only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_rig import APP_IMAGE, DEPLOY_SH, HEALTH_PATHS, IMAGES, Rig, index_of, order, start_rig

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with start_rig(tmp_path) as started:
        yield started


# --- deploy.sh against the fake docker --------------------------------------------------------


def test_deploy_pulls_migrates_restarts_then_checks_health(rig: Rig) -> None:
    result = rig.run(*rig.local_args())
    assert result.returncode == 0, result.stderr
    assert order(rig) == ["pull", "stop-daemon", "runs?", "migrate", "up", "health-ok"]
    assert {c["path"] for c in rig.calls() if c["who"] == "health"} == set(HEALTH_PATHS)
    calls = rig.docker_calls()
    assert ["compose", "run", "--rm", "-T", "migrate"] in calls
    assert all(c["cwd"] == str(rig.project) for c in rig.calls() if c["who"] == "docker")
    # The ids before the pull are kept for a later `--rollback`.
    recorded = (rig.project / ".deploy" / "previous-images").read_text().split("\n")
    assert sorted(filter(None, recorded)) == sorted(
        f"{name} {ids[0]}" for name, ids in IMAGES.items())
    assert rig.state()["running"][APP_IMAGE] == "sha256:new-app"
    assert "deployed" in result.stderr


def test_failing_health_check_rolls_back_to_the_previous_images(rig: Rig) -> None:
    rig.health.unhealthy_app_ids = {"sha256:new-app"}
    result = rig.run(*rig.local_args(timeout=2))
    assert result.returncode == 1
    assert order(rig) == ["pull", "stop-daemon", "runs?", "migrate", "up", "health-fail", "tag",
                          "up", "health-ok"]
    calls = rig.docker_calls()
    tags = [c for c in calls if c[0] == "tag"]
    assert sorted(tags) == sorted(["tag", ids[0], name] for name, ids in IMAGES.items())
    rollback_up = calls[index_of(calls, ["tag"]):]
    assert any(c[:3] == ["compose", "up", "-d"] and "--pull" in c and "never" in c
               for c in rollback_up)
    assert rig.state()["running"][APP_IMAGE] == "sha256:old-app"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("deploy: error: deploy failed (health")
    assert "rolled back" in last


def test_failed_migration_rolls_back_without_starting_the_new_release(rig: Rig) -> None:
    result = rig.run(*rig.local_args(), FAKE_MIGRATE_RC="3")
    assert result.returncode == 1
    assert order(rig) == ["pull", "stop-daemon", "runs?", "migrate", "tag", "up", "health-ok"]
    assert rig.state()["running"][APP_IMAGE] == "sha256:old-app"
    assert "deploy failed (migrate" in result.stderr


def test_failed_pull_rolls_back_the_moved_tags(rig: Rig) -> None:
    result = rig.run(*rig.local_args(), FAKE_PULL_RC="1")
    assert result.returncode == 1
    assert order(rig)[:2] == ["pull", "tag"]
    assert "stop-daemon" not in order(rig)
    assert "migrate" not in order(rig)
    assert rig.state()["images"][APP_IMAGE] == "sha256:old-app"


def test_waits_for_runs_in_progress_before_restarting(rig: Rig) -> None:
    rig.health.runs_in_progress = [2, 2, 1, 0]
    result = rig.run(*rig.local_args())
    assert result.returncode == 0, result.stderr
    graphql = [c["count"] for c in rig.calls() if c["who"] == "graphql"]
    assert graphql == [2, 2, 1, 0]
    assert order(rig) == ["pull", "stop-daemon", "runs?", "migrate", "up", "health-ok"]
    # The query deploy.sh sends is valid against Dagster's own GraphQL schema.
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    (query,) = {body["query"] for body in rig.health.graphql_bodies}
    assert validate(create_schema().graphql_schema, parse(query)) == []
    assert "STARTED" in query


def test_runs_that_do_not_end_stop_the_deploy_before_migrating(rig: Rig) -> None:
    rig.health.runs_in_progress = [1]
    result = rig.run(*rig.local_args(drain=1))
    assert result.returncode == 1
    assert order(rig) == ["pull", "stop-daemon", "runs?", "tag", "up", "health-ok"]
    assert "deploy failed (drain" in result.stderr
    # The rollback's `up -d` starts the daemon again.
    assert rig.docker_calls()[-1][:3] == ["compose", "up", "-d"]


def test_nothing_to_drain_on_a_first_deploy(rig: Rig) -> None:
    state = rig.state()
    state["running"] = {}
    rig.health.state_path.write_text(json.dumps(state))
    result = rig.run(*rig.local_args())
    assert result.returncode == 0, result.stderr
    assert order(rig) == ["pull", "migrate", "up", "health-ok"]
    assert "nothing to drain" in result.stderr


def test_rollback_on_request(rig: Rig) -> None:
    assert rig.run(*rig.local_args()).returncode == 0
    assert rig.state()["running"][APP_IMAGE] == "sha256:new-app"
    result = rig.run(*rig.local_args(), "--rollback")
    assert result.returncode == 0, result.stderr
    assert rig.state()["running"][APP_IMAGE] == "sha256:old-app"
    assert "previous release is up and healthy" in result.stderr


def test_over_ssh_with_a_key_never_a_password(rig: Rig) -> None:
    key, known = rig.tmp / "deploy_key", rig.tmp / "known_hosts"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n")
    key.chmod(0o600)
    known.write_text("vps.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInotarealkey\n")
    (rig.project / "deploy").mkdir()
    (rig.project / "deploy" / "secrets").mkdir()
    (rig.project / "deploy" / "secrets" / "postgres_password").write_text("host-only\n")
    result = rig.run("--host", "deploy@vps.example", "--sync", "--ssh-key", str(key),
                     "--known-hosts", str(known), *rig.local_args())
    assert result.returncode == 0, result.stderr
    assert order(rig) == ["pull", "stop-daemon", "runs?", "migrate", "up", "health-ok"]

    ssh_calls = [c["argv"] for c in rig.calls() if c["who"] == "ssh"]
    assert len(ssh_calls) == 2  # ship the files, run the script
    for argv in ssh_calls:
        options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
        assert "BatchMode=yes" in options
        assert "PasswordAuthentication=no" in options
        assert "KbdInteractiveAuthentication=no" in options
        assert "StrictHostKeyChecking=yes" in options
        assert f"UserKnownHostsFile={known}" in options
        assert argv[argv.index("-i") + 1] == str(key)
        assert not [o for o in options if "password" in o.lower() and not o.endswith("=no")]
        assert "deploy@vps.example" in argv
    script = DEPLOY_SH.read_text()
    assert "sshpass" not in script
    assert "PasswordAuthentication=yes" not in script

    # --sync shipped this checkout's compose file and deploy/, never deploy/secrets, and
    # kept the host's secrets.
    shipped = rig.project / ".deploy" / "incoming"
    assert (shipped / "docker-compose.yml").is_file()
    assert (shipped / "deploy" / "deploy.sh").is_file()
    assert not (shipped / "deploy" / "secrets").exists()
    assert (rig.project / "deploy" / "deploy.sh").read_bytes() == DEPLOY_SH.read_bytes()
    assert (rig.project / "deploy" / "secrets" / "postgres_password").read_text() == \
        "host-only\n"
    assert (rig.project / ".deploy" / "previous-files" / "docker-compose.yml").is_file()


def test_failed_sync_deploy_restores_the_previous_files(rig: Rig) -> None:
    (rig.project / "docker-compose.yml").write_text("# the host's previous compose file\n")
    rig.health.unhealthy_app_ids = {"sha256:new-app"}
    result = rig.run("--host", "deploy@vps.example", "--sync", *rig.local_args(timeout=1))
    assert result.returncode == 1
    assert (rig.project / "docker-compose.yml").read_text() == \
        "# the host's previous compose file\n"
    assert rig.state()["running"][APP_IMAGE] == "sha256:old-app"


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "unknown argument --bogus"),
    (["--dir"], "--dir needs a value"),
    (["--health-timeout", "soon"], "--health-timeout must be a whole number"),
    (["--dir", "/nonexistent/waifugen"], "--dir /nonexistent/waifugen: no such directory"),
    (["--host", "deploy@vps", "--ssh-key", "/nonexistent/key"], "cannot read"),
])
def test_bad_arguments_fail_with_one_line(rig: Rig, args: list[str], message: str) -> None:
    result = rig.run(*args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert rig.docker_calls() == []


def test_missing_compose_plugin_is_one_line(rig: Rig) -> None:
    (rig.tmp / "bin" / "docker").write_text("#!/bin/sh\nexit 1\n")
    result = rig.run(*rig.local_args())
    assert result.returncode == 1
    assert result.stderr.strip() == "deploy: error: the docker compose plugin is missing"


def test_default_health_urls_are_the_published_loopback_ports() -> None:
    text = DEPLOY_SH.read_text()
    for url in ("http://127.0.0.1:3000/server_info", "http://127.0.0.1:8788/healthz",
                "http://127.0.0.1:9464/healthz"):
        assert url in text


# --- static checks ----------------------------------------------------------------------------


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} is not installed (dev extras of pyproject.toml; `make setup`)"
    return found


def test_deploy_script_is_strict_bash_and_passes_shellcheck() -> None:
    text = DEPLOY_SH.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(DEPLOY_SH, os.X_OK)
    syntax = subprocess.run(["bash", "-n", str(DEPLOY_SH)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    check = subprocess.run([tool("shellcheck"), "--severity=style", str(DEPLOY_SH)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["ci.yml", "deploy.yml"]
    # actionlint also runs shellcheck on every `run:` script when it finds it on PATH.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    tool("shellcheck")
    result = subprocess.run([tool("actionlint"), "-color=false", *map(str, files)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def workflow(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps_text(job: dict[str, Any]) -> str:
    return yaml.safe_dump(job["steps"])


def test_ci_workflow_runs_the_readme_test_command() -> None:
    ci = workflow("ci.yml")
    assert ci["name"] == "CI"
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    (job,) = ci["jobs"].values()
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("actions/checkout@") for u in uses)
    python = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    runs = [step.get("run", "") for step in job["steps"]]
    assert runs[-1].strip() == "bash .ci/run"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_deploy_workflow_runs_after_ci_on_main_with_a_deploy_key() -> None:
    deploy = workflow("deploy.yml")
    trigger = deploy["on"]["workflow_run"]
    assert trigger == {"workflows": [workflow("ci.yml")["name"]], "types": ["completed"],
                       "branches": ["main"]}
    assert set(deploy["on"]) == {"workflow_run"}
    gate = deploy["jobs"]["image"]["if"]
    assert "github.event.workflow_run.conclusion == 'success'" in gate
    assert "github.event.workflow_run.event == 'push'" in gate
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "image"
    text = steps_text(job)
    assert "secrets.DEPLOY_SSH_KEY" in text and "secrets.DEPLOY_KNOWN_HOSTS" in text
    assert "deploy/deploy.sh --host" in text
    assert "--ssh-key" in text and "--known-hosts" in text
    assert "password" not in text.lower()
    assert "sshpass" not in text
    assert "StrictHostKeyChecking=no" not in (WORKFLOWS / "deploy.yml").read_text()
    # Both checkouts deploy exactly the commit CI tested.
    for name in ("image", "deploy"):
        checkout = deploy["jobs"][name]["steps"][0]
        assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
