"""Subscribers from an OnlyFans or Fansly CSV export (neither has a public API).

Columns are matched by name, ignoring case, spaces and punctuation ("Subscribed / Start date"
= "subscribedstartdate"); the first column matching a field wins and unknown columns are
ignored. Accepted names (docs/subscribers.md has the table):

    external id   User ID, ID, Fan ID, Subscriber ID, Account ID
    handle        Username, User name, Handle, User
    display name  Name, Display name, Fan name, Nickname, Full name
    subscribed    Subscribed, Subscribed at/on, Start date, Subscription date, Started, Joined
    spend         Total spent, Total, Spent, Lifetime spend, Total earnings, Earnings
    currency      Currency
    tier          Tier, Subscription tier
    time zone     Timezone, Time zone, TZ
    (recognised and ignored: Expires, Expiry, Expiration date, Renew date)

When the file has a tier column, an empty tier cell means "standard" and a tier name is ours as
for Fanvue (vip, premium or elite in the name: "vip", else "standard"); without one, tiers stay.

The file is read with the csv module's standard (excel, RFC 4180) dialect: quoted fields may
hold the delimiter, line breaks and doubled quotes (`"Ann ""Nicky"" Lee"`). The delimiter
(comma, semicolon or tab) is the one that makes the most header cells known column names.

Required: a subscription date, and a user id or a username. The subscriber's key is the user
id when the file has that column, else the username (without "@", lower case). Dates: ISO 8601,
"Nov 25, 2026" (optionally with a time), "25 Nov 2026", US "11/25/2026", "25.11.2026",
"2026/11/25"; times without an offset are UTC. Spend: "$1,234.56", "1234.56", "12,50 EUR",
"USD 12.50"; the currency comes from the currency column, the symbol ($ USD, EUR, GBP) or a
3-letter code, else USD.

Every bad row is reported with its line and column and skipped; the other rows are imported. A
problem with the file itself (unreadable, not UTF-8 text, NUL characters, a field the csv
module cannot read, no header, no usable key or date column, unknown character, a platform the
character has no account for on the roster) raises ImportFileError, one line naming it, and
imports nothing. Re-importing the same file changes
nothing (upsert; unchanged rows are not touched). Lifetime spend is stored as an aggregate on
the subscriber (`imported_spend_cents`, `imported_spend_currency`), not as revenue events: an
export has no stable id per payment. An import never clears an opt-out and never touches a
forgotten subscriber (their row's key is opaque, so a re-imported old file creates a new row:
delete old exports after forgetting someone).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, TypeVar

import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.subscribers.events import MAX_EXTERNAL_ID, valid_timezone
from waifugen_assets.subscribers.inbound import subscriber_tier

UTC = dt.UTC
_T = TypeVar("_T")
ImportPlatform = Literal["onlyfans", "fansly"]
IMPORT_PLATFORMS: tuple[str, ...] = ("onlyfans", "fansly")

_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("userid", "id", "fanid", "subscriberid", "accountid", "user_id"),
    "handle": ("username", "handle", "user", "fanusername"),
    "display_name": ("name", "displayname", "fanname", "nickname", "fullname"),
    "subscribed_at": ("subscribed", "subscribedat", "subscribedon", "subscriptiondate",
                      "startdate", "started", "subscribedstartdate", "subscribestartdate",
                      "subscriptionstart", "subscribedsince", "joined", "joindate"),
    "expires_at": ("expires", "expiresat", "expiry", "expirationdate", "expiresdate",
                   "renewdate", "renewson"),
    "spend": ("totalspent", "total", "spent", "lifetimespend", "totalspend",
              "totalearnings", "earnings", "totalamount"),
    "currency": ("currency",),
    "tier": ("tier", "subscriptiontier"),
    "timezone": ("timezone", "tz"),
}
_FIELD_OF = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

_DATE_FORMATS = (
    "%b %d, %Y", "%B %d, %Y", "%b %d, %Y %I:%M %p", "%b %d, %Y, %I:%M %p", "%b %d, %Y %H:%M",
    "%B %d, %Y %I:%M %p", "%d %b %Y", "%d %B %Y", "%d %b %Y %H:%M",
    "%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y", "%d.%m.%Y %H:%M", "%Y/%m/%d", "%Y/%m/%d %H:%M",
)
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP"}
_CODE = re.compile(r"\b([A-Za-z]{3})\b")
_NUMBER = re.compile(r"^\d+([.,]\d+)*$")
_MAX_AMOUNT = Decimal(2**63 - 1) / 100  # imported_spend_cents is a bigint
_DELIMITERS = (",", ";", "\t")
_SLUG = re.compile(schema.CHARACTER_SLUG_PATTERN)


class ImportFileError(ValueError):
    """The file cannot be imported at all; nothing was written."""


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{_printable(self.column)}: " if self.column else ""
        return f"line {self.line}: {where}{self.message}"


def _printable(text: str) -> str:
    """`text`, quoted with escapes when it holds a line break or another control character
    (one report line per problem)."""
    return text if text.isprintable() else repr(text)


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


class _BadCell(ValueError):
    pass


def _header_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())


def parse_date(raw: str) -> dt.datetime:
    """A date or time from an export, as aware UTC (see the module docstring)."""
    text = " ".join(raw.strip().split())
    if not text:
        raise _BadCell("empty")
    candidates = [text, text.replace("Z", "+00:00")]
    for candidate in candidates:
        try:
            parsed = dt.datetime.fromisoformat(candidate)
            break
        except ValueError:
            continue
    else:
        for fmt in _DATE_FORMATS:
            try:
                parsed = dt.datetime.strptime(text.upper() if "%p" in fmt else text, fmt)
                break
            except ValueError:
                continue
        else:
            raise _BadCell(f"not a date: {raw.strip()[:40]!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted by its offset
        raise _BadCell(f"date out of range: {raw.strip()[:40]!r}") from None


def parse_money(raw: str) -> tuple[int, str | None]:
    """Cents and the currency the text names (None if it names none)."""
    text = raw.strip()
    currency = None
    for symbol, code in _SYMBOLS.items():
        if symbol in text:
            currency, text = code, text.replace(symbol, "")
    code = _CODE.search(text)
    if code:
        if currency and currency != code.group(1).upper():
            raise _BadCell(f"two currencies in {raw.strip()[:40]!r}")
        currency, text = code.group(1).upper(), _CODE.sub("", text)
    text = text.replace(" ", "").replace("\u00a0", "")
    if text.startswith("-"):
        raise _BadCell("must not be negative")
    if not _NUMBER.match(text):
        raise _BadCell(f"not an amount: {raw.strip()[:40]!r}")
    if "," in text and "." in text:
        decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        text = text.replace(thousands, "").replace(decimal_sep, ".")
    elif "," in text:
        # "12,50" is a decimal comma; "1,234" and "1,234,567" are thousands.
        text = text.replace(",", ".") if re.search(r"^\d+,\d{1,2}$", text) else \
            text.replace(",", "")
    elif text.count(".") > 1:
        text = text.replace(".", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _BadCell(f"not an amount: {raw.strip()[:40]!r}") from None
    if value > _MAX_AMOUNT:  # before quantize, which fails beyond 28 digits
        raise _BadCell(f"too large: {raw.strip()[:40]!r}")
    if value != value.quantize(Decimal("0.01")):
        raise _BadCell("more than 2 decimals")
    return int(value * 100), currency


@dataclass(frozen=True)
class _Row:
    line: int
    external_id: str
    handle: str | None
    display_name: str | None
    subscribed_at: dt.datetime
    spend_cents: int | None
    currency: str | None
    tier: str | None
    timezone: str | None


def _read(path: Path) -> str:
    """The file's text (the caller names the file in its message)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read ({exc.strerror})") from None
    try:
        # Bytes decoded as they are: line breaks inside quoted fields stay (RFC 4180).
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(f"line {line}: not UTF-8 text (export the CSV as UTF-8)") from None


