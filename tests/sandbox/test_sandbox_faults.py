"""Fault injection over real HTTP: status, 429 + Retry-After, delay, drop, truncate."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from sandbox.server import SandboxServer

CHAT = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}],
        "stream": False}


@pytest.fixture
def sandbox(sandbox_server: Any) -> Iterator[Any]:
    sandbox_server.clear_faults()
    yield sandbox_server
    sandbox_server.clear_faults()


@pytest.fixture(scope="module")
def http(sandbox_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_server.url + "/ollama") as client:
        yield client


def last_entry(server: Any) -> dict[str, Any]:
    return server.journal("ollama")[-1]


def test_status_fault_with_route_and_method(sandbox: Any, http: httpx.Client) -> None:
    fault = sandbox.add_fault(system="ollama", route="/api/c*", method="post", action="status",
                              status=503)
    assert fault["id"] > 0
    assert fault["probability"] == 1
    assert fault["method"] == "POST"
    for _ in range(3):
        response = http.post("/api/chat", json=CHAT)
        assert response.status_code == 503
        assert "error" in response.json()
    assert http.post("/api/generate", json={**CHAT, "prompt": "x"}).status_code == 200
    assert http.get("/api/tags").status_code == 200
    entry = sandbox.journal("ollama")[-3]
    assert entry["path"] == "/api/chat"
    assert entry["status"] == 503
    assert entry["fault"] == {"id": fault["id"], "action": "status"}
    assert entry["body"] == CHAT  # the body is journaled even though no system read it
    [listed] = sandbox.faults()
    assert listed["fired"] == 3
    assert listed["seen"] == 3


def test_times_limits_a_fault(sandbox: Any, http: httpx.Client) -> None:
    fault = sandbox.add_fault(system="ollama", route="/api/tags", action="status", status=500,
                              times=2)
    assert [http.get("/api/tags").status_code for _ in range(4)] == [500, 500, 200, 200]
    [listed] = sandbox.faults()
    assert listed["id"] == fault["id"]
    assert listed["fired"] == 2


def test_rate_limit_has_retry_after_and_the_error_envelope(sandbox: Any,
                                                           http: httpx.Client) -> None:
    sandbox.add_fault(system="ollama", route="/api/chat", action="rate_limit", retry_after=7)
    response = http.post("/api/chat", json=CHAT)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"error": "rate limit exceeded"}
    client = ollama.Client(host=sandbox.url + "/ollama")
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="llama3.1:8b", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429


def test_delay_then_serves_normally(sandbox: Any, http: httpx.Client) -> None:
    sandbox.add_fault(system="ollama", route="/api/version", action="delay", delay=0.3)
    started = time.monotonic()
    response = http.get("/api/version")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert response.json()["version"]
    entry = last_entry(sandbox)
    assert entry["status"] == 200
    assert entry["fault"]["action"] == "delay"
    assert entry["duration_ms"] >= 300


@pytest.mark.parametrize("phase", ["before", "after"])
def test_drop_closes_the_connection_without_a_response(sandbox: Any, http: httpx.Client,
                                                       phase: str) -> None:
    fault = sandbox.add_fault(system="ollama", route="/api/chat", action="drop", phase=phase,
                              times=1)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        http.post("/api/chat", json=CHAT)
    entry = last_entry(sandbox)
    assert entry["status"] is None
    assert entry["fault"] == {"id": fault["id"], "action": "drop"}
    assert entry["body"] == CHAT
    assert http.post("/api/chat", json=CHAT).status_code == 200  # the server is fine


def test_truncate_sends_headers_and_part_of_the_body(sandbox: Any, http: httpx.Client) -> None:
    full = http.get("/api/tags").content
    sandbox.add_fault(system="ollama", route="/api/tags", action="truncate", times=1)
    received = bytearray()

    def read_all(response: httpx.Response) -> None:
        for piece in response.iter_raw():
            received.extend(piece)

    with http.stream("GET", "/api/tags") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(full))
        with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message"):
            read_all(response)
    assert 0 < len(received) < len(full)
    assert full.startswith(bytes(received))
    entry = last_entry(sandbox)
    assert entry["status"] is None
    assert entry["fault"]["action"] == "truncate"


def test_truncate_cuts_a_stream(sandbox: Any, http: httpx.Client) -> None:
    sandbox.add_fault(system="ollama", route="/api/chat", action="truncate")
    lines = []
    with pytest.raises(httpx.RemoteProtocolError), \
            http.stream("POST", "/api/chat", json={**CHAT, "stream": True}) as response:
        lines.extend(json.loads(line) for line in response.iter_lines())
    assert all(not line["done"] for line in lines)


@pytest.mark.parametrize("spec", [
    {"system": "nope", "action": "status", "status": 500},
    {"system": "ollama", "action": "explode"},
    {"system": "ollama", "action": "status"},
    {"system": "ollama", "action": "status", "status": 503, "probability": 2},
    {"system": "ollama", "action": "delay"},
    {"system": "ollama", "action": "drop", "times": 0},
    {"system": "ollama", "action": "drop", "colour": "red"},
])
def test_invalid_fault_specs_are_400(sandbox: Any, http: httpx.Client,
                                     spec: dict[str, Any]) -> None:
    response = http.post(f"{sandbox.url}/_sandbox/faults", json=spec)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sandbox.faults() == []


def test_delete_one_fault(sandbox: Any, http: httpx.Client) -> None:
    keep = sandbox.add_fault(system="ollama", route="/api/ps", action="status", status=502)
    gone = sandbox.add_fault(system="ollama", route="/api/tags", action="status", status=502)
    sandbox.remove_fault(gone["id"])
    assert [f["id"] for f in sandbox.faults()] == [keep["id"]]
    assert http.get("/api/tags").status_code == 200
    assert http.get("/api/ps").status_code == 502
    assert http.delete(f"{sandbox.url}/_sandbox/faults/{gone['id']}").status_code == 404
    assert http.get(f"{sandbox.url}/_sandbox/faults/{keep['id']}").json() == sandbox.faults()[0]


def flaky_pattern(state_dir: Path, seed: int) -> list[int]:
    with SandboxServer(state_dir=state_dir, seed=seed) as server, \
            httpx.Client(base_url=server.url) as http:
        server.add_fault(system="ollama", route="/api/version", action="status", status=503,
                         probability=0.5)
        return [http.get("/ollama/api/version").status_code for _ in range(24)]


def test_probability_pattern_is_fixed_by_the_seed(tmp_path: Path) -> None:
    first = flaky_pattern(tmp_path / "a", seed=99)
    second = flaky_pattern(tmp_path / "b", seed=99)
    other_seed = flaky_pattern(tmp_path / "c", seed=100)
    assert first == second
    assert set(first) == {200, 503}
    assert other_seed != first


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with SandboxServer(state_dir=tmp_path, seed=5) as server, httpx.Client() as http:
        fault = server.add_fault(system="ollama", route="/api/tags", action="status", status=500,
                                 times=2)
        assert http.get(f"{server.url}/ollama/api/tags").status_code == 500
        http.post(f"{server.url}/ollama/api/chat", json=CHAT)
        journal = server.journal()
    with SandboxServer(state_dir=tmp_path, seed=5) as server, httpx.Client() as http:
        assert server.journal() == journal
        [listed] = server.faults()
        assert listed["id"] == fault["id"]
        assert listed["fired"] == 1
        # One firing left of two, then the fault is spent.
        codes = [http.get(f"{server.url}/ollama/api/tags").status_code for _ in range(2)]
        assert codes == [500, 200]
        assert len(server.journal()) == len(journal) + 2
        assert server.journal()[-1]["id"] > journal[-1]["id"]


def test_refuses_non_loopback_hosts(tmp_path: Path) -> None:
    from sandbox.server import serve

    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(state_dir=tmp_path, host="0.0.0.0")  # noqa: S104
    with pytest.raises(ValueError, match="loopback"):
        serve(host="192.168.1.10", state_dir=tmp_path)


def test_delay_after_lets_the_system_act_and_holds_the_answer(sandbox: Any) -> None:
    """A client that times out on a late answer must not conclude that nothing happened."""
    from resources.telegram import SANDBOX_ALERT_CHAT_ID, SANDBOX_BOT_TOKEN

    base = f"{sandbox.url}/telegram"
    text = f"late answer {time.monotonic_ns()}"
    sandbox.add_fault(system="telegram", route="/bot*/sendMessage", action="delay", delay=1.0,
                      phase="after", times=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base}/bot{SANDBOX_BOT_TOKEN}/sendMessage", timeout=0.2,
                   json={"chat_id": SANDBOX_ALERT_CHAT_ID, "text": text})
    sent = httpx.get(f"{base}/_control/sent", params={"chat_id": SANDBOX_ALERT_CHAT_ID}).json()
    assert [m["text"] for m in sent].count(text) == 1
