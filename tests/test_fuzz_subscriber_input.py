"""Property-based tests of subscriber input: whatever arrives is stored, refused with a 4xx (or
an ImportFileError), or acknowledged as ignored; never a 500 or another exception, and nothing is
written unless the input was valid.

The webhook service runs over real HTTP (uvicorn on a loopback port, as in test_webhooks.py) on
a real PostgreSQL; the CSV import reads real files into it. Examples are derandomized (the same
ones every run) and modest in number, so the file stays fast and cannot flake.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_webhooks import FANVUE_SECRET, NOW, TG_SECRET, Service

from resources.webhook_signing import sign_fanvue
from waifugen_assets.core import schema
from waifugen_assets.subscribers.csv_import import ImportFileError, import_csv, parse_csv
from waifugen_assets.subscribers.events import FANVUE_TYPES

CHAR = "aiko-tanaka"  # Fanvue creator uuid known
OTHER = "mei-lin"  # Fanvue account whose uuid no DM run has learned yet
CREATOR = "c0ffee00-0000-4000-8000-00000000a1c0"
BOTS = {CHAR: 555111, OTHER: 555222}

FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=120,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# Any text, unpaired surrogates and control characters (NUL) included.
any_text = st.text(st.characters() | st.characters(categories=["Cs", "Cc"]), max_size=30)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
           | st.floats() | any_text)
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(any_text, kids, max_size=4), max_leaves=12)


def _one_field_junk(shape: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Well-formed objects (so many are valid and get stored), the same with one field
    replaced by any JSON value or removed, and any JSON at all."""
    def spoil(obj: dict[str, Any], index: int, junk: Any, drop: bool) -> dict[str, Any]:
        key = sorted(obj)[index % len(obj)]
        rest = {k: v for k, v in obj.items() if k != key}
        return rest if drop else {**rest, key: junk}

    spoiled = st.builds(spoil, shape, st.integers(0, 20), json_values, st.booleans())
    return st.one_of(shape, spoiled, json_values)


iso_times = st.one_of(
    st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00+09:00"]),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(["2026-11-25T10:00:00", "9999-12-31T23:00:00-05:00",
                     "0001-01-01T00:00:00+01:00", "yesterday"]))
ids = st.sampled_from(["evt_1", "evt_2", "u1", " ", "x" * 201]) | st.text(min_size=1, max_size=30)
event_ids = ids.map(lambda i: f"evt_{i}")  # mostly new events, so most valid ones are stored
amounts = st.sampled_from([0, 500, -5, 2**63 - 1, 2**63, 10**30]) | st.integers(0, 10**6)
currencies = st.sampled_from(["USD", "usd", "XTR", "dollars", ""])
zones = st.sampled_from(["Asia/Tokyo", "America", "Mars/Base", "../etc", "zone.tab"]) | any_text

# Every field any event type needs is there; the others come and go.
fanvue_data = st.fixed_dictionaries({
    "userUuid": ids, "amount": amounts, "currency": currencies, "text": any_text,
    "messageUuid": ids}, optional={
    "handle": any_text, "displayName": any_text, "subscribedAt": iso_times, "tier": any_text,
    "timezone": zones, "sentAt": iso_times, "purchaseUuid": ids})
fanvue_bodies = _one_field_junk(st.fixed_dictionaries({
    "id": event_ids,
    "type": st.sampled_from([*FANVUE_TYPES, "story.liked"]),
    "createdAt": iso_times,
    "creatorUuid": st.sampled_from([CREATOR, "another-creator"])
    | st.sampled_from(["another-creator", f" {CREATOR} "]),
    "data": _one_field_junk(fanvue_data)}))

chats = _one_field_junk(st.fixed_dictionaries({
    "id": st.sampled_from([4242, -100, 10**250]) | st.integers(),
    "type": st.sampled_from(["private", "private", "group"])}))
