"""The PostgreSQL rate-limit store holds a limit across independent engines (processes)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from resources.http import RateLimited, RateLimiter
from resources.quota_store import PostgresRateLimitStore


def test_limit_holds_across_engines_and_threads(db_url: str) -> None:
    engines = [sa.create_engine(db_url) for _ in range(3)]
    stores = [PostgresRateLimitStore(e, "a2e") for e in engines]
    granted: list[int] = []
    lock = threading.Lock()

    def worker(store: PostgresRateLimitStore) -> None:
        for _ in range(20):
            if store.try_acquire("key-1", 25, 3600, 1, 0.0) == 0.0:
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 25
    assert stores[0].used("key-1", 3600) == 25
    assert stores[1].try_acquire("key-2", 25, 3600, 1, 0.0) == 0.0  # keys are separate
    wait = stores[2].try_acquire("key-1", 25, 3600, 1, 0.0)
    assert 0 < wait <= 3600
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


def test_unknown_period_is_refused(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with pytest.raises(ValueError, match="no window kind"):
        PostgresRateLimitStore(engine, "a2e").try_acquire("k", 1, 90, 1, 0.0)
    engine.dispose()