def _columns(header: list[str]) -> dict[str, int]:
    """Field -> index of the first header cell naming it."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        target = _FIELD_OF.get(_header_key(name))
        if target and target not in columns:
            columns[target] = index
    return columns


def _delimiter(text: str) -> str:
    """The delimiter under which the header (its first record, read as RFC 4180) names the
    most known columns; ties go to the comma."""
    start = text[:65536]  # the header is at the start; no need to copy a large file thrice

    def score(delimiter: str) -> int:
        try:
            header = next(csv.reader(io.StringIO(start, newline=""), delimiter=delimiter), [])
        except csv.Error:
            return -1
        return len(_columns(header))

    return max(_DELIMITERS, key=score)  # max keeps the first of equals: "," wins ties


def _found(header: list[str]) -> str:
    return ", ".join(_printable(name) for name in header)[:200]


def parse_csv(text: str) -> tuple[list[_Row], list[RowError], bool]:
    """Valid rows, the errors of the others, and whether the file has a tier column (pure:
    no database). A problem with the whole file raises ImportFileError."""
    if "\x00" in text:  # PostgreSQL text cannot hold NUL; a binary file, most likely
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportFileError(f"line {line}: NUL character (not a text CSV export)")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty (expected a header line)") from None
    except csv.Error as exc:  # a header cell over the csv module's size limit, say
        raise ImportFileError(f"line 1: unreadable CSV ({exc})") from None
    columns = _columns(header)
    key_field = "external_id" if "external_id" in columns else "handle"
    if key_field not in columns:
        raise ImportFileError("no user id or username column (e.g. 'User ID' or 'Username'); "
                              f"columns found: {_found(header)}")
    if "subscribed_at" not in columns:
        raise ImportFileError("no subscription date column (e.g. 'Subscribed' or 'Start "
                              f"date'); columns found: {_found(header)}")

    rows: list[_Row] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    last_line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a field over the csv module's size limit, say
            raise ImportFileError(f"line {last_line + 1}: unreadable CSV ({exc})") from None
        line, last_line = last_line + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue

        def cell(name: str, cells: list[str] = cells) -> str | None:
            index = columns.get(name)
            if index is None or index >= len(cells):
                return None
            return cells[index].strip() or None

        def column(name: str) -> str:
            return header[columns[name]]

        try:
            key = cell(key_field)
            if key is None:
                raise _Located(key_field, "missing (a user id or username is required)")
            handle = cell("handle")
            handle = handle.lstrip("@") if handle else None
            if key_field == "handle":
                key = key.lstrip("@").casefold()
            if not key:
                raise _Located(key_field, "missing")
            if len(key) > MAX_EXTERNAL_ID:  # the key is indexed: bounded like event ids
                raise _Located(key_field, f"longer than {MAX_EXTERNAL_ID} characters")
            raw_date = cell("subscribed_at")
            if raw_date is None:
                raise _Located("subscribed_at", "missing (a subscription date is required)")
            subscribed = _cell_value(parse_date, raw_date, "subscribed_at")
            spend = currency = None
            raw_spend = cell("spend")
            if raw_spend is not None:
                spend, currency = _cell_value(parse_money, raw_spend, "spend")
            raw_currency = cell("currency")
            if raw_currency is not None:
                if not re.fullmatch(r"[A-Za-z]{3}", raw_currency):
                    raise _Located("currency", f"not a 3-letter code: {raw_currency[:20]!r}")
                if currency and currency != raw_currency.upper():
                    raise _Located("currency", f"{raw_currency} but the amount says {currency}")
                currency = raw_currency.upper()
            if spend is not None and currency is None:
                currency = "USD"
            raw_tz = cell("timezone")
            timezone = valid_timezone(raw_tz) if raw_tz else None
            if raw_tz and timezone is None:
                raise _Located("timezone", f"not an IANA time zone: {raw_tz[:40]!r}")
            if key in seen:
                raise _Located(key_field, f"duplicate of line {seen[key]}")
        except _Located as exc:
            errors.append(RowError(line, column(exc.field), exc.message))
            continue
        seen[key] = line
        rows.append(_Row(line, key, handle, cell("display_name"), subscribed, spend,
                         currency if spend is not None else None, subscriber_tier(cell("tier")),
                         timezone))
    return rows, errors, "tier" in columns


class _Located(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _cell_value(parse: Callable[[str], _T], raw: str, name: str) -> _T:
    try:
        return parse(raw)
    except _BadCell as exc:
        raise _Located(name, str(exc)) from None


_UPSERT = sa.text("""
INSERT INTO subscribers AS s (character_id, platform, external_id, handle, display_name,
                              timezone, tier, subscribed_at, imported_spend_cents,
                              imported_spend_currency)
