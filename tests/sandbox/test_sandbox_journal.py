"""The request journal: what every system request leaves behind, secrets masked."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="module")
def http(sandbox_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_server.url) as client:
        yield client


def probe_entries(server: Any, probe: str) -> list[dict[str, Any]]:
    return [e for e in server.journal("ollama") if e["query"].get("probe") == probe]


def test_json_request_is_recorded_in_full(
        sandbox_server: Any, http: httpx.Client) -> None:
    probe = uuid.uuid4().hex
    body = {"model": "llama3.1:8b", "prompt": "hello", "stream": False}
    response = http.post("/ollama/api/generate",
                         params={"probe": probe, "tag": ["a", "b"], "access_token": "tok-123456"},
                         json=body,
                         headers={"Authorization": "Bearer sk-live-secret-value",
                                  "X-Api-Key": "key-abcdef", "X-Trace": "visible"})
    assert response.status_code == 200
    [entry] = probe_entries(sandbox_server, probe)
    assert entry["system"] == "ollama"
    assert entry["method"] == "POST"
    assert entry["path"] == "/api/generate"
    assert entry["query"] == {"probe": probe, "tag": ["a", "b"], "access_token": "***"}
    assert entry["headers"]["authorization"] == "***"
    assert entry["headers"]["x-api-key"] == "***"
    assert entry["headers"]["x-trace"] == "visible"
    assert "sk-live-secret-value" not in json.dumps(entry)
    assert entry["content_type"] == "application/json"
    assert entry["body"] == body
    assert entry["status"] == 200
    assert entry["fault"] is None
    when = dt.datetime.fromisoformat(entry["time"])
    assert when.tzinfo is not None
    assert when.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - when) < dt.timedelta(minutes=5)


def test_binary_body_is_size_and_sha256_even_when_unread(
        sandbox_server: Any, http: httpx.Client) -> None:
    probe = uuid.uuid4().hex
    payload = os.urandom(300_000)
    response = http.put("/ollama/no/such/route", params={"probe": probe},
                        content=payload, headers={"content-type": "video/mp4"})
    assert response.status_code == 404
    [entry] = probe_entries(sandbox_server, probe)
    assert entry["path"] == "/no/such/route"
    assert entry["status"] == 404
    assert entry["body"] == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_streamed_upload_is_hashed_in_passing(
        sandbox_server: Any, http: httpx.Client) -> None:
    """A 24 MB chunked upload: journaled as size + sha256 (the gate never holds it whole)."""
    probe = uuid.uuid4().hex
    chunk = os.urandom(1 << 20)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for i in range(24):
            piece = bytes([i]) + chunk[1:]
            digest.update(piece)
            yield piece

    response = http.post("/ollama/upload", params={"probe": probe},
                         content=body(), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 404
    [entry] = probe_entries(sandbox_server, probe)
    assert entry["body"] == {"size": 24 << 20, "sha256": digest.hexdigest()}


def test_large_json_is_summarised_and_forms_are_parsed_and_masked(
        sandbox_server: Any, http: httpx.Client) -> None:
    probe = uuid.uuid4().hex
    big = json.dumps({"blob": "x" * (2 << 20)}).encode()
    http.post("/ollama/api/chat", params={"probe": probe}, content=big,
              headers={"content-type": "application/json"})
    form = {"grant_type": "refresh_token", "refresh_token": "rt-abcdef123", "client_id": "app"}
    http.post("/ollama/oauth/token", params={"probe": probe}, data=form)
    big_entry, form_entry = probe_entries(sandbox_server, probe)
    assert big_entry["body"] == {"size": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    assert form_entry["content_type"] == "application/x-www-form-urlencoded"
    assert form_entry["body"] == {"grant_type": "refresh_token", "refresh_token": "***",
                                  "client_id": "app"}


def test_since_and_system_filters(
        sandbox_server: Any, http: httpx.Client) -> None:
    http.get("/ollama/api/version")
    last = sandbox_server.journal("ollama")[-1]["id"]
    http.get("/ollama/api/tags")
    http.get("/ollama/api/ps")
    newer = sandbox_server.journal("ollama", since=last)
    assert [e["path"] for e in newer] == ["/api/tags", "/api/ps"]
    assert newer[0]["id"] < newer[1]["id"]
    assert sandbox_server.journal(since=last) == newer  # all systems: only ollama so far
    bad = http.get("/_sandbox/journal", params={"system": "nope"})
    assert bad.status_code == 400


def test_control_routes_and_unknown_systems_are_not_journaled(
        sandbox_server: Any, http: httpx.Client) -> None:
    last = sandbox_server.journal()[-1]["id"] if sandbox_server.journal() else 0
    sandbox_server.health()
    missing = http.get("/nosuchsystem/x")
    assert missing.status_code == 404
    assert "ollama" in missing.json()["systems"]
    assert sandbox_server.journal(since=last) == []


@pytest.fixture
def own_server(tmp_path: Any) -> Iterator[Any]:
    from sandbox.server import SandboxServer

    with SandboxServer(state_dir=tmp_path, seed=7) as server:
        yield server


def test_clear_journal_keeps_ids_increasing(own_server: Any, http: httpx.Client) -> None:
    http.get(f"{own_server.url}/ollama/api/version")
    first_id = own_server.journal()[-1]["id"]
    own_server.clear_journal()
    assert own_server.journal() == []
    http.get(f"{own_server.url}/ollama/api/version")
    [entry] = own_server.journal()
    assert entry["id"] > first_id
