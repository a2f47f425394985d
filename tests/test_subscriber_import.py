"""OnlyFans / Fansly CSV imports on a real PostgreSQL, and the CLI command."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.subscribers.csv_import import (
    ImportFileError,
    RowError,
    import_csv,
    parse_date,
    parse_money,
)

UTC = dt.UTC
CHAR = "aiko-tanaka"

# Line numbers matter: line 1 is the header; "Mei\nLin" spans lines 6-7.
EXPORT = """\
Name,Username,User ID,Subscribed / Start date,Expires,Total spent,Timezone
Ken Sato,@kensato,u1001,"Nov 25, 2026",Dec 25 2026,"$1,234.56",Asia/Tokyo
No Date,nodate,u1002,,,$5.00,
Bad Date,baddate,u1003,31/31/2026,,$5.00,
Ana,ana_b,u1004,2026-11-01T08:30:00Z,,12.50,
"Mei
Lin",meilin,u1005,11/20/2026,,-3.00,
Tz Person,tz,u1006,2026-11-02,,,Mars/Base
,noid,,2026-11-02,,,
Dup,dup,u1001,2026-11-03,,,
Eve,eve,u1007,25.11.2026 21:15,,€7,
"""


def add_character(engine: sa.Engine, slug: str = CHAR,
                  platforms: tuple[str, ...] = ("onlyfans", "fansly")) -> None:
    """The character with accounts on `platforms` (imports need one on the roster)."""
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(
            id=slug, name="Aiko", age=24, timezone="Asia/Tokyo"))
        for platform in platforms:
            conn.execute(sa.insert(schema.platform_accounts).values(
                character_id=slug, platform=platform, account_ref=f"{slug}-{platform}"))


def subscribers(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    s = schema.subscribers
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s).order_by(s.c.id)).mappings().all()
    return {r["external_id"]: dict(r) for r in rows}


def write(tmp_path: Path, text: str, name: str = "export.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_bad_rows_reported_with_lines_and_the_rest_imported(engine: sa.Engine,
                                                            tmp_path: Path) -> None:
    add_character(engine)
    path = write(tmp_path, EXPORT)
    report = import_csv(engine, path, "onlyfans", CHAR)
    assert report.errors == [
        RowError(3, "Subscribed / Start date", "missing (a subscription date is required)"),
        RowError(4, "Subscribed / Start date", "not a date: '31/31/2026'"),
        RowError(6, "Total spent", "must not be negative"),
        RowError(8, "Timezone", "not an IANA time zone: 'Mars/Base'"),
        RowError(9, "User ID", "missing (a user id or username is required)"),
        RowError(10, "User ID", "duplicate of line 2"),
    ]
    assert str(report.errors[0]).startswith("line 3: Subscribed / Start date: missing")
    assert (report.imported, report.updated, report.unchanged) == (3, 0, 0)

    subs = subscribers(engine)
    assert set(subs) == {"u1001", "u1004", "u1007"}
    ken = subs["u1001"]
    assert (ken["platform"], ken["character_id"], ken["handle"], ken["display_name"]) == (
        "onlyfans", CHAR, "kensato", "Ken Sato")
    assert ken["subscribed_at"] == dt.datetime(2026, 11, 25, tzinfo=UTC)
    assert (ken["imported_spend_cents"], ken["imported_spend_currency"]) == (123456, "USD")
    assert ken["timezone"] == "Asia/Tokyo" and ken["tier"] == "standard"
    assert subs["u1004"]["subscribed_at"] == dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert (subs["u1004"]["imported_spend_cents"], subs["u1004"]["imported_spend_currency"]) \
        == (1250, "USD")
    assert subs["u1007"]["subscribed_at"] == dt.datetime(2026, 11, 25, 21, 15, tzinfo=UTC)
    assert subs["u1007"]["imported_spend_currency"] == "EUR"
    # Spend is an aggregate on the subscriber, never revenue events.
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.revenue_events)) == 0


def test_reimport_is_idempotent_and_updates_only_changes(engine: sa.Engine,
                                                         tmp_path: Path) -> None:
    add_character(engine)
    path = write(tmp_path, EXPORT)
    import_csv(engine, path, "onlyfans", CHAR)
    before = subscribers(engine)
    again = import_csv(engine, path, "onlyfans", CHAR)
    assert (again.imported, again.updated, again.unchanged, len(again.errors)) == (0, 0, 3, 6)
    assert subscribers(engine) == before  # not even updated_at moved

    # A newer export: Ken spent more, Ana is gone from it (kept), a new fan arrived.
    newer = write(tmp_path, "Username,User ID,Subscribed,Total spent\n"
                            "kensato,u1001,2026-11-25,$1300.00\n"
                            "newfan,u2000,2026-11-26,$0\n", name="newer.csv")
    report = import_csv(engine, newer, "onlyfans", CHAR)
    assert (report.imported, report.updated, report.unchanged, report.errors) == (1, 1, 0, [])
    after = subscribers(engine)
    assert after["u1001"]["imported_spend_cents"] == 130000
    assert after["u1001"]["display_name"] == "Ken Sato"  # no Name column: kept
    assert after["u1004"] == before["u1004"]


def test_import_never_clears_an_opt_out(engine: sa.Engine, tmp_path: Path) -> None:
    add_character(engine)
    path = write(tmp_path, "Username,User ID,Subscribed\nken,u1,2026-11-01\n")
    import_csv(engine, path, "fansly", CHAR)
    stop = dt.datetime(2026, 11, 2, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(schema.subscribers.update().values(opted_out_at=stop))
    later = write(tmp_path, "Username,User ID,Subscribed\nken,u1,2026-12-01\n", name="b.csv")
    assert import_csv(engine, later, "fansly", CHAR).updated == 1
    sub = subscribers(engine)["u1"]
    assert sub["opted_out_at"] == stop and sub["platform"] == "fansly"


def test_username_key_semicolons_and_decimal_commas(engine: sa.Engine, tmp_path: Path) -> None:
    add_character(engine)
    path = write(tmp_path, "\ufeffFan name;USERNAME;Joined;Total spent;Tier\n"
                           "Lea;@Lea_M;25 Nov 2026;1.234,50 EUR;vip\n"
                           "Tom;tom;Nov 26, 2026, 9:05 pm;12,50 €;\n")
    report = import_csv(engine, path, "fansly", CHAR)
    assert (report.imported, report.errors) == (2, [])
    subs = subscribers(engine)
    assert set(subs) == {"lea_m", "tom"}
    assert (subs["lea_m"]["handle"], subs["lea_m"]["tier"]) == ("Lea_M", "vip")
    assert subs["lea_m"]["imported_spend_cents"] == 123450
    assert subs["tom"]["subscribed_at"] == dt.datetime(2026, 11, 26, 21, 5, tzinfo=UTC)
    assert (subs["tom"]["imported_spend_cents"], subs["tom"]["tier"]) == (1250, "standard")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Name,Subscribed\nKen,2026-11-01\n", "no user id or username column"),
        ("Username,Expires\nken,2026-11-01\n", "no subscription date column"),
    ],
)
def test_file_problems_import_nothing(engine: sa.Engine, tmp_path: Path, text: str,
                                      message: str) -> None:
    add_character(engine)
    with pytest.raises(ImportFileError, match=message):
        import_csv(engine, write(tmp_path, text), "onlyfans", CHAR)
    assert subscribers(engine) == {}


def test_unknown_character_platform_and_encoding(engine: sa.Engine, tmp_path: Path) -> None:
    add_character(engine)
    good = write(tmp_path, "Username,Subscribed\nken,2026-11-01\n")
    with pytest.raises(ImportFileError, match="unknown character 'nobody'"):
        import_csv(engine, good, "onlyfans", "nobody")
    with pytest.raises(ImportFileError, match="platform must be one of"):
        import_csv(engine, good, "fanvue", CHAR)  # type: ignore[arg-type]
    latin1 = write(tmp_path, "Username,Subscribed\nJosé,2026-11-01\n", name="l1.csv",
                   encoding="latin-1")
    with pytest.raises(ImportFileError, match="not UTF-8"):
        import_csv(engine, latin1, "onlyfans", CHAR)
    with pytest.raises(ImportFileError, match="cannot read"):
        import_csv(engine, tmp_path / "missing.csv", "onlyfans", CHAR)
    assert subscribers(engine) == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-25", dt.datetime(2026, 11, 25, tzinfo=UTC)),
        ("2026-11-25T10:00:00+02:00", dt.datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T10:00:00Z", dt.datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("Nov 25, 2026", dt.datetime(2026, 11, 25, tzinfo=UTC)),
        ("November 25, 2026", dt.datetime(2026, 11, 25, tzinfo=UTC)),
        ("Nov 25, 2026 10:30 am", dt.datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
        ("11/25/2026", dt.datetime(2026, 11, 25, tzinfo=UTC)),
        ("25.11.2026", dt.datetime(2026, 11, 25, tzinfo=UTC)),
        ("2026/11/25", dt.datetime(2026, 11, 25, tzinfo=UTC)),
    ],
)
def test_dates(raw: str, expected: dt.datetime) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("$1,234.56", (123456, "USD")), ("1234.56", (123456, None)), ("12,50 EUR", (1250, "EUR")),
     ("USD 12.5", (1250, "USD")), ("£0", (0, "GBP")), ("1.234.567", (123456700, None)),
     ("1,234", (123400, None))],
)
def test_money(raw: str, expected: tuple[int, str | None]) -> None:
    assert parse_money(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "$1.234", "12.345", "-5", "$5 EUR", "1..2"])
def test_bad_money(raw: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        parse_money(raw)


def _cli(*args: str, db_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "waifugen_assets.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_reports_bad_rows_and_exit_codes(engine: sa.Engine, db_url: str,
                                             tmp_path: Path) -> None:
    add_character(engine)
    path = write(tmp_path, EXPORT)
    bad = _cli("subscribers", "import", "onlyfans", CHAR, str(path), db_url=db_url,
               home=tmp_path / "home")
    assert bad.returncode == 1, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert lines[0] == f"{path}:line 3: Subscribed / Start date: missing (a subscription date " \
                       "is required)"
    assert len(lines) == 6 and f"{path}:line 10: User ID: duplicate of line 2" in lines
    assert "3 imported, 0 updated, 0 unchanged, 6 bad row(s)" in bad.stdout

    good = write(tmp_path, "Username,Subscribed\nken,2026-11-01\n", name="good.csv")
    ok = _cli("subscribers", "import", "onlyfans", CHAR, str(good), db_url=db_url,
              home=tmp_path / "home")
    assert ok.returncode == 0, ok.stderr
    assert "1 imported, 0 updated, 0 unchanged, 0 bad row(s)" in ok.stdout

    nope = _cli("subscribers", "import", "onlyfans", "nobody", str(good), db_url=db_url,
                home=tmp_path / "home")
    assert nope.returncode == 1 and "unknown character 'nobody'" in nope.stderr
    assert "Traceback" not in nope.stderr


# --- bad input: RFC 4180 quoting, the roster's accounts, one-line errors, nothing written ------

def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(schema.subscribers))


QUOTED = ('User ID,Name,Subscribed\r\n'
          'u1,"Ann ""Nicky"" Lee",2026-11-01\r\n'
          'u2,"He said ""hi, there""",2026-11-02\r\n'
          'u3,"two\r\nlines, ""quoted""",2026-11-03\r\n'
          'u4,plain,2026-11-04\r\n')


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_doubled_quotes_are_read_as_rfc_4180(engine: sa.Engine, db_url: str, tmp_path: Path,
                                             delimiter: str) -> None:
    """The header alone used to choose the dialect: doubled quotes were misread or refused."""
    add_character(engine)
    text = QUOTED.replace(",2026", f"{delimiter}2026").replace("u1,", f"u1{delimiter}") \
        .replace("u2,", f"u2{delimiter}").replace("u3,", f"u3{delimiter}") \
        .replace("u4,", f"u4{delimiter}").replace("User ID,Name,", f"User ID{delimiter}Name"
                                                   f"{delimiter}")
    path = write(tmp_path, text)
    done = _cli("subscribers", "import", "onlyfans", CHAR, str(path), db_url=db_url,
                home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "4 imported, 0 updated, 0 unchanged, 0 bad row(s)" in done.stdout
    names = {k: v["display_name"] for k, v in subscribers(engine).items()}
    assert names == {"u1": 'Ann "Nicky" Lee', "u2": 'He said "hi, there"',
                     "u3": 'two\r\nlines, "quoted"', "u4": "plain"}


def test_a_platform_the_character_has_no_account_for_is_refused(engine: sa.Engine,
                                                                db_url: str,
                                                                tmp_path: Path) -> None:
    add_character(engine, platforms=("onlyfans",))
    path = write(tmp_path, "Username,Subscribed\nken,2026-11-01\n")
    refused = _cli("subscribers", "import", "fansly", CHAR, str(path), db_url=db_url,
                   home=tmp_path / "home")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"error: {path}: character 'aiko-tanaka' has no fansly account on the roster (add it to "
        "characters.yaml first); nothing imported"]
    assert _count(engine) == 0
    with engine.begin() as conn:
        conn.execute(sa.update(schema.platform_accounts).values(status="disabled"))
    disabled = _cli("subscribers", "import", "onlyfans", CHAR, str(path), db_url=db_url,
                    home=tmp_path / "home")
    assert disabled.returncode == 1
    assert disabled.stderr.splitlines() == [
        f"error: {path}: the onlyfans account of character 'aiko-tanaka' is disabled; "
        "nothing imported"]
    assert _count(engine) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Username,Subscribed\nken,2026-11-01\nb\x00d,2026-11-02\n",
         "line 3: NUL character (not a text CSV export)"),
        (b"Username,Subscribed\nJos\xe9,2026-11-01\n",
         "line 2: not UTF-8 text (export the CSV as UTF-8)"),
        (b'Username,Subscribed\nken,"' + b"x" * 200_000 + b'"\n',
         "line 2: unreadable CSV (field larger than field limit (131072))"),
        (b'"Na\nme",Subscribed\nken,2026-11-01\n',
         "no user id or username column (e.g. 'User ID' or 'Username'); columns found: "
         "'Na\\nme', Subscribed"),
    ],
)
def test_file_problems_are_one_line_and_import_nothing(engine: sa.Engine, db_url: str,
                                                       tmp_path: Path, content: bytes,
                                                       message: str) -> None:
    add_character(engine)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    refused = _cli("subscribers", "import", "onlyfans", CHAR, str(path), db_url=db_url,
                   home=tmp_path / "home")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [f"error: {path}: {message}"]
    assert _count(engine) == 0


