"""resources.a2e against the sandbox over real HTTP: the typed calls, exactly-once rules for
the paid POST, retries of status polls, 429s and the per-key client-side limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from resources.a2e import (
    REQUESTS_PER_HOUR,
    SANDBOX_API_KEY,
    A2EClient,
    A2EResource,
    A2EStatus,
    A2ETask,
    A2ETaskNotFound,
    classify,
)
from resources.http import (
    AuthError,
    Kind,
    MemoryRateLimitStore,
    Outcome,
    PermanentError,
    RateLimited,
    RateLimiter,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
)
from sandbox.systems.a2e import speech_seconds, video_cost
from waifugen_assets.core.config import get_settings

TEXT = "Hi everyone! Today I am reviewing three ramen shops in the rain, stay with me."
ANCHOR = "6650a1c0e4b0f1a2b3c40001"
PATHS = {"generate": "/api/v1/video/generate", "status": "/api/v1/video/awsResult"}


@pytest.fixture
def key() -> str:
    return f"sk_sandbox_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sleeps() -> list[float]:
    return []


def limiter(limit: int = REQUESTS_PER_HOUR, max_wait: float = 0.0) -> RateLimiter:
    return RateLimiter(f"a2e-test-{uuid.uuid4().hex[:6]}", limit, 3600,
                       store=MemoryRateLimitStore(), max_wait=max_wait)


@pytest.fixture
def client(sandbox: Any, key: str, sleeps: list[float]) -> Iterator[A2EClient]:
    retry = RetryPolicy(random=lambda: 0.5, sleep=sleeps.append)
    with A2EClient(key, base_url=sandbox.url + "/a2e", limiter=limiter(), retry=retry) as c:
        yield c


def control(sandbox: Any, key: str, path: str, **body: Any) -> Any:
    response = httpx.post(f"{sandbox.url}/a2e/_control/{path}", json=body,
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def mark(sandbox: Any) -> int:
    return max((e["id"] for e in sandbox.journal()), default=0)


def calls(sandbox: Any, since: int, path: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.journal("a2e", since) if e["path"] == path]


def finish(client: A2EClient, task_id: str) -> list[A2ETask]:
    seen = []
    for _ in range(30):
        seen.append(client.task_status(task_id))
        if seen[-1].terminal:
            return seen
    raise AssertionError("task never finished")


def test_happy_path(client: A2EClient) -> None:
    before = client.remaining_coins()
    audio = client.send_tts(TEXT, "voice-1")
    assert audio.startswith("http")
    task_id = client.generate_video("ramen", ANCHOR, audio, resolution=720)
    seen = finish(client, task_id)
    assert [t.status for t in seen] == [A2EStatus.QUEUED, A2EStatus.QUEUED,
                                        A2EStatus.RUNNING, A2EStatus.RUNNING,
                                        A2EStatus.SUCCEEDED]
    assert [t.raw_status for t in seen] == ["start", "pending", "process", "copy", "success"]
    done = seen[-1]
    assert done.id == task_id
    assert done.progress == 100
    assert done.result_url and done.result_url.endswith(".mp4")
    assert done.message == ""
    assert done.anchor_id == ANCHOR
    assert done.cost_coins == video_cost(speech_seconds(TEXT), 720)
    assert client.remaining_coins() == before - done.cost_coins
    assert httpx.get(done.result_url).status_code == 200


def test_cost_unknown_without_coins_in_status(sandbox: Any, key: str,
                                              client: A2EClient) -> None:
    control(sandbox, key, "config", report_coins=False, states_per_poll=5)
    before = client.remaining_coins()
    task = client.task_status(client.generate_video("t", ANCHOR, client.send_tts(TEXT, "v")))
    assert task.status is A2EStatus.SUCCEEDED
    assert task.cost_coins is None  # the documented fallback: the balance delta
    assert before - client.remaining_coins() == video_cost(speech_seconds(TEXT), 1080)


def test_failure_gives_a_failed_task_with_its_reason(sandbox: Any, key: str,
                                                     client: A2EClient) -> None:
    control(sandbox, key, "next_jobs", outcome="fail", message="no face in the avatar")
    task_id = client.generate_video("t", ANCHOR, client.send_tts(TEXT, "v"))
    done = finish(client, task_id)[-1]
    assert done.status is A2EStatus.FAILED
    assert done.message == "no face in the avatar"
    assert done.result_url is None
    assert done.cost_coins == 0


def test_status_5xx_is_retried(sandbox: Any, client: A2EClient, sleeps: list[float]) -> None:
    task_id = client.generate_video("t", ANCHOR, client.send_tts(TEXT, "v"))
    sandbox.add_fault(system="a2e", route=PATHS["status"], action="status", status=503,
                      times=2)
    since = mark(sandbox)
    assert client.task_status(task_id).raw_status == "start"
    assert [e["status"] for e in calls(sandbox, since, PATHS["status"])] == [503, 503, 200]
    assert sleeps == [0.25, 0.5]  # full-jitter backoff with random() = 0.5, no real sleep


def test_generate_5xx_is_not_retried(sandbox: Any, key: str, client: A2EClient) -> None:
    audio = client.send_tts(TEXT, "v")
    sandbox.add_fault(system="a2e", route=PATHS["generate"], action="status", status=502,
                      times=3)
    since = mark(sandbox)
    with pytest.raises(RetryableError) as caught:
        client.generate_video("t", ANCHOR, audio)
    assert caught.value.status == 502
    assert len(calls(sandbox, since, PATHS["generate"])) == 1  # paid POST: sent once


def test_generate_lost_answer_is_an_unknown_outcome(sandbox: Any, client: A2EClient) -> None:
    audio = client.send_tts(TEXT, "v")
    before = client.remaining_coins()
    sandbox.add_fault(system="a2e", route=PATHS["generate"], action="drop", phase="after",
                      times=1)
    since = mark(sandbox)
    with pytest.raises(UnknownOutcome):
        client.generate_video("t", ANCHOR, audio)
    assert len(calls(sandbox, since, PATHS["generate"])) == 1
    assert client.remaining_coins() < before  # A2E did act: reconcile, never pay twice


def test_generate_429_is_resent_once_refused(sandbox: Any, client: A2EClient,
                                            sleeps: list[float]) -> None:
    audio = client.send_tts(TEXT, "v")
    sandbox.add_fault(system="a2e", route=PATHS["generate"], action="rate_limit",
                      retry_after=2, times=1)
    since = mark(sandbox)
    assert client.generate_video("t", ANCHOR, audio)
    assert [e["status"] for e in calls(sandbox, since, PATHS["generate"])] == [429, 200]
    assert sleeps == [2.0]  # the server's Retry-After


def test_sandbox_hourly_limit_raises_rate_limited(sandbox: Any, key: str,
                                                  client: A2EClient) -> None:
    control(sandbox, key, "config", rate_limit=2)
    client.remaining_coins()
    client.remaining_coins()
    since = mark(sandbox)
    with pytest.raises(RateLimited) as caught:
        client.remaining_coins()
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 3000  # not slept through: the caller reschedules
    assert len(calls(sandbox, since, "/api/v1/user/remainingCoins")) == 1


def test_client_side_limit_per_key(sandbox: Any, key: str) -> None:
    shared = limiter(limit=3)
    other_key = f"sk_sandbox_{uuid.uuid4().hex[:12]}"
    base = sandbox.url + "/a2e"
    since = mark(sandbox)
    with A2EClient(key, base_url=base, limiter=shared) as first, \
            A2EClient(other_key, base_url=base, limiter=shared) as second:
        for _ in range(3):
            first.remaining_coins()
        with pytest.raises(RateLimited) as caught:
            first.remaining_coins()
        assert caught.value.retry_after == pytest.approx(3600, abs=5)
        assert second.remaining_coins() == 100_000  # another key, another budget
    assert len(calls(sandbox, since, "/api/v1/user/remainingCoins")) == 4


def test_default_limit_is_100_per_hour_per_key(sandbox: Any) -> None:
    with A2EClient("sk_sandbox_x", base_url=sandbox.url + "/a2e") as default:
        assert (default.limiter.limit, default.limiter.period) == (100, 3600.0)
    resource = A2EResource(base_url=sandbox.url + "/a2e")
    with resource.get_client() as from_resource:
        assert (from_resource.limiter.limit, from_resource.limiter.period) == (100, 3600.0)
        assert from_resource.remaining_coins() > 0  # the sandbox key by default


def test_errors(sandbox: Any, client: A2EClient) -> None:
    with A2EClient("sk_live_nope", base_url=sandbox.url + "/a2e", limiter=limiter()) as bad, \
            pytest.raises(AuthError):
        bad.remaining_coins()
    with pytest.raises(PermanentError, match="anchor_id is required"):
        client.generate_video("t", "", "https://cdn.example/a.mp3")
    with pytest.raises(ValueError, match="resolution"):
        client.generate_video("t", ANCHOR, "https://cdn.example/a.mp3", resolution=999)
    with pytest.raises(A2ETaskNotFound):
        client.task_status("0" * 24)


def test_cancel(client: A2EClient) -> None:
    before = client.remaining_coins()
    task_id = client.generate_video("t", ANCHOR, client.send_tts(TEXT, "v"))
    client.cancel(task_id)
    assert client.remaining_coins() == before
    with pytest.raises(A2ETaskNotFound):
        client.task_status(task_id)
    with pytest.raises(PermanentError):
        client.cancel(task_id)


def test_resource_defaults() -> None:
    settings = get_settings()
    resource = A2EResource()
    assert resource.resolved_base_url() == f"{settings.sandbox_url}/a2e"
    assert A2EResource(base_url="https://video.a2e.ai/").resolved_base_url() \
        == "https://video.a2e.ai"
    assert SANDBOX_API_KEY.startswith("sk_sandbox")


def test_classifier_reads_auth_and_rate_limits_inside_a_200() -> None:
    def outcome(status: int, body: dict[str, Any], **headers: str) -> Outcome | None:
        return classify(httpx.Response(status, json=body, headers=headers))

    assert outcome(200, {"code": 0, "data": {"coins": 1}}) is None
    assert outcome(200, {"code": 401, "msg": "token invalid"}) == Outcome(
        Kind.AUTH, "code 401: token invalid")
    assert outcome(200, {"code": 429, "msg": "slow down"}, **{"Retry-After": "5"}) == Outcome(
        Kind.RATE_LIMITED, "code 429: slow down", 5.0)
    limited = outcome(429, {"code": 429, "msg": "x"}, **{"Retry-After": "7"})
    assert limited is not None
    assert (limited.kind, limited.retry_after) == (Kind.RATE_LIMITED, 7.0)
    assert outcome(200, {"code": 400, "msg": "bad"}) == Outcome(Kind.PERMANENT, "code 400: bad")
    retry = outcome(503, {"code": 503, "msg": "x"})
    assert retry is not None
    assert retry.kind is Kind.RETRYABLE


def test_lost_submit_answer_is_found_by_title(client: A2EClient, sandbox: Any) -> None:
    """A submit whose answer never arrived is reconciled through the task list, not repaid."""
    audio = client.send_tts(TEXT, "voice-1")
    title = f"wg-reel-{uuid.uuid4().hex[:8]}"
    sandbox.add_fault(system="a2e", route="/api/v1/video/generate", action="drop",
                      phase="after", times=1)
    with pytest.raises(UnknownOutcome):
        client.generate_video(title, ANCHOR, audio)
    found = client.find_task_by_title(title)
    assert found is not None and found.id
    assert client.find_task_by_title("never-submitted") is None
    assert len(finish(client, found.id)) > 0
