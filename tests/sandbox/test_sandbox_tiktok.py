"""The TikTok stand-in over real HTTP: envelope, tokens, chunk rules, the upload host, status
progression, published posts, limits and caps, OAuth rotation, control routes, restarts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.media import MediaCache, VideoSpec
from sandbox.server import SandboxServer
from sandbox.systems.tiktok import (
    MAX_CHUNK,
    MAX_CHUNKS,
    MAX_FINAL_CHUNK,
    MIN_CHUNK,
    chunk_ranges,
    chunk_rule_violation,
)

MB = 1024 * 1024
INIT = "/v2/post/publish/video/init/"
STATUS = "/v2/post/publish/status/fetch/"
CREATOR = "/v2/post/publish/creator_info/query/"
TOKEN = "/v2/oauth/token/"


@pytest.fixture(scope="session")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 3 s H.264/AAC MP4 (~30 KB)."""
    return MediaCache(tmp_path_factory.mktemp("tiktok-media")).read(VideoSpec("tiktok", 3.0))


def padded(mp4: bytes, size: int) -> bytes:
    """`mp4` grown to `size` bytes by a trailing ISO BMFF `free` box: still a valid MP4."""
    pad = size - len(mp4)
    assert pad >= 8
    return mp4 + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8)


@pytest.fixture
def account() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api(sandbox: Any, account: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url + "/tiktok",
                      headers={"Authorization": f"Bearer act.sandbox.{account}"}) as client:
        yield client


def control(api: httpx.Client, path: str, method: str = "POST", **body: Any) -> Any:
    response = api.request(method, f"/_control/{path}", json=body if method == "POST" else None,
                           params=body if method != "POST" else None)
    assert response.status_code == 200, response.text
    return response.json()


def data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error"]["code"] == "ok" and body["error"]["message"] == ""
    assert len(body["error"]["log_id"]) >= 20
    return body["data"]


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] == {} and body["error"]["code"] == code, body
    assert body["error"]["log_id"]
    return body["error"]["message"]


def init_body(size: int, chunk: int | None = None, count: int = 1, *,
              privacy: str = "PUBLIC_TO_EVERYONE", **post: Any) -> dict[str, Any]:
    return {"post_info": {"title": "hello #ai", "privacy_level": privacy, "is_aigc": True,
                          **post},
            "source_info": {"source": "FILE_UPLOAD", "video_size": size,
                            "chunk_size": size if chunk is None else chunk,
                            "total_chunk_count": count}}


def init(api: httpx.Client, size: int, chunk: int | None = None, count: int = 1,
         **post: Any) -> dict[str, Any]:
    return data(api.post(INIT, json=init_body(size, chunk, count, **post)))


def put(url: str, payload: bytes, first: int, total: int,
        content_type: str = "video/mp4") -> httpx.Response:
    return httpx.put(url, content=payload, headers={
        "Content-Type": content_type,
        "Content-Range": f"bytes {first}-{first + len(payload) - 1}/{total}"})


def status(api: httpx.Client, publish_id: str) -> dict[str, Any]:
    return data(api.post(STATUS, json={"publish_id": publish_id}))


def publish(api: httpx.Client, video: bytes, **post: Any) -> str:
    started = init(api, len(video), **post)
    assert put(started["upload_url"], video, 0, len(video)).status_code == 201
    return started["publish_id"]


# --- envelope, tokens --------------------------------------------------------------------------

def test_creator_info_and_the_envelope(api: httpx.Client, account: str) -> None:
    info = data(api.post(CREATOR))
    assert info["privacy_level_options"] == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                                             "SELF_ONLY"]
    assert info["creator_nickname"] == account
    assert info["max_video_post_duration_sec"] == 600
    control(api, "config", account=account, private=True)
    assert data(api.post(CREATOR))["privacy_level_options"][0] == "FOLLOWER_OF_CREATOR"


def test_bad_tokens_get_access_token_invalid(sandbox: Any) -> None:
    base = sandbox.url + "/tiktok"
    assert "missing" in error(httpx.post(base + CREATOR), 401, "access_token_invalid")
    for token in ("act.live.x", "act.sandbox.bad/name", "nope"):
        response = httpx.post(base + CREATOR, headers={"Authorization": f"Bearer {token}"})
        error(response, 401, "access_token_invalid")
    error(httpx.get(base + "/v2/nothing/"), 404, "not_found")


