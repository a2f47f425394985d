"""engagement_metrics: a published day read back from the TikTok, Instagram and YouTube
sandboxes over HTTP at the snapshot ages, real PostgreSQL; the roll-up, the hourly schedule,
fault storms and spent YouTube units."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
from reconfigure import reconfigured

from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.engagement.assets import engagement_metrics
from waifugen_assets.engagement.due import characters_due
from waifugen_assets.engagement.readings import SNAPSHOT_AGES, ages_reached, next_snapshot_at
from waifugen_assets.engagement.schedules import engagement_schedule
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.publishing.assets import social_posts
from waifugen_assets.rendering.assets import reels
from waifugen_assets.roster.assets import characters
from waifugen_assets.videos.assets import branded_videos, stored_videos

DAY = dt.date(2026, 11, 23)
CID = "lucia-marvento"
START = dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC)  # DAY begins in Madrid
ASSETS = [characters, reel_plans, reels, stored_videos, branded_videos, social_posts,
          engagement_metrics]
PUBLISH = {"ops": {"branded_videos": {"config": {"preset": "ultrafast", "crf": 35}},
                   "social_posts": {"config": {"only_due": False}}}}
PLATFORMS = ("tiktok", "instagram", "youtube")


def test_snapshot_ages() -> None:
    published = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert [ages_reached(a) for a in SNAPSHOT_AGES] == [1, 2, 3, 4, 5, 6]
    assert ages_reached(dt.timedelta(minutes=59)) == 0
    assert ages_reached(dt.timedelta(days=2)) == 3  # a late reading skips none it reached
    assert next_snapshot_at(published, 0) == published + dt.timedelta(hours=1)
    assert next_snapshot_at(published, 3) == published + dt.timedelta(days=3)
    assert next_snapshot_at(published, 6) is None


@pytest.fixture
def suffix() -> str:
    return f"-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def published_day(pipeline_resources: dict, engine: sa.Engine, sandbox, suffix: str):
    """One character's day published on the three sandboxes at START (both clocks)."""
    sandbox.set_clock(START, frozen=False)
    with clock.running_from(START), dg.instance_for_test() as inst:
        assert dg.materialize([characters], resources=pipeline_resources, instance=inst).success
        inst.add_dynamic_partitions(characters_partitions.name, [CID])
        pa = schema.platform_accounts
        with engine.begin() as conn:
            conn.execute(sa.delete(pa).where(pa.c.character_id != CID))
        vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
        assert len(seed_sandbox_tokens(vault, suffix)) == 3
        result = dg.materialize(ASSETS, selection=ASSETS[1:6], partition_key=_key(),
                                resources=pipeline_resources, instance=inst, run_config=PUBLISH)
        assert result.success
        yield inst


def _key() -> dg.MultiPartitionKey:
    return partition_key(CID, DAY)


def _read(resources: dict, instance, sandbox, at: dt.datetime,
          config: dict | None = None) -> dg.ExecuteInProcessResult:
    sandbox.set_clock(at, frozen=True)
    with clock.running_from(at):
        return dg.materialize(ASSETS, selection=[engagement_metrics], partition_key=_key(),
                              resources=resources, instance=instance, raise_on_error=False,
                              run_config={"ops": {"engagement_metrics": {"config": config}}}
                              if config else None)


def _posts(engine: sa.Engine) -> list[dict]:
    sp = schema.social_posts
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(sp).order_by(sp.c.id)).mappings()]


def _snapshots(engine: sa.Engine) -> list[dict]:
    es, sp = schema.engagement_snapshots, schema.social_posts
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(es, sp.c.platform).join(sp, sp.c.id == es.c.post_id)
            .order_by(es.c.post_id, es.c.captured_at)).mappings()]


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (mat,) = result.asset_materializations_for_node("engagement_metrics")
    return {k: v.value for k, v in mat.metadata.items()}


