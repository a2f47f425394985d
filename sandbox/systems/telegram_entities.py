"""Telegram's formatting: HTML, MarkdownV2 and Markdown to (visible text, entities).

A port of tdlib's parse_html / parse_markdown_v2 / parse_markdown (td/telegram/MessageEntity.cpp),
which the Bot API runs on every text and caption with a parse_mode. It works on the UTF-8
bytes as tdlib does, so error texts carry tdlib's byte offsets, and counts entity offsets and
lengths in UTF-16 code units. The sandbox's own code: the client's count
(resources.telegram.html_text_length) is written separately, and a test makes them agree.

Differences from Telegram, on purpose: HTML accepts the tags of the Bot API documentation
(b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler", tg-spoiler, a href, code,
pre, blockquote) but not tg-emoji; links are checked loosely (http, https, tg, ton and tonsite
schemes, or a bare host that gets http://); a tg://user link stays a text_link; URLs, mentions
and hashtags in plain text are not detected; leading and trailing whitespace is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PARSE_MODES = ("HTML", "MarkdownV2", "Markdown")
HTML_TAGS = frozenset({"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
                       "tg-spoiler", "span", "pre", "code", "blockquote"})
_SPACE = frozenset(b" \t\r\n\v\0")  # tdlib's is_space; 0 is also "past the end"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LINK_SCHEMES = ("http", "https", "tg", "ton", "tonsite")
_CUSTOM_EMOJI = re.compile(r"tg://emoji\?id=([0-9]{1,19})", re.IGNORECASE)
# tdlib's sort priority per entity type (lower sorts first among equal offset and length).
_PRIORITY = {"Bold": 90, "Italic": 91, "Code": 20, "Pre": 11, "PreCode": 10, "TextUrl": 49,
             "Underline": 92, "Strikethrough": 93, "BlockQuote": 0, "Spoiler": 94,
             "CustomEmoji": 99}
_BOT_API_TYPE = {"Bold": "bold", "Italic": "italic", "Underline": "underline",
                 "Strikethrough": "strikethrough", "Spoiler": "spoiler", "Code": "code",
                 "Pre": "pre", "PreCode": "pre", "TextUrl": "text_link",
                 "BlockQuote": "blockquote", "CustomEmoji": "custom_emoji"}
_HTML_TYPE = {"b": "Bold", "strong": "Bold", "i": "Italic", "em": "Italic", "u": "Underline",
              "ins": "Underline", "s": "Strikethrough", "strike": "Strikethrough",
              "del": "Strikethrough", "tg-spoiler": "Spoiler", "span": "Spoiler",
              "blockquote": "BlockQuote"}


class EntityError(ValueError):
    """Telegram would answer 400 "can't parse entities: <this text>"."""


@dataclass
class Entity:
    type: str  # tdlib's name: Bold, Italic, PreCode, TextUrl, ...
    offset: int  # UTF-16 units
    length: int
    argument: str = ""  # URL, language or custom emoji id

    def bot_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"offset": self.offset, "length": self.length,
                               "type": _BOT_API_TYPE[self.type]}
        if self.type == "TextUrl":
            out["url"] = self.argument
        elif self.type == "PreCode":
            out["language"] = self.argument
        elif self.type == "CustomEmoji":
            out["custom_emoji_id"] = self.argument
        return out


@dataclass(frozen=True)
class Formatted:
    """A text as Telegram stores it: visible text and Bot API entities."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def parse(text: str, mode: str | None) -> Formatted:
    """`text` under `mode` (None/"" = plain; HTML, MarkdownV2, Markdown, any case).

    EntityError for markup Telegram refuses; UnicodeEncodeError for a lone surrogate."""
    key = (mode or "").lower()
    if not key:
        text.encode("utf-8")  # a lone surrogate has no UTF-8 form
        return Formatted(text)
    parser = {"html": _Html, "markdownv2": _MarkdownV2, "markdown": _Markdown}.get(key)
    if parser is None:
        raise KeyError(mode)
    return parser(text).run()


def utf16_units(text: str) -> int:
    return len(text) + sum(1 for char in text if char > "\uffff")


def html_visible_length(html: str) -> int:
    """UTF-16 units of the text Telegram shows for `html` (EntityError if it refuses it)."""
    return utf16_units(parse(html, "HTML").text)


