"""`waifugen slots suggest CHARACTER`: the CLI in a process of its own against a database the
real dbt built from the content world (tests/analytics_content_world.py). The hours it prints
are checked against best_posting_hours as computed in Python from the seed lists."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from analytics_content_world import World, build_world, expected_best_posting_hours
from dbt_run import built_database

from waifugen_assets.core import schema

pytestmark = pytest.mark.integration

def run_cli(db_url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WAIFUGEN_HOME": str(home), "DATABASE_URL": db_url}
    waifugen = Path(sys.executable).with_name("waifugen")  # the installed entry point
    return subprocess.run([str(waifugen), "slots", "suggest", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.fixture(scope="module")
def built_url(pg_server_url: str, template_db: str, world: World,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with built_database(pg_server_url, template_db, "slots", world.seed,
                        tmp_path_factory.mktemp("dbt")) as url:
        yield url


def expected_rows(world: World, character: str, platform: str | None,
                  top: int) -> list[list[str]]:
    """The suggestion table's rows as the CLI prints them, from the Python computation."""
    slot_hours = {int(s[:2]) for s in world.character(character).slots}
    rows = [(pl, hour, *v) for (cid, pl, hour), v in expected_best_posting_hours(world).items()
            if cid == character and (platform is None or pl == platform) and v[-1]]
    rows.sort(key=lambda r: (-r[3], -(r[6] or 0), -r[2], r[0], r[1]))
    return [[f"{hour:02d}:00", pl, str(posts), f"{avg:,.2f}", f"{lift:.2f}",
             "yes" if hour in slot_hours else "no"]
            for pl, hour, posts, avg, _median, _rate, lift, _enough in rows[:top]]


def table(stdout: str, title: str) -> list[list[str]]:
    """The rows under the header that follows `title`, up to the next blank line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return [line.split() for line in lines[start:end]]


def test_suggests_the_hours_the_data_supports(built_url: str, world: World,
                                              tmp_path: Path) -> None:
    proc = run_cli(built_url, tmp_path, "aiko")
    assert proc.returncode == 0, proc.stderr
    posts = sum(v[0] for (cid, _p, _h), v in expected_best_posting_hours(world).items()
                if cid == "aiko")
    assert proc.stdout.splitlines()[0] == \
        f"aiko (Asia/Tokyo), every platform: {posts} posts with a 24 h reading"
    got = table(proc.stdout, "Hours the data supports")
    assert got == expected_rows(world, "aiko", None, 3)
    assert len(got) == 3

    # One platform, more hours: hours that are no current slot show up as such.
    proc = run_cli(built_url, tmp_path, "aiko", "--platform", "tiktok", "--top", "6")
    assert proc.returncode == 0, proc.stderr
    got = table(proc.stdout, "Hours the data supports")
    assert got == expected_rows(world, "aiko", "tiktok", 6)
    assert {row[-1] for row in got} == {"yes", "no"}
    # The current slots, each with its hour's numbers on tiktok.
    current = table(proc.stdout, "Current slots")
    assert [row[0] for row in current] == ["08:00", "12:30", "19:00", "23:30"]
    assert all(row[1] == "tiktok" for row in current)


def test_not_enough_data_says_why(built_url: str, world: World, tmp_path: Path) -> None:
    proc = run_cli(built_url, tmp_path, "lena")
    assert proc.returncode == 0, proc.stderr
    lena = {k: v for k, v in expected_best_posting_hours(world).items() if k[0] == "lena"}
    posts = sum(v[0] for v in lena.values())
    assert posts > 0 and not any(v[-1] for v in lena.values())
    assert f"lena: {posts} posts with a 24 h reading; at least 3 per hour are needed before " \
        "an hour is suggested" in proc.stdout.splitlines()
    assert "Hours the data supports" not in proc.stdout
    current = table(proc.stdout, "Current slots")
    assert current[0][:3] == ["10:00", "instagram", str(lena[("lena", "instagram", 10)][0])]
    assert " ".join(current[0][5:]) == "(fewer than 3 posts)"


def test_unknown_character_is_one_line(built_url: str, tmp_path: Path) -> None:
    proc = run_cli(built_url, tmp_path, "nobody")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: unknown character 'nobody': not in the database (check the roster, or run "
        "`waifugen run` to load it)"]


def test_a_mart_never_built_names_the_job_to_run(db_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.characters).values(
            id="aiko", name="Aiko", age=24, timezone="Asia/Tokyo", slots=["08:00"]))
    engine.dispose()
    proc = run_cli(db_url, tmp_path, "aiko")
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: analytics.best_posting_hours does not exist yet")
    assert "`waifugen run`" in line and "analytics job" in line