unix_times = st.sampled_from([NOW, 0, -1, 10**20, -(10**20)]) | st.integers()
tg_messages = _one_field_junk(st.fixed_dictionaries({
    "chat": chats, "date": unix_times,
    "text": st.sampled_from(["/start", "/start c-aiko-tanaka", "STOP"]) | any_text},
    optional={"message_id": st.integers(), "caption": any_text,
              "from": st.fixed_dictionaries({}, optional={"first_name": any_text,
                                                          "username": any_text}),
              "successful_payment": _one_field_junk(st.fixed_dictionaries(
                  {"currency": currencies, "total_amount": amounts}))}))
update_ids = st.integers(0, 10**9) | st.sampled_from([-1, 10**300])
tg_updates = st.one_of(
    _one_field_junk(st.fixed_dictionaries({"update_id": update_ids, "message": tg_messages})),
    _one_field_junk(st.fixed_dictionaries({"update_id": update_ids, "my_chat_member":
                                           _one_field_junk(st.fixed_dictionaries({
                                               "chat": chats, "date": unix_times,
                                               "new_chat_member": st.fixed_dictionaries({
                                                   "status": st.sampled_from(
                                                       ["kicked", "member"])})}))})),
    st.fixed_dictionaries({"update_id": update_ids, "callback_query": json_values}))


@pytest.fixture
def client(engine: sa.Engine) -> Iterator[Service]:
    with engine.begin() as conn:
        for slug in (CHAR, OTHER):
            conn.execute(sa.insert(schema.characters).values(id=slug, name=slug, age=25,
                                                             timezone="UTC"))
        for slug, uuid in ((CHAR, CREATOR), (OTHER, None)):
            conn.execute(sa.insert(schema.platform_accounts).values(
                character_id=slug, platform="fanvue", account_ref=slug, external_user_id=uuid))
    service = Service(engine, character_bots=BOTS)
    yield service
    service.close()


def _events(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(schema.inbound_events))


def _post(client: Service, engine: sa.Engine, path: str, raw: bytes,
          headers: dict[str, Any]) -> tuple[int, Any]:
    """POST and check the answer: no 500, a one-line JSON error on a 4xx, and exactly one new
    row when (and only when) the answer says one was stored."""
    before = _events(engine)
    response = client.http.post(path, content=raw, headers=headers)
    added = _events(engine) - before
    assert response.status_code in (200, 400, 401, 403, 404, 405, 413), response.text
    answer = response.json() if response.headers.get("content-type") == "application/json" \
        else None
    if response.status_code == 200:
        assert answer is not None and answer.get("stored") in (0, 1)
        assert added == answer["stored"]
    else:
        assert added == 0
        if answer is not None:
            assert "\n" not in answer["error"] and "\r" not in answer["error"]
    return response.status_code, answer


def _signed(raw: bytes) -> dict[str, str]:
    return {"X-Fanvue-Signature": sign_fanvue(FANVUE_SECRET, raw, NOW),
            "Content-Type": "application/json"}


@FUZZ
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.integers(0, 3000).map(lambda d: b"[" * d + b"]" * d))
def test_any_signed_fanvue_body_is_answered_without_500(client: Service, engine: sa.Engine,
                                                        raw: bytes) -> None:
    _post(client, engine, f"/fanvue/{CHAR}", raw, _signed(raw))


@FUZZ
@given(body=fanvue_bodies, character=st.sampled_from([CHAR, OTHER]))
def test_fanvue_shaped_bodies_are_stored_only_when_valid_and_bound(
        client: Service, engine: sa.Engine, body: dict[str, Any], character: str) -> None:
    raw = json.dumps(body).encode()
    status, answer = _post(client, engine, f"/fanvue/{character}", raw, _signed(raw))
    if answer == {"stored": 1} and character == CHAR:
        # Stored at a character whose creator is known: the event names that creator.
        assert body["creatorUuid"].strip() == CREATOR
    if status == 403:
        assert character == CHAR and body["creatorUuid"].strip() != CREATOR


