"""resources.instagram against the sandbox over real HTTP: the Reels flow from a URL and by
resumable upload (with resumes), container ERROR/EXPIRED, the publishing limit, token
expiry and refresh, a lost publish answer reconciled through recent media, error
classification and the AI-label rule."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_test_server import Reply, ScriptedServer

from resources.http import (
    AuthError,
    Kind,
    PermanentError,
    RateLimited,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
)
from resources.instagram import (
    API_VERSION,
    ContainerCode,
    InstagramClient,
    InstagramResource,
    MissingDisclosure,
    PublishingLimitReached,
    Quota,
    classify,
    graph_codes,
    lookup_user,
    refresh_token,
)
from sandbox.systems.instagram import render_reel
from waifugen_assets.core.config import get_settings

V = API_VERSION
LABEL = "AI-generated virtual creator. #AIgenerated"


@pytest.fixture(scope="module")
def reel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_reel(tmp_path_factory.mktemp("ig-client") / "reel.mp4", seconds=3.5)


@pytest.fixture(scope="module")
def files() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def video_url(files: ScriptedServer, reel_file: Path) -> str:
    return files.url(files.script(Reply(200, body=reel_file.read_bytes(),
                                        headers={"content-type": "video/mp4"})))


@pytest.fixture
def token() -> dict[str, str]:
    """The current token of a fresh sandbox account; tests swap in refreshed ones."""
    return {"value": f"IGAAsandbox_{uuid.uuid4().hex[:10]}"}


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(sandbox: Any, token: dict[str, str], sleeps: list[float], *,
                attempts: int = 3, chunk_bytes: int = 8192) -> InstagramClient:
    uid = lookup_user(sandbox.url + "/instagram", token["value"]).id
    retry = RetryPolicy(max_attempts=attempts, random=lambda: 0.5, sleep=sleeps.append)
    return InstagramClient(lambda: token["value"], uid, base_url=sandbox.url + "/instagram",
                           rupload_base=sandbox.url + "/instagram/rupload", retry=retry,
                           chunk_bytes=chunk_bytes)


@pytest.fixture
def client(sandbox: Any, token: dict[str, str],
           sleeps: list[float]) -> Iterator[InstagramClient]:
    with make_client(sandbox, token, sleeps) as c:
        yield c


def control(sandbox: Any, path: str, method: str = "POST", **body: Any) -> Any:
    response = httpx.request(method, f"{sandbox.url}/instagram/_control/{path}",
                             json=body if method == "POST" else None,
                             params=None if method == "POST" else body)
    assert response.status_code == 200, response.text
    return response.json()


def published(sandbox: Any, client: InstagramClient) -> list[dict[str, Any]]:
    return control(sandbox, "published", "GET", ig_user_id=client.ig_user_id)


def mark(sandbox: Any) -> int:
    return max((e["id"] for e in sandbox.journal()), default=0)


def calls(sandbox: Any, since: int, suffix: str, method: str = "POST") -> list[dict[str, Any]]:
    return [e for e in sandbox.journal("instagram", since)
            if e["path"].endswith(suffix) and e["method"] == method]


def until_done(client: InstagramClient, container_id: str) -> list[ContainerCode]:
    seen = []
    for _ in range(10):
        seen.append(client.container_status(container_id).code)
        if seen[-1] is not ContainerCode.IN_PROGRESS:
            return seen
    raise AssertionError(f"container stayed IN_PROGRESS: {seen}")


def ready(client: InstagramClient, video_url: str, caption: str = LABEL) -> str:
    container = client.create_reel_container(caption, video_url=video_url)
    assert until_done(client, container.id) == [ContainerCode.IN_PROGRESS,
                                                ContainerCode.FINISHED]
    return container.id


def test_url_pulled_reel_is_published_with_its_permalink(
        sandbox: Any, client: InstagramClient, video_url: str, reel_file: Path) -> None:
    assert client.publishing_limit() == Quota(used=0, total=50, window_s=86400)
    container = client.create_reel_container(f"Ramen in the rain {LABEL}",
                                             video_url=video_url, share_to_feed=False,
                                             thumb_offset_ms=1200)
    assert container.upload_uri is None
    assert until_done(client, container.id) == [ContainerCode.IN_PROGRESS,
                                                ContainerCode.FINISHED]
    since = mark(sandbox)
    media_id = client.publish(container.id)
    status = client.container_status(container.id)
    assert (status.code, status.subcode, status.terminal) == (ContainerCode.PUBLISHED, None,
                                                              True)
    media = client.media(media_id)
    assert media.id == media_id
    assert media.permalink and media.permalink.startswith("https://www.instagram.com/reel/")
    assert client.publishing_limit().used == 1

    [sent] = calls(sandbox, since, "/media_publish")
    assert sent["body"] == {"creation_id": container.id}
    assert sent["headers"]["authorization"] != f"Bearer {client.access_token()}"  # masked
    assert "access_token" not in sent["query"]
    [post] = published(sandbox, client)
    assert (post["id"], post["container_id"], post["has_ai_label"]) == (
        media_id, container.id, True)
    assert post["video_sha256"] == hashlib.sha256(reel_file.read_bytes()).hexdigest()


def test_resumable_upload_resumes_from_the_server_offset(
        sandbox: Any, token: dict[str, str], sleeps: list[float], reel_file: Path) -> None:
    data = reel_file.read_bytes()
    # One attempt per request: the client itself must resume, from what the server kept.
    with make_client(sandbox, token, sleeps, attempts=1, chunk_bytes=8192) as client:
        container = client.create_reel_container(LABEL, resumable=True)
        assert container.upload_uri and container.upload_uri.endswith(
            f"/rupload/ig-api-upload/{V}/{container.id}")
        control(sandbox, "next_uploads", container_id=container.id, cut_after=3000)
        since = mark(sandbox)
        client.upload_resumable(container.upload_uri, reel_file)
        uploads = calls(sandbox, since, f"/{container.id}")
        offsets = [int(e["headers"]["offset"]) for e in uploads]
        assert offsets == [0, *range(3000, len(data), 8192)]
        assert uploads[0]["status"] is None  # the cut connection
        assert len(calls(sandbox, since, f"/{container.id}", "GET")) == 2  # start, resume
        record = {c["id"]: c for c in control(sandbox, "containers", "GET",
                                              ig_user_id=client.ig_user_id)}[container.id]
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert until_done(client, container.id)[-1] is ContainerCode.FINISHED
        # Calling it again (e.g. after a crash) finds everything there and sends nothing.
        again = mark(sandbox)
        client.upload_resumable(container.upload_uri, reel_file)
        assert calls(sandbox, again, f"/{container.id}") == []


def test_dropped_and_truncated_chunks_are_resent_by_the_http_layer(
        sandbox: Any, token: dict[str, str], sleeps: list[float], reel_file: Path) -> None:
    data = reel_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    for action, chunk_bytes in (("drop", 8192), ("truncate", len(data))):
        # drop: the server never saw the chunk; truncate: it stored the (only, last) chunk
        # and the answer was cut, so the resend finds the upload complete.
        with make_client(sandbox, token, sleeps, chunk_bytes=chunk_bytes) as client:
            container = client.create_reel_container(LABEL, resumable=True)
            assert container.upload_uri
            route = f"/rupload/ig-api-upload/{V}/{container.id}"
            sandbox.add_fault(system="instagram", route=route, method="POST", action=action,
                              times=1)
            since = mark(sandbox)
            client.upload_resumable(container.upload_uri, reel_file)
            offsets = [int(e["headers"]["offset"]) for e in calls(sandbox, since, route)]
            assert offsets == [0, *range(0, len(data), chunk_bytes)], action
            records = control(sandbox, "containers", "GET", ig_user_id=client.ig_user_id)
            assert {c["id"]: c for c in records}[container.id]["sha256"] == sha
    assert sleeps == [0.25, 0.25]  # the layer backed off before each resend


def test_expired_container_is_reported(sandbox: Any, client: InstagramClient,
                                       video_url: str) -> None:
    container_id = ready(client, video_url)
    control(sandbox, "age", container_id=container_id, seconds=86400)
    status = client.container_status(container_id)
    assert (status.code, status.retryable) == (ContainerCode.EXPIRED, True)
    with pytest.raises(PermanentError) as refused:
        client.publish(container_id)
    assert graph_codes(refused.value) == (9007, 2207020)
    assert not isinstance(refused.value, PublishingLimitReached)
    assert published(sandbox, client) == []


def test_error_containers_carry_their_subcode(sandbox: Any, client: InstagramClient,
                                              video_url: str) -> None:
    control(sandbox, "next_containers", outcome="error", subcode=2207082,
            ig_user_id=client.ig_user_id)
    failed = client.create_reel_container(LABEL, video_url=video_url)
    assert until_done(client, failed.id)[-1] is ContainerCode.ERROR
    status = client.container_status(failed.id)
    assert (status.subcode, status.retryable) == (2207082, False)
    assert "2207082" in status.message

    unreachable = client.create_reel_container(LABEL, video_url="https://cdn.example.com/r.mp4")
    status = client.container_status(unreachable.id)
    assert (status.code, status.subcode, status.retryable) == (ContainerCode.ERROR, 2207052,
                                                               True)
    with pytest.raises(RetryableError) as refused:  # fetch failures: a new container may work
        client.publish(unreachable.id)
    assert graph_codes(refused.value) == (9007, 2207052)


def test_publishing_limit_read_then_exceeded_defers(sandbox: Any, client: InstagramClient,
                                                     video_url: str) -> None:
    control(sandbox, "quota", ig_user_id=client.ig_user_id, quota_total=1)
    first, second = ready(client, video_url), ready(client, video_url)
    client.publish(first)
    quota = client.publishing_limit()
    assert (quota, quota.remaining) == (Quota(used=1, total=1, window_s=86400), 0)
    with pytest.raises(PublishingLimitReached) as refused:
        client.publish(second)
    error = refused.value
    assert isinstance(error, PermanentError) and error.deferrable is True
    assert graph_codes(error) == (9, 2207042)
    assert "maximum number of posts" in error.reason
    assert client.container_status(second).code is ContainerCode.FINISHED


def test_not_ready_container_is_a_retryable_refusal(sandbox: Any, client: InstagramClient,
                                                    video_url: str) -> None:
    container = client.create_reel_container(LABEL, video_url=video_url)
    since = mark(sandbox)
    with pytest.raises(RetryableError) as refused:
        client.publish(container.id)
    assert graph_codes(refused.value) == (9007, 2207027)
    assert len(calls(sandbox, since, "/media_publish")) == 1  # refused, and not resent


def test_expired_token_then_refresh(sandbox: Any, client: InstagramClient,
                                    token: dict[str, str]) -> None:
    old = token["value"]
    control(sandbox, "expire_token", access_token=old)
    with pytest.raises(AuthError) as denied:
        client.publishing_limit()
    assert graph_codes(denied.value) == (190, 463)
    assert old not in str(denied.value)
    fresh = client.refresh_token()
    assert fresh.access_token != old and fresh.refresh_token == fresh.access_token
    assert fresh.expires_in == fresh.refresh_expires_in == 60 * 86400
    token["value"] = fresh.access_token  # the caller stores it; the client reads it per call
    assert client.publishing_limit().used == 0

    rotated = refresh_token(sandbox.url + "/instagram", "app-id", "app-secret",
                            fresh.access_token)
    assert rotated.access_token not in (old, fresh.access_token)
    control(sandbox, "expire_token", access_token=rotated.access_token, refreshable=False)
    with pytest.raises(AuthError):
        refresh_token(sandbox.url + "/instagram", None, None, rotated.access_token)


def test_lost_publish_answer_is_reconciled_by_caption_marker(
        sandbox: Any, client: InstagramClient, video_url: str) -> None:
    marker = f"wg-{uuid.uuid4().hex[:8]}"
    container_id = ready(client, video_url, caption=f"Night market {marker} {LABEL}")
    client.publish(ready(client, video_url))  # another post, so the search must choose
    sandbox.add_fault(system="instagram", route=f"/{V}/{client.ig_user_id}/media_publish",
                      action="drop", phase="after", times=1)
    since = mark(sandbox)
    with pytest.raises(UnknownOutcome):
        client.publish(container_id)
    assert len(calls(sandbox, since, "/media_publish")) == 1  # never resent

    assert client.container_status(container_id).code is ContainerCode.PUBLISHED
    found = client.find_media(marker)
    assert found is not None and found.caption and marker in found.caption
    assert found.permalink and client.media(found.id).permalink == found.permalink
    assert client.find_media("wg-not-there") is None
    mine = [p for p in published(sandbox, client) if p["container_id"] == container_id]
    assert [p["id"] for p in mine] == [found.id]
    assert client.recent_media(5)[0].id == found.id


def test_rate_limits_are_classified_and_honoured(sandbox: Any, client: InstagramClient,
                                                 sleeps: list[float], video_url: str) -> None:
    control(sandbox, "next_errors", code=613, route="*/content_publishing_limit",
            regain_minutes=5, ig_user_id=client.ig_user_id)
    since = mark(sandbox)
    with pytest.raises(RateLimited) as limited:
        client.publishing_limit()
    assert limited.value.retry_after == 300.0  # too long to sleep through: the caller defers
    assert len(calls(sandbox, since, "/content_publishing_limit", "GET")) == 1

    container_id = ready(client, video_url)
    sandbox.add_fault(system="instagram", route=f"/{V}/{container_id}", action="rate_limit",
                      retry_after=2, times=1)
    assert client.container_status(container_id).code is ContainerCode.FINISHED
    assert sleeps == [2.0]

    # A refused POST (code 4, nothing done) is safe to resend; a 503 is not.
    control(sandbox, "next_errors", code=4, route="*/media_publish",
            ig_user_id=client.ig_user_id)
    since = mark(sandbox)
    media_id = client.publish(container_id)
    assert len(calls(sandbox, since, "/media_publish")) == 2
    other = ready(client, video_url)
    sandbox.add_fault(system="instagram", route="*/media_publish", action="status",
                      status=503, times=1)
    since = mark(sandbox)
    with pytest.raises(RetryableError):
        client.publish(other)
    assert len(calls(sandbox, since, "/media_publish")) == 1
    assert [p["id"] for p in published(sandbox, client)] == [media_id]


def test_caption_rules_are_checked_before_sending(sandbox: Any, client: InstagramClient,
                                                  video_url: str) -> None:
    since = mark(sandbox)
    with pytest.raises(MissingDisclosure):
        client.create_reel_container("A night walk #tokyo", video_url=video_url)
    with pytest.raises(ValueError, match="2200"):
        client.create_reel_container(f"{'x' * 2200} {LABEL}", video_url=video_url)
    with pytest.raises(ValueError, match="exactly one"):
        client.create_reel_container(LABEL, video_url=video_url, resumable=True)
    assert calls(sandbox, since, "/media") == []


def graph_response(status: int, error: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error}, headers=headers,
                          request=httpx.Request("GET", "https://graph.instagram.com/x"))


@pytest.mark.parametrize(("status", "error", "kind"), [
    (400, {"code": 190, "error_subcode": 463, "message": "expired"}, Kind.AUTH),
    (400, {"code": 4, "message": "app limit"}, Kind.RATE_LIMITED),
    (400, {"code": 32, "message": "page limit"}, Kind.RATE_LIMITED),
    (400, {"code": 17, "message": "user limit"}, Kind.RATE_LIMITED),
    (400, {"code": 613, "message": "calls limit"}, Kind.RATE_LIMITED),
    (400, {"code": 9, "error_subcode": 2207042, "message": "max posts"}, Kind.PERMANENT),
    (400, {"code": 9004, "error_subcode": 2207052, "message": "fetch"}, Kind.RETRYABLE),
    (400, {"code": -2, "error_subcode": 2207003, "message": "timeout"}, Kind.RETRYABLE),
    (500, {"code": 2, "message": "unavailable", "is_transient": True}, Kind.RETRYABLE),
    (400, {"code": 100, "error_subcode": 2207026, "message": "format"}, Kind.PERMANENT),
])
def test_graph_errors_are_classified(status: int, error: dict[str, Any], kind: Kind) -> None:
    outcome = classify(graph_response(status, error))
    assert outcome is not None and outcome.kind is kind
    assert outcome.reason.startswith(f"code {error['code']}")


def test_rupload_errors_and_business_use_case_wait_are_classified() -> None:
    request = httpx.Request("POST", "https://rupload.facebook.com/ig-api-upload/v25.0/1")

    def rupload(status: int, retriable: bool) -> Kind | None:
        response = httpx.Response(status, request=request, json={"debug_info": {
            "retriable": retriable, "type": "ProcessingFailedError", "message": "x"}})
        outcome = classify(response)
        return outcome.kind if outcome else None

    assert rupload(400, True) is Kind.RETRYABLE
    assert rupload(400, False) is Kind.PERMANENT
    assert rupload(401, False) is Kind.AUTH
    usage = '{"1784": [{"type": "instagram", "estimated_time_to_regain_access": 2}]}'
    limited = classify(graph_response(400, {"code": 80002, "message": "BUC"},
                                      **{"X-Business-Use-Case-Usage": usage}))
    assert limited is not None and limited.retry_after == 120.0


def test_resource_defaults_to_the_sandbox() -> None:
    base, rupload = InstagramResource().resolved_urls()
    sandbox = get_settings().sandbox_service("instagram")
    assert (base, rupload) == (sandbox, f"{sandbox}/rupload")
    custom = InstagramResource(base_url="https://graph.facebook.com/",
                               rupload_base="https://rupload.facebook.com")
    assert custom.resolved_urls() == ("https://graph.facebook.com",
                                      "https://rupload.facebook.com")
