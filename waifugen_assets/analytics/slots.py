"""Posting hours the data supports, for `waifugen slots suggest CHARACTER`.

Reads the dbt mart `analytics.best_posting_hours` (one row per character x platform x local
hour: posts with a 24 h reading, their average views at 24 h and the lift over the character's
average on that platform) and the character's current slots from the roster. Plain Python: no
Dagster, so the CLI answers without loading the code location.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from waifugen_assets.core import schema

# best_posting_hours.sql: enough_data = posts >= 3 (one good or bad day is not a pattern).
MIN_POSTS_PER_HOUR = 3
MART = f"{schema.ANALYTICS_SCHEMA}.best_posting_hours"

_mart = sa.table(
    "best_posting_hours",
    sa.column("character_id"), sa.column("platform"), sa.column("local_hour"),
    sa.column("posts"), sa.column("avg_views_24h"), sa.column("lift"),
    sa.column("enough_data"),
    schema=schema.ANALYTICS_SCHEMA,
)


class SlotsError(Exception):
    """A one-line reason why no suggestion can be made (unknown character, no mart)."""


@dataclass(frozen=True)
class HourStat:
    """One platform x local hour of best_posting_hours."""

    platform: str
    local_hour: int
    posts: int
    avg_views_24h: Decimal
    lift: Decimal | None
    enough_data: bool

    @property
    def label(self) -> str:
        return f"{self.local_hour:02d}:00"


@dataclass(frozen=True)
class CurrentSlot:
    """A roster slot ("HH:MM", local) and what its hour did, per platform with readings."""

    slot: str
    stats: tuple[HourStat, ...]

    @property
    def hour(self) -> int:
        return int(self.slot.split(":")[0])


@dataclass(frozen=True)
class SlotSuggestion:
    character_id: str
    timezone: str
    platform: str | None  # None: every platform
    hours: tuple[HourStat, ...]  # hours with enough data, best first, at most `top`
    current: tuple[CurrentSlot, ...]  # the roster's slots, in order
    posts_with_reading: int  # posts with a 24 h reading behind the mart's rows
    message: str | None  # why no hour is suggested (None when some are)

    def is_current(self, hour: int) -> bool:
        return any(slot.hour == hour for slot in self.current)


def suggest_hours(conn: sa.Connection, character_id: str, platform: str | None = None,
                  top: int = 3) -> SlotSuggestion:
    """The `top` hours with enough data, ranked by average views at 24 h, and the character's
    current slots beside them. Raises SlotsError for an unknown character or a platform it
    cannot post on, or when the mart has never been built."""
    if platform is not None and platform not in schema.SOCIAL_PLATFORMS:
        raise SlotsError(f"platform {platform!r}: not one of "
                         f"{', '.join(schema.SOCIAL_PLATFORMS)}")
    c = schema.characters
    row = conn.execute(sa.select(c.c.timezone, c.c.slots).where(c.c.id == character_id)).first()
    if row is None:
        raise SlotsError(f"unknown character {character_id!r}: not in the database (check "
                         "the roster, or run `waifugen run` to load it)")
    if conn.scalar(sa.select(sa.func.to_regclass(MART))) is None:
        raise SlotsError(f"{MART} does not exist yet: the analytics job (dbt) has not built "
                         "the marts; run `waifugen run` (or materialize the analytics assets "
                         "in Dagster) first")

    query = sa.select(_mart.c.platform, _mart.c.local_hour, _mart.c.posts,
                      _mart.c.avg_views_24h, _mart.c.lift, _mart.c.enough_data) \
        .where(_mart.c.character_id == character_id)
    if platform is not None:
        query = query.where(_mart.c.platform == platform)
    stats = [HourStat(*r) for r in conn.execute(query)]

    ranked = sorted((s for s in stats if s.enough_data),
                    key=lambda s: (-s.avg_views_24h, -(s.lift or 0), -s.posts, s.platform,
                                   s.local_hour))
    slots = tuple(str(s) for s in row.slots)
    current = tuple(
        CurrentSlot(slot, tuple(sorted((s for s in stats if s.local_hour == int(slot[:2])),
                                       key=lambda s: s.platform)))
        for slot in slots)
    total = sum(s.posts for s in stats)
    message = None
    if not ranked:
        who = character_id if platform is None else f"{character_id} on {platform}"
        message = (f"{who}: {total} post{'' if total == 1 else 's'} with a 24 h reading; at "
                   f"least {MIN_POSTS_PER_HOUR} per hour are needed before an hour is "
                   "suggested")
    return SlotSuggestion(character_id, row.timezone, platform, tuple(ranked[:top]), current,
                          total, message)
