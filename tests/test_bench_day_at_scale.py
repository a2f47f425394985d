"""The day-at-scale harness end to end, small: 4 characters against an A2E budget cut to 12
requests an hour (the pressure 32 characters put on 100), through the real schedule, sensors
and jobs with the injected clock. What it verifies is checked here; its speed is not."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_a_day_under_a_tight_a2e_budget(monkeypatch: pytest.MonkeyPatch, pg_server_url: str,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    harness = importlib.import_module("benchmarks.day_at_scale")
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")
    status = harness.main(["--characters", "4", "--requests-per-hour", "12",
                           "--server-url", pg_server_url, "--docs", str(docs)])
    out = capsys.readouterr().out
    start = out.index("\n{\n") + 1  # the result (progress lines come before it)
    result = json.loads(out[start:out.index("\n}\n", start) + 2])
    assert status == 0
    assert result["reels"] == 16 and result["posted_twice"] == 0
    assert result["a2e_refused"] == 0  # the budget was tracked, never discovered by a 429
    # Every reel was made before its slot, and every post the quotas allowed went out once.
    assert result["ready_before_slot"] == result["reels"] == result["branded"]
    assert result["published_once"] == result["posts_allowed"] > 0
    assert out.strip().splitlines()[-1].startswith("day_at_scale: 4 characters, 16 reels, ")
    section = docs.read_text()
    assert "## Day at scale: 4 characters" in section and "kept as it is" in section
