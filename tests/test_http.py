"""The shared HTTP layer: pure policy logic, then real HTTP against a scripted local server."""

from __future__ import annotations

import io
import logging
import pickle
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import ollama
import pytest
from http_test_server import Reply, ScriptedServer
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.http import (
    IDEMPOTENT,
    NO_RETRY,
    AuthError,
    Failure,
    HttpError,
    InvalidResponse,
    Kind,
    Limit,
    MemoryRateLimitStore,
    Outcome,
    PermanentError,
    RateLimited,
    RateLimiter,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
    WaifugenTransport,
    a2e_classifier,
    backoff_delay,
    by_header,
    classify_status,
    json_request,
    make_client,
    make_transport,
    parse_retry_after,
    safe_url,
    telegram_classifier,
    telegram_retry_after,
    when_path,
)
from resources.http.policy import BODY_FACTORY, RETRY_AFTER_CEILING

# --- helpers ---------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when someone sleeps on it (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class IterStream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


def recording_policy(**overrides: object) -> tuple[RetryPolicy, list[float]]:
    """A retry policy that records the delays it would sleep instead of sleeping."""
    delays: list[float] = []
    options: dict = {"base_delay": 0.5, "random": lambda: 0.5, "sleep": delays.append}
    options.update(overrides)
    return RetryPolicy(**options), delays


def request(method: str = "GET", **kwargs: object) -> httpx.Request:
    return httpx.Request(method, "https://api.example.test/v1/x", **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


# --- backoff and Retry-After -----------------------------------------------------------------


@given(attempt=st.integers(1, 10_000), base=st.floats(0, 1e6), cap=st.floats(0, 1e6),
       rand=st.floats(0, 1))
def test_backoff_stays_within_full_jitter_bounds(attempt: int, base: float, cap: float,
                                                 rand: float) -> None:
    delay = backoff_delay(attempt, base, cap, rand)
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    assert 0 <= delay <= ceiling <= cap


def test_backoff_doubles_until_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 10.0, 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@given(st.integers(0, 10**9))
def test_retry_after_seconds(seconds: int) -> None:
    assert parse_retry_after(f" {seconds} ") == min(float(seconds), RETRY_AFTER_CEILING)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_retry_after_http_date(when: datetime, now: datetime) -> None:
    when, now = when.replace(microsecond=0, tzinfo=UTC), now.replace(tzinfo=UTC)
    expected = min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_CEILING)
    assert parse_retry_after(format_datetime(when, usegmt=True), now=now) == expected


@given(st.text(max_size=40))
def test_retry_after_never_raises_and_is_never_negative(text: str) -> None:
    parsed = parse_retry_after(text)
    assert parsed is None or parsed >= 0


@pytest.mark.parametrize("value", ["-5", "soon", "", "5s", "1e3"])
def test_retry_after_rejects_garbage(value: str) -> None:
    assert parse_retry_after(value) is None


# --- classification and retry rules ----------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [
    (200, Kind.OK), (201, Kind.OK), (308, Kind.OK), (400, Kind.PERMANENT),
    (401, Kind.AUTH), (403, Kind.PERMANENT), (404, Kind.PERMANENT), (408, Kind.RETRYABLE),
    (425, Kind.RETRYABLE), (429, Kind.RATE_LIMITED), (500, Kind.RETRYABLE),
    (501, Kind.PERMANENT), (502, Kind.RETRYABLE), (503, Kind.RETRYABLE), (504, Kind.RETRYABLE),
])
def test_status_classification(status: int, kind: Kind) -> None:
    assert classify_status(status).kind is kind


TELEGRAM_429 = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3}}


@pytest.mark.parametrize("status", [200, 429])
def test_telegram_classifier_reads_the_envelope(status: int) -> None:
    response = httpx.Response(status, json=TELEGRAM_429, request=request("POST"))
    assert telegram_classifier(response) == Outcome(
        Kind.RATE_LIMITED, "Too Many Requests: retry after 3", 3.0)
    assert telegram_retry_after(response) == 3.0
    ok = httpx.Response(200, json={"ok": True, "result": {}}, request=request("POST"))
    assert telegram_classifier(ok) is None
    blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}
    forbidden = telegram_classifier(httpx.Response(403, json=blocked, request=request("POST")))
    assert forbidden is not None
    assert forbidden.kind is Kind.PERMANENT


