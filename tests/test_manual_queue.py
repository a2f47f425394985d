"""The manual-send queue (OnlyFans, Fansly): CSV export and mark-sent, on a real PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.subscribers.manual_queue import (
    EXPORT_COLUMNS,
    NotQueued,
    export_csv,
    mark_sent,
    spreadsheet_safe,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def insert(conn: sa.Connection, table: sa.Table, **values: Any) -> int:
    return int(conn.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one())


@pytest.fixture
def queue(engine: sa.Engine) -> dict[str, int]:
    """Two characters; messages in several states on OnlyFans, Fansly and Fanvue."""
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        for slug in ("aiko-tanaka", "mei-lin"):
            conn.execute(sa.insert(schema.characters).values(
                id=slug, name=slug, age=25, timezone="UTC"))
        seq = insert(conn, schema.dm_sequences, key="default/standard/welcome@1",
                     tier="standard", definition={"steps": []})

        def sub(name: str, character: str, platform: str, **extra: Any) -> int:
            return insert(conn, schema.subscribers, character_id=character, platform=platform,
                          external_id=f"ext-{name}", handle=name, **extra)

        of = sub("ken", "aiko-tanaka", "onlyfans")
        fa = sub("lea", "mei-lin", "fansly")
        fv = sub("tom", "aiko-tanaka", "fanvue")
        gone = sub("zed", "aiko-tanaka", "onlyfans", opted_out_at=T0)

        def msg(name: str, subscriber: int, step: int, state: str, due: dt.datetime,
                **extra: Any) -> None:
            ids[name] = insert(conn, schema.dm_messages, subscriber_id=subscriber,
                               sequence_id=seq, step=step, state=state, due_at=due,
                               text=f"text of {name}, with a comma", **extra)

        msg("of0", of, 0, "queued_manual", T0 + dt.timedelta(hours=2), variant="a")
        msg("fa0", fa, 0, "queued_manual", T0 + dt.timedelta(hours=1))
        msg("of1", of, 1, "planned", T0)
        msg("of2", of, 2, "sent", T0, sent_at=T0)
        msg("fv0", fv, 0, "queued_manual", T0)  # wrong platform for the manual queue
        msg("zed0", gone, 0, "queued_manual", T0)  # opted out since it was queued
    return ids


def exported(engine: sa.Engine, character: str | None = None) -> list[dict[str, str]]:
    out = io.StringIO()
    export_csv(engine, out, character)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_export_lists_due_manual_messages_only(engine: sa.Engine,
                                               queue: dict[str, int]) -> None:
    rows = exported(engine)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert rows == [
        {"message_id": str(queue["fa0"]), "character": "mei-lin", "platform": "fansly",
         "subscriber_handle": "lea", "external_id": "ext-lea", "step": "0", "variant": "",
         "due_at": "2026-11-25T11:00:00+00:00", "text": "text of fa0, with a comma"},
        {"message_id": str(queue["of0"]), "character": "aiko-tanaka", "platform": "onlyfans",
         "subscriber_handle": "ken", "external_id": "ext-ken", "step": "0", "variant": "a",
         "due_at": "2026-11-25T12:00:00+00:00", "text": "text of of0, with a comma"},
    ]
    assert [r["message_id"] for r in exported(engine, "aiko-tanaka")] == [str(queue["of0"])]
    # Read-only: a second export is the same.
    assert exported(engine) == rows


def states(engine: sa.Engine) -> dict[int, tuple[str, dt.datetime | None]]:
    m = schema.dm_messages
    with engine.connect() as conn:
        return {r.id: (r.state, r.sent_at) for r in conn.execute(
            sa.select(m.c.id, m.c.state, m.c.sent_at))}


def test_mark_sent_moves_queued_messages(engine: sa.Engine, queue: dict[str, int]) -> None:
    later = T0 + dt.timedelta(hours=3)
    assert mark_sent(engine, [queue["of0"], queue["fa0"], queue["of0"]], now=later) == 2
    after = states(engine)
    assert after[queue["of0"]] == ("sent", later) and after[queue["fa0"]] == ("sent", later)
    assert exported(engine) == []
    with engine.connect() as conn:
        last = dict(conn.execute(sa.select(schema.subscribers.c.handle,
                                           schema.subscribers.c.last_outbound_at)).all())
    assert last["ken"] == later and last["lea"] == later and last["tom"] is None


def test_mark_sent_refuses_and_names_bad_ids(engine: sa.Engine, queue: dict[str, int]) -> None:
    before = states(engine)
    with pytest.raises(NotQueued) as info:
        mark_sent(engine, [queue["of0"], queue["of1"], queue["of2"], queue["fv0"], 999999])
    assert info.value.problems == {
        queue["of1"]: "state is planned, not queued_manual",
        queue["of2"]: "state is sent, not queued_manual",
        queue["fv0"]: "fanvue messages are sent automatically",
        999999: "no such message",
    }
    assert "999999: no such message" in str(info.value)
    assert states(engine) == before  # all or none: of0 was not marked either
    assert mark_sent(engine, []) == 0


def _cli(*args: str, db_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_export_and_mark_sent(engine: sa.Engine, db_url: str, queue: dict[str, int],
                                  tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = _cli("dms", "export", db_url=db_url, home=home)
    assert out.returncode == 0, out.stderr
    assert [r["message_id"] for r in csv.DictReader(io.StringIO(out.stdout))] == [
        str(queue["fa0"]), str(queue["of0"])]
    assert "2 message(s) to send by hand" in out.stderr

    target = tmp_path / "queue.csv"
    to_file = _cli("dms", "export", "--character", "mei-lin", "--output", str(target),
                   db_url=db_url, home=home)
    assert to_file.returncode == 0, to_file.stderr
    assert [r["message_id"] for r in csv.DictReader(target.open())] == [str(queue["fa0"])]

    refused = _cli("dms", "mark-sent", str(queue["fa0"]), str(queue["of1"]), db_url=db_url,
                   home=home)
    assert refused.returncode == 1
    assert f"{queue['of1']}: state is planned, not queued_manual" in refused.stderr
    done = _cli("dms", "mark-sent", str(queue["fa0"]), db_url=db_url, home=home)
    assert done.returncode == 0 and "1 message(s) marked sent" in done.stdout
    assert states(engine)[queue["fa0"]][0] == "sent"


# --- CSV injection: the export is opened in a spreadsheet -------------------------------------

DANGEROUS = ["=1+1", "-2+3+cmd|' /C calc'!A0", "+SUM(A1:A2)", "@SUM(A1)", "\tTAB", "\rCR",
             '=HYPERLINK("http://x","y")']


def test_spreadsheet_safe_prefixes_formula_starts_only() -> None:
    for value in DANGEROUS:
        assert spreadsheet_safe(value) == "'" + value
    for value in ("ken", "", "a=b", " =1", "'=1", "2026-11-25T10:00:00+00:00", "1-2"):
        assert spreadsheet_safe(value) == value
    assert spreadsheet_safe(-5) == -5  # numbers are not text cells


def test_cli_export_neutralises_formulas_in_every_text_cell(engine: sa.Engine, db_url: str,
                                                           tmp_path: Path) -> None:
    """Imported handles such as `=1+1` used to be exported unchanged."""
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(id="aiko-tanaka", name="Aiko", age=25,
                                                         timezone="UTC"))
        seq = insert(conn, schema.dm_sequences, key="default/standard/welcome@1",
                     tier="standard", definition={"steps": []})
        for n, value in enumerate(DANGEROUS):
            sub = insert(conn, schema.subscribers, character_id="aiko-tanaka",
                         platform="onlyfans", external_id=value, handle=value)
            insert(conn, schema.dm_messages, subscriber_id=sub, sequence_id=seq, step=0,
                   state="queued_manual", due_at=T0 + dt.timedelta(minutes=n), text=value,
                   variant=value)

    def snapshot() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(schema.dm_messages)
                                                   .order_by(schema.dm_messages.c.id))]

    before = snapshot()
    target = tmp_path / "queue.csv"
    out = _cli("dms", "export", "--output", str(target), db_url=db_url, home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    raw = target.read_bytes()
    assert raw.startswith(b"message_id,character,platform,") and raw.count(b"\r\n") >= 8
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))  # the standard (excel) dialect reads it back
    assert [(r["subscriber_handle"], r["external_id"], r["variant"], r["text"])
            for r in rows] == [("'" + v,) * 4 for v in DANGEROUS]
    assert all(r["character"] == "aiko-tanaka" and r["step"] == "0" for r in rows)
    assert snapshot() == before  # read-only