def test_expiring_and_refreshing_tokens(sandbox: Any, api: httpx.Client, account: str) -> None:
    other = f"act.sandbox.{account}.second"
    assert data(api.post(CREATOR))
    control(api, "expire_token", account=account)
    assert "expired" in error(api.post(CREATOR), 401, "access_token_invalid")
    never_used = api.post(CREATOR, headers={"Authorization": f"Bearer {other}"})
    error(never_used, 401, "access_token_invalid")  # implicit tokens die with the account's

    def refresh(token: str) -> httpx.Response:
        return api.post(TOKEN, data={"client_key": "ck", "client_secret": "cs",
                                     "grant_type": "refresh_token", "refresh_token": token})

    first = refresh(f"rft.sandbox.{account}")
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 7200
    assert tokens["refresh_expires_in"] == 180 * 86400 and "video.publish" in tokens["scope"]
    assert tokens["open_id"].startswith("-000")
    assert tokens["refresh_token"] != f"rft.sandbox.{account}"
    fresh = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert data(api.post(CREATOR, headers=fresh))
    # Rotation: the refresh token just used, and the first one, are dead; the new one works.
    again = refresh(f"rft.sandbox.{account}")
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    second = refresh(tokens["refresh_token"])
    assert second.status_code == 200
    stale = refresh(tokens["refresh_token"])
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    assert stale.json()["log_id"] and stale.json()["error_description"]
    assert data(api.post(CREATOR, headers=fresh))  # older access tokens live until they expire
    control(api, "expire_token", access_token=tokens["access_token"])
    error(api.post(CREATOR, headers=fresh), 401, "access_token_invalid")


def test_oauth_request_validation(api: httpx.Client, account: str) -> None:
    form = {"client_key": "ck", "client_secret": "cs", "grant_type": "refresh_token",
            "refresh_token": f"rft.sandbox.{account}"}
    as_json = api.post(TOKEN, json=form)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    missing = api.post(TOKEN, data={**form, "client_secret": ""})
    assert missing.json()["error"] == "invalid_request"
    grant = api.post(TOKEN, data={**form, "grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"
    ok = api.post(TOKEN, data=form)
    assert ok.status_code == 200
    other_client = api.post(TOKEN, data={**form, "client_key": "someone-else",
                                         "refresh_token": ok.json()["refresh_token"]})
    assert other_client.json()["error"] == "invalid_grant"


def test_control_account_issues_a_working_pair(sandbox: Any, account: str) -> None:
    made = httpx.post(f"{sandbox.url}/tiktok/_control/accounts",
                      json={"account": account, "audited": False}).json()
    assert made["access_token"].startswith(f"act.sandbox.{account}.")
    headers = {"Authorization": f"Bearer {made['access_token']}"}
    with httpx.Client(base_url=sandbox.url + "/tiktok", headers=headers) as client:
        assert data(client.post(CREATOR))
        error(client.post(INIT, json=init_body(1000)), 403,
              "unaudited_client_can_only_post_to_private_accounts")
        refreshed = client.post(TOKEN, data={"client_key": "k", "client_secret": "s",
                                             "grant_type": "refresh_token",
                                             "refresh_token": made["refresh_token"]})
        assert refreshed.status_code == 200
    bad = httpx.post(f"{sandbox.url}/tiktok/_control/accounts", json={"account": "a b"})
    assert bad.status_code == 400


# --- init validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "chunk", "count", "valid"), [
    (50_000_123, 10_000_000, 5, True),  # the media transfer guide's example
    (50_000_123, 10_000_000, 6, False),  # ceil instead of floor
    (50_000_123, 10_000_000, 4, False),
    (1_000, 1_000, 1, True),
    (1_000, 500, 2, False),  # under 5 MB: one chunk
    (MIN_CHUNK - 1, MIN_CHUNK - 1, 1, True),
    (MIN_CHUNK, MIN_CHUNK, 1, True),
    (MIN_CHUNK * 3, MIN_CHUNK - 1, 3, False),  # chunk under 5 MB
    (MAX_CHUNK, MAX_CHUNK, 1, True),
    (MAX_CHUNK + 1, MAX_CHUNK, 1, False),  # over 64 MB in one chunk
    (MAX_CHUNK + 1, (MAX_CHUNK + 1) // 2, 2, True),
    (200 * MB, MAX_CHUNK + 1, 2, False),  # chunk over 64 MB
    (MIN_CHUNK * 1001, MIN_CHUNK, 1001, False),  # over 1000 chunks
    (MIN_CHUNK * 1000, MIN_CHUNK, 1000, True),
    (0, 0, 1, False),
])
def test_chunk_rules_at_init(api: httpx.Client, account: str, size: int, chunk: int,
                             count: int, valid: bool) -> None:
    control(api, "config", account=account, init_per_minute=100, daily_cap=100)
    response = api.post(INIT, json=init_body(size, chunk, count))
    if valid:
        assert data(response)["publish_id"].startswith("v_pub_file~v2.")
    else:
        assert error(response, 400, "invalid_params").startswith("The chunk size is invalid")


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 70_000 * MB), chunk=st.integers(1, 130 * MB),
       count=st.integers(0, 1200))
