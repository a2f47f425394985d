"""The Instagram Graph API stand-in over real HTTP: tokens and the Graph error envelope,
container validation, URL-pulled and resumable (rupload) media, the container lifecycle
(IN_PROGRESS, FINISHED, ERROR, EXPIRED, PUBLISHED), publishing once, the publishing and
container limits, listing, token refresh, injected faults, restarts."""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_test_server import Reply, ScriptedServer

from sandbox.server import SandboxServer
from sandbox.systems.instagram import has_ai_label, render_reel
from waifugen_assets.planning.plans import platform_texts

V = "v25.0"
CAPTION = "Rainy day ramen tour, part 2 AI-generated virtual creator. #ramen #AIgenerated"


@pytest.fixture(scope="module")
def reel(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small MP4 that passes the Reels checks (24 fps, H.264 + AAC, 3 s, fast start)."""
    return render_reel(tmp_path_factory.mktemp("ig") / "reel.mp4").read_bytes()


@pytest.fixture(scope="module")
def files() -> Iterator[ScriptedServer]:
    """A loopback web server standing for the public host of our videos."""
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def video_url(files: ScriptedServer, reel: bytes) -> str:
    return files.url(files.script(Reply(200, body=reel, headers={"content-type": "video/mp4"})))


@pytest.fixture
def token() -> str:
    """A fresh account per test: its own containers, media, quota and queues."""
    return f"IGAAsandbox_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(sandbox: Any, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url + "/instagram",
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture
def uid(api: httpx.Client, token: str) -> str:
    return control(api, "account", "GET", params={"access_token": token})["ig_user_id"]


def control(api: httpx.Client, path: str, method: str = "POST", *, params: Any = None,
            **body: Any) -> Any:
    response = api.request(method, f"/_control/{path}", params=params,
                           json=body if method in ("POST", "DELETE") else None)
    assert response.status_code == 200, response.text
    return response.json()


def graph_error(response: httpx.Response, code: int, subcode: int | None = None,
                status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error.get("error_subcode")) == (code, subcode), error
    assert error["type"] and error["message"] and error["fbtrace_id"]
    return error


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def create(api: httpx.Client, uid: str, **params: str) -> httpx.Response:
    return api.post(f"/{V}/{uid}/media", data={"media_type": "REELS", "caption": CAPTION,
                                               **params})


def status(api: httpx.Client, cid: str) -> dict[str, Any]:
    return ok(api.get(f"/{V}/{cid}", params={"fields": "id,status_code,status"}))


def poll_until_done(api: httpx.Client, cid: str, most: int = 10) -> list[str]:
    seen = []
    for _ in range(most):
        seen.append(status(api, cid)["status_code"])
        if seen[-1] != "IN_PROGRESS":
            return seen
    raise AssertionError(f"container {cid} stayed IN_PROGRESS: {seen}")


def publish(api: httpx.Client, uid: str, cid: str) -> httpx.Response:
    return api.post(f"/{V}/{uid}/media_publish", data={"creation_id": cid})


def ready_container(api: httpx.Client, uid: str, url: str, **params: str) -> str:
    cid = ok(create(api, uid, video_url=url, **params))["id"]
    assert poll_until_done(api, cid) == ["IN_PROGRESS", "FINISHED"]
    return cid


def published(api: httpx.Client, uid: str) -> list[dict[str, Any]]:
    return control(api, "published", "GET", params={"ig_user_id": uid})


def containers(api: httpx.Client, uid: str) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in control(api, "containers", "GET", params={"ig_user_id": uid})}


def upload(uri: str, token: str, data: bytes, offset: int, size: int, *,
           scheme: str = "OAuth") -> httpx.Response:
    return httpx.post(uri, content=data, headers={
        "Authorization": f"{scheme} {token}", "offset": str(offset), "file_size": str(size),
        "Content-Type": "application/octet-stream"})


def upload_offset(uri: str, token: str) -> int:
    return ok(httpx.get(uri, headers={"Authorization": f"OAuth {token}"}))["offset"]


# --- auth and envelope ------------------------------------------------------------------------


def test_system_is_registered(sandbox: Any) -> None:
    assert "instagram" in sandbox.health()["systems"]


def test_tokens_and_account_boundaries(api: httpx.Client, uid: str, token: str,
                                       sandbox: Any) -> None:
    me = ok(api.get(f"/{V}/me", params={"fields": "id,user_id,username"}))
    assert me == {"id": uid, "user_id": uid, "username": token.split("_", 1)[1]}
    assert uid.startswith("17841") and len(uid) == 17
    assert ok(api.get(f"/{V}/me", params={"access_token": token},
                      headers={"Authorization": ""}))["id"] == uid
    bare = httpx.get(f"{sandbox.url}/instagram/{V}/me")
    assert "Cannot parse access token" in graph_error(bare, 190)["message"]
    graph_error(api.get(f"/{V}/me", headers={"Authorization": "Bearer IGAAnot-a-token"}), 190)
    other = f"IGAAsandbox_{uuid.uuid4().hex[:10]}"
    other_uid = control(api, "account", "GET", params={"access_token": other})["ig_user_id"]
    graph_error(create(api, other_uid, video_url="http://127.0.0.1/x.mp4"), 100, 33)
    graph_error(api.get(f"/{V}/me", params={"fields": "id,password"}), 100)
    graph_error(api.get("/latest/me"), 2500)
    graph_error(api.delete(f"/{V}/{uid}"), 100)

    control(api, "expire_token", access_token=token)
    expired = graph_error(api.get(f"/{V}/me"), 190, 463)
    assert "Session has expired" in expired["message"]


def test_injected_faults_speak_graph(api: httpx.Client, uid: str, sandbox: Any) -> None:
    sandbox.add_fault(system="instagram", route=f"/{V}/me", action="status", status=503,
                      times=1)
    assert graph_error(api.get(f"/{V}/me"), 2, status=503)["is_transient"] is True
    sandbox.add_fault(system="instagram", route=f"/{V}/me", action="rate_limit",
                      retry_after=7, times=1)
    limited = api.get(f"/{V}/me")
    assert graph_error(limited, 4, status=429)["is_transient"] is True
    assert limited.headers["retry-after"] == "7"

    control(api, "next_errors", code=613, route="*/content_publishing_limit",
            regain_minutes=3, ig_user_id=uid)
    hit = api.get(f"/{V}/{uid}/content_publishing_limit")
    graph_error(hit, 613)
    usage = hit.headers["x-business-use-case-usage"]
    assert '"estimated_time_to_regain_access": 3' in usage and uid in usage
    assert ok(api.get(f"/{V}/{uid}/content_publishing_limit"))["data"][0]["quota_usage"] == 0


# --- containers -------------------------------------------------------------------------------


def test_container_parameters_are_validated(api: httpx.Client, uid: str) -> None:
    url = "http://127.0.0.1:9/reel.mp4"
    graph_error(api.post(f"/{V}/{uid}/media", data={"video_url": url}), 100)  # IMAGE default
    graph_error(create(api, uid, media_type="VIDEO", video_url=url), 100, 2207023)
    graph_error(create(api, uid, video_url=url, upload_type="resumable"), 100)
    graph_error(create(api, uid), 100)
    graph_error(create(api, uid, upload_type="chunked"), 100)
    graph_error(create(api, uid, video_url=url, share_to_feed="yes"), 100)
    graph_error(create(api, uid, video_url=url, thumb_offset="-5"), 100)
    graph_error(create(api, uid, video_url=url, caption="x" * 2201), 100)
    tags = " ".join(f"#t{i}" for i in range(31))
    graph_error(create(api, uid, video_url=url, caption=tags), 100)
    assert containers(api, uid) == {}


def test_url_container_to_published_once(api: httpx.Client, uid: str, video_url: str,
                                         reel: bytes) -> None:
    cid = ok(create(api, uid, video_url=video_url, share_to_feed="false",
                    thumb_offset="1500"))["id"]
    assert graph_error(publish(api, uid, cid), 9007, 2207027)  # not ready yet
    first = status(api, cid)
    assert first == {"id": cid, "status_code": "IN_PROGRESS",
                     "status": "In Progress: Media is still being processed."}
    assert status(api, cid)["status_code"] == "FINISHED"
    media_id = ok(publish(api, uid, cid))["id"]
    assert status(api, cid)["status_code"] == "PUBLISHED"

    again = graph_error(publish(api, uid, cid), 9007)
    assert "already been published" in again["message"]
    [post] = published(api, uid)
    assert post["id"] == media_id and post["container_id"] == cid
    assert post["video_sha256"] == hashlib.sha256(reel).hexdigest()
    assert post["video_size"] == len(reel) and post["has_ai_label"] is True
    assert post["caption"] == CAPTION

    media = ok(api.get(f"/{V}/{media_id}", params={
        "fields": "id,permalink,caption,media_product_type,shortcode,is_shared_to_feed"}))
    assert media["permalink"] == f"https://www.instagram.com/reel/{media['shortcode']}/"
    assert (media["media_product_type"], media["is_shared_to_feed"]) == ("REELS", False)
    assert ok(api.get(f"/{V}/{uid}/content_publishing_limit"))["data"] == [{"quota_usage": 1}]
    assert containers(api, uid)[cid]["thumb_offset"] == 1500


@pytest.mark.parametrize(("reply", "words"), [
    (Reply(404, body=b"missing"), "HTTP 404"),
    (Reply(200, body=b"<html>", headers={"content-type": "text/html"}), "photo or video"),
    (Reply(200, action="drop"), "could not be fetched"),
])
def test_failed_fetch_makes_the_container_error(api: httpx.Client, uid: str,
                                                files: ScriptedServer, reply: Reply,
                                                words: str) -> None:
    cid = ok(create(api, uid, video_url=files.url(files.script(reply))))["id"]
    first = status(api, cid)
    assert first["status_code"] == "ERROR" and "2207052" in first["status"]
    assert words in first["status"]
    assert graph_error(publish(api, uid, cid), 9007, 2207052)
    assert published(api, uid) == []


def test_only_loopback_urls_are_fetched(api: httpx.Client, uid: str) -> None:
    cid = ok(create(api, uid, video_url="https://media.example.com/reel.mp4"))["id"]
    assert "2207052" in status(api, cid)["status"]


@pytest.mark.parametrize(("kind", "words"), [
    ("15fps", "frame rate"), ("noise", "ftyp"), ("short", "duration")])
def test_media_that_is_not_a_valid_reel_errors(api: httpx.Client, uid: str,
                                               files: ScriptedServer, tmp_path: Path,
                                               kind: str, words: str) -> None:
    if kind == "noise":
        body = bytes(range(256)) * 64
    else:
        path = tmp_path / "bad.mp4"
        render_reel(path, fps=15) if kind == "15fps" else render_reel(path, seconds=1.5)
        body = path.read_bytes()
    url = files.url(files.script(Reply(200, body=body, headers={"content-type": "video/mp4"})))
    cid = ok(create(api, uid, video_url=url))["id"]
    codes = poll_until_done(api, cid)
    assert codes == ["IN_PROGRESS", "ERROR"]
    text = status(api, cid)["status"]
    assert "2207026" in text and words in text


def test_planned_error_and_slow_containers(api: httpx.Client, uid: str,
                                           video_url: str) -> None:
    control(api, "next_containers", outcome="error", subcode=2207082, ig_user_id=uid)
    control(api, "next_containers", outcome="slow", polls=4, ig_user_id=uid)
    failed = ok(create(api, uid, video_url=video_url))["id"]
    slow = ok(create(api, uid, video_url=video_url))["id"]
    assert poll_until_done(api, failed) == ["IN_PROGRESS", "ERROR"]
    assert "(subcode 2207082)" in status(api, failed)["status"]
    assert poll_until_done(api, slow) == ["IN_PROGRESS"] * 3 + ["FINISHED"]


def test_an_unpublished_container_expires_after_24_hours(api: httpx.Client, uid: str,
                                                         video_url: str) -> None:
    cid = ready_container(api, uid, video_url)
    aged = control(api, "age", container_id=cid, seconds=23 * 3600)
    assert aged["status_code"] == "FINISHED"
    control(api, "age", container_id=cid, seconds=3600)
    assert status(api, cid)["status_code"] == "EXPIRED"
    graph_error(publish(api, uid, cid), 9007, 2207020)
    assert published(api, uid) == []


def test_publishing_limit_is_enforced(api: httpx.Client, uid: str, video_url: str) -> None:
    limit = control(api, "quota", ig_user_id=uid, quota_total=2, quota_usage=1)
    assert limit == {"quota_usage": 1, "config": {"quota_total": 2, "quota_duration": 86400}}
    first, second = (ready_container(api, uid, video_url) for _ in range(2))
    ok(publish(api, uid, first))
    read = ok(api.get(f"/{V}/{uid}/content_publishing_limit",
                      params={"fields": "quota_usage,config"}))
    assert read["data"] == [{"quota_usage": 2,
                             "config": {"quota_total": 2, "quota_duration": 86400}}]
    refused = graph_error(publish(api, uid, second), 9, 2207042)
    assert "maximum number of posts" in refused["message"]
    assert status(api, second)["status_code"] == "FINISHED"
    assert len(published(api, uid)) == 1


def test_a_lost_publish_answer_still_publishes_once(api: httpx.Client, uid: str,
                                                    video_url: str, sandbox: Any) -> None:
    cid = ready_container(api, uid, video_url)
    sandbox.add_fault(system="instagram", route=f"/{V}/{uid}/media_publish", action="drop",
                      phase="after", times=1)
    with pytest.raises(httpx.TransportError):
        publish(api, uid, cid)
    assert status(api, cid)["status_code"] == "PUBLISHED"
    graph_error(publish(api, uid, cid), 9007)
    assert len(published(api, uid)) == 1


def test_recent_media_lists_newest_first_with_paging(api: httpx.Client, uid: str,
                                                     video_url: str) -> None:
    ids = []
    for n in range(3):
        cid = ok(create(api, uid, video_url=video_url, caption=f"post {n} #AIgenerated"))["id"]
        poll_until_done(api, cid)
        ids.append(ok(publish(api, uid, cid))["id"])
    page = ok(api.get(f"/{V}/{uid}/media", params={"fields": "id,caption,timestamp",
                                                   "limit": 2}))
    assert [m["id"] for m in page["data"]] == ids[:0:-1]
    assert page["data"][0]["caption"] == "post 2 #AIgenerated"
    rest = ok(httpx.get(page["paging"]["next"], headers=api.headers))
    assert [m["id"] for m in rest["data"]] == ids[:1] and "next" not in rest["paging"]
    graph_error(api.get(f"/{V}/{uid}/media", params={"limit": 500}), 100)
    assert ok(api.get(f"/{V}/me", params={"fields": "media_count"}))["media_count"] == 3


def test_ai_labels_are_recorded(api: httpx.Client, uid: str, video_url: str) -> None:
    caption = platform_texts({"caption": "Morning jog", "hashtags": ["#run"]})[
        "instagram"]["caption"]
    for text in (caption, "#AIgenerated", "#madewithai", "Made with AI", "ai generated"):
        assert has_ai_label(text), text
    for text in ("", "#AI", "painted by hand", "#aigeneratedart"):
        assert not has_ai_label(text), text
    bare = ok(create(api, uid, video_url=video_url, caption="no label here"))["id"]
    assert containers(api, uid)[bare]["has_ai_label"] is False
    poll_until_done(api, bare)
    ok(publish(api, uid, bare))  # Instagram itself accepts it; the flag shows it
    assert [p["has_ai_label"] for p in published(api, uid)] == [False]


# --- rupload ----------------------------------------------------------------------------------


def resumable(api: httpx.Client, uid: str) -> tuple[str, str]:
    body = ok(create(api, uid, upload_type="resumable"))
    assert body["uri"].endswith(f"/instagram/rupload/ig-api-upload/{V}/{body['id']}")
    return body["id"], body["uri"]


def test_resumable_upload_in_parts(api: httpx.Client, uid: str, token: str,
                                   reel: bytes) -> None:
    cid, uri = resumable(api, uid)
    size, half = len(reel), len(reel) // 2
    assert ok(httpx.get(uri, headers={"Authorization": f"OAuth {token}"})) == {
        "id": cid, "offset": 0, "file_size": None}
    assert status(api, cid)["status_code"] == "IN_PROGRESS"
    assert status(api, cid)["status"].startswith("In Progress: Waiting")
    assert ok(upload(uri, token, reel[:half], 0, size)) == {
        "success": True, "message": "Upload in progress.", "offset": half}
    assert upload_offset(uri, token) == half
    # A resend of the first part from offset 0 rewrites the same bytes: harmless.
    ok(upload(uri, token, reel[:half], 0, size))
    assert ok(upload(uri, token, reel[half:], half, size)) == {
        "success": True, "message": "Upload successful."}
    assert ok(upload(uri, token, reel[half:], half, size))["success"] is True  # ignored
    record = containers(api, uid)[cid]
    assert record["sha256"] == hashlib.sha256(reel).hexdigest()
    assert (record["file_size"], record["received"]) == (size, size)
    assert poll_until_done(api, cid) == ["IN_PROGRESS", "FINISHED"]


def test_rupload_is_strict(api: httpx.Client, uid: str, token: str, reel: bytes,
                           video_url: str) -> None:
    cid, uri = resumable(api, uid)
    size = len(reel)

    def refused(response: httpx.Response, status: int, words: str) -> None:
        assert response.status_code == status, response.text
        info = response.json()["debug_info"]
        assert info["retriable"] is False and words in info["message"], info

    refused(upload(uri, token, reel, 0, size, scheme="Bearer"), 401, "OAuth")
    refused(upload(uri, "IGAAwrong", reel, 0, size), 401, "access token")
    refused(httpx.post(uri, content=reel, headers={"Authorization": f"OAuth {token}",
                                                   "file_size": str(size)}), 400, "offset")
    refused(upload(uri, token, reel[100:], 100, size), 400, "past the 0 bytes")
    refused(upload(uri, token, reel + b"extra", 0, size), 400, "runs past file_size")
    assert upload_offset(uri, token) == 0
    ok(upload(uri, token, reel[:10], 0, size))
    refused(upload(uri, token, reel[10:], 10, size + 1), 400, "differs")
    url_cid = ok(create(api, uid, video_url=video_url))["id"]
    refused(upload(uri.replace(cid, url_cid), token, reel, 0, size), 400, "resumable")
    refused(upload(uri.replace(cid, "17800000000000000"), token, reel, 0, size), 400,
            "does not exist")


def test_a_cut_upload_keeps_its_bytes_and_resumes(api: httpx.Client, uid: str, token: str,
                                                  reel: bytes) -> None:
    cid, uri = resumable(api, uid)
    control(api, "next_uploads", container_id=cid, cut_after=5000)
    with pytest.raises(httpx.TransportError):
        upload(uri, token, reel, 0, len(reel))
    assert upload_offset(uri, token) == 5000
    ok(upload(uri, token, reel[5000:], 5000, len(reel)))
    assert containers(api, uid)[cid]["sha256"] == hashlib.sha256(reel).hexdigest()


def test_bytes_sent_before_the_client_vanished_are_kept(sandbox: Any, api: httpx.Client,
                                                        uid: str, token: str,
                                                        reel: bytes) -> None:
    cid, uri = resumable(api, uid)
    url = httpx.URL(uri)
    head = (f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n"
            f"Authorization: OAuth {token}\r\noffset: 0\r\nfile_size: {len(reel)}\r\n"
            f"Content-Length: {len(reel)}\r\n\r\n").encode()
    with socket.create_connection((url.host, url.port)) as raw:
        raw.sendall(head + reel[:7000])
    deadline = time.monotonic() + 10  # the server notices the closed socket on its own time
    while upload_offset(uri, token) < 7000 and time.monotonic() < deadline:
        pass
    assert upload_offset(uri, token) == 7000
    ok(upload(uri, token, reel[7000:], 7000, len(reel)))
    assert containers(api, uid)[cid]["sha256"] == hashlib.sha256(reel).hexdigest()


# --- tokens, limits and restarts on a private sandbox ----------------------------------------


@pytest.fixture
def private(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox of its own, for clock and config changes that would leak into other tests."""
    with SandboxServer(state_dir=tmp_path / "state", seed=5) as server:
        yield server


def test_refresh_issues_a_new_token(api: httpx.Client, uid: str, token: str) -> None:
    def refresh(value: str, grant: str = "ig_refresh_token") -> httpx.Response:
        return api.get("/refresh_access_token", params={"grant_type": grant,
                                                        "access_token": value},
                       headers={"Authorization": ""})

    fresh = ok(refresh(token))
    assert fresh["token_type"] == "bearer" and fresh["expires_in"] == 60 * 86400
    assert fresh["access_token"].startswith("IGAA") and fresh["access_token"] != token
    mine = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert ok(api.get(f"/{V}/me", headers=mine))["id"] == uid
    assert ok(api.get(f"/{V}/me"))["id"] == uid  # Meta does not revoke the old one
    graph_error(refresh(token, "fb_exchange_token"), 100)
    graph_error(refresh("IGAAunknown"), 190)
    versioned = api.get(f"/{V}/refresh_access_token", params={
        "grant_type": "ig_refresh_token", "access_token": fresh["access_token"]})
    assert ok(versioned)["access_token"] not in (token, fresh["access_token"])

    control(api, "expire_token", access_token=token, refreshable=False)
    graph_error(refresh(token), 190, 463)
    control(api, "expire_token", access_token=fresh["access_token"])  # refreshable (default)
    again = ok(refresh(fresh["access_token"]))["access_token"]
    assert ok(api.get(f"/{V}/me", headers={"Authorization": f"Bearer {again}"}))["id"] == uid


def test_clock_expires_tokens_and_frees_the_quota(private: SandboxServer, reel: bytes) -> None:
    with ScriptedServer() as host, httpx.Client(
            base_url=private.url + "/instagram",
            headers={"Authorization": "Bearer IGAAsandbox_clock"}) as api:
        url = host.url(host.script(Reply(200, body=reel, headers={"content-type": "video/mp4"})))
        uid = control(api, "account", "GET",
                      params={"access_token": "IGAAsandbox_clock"})["ig_user_id"]
        control(api, "quota", ig_user_id=uid, quota_total=1)
        ok(publish(api, uid, ready_container(api, uid, url)))
        blocked = ready_container(api, uid, url)
        graph_error(publish(api, uid, blocked), 9, 2207042)
        control(api, "clock", advance=86400 - 60)
        assert status(api, blocked)["status_code"] == "FINISHED"
        graph_error(publish(api, uid, blocked), 9, 2207042)
        control(api, "clock", advance=61)  # the first publish leaves the window...
        assert status(api, blocked)["status_code"] == "EXPIRED"  # ...and the container ages
        ok(publish(api, uid, ready_container(api, uid, url)))
        control(api, "clock", advance=60 * 86400)
        graph_error(api.get(f"/{V}/me"), 190, 463)


def test_container_limit(private: SandboxServer) -> None:
    with httpx.Client(base_url=private.url + "/instagram",
                      headers={"Authorization": "Bearer IGAAsandbox_limit"}) as api:
        uid = control(api, "account", "GET",
                      params={"access_token": "IGAAsandbox_limit"})["ig_user_id"]
        assert control(api, "config", container_limit=3)["container_limit"] == 3
        for _ in range(3):
            ok(create(api, uid, upload_type="resumable"))
        refused = graph_error(create(api, uid, upload_type="resumable"), 9, 2207042)
        assert "containers" in refused["message"]
        bad = api.post("/_control/config", json={"finish_polls": 0})
        assert bad.status_code == 400 and "finish_polls" in bad.json()["error"]


def test_state_survives_a_restart(tmp_path: Path, reel: bytes) -> None:
    headers = {"Authorization": "Bearer IGAAsandbox_restart"}
    with SandboxServer(state_dir=tmp_path, seed=3) as server, httpx.Client(
            base_url=server.url + "/instagram", headers=headers) as api:
        uid = ok(api.get(f"/{V}/me"))["id"]
        cid, uri = resumable(api, uid)
        ok(upload(uri, "IGAAsandbox_restart", reel[:4000], 0, len(reel)))
        control(api, "next_errors", code=4, route="*/media_publish", ig_user_id=uid)
    with SandboxServer(state_dir=tmp_path, seed=3) as server, httpx.Client(
            base_url=server.url + "/instagram", headers=headers) as api:
        uri = f"{server.url}/instagram/rupload/ig-api-upload/{V}/{cid}"
        assert upload_offset(uri, "IGAAsandbox_restart") == 4000
        ok(upload(uri, "IGAAsandbox_restart", reel[4000:], 4000, len(reel)))
        poll_until_done(api, cid)
        graph_error(publish(api, uid, cid), 4)
        media_id = ok(publish(api, uid, cid))["id"]
        assert [p["id"] for p in published(api, uid)] == [media_id]