def test_a2e_classifier_finds_errors_inside_200() -> None:
    failed = httpx.Response(200, json={"code": 1001, "msg": "invalid token"}, request=request())
    assert a2e_classifier(failed) == Outcome(Kind.PERMANENT, "code 1001: invalid token")
    assert a2e_classifier(httpx.Response(200, json={"code": 0, "data": {}})) is None


@pytest.mark.parametrize(("method", "extensions", "failure", "expected"), [
    ("POST", {}, Failure.NOT_SENT, True),
    ("POST", {}, Failure.UNKNOWN, False),
    ("POST", {}, Failure.RETRYABLE_STATUS, False),
    ("POST", {}, Failure.RATE_LIMITED, True),
    ("POST", {IDEMPOTENT: True}, Failure.UNKNOWN, True),
    ("GET", {}, Failure.UNKNOWN, True),
    ("GET", {IDEMPOTENT: False}, Failure.RETRYABLE_STATUS, False),
    ("PUT", {}, Failure.RETRYABLE_STATUS, True),
    ("PATCH", {}, Failure.RETRYABLE_STATUS, False),
])
def test_retry_safety_rules(method: str, extensions: dict, failure: Failure,
                            expected: bool) -> None:
    req = request(method, content=b"{}", extensions=extensions)
    assert RetryPolicy().may_retry(req, failure) is expected


def test_policy_may_allow_non_idempotent_retries() -> None:
    policy = RetryPolicy(retry_non_idempotent=True)
    assert policy.may_retry(request("POST", content=b"x"), Failure.UNKNOWN)


def test_only_recreatable_bodies_are_resent() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"chunk"

    policy = RetryPolicy()
    streaming = request("PUT", content=chunks())
    assert not policy.may_retry(streaming, Failure.RETRYABLE_STATUS)
    assert policy.may_retry(streaming, Failure.NOT_SENT)  # never read, still intact
    assert policy.may_retry(request("PUT", content=chunks(), extensions={BODY_FACTORY: chunks}),
                            Failure.RETRYABLE_STATUS)
    assert policy.may_retry(request("PUT", json={"a": 1}), Failure.RETRYABLE_STATUS)
    seekable = request("PUT", files={"document": ("a.png", io.BytesIO(b"png"))})
    assert policy.may_retry(seekable, Failure.RETRYABLE_STATUS)


# --- rate limiter ----------------------------------------------------------------------------


def test_seventh_acquire_in_a_minute_waits_for_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter("tiktok-init", 6, 60, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=120)
    assert [limiter.acquire("token-a") for _ in range(6)] == [0.0] * 6
    assert limiter.acquire("token-b") == 0.0  # keys are independent
    clock.now += 15
    assert limiter.acquire("token-a") == 45.0  # the first of the six leaves the window at 60 s
    assert clock.sleeps == [45.0]


def test_a_ticket_counts_its_units_from_the_answer() -> None:
    # The platform counts a request somewhere between our take and its answer: counted from
    # the answer, the next request cannot land inside the first one's window over there.
    clock = FakeClock(0.0)
    limiter = RateLimiter("one-a-second", 1, 1.0, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=0)
    ticket = limiter.take("k")
    clock.now = 0.4
    ticket.settle()
    clock.now = 1.1  # a second after the take, not yet after the answer
    with pytest.raises(RateLimited) as caught:
        limiter.take("k")
    assert caught.value.retry_after == pytest.approx(0.3)
    clock.now = 1.4
    limiter.take("k").settle()


