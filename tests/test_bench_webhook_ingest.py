"""The webhook ingest benchmark harness: runs end to end on a tiny load and writes its section.

No timing is asserted (benchmarks are not timed tests): `--target 0` leaves the loss checks."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ingest(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/ is not an installed package: import it from the checkout, as `make bench`."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.webhook_ingest")


def _result(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def test_the_harness_stores_every_event_once_and_writes_its_section(
        ingest: ModuleType, pg_server_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")

    status = ingest.main(["--events", "300", "--runs", "1", "--concurrency", "8",
                          "--target", "0", "--server-url", pg_server_url, "--docs", str(docs)])

    result = _result(capsys)
    assert status == 0 and result["passed"] and result["no_loss"]
    assert result["params"]["duplicate_deliveries"] == 30
    ours, = result["samples"]["ours"]
    baseline, = result["samples"]["baseline"]
    assert ours["requests"] == baseline["requests"] == 330 and ours["events"] == 300
    # Every answer 200; each event said "stored: 1" exactly once, so every duplicate said 0
    # (or overtook its original, which then said 0).
    answers = ours["answers"]
    assert answers["ok"] and answers["non_200"] == 0 and answers["bad_body"] == 0
    assert answers["events_not_counted_once"] == 0 and answers["events_answered"] == 300
    assert answers["first_stored_1"] + answers["raced_duplicates"] == 300
    assert answers["duplicates_stored_0"] + answers["raced_duplicates"] == 30
    # The run's rows, exactly: the (platform, event_id, event_type) set, nothing lost or extra.
    assert ours["rows"] == {"new_rows": 300, "expected": 300, "lost": 0, "unexpected": 0,
                            "ok": True}
    assert ours["alive"] and baseline["alive"] and baseline["answers"]["ok"]
    assert result["summary"]["ours"]["stored_rows"] == [300]
    assert result["summary"]["ours"]["lost"] == 0
    assert result["summary"]["ours"]["events_per_s"] > 0
    assert result["summary"]["baseline"]["events_per_s"] > 0
    check = result["client_check"]
    assert check["client"] == "httpx" and check["answers"]["ok"]
    assert "waifugen webhooks serve --host 127.0.0.1" in result["commands"]["ours"]

    text = docs.read_text()
    assert "## Storage: other section\n\nkept as it is" in text
    section = text[text.index(ingest.HEADING):]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in rows[1:]] == ["| baseline (HTTP only)", "| ours"]
    assert " | 300 | 0 | " in rows[-1]  # new rows stored, lost
    assert "no loss: True" in section and "httpx.AsyncClient" in section

    # Running again replaces the section instead of adding a second one.
    assert ingest.main(["--events", "100", "--runs", "1", "--duplicates", "0",
                        "--no-client-check", "--target", "0", "--server-url", pg_server_url,
                        "--docs", str(docs)]) == 0
    again = docs.read_text()
    assert again.count(ingest.HEADING) == 1 and " | 300 | 0 | " not in again
    assert " | 100 | 0 | " in again and "kept as it is" in again
    assert _result(capsys)["passed"]


def test_every_event_is_sent_and_each_retry_comes_after_its_original(
        ingest: ModuleType) -> None:
    load = ingest.build_load(0, 500, 0.2, "bench-dms")
    firsts = [d for d in load if d.first]
    assert len(firsts) == 500 and len(load) == 600
    assert len({d.key for d in firsts}) == 500
    seen: set[tuple[str, str]] = set()
    for d in load:
        assert d.first == (d.key not in seen)
        seen.add(d.key)
        assert d.raw.endswith(d.body) and d.raw.startswith(f"POST {d.path} HTTP/1.1".encode())
    kinds = {(d.platform, d.event_type) for d in firsts}
    assert kinds == {("fanvue", "subscriber.new"), ("fanvue", "message.received"),
                     ("fanvue", "revenue.tip"), ("telegram", "subscriber.new"),
                     ("telegram", "message.received")}
    # Fresh ids every run.
    assert not {d.key for d in ingest.build_load(1, 500, 0.2, "bench-dms")} & seen


def test_a_lost_or_doubly_stored_event_fails_the_answer_check(ingest: ModuleType) -> None:
    load = ingest.build_load(0, 3, 0.0, "bench-dms")
    load.append(ingest.Delivery(load[0].platform, load[0].event_id, load[0].event_type,
                                load[0].path, load[0].body, dict(load[0].headers), first=False))

    def check(status: list[int], stored: list[int]) -> dict:
        outcome = ingest.Outcome(1.0, status, [json.dumps({"stored": s}).encode()
                                               for s in stored], [0.01] * 4, 0.0)
        return ingest.check_answers(load, outcome, stores=True)

    assert check([200] * 4, [1, 1, 1, 0])["ok"]
    raced = check([200] * 4, [0, 1, 1, 1])
    assert raced["ok"] and raced["raced_duplicates"] == 1
    assert not check([200] * 4, [1, 1, 1, 1])["ok"]  # stored twice
    assert not check([200] * 4, [1, 0, 1, 0])["ok"]  # an event never stored
    assert not check([200, 503, 200, 200], [1, 1, 1, 0])["ok"]
