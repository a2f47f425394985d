"""Telegram sandbox (strict Bot API subset) and the client, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from resources.http import PermanentError
from resources.telegram import SANDBOX_ALERT_CHAT_ID, SANDBOX_BOT_TOKEN, TelegramClient


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
