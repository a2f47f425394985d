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


# --- bad input: refused with a 4xx naming the problem, never a 500, nothing stored -------------

def _nested(depth: int) -> bytes:
    return (b'{"id": "evt_deep", "type": "tip.received", "createdAt": "2026-11-25T10:00:00Z", '
            b'"creatorUuid": "creator", "data": ' + b"[" * depth + b"]" * depth + b"}")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (_nested(5000), "body: nested deeper than 32 levels"),  # RecursionError in json
        (_nested(40), "body: nested deeper than 32 levels"),  # parses, but refused as deep
        (json.dumps(body(text="a\u0000b", kind="message.received", messageUuid="m")).encode(),
         "body: contains a NUL character (\\u0000), which cannot be stored"),
        (b'{"id": "evt_1", "type": "tip.received", "\\u0000": 1}',
         "body: contains a NUL character (\\u0000), which cannot be stored"),
        (b'{"id": "evt_\\ud800", "type": "tip.received"}',
         "body: contains an unpaired surrogate (not valid Unicode)"),
        (b'{"id": "evt_1", "type": "tip.received", "x": NaN}',
         "body: NaN is not a JSON number PostgreSQL can store"),
        (b'{"id": "evt_1", "type": "tip.received", "x": 1e400}',
         "body: number out of range: 1e400"),
        (b"\xff\xfe\x00", "body is not JSON"),
        (json.dumps(body(amount=2**63, currency="USD")).encode(), "data.amount: too large"),
        (json.dumps({**body(), "createdAt": "9999-12-31T23:00:00-05:00"}).encode(),
         "createdAt: out of range: 9999-12-31T23:00:00-05:00"),
        (json.dumps(body(userUuid="u" * 201, amount=5, currency="USD")).encode(),
         "data.userUuid: longer than 200 characters"),
        (json.dumps({**body(), "creatorUuid": "c" * 201}).encode(),
         "creatorUuid: longer than 200 characters"),
        (json.dumps({k: v for k, v in body().items() if k != "creatorUuid"}).encode(),
         "creatorUuid: missing"),
    ],
)
def test_signed_bodies_the_database_cannot_hold_are_400(service: Service, world: sa.Engine,
                                                        raw: bytes, error: str) -> None:
    response = service.fanvue(raw)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert stored(world) == []


@pytest.mark.parametrize("segment", ["aiko%00tanaka", "%00", "aiko-tanaka%0A", "AIKO-TANAKA",
                                     "%C3%A9", "aiko%20tanaka", "a" * 300])
def test_a_character_segment_that_is_no_slug_is_404(service: Service, world: sa.Engine,
                                                     segment: str) -> None:
    fanvue = service.fanvue(body(), character=segment)
    assert (fanvue.status_code, fanvue.json()) == (404, {"error": "unknown character"})
    telegram = service.telegram(tg_text(1, "hi"), character=segment)
    assert (telegram.status_code, telegram.json()) == (404, {"error": "unknown character"})
    assert stored(world) == []


def test_telegram_values_out_of_range_are_400(service: Service, world: sa.Engine) -> None:
    late = tg_text(1, "hi")
    late["message"]["date"] = 10**20
    response = service.telegram(late)
    assert (response.status_code, response.json()) == (
        400, {"error": "message.date: not a Unix time in range"})
    huge_chat = tg_text(2, "hi")
    huge_chat["message"]["chat"]["id"] = 10**250  # would not fit the external id index
    assert service.telegram(huge_chat).json() == {
        "error": "message.chat.id: longer than 200 characters"}
    paid = tg_text(3, "hi")
    paid["message"]["successful_payment"] = {"currency": "XTR", "total_amount": 2**63}
    assert service.telegram(paid).json() == {
        "error": "message.successful_payment.total_amount: too large"}
    assert stored(world) == []


def test_a_signature_timestamp_too_long_for_int_is_401(service: Service, world: sa.Engine) -> None:
    response = service.fanvue(body(), header=f"t={'9' * 5000},v1={'0' * 64}")
    assert (response.status_code, response.json()) == (401, {"error": "malformed signature "
                                                                      "header"})
    assert stored(world) == []


def test_a_fan_time_zone_naming_a_directory_is_dropped(service: Service,
                                                       world: sa.Engine) -> None:
    # ZoneInfo("America") raises IsADirectoryError, which once escaped as a 500.
    response = service.fanvue(body("subscriber.created", "evt_tz", handle="ken",
                                   timezone="America"))
    assert (response.status_code, response.json()) == (200, {"stored": 1})
    with world.connect() as conn:
        assert conn.scalar(sa.select(schema.inbound_events.c.data)) == {"handle": "ken"}


