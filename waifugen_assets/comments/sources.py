"""One character's comment-capable accounts as one shape: read a post's comments (YouTube: a
whole channel's), list a comment's replies, reply once, know our own author id, and (YouTube)
whether the day's units still hold a reply.

Built on the shared clients (`publishing.social_clients`: tokens from the vault refreshed once
after a 401, YouTube units counted in the one per-project ledger uploads use). TikTok offers
no comment API to this kind of app, so it has no source (docs/comments.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from resources.instagram import InstagramResource
from resources.social_comments import RemoteComment
from resources.youtube import YouTubeResource, next_reset
from resources.youtube_reads import ChannelComment
from waifugen_assets.core.accounts import learn_external_id
from waifugen_assets.core.tokens import TokenVault
from waifugen_assets.publishing.social_clients import (
    SocialClients,
    build_clients,
    character_accounts,
)

COMMENT_PLATFORMS = ("instagram", "youtube")
REPLY_OPERATION = "comments.insert"
T = TypeVar("T")


@dataclass
class CommentSource:
    """What the comment cycle needs of one platform account."""

    platform: str
    account_id: int
    own_id: str  # our author id in comments: IG user id, YouTube channel id
    clients: SocialClients

    @property
    def newest_first(self) -> bool:
        """Pages come newest first (YouTube order=time), so paging may stop at seen ones."""
        return self.platform == "youtube"

    def _call(self, request: Callable[[], T]) -> T:
        return self.clients.call(self.platform, request)

    def page(self, post_id: str, cursor: str | None) -> tuple[list[RemoteComment], str | None]:
        client: Any = self.clients.get(self.platform)
        if self.platform == "youtube":
            return self._call(lambda: client.comment_threads(post_id, page_token=cursor))
        return self._call(lambda: client.comments(post_id, after=cursor))

    def channel_page(self, cursor: str | None) -> tuple[list[ChannelComment], str | None]:
        """YouTube: one page of the comments on every video of our channel, newest first
        (1 unit a page however many videos), each with its video id."""
        if self.platform != "youtube":
            raise ValueError(f"{self.platform} has no channel-wide comment listing")
        client: Any = self.clients.youtube
        return self._call(lambda: client.channel_comment_threads(self.own_id,
                                                                 page_token=cursor))

    def replies(self, comment_id: str) -> list[RemoteComment]:
        client: Any = self.clients.get(self.platform)
        return self._call(lambda: client.comment_replies(comment_id))

    def reply(self, comment_id: str, text: str) -> str:
        client: Any = self.clients.get(self.platform)
        return self._call(lambda: client.reply_to_comment(comment_id, text))

    def reply_deferred_until(self, now: dt.datetime) -> dt.datetime | None:
        """YouTube: the quota reset when today's units cannot pay a reply (50 units), else
        None; other platforms: None (their limits answer at the call)."""
        units = self.clients.youtube_units
        if self.platform != "youtube" or units is None:
            return None
        if units.quota.fits(REPLY_OPERATION, units.used(now)):
            return None
        return next_reset(now)

    def ours(self, reply: RemoteComment, text: str) -> bool:
        """Whether a listed reply is the one we sent: our author id, or our exact text."""
        return reply.author_id == self.own_id or reply.text.strip() == text.strip()


def _youtube_channel(clients: SocialClients) -> str:
    """The authorised channel's id: its uploads playlist is `UU` + the id after `UC`."""
    assert clients.youtube is not None
    playlist = clients.call("youtube", clients.youtube.uploads_playlist)
    return "UC" + playlist[2:]


def comment_sources(engine: sa.Engine,
                    clients: SocialClients) -> tuple[dict[str, CommentSource], dict[str, str]]:
    """A source per Instagram and YouTube account whose client could be built; the problems of
    the others (one line each, by platform)."""
    sources: dict[str, CommentSource] = {}
    problems = {p: why for p, why in clients.problems.items() if p in COMMENT_PLATFORMS}
    for platform in COMMENT_PLATFORMS:
        account = clients.accounts.get(platform)
        if account is None or clients.get(platform) is None:
            continue
        try:
            if platform == "instagram":
                own = clients.instagram.ig_user_id  # type: ignore[union-attr]
            else:
                own = learn_external_id(engine, account, lambda: _youtube_channel(clients))
        except Exception as exc:  # one platform never blocks the other
            problems[platform] = f"own id not known: {exc}"
            continue
        sources[platform] = CommentSource(platform, int(account["id"]), str(own), clients)
    return sources, problems


def comment_clients(engine: sa.Engine, vault: TokenVault, character_id: str,
                    instagram: InstagramResource, youtube: YouTubeResource,
                    youtube_daily_units: int | None = None) -> SocialClients:
    """The character's Instagram and YouTube clients (no TikTok: it has no comment source)."""
    with engine.connect() as conn:
        accounts = character_accounts(conn, character_id, COMMENT_PLATFORMS)
    return build_clients(engine, vault, character_id, accounts, instagram=instagram,
                         youtube=youtube, youtube_daily_units=youtube_daily_units)
