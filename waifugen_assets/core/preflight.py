"""Checks run before anything is paid for or sent: configuration mistakes stop the run.

A wrong WAIFUGEN_SECRET_KEY used to be found one post at a time, after the renders were paid
for, and every account was marked as needing re-authorisation. Now every stored token must
decrypt with the configured keys, and the credentials the run's providers need must be
present, before the first paid call; otherwise the run stops with one `ConfigError` naming
what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa

from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault


def undecryptable_tokens(engine: sa.Engine,
                         character_ids: Sequence[str] | None = None) -> list[str]:
    vault = TokenVault(engine, TokenCipher(get_settings().secret_keys))
    return vault.undecryptable(character_ids)


def check_before_spending(engine: sa.Engine, character_ids: Sequence[str] | None = None,
                          credentials: Iterable[Callable[[], object]] = ()) -> None:
    """Raise ConfigError unless every stored token (of `character_ids`, default all) decrypts
    and every credential getter returns without a ConfigError."""
    problems = []
    bad = undecryptable_tokens(engine, character_ids)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        problems.append(f"{len(bad)} stored token(s) do not decrypt with WAIFUGEN_SECRET_KEY "
                        f"({shown}): set the key that wrote them (key ids shown), or store "
                        "new tokens with `waifugen tokens set`")
    for getter in credentials:
        try:
            getter()
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("configuration checked before spending anything: "
                          + "; ".join(problems))
