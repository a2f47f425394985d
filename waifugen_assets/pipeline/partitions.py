"""Partitions: every per-character asset is partitioned by character x day.

The key string is `character|date` (Dagster orders dimensions by name). `date` is the
character's local calendar day: a slot "08:30" on 2026-11-25 means 08:30 in the character's
time zone on that date. Partitions exist up to tomorrow in UTC (end_offset=2): a character
east of UTC (Tokyo, Sydney) starts its local day while it is still yesterday in UTC.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

START_DATE = "2026-01-01"

characters_partitions = dg.DynamicPartitionsDefinition(name="characters")
daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=2)
character_daily_partitions = dg.MultiPartitionsDefinition(
    {"character": characters_partitions, "date": daily_partitions}
)


def partition_key(character_id: str, date: dt.date) -> dg.MultiPartitionKey:
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