def test_cells_the_database_cannot_hold_are_bad_rows(engine: sa.Engine, db_url: str,
                                                     tmp_path: Path) -> None:
    add_character(engine)
    long_id = "u" * 201
    path = write(tmp_path, "\n".join([
        'User ID,"Sub\nscribed",Total spent,Timezone,Tier',
        f"{long_id},2026-11-01,,,",
        "u2,0001-01-01T00:00:00+01:00,,,",
        "u3,2026-11-01,$99999999999999999999999999999999,,",
        "u4,2026-11-01,,America,",
        "u5,2026-11-01,,,Gold VIP",
        "u6,2026-11-01,,,Basic fan",
    ]) + "\n")
    done = _cli("subscribers", "import", "onlyfans", CHAR, str(path), db_url=db_url,
                home=tmp_path / "home")
    assert done.returncode == 1
    # One line per bad row, the column named on that line even when its header has a break
    # (the header takes lines 1-2, so the first row is line 3).
    assert done.stderr.splitlines() == [
        f"{path}:line 3: User ID: longer than 200 characters",
        f"{path}:line 4: 'Sub\\nscribed': date out of range: '0001-01-01T00:00:00+01:00'",
        f"{path}:line 5: Total spent: too large: '$99999999999999999999999999999999'",
        f"{path}:line 6: Timezone: not an IANA time zone: 'America'",
    ]
    assert "2 imported, 0 updated, 0 unchanged, 4 bad row(s)" in done.stdout
    # Tier names are ours, as for Fanvue: the DM sequences know standard and vip only.
    assert {k: v["tier"] for k, v in subscribers(engine).items()} == {
        "u5": "vip", "u6": "standard"}
