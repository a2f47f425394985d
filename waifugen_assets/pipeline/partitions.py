"""Partitions: every per-character asset is partitioned by character x day; the day-wide
assets (`daily_status`) by day alone, on the same `daily_partitions`.

The key string is `character|date` (Dagster orders dimensions by name). `date` is the
character's local calendar day: a slot "08:30" on 2026-11-25 means 08:30 in the character's
time zone on that date.

Which dates exist. The first is the launch date (WAIFUGEN_LAUNCH_DATE), so the catalog's
partition health counts only days the pipeline could have run. The last is the newest date
that has begun anywhere on Earth: the date dimension is one calendar shared by characters in
every time zone, and a character east of UTC (Tokyo, Sydney) starts its local day while it is
still the day before in UTC. So the dates are defined in the earliest time zone there is,
UTC+14 (`Etc/GMT-14`: the POSIX sign is inverted; the Line Islands' offset, the earliest),
with `end_offset=1`: the last partition is today there, which is never behind any character's
local today and never ahead of the newest date that has begun somewhere. A date that has not
begun anywhere (the old `end_offset=2` in UTC offered tomorrow all day long) is never offered.
From 10:00 UTC until the roster's own easternmost midnight the newest date exists with nothing
in it yet; that is the price of one static calendar for every zone (Dagster computes the set
from this definition alone, in the webserver and the daemon, so it cannot follow the roster).
Only the keys mean something: a key's Dagster time window (midnight to midnight at UTC+14) is
no character's day, so nothing here uses `partition_time_window`.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from waifugen_assets.core.config import ConfigError, launch_date

LAUNCH_DATE = launch_date()  # a malformed WAIFUGEN_LAUNCH_DATE stops the load, named
EARLIEST_TIMEZONE = "Etc/GMT-14"  # UTC+14, no daylight saving time

characters_partitions = dg.DynamicPartitionsDefinition(name="characters")
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=LAUNCH_DATE.isoformat(), timezone=EARLIEST_TIMEZONE, end_offset=1)
character_daily_partitions = dg.MultiPartitionsDefinition(
    {"character": characters_partitions, "date": daily_partitions}
)


def partition_key(character_id: str, date: dt.date) -> dg.MultiPartitionKey:
    if date < LAUNCH_DATE:  # Dagster would only say "could not find a partition"
        raise ConfigError(f"{date.isoformat()} is before WAIFUGEN_LAUNCH_DATE "
                          f"({LAUNCH_DATE.isoformat()}): there is no partition for it")
    return dg.MultiPartitionKey({"character": character_id, "date": date.isoformat()})


def split_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, dt.date]:
    """(character id, date) from a `character|date` key, whether a string or a MultiPartitionKey."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["character"], dt.date.fromisoformat(dims["date"])
    character, _, day = str(key).partition("|")
    if not character or not day:
        raise ValueError(f"partition key {key!r} is not of the form 'character|YYYY-MM-DD'")
    return character, dt.date.fromisoformat(day)
