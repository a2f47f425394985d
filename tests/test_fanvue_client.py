"""resources.fanvue against the sandbox over real HTTP: headers, pagination, typed values,
client-side rate limits (also shared through PostgreSQL), Retry-After, contactability, the
version sunset, 401 -> refresh with rotation, sends that are never resent, malformed answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from http_test_server import Reply, ScriptedServer

from resources.fanvue import (
    API_VERSION,
    FanvueChat,
    FanvueClient,
    FanvueMessage,
    FanvueNotContactable,
    FanvueNotFound,
    FanvueResource,
    FanvueSubscriber,
    FanvueVersionSunset,
    refresh_tokens,
)
from resources.http import (
    AuthError,
    InvalidResponse,
    RateLimited,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
)
from resources.quota_store import PostgresRateLimitStore
from sandbox.systems.fanvue import creator_uuid

SEND_ROUTE = "/chats/*/message"


@pytest.fixture
def account() -> str:
    return f"fc{uuid.uuid4().hex[:12]}"


@pytest.fixture
def base(sandbox: Any) -> str:
    return sandbox.url + "/fanvue"


@pytest.fixture
def client(base: str, account: str) -> Iterator[FanvueClient]:
    with FanvueClient(f"fv_at.sandbox.{account}", base) as fanvue:
        yield fanvue


def control(base: str, path: str, method: str = "POST", **body: Any) -> Any:
    response = httpx.request(method, f"{base}/_control/{path}",
                             json=body if method == "POST" else None,
                             params=body if method != "POST" else None)
    assert response.status_code == 200, response.text
    return response.json()


def add_sub(base: str, account: str, **fields: Any) -> dict[str, Any]:
    return control(base, "subscribers", creator=account, **fields)


def requests_since(sandbox: Any, since: int, path: str | None = None) -> list[dict[str, Any]]:
    return [e for e in sandbox.journal("fanvue", since=since)
            if not e["path"].startswith("/_control") and (path is None or e["path"] == path)]


def last_id(sandbox: Any) -> int:
    entries = sandbox.journal()
    return entries[-1]["id"] if entries else 0


# --- reads -------------------------------------------------------------------------------------

def test_me_sends_the_version_header_and_the_token(sandbox: Any, client: FanvueClient,
                                                   account: str) -> None:
    since = last_id(sandbox)
    me = client.me()
    assert (me.uuid, me.handle, me.display_name) == (creator_uuid(account), account.lower(),
                                                     account)
    [entry] = requests_since(sandbox, since)
    assert entry["headers"]["x-fanvue-api-version"] == API_VERSION == "2025-06-26"
    assert entry["headers"]["authorization"] == "***"  # present, and masked in the journal


def test_subscribers_walks_every_page(sandbox: Any, base: str, client: FanvueClient,
                                      account: str) -> None:
    made = [add_sub(base, account, handle=f"fan{i}", tier="vip", timezone="Asia/Tokyo",
                    subscribedAt=f"2026-11-0{i + 1}T08:30:00Z") for i in range(7)]
    since = last_id(sandbox)
    subs = list(client.subscribers(page_size=3))
    assert [s.uuid for s in subs] == [m["uuid"] for m in made]
    first = subs[0]
    assert isinstance(first, FanvueSubscriber)
    assert first.handle == "fan0" and first.tier == "vip" and first.timezone == "Asia/Tokyo"
    assert first.subscribed_at == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert first.subscribed_at.tzinfo is not None
    assert first.expires_at == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    pages = [(e["query"]["page"], e["query"]["size"]) for e in requests_since(sandbox, since)]
    assert pages == [("1", "3"), ("2", "3"), ("3", "3")]
    with pytest.raises(ValueError, match=r"page size must be 1\.\.50"):
        list(client.subscribers(page_size=51))
    assert len(list(client.subscribers())) == 7  # one page of 50


def test_smart_lists_chats_and_messages(base: str, client: FanvueClient, account: str) -> None:
    fans = [add_sub(base, account) for _ in range(3)]
    control(base, "act", creator=account, userUuid=fans[0]["uuid"], action="tip", amount=900)
    control(base, "act", creator=account, userUuid=fans[1]["uuid"], action="cancel")
    lists = {item.name: item for item in client.smart_lists()}
    assert {name: item.count for name, item in lists.items()} == {
        "Subscribers": 2, "Expired subscribers": 1, "Tippers": 1}
    assert [s.uuid for s in client.smart_list_members(lists["Tippers"].uuid)] == [
        fans[0]["uuid"]]
    with pytest.raises(FanvueNotFound):
        list(client.smart_list_members(str(uuid.uuid4())))

    control(base, "act", creator=account, userUuid=fans[2]["uuid"], action="reply",
            text="first", at="2026-05-01T09:00:00Z")
    sent = [client.send_message(fans[2]["uuid"], f"answer {i}") for i in range(60)]
    [chat] = list(client.chats())
    assert isinstance(chat, FanvueChat)
    assert chat.user_uuid == fans[2]["uuid"] and chat.unread_count == 0
    assert chat.last_message_at is not None and chat.last_message_at.tzinfo is not None
    newest = client.messages(fans[2]["uuid"], limit=3)
    assert [m.uuid for m in newest] == sent[::-1][:3]
    everything = client.messages(fans[2]["uuid"], limit=100)  # two pages
    assert len(everything) == 61
    oldest = everything[-1]
    assert oldest == FanvueMessage(uuid=oldest.uuid, text="first",
                                   sent_at=datetime(2026, 5, 1, 9, tzinfo=UTC),
                                   sender_uuid=fans[2]["uuid"])
    assert all(m.sender_uuid == creator_uuid(account) for m in everything[:-1])


# --- sends -------------------------------------------------------------------------------------

def test_send_validates_text_before_sending(sandbox: Any, base: str, client: FanvueClient,
                                            account: str) -> None:
    fan = add_sub(base, account)
    since = last_id(sandbox)
    for text in ("", "x" * 5001):
        with pytest.raises(ValueError, match=r"1\.\.5000 characters"):
            client.send_message(fan["uuid"], text)
    assert requests_since(sandbox, since) == []
    message_uuid = client.send_message(fan["uuid"], "x" * 5000)
    assert [s["uuid"] for s in control(base, "sent", "GET", creator=account)] == [message_uuid]


def test_not_contactable_and_unknown_users(base: str, client: FanvueClient,
                                           account: str) -> None:
    fan, other = add_sub(base, account), add_sub(base, account)
    control(base, "act", creator=account, userUuid=fan["uuid"], action="cancel")
    control(base, "act", creator=account, userUuid=other["uuid"], action="block")
    for user in (fan, other):
        with pytest.raises(FanvueNotContactable) as caught:
            client.send_message(user["uuid"], "hi")
        assert caught.value.status == 403 and caught.value.retryable is False
    with pytest.raises(FanvueNotFound):
        client.send_message(str(uuid.uuid4()), "hi")
    assert control(base, "sent", "GET", creator=account) == []


def test_a_send_whose_answer_is_lost_is_not_resent(sandbox: Any, base: str,
                                                   client: FanvueClient, account: str) -> None:
    fan = add_sub(base, account)
    sandbox.add_fault(system="fanvue", route=SEND_ROUTE, action="drop", phase="after", times=1)
    since = last_id(sandbox)
    with pytest.raises(UnknownOutcome):
        client.send_message(fan["uuid"], "did you get this?")
    assert len(requests_since(sandbox, since, f"/chats/{fan['uuid']}/message")) == 1
    [sent] = control(base, "sent", "GET", creator=account)
    # Reconciliation as the module doc says: our text, from the creator, in the chat.
    me = client.me()
    [found] = [m for m in client.messages(fan["uuid"])
               if m.text == "did you get this?" and m.sender_uuid == me.uuid]
    assert found.uuid == sent["uuid"]


def test_a_failed_send_is_not_retried_but_a_429_is(sandbox: Any, base: str,
                                                   account: str) -> None:
    fan = add_sub(base, account)
    slept: list[float] = []
    with FanvueClient(f"fv_at.sandbox.{account}", base,
                      retry=RetryPolicy(sleep=slept.append)) as client:
        sandbox.add_fault(system="fanvue", route=SEND_ROUTE, action="status", status=503,
                          times=1)
        since = last_id(sandbox)
        with pytest.raises(RetryableError):
            client.send_message(fan["uuid"], "one")
        assert len(requests_since(sandbox, since)) == 1 and slept == []
        sandbox.add_fault(system="fanvue", route=SEND_ROUTE, action="rate_limit",
                          retry_after=2, times=1)
        since = last_id(sandbox)
        message_uuid = client.send_message(fan["uuid"], "two")
        assert [e["status"] for e in requests_since(sandbox, since)] == [429, 200]
        assert slept == [2.0]  # the server's Retry-After, honoured by the layer
    assert [s["uuid"] for s in control(base, "sent", "GET", creator=account)] == [message_uuid]


def test_reads_are_retried_after_a_dropped_connection(sandbox: Any, client: FanvueClient,
                                                      account: str) -> None:
    sandbox.add_fault(system="fanvue", route="/users/me", action="drop", phase="after", times=1)
    assert client.me().uuid == creator_uuid(account)


# --- rate limits -------------------------------------------------------------------------------

def test_a_burst_waits_for_the_client_limit_instead_of_meeting_a_429(
        sandbox: Any, base: str, account: str) -> None:
    # The real budget is 100 a minute; scaled down (server 50 / 0.5 s, client 40 / 0.5 s, a
    # margin for loopback jitter) so the test waits about a second rather than a minute.
    control(base, "creators", creator=account, rate_limit=50, rate_window=0.5)
    since = last_id(sandbox)
    started = time.monotonic()
    with FanvueClient(f"fv_at.sandbox.{account}", base, limit=40, window=0.5) as client:
        for _ in range(120):
            client.me()
    elapsed = time.monotonic() - started
    statuses = [e["status"] for e in requests_since(sandbox, since)]
    assert statuses == [200] * 120  # no 429, and nothing resent
    assert elapsed >= 0.95  # three windows' worth: the client waited twice


def test_the_default_budget_is_100_a_minute_per_token(sandbox: Any, base: str,
                                                      account: str) -> None:
    with FanvueClient(f"fv_at.sandbox.{account}", base, max_wait=0) as client:
        for _ in range(100):
            client.me()
        since = last_id(sandbox)
        with pytest.raises(RateLimited) as caught:
            client.me()
        assert 0 < (caught.value.retry_after or 0) <= 60
    assert requests_since(sandbox, since) == []  # refused before sending
    # Another creator's token has its own budget.
    with FanvueClient(f"fv_at.sandbox.{account}-b", base, max_wait=0) as other:
        assert other.me().handle == f"{account}-b".lower()


def test_a_postgres_store_shares_the_budget_across_clients(
        engine: sa.Engine, sandbox: Any, base: str, account: str) -> None:
    store = PostgresRateLimitStore(engine, "fanvue")
    token = f"fv_at.sandbox.{account}"
    limits = {"rate_store": store, "limit": 3, "window": 3600.0, "max_wait": 0}
    with FanvueClient(token, base, **limits) as one, FanvueClient(token, base, **limits) as two:
        one.me()
        two.me()
        one.me()
        with pytest.raises(RateLimited):
            two.me()
    with engine.connect() as conn:
        units = conn.execute(sa.text(
            "SELECT sum(units) FROM rate_limit_log WHERE platform = 'fanvue'")).scalar()
    assert units == 3


# --- version, auth and refresh -----------------------------------------------------------------

def test_a_sunset_version_names_the_next_one(base: str, client: FanvueClient,
                                             account: str) -> None:
    control(base, "creators", creator=account, api_version="2026-03-01")
    with pytest.raises(FanvueVersionSunset) as caught:
        client.me()
    assert caught.value.next_version == "2026-03-01"
    assert caught.value.status == 410


def test_401_then_refresh_with_rotation(base: str, account: str) -> None:
    token = f"fv_at.sandbox.{account}"
    control(base, "expire_token", access_token=token)
    resource = FanvueResource(base_url=base)
    assert resource.resolved_token_url() == f"{base}/oauth/token"
    with resource.client(token) as stale, pytest.raises(AuthError) as caught:
        stale.me()
    assert caught.value.status == 401
    assert token not in str(caught.value)
    refresh = resource.refresher()
    tokens = refresh(f"fv_rt.sandbox.{account}")
    assert tokens.access_token == f"fv_at.sandbox.{account}.1"
    assert tokens.refresh_token == f"fv_rt.sandbox.{account}.1"
    assert tokens.expires_in == 3600
    with pytest.raises(AuthError, match="invalid_grant"):
        refresh(f"fv_rt.sandbox.{account}")  # rotated: the old one is dead
    with resource.client(tokens.access_token) as fresh:
        assert fresh.me().uuid == creator_uuid(account)
    again = refresh_tokens(f"{base}/oauth/token", "id", "secret", tokens.refresh_token or "")
    assert again.refresh_token == f"fv_rt.sandbox.{account}.2"


def test_a_lost_refresh_answer_is_not_resent(sandbox: Any, base: str, account: str) -> None:
    sandbox.add_fault(system="fanvue", route="/oauth/token", action="drop", phase="after",
                      times=1)
    since = last_id(sandbox)
    with pytest.raises(UnknownOutcome):
        refresh_tokens(f"{base}/oauth/token", "id", "secret", f"fv_rt.sandbox.{account}")
    assert len(requests_since(sandbox, since, "/oauth/token")) == 1
    # It did rotate: the old refresh token is now rejected.
    with pytest.raises(AuthError):
        refresh_tokens(f"{base}/oauth/token", "id", "secret", f"fv_rt.sandbox.{account}")


def test_resource_defaults_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from waifugen_assets.core.config import get_settings

    monkeypatch.setenv("WAIFUGEN_SANDBOX_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    try:
        resource = FanvueResource()
        assert resource.resolved_base_url() == "http://127.0.0.1:9/fanvue"
        assert resource.resolved_token_url() == "http://127.0.0.1:9/fanvue/oauth/token"
        assert resource.credentials()[0]
        monkeypatch.setenv("FANVUE_API_URL", "https://fanvue.example/")
        get_settings.cache_clear()
        assert FanvueResource().resolved_base_url() == "https://fanvue.example"
    finally:
        get_settings.cache_clear()


# --- malformed answers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.mark.parametrize(("path", "body", "call", "field"), [
    ("/users/me", {"uuid": "u", "handle": "h"}, lambda c: c.me(), "displayName"),
    ("/users/me", {"uuid": 5, "handle": "h", "displayName": "d"}, lambda c: c.me(), "uuid"),
    ("/subscribers", {"data": [{"uuid": "u", "handle": "h", "displayName": "d",
                                "subscribedAt": 17}], "pagination": {"hasMore": False}},
     lambda c: list(c.subscribers()), "subscribedAt"),
    ("/subscribers", {"data": [{"uuid": "u", "handle": "h", "displayName": "d",
                                "subscribedAt": "last week"}], "pagination": {"hasMore": False}},
     lambda c: list(c.subscribers()), "subscribedAt"),
    ("/subscribers", {"data": []}, lambda c: list(c.subscribers()), "pagination"),
    ("/subscribers", {"data": [], "pagination": {}}, lambda c: list(c.subscribers()),
     "pagination.hasMore"),
    ("/subscribers", {"data": [], "pagination": {"hasMore": True}},
     lambda c: list(c.subscribers()), "hasMore"),
    ("/chats/lists/smart", {"data": [{"uuid": "l", "name": "n", "count": "3"}]},
     lambda c: c.smart_lists(), "count"),
    ("/chats", {"data": [{"lastMessageAt": None, "unreadMessagesCount": 0}],
                "pagination": {"hasMore": False}}, lambda c: list(c.chats()), "user"),
    ("/chats/u1/message", {"id": "m"}, lambda c: c.send_message("u1", "hi"), "messageUuid"),
    ("/chats/u1/messages", {"data": [{"uuid": "m", "sentAt": "2026-01-01T00:00:00Z",
                                      "senderUuid": "s"}], "pagination": {"hasMore": False}},
     lambda c: c.messages("u1"), "text"),
])
def test_malformed_answers_name_the_field(scripted: ScriptedServer, path: str, body: Any,
                                          call: Any, field: str) -> None:
    prefix = f"/m{uuid.uuid4().hex[:8]}"
    scripted.script(Reply(200, json=body), path=prefix + path)
    with FanvueClient("fv_at.sandbox.x", scripted.url(prefix)) as client, \
            pytest.raises(InvalidResponse) as caught:
        call(client)
    assert field in str(caught.value)


def test_a_body_that_is_not_json_is_an_invalid_response(scripted: ScriptedServer) -> None:
    prefix = f"/m{uuid.uuid4().hex[:8]}"
    scripted.script(Reply(200, body="<html>maintenance</html>",
                          headers={"content-type": "text/html"}), path=prefix + "/users/me")
    with FanvueClient("fv_at.sandbox.x", scripted.url(prefix)) as client, \
            pytest.raises(InvalidResponse, match="not JSON"):
        client.me()


def test_a_truncated_read_is_retried(sandbox: Any, client: FanvueClient) -> None:
    sandbox.add_fault(system="fanvue", route="/chats/lists/smart", action="truncate", times=1)
    assert [item.name for item in client.smart_lists()] == [
        "Subscribers", "Expired subscribers", "Tippers"]
