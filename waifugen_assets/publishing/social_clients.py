"""A character's authorised TikTok, Instagram and YouTube clients for reading back and
replying (the engagement and comment stages), built one way: tokens from the vault (refreshed
once after a 401), rate limits shared by every process, YouTube units counted in the one
per-project ledger the uploads use, so reads and replies never eat an upload's units unseen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

from resources.http.errors import AuthError
from resources.instagram import InstagramClient, InstagramResource, lookup_user
from resources.instagram import refresh_token as instagram_refresh
from resources.quota_store import PostgresRateLimitStore
from resources.tiktok import TikTokClient, TikTokResource, tiktok_limits
from resources.youtube import YouTubeClient, YouTubeResource
from waifugen_assets.core import schema
from waifugen_assets.core.accounts import learn_external_id
from waifugen_assets.core.tokens import TokenVault
from waifugen_assets.publishing.flows import TokenSource
from waifugen_assets.publishing.platform_flows import YouTubeFlow

T = TypeVar("T")


@dataclass
class SocialClients:
    """The clients of one character's accounts that could be built; `problems` says why the
    others could not (a missing token, an account without its id), one line each."""

    character_id: str
    tiktok: TikTokClient | None = None
    instagram: InstagramClient | None = None
    youtube: YouTubeClient | None = None
    # The project's units: `youtube_units.used(now)` / `.quota.fits(...)` before a call.
    youtube_units: YouTubeFlow | None = None
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, TokenSource] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def get(self, platform: str) -> Any:
        return getattr(self, platform)

    def call(self, platform: str, request: Callable[[], T]) -> T:
        """`request()`, once more after refreshing the token if the platform says 401."""
        try:
            return request()
        except AuthError:
            self.tokens[platform].refresh()
            return request()

    def close(self) -> None:
        for client in (self.tiktok, self.instagram, self.youtube):
            close = getattr(client, "close", None)
            if close is not None:
                close()


def character_accounts(conn: sa.Connection, character_id: str,
                       platforms: tuple[str, ...] = ("tiktok", "instagram", "youtube"),
                       ) -> dict[str, dict[str, Any]]:
    pa = schema.platform_accounts
    return {a["platform"]: dict(a) for a in conn.execute(
        sa.select(pa).where(pa.c.character_id == character_id, pa.c.platform.in_(platforms),
                            pa.c.status != "disabled")).mappings()}


def build_clients(engine: sa.Engine, vault: TokenVault, character_id: str,
                  accounts: Mapping[str, Mapping[str, Any]], *,
                  tiktok: TikTokResource | None = None,
                  instagram: InstagramResource | None = None,
                  youtube: YouTubeResource | None = None,
                  youtube_daily_units: int | None = None) -> SocialClients:
    """Clients for the `accounts` whose platform's resource is given (the comment stage
    passes no TikTok: it has no comment API for this kind of app)."""
    out = SocialClients(character_id, accounts={p: dict(a) for p, a in accounts.items()})
    for platform, account in accounts.items():
        try:
            if {"tiktok": tiktok, "instagram": instagram, "youtube": youtube}.get(platform) \
                    is None:
                continue
            if platform == "tiktok":
                tokens = TokenSource(vault, character_id, platform, tiktok.refresher())
                out.tiktok = tiktok.get_client(tokens, limits=tiktok_limits(
                    store=PostgresRateLimitStore(engine, "tiktok"),
                    max_wait=tiktok.max_wait_seconds))
            elif platform == "instagram":
                base, _ = instagram.resolved_urls()
                tokens = TokenSource(vault, character_id, platform,
                                     lambda token, base=base: instagram_refresh(base, None, None,
                                                                                token))
                ig_user = learn_external_id(engine, dict(account), lambda t=tokens, b=base:
                                            lookup_user(b, t(),
                                                        api_version=instagram.api_version).id)
                out.instagram = instagram.get_client(tokens, ig_user)
            elif platform == "youtube":
                tokens = TokenSource(vault, character_id, platform, youtube.refresh)
                quota = youtube.ledger()
                if youtube_daily_units:
                    quota = dataclasses.replace(quota, daily_units=youtube_daily_units)
                units = YouTubeFlow(engine, quota_key=youtube.credentials()[0], quota=quota)
                out.youtube = youtube.get_client(tokens, on_quota=units.spend)
                out.youtube_units = units
            else:
                continue
            out.tokens[platform] = tokens
        except Exception as exc:  # one platform never blocks the others
            out.problems[platform] = f"not usable: {exc}"
    return out
