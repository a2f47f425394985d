"""Tokens at rest: encrypted, rotatable keys, refresh serialised, rotated refresh tokens kept."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from waifugen_assets.core import schema
from waifugen_assets.core.config import ConfigError, project_root
from waifugen_assets.core.tokens import (
    TokenCipher,
    TokenError,
    TokenSet,
    TokenVault,
    UndecryptableToken,
    key_id,
)
from waifugen_assets.roster.assets import sync_roster
from waifugen_assets.roster.model import load_roster

CID, PLATFORM = "mika-hoshizora", "tiktok"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def accounts(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        sync_roster(conn, load_roster(project_root() / "characters.yaml"))
    return engine


def _vault(engine: sa.Engine, *keys: str, now: dt.datetime = NOW) -> TokenVault:
    return TokenVault(engine, TokenCipher(list(keys)), clock=lambda: now)


def test_tokens_are_encrypted_at_rest(accounts: sa.Engine) -> None:
    key = Fernet.generate_key().decode()
    vault = _vault(accounts, key)
    with accounts.begin() as conn:
        vault.save(conn, CID, PLATFORM, TokenSet("act.secret-access-1", "rft.secret-refresh-1",
                                                 86400, 86400 * 180))
    with accounts.connect() as conn:
        raw = conn.execute(sa.text("SELECT access_token_enc, refresh_token_enc, key_id FROM "
                                   "platform_accounts WHERE character_id = :c AND platform = :p"),
                           {"c": CID, "p": PLATFORM}).one()
    assert b"secret-access-1" not in bytes(raw[0]) and b"secret-refresh-1" not in bytes(raw[1])
    assert key not in raw[2] and len(raw[2]) == 12
    tokens = vault.load(CID, PLATFORM)
    assert tokens.access_token == "act.secret-access-1"
    assert tokens.expires_at == NOW + dt.timedelta(days=1)


def test_key_rotation(accounts: sa.Engine) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with accounts.begin() as conn:
        _vault(accounts, old).save(conn, CID, PLATFORM, TokenSet("act-1", "rft-1", 3600, None))
    wrong = _vault(accounts, new)
    # A configuration error naming the keys by fingerprint, never a token problem of the
    # account (which would mark it for re-authorisation).
    with pytest.raises(UndecryptableToken, match="cannot be decrypted") as raised:
        wrong.load(CID, PLATFORM)
    assert isinstance(raised.value, ConfigError) and not isinstance(raised.value, TokenError)
    assert key_id(new) in str(raised.value) and new not in str(raised.value)
    assert wrong.undecryptable() == [f"{CID}/{PLATFORM} (key {key_id(old)})"]
    both = _vault(accounts, new, old)
    assert both.undecryptable() == []
    assert both.load(CID, PLATFORM).access_token == "act-1"
    assert both.rekey() == 1 and both.rekey() == 0
    assert _vault(accounts, new).load(CID, PLATFORM).refresh_token == "rft-1"


def test_bad_key_is_a_clear_error(accounts: sa.Engine) -> None:
    with pytest.raises(TokenError, match="not a Fernet key"):
        TokenCipher(["not-a-key"])


def test_refresh_keeps_the_rotated_refresh_token(accounts: sa.Engine) -> None:
    key = Fernet.generate_key().decode()
    with accounts.begin() as conn:
        _vault(accounts, key).save(conn, CID, PLATFORM, TokenSet("act-1", "rft-1", 60, None))
    seen: list[str] = []

    def refresher(refresh_token: str) -> TokenSet:
        seen.append(refresh_token)
        n = len(seen) + 1
        return TokenSet(f"act-{n}", f"rft-{n}", 86400, None)

    later = _vault(accounts, key, now=NOW + dt.timedelta(seconds=30))  # within the margin
    assert later.access_token(CID, PLATFORM, refresher) == "act-2"
    assert later.refresh(CID, PLATFORM, refresher) == "act-3"
    assert seen == ["rft-1", "rft-2"]  # each refresh used the newest refresh token


def test_concurrent_refreshes_spend_the_refresh_token_once(accounts: sa.Engine) -> None:
    key = Fernet.generate_key().decode()
    with accounts.begin() as conn:
        _vault(accounts, key).save(conn, CID, PLATFORM, TokenSet("act-1", "rft-1", 86400, None))
    calls: list[str] = []
    lock = threading.Lock()

    def refresher(refresh_token: str) -> TokenSet:
        with lock:
            calls.append(refresh_token)
        return TokenSet("act-2", "rft-2", 86400, None)

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        _vault(accounts, key).refresh(CID, PLATFORM, refresher, stale="act-1")))
        for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["rft-1"] and results == ["act-2"] * 4


def test_missing_and_revoked_accounts(accounts: sa.Engine) -> None:
    vault = _vault(accounts, Fernet.generate_key().decode())
    with pytest.raises(TokenError, match="has no tiktok token"):
        vault.load(CID, PLATFORM)
    with accounts.begin() as conn, pytest.raises(TokenError, match="no youtube account"):
        vault.save(conn, "nobody", "youtube", TokenSet("a", None, None, None))
    with accounts.begin() as conn:
        vault.save(conn, CID, PLATFORM, TokenSet("act-1", None, None, None))

    def status() -> str:
        with accounts.connect() as conn:
            return conn.scalar(sa.select(schema.platform_accounts.c.status).where(
                schema.platform_accounts.c.character_id == CID,
                schema.platform_accounts.c.platform == PLATFORM))

    assert vault.mark_needs_reauth(CID, PLATFORM) and status() == "needs_reauth"
    assert not vault.mark_needs_reauth(CID, PLATFORM)  # marked once: alerted once
    # Still tried: only the platform can tell the token is good again ...
    assert vault.load(CID, PLATFORM).access_token == "act-1"
    # ... and when it accepts it, the account is out of needs_reauth.
    assert vault.mark_active(CID, PLATFORM) and status() == "active"
    assert not vault.mark_active(CID, PLATFORM)


def test_cli_stores_tokens_from_stdin_and_never_prints_them(accounts: sa.Engine, db_url: str,
                                                           tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": db_url, "WAIFUGEN_HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "waifugen_assets.app.cli", "tokens"]
    stored = subprocess.run([*cli, "set", "youtube", CID, "--access-token-file", "-",
                             "--expires-in", "3600"], input="ya29.very-secret-token\n",
                            env=env, capture_output=True, text=True)
    assert stored.returncode == 0, stored.stderr
    status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True).stdout
    line = next(x for x in status.splitlines() if x.startswith(CID) and " youtube " in x)
    assert "active" in line and "very-secret" not in stored.stdout + status
    missing = subprocess.run([*cli, "set", "youtube", "nobody", "--access-token-file", "-"],
                             input="x\n", env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "no youtube account for nobody" in missing.stderr
