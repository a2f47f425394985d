"""resources.tiktok against the sandbox over real HTTP: the chunk plan, the publish flow,
exactly-once rules for init, retried chunk PUTs and status reads, rate limits, quota errors
that defer, token expiry and rotating refresh tokens, accepted-then-FAILED posts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.http import (
    AuthError,
    Kind,
    MemoryRateLimitStore,
    Outcome,
    RateLimited,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
)
from resources.tiktok import (
    DEFAULT_CHUNK_SIZE,
    INIT_PATH,
    MAX_CHUNK,
    MAX_CHUNKS,
    MAX_FINAL_CHUNK,
    MIN_CHUNK,
    STATUS_PATH,
    PrivacyLevel,
    PublishState,
    PublishStatus,
    TikTokClient,
    TikTokError,
    TikTokQuotaError,
    TikTokResource,
    chunk_plan,
    classify,
    refresh_token,
    tiktok_limits,
)
from sandbox.media import MediaCache, VideoSpec
from sandbox.systems.tiktok import chunk_rule_violation
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenSet

PUBLIC = PrivacyLevel.PUBLIC_TO_EVERYONE
UPLOAD_ROUTE = "/video/"


# --- the chunk plan (pure) ---------------------------------------------------------------------

def test_the_guides_example_needs_no_file() -> None:
    plan = chunk_plan(50_000_123)
    assert len(plan) == 5
    assert plan[0] == (0, DEFAULT_CHUNK_SIZE - 1)
    assert plan[-1] == (40_000_000, 50_000_122)
    assert plan[-1][1] - plan[-1][0] + 1 == 10_000_123


@pytest.mark.parametrize(("size", "count"), [
    (1, 1), (MIN_CHUNK - 1, 1), (MIN_CHUNK, 1), (DEFAULT_CHUNK_SIZE * 2 - 1, 1),
    (MAX_CHUNK, 6), (MAX_CHUNK + 1, 6), (MIN_CHUNK * 1000 * 3, 1000),
])
def test_plan_examples(size: int, count: int) -> None:
    assert len(chunk_plan(size)) == count
    # A preferred chunk of 64 MB still splits a 64 MB + 1 video in two.
    assert len(chunk_plan(MAX_CHUNK + 1, MAX_CHUNK)) == 2


@settings(max_examples=500, deadline=None)
@given(size=st.one_of(st.integers(1, 200 * 1024 * 1024), st.integers(1, MAX_CHUNK * MAX_CHUNKS)),
       preferred=st.integers(1, 200 * 1024 * 1024))
def test_chunk_plan_follows_the_rules(size: int, preferred: int) -> None:
    plan = chunk_plan(size, preferred)
    lengths = [last - first + 1 for first, last in plan]
    chunk_size, count = lengths[0], len(plan)
    # Contiguous, in order, covering the whole file.
    assert plan[0][0] == 0 and plan[-1][1] == size - 1
    assert all(a[1] + 1 == b[0] for a, b in pairwise(plan))
    assert 1 <= count <= MAX_CHUNKS
    if size < MIN_CHUNK:
        assert plan == [(0, size - 1)]
    else:
        assert MIN_CHUNK <= chunk_size <= MAX_CHUNK
        assert count == size // chunk_size
        assert all(n == chunk_size for n in lengths[:-1])
        assert chunk_size <= lengths[-1] <= MAX_FINAL_CHUNK
        if size > MAX_CHUNK:
            assert count >= 2
    # And the sandbox's own statement of the rules accepts it.
    assert chunk_rule_violation(size, chunk_size, count) is None


def test_the_sandbox_accepts_every_plan_the_client_makes(sandbox: Any, account: str) -> None:
    control(sandbox, "config", account=account, init_per_minute=100, daily_cap=100)
    sizes = [1, MIN_CHUNK - 1, MIN_CHUNK, 50_000_123, MAX_CHUNK, MAX_CHUNK + 1,
             MAX_FINAL_CHUNK - 1, 5_000_000_000, MAX_CHUNK * MAX_CHUNKS]
    since = mark(sandbox)
    with TikTokClient(lambda: f"act.sandbox.{account}", base_url=sandbox.url + "/tiktok",
                      limits=own_limits(inits=100)) as eager:
        plans = [eager.init_direct_post("plan", size, privacy_level=PUBLIC) for size in sizes]
    assert [p.video_size for p in plans] == sizes
    sent = [e["body"]["source_info"] for e in calls(sandbox, since, INIT_PATH)]
    assert [(s["chunk_size"], s["total_chunk_count"]) for s in sent] == [
        (p.chunk_size, p.total_chunk_count) for p in plans]
    assert [p.total_chunk_count for p in plans][-4:] == [6, 13, 500, 1000]


def test_impossible_plans_raise() -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        chunk_plan(0)
    with pytest.raises(ValueError, match="over 64 MB"):
        chunk_plan(MAX_CHUNK * 1001)


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real small MP4 (one chunk) and a 16.5 MB valid MP4 (a `free` box pads it; three
    5 MB chunks), written once per session."""
    root = tmp_path_factory.mktemp("tiktok-client-media")
    small = MediaCache(root / "cache").path(VideoSpec("tiktok-client", 3.0))
    big = root / "big.mp4"
    pad = 16_500_000 - small.stat().st_size
    big.write_bytes(small.read_bytes() + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8))
    return {"small": small, "big": big}


