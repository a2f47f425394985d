"""Webhook authenticity checks: Fanvue's signed header and Telegram's secret token.

Fanvue (Stripe-style scheme, see docs/subscriber-channels.md):
    X-Fanvue-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>
Several ``v1=`` values may appear (the sender signs with the old and the new secret while a
secret is being rotated); one matching value is enough. A timestamp further than
``tolerance`` seconds from our clock is treated as a replay.

Telegram sends the ``secret_token`` given to setWebhook back in
``X-Telegram-Bot-Api-Secret-Token``.

Comparisons are constant-time; no secret or expected MAC ever appears in an error message.
"""

import hashlib
import hmac

FANVUE_SIGNATURE_HEADER = "X-Fanvue-Signature"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The request is not proven to come from the platform; ``reason`` says why (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fanvue_mac(secret: str, body: bytes, timestamp: int) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_fanvue(secret: str, body: bytes, timestamp: int) -> str:
    """The full ``X-Fanvue-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},v1={_fanvue_mac(secret, body, int(timestamp))}"


def _parse_fanvue_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("malformed signature header: expected key=value pairs")
        if key == "t":
            if timestamp is not None:
                raise InvalidSignature("malformed signature header: more than one timestamp")
            if not value.isascii() or not value.isdigit():
                raise InvalidSignature("malformed signature header: timestamp is not an integer")
            timestamp = int(value)
        elif key == "v1":
            macs.append(value.strip().lower())
        # Other schemes (v0, future versions) are ignored, as Stripe-style receivers do.
    if timestamp is None:
        raise InvalidSignature("malformed signature header: no timestamp (t=)")
    if not macs:
        raise InvalidSignature("malformed signature header: no v1 signature")
    return timestamp, macs


def verify_fanvue(
    secret: str,
    header: str | None,
    body: bytes,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise InvalidSignature unless ``header`` signs ``body`` with ``secret`` recently enough."""
    if not secret:
        raise InvalidSignature("no webhook secret configured")
    if header is None or not header.strip():
        raise InvalidSignature("missing signature header")
    timestamp, macs = _parse_fanvue_header(header)
    expected = _fanvue_mac(secret, body, timestamp).encode()
    # Check every candidate (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in macs:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise InvalidSignature("signature does not match")
    # Checked after the MAC so an attacker learns nothing about clocks from unsigned requests.
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside tolerance (possible replay)")


def verify_telegram(expected_secret: str, header: str | None) -> None:
    """Raise InvalidSignature unless ``header`` equals the configured secret token."""
    if not expected_secret:
        raise InvalidSignature("no webhook secret configured")
    if header is None or header == "":
        raise InvalidSignature("missing secret token header")
    if not hmac.compare_digest(expected_secret.encode(), header.encode()):
        raise InvalidSignature("secret token does not match")