def checked_link(url: str) -> str:
    """The link Telegram keeps for an entity, or "" (the entity is dropped)."""
    url = url.strip()
    if not url or any(char.isspace() for char in url):
        return ""
    scheme = _SCHEME.match(url)
    if scheme is not None and not url[scheme.end():].isdigit():  # host:port is no scheme
        return url if scheme.group(1).lower() in _LINK_SCHEMES else ""
    host = re.split(r"[/?#]", url, maxsplit=1)[0]
    return f"http://{url}" if "." in host.strip(".") else ""


def _sorted(entities: list[Entity]) -> list[dict[str, Any]]:
    entities.sort(key=lambda e: (e.offset, -e.length, _PRIORITY[e.type]))
    return [e.bot_api() for e in entities]


class _Parser:
    """Shared machinery: the UTF-8 bytes, a cursor, the output and its UTF-16 length."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.size = len(self.data)
        self.i = 0
        self.out = bytearray()
        self.utf16 = 0
        self.entities: list[Entity] = []

    def at(self, index: int) -> int:
        """The byte at `index`, 0 past the end (tdlib reads a NUL-terminated string)."""
        return self.data[index] if index < self.size else 0

    def copy_byte(self, byte: int) -> None:
        if byte & 0xC0 != 0x80:  # the first byte of a character
            self.utf16 += 2 if byte >= 0xF0 else 1
        self.out.append(byte)

    def text(self) -> str:
        return self.out.decode("utf-8")


class _Html(_Parser):
    def run(self) -> Formatted:
        stack: list[tuple[str, str, int, int]] = []  # (tag, argument, utf16 offset, out pos)
        surrogate = False
        while self.i < self.size:
            c = self.data[self.i]
            if c == 0x26:  # &
                code, end = _html_entity(self.data, self.i)
                if code:
                    self.utf16 += 2 if code > 0xFFFF else 1
                    surrogate |= 0xD800 <= code <= 0xDFFF
                    self.out += chr(code).encode("utf-8", "surrogatepass")
                    self.i = end
                    continue
            if c != 0x3C:  # not <
                self.copy_byte(c)
                self.i += 1
                continue
            if self.at(self.i + 1) != 0x2F:  # not </
                stack.append(self.start_tag())
            else:
                self.end_tag(stack)
            self.i += 1  # past the >
        if stack:
            raise EntityError("Can't find end tag corresponding to start tag "
                              f"\"{stack[-1][0]}\"")
        for entity in self.entities:
            if entity.type == "Code":
                entity.argument = ""
        if surrogate:
            raise EntityError("Text contains invalid Unicode characters after decoding HTML "
                              "entities, check for unmatched surrogate code units")
        return Formatted(self.text(), _sorted(self.entities))

    def start_tag(self) -> tuple[str, str, int, int]:
        begin = self.i
        self.i += 1
        at = self.at
        while at(self.i) not in _SPACE and at(self.i) != 0x3E:
            self.i += 1
        if at(self.i) == 0:
            raise EntityError(f"Unclosed start tag at byte offset {begin}")
        tag = self.data[begin + 1:self.i].lower().decode("utf-8", "replace")
        if tag not in HTML_TAGS:
            raise EntityError(f"Unsupported start tag \"{tag}\" at byte offset {begin}")
        argument = ""
        while at(self.i) != 0x3E:
            name, value = self.attribute(tag, begin)
            if name is None:
                break
            if tag == "a" and name == b"href":
                argument = value
            elif tag == "code" and name == b"class" and value.startswith("language-"):
                argument = value[len("language-"):]
            elif tag == "span" and name == b"class" and value.startswith("tg-"):
                argument = value[len("tg-"):]
        if tag == "span" and argument != "spoiler":
            raise EntityError(f"Tag \"span\" must have class \"tg-spoiler\" at byte offset "
                              f"{begin}")
        return tag, argument, self.utf16, len(self.out)

    def attribute(self, tag: str, begin: int) -> tuple[bytes | None, str]:
        """One `name=value` of a start tag; (None, "") at its closing >."""
        at = self.at
        while at(self.i) != 0 and at(self.i) in _SPACE:
            self.i += 1
        if at(self.i) == 0x3E:
            return None, ""
        name_begin = self.i
        while at(self.i) not in _SPACE and at(self.i) != 0x3D:
            self.i += 1
        name = self.data[name_begin:self.i]
        if not name:
            raise EntityError(f"Empty attribute name in the tag \"{tag}\" at byte offset "
                              f"{begin}")
        while at(self.i) != 0 and at(self.i) in _SPACE:
            self.i += 1
        if at(self.i) != 0x3D:
            raise EntityError("Expected equal sign in declaration of an attribute of the tag "
                              f"\"{tag}\" at byte offset {begin}")
        self.i += 1
        while at(self.i) != 0 and at(self.i) in _SPACE:
            self.i += 1
        if at(self.i) == 0:
            raise EntityError(f"Unclosed start tag \"{tag}\" at byte offset {begin}")
        if at(self.i) not in (0x22, 0x27):  # a name token: letters, digits, . and -
            token_begin = self.i
            while chr(at(self.i)).isascii() and (chr(at(self.i)).isalnum()
                                                 or at(self.i) in (0x2E, 0x2D)):
                self.i += 1
            value = self.data[token_begin:self.i].lower().decode("utf-8", "replace")
            if at(self.i) not in _SPACE and at(self.i) != 0x3E:
                raise EntityError(f"Unexpected end of name token at byte offset {token_begin}")
        else:
            quote = at(self.i)
            self.i += 1
            raw = bytearray()
            while at(self.i) != quote and at(self.i) != 0:
                if at(self.i) == 0x26:
                    code, end = _html_entity(self.data, self.i)
                    if code:
                        raw += chr(code).encode("utf-8", "surrogatepass")
                        self.i = end
                        continue
                raw.append(at(self.i))
                self.i += 1
            if at(self.i) == quote:
                self.i += 1
            value = raw.decode("utf-8", "replace")
        if at(self.i) == 0:
            raise EntityError(f"Unclosed start tag at byte offset {begin}")
        return name, value

    def end_tag(self, stack: list[tuple[str, str, int, int]]) -> None:
        begin = self.i
        if not stack:
            raise EntityError(f"Unexpected end tag at byte offset {begin}")
        self.i += 1  # at the /
        at = self.at
        while at(self.i) not in _SPACE and at(self.i) != 0x3E:
            self.i += 1
        name = self.data[begin + 2:self.i].lower().decode("utf-8", "replace")
        while at(self.i) in _SPACE and at(self.i) != 0:
            self.i += 1
        if at(self.i) != 0x3E:
            raise EntityError(f"Unclosed end tag at byte offset {begin}")
        tag, argument, offset, out_pos = stack.pop()
        if name and name != tag:
            raise EntityError(f"Unmatched end tag at byte offset {begin}, expected \"</{tag}>\","
                              f" found \"</{name}>\"")
        if self.utf16 > offset:
            self.add(tag, argument, offset, self.utf16 - offset, out_pos)

    def add(self, tag: str, argument: str, offset: int, length: int, out_pos: int) -> None:
        last = self.entities[-1] if self.entities else None
        same_span = last is not None and (last.offset, last.length) == (offset, length)
        if tag == "a":
            url = checked_link(argument or self.out[out_pos:].decode("utf-8", "replace"))
            if url:
                self.entities.append(Entity("TextUrl", offset, length, url))
        elif tag == "pre":
            if same_span and last is not None and last.type == "Code" and last.argument:
                last.type = "PreCode"
            else:
                self.entities.append(Entity("Pre", offset, length))
        elif tag == "code":
            if same_span and last is not None and last.type == "Pre" and argument:
                last.type, last.argument = "PreCode", argument
            else:
                self.entities.append(Entity("Code", offset, length, argument))
        else:
            self.entities.append(Entity(_HTML_TYPE[tag], offset, length))


def _html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """tdlib's decode_html_entity: (code point or 0, position after the entity)."""
    def at(index: int) -> int:
        return data[index] if index < len(data) else 0

    end = pos + 1
    code = 0
    if at(pos + 1) == 0x23:  # &#
        end += 1
        if at(pos + 2) == 0x78:  # &#x (lower case only, as tdlib)
            end += 1
            while at(end) and chr(at(end)) in "0123456789abcdefABCDEF":
                code = code * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while 0x30 <= at(end) <= 0x39:
                code = code * 10 + at(end) - 0x30
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while chr(at(end)).isascii() and chr(at(end)).isalpha():
            end += 1
        code = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(
            data[pos + 1:end], 0)
        if not code:
            return 0, pos
    return code, end + 1 if at(end) == 0x3B else end


