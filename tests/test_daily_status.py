"""daily_status: the day at a glance (real PostgreSQL, the sandbox platforms over HTTP), its
day_complete check, the `status` sensor that refreshes it after publish runs and the
schedule that closes each day."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from resources.database import DatabaseResource
from sensors.status import status_sensor
from waifugen_assets.app.sandbox_seeding import seed_sandbox_tokens
from waifugen_assets.app.status import refresh_daily_status
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.publishing.assets import social_posts
from waifugen_assets.publishing.jobs import publish_job
from waifugen_assets.publishing.live_posts import post_url
from waifugen_assets.rendering.assets import reels
from waifugen_assets.reporting.assets import daily_status
from waifugen_assets.reporting.jobs import status_job
from waifugen_assets.reporting.schedules import closing_requests, daily_status_schedule
from waifugen_assets.roster.assets import characters
from waifugen_assets.videos.assets import branded_videos, stored_videos

DAY = dt.date(2026, 11, 23)
CID = "lucia-marvento"  # Europe/Madrid
ASSETS = [characters, reel_plans, reels, stored_videos, branded_videos, social_posts]
FAST = {"branded_videos": {"config": {"preset": "ultrafast", "crf": 35}}}
YOUTUBE_FOR_ONE = 1700  # units: one upload (1600) fits, the next ones wait for the reset


@pytest.fixture(autouse=True)
def _on_day() -> None:
    """As DAY begins in Madrid: its slots are ahead, none stale."""
    with clock.running_from(dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC)):
        yield


@pytest.fixture
def world(pipeline_resources: dict, engine: sa.Engine):
    """A roster of one enabled character with sandbox tokens, and the definitions a
    deployment has for it (publish and status jobs on the test resources)."""
    defs = dg.Definitions(assets=[*ASSETS, daily_status], jobs=[publish_job, status_job],
                          resources=pipeline_resources)
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        instance.add_dynamic_partitions(characters_partitions.name, [CID])
        ch, pa = schema.characters, schema.platform_accounts
        with engine.begin() as conn:
            conn.execute(sa.update(ch).where(ch.c.id != CID).values(enabled=False))
            conn.execute(sa.delete(pa).where(pa.c.character_id != CID))
        vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
        assert len(seed_sandbox_tokens(vault, f"-{uuid.uuid4().hex[:8]}")) == 3
        yield defs, instance


def _day(resources: dict, instance: dg.DagsterInstance, youtube_units: int | None,
         selection: list = ASSETS[1:]) -> None:
    posts = {"only_due": False, "youtube_daily_units": youtube_units}
    ops = {**FAST, "social_posts": {"config": posts}}
    result = dg.materialize(ASSETS, selection=selection, partition_key=partition_key(CID, DAY),
                            resources=resources, instance=instance,
                            run_config={"ops": {k: v for k, v in ops.items()
                                                if any(a.key.path[-1] == k
                                                       for a in selection)}})
    assert result.success  # green, whatever waits


def _latest(instance: dg.DagsterInstance) -> tuple[dict, dg.AssetCheckEvaluation]:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("daily_status"),
                              asset_partitions=[DAY.isoformat()]), limit=1).records
    meta = record.asset_materialization.metadata
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("daily_status"), "day_complete")])
    (execution,) = check.values()
    return meta, execution.event.dagster_event.event_specific_data


def _row(markdown: str, cid: str) -> list[str]:
    line = next(x for x in markdown.splitlines() if x.startswith(f"| **{cid}** |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def _links(cell: str) -> list[str]:
    import re

    return re.findall(r"\]\((http[^)]+)\)", cell)


def test_a_day_with_deferred_posts_warns_then_passes_once_they_are_live(
        pipeline_resources: dict, world, engine: sa.Engine, sandbox) -> None:
    defs, instance = world
    _day(pipeline_resources, instance, YOUTUBE_FOR_ONE)
    assert refresh_daily_status(defs, instance, {CID: DAY}) == []
    meta, check = _latest(instance)

    r = schema.reels
    with engine.connect() as conn:
        n = conn.scalar(sa.select(sa.func.count()).where(r.c.character_id == CID,
                                                        r.c.date == DAY))
    assert n > 1
    # One row per enabled character; plain numbers Dagster plots.
    assert meta["dagster/row_count"].value == 1 == meta["characters"].value
    assert isinstance(meta["posts_published"], dg.IntMetadataValue)
    assert isinstance(meta["budget_used_pct"], dg.FloatMetadataValue)
    assert 0 < meta["budget_used_pct"].value < 100
    # A reel counts as published once every platform has it: here the one YouTube took.
    assert meta["reels_planned"].value == meta["reels_branded"].value == n
    assert meta["reels_published"].value == 1
    assert meta["posts_published"].value == 2 * n + 1  # TikTok, Instagram, one YouTube
    assert meta["posts_deferred"].value == n - 1

    # The warning names what waits and why; the run itself was green.
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith(f"{DAY.isoformat()}: 1 item(s) not done: ")
    assert f"{CID}: {n - 1} youtube posts deferred: youtube daily quota spent" \
        in check.description
    assert check.metadata["posts_deferred"].value == n - 1

    # The character's row: every stage, a link per live post, what did not go out.
    row = _row(meta["status"].value, f"{CID}")
    assert row[1] == f"{DAY.isoformat()} (in progress, 00:30)"
    assert row[2:9] == [str(n)] * 4 + ["1", "0", "0"]  # planned .. branded, published, ..
    tiktok, instagram, youtube = row[9:12]
    assert len(_links(tiktok)) == len(_links(instagram)) == n and len(_links(youtube)) == 1
    assert youtube.endswith(f"({n - 1} deferred)")
    assert row[12].endswith(f"/{_limit(engine)})") and row[-1] == "1"  # one reason below
    # phase, views 24 h, followers, replies 24 h (held): nothing read back yet in this test
    assert row[14:18] == ["launch", "0", "0", "0 (0)"]
    # Each link opens the sandbox platform's record of that post.
    with engine.connect() as conn:
        ids = set(conn.execute(sa.select(schema.social_posts.c.remote_post_id).where(
            schema.social_posts.c.state == "published")).scalars())
    for url in _links(tiktok) + _links(instagram) + _links(youtube):
        assert url.startswith(sandbox.url)
        page = httpx.get(url, timeout=10)
        post_id = url.rpartition("/")[2]
        assert page.status_code == 200 and post_id in ids and f'"{post_id}"' in page.text
        record = page.json()  # that one post: TikTok names it post_id, the others id
        assert str(record.get("post_id") or record.get("id")) == post_id
    missing = httpx.get(f"{sandbox.url}/youtube/_control/published/no-such-video", timeout=10)
    assert missing.status_code == 404

    # YouTube's quota day begins (midnight Pacific): the posts go out, the day passes.
    with clock.running_from(dt.datetime(2026, 11, 23, 8, 0, 1, tzinfo=dt.UTC)):
        _day(pipeline_resources, instance, None, selection=[social_posts])
        assert refresh_daily_status(defs, instance, [DAY]) == []
    meta, check = _latest(instance)
    assert check.passed and check.description == f"{DAY.isoformat()}: nothing waits"
    assert meta["posts_published"].value == 3 * n and meta["posts_deferred"].value == 0
    assert "Nothing waits: the day is done." in meta["status"].value


def _limit(engine: sa.Engine) -> int:
    from waifugen_assets.reporting.status import day_status

    with engine.connect() as conn:
        report = day_status(conn, DAY, get_settings().a2e_monthly_credits)
    return report["characters"][0]["budget"]["limit"]


def _reel(conn: sa.Connection, slot: int, status: str, reason: str | None = None) -> int:
    r = schema.reels
    at = dt.datetime(2026, 11, 23, 8 + slot, tzinfo=dt.UTC)
    return conn.execute(sa.insert(r).values(
        character_id=CID, date=DAY, slot=slot, scheduled_at=at, status=status,
        failure_reason=reason).returning(r.c.id)).scalar_one()


def _post(conn: sa.Connection, reel_id: int, platform: str, state: str,
          error: str | None = None) -> None:
    conn.execute(sa.insert(schema.social_posts).values(
        reel_id=reel_id, platform=platform, state=state, ai_disclosure=True, last_error=error,
        remote_post_id=f"{platform}-{reel_id}" if state == "published" else None,
        published_at=clock.now() if state == "published" else None))


def test_the_check_names_every_kind_of_wait_with_its_reason(
        pipeline_resources: dict, world, engine: sa.Engine) -> None:
    defs, instance = world
    with engine.begin() as conn:  # a day as the daemon leaves it mid-afternoon
        done = _reel(conn, 0, "published")
        for platform in ("tiktok", "instagram"):
            _post(conn, done, platform, "published")
        _post(conn, done, "youtube", "deferred", "youtube daily quota spent")
        late = _reel(conn, 1, "branded")
        _post(conn, late, "tiktok", "skipped", "stale: slot 08:00 passed more than 3 h ago")
        _reel(conn, 2, "planned", "a2e rate limit: 100 requests per hour spent; retry in 41 s")
        _reel(conn, 3, "failed", "a2e task failed: avatar not found")
        _reel(conn, 4, "skipped", "missed: its slot passed before it could be rendered")
    assert refresh_daily_status(defs, instance, [DAY]) == []
    meta, check = _latest(instance)
    assert not check.passed
    for named in (f"{CID}: 1 youtube posts deferred: youtube daily quota spent",
                  f"{CID}: 1 tiktok posts skipped: stale: slot 08:00 passed more than 3 h ago",
                  f"{CID}: 1 reels planned: a2e rate limit: 100 requests per hour spent; "
                  "retry in …",
                  f"{CID}: 1 reels failed: a2e task failed: avatar not found",
                  f"{CID}: 1 reels skipped: missed: its slot passed before it could be "
                  "rendered"):
        assert named in check.description and named in meta["status"].value
        assert f"- {named}" in check.metadata["waiting"].value
    counts = {k: check.metadata[k].value for k in ("reels_pending", "reels_failed",
                                                   "reels_missed", "posts_deferred",
                                                   "posts_skipped")}
    assert counts == {"reels_pending": 1, "reels_failed": 1, "reels_missed": 1,
                      "posts_deferred": 1, "posts_skipped": 1}
    # The row says what did not go out next to what did.
    row = _row(meta["status"].value, CID)
    assert "(1 skipped)" in row[9] and "(1 deferred)" in row[11]


def test_public_links_in_production() -> None:
    assert post_url("tiktok", "published", "7455", None, "@mika") == "https://www.tiktok.com/@mika/video/7455"
    assert post_url("youtube", "published", "abcDEF12345", None, None) \
        == "https://www.youtube.com/shorts/abcDEF12345"
    ig = "https://www.instagram.com/reel/DLvcCXf7zMM/"
    assert post_url("instagram", "published", "1792", ig, "@m") == ig
    assert post_url("instagram", "published", "1792", None, "@m") is None
    assert post_url("tiktok", "published", None, None, "@mika") is None


def _tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return status_sensor(context)


def test_status_sensor_refreshes_after_publish_runs_and_not_again(
        pipeline_resources: dict, world) -> None:
    defs, instance = world
    publish = defs.resolve_job_def("publish")
    other = DAY + dt.timedelta(days=1)

    def publish_run(day: dt.date) -> str:
        result = publish.execute_in_process(
            partition_key=partition_key(CID, day), instance=instance, raise_on_error=False,
            run_config={"ops": {"social_posts": {"config": {"only_due": False}}}})
        return result.run_id  # succeeded or failed: either way it finished

    assert _tick(instance).run_requests == []  # no publish run yet
    first = publish_run(DAY)
    tick = _tick(instance)
    (request,) = tick.run_requests
    assert request.partition_key == DAY.isoformat()
    assert request.run_key == f"status:{DAY.isoformat()}:{first}"
    assert _tick(instance, tick.cursor).run_requests == []  # nothing new since
    # Without a cursor the same runs give the same run key: Dagster launches it once.
    assert [r.run_key for r in _tick(instance).run_requests] == [request.run_key]

    # A refresh that started after the publish run ended answers it.
    assert refresh_daily_status(defs, instance, [DAY]) == []
    assert _tick(instance).run_requests == []

    # Two more publish runs (two dates) before the next tick: one refresh per date, keyed
    # by the newest publish run of each; the status runs themselves ask for nothing.
    second, third = publish_run(DAY), publish_run(other)
    requests = _tick(instance, tick.cursor).run_requests
    assert sorted((r.partition_key, r.run_key) for r in requests) == [
        (DAY.isoformat(), f"status:{DAY.isoformat()}:{second}"),
        (other.isoformat(), f"status:{other.isoformat()}:{third}")]


def test_daily_status_schedule_closes_each_day_once_it_is_over_everywhere(
        pipeline_resources: dict, db_url: str) -> None:
    la, tokyo = "America/Los_Angeles", "Asia/Tokyo"
    at = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)  # LA: 25th, 19:00; Tokyo: 26th
    keys = [r.partition_key for r in closing_requests([tokyo, la], at)]
    assert keys == ["2026-11-22", "2026-11-23", "2026-11-24"]  # the 25th is LA's today
    assert [r.partition_key for r in closing_requests([tokyo], at)][-1] == "2026-11-25"
    assert [r.run_key for r in closing_requests([la], at, dt.date(2026, 11, 24))] \
        == ["close:2026-11-24"]
    assert closing_requests([], at) == []

    # The schedule reads the enabled characters' zones from the app database.
    with dg.instance_for_test() as instance:
        assert dg.materialize([characters], resources=pipeline_resources,
                              instance=instance).success
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                       resources={"database": DatabaseResource(url=db_url)}
                                       ) as context:
            requests = daily_status_schedule(context)
    assert [r.partition_key for r in requests] == keys  # LA is the roster's westernmost
