"""Video storage policy: which URLs we may download from, and content-addressed object keys.

Pure: no network or file I/O. The only outside call is DNS resolution, done through the
`resolve` function the caller passes in (`socket.getaddrinfo` by default), so tests can inject
any answer. The download and the storage backends live in `resources/video_store.py`.

URL rules (SSRF defence; A2E and RunPod hand us URLs that we then fetch from inside our network):

- Only `https` in production; `http` too when the policy allows it (sandbox mode). Every other
  scheme (file, ftp, gopher, data, ...) is refused, and so is a URL with userinfo
  (`https://user:pw@host/`, also the `http://127.0.0.1\\@evil/` parser-confusion trick).
- The host must be a public address: loopback, private (RFC 1918, unique local), link-local
  (incl. cloud metadata 169.254.169.254), CGNAT 100.64/10, multicast, reserved, unspecified,
  documentation and benchmarking ranges are refused, and so are IPv6 forms that embed an IPv4
  address (IPv4-mapped and IPv4-compatible: always; NAT64 and 6to4: when the embedded address
  is not public). `localhost` and `*.localhost` are refused by name.
- An IPv4 address is accepted only in canonical dotted-quad form. The other notations that
  resolvers accept (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are refused outright: the
  WHATWG URL rule "the last label is numeric, so the host is an IPv4 address" decides what is
  an address, so no such host can reach the resolver.
- A hostname is resolved and refused when ANY of its addresses is not public.
- `allowed_hosts` holds exact `host:port` pairs that skip the address rules: the sandbox server
  on loopback in sandbox mode, nothing in production.

The same rules are applied again at connect time by `resources.video_store`'s pinned
transport (`UrlPolicy.connect_addresses`), which connects only to the addresses it has just
checked: a DNS answer that changes between the check and the connection (DNS rebinding)
cannot smuggle in a private address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
"""`socket.getaddrinfo`-compatible: resolve(host, port, type=...) -> [(family, ..., sockaddr)]."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARS = re.compile(r"[a-z0-9._-]+")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_CANONICAL_OCTET = re.compile(r"(?:0|[1-9][0-9]{0,2})")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")

