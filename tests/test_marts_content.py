"""The content marts (platform_performance, post_performance, best_posting_hours,
character_ranking) built by the real dbt on a seeded database, each compared row for row with
what tests/analytics_content_world.py's lists say it must hold (computed there in Python,
from the seed lists, without SQL).

One database and one `dbt build` per module; the incremental day run gets a database of its
own (it changes the sources)."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from analytics_content_world import (
    LAST,
    MIA_EMPTY_DAY,
    World,
    build_world,
    expected_best_posting_hours,
    expected_character_ranking,
    expected_platform_performance,
    expected_post_performance,
)
from conftest import create_database, drop_database
from dbt_run import built_database, dbt_build, failure_text

from waifugen_assets.core import schema

pytestmark = pytest.mark.integration

# --- the database --------------------------------------------------------------------------

def mart(engine: sa.Engine, name: str, key: tuple[str, ...]) -> dict[tuple | object, tuple]:
    """The mart's rows, keyed by its grain, every other column in table order."""
    table = sa.Table(name, sa.MetaData(), schema="analytics", autoload_with=engine)
    with engine.connect() as conn:
        result = conn.execute(sa.select(table))
        columns = list(result.keys())
        rows = [dict(zip(columns, r, strict=True)) for r in result]
    rest = [c for c in columns if c not in key]
    out = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        out[k[0] if len(k) == 1 else k] = tuple(r[c] for c in rest)
    assert len(out) == len(rows), f"{name}: duplicate grain"
    return out


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


def fresh_database(pg_server_url: str, template_db: str) -> tuple[str, str]:
    name = f"wg_content_{uuid.uuid4().hex[:12]}"
    return name, create_database(pg_server_url, name, template=template_db)


@pytest.fixture(scope="module")
def built(pg_server_url: str, template_db: str, world: World,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """The seeded world with the whole dbt project built (models and tests) once."""
    with built_database(pg_server_url, template_db, "content", world.seed,
                        tmp_path_factory.mktemp("dbt")) as url:
        engine = sa.create_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def test_platform_performance_matches_the_seed(built: sa.Engine, world: World) -> None:
    got = mart(built, "platform_performance", ("day", "character_id", "platform"))
    want = expected_platform_performance(world)
    assert got == want
    # The seed's corner cases are really in there.
    assert got[(MIA_EMPTY_DAY, "mia", "tiktok")] == (0,) * 9 + (None,)
    tomorrow = got[(LAST + dt.timedelta(days=1), "aiko", "tiktok")]
    assert tomorrow[0] == tomorrow[3] == 4 and tomorrow[1] == 0
    assert any(v[2] for v in got.values()) and any(v[0] > v[1] + v[2] + v[3]
                                                   for v in got.values())


def test_post_performance_matches_the_seed(built: sa.Engine, world: World) -> None:
    got = mart(built, "post_performance", ("post_id",))
    want = expected_post_performance(world)
    assert got == want
    values = list(want.values())
    assert any(v[6] is None for v in values)  # a post without a 24 h reading
    assert any(v[11] is None and v[6] is not None for v in values)  # 7 d not yet
    assert any(v[5] == 0 for v in values)  # published after local midnight
    assert any(v[4].date() != v[3] for v in values)  # UTC day != the reel's local day
    assert any(v[6] == 0 and v[10] is None for v in values)  # 0 views: no rate


def test_best_posting_hours_matches_the_seed(built: sa.Engine, world: World) -> None:
    got = mart(built, "best_posting_hours", ("character_id", "platform", "local_hour"))
    assert got == expected_best_posting_hours(world)
    assert {v[-1] for v in got.values()} == {True, False}
    assert not any(v[-1] for (cid, _p, _h), v in got.items() if cid == "lena")


def test_character_ranking_matches_the_seed(built: sa.Engine, world: World) -> None:
    got = mart(built, "character_ranking", ("character_id", "window_days"))
    want = expected_character_ranking(world)
    assert got == want
    assert {v[0] for v in got.values()} == {LAST}
    # The seeded ties share a rank: views and engagement (aiko, mia), revenue (aiko, lena).
    week = {cid: v for (cid, w), v in got.items() if w == 7}
    assert week["aiko"][1] == week["mia"][1] and week["aiko"][4] == week["mia"][4]
    assert week["aiko"][6] == week["mia"][6]
    assert week["aiko"][2] == week["lena"][2] == 2500 and week["aiko"][5] == 1


def test_marts_are_documented_and_readable_by_analysts(built: sa.Engine) -> None:
    with built.connect() as conn:
        for table in ("platform_performance", "post_performance", "best_posting_hours",
                      "character_ranking"):
            comment = conn.scalar(sa.text("select obj_description(to_regclass(:t), 'pg_class')"),
                                  {"t": f"analytics.{table}"})
            assert comment and comment.startswith("Grain:"), table
            assert conn.scalar(sa.text(
                "select has_table_privilege(:role, :t, 'select')"),
                {"role": schema.ANALYST_ROLE, "t": f"analytics.{table}"})


# --- incremental ---------------------------------------------------------------------------

def test_an_incremental_day_run_rebuilds_that_day_only(
        pg_server_url: str, template_db: str, tmp_path: Path) -> None:
    world = build_world()
    name, url = fresh_database(pg_server_url, template_db)
    engine = sa.create_engine(url)
    try:
        world.seed(engine)
        full = dbt_build(url, tmp_path)
        assert full.returncode == 0, failure_text(full)
        before = expected_platform_performance(world)
        assert mart(engine, "platform_performance", ("day", "character_id", "platform")) \
            == before

        # Two days change in the sources; only the first is rebuilt.
        day, other = dt.date(2026, 3, 10), dt.date(2026, 3, 11)
        changed = copy.deepcopy(world)
        with engine.begin() as conn:
            for d, extra in ((day, 777), (other, 555)):
                g = next(g for g in changed.gains
                         if (g.character_id, g.day, g.platform) == ("mia", d, "tiktok"))
                g.views += extra
                ed = schema.engagement_daily
                conn.execute(sa.update(ed).values(views=g.views).where(
                    ed.c.character_id == "mia", ed.c.date == d, ed.c.platform == "tiktok"))
                p = next(p for p in changed.posts
                         if p.character_id == "mia" and p.day == d and p.state == "published")
                p.state = "skipped"
                sp = schema.social_posts
                conn.execute(sa.update(sp).values(state="skipped").where(sp.c.id == p.id))
        run = dbt_build(url, tmp_path, select="platform_performance",
                        dbt_vars={"min_date": day.isoformat(),
                                  "max_date": (day + dt.timedelta(days=1)).isoformat()})
        assert run.returncode == 0, failure_text(run)

        after = expected_platform_performance(changed)
        want = {k: (after[k] if k[0] == day else v) for k, v in before.items()}
        got = mart(engine, "platform_performance", ("day", "character_id", "platform"))
        assert got == want
        assert got[(day, "mia", "tiktok")] != before[(day, "mia", "tiktok")]
        assert got[(other, "mia", "tiktok")] == before[(other, "mia", "tiktok")] \
            != after[(other, "mia", "tiktok")]
    finally:
        engine.dispose()
        drop_database(pg_server_url, name)
