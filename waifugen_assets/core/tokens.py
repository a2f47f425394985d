"""Platform OAuth tokens, encrypted at rest in platform_accounts, with rotatable keys.

WAIFUGEN_SECRET_KEY holds one or more Fernet keys, newest first. Tokens are encrypted with the
newest; any listed key decrypts; `key_id` (a short fingerprint, never the key) records which
key wrote a row, so `rekey` can find rows still under an old key before that key is retired.

Refreshing is serialised per account with a row lock (SELECT ... FOR UPDATE): TikTok rotates
refresh tokens, so two workers refreshing with the same one would leave one holding a dead
token. The newest refresh token is stored in the same transaction that learns it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from waifugen_assets.core import clock as pipeline_clock
from waifugen_assets.core import redaction, schema
from waifugen_assets.core.config import ConfigError


@dataclass(frozen=True)
class TokenSet:
    """What every platform's OAuth token endpoint answers, in one shape."""

    access_token: str
    refresh_token: str | None
    expires_in: int | None  # seconds from now
    refresh_expires_in: int | None

REFRESH_MARGIN = dt.timedelta(minutes=5)  # refresh a little before the access token expires


class TokenError(RuntimeError):
    """No usable token: the message says which account and what to do."""


class UndecryptableToken(ConfigError):
    """A stored token does not decrypt with WAIFUGEN_SECRET_KEY: a configuration mistake (a
    wrong or retired key), never a revoked authorisation; nothing may be spent until fixed."""


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: dt.datetime | None
    key_id: str | None

    def expiring(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at - REFRESH_MARGIN <= now


class TokenCipher:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise TokenError("no encryption key: set WAIFUGEN_SECRET_KEY")
        try:
            fernets = [Fernet(k.encode()) for k in keys]
        except ValueError:
            raise TokenError("WAIFUGEN_SECRET_KEY holds a key that is not a Fernet key "
                             "(32 url-safe base64 bytes)") from None
        self._multi = MultiFernet(fernets)
        self.current_key_id = key_id(keys[0])
        self.key_ids = tuple(key_id(k) for k in keys)  # fingerprints, never the keys

    def encrypt(self, token: str) -> bytes:
        redaction.register_secret(token)
        return self._multi.encrypt(token.encode())

    def decrypt(self, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        try:
            token = self._multi.decrypt(bytes(blob)).decode()
        except InvalidToken:
            raise UndecryptableToken(
                "a stored token cannot be decrypted with the keys in WAIFUGEN_SECRET_KEY "
                f"(configured: {', '.join(self.key_ids)}): is the key wrong, or was the key "
                "that wrote it removed before `waifugen tokens rekey`?") from None
        redaction.register_secret(token)
        return token

    def rotate(self, blob: bytes) -> bytes:
        return self._multi.rotate(bytes(blob))


def _at(now: dt.datetime, seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else now + dt.timedelta(seconds=seconds)


class TokenVault:
    def __init__(self, engine: sa.Engine, cipher: TokenCipher,
                 clock: Callable[[], dt.datetime] = pipeline_clock.now) -> None:
        self.engine, self.cipher, self.clock = engine, cipher, clock

    def _where(self, character_id: str, platform: str) -> sa.ColumnElement[bool]:
        pa = schema.platform_accounts
        return sa.and_(pa.c.character_id == character_id, pa.c.platform == platform)

    def save(self, conn: sa.Connection, character_id: str, platform: str,
             tokens: TokenSet) -> None:
        """Store a token set; a set without a refresh token keeps the stored one (Google)."""
        now = self.clock()
        values: dict[str, object] = {
            "access_token_enc": self.cipher.encrypt(tokens.access_token),
            "token_expires_at": _at(now, tokens.expires_in),
            "key_id": self.cipher.current_key_id, "status": "active", "updated_at": now,
        }
        if tokens.refresh_token:
            values["refresh_token_enc"] = self.cipher.encrypt(tokens.refresh_token)
            values["refresh_expires_at"] = _at(now, tokens.refresh_expires_in)
        updated = conn.execute(sa.update(schema.platform_accounts)
                               .where(self._where(character_id, platform)).values(**values))
        if updated.rowcount != 1:
            raise TokenError(f"no {platform} account for {character_id} in the roster")

    def load(self, character_id: str, platform: str,
             conn: sa.Connection | None = None, lock: bool = False) -> Tokens:
        pa = schema.platform_accounts
        query = sa.select(pa.c.access_token_enc, pa.c.refresh_token_enc, pa.c.token_expires_at,
                          pa.c.key_id, pa.c.status).where(self._where(character_id, platform))
        if lock:
            query = query.with_for_update()
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None or row.access_token_enc is None:
            raise TokenError(f"{character_id} has no {platform} token: authorise the account "
                             f"(waifugen tokens set {platform} {character_id} ...)")
        # An account in needs_reauth is still tried: only the platform can say the token is
        # good again (mark_active), e.g. after a 401 that was the platform's own hiccup.
        return Tokens(str(self.cipher.decrypt(row.access_token_enc)),
                      self.cipher.decrypt(row.refresh_token_enc), row.token_expires_at,
                      row.key_id)

    def access_token(self, character_id: str, platform: str,
                     refresher: Callable[[str], TokenSet] | None = None) -> str:
        """A valid access token, refreshed (once, under a row lock) when about to expire."""
        tokens = self.load(character_id, platform)
        if refresher is None or not tokens.expiring(self.clock()):
            return tokens.access_token
        return self.refresh(character_id, platform, refresher, stale=tokens.access_token)

    def refresh(self, character_id: str, platform: str, refresher: Callable[[str], TokenSet],
                stale: str | None = None) -> str:
        """Refresh now (e.g. after a 401). If another worker refreshed meanwhile (the token
        differs from `stale`), use its result instead of spending the refresh token again."""
        with self.engine.begin() as conn:
            current = self.load(character_id, platform, conn, lock=True)
            if stale is not None and current.access_token != stale \
                    and not current.expiring(self.clock()):
                return current.access_token
            if not current.refresh_token:
                raise TokenError(f"{character_id}'s {platform} token expired and there is no "
                                 "refresh token: authorise the account again")
            fresh = refresher(current.refresh_token)
            self.save(conn, character_id, platform, fresh)
            return fresh.access_token

    def mark_needs_reauth(self, character_id: str, platform: str) -> bool:
        """True when the account just changed to `needs_reauth` (alert once, not every run)."""
        pa = schema.platform_accounts
        with self.engine.begin() as conn:
            changed = conn.execute(sa.update(pa)
                                   .where(self._where(character_id, platform),
                                          pa.c.status != "needs_reauth")
                                   .values(status="needs_reauth", updated_at=self.clock()))
        return changed.rowcount == 1

    def mark_active(self, character_id: str, platform: str) -> bool:
        """The platform accepted the account's token: out of `needs_reauth`; True if it was."""
        pa = schema.platform_accounts
        with self.engine.begin() as conn:
            changed = conn.execute(sa.update(pa)
                                   .where(self._where(character_id, platform),
                                          pa.c.status == "needs_reauth")
                                   .values(status="active", updated_at=self.clock()))
        return changed.rowcount == 1

    def undecryptable(self, character_ids: Sequence[str] | None = None) -> list[str]:
        """Accounts whose stored tokens do not decrypt with the configured keys, as
        `character/platform (key <id>)`: checked before anything is paid for."""
        pa = schema.platform_accounts
        query = sa.select(pa.c.character_id, pa.c.platform, pa.c.key_id, pa.c.access_token_enc,
                          pa.c.refresh_token_enc).where(pa.c.access_token_enc.is_not(None))
        if character_ids is not None:
            query = query.where(pa.c.character_id.in_(list(character_ids)))
        bad = []
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(pa.c.character_id, pa.c.platform)).all()
        for cid, platform, written_with, access, refresh in rows:
            try:
                self.cipher.decrypt(access)
                self.cipher.decrypt(refresh)
            except UndecryptableToken:
                bad.append(f"{cid}/{platform} (key {written_with or '?'})")
        return bad

    def rekey(self) -> int:
        """Re-encrypt every token still under an older key with the newest; returns how many
        rows changed. Run it before removing an old key from WAIFUGEN_SECRET_KEY."""
        pa = schema.platform_accounts
        changed = 0
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(pa.c.id, pa.c.access_token_enc, pa.c.refresh_token_enc)
                                .where(pa.c.key_id.is_distinct_from(self.cipher.current_key_id),
                                       pa.c.access_token_enc.is_not(None))
                                .with_for_update()).all()
            for row in rows:
                conn.execute(sa.update(pa).where(pa.c.id == row.id).values(
                    access_token_enc=self.cipher.rotate(row.access_token_enc),
                    refresh_token_enc=None if row.refresh_token_enc is None
                    else self.cipher.rotate(row.refresh_token_enc),
                    key_id=self.cipher.current_key_id))
                changed += 1
        return changed
