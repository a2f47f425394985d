"""A simulated week on the sandbox over real HTTP: an account posting daily on Instagram and
YouTube gets every class of comment (questions, compliments, other languages, spam with
links, hostile, sexual, ones mentioning minors, its own) through the real listing routes,
and a fresh sandbox with the same seed tells exactly the same week."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from sandbox.audience_text import CLASSES, OWN, REPLY
from sandbox.server import SandboxServer
from sandbox.systems.youtube import channel_id_for

START = "2030-06-01T07:00:00Z"
WEEK = 7 * 86400
V = "v25.0"


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def instagram_week(base: str) -> dict[str, Any]:
    token = "IGAAsandbox_weekly"
    with httpx.Client(base_url=base + "/instagram",
                      headers={"Authorization": f"Bearer {token}"}) as api:
        uid = ok(api.get("/_control/account", params={"access_token": token}))["ig_user_id"]
        posts = [m["id"] for m in ok(api.post("/_control/seed_posts", json={
            "ig_user_id": uid, "count": 7, "at": START, "spacing": 86400}))]
        truth = [c for m in posts for c in ok(api.get("/_control/comments",
                                                      params={"post": m}))]
        listed = [c for m in posts for c in ok(api.get(f"/{V}/{m}/comments", params={
            "fields": "id,text,from,hidden,replies", "limit": 100}))["data"]]
        return {"account": uid, "truth": truth, "listed": listed}


def youtube_week(base: str) -> dict[str, Any]:
    refresh = "1//sandbox_weekly"
    with httpx.Client(base_url=base + "/youtube") as api:
        token = ok(api.post("/oauth2/token", data={
            "client_id": "weekly.apps.googleusercontent.com", "client_secret": "s",
            "refresh_token": refresh, "grant_type": "refresh_token"}))["access_token"]
        channel = channel_id_for(refresh)
        videos = [v["id"] for v in ok(api.post("/_control/seed_posts", json={
            "channel": channel, "count": 7, "at": START, "spacing": 86400}))["videos"]]
        truth = [c for v in videos for c in ok(api.get("/_control/comments",
                                                       params={"post": v}))]
        listed = [t for v in videos for t in ok(api.get("/youtube/v3/commentThreads", params={
            "part": "snippet,replies", "videoId": v, "maxResults": 100},
            headers={"Authorization": f"Bearer {token}"}))["items"]]
        return {"account": channel, "truth": truth, "listed": listed}


def a_week(state_dir: Path, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with SandboxServer(state_dir=state_dir, seed=seed) as server:
        server.set_clock(START)
        server.advance_clock(WEEK)
        return instagram_week(server.url), youtube_week(server.url)


def test_a_week_of_comments_holds_every_class_the_same_for_a_seed(tmp_path: Path) -> None:
    instagram, youtube = a_week(tmp_path / "first", 1234)
    for week in (instagram, youtube):
        kinds = Counter(c["class"] for c in week["truth"])
        assert set(CLASSES) | {REPLY} <= set(kinds), kinds
        own = [c for c in week["truth"] if c["author_id"] == week["account"]]
        assert own and {c["class"] for c in own} == {OWN}
        assert any(c["parent"] for c in own)  # the account's own replies, too
    listed_ig = {c["id"]: c for c in instagram["listed"]}
    assert set(listed_ig) == {c["id"] for c in instagram["truth"] if c["parent"] is None}
    spam = [c for c in instagram["truth"] if c["class"] == "spam"]
    assert any(listed_ig[c["id"]]["hidden"] for c in spam)
    assert all("http" in c["text"] or "DM" in c["text"] or "." in c["text"] for c in spam)
    threads = {t["id"]: t for t in youtube["listed"]}
    assert set(threads) == {c["id"] for c in youtube["truth"] if c["parent"] is None}
    assert sum(t["snippet"]["totalReplyCount"] for t in threads.values()) == sum(
        1 for c in youtube["truth"] if c["parent"])

    again = a_week(tmp_path / "again", 1234)
    assert again == (instagram, youtube)
    other = a_week(tmp_path / "other", 4321)
    assert [c["text"] for c in other[0]["truth"]] != [c["text"] for c in instagram["truth"]]


def test_replies_survive_a_restart_and_older_state_gets_its_indexes(tmp_path: Path) -> None:
    """Stored replies persist; state written before the read indexes existed (an older
    sandbox's) is indexed at start, so its posts are readable."""
    from sandbox.state import StateStore

    token, refresh = "IGAAsandbox_restart", "1//sandbox_restart"
    with SandboxServer(state_dir=tmp_path, seed=5) as server:
        server.set_clock(START)
        with httpx.Client(base_url=server.url) as api:
            uid = ok(api.get("/instagram/_control/account",
                             params={"access_token": token}))["ig_user_id"]
            media = ok(api.post("/instagram/_control/seed_posts",
                                json={"ig_user_id": uid}))[0]["id"]
            video = ok(api.post("/youtube/_control/seed_posts", json={
                "channel": channel_id_for(refresh)}))["videos"][0]["id"]
            post = ok(api.post("/tiktok/_control/seed_posts",
                               json={"account": "restart"}))[0]["post_id"]
            server.advance_clock(86400)
            top = ok(api.get(f"/instagram/{V}/{media}/comments",
                             headers={"Authorization": f"Bearer {token}"}))["data"][-1]["id"]
            reply = ok(api.post(f"/instagram/{V}/{top}/replies", data={"message": "hi"},
                                headers={"Authorization": f"Bearer {token}"}))["id"]
            before = ok(api.get("/instagram/_control/comments", params={"post": media}))
    store = StateStore(tmp_path)  # forget the indexes, as an older sandbox never wrote them
    for system, prefix in (("instagram", "media_of/"), ("instagram", "media_seq/"),
                           ("youtube", "videos_of/"), ("tiktok", "post/"),
                           ("tiktok", "posts_of/")):
        store.delete_prefix(system, prefix)
    for system in ("instagram", "youtube", "tiktok"):
        store.delete(system, "indexes")
    store.close()
    with SandboxServer(state_dir=tmp_path, seed=5) as server, \
            httpx.Client(base_url=server.url) as api:
        after = ok(api.get("/instagram/_control/comments", params={"post": media}))
        assert after == before and reply in {c["id"] for c in after}
        fields = {"fields": "media_count"}
        assert ok(api.get(f"/instagram/{V}/me", params=fields,
                          headers={"Authorization": f"Bearer {token}"}))["media_count"] == 1
        replies = ok(api.get(f"/instagram/{V}/{top}/replies",
                             headers={"Authorization": f"Bearer {token}"}))["data"]
        assert replies[-1]["id"] == reply
        queried = ok(api.post("/tiktok/v2/video/query/", params={"fields": "id"},
                              json={"filters": {"video_ids": [post]}},
                              headers={"Authorization": "Bearer act.sandbox.restart"}))
        assert queried["data"]["videos"] == [{"id": post}]
        assert [v["id"] for v in ok(api.get("/youtube/_control/published", params={
            "account": channel_id_for(refresh)}))["videos"]] == [video]
        assert ok(api.get("/youtube/_control/comments", params={"post": video}))