def test_posts_are_read_at_each_age_once_and_counters_never_fall(
        pipeline_resources, published_day, engine, sandbox) -> None:
    posts = _posts(engine)
    assert posts and {p["state"] for p in posts} == {"published"}
    published = {p["id"]: p["published_at"] for p in posts}
    first = max(published.values())

    # Before the first hour nothing is due: the run reads followers only.
    early = _read(pipeline_resources, published_day, sandbox, first + dt.timedelta(minutes=30))
    assert early.success and _metadata(early)["due"] == 0 and not _snapshots(engine)
    with engine.connect() as conn:
        assert {p for p, _ in conn.execute(sa.select(
            schema.follower_snapshots.c.platform, schema.follower_snapshots.c.followers))} \
            == set(PLATFORMS)

    for age in (dt.timedelta(hours=1), dt.timedelta(hours=6), dt.timedelta(days=1)):
        at = first + age + dt.timedelta(minutes=5)
        result = _read(pipeline_resources, published_day, sandbox, at)
        assert result.success
        meta = _metadata(result)
        assert meta["due"] == len(posts) and meta["failed"] == 0, meta
        again = _read(pipeline_resources, published_day, sandbox, at + dt.timedelta(minutes=1))
        assert _metadata(again)["due"] == 0  # each age once

    snaps = _snapshots(engine)
    by_post: dict[int, list[dict]] = {}
    for s in snaps:
        by_post.setdefault(s["post_id"], []).append(s)
    # TikTok posts the app cannot see have no readings (reported as no_metrics, never zeros).
    visible = [p for p in posts if p["platform"] != "tiktok" or p["id"] in by_post]
    assert len(visible) >= 2 * len(posts) // 3
    for post in visible:
        readings = by_post[post["id"]]
        assert len(readings) == 3, post
        for counter in ("views", "likes"):
            values = [r[counter] for r in readings if r[counter] is not None]
            assert values == sorted(values), (post["platform"], counter, values)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.social_posts.c.metrics_checkpoint,
                                      schema.social_posts.c.metrics_next_at)).all()
    assert {c for c, _ in rows} == {3}
    assert all(n is not None for _, n in rows)  # 3 d, 7 d, 30 d still to come
    # The day's gains: lifetime counters of each post's last reading of the day.
    with engine.connect() as conn:
        daily = {r.platform: r for r in conn.execute(sa.select(schema.engagement_daily))}
    assert set(daily) >= {"instagram", "youtube"}
    assert all(r.views >= 0 and r.posts_read > 0 for r in daily.values())


def test_a_fault_storm_on_the_read_routes_leaves_no_gap_and_no_duplicate(
        pipeline_resources, published_day, engine, sandbox) -> None:
    posts = _posts(engine)
    first = max(p["published_at"] for p in posts)
    storm = [{"action": "status", "status": 503}, {"action": "rate_limit", "retry_after": 1},
             {"action": "drop"}]
    for system in PLATFORMS:
        for spec in storm:
            sandbox.add_fault(system=system, route="*", probability=0.3 / len(storm), **spec)
    at = first + dt.timedelta(hours=1, minutes=5)
    for minute in range(12):
        _read(pipeline_resources, published_day, sandbox, at + dt.timedelta(minutes=minute))
        with engine.connect() as conn:
            if not conn.scalar(sa.select(sa.func.count()).where(
                    schema.social_posts.c.metrics_checkpoint == 0)):
                break
    sandbox.clear_faults()
    fired = [e for s in PLATFORMS for e in sandbox.journal(s) if e["fault"] is not None]
    assert fired  # the storm hit the reads
    with engine.connect() as conn:
        left = conn.scalar(sa.select(sa.func.count()).where(
            schema.social_posts.c.metrics_checkpoint == 0))
    assert left == 0
    snaps = _snapshots(engine)
    assert len({s["post_id"] for s in snaps}) == len(snaps)  # one reading each, no duplicate


