"""The A2E stand-in over real HTTP: envelope, auth, validation, task states, coins, MP4
results, Range requests, job-level faults, the per-key rate limit, restarts; timed renders
and the rate limit on the sandbox clock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from sandbox.determinism import derive_rng
from sandbox.media import anchor_colour
from sandbox.server import SandboxServer
from sandbox.state import StateStore
from sandbox.systems.a2e import external_audio_seconds, fingerprint, speech_seconds, video_cost

API = "/api/v1"
TEXT = "Good morning everyone, today we try the new ramen place by the station, come along!"
ANCHOR = "6650a1c0e4b0f1a2b3c40001"
OTHER_ANCHOR = "6650a1c0e4b0f1a2b3c40002"


@pytest.fixture
def key() -> str:
    """A fresh account per test: its own balance, request budget, tasks and fault queue."""
    return f"sk_sandbox_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api(sandbox: Any, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url + "/a2e",
                      headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def control(api: httpx.Client, path: str, method: str = "POST", **body: Any) -> Any:
    response = api.request(method, f"/_control/{path}", json=body if method == "POST" else None)
    assert response.status_code == 200, response.text
    return response.json()


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0, body
    assert isinstance(body["trace_id"], str)
    return body["data"]


def coins(api: httpx.Client) -> int:
    return data(api.get(f"{API}/user/remainingCoins"))["coins"]


def tts(api: httpx.Client, text: str = TEXT) -> str:
    return data(api.post(f"{API}/video/send_tts", json={"msg": text, "tts_id": "voice-1",
                                                       "speechRate": 1.0}))


def generate(api: httpx.Client, audio: str, anchor: str = ANCHOR, resolution: int = 720,
             **extra: Any) -> str:
    body = {"title": "breakfast", "anchor_id": anchor, "anchor_type": 0, "audioSrc": audio,
            "resolution": resolution, "isSkipRs": True, **extra}
    return data(api.post(f"{API}/video/generate", json=body))["_id"]


def poll(api: httpx.Client, task_id: str) -> dict[str, Any]:
    [item] = data(api.post(f"{API}/video/awsResult", json={"_id": task_id}))
    return item


def run_to_end(api: httpx.Client, task_id: str, limit: int = 30) -> list[dict[str, Any]]:
    seen = []
    for _ in range(limit):
        seen.append(poll(api, task_id))
        if seen[-1]["status"] in ("success", "fail"):
            return seen
    raise AssertionError(f"task {task_id} never finished: {seen[-1]}")


def finished_video(api: httpx.Client, anchor: str = ANCHOR) -> tuple[str, dict[str, Any]]:
    task_id = generate(api, tts(api), anchor=anchor)
    return task_id, run_to_end(api, task_id)[-1]


def decode_all(path: Path) -> None:
    with av.open(str(path)) as container:
        for _ in container.decode(video=0):
            pass


def read_all(response: httpx.Response, into: bytearray) -> None:
    for chunk in response.iter_bytes():
        into += chunk


def test_envelope_balance_and_auth(sandbox: Any, api: httpx.Client) -> None:
    assert coins(api) == 100_000
    raw = httpx.get(sandbox.url + f"/a2e{API}/user/remainingCoins")
    assert raw.status_code == 401
    assert raw.json()["code"] == 401
    assert "Bearer" in raw.json()["msg"]
    for header in ("Bearer sk_live_abc", "Basic c2tfc2FuZGJveDp4", "Bearer", "sk_sandbox_x"):
        response = httpx.get(sandbox.url + f"/a2e{API}/user/remainingCoins",
                             headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["code"] == 401
        assert response.json()["msg"]
    missing = api.get(f"{API}/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["code"] == 404
    assert api.get(f"{API}/video/generate").status_code == 405


@pytest.mark.parametrize(("body", "words"), [
    ({"title": "t", "audioSrc": "https://cdn.example/a.mp3"}, "anchor_id is required"),
    ({"title": "t", "anchor_id": ANCHOR}, "audioSrc is required"),
    ({"anchor_id": ANCHOR, "audioSrc": "https://cdn.example/a.mp3"}, "title is required"),
    ({"title": "t", "anchor_id": "", "audioSrc": "https://cdn.example/a.mp3"},
     "anchor_id is required"),
    ({"title": "t", "anchor_id": 12, "audioSrc": "https://cdn.example/a.mp3"},
     "anchor_id must be a string"),
    ({"title": "t", "anchor_id": ANCHOR, "audioSrc": "ftp://x/a.mp3"}, "http(s) URL"),
    ({"title": "t", "anchor_id": ANCHOR, "audioSrc": "https://c.example/a.mp3",
      "resolution": 4000}, "resolution must be one of"),
    ({"title": "t", "anchor_id": ANCHOR, "audioSrc": "https://c.example/a.mp3",
      "anchor_type": 2}, "anchor_type"),
    ({"title": "t", "anchor_id": ANCHOR, "audioSrc": "https://c.example/a.mp3",
      "isSkipRs": "yes"}, "isSkipRs"),
    ({"title": "t", "anchor_id": ANCHOR, "audioSrc": "https://c.example/a.mp3",
      "web_bg_width": -1}, "web_bg_width"),
])
def test_generate_validates_strictly(api: httpx.Client, body: dict[str, Any],
                                     words: str) -> None:
    response = api.post(f"{API}/video/generate", json=body)
    assert response.status_code == 200  # A2E reports request errors inside the envelope
    answer = response.json()
    assert answer["code"] == 400
    assert words in answer["msg"]
    assert coins(api) == 100_000  # nothing was charged


def test_other_bodies_validate_strictly(api: httpx.Client) -> None:
    def error(path: str, **kwargs: Any) -> str:
        answer = api.post(f"{API}/video/{path}", **kwargs).json()
        assert answer["code"] == 400, answer
        return answer["msg"]

    assert "JSON" in error("generate", content=b"{not json", headers={
        "content-type": "application/json"})
    assert "JSON object" in error("generate", json=[1, 2])
    assert "msg is required" in error("send_tts", json={"tts_id": "v"})
    assert "tts_id or user_voice_id" in error("send_tts", json={"msg": "hi"})
    assert "not both" in error("send_tts", json={"msg": "hi", "tts_id": "v",
                                                 "user_voice_id": "u"})
    assert "speechRate" in error("send_tts", json={"msg": "hi", "tts_id": "v",
                                                   "speechRate": 9})
    assert "too long" in error("send_tts", json={"msg": "x" * 5001, "tts_id": "v"})
    assert "_id is required" in error("awsResult", json={})
    unknown_audio = f"{api.base_url}files/tts/{'0' * 24}.mp3"
    assert "could not be downloaded" in error("generate", json={
        "title": "t", "anchor_id": ANCHOR, "audioSrc": unknown_audio})


def test_task_moves_through_the_documented_states(api: httpx.Client) -> None:
    audio = tts(api)
    assert audio.endswith(".mp3")
    task_id = generate(api, audio)
    assert len(task_id) == 24
    cost = video_cost(speech_seconds(TEXT), 720)
    assert coins(api) == 100_000 - cost
    seen = run_to_end(api, task_id)
    assert [(s["status"], s["process"]) for s in seen] == [
        ("start", 0), ("pending", 0), ("process", 50), ("copy", 99), ("success", 100)]
    assert all(s["result"] == "" for s in seen[:-1])
    done = seen[-1]
    assert done["result"].endswith(f"/files/{task_id}.mp4")
    assert done["_id"] == task_id
    assert done["anchor_id"] == ANCHOR
    assert done["msg"] == ""
    assert done["coins"] == cost
    assert done["createdAt"].endswith("Z")
    assert poll(api, task_id)["status"] == "success"  # terminal states stay
    assert coins(api) == 100_000 - cost


def test_cost_formula(api: httpx.Client) -> None:
    assert speech_seconds("word " * 25) == 10.0
    assert speech_seconds("hi") == 1.0
    assert video_cost(10.0, 1080) == 30
    assert video_cost(10.1, 720) == 22
    external = "https://cdn.example/voice/abc.mp3"
    task_id = generate(api, external, resolution=480)
    assert poll(api, task_id)["coins"] == video_cost(external_audio_seconds(external), 480)
    assert 5 <= external_audio_seconds(external) < 15


def test_states_per_poll_and_report_coins_are_configurable(api: httpx.Client) -> None:
    control(api, "config", states_per_poll=5, report_coins=False)
    task_id = generate(api, tts(api))
    item = poll(api, task_id)
    assert item["status"] == "success"
    assert "coins" not in item  # the balance delta is then the only way to see the cost
    state = control(api, "state", method="GET")
    assert state["coins"] == 100_000 - video_cost(speech_seconds(TEXT), 720)
    assert state["config"]["states_per_poll"] == 5


def test_result_is_a_real_short_mp4(api: httpx.Client, tmp_path: Path) -> None:
    _, done = finished_video(api)
    response = httpx.get(done["result"])  # no credentials: a CDN-style URL
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == len(response.content) < 200_000
    path = tmp_path / "result.mp4"
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        [video] = container.streams.video
        [audio] = container.streams.audio
        assert video.codec_context.name == "h264"
        assert audio.codec_context.name == "aac"
        assert (video.codec_context.width, video.codec_context.height) == (360, 640)
        assert container.duration is not None
        assert 3.0 <= container.duration / 1_000_000 <= 4.1
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # The background is the anchor's colour (away from the boxes).
    expected = bytes.fromhex(anchor_colour(ANCHOR)[2:])
    pixel = frame[600, 10]
    assert all(abs(int(p) - e) <= 12 for p, e in zip(pixel, expected, strict=True))


def test_same_anchor_same_video_other_anchor_other_video(api: httpx.Client) -> None:
    first = httpx.get(finished_video(api)[1]["result"]).content
    again = httpx.get(finished_video(api)[1]["result"]).content
    other = httpx.get(finished_video(api, OTHER_ANCHOR)[1]["result"]).content
    assert first == again
    assert first != other
    assert anchor_colour(ANCHOR) != anchor_colour(OTHER_ANCHOR)


def test_range_requests(api: httpx.Client) -> None:
    url = finished_video(api)[1]["result"]
    full = httpx.get(url).content
    size = len(full)
    head = httpx.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == size
    assert head.content == b""
    first = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-99/{size}"
    assert first.content == full[:100]
    rest = httpx.get(url, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206
    assert first.content + rest.content == full
    tail = httpx.get(url, headers={"Range": "bytes=-10"})
    assert tail.content == full[-10:]
    past = httpx.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    stale = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == full


def test_tts_audio_downloads(api: httpx.Client, tmp_path: Path) -> None:
    url = tts(api)
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    path = tmp_path / "speech.mp3"
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        [stream] = container.streams.audio
        assert stream.codec_context.name.startswith("mp3")
        assert container.duration is not None
        assert abs(container.duration / 1e6 - speech_seconds(TEXT)) < 0.2


def test_insufficient_coins(api: httpx.Client) -> None:
    control(api, "config", coins=5)
    audio = tts(api)  # TTS is free
    answer = api.post(f"{API}/video/generate", json={
        "title": "t", "anchor_id": ANCHOR, "audioSrc": audio, "resolution": 720}).json()
    assert answer["code"] == 402
    assert "Insufficient coins" in answer["msg"]
    assert coins(api) == 5
    control(api, "config", coins=video_cost(speech_seconds(TEXT), 720))
    generate(api, audio)
    assert coins(api) == 0


def test_failed_job_refunds_and_says_why(api: httpx.Client) -> None:
    control(api, "next_jobs", outcome="fail", message="face not detected")
    task_id = generate(api, tts(api))
    seen = run_to_end(api, task_id)
    assert [s["status"] for s in seen] == ["start", "pending", "process", "fail"]
    assert seen[-1]["msg"] == "face not detected"
    assert seen[-1]["result"] == ""
    assert seen[-1]["coins"] == 0
    assert coins(api) == 100_000  # refunded once, however often it is polled
    poll(api, task_id)
    assert coins(api) == 100_000
    # The queue held one entry: the next job is fine.
    assert run_to_end(api, generate(api, tts(api)))[-1]["status"] == "success"


def test_slow_job_stays_in_process(api: httpx.Client) -> None:
    control(api, "next_jobs", outcome="slow", polls=3)
    seen = run_to_end(api, generate(api, tts(api)))
    process = [s["process"] for s in seen if s["status"] == "process"]
    assert len(process) == 4
    assert process == sorted(process)
    assert len(set(process)) == 4
    assert [s["status"] for s in seen][-2:] == ["copy", "success"]


def test_corrupt_result(api: httpx.Client, tmp_path: Path) -> None:
    control(api, "next_jobs", outcome="corrupt")
    url = finished_video(api)[1]["result"]
    good = httpx.get(finished_video(api)[1]["result"]).content
    bad = httpx.get(url).content
    assert len(bad) == len(good)
    assert bad != good
    path = tmp_path / "bad.mp4"
    path.write_bytes(bad)
    with pytest.raises(av.FFmpegError):
        decode_all(path)


def test_truncated_result(sandbox: Any, api: httpx.Client) -> None:
    control(api, "next_jobs", outcome="truncated")
    url = finished_video(api)[1]["result"]
    received = bytearray()
    with httpx.stream("GET", url) as response:
        declared = int(response.headers["content-length"])
        with pytest.raises(httpx.RemoteProtocolError):
            read_all(response, received)
    assert 0 < len(received) < declared
    # The generic truncate fault on the download route does the same to a good result.
    good_url = finished_video(api)[1]["result"]
    sandbox.add_fault(system="a2e", route="/files/*", action="truncate", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(good_url)
    assert httpx.get(good_url).status_code == 200


def test_injected_faults_use_the_a2e_envelope(sandbox: Any, api: httpx.Client) -> None:
    sandbox.add_fault(system="a2e", route=f"{API}/video/awsResult", action="status",
                      status=503, times=1)
    response = api.post(f"{API}/video/awsResult", json={"_id": "0" * 24})
    assert response.status_code == 503
    assert response.json()["code"] == 503
    assert response.json()["msg"]
    sandbox.add_fault(system="a2e", route=f"{API}/user/*", action="rate_limit", retry_after=9,
                      times=1)
    limited = api.get(f"{API}/user/remainingCoins")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "9"
    assert limited.json()["code"] == 429


def test_per_key_rate_limit(sandbox: Any, api: httpx.Client) -> None:
    control(api, "config", rate_limit=3)
    for _ in range(3):
        coins(api)
    limited = api.get(f"{API}/user/remainingCoins")
    assert limited.status_code == 429
    body = limited.json()
    assert body["code"] == 429
    assert "3 requests per 3600 s" in body["msg"]
    assert 3500 <= int(limited.headers["retry-after"]) <= 3600
    # Other keys have their own budget; downloads and control routes are not counted.
    with httpx.Client(base_url=sandbox.url + "/a2e", headers={
            "Authorization": f"Bearer sk_sandbox_{uuid.uuid4().hex}"}) as other:
        assert coins(other) == 100_000
    assert control(api, "state", method="GET")["recent_requests"] == 3
    control(api, "config", reset_rate_limit=True)
    assert coins(api) == 100_000


def test_default_rate_limit_is_100_per_hour(api: httpx.Client) -> None:
    config = control(api, "state", method="GET")["config"]
    assert (config["rate_limit"], config["rate_window"]) == (100, 3600.0)


def test_tasks_are_private_to_their_key_and_can_be_deleted(sandbox: Any,
                                                          api: httpx.Client) -> None:
    task_id = generate(api, tts(api))
    poll(api, task_id)
    with httpx.Client(base_url=sandbox.url + "/a2e", headers={
            "Authorization": f"Bearer sk_sandbox_{uuid.uuid4().hex}"}) as other:
        assert data(other.post(f"{API}/video/awsResult", json={"_id": task_id})) == []
        assert other.delete(f"{API}/video/{task_id}").json()["code"] == 404
    assert data(api.delete(f"{API}/video/{task_id}")) == {"_id": task_id}
    assert coins(api) == 100_000  # deleted before success: refunded
    assert data(api.post(f"{API}/video/awsResult", json={"_id": task_id})) == []
    assert api.delete(f"{API}/video/{task_id}").json()["code"] == 404


def test_result_urls_expire(api: httpx.Client) -> None:
    control(api, "config", result_ttl=0)
    url = finished_video(api)[1]["result"]
    assert httpx.get(url).status_code == 403


def test_control_routes_validate(api: httpx.Client) -> None:
    assert api.post("/_control/next_jobs", json={"outcome": "explode"}).status_code == 400
    assert api.post("/_control/next_jobs", json={"outcome": "fail", "count": 0}
                    ).status_code == 400
    assert api.post("/_control/config", json={"rate_limit": 0}).status_code == 400
    assert api.post("/_control/config", json={"nope": 1}).status_code == 400
    control(api, "next_jobs", outcome="slow", count=2)
    assert len(control(api, "state", method="GET")["queue"]) == 2
    control(api, "next_jobs", method="DELETE")
    assert control(api, "state", method="GET")["queue"] == []


def test_a_task_survives_a_restart(tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer sk_sandbox_restart"}
    with SandboxServer(state_dir=tmp_path, seed=7) as server, httpx.Client(
            base_url=server.url + "/a2e", headers=headers) as api:
        task_id = generate(api, tts(api))
        assert poll(api, task_id)["status"] == "start"
        assert poll(api, task_id)["status"] == "pending"
        balance = coins(api)
    with SandboxServer(state_dir=tmp_path, seed=7) as server, httpx.Client(
            base_url=server.url + "/a2e", headers=headers) as api:
        seen = run_to_end(api, task_id)
        assert [s["status"] for s in seen] == ["process", "copy", "success"]
        assert coins(api) == balance
        assert control(api, "state", method="GET")["recent_requests"] == 9
        assert server.url in seen[-1]["result"]
        assert httpx.get(seen[-1]["result"]).status_code == 200


def test_aws_list_pages_newest_first(api: httpx.Client) -> None:
    created = [generate(api, f"https://cdn.example/{n}.mp3") for n in range(23)]
    newest_first = created[::-1]

    def page(number: int, size: int) -> dict[str, Any]:
        return data(api.get(f"{API}/video/awsList", params={"current": number,
                                                            "pageSize": size}))

    pages = [page(n, 10) for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [23] * 4
    assert [[t["_id"] for t in p["list"]] for p in pages] == [
        newest_first[:10], newest_first[10:20], newest_first[20:], []]
    # A listing is a poll of each task on the page (per-poll mode): one state further.
    assert all(t["status"] == "start" for t in pages[0]["list"])
    assert all(t["status"] == "start" for t in pages[1]["list"])
    assert page(1, 500)["pageSize"] == 100
    data(api.delete(f"{API}/video/{created[-1]}"))
    assert [t["_id"] for t in page(1, 2)["list"]] == newest_first[1:3]
    assert page(1, 2)["total"] == 22


def test_aws_list_of_tasks_stored_before_the_task_lists(tmp_path: Path) -> None:
    key = "sk_sandbox_old"
    headers = {"Authorization": f"Bearer {key}"}
    with SandboxServer(state_dir=tmp_path) as server, httpx.Client(
            base_url=server.url + "/a2e", headers=headers) as api:
        ids = [generate(api, f"https://cdn.example/{n}.mp3") for n in range(3)]
    store = StateStore(tmp_path)  # as an older sandbox left it: tasks, no per-key lists
    store.delete("a2e", f"tasks/{fingerprint(key)}")
    store.delete("a2e", "tasks_indexed")
    store.close()
    with SandboxServer(state_dir=tmp_path) as server, httpx.Client(
            base_url=server.url + "/a2e", headers=headers) as api:
        listed = data(api.get(f"{API}/video/awsList"))
        assert [t["_id"] for t in listed["list"]] == ids[::-1]


# --- timed renders and the rate limit on the sandbox clock ----------------------------------

T0 = dt.datetime(2030, 3, 1, 10, 0, tzinfo=dt.UTC).timestamp()
RENDER = 600.0
ORDER = ["init", "start", "pending", "process", "copy", "success"]


def render_time(seed: int, task_id: str, base: float = RENDER) -> float:
    """The task's own render time as the sandbox draws it (`ctx.rng("render", task_id)`)."""
    return base * derive_rng(seed, "a2e", "render", task_id).uniform(0.75, 1.25)


