"""Subscriber DM sequences, exactly once (docs/subscribers.md, "Sending").

One cycle for a character (`dm_cycle`, what the `dm_messages` asset runs):
1. poll the automated channels when webhooks are not used (Telegram getUpdates, Fanvue
   subscriber list and chats) and store what arrived (`inbound.store_events`);
2. apply stored events (`inbound.apply_pending`): subscribers, opt-outs, revenue;
3. plan (`plan_due`): one `dm_messages` row per subscriber x sequence x step whose day has
   come (the intent, state `planned`), by a range scan over `subscribed_at` per step;
4. settle doubts (`settle`): a message left `sending` (the run died) or `unknown` (the answer
   was lost) is looked up on the platform before anything else: found = `sent`, certainly
   absent = `planned` again, platform cannot tell (Telegram) = `held` for an operator;
5. send (`send_due`): for each due row the rules decide (dm_rules.decide: opt-out, expiry,
   condition, window, quiet hours, cap). `skip` is final, `wait` sets `not_before`, `send`
   composes the text (variant, Ollama personalisation through the safety gate, disclosure),
   commits state `sending` with the text, calls the platform, then commits `sent`.
   OnlyFans/Fansly rows become `queued_manual` (waifugen dms export).

The clock is a parameter everywhere, so a simulated fortnight runs in seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.http import HttpError, PermanentError, RateLimited, UnknownOutcome
from waifugen_assets.core import schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.subscribers import inbound
from waifugen_assets.subscribers import score as engagement
from waifugen_assets.subscribers.channels import CannotReconcile, Channel, Unreachable
from waifugen_assets.subscribers.due import due_windows
from waifugen_assets.subscribers.rules import Rules, decide
from waifugen_assets.subscribers.safety import personalize
from waifugen_assets.subscribers.sequences import (
    Sequence,
    SubscriberFacts,
    choose_variant,
    template_variables,
)

log = logging.getLogger(__name__)

Writer = Callable[[str, str], str | None]
RETRY_LATER = dt.timedelta(minutes=5)
DOUBTFUL = ("sending", "unknown")


@dataclass(frozen=True)
class CharacterInfo:
    id: str
    name: str
    persona: str
    timezone: str


def character_info(engine: sa.Engine, character_id: str) -> CharacterInfo:
    c = schema.characters
    with engine.connect() as conn:
        row = conn.execute(sa.select(c.c.id, c.c.name, c.c.persona, c.c.timezone)
                           .where(c.c.id == character_id)).one_or_none()
    if row is None:
        raise LookupError(f"character {character_id!r} is not in the database (load the roster)")
    return CharacterInfo(*row)


@dataclass
class CycleStats:
    polled: int = 0
    applied: int = 0
    planned: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # sent, skipped, waiting, ...
    reasons: Counter[str] = field(default_factory=Counter)  # why skipped / waiting / held

    def as_metadata(self) -> dict[str, Any]:
        return {"polled": self.polled, "applied": self.applied, "planned": self.planned,
                "outcomes": dict(self.outcomes), "reasons": dict(self.reasons)}


# --- sequences --------------------------------------------------------------------------------

def sync_sequences(engine: sa.Engine, sequences: Iterable[Sequence]) -> dict[int, Sequence]:
    """Each sequence's row in dm_sequences (by key: a new version is a new row); id -> it."""
    ds = schema.dm_sequences
    seqs = list(sequences)
    with engine.begin() as conn:
        for seq in seqs:
            conn.execute(insert(ds).values(key=seq.key, character_id=seq.character,
                                           tier=seq.tier, definition=seq.definition())
                         .on_conflict_do_nothing(index_elements=[ds.c.key]))
        ids = dict(conn.execute(sa.select(ds.c.key, ds.c.id)
                                .where(ds.c.key.in_([s.key for s in seqs]))).all())
    return {ids[s.key]: s for s in seqs}


# --- 3. plan ----------------------------------------------------------------------------------

_PLAN = sa.text("""
    INSERT INTO dm_messages (subscriber_id, sequence_id, step, state, due_at)
    SELECT s.id, :sequence_id, :step, 'planned', s.subscribed_at + make_interval(days => :day)
    FROM subscribers s
    WHERE s.character_id = :character_id AND s.tier = :tier
      AND s.opted_out_at IS NULL AND s.forgotten_at IS NULL
      AND s.subscribed_at > :oldest AND s.subscribed_at <= :newest
    ON CONFLICT (subscriber_id, sequence_id, step) DO NOTHING
""")


