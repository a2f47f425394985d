"""Durable video storage: a safe streaming download, and the local / S3 / R2 backends.

Download (`download_to_file`): one GET through the shared HTTP layer (timeouts, retries of
5xx/connect errors, redacted logs), streamed in 1 MiB chunks into a temp file in `dest_dir`
while hashing (memory stays constant, see benchmarks/storage_memory.py), with a size cap that
is checked against Content-Length before the body is read and again while streaming, a
truncated body or a Content-Length mismatch refused, and the file `os.replace`d into place
only when complete: a failed download never leaves a partial file. Redirects are followed by
hand (at most `MAX_REDIRECTS`), and every hop's URL goes through the `UrlPolicy` again
(resources/url_policy.py), so a redirect to loopback or to a metadata endpoint is refused.

Connection pinning (DNS rebinding): `make_download_client` builds its httpx transport on a
network backend that, at connect time, resolves the host, applies the same address rules and
connects only to the addresses it has just checked. A host that resolves to a public address
when `check_url` looks and to 127.0.0.1 a moment later is therefore still refused. A client
that was not made by `make_download_client` gets the per-hop URL checks only, which leaves
that rebinding window open: always download with `make_download_client`.

Backends share the `VideoStore` protocol and content-addressed keys
(`storage.content_key`: `videos/ab/cd/<sha256>.mp4`), so storing the same bytes twice is a
no-op and a key can never name different bytes:

- `LocalVideoStore(root, public_base_url)`: files under `root/<key>`, written to a temp file in
  the target directory and renamed in (atomic), mode 0644. In production nginx serves `root` at
  `public_base_url` (deploy/nginx/videos.conf: `location /videos/` serves `root` itself, so
  the base URL ends in `/videos` and a key `videos/ab/cd/<sha>.mp4` is at
  `<base>/videos/ab/cd/<sha>.mp4`; tests/test_nginx_videos.py); in sandbox
  mode the default base is `<WAIFUGEN_SANDBOX_URL>/media`, a placeholder until the sandbox
  serves the store directory there (a later issue).
- `S3VideoStore`: AWS S3 or Cloudflare R2 (endpoint_url `https://<account>.r2.cloudflarestorage
  .com`, region `auto`) through dagster-aws's `S3Resource(...).get_client()`; boto3's managed
  `upload_file` with a `TransferConfig` (multipart above 16 MiB, 16 MiB parts); the sha256 is
  kept in the object's metadata, and `head_object` decides whether an upload can be skipped.
  R2's S3 endpoint is not public: configure `public_base_url` (an r2.dev bucket URL or a
  custom domain / CDN). If an R2 account rejects boto3's default CRC32 upload checksums (older
  R2 behaviour), set `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` in the environment:
  S3Resource offers no botocore Config to set it here.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

import dagster as dg
import httpcore
import httpx
from pydantic import Field

from resources.http import HttpError, RetryPolicy, make_client, safe_url
from resources.url_policy import (
    Resolver,
    UnsafeUrl,
    UrlPolicy,
    content_key,
    sha256_of_key,
    validate_key,
)
from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.core.redaction import register_secret

DOWNLOAD_SYSTEM = "video-download"
MAX_REDIRECTS = 5
CHUNK_BYTES = 1 << 20
MiB = 1 << 20
GiB = 1 << 30
DEFAULT_MAX_DOWNLOAD_BYTES = GiB
DEFAULT_MULTIPART_BYTES = 16 * MiB
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IMMUTABLE = "public, max-age=31536000, immutable"  # content-addressed: bytes never change

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES", "MAX_REDIRECTS", "DownloadError",
    "Downloaded", "LocalVideoStore", "PinnedTransport", "S3VideoStore", "StorageError",
    "StoredObject", "UnsafeUrl", "UrlPolicy", "VideoStore", "VideoStoreResource",
    "download_to_file", "make_download_client",
]


class DownloadError(HttpError):
    """A download that did not produce a complete, verified file; `.reason` says why.

    `.retryable` is True for a body that broke off (try again later), False for a file that is
    too large, the wrong status or too many redirects.
    """

    def __init__(self, message: str, *, reason: str = "", retryable: bool = False,
                 status: int | None = None) -> None:
        super().__init__(message, system=DOWNLOAD_SYSTEM, status=status,
                         reason=reason or message, retryable=retryable)


class StorageError(RuntimeError):
    """A backend refused to store a file (e.g. its bytes do not match its content key)."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    bytes: int
    content_type: str | None