def listed(api: httpx.Client) -> dict[str, dict[str, Any]]:
    page = data(api.get(f"{API}/video/awsList", params={"current": 1, "pageSize": 100}))
    return {t["_id"]: t for t in page["list"]}


@pytest.fixture
def timed(sandbox: SandboxServer, api: httpx.Client) -> httpx.Client:
    """This test's key in timed mode, the sandbox clock frozen at T0."""
    sandbox.set_clock(T0)
    assert control(api, "config", render_seconds=RENDER)["config"]["render_seconds"] == RENDER
    return api


def test_timed_task_states_follow_the_clock(sandbox: SandboxServer, timed: httpx.Client) -> None:
    task_id = generate(timed, tts(timed))
    render = render_time(sandbox.seed, task_id)
    assert 0.75 * RENDER <= render <= 1.25 * RENDER
    progress = []
    for fraction, status, process in [(0.0, "init", 0), (0.1, "start", 0),
                                      (0.2, "pending", 0), (0.5, "process", None),
                                      (0.8, "process", None), (0.95, "copy", 99),
                                      (0.999, "copy", 99), (1.001, "success", 100)]:
        sandbox.set_clock(T0 + fraction * render)
        item = poll(timed, task_id)
        assert item["status"] == status, fraction
        if process is None:
            progress.append(item["process"])
        else:
            assert item["process"] == process
        assert listed(timed)[task_id] == item  # awsList computes the same state
    assert 1 <= progress[0] < progress[1] <= 98
    assert item["createdAt"] == "2030-03-01T10:00:00.000Z"
    assert item["result"].endswith(f"/files/{task_id}.mp4")
    assert httpx.get(item["result"]).status_code == 200
    sandbox.set_clock(T0 + render + 3 * 86400 + 1)  # result_ttl after the finish
    assert httpx.get(item["result"]).status_code == 403


