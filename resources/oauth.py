"""What every platform's OAuth token endpoint answers, in one shape."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_in: int | None  # seconds from now
    refresh_expires_in: int | None
