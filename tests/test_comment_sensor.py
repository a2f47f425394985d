"""The comments sensor reads the database only: one comment_poll run a tick when any post is due
a read (every character's reads in that one run; none while one is queued or going), and a
comments run only for characters with answering work (a comment to answer, a reply due);
nothing for a quiet roster, a held comment, a post past its window or a character whose run is
going. The runs it asks for are real (the jobs, the sandbox over HTTP, an injected clock)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from comment_world import World, make_worlds

from resources.database import DatabaseResource
from sensors.comments import NO_READ, TICK, comments_sensor
from waifugen_assets.comments.assets import comment_replies
from waifugen_assets.comments.jobs import comment_poll_job, comment_replies_job
from waifugen_assets.comments.review import approve
from waifugen_assets.core import clock, schema
from waifugen_assets.pipeline.partitions import characters_partitions

pytestmark = pytest.mark.integration

START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
ROSTER = ("mika-hoshizora", "lucia-marvento", "nova-castellane", "bia-luzeiro",
          "tessa-wrenfield", "greta-vollmond", "skye-halloran", "hana-byeolsong")


class Harness:
    """The sensor and the two jobs on this test's database and sandbox, on a simulated clock
    the sandbox follows."""

    def __init__(self, instance: dg.DagsterInstance, sim: Any, db_url: str,
                 resources: dict[str, Any]) -> None:
        self.instance, self.sim, self.db_url = instance, sim, db_url
        self.defs = dg.Definitions(
            assets=[comment_replies], jobs=[comment_replies_job, comment_poll_job],
            resources={k: resources[k] for k in ("database", "instagram", "youtube",
                                                  "ollama")})

    def tick(self, minutes: float = 1) -> list[dg.RunRequest]:
        self.sim.advance(minutes * 60)
        with dg.build_sensor_context(
                instance=self.instance,
                resources={"database": DatabaseResource(url=self.db_url)}) as context:
            return list(comments_sensor(context).run_requests)

    def run(self, request: dg.RunRequest) -> dict[str, Any]:
        """Execute the run asked for; the poll op's output metadata (poll runs)."""
        result = self.defs.resolve_job_def(request.job_name).execute_in_process(
            instance=self.instance, partition_key=request.partition_key,
            run_config=request.run_config or {}, tags=dict(request.tags))
        assert result.success
        outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        if request.job_name != comment_poll_job.name:
            return {}
        return {k: v.value for k, v in outputs[0].event_specific_data.metadata.items()}

    def in_flight(self, job_name: str, partition: str | None = None) -> None:
        self.instance.create_run_for_job(
            self.defs.resolve_job_def(job_name), run_config={},
            tags={"dagster/partition": partition} if partition else {})

    def clear_runs(self) -> None:
        for record in self.instance.get_runs():
            self.instance.delete_run(record.run_id)


@pytest.fixture
def harness(pipeline_resources: dict, engine: sa.Engine, db_url: str,
            sandbox) -> Iterator[Harness]:
    with engine.connect() as conn:
        everyone = list(conn.execute(sa.select(schema.characters.c.id)).scalars())
    with dg.instance_for_test() as instance, clock.simulate(
            START, on_change=lambda t: sandbox.set_clock(t.timestamp())) as sim:
        instance.add_dynamic_partitions(characters_partitions.name, [*everyone, *ROSTER])
        yield Harness(instance, sim, db_url, pipeline_resources)


def _worlds(pipeline_resources: dict, engine: sa.Engine, sandbox,
            cids: tuple[str, ...]) -> dict[str, World]:
    return make_worlds(pipeline_resources, engine, sandbox.url, f"-{uuid.uuid4().hex[:8]}",
                       cids)


def _comment(engine: sa.Engine, cid: str, post_id: int, state: str, n: int) -> None:
    """A stored comment (as a poll run stores it), straight in the database."""
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.comments).values(
            post_id=post_id, character_id=cid, platform="instagram",
            remote_comment_id=f"{cid}-{state}-{n}", text="What song is this?",
            commented_at=clock.now(), classification="question", state=state))