def test_the_transport_settles_each_ticket_when_the_answer_arrives() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter("slow-server", 2, 10.0, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=0)

    def slow(request: httpx.Request) -> httpx.Response:
        clock.now += 3.0  # each answer takes 3 s
        return httpx.Response(200 if request.url.path == "/ok" else 500, json={})

    with make_client("slow", base_url="http://test", limits=[limiter],
                     retry=RetryPolicy(max_attempts=1), inner=httpx.MockTransport(slow)) as c:
        c.get("/ok")  # taken at 0, answered at 3
        with pytest.raises(HttpError):
            c.get("/fails")  # taken at 3, failed at 6: settled all the same
    clock.now = 12.5  # the first take left its window at 10, its answer only at 13
    with pytest.raises(RateLimited) as caught:
        limiter.take("")
    assert caught.value.retry_after == pytest.approx(0.5)


def test_acquire_raises_when_the_wait_exceeds_max_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter("fanvue", 6, 60, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=10)
    for _ in range(6):
        limiter.acquire("key")
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("key")
    assert caught.value.retry_after == 60.0
    assert clock.sleeps == []  # raised at once instead of sleeping in vain


def test_limiter_is_thread_safe() -> None:
    clock = FakeClock()  # frozen: no slot ever frees up
    limiter = RateLimiter("telegram", 30, 1, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=0)
    start = threading.Barrier(64)
    granted: list[int] = []
    refused: list[int] = []

    def worker(n: int) -> None:
        start.wait()
        for _ in range(5):
            try:
                limiter.acquire("overall")
                granted.append(n)
            except RateLimited:
                refused.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 30
    assert len(refused) == 64 * 5 - 30


@settings(max_examples=60)
@given(st.lists(st.tuples(st.floats(0, 30), st.integers(1, 3)), max_size=60),
       st.integers(1, 8), st.floats(1, 20))
def test_no_window_ever_holds_more_than_the_limit(steps: list[tuple[float, int]], limit: int,
                                                  period: float) -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter("prop", limit, period, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=0)
    taken: list[tuple[float, int]] = []
    waits: list[float | None] = []
    for advance, cost in steps:
        clock.now += advance
        try:
            limiter.acquire("k", min(cost, limit))
            taken.append((clock.now, min(cost, limit)))
        except RateLimited as exc:
            waits.append(exc.retry_after)
    assert all(w is not None and 0 < w <= period for w in waits)
    for start, _ in taken:
        assert sum(c for t, c in taken if start <= t < start + period) <= limit


def test_limit_key_helpers() -> None:
    tiktok = request("POST", headers={"Authorization": "Bearer tok-123456"})
    key = by_header("authorization")(tiktok)
    assert key
    assert "tok-123456" not in key
    scoped = when_path("/v1/")
    assert scoped(tiktok) == ""
    assert when_path("/v2/")(tiktok) is None


# --- redaction helpers -----------------------------------------------------------------------


def test_safe_url_masks_credentials() -> None:
    url = ("https://user:hunter2pass@h.test/v/?upload_id=1&upload_token=SeCrEt99"
           "&X-Amz-Signature=abcdef123&key=AIzaKEY")
    masked = safe_url(url)
    for secret in ("hunter2pass", "SeCrEt99", "abcdef123", "AIzaKEY"):
        assert secret not in masked
    assert "upload_id=1" in masked


def test_errors_survive_pickling() -> None:
    error = RateLimited("tiktok: slow down", system="tiktok", retry_after=5.0, status=429)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (type(copy), str(copy), copy.retry_after, copy.status) == (
        RateLimited, "tiktok: slow down", 5.0, 429)


# --- real HTTP: retries ----------------------------------------------------------------------


