"""The PostgreSQL rate-limit store: a sliding-window log that holds a limit across independent
engines (processes), on the database's clock."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from resources.http import RateLimited, RateLimiter
from resources.quota_store import PostgresRateLimitStore
from waifugen_assets.core import schema


def test_limit_holds_across_engines_and_threads(db_url: str) -> None:
    engines = [sa.create_engine(db_url) for _ in range(3)]
    stores = [PostgresRateLimitStore(e, "a2e") for e in engines]
    granted: list[int] = []
    lock = threading.Lock()

    def worker(store: PostgresRateLimitStore) -> None:
        for _ in range(20):
            if store.try_take("key-1", 25, 3600, 1, 0.0)[0] == 0.0:
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 25
    assert stores[0].used("key-1", 3600) == 25
    assert stores[1].try_take("key-2", 25, 3600, 1, 0.0)[0] == 0.0  # keys are separate
    wait = stores[2].try_take("key-1", 25, 3600, 1, 0.0)[0]
    assert 3500 < wait <= 3600  # the oldest of the 25 leaves the window in about an hour
    for e in engines:
        e.dispose()


def test_limiter_raises_instead_of_waiting_an_hour(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    limiter = RateLimiter("a2e-db", 2, 3600, store=PostgresRateLimitStore(engine, "a2e"),
                          max_wait=1)
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimited) as err:
        limiter.acquire("k")
    assert err.value.retry_after > 1
    engine.dispose()


def _taken(engine: sa.Engine, key: str, period: float, *ago_and_units: tuple[float, int]) -> None:
    """History: units taken `ago` seconds before the database's now."""
    with engine.begin() as conn:
        for ago, units in ago_and_units:
            conn.execute(sa.text(
                "INSERT INTO rate_limit_log (platform, account_key, window_seconds, taken_at, "
                "units) VALUES ('telegram', :key, :period, "
                "clock_timestamp() - make_interval(secs => :ago), :units)"),
                {"key": key, "period": period, "ago": ago, "units": units})


def test_the_window_slides_instead_of_resetting_at_an_edge(engine: sa.Engine) -> None:
    store = PostgresRateLimitStore(engine, "telegram")
    # Three taken 50, 20 and 5 s ago, 3 per minute: a fixed minute window may have started
    # since the first two and allow more; a sliding one waits for the oldest to leave.
    _taken(engine, "k", 60, (50, 1), (20, 1), (5, 1))
    one = store.try_take("k", 3, 60, 1, 0.0)[0]
    assert 9 < one <= 10  # the one from 50 s ago leaves in 10 s
    two = store.try_take("k", 3, 60, 2, 0.0)[0]
    assert 39 < two <= 40  # two must leave: the second oldest goes in 40 s
    assert store.used("k", 60) == 3  # refusals take nothing


def test_what_left_the_window_no_longer_counts_and_is_deleted(engine: sa.Engine) -> None:
    store = PostgresRateLimitStore(engine, "telegram")
    _taken(engine, "k", 60, (61, 2), (90, 1), (30, 1))
    _taken(engine, "other", 1, (5, 1))  # another key's stale row: swept on first use
    assert store.try_take("k", 3, 60, 2, 0.0)[0] == 0.0  # 1 in the window + 2 = the limit
    assert store.try_take("k", 3, 60, 1, 0.0)[0] > 0
    rl = schema.rate_limit_log
    with engine.connect() as conn:
        left = conn.execute(sa.select(rl.c.account_key, rl.c.units).order_by(rl.c.id)).all()
    assert [tuple(r) for r in left] == [("k", 1), ("k", 2)]


def test_periods_and_services_are_separate_budgets(engine: sa.Engine) -> None:
    telegram = PostgresRateLimitStore(engine, "telegram")
    fanvue = PostgresRateLimitStore(engine, "fanvue")
    assert telegram.try_take("k", 1, 1, 1, 0.0)[0] == 0.0
    assert telegram.try_take("k", 1, 90, 1, 0.0)[0] == 0.0  # any period, its own log
    assert fanvue.try_take("k", 1, 1, 1, 0.0)[0] == 0.0
    assert telegram.try_take("k", 1, 1, 1, 0.0)[0] > 0
    with pytest.raises(ValueError, match="unknown quota service"):
        PostgresRateLimitStore(engine, "myspace")
    with pytest.raises(ValueError, match="positive"):
        telegram.try_take("k", 1, 0, 1, 0.0)[0]


def test_a_settled_ticket_counts_from_its_answer(engine: sa.Engine) -> None:
    store = PostgresRateLimitStore(engine, "telegram")
    _taken(engine, "k", 60, (30, 1))
    wait, ticket = store.try_take("k", 2, 60, 1, 0.0)
    assert wait == 0.0 and ticket is not None
    rl = schema.rate_limit_log
    with engine.begin() as conn:  # as if taken 50 s ago and answered only now
        conn.execute(sa.update(rl).where(rl.c.id == ticket).values(
            taken_at=sa.func.clock_timestamp() - sa.text("interval '50 seconds'")))
    store.settle("k", ticket, 0.0)
    # Full: the earliest to leave is the row from 30 s ago, not the one settled just now.
    assert 29 < store.try_take("k", 2, 60, 1, 0.0)[0] <= 30
    with engine.begin() as conn:
        conn.execute(sa.delete(rl))
    store.settle("k", ticket, 0.0)  # a row that left the window: nothing to do
