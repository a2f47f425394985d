"""Keep secrets out of logs, errors and run metadata.

Every secret value the process reads is registered here; `redact` replaces registered values
and common credential shapes (Authorization headers, token query parameters, URL passwords)
with `***`. A logging filter applies it to every record of the root logger.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words
_lock = threading.Lock()
_secrets: set[str] = set()

# Header and parameter names whose values are credentials whatever their content.
SENSITIVE_KEYS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "x-fanvue-api-key", "cookie",
    "set-cookie", "access_token", "refresh_token", "client_secret", "api_key", "apikey",
    "password", "token", "upload_token", "x-telegram-bot-api-secret-token", "code",
})
_PATTERNS = (
    re.compile(r"(?i)(bearer|oauth|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:access_token|refresh_token|client_secret|upload_token|api_key|token)=)"
               r"[^&\s\"']+"),
    re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"),  # Telegram bot token inside the URL path
    re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)"),  # password in a URL
)


def register_secret(value: str | None) -> None:
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _PATTERNS[3].sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", text)


def redact_mapping(items: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers or query parameters with credential values masked."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return {k: (MASK if k.lower() in SENSITIVE_KEYS else redact(v)) for k, v in pairs}


def mask_url(url: str) -> str:
    """A URL with its password replaced, safe to print."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@")
        parts = parts._replace(netloc=netloc)
    return redact(urlunsplit(parts))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_filter() -> None:
    """Attach the filter to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers or []:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
