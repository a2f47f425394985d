"""The upload benchmark harness: runs end to end on a tiny file and writes its section."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def upload(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/ is not an installed package: import it from the checkout, as `make bench`."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.upload")


def test_the_harness_uploads_verifies_and_writes_its_section(
        upload: ModuleType, sandbox_server, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Storage: other section\n\nkept as it is\n")

    status = upload.main(["--sizes-mb", "3", "--runs", "1", "--sandbox-url", sandbox_server.url,
                          "--docs", str(docs)])

    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert status == 0 and result["passed"]
    assert [r["platform"] for r in result["rows"]] == ["tiktok", "youtube", "instagram"]
    for row in result["rows"]:
        # The sandbox's sha256 of what ours and curl sent equals the file's.
        assert row["sha256_ok"] is True
        assert row["requests"] == 1  # under 5 MB: one chunk everywhere
        assert row["ours_s"] > 0 and row["curl_s"] > 0 and row["ratio"] > 0
        assert 0 <= row["rss_increase_mb"] < 50
    text = docs.read_text()
    assert "## Storage: other section\n\nkept as it is" in text
    section = text[text.index(upload.HEADING):]
    table = [line for line in section.splitlines() if line.startswith("| ") and " 3 MB " in line]
    assert [line.split(" | ")[0] for line in table] == ["| tiktok", "| youtube", "| instagram"]
    assert all(line.rstrip().endswith("| True |") for line in table)
    assert "curl" in section and "one file size only" in section

    # Running again replaces the section instead of adding a second one.
    upload.main(["--sizes-mb", "3", "--runs", "1", "--platforms", "tiktok",
                 "--sandbox-url", sandbox_server.url, "--docs", str(docs)])
    again = docs.read_text()
    assert again.count(upload.HEADING) == 1 and "| youtube |" not in again
    assert "kept as it is" in again


def test_curl_sends_each_chunk_to_the_url_path_not_a_file_name(upload: ModuleType,
                                                                tmp_path: Path) -> None:
    Piece, curl_command = upload.Piece, upload.curl_command
    url = "http://127.0.0.1:1/tiktok/video/?upload_id=7&upload_token=abc"
    pieces = [Piece("PUT", url, 0, 5, (("Content-Range", "bytes 0-4/9"),), (206,)),
              Piece("PUT", url, 5, 4, (("Content-Range", "bytes 5-8/9"),), (201,))]
    bodies = [tmp_path / "a", tmp_path / "b"]
    command = curl_command(pieces, bodies)
    assert command.count("--next") == 1
    assert command.count("--request-target") == 2
    target = command[command.index("--request-target") + 1]
    assert target == "/tiktok/video/?upload_id=7&upload_token=abc"
    assert command[command.index("-T") + 1] == str(bodies[0])
    assert "Content-Range: bytes 5-8/9" in command
    with pytest.raises(ValueError, match="one body file per piece"):
        curl_command(pieces, bodies[:1])


def test_memory_growing_with_the_file_fails_the_verdict(upload: ModuleType) -> None:
    memory_verdicts = upload.memory_verdicts

    def row(size: int, rss: float) -> dict[str, object]:
        return {"platform": "tiktok", "size_mb": size, "rss_increase_mb": rss}

    assert memory_verdicts([row(50, 2.0), row(200, 3.0)])["tiktok"]["constant"] is True
    grows = memory_verdicts([row(50, 2.0), row(200, 160.0)])["tiktok"]
    assert grows["constant"] is False and grows["growth_mb"] == 158.0
    assert memory_verdicts([row(3, 1.0)]) == {}
