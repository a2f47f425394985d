"""stored_videos and branded_videos on the sandbox's real MP4s, real ffmpeg, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import av
import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from waifugen_assets.core import clock, schema
from waifugen_assets.pipeline.partitions import characters_partitions, partition_key
from waifugen_assets.planning.assets import reel_plans
from waifugen_assets.rendering.assets import reels
from waifugen_assets.roster.assets import characters
from waifugen_assets.videos.assets import branded_videos, stored_videos

DAY = dt.date(2026, 11, 23)
CID = "lucia-marvento"
ASSETS = [characters, reel_plans, reels, stored_videos, branded_videos]
FAST = {"ops": {"branded_videos": {"config": {"preset": "ultrafast", "crf": 35}}}}


@pytest.fixture(autouse=True)
def _on_day() -> None:
    """Every test runs as DAY begins in Madrid: its slots are still ahead."""
    with clock.running_from(dt.datetime(2026, 11, 22, 23, 30, tzinfo=dt.UTC)):
        yield


@pytest.fixture
def instance(pipeline_resources: dict):
    with dg.instance_for_test() as inst:
        assert dg.materialize([characters], resources=pipeline_resources, instance=inst).success
        inst.add_dynamic_partitions(characters_partitions.name, [CID])
        yield inst


def _run(resources: dict, instance, run_config: dict = FAST) -> dg.ExecuteInProcessResult:
    return dg.materialize(ASSETS, selection=ASSETS[1:], partition_key=partition_key(CID, DAY),
                          resources=resources, instance=instance, raise_on_error=False,
                          run_config=run_config)


def _state(engine: sa.Engine) -> tuple[list[dict], list[dict]]:
    r, v = schema.reels, schema.videos
    with engine.connect() as conn:
        reels_ = [dict(x) for x in conn.execute(sa.select(r).where(r.c.character_id == CID)
                                                .order_by(r.c.slot)).mappings()]
        videos = [dict(x) for x in conn.execute(sa.select(v).join(r, r.c.id == v.c.reel_id)
                                                .where(r.c.character_id == CID)
                                                .order_by(v.c.reel_id, v.c.variant)).mappings()]
    return reels_, videos


def test_plan_to_branded_files_that_match_the_spec(pipeline_resources, instance, engine) -> None:
    result = _run(pipeline_resources, instance)
    assert result.success
    reels_, videos = _state(engine)
    reasons = [r["failure_reason"] for r in reels_]
    assert reels_ and {r["status"] for r in reels_} == {"branded"}, reasons
    branded = [v for v in videos if v["variant"] == "branded"]
    assert len(branded) == len(reels_) and len([v for v in videos if v["variant"] == "raw"]) \
        == len(reels_)
    root = Path(pipeline_resources["video_store"].local_root)
    for video in branded:
        assert video["storage_key"].endswith(f"{video['sha256']}.mp4")
        assert video["public_url"] == f"https://media.example.test/v/{video['storage_key']}"
        assert (video["width"], video["height"]) == (1080, 1920)
        assert (video["video_codec"], video["audio_codec"]) == ("h264", "aac")
        with av.open(str(root / video["storage_key"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert container.streams.audio[0].codec_context.sample_rate == 48000
    (evaluation,) = [e for e in result.get_asset_check_evaluations()
                     if e.check_name == "video_integrity"]
    assert evaluation.passed and evaluation.metadata["verified"].value == len(reels_)

    again = _run(pipeline_resources, instance)  # nothing new, nothing duplicated
    assert again.success and _state(engine) == (reels_, videos)


@pytest.mark.parametrize(("outcome", "reason"), [("corrupt", "unusable"),
                                                 ("truncated", "download failed")])
def test_bad_video_fails_that_reel_only(pipeline_resources, instance, engine, sandbox_server,
                                        outcome: str, reason: str) -> None:
    key = pipeline_resources["a2e"].api_key
    httpx.post(f"{sandbox_server.url}/a2e/_control/next_jobs", json={"outcome": outcome,
               "count": 1}, headers={"Authorization": f"Bearer {key}"}).raise_for_status()
    result = _run(pipeline_resources, instance)
    assert result.success
    reels_, _ = _state(engine)
    failed = [r for r in reels_ if r["status"] == "failed"]
    assert len(failed) == 1 and reason in failed[0]["failure_reason"]
    assert [r["status"] for r in reels_].count("branded") == len(reels_) - 1


def test_redirect_to_loopback_is_refused_in_production_policy() -> None:
    from resources.url_policy import UnsafeUrl, UrlPolicy

    policy = UrlPolicy.production()
    for url in ("http://127.0.0.1/x.mp4", "https://10.0.0.5/x.mp4", "file:///etc/passwd",
                "https://169.254.169.254/latest/meta-data"):
        with pytest.raises(UnsafeUrl):
            policy.check_url(url, resolve=None)