SELECT :character_id, :platform, v.external_id, v.handle, v.display_name, v.timezone,
       COALESCE(v.tier, 'standard'), v.subscribed_at, v.spend, v.currency
FROM unnest(CAST(:external_ids AS text[]), CAST(:handles AS text[]),
            CAST(:display_names AS text[]), CAST(:timezones AS text[]),
            CAST(:tiers AS text[]), CAST(:subscribed AS timestamptz[]),
            CAST(:spends AS bigint[]), CAST(:currencies AS text[]))
     AS v(external_id, handle, display_name, timezone, tier, subscribed_at, spend, currency)
ON CONFLICT (character_id, platform, external_id) DO UPDATE SET
    handle = COALESCE(EXCLUDED.handle, s.handle),
    display_name = COALESCE(EXCLUDED.display_name, s.display_name),
    timezone = COALESCE(EXCLUDED.timezone, s.timezone),
    tier = CASE WHEN :has_tier THEN EXCLUDED.tier ELSE s.tier END,
    subscribed_at = GREATEST(s.subscribed_at, EXCLUDED.subscribed_at),
    imported_spend_cents = COALESCE(EXCLUDED.imported_spend_cents, s.imported_spend_cents),
    imported_spend_currency = COALESCE(EXCLUDED.imported_spend_currency,
                                       s.imported_spend_currency),
    updated_at = now()
