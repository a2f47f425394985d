"""The webhook service over real HTTP (uvicorn on a loopback port) on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from resources.webhook_signing import sign_fanvue
from waifugen_assets.core import schema
from waifugen_assets.subscribers.inbound import apply_pending
from waifugen_assets.subscribers.webhooks import create_app

FANVUE_SECRET = "whsec_test_fanvue"
TG_SECRET = "tg-secret-token"
CHAR = "aiko-tanaka"
BOT = 555111
NOW = 1_795_600_000  # 2026-11-25T...
FAN = "8d1f0b2a-0000-4000-8000-0000000000aa"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class Service:
    """The app on 127.0.0.1:<free port> in a thread; `clock` is the app's time."""

    def __init__(self, engine: sa.Engine, **kwargs: Any) -> None:
        self.now = float(NOW)
        app = create_app(engine, fanvue_secret=FANVUE_SECRET, telegram_secret=TG_SECRET,
                         clock=lambda: self.now, **kwargs)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        ready = threading.Event()
        self.server = _Server(uvicorn.Config(app, lifespan="off", log_level="warning",
                                             access_log=False), ready)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        ready.wait()
        assert self.server.started, "webhook service did not start"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join()

    def fanvue(self, body: dict[str, Any] | bytes, *, character: str = CHAR,
               secret: str = FANVUE_SECRET, ts: int | None = None,
               header: str | None = "sign") -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if header == "sign":
            headers["X-Fanvue-Signature"] = sign_fanvue(secret, raw, NOW if ts is None else ts)
        elif header is not None:
            headers["X-Fanvue-Signature"] = header
        return self.http.post(f"/fanvue/{character}", content=raw, headers=headers)

    def telegram(self, update: dict[str, Any], *, character: str = CHAR,
                 secret: str | None = TG_SECRET) -> httpx.Response:
        headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
        return self.http.post(f"/telegram/{character}", json=update, headers=headers)


@pytest.fixture
def world(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(
            id=CHAR, name="Aiko", age=24, timezone="Asia/Tokyo"))
    return engine


@pytest.fixture
def service(world: sa.Engine) -> Iterator[Service]:
    svc = Service(world, character_bots={CHAR: BOT})
    yield svc
    svc.close()


def stored(engine: sa.Engine) -> list[sa.Row]:
    ie = schema.inbound_events
    with engine.connect() as conn:
        return conn.execute(sa.select(ie.c.platform, ie.c.event_id, ie.c.event_type,
                                      ie.c.processed_at).order_by(ie.c.id)).all()


def body(kind: str = "tip.received", event_id: str = "evt_1", **data: Any) -> dict[str, Any]:
    data = data or {"amount": 500, "currency": "USD"}
    return {"id": event_id, "type": kind, "createdAt": "2026-11-25T10:00:00Z",
            "creatorUuid": "creator", "data": {"userUuid": FAN, **data}}


def tg_text(update_id: int, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": NOW, "text": text,
        "chat": {"id": 4242, "type": "private"},
        "from": {"id": 4242, "first_name": "Ken", "username": "ken"}}}


def test_signed_event_is_stored_once_and_not_applied(service: Service, world: sa.Engine) -> None:
    first = service.fanvue(body())
    assert (first.status_code, first.json()) == (200, {"stored": 1})
    # The same delivery again (Fanvue retry, or a replay inside the tolerance): stored once.
    again = service.fanvue(body())
    assert (again.status_code, again.json()) == (200, {"stored": 0})
    service.now = NOW + 299
    assert service.fanvue(body()).json() == {"stored": 0}
    rows = stored(world)
    assert [(r.platform, r.event_id, r.event_type) for r in rows] == [
        ("fanvue", "evt_1", "revenue.tip")]
    assert rows[0].processed_at is None  # applying is the pipeline's job


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"header": None}, "missing signature header"),
        ({"header": ""}, "missing signature header"),
        ({"header": "t=abc,v1=zz"}, "malformed"),
        ({"secret": "attacker-secret"}, "signature does not match"),
        ({"header": f"t={NOW},v1={'0' * 64}"}, "signature does not match"),
        ({"ts": NOW - 301}, "replay"),
        ({"ts": NOW + 301}, "replay"),
    ],
)
def test_unsigned_forged_and_stale_are_rejected(service: Service, world: sa.Engine,
                                                kwargs: dict[str, Any], reason: str) -> None:
    response = service.fanvue(body(), **kwargs)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert FANVUE_SECRET not in response.text
    assert stored(world) == []


