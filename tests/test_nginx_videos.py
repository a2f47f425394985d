"""deploy/nginx serves the local video store: a real nginx (Debian's binary) on loopback.

The test renders deploy/nginx/nginx.conf and videos.conf for a temporary prefix (only the
lines that name container paths, the listen address and the log/pid files change; each is
asserted to occur exactly once), stores a video through the real VideoStoreResource (local
backend, production mode, VIDEO_PUBLIC_BASE_URL pointing at this nginx) and fetches its public
URL: bytes, Cache-Control, Range, 404s, and no way out of the store directory.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from resources.url_policy import content_key
from resources.video_store import LocalVideoStore, StoredObject, VideoStoreResource
from waifugen_assets.core import config

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "deploy" / "nginx"
CACHE_CONTROL = "public, max-age=31536000"
SECRET = b"outside the video directory: must never be served\n"
START_DEADLINE = 15.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    assert found, "nginx is not installed (Debian package nginx-light; `make tools`)"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def replace_once(text: str, old: str, new: str, where: str) -> str:
    assert text.count(old) == 1, f"{where}: expected exactly one {old!r}"
    return text.replace(old, new)


def render(prefix: Path, port: int, home: Path) -> Path:
    """nginx.conf + videos.conf with the container paths moved under `prefix` / `home`."""
    videos = (NGINX_DIR / "videos.conf").read_text(encoding="utf-8")
    videos = replace_once(videos, "listen 8080;", f"listen 127.0.0.1:{port};", "videos.conf")
    videos = replace_once(videos, "alias /srv/waifugen/videos/;", f"alias {home}/videos/;",
                          "videos.conf")
    (prefix / "videos.conf").write_text(videos, encoding="utf-8")

    main = (NGINX_DIR / "nginx.conf").read_text(encoding="utf-8")
    for old, new in (
        ("pid /tmp/nginx.pid;", f"pid {prefix}/nginx.pid;"),
        ("error_log /dev/stderr warn;", f"error_log {prefix}/error.log warn;"),
        ("access_log /dev/stdout combined;", "access_log off;"),
        ("include /etc/nginx/conf.d/videos.conf;", f"include {prefix}/videos.conf;"),
    ):
        main = replace_once(main, old, new, "nginx.conf")
    # Debian's build keeps temp files under /var/lib/nginx: move them into the prefix.
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = replace_once(main, "http {\n", "http {\n" + temp, "nginx.conf")
    # The official image's workers run as `nginx`; Debian has no such user, and a root
    # master needs one it can switch to.
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(f"daemon off;\n{user}{main}", encoding="utf-8")
    return conf


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        paths = (self.prefix / "stderr.log", self.prefix / "error.log")
        return "".join(p.read_text(encoding="utf-8", errors="replace") for p in paths
                       if p.exists())


def start_nginx(prefix: Path, home: Path) -> Nginx:
    binary = nginx_binary()
    for _attempt in range(3):  # the port picked may be taken by someone else meanwhile
        port = free_port()
        conf = render(prefix, port, home)
        check = subprocess.run([binary, "-t", "-p", str(prefix), "-c", str(conf)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        with (prefix / "stderr.log").open("wb") as stderr:
            proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)],
                                    stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return Nginx(proc, port, prefix)
            except OSError:
                time.sleep(0.05)
        server = Nginx(proc, port, prefix)
        exited = proc.poll() is not None
        stop_nginx(server)
        output = server.error_log()
        if not (exited and "Address already in use" in output):
            raise AssertionError(f"nginx did not start within {START_DEADLINE} s: {output}")
    raise AssertionError("nginx did not start: no free port after 3 attempts")


def stop_nginx(server: Nginx) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


@dataclass
class Served:
    nginx: Nginx
    home: Path
    stored: StoredObject
    data: bytes


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # Not under pytest's tmp_path: its parents are 0700, and nginx's workers (nobody, when the
    # tests run as root) must traverse to the files, as the container's nginx user does.
    base = Path(tempfile.mkdtemp(prefix="waifugen-nginx-"))
    base.chmod(0o755)
    home, prefix = base / "home", base / "prefix"
    home.mkdir(mode=0o755)
    prefix.mkdir()
    (home / "secret.txt").write_bytes(SECRET)
    nginx = start_nginx(prefix, home)
    patch = pytest.MonkeyPatch()
    try:
        stored, data = store_video(patch, home, nginx, base)
        yield Served(nginx, home, stored, data)
    finally:
        patch.undo()
        config.get_settings.cache_clear()
        stop_nginx(nginx)
        shutil.rmtree(base, ignore_errors=True)


def store_video(patch: pytest.MonkeyPatch, home: Path, nginx: Nginx,
                base: Path) -> tuple[StoredObject, bytes]:
    """Through the real resource in production mode, as the pipeline stores a video."""
    patch.setenv("WAIFUGEN_MODE", "production")
    patch.setenv("WAIFUGEN_HOME", str(home))
    for setting in config.SETTINGS:
        if setting.required_in_production:
            patch.setenv(setting.name, "https://example.invalid" if setting.name.endswith(
                ("_URL", "_HOST")) else "x" * 44)
    patch.delenv("VIDEO_DIR", raising=False)  # default WAIFUGEN_HOME/videos, as in compose
    patch.setenv("VIDEO_STORE", "local")
    patch.setenv("VIDEO_PUBLIC_BASE_URL", f"{nginx.base}/videos")
    config.get_settings.cache_clear()
    store = VideoStoreResource().store()
    assert isinstance(store, LocalVideoStore)
    assert store.root == home / "videos"
    data = os.urandom(300_000)
    source = base / "generated.mp4"
    source.write_bytes(data)
    stored = store.put_file(source, content_key(hashlib.sha256(data).hexdigest()))
    assert stored.uploaded
    return stored, data


def raw_get(server: Nginx, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """The path exactly as given (http.client does not normalise `..` or %2f)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


