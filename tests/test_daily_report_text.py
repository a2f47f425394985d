"""The daily report's texts: the HTML caption (< 1,024) and message (< 4,096) Telegram counts
after entity parsing, with 100 characters, 100-character and emoji names, markup characters
in names; and the same report as Markdown. Lengths are checked with the sandbox's own port of
Telegram's HTML parser, not the client's count."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal

import pytest

from resources.telegram import html_text_length
from sandbox.systems.telegram_entities import parse
from waifugen_assets.reporting.report_data import History, ReportData, Revenue
from waifugen_assets.reporting.report_text import (
    caption_html,
    md_escape,
    message_html,
    report_markdown,
)

DAY = dt.date(2026, 12, 4)


def history() -> History:
    days = tuple(DAY - dt.timedelta(days=13 - i) for i in range(14))
    return History(days, (3,) * 14, {"tiktok": (2,) * 14}, (120,) * 14, (645.0,) * 14)


def data(names: list[str], *, running: bool = False, pct: float | None = 45.2,
         currencies: int = 3, **changes: object) -> ReportData:
    """A report of `names` (characters with reels: n, n-1, ... 1 reels), the first five shown."""
    ranked = [(name, len(names) - i) for i, name in enumerate(names)]
    codes = ["USD"] + [f"X{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(currencies - 1)]
    values = dict(
        day=DAY, read_at=dt.datetime(2026, 12, 4, 14, 37, tzinfo=dt.UTC), running=running,
        currency="USD", credit_balance=1_234_567, credits_spent=12_345, monthly_budget=20_000,
        month_committed=9_040, budget_used_pct=pct, top_up_credits=5_000,
        unexplained_credits=12, exhaustion_date=dt.date(2026, 12, 20), days_left=16,
        runpod_cents=123, reels_generated=sum(n for _, n in ranked),
        reels_by_status={"branded": 10, "failed": 1},
        platforms=(("tiktok", 10), ("instagram", 9), ("youtube", 8)),
        characters=tuple(ranked[:5]), more_characters=max(0, len(ranked) - 5),
        credits_per_reel=Decimal("42.50"), target_credits_per_reel=40,
        credit_price_cents=Decimal("1"),
        revenue=tuple(Revenue(c, 1_234_567, 500, 1_234_067) for c in codes),
        total_cost_cents=1_500, margin_cents=-1_000_000, new_subscribers=1_200,
        churned_subscribers=3, history=history())
    values.update(changes)
    return ReportData(**values)  # type: ignore[arg-type]


def visible(text: str) -> str:
    """What Telegram shows of an HTML text (the sandbox's parser, as the Bot API parses)."""
    return parse(text, "HTML").text


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("name", [
    "Lucia Marvento",
    "L" * 100,  # 100 characters
    "🌸" * 100,  # 100 emoji: 200 UTF-16 units
    "<b>Ali & Bo</b> 👩‍👩‍👧 " * 5,  # markup characters and a ZWJ sequence
])
def test_limits_with_100_characters(name: str) -> None:
    names = [f"{name} {i}" for i in range(100)]
    d = data(names, running=True, currencies=40)
    caption, message = caption_html(d), message_html(d)
    shown_caption, shown_message = visible(caption), visible(message)
    assert units(shown_caption) < 1024
    assert units(shown_message) < 4096
    # The client's count agrees with the sandbox's parser.
    assert html_text_length(caption) == units(shown_caption)
    assert html_text_length(message) == units(shown_message)
    # The top five are listed, the rest counted.
    assert "and 95 more" in shown_caption and "and 95 more" in shown_message
    assert "and 32 more currencies" in shown_message
    for text in (shown_caption, shown_message):
        assert "2026-12-04" in text
        assert "as of 14:37 UTC" in text


def test_markup_in_names_is_escaped() -> None:
    d = data(["<b>Ali</b> & Co", "x</b><i>", "Bo *bold* _it_ [link](u) | pipe"])
    message = message_html(d)
    assert html.escape("<b>Ali</b> & Co") in message
    assert "<i>" not in message and "</b><i>" not in message
    # Telegram shows the names exactly as they are.
    assert "<b>Ali</b> & Co 3" in visible(message)
    assert "x</b><i> 2" in visible(caption_html(d))
    md = report_markdown(d)
    assert md_escape("<b>Ali</b> & Co") == r"\<b\>Ali\</b\> \& Co"
    assert r"\<b\>Ali\</b\> \& Co 3" in md
    assert r"Bo \*bold\* \_it\_ \[link\]\(u\) \| pipe 1" in md


def test_figures_are_readable() -> None:
    d = data(["Lucia", "Mika"])
    text = visible(message_html(d))
    lines = text.splitlines()
    assert "Balance: 1,234,567 credits" in lines
    assert "Spent on 2026-12-04: 12,345 credits" in lines
    assert ("Budget: 45.2% of 20,000 credits this month (9,040 spent or planned)") in lines
    assert "Top-ups: 5,000 credits" in lines
    assert "Unexplained: 12 credits" in lines
    assert "Forecast: credits run out on 2026-12-20 (16 days left)" in lines
    assert "RunPod fallback: USD 1.23" in lines
    assert ("Cost per reel: 42.50 credits = USD 0.43 (106.3% of the target 40 credits = "
            "USD 0.40)") in lines
    assert "Most used characters: Lucia 2, Mika 1" in lines
    assert ("Posts published: 27; most active platforms: TikTok 10, Instagram 9, YouTube 8"
            in lines)
    assert "USD: gross 12,345.67, refunds 5.00, net 12,340.67" in lines
    assert "Costs: USD 15.00; margin: USD -10,000.00" in lines
    assert "Subscribers: 1,200 new, 3 churned" in lines
    assert "the whole day (every character's local day is over)" in lines
    assert all(line == line.strip() for line in lines)
    caption = visible(caption_html(d)).splitlines()
    assert caption[0] == "waifugen daily report: 2026-12-04"
    assert "Net revenue: USD 12,340.67; margin USD -10,000.00" in caption
    assert "as of" not in visible(caption_html(d))


@pytest.mark.parametrize(("pct", "committed", "flag"), [
    (79.9, 100, None), (80.0, 100, "⚠️ over 80%"), (100.0, 100, "⛔ budget exhausted"),
    (None, 0, None), (None, 5, "⛔ budget exhausted"),
])
def test_budget_warnings(pct: float | None, committed: int, flag: str | None) -> None:
    d = data(["Lucia"], pct=pct, month_committed=committed)
    for text in (visible(caption_html(d)), visible(message_html(d)), report_markdown(d)):
        budget = next(line for line in text.splitlines() if "Budget:" in line)
        if flag is None:
            assert "⚠" not in budget and "⛔" not in budget
        else:
            assert flag in budget
    if pct is None:
        assert "no budget set this month" in visible(message_html(d))


def test_nothing_generated_and_no_balance() -> None:
    d = data([], credit_balance=None, unexplained_credits=None, exhaustion_date=None,
             days_left=None, credits_per_reel=None, platforms=(), currencies=1)
    text = visible(message_html(d))
    assert "Balance: not read yet" in text
    assert "Unexplained: nothing to compare yet" in text
    assert "Forecast: credits last beyond this month at the current pace" in text
    assert "Cost per reel: no reel generated (target 40 credits = USD 0.40)" in text
    assert "Most used characters: none" in text
    assert "most active platforms: none" in text
    assert "Credits: 12,345 spent, balance unknown" in visible(caption_html(d))


def test_markdown_has_every_section() -> None:
    d = data([f"C{i}" for i in range(100)], running=True,
             notes=("no analytics rows for 2026-12-04",))
    md = report_markdown(d)
    assert md.startswith("## waifugen daily report: 2026-12-04\n\n_as of 14:37 UTC")
    for title in ("### A2E credits", "### Reels and posts",
                  "### Revenue \\(costs and margin in USD\\)", "### Notes"):
        assert title in md
    assert "- Most used characters: C0 100, C1 99, C2 98, C3 97, C4 96 and 95 more" in md
    assert "- Costs: USD 15.00; margin: **USD -10,000.00**" in md
