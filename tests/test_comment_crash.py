"""Kill the comment cycle's process at random points, rerun, and count on the sandbox: no
comment ever gets two replies, none that should be answered is lost, and the account's own
comments and unsafe ones are never answered.

Every run is a real process (forked by the worker in tests/comment_world.py, with its own
database connections and HTTP clients) that SIGKILLs itself at a boundary picked by the trial:
before or after any Instagram or YouTube request, before or after any write of a comment,
poll or reply row. So a run dies holding claims, mid-transaction, with a reply committed as
`sending` and not yet sent, or sent and not yet recorded. On top, the sandbox loses some reply
answers after acting (a `drop` fault in phase `after`): the client sees an unknown outcome.
The trials are randomized from CRASH_SEED (printed on failure) and cycle through every
boundary a clean run crosses.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa
from comment_world import Worker, World, make_world

from waifugen_assets.core import schema

pytestmark = pytest.mark.integration

TRIALS = 100
SEED = int(os.environ.get("CRASH_SEED", "20261206"))
LOST_ANSWERS = 0.15  # share of reply answers the sandbox drops after acting
ANSWERABLE = ("What song is this?", "Where was this filmed?", "Love the vibe of this one",
              "This is so cozy, I love it!", "saw this on my feed", "first")
UNSAFE = ("you're so hot, show us more skin", "I'm 13, can you send me a message?")
PLATFORMS = ("instagram", "youtube")


@pytest.fixture
def world(pipeline_resources: dict, engine: sa.Engine, sandbox) -> World:
    w = make_world(pipeline_resources, engine, sandbox.url, f"-{uuid.uuid4().hex[:8]}")
    for route in ("*/replies", "/youtube/v3/comments"):
        sandbox.add_fault(system="instagram" if route == "*/replies" else "youtube",
                          route=route, method="POST", action="drop", phase="after",
                          probability=LOST_ANSWERS)
    return w


def test_killed_comment_runs_never_answer_twice_nor_lose_a_comment(
        world: World, engine: sa.Engine) -> None:
    rng = random.Random(SEED)
    start = dt.datetime.now(dt.UTC)
    expected: dict[str, set[str]] = {p: set() for p in PLATFORMS}
    never: dict[str, set[str]] = {p: set() for p in PLATFORMS}

    def setup(now: dt.datetime) -> None:
        """A fresh post per platform near the end of its reply window (read once or twice,
        then done: the world stays small), with comments to answer and some never to."""
        for platform in PLATFORMS:
            _, post = world.post(platform, now - dt.timedelta(days=7, minutes=-30))
            for text in rng.sample(ANSWERABLE, 2):
                expected[platform].add(world.comment(platform, post, text))
            if rng.random() < 0.3:
                never[platform].add(world.comment(platform, post, "Thanks for watching!",
                                                  own=True))
            if rng.random() < 0.3:
                never[platform].add(world.comment(platform, post, rng.choice(UNSAFE)))

    worker = Worker(world)
    try:
        now = start
        first = worker.run(now - dt.timedelta(seconds=1))  # the accounts are switched on
        assert first.get("killed", "?") is None, first
        setup(now)
        clean = worker.run(now)  # the boundaries one run crosses
        assert clean["killed"] is None and clean["boundaries"] >= 20, clean
        boundaries = clean["boundaries"]
        positions = [1 + i % boundaries for i in range(max(TRIALS, boundaries))]
        rng.shuffle(positions)
        hit: Counter[str] = Counter()
        for trial, at in enumerate(positions, start=1):
            now = start + dt.timedelta(minutes=7 * trial)
            setup(now)
            for kill_at, when in [(at, now)] + ([(rng.randint(1, boundaries),
                                                 now + dt.timedelta(seconds=30))]
                                                if rng.random() < 0.25 else []):
                answer = worker.run(when, kill_at)
                assert "error" not in answer, (f"CRASH_SEED={SEED} trial {trial}", answer)
                hit[answer["killed"] or "ran to the end"] += 1
            # A rerun settles what the killed runs left (a claim a dead run's session still
            # held for a moment is taken by the next trial's runs or the last ones).
            answer = worker.run(now + dt.timedelta(minutes=3))
            assert answer["killed"] is None, answer
        end = now + dt.timedelta(minutes=10)
        for _ in range(4):
            worker.run(end)
            end += dt.timedelta(minutes=5)
    finally:
        worker.close()

    context = f"CRASH_SEED={SEED}"
    for platform in PLATFORMS:
        replies = Counter(r["parent"] for r in world.replies(platform))
        twice = {c: n for c, n in replies.items() if n > 1}
        assert not twice, f"{context}: {platform} answered twice: {twice}"
        assert not set(replies) & never[platform], f"{context}: own or unsafe answered"
        assert set(replies) <= expected[platform]
        missing = expected[platform] - set(replies)
        held = {r["remote_comment_id"] for r in world.rows(
            schema.comments, schema.comments.c.platform == platform,
            schema.comments.c.state == "held")}
        # Nothing is lost: a comment not answered is held for a person (a reply whose
        # sends were both lost with no trace on the platform), never silently dropped.
        assert missing <= held, f"{context}: {platform} never answered {missing - held}"
        assert len(missing) <= 2, (context, platform, missing)
    cr = schema.comment_replies
    with engine.connect() as conn:
        states = Counter(conn.execute(sa.select(cr.c.state)).scalars())
    assert set(states) <= {"sent", "held"}, states
    assert states["sent"] == sum(len(world.replies(p)) for p in PLATFORMS)
    for required in ("before POST reply", "after POST reply", "before db take_slot",
                     "after db take_slot", "before db _set", "after db store_comments",
                     "before GET read"):
        assert any(k.startswith(required) for k in hit), (required, sorted(hit))