@dataclass(frozen=True)
class StoredObject:
    key: str
    public_url: str
    bytes: int
    sha256: str
    backend: Literal["local", "s3"]
    uploaded: bool = True  # False: the key already held these bytes, nothing was written


# --- pinned connections ----------------------------------------------------------------------

class _PinnedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy has just approved for this host and port."""

    def __init__(self, policy: UrlPolicy, resolve: Resolver) -> None:
        self._policy = policy
        self._resolve = resolve

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = self._policy.connect_addresses(host, port, self._resolve)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address,
                                           socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None  # connect_addresses never returns an empty list
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise UnsafeUrl("unix sockets are never used for downloads")


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport with the policy applied again to every TCP connection it opens.

    No proxies (a proxy would make the connect-time check meaningless) and no environment
    proxy settings; TLS verification and SNI use the URL's host name as usual.
    """

    def __init__(self, policy: UrlPolicy, resolve: Resolver = socket.getaddrinfo,
                 limits: httpx.Limits | None = None) -> None:
        super().__init__(trust_env=False)
        limits = limits or httpx.Limits(max_connections=10, max_keepalive_connections=5)
        # httpx offers no network_backend parameter, so the pool is rebuilt with one.
        # tests/test_storage.py (DNS rebinding test) fails if httpx stops using `_pool`.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(policy, resolve),
        )


def make_download_client(policy: UrlPolicy, *, timeout: float | httpx.Timeout = 30.0,
                         retry: RetryPolicy | None = None,
                         resolve: Resolver = socket.getaddrinfo) -> httpx.Client:
    """The client `download_to_file` expects: shared HTTP layer, no automatic redirects,
    identity encoding (the bytes on the wire are the file), connections pinned by `policy`."""
    return make_client(DOWNLOAD_SYSTEM, timeout=timeout, retry=retry,
                       headers={"accept-encoding": "identity"}, follow_redirects=False,
                       inner=PinnedTransport(policy, resolve))


# --- download --------------------------------------------------------------------------------

def download_to_file(client: httpx.Client, url: str | httpx.URL, dest_dir: Path, *,
                     max_bytes: int, policy: UrlPolicy,
                     resolve: Resolver = socket.getaddrinfo, suffix: str = ".mp4",
                     expected_sha256: str | None = None) -> Downloaded:
    """Stream `url` into `dest_dir/<sha256><suffix>`; constant memory, atomic, verified.

    Raises UnsafeUrl (the policy refused the URL or a redirect target), DownloadError (too
    large, truncated, wrong status, too many redirects, sha256 mismatch) or the HTTP layer's
    HttpError subclasses (4xx/5xx after retries, connection failures).
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    dest_dir.mkdir(parents=True, exist_ok=True)
    current = url if isinstance(url, httpx.URL) else _as_url(url)
    for _hop in range(MAX_REDIRECTS + 1):
        policy.check_url(current, resolve)
        request = client.build_request("GET", current, headers={"accept-encoding": "identity"})
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code in REDIRECT_STATUSES:
                current = _next_hop(current, response)
                continue
            if response.status_code != 200:
                raise DownloadError(
                    f"{DOWNLOAD_SYSTEM}: GET {safe_url(_no_query(current))}: HTTP "
                    f"{response.status_code} where 200 was expected", status=response.status_code)
            return _save(response, current, dest_dir, max_bytes=max_bytes, suffix=suffix,
                         expected_sha256=expected_sha256)
        finally:
            response.close()
    start = url if isinstance(url, httpx.URL) else _as_url(url)
    raise DownloadError(f"{DOWNLOAD_SYSTEM}: {safe_url(_no_query(start))}: more than "
                        f"{MAX_REDIRECTS} redirects", reason="too many redirects")


def _as_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise UnsafeUrl(f"unparsable URL ({exc})") from None


def _no_query(url: httpx.URL) -> httpx.URL:
    return url.copy_with(query=None, fragment=None)


def _next_hop(current: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise DownloadError(f"{DOWNLOAD_SYSTEM}: GET {safe_url(_no_query(current))}: HTTP "
                            f"{response.status_code} redirect without a Location header",
                            status=response.status_code)
    try:
        return current.join(location.strip())
    except (httpx.InvalidURL, ValueError) as exc:
        raise UnsafeUrl(f"redirect to an unparsable Location ({exc})") from None


def _content_length(response: httpx.Response, where: str) -> int | None:
    raw = response.headers.get("content-length")
    if raw is None:
        return None
    values = {v.strip() for v in raw.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise DownloadError(f"{where}: malformed Content-Length {raw!r}")
    return int(values.pop())


def _save(response: httpx.Response, url: httpx.URL, dest_dir: Path, *, max_bytes: int,
          suffix: str, expected_sha256: str | None) -> Downloaded:
    where = f"{DOWNLOAD_SYSTEM}: GET {safe_url(_no_query(url))}"
    declared = _content_length(response, where)
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"{where}: Content-Length {declared} exceeds the cap of "
                            f"{max_bytes} bytes; not downloading", reason="too large")
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in _body_chunks(response):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"{where}: body exceeds the cap of {max_bytes} "
                                            f"bytes; aborted", reason="too large")
                    digest.update(chunk)
                    out.write(chunk)
            except httpx.TransportError as exc:
                raise DownloadError(
                    f"{where}: body broke off after {response.num_bytes_downloaded} bytes"
                    f"{f' of {declared}' if declared is not None else ''} "
                    f"({type(exc).__name__})", reason="truncated body", retryable=True) from exc
            out.flush()
            os.fsync(out.fileno())
        received = response.num_bytes_downloaded
        if declared is not None and received != declared:
            raise DownloadError(f"{where}: received {received} bytes but Content-Length said "
                                f"{declared}", reason="truncated body", retryable=True)
        if size == 0:
            raise DownloadError(f"{where}: empty body", reason="empty body", retryable=True)
        sha = digest.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256.lower():
            raise DownloadError(f"{where}: sha256 {sha} does not match the expected "
                                f"{expected_sha256}", reason="sha256 mismatch", retryable=True)
        final = dest_dir / f"{sha}{suffix}"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    content_type = response.headers.get("content-type")
    media = content_type.split(";")[0].strip().lower() if content_type else None
    return Downloaded(path=final, sha256=sha, bytes=size, content_type=media or None)


# --- backends --------------------------------------------------------------------------------

@runtime_checkable
class VideoStore(Protocol):
    backend: Literal["local", "s3"]

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        """Store `path` under `key` (atomic; a no-op when the key already holds these bytes)."""
        ...

    def exists(self, key: str) -> bool: ...

    def public_url(self, key: str) -> str: ...

    def get_path(self, key: str, work_dir: Path) -> Path:
        """A local file with the object's bytes (the stored file itself, or a download)."""
        ...