def plan_due(engine: sa.Engine, character_id: str, now: dt.datetime,
             sequences: Mapping[int, Sequence]) -> int:
    """Intent rows for every step that has come due and has not expired; returns how many.

    Per step, only subscribers who joined in its due window (due.py) can have it due: an
    index range scan, not a pass over every subscriber (benchmarks/dm_due.py measures both)."""
    by_key = {seq.key: sid for sid, seq in sequences.items()}
    planned = 0
    with engine.begin() as conn:
        for w in due_windows(sequences.values(), character_id, now):
            planned += conn.execute(_PLAN, {
                "sequence_id": by_key[w.sequence.key], "step": w.step.index, "day": w.step.day,
                "character_id": character_id, "tier": w.tier, "oldest": w.oldest,
                "newest": w.newest}).rowcount
    return planned


# --- facts ------------------------------------------------------------------------------------

def subscriber_facts(conn: sa.Connection, sub: Mapping[str, Any], character: CharacterInfo,
                     now: dt.datetime) -> SubscriberFacts:
    """What the rules need, read now; the engagement score and tags are refreshed too.
    `sub` holds the subscriber's columns and its id as `subscriber_id`."""
    ie, rev, dm = schema.inbound_events, schema.revenue_events, schema.dm_messages
    inbound_at = list(conn.execute(
        sa.select(ie.c.occurred_at).where(
            ie.c.subscriber_id == sub["subscriber_id"], ie.c.event_type == "message.received",
            ie.c.occurred_at > now - dt.timedelta(days=engagement.INBOUND_WINDOW_DAYS),
            ie.c.occurred_at.is_not(None))).scalars())
    if sub["last_inbound_at"] is not None:
        inbound_at.append(sub["last_inbound_at"])  # the latest, even if older than 30 days
    # Money in the platforms' real currencies (Telegram Stars are not cents).
    payments = [(t, -c if kind == "refund" else c) for t, c, kind in conn.execute(
        sa.select(rev.c.occurred_at, rev.c.amount_cents, rev.c.kind).where(
            rev.c.subscriber_id == sub["subscriber_id"], rev.c.currency != "XTR"))]
    if sub["imported_spend_cents"]:
        payments.append((sub["subscribed_at"] or now, int(sub["imported_spend_cents"])))
    facts = engagement.facts_from(now, sub["subscribed_at"], inbound_at, payments,
                                  sub["opted_out_at"] is not None)
    score, tags = engagement.score(facts), sorted(engagement.tags(facts))
    subs = schema.subscribers
    conn.execute(sa.update(subs).where(subs.c.id == sub["subscriber_id"])
                 .values(score=score, tags=tags, updated_at=sa.func.now()))
    sent_24h = int(conn.scalar(sa.select(sa.func.count()).where(
        dm.c.subscriber_id == sub["subscriber_id"], dm.c.state == "sent",
        dm.c.sent_at > now - dt.timedelta(hours=24))))
    return SubscriberFacts(
        id=sub["subscriber_id"], platform=sub["platform"], tier=sub["tier"], tags=frozenset(tags),
        score=score, timezone=sub["timezone"], character_timezone=character.timezone,
        subscribed_at=sub["subscribed_at"], last_inbound_at=sub["last_inbound_at"],
        last_outbound_at=sub["last_outbound_at"], opted_out_at=sub["opted_out_at"],
        has_replied=sub["last_inbound_at"] is not None,
        spent_cents=sum(c for _, c in payments), sent_last_24h=sent_24h,
        display_name=sub["display_name"], handle=sub["handle"])


# --- 4. settle doubtful sends -----------------------------------------------------------------

def _set(engine: sa.Engine, message_id: int, **values: Any) -> None:
    dm = schema.dm_messages
    with engine.begin() as conn:
        values.setdefault("updated_at", sa.func.now())
        conn.execute(sa.update(dm).where(dm.c.id == message_id).values(**values))


def _sent(engine: sa.Engine, message_id: int, subscriber_id: int, remote_id: str | None,
          now: dt.datetime) -> None:
    dm, s = schema.dm_messages, schema.subscribers
    with engine.begin() as conn:
        conn.execute(sa.update(dm).where(dm.c.id == message_id).values(
            state="sent", remote_message_id=remote_id, sent_at=now, error=None,
            not_before=None, updated_at=sa.func.now()))
        conn.execute(sa.update(s).where(s.c.id == subscriber_id).values(
            last_outbound_at=sa.func.greatest(s.c.last_outbound_at, now)))


_SUBSCRIBER_FIELDS = [schema.subscribers.c[name] for name in (
    "platform", "external_id", "handle", "display_name", "timezone", "tier", "subscribed_at",
    "last_inbound_at", "last_outbound_at", "opted_out_at", "imported_spend_cents")]