def test_polling_often_or_once_finishes_at_the_same_clock_time(tmp_path: Path) -> None:
    """The same task (same seed, fresh state: same id) in two sandboxes: polled every 15 s of
    clock in one, once in the other; the finish is the same moment in both."""
    headers = {"Authorization": "Bearer sk_sandbox_timed"}

    def world(name: str) -> tuple[SandboxServer, httpx.Client, str]:
        server = SandboxServer(state_dir=tmp_path / name).start()
        api = httpx.Client(base_url=server.url + "/a2e", headers=headers)
        server.set_clock(T0)
        control(api, "config", render_seconds=RENDER)
        return server, api, generate(api, tts(api))

    often, often_api, task_id = world("often")
    once, once_api, same_id = world("once")
    try:
        assert same_id == task_id
        seen, now = [], T0
        while not seen or seen[-1]["status"] != "success":
            now += 15
            often.set_clock(now)
            seen.append(poll(often_api, task_id))
        statuses = [ORDER.index(s["status"]) for s in seen]
        assert statuses == sorted(statuses)
        finish = T0 + render_time(often.seed, task_id)
        assert now - 15 < finish <= now
        once.set_clock(now)
        done = poll(once_api, task_id)
        assert done["status"] == "success"
        assert done["updatedAt"] == seen[-1]["updatedAt"]  # the moment it finished
        assert dt.datetime.fromisoformat(done["updatedAt"]).timestamp() == pytest.approx(
            finish, abs=0.001)
    finally:
        for server, api in ((often, often_api), (once, once_api)):
            api.close()
            server.stop()