# --- the Fanvue creator: an event is bound to the character its creator is --------------------

MEI = "mei-lin"
AIKO_CREATOR = "c0ffee00-0000-4000-8000-00000000a1c0"
MEI_CREATOR = "c0ffee00-0000-4000-8000-0000000003e1"


def _fanvue_accounts(engine: sa.Engine, **uuids: str | None) -> None:
    """Fanvue accounts for the characters named (slug with '_' for '-'), creating them."""
    with engine.begin() as conn:
        for name, uuid in uuids.items():
            slug = name.replace("_", "-")
            if conn.scalar(sa.select(schema.characters.c.id)
                           .where(schema.characters.c.id == slug)) is None:
                conn.execute(sa.insert(schema.characters).values(
                    id=slug, name=slug, age=25, timezone="UTC"))
            conn.execute(sa.insert(schema.platform_accounts).values(
                character_id=slug, platform="fanvue", account_ref=f"{slug}-fv",
                external_user_id=uuid))


def _for(creator: str, event_id: str) -> dict[str, Any]:
    return {**body(event_id=event_id), "creatorUuid": creator}


def _inbound_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(schema.inbound_events))


def test_an_event_posted_to_another_characters_url_is_refused(service: Service,
                                                              world: sa.Engine) -> None:
    _fanvue_accounts(world, aiko_tanaka=AIKO_CREATOR, mei_lin=MEI_CREATOR)
    before = _inbound_count(world)
    wrong = service.fanvue(_for(AIKO_CREATOR, "evt_a"), character=MEI)
    assert (wrong.status_code, wrong.json()) == (403, {
        "error": "creatorUuid: the event is for another Fanvue creator than mei-lin's account"})
    assert _inbound_count(world) == before == 0
    # The same signed event at its own character's URL is stored, under that character.
    right = service.fanvue(_for(AIKO_CREATOR, "evt_a"))
    assert (right.status_code, right.json()) == (200, {"stored": 1})
    assert service.fanvue(_for(MEI_CREATOR, "evt_m"), character=MEI).json() == {"stored": 1}
    with world.connect() as conn:
        assert sorted(conn.execute(sa.select(schema.inbound_events.c.event_id,
                                             schema.inbound_events.c.character_id)).all()) == [
            ("evt_a", CHAR), ("evt_m", MEI)]


def test_while_the_creator_is_unknown_events_are_stored_and_bound_when_applied(
        world: sa.Engine) -> None:
    # Mei's account exists but no DM run has asked Fanvue for its uuid yet; Aiko has none.
    _fanvue_accounts(world, mei_lin=None)
    svc = Service(world, character_bots={CHAR: BOT}, creator_cache_seconds=0)
    try:
        assert svc.fanvue(_for(AIKO_CREATOR, "evt_1"), character=MEI).json() == {"stored": 1}
        assert svc.fanvue(_for(MEI_CREATOR, "evt_2"), character=MEI).json() == {"stored": 1}
        assert svc.fanvue(_for(AIKO_CREATOR, "evt_3")).json() == {"stored": 1}
        # A DM run learns Mei's uuid (GET /users/me) before it applies events.
        with world.begin() as conn:
            conn.execute(sa.update(schema.platform_accounts)
                         .where(schema.platform_accounts.c.character_id == MEI)
                         .values(external_user_id=MEI_CREATOR))
        stats = apply_pending(world)
        assert (stats.applied, stats.rejected) == (2, 1)
        ie = schema.inbound_events
        with world.connect() as conn:
            errors = dict(conn.execute(sa.select(ie.c.event_id, ie.c.error)).all())
            subscribers = conn.execute(sa.select(schema.subscribers.c.character_id)).scalars()
            assert sorted(subscribers) == [CHAR, MEI]  # Mei's fan from evt_2, Aiko's from evt_3
        assert errors == {"evt_1": "event is for another Fanvue creator than the character's "
                                   "account", "evt_2": None, "evt_3": None}
        # From now on the service knows it too: refused at the door, nothing stored.
        late = svc.fanvue(_for(AIKO_CREATOR, "evt_4"), character=MEI)
        assert late.status_code == 403 and _inbound_count(world) == 3
    finally:
        svc.close()