def test_chunk_rule_violation_matches_the_written_rules(size: int, chunk: int,
                                                        count: int) -> None:
    small = size < MIN_CHUNK
    expected_ok = (chunk == size and count == 1) if small else (
        MIN_CHUNK <= chunk <= MAX_CHUNK and count == size // chunk
        and 1 <= count <= MAX_CHUNKS and not (size > MAX_CHUNK and count < 2))
    assert (chunk_rule_violation(size, chunk, count) is None) == expected_ok
    if expected_ok:
        ranges = chunk_ranges(size, chunk, count)
        assert ranges[0][0] == 0 and ranges[-1][1] == size - 1
        assert ranges[-1][1] - ranges[-1][0] + 1 <= MAX_FINAL_CHUNK


def test_post_info_rules(api: httpx.Client, account: str) -> None:
    control(api, "config", account=account, init_per_minute=100)
    error(api.post(INIT, json=init_body(1000, privacy="FOLLOWER_OF_CREATOR")), 400,
          "privacy_level_option_mismatch")
    error(api.post(INIT, json=init_body(1000, privacy="EVERYONE")), 400, "invalid_params")
    error(api.post(INIT, json=init_body(1000, title="x" * 2201)), 400, "invalid_params")
    error(api.post(INIT, json=init_body(1000, is_aigc="yes")), 400, "invalid_params")
    error(api.post(INIT, json=init_body(1000, privacy="SELF_ONLY", brand_content_toggle=True)),
          400, "invalid_params")
    error(api.post(INIT, json={"source_info": init_body(1000)["source_info"]}), 400,
          "invalid_params")
    error(api.post(INIT, content=b"{}", headers={"Content-Type": "text/plain"}), 400,
          "invalid_params")
    pull = {**init_body(1000), "source_info": {"source": "PULL_FROM_URL",
                                               "video_url": "https://cdn.example/v.mp4"}}
    error(api.post(INIT, json=pull), 403, "url_ownership_unverified")
    control(api, "config", account=account, audited=False)
    error(api.post(INIT, json=init_body(1000)), 403,
          "unaudited_client_can_only_post_to_private_accounts")
    assert init(api, 1000, privacy="SELF_ONLY")["upload_url"]


# --- the upload host ---------------------------------------------------------------------------

def test_single_chunk_publish_and_status_progression(sandbox: Any, api: httpx.Client,
                                                     account: str, mp4: bytes) -> None:
    started = init(api, len(mp4))
    publish_id, url = started["publish_id"], started["upload_url"]
    assert "upload_token=" in url and "upload_id=" in url
    assert status(api, publish_id) == {"status": "PROCESSING_UPLOAD",
                                       "publicaly_available_post_id": [], "uploaded_bytes": 0}
    assert control(api, "published", "GET", account=account) == []
    response = put(url, mp4, 0, len(mp4))
    assert response.status_code == 201 and "authorization" not in response.request.headers
    published = control(api, "published", "GET", account=account)
    assert len(published) == 1  # published once the bytes are in, polled or not
    post = published[0]
    assert post["video_sha256"] == hashlib.sha256(mp4).hexdigest()
    assert (post["is_aigc"], post["title"], post["privacy_level"]) == (
        True, "hello #ai", "PUBLIC_TO_EVERYONE")
    seen = [status(api, publish_id) for _ in range(3)]
    assert [s["status"] for s in seen] == ["PROCESSING_UPLOAD", "PUBLISH_COMPLETE",
                                           "PUBLISH_COMPLETE"]
    assert seen[1]["publicaly_available_post_id"] == [int(post["post_id"])]
    assert seen[1]["uploaded_bytes"] == len(mp4) and "fail_reason" not in seen[1]
    assert control(api, "published", "GET", account=account)[0]["status"] == "PUBLISH_COMPLETE"


