"""Date partitions: from the launch date (WAIFUGEN_LAUNCH_DATE) to the newest date that has
begun anywhere, so every character's local today exists and no date that has not begun is
offered."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest

from waifugen_assets.core.config import ConfigError, launch_date, load_settings
from waifugen_assets.pipeline.partitions import LAUNCH_DATE, daily_partitions

ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("posix/"))
# Around the clock, including both sides of 10:00 UTC (midnight at UTC+14) and of 12:00 UTC
# (midnight at UTC-12), on a day in each half of the year (daylight saving time).
INSTANTS = [dt.datetime(2026, 12, 5, tzinfo=dt.UTC) + dt.timedelta(minutes=m)
            for m in range(0, 48 * 60, 50)] + [
    dt.datetime(2027, 6, 1, 9, 59, tzinfo=dt.UTC), dt.datetime(2027, 6, 1, 10, 0, tzinfo=dt.UTC)]


@pytest.mark.parametrize("now", INSTANTS, ids=lambda t: t.strftime("%m-%dT%H:%M"))
def test_every_zones_today_exists_and_nothing_later(now: dt.datetime) -> None:
    keys = daily_partitions.get_partition_keys(current_time=now)
    local_todays = {now.astimezone(ZoneInfo(z)).date() for z in ZONES}
    assert {d.isoformat() for d in local_todays} <= set(keys)
    # The newest key is a date that has begun somewhere: never one that has not begun.
    assert keys[-1] == max(local_todays).isoformat()
    assert keys[0] == LAUNCH_DATE.isoformat()


def test_tomorrow_in_utc_is_offered_only_once_it_has_begun_east_of_utc() -> None:
    utc_day = dt.date(2026, 12, 5)
    morning = dt.datetime(2026, 12, 5, 9, 59, tzinfo=dt.UTC)  # 23:59 at UTC+14
    keys = daily_partitions.get_partition_keys(current_time=morning)
    assert keys[-1] == utc_day.isoformat()
    # 10:00 UTC: 2026-12-06 has begun at UTC+14 (Kiritimati), so it exists.
    later = daily_partitions.get_partition_keys(current_time=morning + dt.timedelta(minutes=1))
    assert later[-1] == (utc_day + dt.timedelta(days=1)).isoformat()


def test_launch_date_setting() -> None:
    assert launch_date({}) == dt.date(2026, 11, 1) == load_settings({}).launch_date
    assert launch_date({"WAIFUGEN_LAUNCH_DATE": " 2026-12-01 "}) == dt.date(2026, 12, 1)
    for bad in ("20261101", "2026-13-01", "1/11/2026", "2026-W44"):
        with pytest.raises(ConfigError, match=rf"^WAIFUGEN_LAUNCH_DATE='{bad}': expected a "
                                              r"date YYYY-MM-DD \(e\.g\. 2026-11-01\)$"):
            load_settings({"WAIFUGEN_LAUNCH_DATE": bad})


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "WAIFUGEN_HOME": str(tmp_path), **env}, timeout=120)


def test_partitions_start_at_the_configured_launch_date(tmp_path: Path) -> None:
    proc = _python("from waifugen_assets.pipeline.partitions import daily_partitions as p; "
                   "print(p.get_partition_keys()[0])", tmp_path,
                   WAIFUGEN_LAUNCH_DATE="2026-11-20")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2026-11-20"


def test_a_bad_launch_date_is_one_clear_line(tmp_path: Path) -> None:
    cli = _python("from waifugen_assets.app.cli import main; main(['config'])", tmp_path,
                  WAIFUGEN_LAUNCH_DATE="Nov 1st")
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert cli.stderr.strip() == ("error: WAIFUGEN_LAUNCH_DATE='Nov 1st': expected a date "
                                  "YYYY-MM-DD (e.g. 2026-11-01)")
    # The code location refuses to load, naming it (the daemon and webserver show this).
    load = _python("import waifugen_assets.definitions", tmp_path,
                   WAIFUGEN_LAUNCH_DATE="Nov 1st")
    assert load.returncode == 1
    assert "ConfigError: WAIFUGEN_LAUNCH_DATE='Nov 1st': expected a date" in load.stderr


def test_a_key_before_the_launch_date_names_the_setting() -> None:
    from waifugen_assets.pipeline.partitions import partition_key

    before = LAUNCH_DATE - dt.timedelta(days=1)
    with pytest.raises(ConfigError, match=rf"^{before.isoformat()} is before "
                                          rf"WAIFUGEN_LAUNCH_DATE \({LAUNCH_DATE.isoformat()}\)"):
        partition_key("mika-hoshizora", before)
    key = partition_key("mika-hoshizora", LAUNCH_DATE)
    assert key.keys_by_dimension == {"character": "mika-hoshizora",
                                     "date": LAUNCH_DATE.isoformat()}
