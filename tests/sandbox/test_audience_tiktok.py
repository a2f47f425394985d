"""TikTok's Display API reads on the sandbox over real HTTP: /v2/video/query/ and
/v2/user/info/ answer the audience's lifetime counters (never decreasing, the same for the
same seed), validate like TikTok (fields, 20 ids), hide SELF_ONLY posts of an unaudited app
unless configured, keep 600 requests a minute per endpoint and token, and take faults."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.media import MediaCache, VideoSpec
from sandbox.server import SandboxServer

QUERY, USER = "/v2/video/query/", "/v2/user/info/"
COUNTS = "id,view_count,like_count,comment_count,share_count"
USER_STATS = "follower_count,following_count,likes_count,video_count"
START = "2030-03-02T09:00:00Z"


@pytest.fixture
def account() -> str:
    return f"a{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api(sandbox: Any, account: str) -> Iterator[httpx.Client]:
    sandbox.set_clock(START)
    with httpx.Client(base_url=sandbox.url + "/tiktok",
                      headers={"Authorization": f"Bearer act.sandbox.{account}"}) as client:
        yield client


def control(api: httpx.Client, path: str, **body: Any) -> Any:
    response = api.post(f"/_control/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def seed(api: httpx.Client, account: str, count: int = 1, **extra: Any) -> list[dict[str, Any]]:
    return control(api, "seed_posts", account=account, count=count, **extra)


def data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error"]["code"] == "ok" and body["error"]["log_id"]
    return body["data"]


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] == {} and body["error"]["code"] == code, body
    return body["error"]["message"]


def query(api: httpx.Client, ids: list[str], fields: str = COUNTS) -> httpx.Response:
    return api.post(QUERY, params={"fields": fields}, json={"filters": {"video_ids": ids}})


def videos(api: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {v["id"]: v for v in data(query(api, ids))["videos"]}


def test_video_query_counters_grow_and_never_decrease(sandbox: Any, api: httpx.Client,
                                                      account: str) -> None:
    ids = [p["post_id"] for p in seed(api, account, 3, spacing=3600)]
    answer = data(query(api, ids))
    assert answer["cursor"] == 0 and answer["has_more"] is False
    # the first was published this instant, the others are not published yet
    assert [(v["id"], v["view_count"]) for v in answer["videos"]] == [(ids[0], 0)]
    history = []
    for hours in (3, 5, 24, 72, 24 * 30):
        sandbox.set_clock("2030-03-02T09:00:00Z")
        sandbox.advance_clock(hours * 3600)
        history.append(videos(api, ids))
    for earlier, later in itertools.pairwise(history):
        for post in ids:
            for name in ("view_count", "like_count", "comment_count", "share_count"):
                assert later[post][name] >= earlier[post][name]
    assert all(history[0][p]["view_count"] > 0 for p in ids)
    assert set(history[0][ids[0]]) == {"id", "view_count", "like_count", "comment_count",
                                       "share_count"}
    full = data(query(api, ids[:1], "id,create_time,title,share_url,duration"))["videos"][0]
    assert full["share_url"].endswith(f"/video/{ids[0]}") and full["title"].startswith("seeded")


def test_video_query_validates_like_tiktok(sandbox: Any, api: httpx.Client,
                                           account: str) -> None:
    ids = [p["post_id"] for p in seed(api, account, 2)]
    assert "at most 20" in error(query(api, ids + [str(n) for n in range(19)]), 400,
                                 "invalid_params")
    assert len(data(query(api, ids + [str(n) for n in range(18)]))["videos"]) == 2
    assert "non-empty" in error(query(api, []), 400, "invalid_params")
    assert "non-empty" in error(api.post(QUERY, params={"fields": COUNTS}, json={}), 400,
                                "invalid_params")
    assert "fields" in error(api.post(QUERY, json={"filters": {"video_ids": ids}}), 400,
                             "invalid_params")
    assert "Invalid fields: plays" in error(query(api, ids, "id,plays"), 400, "invalid_params")
    assert "application/json" in error(api.post(QUERY, params={"fields": COUNTS},
                                                content=b"video_ids=1"), 400, "invalid_params")
    error(httpx.post(f"{sandbox.url}/tiktok{QUERY}", params={"fields": COUNTS},
                     json={"filters": {"video_ids": ids}}), 401, "access_token_invalid")
    stranger = {"Authorization": f"Bearer act.sandbox.{account}x"}
    assert data(api.post(QUERY, params={"fields": COUNTS}, headers=stranger,
                         json={"filters": {"video_ids": ids}}))["videos"] == []


def test_self_only_posts_are_absent_unless_the_app_may_see_them(api: httpx.Client,
                                                                account: str) -> None:
    private = seed(api, account, privacy_level="SELF_ONLY")[0]
    public = seed(api, account)[0]
    asked = [private["post_id"], private["publish_id"], public["post_id"]]
    assert list(videos(api, asked)) == [public["post_id"]]
    assert list(videos(api, [public["publish_id"]])) == []  # public posts by post id only
    control(api, "config", account=account, query_self_only=True)
    assert list(videos(api, asked)) == asked


def test_user_info_counts_followers_by_the_day(sandbox: Any, api: httpx.Client,
                                               account: str) -> None:
    ids = [p["post_id"] for p in seed(api, account, 4)]
    days = []
    for day in range(1, 31):
        sandbox.set_clock(START)
        sandbox.advance_clock(day * 86400)
        days.append(data(api.get(USER, params={"fields": USER_STATS}))["user"])
    assert days[-1]["follower_count"] > days[0]["follower_count"]
    assert len({d["follower_count"] for d in days}) > 20  # a count that moves day by day
    assert days[-1]["video_count"] == 4
    assert days[-1]["likes_count"] == sum(v["like_count"] for v in videos(api, ids).values())
    assert set(days[0]) == set(USER_STATS.split(","))
    for bad in ({"followers": 1}, {"followers_base": -1}, {"views_scale": "big"}):
        refused = api.post("/_control/audience", json={"account": account, **bad})
        assert refused.status_code == 400 and refused.json()["error"], bad
    control(api, "audience", account=account, followers_base=9_990, followers_daily=0)
    assert data(api.get(USER, params={"fields": "follower_count"}))["user"] == {
        "follower_count": 9_990}
    assert "Invalid fields" in error(api.get(USER, params={"fields": "followers"}), 400,
                                     "invalid_params")


def test_each_read_endpoint_has_its_own_minute_per_token(sandbox: Any, api: httpx.Client,
                                                         account: str) -> None:
    state = api.get("/_control/state", params={"account": account}).json()["config"]
    assert (state["video_query_per_minute"], state["user_info_per_minute"]) == (600, 600)
    control(api, "config", account=account, video_query_per_minute=3, user_info_per_minute=2)
    ids = [seed(api, account)[0]["post_id"]]
    for _ in range(3):
        data(query(api, ids))
    assert "3 video_query requests per minute" in error(query(api, ids), 429,
                                                        "rate_limit_exceeded")
    data(api.get(USER, params={"fields": USER_STATS}))  # another endpoint, its own budget
    other = {"Authorization": f"Bearer act.sandbox.{account}.second"}
    data(api.post(QUERY, params={"fields": COUNTS}, headers=other,
                  json={"filters": {"video_ids": ids}}))  # another token, its own budget
    sandbox.advance_clock(60)
    data(query(api, ids))


def test_reads_take_injected_faults(sandbox: Any, api: httpx.Client, account: str) -> None:
    ids = [seed(api, account)[0]["post_id"]]
    sandbox.add_fault(system="tiktok", route=QUERY, action="status", status=503, times=1)
    sandbox.add_fault(system="tiktok", route=USER, action="rate_limit", times=1)
    error(query(api, ids), 503, "internal_error")
    error(api.get(USER, params={"fields": USER_STATS}), 429, "rate_limit_exceeded")
    assert list(videos(api, ids)) == ids
    sandbox.add_fault(system="tiktok", route=QUERY, action="drop", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        query(api, ids)


def test_an_uploaded_post_is_read_back(sandbox: Any, api: httpx.Client, account: str,
                                       tmp_path: Path) -> None:
    video = MediaCache(tmp_path).read(VideoSpec("tiktok", 3.0))
    started = data(api.post("/v2/post/publish/video/init/", json={
        "post_info": {"title": "ramen #ai", "privacy_level": "PUBLIC_TO_EVERYONE",
                      "is_aigc": True},
        "source_info": {"source": "FILE_UPLOAD", "video_size": len(video),
                        "chunk_size": len(video), "total_chunk_count": 1}}))
    uploaded = httpx.put(started["upload_url"], content=video, headers={
        "Content-Type": "video/mp4", "Content-Range": f"bytes 0-{len(video) - 1}/{len(video)}"})
    assert uploaded.status_code == 201
    post_id = api.get("/_control/published", params={"account": account}).json()[0]["post_id"]
    sandbox.advance_clock(6 * 3600)
    assert videos(api, [post_id])[post_id]["view_count"] > 0
    assert data(api.get(USER, params={"fields": "video_count"}))["user"]["video_count"] == 1


def read_everything(base: str, account: str) -> tuple[Any, ...]:
    with httpx.Client(base_url=base + "/tiktok",
                      headers={"Authorization": f"Bearer act.sandbox.{account}"}) as api:
        posts = seed(api, account, 3, at=START, spacing=600)
        ids = [p["post_id"] for p in posts]
        return ids, videos(api, ids), data(api.get(USER, params={"fields": USER_STATS}))


def test_the_same_seed_gives_the_same_audience(tmp_path: Path) -> None:
    answers = []
    for name, seed_value in (("a", 7), ("b", 7), ("c", 8)):
        with SandboxServer(state_dir=tmp_path / name, seed=seed_value) as server:
            server.set_clock("2030-03-09T09:00:00Z")
            answers.append(read_everything(server.url, "fixed_account"))
    assert answers[0] == answers[1]
    assert answers[0][1] != answers[2][1]