def test_replay_after_tolerance_is_rejected(service: Service, world: sa.Engine) -> None:
    raw = json.dumps(body(event_id="evt_late")).encode()
    header = sign_fanvue(FANVUE_SECRET, raw, NOW)
    service.now = NOW + 301
    response = service.fanvue(raw, header=header)
    assert response.status_code == 401 and "replay" in response.json()["error"]
    assert stored(world) == []


def test_tampered_body_is_rejected(service: Service, world: sa.Engine) -> None:
    raw = json.dumps(body()).encode()
    header = sign_fanvue(FANVUE_SECRET, raw, NOW)
    tampered = raw.replace(b"500", b"50000")
    assert service.fanvue(tampered, header=header).status_code == 401
    assert stored(world) == []


def test_telegram_secret_checked(service: Service, world: sa.Engine) -> None:
    assert service.telegram(tg_text(1, "hi"), secret=None).status_code == 401
    wrong = service.telegram(tg_text(1, "hi"), secret="tg-secret-tokeN")
    assert (wrong.status_code, wrong.json()) == (401, {"error": "secret token does not match"})
    assert stored(world) == []
    ok = service.telegram(tg_text(1, "hi"))
    assert (ok.status_code, ok.json()) == (200, {"stored": 1})
    assert service.telegram(tg_text(1, "hi")).json() == {"stored": 0}
    ignored = service.telegram({"update_id": 2, "callback_query": {"id": "x"}})
    assert ignored.status_code == 200 and ignored.json()["stored"] == 0
    assert [(r.event_id, r.event_type) for r in stored(world)] == [
        (f"{BOT}:1", "message.received")]


def test_bad_requests(service: Service, world: sa.Engine) -> None:
    not_json = service.fanvue(b"{not json")
    assert (not_json.status_code, not_json.json()) == (400, {"error": "body is not JSON"})
    bad = service.fanvue(body(amount=-1, currency="USD"))
    assert bad.status_code == 400 and bad.json()["error"].startswith("data.amount")
    unsupported = service.fanvue(body("story.liked", event_id="evt_x"))
    assert unsupported.status_code == 200 and unsupported.json()["stored"] == 0
    bad_tg = service.telegram({"update_id": 3, "message": {"chat": {"type": "private"}}})
    assert bad_tg.status_code == 400 and "message.chat.id" in bad_tg.json()["error"]
    unknown = service.fanvue(body(), character="nobody")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown character"})
    assert service.telegram(tg_text(5, "hi"), character="nobody").status_code == 404
    # Authenticity comes first: an unknown character with a forged request is a 401.
    assert service.fanvue(body(), character="nobody", secret="forged").status_code == 401
    wrong_method = service.http.get(f"/fanvue/{CHAR}")
    assert wrong_method.status_code == 405
    assert stored(world) == []


