"""Comments as the platforms report them (Instagram and YouTube comment reads).

One shape for both platforms so the comment-reply stage never looks at raw JSON:
Instagram's ``from.id``/``username`` and YouTube's ``authorChannelId.value``/
``authorDisplayName`` both land in ``author_id``/``author_name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class RemoteComment:
    """One comment or reply read from a platform; ``parent_id`` is None for top-level comments."""

    id: str
    text: str
    author_id: str | None  # IG from.id / YouTube authorChannelId.value
    author_name: str | None  # IG username / YouTube authorDisplayName
    published_at: datetime | None
    parent_id: str | None  # None for top-level comments
    like_count: int | None = None
    reply_count: int | None = None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp as the platforms send it ("2026-01-02T03:04:05+0000", "...Z"),
    timezone-aware (UTC when it names no zone); None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
