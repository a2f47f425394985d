"""Engagement reads of resources.tiktok / instagram / youtube against the sandbox over real HTTP:
batching (counted in the sandbox journal), limits and YouTube units counted before the call
(a call that does not fit never reaches the sandbox), lifetime counters parsed as the
platforms send them (YouTube's strings, Instagram's empty insights and error #10, TikTok's
missing ids, a hidden subscriber count) and errors classified like the publishing calls.

The helpers here (one sandbox account per platform, with seeded published posts) are shared
with tests/test_comment_clients.py."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from resources.engagement_model import AccountStats, PostCounters
from resources.http import (
    AuthError,
    MemoryRateLimitStore,
    PermanentError,
    RateLimited,
    RetryPolicy,
)
from resources.instagram import InstagramClient, lookup_user
from resources.tiktok import QUERY_PATH, USER_INFO_PATH, TikTokClient, tiktok_limits
from resources.youtube import QuotaExceeded, QuotaLedger, YouTubeClient, next_reset, refresh_token
from resources.youtube_quota import UnitsGate
from sandbox.systems.youtube import channel_id_for
from waifugen_assets.core import clock

LABEL = "AI-generated virtual creator. #AIgenerated"
YT_STATUS = {"privacyStatus": "public", "selfDeclaredMadeForKids": False,
             "containsSyntheticMedia": True}
FAST = RetryPolicy(random=lambda: 0.0, sleep=lambda _: None)


def control(sandbox: Any, system: str, path: str, method: str = "POST", **body: Any) -> Any:
    response = httpx.request(method, f"{sandbox.url}/{system}/_control/{path}",
                             json=body if method == "POST" else None,
                             params=body if method != "POST" else None)
    assert response.status_code == 200, response.text
    return response.json()


def mark(sandbox: Any) -> int:
    return max((e["id"] for e in sandbox.journal()), default=0)


def requests_to(sandbox: Any, system: str, since: int, path: str,
                method: str | None = None) -> list[dict[str, Any]]:
    return [e for e in sandbox.journal(system, since) if e["path"].endswith(path)
            and (method is None or e["method"] == method)]


# --- accounts ----------------------------------------------------------------------------------

class TikTokAccount:
    def __init__(self, sandbox: Any, **limits: Any) -> None:
        self.sandbox = sandbox
        self.name = f"e{uuid.uuid4().hex[:12]}"
        self.token = f"act.sandbox.{self.name}"
        self.client = TikTokClient(lambda: self.token, base_url=f"{sandbox.url}/tiktok",
                                   retry=FAST, limits=tiktok_limits(
                                       store=MemoryRateLimitStore(), max_wait=0, **limits))

    def control(self, path: str, method: str = "POST", **body: Any) -> Any:
        return control(self.sandbox, "tiktok", path, method, account=self.name, **body)

    def seed(self, count: int = 1, **post: Any) -> list[str]:
        """Published posts (the sandbox's seeded ones); SELF_ONLY posts by publish_id."""
        made = self.control("seed_posts", count=count, **post)
        return [str(p["post_id"]) if p["privacy_level"] != "SELF_ONLY" else p["publish_id"]
                for p in made]


class InstagramAccount:
    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.token = f"IGAAsandbox_{uuid.uuid4().hex[:10]}"
        base = f"{sandbox.url}/instagram"
        self.user = lookup_user(base, self.token)
        self.client = InstagramClient(lambda: self.token, self.user.id, base_url=base,
                                      rupload_base=f"{base}/rupload", retry=FAST)

    def control(self, path: str, method: str = "POST", **body: Any) -> Any:
        return control(self.sandbox, "instagram", path, method, **body)

    def audience(self, **settings: Any) -> None:
        self.control("audience", account=self.user.id, **settings)

    def seed(self, count: int = 1, **post: Any) -> list[str]:
        return [m["id"] for m in self.control("seed_posts", ig_user_id=self.user.id,
                                              count=count, **post)]


class YouTubeAccount:
    def __init__(self, sandbox: Any, *, on_quota: Any = None) -> None:
        self.sandbox = sandbox
        base = f"{sandbox.url}/youtube"
        self.client_id = f"eng-{uuid.uuid4().hex[:10]}.apps.googleusercontent.com"
        self.refresh = f"1//sandbox_{uuid.uuid4().hex[:12]}"
        self.channel = channel_id_for(self.refresh)
        self.control("config", client_id=self.client_id, units_per_day=1_000_000)
        self.access = refresh_token(f"{base}/oauth2", self.client_id, "GOCSPX-e",
                                    self.refresh).access_token
        self.spent: list[str] = []
        self.client = YouTubeClient(lambda: self.access, base_url=base, retry=FAST,
                                    on_quota=on_quota or self.spent.append)

    def control(self, path: str, method: str = "POST", **body: Any) -> Any:
        return control(self.sandbox, "youtube", path, method, **body)

    def audience(self, **settings: Any) -> None:
        self.control("audience", account=self.channel, **settings)

    def seed(self, count: int = 1, **post: Any) -> list[str]:
        made = self.control("seed_posts", channel=self.channel, count=count, **post)
        return [v["id"] for v in made["videos"]]


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def tiktok(sandbox: Any) -> Iterator[TikTokAccount]:
    account = TikTokAccount(sandbox)
    yield account
    account.client.close()


@pytest.fixture
def instagram(sandbox: Any) -> Iterator[InstagramAccount]:
    account = InstagramAccount(sandbox)
    yield account
    account.client.close()


@pytest.fixture
def youtube(sandbox: Any) -> Iterator[YouTubeAccount]:
    account = YouTubeAccount(sandbox)
    yield account
    account.client.close()


def fake_tiktok_ids(n: int) -> list[str]:
    return [str(7_300_000_000_000_000_000 + i) for i in range(n)]


def fake_youtube_ids(n: int) -> list[str]:
    return [f"zz{i:09d}" for i in range(n)]  # 11 characters, like real ids, never uploaded


# --- TikTok ------------------------------------------------------------------------------------

def test_tiktok_query_sends_twenty_ids_a_call_and_leaves_unseen_ids_out(
        sandbox: Any, tiktok: TikTokAccount) -> None:
    [post] = tiktok.seed(at=time.time() - 6 * 3600)
    ids = [post, *fake_tiktok_ids(20)]  # 21 ids
    since = mark(sandbox)
    counters = tiktok.client.query_videos(ids)
    calls = requests_to(sandbox, "tiktok", since, QUERY_PATH, "POST")
    assert [len(c["body"]["filters"]["video_ids"]) for c in calls] == [20, 1]
    assert [i for c in calls for i in c["body"]["filters"]["video_ids"]] == ids
    assert all(c["status"] == 200 for c in calls)
    assert all(set(c["query"]["fields"].split(",")) == {"id", "view_count", "like_count",
                                                         "comment_count", "share_count"}
               for c in calls)
    assert list(counters) == [post]  # ids TikTok did not answer for are absent, not zeros
    got = counters[post]
    assert got.views > 0 and all(isinstance(v, int) and v >= 0
                                 for v in (got.likes, got.comments, got.shares))
    assert got.saves is None and got.reach is None  # TikTok reports neither
    assert tiktok.client.query_videos([]) == {}
    assert not requests_to(sandbox, "tiktok", calls[-1]["id"], QUERY_PATH)


def test_tiktok_posts_the_app_may_not_see_have_no_metrics(tiktok: TikTokAccount) -> None:
    [public] = tiktok.seed()
    [private] = tiktok.seed(privacy_level="SELF_ONLY")  # an unaudited app's posts
    assert list(tiktok.client.query_videos([public, private])) == [public]
    tiktok.control("config", query_self_only=True)  # an app that may read them
    assert set(tiktok.client.query_videos([public, private])) == {public, private}


def test_tiktok_user_stats(sandbox: Any, tiktok: TikTokAccount) -> None:
    tiktok.seed(count=3)
    tiktok.control("audience", followers_base=9990)
    since = mark(sandbox)
    stats = tiktok.client.user_stats()
    assert isinstance(stats, AccountStats)
    assert stats.followers is not None and stats.followers >= 9990
    assert stats.posts == 3 and isinstance(stats.following, int)
    [call] = requests_to(sandbox, "tiktok", since, USER_INFO_PATH, "GET")
    assert call["status"] == 200
    assert call["query"]["fields"] == "follower_count,following_count,likes_count,video_count"


def test_tiktok_reads_take_their_slot_before_the_call(sandbox: Any) -> None:
    account = TikTokAccount(sandbox, queries=2, user_infos=1)
    since = mark(sandbox)
    with pytest.raises(RateLimited, match="client-side limit of 2 per 60 s") as refused:
        account.client.query_videos(fake_tiktok_ids(60))  # 3 calls; the third does not fit
    assert 0 < (refused.value.retry_after or 0) <= 60
    assert len(requests_to(sandbox, "tiktok", since, QUERY_PATH)) == 2  # never sent
    account.client.user_stats()
    with pytest.raises(RateLimited):
        account.client.user_stats()  # its own endpoint, its own budget
    assert len(requests_to(sandbox, "tiktok", since, USER_INFO_PATH)) == 1
    account.client.close()
    with TikTokClient(lambda: "x") as default:  # TikTok's own numbers by default
        reads = {lim.limiter.name: lim.limiter.limit for lim in default.limits
                 if lim.limiter.name in ("tiktok.video_query", "tiktok.user_info")}
        assert reads == {"tiktok.video_query": 600, "tiktok.user_info": 600}


def test_tiktok_read_errors_are_classified(sandbox: Any, tiktok: TikTokAccount) -> None:
    tiktok.control("config", video_query_per_minute=1)  # TikTok's own limit, not ours
    tiktok.client.query_videos(["1"])
    with pytest.raises(RateLimited, match="rate_limit_exceeded") as limited:
        tiktok.client.query_videos(["1"])  # 429 once more after the retries: 60 s window
    assert limited.value.retry_after == 60
    tiktok.control("expire_token")
    with pytest.raises(AuthError, match="access_token_invalid"):
        tiktok.client.user_stats()


# --- Instagram ---------------------------------------------------------------------------------

def test_instagram_insights_of_a_reel(sandbox: Any, instagram: InstagramAccount) -> None:
    [media] = instagram.seed(at=time.time() - 6 * 3600)
    since = mark(sandbox)
    got = instagram.client.media_insights(media)
    [call] = requests_to(sandbox, "instagram", since, f"/{media}/insights", "GET")
    assert call["status"] == 200
    assert call["query"]["metric"].split(",") == [
        "views", "reach", "likes", "comments", "shares", "saved", "total_interactions"]
    assert isinstance(got, PostCounters)
    values = (got.views, got.reach, got.likes, got.comments, got.shares, got.saves)
    assert all(isinstance(v, int) and v >= 0 for v in values), got
    assert got.views is not None and got.views > 0 and got.views >= (got.reach or 0)


def test_instagram_insights_not_there_yet_are_none_not_zero(instagram: InstagramAccount) -> None:
    [media] = instagram.seed()
    instagram.audience(insights_delay=3600)  # Meta answers empty data for a while
    assert instagram.client.media_insights(media) == PostCounters(None, None, None, None,
                                                                   None, None)
    instagram.audience(insights_delay=0, insights_min_views=10**9)  # error #10
    assert instagram.client.media_insights(media) == PostCounters(None, None, None, None,
                                                                   None, None)
    instagram.audience(insights_min_views=0)
    instagram.control("next_errors", code=10, route=f"*/{media}/insights",
                      message="(#10) Application does not have permission for this action")
    with pytest.raises(PermanentError, match="permission"):  # another #10 is not hidden
        instagram.client.media_insights(media)


def test_instagram_followers(sandbox: Any, instagram: InstagramAccount) -> None:
    instagram.seed(count=2)
    instagram.audience(followers_base=10_000)
    since = mark(sandbox)
    stats = instagram.client.followers()
    assert stats.followers is not None and stats.followers >= 10_000
    assert stats.posts == 2 and isinstance(stats.following, int)
    [call] = requests_to(sandbox, "instagram", since, f"/{instagram.user.id}", "GET")
    assert call["query"]["fields"] == "followers_count,follows_count,media_count"


def test_instagram_read_errors_are_classified(instagram: InstagramAccount) -> None:
    [media] = instagram.seed()
    instagram.control("next_errors", code=80002, route="*/insights",
                      regain_minutes=3)
    with pytest.raises(RateLimited) as limited:  # the BUC header's minutes, in seconds
        instagram.client.media_insights(media)
    assert limited.value.retry_after == 180
    instagram.control("expire_token", access_token=instagram.token, refreshable=False)
    with pytest.raises(AuthError):
        instagram.client.followers()


# --- YouTube -----------------------------------------------------------------------------------

def test_youtube_counters_fifty_ids_a_call_from_strings(sandbox: Any,
                                                        youtube: YouTubeAccount) -> None:
    sandbox.set_clock(time.time())  # frozen: both reads below see the same counts
    [video] = youtube.seed(at=time.time() - 6 * 3600)
    ids = [video, *fake_youtube_ids(50)]  # 51 ids
    since = mark(sandbox)
    counters = youtube.client.video_counters(ids)
    calls = requests_to(sandbox, "youtube", since, "/youtube/v3/videos", "GET")
    assert [len(c["query"]["id"].split(",")) for c in calls] == [50, 1]
    assert all(c["query"]["part"] == "statistics" and c["status"] == 200 for c in calls)
    assert youtube.spent == ["videos.list", "videos.list"]  # 1 unit each, before each call
    assert list(counters) == [video]
    got = counters[video]
    raw = youtube.client.videos([video], parts="statistics")[0].raw["statistics"]
    assert isinstance(raw["viewCount"], str)  # YouTube sends strings; we read ints
    assert (got.views, got.likes, got.comments) == (
        int(raw["viewCount"]), int(raw["likeCount"]), int(raw["commentCount"]))
    assert got.views > 0 and got.shares is None and got.saves is None


def test_youtube_channel_stats_and_a_hidden_subscriber_count(youtube: YouTubeAccount) -> None:
    youtube.seed(count=2)
    youtube.audience(followers_base=123_456)
    stats = youtube.client.channel_stats()
    assert stats.followers is not None and stats.followers >= 123_000 and stats.posts == 2
    assert stats.followers % 1000 == 0  # public counts come rounded to 3 significant digits
    assert youtube.spent == ["channels.list"]
    youtube.audience(hidden_subscribers=True)
    assert youtube.client.channel_stats().followers is None  # hidden, not zero


def test_youtube_units_are_taken_before_the_call_or_the_call_is_refused(
        sandbox: Any, engine: sa.Engine) -> None:
    gate = UnitsGate(engine, f"gate-{uuid.uuid4().hex[:8]}", QuotaLedger(daily_units=52))
    account = YouTubeAccount(sandbox, on_quota=gate)
    since = mark(sandbox)
    account.client.video_counters(fake_youtube_ids(100))  # 2 units
    account.client.channel_stats()  # 1 unit
    assert gate.used() == {"units": 3}
    with pytest.raises(QuotaExceeded) as refused:  # 3 of 52 used: 50 more do not fit
        account.client.reply_to_comment("UgxSomething4AaABAg", "thanks!")
    assert getattr(refused.value, "deferrable", False)
    assert refused.value.resume_at == next_reset(clock.now())
    assert "not sent" in str(refused.value)
    assert not requests_to(sandbox, "youtube", since, "/youtube/v3/comments")  # never sent
    assert gate.used() == {"units": 3}  # a refused call takes nothing
    account.client.close()


def test_the_gate_shares_the_publishing_ledger_and_keeps_a_reserve(engine: sa.Engine) -> None:
    from waifugen_assets.publishing.platform_flows import YouTubeFlow

    key = f"shared-{uuid.uuid4().hex[:8]}"
    ledger = QuotaLedger(daily_units=2000)
    YouTubeFlow(engine, quota_key=key, quota=ledger).spend("videos.insert")  # 1600
    gate = UnitsGate(engine, key, ledger, reserve_units=300)
    for _ in range(100):
        gate("videos.list")
    with pytest.raises(QuotaExceeded, match="keeping 300 in reserve"):
        gate("videos.list")
    assert YouTubeFlow(engine, quota_key=key, quota=ledger).units_used(clock.now()) == 1700
    tomorrow = next_reset(clock.now()) + dt.timedelta(minutes=1)
    with clock.simulate(tomorrow):
        gate("comments.insert")  # a new Pacific day
        assert gate.used() == {"units": 50}


def test_youtube_read_errors_are_classified(sandbox: Any, youtube: YouTubeAccount) -> None:
    youtube.control("config", client_id=youtube.client_id, units_remaining=0)
    with pytest.raises(QuotaExceeded) as spent:  # YouTube's 403 quotaExceeded: defer
        youtube.client.video_counters(["abcdefghijk"])
    assert spent.value.deferrable and spent.value.quota_reason == "quotaExceeded"
    assert spent.value.resume_at == next_reset(clock.now())
    youtube.control("config", client_id=youtube.client_id, reset_usage=True)
    sandbox.add_fault(system="youtube", route="/youtube/v3/channels", action="rate_limit",
                      retry_after=120)
    with pytest.raises(RateLimited) as limited:  # longer than the retry policy sleeps
        youtube.client.channel_stats()
    assert limited.value.retry_after == 120
    sandbox.clear_faults()
    youtube.control("expire_token", access_token=youtube.access)
    with pytest.raises(AuthError):
        youtube.client.video_counters(["abcdefghijk"])
