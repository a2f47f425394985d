"""The daily report's chart: a PNG that decodes, of the fixed size, the same bytes for the same
data (no version stamp), different bytes for different data, ASCII labels only."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import zlib

import pytest
from matplotlib.image import imread

from waifugen_assets.reporting.report_chart import DPI, HEIGHT_IN, WIDTH_IN, render_chart
from waifugen_assets.reporting.report_data import History

DAY = dt.date(2026, 12, 4)


def history(scale: int = 1) -> History:
    days = tuple(DAY - dt.timedelta(days=13 - i) for i in range(14))
    return History(
        days=days, reels_generated=tuple(scale * (i % 6) for i in range(14)),
        posts_published={"tiktok": tuple(i % 4 for i in range(14)), "instagram": (2,) * 14,
                         "youtube": (0,) * 13 + (1,)},
        credits_spent=tuple(scale * 90 * (i % 7) for i in range(14)),
        # November has 30 days, December 31: the budget line steps at the month's turn.
        daily_budget=tuple(20_000 / (30 if d.month == 11 else 31) for d in days))


def chunks(png: bytes) -> dict[str, bytes]:
    """The PNG's chunks by type (the last of each), checking every CRC on the way."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = {}, 8
    while at < len(png):
        size = int.from_bytes(png[at:at + 4], "big")
        kind, body = png[at + 4:at + 8], png[at + 8:at + 8 + size]
        crc = int.from_bytes(png[at + 8 + size:at + 12 + size], "big")
        assert zlib.crc32(kind + body) == crc
        found[kind.decode("ascii")] = body
        at += 12 + size
    return found


def test_png_decodes_at_the_fixed_size() -> None:
    png = render_chart(history(), "waifugen daily report 2026-12-04")
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (int(HEIGHT_IN * DPI), int(WIDTH_IN * DPI))
    assert pixels.std() > 0.05  # something is drawn
    found = chunks(png)
    assert "IEND" in found
    assert b"Software" not in png  # no matplotlib version in the file
    assert b"Matplotlib" not in png


def test_same_data_same_bytes_in_another_process() -> None:
    """Deterministic across processes (font cache, hash seeds), not only within one."""
    here = render_chart(history(), "waifugen daily report 2026-12-04")
    code = ("import sys, datetime as dt; sys.path[:0] = ['tests']; "
            "from test_daily_report_chart import history; "
            "from waifugen_assets.reporting.report_chart import render_chart; "
            "sys.stdout.buffer.write(render_chart(history(), "
            "'waifugen daily report 2026-12-04'))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin",
                                "HOME": "/tmp", "MPLBACKEND": "Agg"}).stdout
    assert there == here
    assert render_chart(history(2), "waifugen daily report 2026-12-04") != here


def test_labels_are_ascii() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        render_chart(history(), "report 🌸")