def test_body_size_limit(world: sa.Engine) -> None:
    svc = Service(world, character_bots={CHAR: BOT}, max_body_bytes=1024)
    try:
        big = body(note="x" * 2000)
        assert svc.fanvue(big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the stream itself is counted
            for _ in range(10):
                yield b"x" * 200

        streamed = svc.http.post(f"/fanvue/{CHAR}", content=chunks(),
                                 headers={"X-Fanvue-Signature": "t=1,v1=00"})
        assert streamed.status_code == 413
        assert svc.fanvue(body()).status_code == 200
    finally:
        svc.close()


def test_telegram_bot_from_platform_accounts(world: sa.Engine) -> None:
    svc = Service(world)  # no character_bots: the bot id comes from the database
    try:
        missing = svc.telegram(tg_text(1, "hi"))
        assert missing.status_code == 404 and "bot" in missing.json()["error"]
        with world.begin() as conn:
            conn.execute(sa.insert(schema.platform_accounts).values(
                character_id=CHAR, platform="telegram", account_ref="aiko_bot",
                external_user_id="9876"))
        assert svc.telegram(tg_text(1, "hi")).json() == {"stored": 1}
        assert [r.event_id for r in stored(world)] == ["9876:1"]
    finally:
        svc.close()


def test_every_event_type_through_http_then_applied(service: Service, world: sa.Engine) -> None:
    fanvue = [
        body("subscriber.created", "e1", handle="ken", displayName="Ken",
             subscribedAt="2026-11-25T09:00:00Z"),
        body("message.received", "e2", messageUuid="m1", text="hello"),
        body("tip.received", "e3", amount=300, currency="USD"),
        body("purchase.completed", "e4", purchaseUuid="p1", amount=1200, currency="USD"),
        body("subscriber.renewed", "e5", amount=999, currency="USD"),
        body("subscriber.cancelled", "e6"),
    ]
    for b in fanvue:
        assert service.fanvue(b).json() == {"stored": 1}
    telegram = [
        tg_text(10, "/start c-aiko-tanaka"),
        tg_text(11, "hey"),
        {"update_id": 12, "message": {"message_id": 12, "date": NOW,
                                      "chat": {"id": 4242, "type": "private"},
                                      "successful_payment": {"currency": "XTR",
                                                             "total_amount": 100}}},
        {"update_id": 13, "my_chat_member": {"chat": {"id": 4242, "type": "private"},
                                             "date": NOW + 5,
                                             "new_chat_member": {"status": "kicked"}}},
    ]
    for u in telegram:
        assert service.telegram(u).json() == {"stored": 1}
    assert {(r.platform, r.event_type) for r in stored(world)} == {
        ("fanvue", "subscriber.new"), ("fanvue", "message.received"), ("fanvue", "revenue.tip"),
        ("fanvue", "revenue.purchase"), ("fanvue", "subscriber.renewal"),
        ("fanvue", "subscriber.cancelled"), ("telegram", "subscriber.new"),
        ("telegram", "message.received"), ("telegram", "revenue.tip"),
        ("telegram", "subscriber.blocked")}
    stats = apply_pending(world)
    assert (stats.applied, stats.rejected, stats.revenue_events) == (10, 0, 4)
    with world.connect() as conn:
        opted = conn.execute(sa.select(schema.subscribers.c.platform,
                                       schema.subscribers.c.opted_out_at.is_not(None))).all()
    assert sorted(opted) == [("fanvue", True), ("telegram", True)]


def test_healthz(service: Service) -> None:
    response = service.http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_cli_serves_on_the_configured_database(world: sa.Engine, db_url: str,
                                               tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(tmp_path / "home"),
           "FANVUE_WEBHOOK_SECRET": "cli-secret", "WEBHOOKS_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "waifugen_assets.app.cli", "webhooks", "serve"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # uvicorn says when it listens
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise AssertionError("server exited: " + "".join(seen))
        raw = json.dumps(body(event_id="evt_cli")).encode()
        headers = {"X-Fanvue-Signature": sign_fanvue("cli-secret", raw, int(time.time()))}
        url = f"http://127.0.0.1:{port}"
        answer = httpx.post(f"{url}/fanvue/{CHAR}", content=raw, headers=headers)
        assert (answer.status_code, answer.json()) == (200, {"stored": 1})
        assert httpx.get(f"{url}/healthz").json() == {"ok": True}
        assert [r.event_id for r in stored(world)] == ["evt_cli"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