def _rows(engine: sa.Engine, character_id: str, where: sa.ColumnElement[bool],
          limit: int) -> list[dict[str, Any]]:
    dm, s = schema.dm_messages, schema.subscribers
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(dm.c.id, dm.c.sequence_id, dm.c.step, dm.c.state, dm.c.due_at,
                      dm.c.text, dm.c.updated_at, dm.c.subscriber_id, *_SUBSCRIBER_FIELDS)
            .join(s, s.c.id == dm.c.subscriber_id)
            .where(s.c.character_id == character_id, where)
            .order_by(dm.c.due_at, dm.c.id).limit(limit)).mappings()]


def _claim(engine: sa.Engine, claims: Claims | None, message_id: int,
           states: tuple[str, ...]) -> bool:
    """Take the message's claim and check, after taking it, that it is still in `states`
    (another process may have sent or settled it meanwhile). False: leave it alone."""
    if claims is None:
        return True
    if not claims.take("dm", message_id):
        return False
    dm = schema.dm_messages
    with engine.connect() as conn:
        state = conn.scalar(sa.select(dm.c.state).where(dm.c.id == message_id))
    if state in states:
        return True
    claims.release("dm", message_id)
    return False


def settle(engine: sa.Engine, character_id: str, channels: Mapping[str, Channel],
           now: dt.datetime, stats: CycleStats, claims: Claims | None = None) -> None:
    """Messages whose send may or may not have happened: ask the platform before anything.

    A message another process is sending right now looks the same (`sending`): its claim
    tells them apart, and it is left to that process."""
    dm = schema.dm_messages
    for row in _rows(engine, character_id, dm.c.state.in_(DOUBTFUL), 10_000):
        channel = channels.get(row["platform"])
        if channel is None:
            continue
        if not _claim(engine, claims, row["id"], DOUBTFUL):
            stats.reasons["in another run"] += 1
            continue
        try:
            _settle_one(engine, row, channel, now, stats)
        finally:
            if claims is not None:
                claims.release("dm", row["id"])


def _settle_one(engine: sa.Engine, row: Mapping[str, Any], channel: Channel,
                now: dt.datetime, stats: CycleStats) -> None:
    try:
        remote = channel.reconcile(row["external_id"], row["text"] or "", row["updated_at"])
    except CannotReconcile as exc:
        _set(engine, row["id"], state="held", error=f"outcome unknown, held for review: {exc}")
        stats.outcomes["held"] += 1
        stats.reasons["outcome unknown"] += 1
        return
    except HttpError as exc:  # asked again next run
        log.warning("dm %s: cannot reconcile yet: %s", row["id"], exc)
        return
    if remote is not None:
        _sent(engine, row["id"], row["subscriber_id"], remote, now)
        stats.outcomes["reconciled_sent"] += 1
    else:  # certainly not delivered: the rules decide again
        _set(engine, row["id"], state="planned",
             error="answer lost; the platform has no such message, sending again")
        stats.outcomes["reconciled_not_sent"] += 1


# --- 5. send ----------------------------------------------------------------------------------

def send_due(engine: sa.Engine, character: CharacterInfo, channels: Mapping[str, Channel],
             sequences: Mapping[int, Sequence], now: dt.datetime, stats: CycleStats, *,
             rules: Rules | None = None, writer: Writer | None = None,
             allowed_hosts: tuple[str, ...] = (), limit: int = 1000,
             claims: Claims | None = None) -> None:
    rules = rules or Rules()
    dm = schema.dm_messages
    due = sa.and_(dm.c.state == "planned", dm.c.due_at <= now,
                  sa.or_(dm.c.not_before.is_(None), dm.c.not_before <= now))
    paused: set[str] = set()  # platforms that said "not now" in this run
    for row in _rows(engine, character.id, due, limit):
        if not _claim(engine, claims, row["id"], ("planned",)):
            stats.reasons["in another run"] += 1
            continue
        try:
            _send_one(engine, row, character, channels, sequences, now, stats, rules, writer,
                      allowed_hosts, paused)
        finally:
            if claims is not None:
                claims.release("dm", row["id"])


