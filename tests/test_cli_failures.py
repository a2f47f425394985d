"""Failure paths through `waifugen run`: one character's failure stays that character's, a
configuration mistake stops the run before anything is paid for, bad files are clear errors.
Each test's runs use their own sandbox (their own accounts and journal)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from ruamel.yaml import YAML

from sandbox.server import SandboxServer
from waifugen_assets.app.local_stack import SANDBOX_SEED
from waifugen_assets.app.sandbox_seeding import configure_sandbox_world
from waifugen_assets.core import schema

pytestmark = pytest.mark.integration

DAY = dt.datetime.now(dt.UTC).date().isoformat()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if args[0] == "run":  # these tests are about the day's runs: no analytics after them
        args = (*args, "--no-analytics")
    if args[0] == "run" and "WAIFUGEN_SANDBOX_URL" not in env:
        args = (*args, "--sandbox-port", "0")  # tests run in parallel: any free port
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def roster_of(project_dir: Path, tmp_path: Path, ids: list[str],
              **changes: dict[str, Any]) -> Path:
    """The project's roster cut down to `ids`, with per-character field changes."""
    yaml = YAML()
    data = yaml.load((project_dir / "characters.yaml").read_text())
    data["characters"] = [c for c in data["characters"] if c["id"] in ids]
    for c in data["characters"]:
        c.update(changes.get(c["id"], {}))
    path = tmp_path / "characters.yaml"
    with path.open("w") as out:
        yaml.dump(data, out)
    return path


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url}


@pytest.fixture
def own_sandbox(tmp_path: Path):
    """A sandbox of this test only, as `make run` configures its own."""
    with SandboxServer(tmp_path / "sandbox", seed=SANDBOX_SEED) as server:
        configure_sandbox_world(server.url)
        yield server


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Stack Trace" not in proc.stdout + proc.stderr