def hash_file(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while chunk := src.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _check_key(key: str, sha: str) -> None:
    named = sha256_of_key(key)
    if named is not None and named != sha:
        raise StorageError(f"{key}: the file's sha256 is {sha}; a content-addressed key must "
                           f"name the bytes it holds")


def _join_url(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/{quote(key)}"


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere; durability best effort
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalVideoStore:
    """Files under `root/<key>`; nginx serves `root` at `public_base_url` in production."""

    backend: Literal["local", "s3"] = "local"

    def __init__(self, root: Path, public_base_url: str) -> None:
        self.root = Path(root)
        self.public_base_url = public_base_url.rstrip("/")

    def path_for(self, key: str) -> Path:
        return self.root / validate_key(key)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def public_url(self, key: str) -> str:
        return _join_url(self.public_base_url, validate_key(key))

    def get_path(self, key: str, work_dir: Path | None = None) -> Path:
        path = self.path_for(key)
        if not path.is_file():
            raise FileNotFoundError(f"no stored object {key!r} under {self.root}")
        return path

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        target = self.path_for(key)
        if target.is_file():
            size, sha = hash_file(Path(path))
            _check_key(key, sha)
            if hash_file(target) == (size, sha):
                return self._stored(key, size, sha, uploaded=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".put-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out, Path(path).open("rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            _check_key(key, sha)
            tmp.chmod(0o644)  # nginx (another user) serves it
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return self._stored(key, size, sha, uploaded=True)

    def _stored(self, key: str, size: int, sha: str, *, uploaded: bool) -> StoredObject:
        return StoredObject(key=key, public_url=self.public_url(key), bytes=size, sha256=sha,
                            backend="local", uploaded=uploaded)


class S3VideoStore:
    """An S3 bucket (AWS, Cloudflare R2, any S3-compatible endpoint) via a boto3 S3 client."""

    backend: Literal["local", "s3"] = "s3"

    def __init__(self, client: Any, bucket: str, *, public_base_url: str | None = None,
                 endpoint_url: str | None = None, region: str | None = None,
                 multipart_threshold: int = DEFAULT_MULTIPART_BYTES,
                 multipart_chunksize: int = DEFAULT_MULTIPART_BYTES,
                 max_concurrency: int = 4) -> None:
        from boto3.s3.transfer import TransferConfig

        if not bucket:
            raise ValueError("S3VideoStore needs a bucket")
        if public_base_url is None and endpoint_url and \
                ".r2.cloudflarestorage.com" in endpoint_url:
            raise ValueError("R2's S3 endpoint is not publicly readable: set public_base_url "
                             "(the bucket's r2.dev URL or a custom domain)")
        self.client = client
        self.bucket = bucket
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.region = region
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency, use_threads=max_concurrency > 1)

    @classmethod
    def from_resource(cls, s3: Any, bucket: str, *, public_base_url: str | None = None,
                      **kwargs: Any) -> S3VideoStore:
        """From dagster-aws's S3Resource (its endpoint_url and region_name are reused)."""
        return cls(s3.get_client(), bucket, public_base_url=public_base_url,
                   endpoint_url=s3.endpoint_url, region=s3.region_name, **kwargs)

    def public_url(self, key: str) -> str:
        key = validate_key(key)
        if self.public_base_url:
            return _join_url(self.public_base_url, key)
        if self.endpoint_url:
            return _join_url(f"{self.endpoint_url}/{self.bucket}", key)
        region = self.region or "us-east-1"
        return _join_url(f"https://{self.bucket}.s3.{region}.amazonaws.com", key)

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=validate_key(key))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        key = validate_key(key)
        size, sha = hash_file(Path(path))
        _check_key(key, sha)
        head = self.head(key)
        if head is not None and head.get("ContentLength") == size \
                and (head.get("Metadata") or {}).get("sha256") == sha:
            return self._stored(key, size, sha, uploaded=False)
        self.client.upload_file(
            str(path), self.bucket, key, Config=self.transfer_config,
            ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": sha},
                       "CacheControl": IMMUTABLE})
        return self._stored(key, size, sha, uploaded=True)

    def get_path(self, key: str, work_dir: Path) -> Path:
        key = validate_key(key)
        work_dir.mkdir(parents=True, exist_ok=True)
        target = work_dir / key.rsplit("/", 1)[-1]
        fd, tmp_name = tempfile.mkstemp(dir=work_dir, prefix=".get-", suffix=".part")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, key, tmp_name, Config=self.transfer_config)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return target

    def _stored(self, key: str, size: int, sha: str, *, uploaded: bool) -> StoredObject:
        return StoredObject(key=key, public_url=self.public_url(key), bytes=size, sha256=sha,
                            backend="s3", uploaded=uploaded)


