"""The posting sensor's query on a real PostgreSQL: which reels are awaiting publication, and
that finished and old ones are left out. (The run keys and retries through the real sensor
evaluation: tests/test_publishing.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from sensors.posting import due_posts, posting_sensor
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import project_root
from waifugen_assets.roster.assets import sync_roster
from waifugen_assets.roster.model import load_roster

pytestmark = pytest.mark.integration

CID = "greta-vollmond"  # TikTok, Instagram and YouTube in the roster
NOW = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)
DAY = NOW.date()


@pytest.fixture
def roster_db(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        sync_roster(conn, load_roster(project_root() / "characters.yaml"))
    return engine


def _reel(conn: sa.Connection, slot: int, hours_ago: float, status: str,
          posts: dict[str, dict[str, Any]] | None = None) -> int:
    r, sp = schema.reels, schema.social_posts
    at = NOW - dt.timedelta(hours=hours_ago)
    reel = conn.execute(sa.insert(r).values(
        character_id=CID, date=at.date(), slot=slot, scheduled_at=at, status=status,
        plan={"script": "hi"}).returning(r.c.id)).scalar_one()
    for platform, values in (posts or {}).items():
        conn.execute(sa.insert(sp).values(reel_id=reel, platform=platform, ai_disclosure=True,
                                          **values))
    return reel


def _published() -> dict[str, Any]:
    return {"state": "published", "published_at": NOW, "attempts": 1}


def test_only_reels_awaiting_publication_in_the_last_two_days(roster_db: sa.Engine) -> None:
    everywhere = {p: _published() for p in ("tiktok", "instagram", "youtube")}
    with roster_db.begin() as conn:
        fresh = _reel(conn, 0, 1, "branded")  # slot came, nothing posted yet
        partly = _reel(conn, 1, 2, "branded", {"tiktok": _published(),
                                                "youtube": {"state": "processing",
                                                            "attempts": 1}})
        reopened = _reel(conn, 2, 3, "published", {
            **everywhere, "youtube": {"state": "failed_retryable", "attempts": 2,
                                      "next_attempt_at": NOW - dt.timedelta(minutes=1)}})
        _reel(conn, 3, 4, "published", everywhere)  # finished
        _reel(conn, 4, 5, "branded", {"tiktok": _published(), "instagram": _published(),
                                      "youtube": {"state": "skipped"}})  # settled: finished
        _reel(conn, 5, -1, "branded")  # its slot has not come
        _reel(conn, 6, 1, "stored")  # not branded yet: the generation sensor's
        _reel(conn, 7, 49, "branded")  # older than two days: long stale
        _reel(conn, 8, 60, "published", {**everywhere, "youtube": {
            "state": "failed_retryable", "attempts": 1}})  # reopened, but long stale
    with roster_db.connect() as conn:
        due = due_posts(conn, NOW)
    assert [(reel, n) for reel, _, _, n in due] == [(reopened, 4), (partly, 0), (fresh, 0)]
    assert {(cid, day) for _, cid, day, _ in due} == {(CID, DAY)}


def test_the_sensor_asks_for_the_partition_of_due_reels(roster_db: sa.Engine,
                                                        db_url: str) -> None:
    with roster_db.begin() as conn:
        reel = _reel(conn, 0, 1, "branded")
    with dg.instance_for_test() as instance, clock.running_from(NOW), dg.build_sensor_context(
            instance=instance, resources={"database": DatabaseResource(url=db_url)}) as context:
        (request,) = posting_sensor(context).run_requests
    assert request.run_key == f"post:{CID}|{DAY}:{reel}.0"
    assert request.partition_key.keys_by_dimension == {"character": CID, "date": str(DAY)}
