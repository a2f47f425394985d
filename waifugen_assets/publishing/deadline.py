"""When a day's posts should all be out: the roster's last slot of the day plus an hour.

Each character's day is its own local day, so the roster's day ends with the last slot of the
character whose evening comes last in absolute time (the one furthest west). The deadline is
expressed in that character's time zone, so it follows its daylight-saving changes. Dagster's
freshness policies are per asset, not per partition: the `social_posts` policy built from this
says that a publish run materialized within the hour after that last slot.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from waifugen_assets.core.config import ConfigError, project_root, read_setting
from waifugen_assets.roster.model import Character, Roster, RosterError, load_roster, local_slot_utc

GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Deadline:
    cron: str  # "M H * * *", local time in `timezone`
    timezone: str
    character_id: str
    last_slot: str


def last_post_deadline(characters: Iterable[Character], day: dt.date,
                       grace: dt.timedelta = GRACE) -> Deadline | None:
    """The deadline of `day`'s posts for the enabled characters; None if none posts."""
    latest: tuple[dt.datetime, Character] | None = None
    for c in characters:
        if not c.enabled or not c.slots:
            continue
        at = local_slot_utc(day, c.slots[-1], c.zone)  # slots are in time-of-day order
        if latest is None or at > latest[0]:
            latest = (at, c)
    if latest is None:
        return None
    at, c = latest
    due = (at + grace).astimezone(c.zone)
    return Deadline(f"{due.minute} {due.hour} * * *", c.timezone, c.id, c.slots[-1])


def roster_at_load() -> Roster | None:
    """The configured roster file as the code location loads, or None when it cannot be read
    (loading never fails for it: `waifugen roster check` and the `characters` asset report
    its problems)."""
    try:
        configured = read_setting("WAIFUGEN_ROSTER", os.environ)
        return load_roster(Path(configured) if configured else project_root() / "characters.yaml")
    except (RosterError, ConfigError, OSError):
        return None
