"""The daily report as text: the photo's HTML caption (the key figures), the HTML message
(every figure: credits, reels, platforms, characters, cost per reel, revenue and margin) and
the same report as Markdown (the asset's metadata).

Telegram counts a caption's or message's length after parsing the HTML entities, in UTF-16
units: a caption stays under 1,024 and a message under 4,096 whatever the roster holds. Names
are cut to NAME_WIDTH characters and every list shows at most its first few items followed by
"and N more"; should that still be too long, the lists shrink until it fits.
Every dynamic string goes through html.escape (HTML) or md_escape (Markdown).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from resources.telegram import html_text_length
from waifugen_assets.reporting.day_markdown import PLATFORM_TITLES
from waifugen_assets.reporting.report_data import ReportData, Revenue

MAX_CAPTION = 1024  # Telegram: a caption is 0-1024 units after entity parsing
MAX_MESSAGE = 4096
NAME_WIDTH = 32  # characters of a character's name shown
CURRENCIES_SHOWN = 8
LIST_SIZES = (5, 3, 1, 0)  # items per list, tried in turn until the text fits
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()<>#+!|~&])")


@dataclass(frozen=True)
class _Style:
    """How the same lines are marked up: bold and escaping."""

    bold: Callable[[str], str]
    escape: Callable[[str], str]


def md_escape(text: str) -> str:
    """Text shown as-is in Markdown: one line, its markup characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


HTML = _Style(bold=lambda s: f"<b>{s}</b>", escape=lambda s: html.escape(" ".join(s.split())))
MARKDOWN = _Style(bold=lambda s: f"**{s}**", escape=md_escape)


# --- numbers -----------------------------------------------------------------------------------

def num(value: int) -> str:
    return f"{value:,}"


def amount(cents: int | Decimal) -> str:
    """`1,234.56` from cents (half a cent rounds away from zero, as the marts round)."""
    return f"{(Decimal(cents) / 100).quantize(Decimal('0.01'), ROUND_HALF_UP):,.2f}"


def money(cents: int | Decimal, currency: str) -> str:
    """`USD 1,234.56` from cents."""
    return f"{currency} {amount(cents)}"


def short(name: str, width: int = NAME_WIDTH) -> str:
    """A name on one line, cut to `width` characters with an ellipsis."""
    name = " ".join(name.split())
    return name if len(name) <= width else name[: width - 1] + "…"


def platform_title(platform: str) -> str:
    return PLATFORM_TITLES.get(platform, platform)


def listed(items: Sequence[str], shown: int, more: int = 0) -> str:
    """`a, b, c and N more` with the first `shown` items (`more`: items not in `items`)."""
    rest = max(0, len(items) - shown) + more
    head = ", ".join(items[:shown])
    if not rest:
        return head or "none"
    return f"{head} and {rest} more" if head else f"{rest} (not listed)"


# --- the lines ---------------------------------------------------------------------------------

def _heading(d: ReportData) -> str:
    return f"waifugen daily report: {d.day.isoformat()}"


def _as_of(d: ReportData) -> str:
    if d.running:
        return f"as of {d.read_at:%H:%M} UTC: the day is not over everywhere yet"
    return "the whole day (every character's local day is over)"


def _budget(d: ReportData, s: _Style) -> str:
    committed = f"{num(d.month_committed)} spent or planned"
    if d.budget_used_pct is None:
        text = f"no budget set this month ({committed})"
    else:
        text = (f"{d.budget_used_pct:,.1f}% of {num(d.monthly_budget)} credits this month "
                f"({committed})")
    if d.budget_level == "exhausted":
        return text + " " + s.bold("⛔ budget exhausted")
    if d.budget_level == "warning":
        return text + " " + s.bold("⚠️ over 80%")
    return text


def _forecast(d: ReportData) -> str:
    if d.exhaustion_date is None:
        return "credits last beyond this month at the current pace"
    left = f" ({num(d.days_left)} days left)" if d.days_left is not None else ""
    return f"credits run out on {d.exhaustion_date.isoformat()}{left}"


def _cost_per_reel(d: ReportData) -> str:
    target = (f"target {num(d.target_credits_per_reel)} credits = "
              f"{money(d.target_cents_per_reel, d.currency)}")
    if d.credits_per_reel is None:
        return f"no reel generated ({target})"
    return (f"{d.credits_per_reel:,.2f} credits = {money(d.cents_per_reel or 0, d.currency)} "
            f"({d.vs_target_pct}% of the {target})")


def _platforms(d: ReportData, s: _Style, shown: int) -> str:
    items = [f"{s.escape(platform_title(p))} {num(n)}" for p, n in d.platforms]
    return listed(items, shown)


def _characters(d: ReportData, s: _Style, shown: int) -> str:
    items = [f"{s.escape(short(name))} {num(n)}" for name, n in d.characters]
    return listed(items, shown, d.more_characters)