def test_youtube_reads_wait_when_the_days_units_are_spent(
        pipeline_resources, published_day, engine, sandbox) -> None:
    posts = _posts(engine)
    first = max(p["published_at"] for p in posts)
    at = first + dt.timedelta(hours=1, minutes=5)
    resources = {**pipeline_resources,  # the uploads already spent more than one unit
                 "youtube": reconfigured(pipeline_resources["youtube"], daily_units=1)}
    result = _read(resources, published_day, sandbox, at)
    meta = _metadata(result)
    youtube = sum(1 for p in posts if p["platform"] == "youtube")
    assert meta["deferred"] == youtube, meta
    with engine.connect() as conn:
        waiting = conn.execute(sa.select(schema.social_posts.c.platform).where(
            schema.social_posts.c.metrics_checkpoint == 0)).scalars().all()
    assert set(waiting) == {"youtube"}
    # Two hours on, still spent: the check says how many readings are late, and why.
    late = _read(resources, published_day, sandbox, at + dt.timedelta(hours=2, minutes=5))
    (check,) = late.get_asset_check_evaluations()
    assert not check.passed and "youtube quota" in check.description
    assert check.metadata["overdue"].value == youtube


def test_the_schedule_asks_only_where_a_reading_is_due(
        pipeline_resources, published_day, engine, sandbox) -> None:
    posts = _posts(engine)
    first = max(p["published_at"] for p in posts)
    # Followers were never read: due for the character even before an hour has passed.
    with engine.connect() as conn:
        assert set(characters_due(conn, first + dt.timedelta(minutes=10))) == {CID}
    _read(pipeline_resources, published_day, sandbox, first + dt.timedelta(minutes=10))
    with engine.connect() as conn:
        assert characters_due(conn, first + dt.timedelta(minutes=20)) == {}
        due = characters_due(conn, first + dt.timedelta(hours=1, minutes=1))
    assert due[CID][1] == f"{len(posts)} posts"

    def tick(at: dt.datetime) -> list[dg.RunRequest]:
        with dg.build_schedule_context(instance=published_day, scheduled_execution_time=at,
                                       resources={"database": pipeline_resources["database"]}
                                       ) as ctx:
            return list(engagement_schedule(ctx))

    assert tick(first + dt.timedelta(minutes=20)) == []
    (request,) = tick(first + dt.timedelta(hours=1, minutes=1))
    assert request.partition_key == _key()
    assert request.run_key.startswith(f"engagement:{_key()}:")


def test_read_all_live_reads_now_and_keeps_the_first_hour_due(
        pipeline_resources, published_day, engine, sandbox) -> None:
    posts = _posts(engine)
    first = max(p["published_at"] for p in posts)
    result = _read(pipeline_resources, published_day, sandbox, first + dt.timedelta(minutes=2),
                   config={"read_all_live": True})
    assert _metadata(result)["due"] == len(posts)
    assert "| instagram |" in str(_metadata(result)["platforms"])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.social_posts.c.metrics_checkpoint,
                                      schema.social_posts.c.metrics_next_at,
                                      schema.social_posts.c.published_at)).all()
    assert all(c == 0 and n == p + dt.timedelta(hours=1) for c, n, p in rows)


def test_engagement_show_and_status_through_the_cli(pipeline_resources, published_day, engine,
                                                     sandbox, db_url, tmp_path) -> None:
    first = max(p["published_at"] for p in _posts(engine))
    _read(pipeline_resources, published_day, sandbox, first + dt.timedelta(hours=1, minutes=5))
    env = {**os.environ, "WAIFUGEN_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url,
           "WAIFUGEN_NOW": (first + dt.timedelta(hours=2)).isoformat()}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    shown = cli("engagement", "show", CID, "--days", "3")
    assert shown.returncode == 0, shown.stderr
    with engine.connect() as conn:
        yt = conn.execute(sa.select(schema.engagement_daily.c.views).where(
            schema.engagement_daily.c.platform == "youtube")).scalar_one()
    assert f"youtube{'':<4}" in shown.stdout and f"{yt:,}" in shown.stdout
    assert "https://www.youtube.com/shorts/" in shown.stdout  # the most viewed, linked
    unknown = cli("engagement", "show", "nobody-here")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: unknown character 'nobody-here': not in the database (run `waifugen run` or "
        "check the roster)"]
    status = cli("status", "--json")
    assert status.returncode == 0, status.stderr
    (mine,) = [c for c in json.loads(status.stdout)["characters"] if c["id"] == CID]
    assert mine["engagement"]["views_24h"] >= yt > 0
    assert mine["engagement"]["followers"] > 0
