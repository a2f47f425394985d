"""Inbound subscriber events: store once, apply (normalizing them is events.py).

Flow (docs/subscribers.md): the webhook service or a polling run turns each platform event into
a `NormalizedEvent` and stores it with `store_events` (one row per platform event id; a
duplicate is ignored). `apply_pending` later folds unprocessed rows into `subscribers` and
`revenue_events`, under FOR UPDATE SKIP LOCKED so concurrent appliers never share an event.

Choices the contract leaves open here (normalizing has its own, in events.py):

- Opt-out is time-ordered, so events applied out of order give the same result: an opt-out
  (STOP message, cancellation, block) at time t sets `opted_out_at` unless the subscriber's
  latest subscription is later than t; a subscription at time s (`subscriber.new`: a Fanvue
  subscription, a Telegram `/start`) clears an opt-out older than s. Renewals never clear it.
- Events whose character does not exist are stored with `character_id` NULL and an error, and
  `apply_pending` marks them processed and counts them as rejected (they stay for inspection).
- A Fanvue webhook event names its creator (`creatorUuid`). The webhook service refuses one
  that is not the character's account when that account's uuid is known; when it was not known
  yet, the event was stored and is bound here: once the uuid is known (a DM run learns it before
  applying), an event for another creator is rejected the same way, never applied.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from waifugen_assets.core import schema
from waifugen_assets.subscribers.events import OPT_OUT_TYPES, REVENUE_KIND, UTC, NormalizedEvent
from waifugen_assets.subscribers.opt_out import is_opt_out

log = logging.getLogger(__name__)
STORE_BATCH = 1000  # rows per INSERT
WRONG_CREATOR = "event is for another Fanvue creator than the character's account"


# --- store --------------------------------------------------------------------------------------

_STORE = (pg_insert(schema.inbound_events)
          .on_conflict_do_nothing(index_elements=["platform", "event_id"])
          .returning(schema.inbound_events.c.id))


def store_events(engine: sa.Engine, events: Sequence[NormalizedEvent],
                 known_characters: Collection[str] | None = None) -> int:
    """Insert events not stored yet; returns how many were new. One statement (compiled once,
    cached) per batch of STORE_BATCH, `ON CONFLICT (platform, event_id) DO NOTHING`.

    An event of a character not in the database is stored with `character_id` NULL and an
    error. `known_characters`: characters the caller has just checked exist (the webhook
    service), which saves the lookup."""
    unique: dict[tuple[str, str], NormalizedEvent] = {}
    for event in events:
        unique.setdefault((event.platform, event.event_id), event)
    if not unique:
        return 0
    batch = list(unique.values())
    inserted = 0
    with engine.begin() as conn:
        wanted = {e.character_id for e in batch}
        known = set(known_characters or ()) & wanted
        if known != wanted:
            known |= set(conn.scalars(sa.select(schema.characters.c.id)
                                      .where(schema.characters.c.id.in_(wanted - known))))
        for start in range(0, len(batch), STORE_BATCH):
            rows = [{
                "platform": e.platform, "event_id": e.event_id, "event_type": e.event_type,
                "character_id": e.character_id if e.character_id in known else None,
                "external_id": e.external_id, "occurred_at": e.occurred_at,
                "payload": dict(e.payload), "data": e.data(),
                "error": None if e.character_id in known
                else f"unknown character {e.character_id[:80]!r}",
            } for e in batch[start:start + STORE_BATCH]]
            inserted += len(conn.execute(_STORE, rows).all())
    return inserted


# --- apply --------------------------------------------------------------------------------------

@dataclass
class ApplyStats:
    applied: int = 0
    rejected: int = 0
    subscribers_created: int = 0
    opt_outs: int = 0
    revenue_events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, other: ApplyStats) -> None:
        self.applied += other.applied
        self.rejected += other.rejected
        self.subscribers_created += other.subscribers_created
        self.opt_outs += other.opt_outs
        self.revenue_events += other.revenue_events
        for kind, n in other.by_type.items():
            self.by_type[kind] = self.by_type.get(kind, 0) + n


_UPSERT = sa.text("""
INSERT INTO subscribers AS s (character_id, platform, external_id, handle, display_name,
                              timezone, tier, subscribed_at, last_inbound_at, opted_out_at)
VALUES (:character_id, :platform, :external_id, :handle, :display_name, :timezone,
        COALESCE(:tier, 'standard'), :subscribed_at, :last_inbound_at, :opt_out_at)
ON CONFLICT (character_id, platform, external_id) DO UPDATE SET
    handle = COALESCE(EXCLUDED.handle, s.handle),
    display_name = COALESCE(EXCLUDED.display_name, s.display_name),
    timezone = COALESCE(EXCLUDED.timezone, s.timezone),
    tier = COALESCE(CAST(:tier AS text), s.tier),
    subscribed_at = GREATEST(s.subscribed_at, EXCLUDED.subscribed_at),
    last_inbound_at = GREATEST(s.last_inbound_at, EXCLUDED.last_inbound_at),
    opted_out_at = CASE
        WHEN EXCLUDED.opted_out_at IS NOT NULL THEN
            CASE WHEN s.subscribed_at > EXCLUDED.opted_out_at THEN s.opted_out_at
                 ELSE GREATEST(s.opted_out_at, EXCLUDED.opted_out_at) END
        WHEN EXCLUDED.subscribed_at IS NOT NULL AND s.opted_out_at < EXCLUDED.subscribed_at
            THEN NULL
        ELSE s.opted_out_at END,
    updated_at = now()
