"""The one YouTube quota model is the one publishing uses: every call the client reports is
counted in quota_usage at its real cost, per bucket, and an upload that does not fit waits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from resources.youtube import CLASSIC_COSTS, QuotaLedger, QuotaModel, next_reset
from waifugen_assets.core import clock
from waifugen_assets.publishing.flows import Deferred, PostJob
from waifugen_assets.publishing.platform_flows import YouTubeFlow

NOW = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fixed_now():
    with clock.simulate(NOW):
        yield


def _job(tmp_path: Path) -> PostJob:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 10)
    return PostJob(reel_id=1, character_id="c", platform="youtube", content_rating="general",
                   plan={"title": "t"}, video=video, public_url=None, scheduled_at=NOW)


@pytest.mark.parametrize(("operation", "units"), [
    ("videos.insert", 1600), ("videos.list", 1), ("channels.list", 1),
    ("commentThreads.list", 1), ("comments.list", 1), ("comments.insert", 50),
])
def test_every_call_is_counted_at_its_real_cost(engine: sa.Engine, operation: str,
                                                units: int) -> None:
    flow = YouTubeFlow(engine, quota_key="project-a")
    flow.spend(operation)
    flow.spend(operation)
    assert flow.units_used(NOW) == 2 * units == 2 * CLASSIC_COSTS[operation]
    assert YouTubeFlow(engine, quota_key="project-b").units_used(NOW) == 0  # per project


def test_an_upload_that_does_not_fit_waits_for_the_pacific_reset(engine: sa.Engine,
                                                                  tmp_path: Path) -> None:
    flow = YouTubeFlow(engine, quota_key="p", quota=QuotaLedger(daily_units=3300))
    flow.spend("videos.insert")
    flow.spend("videos.insert")  # 3,200 of 3,300: the next upload does not fit
    with pytest.raises(Deferred) as deferred:
        flow._start(_job(tmp_path), ledger=None)  # type: ignore[arg-type]
    assert deferred.value.until == next_reset(NOW)
    # Reads still count: 100 comment replies are 5,000 units, where a flat 1 would be 100.
    big = YouTubeFlow(engine, quota_key="q", quota=QuotaLedger(daily_units=10_000))
    for _ in range(100):
        big.spend("comments.insert")
    assert big.units_used(NOW) == 5000
    assert not big.quota.fits("videos.insert", {"units": 9000})


def test_the_buckets_model_counts_uploads_in_their_own_bucket(engine: sa.Engine,
                                                               tmp_path: Path) -> None:
    flow = YouTubeFlow(engine, quota_key="p", quota=QuotaLedger(model=QuotaModel.BUCKETS,
                                                                daily_inserts=2))
    flow.spend("videos.insert")
    flow.spend("videos.list")
    assert flow.used(NOW) == {"units": 1, "inserts": 1, "searches": 0}
    flow.spend("videos.insert")
    with pytest.raises(Deferred):
        flow._start(_job(tmp_path), ledger=None)  # type: ignore[arg-type]
    # A new Pacific day starts from nothing.
    assert flow.used(next_reset(NOW) + dt.timedelta(minutes=1))["inserts"] == 0