@FUZZ
@given(update=tg_updates, character=st.sampled_from([CHAR, OTHER]))
def test_any_telegram_update_is_answered_without_500(client: Service, engine: sa.Engine,
                                                     update: Any, character: str) -> None:
    raw = json.dumps(update).encode()
    _post(client, engine, f"/telegram/{character}", raw,
          {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})


@FUZZ
@given(segment=any_text, route=st.sampled_from(["fanvue", "telegram"]))
def test_any_character_segment_is_answered_without_500(client: Service, engine: sa.Engine,
                                                       segment: str, route: str) -> None:
    raw = json.dumps({"id": "evt_seg", "type": "tip.received", "update_id": 1}).encode()
    headers = {**_signed(raw), "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    path = f"/{route}/{quote(segment, safe='', errors='surrogatepass')}"
    status, _ = _post(client, engine, path, raw, headers)
    if segment not in (CHAR, OTHER):
        assert status in (404, 405)


@FUZZ
@given(header=st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                    exclude_characters="\x7f"), max_size=120)
       | st.sampled_from([f"t={NOW},v1=", f"t={'9' * 5000},v1=00", f"t={NOW},t={NOW},v1=0"]),
       raw=st.binary(max_size=200))
def test_any_signature_header_is_refused_unless_it_signs(client: Service, engine: sa.Engine,
                                                         header: str, raw: bytes) -> None:
    # Sent as bytes: any octet an HTTP header may carry, Latin-1 included.
    status, _ = _post(client, engine, f"/fanvue/{CHAR}", raw,
                      {"X-Fanvue-Signature": header.encode("latin-1")})
    assert status == 401


# --- the CSV import ------------------------------------------------------------------------