RETURNING id, (xmax = 0) AS inserted
""").bindparams(
    sa.bindparam("subscribed_at", type_=sa.DateTime(timezone=True)),
    sa.bindparam("last_inbound_at", type_=sa.DateTime(timezone=True)),
    sa.bindparam("opt_out_at", type_=sa.DateTime(timezone=True)),
)


def subscriber_tier(raw: object) -> str | None:
    """A platform's tier name as ours: names containing vip, premium or elite are `vip`,
    any other name `standard` (a creator's own tier names vary: basic, fan, supporter)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    name = raw.strip().lower()
    return "vip" if any(w in name for w in ("vip", "premium", "elite")) else "standard"


def _apply_one(conn: sa.Connection, row: sa.Row) -> tuple[int, ApplyStats]:
    """Fold one stored event into subscribers / revenue_events: the subscriber id and what
    changed."""
    stats = ApplyStats(applied=1, by_type={row.event_type: 1})
    data = row.data or {}
    kind = row.event_type
    opt_out = kind in OPT_OUT_TYPES or (kind == "message.received"
                                        and is_opt_out(data.get("text")))
    sub = conn.execute(_UPSERT, {
        "character_id": row.character_id, "platform": row.platform,
        "external_id": row.external_id, "handle": data.get("handle"),
        "display_name": data.get("display_name"), "timezone": data.get("timezone"),
        "tier": subscriber_tier(data.get("tier")),
        "subscribed_at": row.occurred_at if kind == "subscriber.new" else None,
        "last_inbound_at": row.occurred_at if kind == "message.received" else None,
        "opt_out_at": row.occurred_at if opt_out else None,
    }).one()
    stats.subscribers_created += int(sub.inserted)
    stats.opt_outs += int(opt_out)
    if kind in REVENUE_KIND and data.get("amount_cents") is not None:
        re_ = schema.revenue_events
        stmt = (pg_insert(re_).values(
            platform=row.platform, event_id=row.event_id, character_id=row.character_id,
            subscriber_id=sub.id, kind=REVENUE_KIND[kind], amount_cents=data["amount_cents"],
            currency=data["currency"], occurred_at=row.occurred_at)
            .on_conflict_do_nothing(index_elements=["platform", "event_id"]))
        stats.revenue_events += conn.execute(stmt).rowcount
    return int(sub.id), stats


def fanvue_creators(conn: sa.Connection, characters: Collection[str]) -> dict[str, str]:
    """The known Fanvue creator uuid of each of these characters (learned by a DM run)."""
    if not characters:
        return {}
    pa = schema.platform_accounts
    rows = conn.execute(sa.select(pa.c.character_id, pa.c.external_user_id).where(
        pa.c.platform == "fanvue", pa.c.character_id.in_(characters),
        pa.c.external_user_id.is_not(None)))
    return {row.character_id: row.external_user_id for row in rows}


def apply_pending(engine: sa.Engine, now: dt.datetime | None = None,
                  limit: int = 1000) -> ApplyStats:
    """Apply up to `limit` unprocessed events, oldest first, in one transaction. Rows another
    applier holds are skipped (FOR UPDATE SKIP LOCKED). An event the database refuses (a
    constraint, bad data) is rejected (processed, with the error) without undoing the others
    (a savepoint each); any other error rolls the whole batch back for the next run.

    Within the batch, events are applied in subscriber order (then time), so concurrent
    appliers lock subscriber rows in the same order and cannot deadlock; the order of events of
    different subscribers does not matter, and the rules above make one subscriber's events
    order-independent."""
    ie = schema.inbound_events
    stamp = now or dt.datetime.now(UTC)
    stats = ApplyStats()
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(ie.c.id, ie.c.platform, ie.c.event_id, ie.c.event_type,
                      ie.c.character_id, ie.c.external_id, ie.c.occurred_at, ie.c.data,
                      ie.c.error, ie.c.payload["creatorUuid"].astext.label("creator_uuid"))
            .where(ie.c.processed_at.is_(None))
            .order_by(ie.c.received_at, ie.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)).all()
        rows.sort(key=lambda r: (r.character_id or "", r.platform, r.external_id or "",
                                 r.occurred_at or stamp, r.id))
        creators = fanvue_creators(conn, {r.character_id for r in rows if r.character_id
                                          and r.platform == "fanvue" and r.creator_uuid})
        for row in rows:
            error = row.error
            subscriber_id = None
            if error is None and (row.character_id is None or row.external_id is None
                                  or row.occurred_at is None):
                error = "event has no character, subscriber or time"
            if (error is None and row.platform == "fanvue" and row.creator_uuid is not None
                    and creators.get(row.character_id, row.creator_uuid) != row.creator_uuid):
                error = WRONG_CREATOR
            if error is None:
                try:
                    with conn.begin_nested():
                        subscriber_id, one = _apply_one(conn, row)
                except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
                    error = f"could not apply: {type(exc.orig).__name__}"
                    log.warning("inbound event %s rejected: %s", row.id, exc.orig)
            if error is None:
                stats.add(one)
            else:
                stats.rejected += 1
            conn.execute(ie.update().where(ie.c.id == row.id).values(
                processed_at=stamp, subscriber_id=subscriber_id, error=error))
    return stats