_CLOSES = {"Bold": lambda c, n: c == 0x2A, "Italic": lambda c, n: c == 0x5F and n != 0x5F,
           "Code": lambda c, n: c == 0x60, "TextUrl": lambda c, n: c == 0x5D,
           "Underline": lambda c, n: c == 0x5F and n == 0x5F,
           "Strikethrough": lambda c, n: c == 0x7E,
           "Spoiler": lambda c, n: c == 0x7C and n == 0x7C,
           "CustomEmoji": lambda c, n: c == 0x5D, "BlockQuote": lambda c, n: False}
_RESERVED_V2 = frozenset(b"_*[]()~`>#+-=|{}.!\n")


@dataclass
class _Open:
    type: str
    argument: str
    offset: int  # UTF-16
    byte_offset: int  # in the input, for errors
    out_pos: int


class _MarkdownV2(_Parser):
    def run(self) -> Formatted:
        self.stack: list[_Open] = []
        self.quote = False  # inside a > block quote
        while self.i < self.size:
            self.step()
            self.i += 1
        if self.quote and self.stack and self.stack[-1].type == "BlockQuote":
            top = self.stack.pop()
            if self.utf16 != top.offset:
                self.entities.append(Entity("BlockQuote", top.offset, self.utf16 - top.offset))
        if self.stack:
            raise EntityError(f"Can't find end of {self.stack[-1].type} entity at byte offset "
                              f"{self.stack[-1].byte_offset}")
        return Formatted(self.text(), _sorted(self.entities))

    def reserved(self, c: int) -> bool:
        if self.stack and self.stack[-1].type in ("Code", "Pre", "PreCode"):
            return c == 0x60
        return c in _RESERVED_V2

    def step(self) -> None:
        at, c = self.at, self.data[self.i]
        if c == 0x5C and 0 < at(self.i + 1) <= 126:  # \x: x itself
            self.i += 1
            self.utf16 += 1
            self.out.append(self.data[self.i])
            return
        if not self.reserved(c):
            self.copy_byte(c)
            return
        if self.stack and self.closes(c):
            self.close(c)
        else:
            self.open(c)

    def closes(self, c: int) -> bool:
        nxt = self.at(self.i + 1)
        if self.quote and c == 0x0A and (self.i + 1 == self.size or nxt != 0x3E):
            return True
        top = self.stack[-1].type
        if top in ("Pre", "PreCode"):
            return c == 0x60 and nxt == 0x60 and self.at(self.i + 2) == 0x60
        return _CLOSES[top](c, nxt)

    def reserved_error(self) -> EntityError:
        return EntityError(f"Character '{chr(self.data[self.i])}' is reserved and must be "
                           "escaped with the preceding '\\'")

    def open(self, c: int) -> None:
        at, start, argument = self.at, self.i, ""
        if c == 0x5F:
            kind = "Underline" if at(self.i + 1) == 0x5F else "Italic"
            if kind == "Underline":
                self.i += 1
        elif c in (0x2A, 0x7E, 0x5B):
            kind = {0x2A: "Bold", 0x7E: "Strikethrough", 0x5B: "TextUrl"}[c]
        elif c == 0x7C and at(self.i + 1) == 0x7C:
            kind = "Spoiler"
            self.i += 1
        elif c == 0x60:
            kind, argument = self.open_code()
        elif c == 0x21 and at(self.i + 1) == 0x5B:
            kind = "CustomEmoji"
            self.i += 1
        elif c == 0x0A:
            self.utf16 += 1
            self.out.append(0x0A)
            if not (self.i + 1 < self.size and at(self.i + 1) == 0x3E):
                return
            self.i += 1
            if self.quote:
                return
            kind, self.quote = "BlockQuote", True
        elif c == 0x3E and self.i == 0:
            kind, self.quote = "BlockQuote", True
        else:
            raise self.reserved_error()
        self.stack.append(_Open(kind, argument, self.utf16, start, len(self.out)))

    def open_code(self) -> tuple[str, str]:
        at = self.at
        if not (at(self.i + 1) == 0x60 and at(self.i + 2) == 0x60):
            return "Code", ""
        self.i += 3
        kind, argument = "Pre", ""
        end = self.i
        while at(end) not in _SPACE and at(end) != 0x60:
            end += 1
        if self.i != end and end < self.size and at(end) != 0x60:
            kind, argument = "PreCode", self.data[self.i:end].decode("utf-8", "replace")
            self.i = end
        self.skip_first_newline()
        self.i -= 1
        return kind, argument

    def skip_first_newline(self) -> None:
        at = self.at
        if at(self.i) in (0x0A, 0x0D):
            pair = at(self.i + 1) in (0x0A, 0x0D) and at(self.i) != at(self.i + 1)
            self.i += 2 if pair else 1

    def close(self, c: int) -> None:
        top = self.stack[-1]
        if c == 0x0A and top.type != "BlockQuote":
            raise EntityError(f"Can't find end of {top.type} entity at byte offset "
                              f"{top.byte_offset}")
        argument, skip = top.argument, self.utf16 == top.offset
        if top.type in ("Underline", "Spoiler"):
            self.i += 1
        elif top.type in ("Pre", "PreCode"):
            self.i += 2
        elif top.type == "TextUrl":
            if self.at(self.i + 1) != 0x28:
                url = self.out[top.out_pos:].decode("utf-8", "replace")
            else:
                url = self.url()
            argument = checked_link(url)
            skip = skip or not argument
        elif top.type == "CustomEmoji":
            if self.at(self.i + 1) != 0x28:
                raise EntityError("Custom emoji entity must contain a tg://emoji URL")
            match = _CUSTOM_EMOJI.fullmatch(self.url(custom=True))
            if match is None:
                raise EntityError("Invalid custom emoji identifier specified")
            argument = match.group(1)
        elif top.type == "BlockQuote":
            self.quote = False
            self.out.append(self.data[self.i])
            self.utf16 += 1
        if not skip:
            self.entities.append(Entity(top.type, top.offset, self.utf16 - top.offset, argument))
        self.stack.pop()

    def url(self, custom: bool = False) -> str:
        """The (escaped) URL of [text](url) from its "(": the cursor ends on ")"."""
        at = self.at
        self.i += 2
        begin, raw = self.i, bytearray()
        while self.i < self.size and at(self.i) != 0x29:
            if at(self.i) == 0x5C and 0 < at(self.i + 1) <= 126:
                raw.append(at(self.i + 1))
                self.i += 2
                continue
            raw.append(at(self.i))
            self.i += 1
        if at(self.i) != 0x29:
            what = "a custom emoji URL" if custom else "a URL"
            raise EntityError(f"Can't find end of {what} at byte offset {begin}")
        return raw.decode("utf-8", "replace")


