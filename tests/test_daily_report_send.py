"""The daily report is sent exactly once per date, part by part, against the sandbox Telegram
over real HTTP: a rerun sends nothing; a lost answer is reconciled by finding the message, not
by sending it again; a message that never arrived stays `unknown` until an operator resends
it; a refused send is retried by the next run; two processes at once send each part once; a
process that dies mid-send leaves nothing sent twice. What reached the chat is counted with
the sandbox's own listing (`GET /telegram/_control/sent`)."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from resources.telegram import SANDBOX_BOT_TOKEN, TelegramClient, telegram_limiters
from sandbox.systems.telegram_entities import parse
from waifugen_assets.core import schema
from waifugen_assets.reporting.report_chart import render_chart
from waifugen_assets.reporting.report_data import History
from waifugen_assets.reporting.report_send import (
    SCAN_IDS,
    PartOutcome,
    Report,
    candidate_ids,
    deliver,
    deliveries,
)

DAY = dt.date(2026, 12, 4)
rm = schema.report_messages


@pytest.fixture(scope="module")
def png() -> bytes:
    days = tuple(DAY - dt.timedelta(days=13 - i) for i in range(14))
    return render_chart(History(days, (3,) * 14, {"tiktok": (2,) * 14}, (100,) * 14,
                                (645.0,) * 14), "waifugen daily report test")


def report(png: bytes, day: dt.date = DAY, tag: str = "") -> Report:
    return Report(day, png, caption=f"<b>Report {day}</b>{tag}\nCredits: 1,234 &amp; more",
                  text=f"<b>Report {day}</b>{tag}\n\nEverything else: <i>42</i>")


@pytest.fixture
def chat(sandbox: Any) -> str:
    """A group chat of its own (the alerts bot is in it): no other test's messages, no
    shared rate limit."""
    chat_id = str(-1_002_000_000_000 - random.randrange(10**9))
    httpx.post(f"{sandbox.url}/telegram/_control/chats",
               json={"chat_id": chat_id, "type": "supergroup", "started": True}
               ).raise_for_status()
    return chat_id


@pytest.fixture
def client(sandbox: Any) -> Iterator[TelegramClient]:
    with TelegramClient(SANDBOX_BOT_TOKEN, f"{sandbox.url}/telegram", timeout=10,
                        limiters=telegram_limiters()) as c:
        yield c


def sent(sandbox: Any, chat_id: str) -> list[dict[str, Any]]:
    """The messages in the chat, in id order (the sandbox's record, not ours)."""
    listing = httpx.get(f"{sandbox.url}/telegram/_control/sent",
                        params={"chat_id": chat_id}).json()
    return sorted(listing, key=lambda m: m["message_id"])


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [m["kind"] for m in messages]


def shown(html_text: str) -> str:
    return parse(html_text, "HTML").text


def by_part(outcomes: list[PartOutcome]) -> dict[str, PartOutcome]:
    return {o.part: o for o in outcomes}


def test_sends_once_and_a_rerun_sends_nothing(engine: sa.Engine, sandbox: Any, chat: str,
                                              client: TelegramClient, png: bytes) -> None:
    r = report(png)
    first = by_part(deliver(engine, client, chat, r))
    assert [first[p].action for p in ("photo", "text")] == ["sent", "sent"]
    messages = sent(sandbox, chat)
    assert kinds(messages) == ["photo", "text"]  # the photo first
    photo, text = messages
    assert photo["caption"] == shown(r.caption) and text["text"] == shown(r.text)
    assert (first["photo"].message_id, first["text"].message_id) == (photo["message_id"],
                                                                      text["message_id"])
    with engine.connect() as conn:
        rows = deliveries(conn, DAY)
    assert {p: (row["state"], row["remote_message_id"], row["attempts"], row["body"])
            for p, row in rows.items()} == {
        "photo": ("sent", photo["message_id"], 1, r.caption),
        "text": ("sent", text["message_id"], 1, r.text)}
    assert all(row["sent_at"] is not None and row["chat_id"] == chat for row in rows.values())

    # Rerun, even with the figures changed meanwhile: nothing more is sent.
    again = by_part(deliver(engine, client, chat, report(png, tag=" (rebuilt)")))
    assert [again[p].action for p in ("photo", "text")] == ["already_sent", "already_sent"]
    assert sent(sandbox, chat) == messages


def test_lost_answer_is_reconciled_without_a_resend(engine: sa.Engine, sandbox: Any, chat: str,
                                                     client: TelegramClient, png: bytes) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    deliver(engine, client, chat, report(png, yesterday))  # the chat's known messages
    # Telegram posts the photo, and the answer is lost on the way back.
    sandbox.add_fault(system="telegram", route="/bot*/sendPhoto", action="drop", phase="after",
                      times=1)
    first = by_part(deliver(engine, client, chat, report(png)))
    assert (first["photo"].action, first["photo"].state) == ("unknown", "unknown")
    assert "may not have reached the chat" in first["photo"].detail
    assert first["text"].action == "sent"  # the message still goes, after the photo
    messages = sent(sandbox, chat)
    assert kinds(messages) == ["photo", "text", "photo", "text"]
    lost_photo = messages[2]

    second = by_part(deliver(engine, client, chat, report(png, tag=" (rebuilt)")))
    assert second["photo"].action == "reconciled"
    assert second["photo"].message_id == lost_photo["message_id"]
    assert second["text"].action == "already_sent"
    after = sent(sandbox, chat)
    assert after == messages  # nothing sent, nothing changed (the edit was "not modified")
    with engine.connect() as conn:
        photo = deliveries(conn, DAY)["photo"]
    assert (photo["state"], photo["remote_message_id"], photo["attempts"]) == (
        "sent", lost_photo["message_id"], 1)
    assert photo["body"] == report(png).caption  # what was sent, not the rebuilt one


def test_never_arrived_stays_unknown_until_resent(engine: sa.Engine, sandbox: Any, chat: str,
                                                  client: TelegramClient, png: bytes) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    deliver(engine, client, chat, report(png, yesterday))
    # The connection drops before Telegram acts: the client cannot tell it from a lost answer.
    sandbox.add_fault(system="telegram", route="/bot*/sendPhoto", action="drop",
                      phase="before", times=1)
    deliver(engine, client, chat, report(png))
    assert kinds(sent(sandbox, chat)) == ["photo", "text", "text"]
    since = sandbox.journal("telegram")[-1]["id"]

    second = by_part(deliver(engine, client, chat, report(png)))
    photo = second["photo"]
    assert (photo.action, photo.state) == ("unknown", "unknown")
    assert photo.detail == (
        "the photo of 2026-12-04 may not have reached the chat; check it and run "
        "`waifugen report --date 2026-12-04 --send --resend-unknown`")
    # It searched the ids after yesterday's report (skipping today's known message) by
    # editing captions, and sent nothing.
    calls = [e["path"].rsplit("/", 1)[-1] for e in sandbox.journal("telegram", since=since)]
    assert calls == ["editMessageCaption"] * (SCAN_IDS - 1)
    assert kinds(sent(sandbox, chat)) == ["photo", "text", "text"]

    resent = by_part(deliver(engine, client, chat, report(png), resend_unknown=True))
    assert resent["photo"].action == "sent"
    assert resent["text"].action == "already_sent"
    assert kinds(sent(sandbox, chat)) == ["photo", "text", "text", "photo"]
    with engine.connect() as conn:
        row = deliveries(conn, DAY)["photo"]
    assert (row["state"], row["attempts"]) == ("sent", 2)


@pytest.mark.parametrize("fault", [
    {"action": "status", "status": 400, "message": "Bad Request: wrong file identifier"},
    {"action": "status", "status": 503},
    {"action": "rate_limit", "retry_after": 3600},  # longer than the client waits
], ids=["refused", "unavailable", "rate-limited"])
def test_definite_failure_is_retried_by_the_next_run(engine: sa.Engine, sandbox: Any,
                                                     chat: str, client: TelegramClient,
                                                     png: bytes, fault: dict) -> None:
    sandbox.add_fault(system="telegram", route="/bot*/sendPhoto", times=1, **fault)
    first = by_part(deliver(engine, client, chat, report(png)))
    assert (first["photo"].action, first["photo"].state) == ("failed", "failed")
    assert "the next run sends it again" in first["photo"].detail
    assert SANDBOX_BOT_TOKEN not in first["photo"].detail
    assert kinds(sent(sandbox, chat)) == ["text"]
    with engine.connect() as conn:
        row = deliveries(conn, DAY)["photo"]
    assert row["state"] == "failed" and row["error"] and SANDBOX_BOT_TOKEN not in row["error"]

    second = by_part(deliver(engine, client, chat, report(png)))
    assert second["photo"].action == "sent" and second["text"].action == "already_sent"
    assert kinds(sent(sandbox, chat)) == ["text", "photo"]
    with engine.connect() as conn:
        row = deliveries(conn, DAY)["photo"]
    assert (row["state"], row["attempts"], row["error"]) == ("sent", 2, None)


# --- other processes ---------------------------------------------------------------------------

def _deliver_in_process(db_url: str, base: str, chat: str, report_: Report,
                        start: Any, results: Any) -> None:
    """A process of its own: its own engine, client and rate limiters."""
    engine = sa.create_engine(db_url)
    with TelegramClient(SANDBOX_BOT_TOKEN, base, timeout=10,
                        limiters=telegram_limiters()) as c:
        start.wait()
        outcomes = deliver(engine, c, chat, report_)
    results.put({o.part: o.action for o in outcomes})


def test_two_processes_send_each_part_once(engine: sa.Engine, db_url: str, sandbox: Any,
                                           chat: str, png: bytes) -> None:
    # The sends take a second, so the second process comes while the first is sending.
    sandbox.add_fault(system="telegram", route="/bot*/sendPhoto", action="delay", delay=1.0,
                      times=1)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_deliver_in_process,
                         args=(db_url, f"{sandbox.url}/telegram", chat, report(png), start,
                               results)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert kinds(sent(sandbox, chat)) == ["photo", "text"]
    assert {"photo": "sent", "text": "sent"} in outcomes
    other = next(o for o in outcomes if o != {"photo": "sent", "text": "sent"})
    assert set(other.values()) <= {"busy", "already_sent"}


class _DiesAfterSending(TelegramClient):
    """The real client; the process dies as the photo's answer arrives (before it is
    recorded), as a killed worker would."""

    def send_photo(self, *args: Any, **kwargs: Any) -> int:
        super().send_photo(*args, **kwargs)
        os._exit(17)


def _die_mid_send(db_url: str, base: str, chat: str, report_: Report) -> None:
    engine = sa.create_engine(db_url)
    client = _DiesAfterSending(SANDBOX_BOT_TOKEN, base, timeout=10,
                               limiters=telegram_limiters())
    deliver(engine, client, chat, report_)


def test_a_run_that_died_mid_send_is_reconciled(engine: sa.Engine, db_url: str, sandbox: Any,
                                                chat: str, client: TelegramClient,
                                                png: bytes) -> None:
    deliver(engine, client, chat, report(png, DAY - dt.timedelta(days=1)))
    proc = multiprocessing.get_context("spawn").Process(
        target=_die_mid_send, args=(db_url, f"{sandbox.url}/telegram", chat, report(png)))
    proc.start()
    proc.join(timeout=120)
    assert proc.exitcode == 17
    with engine.connect() as conn:
        assert deliveries(conn, DAY)["photo"]["state"] == "sending"  # its lock died with it
    assert kinds(sent(sandbox, chat)) == ["photo", "text", "photo"]

    outcomes = by_part(deliver(engine, client, chat, report(png)))
    assert outcomes["photo"].action == "reconciled"
    assert outcomes["text"].action == "sent"
    assert kinds(sent(sandbox, chat)) == ["photo", "text", "photo", "text"]


def test_candidates_follow_the_chat_history(engine: sa.Engine) -> None:
    """Where a part may be: after the newest message the chat had before the attempt,
    skipping known ids; before the first one it got after, when it had none before."""
    t0 = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)

    def row(day: dt.date, part: str, state: str, mid: int | None, at: dt.datetime) -> dict:
        return {"report_date": day, "part": part, "chat_id": "-5", "state": state,
                "body": "x", "remote_message_id": mid, "updated_at": at,
                "sent_at": at if state == "sent" else None}

    with engine.begin() as conn:
        conn.execute(sa.insert(rm), [
            row(DAY - dt.timedelta(days=1), "photo", "sent", 7, t0 - dt.timedelta(days=1)),
            row(DAY - dt.timedelta(days=1), "text", "sent", 8, t0 - dt.timedelta(days=1)),
            row(DAY, "photo", "unknown", None, t0),
            row(DAY, "text", "sent", 10, t0 + dt.timedelta(seconds=2)),
        ])
        rows = deliveries(conn, DAY)
        assert candidate_ids(conn, rows["photo"], scan=5) == [9, 11, 12, 13]
        conn.execute(sa.delete(rm).where(rm.c.report_date < DAY))
        # Nothing known before the attempt: look below the message that came after it.
        assert candidate_ids(conn, rows["photo"], scan=5) == [9, 8, 7, 6, 5]
        conn.execute(sa.update(rm).where(rm.c.part == "text").values(remote_message_id=3))
        assert candidate_ids(conn, rows["photo"], scan=5) == [2, 1]
        conn.execute(sa.delete(rm).where(rm.c.part == "text"))
        assert candidate_ids(conn, rows["photo"], scan=5) == []


