"""The one alert sender (core/alerts.py) and the one external-id learner (core/accounts.py),
on a real PostgreSQL; the sender raced by two real processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

from waifugen_assets.core import alerts, schema
from waifugen_assets.core.accounts import learn_external_id, store_external_id

LOG = logging.getLogger(__name__)


def _rows(engine: sa.Engine) -> list[sa.Row]:
    a = schema.alerts
    with engine.connect() as conn:
        return list(conn.execute(sa.select(a.c.key, a.c.text, a.c.sent_at).order_by(a.c.id)))


def test_an_alert_is_recorded_once_per_key(engine: sa.Engine) -> None:
    assert alerts.raise_alert(engine, "post_failed:1", "reel 1 failed")
    assert not alerts.raise_alert(engine, "post_failed:1", "reel 1 failed again")
    assert [(r.key, r.text) for r in _rows(engine)] == [("post_failed:1", "reel 1 failed")]


def test_a_failed_send_stays_queued_and_goes_out_next_time(engine: sa.Engine) -> None:
    alerts.raise_alert(engine, "k1", "one")
    alerts.raise_alert(engine, "k2", "two")
    assert alerts.send_pending(engine, None, LOG) == "2 queued: Telegram not configured"

    def broken(text: str) -> None:
        raise RuntimeError("telegram down")

    assert alerts.send_pending(engine, broken, LOG).startswith("0 sent")
    assert all(r.sent_at is None for r in _rows(engine))
    sent: list[str] = []
    assert alerts.send_pending(engine, sent.append, LOG).startswith("2 sent")
    assert sent == ["one", "two"]
    assert alerts.send_pending(engine, sent.append, LOG) == "none pending"
    assert sent == ["one", "two"]


def test_two_processes_sending_together_send_each_alert_once(engine: sa.Engine, db_url: str,
                                                             tmp_path: Path) -> None:
    for i in range(40):
        alerts.raise_alert(engine, f"race:{i}", f"alert {i}")
    out = tmp_path / "sent.txt"
    code = textwrap.dedent(f"""
        import logging, os, sys, time
        import sqlalchemy as sa
        from waifugen_assets.core import alerts
        engine = sa.create_engine({db_url!r})
        def send(text):
            with open({str(out)!r}, "a") as f:
                f.write(text + "\\n")
            time.sleep(0.01)  # a slow Telegram: the other process is sending meanwhile
        sys.stdin.readline()  # both start together
        print(alerts.send_pending(engine, send, logging.getLogger()))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), results
    lines = out.read_text().splitlines()
    assert sorted(lines) == sorted(f"alert {i}" for i in range(40))  # each once, none lost
    assert all(r.sent_at is not None for r in _rows(engine))


def test_the_external_id_is_asked_once_then_kept(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(
            id="ana", name="Ana", persona="p", age=25, timezone="UTC", slots=["09:00"]))
        account_id = conn.execute(sa.insert(schema.platform_accounts).values(
            character_id="ana", platform="instagram", account_ref="@ana")
            .returning(schema.platform_accounts.c.id)).scalar_one()
    pa = schema.platform_accounts

    def account() -> dict:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(pa).where(pa.c.id == account_id)).mappings().one())

    asked: list[int] = []

    def lookup() -> str:
        asked.append(1)
        return "1784"

    assert learn_external_id(engine, account(), lookup) == "1784"
    assert learn_external_id(engine, account(), lookup) == "1784"
    assert asked == [1]  # the platform was asked once
    assert store_external_id(engine, account(), "9999") == "9999"  # a new bot token, say
    assert account()["external_user_id"] == "9999"