_SPECIAL_V4 = tuple((ipaddress.IPv4Network(net), why) for net, why in (
    ("0.0.0.0/8", "unspecified / this-network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes 255.255.255.255 (broadcast)
))
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UnsafeUrl(ValueError):
    """A URL the policy refuses to fetch; the message says which rule and never the query."""


# --- addresses -------------------------------------------------------------------------------

def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` must not be contacted, or None when it is a public unicast address.

    An explicit table (IANA special-purpose registry) first, so the answer does not depend on
    the Python version's `ipaddress` tables; then `is_global` as a backstop.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        return _ipv6_problem(ip)
    for net, why in _SPECIAL_V4:
        if ip in net:
            return why
    return None if ip.is_global else "not globally routable"


def _ipv6_problem(ip: ipaddress.IPv6Address) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped IPv6"
    if ip in _IPV4_COMPATIBLE:
        return "IPv4-compatible IPv6"
    embedded: ipaddress.IPv4Address | None = ip.sixtofour
    if any(ip in net for net in _NAT64):
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        embedded = ip.teredo[1]
    if embedded is not None:
        inner = address_problem(embedded)
        if inner is not None:
            return f"IPv6 embedding a {inner} IPv4"
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_link_local, "link-local"),
        (ip.is_site_local, "site-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "not globally routable"),
    )
    return next((why for bad, why in checks if bad), None)


def parse_address(text: str) -> IPAddress:
    """An address from a resolver's sockaddr (IPv6 scope ids such as `%eth0` dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


# --- the policy ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckedUrl:
    """What `UrlPolicy.inspect` found: the normalised host, port and, for literals, the IP."""

    scheme: str
    host: str
    port: int
    address: IPAddress | None  # the host is an IP literal
    allowed_exception: bool  # the host:port is in `allowed_hosts`

    @property
    def host_port(self) -> str:
        return host_port(self.host, self.port)


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs a download may touch. `production()` and `sandbox(url)` build the usual ones.

    `allowed_hosts`: exact `host:port` strings (lowercase; IPv6 as `[addr]:port`) exempt from
    the public-address rule. The scheme rule still applies to them.
    """

    allow_http: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts",
                           frozenset(h.strip().lower() for h in self.allowed_hosts))

    @classmethod
    def production(cls) -> UrlPolicy:
        return cls(allow_http=False, allowed_hosts=frozenset())

    @classmethod
    def sandbox(cls, sandbox_url: str) -> UrlPolicy:
        """http allowed, and exactly the sandbox server's host:port (on loopback)."""
        url = httpx.URL(sandbox_url)
        port = url.port or DEFAULT_PORTS.get(url.scheme, 80)
        return cls(allow_http=True, allowed_hosts=frozenset({host_port(url.host, port)}))

    @property
    def schemes(self) -> frozenset[str]:
        return frozenset({"https", "http"} if self.allow_http else {"https"})

    # --- checks ------------------------------------------------------------------------------

    def check_url(self, url: str | httpx.URL,
                  resolve: Resolver | None = socket.getaddrinfo) -> None:
        """Raise UnsafeUrl unless `url` may be fetched. `resolve=None` skips the DNS step
        (the pinned transport repeats it at connect time anyway)."""
        checked = self.inspect(url)
        if resolve is not None and checked.address is None and not checked.allowed_exception:
            self.connect_addresses(checked.host, checked.port, resolve)

    def inspect(self, url: str | httpx.URL) -> CheckedUrl:
        """The static rules (scheme, userinfo, host form, literal addresses); no DNS."""
        parsed = _parse(url)
        scheme = parsed.scheme
        where = f"{scheme}://{parsed.raw_host.decode('ascii', 'replace')}"
        if scheme not in DEFAULT_PORTS:
            shown = f"{scheme}://" if scheme else "a relative URL"
            raise UnsafeUrl(f"{shown}: only https{' or http' if self.allow_http else ''} "
                            f"URLs may be downloaded")
        if scheme not in self.schemes:
            raise UnsafeUrl(f"{where}: plain http is refused in production (https only)")
        if parsed.userinfo:
            raise UnsafeUrl(f"{where}: URLs with user info (user:password@) are refused")
        port = parsed.port if parsed.port is not None else DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise UnsafeUrl(f"{where}: port {port} is out of range")
        host = parsed.raw_host.decode("ascii", "replace").lower()
        if host.endswith(".") and ":" not in host:
            host = host[:-1]
        if not host:
            raise UnsafeUrl(f"{scheme}://: the URL has no host")
        if host_port(host, port) in self.allowed_hosts:
            literal = _literal_address(host)
            return CheckedUrl(scheme, host, port, literal, allowed_exception=True)
        address = check_host(host)
        return CheckedUrl(scheme, host, port, address, allowed_exception=False)

    def connect_addresses(self, host: str, port: int, resolve: Resolver) -> list[str]:
        """The addresses a connection to host:port may use: all checked, in resolver order.

        Raises UnsafeUrl when the host is refused, does not resolve, or when ANY of its
        addresses is not public (one bad answer among good ones is an attack, not bad luck).
        """
        host = host.lower()
        if host.endswith(".") and ":" not in host:
            host = host[:-1]
        if host_port(host, port) in self.allowed_hosts:
            return [host]
        literal = check_host(host)
        if literal is not None:
            return [str(literal)]
        try:
            answers = resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UnsafeUrl(f"{host}: cannot resolve the host ({exc}); refusing to fetch") \
                from None
        addresses: list[str] = []
        for answer in answers:
            text = str(answer[4][0])
            try:
                ip = parse_address(text)
            except ValueError:
                raise UnsafeUrl(f"{host}: resolver returned a non-address {text!r}") from None
            problem = address_problem(ip)
            if problem is not None:
                raise UnsafeUrl(f"{host} resolves to {ip}, a {problem} address")
            if str(ip) not in addresses:
                addresses.append(str(ip))
        if not addresses:
            raise UnsafeUrl(f"{host}: the resolver returned no address")
        return addresses


def check_url(url: str | httpx.URL, policy: UrlPolicy,
              resolve: Resolver | None = socket.getaddrinfo) -> None:
    """Module-level spelling of `policy.check_url(url, resolve)`."""
    policy.check_url(url, resolve)


def check_host(host: str) -> IPAddress | None:
    """Static host rules; the address when `host` is an IP literal, None for a name."""
    if ":" in host:  # httpx only lets an IPv6 literal (from [...]) contain a colon
        try:
            ip: IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl(f"{host}: not a valid IPv6 address (zone ids are refused)") from None
        return _refuse_address(host, ip)
    if not _HOST_CHARS.fullmatch(host):
        raise UnsafeUrl(f"{host}: host contains characters outside letters, digits, '.-_'")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # WHATWG URL: a numeric last label makes the host an IPv4 address. Only the
        # canonical dotted quad is read as one; the rest are resolver tricks.
        if len(labels) != 4 or not all(_CANONICAL_OCTET.fullmatch(x) and int(x) < 256
                                       for x in labels):
            raise UnsafeUrl(f"{host}: IPv4 addresses are accepted only as a canonical dotted "
                            f"quad (no decimal, octal, hex or shortened forms)")
        return _refuse_address(host, ipaddress.IPv4Address(host))
    if host == "localhost" or host.endswith(".localhost"):
        raise UnsafeUrl(f"{host}: localhost names are refused")
    if any(not label for label in labels):
        raise UnsafeUrl(f"{host}: empty label in host name")
    return None


def _refuse_address(host: str, ip: IPAddress) -> IPAddress:
    problem = address_problem(ip)
    if problem is not None:
        raise UnsafeUrl(f"{host}: {problem} address")
    return ip


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _parse(url: str | httpx.URL) -> httpx.URL:
    if isinstance(url, httpx.URL):
        return url
    text = str(url)
    if any(ch in text for ch in "\r\n\t\x00"):
        raise UnsafeUrl("URL contains control characters")
    try:
        return httpx.URL(text)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        scheme = urlsplit(text).scheme if "://" in text else ""
        raise UnsafeUrl(f"{scheme + '://' if scheme else ''}...: unparsable URL ({exc})") \
            from None


# --- content-addressed keys ------------------------------------------------------------------

def content_key(sha256_hex: str, suffix: str = ".mp4", prefix: str = "videos") -> str:
    """`videos/ab/cd/<sha256>.mp4`: the key of a file is a function of its bytes.

    Two fan-out levels keep directories small on the local backend (65 536 leaves).
    """
    digest = sha256_hex.lower()
    if not _SHA256.fullmatch(digest):
        raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
    if suffix and not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"suffix must look like '.mp4', got {suffix!r}")
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    key = f"{head}{digest[:2]}/{digest[2:4]}/{digest}{suffix}"
    return validate_key(key)


def sha256_of_key(key: str) -> str | None:
    """The digest a content-addressed key names (`.../ab/cd/<sha256>.ext`), else None."""
    parts = key.split("/")
    if len(parts) < 3:
        return None
    stem = parts[-1].split(".", 1)[0]
    if _SHA256.fullmatch(stem) and parts[-3] == stem[:2] and parts[-2] == stem[2:4]:
        return stem
    return None


def validate_key(key: str) -> str:
    """A storage key: relative, '/'-separated, no '..' or hidden segments, portable chars."""
    if not _KEY.fullmatch(key) or any(part in ("..", ".") for part in key.split("/")) \
            or len(key) > 512:
        raise ValueError(f"unsafe storage key {key!r}: use letters, digits, '._-' and '/' "
                         f"segments that do not start with '.'")
    return key
