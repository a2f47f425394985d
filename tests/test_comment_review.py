"""`waifugen comments review`: the held comments listed, an operator's approval sent once by the
next run (with the gate and the disclosure on an operator's text too), a skip never answered;
every refusal one line on stderr and exit 1. Through the real CLI process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from comment_world import World, make_world

from waifugen_assets.comments.reply_text import template_reply
from waifugen_assets.core import clock, schema
from waifugen_assets.subscribers.safety import DISCLOSURE

pytestmark = pytest.mark.integration

MINUTE = dt.timedelta(minutes=1)
# The `waifugen` command with the comments group added as waifugen_assets/app/cli.py adds it.
_CLI = ("import waifugen_assets.app.cli as cli; "
        "from waifugen_assets.app.cli_comments import comments; "
        "cli.main.add_command(comments); cli.main(prog_name='waifugen')")


@pytest.fixture
def world(pipeline_resources: dict, engine: sa.Engine, sandbox) -> World:
    return make_world(pipeline_resources, engine, sandbox.url, f"-{uuid.uuid4().hex[:8]}")


def review(*args: str, db_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", _CLI, "comments", "review", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert all(w in lines[0] for w in words), (words, lines[0])


def test_review_lists_approves_and_skips(world: World, db_url: str, tmp_path: Path) -> None:
    now = clock.now()
    _, post = world.post("instagram", now - dt.timedelta(hours=1))
    world.cycle(now)
    unsafe = world.comment("instagram", post, "wanna see you in a bikini, post it")
    foreign = world.comment("instagram", post, "Qué bonito, saludos desde México")
    world.cycle(now + 10 * MINUTE)
    ids = {r["remote_comment_id"]: r["id"] for r in world.rows(schema.comments)}
    home = tmp_path / "home"

    listed = review("--character", "lucia-marvento", db_url=db_url, home=home)
    assert listed.returncode == 0, listed.stderr
    assert "2 comment(s) held for review for lucia-marvento" in listed.stderr
    assert f"{ids[unsafe]}  lucia-marvento  instagram" in listed.stdout
    assert "unsafe: suggestive: 'bikini'" in listed.stdout
    assert "doubtful: another language" in listed.stdout
    assert "saludos desde México" in listed.stdout
    assert review("--character", "mika-hoshizora", db_url=db_url, home=home).stdout == ""

    # Refusals: one line each, nothing changed.
    one_line_error(review("--approve", str(ids[unsafe]), db_url=db_url, home=home),
                   f"comment {ids[unsafe]} is unsafe", "--text")
    one_line_error(review("--approve", str(ids[unsafe]), "--text", "more at https://x.example",
                          db_url=db_url, home=home), "safety gate", "x.example")
    one_line_error(review("--approve", "999999", db_url=db_url, home=home),
                   "there is no comment 999999")
    one_line_error(review("--approve", "1", "--skip", "2", db_url=db_url, home=home),
                   "choose one")
    one_line_error(review("--text", "hi", db_url=db_url, home=home), "--approve")

    # The doubtful one approved (its class's template); the unsafe one skipped.
    approved = review("--approve", str(ids[foreign]), db_url=db_url, home=home)
    assert approved.returncode == 0, approved.stderr
    assert f"comment {ids[foreign]} approved" in approved.stdout
    skipped = review("--skip", str(ids[unsafe]), db_url=db_url, home=home)
    assert skipped.returncode == 0 and "will not be answered" in skipped.stdout
    one_line_error(review("--skip", str(ids[unsafe]), db_url=db_url, home=home),
                   "is skipped, not held")
    assert "0 comment(s) held for review" in review(db_url=db_url, home=home).stderr

    stats = world.cycle(now + 20 * MINUTE)
    assert stats.outcomes == {"sent": 1}
    (reply,) = world.replies("instagram")
    assert reply["parent"] == foreign and reply["text"] == template_reply("neutral")
    states = {r["remote_comment_id"]: r["state"] for r in world.rows(schema.comments)}
    assert (states[foreign], states[unsafe]) == ("answered", "skipped")
    one_line_error(review("--approve", str(ids[foreign]), db_url=db_url, home=home),
                   "is answered, not held")


def test_an_unsafe_comment_is_answered_only_with_an_operators_text(
        world: World, db_url: str, tmp_path: Path) -> None:
    now = clock.now()
    _, post = world.post("youtube", now - dt.timedelta(hours=1))
    world.cycle(now)
    minor = world.comment("youtube", post, "I'm 12 and you're my favourite!!")
    world.cycle(now + 20 * MINUTE)
    (row,) = world.rows(schema.comments)
    assert row["state"] == "held" and world.replies("youtube") == []
    text = "Thank you for watching! Please stay safe online."
    done = review("--approve", str(row["id"]), "--text", text, db_url=db_url,
                  home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    # Four days later: too late for an automatic reply, never for an operator's decision.
    assert world.cycle(now + dt.timedelta(days=4)).outcomes == {"sent": 1}
    (reply,) = world.replies("youtube")
    assert (reply["parent"], reply["text"]) == (minor, f"{text}\n\n{DISCLOSURE}")
    (stored,) = world.rows(schema.comment_replies)
    assert stored["source"] == "operator"