def _revenue_line(r: Revenue, s: _Style) -> str:
    return (f"{s.escape(r.currency)}: gross {amount(r.gross_cents)}, refunds "
            f"{amount(r.refund_cents)}, net {amount(r.net_cents)}")


def _sections(d: ReportData, s: _Style, shown: int) -> list[tuple[str, list[str]]]:
    credits = [
        f"Balance: {num(d.credit_balance)} credits" if d.credit_balance is not None
        else "Balance: not read yet",
        f"Spent on {d.day.isoformat()}: {num(d.credits_spent)} credits",
        f"Budget: {_budget(d, s)}",
        f"Top-ups: {num(d.top_up_credits)} credits",
        "Unexplained: " + (f"{num(d.unexplained_credits)} credits"
                           if d.unexplained_credits is not None else "nothing to compare yet"),
        f"Forecast: {_forecast(d)}",
        f"RunPod fallback: {money(d.runpod_cents, d.currency)}",
    ]
    statuses = ", ".join(f"{num(n)} {st}" for st, n in d.reels_by_status.items()) or "none"
    reels = [
        f"Generated: {num(d.reels_generated)} (all reels of the day: {statuses})",
        f"Cost per reel: {_cost_per_reel(d)}",
        f"Most used characters: {_characters(d, s, shown)}",
        f"Posts published: {num(d.posts_published)}; most active platforms: "
        f"{_platforms(d, s, shown)}",
    ]
    currencies = list(d.revenue)  # the accounting currency first
    kept = CURRENCIES_SHOWN if shown == LIST_SIZES[0] else max(1, shown)
    money_lines = [_revenue_line(r, s) for r in currencies[:kept]]
    if len(currencies) > len(money_lines):
        money_lines.append(f"and {len(currencies) - len(money_lines)} more currencies")
    money_lines += [
        f"Costs: {money(d.total_cost_cents, d.currency)}; margin: "
        f"{s.bold(money(d.margin_cents, d.currency))}",
        f"Subscribers: {num(d.new_subscribers)} new, {num(d.churned_subscribers)} churned",
    ]
    sections = [("A2E credits", credits), ("Reels and posts", reels),
                (f"Revenue (costs and margin in {d.currency})", money_lines)]
    if d.notes:
        sections.append(("Notes", [s.escape(n) for n in d.notes]))
    return sections


# --- the three renderings ----------------------------------------------------------------------

def _fit(render: Callable[[int], str], limit: int, what: str) -> str:
    """The first rendering, with lists of LIST_SIZES items in turn, under `limit` units."""
    for shown in LIST_SIZES:
        text = render(shown)
        if html_text_length(text) < limit:
            return text
    raise ValueError(f"the daily report's {what} does not fit in {limit} characters")


def caption_html(d: ReportData) -> str:
    """The photo's caption: the key figures, under 1,024 characters after entity parsing."""
    s = HTML

    def render(shown: int) -> str:
        rev = d.accounting_revenue
        lines = [s.bold(s.escape(_heading(d))), s.escape(_as_of(d)),
                 f"Credits: {num(d.credits_spent)} spent, balance "
                 + (num(d.credit_balance) if d.credit_balance is not None else "unknown"),
                 f"Budget: {_budget(d, s)}",
                 f"Reels generated: {num(d.reels_generated)}; cost per reel "
                 + (f"{d.credits_per_reel:,.2f}" if d.credits_per_reel is not None else "-")
                 + f" credits (target {num(d.target_credits_per_reel)})",
                 f"Posts: {_platforms(d, s, shown)}",
                 f"Characters: {_characters(d, s, shown)}",
                 f"Net revenue: {money(rev.net_cents, d.currency)}; margin "
                 f"{s.bold(money(d.margin_cents, d.currency))}"]
        return "\n".join(lines)

    return _fit(render, MAX_CAPTION, "caption")


def message_html(d: ReportData) -> str:
    """The message: every figure, under 4,096 characters after entity parsing."""
    s = HTML

    def render(shown: int) -> str:
        parts = [s.bold(s.escape(_heading(d))) + "\n" + s.escape(_as_of(d))]
        parts += [s.bold(s.escape(title)) + "\n" + "\n".join(lines)
                  for title, lines in _sections(d, s, shown)]
        return "\n\n".join(parts)

    return _fit(render, MAX_MESSAGE, "message")


def report_markdown(d: ReportData) -> str:
    """The same report as Markdown (Dagster's metadata), one list item per line."""
    s = MARKDOWN
    parts = [f"## {md_escape(_heading(d))}", f"_{md_escape(_as_of(d))}_"]
    for title, lines in _sections(d, s, LIST_SIZES[0]):
        parts.append(f"### {md_escape(title)}\n\n" + "\n".join(f"- {line}" for line in lines))
    return "\n\n".join(parts)
