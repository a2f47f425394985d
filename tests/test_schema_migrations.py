"""The app schema on a real PostgreSQL: migrations round-trip, match schema.py, enforce rules.

Constraint tests insert real rows and check which constraint refused them (by its
naming-convention name), so a test cannot pass because some other rule happened to fire.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from waifugen_assets.core import migrate, schema
from waifugen_assets.core.config import project_root

pytestmark = pytest.mark.integration

UTC = dt.UTC
DAY = dt.date(2026, 11, 25)
NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------------------------


def test_migrations_round_trip(empty_db_url: str) -> None:
    assert migrate.current(empty_db_url) is None

    migrate.upgrade(empty_db_url)
    newest = sorted((project_root() / "migrations" / "versions").glob("0*.py"))[-1].stem
    assert migrate.current(empty_db_url) == migrate.head() == newest
    assert _tables(empty_db_url) == {*schema.metadata.tables, "alembic_version"}

    migrate.downgrade(empty_db_url, "base")
    assert migrate.current(empty_db_url) is None
    assert _tables(empty_db_url) == {"alembic_version"}

    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head()
    assert _tables(empty_db_url) == {*schema.metadata.tables, "alembic_version"}


def test_migrated_database_matches_schema_module(engine: sa.Engine) -> None:
    """Autogenerate against a migrated database finds nothing to do: no drift."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, schema.metadata) == []


_LITERAL = re.compile(r"'((?:[^']|'')*)'|\b(\d+)\b")


def _in_values(sqltext: str) -> set[str]:
    """The values of `x IN ('a', 'b')` as declared, or of `x = ANY (ARRAY['a'::text, ...])` as
    PostgreSQL reflects it."""
    return {text or number for text, number in _LITERAL.findall(sqltext)}