def test_failed_timed_task_is_refunded_once_without_a_poll(sandbox: SandboxServer,
                                                           timed: httpx.Client) -> None:
    control(timed, "next_jobs", outcome="fail", message="face not detected")
    task_id = generate(timed, tts(timed))
    render = render_time(sandbox.seed, task_id)
    cost = video_cost(speech_seconds(TEXT), 720)
    sandbox.set_clock(T0 + render - 1)
    assert coins(timed) == 100_000 - cost
    sandbox.set_clock(T0 + render + 1)
    assert coins(timed) == 100_000  # nobody polled the task
    assert control(timed, "state", method="GET")["coins"] == 100_000
    item = poll(timed, task_id)
    assert (item["status"], item["msg"], item["result"], item["coins"]) == (
        "fail", "face not detected", "", 0)
    assert listed(timed)[task_id] == item
    assert coins(timed) == 100_000
    data(timed.delete(f"{API}/video/{task_id}"))
    assert coins(timed) == 100_000  # refunded once, not again on delete


def test_failed_timed_task_is_in_process_until_its_render_time(sandbox: SandboxServer,
                                                               timed: httpx.Client) -> None:
    control(timed, "next_jobs", outcome="fail")
    task_id = generate(timed, tts(timed))
    render = render_time(sandbox.seed, task_id)
    sandbox.set_clock(T0 + render * 0.99)
    assert poll(timed, task_id)["status"] == "process"
    sandbox.set_clock(T0 + render * 1.001)
    assert poll(timed, task_id)["status"] == "fail"


