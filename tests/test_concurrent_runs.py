"""Two `waifugen run` processes for the same character and day, started together, with every
call that creates something remotely answered 10 s late (the platform acts at once, its
answer is held): nothing is paid for or posted twice, counted on the sandbox itself."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from ruamel.yaml import YAML

from sandbox.published import published, summarize
from sandbox.server import SandboxServer
from waifugen_assets.app.local_stack import SANDBOX_SEED
from waifugen_assets.app.sandbox_seeding import configure_sandbox_world
from waifugen_assets.core.config import project_root

pytestmark = pytest.mark.integration

CID = "hana-byeolsong"
SLOW = 10.0
REELS = 2  # slots of the day: each post's creating calls take 10 s or more
# The calls that create something remotely: a paid render, TikTok's publish init, an
# Instagram container and its publish, a YouTube upload session.
CREATING = [("a2e", "/api/v1/video/generate"), ("tiktok", "/v2/post/publish/video/init/"),
            ("instagram", "/v*/*/media"), ("instagram", "/v*/*/media_publish"),
            ("youtube", "/upload/youtube/v3/videos")]


@pytest.fixture
def world(db_url: str, tmp_path: Path):
    yaml = YAML()
    data = yaml.load((project_root() / "characters.yaml").read_text())
    data["characters"] = [c for c in data["characters"] if c["id"] == CID]
    data["characters"][0]["slots"] = data["characters"][0]["slots"][:REELS]
    roster = tmp_path / "characters.yaml"
    with roster.open("w") as out:
        yaml.dump(data, out)
    with SandboxServer(tmp_path / "sandbox", seed=SANDBOX_SEED) as sandbox:
        configure_sandbox_world(sandbox.url)
        env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url,
               "WAIFUGEN_ROSTER": str(roster), "WAIFUGEN_SANDBOX_URL": sandbox.url,
               "A2E_API_KEY": f"sk_sandbox_{uuid.uuid4().hex[:8]}",
               "WAIFUGEN_SECRET_KEY": Fernet.generate_key().decode()}  # the workers share it
        yield env, sandbox


def run(env: dict[str, str], worker: str) -> subprocess.Popen[str]:
    """A `waifugen run` as one worker: the app database and the platforms are shared, the
    Dagster instance is the worker's own (SQLite instance storage is for one process)."""
    env = {**env, "WAIFUGEN_HOME": str(Path(env["WAIFUGEN_HOME"]) / worker)}
    return subprocess.Popen([sys.executable, "-m", "waifugen_assets.app.cli", "run", "--character",
                             CID, "--no-analytics"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def test_two_runs_of_one_day_started_together_do_everything_once(world) -> None:
    env, sandbox = world
    for system, route in CREATING:
        sandbox.add_fault(system=system, route=route, method="POST", action="delay",
                          delay=SLOW, phase="after")
    first, second = run(env, "a"), run(env, "b")  # started together
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert all("Traceback" not in out for out in outputs)

    # The creating calls were slowed (renders surely; posts as far as the two runs got: on a
    # loaded machine an Instagram container may still be processing when a run ends, and
    # its publish is left to the third run below), and each reel was paid for once.
    fired = {(f["system"], f["route"]): f["fired"] for f in sandbox.faults()}
    assert fired[("a2e", "/api/v1/video/generate")] > 0, fired
    assert sum(n for (system, _), n in fired.items() if system != "a2e") > 0, fired
    titles = Counter(e["body"]["title"] for e in sandbox.journal("a2e")
                     if e["path"] == "/api/v1/video/generate")
    assert len(titles) == REELS and set(titles.values()) == {1}, titles

    # Whatever one run left to the other is finished by a third; still nothing twice.
    sandbox.clear_faults()
    third = run(env, "a")
    out = third.communicate(timeout=600)[0]
    assert third.returncode == 0, out
    posts = published(sandbox.url)
    summary = {row["platform"]: row for row in summarize(posts, None)}
    for platform in ("tiktok", "instagram", "youtube"):
        assert summary[platform]["published_twice"] == 0, posts
        assert summary[platform]["posts"] == summary[platform]["reels"] == REELS
