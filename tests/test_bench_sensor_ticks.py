"""The sensor-ticks harness end to end, small: 6 characters and 40 days of history through the
real sensors and schedules. What it verifies is checked here (the same work asked for at every
point, every statement able to use an index); its speed is not."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ticks_on_a_small_history(monkeypatch: pytest.MonkeyPatch, pg_server_url: str,
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    harness = importlib.import_module("benchmarks.sensor_ticks")
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")
    status = harness.main(["--characters", "6", "--history-days", "40", "--repeat", "2",
                           "--server-url", pg_server_url, "--docs", str(docs)])
    out = capsys.readouterr().out
    start = out.index("\n{\n") + 1  # the result (progress lines come before it)
    result = json.loads(out[start:out.index("\n}\n", start) + 2])
    assert status == 0
    assert [p["days"] for p in result["points"]] == [1, 30, 40]
    assert result["seq_scans"] == [] and all(result["same_work"].values())
    first, last = result["points"][0], result["points"][-1]
    # Today's work, the same at every point: renders, posts, DM runs and one poll run.
    assert first["requests"] == last["requests"]
    assert last["requests"]["generation"] > 0 and last["requests"]["posting"] > 0
    assert last["requests"]["dms"] >= 2  # some characters' DM work + the poll run
    assert last["requests"]["daily_plans"] == 6 and last["requests"]["roster"] == 0
    assert 0 < last["requests"]["engagement"] <= 6  # characters with a reading due
    assert 0 < last["requests"]["weekly_premium"] <= 6  # those past the launch phase
    # One comment_poll run for every character's due reads, a reply run where one is due.
    assert 1 < last["requests"]["comments"] <= 1 + 6
    # History was added: four reels a day per character, their posts, subscribers, DMs.
    assert last["rows"]["reels"] == 6 * 4 * 41 and first["rows"]["reels"] == 6 * 4 * 2
    assert last["rows"]["dm_messages"] > first["rows"]["dm_messages"] > 0
    assert out.strip().splitlines()[-1].startswith(
        "sensor_ticks: 6 characters, 40 days of history (984 reels, ")
    section = docs.read_text()
    assert "## Sensor ticks" in section and "kept as it is" in section
    assert "ix_reels_awaiting_post" in section  # the posting sensor's plan
