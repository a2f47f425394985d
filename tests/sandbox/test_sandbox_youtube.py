"""The YouTube stand-in over real HTTP: OAuth, videos.insert validation, resumable sessions
(chunk rules, 308 + Range, probes, gaps and resends), quota models and caps, reads, faults,
restarts."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sandbox.systems.youtube import CHUNK_UNIT, channel_id_for, uploads_playlist

UPLOAD = "/upload/youtube/v3/videos"
MiB = 1024 * 1024
META = {"snippet": {"title": "Ramen in the rain #wg-1", "description": "AI-generated.",
                    "tags": ["ramen"], "categoryId": "22"},
        "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False,
                   "containsSyntheticMedia": True}}


@dataclass
class Account:
    api: httpx.Client
    client_id: str
    refresh_token: str
    access_token: str

    @property
    def channel(self) -> str:
        return channel_id_for(self.refresh_token)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def token_request(api: httpx.Client, **form: str) -> httpx.Response:
    return api.post("/oauth2/token", data=form)


def new_account(api: httpx.Client, client_id: str | None = None) -> Account:
    client_id = client_id or f"test-{uuid.uuid4().hex[:10]}.apps.googleusercontent.com"
    refresh = f"1//sandbox_{uuid.uuid4().hex[:12]}"
    response = token_request(api, client_id=client_id, client_secret="GOCSPX-test",
                             refresh_token=refresh, grant_type="refresh_token")
    assert response.status_code == 200, response.text
    return Account(api, client_id, refresh, response.json()["access_token"])


@pytest.fixture
def api(sandbox: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url + "/youtube") as client:
        yield client


@pytest.fixture
def account(api: httpx.Client) -> Account:
    return new_account(api)


def control(api: httpx.Client, path: str, method: str = "POST", **body: Any) -> Any:
    response = api.request(method, f"/_control/{path}", json=body if method == "POST" else None)
    assert response.status_code == 200, response.text
    return response.json()


def insert(acc: Account, meta: dict[str, Any] | None = None, size: int | None = None,
           part: str = "snippet,status", **headers: str) -> httpx.Response:
    sent = {**acc.auth, "Content-Type": "application/json; charset=UTF-8",
            "X-Upload-Content-Type": "video/mp4", **headers}
    if size is not None:
        sent["X-Upload-Content-Length"] = str(size)
    return acc.api.post(UPLOAD, params={"uploadType": "resumable", "part": part},
                        json=META if meta is None else meta, headers=sent)


def session(acc: Account, size: int, meta: dict[str, Any] | None = None) -> str:
    response = insert(acc, meta, size)
    assert response.status_code == 200, response.text
    return response.headers["location"]


def put(api: httpx.Client, uri: str, data: bytes, first: int | None, total: int | str,
        **headers: str) -> httpx.Response:
    sent = {"Content-Type": "video/mp4", **headers}
    if first is not None:
        sent["Content-Range"] = f"bytes {first}-{first + len(data) - 1}/{total}"
    return api.put(uri, content=data, headers=sent)


def probe(api: httpx.Client, uri: str, total: int | str) -> httpx.Response:
    return api.put(uri, content=b"", headers={"Content-Range": f"bytes */{total}"})


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    detail = error["errors"][0]
    assert error["code"] == response.status_code
    return response.status_code, detail["domain"], detail["reason"]


def published(api: httpx.Client, channel: str) -> list[dict[str, Any]]:
    return control(api, f"published?account={channel}", method="GET")["videos"]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(CHUNK_UNIT * 5 + 1000)


# --- OAuth ------------------------------------------------------------------------------------

def test_refresh_gives_a_bearer_token_and_keeps_the_refresh_token(api: httpx.Client) -> None:
    acc = new_account(api)
    again = token_request(api, client_id=acc.client_id, client_secret="GOCSPX-test",
                          refresh_token=acc.refresh_token, grant_type="refresh_token").json()
    assert set(again) == {"access_token", "expires_in", "scope", "token_type"}
    assert again["expires_in"] == 3599 and again["token_type"] == "Bearer"
    assert again["access_token"].startswith("ya29.") and again["access_token"] != \
        acc.access_token
    # Google does not rotate: the same refresh token keeps working, and so do both tokens.
    for token in (acc.access_token, again["access_token"]):
        response = api.get("/youtube/v3/channels", params={"part": "id", "mine": "true"},
                           headers={"Authorization": f"Bearer {token}"})
        assert response.json()["items"][0]["id"] == acc.channel


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "1//sandbox"},
     400, "invalid_request"),
    ({"grant_type": "authorization_code", "client_secret": "s", "refresh_token": "1//sandbox",
      "client_id": "a.apps.googleusercontent.com"}, 400, "unsupported_grant_type"),
    ({"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "1//sandbox",
      "client_id": "not-a-google-client"}, 401, "invalid_client"),
    ({"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "garbage",
      "client_id": "b.apps.googleusercontent.com"}, 400, "invalid_grant"),
])
def test_token_endpoint_errors(api: httpx.Client, form: dict[str, str], status: int,
                               error: str) -> None:
    response = token_request(api, **form)
    assert response.status_code == status
    assert response.json()["error"] == error and response.json()["error_description"]


def test_a_client_secret_and_a_refresh_token_are_bound_to_their_client(
        api: httpx.Client, account: Account) -> None:
    wrong_secret = token_request(api, client_id=account.client_id, client_secret="other",
                                 refresh_token=account.refresh_token,
                                 grant_type="refresh_token")
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    other_client = token_request(api, client_id="other.apps.googleusercontent.com",
                                 client_secret="x", refresh_token=account.refresh_token,
                                 grant_type="refresh_token")
    assert (other_client.status_code, other_client.json()["error"]) == \
        (401, "unauthorized_client")


def test_revoked_grant_refuses_refresh_and_its_access_tokens(api: httpx.Client,
                                                             account: Account) -> None:
    assert api.post("/oauth2/revoke", params={"token": account.refresh_token}).status_code == 200
    refused = token_request(api, client_id=account.client_id, client_secret="GOCSPX-test",
                            refresh_token=account.refresh_token, grant_type="refresh_token")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert error_of(insert(account)) == (401, "global", "authError")


def test_missing_and_expired_tokens_get_googles_401(api: httpx.Client,
                                                    account: Account) -> None:
    missing = api.get("/youtube/v3/videos", params={"part": "id", "id": "x"})
    assert error_of(missing) == (401, "global", "required")
    control(api, "expire_token", access_token=account.access_token)
    expired = insert(account)
    assert error_of(expired) == (401, "global", "authError")
    assert expired.json()["error"]["status"] == "UNAUTHENTICATED"
    assert expired.json()["error"]["errors"][0]["locationType"] == "header"
    assert "invalid_token" in expired.headers["www-authenticate"]


# --- videos.insert ------------------------------------------------------------------------------

def test_insert_opens_a_session_at_a_location(account: Account, sandbox: Any) -> None:
    response = insert(account, size=1000)
    assert response.status_code == 200 and response.content == b""
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(f"{sandbox.url}/youtube{UPLOAD}?")
    assert location.params["uploadType"] == "resumable" and location.params["upload_id"]
    entry = sandbox.journal("youtube")[-1]
    assert entry["body"]["status"]["containsSyntheticMedia"] is True
    assert entry["headers"]["authorization"] != account.auth["Authorization"]  # masked


def _long_description() -> dict[str, Any]:
    return {**META, "snippet": {**META["snippet"], "description": "é" * 2501}}


@pytest.mark.parametrize(("meta", "headers", "params", "expected"), [
    ({**META, "snippet": {"title": "x" * 101}}, {}, {}, ("youtube.video", "invalidTitle")),
    ({**META, "snippet": {"title": "a <b>"}}, {}, {}, ("youtube.video", "invalidTitle")),
    ({**META, "snippet": {"description": "no title"}}, {}, {},
     ("youtube.video", "invalidTitle")),
    (_long_description(), {}, {}, ("youtube.video", "invalidDescription")),
    ({**META, "status": {"privacyStatus": "friends"}}, {}, {},
     ("youtube.video", "invalidVideoMetadata")),
    ({**META, "status": {"containsSyntheticMedia": "yes"}}, {}, {}, ("global", "invalid")),
    ({**META, "status": {"privacyStatus": "public", "publishAt": "2099-01-01T00:00:00Z"}},
     {}, {}, ("youtube.video", "invalidPublishAt")),
    (META, {"X-Upload-Content-Type": "text/plain"}, {}, ("global", "badContent")),
    (META, {"Content-Type": "text/plain"}, {}, ("global", "badContent")),
    (META, {}, {"uploadType": "media"}, ("global", "invalidParameter")),
    (META, {}, {"part": "snippet,bogus"}, ("youtube.part", "unknownPart")),
])
def test_insert_validation(account: Account, meta: dict[str, Any], headers: dict[str, str],
                           params: dict[str, str], expected: tuple[str, str]) -> None:
    query = {"uploadType": "resumable", "part": "snippet,status", **params}
    sent = {**account.auth, "Content-Type": "application/json; charset=UTF-8",
            "X-Upload-Content-Type": "video/mp4", **headers}
    response = account.api.post(UPLOAD, params=query, json=meta, headers=sent)
    assert error_of(response) == (400, *expected)


def test_parts_not_requested_are_ignored(account: Account) -> None:
    response = insert(account, size=10, part="snippet")
    uri = response.headers["location"]
    video = put(account.api, uri, b"0123456789", 0, 10).json()
    assert video["snippet"]["title"] == META["snippet"]["title"]
    assert "status" not in video
    [row] = published(account.api, account.channel)
    assert row["containsSyntheticMedia"] is None and row["privacyStatus"] == "public"


# --- resumable sessions -------------------------------------------------------------------------

def test_chunked_upload_308_range_then_201(account: Account, payload: bytes,
                                           sandbox: Any) -> None:
    total = len(payload)
    uri = session(account, total)
    first = probe(account.api, uri, total)
    assert first.status_code == 308 and "range" not in first.headers  # nothing stored yet
    step = 2 * CHUNK_UNIT
    for start in range(0, total, step):
        response = put(account.api, uri, payload[start:start + step], start, total)
        if start + step < total:
            assert response.status_code == 308
            assert response.headers["range"] == f"bytes=0-{start + step - 1}"
    assert response.status_code == 201
    video = response.json()
    assert video["kind"] == "youtube#video" and len(video["id"]) == 11
    assert video["status"]["uploadStatus"] == "uploaded"
    assert video["status"]["containsSyntheticMedia"] is True
    assert video["status"]["selfDeclaredMadeForKids"] is False
    done = probe(account.api, uri, total)
    assert done.status_code == 200 and done.json()["id"] == video["id"]
    resent = put(account.api, uri, payload[4 * CHUNK_UNIT:], 4 * CHUNK_UNIT, total)
    assert resent.status_code == 200 and resent.json()["id"] == video["id"]
    [row] = published(account.api, account.channel)
    assert row["sha256"] == hashlib.sha256(payload).hexdigest() and row["size"] == total
    assert (row["id"], row["containsSyntheticMedia"], row["selfDeclaredMadeForKids"]) == \
        (video["id"], True, False)
    assert sandbox.journal("youtube")[-2]["body"]["size"] == total - 4 * CHUNK_UNIT


def test_chunk_rules(account: Account, payload: bytes) -> None:
    total = len(payload)
    uri = session(account, total)
    odd = put(account.api, uri, payload[:CHUNK_UNIT + 1], 0, total)
    assert error_of(odd) == (400, "global", "badContent")
    assert "262144" in odd.json()["error"]["message"]
    wrong_total = put(account.api, uri, payload[:CHUNK_UNIT], 0, total + 1)
    assert error_of(wrong_total) == (400, "global", "badContent")
    garbled = account.api.put(uri, content=payload[:CHUNK_UNIT],
                              headers={"Content-Range": "bytes 0-9"})
    assert error_of(garbled)[2] == "badContent"
    bad_type = put(account.api, uri, payload[:CHUNK_UNIT], 0, total,
                   **{"Content-Type": "image/png"})
    assert error_of(bad_type) == (400, "global", "badContent")
    assert probe(account.api, uri, total).status_code == 308
    assert "range" not in probe(account.api, uri, total).headers  # nothing was stored


def test_gap_is_refused_with_the_current_range_and_a_resend_adds_only_its_tail(
        account: Account, payload: bytes) -> None:
    total = len(payload)
    uri = session(account, total)
    assert put(account.api, uri, payload[:CHUNK_UNIT], 0, total).status_code == 308
    gap = put(account.api, uri, payload[2 * CHUNK_UNIT:3 * CHUNK_UNIT], 2 * CHUNK_UNIT, total)
    assert gap.status_code == 308 and gap.headers["range"] == f"bytes=0-{CHUNK_UNIT - 1}"
    # A resend of bytes 0..2U (its first half already stored) adds only the second half.
    overlap = put(account.api, uri, payload[:2 * CHUNK_UNIT], 0, total)
    assert overlap.headers["range"] == f"bytes=0-{2 * CHUNK_UNIT - 1}"
    old = put(account.api, uri, payload[:CHUNK_UNIT], 0, total)
    assert old.status_code == 308 and old.headers["range"] == f"bytes=0-{2 * CHUNK_UNIT - 1}"
    done = put(account.api, uri, payload[2 * CHUNK_UNIT:], 2 * CHUNK_UNIT, total)
    assert done.status_code == 201
    [row] = published(account.api, account.channel)
    assert row["sha256"] == hashlib.sha256(payload).hexdigest()


def test_unknown_total_until_the_last_chunk_and_single_request_upload(
        account: Account, payload: bytes) -> None:
    uri = session(account, len(payload) - 1000)  # X-Upload-Content-Length is authoritative
    assert error_of(put(account.api, uri, payload, 0, len(payload)))[0] == 400
    response = insert(account)  # no X-Upload-Content-Length: the last chunk says the total
    uri = response.headers["location"]
    assert put(account.api, uri, payload[:CHUNK_UNIT], 0, "*").status_code == 308
    assert put(account.api, uri, payload[CHUNK_UNIT:], CHUNK_UNIT,
               len(payload)).status_code == 201
    whole = session(account, 4)
    assert put(account.api, whole, b"abcd", None, 4).status_code == 201  # no Content-Range
    assert len(published(account.api, account.channel)) == 2


def test_unknown_and_expired_sessions_are_404(account: Account, payload: bytes) -> None:
    uri = session(account, len(payload))
    assert put(account.api, uri, payload[:CHUNK_UNIT], 0, len(payload)).status_code == 308
    control(account.api, "expire_session", session_uri=uri)
    for response in (probe(account.api, uri, len(payload)),
                     put(account.api, uri, payload[CHUNK_UNIT:], CHUNK_UNIT, len(payload))):
        assert error_of(response) == (404, "global", "notFound")
    unknown = uri.replace("upload_id=", "upload_id=zz")
    assert probe(account.api, unknown, 10).status_code == 404


def test_session_ttl_config_expires_sessions(api: httpx.Client, account: Account) -> None:
    uri = session(account, 10)
    control(api, "config", client_id=account.client_id, session_ttl=0)
    assert probe(api, uri, 10).status_code == 404
    control(api, "config", client_id=account.client_id, session_ttl=7 * 86400)
    assert probe(api, uri, 10).status_code == 308


# --- quota and caps ------------------------------------------------------------------------------

def test_classic_quota_insert_costs_1600_units(api: httpx.Client, account: Account) -> None:
    quota = control(api, "config", client_id=account.client_id, units_remaining=3300)
    assert quota["remaining"] == {"units": 3300} and quota["config"]["insert_units"] == 1600
    assert insert(account).status_code == 200
    assert insert(account).status_code == 200
    refused = insert(account)
    assert error_of(refused) == (403, "youtube.quota", "quotaExceeded")
    view = control(api, f"quota?client_id={account.client_id}", method="GET")
    assert view["remaining"] == {"units": 100}
    # Reads still fit (1 unit each) and are counted.
    ok = api.get("/youtube/v3/videos", params={"part": "id", "id": "abc"},
                 headers=account.auth)
    assert ok.status_code == 200 and ok.json()["items"] == []
    assert control(api, f"quota?client_id={account.client_id}", method="GET")[
        "remaining"] == {"units": 99}


def test_bucket_model_gives_inserts_their_own_bucket(api: httpx.Client,
                                                     account: Account) -> None:
    control(api, "config", client_id=account.client_id, quota_model="buckets",
            inserts_remaining=1)
    assert insert(account).status_code == 200
    assert error_of(insert(account)) == (403, "youtube.quota", "quotaExceeded")
    view = control(api, f"quota?client_id={account.client_id}", method="GET")
    assert view["used"] == {"units": 0, "inserts": 100}
    assert view["remaining"] == {"units": 10_000, "inserts": 0}


def test_quota_is_per_project_and_invalid_requests_cost_a_unit(api: httpx.Client) -> None:
    first = new_account(api)
    same_project = new_account(api, client_id=first.client_id)
    other_project = new_account(api)
    control(api, "config", client_id=first.client_id, units_remaining=1601)
    assert insert(first).status_code == 200
    assert error_of(insert(same_project))[2] == "quotaExceeded"
    assert insert(other_project).status_code == 200
    assert error_of(insert(same_project, {"snippet": {}}))[2] == "invalidTitle"
    assert control(api, f"quota?client_id={first.client_id}", method="GET")[
        "remaining"] == {"units": 0}


def test_channel_daily_upload_cap(api: httpx.Client, account: Account) -> None:
    control(api, "config", client_id=account.client_id, channel_uploads_per_day=1)
    assert insert(account).status_code == 200
    assert error_of(insert(account)) == (400, "youtube.video", "uploadLimitExceeded")


def test_unaudited_projects_upload_private(api: httpx.Client, account: Account) -> None:
    control(api, "config", client_id=account.client_id, audited=False)
    video = put(api, session(account, 3), b"abc", 0, 3).json()
    assert video["status"]["privacyStatus"] == "private"


def test_control_config_is_validated(api: httpx.Client) -> None:
    for body in ({"quota_model": "new"}, {"units_per_day": -1}, {"bogus": 1},
                 {"units_remaining": 5}):
        assert api.post("/_control/config", json=body).status_code == 400


# --- reads ---------------------------------------------------------------------------------------

def upload_small(acc: Account, title: str, privacy: str = "public") -> str:
    meta = {"snippet": {"title": title},
            "status": {"privacyStatus": privacy, "containsSyntheticMedia": True,
                       "selfDeclaredMadeForKids": False}}
    return put(acc.api, session(acc, 5, meta), b"video", 0, 5).json()["id"]


def test_videos_list_parts_statistics_and_privacy(api: httpx.Client, account: Account) -> None:
    public_id = upload_small(account, "public one")
    private_id = upload_small(account, "private one", "private")
    params = {"part": "snippet,status,statistics", "id": f"{public_id},{private_id},nope"}
    items = api.get("/youtube/v3/videos", params=params, headers=account.auth).json()["items"]
    assert [i["id"] for i in items] == [public_id, private_id]
    assert items[0]["status"]["uploadStatus"] == "processed"
    assert all(isinstance(v, str) for v in items[0]["statistics"].values())
    assert set(items[0]["statistics"]) == {"viewCount", "likeCount", "favoriteCount",
                                           "commentCount"}
    stranger = new_account(api)
    seen = api.get("/youtube/v3/videos", params=params, headers=stranger.auth).json()["items"]
    assert [i["id"] for i in seen] == [public_id]
    only_id = api.get("/youtube/v3/videos", params={"part": "id", "id": public_id},
                      headers=account.auth).json()["items"][0]
    assert set(only_id) == {"kind", "etag", "id"}
    too_many = api.get("/youtube/v3/videos", params={"part": "id", "id": ",".join(["a"] * 51)},
                       headers=account.auth)
    assert error_of(too_many)[0] == 400
    assert error_of(api.get("/youtube/v3/videos", params={"id": public_id},
                            headers=account.auth))[0] == 400


def test_uploads_playlist_lists_own_uploads_newest_first(api: httpx.Client,
                                                         account: Account) -> None:
    ids = [upload_small(account, f"clip {n} #wg-{n}") for n in range(3)]
    channels = api.get("/youtube/v3/channels", params={"part": "contentDetails,statistics",
                                                       "mine": "true"},
                       headers=account.auth).json()["items"]
    uploads = channels[0]["contentDetails"]["relatedPlaylists"]["uploads"]
    assert uploads == uploads_playlist(account.channel)
    assert channels[0]["statistics"]["videoCount"] == "3"
    params = {"part": "snippet,contentDetails", "playlistId": uploads, "maxResults": 2}
    page = api.get("/youtube/v3/playlistItems", params=params, headers=account.auth).json()
    assert [i["contentDetails"]["videoId"] for i in page["items"]] == ids[:0:-1]
    assert page["pageInfo"] == {"totalResults": 3, "resultsPerPage": 2}
    assert page["items"][0]["snippet"]["title"] == "clip 2 #wg-2"
    rest = api.get("/youtube/v3/playlistItems", headers=account.auth,
                   params={**params, "pageToken": page["nextPageToken"]}).json()
    assert [i["contentDetails"]["videoId"] for i in rest["items"]] == ids[:1]
    assert "nextPageToken" not in rest
    bad_token = api.get("/youtube/v3/playlistItems", headers=account.auth,
                        params={**params, "pageToken": "!!"})
    assert error_of(bad_token)[2] == "invalidPageToken"
    missing = api.get("/youtube/v3/playlistItems", headers=account.auth,
                      params={**params, "playlistId": "UUnobodyxxxxxxxxxxxxxxxx"})
    assert error_of(missing) == (404, "youtube.playlistItem", "playlistNotFound")


def test_next_uploads_fail_processing(api: httpx.Client, account: Account) -> None:
    control(api, "next_uploads", outcome="failed", reason="codec", account=account.channel)
    video_id = upload_small(account, "doomed")
    item = api.get("/youtube/v3/videos", params={"part": "status", "id": video_id},
                   headers=account.auth).json()["items"][0]
    assert item["status"]["uploadStatus"] == "failed"
    assert item["status"]["failureReason"] == "codec"
    assert published(api, account.channel)[0]["uploadStatus"] == "failed"


# --- faults ---------------------------------------------------------------------------------------

def test_injected_faults_use_googles_envelope(api: httpx.Client, account: Account,
                                              sandbox: Any) -> None:
    sandbox.add_fault(system="youtube", route="/youtube/v3/*", action="status", status=503,
                      times=1)
    response = api.get("/youtube/v3/videos", params={"part": "id", "id": "x"},
                       headers=account.auth)
    assert error_of(response) == (503, "global", "backendError")


def test_chunk_faults_target_one_chunk(account: Account, payload: bytes) -> None:
    total = len(payload)
    uri = session(account, total)
    upload_id = httpx.URL(uri).params["upload_id"]
    control(account.api, "chunk_faults", offset=CHUNK_UNIT, action="status", status=503,
            phase="after", upload_id=upload_id)
    control(account.api, "chunk_faults", offset=2 * CHUNK_UNIT, action="drop",
            phase="before", upload_id=upload_id)
    assert put(account.api, uri, payload[:CHUNK_UNIT], 0, total).status_code == 308
    failed = put(account.api, uri, payload[CHUNK_UNIT:2 * CHUNK_UNIT], CHUNK_UNIT, total)
    assert failed.status_code == 503
    # phase "after": the chunk was stored although the answer was an error
    assert probe(account.api, uri, total).headers["range"] == f"bytes=0-{2 * CHUNK_UNIT - 1}"
    with pytest.raises(httpx.TransportError):  # reset or closed, depending on timing
        put(account.api, uri, payload[2 * CHUNK_UNIT:3 * CHUNK_UNIT], 2 * CHUNK_UNIT, total)
    assert probe(account.api, uri, total).headers["range"] == f"bytes=0-{2 * CHUNK_UNIT - 1}"
    assert control(account.api, "chunk_faults", method="GET")["faults"] == []


def test_a_partial_upload_survives_a_restart(tmp_path: Path, payload: bytes) -> None:
    total = len(payload)
    with SandboxServer(state_dir=tmp_path, seed=5) as server, httpx.Client(
            base_url=server.url + "/youtube") as api:
        acc = new_account(api)
        uri = session(acc, total)
        assert put(api, uri, payload[:CHUNK_UNIT], 0, total).status_code == 308
        upload_id = httpx.URL(uri).params["upload_id"]
    with SandboxServer(state_dir=tmp_path, seed=5) as server, httpx.Client(
            base_url=server.url + "/youtube") as api:
        moved = f"{server.url}/youtube{UPLOAD}?uploadType=resumable&upload_id={upload_id}"
        assert probe(api, moved, total).headers["range"] == f"bytes=0-{CHUNK_UNIT - 1}"
        done = put(api, moved, payload[CHUNK_UNIT:], CHUNK_UNIT, total)
        assert done.status_code == 201
        [row] = published(api, acc.channel)
        assert row["sha256"] == hashlib.sha256(payload).hexdigest()