def test_a_blocked_character_does_not_stop_the_others(env, project_dir, tmp_path,
                                                      engine) -> None:
    ids = ["lucia-marvento", "mika-hoshizora", "nova-castellane"]
    # 0.001 % of 20,000 credits: not enough for any reel.
    roster = roster_of(project_dir, tmp_path, ids, **{"mika-hoshizora": {"budget_share": 0.001}})
    proc = cli("run", "--date", DAY, env={**env, "WAIFUGEN_ROSTER": str(roster)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"mika-hoshizora {DAY}: ") and "budget" in lines[0]
    assert "level block" in lines[0]  # the check's own words, not Dagster's wrapper
    assert "3 character day(s) run, 1 failed" in proc.stdout

    status = json.loads(cli("status", "--date", DAY, "--json",
                            env={**env, "WAIFUGEN_ROSTER": str(roster)}).stdout)
    by_id = {c["id"]: c for c in status["characters"]}
    for cid in ("lucia-marvento", "nova-castellane"):  # their days were done in full
        assert by_id[cid]["reels"]["published"] == by_id[cid]["reels"]["planned"] == 4
    blocked = by_id["mika-hoshizora"]
    assert blocked["reels"]["generated"] == 0 and blocked["budget"]["used"] == 0
    assert any(key.startswith("reels blocked: budget") for key in blocked["open"])


def test_bad_roster_and_bad_sequences_are_clear_errors(env, tmp_path) -> None:
    roster = tmp_path / "bad-roster.yaml"
    roster.write_text("version: 1\ncharacters:\n  - id: Not A Slug\n    age: 17\n")
    proc = cli("run", env={**env, "WAIFUGEN_ROSTER": str(roster)})
    assert proc.returncode == 1 and proc.stdout == ""
    assert_no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert all(line.startswith(f"{roster}:") for line in lines[:-1]) and len(lines) > 2
    assert any("age" in line for line in lines) and any("id" in line for line in lines)
    assert lines[-1].startswith(f"error: {len(lines) - 1} error(s) in the roster {roster}")

    sequences = tmp_path / "bad-sequences.yaml"
    sequences.write_text("version: 1\nsequences:\n  - key: x\n    character: nobody-here\n")
    proc = cli("run", env={**env, "WAIFUGEN_SEQUENCES": str(sequences)})
    assert proc.returncode == 1 and proc.stdout == ""
    assert_no_traceback(proc)
    assert proc.stderr.splitlines()[-1].startswith("error: ") and str(sequences) in proc.stderr
    assert "nothing was run" in proc.stderr


def _journal(server: SandboxServer, since: int, system: str) -> list[dict]:
    return [e for e in server.journal(system, since)]


def _accounts(engine: sa.Engine) -> dict[tuple[str, str], str]:
    pa = schema.platform_accounts
    with engine.connect() as conn:
        return {(c, p): s for c, p, s in conn.execute(
            sa.select(pa.c.character_id, pa.c.platform, pa.c.status))}


def test_a_wrong_secret_key_stops_the_run_before_anything_is_paid(
        env, own_sandbox, engine, project_dir, tmp_path) -> None:
    cid = "greta-vollmond"
    roster = roster_of(project_dir, tmp_path, [cid])
    right, wrong = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    base = {**env, "WAIFUGEN_ROSTER": str(roster), "WAIFUGEN_SANDBOX_URL": own_sandbox.url,
            "A2E_API_KEY": f"sk_sandbox_{uuid.uuid4().hex[:8]}"}
    day1 = DAY
    day2 = (dt.date.fromisoformat(DAY) - dt.timedelta(days=1)).isoformat()
    first = cli("run", "--date", day1, env={**base, "WAIFUGEN_SECRET_KEY": right})
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(_accounts(engine).values()) == {"active"}

    since = max((e["id"] for e in own_sandbox.journal()), default=0)
    proc = cli("run", "--date", day2, env={**base, "WAIFUGEN_SECRET_KEY": wrong})
    assert proc.returncode == 1
    assert_no_traceback(proc)
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: configuration checked before spending anything: ")
    assert "do not decrypt with WAIFUGEN_SECRET_KEY" in line and f"{cid}/tiktok" in line
    assert wrong not in line and right not in line
    # Nothing was asked of any outside system: no render paid, no plan written, no post.
    assert own_sandbox.journal(since=since) == []
    r = schema.reels
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(r)
                           .where(r.c.date == dt.date.fromisoformat(day2))) == 0
    assert set(_accounts(engine).values()) == {"active"}  # nobody was blamed

    # The right key back (as an older key next to a new one): the day runs in full.
    rotated = cli("run", "--date", day2,
                  env={**base, "WAIFUGEN_SECRET_KEY": f"{wrong},{right}"})
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    status = json.loads(cli("status", "--date", day2, "--json",
                            env={**base, "WAIFUGEN_SECRET_KEY": right}).stdout)
    (greta,) = status["characters"]
    assert greta["reels"]["branded"] == greta["reels"]["planned"] == 4
    assert greta["posts"]["instagram"]["published"] == greta["posts"]["youtube"]["published"] == 4
    # TikTok allows 6 inits a minute per token and the first run made 4 a moment ago: the
    # rest wait for the limit (counted before sending, not discovered by a refusal).
    tiktok = greta["posts"]["tiktok"]
    assert tiktok["published"] + tiktok["pending"] == 4 and tiktok["published"] >= 2
    assert all("tiktok rate limit" in key for key in greta["open"]), greta["open"]


# --- refused before anything starts: one line on stderr, exit 1 --------------------------

