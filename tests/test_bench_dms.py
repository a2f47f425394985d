"""The DM benchmark harnesses (benchmarks/dm_due.py, benchmarks/dm_send.py) run end to end at a
tiny size against the test server and write their sections; the numbers are not checked here
(benchmarks are not timed tests), what they verify is."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _harness(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """benchmarks/ is not an installed package: import it from the checkout, as `make bench`."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(f"benchmarks.{name}")


def _result(out: str) -> dict:
    return json.loads(out[out.index("{"):])


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")
    return docs


def test_due_step_harness_compares_plan_due_with_a_full_scan(
        monkeypatch: pytest.MonkeyPatch, pg_server_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    dm_due = _harness(monkeypatch, "dm_due")
    docs = _docs(tmp_path)
    status = dm_due.main(["--subscribers", "3000", "--runs", "1", "--server-url",
                          pg_server_url, "--docs", str(docs)])
    result = _result(capsys.readouterr().out)
    assert status == 0 and result["passed"]
    assert result["same_result"] == {"cold": True, "steady": True}
    assert result["index_used"]  # plan_due reads subscribers through its partial index
    rows = {(r["case"], r["method"]): r for r in result["rows"]}
    assert rows[("cold", "plan_due")]["rows"] > rows[("steady", "plan_due")]["rows"]
    assert result["data"]["subscribers"] == 3000
    text = docs.read_text()
    assert "kept as it is" in text and text.count(dm_due.HEADING) == 1
    dm_due.main(["--subscribers", "2000", "--runs", "1", "--server-url", pg_server_url,
                 "--docs", str(docs)])
    again = docs.read_text()
    assert again.count(dm_due.HEADING) == 1 and "2,000 subscribers" in again


def test_send_harness_sends_each_message_once_within_the_limits(
        monkeypatch: pytest.MonkeyPatch, pg_server_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    dm_send = _harness(monkeypatch, "dm_send")
    docs = _docs(tmp_path)
    # 40 Telegram messages cross one 30-a-second window: the pacing is exercised.
    status = dm_send.main(["--telegram", "40", "--fanvue", "5", "--headroom", "10",
                           "--server-url", pg_server_url, "--docs", str(docs)])
    result = _result(capsys.readouterr().out)
    assert status == 0 and result["passed"]
    telegram, fanvue = result["rows"]
    assert (telegram["platform"], telegram["messages"], telegram["received"]) == (
        "telegram", 40, 40)
    assert telegram["refused_429"] == 0 and telegram["seconds"] >= 1.0  # paced, not refused
    assert fanvue["exactly_once"] and fanvue["db_states"] == {"sent": 5}
    assert result["headroom"]["pipeline"]["exactly_once"]
    assert result["headroom"]["bare_client"]["messages"] == 10
    section = docs.read_text()
    assert "kept as it is" in section and section.count(dm_send.HEADING) == 1
    assert "| telegram | 30 per 1 s | 40 |" in section
