"""What every stage's runs share: how a run asks to post late, and how configuration errors
stop it.

When a slot is too old to post: the stale age, and how a run asks to post late anyway.

A reel is made for its slot. One whose slot passed more than PUBLISH_STALE_AFTER_HOURS ago
(a backfill of an old day, a render that came too late) is not rendered and not posted; it is
recorded as missed / skipped, with the reason, unless the run asks for late work: the config
flags (`reels.late`, `social_posts.post_late`) or the run tag `waifugen/post_late=true`, which
the UI offers for any launch or backfill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import dagster as dg

from waifugen_assets.core.config import ConfigError

T = TypeVar("T")

LATE_TAG = "waifugen/post_late"


def asks_late(tags: Mapping[str, str]) -> bool:
    """Whether a run's tags ask for stale slots to be made and posted anyway."""
    return tags.get(LATE_TAG, "").strip().lower() == "true"


def stop_on_config_error(check: Callable[[], T]) -> T:
    """Run `check` inside an asset or op and return its value: a ConfigError fails the run
    with its one-line message, and is not retried (retrying cannot fix configuration)."""
    try:
        return check()
    except ConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
