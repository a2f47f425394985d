"""`/media` serves the local video store, so URLs from VideoStoreResource resolve in sandbox."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from resources.url_policy import content_key
from resources.video_store import LocalVideoStore
from sandbox.systems.media import media_root


@pytest.fixture
def stored(sandbox_server, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    data = uuid.uuid4().bytes * 4096  # 64 KiB, unique per test
    src = tmp_path / "clip.mp4"
    src.write_bytes(data)
    store = LocalVideoStore(media_root(), f"{sandbox_server.url}/media")
    obj = store.put_file(src, content_key(hashlib.sha256(data).hexdigest()), "video/mp4")
    yield obj.public_url, data
    (media_root() / obj.key).unlink(missing_ok=True)


def test_store_urls_are_served_with_ranges(stored: tuple[str, bytes], sandbox_server) -> None:
    url, data = stored
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == data
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert sandbox_server.journal("media")[-1]["status"] == 206
    assert httpx.get(url.replace(".mp4", "0.mp4")).status_code == 404
