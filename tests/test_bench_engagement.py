"""The engagement read-back harness (benchmarks/engagement_readback.py) end to end, small: three
characters with 30 days of posts, the sandbox in its own process, the real read code. Its
speed is not checked here; that its numbers add up is."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("tiktok", "instagram", "youtube")


def test_read_back_counts_add_up(monkeypatch: pytest.MonkeyPatch, pg_server_url: str,
                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not installed, as `make bench`
    harness = importlib.import_module("benchmarks.engagement_readback")
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")
    status = harness.main(["--characters", "3", "--server-url", pg_server_url,
                           "--docs", str(docs)])
    out = capsys.readouterr().out
    start = out.index("\n{\n") + 1  # the result (progress lines come before it)
    result = json.loads(out[start:out.index("\n}\n", start) + 2])
    assert status == 0 and result["passed"], result["verdicts"]
    catch_up, steady = result["catch_up"], result["steady"]

    # Catch-up: every post of the 30 days (4 a day, 3 characters) is due and read once.
    assert result["world"]["catch_up_posts"] == 3 * 3 * 4 * 30
    assert catch_up["due"] == catch_up["snapshots"] == {p: 360 for p in PLATFORMS}
    # Steady day: each post crosses 6 ages in its 30 days, so 4 posts a day make 24 readings a
    # day per account, each read once, none left due after its round.
    assert steady["due"] == steady["snapshots"] == steady["expected"] \
        == {p: 3 * 24 for p in PLATFORMS}
    for s in (catch_up, steady):
        assert s["stored"] == sum(s["due"].values())
        assert s["checks"]["readings"] == s["stored"]
        assert s["checks"]["read_twice"] == s["checks"]["missed"] == 0
        assert s["checks"]["left_due"] == s["due_twice"] == 0
        assert s["followers_read"] == {p: 3 for p in PLATFORMS}  # once per account and day
        for p in PLATFORMS:
            made = s["journal"][p]["posts"] + s["journal"][p]["followers"]
            assert made == s["requests_counted"][p] >= s["minimum"][p] > 0
            assert s["journal"][p]["refused"] == 0
        # YouTube units: the app's ledger, the sandbox's count and the calls made agree.
        youtube = s["journal"]["youtube"]["posts"] + s["journal"]["youtube"]["followers"]
        assert s["units"]["ledger"] == s["units"]["sandbox"] == youtube
    # Batching: 120 posts per account at once is 6 TikTok calls (20 ids), 3 YouTube (50), 120
    # Instagram (one each), plus one follower read per account.
    assert catch_up["minimum"] == {"tiktok": 3 * 7, "youtube": 3 * 4, "instagram": 3 * 121}
    assert catch_up["units"]["ledger"] == 3 * 4
    assert result["ages_read_twice"] == 0

    text = docs.read_text()
    assert "kept as it is" in text and text.count(harness.HEADING) == 1
    assert "| catch-up | tiktok | 360 | 360 | 21 (3 follower reads) | 21 | 1.00 |" in text
    assert result["line"].startswith("engagement_readback: 3 characters, 1,080 posts;")
    assert out.strip().splitlines()[-1] == result["line"]