def test_an_edit_that_changes_another_message_stops_and_says_so(
        engine: sa.Engine, sandbox: Any, chat: str, client: TelegramClient,
        png: bytes) -> None:
    """The caveat of editing as a probe: the lost text never arrived, and the bot's next
    message in the chat (an alert) is the first candidate. Editing it changes it; the scan
    stops there, the part counts as in the chat (that message now shows it) and the outcome
    names the message so an operator can look."""
    sandbox.add_fault(system="telegram", route="/bot*/sendMessage", action="drop",
                      phase="before", times=1)
    first = by_part(deliver(engine, client, chat, report(png)))
    assert (first["photo"].action, first["text"].action) == ("sent", "unknown")
    alert = client.send_message(chat, "waifugen budget alert: 80% of the A2E credits")
    again = by_part(deliver(engine, client, chat, report(png)))
    text = again["text"]
    assert (text.action, text.state, text.message_id) == ("overwrote", "sent", alert)
    assert f"overwrote message {alert}" in text.detail
    messages = sent(sandbox, chat)
    assert kinds(messages) == ["photo", "text"]  # nothing new was sent
    assert messages[1]["text"] == shown(report(png).text)
    with engine.connect() as conn:
        row = deliveries(conn, DAY)["text"]
    assert (row["state"], row["remote_message_id"]) == ("sent", alert)
    assert row["error"] == text.detail