class _Markdown(_Parser):
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""

    def run(self) -> Formatted:
        at = self.at
        while self.i < self.size:
            c = self.data[self.i]
            if c == 0x5C and at(self.i + 1) in (0x5F, 0x2A, 0x60, 0x5B):
                self.i += 1
                self.out.append(self.data[self.i])
                self.utf16 += 1
            elif c not in (0x5F, 0x2A, 0x60, 0x5B):
                self.copy_byte(c)
            else:
                self.entity(c)
            self.i += 1
        return Formatted(self.text(), _sorted(self.entities))

    def entity(self, c: int) -> None:
        at, begin = self.at, self.i
        end_char = 0x5D if c == 0x5B else c
        pre, language = False, ""
        self.i += 1
        if c == 0x60 and at(self.i) == 0x60 and at(self.i + 1) == 0x60:
            self.i += 2
            pre = True
            end = self.i
            while at(end) not in _SPACE and at(end) != 0x60:
                end += 1
            if self.i != end and end < self.size and at(end) != 0x60:
                language = self.data[self.i:end].decode("utf-8", "replace")
                self.i = end
            if at(self.i) in (0x0A, 0x0D):
                pair = at(self.i + 1) in (0x0A, 0x0D) and at(self.i) != at(self.i + 1)
                self.i += 2 if pair else 1
        offset = self.utf16
        while self.i < self.size and (at(self.i) != end_char or (
                pre and not (at(self.i + 1) == 0x60 and at(self.i + 2) == 0x60))):
            self.copy_byte(at(self.i))
            self.i += 1
        if self.i == self.size:
            raise EntityError(f"Can't find end of the entity starting at byte offset {begin}")
        if offset != self.utf16:
            self.add(c, begin, offset, pre, language)
        if pre:
            self.i += 2

    def add(self, c: int, begin: int, offset: int, pre: bool, language: str) -> None:
        length = self.utf16 - offset
        if c == 0x5F:
            self.entities.append(Entity("Italic", offset, length))
        elif c == 0x2A:
            self.entities.append(Entity("Bold", offset, length))
        elif c == 0x5B:
            if self.at(self.i + 1) != 0x28:
                url = self.data[begin + 1:self.i].decode("utf-8", "replace")
            else:
                self.i += 2
                start = self.i
                while self.i < self.size and self.at(self.i) != 0x29:
                    self.i += 1
                url = self.data[start:self.i].decode("utf-8", "replace")
            if link := checked_link(url):
                self.entities.append(Entity("TextUrl", offset, length, link))
        elif pre:
            kind = "PreCode" if language else "Pre"
            self.entities.append(Entity(kind, offset, length, language))
        else:
            self.entities.append(Entity("Code", offset, length))
