"""End to end through the CLI, as `make run` does it: a fresh home, then a second run."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psutil
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.roster.model import load_roster

MARTS = {"daily_revenue_summary", "cost_per_reel", "platform_performance", "character_ranking",
         "post_performance", "subscriber_funnel", "best_posting_hours"}
# Today: the sandbox's subscribers are yesterday's sign-ups, whose day-0 welcome is due now.
DAY = dt.datetime.now(dt.UTC).date().isoformat()


def _cli(*args: str, env: dict[str, str], analytics: bool = False
         ) -> subprocess.CompletedProcess[str]:
    if args[0] == "run":  # tests run in parallel: any free port for each sandbox
        args = (*args, "--sandbox-port", "0", *(() if analytics else ("--no-analytics",)))
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def _snapshot(engine: sa.Engine) -> list[tuple]:
    r = schema.reels
    with engine.connect() as conn:
        return conn.execute(sa.select(r.c.id, r.c.character_id, r.c.slot, r.c.plan,
                                      r.c.updated_at).order_by(r.c.id)).all()


def _published_row(stdout: str, platform: str) -> list[str]:
    """A platform's row of the sandbox summary `waifugen run` ends with."""
    tail = stdout[stdout.index("On the sandbox platforms"):]
    return next(line.split() for line in tail.splitlines() if line.startswith(platform + " "))