def test_get_is_retried_on_503_then_succeeds(server: ScriptedServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = server.script(Reply(503, body="busy"), Reply(200, json={"fine": True}))
    policy, delays = recording_policy()
    caplog.set_level(logging.DEBUG, logger="waifugen.http")
    with make_client("youtube", base_url=server.base_url, retry=policy) as client:
        assert client.get(path).json() == {"fine": True}
    assert len(server.hits(path)) == 2
    assert delays == [0.25]  # full jitter: 0.5 (random) * 0.5 (base * 2**0)
    lines = [r for r in caplog.records if r.name == "waifugen.http"]
    assert [r.attempt for r in lines] == [1, 2]
    assert "503 retryable" in lines[0].getMessage()
    assert "youtube GET" in lines[0].getMessage()


def test_post_is_not_retried_on_503(server: ScriptedServer) -> None:
    path = server.script(Reply(503, json={"error": "overloaded"}), Reply(200, json={}))
    policy, delays = recording_policy()
    with make_client("a2e", base_url=server.base_url, retry=policy) as client, \
            pytest.raises(RetryableError) as caught:
        client.post(path, json={"title": "reel"})
    assert len(server.hits(path)) == 1
    assert delays == []
    assert caught.value.status == 503
    assert caught.value.reason == "overloaded"
    assert caught.value.retryable
    assert caught.value.system == "a2e"


def test_post_marked_idempotent_is_retried(server: ScriptedServer) -> None:
    path = server.script(Reply(503), Reply(200, json={"id": "c1"}))
    policy, _ = recording_policy()
    with make_client("instagram", base_url=server.base_url, retry=policy) as client:
        response = client.post(path, json={"a": 1}, extensions={IDEMPOTENT: True})
    assert response.json() == {"id": "c1"}
    hits = server.hits(path)
    assert len(hits) == 2
    assert hits[0].body == hits[1].body == b'{"a":1}'


def test_read_timeout_on_post_is_an_unknown_outcome(server: ScriptedServer) -> None:
    path = server.script(Reply(action="hang"))
    policy, delays = recording_policy()
    with make_client("tiktok", base_url=server.base_url, retry=policy, timeout=0.2) as client, \
            pytest.raises(UnknownOutcome) as caught:
        client.post(path, json={"post_info": {}})
    assert len(server.hits(path)) == 1
    assert delays == []
    assert "reconcile" in str(caught.value)
    assert not caught.value.retryable


def test_dropped_connection_post_is_unknown_but_get_is_retried(server: ScriptedServer) -> None:
    post_path = server.script(Reply(action="drop"), Reply(200, json={}))
    get_path = server.script(Reply(action="drop"), Reply(200, json={"ok": 1}))
    policy, delays = recording_policy()
    with make_client("fanvue", base_url=server.base_url, retry=policy) as client:
        with pytest.raises(UnknownOutcome):
            client.post(post_path, json={"text": "hi"})
        assert client.get(get_path).json() == {"ok": 1}
    assert len(server.hits(post_path)) == 1
    assert len(server.hits(get_path)) == 2
    assert len(delays) == 1


def test_connection_refused_is_retried_even_for_post() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy, delays = recording_policy(max_attempts=3)
    with make_client("telegram", retry=policy) as client, pytest.raises(RetryableError) as caught:
        client.post(f"http://127.0.0.1:{port}/sendMessage", json={"chat_id": 1})
    assert len(delays) == 2
    assert "ConnectError" in str(caught.value)


def test_streaming_upload_is_sent_once_unless_it_can_be_recreated(
        server: ScriptedServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield from (b"a" * 1000, b"b" * 1000)

    path = server.script(Reply(503), Reply(200, json={}))
    policy, _ = recording_policy()
    with make_client("youtube", base_url=server.base_url, retry=policy) as client:
        with pytest.raises(RetryableError):
            client.put(path, content=chunks())
        assert len(server.hits(path)) == 1
        path = server.script(Reply(503), Reply(200, json={}))
        client.put(path, content=chunks(), extensions={BODY_FACTORY: chunks})
    hits = server.hits(path)
    assert len(hits) == 2
    assert hits[1].body == b"a" * 1000 + b"b" * 1000


# --- real HTTP: Retry-After and rate limits --------------------------------------------------


def test_retry_after_header_is_honoured(server: ScriptedServer) -> None:
    path = server.script(Reply(429, headers={"Retry-After": "7"}), Reply(200, json={}))
    policy, delays = recording_policy()
    with make_client("fanvue", base_url=server.base_url, retry=policy) as client:
        client.post(path, json={"text": "hello"})  # a 429 was refused, so even a POST is resent
    assert delays == [7.0]
    assert len(server.hits(path)) == 2


def test_retry_after_above_the_cap_raises_rate_limited(server: ScriptedServer) -> None:
    path = server.script(Reply(429, headers={"Retry-After": "3600"}), Reply(200, json={}))
    policy, delays = recording_policy(max_retry_after=60)
    with make_client("youtube", base_url=server.base_url, retry=policy) as client, \
            pytest.raises(RateLimited) as caught:
        client.get(path)
    assert caught.value.retry_after == 3600.0
    assert caught.value.status == 429
    assert delays == []
    assert len(server.hits(path)) == 1


@pytest.mark.parametrize("status", [200, 429])
def test_telegram_envelope_retry_after(server: ScriptedServer, status: int) -> None:
    path = server.script(Reply(status, json=TELEGRAM_429),
                         Reply(200, json={"ok": True, "result": {"message_id": 5}}))
    policy, delays = recording_policy()
    with make_client("telegram", base_url=server.base_url, retry=policy,
                     classifier=telegram_classifier) as client:
        body = json_request(client, "POST", path, json={"chat_id": 1, "text": "hi"})
    assert body["result"] == {"message_id": 5}
    assert delays == [3.0]


def test_retry_after_hook_reads_the_body(server: ScriptedServer) -> None:
    path = server.script(Reply(429, json=TELEGRAM_429), Reply(200, json={"ok": True}))
    policy, delays = recording_policy()
    with make_client("telegram", base_url=server.base_url, retry=policy,
                     retry_after_from_response=telegram_retry_after) as client:
        client.post(path, json={})
    assert delays == [3.0]


def test_telegram_error_in_200_body_raises(server: ScriptedServer) -> None:
    blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}
    path = server.script(Reply(200, json=blocked))
    with make_client("telegram", base_url=server.base_url,
                     classifier=telegram_classifier) as client, \
            pytest.raises(PermanentError, match="bot was blocked") as caught:
        client.post(path, json={})
    assert caught.value.status == 200
    assert caught.value.reason == "Forbidden: bot was blocked"


def test_client_side_limit_stops_requests_before_the_server(server: ScriptedServer) -> None:
    path = server.script(Reply(200, json={}))
    clock = FakeClock()
    limiter = RateLimiter("tiktok-init", 2, 60, store=MemoryRateLimitStore(), clock=clock,
                          sleep=clock.sleep, max_wait=0)
    limit = Limit(limiter, key=by_header("authorization"))
    with make_client("tiktok", base_url=server.base_url, limits=[limit]) as client:
        for _ in range(2):
            client.post(path, headers={"Authorization": "Bearer token-one"})
        with pytest.raises(RateLimited):
            client.post(path, headers={"Authorization": "Bearer token-one"})
        client.post(path, headers={"Authorization": "Bearer token-two"})
    assert len(server.hits(path)) == 3


# --- real HTTP: errors and secrets -----------------------------------------------------------


def test_secrets_stay_out_of_logs_and_errors(server: ScriptedServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    token, query_token, password = "bearer-XyZ-777777", "qtoken-ABC-888888", "p4ssw0rd-999"
    path = server.script(Reply(401, json={"error": {"message": f"bad token {token}"}}))
    caplog.set_level(logging.DEBUG)
    url = server.url(path).replace("://", f"://user:{password}@") + f"?access_token={query_token}"
    with make_client("instagram", headers={"Authorization": f"Bearer {token}"}) as client, \
            pytest.raises(AuthError) as caught:
        client.get(url)
    texts = [str(caught.value), repr(caught.value), caught.value.reason]
    texts += [r.getMessage() for r in caplog.records if r.name == "waifugen.http"]
    assert len(texts) == 4
    for text in texts:
        for secret in (token, query_token, password):
            assert secret not in text
    assert "instagram: GET /s/" in str(caught.value)
    assert "HTTP 401" in str(caught.value)


def test_invalid_response_names_system_and_path(server: ScriptedServer) -> None:
    html = server.script(Reply(200, body="<html>maintenance</html>",
                               headers={"content-type": "text/html"}))
    listing = server.script(Reply(200, json=[1, 2]))
    partial = server.script(Reply(200, json={"data": {}}))
    with make_client("a2e", base_url=server.base_url) as client:
        with pytest.raises(InvalidResponse, match=rf"a2e: GET {html}: body is not JSON"):
            json_request(client, "GET", html)
        with pytest.raises(InvalidResponse, match="expected a JSON object, got list"):
            json_request(client, "GET", listing)
        with pytest.raises(InvalidResponse, match="lacks trace_id"):
            json_request(client, "GET", partial, require=["data", "trace_id"])
        assert json_request(client, "GET", partial, require=["data"]) == {"data": {}}


def test_all_errors_share_the_base_class() -> None:
    for cls in (RetryableError, RateLimited, AuthError, PermanentError, UnknownOutcome,
                InvalidResponse):
        assert issubclass(cls, HttpError)


# --- third-party clients and streaming -------------------------------------------------------

TAGS = {"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b", "size": 1, "digest": "ab",
                    "modified_at": "2026-01-01T00:00:00Z", "details": {"family": "llama"}}]}


