"""YouTube's read and reply routes on the sandbox over real HTTP: videos.list statistics from
the audience (strings, never decreasing), channels.list subscribers rounded to 3 significant
digits or hidden, commentThreads.list (newest first, paged, at most five inline replies),
comments.list by parent, comments.insert (validated, 50 units from the project's daily
bucket, 403 quotaExceeded), the control routes and faults."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox.systems.youtube import channel_id_for

API = "/youtube/v3"
START = "2030-05-01T16:00:00Z"


@dataclass
class Channel:
    api: httpx.Client
    project: str
    refresh: str

    @property
    def id(self) -> str:
        return channel_id_for(self.refresh)

    @property
    def headers(self) -> dict[str, str]:
        """A fresh access token (they expire after an hour of the clock tests move)."""
        token = ok(self.api.post("/oauth2/token", data={
            "client_id": self.project, "client_secret": "GOCSPX-test",
            "refresh_token": self.refresh, "grant_type": "refresh_token"}))["access_token"]
        return {"Authorization": f"Bearer {token}"}


def login(api: httpx.Client) -> Channel:
    return Channel(api, f"aud-{uuid.uuid4().hex[:10]}.apps.googleusercontent.com",
                   f"1//sandbox_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def api(sandbox: Any) -> Iterator[httpx.Client]:
    sandbox.set_clock(START)
    with httpx.Client(base_url=sandbox.url + "/youtube") as client:
        yield client


@pytest.fixture
def me(api: httpx.Client) -> Channel:
    return login(api)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def reason(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    return error["errors"][0]["reason"]


def control(api: httpx.Client, path: str, **body: Any) -> Any:
    return ok(api.post(f"/_control/{path}", json=body))


def seed(me: Channel, count: int = 1, **extra: Any) -> list[str]:
    return [v["id"] for v in control(me.api, "seed_posts", channel=me.id, count=count,
                                     **extra)["videos"]]


def units(me: Channel) -> int:
    return ok(me.api.get("/_control/quota", params={"client_id": me.project}))["used"]["units"]


def statistics(me: Channel, video: str) -> dict[str, str]:
    items = ok(me.api.get(f"{API}/videos", params={"part": "statistics", "id": video},
                          headers=me.headers))["items"]
    return items[0]["statistics"]


def threads(me: Channel, video: str, **params: Any) -> dict[str, Any]:
    query = {"part": "snippet,replies", "videoId": video, "order": "time",
             "maxResults": 100, "textFormat": "plainText", **params}
    return ok(me.api.get(f"{API}/commentThreads", params=query, headers=me.headers))


def all_threads(me: Channel, video: str, per_page: int) -> list[dict[str, Any]]:
    out, token = [], None
    for _ in range(100):
        page = threads(me, video, maxResults=per_page, **({"pageToken": token} if token else {}))
        out += page["items"]
        token = page.get("nextPageToken")
        if token is None:
            return out
    raise AssertionError("paging never ended")


def replies(me: Channel, parent: str, per_page: int = 100) -> list[dict[str, Any]]:
    out, token = [], None
    for _ in range(100):
        params = {"part": "snippet", "parentId": parent, "maxResults": per_page,
                  "textFormat": "plainText", **({"pageToken": token} if token else {})}
        page = ok(me.api.get(f"{API}/comments", params=params, headers=me.headers))
        out += page["items"]
        token = page.get("nextPageToken")
        if token is None:
            return out
    raise AssertionError("paging never ended")


def insert(me: Channel, parent: str, text: str) -> httpx.Response:
    return me.api.post(f"{API}/comments", params={"part": "snippet"}, headers=me.headers,
                       json={"snippet": {"parentId": parent, "textOriginal": text}})


def test_statistics_are_strings_from_the_audience_and_never_decrease(
        sandbox: Any, me: Channel) -> None:
    public, private = seed(me)[0], seed(me, privacyStatus="private")[0]
    history = []
    for hours in (1, 6, 24, 24 * 7, 24 * 60):
        sandbox.set_clock(START)
        sandbox.advance_clock(hours * 3600)
        history.append(statistics(me, public))
    assert all(isinstance(v, str) for v in history[0].values())
    for earlier, later in itertools.pairwise(history):
        assert all(int(later[k]) >= int(earlier[k]) for k in earlier), (earlier, later)
    week = ok(me.api.get("/_control/comments", params={"post": public}))
    assert int(history[-1]["commentCount"]) == len(week) > 0
    assert int(history[-1]["likeCount"]) > 0 and history[-1]["favoriteCount"] == "0"
    assert statistics(me, private) == {"viewCount": "0", "likeCount": "0",
                                       "favoriteCount": "0", "commentCount": "0"}


def test_channel_statistics_round_subscribers_or_hide_them(sandbox: Any, me: Channel) -> None:
    seed(me, 2)
    sandbox.advance_clock(86400)

    def stats() -> dict[str, Any]:
        return ok(me.api.get(f"{API}/channels", params={"part": "statistics", "mine": "true"},
                             headers=me.headers))["items"][0]["statistics"]

    control(me.api, "audience", account=me.id, followers_base=123_456, followers_daily=0)
    first = stats()
    assert first["subscriberCount"] == "123000" and first["hiddenSubscriberCount"] is False
    assert first["videoCount"] == "2" and int(first["viewCount"]) > 0
    control(me.api, "audience", account=me.id, followers_base=987)
    assert stats()["subscriberCount"] == "987"
    control(me.api, "audience", account=me.id, hidden_subscribers=True)
    hidden = stats()
    assert "subscriberCount" not in hidden and hidden["hiddenSubscriberCount"] is True
    assert units(me) == 3


def test_comment_threads_page_newest_first_with_a_few_inline_replies(sandbox: Any,
                                                                     me: Channel) -> None:
    video = seed(me)[0]
    sandbox.advance_clock(21 * 86400)
    truth = ok(me.api.get("/_control/comments", params={"post": video}))
    listed = all_threads(me, video, per_page=7)
    tops = [c for c in truth if c["parent"] is None]
    assert [t["id"] for t in listed] == [c["id"] for c in reversed(tops)]
    counts = {t["id"]: t["snippet"]["totalReplyCount"] for t in listed}
    assert counts == {c["id"]: sum(r["parent"] == c["id"] for r in truth) for c in tops}
    busy = max(listed, key=lambda t: t["snippet"]["totalReplyCount"])
    assert busy["snippet"]["totalReplyCount"] > 5
    inline = [r["id"] for r in busy["replies"]["comments"]]
    every = replies(me, busy["id"], per_page=2)
    assert len(inline) == 5 and inline == [r["id"] for r in every][:5]
    assert [r["id"] for r in every] == [c["id"] for c in truth if c["parent"] == busy["id"]]
    assert all(r["snippet"]["parentId"] == busy["id"] for r in every)
    quiet = next(t for t in listed if t["snippet"]["totalReplyCount"] == 0)
    assert "replies" not in quiet
    own = [t for t in listed
           if t["snippet"]["topLevelComment"]["snippet"]["authorChannelId"]["value"] == me.id]
    others = [t for t in listed if t not in own]
    assert own and all("textOriginal" in t["snippet"]["topLevelComment"]["snippet"]
                       for t in own)
    assert all("textOriginal" not in t["snippet"]["topLevelComment"]["snippet"]
               for t in others)
    first = threads(me, video, maxResults=1)["items"][0]["snippet"]["topLevelComment"]
    assert first["snippet"]["textDisplay"] == tops[-1]["text"]  # plainText: as written
    channel_wide = ok(me.api.get(f"{API}/commentThreads", headers=me.headers, params={
        "part": "id", "allThreadsRelatedToChannelId": me.id, "maxResults": 100}))
    assert {t["id"] for t in channel_wide["items"]} == {c["id"] for c in tops}


def test_comment_reads_validate_and_cost_a_unit(me: Channel) -> None:
    video = seed(me)[0]
    bad = {"maxResults": 0}, {"maxResults": 101}, {"order": "new"}, {"textFormat": "md"}, \
        {"pageToken": "nope"}
    for params in bad:
        assert reason(me.api.get(f"{API}/commentThreads", headers=me.headers, params={
            "part": "snippet", "videoId": video, **params}), 400) in (
            "invalidParameter", "invalidPageToken")
    assert reason(me.api.get(f"{API}/commentThreads", headers=me.headers,
                             params={"videoId": video}), 400) == "required"
    assert reason(me.api.get(f"{API}/commentThreads", headers=me.headers,
                             params={"part": "snippet"}), 400) == "missingRequiredParameter"
    assert reason(me.api.get(f"{API}/commentThreads", headers=me.headers,
                             params={"part": "snippet", "videoId": "xxxxxxxxxxx"}),
                  404) == "videoNotFound"
    assert reason(me.api.get(f"{API}/comments", headers=me.headers,
                             params={"part": "snippet", "parentId": "Ugnope"}),
                  404) == "commentNotFound"
    used = units(me)
    threads(me, video)
    assert units(me) == used + 1
    assert used == len(bad) + 2  # invalid requests still cost a unit


def test_replies_cost_50_units_and_show_up_everywhere(sandbox: Any, me: Channel) -> None:
    video = seed(me)[0]
    sandbox.advance_clock(2 * 86400)
    target = threads(me, video)["items"][-1]
    before, used = int(statistics(me, video)["commentCount"]), units(me)
    text = "Thank you for watching! 🌸 (AI character)"
    reply = ok(insert(me, target["id"], text))
    assert reply["id"].startswith(target["id"] + ".")
    assert reply["snippet"]["parentId"] == target["id"]
    assert reply["snippet"]["authorChannelId"]["value"] == me.id
    assert units(me) == used + 50
    listed = replies(me, target["id"])
    assert listed[-1]["id"] == reply["id"] and listed[-1]["snippet"]["textOriginal"] == text
    again = next(t for t in threads(me, video)["items"] if t["id"] == target["id"])
    assert again["snippet"]["totalReplyCount"] == target["snippet"]["totalReplyCount"] + 1
    assert int(statistics(me, video)["commentCount"]) == before + 1
    sent = ok(me.api.get("/_control/replies", params={"account": me.id}))
    assert [(r["id"], r["parent"], r["text"], r["class"]) for r in sent] == [
        (reply["id"], target["id"], text, "own")]
    assert reason(insert(me, reply["id"], "nested?"), 400) == "operationNotSupported"


def test_comment_insert_validates_like_youtube(sandbox: Any, me: Channel) -> None:
    video = seed(me)[0]
    sandbox.advance_clock(86400)
    parent = threads(me, video)["items"][0]["id"]
    cases = [({"snippet": {"textOriginal": "hi"}}, 400, "parentIdMissing"),
             ({"snippet": {"parentId": parent}}, 400, "commentTextRequired"),
             ({"snippet": {"parentId": parent, "textOriginal": " "}}, 400,
              "commentTextRequired"),
             ({"snippet": {"parentId": parent, "textOriginal": "x" * 10_001}}, 400,
              "commentTextTooLong"),
             ({"nothing": 1}, 400, "invalidCommentMetadata"),
             ({"snippet": {"parentId": "UgzNoSuchComment4AaABAg", "textOriginal": "hi"}}, 404,
              "commentNotFound")]
    for body, status, expected in cases:
        response = me.api.post(f"{API}/comments", params={"part": "snippet"},
                               headers=me.headers, json=body)
        assert reason(response, status) == expected, body
    assert reason(me.api.post(f"{API}/comments", headers=me.headers, json=cases[0][0]),
                  400) == "required"
    stranger = login(me.api)  # another project and channel may reply to a public video
    reply = ok(insert(stranger, parent, "nice"))
    assert reply["snippet"]["authorChannelId"]["value"] == stranger.id
    assert ok(me.api.get("/_control/replies", params={"account": me.id})) == []


def test_a_spent_day_answers_quota_exceeded_until_the_pacific_midnight(sandbox: Any,
                                                                       me: Channel) -> None:
    video = seed(me)[0]
    sandbox.advance_clock(86400)
    parent = threads(me, video)["items"][0]["id"]
    control(me.api, "config", client_id=me.project, units_remaining=50)
    ok(insert(me, parent, "one"))
    response = insert(me, parent, "two")
    assert reason(response, 403) == "quotaExceeded"
    assert response.json()["error"]["errors"][0]["domain"] == "youtube.quota"
    assert reason(me.api.get(f"{API}/comments", headers=me.headers, params={
        "part": "snippet", "parentId": parent}), 403) == "quotaExceeded"  # reads too
    sent = ok(me.api.get("/_control/replies", params={"account": me.id}))
    assert [r["text"] for r in sent] == ["one"]  # the refused one was not stored
    sandbox.advance_clock(86400)  # past midnight America/Los_Angeles
    ok(insert(me, parent, "two"))


def test_reads_and_replies_take_faults(sandbox: Any, me: Channel) -> None:
    video = seed(me)[0]
    sandbox.advance_clock(86400)
    parent = threads(me, video)["items"][0]["id"]
    sandbox.add_fault(system="youtube", route=f"{API}/commentThreads", action="status",
                      status=503, times=1)
    assert reason(me.api.get(f"{API}/commentThreads", headers=me.headers, params={
        "part": "snippet", "videoId": video}), 503) == "backendError"
    sandbox.add_fault(system="youtube", route=f"{API}/comments", method="POST", action="drop",
                      phase="after", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        insert(me, parent, "did it arrive?")
    assert [r["snippet"]["textOriginal"] for r in replies(me, parent)
            if r["snippet"]["authorChannelId"]["value"] == me.id] == ["did it arrive?"]


def test_control_comments_and_uploaded_videos(sandbox: Any, me: Channel) -> None:
    meta = {"snippet": {"title": "upload"}, "status": {"privacyStatus": "public",
                                                        "containsSyntheticMedia": True}}
    start = me.api.post("/upload/youtube/v3/videos", params={"uploadType": "resumable",
                                                             "part": "snippet,status"},
                        json=meta, headers={**me.headers, "X-Upload-Content-Length": "5"})
    uploaded = me.api.put(start.headers["location"], content=b"video")
    assert uploaded.status_code == 201, uploaded.text
    video = uploaded.json()["id"]
    added = control(me.api, "comments", post=video, text="what is <this> song & why?",
                    **{"class": "question"})
    top = threads(me, video)["items"]
    assert [t["id"] for t in top] == [added["id"]]
    html = ok(me.api.get(f"{API}/commentThreads", headers=me.headers, params={
        "part": "snippet", "videoId": video}))["items"][0]["snippet"]["topLevelComment"]
    assert html["snippet"]["textDisplay"] == "what is &lt;this&gt; song &amp; why?"
    reply = control(me.api, "comments", post=video, text="same question", parent=added["id"])
    assert [r["id"] for r in replies(me, added["id"])] == [reply["id"]]
    assert me.api.post("/_control/comments", json={"post": video, "text": "x",
                                                   "parent": reply["id"]}).status_code == 404
    assert me.api.post("/_control/comments", json={"post": "nope", "text": "x"}).status_code \
        == 404
    assert me.api.post("/_control/comments", json={"post": video}).status_code == 400
    sandbox.advance_clock(3 * 86400)
    assert int(statistics(me, video)["viewCount"]) > 0