WHERE (s.handle, s.display_name, s.timezone, s.tier, s.subscribed_at, s.imported_spend_cents,
       s.imported_spend_currency)
      IS DISTINCT FROM
      (COALESCE(EXCLUDED.handle, s.handle), COALESCE(EXCLUDED.display_name, s.display_name),
       COALESCE(EXCLUDED.timezone, s.timezone),
       CASE WHEN :has_tier THEN EXCLUDED.tier ELSE s.tier END,
       GREATEST(s.subscribed_at, EXCLUDED.subscribed_at),
       COALESCE(EXCLUDED.imported_spend_cents, s.imported_spend_cents),
       CAST(COALESCE(EXCLUDED.imported_spend_currency, s.imported_spend_currency) AS char(3)))
RETURNING (xmax = 0) AS inserted
""")


def import_csv(engine: sa.Engine, path: Path | str, platform: ImportPlatform,
               character_id: str) -> ImportReport:
    """Import the export at `path` for `character_id` (see the module docstring)."""
    if platform not in IMPORT_PLATFORMS:
        raise ImportFileError(f"platform must be one of {', '.join(IMPORT_PLATFORMS)}, "
                              f"not {platform!r} (Fanvue and Telegram subscribers arrive by "
                              "webhook or polling)")
    rows, errors, has_tier = parse_csv(_read(Path(path)))
    report = ImportReport(errors=errors)
    with engine.begin() as conn:
        _check_account(conn, character_id, platform)
        if rows:
            results = conn.execute(_UPSERT, {
                "character_id": character_id, "platform": platform, "has_tier": has_tier,
                "external_ids": [r.external_id for r in rows],
                "handles": [r.handle for r in rows],
                "display_names": [r.display_name for r in rows],
                "timezones": [r.timezone for r in rows],
                "tiers": [r.tier for r in rows],
                "subscribed": [r.subscribed_at for r in rows],
                "spends": [r.spend_cents for r in rows],
                "currencies": [r.currency for r in rows],
            }).scalars().all()
            report.imported = sum(1 for inserted in results if inserted)
            report.updated = len(results) - report.imported
            report.unchanged = len(rows) - len(results)
    return report


def _check_account(conn: sa.Connection, character_id: str, platform: str) -> None:
    """The character exists and has an account on `platform` on the roster: without one its
    subscribers would be stored and never shown (no channel, no manual queue)."""
    if not _SLUG.fullmatch(character_id) or conn.scalar(
            sa.select(schema.characters.c.id)
            .where(schema.characters.c.id == character_id)) is None:
        raise ImportFileError(f"unknown character {character_id!r}")
    pa = schema.platform_accounts
    status = conn.scalar(sa.select(pa.c.status).where(pa.c.character_id == character_id,
                                                      pa.c.platform == platform))
    if status is None:
        raise ImportFileError(f"character {character_id!r} has no {platform} account on the "
                              "roster (add it to characters.yaml first); nothing imported")
    if status == "disabled":
        raise ImportFileError(f"the {platform} account of character {character_id!r} is "
                              "disabled; nothing imported")