def test_one_poll_run_a_tick_for_every_character_and_reply_runs_only_with_work(
        harness: Harness, pipeline_resources: dict, engine: sa.Engine, sandbox) -> None:
    """Sensor only (nothing is executed): the run requests, tick by tick."""
    worlds = _worlds(pipeline_resources, engine, sandbox, ROSTER)
    assert harness.tick() == []  # a quiet roster: nothing
    posts = {cid: w.post("instagram", clock.now() - MINUTE)[0] for cid, w in worlds.items()}
    for w in worlds.values():
        w.post("youtube", clock.now() - MINUTE)
    # Sixteen posts of eight characters due their first read: one poll run, no reply run.
    (poll,) = harness.tick()
    assert (poll.job_name, poll.partition_key, poll.run_config) == ("comment_poll", None, {})
    tick = int(clock.now().timestamp() // TICK.total_seconds())
    assert poll.run_key == f"comment-poll:{tick}"
    # While a poll run is queued or going, no second one, however many ticks.
    harness.in_flight("comment_poll")
    assert harness.tick(5) == [] and harness.tick(5) == []
    # Comments to answer for two characters (held and skipped ones for two others): a reply
    # run for each of the two, which does not read again.
    busy = ("lucia-marvento", "skye-halloran")
    for cid in busy:
        _comment(engine, cid, posts[cid], "new", 1)
    _comment(engine, "mika-hoshizora", posts["mika-hoshizora"], "held", 1)
    _comment(engine, "nova-castellane", posts["nova-castellane"], "skipped", 1)
    requests = harness.tick()
    assert sorted(r.partition_key.split("|")[0] for r in requests) == sorted(busy)
    assert {r.job_name for r in requests} == {"comments"}
    assert all(r.run_config == NO_READ for r in requests)
    assert {r.run_key.rsplit(":", 1)[0] for r in requests} == {f"comments:{c}" for c in busy}
    # A character whose comments run is going gets none; the other still does.
    harness.in_flight("comments", requests[0].partition_key)
    (other,) = harness.tick()
    assert other.partition_key == requests[1].partition_key
    # Nothing in flight: the poll run and the two reply runs, all in one tick.
    harness.clear_runs()
    assert sorted(r.job_name for r in harness.tick()) == ["comment_poll", "comments",
                                                          "comments"]
    # Disabled characters: neither reads nor answers.
    with engine.begin() as conn:
        conn.execute(sa.update(schema.characters).values(enabled=False))
    assert harness.tick() == []


def test_a_poll_run_reads_every_character_and_the_next_tick_answers_exactly_those(
        harness: Harness, pipeline_resources: dict, engine: sa.Engine, sandbox) -> None:
    a, b, c = ("lucia-marvento", "bia-luzeiro", "greta-vollmond")
    worlds = _worlds(pipeline_resources, engine, sandbox, (a, b, c))
    posts = {(cid, p): w.post(p, clock.now() - MINUTE)[1]
             for cid, w in worlds.items() for p in ("instagram", "youtube")}
    # The first reads (and the switch-on) of all three characters in one run.
    (poll,) = harness.tick()
    meta = harness.run(poll)
    assert (meta["characters"], meta["accounts_read"], meta["posts_read"]) == (3, 6, 6)
    assert (meta["comments_stored"], meta["failures"], meta["youtube_pages"]) == (0, 0, 3)
    assert harness.tick() == []  # young posts are read every 5 (Instagram) or 15 minutes
    worlds[a].comment("instagram", posts[(a, "instagram")], "What song is this?")
    worlds[b].comment("youtube", posts[(b, "youtube")], "Your videos always make my day ✨")
    worlds[c].comment("instagram", posts[(c, "instagram")], "Earn $500 a day, DM me")
    held = worlds[c].comment("youtube", posts[(c, "youtube")], "send me something spicy 🍑")
    # The sensor never asks the platforms: the poll run reads them (YouTube at 15 minutes).
    (poll,) = harness.tick(14)
    assert poll.job_name == "comment_poll"
    sent = sum(len(w.journal_posts(p)) for w in worlds.values() for p in ("instagram",
                                                                          "youtube"))
    meta = harness.run(poll)
    assert (meta["comments_stored"], meta["stored_new"], meta["stored_skipped"],
            meta["stored_held"]) == (4, 2, 1, 1)
    assert (meta["class_question"], meta["class_compliment"], meta["class_spam"],
            meta["class_unsafe"]) == (1, 1, 1, 1)
    assert sent == sum(len(w.journal_posts(p)) for w in worlds.values()
                       for p in ("instagram", "youtube"))  # a poll run answers nothing
    # The next tick: a reply run for exactly the two characters with comments to answer.
    requests = harness.tick()
    assert sorted(r.partition_key.split("|")[0] for r in requests) == sorted((a, b))
    since = max((e["id"] for e in sandbox.journal()), default=0)
    for request in requests:
        harness.run(request)
    reads = [e for e in sandbox.journal(since=since) if e["method"] == "GET"
             and ("/comments" in e["path"] or "/commentThreads" in e["path"])]
    assert reads == []  # the reply runs did not read again
    assert len(worlds[a].replies("instagram")) == 1 and len(worlds[b].replies("youtube")) == 1
    assert worlds[c].replies("instagram") == worlds[c].replies("youtube") == []
    assert harness.tick() == []  # answered, and no read due yet
    # A held comment makes no run; an operator's approval does, for its character only.
    (row,) = worlds[c].rows(schema.comments, schema.comments.c.remote_comment_id == held)
    assert row["state"] == "held"
    approve(engine, row["id"], "Thanks for watching, have a lovely day!")
    (request,) = harness.tick()
    assert request.partition_key.split("|")[0] == c
    harness.run(request)
    assert [r["parent"] for r in worlds[c].replies("youtube")] == [held]
    # Past the windows: one last read at their end, then the sensor is quiet for good.
    harness.sim.advance(dt.timedelta(days=7).total_seconds())
    (poll,) = harness.tick()
    harness.run(poll)
    assert harness.tick(5) == [] and harness.tick(TICK.total_seconds() / 60 * 12) == []
    assert {r["next_poll_at"] for r in worlds[a].rows(schema.comment_polls)} == {None}