def test_run_twice_then_status(db_url: str, engine: sa.Engine, tmp_path: Path,
                               project_dir: Path) -> None:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url}
    roster = load_roster(project_dir / "characters.yaml")
    local_days = [{c.id: _local_today(c.timezone) for c in roster.enabled()}]
    first = _cli("run", env=env, analytics=True)  # as `make run`: each character's own day
    assert first.returncode == 0, first.stdout + first.stderr
    assert "waifugen status, each character's local today" in first.stdout
    assert "publish: now, late slots too" in first.stdout  # the sandbox default, said

    status = json.loads(_cli("status", "--json", env=env).stdout)
    local_days.append({c.id: _local_today(c.timezone) for c in roster.enabled()})
    expected = {c.id: len(c.slots) for c in roster.enabled()}
    assert status["date"] is None
    assert {c["id"]: c["reels"]["planned"] for c in status["characters"]} == expected
    for c in status["characters"]:
        assert c["date"] in {days[c["id"]] for days in local_days}
        assert set(c["reels"]) == {"planned", "generated", "stored", "branded", "published",
                                   "failed", "missed"}
        assert set(c["posts"]) == {"tiktok", "instagram", "youtube"}
        assert c["open"] == {}, c["open"]  # nothing left pending, deferred or skipped
        # plan -> reels -> stored -> branded for every reel of the day
        planned = c["reels"]["planned"]
        assert c["reels"]["generated"] == c["reels"]["stored"] == c["reels"]["branded"] == planned
        assert c["reels"]["failed"] == 0
        # ... and published once on every platform (sandbox tokens seeded by `waifugen run`)
        for platform in ("tiktok", "instagram", "youtube"):
            assert c["posts"][platform].get("published") == c["reels"]["branded"], c["posts"]
        assert 0 < c["budget"]["used"] < c["budget"]["limit"]
        assert set(c["dms"]) == {"subscribers", "sent", "waiting", "held", "manual", "skipped"}
    # Sandbox subscribers (yesterday's sign-ups) got their day-0 welcome, or wait for the
    # morning in their time zone; nothing failed or is in doubt.
    dms = [c["dms"] for c in status["characters"]]
    assert sum(d["subscribers"] for d in dms) > 0
    assert sum(d["sent"] for d in dms) > 0 and sum(d["held"] for d in dms) == 0
    # Engagement read back for the day's posts, followers per account, comments answered:
    # each at most once, no unsafe or own comment answered, the unsafe ones held.
    for c in status["characters"]:
        assert c["engagement"]["followers"] > 0 and c["engagement"]["views_24h"] > 0, c
        assert c["engagement"]["replies_sent_24h"] > 0 and c["engagement"]["replies_held"] > 0, c
    snapshots = _count(engine, schema.engagement_snapshots)
    assert snapshots >= sum(2 * n for n in expected.values())  # TikTok: SELF_ONLY, unseen
    replies = {p: _replies_row(first.stdout, p) for p in ("instagram", "youtube")}
    for platform, (sent, answered, twice, unsafe) in replies.items():
        assert sent == answered > 0 and twice == 0 and unsafe == 0, (platform, first.stdout)
    before = _snapshot(engine)

    # What the sandbox platforms hold, counted there: one post per reel on each, disclosed.
    reels = sum(expected.values())
    for platform in ("tiktok", "instagram", "youtube"):
        assert _published_row(first.stdout, platform)[:5] == [
            platform, str(reels), str(reels), str(reels), "0"], first.stdout
        assert _published_row(first.stdout, platform)[5] == f"{reels}/{reels}"

    # The UTC day's analytics: the ledger, the seven marts, the report in the operators'
    # chat once (one photo, one message), counted on the sandbox Telegram.
    found = re.search(r"analytics for (\S+) \(UTC\): credit ledger, 7 marts built", first.stdout)
    assert found, first.stdout
    today = found.group(1)  # the run's UTC day (read by the CLI, which may cross midnight)
    assert today in {DAY, dt.datetime.now(dt.UTC).date().isoformat()}
    assert "daily report: photo sent, text sent" in first.stdout
    assert _report_row(first.stdout, today) == [today, "1", "1"], first.stdout
    assert "Running with dbt" not in first.stdout + first.stderr  # dbt's output: the log file
    with engine.connect() as conn:
        marts = set(conn.scalars(sa.text("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = 'analytics'")))
        ledger = conn.scalar(sa.select(sa.func.count()).select_from(schema.credit_ledger)
                             .where(schema.credit_ledger.c.kind == "balance_snapshot"))
    assert marts == MARTS and ledger == 1
    # ... and a backup of the sandbox's databases, its restore drill passed; verify agrees.
    assert re.search(r"backup \S+: 3 archive\(s\) in .+, restore drill passed", first.stdout), \
        first.stdout
    verify = _cli("backup", "verify", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count(": ok: ") == 3, verify.stdout

    second = _cli("run", env=env, analytics=True)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _report_row(second.stdout, today) == [today, "1", "1"], second.stdout  # sent once
    assert _snapshot(engine) == before
    for platform in ("tiktok", "instagram", "youtube"):  # the rerun published nothing more
        assert _published_row(second.stdout, platform)[1:5] == [str(reels)] * 3 + ["0"]
    # ... answered nothing more, and read the posts again.
    assert {p: _replies_row(second.stdout, p) for p in ("instagram", "youtube")} == replies
    assert _count(engine, schema.engagement_snapshots) > snapshots
    again = json.loads(_cli("status", "--json", env=env).stdout)
    # DMs may move from waiting to sent if a time zone's morning came between the runs; views
    # and followers grow on the platforms between two reads.
    for c in (*again["characters"], *status["characters"]):
        c["dms"].pop("sent"), c["dms"].pop("waiting")
        c["engagement"].pop("views_24h"), c["engagement"].pop("followers")
    assert again == status

    # The runs are in the Dagster instance, so the UI shows them.
    os.environ["DAGSTER_HOME"] = str(tmp_path / "home" / "dagster_home")
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert sum(r.job_name == "daily_content" for r in runs) == 2 * len(expected)
            assert sum(r.job_name == "subscriber_dms" for r in runs) == 2 * len(expected)
            assert sum(r.job_name == "engagement" for r in runs) == 2 * len(expected)
            assert sum(r.job_name == "comments" for r in runs) == 2 * len(expected)
            assert sorted(instance.get_dynamic_partitions("characters")) == sorted(expected)
    finally:
        del os.environ["DAGSTER_HOME"]


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)))


def _report_row(stdout: str, day: str) -> list[str]:
    """The report date's row of the operators' chat summary: [date, photos, messages]."""
    tail = stdout[stdout.index("Daily reports in the operators' Telegram chat"):]
    return next(line.split() for line in tail.splitlines() if line.startswith(day))


def _replies_row(stdout: str, platform: str) -> tuple[int, ...]:
    """(replies, comments answered, answered twice, unsafe or own answered) as printed."""
    tail = stdout[stdout.index("Comment replies on the sandbox platforms"):]
    line = next(x for x in tail.splitlines() if x.startswith(platform + " "))
    return tuple(int(v) for v in line.split()[1:5])


def _local_today(timezone: str) -> str:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(timezone)).date().isoformat()


