"""The comment_poll run: every enabled character's due comment reads in one process, the new
comments stored classified (fetch.py); nothing is answered here. The comments sensor asks for
one such run a tick when any post is due a read, then a comment_replies run only for the
characters whose comments or replies have work (due.characters_to_answer).

One character's trouble (no token, a platform error, a bug) is recorded and the others are
read; a configuration error (a secret key that does not decrypt the tokens) stops the run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from waifugen_assets.comments.fetch import FetchStats, fetch
from waifugen_assets.comments.sources import comment_sources
from waifugen_assets.core.config import ConfigError
from waifugen_assets.publishing.social_clients import SocialClients

log = logging.getLogger(__name__)


def poll_comments(engine: sa.Engine, character_ids: Sequence[str],
                  clients_for: Callable[[str], SocialClients],
                  now: dt.datetime) -> FetchStats:
    """Read each character's due posts (Instagram per post, YouTube per channel) and store
    what is new. `clients_for(character)` gives its clients (closed here after use: a run
    reads hundreds of accounts). Failures are keyed "<character> <platform> ..." (one post or
    channel) or "<character>" (the whole character), one line each."""
    total = FetchStats()
    for cid in character_ids:
        one = FetchStats()
        try:
            clients = clients_for(cid)
            try:
                sources, problems = comment_sources(engine, clients)
                one.failed.update({f"{p} account": why for p, why in problems.items()})
                fetch(engine, cid, sources, now, one)
            finally:
                clients.close()
        except ConfigError:
            raise
        except Exception as exc:  # one character never stops the others
            one.failed["read"] = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("%s: comments not read: %s", cid, exc)
        total.add(one, cid)
    return total
