"""The Fanvue stand-in over real HTTP: version header, Bearer tokens and rotation, per-token
rate limits, pagination, sends and contactability, smart lists and chats, fan actions and
their webhook events, the deterministic simulated day, signed delivery with retries, faults,
restarts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_test_server import Reply, ScriptedServer

from resources.webhook_signing import InvalidSignature, verify_fanvue
from sandbox.server import SandboxServer
from sandbox.systems.fanvue import CURRENT_VERSION, creator_uuid

VERSION = {"X-Fanvue-API-Version": CURRENT_VERSION}
EVENT_KEYS = {"id", "type", "createdAt", "creatorUuid", "data"}
DATA_KEYS = {
    "subscriber.created": {"userUuid", "handle", "displayName", "subscribedAt"},
    "subscriber.renewed": {"userUuid", "amount", "currency"},
    "subscriber.cancelled": {"userUuid"},
    "message.received": {"userUuid", "messageUuid", "text", "sentAt"},
    "tip.received": {"userUuid", "amount", "currency"},
    "purchase.completed": {"userUuid", "purchaseUuid", "amount", "currency"},
}


@pytest.fixture
def account() -> str:
    return f"fv{uuid.uuid4().hex[:12]}"


def api_client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base + "/fanvue",
                        headers={**VERSION, "Authorization": f"Bearer {token}"})


@pytest.fixture
def api(sandbox: Any, account: str) -> Iterator[httpx.Client]:
    with api_client(sandbox.url, f"fv_at.sandbox.{account}") as client:
        yield client


def control(api: httpx.Client, path: str, method: str = "POST", status: int = 200,
            **body: Any) -> Any:
    response = api.request(method, f"/_control/{path}", json=body if method == "POST" else None,
                           params=body if method != "POST" else None)
    assert response.status_code == status, response.text
    return response.json()


def add_sub(api: httpx.Client, account: str, **fields: Any) -> dict[str, Any]:
    return control(api, "subscribers", creator=account, **fields)


def assert_event_shape(event: dict[str, Any], account: str) -> None:
    assert set(event) == EVENT_KEYS
    assert event["id"].startswith("evt_")
    assert event["creatorUuid"] == creator_uuid(account)
    assert event["createdAt"].endswith("Z")
    required = DATA_KEYS[event["type"]]
    assert required <= set(event["data"]), event
    optional = {"tier", "timezone"} if event["type"] == "subscriber.created" else set()
    assert set(event["data"]) <= required | optional, event


# --- version header, auth ----------------------------------------------------------------------

def test_version_header_is_required_and_old_versions_are_gone(sandbox: Any, api: httpx.Client,
                                                              account: str) -> None:
    missing = api.get("/users/me", headers={"X-Fanvue-API-Version": ""})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "X-Fanvue-API-Version"
    old = api.get("/users/me", headers={"X-Fanvue-API-Version": "2025-01-01"})
    assert old.status_code == 410
    assert old.json() == {"error": "gone", "message": "API version 2025-01-01 has been sunset",
                          "nextVersion": CURRENT_VERSION}
    assert api.get("/users/me", headers={"X-Fanvue-API-Version": "2099-01-01"}).status_code \
        == 400
    assert api.get("/users/me", headers={"X-Fanvue-API-Version": "june"}).status_code == 400
    assert api.get("/users/me").status_code == 200
    # A creator whose API moved on: our version is sunset for them only.
    control(api, "creators", creator=account, api_version="2026-01-01")
    gone = api.get("/users/me")
    assert gone.status_code == 410 and gone.json()["nextVersion"] == "2026-01-01"
    assert api.get("/users/me", headers={"X-Fanvue-API-Version": "2026-01-01"}).status_code \
        == 200
    with api_client(sandbox.url, f"fv_at.sandbox.{account}-other") as other:
        assert other.get("/users/me").status_code == 200


def test_bearer_token_is_required(sandbox: Any, account: str) -> None:
    with httpx.Client(base_url=sandbox.url + "/fanvue", headers=VERSION) as anonymous:
        response = anonymous.get("/users/me")
        assert response.status_code == 401 and set(response.json()) == {"error"}
        for token in ("nope", f"fv_at.sandbox.{account}.3", "fv_rt.sandbox.x", f"{account}"):
            answer = anonymous.get("/users/me", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401, token
        assert "x-ratelimit-limit" not in response.headers  # unauthenticated: not counted


def test_users_me_is_the_creator_with_a_derived_uuid(api: httpx.Client, account: str) -> None:
    response = api.get("/users/me")
    assert response.status_code == 200
    assert response.json() == {"uuid": creator_uuid(account), "handle": account.lower(),
                               "displayName": account}
    assert uuid.UUID(creator_uuid(account)).version == 4
    assert response.headers["x-ratelimit-limit"] == "100"
    assert response.headers["x-ratelimit-remaining"] == "99"
    assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 60


def test_oauth_refresh_rotates_and_expiry(sandbox: Any, api: httpx.Client, account: str) -> None:
    def token(refresh: str, **extra: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh,
                "client_id": "app", "client_secret": "shh", **extra}
        return httpx.post(sandbox.url + "/fanvue/oauth/token", data=form)

    control(api, "expire_token", access_token=f"fv_at.sandbox.{account}")
    assert api.get("/users/me").status_code == 401
    first = token(f"fv_rt.sandbox.{account}")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["access_token"] == f"fv_at.sandbox.{account}.1"
    assert body["refresh_token"] == f"fv_rt.sandbox.{account}.1"
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["scope"]
    used = token(f"fv_rt.sandbox.{account}")
    assert used.status_code == 400 and used.json()["error"] == "invalid_grant"
    assert token(f"fv_rt.sandbox.{account}.1").json()["refresh_token"] == \
        f"fv_rt.sandbox.{account}.2"
    assert token(f"fv_rt.sandbox.{account}.7").json()["error"] == "invalid_grant"
    assert token(f"fv_rt.sandbox.{account}.2", grant_type="password").json()["error"] == \
        "unsupported_grant_type"
    assert token(f"fv_rt.sandbox.{account}.2", client_id="").json()["error"] == \
        "invalid_request"
    assert api.get("/users/me").status_code == 401  # the expired token stays expired
    with api_client(sandbox.url, f"fv_at.sandbox.{account}.1") as fresh:
        assert fresh.get("/users/me").json()["uuid"] == creator_uuid(account)


# --- rate limit --------------------------------------------------------------------------------

def test_rate_limit_per_token_with_headers(sandbox: Any, api: httpx.Client, account: str) -> None:
    control(api, "creators", creator=account, rate_limit=5, rate_window=60)
    remaining = [api.get("/users/me").headers["x-ratelimit-remaining"] for _ in range(5)]
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = api.get("/users/me")
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"
    # Another token of the same creator has its own budget.
    httpx.post(sandbox.url + "/fanvue/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": f"fv_rt.sandbox.{account}",
        "client_id": "app", "client_secret": "shh"}).raise_for_status()
    with api_client(sandbox.url, f"fv_at.sandbox.{account}.1") as other:
        assert other.get("/users/me").status_code == 200


def test_the_default_limit_is_100_a_minute(api: httpx.Client) -> None:
    statuses = [api.get("/users/me").status_code for _ in range(101)]
    assert statuses == [200] * 100 + [429]


# --- subscribers, pagination ---------------------------------------------------------------------

def test_subscribers_pages_and_size_limit(api: httpx.Client, account: str) -> None:
    made = [add_sub(api, account, handle=f"fan{i}", subscribedAt=f"2026-11-0{i + 1}T08:00:00Z")
            for i in range(7)]
    pages = []
    for page in (1, 2, 3):
        body = api.get("/subscribers", params={"page": page, "size": 3}).json()
        assert body["pagination"] == {"page": page, "size": 3, "hasMore": page < 3}
        pages.extend(body["data"])
    assert [s["uuid"] for s in pages] == [m["uuid"] for m in made]
    assert pages[0]["subscribedAt"] == "2026-11-01T08:00:00Z"
    assert pages[0]["expiresAt"] == "2026-12-01T08:00:00Z"
    assert {"uuid", "handle", "displayName", "subscribedAt", "expiresAt"} <= set(pages[0])
    too_big = api.get("/subscribers", params={"size": 51})
    assert too_big.status_code == 400
    assert too_big.json() == {"errors": [{"field": "size",
                                          "message": "must be between 1 and 50"}]}
    assert api.get("/subscribers", params={"page": 0}).status_code == 400
    assert api.get("/subscribers", params={"size": "x"}).status_code == 400
    assert api.get("/subscribers", params={"size": 50}).status_code == 200


# --- messages ----------------------------------------------------------------------------------

def test_send_validation_unknown_users_and_contactability(api: httpx.Client,
                                                          account: str) -> None:
    fan = add_sub(api, account)
    path = f"/chats/{fan['uuid']}/message"
    for bad in ({"text": ""}, {"text": "x" * 5001}, {}, {"text": 5}):
        response = api.post(path, json=bad)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "text"
    assert api.post(path, json={"text": "hi", "price": 100}).json()["errors"][0]["field"] == \
        "price"
    assert api.post(path, json={"text": "hi", "mediaUuids": "m"}).status_code == 400
    assert api.post(path, json={"text": "x" * 5000}).status_code == 200
    unknown = api.post(f"/chats/{uuid.uuid4()}/message", json={"text": "hi"})
    assert unknown.status_code == 404 and set(unknown.json()) == {"message"}
    control(api, "act", creator=account, userUuid=fan["uuid"], action="cancel")
    refused = api.post(path, json={"text": "hi"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "not_contactable", "message": "User is not contactable"}
    blocked = add_sub(api, account)
    result = control(api, "act", creator=account, userUuid=blocked["uuid"], action="block")
    assert result["event"] is None and result["subscriber"]["status"] == "blocked"
    assert api.post(f"/chats/{blocked['uuid']}/message", json={"text": "hi"}).status_code == 403
    # renew makes a cancelled fan contactable again; a blocked one stays blocked
    control(api, "act", creator=account, userUuid=fan["uuid"], action="renew")
    assert api.post(path, json={"text": "welcome back"}).status_code == 200
    control(api, "act", creator=account, userUuid=blocked["uuid"], action="renew")
    assert api.post(f"/chats/{blocked['uuid']}/message", json={"text": "hi"}).status_code == 403


def test_messages_newest_first_and_sent_log(api: httpx.Client, account: str) -> None:
    fan = add_sub(api, account)
    me = creator_uuid(account)
    control(api, "act", creator=account, userUuid=fan["uuid"], action="reply", text="hello?",
            at="2026-01-01T10:00:00Z")
    ids = [api.post(f"/chats/{fan['uuid']}/message", json={"text": f"m{i}"}).json()
           ["messageUuid"] for i in range(3)]
    body = api.get(f"/chats/{fan['uuid']}/messages", params={"size": 2}).json()
    assert [m["text"] for m in body["data"]] == ["m2", "m1"]
    assert body["pagination"]["hasMore"] is True
    rest = api.get(f"/chats/{fan['uuid']}/messages", params={"size": 2, "page": 2}).json()
    assert [(m["text"], m["senderUuid"]) for m in rest["data"]] == [("m0", me),
                                                                     ("hello?", fan["uuid"])]
    assert api.get(f"/chats/{uuid.uuid4()}/messages").status_code == 404
    sent = control(api, "sent", "GET", creator=account)
    assert [(s["userUuid"], s["text"], s["uuid"]) for s in sent] == [
        (fan["uuid"], f"m{i}", ids[i]) for i in range(3)]
    assert all(s["sentAt"].endswith("Z") for s in sent)


def test_smart_lists_and_chats(api: httpx.Client, account: str) -> None:
    fans = [add_sub(api, account) for _ in range(4)]
    control(api, "act", creator=account, userUuid=fans[0]["uuid"], action="tip", amount=700)
    control(api, "act", creator=account, userUuid=fans[1]["uuid"], action="cancel")
    lists = {item["name"]: item for item in api.get("/chats/lists/smart").json()["data"]}
    assert {name: item["count"] for name, item in lists.items()} == {
        "Subscribers": 3, "Expired subscribers": 1, "Tippers": 1}
    members = api.get(f"/chats/lists/smart/{lists['Subscribers']['uuid']}",
                      params={"size": 2}).json()
    assert [m["uuid"] for m in members["data"]] == [fans[0]["uuid"], fans[2]["uuid"]]
    assert members["pagination"]["hasMore"] is True
    expired = api.get(f"/chats/lists/smart/{lists['Expired subscribers']['uuid']}").json()
    assert [m["uuid"] for m in expired["data"]] == [fans[1]["uuid"]]
    assert api.get(f"/chats/lists/smart/{uuid.uuid4()}").status_code == 404

    control(api, "act", creator=account, userUuid=fans[2]["uuid"], action="reply", text="a",
            at="2026-03-01T10:00:00Z")
    control(api, "act", creator=account, userUuid=fans[2]["uuid"], action="reply", text="b",
            at="2026-03-01T11:00:00Z")
    control(api, "act", creator=account, userUuid=fans[3]["uuid"], action="reply", text="c",
            at="2026-03-02T10:00:00Z")
    chats = api.get("/chats").json()["data"]
    assert [(c["user"]["uuid"], c["unreadMessagesCount"], c["lastMessageAt"]) for c in chats] \
        == [(fans[3]["uuid"], 1, "2026-03-02T10:00:00Z"),
            (fans[2]["uuid"], 2, "2026-03-01T11:00:00Z")]


# --- fan actions and events ----------------------------------------------------------------------

def test_every_action_emits_its_event(api: httpx.Client, account: str) -> None:
    fan = add_sub(api, account, handle="neo", displayName="Neo", tier="vip",
                  timezone="Europe/Berlin", subscribedAt="2026-02-03T04:05:06Z")
    created = fan["event"]
    assert created["type"] == "subscriber.created"
    assert created["data"] == {"userUuid": fan["uuid"], "handle": "neo", "displayName": "Neo",
                               "subscribedAt": "2026-02-03T04:05:06Z", "tier": "vip",
                               "timezone": "Europe/Berlin"}
    at = "2026-02-04T10:00:00Z"
    events = {action: control(api, "act", creator=account, userUuid=fan["uuid"], action=action,
                              at=at, **extra)["event"]
              for action, extra in (("reply", {"text": "hi"}), ("stop", {}),
                                    ("tip", {"amount": 250, "currency": "EUR"}),
                                    ("purchase", {}), ("renew", {}), ("cancel", {}))}
    for event in [created, *events.values()]:
        assert_event_shape(event, account)
    assert events["reply"]["data"]["text"] == "hi"
    assert events["stop"]["type"] == "message.received"
    assert events["stop"]["data"]["text"] == "STOP"
    assert events["tip"]["data"] == {"userUuid": fan["uuid"], "amount": 250, "currency": "EUR"}
    assert events["renew"]["data"]["amount"] == 1999  # the vip price, in cents
    assert events["cancel"]["type"] == "subscriber.cancelled"
    assert all(e["createdAt"] == at for e in events.values())
    listed = control(api, "events", "GET", creator=account)
    assert listed == [created, *events.values()]
    assert control(api, "events", "GET", creator=account, after=events["tip"]["id"]) == [
        events["purchase"], events["renew"], events["cancel"]]
    assert len({e["id"] for e in listed}) == len(listed)
    # The fan's STOP is in the chat, sent by the fan.
    stop = api.get(f"/chats/{fan['uuid']}/messages").json()["data"][0]
    assert stop == {"uuid": events["stop"]["data"]["messageUuid"], "text": "STOP",
                    "sentAt": at, "senderUuid": fan["uuid"]}


def test_control_validation(api: httpx.Client, account: str) -> None:
    fan = add_sub(api, account)
    control(api, "act", status=400, creator=account, userUuid=fan["uuid"], action="dance")
    control(api, "act", status=404, creator=account, userUuid=str(uuid.uuid4()), action="tip")
    control(api, "act", status=400, creator=account, userUuid=fan["uuid"], action="tip",
            amount=-5)
    control(api, "act", status=400, creator=account, userUuid=fan["uuid"], action="tip",
            at="yesterday")
    control(api, "subscribers", status=400, creator="bad name")
    control(api, "simulate", status=400, creator=account, day="2026-13-01")
    control(api, "events", "GET", status=404, creator=account, after="evt_nope")
    control(api, "deliver", status=400, url="https://example.com/hook", secret="s")
    control(api, "expire_token", status=404, access_token="something")


# --- the simulated day -------------------------------------------------------------------------

def simulate(base: str, account: str, day: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(f"{base}/fanvue/_control/simulate",
                          json={"creator": account, "day": day, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_simulated_days_are_deterministic_and_not_duplicated(tmp_path: Path) -> None:
    def run(state: Path) -> list[dict[str, Any]]:
        with SandboxServer(state_dir=state, seed=77) as server:
            days = [simulate(server.url, "sim", day, signups=12)["events"]
                    for day in ("2026-10-05", "2026-11-05")]
            return [e for events in days for e in events]

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second
    with SandboxServer(state_dir=tmp_path / "c", seed=78) as server:
        other = simulate(server.url, "sim", "2026-10-05", signups=12)["events"]
    assert [e["id"] for e in other] != [e["id"] for e in first[:len(other)]]

    with SandboxServer(state_dir=tmp_path / "a", seed=77) as server:  # restarted
        again = simulate(server.url, "sim", "2026-10-05", signups=12)
        assert again["new"] is False
        assert again["events"] == [e for e in first if e["createdAt"].startswith("2026-10-05")]
        listed = httpx.get(f"{server.url}/fanvue/_control/events",
                           params={"creator": "sim"}).json()
        assert listed == first  # nothing was added


def test_a_simulated_day_is_a_plausible_day(sandbox: Any, account: str) -> None:
    oct5 = simulate(sandbox.url, account, "2026-10-05", signups=30)
    assert oct5["new"] is True
    events = oct5["events"]
    for event in events:
        assert_event_shape(event, account)
        assert event["createdAt"].startswith("2026-10-05T")
    assert [e["createdAt"] for e in events] == sorted(e["createdAt"] for e in events)
    created = [e for e in events if e["type"] == "subscriber.created"]
    assert len(created) == 30
    joined = {e["data"]["userUuid"]: e["createdAt"] for e in created}
    for event in events:  # nobody acts before they subscribed
        assert event["createdAt"] >= joined[event["data"]["userUuid"]]
    # 30 days later the October fans' periods end: they renew (unless they left), and some
    # reply, tip or buy.
    nov4 = simulate(sandbox.url, account, "2026-11-04")["events"]
    kinds = {e["type"] for e in nov4}
    assert "subscriber.renewed" in kinds and "message.received" in kinds
    renewed = [e for e in nov4 if e["type"] == "subscriber.renewed"]
    assert {e["data"]["userUuid"] for e in renewed} <= set(joined)
    assert all(e["data"]["amount"] in (999, 1999) for e in renewed)
    for event in renewed:  # at the moment the period ended: a month after joining
        assert event["createdAt"] == joined[event["data"]["userUuid"]].replace(
            "2026-10-05", "2026-11-04")
    subs = {s["uuid"]: s for s in httpx.get(f"{sandbox.url}/fanvue/_control/subscribers",
                                            params={"creator": account}).json()}
    assert all(subs[e["data"]["userUuid"]]["expiresAt"].startswith("2026-12-04")
               for e in renewed)
    quiet = simulate(sandbox.url, account, "2026-11-05", signups=0)["events"]
    assert "subscriber.renewed" not in {e["type"] for e in quiet}


# --- webhook delivery ----------------------------------------------------------------------------

def test_deliver_signs_events_and_retries_failures(sandbox: Any, api: httpx.Client,
                                                   account: str) -> None:
    fans = [add_sub(api, account) for _ in range(3)]
    events = control(api, "events", "GET", creator=account)
    assert [e["data"]["userUuid"] for e in events] == [f["uuid"] for f in fans]
    with ScriptedServer() as receiver:
        path = receiver.script(Reply(500), Reply(200), Reply(503), Reply(204))
        url = receiver.url(path)
        assert control(api, "deliver", url=url, secret="whsec", creator=account) == {
            "delivered": 1, "failed": 2}
        assert control(api, "deliver", url=url, secret="whsec", creator=account) == {
            "delivered": 2, "failed": 0}
        assert control(api, "deliver", url=url, secret="whsec", creator=account) == {
            "delivered": 0, "failed": 0}
        hits = receiver.hits(path)
    ids = [e["id"] for e in events]
    assert [json.loads(h.body)["id"] for h in hits] == [ids[0], ids[1], ids[2], ids[0], ids[2]]
    for hit in hits:
        assert json.loads(hit.body) in events
        assert hit.headers["content-type"] == "application/json"
        verify_fanvue("whsec", hit.headers["x-fanvue-signature"], hit.body, now=time.time())
        with pytest.raises(InvalidSignature):
            verify_fanvue("other", hit.headers["x-fanvue-signature"], hit.body, now=time.time())


def test_deliver_counts_an_unreachable_receiver_as_failed(api: httpx.Client,
                                                          account: str) -> None:
    add_sub(api, account)
    with ScriptedServer() as receiver:
        url = receiver.url(receiver.script(Reply(200)))
    # The receiver is gone: the connection is refused.
    assert control(api, "deliver", url=url, secret="s", creator=account) == {
        "delivered": 0, "failed": 1}


# --- faults, restarts --------------------------------------------------------------------------

def test_injected_faults_use_fanvues_error_bodies(sandbox: Any, api: httpx.Client) -> None:
    sandbox.add_fault(system="fanvue", route="/users/me", action="status", status=503, times=1)
    sandbox.add_fault(system="fanvue", route="/subscribers", action="rate_limit",
                      retry_after=3, times=1)
    failed = api.get("/users/me")
    assert failed.status_code == 503 and failed.json()["error"] == "internal_error"
    limited = api.get("/subscribers")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"] == "rate_limited"
    assert api.get("/subscribers").status_code == 200


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with SandboxServer(state_dir=tmp_path, seed=5) as server, \
            api_client(server.url, "fv_at.sandbox.keep") as api:
        fan = add_sub(api, "keep")
        httpx.post(server.url + "/fanvue/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": "fv_rt.sandbox.keep",
            "client_id": "a", "client_secret": "b"}).raise_for_status()
    with SandboxServer(state_dir=tmp_path, seed=5) as server, \
            api_client(server.url, "fv_at.sandbox.keep.1") as api:
        assert [s["uuid"] for s in api.get("/subscribers").json()["data"]] == [fan["uuid"]]
        used = httpx.post(server.url + "/fanvue/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": "fv_rt.sandbox.keep",
            "client_id": "a", "client_secret": "b"})
        assert used.json()["error"] == "invalid_grant"
