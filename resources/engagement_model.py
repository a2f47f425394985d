"""Engagement counters as the platforms report them (TikTok, Instagram, YouTube reads).

Lifetime totals, never deltas. ``None`` means "not reported" (no metrics for the post,
insights not available yet, a hidden subscriber count) and is never the same as 0.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PostCounters:
    """Lifetime counters of one post; None = the platform did not report that counter."""

    views: int | None
    likes: int | None
    comments: int | None
    shares: int | None
    saves: int | None
    reach: int | None = None


@dataclass(frozen=True)
class AccountStats:
    """Account-level counts; ``followers`` is None when hidden or unavailable."""

    followers: int | None
    following: int | None = None
    posts: int | None = None
