"""Where backup archives live: a local directory (BACKUP_DIR) and, when BACKUP_S3_URL is set,
an S3 / R2 bucket. Archives are always written locally first (the sha256 is computed while
the bytes are written), then uploaded; the row's `location` is the upload's s3:// URL when
there is one (the copy that outlives the machine), else the local path.

Files are private (0600 in a 0700 directory): the globals archive holds password hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from waifugen_assets.core import redaction

CHUNK = 1024 * 1024


class StoreError(RuntimeError):
    """An archive could not be written, uploaded, fetched or deleted (one line)."""


@dataclass(frozen=True)
class S3Target:
    bucket: str
    prefix: str  # "" or "some/prefix" (no slashes around)
    endpoint_url: str | None = None
    region: str | None = None
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key(self, set_id: str, name: str) -> str:
        return "/".join(p for p in (self.prefix, set_id, name) if p)


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix); anything else is a StoreError naming it."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise StoreError(f"BACKUP_S3_URL={url!r}: expected s3://bucket or s3://bucket/prefix")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


class HashingWriter:
    """A file that hashes (sha256) and counts what is written to it."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.bytes += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@contextlib.contextmanager
def write_archive(path: Path) -> Iterator[HashingWriter]:
    """Write `path` whole or not at all: to a private `.partial` file, fsynced, then renamed."""
    private_dir(path.parent)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = HashingWriter(raw)
            yield writer
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def hash_file(path: Path) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def s3_client(target: S3Target) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=target.endpoint_url,
                        region_name=target.region or "auto",
                        aws_access_key_id=target.key_id,
                        aws_secret_access_key=target.secret)


def _s3_error(action: str, url: str, exc: Exception) -> StoreError:
    detail = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    reason = detail.get("Code") or detail.get("Message") or type(exc).__name__
    return StoreError(redaction.redact(f"{action} {url} failed: {reason} ({exc})"[:500]))


def upload(target: S3Target, path: Path, set_id: str, sha256: str) -> str:
    """Upload a finished archive (multipart when large); its s3:// URL."""
    from boto3.s3.transfer import TransferConfig

    key = target.key(set_id, path.name)
    url = target.url(key)
    try:
        s3_client(target).upload_file(
            str(path), target.bucket, key,
            ExtraArgs={"Metadata": {"sha256": sha256}},
            Config=TransferConfig(multipart_threshold=64 * CHUNK, multipart_chunksize=64 * CHUNK))
    except Exception as exc:  # boto3 raises several unrelated types; one line whichever
        raise _s3_error("upload to", url, exc) from None
    return url


def split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url[5:].partition("/")
    return bucket, key


@contextlib.contextmanager
def fetched(location: str, target: S3Target | None, work_dir: Path) -> Iterator[Path]:
    """The archive at `location` as a local file: the file itself, or a download into a
    private temporary directory under `work_dir`, removed afterwards."""
    if not location.startswith("s3://"):
        path = Path(location)
        if not path.is_file():
            raise StoreError(f"archive {location} is missing")
        yield path
        return
    if target is None:
        raise StoreError(f"archive {location} is in S3 but BACKUP_S3_URL is not set "
                         "(its credentials come from the S3_* settings)")
    bucket, key = split_s3_url(location)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=private_dir(work_dir)))
    try:
        dest = tmp / Path(key).name
        try:
            s3_client(target).download_file(bucket, key, str(dest))
        except Exception as exc:
            raise _s3_error("download of", location, exc) from None
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def delete(location: str, target: S3Target | None) -> None:
    """Remove an archive (a missing one is already gone)."""
    if not location.startswith("s3://"):
        with contextlib.suppress(FileNotFoundError):
            Path(location).unlink()
        with contextlib.suppress(OSError):  # the set's directory, once empty
            Path(location).parent.rmdir()
        return
    if target is None:
        raise StoreError(f"cannot delete {location}: BACKUP_S3_URL is not set")
    bucket, key = split_s3_url(location)
    try:
        s3_client(target).delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _s3_error("delete of", location, exc) from None


def put_bytes(target: S3Target, key: str, data: bytes) -> str:
    url = target.url(key)
    try:
        s3_client(target).put_object(Bucket=target.bucket, Key=key, Body=data)
    except Exception as exc:
        raise _s3_error("upload to", url, exc) from None
    return url


def get_bytes(target: S3Target, key: str) -> bytes | None:
    """An object's bytes; None if there is no such object."""
    client = s3_client(target)
    try:
        return client.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    except Exception as exc:
        raise _s3_error("download of", target.url(key), exc) from None


def list_keys(target: S3Target, prefix: str) -> list[str]:
    client = s3_client(target)
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket,
                                                                     Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
    except Exception as exc:
        raise _s3_error("listing of", target.url(prefix), exc) from None
    return keys
