"""The sandbox's HTML entity parser (a port of tdlib's) and the client's html_text_length,
written apart, agree on generated captions: the same visible text and UTF-16 length for
HTML Telegram accepts, both refusing what it refuses."""

from __future__ import annotations

import random

import pytest

from resources.telegram import html_text_length
from resources.telegram_html import html_visible_text
from sandbox.systems.telegram_entities import EntityError, html_visible_length, parse

_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xE000, 0xFFFF),
           (0x10000, 0x1FFFF), (0x1F300, 0x1FAFF), (0xF0000, 0x10FFFF)]
_OPEN = ["<b>", "<strong>", "<i>", "<em>", "<u>", "<ins>", "<s>", "<strike>", "<del>",
         '<span class="tg-spoiler">', "<span class=tg-spoiler>", "<SPAN CLASS=TG-SPOILER>",
         "<span class='tg-&#115;poiler'>", '<span class="x" class="tg-spoiler">',
         '<span class="tg-spoiler" class="x">', "<tg-spoiler>",
         '<a href="https://example.com/?a=1&amp;b=2">', "<a href='tg://user?id=1'>", "<a>",
         '<a  href = "https://x.org/a>b" title=t>', '<code class="language-python">', "<pre>",
         "<blockquote expandable=\"\">", "<B>", "<Em>", "<b\t>", '<a href="x"title="y">']
_ENTITIES = ["&lt;", "&gt;", "&amp;", "&quot;", "&lt", "&gt", "&nbsp;", "&copy", "&#65;",
             "&#x1F600;", "&#128512", "&#0;", "&#x110000;", "&#1114111;", "&#1114110;",
             "&#X41;", "&#x;", "&#;", "&#0000065;", "&#00000065;", "&#x00041;", "&#x0000041;",
             "&", "&&", "&amp", "&ltx;", "&#xAbCd;", "&#55;x", ">", ">>"]
_BROKEN = ["<div>", "<b>", "</i>", "<", "< b>", "<span>", '<span class="tg-SPOILER">',
           "<a href>", "&#xD800;", "&#56320;", "<b x=y", "<br/>", "<b/>", "</b x>",
           '<a href="unterminated>', "<a href=x&y>", "<tg-emoji emoji-id=1>", "<!-- c -->",
           "<a =x>", "<a href=\"x\"/>"]


def _text(rng: random.Random) -> str:
    chars = []
    for _ in range(rng.randint(0, 12)):
        low, high = rng.choice(_RANGES)
        char = chr(rng.randint(low, high))
        chars.append(char if char not in "<&" else "x")
    return "".join(chars)


def _tag_name(opening: str) -> str:
    return opening[1:].split(">")[0].split()[0].split("\t")[0].lower()


def _html(rng: random.Random, depth: int = 0) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.4:
            parts.append(_text(rng))
        elif roll < 0.65:
            parts.append(rng.choice(_ENTITIES))
        elif depth < 3:
            opening = rng.choice(_OPEN)
            name = _tag_name(opening)
            closing = rng.choice([f"</{name}>", f"</{name.upper()}>", f"</{name} >", "</>"])
            parts.append(opening + _html(rng, depth + 1) + closing)
    return "".join(parts)


def _sample(rng: random.Random) -> str:
    html = _html(rng)
    if rng.random() < 0.25:  # break it somewhere
        at = rng.randint(0, len(html))
        html = html[:at] + rng.choice(_BROKEN) + html[at:]
    return html


def _sandbox(html: str) -> tuple[str, int] | str:
    try:
        return parse(html, "HTML").text, html_visible_length(html)
    except EntityError:
        return "refused"


def _client(html: str) -> tuple[str, int] | str:
    try:
        return html_visible_text(html), html_text_length(html)
    except ValueError:
        return "refused"


def test_the_two_parsers_agree_on_generated_html() -> None:
    rng = random.Random(20261125)
    samples = [_sample(rng) for _ in range(600)]
    outcomes = [(_sandbox(html), _client(html)) for html in samples]
    for html, (sandbox, client) in zip(samples, outcomes, strict=True):
        assert sandbox == client, ascii(html)
    accepted = [s for s, _ in outcomes if s != "refused"]
    assert len(accepted) >= 300 and len(outcomes) - len(accepted) >= 100  # both kinds drawn
    assert any(length > len(text) for text, length in accepted)  # astral characters drawn


@pytest.mark.parametrize(("html", "units"), [
    ("", 0),
    ("<b></b>", 0),
    ("\U0001F600", 2),
    ("<b>\U0001F600</b>&#x1F600;", 4),
    ("a &amp; b", 5),
    ("&amp;amp;", 5),  # decoded once: "&amp;"
    ("&nbsp;", 6),
    ("&#65&#66;C", 3),
    ("x > y", 5),
    ('<a href="https://example.com">example</a>', 7),
    ('<pre><code class="language-python">print(1)</code></pre>', 8),
])
def test_known_lengths(html: str, units: int) -> None:
    assert html_visible_length(html) == units
    assert html_text_length(html) == units
