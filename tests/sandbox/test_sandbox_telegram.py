"""Telegram sandbox (strict Bot API subset) and the client, over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import httpx
import pytest
from http_test_server import Reply, ScriptedServer

from resources.http import PermanentError
from resources.telegram import (
    SANDBOX_ALERT_CHAT_ID,
    SANDBOX_BOT_TOKEN,
    TelegramClient,
    sandbox_bot_id,
    sandbox_bot_token,
    sandbox_bot_username,
)
from sandbox.server import SandboxServer


@pytest.fixture
def api(sandbox_server) -> str:
    return f"{sandbox_server.url}/telegram"


def test_get_me_and_bad_token(api: str) -> None:
    me = httpx.get(f"{api}/bot{SANDBOX_BOT_TOKEN}/getMe").json()
    assert me["ok"] is True and me["result"]["is_bot"] is True
    bad = httpx.get(f"{api}/bot123:nope/getMe")
    assert bad.status_code == 401
    assert bad.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_client_sends_and_token_is_not_journaled(api: str, sandbox_server) -> None:
    client = TelegramClient(SANDBOX_BOT_TOKEN, api)
    first = client.send_message(SANDBOX_ALERT_CHAT_ID, "budget at 80%")
    second = client.send_message(SANDBOX_ALERT_CHAT_ID, "budget at 100%")
    assert second == first + 1
    entries = [e for e in sandbox_server.journal("telegram") if e["path"].endswith("sendMessage")]
    assert entries and all(SANDBOX_BOT_TOKEN not in str(e) for e in entries)
    assert entries[-1]["body"]["text"] == "budget at 100%"


@pytest.mark.parametrize(("params", "status", "description"), [
    ({"chat_id": "-100999", "text": "hi"}, 400, "Bad Request: chat not found"),
    ({"chat_id": SANDBOX_ALERT_CHAT_ID, "text": ""}, 400, "Bad Request: message text is empty"),
    ({"chat_id": SANDBOX_ALERT_CHAT_ID, "text": "x" * 4097}, 400,
     "Bad Request: message is too long"),
    ({"text": "hi"}, 400, "Bad Request: chat_id is empty"),
])
def test_send_message_validation(api: str, params: dict, status: int, description: str) -> None:
    r = httpx.post(f"{api}/bot{SANDBOX_BOT_TOKEN}/sendMessage", json=params)
    assert r.status_code == status
    assert r.json()["description"] == description


def test_markdown_v2_reserved_characters(api: str) -> None:
    url = f"{api}/bot{SANDBOX_BOT_TOKEN}/sendMessage"
    bad = httpx.post(url, data={"chat_id": SANDBOX_ALERT_CHAT_ID, "text": "80% used.",
                                "parse_mode": "MarkdownV2"})
    assert bad.status_code == 400 and "can't parse entities" in bad.json()["description"]
    good = httpx.post(url, data={"chat_id": SANDBOX_ALERT_CHAT_ID, "text": "80% used\\.",
                                 "parse_mode": "MarkdownV2"})
    assert good.json()["ok"] is True


def test_users_who_never_started_or_blocked_the_bot(api: str) -> None:
    httpx.post(f"{api}/_control/chats", json={"chat_id": 555, "started": False})
    httpx.post(f"{api}/_control/chats", json={"chat_id": 556, "blocked": True})
    client = TelegramClient(SANDBOX_BOT_TOKEN, api)
    with pytest.raises(PermanentError, match="can't initiate conversation"):
        client.send_message(555, "hello")
    with pytest.raises(PermanentError, match="blocked by the user"):
        client.send_message(556, "hello")


def test_per_chat_rate_limit_answers_retry_after(api: str) -> None:
    httpx.post(f"{api}/_control/chats", json={"chat_id": 777, "type": "group"})
    url = f"{api}/bot{SANDBOX_BOT_TOKEN}/sendMessage"
    statuses = [httpx.post(url, json={"chat_id": 777, "text": f"m{i}"}) for i in range(21)]
    assert [r.status_code for r in statuses[:20]] == [200] * 20
    limited = statuses[20]
    assert limited.status_code == 429
    body = limited.json()
    assert body["parameters"]["retry_after"] >= 1
    assert body["description"].startswith("Too Many Requests: retry after")


# --- character bots, subscribers, updates, webhooks ------------------------------------------

def new_bot(api: str) -> tuple[str, str, str]:
    """A fresh character bot: (account, token, Bot API base for it)."""
    account = f"c-{uuid.uuid4().hex[:8]}"
    token = sandbox_bot_token(account)
    return account, token, f"{api}/bot{token}"


def control(api: str, route: str, **body: object) -> httpx.Response:
    return httpx.post(f"{api}/_control/{route}", json=body)


def test_character_bot_tokens(api: str) -> None:
    account, token, bot = new_bot(api)
    me = httpx.get(f"{bot}/getMe").json()["result"]
    assert me["username"] == account.replace("-", "_") + "_bot"
    assert me["id"] == sandbox_bot_id(account) == int(token.split(":")[0])
    # The slug and the @handle name one bot; a token whose id is not its account's is 401.
    assert sandbox_bot_id(f"@{me['username']}") == me["id"]
    forged = f"{me['id'] + 1}:AAsandbox_{account}"
    assert httpx.get(f"{api}/bot{forged}/getMe").status_code == 401
    other = sandbox_bot_token("someone-else")
    assert httpx.get(f"{api}/bot{other.split(':')[0]}:AAsandbox_{account}/getMe"
                     ).status_code == 401
    # The alerts bot keeps working.
    assert httpx.get(f"{api}/bot{SANDBOX_BOT_TOKEN}/getMe").json()["result"]["username"] == \
        "waifugen_alerts_bot"


def test_deep_link_start_then_get_updates_with_offset(api: str) -> None:
    account, _, bot = new_bot(api)
    username = sandbox_bot_username(account)
    started = control(api, "start", bot=username, first_name="Ana", username="ana_fan",
                      language_code="es", payload=f"c-{account}-tiktok").json()
    assert started["deep_link"] == f"https://t.me/{username}?start=c-{account}-tiktok"
    second = control(api, "start", bot=username).json()
    assert second["user_id"] != started["user_id"]
    updates = httpx.post(f"{bot}/getUpdates", json={}).json()["result"]
    assert [u["update_id"] for u in updates] == [started["update_id"], second["update_id"]]
    first = updates[0]["message"]
    assert first["text"] == f"/start c-{account}-tiktok"
    assert first["chat"] == {"id": started["user_id"], "first_name": "Ana",
                             "username": "ana_fan", "type": "private"}
    assert first["from"]["language_code"] == "es" and first["from"]["is_bot"] is False
    assert first["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert updates[1]["message"]["text"] == "/start"
    # Unconfirmed updates come again; an offset above an update_id confirms (drops) it.
    assert len(httpx.get(f"{bot}/getUpdates").json()["result"]) == 2
    rest = httpx.post(f"{bot}/getUpdates",
                      json={"offset": started["update_id"] + 1}).json()["result"]
    assert [u["update_id"] for u in rest] == [second["update_id"]]
    assert [u["update_id"] for u in httpx.get(f"{bot}/getUpdates").json()["result"]] == \
        [second["update_id"]]
    assert httpx.get(f"{bot}/getUpdates", params={"offset": second["update_id"] + 1}
                     ).json()["result"] == []
    for limit in (0, 101):
        bad = httpx.post(f"{bot}/getUpdates", json={"limit": limit})
        assert bad.status_code == 400 and "limit" in bad.json()["description"]


def test_limit_and_negative_offset(api: str) -> None:
    account, _, bot = new_bot(api)
    ids = [control(api, "start", bot=sandbox_bot_username(account)).json()["update_id"]
           for _ in range(4)]
    assert [u["update_id"] for u in
            httpx.post(f"{bot}/getUpdates", json={"limit": 2}).json()["result"]] == ids[:2]
    last = httpx.post(f"{bot}/getUpdates", json={"offset": -1}).json()["result"]
    assert [u["update_id"] for u in last] == ids[-1:]
    assert [u["update_id"] for u in httpx.get(f"{bot}/getUpdates").json()["result"]] == ids[-1:]


def test_user_actions_become_updates(api: str) -> None:
    account, _, bot = new_bot(api)
    name = sandbox_bot_username(account)
    user = control(api, "start", bot=name, payload="c-x").json()["user_id"]
    control(api, "act", bot=name, user_id=user, action="reply", text="hello!",
            at="2026-11-25T10:00:00Z")
    control(api, "act", bot=name, user_id=user, action="tip", amount=250)
    control(api, "act", bot=name, user_id=user, action="stop")
    control(api, "act", bot=name, user_id=user, action="block")
    updates = httpx.get(f"{bot}/getUpdates").json()["result"][1:]
    reply, tip, stop, block = updates
    assert reply["message"]["text"] == "hello!"
    assert reply["message"]["date"] == 1795600800
    assert tip["message"]["successful_payment"]["currency"] == "XTR"
    assert tip["message"]["successful_payment"]["total_amount"] == 250
    assert stop["message"]["text"] == "STOP"
    change = block["my_chat_member"]
    assert change["new_chat_member"]["status"] == "kicked"
    assert change["old_chat_member"]["status"] == "member"
    assert change["chat"]["id"] == user
    sent = httpx.post(f"{bot}/sendMessage", json={"chat_id": user, "text": "still there?"})
    assert sent.status_code == 403
    assert sent.json()["description"] == "Forbidden: bot was blocked by the user"
    # A blocked user cannot reply; unblocking makes the chat reachable again.
    assert control(api, "act", bot=name, user_id=user, action="reply", text="x"
                   ).status_code == 409
    control(api, "act", bot=name, user_id=user, action="unblock")
    assert httpx.post(f"{bot}/sendMessage", json={"chat_id": user, "text": "welcome back"}
                      ).json()["ok"] is True
    # Bad control requests say what is wrong.
    assert control(api, "act", bot=name, user_id=user, action="tip").status_code == 400
    assert control(api, "act", bot=name, user_id=123, action="reply", text="x"
                   ).status_code == 404
    assert control(api, "start", bot=name, payload="has space").status_code == 400


def test_users_of_one_bot_are_strangers_to_another(api: str) -> None:
    account, _, _ = new_bot(api)
    _, _, other = new_bot(api)
    user = control(api, "start", bot=sandbox_bot_username(account)).json()["user_id"]
    never = httpx.post(f"{other}/sendMessage", json={"chat_id": user, "text": "hi"})
    assert never.status_code == 403
    assert never.json()["description"] == \
        "Forbidden: bot can't initiate conversation with a user"
    unknown = httpx.post(f"{other}/sendMessage", json={"chat_id": 99, "text": "hi"})
    assert unknown.status_code == 400


def test_webhook_rules_and_conflict(api: str) -> None:
    account, _, bot = new_bot(api)
    control(api, "start", bot=sandbox_bot_username(account))
    for params, words in [
        ({"url": "http://example.com/hook"}, "HTTPS URL must be provided"),
        ({"url": "https://example.com:8080/hook"}, "ports 80, 88, 443 or 8443"),
        ({"url": "https://example.com/hook", "secret_token": "no spaces"}, "unallowed"),
        ({"url": "https://example.com/hook", "secret_token": "x" * 257}, "unallowed"),
    ]:
        bad = httpx.post(f"{bot}/setWebhook", json=params)
        assert bad.status_code == 400 and words in bad.json()["description"]
    assert httpx.post(f"{bot}/setWebhook", json={"url": "https://example.com/hook",
                                                  "secret_token": "s3cr3t-_"}).json()["ok"]
    conflict = httpx.get(f"{bot}/getUpdates")
    assert conflict.status_code == 409
    assert conflict.json()["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
        "delete the webhook first")
    info = httpx.get(f"{bot}/getWebhookInfo").json()["result"]
    assert info["url"] == "https://example.com/hook" and info["pending_update_count"] == 1
    # Not loopback: the sandbox never calls out.
    assert control(api, "deliver", bot=sandbox_bot_username(account)).status_code == 409
    assert httpx.post(f"{bot}/deleteWebhook").json()["result"] is True
    assert httpx.get(f"{bot}/getWebhookInfo").json()["result"]["url"] == ""
    assert len(httpx.get(f"{bot}/getUpdates").json()["result"]) == 1


def test_deliver_posts_updates_with_the_secret_header(api: str) -> None:
    account, _, bot = new_bot(api)
    name = sandbox_bot_username(account)
    first = control(api, "start", bot=name, payload="c-a").json()
    second = control(api, "start", bot=name, payload="c-b").json()
    with ScriptedServer() as receiver:
        hook = receiver.script(Reply(500), Reply(200, json={}))
        assert httpx.post(f"{bot}/setWebhook", json={"url": receiver.url(hook),
                                                      "secret_token": "hook_secret-1"}).json()["ok"]
        failed = control(api, "deliver", bot=name).json()
        assert failed == {"ok": True, "delivered": 0, "failed": 1, "pending": 2}
        info = httpx.get(f"{bot}/getWebhookInfo").json()["result"]
        assert info["last_error_message"].startswith("Wrong response from the webhook: 500")
        done = control(api, "deliver", bot=name).json()
        assert done == {"ok": True, "delivered": 2, "failed": 0, "pending": 0}
        hits = receiver.hits(hook)
    assert [json.loads(h.body)["update_id"] for h in hits] == [
        first["update_id"], first["update_id"], second["update_id"]]
    assert all(h.headers["x-telegram-bot-api-secret-token"] == "hook_secret-1" for h in hits)
    assert json.loads(hits[-1].body)["message"]["text"] == "/start c-b"
    assert httpx.get(f"{bot}/getWebhookInfo").json()["result"]["pending_update_count"] == 0


def test_private_chat_allows_a_short_burst_then_429(api: str) -> None:
    account, _, bot = new_bot(api)
    user = control(api, "start", bot=sandbox_bot_username(account)).json()["user_id"]
    answers = [httpx.post(f"{bot}/sendMessage", json={"chat_id": user, "text": f"m{i}"})
               for i in range(10)]
    statuses = [r.status_code for r in answers]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses
    limited = answers[statuses.index(429)].json()
    assert limited["parameters"]["retry_after"] >= 1


def test_sent_filters_by_bot(api: str) -> None:
    account, _, bot = new_bot(api)
    other_account, _, other = new_bot(api)
    user = control(api, "start", bot=sandbox_bot_username(account)).json()["user_id"]
    control(api, "start", bot=sandbox_bot_username(other_account), user_id=user)
    httpx.post(f"{bot}/sendMessage", json={"chat_id": user, "text": "from one"})
    httpx.post(f"{other}/sendMessage", json={"chat_id": user, "text": "from two"})
    one = httpx.get(f"{api}/_control/sent", params={
        "bot": sandbox_bot_username(account), "chat_id": user}).json()
    both = httpx.get(f"{api}/_control/sent", params={"chat_id": user}).json()
    assert [m["text"] for m in one] == ["from one"]
    assert sorted(m["text"] for m in both) == ["from one", "from two"]


def simulated(server_url: str, username: str, day: str) -> dict:
    return httpx.post(f"{server_url}/telegram/_control/simulate",
                      json={"bot": username, "day": day, "starts": 8}).json()


def without_update_ids(summary: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "update_id"} for e in summary["events"]]


def test_simulate_is_deterministic_and_once_per_day(api: str, sandbox_server,
                                                    tmp_path: Path) -> None:
    account, _, bot = new_bot(api)
    name = sandbox_bot_username(account)
    day = simulated(sandbox_server.url, name, "2026-11-25")
    assert day["starts"] == 8 and len(day["users"]) == 8
    actions = [e["action"] for e in day["events"]]
    assert actions.count("start") == 8
    midnight = int(dt.datetime(2026, 11, 25, tzinfo=dt.UTC).timestamp())
    dates = [e["date"] for e in day["events"]]
    assert dates == sorted(dates) and all(midnight <= d < midnight + 86_400 for d in dates)
    updates = httpx.get(f"{bot}/getUpdates").json()["result"]
    assert [u["update_id"] for u in updates] == [e["update_id"] for e in day["events"]]
    starts = [u["message"]["text"] for u in updates
              if "message" in u and u["message"].get("text", "").startswith("/start")]
    assert starts == [f"/start c-{account}"] * 8
    # Once per day: the same answer, nothing queued again.
    again = simulated(sandbox_server.url, name, "2026-11-25")
    assert again["already_simulated"] is True and again["events"] == day["events"]
    assert len(httpx.get(f"{bot}/getUpdates").json()["result"]) == len(updates)
    # Another day is another day; the same seed, bot and day on another server is the same.
    assert without_update_ids(simulated(sandbox_server.url, name, "2026-11-26")) != \
        without_update_ids(day)
    with SandboxServer(state_dir=tmp_path / "twin", seed=sandbox_server.seed) as twin:
        assert without_update_ids(simulated(twin.url, name, "2026-11-25")) == \
            without_update_ids(day)
    with SandboxServer(state_dir=tmp_path / "other", seed=sandbox_server.seed + 1) as other:
        assert without_update_ids(simulated(other.url, name, "2026-11-25")) != \
            without_update_ids(day)
