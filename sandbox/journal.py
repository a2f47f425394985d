"""What the journal records about one request, secrets masked.

Bodies are never held whole: `BodyRecorder` sees each chunk as it streams past on its way to
the system app, feeding a SHA-256 and a byte count. Only bodies that are likely JSON or form
data and at most PARSE_LIMIT bytes are also kept (one small copy) so the journal can show
them parsed; a 100 MB video upload costs the journal 32 bytes of hash state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl

from waifugen_assets.core.redaction import MASK, SENSITIVE_KEYS, redact, redact_mapping

PARSE_LIMIT = 1 << 20  # larger JSON/form bodies are journaled as size + sha256 too

_TEXT_TYPES = ("", "application/json", "application/x-www-form-urlencoded", "text/plain")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class BodyRecorder:
    """Hashes a request body chunk by chunk; keeps a copy only of small structured bodies."""

    def __init__(self, content_type: str) -> None:
        self.media_type = media_type(content_type)
        structured = self.media_type in _TEXT_TYPES or self.media_type.endswith("+json")
        self._kept: bytearray | None = bytearray() if structured else None
        self._sha = hashlib.sha256()
        self.size = 0
        self.complete = False

    def feed(self, chunk: bytes, more_body: bool) -> None:
        if self.complete:
            return
        self.size += len(chunk)
        self._sha.update(chunk)
        if self._kept is not None:
            if self.size > PARSE_LIMIT:
                self._kept = None
            else:
                self._kept += chunk
        self.complete = not more_body

    def summary(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self._sha.hexdigest()}

    def record(self) -> Any:
        """The body as the journal shows it: parsed JSON/form, else size + sha256."""
        if self.size == 0:
            return None
        if self._kept is None or not self.complete:
            return self.summary()
        raw = bytes(self._kept)
        looks_json = raw.lstrip()[:1] in (b"{", b"[")
        if self.media_type == "application/json" or self.media_type.endswith("+json") \
                or looks_json:
            try:
                return mask_secrets(json.loads(raw))
            except ValueError:
                return self.summary()
        if self.media_type == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return self.summary()
            return mask_secrets(multi_dict(pairs))
        return self.summary()


def multi_dict(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query/form pairs as a dict; a repeated name maps to the list of its values."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    return out


def mask_secrets(value: Any) -> Any:
    """Credential-named fields masked and credential shapes redacted, at any depth."""
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in SENSITIVE_KEYS else mask_secrets(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def query_record(query_string: bytes) -> dict[str, Any]:
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return mask_secrets(multi_dict(pairs))


def headers_record(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return redact_mapping((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers)
