"""Grandfather-father-son retention over a synthetic 60-day history (4 sets a day) in the real
`backups` table, with real files, on an injected clock: exactly the last 8 sets, the newest
of each of the last 14 days and the newest of each of the last 8 ISO weeks are kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from backup_world import make_config

from waifugen_assets.core import schema
from waifugen_assets.operations.backup_retention import gfs_keep, prune
from waifugen_assets.operations.backup_verify import verify_set
from waifugen_assets.operations.backups import SET_ID_FORMAT, BackupError

pytestmark = pytest.mark.integration

TODAY = dt.date(2026, 12, 9)  # a Wednesday (ISO week 50)
NOW = dt.datetime(2026, 12, 9, 19, 30, tzinfo=dt.UTC)
HOURS = (0, 6, 12, 18)
T = schema.backups


def history(days: int = 60) -> list[dt.datetime]:
    return [dt.datetime.combine(TODAY - dt.timedelta(days=d), dt.time(h), tzinfo=dt.UTC)
            for d in range(days) for h in HOURS]


def at(day: dt.date, hour: int = 18) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def expected_keep() -> set[dt.datetime]:
    """Spelled out for TODAY, a Wednesday, with sets at 00, 06, 12 and 18 UTC."""
    yesterday = TODAY - dt.timedelta(days=1)
    sons = {at(day, h) for day in (TODAY, yesterday) for h in HOURS}
    fathers = {at(TODAY - dt.timedelta(days=n)) for n in range(14)}
    # This week's newest is today's 18:00; earlier weeks' newest is their Sunday's 18:00.
    last_sunday = TODAY - dt.timedelta(days=3)
    grandfathers = {at(TODAY)} | {at(last_sunday - dt.timedelta(weeks=n)) for n in range(7)}
    return sons | fathers | grandfathers


def test_gfs_keeps_sons_fathers_and_grandfathers() -> None:
    keep = gfs_keep(history(), NOW)
    assert keep == expected_keep()
    assert len(keep) == 8 + 12 + 5  # overlaps: 2 days in both, 2 Sundays in the 14 days
    assert gfs_keep([], NOW) == set()
    few = history(1)  # fewer than 8 sets: every one is kept
    assert gfs_keep(few, NOW) == set(few)


def _seed_history(engine: sa.Engine, root: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    values = []
    for started in history():
        set_id = started.strftime(SET_ID_FORMAT)
        for database in ("app", "globals"):
            path = root / set_id / f"{database}.x"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            files.setdefault(set_id, []).append(path)
            values.append({"set_id": set_id, "database": database, "state": "done",
                           "location": str(path), "bytes": 1, "sha256": "0" * 64,
                           "started_at": started,
                           "finished_at": started + dt.timedelta(minutes=1)})
    # An old set whose app dump failed (no file) and one still running: neither is pruned.
    old = at(TODAY - dt.timedelta(days=59), 3)
    with engine.begin() as conn:
        conn.execute(sa.insert(T), values)
        for set_id, state in (("failed-set", "failed"), ("running-set", "running")):
            conn.execute(sa.insert(T).values(set_id=set_id, database="app", state=state,
                                             location=str(root / set_id / "app.dump"),
                                             started_at=old))
    return files


def test_prune_deletes_exactly_what_gfs_does_not_keep(db_url: str, engine: sa.Engine,
                                                      tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path)
    files = _seed_history(engine, config.backup_dir)
    keep_ids = {t.strftime(SET_ID_FORMAT) for t in expected_keep()}

    dry = prune(config, now=NOW, engine=engine, dry_run=True)
    assert set(dry.kept) == keep_ids and len(dry.pruned) == 240 - 25
    assert all(p.exists() for paths in files.values() for p in paths)

    report = prune(config, now=NOW, engine=engine)
    assert set(report.kept) == keep_ids and report.errors == []
    assert set(report.pruned) == set(files) - keep_ids
    for set_id, paths in files.items():
        kept = set_id in keep_ids
        assert all(p.exists() == kept for p in paths), set_id
        assert (config.backup_dir / set_id).exists() == kept  # emptied set directories go
    with engine.connect() as conn:
        states = dict(conn.execute(sa.select(T.c.set_id, sa.func.string_agg(
            sa.distinct(T.c.state), ",")).group_by(T.c.set_id)).all())
        pruned_at = set(conn.execute(sa.select(T.c.pruned_at).where(T.c.state == "pruned"))
                        .scalars())
    assert {s for s, st in states.items() if st == "done"} == keep_ids
    assert {s for s, st in states.items() if st == "pruned"} == set(files) - keep_ids
    assert states["failed-set"] == "failed" and states["running-set"] == "running"
    assert pruned_at == {NOW}

    again = prune(config, now=NOW, engine=engine)  # nothing left to prune
    assert again.pruned == [] and set(again.kept) == keep_ids
    gone = sorted(set(files) - keep_ids)[0]
    with pytest.raises(BackupError, match=rf"^backup set {gone} has nothing to verify "
                       r"\(app pruned, globals pruned\)$"):
        verify_set(config, gone, engine=engine)
