"""The comment jobs, launched by the `comments` sensor: `comment_poll` (every character's due
comment reads in one run, the new comments stored; nothing answered) and `comments` (one
character's comment replies for its local day: answer once, settle doubtful sends; the
sensor's runs do not read again, the CLI's and backfills read their character's due posts
first)."""

# No `from __future__ import annotations`: Dagster reads parameter annotations at runtime.
import datetime as dt

import dagster as dg
from pydantic import Field

from resources.database import DatabaseResource
from resources.instagram import InstagramResource
from resources.youtube import YouTubeResource
from waifugen_assets.comments.due import characters_to_read
from waifugen_assets.comments.poll import poll_comments
from waifugen_assets.comments.sources import comment_clients
from waifugen_assets.core import clock, schema
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenCipher, TokenVault
from waifugen_assets.pipeline.catalog import cell, md_table
from waifugen_assets.pipeline.runs import stop_on_config_error

comment_replies_job = dg.define_asset_job(
    "comments",
    selection=dg.AssetSelection.groups("comments"),  # partitioned character x date
    description="One character's comment replies on Instagram and YouTube: new comments "
    "answered once in persona, unsafe or doubtful ones held, doubtful sends settled (reads "
    "first unless the comments sensor asked for it: its comment_poll run reads).",
)


class CommentPollConfig(dg.Config):
    now: str | None = Field(
        default=None, description="ISO time to run as (simulations, replays); default: now.")
    youtube_daily_units: int | None = Field(
        default=None, description="The YouTube project's daily units (default: the youtube "
        "resource's).")


@dg.op(out=dg.Out(dg.Nothing), description="Reads the due Instagram posts (per post) and "
       "YouTube channels (one listing per channel) of every enabled character and stores the "
       "new comments classified; answers nothing.")
def read_comments(context: dg.OpExecutionContext, config: CommentPollConfig,
                  database: DatabaseResource, instagram: InstagramResource,
                  youtube: YouTubeResource) -> dg.Output[None]:
    engine = database.get_engine()
    now = dt.datetime.fromisoformat(config.now) if config.now else clock.now()
    if now.tzinfo is None:
        raise ValueError(f"CommentPollConfig.now {config.now!r} needs a UTC offset (e.g. ...Z)")
    vault = stop_on_config_error(lambda: TokenVault(engine,
                                                    TokenCipher(get_settings().secret_keys)))
    with engine.connect() as conn:
        character_ids = characters_to_read(conn, now)
    stats = stop_on_config_error(lambda: poll_comments(
        engine, character_ids, lambda cid: comment_clients(
            engine, vault, cid, instagram, youtube, config.youtube_daily_units), now))
    for what, why in stats.failed.items():
        context.log.warning("%s not read: %s", what, why)
    return dg.Output(None, metadata={
        "characters": len(character_ids), "accounts_read": len(stats.accounts),
        "posts_read": stats.posts_read, "comments_fetched": stats.fetched,
        "comments_stored": stats.stored,
        **{f"stored_{s}": stats.states.get(s, 0) for s in schema.COMMENT_STATES},
        **{f"class_{c}": stats.classes.get(c, 0) for c in schema.COMMENT_CLASSES},
        "instagram_pages": stats.pages.get("instagram", 0),
        "youtube_pages": stats.pages.get("youtube", 0),
        "failures": len(stats.failed),
        "failed": dg.MetadataValue.json({w: cell(why) for w, why in sorted(
            stats.failed.items())}),
        "not_stored": md_table(["why", "comments"], ([cell(why), str(n)]
                                                     for why, n in stats.skipped.most_common())),
        "as_of": now.isoformat()})


@dg.job(name="comment_poll", description="One run per comments sensor tick (when any post is "
        "due a read): every character's due Instagram posts and YouTube channels read, new "
        "comments stored classified; the sensor's next tick asks for `comments` runs only "
        "where they made answering work.")
def comment_poll_job() -> None:
    read_comments()