@pytest.fixture
def account() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token(account: str) -> list[str]:
    """The current access token, in a list so a test can swap it (as a refresh would)."""
    return [f"act.sandbox.{account}"]


@pytest.fixture
def sleeps() -> list[float]:
    return []


def own_limits(**kwargs: Any) -> list[Any]:
    return tiktok_limits(store=MemoryRateLimitStore(), **kwargs)


@pytest.fixture
def client(sandbox: Any, token: list[str], sleeps: list[float]) -> Iterator[TikTokClient]:
    retry = RetryPolicy(random=lambda: 0.5, sleep=sleeps.append)
    with TikTokClient(lambda: token[0], base_url=sandbox.url + "/tiktok", retry=retry,
                      limits=own_limits(max_wait=0)) as c:
        yield c


def control(sandbox: Any, path: str, method: str = "POST", **body: Any) -> Any:
    response = httpx.request(method, f"{sandbox.url}/tiktok/_control/{path}",
                             json=body if method == "POST" else None,
                             params=body if method == "GET" else None)
    assert response.status_code == 200, response.text
    return response.json()


def published(sandbox: Any, account: str) -> list[dict[str, Any]]:
    return control(sandbox, "published", "GET", account=account)


def mark(sandbox: Any) -> int:
    return max((e["id"] for e in sandbox.journal()), default=0)


def calls(sandbox: Any, since: int, path: str, method: str = "POST") -> list[dict[str, Any]]:
    return [e for e in sandbox.journal("tiktok", since)
            if e["path"] == path and e["method"] == method]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def until_terminal(client: TikTokClient, publish_id: str) -> list[PublishStatus]:
    seen = []
    for _ in range(10):
        seen.append(client.status(publish_id))
        if seen[-1].terminal:
            return seen
    raise AssertionError(f"never terminal: {seen}")


def publish(client: TikTokClient, path: Path, **post: Any) -> str:
    init = client.init_direct_post("wg-test #aigenerated", path.stat().st_size,
                                   privacy_level=post.pop("privacy_level", PUBLIC), **post)
    client.upload(init.upload_url, path, init.chunks)
    return init.publish_id


# --- the publish flow --------------------------------------------------------------------------