def test_slow_timed_task_takes_one_plus_polls_times_as_long(sandbox: SandboxServer,
                                                            timed: httpx.Client) -> None:
    control(timed, "next_jobs", outcome="slow", polls=3)
    task_id = generate(timed, tts(timed))
    render = 4 * render_time(sandbox.seed, task_id)
    sandbox.set_clock(T0 + 0.8 * render)  # well past any normal render (1.25 * RENDER)
    assert poll(timed, task_id)["status"] == "process"
    sandbox.set_clock(T0 + 1.001 * render)
    assert poll(timed, task_id)["status"] == "success"


def test_render_seconds_is_validated_and_zero_finishes_at_once(api: httpx.Client) -> None:
    assert control(api, "state", method="GET")["config"]["render_seconds"] is None
    for bad in (-1, "10", True):
        response = api.post("/_control/config", json={"render_seconds": bad})
        assert response.status_code == 400
        assert "render_seconds must be" in response.json()["error"]
    control(api, "config", render_seconds=0)
    assert poll(api, generate(api, tts(api)))["status"] == "success"
    control(api, "config", render_seconds=None)  # back to per-poll
    assert poll(api, generate(api, tts(api)))["status"] == "start"


def test_rate_limit_counts_on_the_sandbox_clock(sandbox: SandboxServer,
                                                api: httpx.Client) -> None:
    sandbox.set_clock(T0)
    control(api, "config", rate_limit=5)
    for _ in range(5):
        coins(api)
    limited = api.get(f"{API}/user/remainingCoins")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3600"
    sandbox.advance_clock(3599)
    limited = api.get(f"{API}/user/remainingCoins")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    sandbox.advance_clock(1)  # the first five requests leave the hour
    assert coins(api) == 100_000


def test_requests_made_in_a_future_the_clock_left_do_not_count(sandbox: SandboxServer,
                                                              api: httpx.Client) -> None:
    control(api, "config", rate_limit=2)
    sandbox.set_clock(T0)  # 2030: after real time
    coins(api)
    coins(api)
    assert api.get(f"{API}/user/remainingCoins").status_code == 429
    sandbox.real_clock()
    assert coins(api) == 100_000
