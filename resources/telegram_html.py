"""How long Telegram finds an HTML text: UTF-16 units of what is shown once tags are gone.

Telegram limits a caption to 1024 and a message to 4096 units counted AFTER entity parsing,
so markup is free and `&amp;` is one character. The rules (tdlib's parse_html, which the Bot
API runs): tags b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler",
tg-spoiler, a, code, pre, blockquote (any case, properly nested; `</>` closes the innermost);
entities &lt; &gt; &amp; &quot; and numeric ones (&#NNN; up to 7 digits, &#xHHH; lower-case
x and up to 6 hex digits, the ; optional); any other & is shown as typed, as is a lone >.
Anything Telegram would refuse is a ValueError here. Written apart from the sandbox's parser
on purpose: a test makes the two agree.
"""

from __future__ import annotations

import re

TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                  "tg-spoiler", "code", "pre", "blockquote"})
_SP = " \t\r\n\v\0"  # tdlib's whitespace inside tags
_ENTITY = re.compile(r"&(?:#x([0-9A-Fa-f]*)|#([0-9]*)|([A-Za-z]*))(;?)")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# A quoted string, or a bare token of letters, digits, . and - ending at whitespace or >.
_VALUE = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9.\-]*(?=[SP>]|\Z))""".replace("SP", _SP)
# An attribute name runs to whitespace or = (a > inside it is part of it, as in tdlib).
_ATTRIBUTE = re.compile(rf"[{_SP}]*([^{_SP}=>][^{_SP}=]*)[{_SP}]*=[{_SP}]*({_VALUE})")
# Attributes only after whitespace: `<b>x=y >` is <b> and then text.
_START = re.compile(rf"<([^{_SP}>]*)((?:[{_SP}](?:{_ATTRIBUTE.pattern})*)?)[{_SP}]*>")
_END = re.compile(rf"</([^{_SP}>]*)[{_SP}]*>")


def _entity(match: re.Match[str]) -> str | None:
    """The character an entity stands for, or None (then the & is shown as typed)."""
    hexa, decimal, name, _ = match.groups()
    if name is not None:
        return _NAMED.get(name)
    digits, base, prefix = (hexa, 16, 3) if hexa is not None else (decimal, 10, 2)
    if not digits or prefix + len(digits) >= 10:
        return None
    code = int(digits, base)
    if not 0 < code < 0x10FFFF:
        return None
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"HTML entity {match.group()} is half a surrogate pair")
    return chr(code)


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        char = _entity(match)
        return match.group() if char is None else char
    return _ENTITY.sub(one, value)


def html_visible_text(html: str) -> str:
    """The text Telegram shows for `html`; ValueError naming the position of bad markup."""
    shown: list[str] = []
    open_tags: list[str] = []
    pos = 0
    while pos < len(html):
        char = html[pos]
        if char == "&" and (entity := _ENTITY.match(html, pos)) is not None \
                and (decoded := _entity(entity)) is not None:
            shown.append(decoded)
            pos = entity.end()
        elif char != "<":
            shown.append(char)
            pos += 1
        elif html.startswith("</", pos):
            pos = _close(html, pos, open_tags)
        else:
            pos = _open(html, pos, open_tags)
    if open_tags:
        raise ValueError(f"HTML tag <{open_tags[-1]}> is never closed")
    return "".join(shown)


def _open(html: str, pos: int, open_tags: list[str]) -> int:
    tag = _START.match(html, pos)
    if tag is None:
        raise ValueError(f"malformed or unclosed HTML start tag at character {pos}")
    name = tag.group(1).lower()
    if name not in TAGS:
        raise ValueError(f"Telegram does not support the HTML tag <{name}> (character {pos})")
    if name == "span" and _span_class(tag.group(2)) != "tg-spoiler":
        raise ValueError(f"<span> needs class=\"tg-spoiler\" (character {pos})")
    open_tags.append(name)
    return tag.end()


def _span_class(attributes: str) -> str | None:
    """The class that counts for a span: the last `class` attribute starting "tg-" (quoted
    values are entity-decoded and case-sensitive, bare ones lower-cased)."""
    chosen = None
    for key, value in _ATTRIBUTE.findall(attributes):
        if key != "class":
            continue
        value = _unescape(value[1:-1]) if value[:1] in ("'", '"') else value.lower()
        if value.startswith("tg-"):
            chosen = value
    return chosen


def _close(html: str, pos: int, open_tags: list[str]) -> int:
    tag = _END.match(html, pos)
    if tag is None:
        raise ValueError(f"malformed HTML end tag at character {pos}")
    name = tag.group(1).lower()
    if not open_tags or (name and name != open_tags[-1]):
        expected = f"</{open_tags[-1]}>" if open_tags else "no end tag"
        raise ValueError(f"HTML end tag </{name}> at character {pos}: expected {expected}")
    open_tags.pop()
    return tag.end()


def html_text_length(html: str) -> int:
    """Telegram's length of an HTML text: UTF-16 units of the visible text (ValueError for
    markup Telegram would refuse)."""
    return len(html_visible_text(html).encode("utf-16-le")) // 2
