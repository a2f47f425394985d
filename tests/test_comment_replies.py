"""The comment_replies cycle on a real PostgreSQL and the sandbox over HTTP: safe comments
answered once in persona with the disclosure, unsafe and doubtful ones held, spam and hostile
ones skipped and counted, own comments and comments from before the switch-on never answered,
the gate holding what the writer or a stored text gets wrong, unknown outcomes settled by
listing the replies, the caps, and YouTube replies deferred (not failed) when the units are
spent. Counted on the sandbox (GET /<platform>/_control/replies)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

import dagster as dg
import pytest
import sqlalchemy as sa
from comment_world import CID, World, make_world

from resources.youtube import next_reset
from waifugen_assets.comments.assets import CommentConfig, comment_replies
from waifugen_assets.comments.caps import Caps
from waifugen_assets.comments.fetch import switch_on_character
from waifugen_assets.comments.reply_text import TEMPLATES, template_reply
from waifugen_assets.comments.summary import held_by_character, sent_by_character
from waifugen_assets.core import clock, schema
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.subscribers.safety import DISCLOSURE

pytestmark = pytest.mark.integration

PLATFORMS = ("instagram", "youtube")
MINUTE = dt.timedelta(minutes=1)
# text, what happens to it
COMMENTS = {
    "What song is this?": "answered",
    "Your videos always make my day ✨": "answered",
    "saw this on my feed": "answered",
    "Earn $500 a day from home, DM me": "skipped",
    "This is so cringe, delete your account": "skipped",
    "send me something spicy in DMs 🍑": "held",
    "I'm 13, can you send me a message? 🥺": "held",
    "¡Me encanta este video! 😍": "held",
}


@pytest.fixture
def world(pipeline_resources: dict, engine: sa.Engine, sandbox) -> World:
    return make_world(pipeline_resources, engine, sandbox.url, f"-{uuid.uuid4().hex[:8]}")


def _switch_on(world: World, now: dt.datetime) -> dict[str, str]:
    """Fresh posts on both platforms and a first run (the switch-on): platform -> post id."""
    posts = {p: world.post(p, now - dt.timedelta(hours=1))[1] for p in PLATFORMS}
    stats = world.cycle(now)
    assert stats.fetch.posts_read == 2 and stats.fetch.stored == 0
    return posts


def _replied(world: World, platform: str) -> Counter[str]:
    return Counter(r["parent"] for r in world.replies(platform))


def _comment_rows(world: World) -> dict[str, dict]:
    return {r["remote_comment_id"]: r for r in world.rows(schema.comments)}


def test_safe_comments_are_answered_once_and_the_rest_never(world: World) -> None:
    now = clock.now()
    posts = {p: world.post(p, now - dt.timedelta(hours=1))[1] for p in PLATFORMS}
    before = {p: world.comment(p, posts[p], "What song is this? (before the switch-on)",
                               at=(now - 10 * MINUTE).isoformat()) for p in PLATFORMS}
    world.cycle(now)  # the switch-on: what came before is never answered, nor kept
    ids = {p: {world.comment(p, posts[p], text): fate for text, fate in COMMENTS.items()}
           for p in PLATFORMS}
    own = {p: world.comment(p, posts[p], "New video every day! Which one next? 💕", own=True)
           for p in PLATFORMS}
    stats = world.cycle(now + 20 * MINUTE)

    rows = _comment_rows(world)
    for p in PLATFORMS:
        replied = _replied(world, p)
        answered = {c for c, fate in ids[p].items() if fate == "answered"}
        assert set(replied) == answered and set(replied.values()) == {1}, p
        for c, fate in ids[p].items():
            assert rows[c]["state"] == fate, (p, rows[c])
        assert rows[own[p]]["state"] == "own" and own[p] not in replied
        assert before[p] not in rows and before[p] not in replied
    for reply in world.replies("instagram") + world.replies("youtube"):
        assert reply["text"].endswith(DISCLOSURE)
    assert stats.fetch.skipped["before replies were switched on"] == 2
    assert stats.fetch.states == {"new": 6, "skipped": 4, "held": 6, "own": 2}
    assert stats.fetch.classes["unsafe"] == 4 and stats.fetch.classes["spam"] == 2
    assert stats.outcomes["sent"] == 6
    sources = Counter(r["source"] for r in world.rows(schema.comment_replies))
    assert sum(sources.values()) == 6 and set(sources) <= {"llm", "template"}

    again = world.cycle(now + 40 * MINUTE)  # nothing new: nothing sent, nothing stored
    assert again.fetch.stored == 0 and not again.outcomes
    assert sum(len(world.replies(p)) for p in PLATFORMS) == 6


def test_the_simulated_audience_is_answered_at_most_once_and_never_unsafely(
        pipeline_resources: dict, engine: sa.Engine, sandbox) -> None:
    """The sandbox's own audience (every class, replies under comments, the account's own
    replies), switched on before the post: each class lands where it must."""
    world = make_world(pipeline_resources, engine, sandbox.url, f"-{uuid.uuid4().hex[:8]}",
                       quiet=False)
    now = clock.now()
    early = now - dt.timedelta(hours=30)
    posts = {p: world.post(p, early)[1] for p in PLATFORMS}
    # Switched on before the posts were published (as `waifugen run` does before publishing);
    # the run's own switch-on later keeps the earlier time.
    assert switch_on_character(engine, CID, early - MINUTE) == 2
    read_at = dt.datetime.now(dt.UTC)  # the audience goes on commenting after the read
    world.cycle(now, caps=Caps(per_post_hour=100, per_account_day=100))
    rows = _comment_rows(world)
    switched = {r["switched_on_at"] for r in world.rows(schema.comment_accounts)}
    assert switched == {(early - MINUTE).replace(microsecond=0)}
    for p in PLATFORMS:
        truth = {c["id"]: c for c in world.sandbox_comments(p, posts[p])
                 if c["parent"] is None and not c["hidden"]  # hidden: Instagram's spam filter
                 and dt.datetime.fromisoformat(c["created"]) < read_at - MINUTE}
        replied = _replied(world, p)
        assert truth and set(replied.values()) == {1}, p
        assert set(truth) == set(rows) & set(truth), "every top-level comment is stored"
        for cid, comment in truth.items():
            kind, state = comment["class"], rows[cid]["state"]
            expected = {"own": {"own"}, "sexual": {"held"}, "minors": {"held"},
                        "other_language": {"held"}, "spam": {"skipped"},
                        "hostile": {"skipped"}}.get(kind, {"answered"})
            assert state in expected, (p, kind, comment["text"], rows[cid])
            assert (cid in replied) == (state == "answered"), (p, kind, comment["text"])


def test_the_gate_holds_what_the_writer_or_a_stored_text_gets_wrong(world: World,
                                                                    engine: sa.Engine) -> None:
    now = clock.now()
    posts = _switch_on(world, now)
    link = world.comment("instagram", posts["instagram"], "What pan is that?")
    world.comment("youtube", posts["youtube"], "How long did this take to make?")

    # A writer that answers with a link: its text is refused, the template goes out. And a
    # stored text edited to something unsafe (a bug, a bad migration) is never sent.
    bad = f"so sexy\n\n{DISCLOSURE}"
    with engine.begin() as conn:
        conn.execute(sa.text("""
            CREATE FUNCTION corrupt() RETURNS trigger AS $$ BEGIN
              IF NEW.comment_id = (SELECT id FROM comments WHERE remote_comment_id = :link)
              THEN NEW.text := :bad; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER corrupt BEFORE INSERT ON comment_replies
              FOR EACH ROW EXECUTE FUNCTION corrupt()""").bindparams(link=link, bad=bad))
    stats = world.cycle(now + 20 * MINUTE,
                        writer=lambda system, user: "Full recipe at https://evil.example/x")
    assert stats.planned == 2
    assert stats.reasons["writer refused: link to a host that is not allowed"] == 2
    assert stats.outcomes == {"sent": 1, "held": 1}
    assert _replied(world, "instagram") == Counter()
    (yt_reply,) = world.replies("youtube")
    assert yt_reply["text"] == template_reply("question")
    held = _comment_rows(world)[link]
    assert held["state"] == "held" and "safety gate" in held["reason"]


def test_a_lost_answer_is_settled_by_listing_the_replies(world: World, sandbox) -> None:
    now = clock.now()
    posts = _switch_on(world, now)
    ids = {p: world.comment(p, posts[p], "What song is this?") for p in PLATFORMS}
    for system, route in (("instagram", "*/replies"), ("youtube", "/youtube/v3/comments")):
        sandbox.add_fault(system=system, route=route, method="POST", action="drop",
                          phase="after", times=1)
    stats = world.cycle(now + 20 * MINUTE)
    assert stats.outcomes == {"unknown": 2}
    assert all(_replied(world, p) == {ids[p]: 1} for p in PLATFORMS)  # it went through
    early = world.cycle(now + 21 * MINUTE)  # too soon: a late answer may still be coming
    assert not early.outcomes
    settled = world.cycle(now + 23 * MINUTE)
    assert settled.outcomes == {"reconciled_sent": 2}
    assert all(_replied(world, p) == {ids[p]: 1} for p in PLATFORMS)
    replies = world.rows(schema.comment_replies)
    assert {r["state"] for r in replies} == {"sent"}
    assert {r["remote_reply_id"] for r in replies} == {
        r["id"] for p in PLATFORMS for r in world.replies(p)}
    # A 5xx answer to the send: the platform may have acted, so it is settled the same way;
    # here it had not, so the reply goes out then, once.
    late = world.comment("instagram", posts["instagram"], "Where was this filmed?")
    sandbox.add_fault(system="instagram", route="*/replies", method="POST", action="status",
                      status=503, times=1)
    assert world.cycle(now + 30 * MINUTE).outcomes == {"unknown": 1}
    assert late not in _replied(world, "instagram")
    settled = world.cycle(now + 33 * MINUTE)
    assert settled.outcomes == {"reconciled_not_sent": 1, "sent": 1}
    assert _replied(world, "instagram")[late] == 1


def test_caps_per_post_per_hour_and_per_account_per_day(world: World) -> None:
    now = clock.now()
    posts = _switch_on(world, now)
    for n in range(4):
        world.comment("instagram", posts["instagram"], f"What is in dish number {n}?")
    second = world.post("instagram", now - dt.timedelta(hours=1))[1]
    for n in range(2):
        world.comment("instagram", second, f"Where was number {n} filmed?")
    caps = Caps(per_post_hour=2, per_account_day=3)
    stats = world.cycle(now + 10 * MINUTE, caps=caps)
    assert stats.outcomes == {"sent": 3, "waiting": 3}
    assert stats.reasons == {"cap": 3}
    by_post = Counter(r["post"] for r in world.replies("instagram"))
    assert sum(by_post.values()) == 3 and max(by_post.values()) == 2
    waiting = [r for r in world.rows(schema.comment_replies) if r["state"] == "planned"]
    assert {r["error"] for r in waiting} >= {"cap: 3 replies per account per day"}
    # A day later the account has room again; the first post still gets two an hour.
    day_later = now + dt.timedelta(days=1, minutes=11)
    stats = world.cycle(day_later, caps=caps)
    assert stats.outcomes == {"sent": 2, "waiting": 1}, stats.outcomes
    assert not world.cycle(day_later + 30 * MINUTE, caps=caps).outcomes
    assert world.cycle(day_later + 61 * MINUTE, caps=caps).outcomes == {"sent": 1}
    assert set(_replied(world, "instagram").values()) == {1}
    assert len(world.replies("instagram")) == 6


def test_youtube_replies_wait_for_the_quota_reset_when_the_units_are_spent(
        world: World, engine: sa.Engine) -> None:
    now = clock.now()
    posts = _switch_on(world, now)
    first = world.comment("youtube", posts["youtube"], "What song is this?")
    # YouTube says the day's units are spent (403 quotaExceeded): deferred to the next
    # Pacific midnight, not failed, and the attempt taken back (nothing was sent).
    world.youtube_units(units_remaining=5)  # the read (1 unit) fits, a reply (50) does not
    stats = world.cycle(now + 20 * MINUTE)
    assert stats.fetch.stored == 1 and stats.outcomes == {"deferred": 1}
    (reply,) = world.rows(schema.comment_replies)
    assert (reply["state"], reply["attempts"]) == ("deferred", 0)
    assert reply["next_attempt_at"] >= next_reset(now)
    assert _comment_rows(world)[first]["state"] == "new"
    # Our own ledger says so: deferred before any call reaches YouTube.
    with engine.begin() as conn:
        conn.execute(sa.update(schema.comment_replies).values(next_attempt_at=None))
    posted = len(world.journal_posts("youtube"))
    stats = world.cycle(now + 21 * MINUTE, youtube_daily_units=1)
    assert stats.outcomes == {"deferred": 1} and len(world.journal_posts("youtube")) == posted
    (reply,) = world.rows(schema.comment_replies)
    reset = next_reset(now + 21 * MINUTE)
    assert (reply["state"], reply["next_attempt_at"]) == ("deferred", reset)
    assert world.replies("youtube") == []
    # Before the reset nothing is tried; after it, the reply goes out once.
    world.youtube_units(units_per_day=10**6, reset_usage=True)
    assert not world.cycle(reset - MINUTE).outcomes
    stats = world.cycle(reset + MINUTE)
    assert stats.outcomes == {"sent": 1}
    assert _replied(world, "youtube") == {first: 1}


def test_the_asset_reports_classes_outcomes_held_and_the_safety_check(
        world: World, pipeline_resources: dict) -> None:
    now = clock.now()
    posts = _switch_on(world, now)
    for text in COMMENTS:
        world.comment("instagram", posts["instagram"], text)
    day = clock.local_today("Europe/Madrid", now)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(characters_partitions.name, [CID])
        result = dg.materialize(
            [comment_replies], partition_key=partition_key(CID, day), instance=instance,
            resources={k: pipeline_resources[k] for k in ("database", "instagram", "youtube",
                                                          "ollama")},
            run_config=dg.RunConfig({"comment_replies": CommentConfig(
                now=(now + 20 * MINUTE).isoformat())}))
    assert result.success
    (mat,) = result.asset_materializations_for_node("comment_replies")
    meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    assert (meta["sent"], meta["stored_held"], meta["stored_skipped"]) == (3, 3, 2)
    assert meta["class_unsafe"] == 2 and meta["comments_held"] == 3
    assert "no comment API" in meta["platforms"]
    assert meta["dagster/partition_row_count"] == 3
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "reply_safety" and check.passed
    assert check.description.startswith(f"{CID} {day.isoformat()}: ")
    assert set(TEMPLATES) == {"question", "compliment", "neutral"}
    with world.engine.connect() as conn:  # what `waifugen status` shows per character
        assert held_by_character(conn) == {CID: 3}
        assert sent_by_character(conn, now) == {CID: 3}