def raw_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command exactly as given (no `--sandbox-port 0` added)."""
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ")
    for word in words:
        assert word in line, line
    return line


def assert_nothing_started(home: Path) -> None:
    """No sandbox, embedded PostgreSQL or Dagster instance was made, and no process runs
    there (the settings' sandbox key file may exist: reading the settings creates it)."""
    made = sorted(p.name for p in home.iterdir()) if home.exists() else []
    assert set(made) <= {"sandbox-secret.key"}, made
    users = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if str(home) in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                users.append(p.info["cmdline"])
    assert users == []


def _rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return sum(conn.scalar(sa.select(sa.func.count()).select_from(t))
                   for t in (schema.characters, schema.reels, schema.platform_accounts))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nobody listens


@pytest.mark.parametrize("offset_days", [-4000, 30])
def test_a_date_outside_the_partitions_is_refused_before_anything_starts(
        env, engine, tmp_path, offset_days) -> None:
    from waifugen_assets.pipeline import partitions

    day = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset_days)).isoformat()
    proc = cli("run", "--date", day, env=env)
    dates = partitions.daily_partitions  # the range as the definition gives it now
    assert_one_line_error(proc, f"--date {day}", dates.get_first_partition_key(),
                          dates.get_last_partition_key(), "nothing was run")
    assert_nothing_started(Path(env["WAIFUGEN_HOME"]))
    assert _rows(engine) == 0  # not even the roster was loaded


@pytest.mark.parametrize("args", [("run", "--sandbox-port", "99999"),
                                  ("dev", "--sandbox-port", "99999"),
                                  ("dev", "--port", "-1"),
                                  ("sandbox", "serve", "--port", "65536")])
def test_a_port_out_of_range_is_one_line(env, engine, args) -> None:
    proc = raw_cli(*args, env=env)
    assert_one_line_error(proc, f"{args[-2]} {args[-1]}", "0 to 65535")
    assert_nothing_started(Path(env["WAIFUGEN_HOME"]))
    assert _rows(engine) == 0


@pytest.mark.parametrize("command", [("run",), ("status",), ("tokens", "status")])
def test_a_key_that_is_not_a_fernet_key_is_one_line(env, engine, command) -> None:
    bad = "not-a-fernet-key-0123456789"
    proc = cli(*command, env={**env, "WAIFUGEN_SECRET_KEY": f"{Fernet.generate_key().decode()},"
                                                             f"{bad}"})
    line = assert_one_line_error(proc, "WAIFUGEN_SECRET_KEY", "Fernet")
    assert bad not in line
    assert_nothing_started(Path(env["WAIFUGEN_HOME"]))
    assert _rows(engine) == 0


PASSWORD = "pw-s3cret-4242"


@pytest.mark.parametrize(("url", "words"), [
    ("not a database url", ["DATABASE_URL is not a database URL", "postgresql://"]),
    ("mysql://app:{pw}@127.0.0.1/waifugen", ["DATABASE_URL is a mysql URL", "PostgreSQL"]),
    ("postgresql+psycopg://app:{pw}@127.0.0.1/waifugen",
     ["driver psycopg", "not installed", "postgresql://"]),
    ("postgresql://app:{pw}@127.0.0.1:{port}/waifugen",
     ["cannot connect to the app database waifugen on 127.0.0.1:{port}", "DATABASE_URL",
      "refused"]),
])
@pytest.mark.parametrize("command", [("run",), ("status",), ("db", "upgrade")])
def test_a_bad_database_url_is_one_line(tmp_path, url, words, command) -> None:
    port = _closed_port()
    home = tmp_path / "home"
    env = {**os.environ, "WAIFUGEN_HOME": str(home),
           "DATABASE_URL": url.format(pw=PASSWORD, port=port)}
    line = assert_one_line_error(cli(*command, env=env),
                                 *(w.format(port=port) for w in words))
    assert PASSWORD not in line
    assert_nothing_started(home)


def test_sandbox_published_at_a_closed_port_is_one_line(tmp_path) -> None:
    home = tmp_path / "home"
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = raw_cli("sandbox", "published", "--url", url,
                   env={**os.environ, "WAIFUGEN_HOME": str(home)})
    assert_one_line_error(proc, f"cannot read the sandbox at {url}")
    assert_nothing_started(home)