def test_multi_chunk_upload_rules(sandbox: Any, api: httpx.Client, account: str,
                                  mp4: bytes) -> None:
    video = padded(mp4, 16_500_000)
    started = init(api, len(video), MIN_CHUNK, 3)
    url, total = started["upload_url"], len(video)
    chunks = chunk_ranges(total, MIN_CHUNK, 3)
    assert chunks[-1][1] - chunks[-1][0] + 1 == 16_500_000 - 2 * MIN_CHUNK

    def part(i: int) -> bytes:
        return video[chunks[i][0]:chunks[i][1] + 1]

    bad_token = url.replace("upload_token=", "upload_token=x")
    error(put(bad_token, part(0), 0, total), 403, "permission_denied")
    error(put(url.replace("upload_id=", "upload_id=9"), part(0), 0, total), 404,
          "invalid_params")
    error(put(url, part(0), 0, total, "application/octet-stream"), 400, "invalid_params")
    error(httpx.put(url, content=part(0), headers={"Content-Type": "video/mp4"}), 416,
          "invalid_params")  # no Content-Range
    error(put(url, part(1), chunks[1][0], total), 416, "invalid_params")  # out of order
    error(put(url, part(0)[:-1], 0, total), 416, "invalid_params")  # not the declared size
    error(put(url, part(0), 0, total + 1), 416, "invalid_params")  # another total
    short = httpx.put(url, content=part(0)[:-1], headers={
        "Content-Type": "video/mp4", "Content-Range": f"bytes 0-{chunks[0][1]}/{total}"})
    error(short, 416, "invalid_params")  # the body is not what Content-Range says
    assert put(url, part(0), 0, total).status_code == 206
    # Re-sending a received chunk is accepted and changes nothing (sandbox choice).
    assert put(url, part(0), 0, total).status_code == 206
    other = bytes(len(part(0)))
    error(put(url, other, 0, total), 400, "invalid_file_upload")
    assert status(api, started["publish_id"])["uploaded_bytes"] == chunks[0][1] + 1
    assert put(url, part(1), chunks[1][0], total).status_code == 206
    assert put(url, part(2), chunks[2][0], total).status_code == 201
    assert put(url, part(2), chunks[2][0], total).status_code == 201  # idempotent resend
    [post] = control(api, "published", "GET", account=account)
    assert post["video_sha256"] == hashlib.sha256(video).hexdigest()
    assert post["video_size"] == total


def test_processing_checks_fail_the_post(api: httpx.Client, account: str, mp4: bytes) -> None:
    control(api, "config", account=account, processing_polls=0)
    junk = publish(api, b"not a video at all " * 10)
    assert status(api, junk) == {"status": "FAILED", "fail_reason": "file_format_check_failed",
                                 "publicaly_available_post_id": [], "uploaded_bytes": 190}
    control(api, "config", account=account, max_video_post_duration_sec=2)
    too_long = publish(api, mp4)
    assert status(api, too_long)["fail_reason"] == "duration_check_failed"
    assert control(api, "published", "GET", account=account) == []
    posts = control(api, "posts", "GET", account=account)
    assert [p["outcome"] for p in posts] == ["fail", "fail"]


def test_self_only_and_moderation_delay(api: httpx.Client, account: str, mp4: bytes) -> None:
    control(api, "config", account=account, processing_polls=0, moderation_polls=2)
    public = publish(api, mp4)
    ids = [status(api, public)["publicaly_available_post_id"] for _ in range(3)]
    assert ids[0] == ids[1] == [] and len(ids[2]) == 1
    private = publish(api, mp4, privacy="SELF_ONLY", is_aigc=False)
    seen = [status(api, private) for _ in range(4)]
    assert seen[-1]["status"] == "PUBLISH_COMPLETE"
    assert seen[-1]["publicaly_available_post_id"] == []  # private posts get no public id
    flags = {p["publish_id"]: p["is_aigc"]
             for p in control(api, "published", "GET", account=account)}
    assert flags == {public: True, private: False}


def test_accepted_then_failed(api: httpx.Client, account: str, mp4: bytes) -> None:
    control(api, "next_posts", account=account, fail_reason="spam_risk_text", count=1)
    doomed = publish(api, mp4)
    fine = publish(api, mp4)
    assert [status(api, doomed)["status"] for _ in range(2)] == ["PROCESSING_UPLOAD",
                                                                 "FAILED"]
    assert status(api, doomed)["fail_reason"] == "spam_risk_text"
    assert [p["publish_id"] for p in control(api, "published", "GET", account=account)] == [
        fine]


def test_upload_url_expires(api: httpx.Client, account: str, mp4: bytes) -> None:
    control(api, "config", account=account, upload_ttl=0)
    started = init(api, len(mp4))
    assert "expired" in error(put(started["upload_url"], mp4, 0, len(mp4)), 403,
                              "permission_denied")
    assert status(api, started["publish_id"])["status"] == "PROCESSING_UPLOAD"


