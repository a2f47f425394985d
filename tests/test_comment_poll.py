"""The comment_poll run's reads on a real PostgreSQL and the sandbox over HTTP: a YouTube channel
read in one listing for all its videos (1 unit a page, paging back only to the last read, as the
journal and the project's unit ledger count), comments stored on the posts in their window, and
one character's or platform's trouble never stopping the others' reads (the failures named in
the run's metadata)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from comment_world import CID, World, make_worlds, poll, world_clients

from waifugen_assets.comments.fetch import NOT_IN_WINDOW
from waifugen_assets.comments.jobs import comment_poll_job
from waifugen_assets.comments.poll import poll_comments
from waifugen_assets.core import clock, schema

pytestmark = pytest.mark.integration

START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def sim(sandbox) -> Iterator[Any]:
    with clock.simulate(START, on_change=lambda t: sandbox.set_clock(t.timestamp())) as s:
        sandbox.set_clock(START.timestamp())
        yield s


def _worlds(pipeline_resources: dict, engine: sa.Engine, sandbox,
            *cids: str) -> dict[str, World]:
    return make_worlds(pipeline_resources, engine, sandbox.url, f"-{uuid.uuid4().hex[:8]}",
                       cids)


def _thread_reads(sandbox, since: int) -> list[dict[str, Any]]:
    return [e for e in sandbox.journal("youtube", since)
            if e["path"].endswith("/commentThreads") and e["method"] == "GET"]


def _mark(sandbox) -> int:
    return max((e["id"] for e in sandbox.journal()), default=0)


def test_a_youtube_channel_is_read_in_one_listing_at_one_unit_a_page(
        pipeline_resources: dict, engine: sa.Engine, sandbox, sim: Any) -> None:
    world = _worlds(pipeline_resources, engine, sandbox, CID)[CID]
    posts = [world.post("youtube", START - age) for age in (HOUR, 3 * HOUR, 2 * 24 * HOUR)]
    _, old = world.post("youtube", START - 8 * 24 * HOUR)  # past its reply window
    units = world.clients().youtube_units
    assert units is not None

    def read(at: dt.datetime) -> tuple[Any, list[dict[str, Any]], int]:
        """A poll at `at`: its stats, its commentThreads requests, the units it spent."""
        sim.advance((at - clock.now()).total_seconds())
        since, before = _mark(sandbox), units.units_used(at)
        stats = poll(engine, pipeline_resources, at)
        return stats, _thread_reads(sandbox, since), units.units_used(at) - before

    # The first read: the switch-on, the channel's id learned once (channels.list, 1 unit),
    # one listing page for the three videos in their window.
    stats, calls, spent = read(START)
    assert (stats.posts_read, stats.stored, stats.pages["youtube"], spent) == (3, 0, 1, 2)
    (call,) = calls
    assert call["query"]["allThreadsRelatedToChannelId"] == world.channel
    assert "videoId" not in call["query"]
    assert (call["query"]["order"], call["query"]["maxResults"]) == ("time", "100")
    # 150 comments over the three videos (and one on the old video): two pages, two units,
    # not one read (and unit) per video.
    for n in range(150):
        world.comment("youtube", posts[n % 3][1], f"What song is this? #{n}",
                      at=(START + MINUTE + n * dt.timedelta(seconds=10)).isoformat())
    world.comment("youtube", old, "Still here a week later?",
                  at=(START + 2 * MINUTE).isoformat())
    stats, calls, spent = read(START + 2 * HOUR)
    assert (stats.stored, stats.states["new"], len(calls), spent) == (150, 150, 2, 2)
    assert stats.skipped[NOT_IN_WINDOW] == 1
    assert calls[1]["query"]["pageToken"]
    # Three new comments: the listing stops at the page that reaches back past the last
    # read (minus an hour): one page, one unit.
    for post_id, remote in posts:
        world.comment("youtube", remote, f"Where was this filmed? {post_id}",
                      at=(START + 2 * HOUR + 5 * MINUTE).isoformat())
    stats, calls, spent = read(START + 2 * HOUR + 15 * MINUTE)
    assert (stats.stored, len(calls), spent) == (3, 1, 1)
    # Its posts are read together, at the pace of the youngest (under 6 hours: 15 minutes).
    cp = schema.comment_polls
    rows = world.rows(cp, cp.c.post_id.in_([p for p, _ in posts]))
    assert {r["next_poll_at"] for r in rows} == {START + 2 * HOUR + 30 * MINUTE}
    assert {r["last_polled_at"] for r in rows} == {START + 2 * HOUR + 15 * MINUTE}
    stats, calls, spent = read(START + 2 * HOUR + 20 * MINUTE)  # not due yet: nothing
    assert (stats.posts_read, calls, spent) == (0, [], 0)
    cm = schema.comments
    with engine.connect() as conn:
        per_post = dict(conn.execute(sa.select(cm.c.post_id, sa.func.count())
                                     .group_by(cm.c.post_id)).all())
    assert per_post == {p: 51 for p, _ in posts}  # each on its own post, none on the old one


def test_one_character_in_trouble_does_not_stop_the_poll(
        pipeline_resources: dict, engine: sa.Engine, sandbox, sim: Any) -> None:
    fine, revoked, tokenless = "bia-luzeiro", "greta-vollmond", "lucia-marvento"
    worlds = _worlds(pipeline_resources, engine, sandbox, fine, revoked, tokenless)
    posts = {(cid, p): w.post(p, START - MINUTE)
             for cid, w in worlds.items() for p in ("instagram", "youtube")}
    assert poll(engine, pipeline_resources, START).failed == {}  # all switched on
    for (cid, platform), (_, remote) in posts.items():
        worlds[cid].comment(platform, remote, "What song is this?")
    # greta's YouTube grant is revoked (its token cannot be refreshed); lucia's Instagram
    # token is gone from the vault; bia is fine.
    sandbox_http = worlds[revoked].http
    sandbox_http.post("/youtube/_control/revoke_token", json={
        "refresh_token": f"1//sandbox-{revoked}{worlds[revoked].suffix}"}).raise_for_status()
    pa = schema.platform_accounts
    with engine.begin() as conn:
        conn.execute(sa.update(pa).where(pa.c.character_id == tokenless,
                                         pa.c.platform == "instagram")
                     .values(access_token_enc=None, refresh_token_enc=None))
    sim.advance(15 * 60)
    resources = {k: pipeline_resources[k] for k in ("database", "instagram", "youtube")}
    with dg.instance_for_test() as instance:
        result = comment_poll_job.execute_in_process(instance=instance, resources=resources)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    failed = meta["failed"]
    assert {k.split(" ")[0] for k in failed} == {revoked, tokenless}, failed
    assert "invalid_grant: Token has been expired or revoked" in failed[
        f"{revoked} youtube channel"]
    (ig_post,) = [k for k in failed if k.startswith(f"{tokenless} instagram post ")]
    assert failed[ig_post].startswith(f"{tokenless} has no instagram token: authorise")
    assert "1//sandbox" not in str(failed)
    assert (meta["characters"], meta["accounts_read"], meta["comments_stored"]) == (3, 4, 4)
    stored = {(r["character_id"], r["platform"]) for r in worlds[fine].rows(schema.comments)}
    assert stored == {(fine, "instagram"), (fine, "youtube"), (revoked, "instagram"),
                      (tokenless, "youtube")}
    # The failed reads are tried again at their next read time, not every tick.
    cp = schema.comment_polls
    (row,) = worlds[fine].rows(cp, cp.c.post_id == posts[(revoked, "youtube")][0])
    assert row["error"] and row["next_poll_at"] == START + 30 * MINUTE
    # A character whose read breaks outright (here: its clients cannot even be built) is
    # named; the others are read.
    worlds[fine].comment("instagram", posts[(fine, "instagram")][1], "Love the vibe")
    sim.advance(5 * 60)

    def clients_for(cid: str) -> Any:
        if cid == tokenless:
            raise RuntimeError("no clients today")
        return world_clients(engine, pipeline_resources["instagram"],
                             pipeline_resources["youtube"], cid=cid)

    stats = poll_comments(engine, [fine, tokenless], clients_for, clock.now())
    assert stats.failed == {f"{tokenless} read": "RuntimeError: no clients today"}
    assert stats.stored == 1
