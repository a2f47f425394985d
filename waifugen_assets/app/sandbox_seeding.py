"""Sandbox only: what `make run`, `make dev`, the tests and the benchmarks put into the
simulated world and the app database before a run, so the day publishes and DMs end to end.
Production modules hold none of this."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import httpx
import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.core.sandbox_world import (
    sandbox_bot_id,
    sandbox_bot_token,
    sandbox_bot_username,
)
from waifugen_assets.core.tokens import TokenCipher, TokenSet, TokenVault

SANDBOX_YOUTUBE_UNITS = 1_000_000
SANDBOX_HEAD_START_S = 3 * 3600


def configure_sandbox_world(url: str) -> None:
    """The world `make run` and `make dev` see: A2E renders finish by the first status poll
    (a real deployment polls after the expected render time), so a whole roster's day fits
    in A2E's 100 requests an hour: TTS, submit and one poll per reel; posts have a few hours
    of audience when they go out."""
    httpx.post(f"{url}/a2e/_control/config", json={"states_per_poll": 10},
               timeout=10).raise_for_status()
    # A whole roster's day is ~30 uploads; a real project asks Google for that much quota.
    httpx.post(f"{url}/youtube/_control/config", json={"units_per_day": SANDBOX_YOUTUBE_UNITS},
               timeout=10).raise_for_status()
    # `make run` reads its posts seconds after publishing them: their counters start with a
    # few hours of audience, so the day shows numbers instead of zeros.
    for platform in ("tiktok", "instagram", "youtube"):
        httpx.post(f"{url}/{platform}/_control/audience",
                   json={"head_start": SANDBOX_HEAD_START_S}, timeout=10).raise_for_status()


def simulate_sandbox_audience(url: str, character_ids: list[str], day: dt.date) -> None:
    """Sandbox only: the day before `day` on each character's Fanvue creator and Telegram bot
    (sign-ups, replies, tips, opt-outs; seeded, so every `make run` sees the same fans), so
    the DM run has subscribers whose day-0 welcome is due."""
    before = (day - dt.timedelta(days=1)).isoformat()
    for cid in character_ids:
        httpx.post(f"{url}/fanvue/_control/simulate", json={"creator": cid, "day": before},
                   timeout=10).raise_for_status()
        httpx.post(f"{url}/telegram/_control/simulate",
                   json={"bot": sandbox_bot_username(cid), "day": before},
                   timeout=10).raise_for_status()


def seed_sandbox_tokens(vault: TokenVault, suffix: str = "") -> list[tuple[str, str]]:
    """Sandbox only: give every publish account without a token its sandbox token, so
    `make run` publishes. YouTube gets an expired access token: the first use refreshes."""
    pa = schema.platform_accounts
    with vault.engine.connect() as conn:
        rows = conn.execute(sa.select(pa.c.character_id, pa.c.platform).where(
            pa.c.platform.in_(schema.SOCIAL_PLATFORMS), pa.c.access_token_enc.is_(None))).all()
    seeded = []
    for cid, platform in rows:
        account = f"{cid}{suffix}"
        if platform == "tiktok":
            tokens = TokenSet(f"act.sandbox.{account}", f"rft.sandbox.{account}", 7200, 86400)
        elif platform == "instagram":
            token = f"IGAAsandbox{account.replace('-', '')}"
            tokens = TokenSet(token, token, 60 * 86400, 60 * 86400)
        else:
            tokens = TokenSet(f"ya29.expired-{account}", f"1//sandbox-{account}", -60, None)
        with vault.engine.begin() as conn:
            vault.save(conn, cid, platform, tokens)
        seeded.append((cid, platform))
    return seeded


def seed_sandbox_subscriber_tokens(vault: TokenVault, suffix: str = "") -> list[tuple[str, str]]:
    """Sandbox only: each Fanvue and Telegram account without a token gets its sandbox one
    (Fanvue: the creator `<character><suffix>`; Telegram: that account's bot)."""
    pa = schema.platform_accounts
    with vault.engine.connect() as conn:
        rows = conn.execute(sa.select(pa.c.id, pa.c.character_id, pa.c.platform).where(
            pa.c.platform.in_(("fanvue", "telegram")), pa.c.access_token_enc.is_(None))).all()
    seeded = []
    for account_id, cid, platform in rows:
        account = f"{cid}{suffix}"
        with vault.engine.begin() as conn:
            if platform == "fanvue":
                vault.save(conn, cid, platform, TokenSet(
                    f"fv_at.sandbox.{account}", f"fv_rt.sandbox.{account}", 30 * 86400, None))
            else:
                vault.save(conn, cid, platform, TokenSet(
                    sandbox_bot_token(account), None, None, None))
                conn.execute(sa.update(pa).where(pa.c.id == account_id)
                             .values(external_user_id=str(sandbox_bot_id(account))))
        seeded.append((cid, platform))
    return seeded


def seed_all_tokens(engine: sa.Engine, secret_keys: Sequence[str]) -> None:
    """Every account without a token gets its sandbox token (publishing and subscribers)."""
    vault = TokenVault(engine, TokenCipher(secret_keys))
    seed_sandbox_tokens(vault)
    seed_sandbox_subscriber_tokens(vault)


# What the sandbox audience says under each of the day's Instagram and YouTube posts when
# `make run` publishes it (the simulated audience comments along the post's first hours; a
# run seconds after publishing would see few): one of each kind the reply stage must handle.
SANDBOX_COMMENTS = (
    ("question", "What song is this? I need it for my playlist"),
    ("compliment", "This is so pretty, love the colours!"),
    ("spam", "Make $500 a day from home, DM me or visit http://spam.example"),
    ("sexual", "send me something sexy in private"),
)


def comment_on_sandbox_posts(url: str, engine: sa.Engine, character_id: str,
                             day: dt.date) -> int:
    """Sandbox only: SANDBOX_COMMENTS under each of the character's Instagram and YouTube
    posts of `day` that is live and has none of them yet; how many comments were added."""
    sp, r = schema.social_posts, schema.reels
    with engine.connect() as conn:
        posts = conn.execute(sa.select(sp.c.platform, sp.c.remote_post_id)
                             .join(r, r.c.id == sp.c.reel_id)
                             .where(r.c.character_id == character_id, r.c.date == day,
                                    sp.c.state == "published",
                                    sp.c.platform.in_(("instagram", "youtube")),
                                    sp.c.remote_post_id.is_not(None))).all()
    added = 0
    with httpx.Client(timeout=10) as http:
        for platform, post in posts:
            listed = http.get(f"{url}/{platform}/_control/comments", params={"post": post})
            listed.raise_for_status()
            texts = {c.get("text") for c in _items(listed.json())}
            for kind, text in SANDBOX_COMMENTS:
                if text not in texts:
                    http.post(f"{url}/{platform}/_control/comments",
                              json={"post": post, "text": text, "class": kind}
                              ).raise_for_status()
                    added += 1
    return added


def _items(body: object) -> list[dict]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return next((v for v in body.values() if isinstance(v, list)), [])
    return []