def test_only_some_characters_and_unknown_ones(db_url: str, tmp_path: Path,
                                               project_dir: Path) -> None:
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url}
    one = load_roster(project_dir / "characters.yaml").enabled()[0].id
    assert _cli("run", "--date", DAY, "--character", one, env=env).returncode == 0
    status = json.loads(_cli("status", "--date", DAY, "--json", env=env).stdout)
    planned = {c["id"]: c["reels"]["planned"] for c in status["characters"]}
    assert planned[one] > 0 and sum(planned.values()) == planned[one]

    bad = _cli("run", "--date", DAY, "--character", "nobody-here", env=env)
    assert bad.returncode == 1 and "nobody-here" in bad.stderr


def test_roster_check_reports_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "roster.yaml"
    bad.write_text(
        "version: 1\n"
        "characters:\n"
        "  - id: Not A Slug\n"
        "    name: Someone\n"
        "    persona: A fictional creator.\n"
        "    age: 17\n"
        "    timezone: Mars/Olympus\n"
        "    slots: ['25:00']\n"
        "    platforms: {myspace: {account: x}}\n"
    )
    proc = _cli("roster", "check", str(bad), env=dict(os.environ))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith(str(bad))]
    fields = " ".join(lines)
    for field in ("id", "age", "timezone", "slots", "platforms"):
        assert field in fields
    assert all(line.count(":") >= 3 for line in lines)
    assert any(line.startswith(f"{bad}:6:") and "age" in line for line in lines)

    ok = _cli("roster", "check", env=dict(os.environ))
    assert ok.returncode == 0 and "ok, 8 characters" in ok.stdout


def _one_reel_roster(project_dir: Path, tmp_path: Path, cid: str) -> Path:
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load((project_dir / "characters.yaml").read_text())
    data["characters"] = [c for c in data["characters"] if c["id"] == cid]
    data["characters"][0]["slots"] = data["characters"][0]["slots"][:1]
    path = tmp_path / "characters.yaml"
    with path.open("w") as out:
        yaml.dump(data, out)
    return path


def _processes_using(marker: str) -> list[list[str]]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if marker in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                found.append(p.info["cmdline"])
    return found


def test_two_first_runs_on_a_fresh_home_at_once(tmp_path: Path, project_dir: Path) -> None:
    """Two `make run`s on a fresh state directory, started together: one embedded PostgreSQL,
    one app database and one schema (created once, not raced), one sandbox; both runs
    succeed, and when both have exited nothing they started is left running."""
    home = tmp_path / "home"
    cid = "greta-vollmond"
    env = {k: v for k, v in os.environ.items() if k != "WAIFUGEN_SANDBOX_URL"}
    env.update(WAIFUGEN_HOME=str(home),
               WAIFUGEN_ROSTER=str(_one_reel_roster(project_dir, tmp_path, cid)))
    argv = [sys.executable, "-m", "waifugen_assets.app.cli", "run", "--date", DAY,
            "--sandbox-port", "0"]
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in runs]
    for proc, out in zip(runs, outputs, strict=True):
        assert proc.returncode == 0, out
        assert "Traceback" not in out
        assert "1 character day(s) run, 0 failed" in out
    # Published once on every platform, whichever run got to each post.
    for platform in ("tiktok", "instagram", "youtube"):
        assert _published_row(outputs[-1], platform)[1:5] == ["1", "1", "1", "0"]
    assert _processes_using(str(home)) == []  # PostgreSQL and the sandbox stopped


def test_run_while_another_checkout_holds_the_sandbox_port(
        db_url: str, tmp_path: Path, project_dir: Path) -> None:
    """`make dev` in another checkout holds the default sandbox port: `make run` here takes a
    free port (and says so) instead of refusing, and sends nothing to the other sandbox."""
    from sandbox.server import SandboxServer
    from waifugen_assets.core.config import SANDBOX_DEFAULT_PORT

    env = {k: v for k, v in os.environ.items() if k != "WAIFUGEN_SANDBOX_URL"}
    env.update(WAIFUGEN_HOME=str(tmp_path / "home"), DATABASE_URL=db_url,
               WAIFUGEN_ROSTER=str(_one_reel_roster(project_dir, tmp_path, "greta-vollmond")))
    with contextlib.ExitStack() as stack:
        try:  # the other checkout's sandbox (or someone's real one already there)
            other = stack.enter_context(SandboxServer(tmp_path / "other",
                                                      port=SANDBOX_DEFAULT_PORT))
        except OSError:
            other = None
        proc = subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", "run",
                               "--date", DAY], env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"127.0.0.1:{SANDBOX_DEFAULT_PORT} is in use" in proc.stdout
        assert "1 character day(s) run, 0 failed" in proc.stdout
        if other is not None:
            assert other.journal() == []  # nothing of ours went to the other checkout
