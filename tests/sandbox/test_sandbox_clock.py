"""The sandbox clock over real HTTP: `/_sandbox/clock` (get, set, frozen or running, advance,
back to real time, strict bodies, kept across a restart) and the systems that follow it:
TikTok's daily cap, YouTube's Pacific quota day and token expiry, Instagram's own offset."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sandbox.server import SandboxServer

PACIFIC = ZoneInfo("America/Los_Angeles")
T0 = dt.datetime(2030, 3, 1, 10, 0, tzinfo=dt.UTC).timestamp()
DAY = 86400


def clock_post(sandbox: SandboxServer, body: Any) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/_sandbox/clock", json=body)


# --- the control route ------------------------------------------------------------------------

def test_clock_starts_on_real_time(sandbox: SandboxServer) -> None:
    before = time.time()
    clock = sandbox.clock()
    assert clock["real"] is True
    assert clock["frozen"] is False
    assert before - 1 <= clock["now"] <= time.time() + 1
    assert abs(clock["offset"]) < 1
    assert clock["iso"].endswith("Z")
    assert dt.datetime.fromisoformat(clock["iso"]).timestamp() == pytest.approx(clock["now"],
                                                                                abs=0.001)


def test_frozen_clock_stays_and_advances_exactly(sandbox: SandboxServer) -> None:
    answer = sandbox.set_clock(T0)
    assert (answer["now"], answer["iso"], answer["frozen"], answer["real"]) == (
        T0, "2030-03-01T10:00:00.000Z", True, False)
    assert sandbox.clock()["now"] == T0  # frozen: no real time passes on it
    assert sandbox.clock()["offset"] == pytest.approx(T0 - time.time(), abs=5)
    assert sandbox.advance_clock(90.5)["now"] == T0 + 90.5
    assert sandbox.advance_clock(0)["now"] == T0 + 90.5
    assert sandbox.clock()["frozen"] is True


def test_iso_times_need_an_offset_and_are_honoured(sandbox: SandboxServer) -> None:
    assert sandbox.set_clock("2030-03-01T12:00:00+02:00")["now"] == T0
    assert sandbox.set_clock("2030-03-01T10:00:00Z")["now"] == T0
    pacific = dt.datetime(2030, 3, 1, 2, 0, tzinfo=PACIFIC)  # 10:00 UTC (PST)
    assert sandbox.set_clock(pacific)["now"] == T0
    with pytest.raises(ValueError, match="aware"):
        sandbox.set_clock(dt.datetime(2030, 3, 1, 10, 0))  # naive on purpose


def test_running_clock_runs_on_from_the_time_set(sandbox: SandboxServer) -> None:
    answer = sandbox.set_clock(T0, frozen=False)
    assert answer["frozen"] is False
    assert T0 <= answer["now"] < T0 + 60
    later = sandbox.clock()["now"]
    assert answer["now"] <= later < T0 + 60
    assert T0 + 3600 <= sandbox.advance_clock(3600)["now"] < T0 + 3660
    assert sandbox.clock()["frozen"] is False
    assert sandbox.clock()["offset"] == pytest.approx(T0 + 3600 - time.time(), abs=60)


def test_back_to_real_time(sandbox: SandboxServer) -> None:
    sandbox.set_clock(T0)
    assert sandbox.real_clock()["real"] is True
    assert abs(sandbox.clock()["now"] - time.time()) < 5
    sandbox.set_clock(T0)
    response = clock_post(sandbox, {"real": True})
    assert response.status_code == 200
    assert response.json()["real"] is True
    # Advancing from real time runs on from real time plus the step.
    assert sandbox.advance_clock(DAY)["offset"] == pytest.approx(DAY, abs=5)


def test_the_clock_does_not_move_backwards(sandbox: SandboxServer) -> None:
    sandbox.set_clock(T0)
    response = clock_post(sandbox, {"advance": -1})
    assert response.status_code == 400
    assert "backwards" in response.json()["error"]
    assert sandbox.clock()["now"] == T0


@pytest.mark.parametrize(("body", "words"), [
    ([1, 2], "JSON object"),
    (None, "JSON object"),
    ({}, "exactly one of now, advance, real"),
    ({"now": T0, "advance": 5}, "exactly one of"),
    ({"now": T0, "speed": 2}, "unknown fields ['speed']"),
    ({"advance": 5, "frozen": False}, "frozen goes with now"),
    ({"now": T0, "frozen": "yes"}, "frozen must be true or false"),
    ({"now": True}, "now must be epoch seconds"),
    ({"now": "tomorrow"}, "ISO 8601"),
    ({"now": "2030-03-01T10:00:00"}, "no UTC offset"),
    ({"now": -1}, "between 1970-01-01 and 9999-12-31"),
    ({"now": 1e300}, "between 1970-01-01 and 9999-12-31"),
    ({"advance": "60"}, "advance must be a number"),
    ({"advance": 1e300}, "past 9999-12-31"),
    ({"real": False}, "real must be true"),
])
def test_clock_bodies_are_validated(sandbox: SandboxServer, body: Any, words: str) -> None:
    sandbox.set_clock(T0)
    response = clock_post(sandbox, body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert sandbox.clock()["now"] == T0  # nothing changed


def test_invalid_json_is_refused(sandbox: SandboxServer) -> None:
    response = httpx.post(f"{sandbox.url}/_sandbox/clock", content=b"{now",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "invalid JSON" in response.json()["error"]
    nan = httpx.post(f"{sandbox.url}/_sandbox/clock", content=b'{"advance": NaN}')
    assert nan.status_code == 400


def test_clock_survives_a_restart(tmp_path: Path) -> None:
    with SandboxServer(state_dir=tmp_path) as server:
        server.set_clock(T0)
        server.advance_clock(30)
    with SandboxServer(state_dir=tmp_path) as server:
        kept = server.clock()
        assert (kept["now"], kept["frozen"]) == (T0 + 30, True)
        server.set_clock(T0, frozen=False)
    with SandboxServer(state_dir=tmp_path) as server:
        running = server.clock()
        assert running["frozen"] is False
        assert T0 <= running["now"] < T0 + 60  # the offset is kept, not the moment
        server.real_clock()
    with SandboxServer(state_dir=tmp_path) as server:
        assert server.clock()["real"] is True


# --- systems on the sandbox clock -------------------------------------------------------------

def test_tiktok_daily_cap_frees_24_hours_later_by_the_sandbox_clock(
        sandbox: SandboxServer) -> None:
    account = f"t{uuid.uuid4().hex[:12]}"
    body = {"post_info": {"title": "hello #ai", "privacy_level": "SELF_ONLY", "is_aigc": True},
            "source_info": {"source": "FILE_UPLOAD", "video_size": 1000, "chunk_size": 1000,
                            "total_chunk_count": 1}}
    with httpx.Client(base_url=sandbox.url + "/tiktok",
                      headers={"Authorization": f"Bearer act.sandbox.{account}"}) as api:
        assert api.post("/_control/config", json={"account": account, "daily_cap": 2}
                        ).status_code == 200
        sandbox.set_clock(T0)

        def init_code() -> str:
            return api.post("/v2/post/publish/video/init/", json=body).json()["error"]["code"]

        assert [init_code(), init_code(), init_code()] == [
            "ok", "ok", "spam_risk_too_many_posts"]
        sandbox.advance_clock(DAY - 1)  # the cap is a rolling 24 h
        assert init_code() == "spam_risk_too_many_posts"
        sandbox.advance_clock(1)
        assert init_code() == "ok"
        state = api.get("/_control/state", params={"account": account}).json()
        assert state["inits_last_24h"] == 1


def youtube_account(api: httpx.Client, client_id: str | None = None) -> tuple[str, str]:
    """(client_id, access token) of a fresh channel in a fresh project (or in `client_id`)."""
    client_id = client_id or f"clock-{uuid.uuid4().hex[:10]}.apps.googleusercontent.com"
    response = api.post("/oauth2/token", data={
        "client_id": client_id, "client_secret": "GOCSPX-test", "grant_type": "refresh_token",
        "refresh_token": f"1//sandbox_{uuid.uuid4().hex[:12]}"})
    assert response.status_code == 200, response.text
    return client_id, response.json()["access_token"]


def youtube_read(api: httpx.Client, token: str) -> int:
    return api.get("/youtube/v3/channels", params={"part": "snippet", "mine": "true"},
                   headers={"Authorization": f"Bearer {token}"}).status_code


def test_youtube_quota_resets_at_midnight_pacific_by_the_sandbox_clock(
        sandbox: SandboxServer) -> None:
    # 23:59:50 UTC on 1 March 2030 is 15:59:50 in Los Angeles: the UTC day turning over
    # must not reset the quota, the Pacific one must.
    sandbox.set_clock(dt.datetime(2030, 3, 1, 23, 59, 50, tzinfo=dt.UTC))
    with httpx.Client(base_url=sandbox.url + "/youtube") as api:
        client_id, token = youtube_account(api)
        config = api.post("/_control/config", json={"client_id": client_id,
                                                    "units_remaining": 1})
        assert config.json()["day"] == "2030-03-01"
        assert youtube_read(api, token) == 200
        assert youtube_read(api, token) == 403
        sandbox.advance_clock(20)  # 00:00:10 UTC, still 1 March in Los Angeles
        assert youtube_read(api, token) == 403
        sandbox.set_clock(dt.datetime(2030, 3, 1, 23, 59, 59, tzinfo=PACIFIC))
        _, token = youtube_account(api, client_id)  # 8 h later: the old token has expired
        assert youtube_read(api, token) == 403
        sandbox.advance_clock(1)
        assert youtube_read(api, token) == 200
        quota = api.get("/_control/quota", params={"client_id": client_id}).json()
        assert quota["day"] == "2030-03-02"
        assert quota["used"]["units"] == 1


def test_youtube_access_token_expires_by_the_sandbox_clock(sandbox: SandboxServer) -> None:
    sandbox.set_clock(T0)
    with httpx.Client(base_url=sandbox.url + "/youtube") as api:
        _, token = youtube_account(api)
        sandbox.advance_clock(3598)
        assert youtube_read(api, token) == 200
        sandbox.advance_clock(1)  # expires_in is 3599
        assert youtube_read(api, token) == 401


def test_instagram_offset_applies_on_top_of_the_sandbox_clock(sandbox: SandboxServer) -> None:
    sandbox.set_clock(T0)
    answer = httpx.get(f"{sandbox.url}/instagram/_control/clock").json()
    expected = dt.datetime.fromtimestamp(T0 + answer["offset"], dt.UTC)
    assert answer["now"] == expected.strftime("%Y-%m-%dT%H:%M:%S+0000")
