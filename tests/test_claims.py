"""Claims: one process at a time on a row; a dead process's claim is gone at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from waifugen_assets.core.claims import Claims, is_claimed

pytestmark = pytest.mark.integration


def test_a_claim_is_one_workers_until_released(engine: sa.Engine) -> None:
    with Claims(engine) as first, Claims(engine) as second:
        assert first.take("post", 7)
        assert first.take("post", 7)  # holding it already
        assert not second.take("post", 7)
        assert second.take("post", 8) and second.take("reel", 7)  # other rows, other kinds
        assert is_claimed(engine, "post", 7)
        first.release("post", 7)
        assert not is_claimed(engine, "post", 7)
        assert second.take("post", 7)
    assert not is_claimed(engine, "post", 8)  # closing releases everything


def test_hold_releases_even_when_the_work_fails(engine: sa.Engine) -> None:
    claims = Claims(engine)

    def work() -> None:
        with claims.hold("dm", 3) as mine:
            assert mine
            raise RuntimeError("the platform went away")

    with pytest.raises(RuntimeError):
        work()
    with Claims(engine) as other:
        assert other.take("dm", 3)
    claims.close()


def test_large_ids_and_unknown_kinds(engine: sa.Engine) -> None:
    with Claims(engine) as claims:
        assert claims.take("reel", 2**62)
        assert is_claimed(engine, "reel", 2**62)
        with pytest.raises(ValueError, match="unknown claim kind"):
            claims.take("posts", 1)


def test_a_killed_process_loses_its_claim_at_once(engine: sa.Engine, db_url: str) -> None:
    """No lease to wait out: the session ends with the process, and so does the claim."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        import sqlalchemy as sa
        from waifugen_assets.core.claims import Claims
        claims = Claims(sa.create_engine({db_url!r}))
        assert claims.take("post", 42)
        print("held", flush=True)
        sys.stdin.read()  # until killed
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with Claims(engine) as mine:
            assert not mine.take("post", 42)
            holder.kill()
            holder.wait(timeout=30)
            # The server notices the closed socket; the claim is free without any expiry.
            for _ in range(200):
                if mine.take("post", 42):
                    break
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT pg_sleep(0.05)"))
            assert mine.take("post", 42)
    finally:
        if holder.poll() is None:
            holder.kill()
