"""The app database reads behind the metrics endpoint (operations/metrics.py), one function per
section. Each returns samples `(metric name, labels, value)` and runs every scrape (15 s), so
every query is bounded: a recent window on an indexed column, a small table (characters,
credentials, quota rows that are pruned), or a walk back along the primary key that stops at
the window's edge (`_window_start_id`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from resources.youtube import QuotaLedger
from resources.youtube_quota import quota_window
from waifugen_assets.core import schema
from waifugen_assets.core.config import Settings
from waifugen_assets.money import ledger, reconcile
from waifugen_assets.money.budget import BudgetView, month_start
from waifugen_assets.money.credits import spent_by_character
from waifugen_assets.publishing.assets import PublishConfig

Labels = dict[str, str]
Sample = tuple[str, Labels, float]

RECENT = dt.timedelta(days=7)
SETTLED = dt.timedelta(days=1)  # a post attempt this old has its outcome (or never will)
DAY = 86400.0
# Posts of reels dated this many days before a character's newest published reel still count
# for its last post (a slot posted late).
LATE_POST_DAYS = 7
# Archives finished this long ago at most are looked at for the last passing restore drill:
# longer than backups are kept (GFS keeps 8 ISO weeks: operations/backup_retention.py).
VERIFY_LOOKBACK = dt.timedelta(days=70)
# Rows still waiting for a person are counted whatever their age (a review queue must not
# drop out of the metric after a week).
DM_WAITING = ("held", "queued_manual")
REPLY_WAITING = ("held",)

lg, r, sp, pa = schema.credit_ledger, schema.reels, schema.social_posts, schema.post_attempts


@dataclass(frozen=True)
class Context:
    now: dt.datetime  # the pipeline's clock (UTC)
    settings: Settings

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(dt.UTC).date()


def _ts(value: dt.datetime) -> float:
    return value.timestamp()


# --- credits and budget --------------------------------------------------------------------

def credits(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """The newest A2E balance snapshot, the day it runs out at the 7-day burn (the credit
    ledger's forecast date, as its UTC midnight: Prometheus wants seconds, not days), and the
    credits per reel costed in the last 7 days."""
    balance = conn.scalar(
        sa.select(lg.c.credits).where(lg.c.provider == ledger.PROVIDER,
                                      lg.c.kind == "balance_snapshot")
        .order_by(lg.c.ledger_date.desc(), lg.c.occurred_at.desc(), lg.c.id.desc()).limit(1))
    week = (lg.c.provider == ledger.PROVIDER, lg.c.kind == "task_cost",
            lg.c.ledger_date > ctx.today - dt.timedelta(days=reconcile.FORECAST_DAYS),
            lg.c.ledger_date <= ctx.today)
    spend, reel_credits, reels = conn.execute(sa.select(
        sa.func.coalesce(sa.func.sum(lg.c.credits), 0),
        sa.func.coalesce(sa.func.sum(lg.c.credits).filter(lg.c.reel_id.is_not(None)), 0),
        sa.func.count(sa.distinct(lg.c.reel_id))).where(*week)).one()
    out: list[Sample] = []
    if balance is not None:
        out.append(("waifugen_a2e_credits_remaining", {}, float(balance)))
        runs_out = reconcile.forecast(ctx.today, int(balance), int(spend)).runs_out_on
        if runs_out is not None:
            out.append(("waifugen_a2e_credits_runout_timestamp_seconds", {},
                        _ts(dt.datetime.combine(runs_out, dt.time(), dt.UTC))))
    if reels:
        out.append(("waifugen_cost_per_reel_credits", {}, int(reel_credits) / int(reels)))
    return out


def budget(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """This month's committed credits / limit: A2E as the budget check sees it (spent +
    planned, the default limit until the month's row exists); RunPod when it has a row."""
    views = {"a2e": ledger.budget_view(conn, ctx.today, ctx.settings.a2e_monthly_credits)}
    b = schema.budgets
    runpod_limit = conn.scalar(sa.select(b.c.credits_limit).where(
        b.c.provider == ledger.RUNPOD, b.c.period_start == month_start(ctx.today)))
    if runpod_limit is not None:
        spent = sum(spent_by_character(conn, ctx.today, ledger.RUNPOD).values())
        views["runpod"] = BudgetView(int(runpod_limit), spent, 0)
    return [("waifugen_budget_used_ratio", {"provider": p}, v.percent / 100.0)
            for p, v in views.items()]


# --- reels and posts -----------------------------------------------------------------------

def _by(states: Sequence[str], rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    counts = dict.fromkeys(states, 0)
    for state, n in rows:
        counts[state] = counts.get(state, 0) + int(n)
    return counts


def reels(conn: sa.Connection, ctx: Context) -> list[Sample]:
    rows = conn.execute(sa.select(r.c.status, sa.func.count()).where(r.c.date == ctx.today)
                        .group_by(r.c.status)).all()
    return [("waifugen_reels", {"stage": s}, float(n))
            for s, n in _by(schema.REEL_STATUSES, rows).items()]


def posts(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """social_posts of the reels dated in the last 7 days (reels(date) is indexed; a post
    belongs to its reel's day)."""
    rows = conn.execute(
        sa.select(sp.c.platform, sp.c.state, sa.func.count())
        .select_from(r.join(sp, sp.c.reel_id == r.c.id))
        .where(r.c.date > ctx.today - RECENT).group_by(sp.c.platform, sp.c.state)).all()
    counts = {(p, s): 0 for p in schema.SOCIAL_PLATFORMS for s in schema.POST_STATES}
    for platform, state, n in rows:
        counts[(platform, state)] = int(n)
    return [("waifugen_posts", {"platform": p, "state": s}, float(n))
            for (p, s), n in counts.items()]


_NEWEST_PUBLISHED_DAY = sa.text("""
    SELECT c.id, (SELECT r.date FROM reels r JOIN social_posts p ON p.reel_id = r.id
                  WHERE r.character_id = c.id AND p.state = 'published'
                  ORDER BY r.date DESC LIMIT 1)
    FROM characters c WHERE c.enabled
""")


def last_posts(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """Newest published_at per enabled character, among the posts of reels dated up to a week
    before its newest published reel: first that day per character (a step back along the
    (character_id, date, ...) unique index), then one query over those days only (a query
    per character would be planned without knowing how few days it reads)."""
    newest = [(cid, day) for cid, day in conn.execute(_NEWEST_PUBLISHED_DAY) if day is not None]
    if not newest:
        return []
    rows = conn.execute(
        sa.select(r.c.character_id, sa.func.max(sp.c.published_at))
        .select_from(r.join(sp, sp.c.reel_id == r.c.id))
        .where(sp.c.state == "published", sa.or_(*(
            sa.and_(r.c.character_id == cid, r.c.date >= day - dt.timedelta(days=LATE_POST_DAYS))
            for cid, day in newest)))
        .group_by(r.c.character_id)).all()
    return [("waifugen_last_post_timestamp_seconds", {"character": cid}, _ts(at))
            for cid, at in rows if at is not None]


class AttemptTotals:
    """post_attempts rows by platform and outcome since the beginning (a counter).

    Rows older than a day have settled (an outcome is written once, never changed); their
    counts are read once an hour, below the id of the newest settled row, and only the rows
    above it at every scrape. A row that settles late is counted at the next hourly read, so
    the totals only ever grow."""

    def __init__(self, refresh_seconds: float = 3600.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._base: dict[tuple[str, str], int] = {}
        self._boundary: int | None = None
        self._read_at: float | None = None

    def _counts(self, conn: sa.Connection, where: sa.ColumnElement[bool]) -> dict:
        rows = conn.execute(sa.select(sp.c.platform, pa.c.outcome, sa.func.count())
                            .select_from(pa.join(sp, sp.c.id == pa.c.post_id))
                            .where(where, pa.c.outcome.is_not(None))
                            .group_by(sp.c.platform, pa.c.outcome)).all()
        return {(p, o): int(n) for p, o, n in rows}

    def read(self, conn: sa.Connection, now: float) -> dict[tuple[str, str], int]:
        if self._boundary is None or self._read_at is None \
                or now - self._read_at >= self.refresh_seconds:
            boundary = conn.scalar(
                sa.select(pa.c.id).where(pa.c.started_at < sa.func.now() - SETTLED)
                .order_by(pa.c.id.desc()).limit(1)) or 0
            self._base = self._counts(conn, pa.c.id <= boundary)
            self._boundary, self._read_at = int(boundary), now
        totals = {(p, o): 0 for p in schema.SOCIAL_PLATFORMS
                  for o in schema.POST_ATTEMPT_OUTCOMES}
        for part in (self._base, self._counts(conn, pa.c.id > self._boundary)):
            for key, n in part.items():
                totals[key] = totals.get(key, 0) + n
        return totals


def attempts(conn: sa.Connection, ctx: Context, totals: AttemptTotals) -> list[Sample]:
    return [("waifugen_post_attempts_total", {"platform": p, "outcome": o}, float(n))
            for (p, o), n in totals.read(conn, ctx.now.timestamp()).items()]


# --- messages and replies ------------------------------------------------------------------

def _window_start_id(conn: sa.Connection, table: sa.Table, since: dt.datetime) -> int:
    """The id of the newest row created at or before `since`: ids grow with created_at, so
    the rows above it are the window's, found walking back along the primary key."""
    return int(conn.scalar(sa.select(table.c.id).where(table.c.created_at <= since)
                           .order_by(table.c.id.desc()).limit(1)) or 0)


def dm_messages(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """dm_messages created in the last 7 days by state, plus the ones waiting for a person
    (held, queued_manual) whatever their age ((state, due_at) is indexed)."""
    dm = schema.dm_messages
    since = ctx.now - RECENT
    start = _window_start_id(conn, dm, since)
    recent = conn.execute(sa.select(dm.c.state, sa.func.count())
                          .where(dm.c.id > start, dm.c.created_at > since)
                          .group_by(dm.c.state)).all()
    older = conn.execute(sa.select(dm.c.state, sa.func.count())
                         .where(dm.c.state.in_(DM_WAITING), dm.c.created_at <= since)
                         .group_by(dm.c.state)).all()
    return [("waifugen_dm_messages", {"state": s}, float(n))
            for s, n in _by(schema.DM_STATES, [*recent, *older]).items()]


def comment_replies(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """comment_replies created in the last 7 days by state, plus every held one (found
    through the held comments: the open-comments index)."""
    cr, cm = schema.comment_replies, schema.comments
    since = ctx.now - RECENT
    start = _window_start_id(conn, cr, since)
    recent = conn.execute(sa.select(cr.c.state, sa.func.count())
                          .where(cr.c.id > start, cr.c.created_at > since)
                          .group_by(cr.c.state)).all()
    held = conn.scalar(sa.select(sa.func.count()).select_from(
        cr.join(cm, cm.c.id == cr.c.comment_id)).where(
        cm.c.state == "held", cr.c.state.in_(REPLY_WAITING), cr.c.created_at <= since))
    return [("waifugen_comment_replies", {"state": s}, float(n))
            for s, n in _by(schema.REPLY_STATES, [*recent, ("held", held or 0)]).items()]


# --- quotas --------------------------------------------------------------------------------

_RATE_USED = sa.text("""
    SELECT coalesce(max(used), 0) FROM (
        SELECT sum(units) AS used FROM rate_limit_log
        WHERE platform = :service AND window_seconds = :period AND account_key LIKE :keys
          AND taken_at > :now - make_interval(secs => :period)
        GROUP BY account_key) per_key
""")


def quotas(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """Used / limit of the tracked quotas, for the busiest key of each: YouTube units of the
    Pacific day (quota_usage, the project's units bucket), A2E requests in the last hour
    (rate_limit_log, per API key), Instagram publishes and TikTok inits in the last 24 h
    (rate_limit_log, per account)."""
    qu = schema.quota_usage
    youtube_used = conn.scalar(sa.select(sa.func.coalesce(sa.func.max(qu.c.units), 0)).where(
        qu.c.platform == "youtube", qu.c.window_kind == "day",
        qu.c.window_start == quota_window(ctx.now), ~qu.c.account_key.contains("#")))
    publish = PublishConfig()
    out = [("youtube", "day", int(youtube_used or 0), QuotaLedger().daily_units)]
    for service, window, period, keys, limit in (
            ("a2e", "hour", 3600.0, "%", ctx.settings.a2e_requests_per_hour),
            ("instagram", "rolling_24h", DAY, "posts:%", publish.instagram_daily_publishes),
            ("tiktok", "rolling_24h", DAY, "posts:%", publish.tiktok_daily_posts)):
        used = conn.scalar(_RATE_USED, {"service": service, "period": period, "keys": keys,
                                        "now": ctx.now})
        out.append((service, window, int(used or 0), limit))
    return [("waifugen_quota_used_ratio", {"service": s, "window": w}, used / limit)
            for s, w, used, limit in out if limit > 0]


# --- backups, credentials, the report ------------------------------------------------------

def backups(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """finished_at of each database's newest `done` archive; the newest verified_at whose
    verify_result passed (`{"ok": true}`, as backup_verify writes it), among archives of the
    last 70 days (the finished_at index)."""
    b = schema.backups
    out: list[Sample] = []
    for database in schema.BACKUP_DATABASES:  # each one step back along the finished_at index
        at = conn.scalar(sa.select(b.c.finished_at).where(
            b.c.database == database, b.c.state == "done", b.c.finished_at.is_not(None))
            .order_by(b.c.finished_at.desc()).limit(1))
        if at is not None:
            out.append(("waifugen_backup_last_success_timestamp_seconds",
                        {"database": database}, _ts(at)))
    verified = conn.scalar(sa.select(sa.func.max(b.c.verified_at)).where(
        b.c.finished_at > ctx.now - VERIFY_LOOKBACK, b.c.verified_at.is_not(None),
        b.c.verify_result["ok"].as_boolean().is_(True)))
    if verified is not None:
        out.append(("waifugen_backup_last_verified_timestamp_seconds", {}, _ts(verified)))
    return out


def credentials(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """When each credential was last rotated (else created): a timestamp, so the alert rules
    compute the age with time() and a scrape never goes stale."""
    c = schema.credentials
    rows = conn.execute(sa.select(c.c.name, sa.func.coalesce(c.c.rotated_at, c.c.created_at))
                        ).all()
    return [("waifugen_credential_rotated_timestamp_seconds", {"name": name}, _ts(since))
            for name, since in rows]


def report(conn: sa.Connection, ctx: Context) -> list[Sample]:
    """The newest sent report message (walked back along the (report_date, part) index)."""
    rm = schema.report_messages
    at = conn.scalar(sa.select(rm.c.sent_at).where(rm.c.state == "sent",
                                                   rm.c.sent_at.is_not(None))
                     .order_by(rm.c.report_date.desc(), rm.c.sent_at.desc()).limit(1))
    return [] if at is None else [("waifugen_report_last_sent_timestamp_seconds", {}, _ts(at))]
