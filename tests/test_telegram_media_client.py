"""resources.telegram's photos, documents and edits against the sandbox over real HTTP: a real
matplotlib chart round trip, captions measured after entity parsing, edits and their typed
errors, uploads sent at most once, and the operators' report client."""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from resources.http import PermanentError, RetryableError, UnknownOutcome
from resources.telegram import (
    MAX_CAPTION,
    SANDBOX_ALERT_CHAT_ID,
    TelegramClient,
    TelegramMessageNotEditable,
    TelegramMessageNotFound,
    TelegramNotConfigured,
    TelegramResource,
    check_caption,
    html_text_length,
    sandbox_bot_token,
    sandbox_bot_username,
)
from waifugen_assets.core.config import get_settings

GRINNING = "\U0001F600"


def chart_png(width_in: float = 6, height_in: float = 4, dpi: int = 100) -> bytes:
    figure = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot(range(14), [1200 + 37 * d % 300 for d in range(14)], marker="o")
    axes.set_title("views, last 14 days")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class World:
    """A character bot of its own and a group chat (20 messages a minute) for one test."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.api = f"{sandbox.url}/telegram"
        self.account = f"c-{uuid.uuid4().hex[:8]}"
        self.name = sandbox_bot_username(self.account)
        self.token = sandbox_bot_token(self.account)
        self.chat = -(10**12 + uuid.uuid4().int % 10**9)
        self.control("chats", chat_id=self.chat, type="supergroup")
        self.client = TelegramClient(self.token, self.api)

    def control(self, route: str, **body: Any) -> dict[str, Any]:
        answer = httpx.post(f"{self.api}/_control/{route}", json={"bot": self.name, **body})
        answer.raise_for_status()
        return answer.json()

    def sent(self, chat: int | None = None) -> list[dict[str, Any]]:
        return httpx.get(f"{self.api}/_control/sent",
                         params={"bot": self.name, "chat_id": chat or self.chat}).json()

    def requests(self, method: str, since: int) -> list[dict[str, Any]]:
        # The journal masks tokens in paths; each test's requests come one after another.
        return [e for e in self.sandbox.journal("telegram", since)
                if e["path"].endswith(f"/{method}")]

    def journal_end(self) -> int:
        entries = self.sandbox.journal("telegram")
        return entries[-1]["id"] if entries else 0


@pytest.fixture
def world(sandbox: Any) -> Any:
    world = World(sandbox)
    yield world
    world.client.close()


def test_a_matplotlib_chart_round_trips_as_a_photo(world: World) -> None:
    image = chart_png()
    assert png_size(image) == (600, 400)
    since = world.journal_end()
    caption = f"<b>Daily report</b> 2026-11-25 {GRINNING} views &gt; 1k"
    message_id = world.client.send_photo(world.chat, image, caption=caption, parse_mode="HTML")
    (entry,) = world.sent()
    assert entry["message_id"] == message_id
    assert {k: entry[k] for k in ("kind", "caption", "parse_mode", "file_size", "sha256",
                                  "width", "height", "format")} == {
        "kind": "photo", "caption": f"Daily report 2026-11-25 {GRINNING} views > 1k",
        "parse_mode": "HTML", "file_size": len(image),
        "sha256": hashlib.sha256(image).hexdigest(), "width": 600, "height": 400,
        "format": "png"}
    (request,) = world.requests("sendPhoto", since)  # one request: the whole multipart body
    assert request["body"]["size"] > len(image) and world.token not in str(request)


def test_caption_length_is_counted_after_entity_parsing_in_utf16_units() -> None:
    assert html_text_length(f"<b>{GRINNING}</b> a&amp;b") == 6
    assert html_text_length('<a href="https://example.com/a?b=1&amp;c=2">link</a>') == 4
    assert html_text_length("&nbsp;&#x1F600;&#65") == 6 + 2 + 1
    fits = f"<b>{GRINNING * 512}</b>"
    check_caption(fits)
    with pytest.raises(ValueError, match=r"caption is 1025 UTF-16 units long .* limit is 1024"):
        check_caption(fits + ".")
    with pytest.raises(ValueError, match="<div>"):
        check_caption("<div>x</div>")
    with pytest.raises(ValueError, match="never closed"):
        html_text_length("<b>x")
    check_caption("x" * 1100, parse_mode="MarkdownV2")  # left to Telegram, which counts it


def test_captions_at_and_over_the_limit(world: World) -> None:
    image = chart_png(2, 1)
    fits = f"<i>{GRINNING * 500}</i>{'a' * (MAX_CAPTION - 1000)}"
    message_id = world.client.send_photo(world.chat, image, caption=fits, parse_mode="HTML")
    assert world.sent()[-1]["caption"] == GRINNING * 500 + "a" * 24
    since = world.journal_end()
    for caption, mode, words in ((fits + "b", "HTML", "1025 UTF-16 units"),
                                 (GRINNING * 513, None, "1026 UTF-16 units"),
                                 ("<p>x</p>", "HTML", "does not support the HTML tag <p>")):
        with pytest.raises(ValueError, match=words):
            world.client.send_photo(world.chat, image, caption=caption, parse_mode=mode)
    with pytest.raises(ValueError, match="empty"):
        world.client.send_photo(world.chat, b"")
    assert world.requests("sendPhoto", since) == []  # refused before anything was sent
    assert [m["message_id"] for m in world.sent()] == [message_id]


def test_documents_round_trip(world: World) -> None:
    data = b"day,views\n2026-11-25,1200\n"
    message_id = world.client.send_document(world.chat, data, "report-2026-11-25.csv",
                                            caption="<i>raw numbers</i>", parse_mode="HTML")
    (entry,) = world.sent()
    assert entry["message_id"] == message_id
    assert {k: entry[k] for k in ("kind", "file_name", "mime_type", "file_size", "sha256",
                                  "caption")} == {
        "kind": "document", "file_name": "report-2026-11-25.csv", "mime_type": "text/csv",
        "file_size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "caption": "raw numbers"}


def test_edits_say_edited_or_not_modified(world: World) -> None:
    caption = "<b>views</b> 1200"
    photo = world.client.send_photo(world.chat, chart_png(3, 2), caption=caption,
                                    parse_mode="HTML")
    assert world.client.edit_message_caption(world.chat, photo, caption, "HTML") == \
        "not_modified"
    assert world.client.edit_message_caption(world.chat, photo, "<b>views</b> 1250",
                                             "HTML") == "edited"
    assert world.sent()[-1]["caption"] == "views 1250"
    text = world.client.send_message(world.chat, "<i>part 2</i>", parse_mode="HTML")
    assert world.client.edit_message_text(world.chat, text, "<i>part 2</i>", "HTML") == \
        "not_modified"
    assert world.client.edit_message_text(world.chat, text, "part 2, updated") == "edited"
    assert world.sent()[-1]["text"] == "part 2, updated"
    with pytest.raises(PermanentError, match="there is no text in the message to edit"):
        world.client.edit_message_text(world.chat, photo, "x")
    with pytest.raises(PermanentError, match="there is no caption in the message to edit"):
        world.client.edit_message_caption(world.chat, text, "x")


def test_edit_errors_are_typed(world: World) -> None:
    user = world.control("start")["user_id"]  # the user's /start is message 1 of that chat
    mine = world.client.send_message(user, "hello")
    assert world.client.edit_message_text(user, mine, "hello") == "not_modified"
    with pytest.raises(TelegramMessageNotEditable) as not_ours:
        world.client.edit_message_text(user, 1, "hijacked")
    with pytest.raises(TelegramMessageNotFound) as missing:
        world.client.edit_message_text(user, mine + 50, "x")
    for error in (not_ours.value, missing.value):
        assert isinstance(error, PermanentError) and error.status == 400
    assert "message can't be edited" in str(not_ours.value)
    assert "message to edit not found" in str(missing.value)
    with pytest.raises(TelegramMessageNotFound):
        world.client.edit_message_caption(world.chat, 7, "x")


def test_an_upload_is_not_sent_again_once_it_may_have_arrived(world: World) -> None:
    sandbox, route = world.sandbox, f"/bot{world.token}/sendPhoto"
    image = chart_png(3, 2)
    # The sandbox posts the photo, then the connection drops before the answer.
    sandbox.add_fault(system="telegram", route=route, action="drop", phase="after", times=1)
    since = world.journal_end()
    with pytest.raises(UnknownOutcome, match="reconcile"):
        world.client.send_photo(world.chat, image, caption="day 1")
    assert len(world.requests("sendPhoto", since)) == 1
    (posted,) = world.sent()
    # Reconciling: the same caption on that message is "not modified", so it is there.
    assert world.client.edit_message_caption(world.chat, posted["message_id"], "day 1") == \
        "not_modified"
    # A 5xx may come after Telegram acted: not resent either.
    sandbox.add_fault(system="telegram", route=route, action="status", status=500, times=1)
    since = world.journal_end()
    with pytest.raises(RetryableError):
        world.client.send_photo(world.chat, image, caption="day 2")
    assert len(world.requests("sendPhoto", since)) == 1
    # A 429 is Telegram refusing before acting: resent after retry_after, posted once.
    sandbox.add_fault(system="telegram", route=route, action="rate_limit", retry_after=1,
                      times=1)
    since = world.journal_end()
    message_id = world.client.send_photo(world.chat, image, caption="day 3")
    assert len(world.requests("sendPhoto", since)) == 2
    assert [(m["message_id"], m["caption"]) for m in world.sent()] == [
        (posted["message_id"], "day 1"), (message_id, "day 3")]


def test_report_client_is_the_operators_bot_and_chat(sandbox: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client, chat = TelegramResource(base_url=f"{sandbox.url}/telegram").report_client()
    with client:
        assert chat == SANDBOX_ALERT_CHAT_ID
        assert client.get_me()["username"] == "waifugen_alerts_bot"
    own, chat = TelegramResource(base_url=f"{sandbox.url}/telegram",
                                 alert_chat_id="-100123").report_client()
    own.close()
    assert chat == "-100123"
    # Production without the two Telegram settings (the others it requires are set).
    monkeypatch.setenv("WAIFUGEN_MODE", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("WAIFUGEN_SECRET_KEY", Fernet.generate_key().decode())
    for name in ("OLLAMA_HOST", "A2E_API_KEY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_ALERT_CHAT_ID", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(TelegramNotConfigured,
                           match="set TELEGRAM_BOT_TOKEN and TELEGRAM_ALERT_CHAT_ID"):
            TelegramResource().report_client()
        with pytest.raises(TelegramNotConfigured, match=r"set TELEGRAM_ALERT_CHAT_ID$"):
            TelegramResource(bot_token="123:abc").report_client()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_a_probe_edit_is_not_retried_so_a_change_is_never_hidden(world: World) -> None:
    """An edit whose first try changed the message and whose answer was lost: retried, it
    answers "not modified" (as if the text had been there); as a probe it stops unknown."""
    sandbox, route = world.sandbox, f"/bot{world.token}/editMessageText"
    message = world.client.send_message(world.chat, "an alert")
    sandbox.add_fault(system="telegram", route=route, action="drop", phase="after", times=1)
    since = world.journal_end()
    assert world.client.edit_message_text(world.chat, message, "the report") == "not_modified"
    assert len(world.requests("editMessageText", since)) == 2  # the retry hid the change

    sandbox.add_fault(system="telegram", route=route, action="drop", phase="after", times=1)
    since = world.journal_end()
    with pytest.raises(UnknownOutcome):
        world.client.edit_message_text(world.chat, message, "the report, again", retry=False)
    assert len(world.requests("editMessageText", since)) == 1
    assert world.sent()[-1]["text"] == "the report, again"  # changed: the caller must know