def test_single_chunk_publish(sandbox: Any, client: TikTokClient, account: str,
                              media: dict[str, Path]) -> None:
    info = client.creator_info()
    assert PUBLIC in info.privacy_level_options and info.max_video_post_duration_sec == 600
    size = media["small"].stat().st_size
    init = client.init_direct_post("ramen night #ai", size, privacy_level=PUBLIC)
    assert init.publish_id.startswith("v_pub_file~v2.")
    assert (init.chunk_size, init.total_chunk_count, init.video_size) == (size, 1, size)
    before = client.status(init.publish_id)
    assert (before.status, before.uploaded_bytes, before.terminal) == (
        PublishState.PROCESSING_UPLOAD, 0, False)
    since = mark(sandbox)
    client.upload(init.upload_url, media["small"], init.chunks)
    [chunk] = calls(sandbox, since, UPLOAD_ROUTE, "PUT")
    assert chunk["status"] == 201 and "authorization" not in chunk["headers"]
    assert chunk["headers"]["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert chunk["query"]["upload_token"] == "***"  # the journal masks it
    seen = until_terminal(client, init.publish_id)
    assert [s.status for s in seen] == ["PROCESSING_UPLOAD", "PUBLISH_COMPLETE"]
    done = seen[-1]
    assert done.published and not done.failed and done.fail_reason is None
    assert client.status(init.publish_id) == done  # a read: asking again changes nothing
    [post] = published(sandbox, account)
    assert done.post_ids == (post["post_id"],)
    assert post["video_sha256"] == sha(media["small"])
    assert (post["is_aigc"], post["title"]) == (True, "ramen night #ai")


def test_multi_chunk_publish_streams_each_chunk(sandbox: Any, client: TikTokClient,
                                                account: str, media: dict[str, Path]) -> None:
    size = media["big"].stat().st_size
    init = client.init_direct_post("long one", size, privacy_level=PUBLIC,
                                   chunk_size=MIN_CHUNK)
    assert init.total_chunk_count == 3 and init.chunk_size == MIN_CHUNK
    since = mark(sandbox)
    client.upload(init.upload_url, media["big"], init.chunks)
    puts = calls(sandbox, since, UPLOAD_ROUTE, "PUT")
    assert [p["status"] for p in puts] == [206, 206, 201]
    assert [p["headers"]["content-range"] for p in puts] == [
        f"bytes {first}-{last}/{size}" for first, last in init.chunks]
    assert [p["body"]["size"] for p in puts] == [MIN_CHUNK, MIN_CHUNK, size - 2 * MIN_CHUNK]
    assert until_terminal(client, init.publish_id)[-1].published
    [post] = published(sandbox, account)
    assert post["video_sha256"] == sha(media["big"]) and post["video_size"] == size


def test_is_aigc_is_recorded(sandbox: Any, client: TikTokClient, account: str,
                             media: dict[str, Path]) -> None:
    since = mark(sandbox)
    disclosed = publish(client, media["small"])
    undisclosed = publish(client, media["small"], is_aigc=False,
                          privacy_level=PrivacyLevel.SELF_ONLY)
    flags = {p["publish_id"]: p["is_aigc"] for p in published(sandbox, account)}
    assert flags == {disclosed: True, undisclosed: False}
    sent = [e["body"]["post_info"] for e in calls(sandbox, since, INIT_PATH)]
    assert [(p["is_aigc"], p["privacy_level"]) for p in sent] == [(True, "PUBLIC_TO_EVERYONE"),
                                                                  (False, "SELF_ONLY")]


def test_accepted_then_failed_is_visible_through_status(sandbox: Any, client: TikTokClient,
                                                        account: str,
                                                        media: dict[str, Path]) -> None:
    control(sandbox, "next_posts", account=account, fail_reason="spam_risk_text")
    control(sandbox, "next_posts", account=account, fail_reason="spam_risk_too_many_posts")
    rejected = until_terminal(client, publish(client, media["small"]))[-1]
    assert rejected.failed and rejected.fail_reason == "spam_risk_text"
    assert not rejected.deferrable and not rejected.published
    capped = until_terminal(client, publish(client, media["small"]))[-1]
    assert capped.failed and capped.deferrable
    assert published(sandbox, account) == []


# --- exactly once ------------------------------------------------------------------------------

def test_lost_init_answer_is_unknown_and_sent_once(sandbox: Any, client: TikTokClient,
                                                   account: str,
                                                   media: dict[str, Path]) -> None:
    size = media["small"].stat().st_size
    sandbox.add_fault(system="tiktok", route=INIT_PATH, action="drop", phase="after", times=1)
    since = mark(sandbox)
    with pytest.raises(UnknownOutcome):
        client.init_direct_post("lost", size, privacy_level=PUBLIC)
    assert len(calls(sandbox, since, INIT_PATH)) == 1  # never resent
    [orphan] = control(sandbox, "posts", "GET", account=account)
    assert orphan["uploaded_bytes"] == 0  # TikTok acted, but without bytes nothing publishes
    # Reconciled by construction: init again and finish; exactly one post is published.
    publish_id = publish(client, media["small"])
    assert until_terminal(client, publish_id)[-1].published
    assert [p["publish_id"] for p in published(sandbox, account)] == [publish_id]


def test_init_5xx_is_not_resent(sandbox: Any, client: TikTokClient) -> None:
    sandbox.add_fault(system="tiktok", route=INIT_PATH, action="status", status=502, times=3)
    since = mark(sandbox)
    with pytest.raises(RetryableError) as caught:
        client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    assert caught.value.status == 502 and "internal_error" in caught.value.reason
    assert len(calls(sandbox, since, INIT_PATH)) == 1


def test_chunk_put_is_retried_after_a_5xx(sandbox: Any, client: TikTokClient, account: str,
                                          media: dict[str, Path], sleeps: list[float]) -> None:
    size = media["big"].stat().st_size
    init = client.init_direct_post("retry", size, privacy_level=PUBLIC, chunk_size=MIN_CHUNK)
    # The first chunk's PUT gets a 503: it is re-sent, its body re-read from the file.
    sandbox.add_fault(system="tiktok", route=UPLOAD_ROUTE, action="status", status=503,
                      times=1)
    since = mark(sandbox)
    client.upload(init.upload_url, media["big"], init.chunks)
    puts = calls(sandbox, since, UPLOAD_ROUTE, "PUT")
    assert [p["status"] for p in puts] == [503, 206, 206, 201]
    assert puts[0]["body"] == puts[1]["body"]  # the same bytes re-read for the retry
    assert sleeps == [0.25]
    # The last chunk again, its answer lost after it was stored: re-sent, accepted again.
    sandbox.add_fault(system="tiktok", route=UPLOAD_ROUTE, action="drop", phase="after",
                      times=1)
    since = mark(sandbox)
    client.upload(init.upload_url, media["big"], init.chunks, start_at=init.chunks[-1][0])
    assert [p["status"] for p in calls(sandbox, since, UPLOAD_ROUTE, "PUT")] == [None, 201]
    assert sleeps == [0.25, 0.25]
    assert until_terminal(client, init.publish_id)[-1].published
    [post] = published(sandbox, account)
    assert post["video_sha256"] == sha(media["big"])


def test_upload_resumes_from_uploaded_bytes(sandbox: Any, client: TikTokClient, account: str,
                                            media: dict[str, Path]) -> None:
    size = media["big"].stat().st_size
    init = client.init_direct_post("resume", size, privacy_level=PUBLIC, chunk_size=MIN_CHUNK)
    sandbox.add_fault(system="tiktok", route=UPLOAD_ROUTE, action="drop", phase="before",
                      times=3)
    with pytest.raises(RetryableError):  # the first chunk never got through
        client.upload(init.upload_url, media["big"], init.chunks)
    assert client.status(init.publish_id).uploaded_bytes == 0
    sandbox.clear_faults()
    client.upload(init.upload_url, media["big"], init.chunks)
    sandbox.add_fault(system="tiktok", route=UPLOAD_ROUTE, action="status", status=500,
                      times=10)
    # Already complete: a resume from uploaded_bytes sends nothing at all.
    done = client.status(init.publish_id)
    since = mark(sandbox)
    client.upload(init.upload_url, media["big"], init.chunks, start_at=done.uploaded_bytes or 0)
    assert calls(sandbox, since, UPLOAD_ROUTE, "PUT") == []
    with pytest.raises(ValueError, match="chunk boundary"):
        client.upload(init.upload_url, media["big"], init.chunks, start_at=7)
    assert len(published(sandbox, account)) == 1


def test_status_reads_are_retried(sandbox: Any, client: TikTokClient,
                                  sleeps: list[float]) -> None:
    init = client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    sandbox.add_fault(system="tiktok", route=STATUS_PATH, action="drop", phase="after",
                      times=1)
    sandbox.add_fault(system="tiktok", route=STATUS_PATH, action="status", status=503, times=1)
    since = mark(sandbox)
    assert client.status(init.publish_id).status == "PROCESSING_UPLOAD"
    assert [e["status"] for e in calls(sandbox, since, STATUS_PATH)] == [None, 503, 200]
    assert sleeps == [0.25, 0.5]


# --- limits, quotas, errors --------------------------------------------------------------------

def test_client_side_limit_keeps_the_seventh_init_home(sandbox: Any, client: TikTokClient,
                                                       account: str) -> None:
    since = mark(sandbox)
    for _ in range(6):
        client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    with pytest.raises(RateLimited) as caught:
        client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    assert 0 < (caught.value.retry_after or 0) <= 60
    assert len(calls(sandbox, since, INIT_PATH)) == 6  # the 7th never left


def test_sandbox_429_on_the_seventh_init(sandbox: Any, account: str,
                                         sleeps: list[float]) -> None:
    fresh = f"act.sandbox.{account}.burst"
    retry = RetryPolicy(max_attempts=2, random=lambda: 0.5, sleep=sleeps.append)
    since = mark(sandbox)
    with TikTokClient(lambda: fresh, base_url=sandbox.url + "/tiktok", retry=retry,
                      limits=own_limits(inits=100)) as eager:
        for _ in range(6):
            eager.init_direct_post("t", 1000, privacy_level=PUBLIC)
        with pytest.raises(RateLimited) as caught:
            eager.init_direct_post("t", 1000, privacy_level=PUBLIC)
    assert caught.value.retry_after == 60  # TikTok sends no Retry-After: its window
    assert "rate_limit_exceeded" in caught.value.reason
    assert sleeps == [60]  # a refused request is safe to resend once, after the window
    assert [e["status"] for e in calls(sandbox, since, INIT_PATH)] == [200] * 6 + [429, 429]


def test_daily_cap_is_a_deferrable_quota_error(sandbox: Any, client: TikTokClient,
                                               account: str) -> None:
    control(sandbox, "config", account=account, daily_cap=1)
    client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    with pytest.raises(TikTokQuotaError) as caught:
        client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    assert caught.value.deferrable and caught.value.code == "spam_risk_too_many_posts"
    assert caught.value.status == 403


def test_permanent_errors_carry_the_code(sandbox: Any, client: TikTokClient,
                                         account: str) -> None:
    with pytest.raises(TikTokError) as caught:
        client.init_direct_post("t", 1000, privacy_level=PrivacyLevel.FOLLOWER_OF_CREATOR)
    assert caught.value.code == "privacy_level_option_mismatch"
    assert not getattr(caught.value, "deferrable", True)
    control(sandbox, "config", account=account, audited=False)
    with pytest.raises(TikTokError) as unaudited:
        client.init_direct_post("t", 1000, privacy_level=PUBLIC)
    assert unaudited.value.code == "unaudited_client_can_only_post_to_private_accounts"
    with pytest.raises(ValueError, match="2200"):
        client.init_direct_post("x" * 2201, 1000, privacy_level=PUBLIC)
    with pytest.raises(TikTokError) as unknown:
        client.status("v_pub_file~v2.0")
    assert unknown.value.code == "invalid_params"


def test_upload_to_an_expired_url_is_permanent(sandbox: Any, client: TikTokClient,
                                               account: str, media: dict[str, Path]) -> None:
    control(sandbox, "config", account=account, upload_ttl=0)
    init = client.init_direct_post("t", media["small"].stat().st_size, privacy_level=PUBLIC)
    with pytest.raises(TikTokError) as caught:
        client.upload(init.upload_url, media["small"], init.chunks)
    assert caught.value.status == 403 and "expired" in caught.value.reason


def test_classifier() -> None:
    def outcome(status: int, code: str, **headers: str) -> Outcome | None:
        body = {"data": {}, "error": {"code": code, "message": "m", "log_id": "L1"}}
        return classify(httpx.Response(status, json=body, headers=headers))

    assert outcome(200, "ok") is None
    assert outcome(401, "access_token_invalid") == Outcome(Kind.AUTH,
                                                           "access_token_invalid: m (log_id L1)")
    assert outcome(401, "scope_not_authorized").kind is Kind.PERMANENT  # ask the user again
    assert outcome(429, "rate_limit_exceeded").retry_after == 60
    assert outcome(429, "rate_limit_exceeded", **{"Retry-After": "7"}).retry_after == 7
    assert outcome(500, "internal_error").kind is Kind.RETRYABLE
    assert outcome(403, "spam_risk_too_many_posts").kind is Kind.PERMANENT
    assert outcome(200, "invalid_params").kind is Kind.PERMANENT  # an error inside a 200
    assert classify(httpx.Response(201)) is None


# --- tokens ------------------------------------------------------------------------------------

def test_expired_token_then_refresh_with_rotation(sandbox: Any, client: TikTokClient,
                                                  account: str, token: list[str]) -> None:
    client.creator_info()
    control(sandbox, "expire_token", account=account)
    with pytest.raises(AuthError):
        client.creator_info()
    first = refresh_token(sandbox.url + "/tiktok", "ck", "cs", f"rft.sandbox.{account}")
    assert isinstance(first, TokenSet)
    assert first.expires_in == 7200 and first.refresh_expires_in == 180 * 86400
    assert first.refresh_token and first.refresh_token != f"rft.sandbox.{account}"
    token[0] = first.access_token  # what the token store would now hand out
    assert client.creator_info().nickname == account  # the callable is asked per request
    with pytest.raises(AuthError, match="invalid_grant"):  # the old refresh token is dead
        refresh_token(sandbox.url + "/tiktok", "ck", "cs", f"rft.sandbox.{account}")
    second = client.refresh_token("ck", "cs", first.refresh_token)
    assert second.refresh_token not in (None, first.refresh_token)
    with pytest.raises(AuthError):
        client.refresh_token("ck", "cs", first.refresh_token)
    with httpx.Client(base_url=sandbox.url + "/tiktok") as plain:  # any httpx client works
        third = refresh_token(plain, "ck", "cs", second.refresh_token or "")
    assert third.access_token != second.access_token
    calls_made = [e for e in sandbox.journal("tiktok") if e["path"] == "/v2/oauth/token/"]
    assert all(e["body"]["refresh_token"] == "***" and e["body"]["client_secret"] == "***"
               for e in calls_made)


def test_refresh_lost_answer_is_not_resent(sandbox: Any, account: str) -> None:
    sandbox.add_fault(system="tiktok", route="/v2/oauth/token/", action="drop",
                      phase="after", times=1)
    with pytest.raises(UnknownOutcome):
        refresh_token(sandbox.url + "/tiktok", "ck", "cs", f"rft.sandbox.{account}")
    with pytest.raises(AuthError):  # it did rotate: the caller must know the risk
        refresh_token(sandbox.url + "/tiktok", "ck", "cs", f"rft.sandbox.{account}")


def test_resource(sandbox: Any, account: str) -> None:
    settings = get_settings()
    assert TikTokResource().resolved_base_url() == f"{settings.sandbox_url}/tiktok"
    resource = TikTokResource(base_url=sandbox.url + "/tiktok/")
    assert resource.resolved_base_url() == sandbox.url + "/tiktok"
    fresh = resource.refresher()(f"rft.sandbox.{account}")
    with resource.get_client(lambda: fresh.access_token,
                             limits=own_limits()) as from_resource:
        assert from_resource.creator_info().nickname == account
    with TikTokClient(lambda: "x") as default:
        names = sorted(limit.limiter.name for limit in default.limits)
        assert names == ["tiktok.creator_info", "tiktok.init", "tiktok.status",
                         "tiktok.user_info", "tiktok.video_query"]
        assert {limit.limiter.limit for limit in default.limits} == {6, 20, 30, 600}