# What each known column holds: mostly values the parsers accept, edge cases, any text.
_ids = st.sampled_from(["u1", "u2", "@ken", "x" * 201]) | any_text
_COLUMNS: dict[str, st.SearchStrategy[str]] = {
    "User ID": _ids, "Username": _ids, "Name": any_text, "Expires": any_text,
    "Subscribed": st.sampled_from(["2026-11-01", "Nov 25, 2026, 9:05 pm", "11/25/2026",
                                   "0001-01-01T00:00:00+01:00", "31/31/2026"]) | any_text,
    "Total spent": st.sampled_from(["$1,234.56", "12,50 EUR", "-3", "1" * 40,
                                    "$99999999999999999999999999999999"]) | any_text,
    "Currency": st.sampled_from(["USD", "EURO", ""]) | any_text,
    "Tier": st.sampled_from(["vip", "Gold VIP", "x" * 3000]) | any_text,
    "Timezone": zones,
}
_COLUMNS["Start date"] = _COLUMNS["Subscribed"]
HEADERS = list(_COLUMNS)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """A CSV-shaped text: known and unknown headers, cells the parsers care about, any
    delimiter and quoting, sometimes with junk appended."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    if draw(st.integers(0, 4)):  # mostly importable headers, so the rows are read
        key = draw(st.sampled_from(["User ID", "Username"]))
        date = draw(st.sampled_from(["Subscribed", "Start date"]))
        extra = draw(st.lists(st.sampled_from(HEADERS) | any_text, max_size=4))
        header = draw(st.permutations([key, date, *extra]))
    else:
        header = draw(st.lists(st.sampled_from(HEADERS) | any_text, min_size=1, max_size=6))
    row = st.tuples(*(_COLUMNS.get(name, any_text) for name in header)).map(list)
    rows = draw(st.lists(row | st.lists(any_text, max_size=len(header) + 1), max_size=6))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter,
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    for record in (header, *rows):
        writer.writerow(record)
    return out.getvalue() + draw(st.sampled_from(["", '"unclosed', "\x00", "\r"]) | any_text)


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, message


def _check_parse(text: str) -> None:
    try:
        rows, errors, _ = parse_csv(text)
    except ImportFileError as exc:
        _one_line(str(exc))
        return
    for error in errors:
        _one_line(str(error))
    assert len({r.external_id for r in rows}) == len(rows)


@settings(FUZZ, max_examples=400)
@given(text=st.text(st.characters() | st.characters(categories=["Cs", "Cc"])) | csv_texts())
def test_parsing_any_text_gives_rows_and_row_errors_or_one_file_error(text: str) -> None:
    _check_parse(text)


def _subscribers(engine: sa.Engine) -> list[tuple[Any, ...]]:
    s = schema.subscribers
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(s.c.external_id, s.c.handle, s.c.display_name, s.c.tier, s.c.timezone,
                      s.c.subscribed_at, s.c.imported_spend_cents,
                      s.c.imported_spend_currency).order_by(s.c.external_id))]


@pytest.fixture
def importer(engine: sa.Engine, tmp_path: Path) -> tuple[sa.Engine, Path]:
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(id=CHAR, name=CHAR, age=25,
                                                         timezone="UTC"))
        conn.execute(sa.insert(schema.platform_accounts).values(
            character_id=CHAR, platform="onlyfans", account_ref=CHAR))
    return engine, tmp_path / "export.csv"


@FUZZ
@given(content=csv_texts().map(lambda t: t.encode("utf-8", "surrogatepass"))
       | st.binary(max_size=200))
def test_importing_any_file_writes_only_what_it_reports(importer: tuple[sa.Engine, Path],
                                                        content: bytes) -> None:
    engine, path = importer
    path.write_bytes(content)
    before = _subscribers(engine)
    try:
        report = import_csv(engine, path, "onlyfans", CHAR)
    except ImportFileError as exc:
        _one_line(str(exc))
        assert _subscribers(engine) == before  # nothing written
        return
    for error in report.errors:
        _one_line(str(error))
    after = _subscribers(engine)
    assert len(after) - len(before) == report.imported
    # Re-importing the same file changes nothing.
    again = import_csv(engine, path, "onlyfans", CHAR)
    assert (again.imported, again.updated) == (0, 0) and _subscribers(engine) == after


# Names a spreadsheet or an export could hold: quotes, delimiters, line breaks, any script.
names = st.text(st.characters(exclude_characters="\x00")
                | st.sampled_from(['"', ",", ";", "\t", "\r", "\n"]), max_size=25)


def _export(display_names: list[str], delimiter: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)  # RFC 4180 quoting, as spreadsheets write
    writer.writerow(["User ID", "Name", "Subscribed"])
    for i, name in enumerate(display_names):
        writer.writerow([f"u{i}", name, "2026-11-01"])
    return out.getvalue()


@settings(FUZZ, max_examples=300)
@given(display_names=st.lists(names, min_size=1, max_size=5),
       delimiter=st.sampled_from([",", ";", "\t"]))
def test_quoted_fields_round_trip_through_the_parser(display_names: list[str],
                                                     delimiter: str) -> None:
    rows, errors, _ = parse_csv(_export(display_names, delimiter))
    assert errors == []
    assert [r.display_name for r in rows] == [n.strip() or None for n in display_names]


@FUZZ
@given(display_names=st.lists(names, min_size=1, max_size=5),
       delimiter=st.sampled_from([",", ";", "\t"]))
def test_quoted_fields_round_trip_through_the_database(importer: tuple[sa.Engine, Path],
                                                       display_names: list[str],
                                                       delimiter: str) -> None:
    engine, path = importer
    with engine.begin() as conn:
        conn.execute(sa.delete(schema.subscribers))
    path.write_text(_export(display_names, delimiter), encoding="utf-8", newline="")
    report = import_csv(engine, path, "onlyfans", CHAR)
    assert (report.imported, report.errors) == (len(display_names), [])
    stored = {r[0]: r[2] for r in _subscribers(engine)}
    assert stored == {f"u{i}": n.strip() or None for i, n in enumerate(display_names)}