def _send_one(engine: sa.Engine, row: Mapping[str, Any], character: CharacterInfo,
              channels: Mapping[str, Channel], sequences: Mapping[int, Sequence],
              now: dt.datetime, stats: CycleStats, rules: Rules, writer: Writer | None,
              allowed_hosts: tuple[str, ...], paused: set[str]) -> None:
    seq = sequences.get(row["sequence_id"])
    if seq is None or row["step"] >= len(seq.steps):
        _set(engine, row["id"], state="skipped", error="sequence version no longer loaded")
        stats.outcomes["skipped"] += 1
        stats.reasons["sequence gone"] += 1
        return
    step = seq.steps[row["step"]]
    with engine.begin() as conn:
        facts = subscriber_facts(conn, row, character, now)
    decision = decide(facts, step, row["due_at"], now, rules)
    if decision.action == "skip":
        _set(engine, row["id"], state="skipped", error=decision.reason)
        stats.outcomes["skipped"] += 1
        stats.reasons[decision.reason.split(" ")[0]] += 1
        return
    if decision.action == "wait":
        _set(engine, row["id"], not_before=decision.not_before, error=decision.reason)
        stats.outcomes["waiting"] += 1
        stats.reasons[decision.reason] += 1
        return
    channel = channels.get(row["platform"])
    if channel is None or row["platform"] in paused:
        reason = ("rate limited" if row["platform"] in paused
                  else f"no {row['platform']} channel configured for {character.id}")
        _set(engine, row["id"], not_before=now + RETRY_LATER, error=reason)
        stats.outcomes["waiting"] += 1
        stats.reasons[reason] += 1
        return
    variant = choose_variant(step, row["subscriber_id"], seq.key)
    text = personalize(variant.text, variables=template_variables(facts, character.name),
                       persona=character.persona, prompt=variant.prompt, writer=writer,
                       max_len=channel.max_len, allowed_hosts=allowed_hosts).text
    if channel.manual:
        _set(engine, row["id"], state="queued_manual", text=text, variant=variant.name,
             error=None)
        stats.outcomes["queued_manual"] += 1
        return
    _deliver(engine, row, channel, text, variant.name, now, stats, paused)


def _deliver(engine: sa.Engine, row: Mapping[str, Any], channel: Channel, text: str,
             variant: str, now: dt.datetime, stats: CycleStats, paused: set[str]) -> None:
    # The intent with its exact text, committed before the call: what a rerun reconciles.
    _set(engine, row["id"], state="sending", text=text, variant=variant, error=None,
         updated_at=now)
    try:
        remote = channel.send(row["external_id"], text)
    except Unreachable as exc:
        s = schema.subscribers
        with engine.begin() as conn:
            conn.execute(sa.update(s).where(s.c.id == row["subscriber_id"],
                                            s.c.opted_out_at.is_(None))
                         .values(opted_out_at=now))
        _set(engine, row["id"], state="skipped", error=f"unreachable: {exc}"[:1000])
        stats.outcomes["skipped"] += 1
        stats.reasons["unreachable"] += 1
    except RateLimited as exc:  # nothing was sent
        paused.add(row["platform"])
        wait = dt.timedelta(seconds=exc.retry_after or 60)
        _set(engine, row["id"], state="planned", not_before=now + wait, error=str(exc)[:1000])
        stats.outcomes["waiting"] += 1
        stats.reasons["rate limited"] += 1
    except UnknownOutcome as exc:
        _set(engine, row["id"], state="unknown", error=f"reconciled next run: {exc}"[:1000])
        stats.outcomes["unknown"] += 1
    except PermanentError as exc:
        _set(engine, row["id"], state="failed", error=f"{exc.reason or exc}"[:1000])
        stats.outcomes["failed"] += 1
    except (HttpError, OSError, ValueError) as exc:  # nothing sent (the layer knows): later
        _set(engine, row["id"], state="planned", not_before=now + RETRY_LATER,
             error=str(exc)[:1000])
        stats.outcomes["waiting"] += 1
        stats.reasons["retryable error"] += 1
    else:
        _sent(engine, row["id"], row["subscriber_id"], remote, now)
        stats.outcomes["sent"] += 1


# --- 1-2. inbound -----------------------------------------------------------------------------

def apply_all(engine: sa.Engine, now: dt.datetime) -> int:
    applied = 0
    while True:
        batch = inbound.apply_pending(engine, now=now)
        applied += batch.applied
        if batch.applied + batch.rejected == 0:
            return applied


# --- the cycle --------------------------------------------------------------------------------

Poller = Callable[[], int]  # stores what a channel has for us; returns how many events


def dm_cycle(engine: sa.Engine, character: CharacterInfo, channels: Mapping[str, Channel],
             sequences: Mapping[int, Sequence], now: dt.datetime, *,
             pollers: Iterable[Poller] = (), rules: Rules | None = None,
             writer: Writer | None = None, allowed_hosts: tuple[str, ...] = (),
             claims: Claims | None = None) -> CycleStats:
    stats = CycleStats()
    for poll in pollers:
        try:
            stats.polled += poll()
        except HttpError as exc:  # one channel's trouble never stops the others
            log.warning("%s: polling failed: %s", character.id, exc)
            stats.reasons["polling failed"] += 1
    stats.applied = apply_all(engine, now)
    stats.planned = plan_due(engine, character.id, now, sequences)
    settle(engine, character.id, channels, now, stats, claims)
    send_due(engine, character, channels, sequences, now, stats, rules=rules, writer=writer,
             allowed_hosts=allowed_hosts, claims=claims)
    return stats