def test_ollama_client_goes_through_the_transport(server: ScriptedServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    server.script(Reply(503), Reply(200, json=TAGS), path="/api/tags")
    policy, delays = recording_policy()
    caplog.set_level(logging.DEBUG, logger="waifugen.http")
    client = ollama.Client(host=server.base_url, transport=make_transport("ollama", retry=policy))
    assert [m.model for m in client.list().models] == ["llama3.1:8b"]
    assert len(server.hits("/api/tags")) == 2
    assert len(delays) == 1
    assert any("ollama GET" in r.getMessage() for r in caplog.records)
    # Library mode: the final error response reaches ollama's own error handling.
    server.script(Reply(404, json={"error": "model 'x' not found"}), path="/api/show")
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("x")
    assert caught.value.status_code == 404


def test_transport_bounds_unbounded_timeouts(server: ScriptedServer) -> None:
    server.script(Reply(action="hang"), path="/api/tags")
    client = ollama.Client(host=server.base_url, timeout=None,  # ollama's default
                           transport=make_transport("ollama", timeout=0.2, retry=NO_RETRY))
    with pytest.raises(httpx.ReadTimeout):
        client.list()


def test_streaming_download_is_not_buffered(server: ScriptedServer) -> None:
    size = 16 * 1024 * 1024
    server.stream_gate = threading.Event()
    received = 0
    tracemalloc.start()
    try:
        with make_client("store", base_url=server.base_url) as client, \
                client.stream("GET", f"/stream/{size}") as response:
            chunks = response.iter_bytes()
            received += len(next(chunks))  # arrives before the server sends the rest
            server.stream_gate.set()
            for chunk in chunks:
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 4 * 1024 * 1024  # constant memory, far below the 16 MiB body


def test_large_json_bodies_are_not_buffered_for_classifiers() -> None:
    body = b'{"ok": true, "pad": "' + b"x" * 5000 + b'"}'

    def handler(req: httpx.Request) -> httpx.Response:
        chunks = (body[i:i + 100] for i in range(0, len(body), 100))
        return httpx.Response(200, headers={"content-type": "application/json"},
                              stream=IterStream(chunks))

    transport = WaifugenTransport("telegram", inner=httpx.MockTransport(handler),
                                  classifier=telegram_classifier, body_peek_limit=1000)
    with httpx.Client(transport=transport) as client:
        assert client.get("http://t.test/getMe").content == body  # prefix replayed, then rest


def test_read_timeouts_on_get_are_retried_then_retryable(server: ScriptedServer) -> None:
    path = server.script(Reply(action="hang"))
    policy, delays = recording_policy(max_attempts=2)
    with make_client("youtube", base_url=server.base_url, retry=policy, timeout=0.1) as client, \
            pytest.raises(RetryableError, match=r"ReadTimeout.*after 2 attempts"):
        client.get(path)
    assert len(server.hits(path)) == 2
    assert len(delays) == 1
