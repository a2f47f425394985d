"""A rig to run deploy/deploy.sh for real without Docker (tests/test_deploy_ops.py).

A fake `docker` (and `ssh`) on PATH: a small Python script that records every call in a log
and keeps image tags and "running" ids in a state file; a real HTTP server on loopback answers
the health URLs (healthy or not depending on the image ids the fake `docker compose up` last
started) and the webserver's GraphQL "runs in progress" question. curl, tar, flock and bash are
the real ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_SH = ROOT / "deploy" / "deploy.sh"

APP_IMAGE = "ghcr.io/example/waifugen:main"
IMAGES = {APP_IMAGE: ("sha256:old-app", "sha256:new-app"),
          "postgres:16": ("sha256:old-pg", "sha256:new-pg")}
HEALTH_PATHS = ("/server_info", "/webhooks/healthz", "/metrics/healthz")

# The fake docker: argv and cwd of each call appended to $FAKE_LOG; tags in $FAKE_STATE.
FAKE_DOCKER = """\
import json, os, sys
from pathlib import Path

state_path = Path(os.environ["FAKE_STATE"])
state = json.loads(state_path.read_text())
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"who": "docker", "argv": args, "cwd": os.getcwd()}) + "\\n")

def save():
    state_path.write_text(json.dumps(state))

if args[:2] == ["compose", "version"]:
    print("Docker Compose version v2.40.0")
elif args[:1] == ["compose"] and not Path("docker-compose.yml").is_file():
    sys.exit("no configuration file provided: not found")
elif args == ["compose", "config", "-q"]:
    pass
elif args == ["compose", "config", "--images"]:
    print("\\n".join(state["images"]))
elif args[:2] == ["image", "inspect"]:
    image = args[-1]
    if image not in state["images"]:
        sys.exit(f"Error: No such image: {image}")
    print(state["images"][image])
elif args[:2] == ["compose", "ps"]:
    assert args[2:] == ["--status", "running", "-q", "webserver"], args
    if state["running"]:
        print("c0ffee")
elif args == ["compose", "stop", "daemon"]:
    pass
elif args[:2] == ["compose", "pull"]:
    state["images"].update(state["registry"])
    save()
    sys.exit(int(os.environ.get("FAKE_PULL_RC", "0")))
elif args[:2] == ["compose", "run"]:
    assert "-T" in args and "--rm" in args and args[-1] == "migrate", args
    sys.exit(int(os.environ.get("FAKE_MIGRATE_RC", "0")))
elif args[:2] == ["compose", "up"]:
    assert "-d" in args, args
    state["running"] = dict(state["images"])
    save()
elif args[:1] == ["tag"]:
    source, target = args[1], args[2]
    if not source.startswith("sha256:"):
        sys.exit(f"Error: No such image: {source}")
    state["images"][target] = source
    save()
else:
    sys.exit(f"fake docker: unexpected call {args}")
"""

# The fake ssh: records its argv, then runs the remote command here with bash (stdin passed on).
FAKE_SSH = """\
import json, os, subprocess, sys

args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"who": "ssh", "argv": args}) + "\\n")
i = 0
while args[i].startswith("-"):
    i += 2 if args[i] in ("-o", "-i", "-p", "-l", "-F") else 1
