"""Which backup sets to keep: grandfather-father-son over finished sets (UTC).

- sons: the newest RECENT sets (2 days at 4 a day),
- fathers: the newest set of each of the last DAILY days (today included),
- grandfathers: the newest set of each of the last WEEKLY ISO weeks (this week included).

A set counts once its app archive is done (it can be restored). Every other finished set is
pruned: its files and objects deleted, its rows marked `pruned` (kept as history, errors
included). Sets whose app archive failed or is still running are neither counted nor pruned
(a failed archive leaves no file; its row says what went wrong).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from waifugen_assets.core import clock, schema
from waifugen_assets.operations import backup_store
from waifugen_assets.operations.backup_manifest import delete_manifest
from waifugen_assets.operations.backups import (
    BackupConfig,
    engine_for_config,
    list_sets,
    one_line,
)

RECENT = 8
DAILY = 14
WEEKLY = 8
T = schema.backups


def gfs_keep(times: Iterable[dt.datetime], now: dt.datetime) -> set[dt.datetime]:
    """The set times grandfather-father-son keeps at `now` (all in UTC)."""
    ordered = sorted({t.astimezone(dt.UTC) for t in times}, reverse=True)
    keep = set(ordered[:RECENT])
    today = now.astimezone(dt.UTC).date()
    newest_per_day: dict[dt.date, dt.datetime] = {}
    newest_per_week: dict[tuple[int, int], dt.datetime] = {}
    for t in ordered:  # newest first: the first seen per bucket is its newest
        newest_per_day.setdefault(t.date(), t)
        newest_per_week.setdefault(t.isocalendar()[:2], t)
    for n in range(DAILY):
        day = today - dt.timedelta(days=n)
        if day in newest_per_day:
            keep.add(newest_per_day[day])
    for n in range(WEEKLY):
        week = (today - dt.timedelta(weeks=n)).isocalendar()[:2]
        if week in newest_per_week:
            keep.add(newest_per_week[week])
    # A set stamped after `now` (a clock moved back) is kept until the clock passes it.
    keep.update(t for t in ordered if t.date() > today)
    return keep


@dataclass
class PruneReport:
    kept: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def prune(config: BackupConfig, *, now: dt.datetime | None = None,
          engine: sa.Engine | None = None, dry_run: bool = False) -> PruneReport:
    """Delete the finished sets GFS does not keep; mark their rows `pruned`."""
    when = clock.now() if now is None else now
    own = engine is None
    engine = engine or engine_for_config(config)
    report = PruneReport()
    try:
        finished = [s for s in list_sets(engine) if s.started_at is not None
                    and (app := s.archive("app")) is not None and app.state == "done"]
        keep = gfs_keep([s.started_at for s in finished if s.started_at], when)
        for backup_set in finished:
            assert backup_set.started_at is not None
            if backup_set.started_at.astimezone(dt.UTC) in keep:
                report.kept.append(backup_set.set_id)
                continue
            if dry_run:
                report.pruned.append(backup_set.set_id)
                continue
            try:
                for archive in backup_set.archives:
                    if archive.state != "done":
                        continue
                    backup_store.delete(archive.location, config.s3)
                    local = config.backup_dir / backup_set.set_id / Path(archive.location).name
                    if archive.location.startswith("s3://"):  # the local copy kept beside it
                        backup_store.delete(str(local), None)
                delete_manifest(config, backup_set.set_id)
            except (backup_store.StoreError, OSError) as exc:
                report.errors.append(f"{backup_set.set_id}: {one_line(exc)}")
                continue
            with engine.begin() as conn:
                conn.execute(sa.update(T).where(T.c.set_id == backup_set.set_id,
                                                T.c.state != "running")
                             .values(state="pruned", pruned_at=when))
            report.pruned.append(backup_set.set_id)
    finally:
        if own:
            engine.dispose()
    return report
