"""Telegram sandbox: sendPhoto, sendDocument, editMessageText and editMessageCaption over real
HTTP, every check with Telegram's exact words, and the `sent` listing of files."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from resources.telegram import sandbox_bot_token, sandbox_bot_username
from sandbox.server import SandboxServer

GRINNING = "\U0001F600"  # two UTF-16 units
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the "
                "message")


# --- images, made by a real encoder (Pillow) or, for broken ones, chunk by chunk -------------

def png(width: int, height: int, mode: str = "RGB", noise: bool = False) -> bytes:
    if noise:
        image = Image.frombytes(mode, (width, height), os.urandom(width * height * len(mode)))
    else:
        image = Image.new(mode, (width, height), "white")
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0 if noise else 6)  # noise does not compress
    return out.getvalue()


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(out, "JPEG")
    return out.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(width: int, height: int, rows: int) -> bytes:
    """An RGB PNG whose IDAT holds `rows` rows (IHDR promises `height`)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"".join(b"\0" + b"\x80" * 3 * width for _ in range(rows)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


# --- a bot and a chat of its own per test ----------------------------------------------------

class Bot:
    def __init__(self, api: str, chat_type: str = "group", account: str | None = None,
                 chat: int | None = None) -> None:
        self.api = api
        self.account = account or f"c-{uuid.uuid4().hex[:8]}"
        self.name = sandbox_bot_username(self.account)
        self.base = f"{api}/bot{sandbox_bot_token(self.account)}"
        self.chat = chat or -(10**12 + uuid.uuid4().int % 10**9)
        if chat is None:
            self.set_chat(self.chat, type=chat_type)

    def set_chat(self, chat_id: int, **chat: Any) -> None:
        httpx.post(f"{self.api}/_control/chats", json={"bot": self.name, "chat_id": chat_id,
                                                        **chat}).raise_for_status()

    def call(self, method: str, files: dict[str, Any] | None = None,
             **params: Any) -> httpx.Response:
        params.setdefault("chat_id", self.chat)
        if files is None:
            return httpx.post(f"{self.base}/{method}", json=params, timeout=60)
        form = {k: str(v) for k, v in params.items()}
        return httpx.post(f"{self.base}/{method}", data=form, files=files, timeout=60)

    def photo(self, image: bytes, name: str = "chart.png", **params: Any) -> httpx.Response:
        return self.call("sendPhoto", files={"photo": (name, image, "image/png")}, **params)

    def document(self, data: bytes, name: str = "report.csv", ctype: str = "text/csv",
                 **params: Any) -> httpx.Response:
        return self.call("sendDocument", files={"document": (name, data, ctype)}, **params)

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        return httpx.get(f"{self.api}/_control/sent", params={
            "bot": self.name, "chat_id": chat_id or self.chat}).json()


@pytest.fixture
def api(sandbox: Any) -> str:
    return f"{sandbox.url}/telegram"


@pytest.fixture
def bot(api: str) -> Bot:
    return Bot(api)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    return body["result"]


def refused(response: httpx.Response, description: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"ok": False, "error_code": status, "description": description}


# --- sendPhoto -------------------------------------------------------------------------------

def test_photo_upload_round_trip_and_listing(bot: Bot) -> None:
    image = png(1600, 900)
    text = ok(bot.call("sendMessage", text="before"))
    message = ok(bot.photo(image, caption="<b>Daily</b> report &amp; more", parse_mode="HTML",
                           disable_notification="true"))
    assert message["message_id"] == text["message_id"] + 1
    assert message["chat"]["id"] == bot.chat and message["from"]["username"] == bot.name
    assert message["caption"] == "Daily report & more"
    assert message["caption_entities"] == [{"offset": 0, "length": 5, "type": "bold"}]
    sizes = message["photo"]
    assert [(p["width"], p["height"]) for p in sizes] == [
        (90, 51), (320, 180), (800, 450), (1280, 720), (1600, 900)]
    assert sizes[-1]["file_size"] == len(image)
    assert len({p["file_id"] for p in sizes}) == len(sizes)
    assert all(p["file_unique_id"] and p["file_size"] > 0 for p in sizes)
    assert "text" not in message and "_sandbox" not in message
    listed = bot.sent()
    assert [m["message_id"] for m in listed] == [text["message_id"], message["message_id"]]
    assert listed[0]["kind"] == "text" and listed[0]["parse_mode"] is None
    entry = listed[1]
    assert {k: entry[k] for k in ("kind", "caption", "parse_mode", "file_size", "sha256", "width",
                                  "height", "format", "source", "disable_notification",
                                  "message_id", "date")} == {
        "kind": "photo", "caption": "Daily report & more", "parse_mode": "HTML",
        "file_size": len(image), "sha256": hashlib.sha256(image).hexdigest(), "width": 1600,
        "height": 900, "format": "png", "source": "upload", "disable_notification": True,
        "message_id": message["message_id"], "date": message["date"]}


def test_a_photo_over_2560_pixels_is_stored_at_2560(bot: Bot) -> None:
    sizes = ok(bot.photo(png(5000, 2500)))["photo"]
    assert (sizes[-1]["width"], sizes[-1]["height"]) == (2560, 1280)
    assert bot.sent()[-1]["width"] == 5000  # the listing keeps the upload's own size


def test_jpeg_photos_are_read_from_their_frame_header(bot: Bot) -> None:
    image = jpeg(640, 480)
    message = ok(bot.photo(image, name="chart.jpg"))
    assert (message["photo"][-1]["width"], message["photo"][-1]["height"]) == (640, 480)
    assert bot.sent()[-1]["format"] == "jpeg"


def test_caption_length_counts_utf16_units_after_entity_parsing(bot: Bot) -> None:
    image = png(200, 100)
    fits = f"<b>{GRINNING * 500}</b><i>{'a' * 22}</i>&amp;&lt;"  # 1000 + 22 + 2 = 1024 units
    assert len(fits.encode("utf-16-le")) // 2 > 1024  # the markup itself does not count
    message = ok(bot.photo(image, caption=fits, parse_mode="HTML"))
    assert message["caption"] == GRINNING * 500 + "a" * 22 + "&<"
    assert message["caption_entities"] == [{"offset": 0, "length": 1000, "type": "bold"},
                                           {"offset": 1000, "length": 22, "type": "italic"}]
    refused(bot.photo(image, caption=fits + "x", parse_mode="HTML"),
            "Bad Request: message caption is too long")
    refused(bot.photo(image, caption=GRINNING * 512 + "a"),  # plain: 1025 units
            "Bad Request: message caption is too long")
    ok(bot.photo(image, caption="*" * 1024, parse_mode=""))  # no parse_mode: plain text


@pytest.mark.parametrize(("caption", "description"), [
    ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
    ("é <b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ("x</b>", "Unexpected end tag at byte offset 1"),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ("é <b", "Unclosed start tag at byte offset 3"),  # UTF-8 bytes: é is two
    ('<a href="x>y</a>', "Unclosed start tag at byte offset 0"),
    ("<a href>x</a>", 'Expected equal sign in declaration of an attribute of the tag "a" at '
                      "byte offset 0"),
    ("<tg-emoji emoji-id=1>x</tg-emoji>", 'Unsupported start tag "tg-emoji" at byte offset 0'),
    ("&#xD83D;", "Text contains invalid Unicode characters after decoding HTML entities, check "
                 "for unmatched surrogate code units"),
])
def test_html_captions_telegram_cannot_parse(bot: Bot, caption: str, description: str) -> None:
    refused(bot.photo(png(20, 20), caption=caption, parse_mode="HTML"),
            f"Bad Request: can't parse entities: {description}")


def test_every_supported_html_tag_and_entity(bot: Bot) -> None:
    caption = ('<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>'
               '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span>'
               '<tg-spoiler>t</tg-spoiler><a href="https://example.com/x">a</a><code>c</code>'
               '<pre><code class="language-python">x</code></pre><blockquote>q</blockquote>'
               "&lt;&gt;&amp;&quot;&#65;&#x42;&nbsp;")
    message = ok(bot.photo(png(20, 20), caption=caption, parse_mode="html"))
    assert message["caption"] == 'bsieunskdptacxq<>&"AB&nbsp;'
    types = [(e["type"], e["offset"]) for e in message["caption_entities"]]
    assert types == [("bold", 0), ("bold", 1), ("italic", 2), ("italic", 3), ("underline", 4),
                     ("underline", 5), ("strikethrough", 6), ("strikethrough", 7),
                     ("strikethrough", 8), ("spoiler", 9), ("spoiler", 10), ("text_link", 11),
                     ("code", 12), ("pre", 13), ("blockquote", 14)]
    assert message["caption_entities"][11]["url"] == "https://example.com/x"
    assert message["caption_entities"][13]["language"] == "python"


def test_markdown_captions_and_parse_modes(bot: Bot) -> None:
    image = png(20, 20)
    refused(bot.photo(image, caption="80% used.", parse_mode="MarkdownV2"),
            "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
            "with the preceding '\\'")
    refused(bot.photo(image, caption="*bold", parse_mode="MarkdownV2"),
            "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 0")
    v2 = ok(bot.photo(image, caption="*80%* used\\. _fine_", parse_mode="MarkdownV2"))
    assert v2["caption"] == "80% used. fine"
    assert v2["caption_entities"] == [{"offset": 0, "length": 3, "type": "bold"},
                                      {"offset": 10, "length": 4, "type": "italic"}]
    legacy = ok(bot.photo(image, caption="*a* [b](https://example.com)", parse_mode="Markdown"))
    assert legacy["caption"] == "a b"
    refused(bot.photo(image, caption="*a", parse_mode="Markdown"),
            "Bad Request: can't parse entities: Can't find end of the entity starting at byte "
            "offset 0")
    refused(bot.photo(image, caption="x", parse_mode="BBCode"),
            "Bad Request: unsupported parse_mode")
    refused(bot.call("sendMessage", text="x", parse_mode="BBCode"),
            "Bad Request: unsupported parse_mode")


@pytest.mark.parametrize(("width", "height", "accepted"), [
    (5000, 5000, True), (5000, 5001, False),  # width + height <= 10000
    (2000, 100, True), (2001, 100, False),  # at most 20:1
    (100, 2000, True), (100, 2001, False),
    (1, 1, True),
])
def test_photo_dimensions(bot: Bot, width: int, height: int, accepted: bool) -> None:
    answer = bot.photo(png(width, height, mode="L"))
    if accepted:
        assert ok(answer)["photo"][-1]["file_size"] > 0
    else:
        refused(answer, "Bad Request: PHOTO_INVALID_DIMENSIONS")


def test_photos_that_do_not_decode(bot: Bot) -> None:
    good = png(64, 48)
    idat = good.index(b"IDAT")
    corrupt = good[:idat + 10] + bytes([good[idat + 10] ^ 0xFF]) + good[idat + 11:]
    for image in (b"%PDF-1.7 not an image", good[: len(good) // 2], corrupt,
                  handmade_png(16, 16, rows=15), handmade_png(16, 16, rows=17),
                  b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\x89PNG\r\n\x1a\n"):
        refused(bot.photo(image), "Bad Request: IMAGE_PROCESS_FAILED")
    assert ok(bot.photo(handmade_png(16, 16, rows=16)))["photo"][-1]["width"] == 16


def test_photo_and_document_size_limits(bot: Bot) -> None:
    big = png(2000, 1800, noise=True)  # incompressible: over 10 MB as a PNG
    assert 10 * 1024 * 1024 < len(big) < 50 * 1024 * 1024
    refused(bot.photo(big), "Bad Request: PHOTO_SAVE_FILE_INVALID")
    assert ok(bot.document(big, "noise.png", "image/png"))["document"]["file_size"] == len(big)
    huge = b"\0" * (50 * 1024 * 1024 + 1)
    refused(bot.document(huge, "huge.bin", "application/octet-stream"),
            "Request Entity Too Large", status=413)
    assert ok(bot.document(huge[:-1], "max.bin", "application/octet-stream"))
    refused(bot.photo(b""), "Bad Request: file must be non-empty")


def test_missing_files_and_file_ids(bot: Bot) -> None:
    refused(bot.call("sendPhoto", caption="no photo"),
            "Bad Request: there is no photo in the request")
    refused(bot.call("sendDocument"), "Bad Request: there is no document in the request")
    first = ok(bot.photo(png(300, 200)))
    again = ok(bot.call("sendPhoto", photo=first["photo"][-1]["file_id"], caption="again"))
    assert again["photo"] == first["photo"] and again["caption"] == "again"
    assert bot.sent()[-1]["source"] == "file_id"
    document = ok(bot.document(b"a,b\n1,2\n"))["document"]
    refused(bot.call("sendPhoto", photo=document["file_id"]),
            "Bad Request: type of file mismatch")
    assert ok(bot.call("sendDocument", document=document["file_id"]))["document"] == document
    refused(bot.call("sendPhoto", photo="AgACAgInotafileid"),
            "Bad Request: wrong file identifier/HTTP URL specified")
    other = Bot(bot.api)  # file ids belong to the bot that received them
    refused(other.call("sendPhoto", photo=first["photo"][-1]["file_id"]),
            "Bad Request: wrong file identifier/HTTP URL specified")
    linked = ok(bot.call("sendPhoto", photo="https://example.com/chart.png"))
    assert linked["photo"][0]["width"] == 0
    assert bot.sent()[-1]["source"] == "url"
    linked_doc = ok(bot.call("sendDocument", document="https://example.com/files/r.pdf"))
    assert linked_doc["document"]["file_name"] == "r.pdf"
    assert linked_doc["document"]["mime_type"] == "application/pdf"


def test_document_round_trip(bot: Bot) -> None:
    data = b"day,views\n2026-11-25,1200\n"
    message = ok(bot.document(data, caption="<i>csv</i>", parse_mode="HTML"))
    document = message["document"]
    assert {k: document[k] for k in ("file_name", "mime_type", "file_size")} == {
        "file_name": "report.csv", "mime_type": "text/csv", "file_size": len(data)}
    assert message["caption"] == "csv"
    guessed = ok(bot.document(b"%PDF-1.7", "r.pdf", "application/octet-stream"))
    assert guessed["document"]["mime_type"] == "application/pdf"
    entry = bot.sent()[0]
    assert {k: entry[k] for k in ("kind", "caption", "parse_mode", "file_size", "sha256",
                                  "file_name", "mime_type")} == {
        "kind": "document", "caption": "csv", "parse_mode": "HTML", "file_size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "file_name": "report.csv",
        "mime_type": "text/csv"}


def test_files_get_the_chat_checks_and_rate_limits_of_messages(api: str) -> None:
    bot = Bot(api)
    refused(bot.photo(png(10, 10), chat_id=-999), "Bad Request: chat not found")
    refused(bot.call("sendPhoto", chat_id="", photo="x"), "Bad Request: chat_id is empty")
    bot.set_chat(555_001, started=False)
    refused(bot.photo(png(10, 10), chat_id=555_001),
            "Forbidden: bot can't initiate conversation with a user", status=403)
    bot.set_chat(555_002, blocked=True)
    refused(bot.document(b"x", chat_id=555_002), "Forbidden: bot was blocked by the user",
            status=403)
    private = Bot(api, chat_type="private")
    answers = [private.photo(png(10, 10)) for _ in range(10)]
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    limited = answers[statuses.index(429)]
    assert limited.json()["parameters"]["retry_after"] >= 1
    assert limited.json()["description"].startswith("Too Many Requests: retry after ")
    ids = [m["message_id"] for m in private.sent()]
    assert ids == list(range(1, statuses.count(200) + 1))


# --- edits -----------------------------------------------------------------------------------

def test_edit_message_text(bot: Bot) -> None:
    sent = ok(bot.call("sendMessage", text="<b>views</b> 10", parse_mode="HTML"))
    same = {"message_id": sent["message_id"], "text": "<b>views</b> 10", "parse_mode": "HTML"}
    refused(bot.call("editMessageText", **same), NOT_MODIFIED)
    # Same markup written differently is the same content; the same text unformatted is not.
    refused(bot.call("editMessageText", **{**same, "text": "<B>views</> 1&#48;"}), NOT_MODIFIED)
    plain = ok(bot.call("editMessageText", message_id=sent["message_id"], text="views 10"))
    assert plain["text"] == "views 10" and "entities" not in plain and plain["edit_date"] > 0
    edited = ok(bot.call("editMessageText", message_id=sent["message_id"], text="views 11"))
    assert edited["message_id"] == sent["message_id"] and edited["text"] == "views 11"
    refused(bot.call("editMessageText", message_id=sent["message_id"], text="views 11"),
            NOT_MODIFIED)
    (entry,) = bot.sent()
    assert entry["text"] == "views 11" and entry["edit_date"] == edited["edit_date"]
    refused(bot.call("editMessageText", message_id=sent["message_id"], text=" "),
            "Bad Request: message text is empty")
    refused(bot.call("editMessageText", message_id=sent["message_id"], text="x" * 4097),
            "Bad Request: message is too long")


def test_edit_message_caption(bot: Bot) -> None:
    photo = ok(bot.photo(png(40, 30), caption="<b>day</b> 1", parse_mode="HTML"))
    mid = photo["message_id"]
    refused(bot.call("editMessageCaption", message_id=mid, caption="<b>day</b> 1",
                     parse_mode="HTML"), NOT_MODIFIED)
    edited = ok(bot.call("editMessageCaption", message_id=mid, caption="<i>day</i> 2",
                         parse_mode="HTML"))
    assert edited["caption"] == "day 2"
    assert edited["caption_entities"] == [{"offset": 0, "length": 3, "type": "italic"}]
    assert edited["photo"] == photo["photo"]
    entry = bot.sent()[-1]
    assert (entry["caption"], entry["parse_mode"], entry["kind"]) == ("day 2", "HTML", "photo")
    removed = ok(bot.call("editMessageCaption", message_id=mid))
    assert "caption" not in removed and "caption_entities" not in removed
    refused(bot.call("editMessageCaption", message_id=mid, caption=GRINNING * 513),
            "Bad Request: message caption is too long")
    refused(bot.call("editMessageText", message_id=mid, text="no"),
            "Bad Request: there is no text in the message to edit")
    text = ok(bot.call("sendMessage", text="plain"))
    refused(bot.call("editMessageCaption", message_id=text["message_id"], caption="c"),
            "Bad Request: there is no caption in the message to edit")
    document = ok(bot.document(b"1,2\n"))
    assert ok(bot.call("editMessageCaption", message_id=document["message_id"],
                       caption="numbers"))["caption"] == "numbers"


def test_edits_of_messages_that_are_not_there_or_not_ours(api: str) -> None:
    bot = Bot(api)
    started = httpx.post(f"{api}/_control/start", json={"bot": bot.name}).json()
    user = started["user_id"]  # the user's "/start" is message 1 of the private chat
    mine = ok(bot.call("sendMessage", chat_id=user, text="hello"))
    assert mine["message_id"] == 2
    refused(bot.call("editMessageText", chat_id=user, message_id=1, text="x"),
            "Bad Request: message can't be edited")
    for message_id in (3, 0, -1, 10**6):
        refused(bot.call("editMessageText", chat_id=user, message_id=message_id, text="x"),
                "Bad Request: message to edit not found")
    refused(bot.call("editMessageText", chat_id=user, text="x"),
            "Bad Request: message identifier is not specified")
    refused(bot.call("editMessageText", chat_id=-424242, message_id=1, text="x"),
            "Bad Request: chat not found")
    other = Bot(api)  # another bot never sent that message
    other.set_chat(user)
    refused(other.call("editMessageText", chat_id=user, message_id=2, text="x"),
            "Bad Request: message to edit not found")
    assert ok(bot.call("editMessageText", chat_id=user, message_id=2, text="hello!"))


# --- persistence -----------------------------------------------------------------------------

def test_files_edits_and_message_ids_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    image = png(120, 80)
    with SandboxServer(state_dir=state, seed=7) as first:
        bot = Bot(f"{first.url}/telegram")
        photo = ok(bot.photo(image, caption="one"))
        ok(bot.call("editMessageCaption", message_id=photo["message_id"], caption="two"))
        account, chat = bot.account, bot.chat
    with SandboxServer(state_dir=state, seed=7) as second:
        again = Bot(f"{second.url}/telegram", account=account, chat=chat)
        (entry,) = again.sent()
        assert (entry["caption"], entry["sha256"]) == ("two", hashlib.sha256(image).hexdigest())
        refused(again.call("editMessageCaption", message_id=photo["message_id"], caption="two"),
                NOT_MODIFIED)
        reused = ok(again.call("sendPhoto", photo=photo["photo"][-1]["file_id"]))
        assert reused["message_id"] == photo["message_id"] + 1
