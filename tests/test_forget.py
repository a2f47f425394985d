"""Forgetting a subscriber on a real PostgreSQL: personal data gone everywhere, money kept."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.subscribers.events import from_telegram
from waifugen_assets.subscribers.forget import SubscriberNotFound, forget_subscriber
from waifugen_assets.subscribers.inbound import apply_pending, store_events

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CHAT = 987654321
PERSONAL = ("987654321", "kensato_unique", "Kenichi Satoshi", "my secret confession")
BOTS = {"aiko-tanaka": 111, "mei-lin": 222}


def update(update_id: int, *, chat: int = CHAT, text: str | None = None,
           **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": update_id, "date": int(T0.timestamp()) + update_id,
        "chat": {"id": chat, "type": "private"},
        "from": {"id": chat, "first_name": "Kenichi" if chat == CHAT else "Other",
                 "last_name": "Satoshi" if chat == CHAT else "Fan",
                 "username": "kensato_unique" if chat == CHAT else "other_fan"}, **extra}
    if text is not None:
        message["text"] = text
    return {"update_id": update_id, "message": message}


def deliver(engine: sa.Engine, character: str, *updates: dict[str, Any]) -> None:
    events = [from_telegram(u, character, BOTS[character]) for u in updates]
    store_events(engine, [e for e in events if e is not None])


@pytest.fixture
def world(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        for slug in BOTS:
            conn.execute(sa.insert(schema.characters).values(
                id=slug, name=slug, age=25, timezone="UTC"))
    for character in BOTS:
        deliver(engine, character,
                update(1, text="/start c-" + character),
                update(2, text="my secret confession"),
                update(3, successful_payment={"currency": "XTR", "total_amount": 100}),
                update(4, chat=5550001, text="/start"),
                update(5, chat=5550001, text="hello from the other fan"))
    apply_pending(engine)
    s = schema.subscribers
    with engine.begin() as conn:
        conn.execute(s.update().where(s.c.external_id == str(CHAT)).values(
            timezone="Asia/Tokyo", tags=["whale"]))
        seq = conn.execute(sa.insert(schema.dm_sequences).values(
            key="default/standard/welcome@1", tier="standard", definition={})
            .returning(schema.dm_sequences.c.id)).scalar_one()
        for sub_id, ext in conn.execute(sa.select(s.c.id, s.c.external_id)).all():
            conn.execute(sa.insert(schema.dm_messages), [
                {"subscriber_id": sub_id, "sequence_id": seq, "step": 0, "state": "sent",
                 "due_at": T0, "sent_at": T0, "text": f"welcome {ext}"},
                {"subscriber_id": sub_id, "sequence_id": seq, "step": 1, "state": "planned",
                 "due_at": T0 + dt.timedelta(days=1), "sent_at": None,
                 "text": f"day two {ext}"},
            ])
    # An event stored but not applied yet when the person asks to be forgotten.
    deliver(engine, "aiko-tanaka", update(6, text="kensato_unique says hi again"))
    return engine


def dump(engine: sa.Engine, table: sa.Table) -> str:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    return "\n".join(json.dumps(dict(r), default=str, ensure_ascii=False) for r in rows)


def revenue(engine: sa.Engine) -> list[tuple[str, int, str]]:
    r = schema.revenue_events
    with engine.connect() as conn:
        return conn.execute(sa.select(r.c.character_id, r.c.amount_cents, r.c.currency)
                            .order_by(r.c.id)).all()


def test_forget_removes_personal_data_everywhere_and_keeps_revenue(world: sa.Engine) -> None:
    money_before = revenue(world)
    assert len(money_before) == 2
    tables = (schema.subscribers, schema.inbound_events, schema.dm_messages)
    assert any(p in dump(world, t) for p in PERSONAL for t in tables)

    report = forget_subscriber(world, "telegram", str(CHAT), now=T0 + dt.timedelta(days=2))
    assert (report.subscribers, report.characters) == (2, ("aiko-tanaka", "mei-lin"))
    assert report.revenue_events_kept == 2 and report.events == 7 and report.messages == 4

    for table in tables:
        text = dump(world, table)
        for personal in PERSONAL:
            assert personal not in text, (table.name, personal)
    assert revenue(world) == money_before  # aggregates unchanged

    s = schema.subscribers
    with world.connect() as conn:
        forgotten = conn.execute(sa.select(s).where(s.c.forgotten_at.is_not(None))
                                 ).mappings().all()
        other = conn.execute(sa.select(s).where(s.c.external_id == "5550001")).mappings().all()
        msgs = conn.execute(sa.select(schema.dm_messages.c.subscriber_id,
                                      schema.dm_messages.c.step, schema.dm_messages.c.state,
                                      schema.dm_messages.c.text)).all()
    assert len(forgotten) == 2
    for row in forgotten:
        assert row["external_id"].startswith("forgotten:")
        assert (row["handle"], row["display_name"], row["timezone"], row["tags"]) == (
            None, None, None, [])
        assert row["opted_out_at"] == row["forgotten_at"] == T0 + dt.timedelta(days=2)
    assert forgotten[0]["external_id"] != forgotten[1]["external_id"]
    forgotten_ids = {r["id"] for r in forgotten}
    assert {(step, state) for sid, step, state, _ in msgs if sid in forgotten_ids} == {
        (0, "sent"), (1, "skipped")}
    assert all(text is None for sid, _, _, text in msgs if sid in forgotten_ids)

    # The other fan is untouched.
    assert len(other) == 2 and all(r["handle"] == "other_fan" for r in other)
    assert sum(1 for sid, _, _, text in msgs if sid not in forgotten_ids and text) == 4

    # The pending event cannot bring the person back.
    assert apply_pending(world).applied == 0
    with world.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(s)) == 4

    with pytest.raises(SubscriberNotFound, match="no telegram subscriber with id"):
        forget_subscriber(world, "telegram", str(CHAT))


def test_forget_one_character_only(world: sa.Engine) -> None:
    report = forget_subscriber(world, "telegram", str(CHAT), character_id="mei-lin")
    assert report.characters == ("mei-lin",)
    s = schema.subscribers
    with world.connect() as conn:
        left = conn.execute(sa.select(s.c.character_id, s.c.handle)
                            .where(s.c.external_id == str(CHAT))).all()
    assert left == [("aiko-tanaka", "kensato_unique")]
    with pytest.raises(SubscriberNotFound, match="of character mei-lin"):
        forget_subscriber(world, "telegram", str(CHAT), character_id="mei-lin")
    with pytest.raises(SubscriberNotFound):
        forget_subscriber(world, "fanvue", str(CHAT))


def _cli(*args: str, db_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_forget(world: sa.Engine, db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _cli("subscribers", "forget", "telegram", str(CHAT), db_url=db_url, home=home)
    assert done.returncode == 0, done.stderr
    assert "forgot 2 subscriber row(s) (aiko-tanaka, mei-lin)" in done.stdout
    again = _cli("subscribers", "forget", "telegram", str(CHAT), db_url=db_url, home=home)
    assert again.returncode == 1
    assert "error: no telegram subscriber with id '987654321'" in again.stderr
    assert "Traceback" not in again.stderr
