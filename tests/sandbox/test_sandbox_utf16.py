"""The Telegram sandbox's own UTF-16 length (the 4096-unit text limit), checked against known
answers and against the client's independent count."""

from __future__ import annotations

import random

import httpx
import pytest

from resources.telegram import utf16_length as client_utf16_length
from sandbox.systems.telegram import MAX_TEXT, utf16_length

GRINNING = "\U0001F600"  # 😀, outside the BMP: a surrogate pair
THUMBS_MEDIUM = "\U0001F44D\U0001F3FD"  # 👍🏽: two astral code points
FAMILY = "\U0001F468\u200D\U0001F469\u200D\U0001F467"  # 👨‍👩‍👧: 3 astral + 2 ZWJ


@pytest.mark.parametrize(("text", "units"), [
    ("", 0),
    ("a", 1),
    ("\u00e9", 1),  # é, precomposed
    ("e\u0301", 2),  # é, e + combining acute
    ("\u20ac", 1),  # €
    ("\uffff", 1),  # the last BMP code point
    ("\U00010000", 2),  # the first astral one
    ("\U0010FFFF", 2),  # the last one
    (GRINNING, 2),
    (THUMBS_MEDIUM, 4),
    (FAMILY, 8),
    ("\u2764\ufe0f", 2),  # ❤️: BMP heart + variation selector
    ("\U0001F1EF\U0001F1F5", 4),  # 🇯🇵: two regional indicators
    ("hi " + GRINNING + "!", 6),
])
def test_known_answers(text: str, units: int) -> None:
    assert utf16_length(text) == units


@pytest.mark.parametrize(("text", "units"), [
    (GRINNING * 2048, 4096),
    ("a" * 4094 + GRINNING, 4096),
    ("a" * 4095 + GRINNING, 4097),  # the pair straddles the limit
    (THUMBS_MEDIUM * 1024, 4096),
    (THUMBS_MEDIUM * 1023 + "abcd", 4096),
    (THUMBS_MEDIUM * 1023 + "abc" + GRINNING, 4097),
    ("\u00e9" * 4096, 4096),
    (FAMILY * 512, 4096),
    (GRINNING * 2048 + "a", 4097),
])
def test_emoji_at_the_4096_unit_limit(text: str, units: int) -> None:
    assert utf16_length(text) == units
    assert (utf16_length(text) <= MAX_TEXT) == (units <= 4096)


def test_a_lone_surrogate_has_no_length() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        utf16_length("a\ud83d")
    with pytest.raises(UnicodeEncodeError):  # the client's count refuses it as well
        client_utf16_length("a\ud83d")


_RANGES = [
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin-1 and Latin Extended
    (0x3040, 0x30FF),  # kana
    (0x4E00, 0x9FFF),  # CJK
    (0xE000, 0xFFFF),  # private use up to the last BMP code point
    (0x10000, 0x1FFFF),  # astral: historic scripts, symbols, emoji
    (0x1F300, 0x1FAFF),  # emoji
    (0x20000, 0x2FFFF),  # CJK extensions
    (0xF0000, 0x10FFFF),  # supplementary private use
]


def _random_text(rng: random.Random) -> str:
    chars = []
    for _ in range(rng.randint(0, 80)):
        low, high = rng.choice(_RANGES)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def test_agrees_with_the_client_on_random_text() -> None:
    rng = random.Random(20240616)
    texts = [_random_text(rng) for _ in range(400)]
    assert any(utf16_length(t) > len(t) for t in texts)  # astral characters were drawn
    for text in texts:
        assert utf16_length(text) == client_utf16_length(text), ascii(text)


def test_send_message_counts_utf16_units(sandbox_server) -> None:
    from waifugen_assets.core.sandbox_world import SANDBOX_BOT_TOKEN

    api = f"{sandbox_server.url}/telegram"
    chat_id = 990_016_001
    httpx.post(f"{api}/_control/chats", json={"chat_id": chat_id}).raise_for_status()
    url = f"{api}/bot{SANDBOX_BOT_TOKEN}/sendMessage"
    fits = httpx.post(url, json={"chat_id": chat_id, "text": GRINNING * 2048})
    assert fits.status_code == 200, fits.text
    assert fits.json()["result"]["text"] == GRINNING * 2048
    over = httpx.post(url, json={"chat_id": chat_id, "text": "a" * 4095 + GRINNING})
    assert over.status_code == 400
    assert over.json()["description"] == "Bad Request: message is too long"
