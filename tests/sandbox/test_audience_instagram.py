"""Instagram's read and reply routes on the sandbox over real HTTP: media insights (lifetime,
never decreasing, deprecated metrics refused, empty data while young, error #10), the user
node's followers, comments and replies with cursors, replies to top-level comments only
(not to hidden ones, within the hourly write cap) that show up in the listings, the control
routes and faults. (A week of comments: test_audience_week.py.)"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_test_server import Reply, ScriptedServer

from sandbox.audience_text import OWN
from sandbox.systems.instagram import render_reel

V = "v25.0"
METRICS = "views,reach,likes,comments,shares,saved,total_interactions"
FIELDS = "id,text,timestamp,username,from,like_count,hidden,parent_id"
START = "2030-04-01T10:00:00Z"


@pytest.fixture
def token() -> str:
    return f"IGAAsandbox_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(sandbox: Any, token: str) -> Iterator[httpx.Client]:
    sandbox.set_clock(START)
    with httpx.Client(base_url=sandbox.url + "/instagram",
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture
def uid(api: httpx.Client, token: str) -> str:
    return ok(api.get("/_control/account", params={"access_token": token}))["ig_user_id"]


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def control(api: httpx.Client, path: str, **body: Any) -> Any:
    return ok(api.post(f"/_control/{path}", json=body))


def graph_error(response: httpx.Response, code: int, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] and error["fbtrace_id"], error
    return error["message"]


def seed(api: httpx.Client, uid: str, count: int = 1, **extra: Any) -> list[str]:
    return [m["id"] for m in control(api, "seed_posts", ig_user_id=uid, count=count, **extra)]


def insights(api: httpx.Client, media: str, metric: str = METRICS) -> httpx.Response:
    return api.get(f"/{V}/{media}/insights", params={"metric": metric})


def values(api: httpx.Client, media: str) -> dict[str, int]:
    return {m["name"]: m["values"][0]["value"] for m in ok(insights(api, media))["data"]}


def every_page(api: httpx.Client, path: str, limit: int = 7) -> list[dict[str, Any]]:
    """Follow the `after` cursors to the end, like a client does."""
    out, after = [], None
    for _ in range(100):
        params = {"fields": FIELDS, "limit": limit, **({"after": after} if after else {})}
        page = ok(api.get(path, params=params))
        out += page["data"]
        if "next" not in page.get("paging", {}):
            return out
        after = page["paging"]["cursors"]["after"]
    raise AssertionError("paging never ended")


def test_insights_are_lifetime_counters_that_never_decrease(sandbox: Any, api: httpx.Client,
                                                            uid: str) -> None:
    media = seed(api, uid)[0]
    history = []
    for hours in (1, 6, 24, 72, 24 * 14):
        sandbox.set_clock(START)
        sandbox.advance_clock(hours * 3600)
        history.append(values(api, media))
    for earlier, later in itertools.pairwise(history):
        assert all(later[name] >= earlier[name] for name in earlier), (earlier, later)
    last = history[-1]
    assert last["views"] > last["reach"] > 0 and last["likes"] > 0
    assert last["total_interactions"] == (last["likes"] + last["comments"] + last["shares"]
                                          + last["saved"])
    listed = ok(api.get("/_control/comments", params={"post": media}))
    assert last["comments"] == len(listed) > 0
    node = ok(api.get(f"/{V}/{media}", params={"fields": "like_count,comments_count"}))
    assert node == {"like_count": last["likes"], "comments_count": last["comments"]}
    entry = ok(insights(api, media, "views"))["data"][0]
    assert entry["period"] == "lifetime" and entry["id"] == f"{media}/insights/views/lifetime"


def test_insights_refuse_deprecated_metrics_and_wait_for_data(sandbox: Any, api: httpx.Client,
                                                              uid: str) -> None:
    media = seed(api, uid)[0]
    for old in ("plays", "impressions", "clips_replays_count",
                "ig_reels_aggregated_all_plays_count", "video_views"):
        message = graph_error(insights(api, media, f"views,{old}"), 100)
        assert f"the {old} metric is no longer supported" in message
    assert "must be one of" in graph_error(insights(api, media, "views,engagement"), 100)
    assert "metric is required" in graph_error(insights(api, media, ""), 100)
    control(api, "audience", account=uid, insights_delay=48 * 3600, insights_min_views=10**9)
    sandbox.advance_clock(3600)
    assert ok(insights(api, media)) == {"data": []}  # no data yet: empty, not zeros
    sandbox.advance_clock(48 * 3600)
    assert "Not enough viewers" in graph_error(insights(api, media), 10)
    stranger = {"Authorization": f"Bearer IGAAsandbox_{uuid.uuid4().hex[:10]}"}
    graph_error(api.get(f"/{V}/{media}/insights", params={"metric": "views"},
                        headers=stranger), 100)


def test_the_user_node_counts_followers(sandbox: Any, api: httpx.Client, uid: str) -> None:
    seed(api, uid, 2)
    fields = {"fields": "followers_count,follows_count,media_count"}
    first = ok(api.get(f"/{V}/{uid}", params=fields))
    assert first["media_count"] == 2 and first["follows_count"] >= 0
    sandbox.advance_clock(30 * 86400)
    later = ok(api.get(f"/{V}/me", params=fields))
    assert later["followers_count"] > first["followers_count"]
    control(api, "audience", account=uid, followers_base=10_500, followers_daily=0)
    assert ok(api.get(f"/{V}/me", params=fields))["followers_count"] == 10_500


def test_comments_and_replies_page_with_cursors(sandbox: Any, api: httpx.Client,
                                                uid: str) -> None:
    media = seed(api, uid)[0]
    sandbox.advance_clock(14 * 86400)
    truth = ok(api.get("/_control/comments", params={"post": media}))
    top = every_page(api, f"/{V}/{media}/comments")
    assert [c["id"] for c in top] == [c["id"] for c in reversed(truth) if c["parent"] is None]
    assert all("parent_id" not in c for c in top)
    by_id = {c["id"]: c for c in truth}
    assert all(c["text"] == by_id[c["id"]]["text"]
               and c["from"] == {"id": by_id[c["id"]]["author_id"],
                                 "username": by_id[c["id"]]["author_name"]} for c in top)
    threads = Counter(c["parent"] for c in truth if c["parent"])
    busiest = threads.most_common(1)[0][0]
    replies = every_page(api, f"/{V}/{busiest}/replies", limit=2)
    assert [r["id"] for r in replies] == [c["id"] for c in truth if c["parent"] == busiest]
    assert all(r["parent_id"] == busiest for r in replies)
    assert ok(api.get(f"/{V}/{replies[0]['id']}/replies"))["data"] == []
    own = [c for c in top if c["from"]["id"] == uid]
    assert own and all(c["username"] == by_id[c["id"]]["author_name"] for c in own)
    graph_error(api.get(f"/{V}/{media}/comments", params={"limit": 101}), 100)
    graph_error(api.get(f"/{V}/{media}/comments", params={"fields": "id,message"}), 100)


def test_replies_go_to_top_level_comments_and_show_up(sandbox: Any, api: httpx.Client,
                                                      uid: str) -> None:
    media = seed(api, uid)[0]
    sandbox.advance_clock(3 * 86400)
    truth = ok(api.get("/_control/comments", params={"post": media}))
    target = next(c for c in truth if c["parent"] is None and c["class"] == "question"
                  and not c["hidden"])
    before = values(api, media)["comments"]
    text = "Thank you! 💕 (I'm an AI character)"
    reply = ok(api.post(f"/{V}/{target['id']}/replies", data={"message": text}))
    listed = every_page(api, f"/{V}/{target['id']}/replies")
    assert listed[-1] == {**listed[-1], "id": reply["id"], "text": text,
                          "from": {"id": uid, "username": listed[-1]["username"]}}
    assert values(api, media)["comments"] == before + 1
    sent = ok(api.get("/_control/replies", params={"ig_user_id": uid}))
    assert [(r["id"], r["parent"], r["text"], r["source"]) for r in sent] == [
        (reply["id"], target["id"], text, "api")]
    a_reply = next(c for c in truth if c["parent"] is not None)
    assert "top-level" in graph_error(api.post(f"/{V}/{a_reply['id']}/replies",
                                               data={"message": "hi"}), 100)
    hidden = control(api, "comments", post=media, text="spam spam", hidden=True)
    assert "hidden" in graph_error(api.post(f"/{V}/{hidden['id']}/replies",
                                            data={"message": "hi"}), 100)
    for bad in ({}, {"message": "  "}, {"message": "x" * 2201}):
        graph_error(api.post(f"/{V}/{target['id']}/replies", data=bad), 100)
    graph_error(api.post(f"/{V}/1800000000000000000/replies", data={"message": "hi"}), 100)
    assert len(ok(api.get("/_control/replies", params={"ig_user_id": uid}))) == 1


def test_the_hourly_write_cap_and_faults_on_replies(sandbox: Any, api: httpx.Client,
                                                    uid: str) -> None:
    media = seed(api, uid)[0]
    control(api, "audience", account=uid, reply_writes_per_hour=2)
    added = [control(api, "comments", post=media, text=f"question {n}?", **{"class": "question"})
             for n in range(4)]
    for comment in added[:2]:
        ok(api.post(f"/{V}/{comment['id']}/replies", data={"message": "thanks"}))
    assert "limit" in graph_error(api.post(f"/{V}/{added[2]['id']}/replies",
                                           data={"message": "thanks"}), 17)
    sandbox.advance_clock(3601)
    # the reply is stored, the answer lost: the client must list the replies to find out
    sandbox.add_fault(system="instagram", route=f"/{V}/{added[2]['id']}/replies", method="POST",
                      action="drop", phase="after", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(f"/{V}/{added[2]['id']}/replies", data={"message": "thanks"})
    listed = every_page(api, f"/{V}/{added[2]['id']}/replies")
    assert [(r["text"], r["from"]["id"]) for r in listed] == [("thanks", uid)]
    sandbox.add_fault(system="instagram", route=f"/{V}/{media}/comments", action="status",
                      status=503, times=1)
    assert graph_error(api.get(f"/{V}/{media}/comments"), 2, status=503)
    assert ok(api.get(f"/{V}/{media}/comments"))["data"]
    assert len(ok(api.get("/_control/replies", params={"ig_user_id": uid}))) == 3


def test_control_comments_show_in_listings_and_validate(api: httpx.Client, uid: str) -> None:
    media = seed(api, uid)[0]
    added = control(api, "comments", post=media, text="are you real?", author="curious_cat",
                    **{"class": "question"})
    assert added["class"] == "question" and added["source"] == "control"
    own = control(api, "comments", post=media, text="thanks all", own=True)
    assert (own["author_id"], own["class"]) == (uid, OWN)
    nested = control(api, "comments", post=media, text="me too", parent=added["id"])
    top = ok(api.get(f"/{V}/{media}/comments", params={"fields": "id,username,replies"}))
    assert top["data"][0]["id"] == own["id"]
    mine = next(c for c in top["data"] if c["id"] == added["id"])
    assert mine["username"] == "curious_cat"
    assert mine["replies"]["data"][0]["id"] == nested["id"]
    for bad, status in (({"text": "x"}, 400), ({"post": media}, 400),
                        ({"post": media, "text": "x", "colour": 1}, 400),
                        ({"post": "1799", "text": "x"}, 404),
                        ({"post": media, "text": "x", "parent": nested["id"]}, 404)):
        assert api.post("/_control/comments", json=bad).status_code == status, bad


def test_a_published_reel_gets_an_audience(sandbox: Any, api: httpx.Client, uid: str,
                                           tmp_path: Path) -> None:
    reel = render_reel(tmp_path / "reel.mp4").read_bytes()
    with ScriptedServer() as files:
        url = files.url(files.script(Reply(200, body=reel, headers={"content-type":
                                                                    "video/mp4"})))
        cid = ok(api.post(f"/{V}/{uid}/media", data={
            "media_type": "REELS", "video_url": url,
            "caption": "Ramen in the rain. AI-generated #AIgenerated"}))["id"]
    codes = [ok(api.get(f"/{V}/{cid}", params={"fields": "status_code"}))["status_code"]
             for _ in range(3)]
    assert codes[-1] == "FINISHED", codes
    media = ok(api.post(f"/{V}/{uid}/media_publish", data={"creation_id": cid}))["id"]
    sandbox.advance_clock(2 * 86400)
    assert values(api, media)["views"] > 0
    assert ok(api.get(f"/{V}/{media}/comments"))["data"]
