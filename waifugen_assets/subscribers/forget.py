"""Forget a subscriber: remove personal data, keep anonymous aggregates (one transaction).

For every subscriber row of (platform, external id) — one per character, or only the one of
`character_id`:

- subscribers: `external_id` becomes `forgotten:<random>`; handle, display_name, timezone
  NULL; tags []; forgotten_at and opted_out_at set (nothing is ever sent again). The row stays
  (tier, dates, imported spend) so aggregates and foreign keys keep working.
- dm_messages: text NULL; messages waiting to be sent (planned, held, queued_manual) become
  `skipped`; the others keep their state (history).
- inbound_events: payload and data NULL, external_id replaced by the same opaque value; this
  includes events stored but not applied yet (found by their external id, which is stored with
  every event), which are marked processed so applying them later cannot recreate the person.
  Without `character_id`, events of that id stored for an unknown character are anonymised
  too.
- revenue_events: kept unchanged (amounts, currency, time; they hold no personal data).

A second call finds nothing (the id no longer exists) and raises SubscriberNotFound. If the
person contacts the character again later, that is a new subscriber row.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from waifugen_assets.core import schema  # Not sent and not in flight: these will never be sent now.

UNSENT_STATES = ("planned", "held", "queued_manual")


class SubscriberNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ForgetReport:
    subscribers: int
    characters: tuple[str, ...]
    messages: int
    events: int
    revenue_events_kept: int


def forget_subscriber(engine: sa.Engine, platform: str, external_id: str,
                      character_id: str | None = None,
                      now: dt.datetime | None = None) -> ForgetReport:
    """Anonymise the subscriber (see the module docstring); raises SubscriberNotFound."""
    stamp = now or dt.datetime.now(dt.UTC)
    s, m, ie, rev = (schema.subscribers, schema.dm_messages, schema.inbound_events,
                     schema.revenue_events)
    with engine.begin() as conn:
        # Events first, then subscribers: the order apply_pending locks them in, so a
        # concurrent applier is waited for, never deadlocked with.
        events_of_id = (ie.c.platform == platform) & (ie.c.external_id == external_id)
        if character_id is not None:
            events_of_id &= ie.c.character_id == character_id
        conn.execute(sa.select(ie.c.id).where(events_of_id).with_for_update())

        who = (s.c.platform == platform) & (s.c.external_id == external_id)
        if character_id is not None:
            who &= s.c.character_id == character_id
        subs = conn.execute(sa.select(s.c.id, s.c.character_id).where(who)
                            .order_by(s.c.id).with_for_update()).all()
        if not subs:
            scope = f" of character {character_id}" if character_id else ""
            raise SubscriberNotFound(
                f"no {platform} subscriber{scope} with id {external_id!r} (already forgotten, "
                "or never known)")

        messages = events = 0
        for sub in subs:
            opaque = f"forgotten:{secrets.token_hex(12)}"
            conn.execute(s.update().where(s.c.id == sub.id).values(
                external_id=opaque, handle=None, display_name=None, timezone=None,
                tags=sa.text("'[]'::jsonb"), forgotten_at=stamp,
                opted_out_at=sa.func.coalesce(s.c.opted_out_at, stamp)))
            messages += conn.execute(m.update().where(m.c.subscriber_id == sub.id).values(
                text=None,
                state=sa.case((m.c.state.in_(UNSENT_STATES), "skipped"), else_=m.c.state),
                error=sa.case((m.c.state.in_(UNSENT_STATES), "subscriber forgotten"),
                              else_=m.c.error))).rowcount
            mine = (ie.c.subscriber_id == sub.id) | (
                (ie.c.platform == platform) & (ie.c.external_id == external_id)
                & (ie.c.character_id == sub.character_id))
            events += conn.execute(ie.update().where(mine).values(
                payload=None, data=None, external_id=opaque, subscriber_id=sub.id,
                error=sa.case((ie.c.processed_at.is_(None), "subscriber forgotten"),
                              else_=ie.c.error),
                processed_at=sa.func.coalesce(ie.c.processed_at, stamp))).rowcount
        if character_id is None:
            events += conn.execute(ie.update().where(events_of_id).values(
                payload=None, data=None, external_id=f"forgotten:{secrets.token_hex(12)}",
                error=sa.case((ie.c.processed_at.is_(None), "subscriber forgotten"),
                              else_=ie.c.error),
                processed_at=sa.func.coalesce(ie.c.processed_at, stamp))).rowcount
        kept = conn.scalar(sa.select(sa.func.count()).select_from(rev)
                           .where(rev.c.subscriber_id.in_([sub.id for sub in subs])))
    return ForgetReport(subscribers=len(subs),
                        characters=tuple(sorted({sub.character_id for sub in subs})),
                        messages=messages, events=events, revenue_events_kept=int(kept or 0))
