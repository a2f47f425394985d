"""`waifugen budget show | set` on the test database: the month's row, bad input refused in
one line with nothing written. (The runbook flow, with blocked reels and re-armed alerts:
tests/test_runbook_flows.py.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from waifugen_assets.app.cli import main
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)


def waifugen(db_url: str, home: Path, *args: str) -> Result:
    get_settings.cache_clear()
    try:
        with clock.running_from(NOW):
            return CliRunner().invoke(main, list(args), env={
                "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(home),
                "A2E_MONTHLY_CREDITS": "20000"})
    finally:
        get_settings.cache_clear()


def _limits(engine: sa.Engine) -> list[tuple[dt.date, int]]:
    b = schema.budgets
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(b.c.period_start, b.c.credits_limit).order_by(b.c.period_start))]


def test_show_and_set_the_months_row(db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    shown = waifugen(db_url, tmp_path, "budget", "show")  # the current UTC month
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        "A2E budget 2026-12: 20,000 credits (A2E_MONTHLY_CREDITS; recorded by the month's "
        "first planning run)",
        "spent 0, planned 0: 0.0 % committed",
        "blocked: 0 reel(s) on 0 character day(s)"]
    assert _limits(engine) == []  # showing writes nothing

    first = waifugen(db_url, tmp_path, "budget", "set", "25000")
    assert first.output.splitlines() == [
        "A2E budget 2026-12: no row (A2E_MONTHLY_CREDITS) -> 25,000 credits; committed 0 "
        "(0.0 %)"]
    again = waifugen(db_url, tmp_path, "budget", "set", "30000", "--month", "2027-01")
    assert again.output.startswith("A2E budget 2027-01: no row")
    lower = waifugen(db_url, tmp_path, "budget", "set", "0", "--month", "2026-12")
    assert lower.output.startswith("A2E budget 2026-12: 25,000 -> 0 credits")
    assert _limits(engine) == [(dt.date(2026, 12, 1), 0), (dt.date(2027, 1, 1), 30000)]
    assert "(the month's row)" in waifugen(db_url, tmp_path, "budget", "show").output
    last_month = waifugen(db_url, tmp_path, "budget", "set", "5", "--month", "2026-11")
    assert last_month.exit_code == 0, last_month.output  # local days still in November


@pytest.mark.parametrize(("args", "message"), [
    (["set", "100", "--month", "2026-13"],
     "Invalid value for '--month': '2026-13' is not a month: write YYYY-MM, e.g. 2026-12"),
    (["set", "100", "--month", "december"],
     "Invalid value for '--month': 'december' is not a month: write YYYY-MM, e.g. 2026-12"),
    (["set", "100", "--month", "2026-10"],
     "Invalid value for '--month': 2026-10 is over: nothing plans against it any more (the "
     "earliest month you can set is 2026-11)"),
    (["set", "--", "-5"], "Invalid value for 'CREDITS': -5 is not in the range x>=0."),
    (["set", "lots"], "Invalid value for 'CREDITS': 'lots' is not a valid integer range."),
])
def test_bad_input_is_refused_in_one_line(db_url: str, engine: sa.Engine, tmp_path: Path,
                                          args: list[str], message: str) -> None:
    result = waifugen(db_url, tmp_path, "budget", *args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"Error: {message}"
    assert _limits(engine) == []