# --- the Dagster resource --------------------------------------------------------------------

class VideoStoreResource(dg.ConfigurableResource):
    """Where videos live, and the one way to bring a generated video in (`store_from_url`).

    Every field left unset falls back to the settings table (waifugen_assets/core/config.py):
    VIDEO_STORE, VIDEO_DIR, VIDEO_PUBLIC_BASE_URL, S3_BUCKET, S3_ENDPOINT_URL, S3_REGION,
    S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY (secrets: from the environment or `*_FILE`, or
    dg.EnvVar in the wiring, so they never appear in run config). Sandbox defaults: local
    backend under WAIFUGEN_HOME/videos, public base `<sandbox>/media` (a placeholder until the
    sandbox serves that directory), downloads allowed from the sandbox server's exact
    host:port over http besides public https URLs. Production: https to public addresses only.
    """

    # str, not Literal: Dagster config cannot express Literal types; backend_name() validates.
    backend: str | None = Field(
        default=None, description="`local` or `s3`; default VIDEO_STORE (local).")
    local_root: str | None = Field(
        default=None, description="Default VIDEO_DIR, else WAIFUGEN_HOME/videos.")
    public_base_url: str | None = Field(
        default=None,
        description="Base URL the stored keys are served at (nginx for local; the R2 public "
                    "bucket / CDN for s3); default VIDEO_PUBLIC_BASE_URL; sandbox: "
                    "<sandbox>/media.")
    key_prefix: str = "videos"
    s3_bucket: str | None = Field(default=None, description="Default S3_BUCKET.")
    s3_endpoint_url: str | None = Field(
        default=None, description="Default S3_ENDPOINT_URL (R2: "
                                  "https://<account>.r2.cloudflarestorage.com).")
    s3_region: str | None = Field(default=None, description="Default S3_REGION (auto, for R2).")
    aws_access_key_id: str | None = Field(default=None, description="Default S3_ACCESS_KEY_ID.")
    aws_secret_access_key: str | None = Field(
        default=None, description="Default S3_SECRET_ACCESS_KEY.")
    multipart_threshold_bytes: int = DEFAULT_MULTIPART_BYTES
    multipart_chunk_bytes: int = DEFAULT_MULTIPART_BYTES
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    download_timeout_seconds: float | None = Field(
        default=None, description="Per read/connect; default HTTP_TIMEOUT_SECONDS.")
    work_dir: str | None = Field(default=None,
                                 description="Download scratch; default WAIFUGEN_HOME/downloads.")

    sandbox_url: str | None = Field(
        default=None, description="Sandbox mode: the sandbox server downloads may come from; "
        "default WAIFUGEN_SANDBOX_URL.")

    def url_policy(self) -> UrlPolicy:
        settings = get_settings()
        if settings.is_sandbox:
            return UrlPolicy.sandbox(self.sandbox_url or settings.sandbox_url)
        return UrlPolicy.production()

    def backend_name(self) -> Literal["local", "s3"]:
        name = self.backend or get_settings().get("VIDEO_STORE", default="local") or "local"
        if name not in ("local", "s3"):
            raise ConfigError(f"VIDEO_STORE={name!r} (or VideoStoreResource.backend): expected "
                              f"local or s3")
        return "s3" if name == "s3" else "local"

    def public_base(self) -> str | None:
        settings = get_settings()
        return self.public_base_url or settings.get(
            "VIDEO_PUBLIC_BASE_URL", sandbox_default=settings.sandbox_service("media"))

    def store(self) -> VideoStore:
        settings = get_settings()
        base = self.public_base()
        if self.backend_name() == "local":
            configured = self.local_root or settings.get("VIDEO_DIR")
            root = Path(configured) if configured else settings.home / "videos"
            if base is None:
                raise ConfigError("VIDEO_PUBLIC_BASE_URL is required for the local store in "
                                  "production (the URL nginx serves the video directory at)")
            return LocalVideoStore(root, base)
        from dagster_aws.s3 import S3Resource

        bucket = self.s3_bucket or settings.get("S3_BUCKET")
        if not bucket:
            raise ConfigError("S3_BUCKET is required for the s3 video store")
        secret = self.aws_secret_access_key or settings.get("S3_SECRET_ACCESS_KEY")
        register_secret(secret)
        s3 = S3Resource(
            endpoint_url=self.s3_endpoint_url or settings.get("S3_ENDPOINT_URL"),
            region_name=self.s3_region or settings.get("S3_REGION", default="auto",
                                                       sandbox_default="auto"),
            aws_access_key_id=self.aws_access_key_id or settings.get("S3_ACCESS_KEY_ID"),
            aws_secret_access_key=secret)
        return S3VideoStore.from_resource(
            s3, bucket, public_base_url=base,
            multipart_threshold=self.multipart_threshold_bytes,
            multipart_chunksize=self.multipart_chunk_bytes)

    def download(self, url: str, dest_dir: Path, *, suffix: str = ".mp4",
                 expected_sha256: str | None = None) -> Downloaded:
        """`download_to_file` with this mode's policy, cap and timeout."""
        policy = self.url_policy()
        timeout = self.download_timeout_seconds or get_settings().http_timeout
        with make_download_client(policy, timeout=timeout) as client:
            return download_to_file(client, url, dest_dir, max_bytes=self.max_download_bytes,
                                    policy=policy, suffix=suffix,
                                    expected_sha256=expected_sha256)

    def store_from_url(self, url: str, *, suffix: str = ".mp4",
                       expected_sha256: str | None = None) -> StoredObject:
        """Download `url` (policy of the current mode), store it under its content key."""
        store = self.store()
        work = Path(self.work_dir) if self.work_dir else get_settings().home / "downloads"
        work.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=work, prefix="dl-"))
        try:
            got = self.download(url, scratch, suffix=suffix, expected_sha256=expected_sha256)
            key = content_key(got.sha256, suffix=suffix, prefix=self.key_prefix)
            return store.put_file(got.path, key, _content_type(suffix, got.content_type))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _content_type(suffix: str, served: str | None) -> str:
    """The served type when it is specific, else the one the suffix implies."""
    if served and served.split("/")[0] in ("video", "audio", "image"):
        return served
    return mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"


def _body_chunks(response: httpx.Response) -> Iterable[bytes]:
    """The body as it arrives. With identity encoding (what we ask for) the raw stream is the
    file, read without httpx's decoder and re-chunking copies; otherwise decode."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return response.iter_raw()
    return response.iter_bytes(CHUNK_BYTES)
