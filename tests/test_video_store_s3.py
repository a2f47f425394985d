"""The S3 / R2 backend against moto's real S3 server (HTTP on 127.0.0.1), via dagster-aws."""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster_aws.s3 import S3Resource

from resources.url_policy import content_key
from resources.video_store import MiB, S3VideoStore, VideoStore, VideoStoreResource
from waifugen_assets.core import config

REGION = "us-east-1"
KEY_ID = "testing-key-id"
SECRET = "testing-secret-access-key"



@pytest.fixture
def s3(moto_endpoint: str) -> S3Resource:
    return S3Resource(endpoint_url=moto_endpoint, region_name=REGION,
                      aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


class Calls:
    """Counts S3 operations a boto3 client makes (thread-safe: uploads use worker threads)."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3.*", self._record)

    def _record(self, model: Any, **kwargs: Any) -> None:
        with self._lock:
            self.names.append(model.name)

    def count(self, name: str) -> int:
        with self._lock:
            return self.names.count(name)

    @property
    def uploads(self) -> int:
        return self.count("PutObject") + self.count("CreateMultipartUpload")


@pytest.fixture
def bucket(s3: S3Resource) -> str:
    name = f"reels-{uuid.uuid4().hex[:12]}"
    s3.get_client().create_bucket(Bucket=name)
    return name


def make_file(tmp_path: Path, size: int, seed: int) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / f"src-{seed}.mp4"
    path.write_bytes(data)
    return path, data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_small_put_stores_bytes_metadata_and_public_url(
        s3: S3Resource, bucket: str, moto_endpoint: str, tmp_path: Path) -> None:
    store = S3VideoStore.from_resource(s3, bucket)
    assert isinstance(store, VideoStore)
    path, data = make_file(tmp_path, 300_000, seed=1)
    key = content_key(sha(data))
    assert not store.exists(key)
    stored = store.put_file(path, key, "video/mp4")
    assert (stored.key, stored.bytes, stored.sha256, stored.backend, stored.uploaded) == \
        (key, len(data), sha(data), "s3", True)
    assert store.exists(key)
    obj = store.client.get_object(Bucket=bucket, Key=key)
    assert sha(obj["Body"].read()) == sha(data)
    assert obj["ContentType"] == "video/mp4"
    assert obj["Metadata"] == {"sha256": sha(data)}
    assert "immutable" in obj["CacheControl"]
    # No public base configured: the path-style endpoint/bucket/key form.
    assert stored.public_url == f"{moto_endpoint}/{bucket}/{key}"


def test_large_put_uses_multipart_and_round_trips(s3: S3Resource, bucket: str,
                                                  tmp_path: Path) -> None:
    store = S3VideoStore.from_resource(s3, bucket, multipart_threshold=5 * MiB,
                                       multipart_chunksize=5 * MiB)
    calls = Calls(store.client)
    path, data = make_file(tmp_path, 11 * MiB + 123, seed=2)
    key = content_key(sha(data))
    stored = store.put_file(path, key)
    assert stored.uploaded and stored.bytes == len(data)
    assert calls.count("CreateMultipartUpload") == 1
    assert calls.count("UploadPart") == 3
    assert calls.count("CompleteMultipartUpload") == 1
    assert calls.count("PutObject") == 0
    head = store.head(key)
    assert head is not None and head["ETag"].strip('"').endswith("-3")
    fetched = store.get_path(key, tmp_path / "work")
    assert fetched.name == key.rsplit("/", 1)[-1]
    assert sha(fetched.read_bytes()) == sha(data)
    assert [p.name for p in (tmp_path / "work").iterdir()] == [fetched.name]


def test_reput_of_the_same_content_is_skipped(s3: S3Resource, bucket: str,
                                              tmp_path: Path) -> None:
    store = S3VideoStore.from_resource(s3, bucket)
    calls = Calls(store.client)
    path, data = make_file(tmp_path, 64_000, seed=3)
    key = content_key(sha(data))
    assert store.put_file(path, key).uploaded
    assert calls.uploads == 1
    again = store.put_file(path, key)
    assert not again.uploaded and again.sha256 == sha(data)
    assert calls.uploads == 1  # only a HeadObject the second time
    assert calls.count("HeadObject") == 2


def test_reput_replaces_an_object_without_our_checksum(s3: S3Resource, bucket: str,
                                                       tmp_path: Path) -> None:
    store = S3VideoStore.from_resource(s3, bucket)
    path, data = make_file(tmp_path, 10_000, seed=4)
    key = content_key(sha(data))
    store.client.put_object(Bucket=bucket, Key=key, Body=b"x" * len(data))  # damaged copy
    assert store.put_file(path, key).uploaded
    assert sha(store.client.get_object(Bucket=bucket, Key=key)["Body"].read()) == sha(data)


def test_public_url_formats() -> None:
    key = content_key("ab" * 32)
    r2 = S3VideoStore(object(), "reels", public_base_url="https://pub-0123.r2.dev/",
                      endpoint_url="https://acct123.r2.cloudflarestorage.com", region="auto")
    assert r2.public_url(key) == f"https://pub-0123.r2.dev/{key}"
    cdn = S3VideoStore(object(), "reels", public_base_url="https://media.example.com/v")
    assert cdn.public_url(key) == f"https://media.example.com/v/{key}"
    aws = S3VideoStore(object(), "reels", region="eu-west-1")
    assert aws.public_url(key) == f"https://reels.s3.eu-west-1.amazonaws.com/{key}"
    with pytest.raises(ValueError, match="R2's S3 endpoint is not publicly readable"):
        S3VideoStore(object(), "reels", endpoint_url="https://acct.r2.cloudflarestorage.com")


@pytest.fixture
def clean_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WAIFUGEN_HOME", str(tmp_path / "home"))
    for name in ("WAIFUGEN_MODE", "VIDEO_STORE", "VIDEO_DIR", "VIDEO_PUBLIC_BASE_URL",
                 "S3_BUCKET", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID",
                 "S3_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    config.get_settings.cache_clear()
    yield
    config.get_settings.cache_clear()


def test_resource_reads_the_s3_settings(moto_endpoint: str, bucket: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        clean_settings: None) -> None:
    for name, value in {"VIDEO_STORE": "s3", "S3_BUCKET": bucket,
                        "S3_ENDPOINT_URL": moto_endpoint, "S3_REGION": REGION,
                        "S3_ACCESS_KEY_ID": KEY_ID, "S3_SECRET_ACCESS_KEY": SECRET,
                        "VIDEO_PUBLIC_BASE_URL": "https://pub-0123.r2.dev"}.items():
        monkeypatch.setenv(name, value)
    config.get_settings.cache_clear()
    store = VideoStoreResource().store()
    assert isinstance(store, S3VideoStore) and store.bucket == bucket
    path, data = make_file(tmp_path, 1_000, seed=6)
    key = content_key(sha(data))
    assert store.put_file(path, key).public_url == f"https://pub-0123.r2.dev/{key}"
    assert store.exists(key)


def test_resource_builds_the_s3_backend(moto_endpoint: str, bucket: str, tmp_path: Path,
                                        clean_settings: None) -> None:
    resource = VideoStoreResource(
        backend="s3", s3_bucket=bucket, s3_endpoint_url=moto_endpoint, s3_region=REGION,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        public_base_url="https://cdn.example.com/", multipart_threshold_bytes=5 * MiB,
        multipart_chunk_bytes=5 * MiB)
    store = resource.store()
    assert isinstance(store, S3VideoStore)
    assert store.transfer_config.multipart_threshold == 5 * MiB
    path, data = make_file(tmp_path, 2_000, seed=5)
    key = content_key(sha(data))
    stored = store.put_file(path, key)
    assert stored.public_url == f"https://cdn.example.com/{key}"
    assert store.exists(key)