def test_status_of_unknown_or_foreign_publish(sandbox: Any, api: httpx.Client) -> None:
    started = init(api, 1000)
    error(api.post(STATUS, json={"publish_id": "v_pub_file~v2.1"}), 400, "invalid_params")
    error(api.post(STATUS, json={}), 400, "invalid_params")
    stranger = {"Authorization": f"Bearer act.sandbox.s{uuid.uuid4().hex[:8]}"}
    error(api.post(STATUS, json={"publish_id": started["publish_id"]}, headers=stranger), 400,
          "invalid_params")


# --- limits and caps ---------------------------------------------------------------------------

def test_seventh_init_in_a_minute_is_rate_limited(sandbox: Any, api: httpx.Client,
                                                  account: str) -> None:
    for _ in range(6):
        init(api, 1000)
    message = error(api.post(INIT, json=init_body(1000)), 429, "rate_limit_exceeded")
    assert "6" in message
    # The limit is per access token: another token of the account still has its six.
    second = {"Authorization": f"Bearer act.sandbox.{account}.phone"}
    assert data(api.post(INIT, json=init_body(1000), headers=second))
    control(api, "config", account=account, reset_limits=True)
    assert init(api, 1000)


def test_status_and_creator_info_limits(api: httpx.Client, account: str) -> None:
    control(api, "config", account=account, status_per_minute=2, creator_info_per_minute=1)
    publish_id = init(api, 1000)["publish_id"]
    status(api, publish_id)
    status(api, publish_id)
    error(api.post(STATUS, json={"publish_id": publish_id}), 429, "rate_limit_exceeded")
    data(api.post(CREATOR))
    error(api.post(CREATOR), 429, "rate_limit_exceeded")


def test_daily_cap(api: httpx.Client, account: str) -> None:
    control(api, "config", account=account, daily_cap=2)
    init(api, 1000)
    init(api, 1000)
    error(api.post(INIT, json=init_body(1000)), 403, "spam_risk_too_many_posts")
    error(api.post(INIT, json=init_body(1000, chunk=5)), 400, "invalid_params")  # before the cap
    assert control(api, "state", "GET", account=account)["inits_last_24h"] == 2


def test_injected_faults_speak_the_envelope(sandbox: Any, api: httpx.Client) -> None:
    sandbox.add_fault(system="tiktok", route=STATUS, action="status", status=503, times=1)
    sandbox.add_fault(system="tiktok", route=CREATOR, action="rate_limit", retry_after=3,
                      times=1)
    error(api.post(STATUS, json={"publish_id": "x"}), 503, "internal_error")
    limited = api.post(CREATOR)
    error(limited, 429, "rate_limit_exceeded")
    assert limited.headers["retry-after"] == "3"


def test_state_survives_a_restart(tmp_path: Path, mp4: bytes) -> None:
    video = padded(mp4, 11_000_000)
    chunks = chunk_ranges(len(video), MIN_CHUNK, 2)
    headers = {"Authorization": "Bearer act.sandbox.restart"}
    with SandboxServer(state_dir=tmp_path) as first, \
            httpx.Client(base_url=first.url + "/tiktok", headers=headers) as client:
        started = init(client, len(video), MIN_CHUNK, 2)
        assert put(started["upload_url"], video[:chunks[0][1] + 1], 0,
                   len(video)).status_code == 206
    with SandboxServer(state_dir=tmp_path) as second:
        url = started["upload_url"].replace(first.url, second.url)
        assert put(url, video[chunks[1][0]:], chunks[1][0], len(video)).status_code == 201
        with httpx.Client(base_url=second.url + "/tiktok", headers=headers) as client:
            assert [status(client, started["publish_id"])["status"] for _ in range(2)] == [
                "PROCESSING_UPLOAD", "PUBLISH_COMPLETE"]
            [post] = control(client, "published", "GET", account="restart")
    assert post["video_sha256"] == hashlib.sha256(video).hexdigest()


def test_control_validation(api: httpx.Client) -> None:
    assert api.post("/_control/config", json={"daily_cap": -1}).status_code == 400
    assert api.post("/_control/config", json={"nonsense": 1}).status_code == 400
    assert api.post("/_control/next_posts", json={"count": 0}).status_code == 400
    assert api.post("/_control/expire_token", json={}).status_code == 400
    assert api.get("/_control/published", params={"account": "bad name"}).status_code == 400