# --- the tests ------------------------------------------------------------------------------


def test_public_url_serves_the_stored_bytes_with_a_year_of_caching(served: Served) -> None:
    url = served.stored.public_url
    assert url == f"{served.nginx.base}/videos/{served.stored.key}"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, served.nginx.error_log()
    assert response.content == served.data
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(served.data)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"

    head = httpx.head(url, timeout=10)
    assert head.status_code == 200
    assert head.headers["cache-control"] == CACHE_CONTROL
    assert head.content == b""

    # Revalidation works too (a CDN or browser holding the file).
    again = httpx.get(url, headers={"if-none-match": response.headers["etag"]}, timeout=10)
    assert again.status_code == 304


@pytest.mark.parametrize(("spec", "start", "end"), [
    ("bytes=0-99", 0, 99),
    ("bytes=150000-150999", 150_000, 150_999),
    ("bytes=-1000", 299_000, 299_999),
    ("bytes=299990-", 299_990, 299_999),
])
def test_range_requests(served: Served, spec: str, start: int, end: int) -> None:
    response = httpx.get(served.stored.public_url, headers={"range": spec}, timeout=10)
    assert response.status_code == 206
    assert response.content == served.data[start:end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(served.data)}"
    assert response.headers["cache-control"] == CACHE_CONTROL


def test_unsatisfiable_range_is_416(served: Served) -> None:
    response = httpx.get(served.stored.public_url, headers={"range": "bytes=400000-"},
                         timeout=10)
    assert response.status_code == 416


def test_missing_key_is_404_and_not_cached(served: Served) -> None:
    missing = content_key(hashlib.sha256(b"never stored").hexdigest())
    store = LocalVideoStore(served.home / "videos", f"{served.nginx.base}/videos")
    response = httpx.get(store.public_url(missing), timeout=10)
    assert response.status_code == 404
    assert "max-age" not in response.headers.get("cache-control", "")


def test_only_the_video_location_is_served(served: Served) -> None:
    for path in ("/", "/secret.txt", "/videos", "/index.html"):
        status, _headers, body = raw_get(served.nginx, path)
        assert status == 404, path
        assert SECRET not in body
    # No directory listings.
    status, _headers, _body = raw_get(served.nginx, "/videos/videos/")
    assert status in (403, 404)


def test_health_endpoint_for_the_container_check(served: Served) -> None:
    response = httpx.get(f"{served.nginx.base}/healthz", timeout=10)
    assert (response.status_code, response.text) == (200, "ok\n")
    assert "max-age" not in response.headers.get("cache-control", "")


def test_write_methods_are_refused(served: Served) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, _headers, _body = raw_get(served.nginx, f"/videos/{served.stored.key}", method)
        assert status in (403, 405), method
    assert served.stored.public_url  # the file is still there
    assert httpx.get(served.stored.public_url, timeout=10).content == served.data


@pytest.mark.parametrize("path", [
    "/videos/../secret.txt",
    "/videos/..%2fsecret.txt",
    "/videos/%2e%2e/secret.txt",
    "/videos/%2E%2E%2Fsecret.txt",
    "/videos/videos/../../secret.txt",
    "/videos/..%5csecret.txt",
    "/videos../secret.txt",
    "/videos../home/secret.txt",
    "/videos/%00/../secret.txt",
])
def test_path_traversal_is_refused(served: Served, path: str) -> None:
    status, _headers, body = raw_get(served.nginx, path)
    assert status in (400, 403, 404), (path, status)
    assert SECRET not in body


def test_hidden_and_symlinked_files_are_not_served(served: Served) -> None:
    directory = (served.home / "videos" / served.stored.key).parent
    (directory / ".put-unfinished.part").write_bytes(b"half a video")
    link = directory / "link.mp4"
    link.symlink_to(served.home / "secret.txt")
    try:
        prefix = f"/videos/{served.stored.key.rsplit('/', 1)[0]}"
        status, _h, body = raw_get(served.nginx, f"{prefix}/.put-unfinished.part")
        assert status == 404
        assert body != b"half a video"
        status, _h, body = raw_get(served.nginx, f"{prefix}/link.mp4")
        assert status in (403, 404)
        assert SECRET not in body
    finally:
        link.unlink()
        (directory / ".put-unfinished.part").unlink()


def test_stored_file_is_readable_by_another_user(served: Served) -> None:
    # nginx runs as its own user: the store writes 0644 files (resources/video_store.py).
    path = served.home / "videos" / served.stored.key
    assert path.stat().st_mode & 0o777 == 0o644
    info: Any = os.stat(path.parent)
    assert info.st_mode & 0o005 == 0o005  # others may traverse and list the leaf directory
