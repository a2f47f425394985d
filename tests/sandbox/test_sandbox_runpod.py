"""The RunPod serverless stand-in over real HTTP, raw and through resources.runpod."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from resources.http import AuthError, PermanentError, RetryableError, RetryPolicy
from resources.runpod import RunPodClient, RunPodResource, RunPodStatus

KEY = "rpa_sandbox_tests"
INPUT = {"anchor_id": "6650a1c0e4b0f1a2b3c40001", "text": "Hello friends, quick update!"}


@pytest.fixture
def endpoint() -> str:
    """A fresh endpoint per test: its own jobs and fault queue."""
    return f"ep{uuid.uuid4().hex[:10]}"


@pytest.fixture
def http(sandbox: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url + "/runpod",
                      headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


@pytest.fixture
def client(sandbox: Any, endpoint: str) -> Iterator[RunPodClient]:
    retry = RetryPolicy(random=lambda: 0.0, sleep=lambda _: None)
    with RunPodClient(KEY, endpoint, base_url=sandbox.url + "/runpod", retry=retry) as c:
        yield c


def next_jobs(http: httpx.Client, **body: Any) -> None:
    assert http.post("/_control/next_jobs", json=body).status_code == 200


def run_to_end(http: httpx.Client, endpoint: str, job_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for _ in range(20):
        response = http.get(f"/v2/{endpoint}/status/{job_id}")
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return seen
    raise AssertionError(f"job {job_id} never finished")


def test_run_status_completed_with_a_real_mp4(http: httpx.Client, endpoint: str,
                                              tmp_path: Path) -> None:
    queued = http.post(f"/v2/{endpoint}/run", json={"input": INPUT})
    assert queued.status_code == 200
    job = queued.json()
    assert job["status"] == "IN_QUEUE"
    assert job["id"].endswith("-u1")
    seen = run_to_end(http, endpoint, job["id"])
    assert [s["status"] for s in seen] == ["IN_PROGRESS", "COMPLETED"]
    done = seen[-1]
    assert done["delayTime"] > 0
    assert done["executionTime"] > 0
    assert done["workerId"]
    output = done["output"]
    assert (output["width"], output["height"]) == (360, 640)
    video = httpx.get(output["video_url"])
    assert video.status_code == 200
    path = tmp_path / "out.mp4"
    path.write_bytes(video.content)
    with av.open(str(path)) as container:
        assert [s.codec_context.name for s in container.streams.video] == ["h264"]
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
        assert container.duration is not None
        assert 3.0 <= container.duration / 1e6 <= 4.1
    ranged = httpx.get(output["video_url"], headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.content == video.content[10:20]


def test_failed_jobs(http: httpx.Client, endpoint: str) -> None:
    bad = http.post(f"/v2/{endpoint}/run", json={"input": {"text": "no anchor"}}).json()
    assert bad["status"] == "IN_QUEUE"  # the worker, not the API, rejects the input
    done = run_to_end(http, endpoint, bad["id"])[-1]
    assert done["status"] == "FAILED"
    assert "anchor_id" in done["error"]
    assert "output" not in done
    next_jobs(http, outcome="fail", endpoint_id=endpoint, message="CUDA out of memory")
    job = http.post(f"/v2/{endpoint}/run", json={"input": INPUT}).json()
    done = run_to_end(http, endpoint, job["id"])[-1]
    assert done == {**done, "status": "FAILED", "error": "CUDA out of memory"}
    assert httpx.get(http.base_url.join(f"files/{job['id']}.mp4")).status_code == 404


def test_slow_corrupt_and_truncated_jobs(http: httpx.Client, endpoint: str) -> None:
    next_jobs(http, outcome="slow", endpoint_id=endpoint, polls=2)
    job = http.post(f"/v2/{endpoint}/run", json={"input": INPUT}).json()
    assert [s["status"] for s in run_to_end(http, endpoint, job["id"])] == [
        "IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    next_jobs(http, outcome="corrupt", endpoint_id=endpoint)
    job = http.post(f"/v2/{endpoint}/run", json={"input": INPUT}).json()
    url = run_to_end(http, endpoint, job["id"])[-1]["output"]["video_url"]
    assert httpx.get(url).content[4:8] == b"ftyp"
    assert b"moov" not in httpx.get(url).content
    next_jobs(http, outcome="truncated", endpoint_id=endpoint)
    job = http.post(f"/v2/{endpoint}/run", json={"input": INPUT}).json()
    url = run_to_end(http, endpoint, job["id"])[-1]["output"]["video_url"]
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)


def test_auth_and_request_errors(sandbox: Any, http: httpx.Client, endpoint: str) -> None:
    url = f"{sandbox.url}/runpod/v2/{endpoint}/run"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = httpx.post(url, json={"input": INPUT}, headers=headers)
        assert response.status_code == 401
        assert "error" in response.json()
    bare = httpx.post(url, json={"input": INPUT}, headers={"Authorization": KEY})
    assert bare.status_code == 200
    assert http.post(f"/v2/{endpoint}/run", json={"prompt": "x"}).status_code == 400
    assert http.post(f"/v2/{endpoint}/run", json={"input": "x"}).status_code == 400
    assert http.post(f"/v2/{endpoint}/run", content=b"{").status_code == 400
    assert http.post(f"/v2/{endpoint}/run", json={"input": {}, "webhook": "ftp://x"}
                     ).status_code == 400
    missing = http.get(f"/v2/{endpoint}/status/nope-u1")
    assert missing.status_code == 404
    assert missing.json() == {"error": "request does not exist"}
    job = bare.json()["id"]
    assert http.get(f"/v2/other{endpoint}/status/{job}").status_code == 404


def test_cancel_and_health(http: httpx.Client, endpoint: str) -> None:
    job = http.post(f"/v2/{endpoint}/run", json={"input": INPUT}).json()["id"]
    cancelled = http.post(f"/v2/{endpoint}/cancel/{job}").json()
    assert cancelled == {"id": job, "status": "CANCELLED"}
    assert http.get(f"/v2/{endpoint}/status/{job}").json()["status"] == "CANCELLED"
    health = http.get(f"/v2/{endpoint}/health").json()
    assert set(health) == {"jobs", "workers"}
    assert health["jobs"]["inQueue"] == 0


def test_client_happy_path(client: RunPodClient) -> None:
    job_id = client.run(INPUT)
    first = client.status(job_id)
    assert first.status is RunPodStatus.IN_PROGRESS
    assert not first.terminal
    done = client.status(job_id)
    assert done.succeeded
    assert done.terminal
    assert done.video_url
    assert done.execution_ms
    assert httpx.get(done.video_url).status_code == 200


def test_client_failure_cancel_and_auth(sandbox: Any, client: RunPodClient,
                                        endpoint: str) -> None:
    job_id = client.run({"text": "no anchor"})
    client.status(job_id)
    failed = client.status(job_id)
    assert failed.status is RunPodStatus.FAILED
    assert failed.error and "anchor_id" in failed.error
    assert failed.video_url is None
    assert client.cancel(client.run(INPUT)).status is RunPodStatus.CANCELLED
    with pytest.raises(PermanentError):
        client.status("nope-u1")
    with RunPodClient("rpa_live_x", endpoint, base_url=sandbox.url + "/runpod") as wrong, \
            pytest.raises(AuthError):
        wrong.run(INPUT)


def test_client_never_resends_run_but_retries_status(sandbox: Any, client: RunPodClient,
                                                     endpoint: str) -> None:
    sandbox.add_fault(system="runpod", route=f"/v2/{endpoint}/run", action="status",
                      status=502, times=1)
    since = max((e["id"] for e in sandbox.journal()), default=0)
    with pytest.raises(RetryableError):
        client.run(INPUT)
    assert len([e for e in sandbox.journal("runpod", since) if e["path"].endswith("/run")]) == 1
    job_id = client.run(INPUT)
    sandbox.add_fault(system="runpod", route=f"/v2/{endpoint}/status/*", action="status",
                      status=503, times=1)
    assert client.status(job_id).status is RunPodStatus.IN_PROGRESS


def test_resource_configured() -> None:
    assert RunPodResource(endpoint_id="").configured is False
    assert RunPodResource(api_key="rpa_x", endpoint_id="abc").configured is True
    assert RunPodResource().configured is True  # sandbox mode has a sandbox endpoint
    with pytest.raises(ValueError, match="RUNPOD_ENDPOINT_ID"):
        RunPodResource(endpoint_id="").get_client()
    with RunPodResource(endpoint_id="abc", base_url="http://127.0.0.1:1").get_client() as c:
        assert c.endpoint_id == "abc"
