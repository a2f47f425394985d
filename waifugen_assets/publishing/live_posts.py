"""Where a partition's posts can be seen: one row per post, with the public URL of each live
one (what the `social_posts` materialization links to in the Dagster UI).

Instagram and YouTube give a permalink when they publish (saved in social_posts.permalink);
TikTok gives only the post id, after moderation, and its public URL is built the way TikTok
shares it: https://www.tiktok.com/@<account>/video/<id>.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from waifugen_assets.core import schema


@dataclass(frozen=True)
class PartitionPost:
    reel_id: int
    slot_time: str
    platform: str
    state: str
    url: str | None  # set only for a live (published) post whose address is known


def post_url(platform: str, state: str, remote_post_id: str | None, permalink: str | None,
             account_ref: str | None) -> str | None:
    """The public URL of a live post, or None (not live, or not known yet)."""
    if state != "published":
        return None
    if permalink:
        return permalink
    if not remote_post_id:
        return None  # TikTok: still in moderation
    if platform == "tiktok" and account_ref:
        return f"https://www.tiktok.com/@{account_ref.lstrip('@')}/video/{remote_post_id}"
    if platform == "youtube":
        return f"https://www.youtube.com/shorts/{remote_post_id}"
    return None


def partition_posts(conn: sa.Connection, character_id: str, day: dt.date) -> list[PartitionPost]:
    """Every post of the character's day, in slot order, then platform."""
    r, sp, pa = schema.reels, schema.social_posts, schema.platform_accounts
    rows = conn.execute(
        sa.select(sp.c.reel_id, r.c.plan["slot_time"].astext.label("slot_time"), sp.c.platform,
                  sp.c.state, sp.c.remote_post_id, sp.c.permalink, pa.c.account_ref)
        .join(r, r.c.id == sp.c.reel_id)
        .outerjoin(pa, pa.c.id == sp.c.account_id)
        .where(r.c.character_id == character_id, r.c.date == day)
        .order_by(r.c.scheduled_at, r.c.tier, r.c.slot, sp.c.platform)).all()
    return [PartitionPost(row.reel_id, row.slot_time or "", row.platform, row.state,
                          post_url(row.platform, row.state, row.remote_post_id, row.permalink,
                                   row.account_ref))
            for row in rows]
