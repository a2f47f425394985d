"""The metrics scrape harness (benchmarks/metrics_scrape.py) end to end, small: three
characters, five days, three steady scrapes of the real `waifugen metrics serve`. Its speed
is not checked here; that every section answered and the endpoint reported the runs and post
attempts the harness seeded, and that it writes its own section, is."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_harness_scrapes_and_reports(monkeypatch: pytest.MonkeyPatch, pg_server_url: str,
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not installed, as `make bench`
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    harness = importlib.import_module("benchmarks.metrics_scrape")
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")
    result = harness.run(3, 5, 3, 10, pg_server_url, progress=lambda _: None)
    base, full = result.base, result.full
    assert base.failed_sections == full.failed_sections == []
    assert full.runs == full.runs_reported == 30 and base.runs == base.runs_reported == 0
    assert full.rows["post_attempts"] > full.rows["social_posts"] // 2
    assert full.attempts_reported == full.rows["post_attempts"]
    assert base.attempts_reported == base.rows["post_attempts"] == 0
    assert len(full.steady) == len(base.steady) == 3
    assert full.samples > base.samples > 0
    verdicts = result.verdicts()
    assert verdicts["no section failed"] and verdicts["runs and attempts as seeded"]

    harness.write_section(harness.render(result, "today", "python -m benchmarks "
                                         "metrics_scrape --characters 3"), harness.HEADING,
                          docs=docs)
    text = docs.read_text()
    assert "## Storage: other section\n\nkept as it is" in text
    assert "## Metrics scrape (`python -m benchmarks metrics_scrape --characters 3`)" in text
    assert "| Dagster runs in the window | 30 |" in text
    assert capsys.readouterr().out == ""
