"""Video storage: the URL policy (SSRF), streaming downloads over real HTTP, the local backend.

Downloads run against a real uvicorn server on 127.0.0.1 (tests/http_test_server.py plus a few
routes of our own); the sandbox-mode policy allows exactly that server's host:port.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import random
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_test_server import Reply, ScriptedServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from resources.http import HttpError, PermanentError
from resources.url_policy import (
    UnsafeUrl,
    UrlPolicy,
    address_problem,
    check_url,
    content_key,
    sha256_of_key,
    validate_key,
)
from resources.video_store import (
    Downloaded,
    DownloadError,
    LocalVideoStore,
    StorageError,
    VideoStore,
    VideoStoreResource,
    download_to_file,
    hash_file,
    make_download_client,
)
from waifugen_assets.core import config

PUBLIC_IP = "93.184.216.34"
_BLOCK = random.Random(7).randbytes(65536)


def payload(size: int) -> bytes:
    """Deterministic, non-repeating-per-64KiB test bytes."""
    return (_BLOCK * (size // len(_BLOCK) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolver(*answers: str) -> Any:
    """A getaddrinfo stand-in: successive calls return successive addresses (last repeats)."""
    calls: list[str] = []

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        address = answers[min(len(calls), len(answers)) - 1]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def public_resolver(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port))]


# --- the URL policy --------------------------------------------------------------------------

PRODUCTION = UrlPolicy.production()
PERMISSIVE = UrlPolicy(allow_http=True)  # http allowed, no exceptions: only address rules


@pytest.mark.parametrize("url", [
    "http://cdn.example.com/v.mp4",  # plain http in production
    "file:///etc/passwd",
    "gopher://cdn.example.com:70/_GET",
    "ftp://cdn.example.com/v.mp4",
    "data:video/mp4;base64,AAAA",
    "//cdn.example.com/v.mp4",
    "https://user:secret@cdn.example.com/v.mp4",
    "https://127.0.0.1\\@cdn.example.com/v.mp4",
    "https://10.1.2.3/v.mp4",
    "https://172.16.0.1/v.mp4",
    "https://192.168.1.10/v.mp4",
    "https://127.0.0.1/v.mp4",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/v.mp4",
    "https://0.0.0.0/v.mp4",
    "https://224.0.0.1/v.mp4",
    "https://240.0.0.1/v.mp4",
    "https://255.255.255.255/v.mp4",
    "https://2130706433/v.mp4",
    "https://0x7f000001/v.mp4",
    "https://0x7f.1/v.mp4",
    "https://0177.0.0.1/v.mp4",
    "https://127.1/v.mp4",
    "https://017700000001/v.mp4",
    "https://[::1]/v.mp4",
    "https://[::]/v.mp4",
    "https://[::ffff:127.0.0.1]/v.mp4",
    "https://[::ffff:7f00:1]/v.mp4",
    "https://[::ffff:169.254.169.254]/v.mp4",
    "https://[::127.0.0.1]/v.mp4",
    "https://[64:ff9b::a9fe:a9fe]/v.mp4",
    "https://[2002:a00:1::]/v.mp4",
    "https://[fe80::1]/v.mp4",
    "https://[fe80::1%25eth0]/v.mp4",
    "https://[fc00::1]/v.mp4",
    "https://[fd12:3456::1]/v.mp4",
    "https://[ff02::1]/v.mp4",
    "https://localhost/v.mp4",
    "https://video.localhost/v.mp4",
    "https://%31%32%37.0.0.1/v.mp4",
    "https://cdn.example.com:0/v.mp4",
    "https:///v.mp4",
])
def test_production_policy_refuses(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        PRODUCTION.check_url(url, public_resolver)


@pytest.mark.parametrize("url", [
    "https://cdn.example.com/v.mp4?X-Amz-Signature=abc",
    "https://CDN.Example.com./v.mp4",
    "https://8.8.8.8/v.mp4",
    "https://[2606:4700:4700::1111]/v.mp4",
    "https://cdn.example.com:8443/v.mp4",
])
def test_production_policy_allows_public_https(url: str) -> None:
    PRODUCTION.check_url(url, public_resolver)


def test_messages_name_the_rule_but_not_the_query() -> None:
    with pytest.raises(UnsafeUrl, match="https only") as info:
        PRODUCTION.check_url("http://cdn.example.com/v.mp4?token=sekrit", public_resolver)
    assert "sekrit" not in str(info.value)
    with pytest.raises(UnsafeUrl, match="link-local"):
        PRODUCTION.check_url("https://169.254.169.254/", public_resolver)
    with pytest.raises(UnsafeUrl, match="canonical dotted quad"):
        PRODUCTION.check_url("https://2130706433/", public_resolver)


@pytest.mark.parametrize("answer", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1",
                                    "::ffff:10.0.0.1", "fe80::1%eth0", "100.100.100.100"])
def test_hostname_resolving_to_a_private_address_is_refused(answer: str) -> None:
    with pytest.raises(UnsafeUrl, match="resolves to"):
        PRODUCTION.check_url("https://cdn.example.com/v.mp4", resolver(answer))


def test_one_private_answer_among_public_ones_is_refused() -> None:
    def mixed(host: str, port: int, *a: Any, **k: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
        PRODUCTION.check_url("https://cdn.example.com/v.mp4", mixed)


def test_unresolvable_host_is_refused() -> None:
    def failing(*a: Any, **k: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeUrl, match="cannot resolve"):
        PRODUCTION.check_url("https://nowhere.example/v.mp4", failing)


def test_sandbox_policy_allows_exactly_the_sandbox_host_and_port() -> None:
    policy = UrlPolicy.sandbox("http://127.0.0.1:8765")
    never = resolver("10.9.9.9")  # must not even be asked for the allowed host
    policy.check_url("http://127.0.0.1:8765/a2e/files/x.mp4", never)
    assert never.calls == []
    for url in ("http://127.0.0.1:8766/x.mp4", "http://localhost:8765/x.mp4",
                "http://2130706433:8765/x.mp4", "http://127.0.0.2:8765/x.mp4",
                "http://[::1]:8765/x.mp4", "file:///tmp/x.mp4",
                "http://user:pw@127.0.0.1:8765/x.mp4"):
        with pytest.raises(UnsafeUrl):
            policy.check_url(url, public_resolver)
    policy.check_url("http://cdn.example.com/x.mp4", public_resolver)  # http ok in sandbox
    check_url("https://cdn.example.com/x.mp4", policy, public_resolver)


# --- hypothesis: no private address passes, in any notation ----------------------------------

UNSAFE_V4 = [ipaddress.IPv4Network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "192.0.0.0/24",
    "198.18.0.0/15")]
UNSAFE_V6 = [ipaddress.IPv6Network(n) for n in (
    "::1/128", "::/128", "fe80::/10", "fc00::/7", "ff00::/8", "fec0::/10")]


@st.composite
def unsafe_v4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(UNSAFE_V4))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return net.network_address + offset


@st.composite
def unsafe_v6(draw: st.DrawFn) -> ipaddress.IPv6Address:
    net = draw(st.sampled_from(UNSAFE_V6))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return net.network_address + offset


def _num(value: int, style: str) -> str:
    return {"dec": str(value), "hex": hex(value), "HEX": hex(value).upper().replace("0X", "0x"),
            "oct": "0" + format(value, "o")}[style]


@st.composite
def v4_notation(draw: st.DrawFn) -> str:
    ip = draw(unsafe_v4())
    o = list(ip.packed)
    n = int(ip)
    style = st.sampled_from(["dec", "hex", "HEX", "oct"])
    form = draw(st.sampled_from(["quad", "int", "mixed-quad", "three", "two", "mapped",
                                 "mapped-hex", "compat", "nat64", "6to4"]))
    if form == "quad":
        host = ip.exploded
    elif form == "int":
        host = _num(n, draw(style))
    elif form == "mixed-quad":
        host = ".".join(_num(x, draw(style)) for x in o)
    elif form == "three":
        host = f"{_num(o[0], draw(style))}.{_num(o[1], draw(style))}." \
               f"{_num(o[2] << 8 | o[3], draw(style))}"
    elif form == "two":
        host = f"{_num(o[0], draw(style))}.{_num(n & 0xFFFFFF, draw(style))}"
    elif form == "mapped":
        host = f"[::ffff:{ip}]"
    elif form == "mapped-hex":
        host = f"[::ffff:{n >> 16:x}:{n & 0xFFFF:x}]"
    elif form == "compat":
        host = f"[::{ip}]"
    elif form == "nat64":
        host = f"[64:ff9b::{n >> 16:x}:{n & 0xFFFF:x}]"
    else:
        host = f"[2002:{n >> 16:x}:{n & 0xFFFF:x}::1]"
    if draw(st.booleans()) and not host.startswith("["):
        host += "."
    return host


@st.composite
def v6_notation(draw: st.DrawFn) -> str:
    ip = draw(unsafe_v6())
    text = draw(st.sampled_from([ip.compressed, ip.exploded]))
    if draw(st.booleans()):
        text = text.upper()
    return f"[{text}]"


@st.composite
def unsafe_url(draw: st.DrawFn) -> str:
    host = draw(st.one_of(v4_notation(), v6_notation()))
    scheme = draw(st.sampled_from(["http", "https", "HTTPS"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = draw(st.sampled_from(["/", "/v.mp4", "/a/b?x=1", ""]))
    return f"{scheme}://{host}{port}{path}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unsafe_url())
def test_no_private_or_loopback_literal_passes_in_any_notation(url: str) -> None:
    # The resolver claims a public address: the refusal must come from the literal itself.
    with pytest.raises(UnsafeUrl):
        PERMISSIVE.check_url(url, public_resolver)


@settings(max_examples=200, deadline=None)
@given(st.one_of(unsafe_v4(), unsafe_v6()))
def test_hostname_resolving_to_any_unsafe_address_is_refused(ip: Any) -> None:
    with pytest.raises(UnsafeUrl):
        PERMISSIVE.check_url("https://cdn.example.com/v.mp4", resolver(str(ip)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_check_url_only_ever_raises_unsafe_url(text: str) -> None:
    with contextlib.suppress(UnsafeUrl):
        PERMISSIVE.check_url(text, public_resolver)


def test_public_addresses_have_no_problem() -> None:
    for text in ("8.8.8.8", "1.1.1.1", PUBLIC_IP, "2606:4700:4700::1111", "2a00:1450::1"):
        assert address_problem(ipaddress.ip_address(text)) is None


# --- content-addressed keys ------------------------------------------------------------------

def test_content_key_layout_and_round_trip() -> None:
    digest = sha(b"hello")
    key = content_key(digest)
    assert key == f"videos/{digest[:2]}/{digest[2:4]}/{digest}.mp4"
    assert sha256_of_key(key) == digest
    assert content_key(digest.upper(), suffix=".webm", prefix="raw") == \
        f"raw/{digest[:2]}/{digest[2:4]}/{digest}.webm"
    assert sha256_of_key("videos/x.mp4") is None
    with pytest.raises(ValueError, match="sha256"):
        content_key("abc")
    with pytest.raises(ValueError, match="suffix"):
        content_key(digest, suffix="/../x")


@pytest.mark.parametrize("key", ["../x", "/abs/x", "a//b", ".hidden/x", "a/../b", "a/./b",
                                 "a\\b", "", "a/b/", "a b"])
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="unsafe storage key"):
        validate_key(key)


# --- downloads over real HTTP ----------------------------------------------------------------

class VideoServer(ScriptedServer):
    """ScriptedServer plus deterministic payloads, with and without Content-Length."""

    def __init__(self) -> None:
        super().__init__()
        self._starlette.router.routes.extend([
            Route("/bytes/{size:int}", self._bytes),
            Route("/chunked/{size:int}", self._chunked),
        ])

    async def _bytes(self, request: Request) -> Response:
        return Response(payload(request.path_params["size"]), media_type="video/mp4")

    async def _chunked(self, request: Request) -> StreamingResponse:
        size = request.path_params["size"]

        async def chunks() -> AsyncIterator[bytes]:
            data = payload(size)
            for start in range(0, size, 65536):
                yield data[start:start + 65536]

        return StreamingResponse(chunks(), media_type="video/mp4")  # no Content-Length


@pytest.fixture(scope="module")
def server() -> Iterator[VideoServer]:
    with VideoServer() as running:
        yield running


@pytest.fixture(scope="module")
def other_server() -> Iterator[VideoServer]:
    """Another loopback server the policy does NOT allow."""
    with VideoServer() as running:
        yield running


@pytest.fixture
def policy(server: VideoServer) -> UrlPolicy:
    return UrlPolicy.sandbox(server.base_url)


@pytest.fixture
def client(policy: UrlPolicy) -> Iterator[httpx.Client]:
    with make_download_client(policy, timeout=5.0) as made:
        yield made


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_streams_to_a_verified_content_named_file(
        server: VideoServer, client: httpx.Client, policy: UrlPolicy, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024 + 17
    got = download_to_file(client, server.url(f"/bytes/{size}"), tmp_path,
                           max_bytes=10 * 1024 * 1024, policy=policy)
    data = payload(size)
    assert isinstance(got, Downloaded)
    assert (got.sha256, got.bytes, got.content_type) == (sha(data), size, "video/mp4")
    assert got.path == tmp_path / f"{sha(data)}.mp4"
    assert got.path.read_bytes() == data
    assert leftovers(tmp_path) == [got.path.name]  # no temp files


def test_download_without_content_length(server: VideoServer, client: httpx.Client,
                                         policy: UrlPolicy, tmp_path: Path) -> None:
    got = download_to_file(client, server.url("/chunked/300000"), tmp_path,
                           max_bytes=1_000_000, policy=policy, expected_sha256=sha(payload(300000)))
    assert got.bytes == 300000


def test_size_cap_from_content_length_refuses_before_reading(
        server: VideoServer, client: httpx.Client, policy: UrlPolicy, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="Content-Length 2000000 exceeds the cap") as info:
        download_to_file(client, server.url("/bytes/2000000"), tmp_path, max_bytes=1_000_000,
                         policy=policy)
    assert not info.value.retryable
    assert leftovers(tmp_path) == []


def test_size_cap_while_streaming_when_length_is_not_declared(
        server: VideoServer, client: httpx.Client, policy: UrlPolicy, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="exceeds the cap of 1000000 bytes; aborted"):
        download_to_file(client, server.url("/chunked/3000000"), tmp_path, max_bytes=1_000_000,
                         policy=policy)
    assert leftovers(tmp_path) == []


def test_truncated_body_is_an_error_and_leaves_no_file(
        server: VideoServer, client: httpx.Client, policy: UrlPolicy, tmp_path: Path) -> None:
    path = server.script(Reply(200, body=payload(100_000),
                               headers={"content-length": "250000",
                                        "content-type": "video/mp4"}))
    with pytest.raises(DownloadError, match="broke off after 100000 bytes of 250000") as info:
        download_to_file(client, server.url(path), tmp_path, max_bytes=1_000_000, policy=policy)
    assert info.value.retryable and info.value.reason == "truncated body"
    assert leftovers(tmp_path) == []


def test_sha256_mismatch_is_refused(server: VideoServer, client: httpx.Client,
                                    policy: UrlPolicy, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not match the expected"):
        download_to_file(client, server.url("/bytes/1000"), tmp_path, max_bytes=10_000,
                         policy=policy, expected_sha256="0" * 64)
    assert leftovers(tmp_path) == []


def test_error_status_raises_the_http_layers_error(server: VideoServer, client: httpx.Client,
                                                   policy: UrlPolicy, tmp_path: Path) -> None:
    path = server.script(Reply(404, json={"error": "gone"}))
    with pytest.raises(PermanentError, match="404"):
        download_to_file(client, server.url(path), tmp_path, max_bytes=10_000, policy=policy)
    no_content = server.script(Reply(204))
    with pytest.raises(DownloadError, match="HTTP 204 where 200 was expected"):
        download_to_file(client, server.url(no_content), tmp_path, max_bytes=10_000,
                         policy=policy)
    assert leftovers(tmp_path) == []


def test_allowed_redirect_is_followed(server: VideoServer, client: httpx.Client,
                                      policy: UrlPolicy, tmp_path: Path) -> None:
    second = server.script(Reply(307, headers={"location": "/bytes/5000"}))
    first = server.script(Reply(302, headers={"location": server.url(second)}))
    got = download_to_file(client, server.url(first), tmp_path, max_bytes=10_000,
                           policy=policy)
    assert got.sha256 == sha(payload(5000))


@pytest.mark.parametrize("target", [
    "other-port", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
    "http://10.0.0.1/v.mp4", "http://2130706433/", "http://[::1]/", "http://localhost/",
    "gopher://127.0.0.1:6379/_FLUSHALL",
])
def test_redirect_to_a_disallowed_target_is_refused(
        server: VideoServer, other_server: VideoServer, client: httpx.Client,
        policy: UrlPolicy, tmp_path: Path, target: str) -> None:
    trap = other_server.script(Reply(200, body=b"secret"))
    if target == "other-port":
        target = other_server.url(trap)
    path = server.script(Reply(302, headers={"location": target}))
    with pytest.raises(UnsafeUrl):
        download_to_file(client, server.url(path), tmp_path, max_bytes=10_000, policy=policy)
    assert other_server.hits(trap) == []
    assert leftovers(tmp_path) == []


def test_too_many_redirects(server: VideoServer, client: httpx.Client, policy: UrlPolicy,
                            tmp_path: Path) -> None:
    loop = "/s/redirect-loop"
    server.script(Reply(302, headers={"location": loop}), path=loop)
    with pytest.raises(DownloadError, match="more than 5 redirects"):
        download_to_file(client, server.url(loop), tmp_path, max_bytes=10_000, policy=policy)
    assert len(server.hits(loop)) == 6  # the first request + 5 followed hops


def test_redirect_without_location(server: VideoServer, client: httpx.Client,
                                   policy: UrlPolicy, tmp_path: Path) -> None:
    path = server.script(Reply(302))
    with pytest.raises(DownloadError, match="without a Location"):
        download_to_file(client, server.url(path), tmp_path, max_bytes=10_000, policy=policy)


def test_urls_refused_before_any_request(client: httpx.Client, policy: UrlPolicy,
                                         tmp_path: Path) -> None:
    for url in ("file:///etc/passwd", "http://10.0.0.1/v.mp4", "http://192.168.0.1/v.mp4",
                "http://0x7f.1/", "ftp://example.com/v.mp4"):
        with pytest.raises(UnsafeUrl):
            download_to_file(client, url, tmp_path, max_bytes=10_000, policy=policy)


def test_hostname_resolving_to_loopback_is_refused(server: VideoServer,
                                                   tmp_path: Path) -> None:
    policy = UrlPolicy(allow_http=True)  # no exceptions
    resolve = resolver("127.0.0.1")
    path = server.script(Reply(200, body=b"should not be fetched"))
    url = f"http://videos.example.test:{server.port}{path}"
    with make_download_client(policy, timeout=5.0, resolve=resolve) as client, \
            pytest.raises(UnsafeUrl, match=r"resolves to 127\.0\.0\.1"):
        download_to_file(client, url, tmp_path, max_bytes=10_000, policy=policy,
                         resolve=resolve)
    assert server.hits(path) == []


def test_dns_rebinding_is_caught_at_connect_time(server: VideoServer, tmp_path: Path) -> None:
    """The check sees a public address, the connection would go to loopback: refused."""
    policy = UrlPolicy(allow_http=True)
    resolve = resolver(PUBLIC_IP, "127.0.0.1")
    path = server.script(Reply(200, body=b"internal secret"))
    url = f"http://rebind.example.test:{server.port}{path}"
    with make_download_client(policy, timeout=5.0, resolve=resolve) as client, \
            pytest.raises(UnsafeUrl, match=r"resolves to 127\.0\.0\.1"):
        download_to_file(client, url, tmp_path, max_bytes=10_000, policy=policy,
                         resolve=resolve)
    assert resolve.calls == ["rebind.example.test", "rebind.example.test"]
    assert server.hits(path) == []


def test_pinned_transport_refuses_direct_requests_too(server: VideoServer) -> None:
    """Even a request that skipped check_url cannot reach an address the policy refuses."""
    policy = UrlPolicy.sandbox(server.base_url)
    path = server.script(Reply(200, body=b"x"))
    with make_download_client(policy, timeout=5.0) as client:
        assert client.get(server.url(path)).content == b"x"  # the allowed host:port
        with pytest.raises(UnsafeUrl):
            client.get(f"http://localhost:{server.port}{path}")


# --- the local backend -----------------------------------------------------------------------

@pytest.fixture
def local_store(tmp_path: Path) -> LocalVideoStore:
    return LocalVideoStore(tmp_path / "videos", "https://media.example.com/v/")


def _source(tmp_path: Path, data: bytes, name: str = "src.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_local_put_is_atomic_public_and_content_addressed(local_store: LocalVideoStore,
                                                          tmp_path: Path) -> None:
    data = payload(200_000)
    key = content_key(sha(data))
    stored = local_store.put_file(_source(tmp_path, data), key, "video/mp4")
    assert isinstance(local_store, VideoStore)
    assert (stored.key, stored.bytes, stored.sha256, stored.backend, stored.uploaded) == \
        (key, len(data), sha(data), "local", True)
    assert stored.public_url == f"https://media.example.com/v/{key}"
    target = local_store.path_for(key)
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o644
    assert local_store.exists(key) and local_store.get_path(key, tmp_path) == target
    assert leftovers(target.parent) == [target.name]


def test_local_put_twice_is_a_no_op(local_store: LocalVideoStore, tmp_path: Path) -> None:
    data = payload(50_000)
    key = content_key(sha(data))
    local_store.put_file(_source(tmp_path, data), key)
    target = local_store.path_for(key)
    before = target.stat().st_mtime_ns, target.stat().st_ino
    again = local_store.put_file(_source(tmp_path, data, "copy.mp4"), key)
    assert not again.uploaded and again.sha256 == sha(data)
    assert (target.stat().st_mtime_ns, target.stat().st_ino) == before


def test_local_put_repairs_a_damaged_copy(local_store: LocalVideoStore, tmp_path: Path) -> None:
    data = payload(50_000)
    key = content_key(sha(data))
    local_store.put_file(_source(tmp_path, data), key)
    local_store.path_for(key).write_bytes(b"corrupted")
    assert local_store.put_file(_source(tmp_path, data), key).uploaded
    assert hash_file(local_store.path_for(key)) == (len(data), sha(data))


def test_local_put_refuses_bytes_that_do_not_match_the_key(local_store: LocalVideoStore,
                                                           tmp_path: Path) -> None:
    key = content_key(sha(b"something else"))
    with pytest.raises(StorageError, match="content-addressed key"):
        local_store.put_file(_source(tmp_path, b"actual bytes"), key)
    assert not local_store.exists(key)
    assert leftovers(local_store.path_for(key).parent) == []


def test_local_put_failure_leaves_nothing_behind(local_store: LocalVideoStore, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(10_000)
    key = content_key(sha(data))

    def broken_replace(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        local_store.put_file(_source(tmp_path, data), key)
    assert leftovers(local_store.path_for(key).parent) == []


def test_local_store_refuses_unsafe_keys(local_store: LocalVideoStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsafe storage key"):
        local_store.put_file(_source(tmp_path, b"x"), "../../etc/cron.d/x")


# --- the resource ----------------------------------------------------------------------------

@pytest.fixture
def mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    def set_mode(name: str, sandbox_url: str = "http://127.0.0.1:8765") -> None:
        monkeypatch.setenv("WAIFUGEN_MODE", name)
        monkeypatch.setenv("WAIFUGEN_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("WAIFUGEN_SANDBOX_URL", sandbox_url)
        for var in ("VIDEO_STORE", "VIDEO_DIR", "VIDEO_PUBLIC_BASE_URL", "S3_BUCKET",
                    "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(var, raising=False)
        if name == "production":  # every required setting, whatever the list holds today
            for setting in config.SETTINGS:
                if setting.required_in_production:
                    dummy = "https://example.invalid" if setting.name.endswith(
                        ("_URL", "_HOST")) else "x" * 44
                    monkeypatch.setenv(setting.name, dummy)
        config.get_settings.cache_clear()

    yield set_mode
    config.get_settings.cache_clear()


def test_store_from_url_in_sandbox_mode(server: VideoServer, mode: Any, tmp_path: Path) -> None:
    mode("sandbox", server.base_url)
    resource = VideoStoreResource()
    data = payload(120_000)
    stored = resource.store_from_url(server.url("/bytes/120000"))
    key = content_key(sha(data))
    assert (stored.key, stored.sha256, stored.bytes, stored.backend) == \
        (key, sha(data), len(data), "local")
    assert stored.public_url == f"{server.base_url}/media/{key}"  # sandbox placeholder base
    assert (tmp_path / "home" / "videos" / key).read_bytes() == data
    assert leftovers(tmp_path / "home" / "downloads") == []  # scratch cleaned up
    assert not resource.store_from_url(server.url("/bytes/120000")).uploaded


def test_production_mode_allows_only_public_https(server: VideoServer, mode: Any,
                                                  tmp_path: Path) -> None:
    mode("production")
    resource = VideoStoreResource(local_root=str(tmp_path / "v"),
                                  public_base_url="https://media.example.com/videos")
    assert resource.url_policy() == UrlPolicy.production()
    with pytest.raises(UnsafeUrl, match="https only"):
        resource.store_from_url(server.url("/bytes/100"))
    with pytest.raises(UnsafeUrl):
        resource.store_from_url(f"https://127.0.0.1:{server.port}/bytes/100")
    with pytest.raises(config.ConfigError, match="VIDEO_PUBLIC_BASE_URL is required"):
        VideoStoreResource().store()


def test_resource_defaults_come_from_settings(mode: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    mode("production")
    monkeypatch.setenv("VIDEO_DIR", str(tmp_path / "nginx-root"))
    monkeypatch.setenv("VIDEO_PUBLIC_BASE_URL", "https://media.example.com/videos")
    config.get_settings.cache_clear()
    store = VideoStoreResource().store()
    assert isinstance(store, LocalVideoStore)
    assert store.root == tmp_path / "nginx-root"
    assert store.public_url("videos/x.mp4") == "https://media.example.com/videos/videos/x.mp4"
    monkeypatch.setenv("VIDEO_STORE", "ftp")
    config.get_settings.cache_clear()
    with pytest.raises(config.ConfigError, match="VIDEO_STORE='ftp'"):
        VideoStoreResource().store()


def test_download_errors_are_http_errors() -> None:
    error = DownloadError("video-download: GET /x: too large", reason="too large")
    assert isinstance(error, HttpError) and error.system == "video-download"