host, command = args[i], " ".join(args[i + 1:])
assert "@" in host, host
sys.exit(subprocess.run(["bash", "-c", command]).returncode)
"""


def executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# --- health server ----------------------------------------------------------------------------


@dataclass
class Health:
    state_path: Path
    log_path: Path
    unhealthy_app_ids: set[str] = field(default_factory=set)
    # Answers of the webserver's GraphQL API to "runs in progress", in turn; the last repeats.
    runs_in_progress: list[int] = field(default_factory=lambda: [0])
    graphql_bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.port}{path}" for path in HEALTH_PATHS]

    def healthy(self) -> bool:
        running = json.loads(self.state_path.read_text())["running"]
        return running.get(APP_IMAGE) is not None and \
            running[APP_IMAGE] not in self.unhealthy_app_ids


def health_handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path in HEALTH_PATHS and health.healthy()
            with health.lock, health.log_path.open("a") as log:
                log.write(json.dumps({"who": "health", "path": self.path, "ok": ok}) + "\n")
            body = b'{"ok": true}' if ok else b'{"ok": false}'
            self.send_response(200 if ok else 503)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            assert self.path == "/graphql"
            assert self.headers["content-type"] == "application/json"
            with health.lock:
                health.graphql_bodies.append(body)
                count = health.runs_in_progress[0]
                if len(health.runs_in_progress) > 1:
                    health.runs_in_progress.pop(0)
                with health.log_path.open("a") as log:
                    log.write(json.dumps({"who": "graphql", "count": count}) + "\n")
            answer = json.dumps({"data": {"runsOrError": {"__typename": "Runs",
                                                          "count": count}}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@dataclass
class Rig:
    tmp: Path
    project: Path
    env: dict[str, str]
    health: Health

    def calls(self) -> list[dict[str, Any]]:
        lines = self.health.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines]

    def docker_calls(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls() if c["who"] == "docker"]

    def state(self) -> dict[str, Any]:
        return json.loads(self.health.state_path.read_text())

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(DEPLOY_SH), *args], env={**self.env, **env}, cwd=self.tmp,
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def local_args(self, timeout: int = 10, drain: int = 10) -> list[str]:
        args = ["--dir", str(self.project), "--health-timeout", str(timeout),
                "--drain-timeout", str(drain), "--graphql-url", self.health.graphql_url()]
        for url in self.health.urls():
            args += ["--health-url", url]
        return args


@contextlib.contextmanager
def start_rig(tmp_path: Path) -> Iterator[Rig]:
    """A compose project dir, fake docker/ssh on PATH and the health server, for one test."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "docker", f"#!{sys.executable}\n{FAKE_DOCKER}")
    executable(bin_dir / "ssh", f"#!{sys.executable}\n{FAKE_SSH}")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    state_path, log_path = tmp_path / "state.json", tmp_path / "calls.log"
    state = {"images": {name: ids[0] for name, ids in IMAGES.items()},
             "registry": {name: ids[1] for name, ids in IMAGES.items()}}
    state["running"] = dict(state["images"])
    state_path.write_text(json.dumps(state))
    log_path.touch()
    health = Health(state_path, log_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), health_handler(health))
    health.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "FAKE_STATE": str(state_path), "FAKE_LOG": str(log_path),
           "DEPLOY_HEALTH_INTERVAL": "0.1", "DEPLOY_DRAIN_INTERVAL": "0.1", "LANG": "C.UTF-8"}
    try:
        yield Rig(tmp_path, project, env, health)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def index_of(calls: list[list[str]], prefix: list[str], start: int = 0) -> int:
    for i in range(start, len(calls)):
        if calls[i][:len(prefix)] == prefix:
            return i
    raise AssertionError(f"no call {prefix} after #{start} in {calls}")


def order(rig: Rig) -> list[str]:
    """The deploy's steps as they happened, health checks included."""
    steps = []
    for call in rig.calls():
        if call["who"] == "health":
            steps.append("health-ok" if call["ok"] else "health-fail")
        elif call["who"] == "graphql":
            steps.append("runs?")
        elif call["who"] == "docker":
            argv = call["argv"]
            if argv[:2] == ["compose", "pull"]:
                steps.append("pull")
            elif argv[:2] == ["compose", "run"]:
                steps.append("migrate")
            elif argv[:2] == ["compose", "up"]:
                steps.append("up")
            elif argv[:2] == ["compose", "stop"]:
                steps.append("stop-daemon")
            elif argv[0] == "tag":
                steps.append("tag")
    collapsed: list[str] = []
    for step in steps:
        if not collapsed or collapsed[-1] != step:
            collapsed.append(step)
    return collapsed