def test_constraints_and_enumerations_match_schema_module(engine: sa.Engine) -> None:
    """Autogenerate does not compare CHECK constraints: compare names and IN-lists here."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in schema.metadata.sorted_tables:
            declared = {str(c.name): str(c.sqltext) for c in table.constraints
                        if isinstance(c, sa.CheckConstraint)}
            reflected = {c["name"]: c["sqltext"]
                         for c in inspector.get_check_constraints(table.name)}
            assert reflected.keys() == declared.keys(), table.name
            for name, text in declared.items():
                if " IN (" in text:
                    assert _in_values(reflected[name]) == _in_values(text), name
            assert {c["name"] for c in inspector.get_unique_constraints(table.name)} == {
                str(c.name) for c in table.constraints if isinstance(c, sa.UniqueConstraint)
            }, table.name
        (once,) = [c for c in inspector.get_unique_constraints("budget_alerts")]
        assert once["dialect_options"].get("postgresql_nulls_not_distinct") is True


def test_every_table_of_the_design_exists() -> None:
    assert set(schema.metadata.tables) >= {
        "characters", "platform_accounts", "credentials", "reels", "videos", "social_posts",
        "post_attempts", "quota_usage", "rate_limit_log", "engagement_snapshots",
        "follower_snapshots", "comments", "comment_replies", "subscribers", "inbound_events",
        "dm_sequences",
        "dm_messages", "revenue_events", "credit_ledger", "budgets", "budget_alerts",
        "alerts",
    }


# ---------------------------------------------------------------------------------------------
# Constraints, with real inserts
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as connection, connection.begin():
        yield connection


def rejects(conn: sa.Connection, constraint: str, stmt: sa.Executable) -> None:
    """stmt fails with an IntegrityError raised by `constraint` (the transaction survives)."""
    with pytest.raises(IntegrityError) as caught, conn.begin_nested():
        conn.execute(stmt)
    assert caught.value.orig.diag.constraint_name == constraint


def insert(conn: sa.Connection, table: sa.Table, **values: Any) -> int | str:
    return conn.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one()


def character(slug: str = "aiko-tanaka", **values: Any) -> dict[str, Any]:
    return {"id": slug, "name": "Aiko Tanaka", "persona": "cheerful", "age": 24,
            "timezone": "Asia/Tokyo", "slots": ["08:30", "19:00"], **values}


@pytest.fixture
def world(conn: sa.Connection) -> dict[str, Any]:
    """One character with a reel, a post, a subscriber and a DM sequence."""
    char = insert(conn, schema.characters, **character())
    reel = insert(conn, schema.reels, character_id=char, date=DAY, slot=0, scheduled_at=NOON,
                  plan={"caption": "hi"})
    post = insert(conn, schema.social_posts, reel_id=reel, platform="tiktok", ai_disclosure=True)
    sub = insert(conn, schema.subscribers, character_id=char, platform="fanvue",
                 external_id="fv-1")
    seq = insert(conn, schema.dm_sequences, key="aiko-tanaka/standard/nurture@1",
                 character_id=char, tier="standard", definition={"steps": []})
    return {"character": char, "reel": reel, "post": post, "subscriber": sub, "sequence": seq}


def test_characters_must_be_adults(conn: sa.Connection) -> None:
    insert(conn, schema.characters, **character(age=schema.MIN_CHARACTER_AGE))
    rejects(conn, "ck_characters_age_adult",
            sa.insert(schema.characters).values(**character("minor", age=17)))


@pytest.mark.parametrize("slug", ["Aiko", "aiko_tanaka", "-aiko", "aiko-", "aiko--t", "", "a b"])
def test_character_id_must_be_a_slug(conn: sa.Connection, slug: str) -> None:
    rejects(conn, "ck_characters_id_slug", sa.insert(schema.characters).values(**character(slug)))


def test_valid_slugs_and_defaults(conn: sa.Connection) -> None:
    for slug in ("aiko", "aiko-tanaka", "x9", "a-b-c-1"):
        insert(conn, schema.characters, **character(slug))
    row = conn.execute(sa.select(schema.characters).where(schema.characters.c.id == "aiko")).one()
    assert (row.content_rating, row.enabled, row.budget_share) == ("general", True, None)
    assert row.created_at.tzinfo is not None


def test_one_post_per_reel_and_platform(conn: sa.Connection, world: dict[str, Any]) -> None:
    again = sa.insert(schema.social_posts).values(reel_id=world["reel"], platform="tiktok",
                                                  ai_disclosure=True)
    rejects(conn, "uq_social_posts_reel_id_platform", again)
    insert(conn, schema.social_posts, reel_id=world["reel"], platform="youtube",
           ai_disclosure=True)


def test_undisclosed_post_cannot_be_sent(conn: sa.Connection, world: dict[str, Any]) -> None:
    posts = schema.social_posts
    insert(conn, posts, reel_id=world["reel"], platform="instagram", ai_disclosure=False)
    rejects(conn, "ck_social_posts_disclosed_before_sending",
            sa.update(posts).where(posts.c.platform == "instagram").values(state="initiated"))


def test_one_dm_per_subscriber_sequence_step(conn: sa.Connection, world: dict[str, Any]) -> None:
    msg = {"subscriber_id": world["subscriber"], "sequence_id": world["sequence"],
           "due_at": NOON, "text": "hello"}
    insert(conn, schema.dm_messages, step=0, **msg)
    insert(conn, schema.dm_messages, step=1, **msg)
    rejects(conn, "uq_dm_messages_subscriber_id_sequence_id_step",
            sa.insert(schema.dm_messages).values(step=0, **msg))


def test_credits_and_cents_are_never_negative(conn: sa.Connection,
                                              world: dict[str, Any]) -> None:
    cost = {"provider": "a2e", "kind": "task_cost", "ledger_date": DAY, "reel_id": world["reel"]}
    rejects(conn, "ck_credit_ledger_credits_nonneg",
            sa.insert(schema.credit_ledger).values(credits=-1, external_ref="t-1", **cost))
    rejects(conn, "ck_reels_projected_credits_nonneg",
            sa.update(schema.reels).values(projected_credits=-5))
    rejects(conn, "ck_budgets_credits_limit_nonneg",
            sa.insert(schema.budgets).values(provider="a2e", period_start=DAY.replace(day=1),
                                             credits_limit=-100))
    revenue = {"platform": "fanvue", "character_id": world["character"], "kind": "tip",
               "currency": "USD", "occurred_at": NOON}
    rejects(conn, "ck_revenue_events_amount_cents_nonneg",
            sa.insert(schema.revenue_events).values(event_id="e-1", amount_cents=-500, **revenue))
    rejects(conn, "ck_revenue_events_currency_iso4217",
            sa.insert(schema.revenue_events).values(event_id="e-2", amount_cents=500,
                                                    **{**revenue, "currency": "usd"}))
    insert(conn, schema.revenue_events, event_id="e-3", amount_cents=0, **revenue)


def test_a_task_cost_is_recorded_once(conn: sa.Connection, world: dict[str, Any]) -> None:
    cost = {"provider": "a2e", "kind": "task_cost", "ledger_date": DAY, "credits": 30,
            "external_ref": "task-42"}
    insert(conn, schema.credit_ledger, **cost)
    rejects(conn, "uq_credit_ledger_provider_kind_external_ref",
            sa.insert(schema.credit_ledger).values(**cost))
    rejects(conn, "ck_credit_ledger_task_cost_has_ref",
            sa.insert(schema.credit_ledger).values(**{**cost, "external_ref": None}))


def test_one_budget_alert_even_for_the_whole_roster(conn: sa.Connection,
                                                    world: dict[str, Any]) -> None:
    month = DAY.replace(day=1)
    for character_id in (None, world["character"]):
        alert = {"provider": "a2e", "character_id": character_id, "period_start": month,
                 "threshold": 80}
        insert(conn, schema.budget_alerts, **alert)
        rejects(conn, "uq_budget_alerts_once", sa.insert(schema.budget_alerts).values(**alert))
        insert(conn, schema.budget_alerts, **{**alert, "threshold": 100})
    rejects(conn, "ck_budget_alerts_threshold",
            sa.insert(schema.budget_alerts).values(provider="a2e", period_start=month,
                                                   threshold=90))
    rejects(conn, "ck_budget_alerts_period_start_first_of_month",
            sa.insert(schema.budget_alerts).values(provider="a2e", period_start=DAY,
                                                   threshold=50))


def test_enumerations_in_python_match_the_database(conn: sa.Connection,
                                                   world: dict[str, Any]) -> None:
    reels, posts = schema.reels, schema.social_posts
    for status in schema.REEL_STATUSES:
        conn.execute(sa.update(reels).values(status=status))
    for state in schema.POST_STATES:
        conn.execute(sa.update(posts).values(state=state, published_at=NOON))
    rejects(conn, "ck_reels_status", sa.update(reels).values(status="done"))
    rejects(conn, "ck_social_posts_state", sa.update(posts).values(state="sent"))
    rejects(conn, "ck_social_posts_platform",
            sa.insert(posts).values(reel_id=world["reel"], platform="fanvue", ai_disclosure=True))


def test_history_is_not_deleted_with_its_parent(conn: sa.Connection,
                                                world: dict[str, Any]) -> None:
    """RESTRICT where a row records a side effect; measurements go with their post."""
    chars = schema.characters
    insert(conn, chars, **character("mei"))
    insert(conn, schema.reels, character_id="mei", date=DAY, slot=0, scheduled_at=NOON)
    rejects(conn, "fk_reels_character_id_characters", sa.delete(chars).where(chars.c.id == "mei"))
    insert(conn, schema.engagement_snapshots, post_id=world["post"], captured_at=NOON, views=10)
    conn.execute(sa.delete(schema.social_posts).where(schema.social_posts.c.id == world["post"]))
    assert conn.scalar(sa.select(sa.func.count()).select_from(schema.engagement_snapshots)) == 0


def test_rate_limits_in_open_windows_move_to_the_log(empty_db_url: str) -> None:
    """0006: what the old fixed-window store took in windows still open stays spent."""
    migrate.upgrade(empty_db_url, "0005_dm_scheduling")
    engine = sa.create_engine(empty_db_url)
    rows = [  # platform, key, kind, window start (seconds before now), units
        ("tiktok", "posts:7", "day", 3_600, 2),  # today's window: still open
        ("a2e", "a2e:key", "hour", 7_200, 90),  # two hours ago: closed
        ("fanvue", "fanvue:token", "minute", 0, 40),  # this minute
        ("youtube", "project-1", "day", 3_600, 1600),  # YouTube's own ledger: stays
    ]
    with engine.begin() as conn:
        for platform, key, kind, ago, units in rows:
            conn.execute(sa.text(
                "INSERT INTO quota_usage (platform, account_key, window_kind, window_start, "
                "units) VALUES (:p, :k, :kind, now() - make_interval(secs => :ago), :u)"),
                {"p": platform, "k": key, "kind": kind, "ago": ago, "u": units})
    migrate.upgrade(empty_db_url)
    with engine.connect() as conn:
        log = set(conn.execute(sa.text(
            "SELECT platform, account_key, window_seconds, units FROM rate_limit_log")).all())
        kept = conn.execute(sa.text("SELECT platform, units FROM quota_usage")).all()
    engine.dispose()
    assert log == {("tiktok", "posts:7", 86400.0, 2), ("fanvue", "fanvue:token", 60.0, 40)}
    assert [tuple(r) for r in kept] == [("youtube", 1600)]
