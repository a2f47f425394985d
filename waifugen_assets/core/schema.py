"""The app database: every table, as SQLAlchemy Core, on PostgreSQL only.

Alembic (`migrations/`) is the only way this schema reaches a database; this module is what the
migrations are generated from and what `alembic check` / the drift test compare against.

The model (DESIGN.md section 4):

- roster: `characters` (slug primary key, adults only), `platform_accounts` (tokens as Fernet
  ciphertext with the id of the key that encrypted them), `credentials` (metadata only).
- content: `reels` (one row per planned video: character x date x tier x slot, with the plan and
  the remote generation handle), `videos` (the raw and branded file of a reel).
- publishing: `social_posts` (one row per reel x platform, the intent recorded before any call;
  state machine in POST_STATES), `post_attempts` (one row per attempt, the audit trail),
  `quota_usage` (counters per fixed window, e.g. YouTube units per Pacific day) and
  `rate_limit_log` (sliding-window rate limits shared by every process): quotas are tracked,
  not discovered by failing.
- engagement: `engagement_snapshots`, `engagement_daily` (gains per character, day and
  platform), `follower_snapshots`, `comments`, `comment_replies` (one reply per comment),
  `comment_accounts` (when replies were switched on per account), `comment_polls` (each
  post's last and next comment read), `character_phases` (milestones).
- milestones: `character_phases` (each phase change of a character, once).
- subscribers: `subscribers`, `inbound_events` (webhooks and imports, deduplicated by the
  platform's event id), `dm_sequences`, `dm_messages` (one per subscriber x sequence x step),
  `revenue_events`.
- money: `credit_ledger` (a task's cost is recorded once), `budgets`, `budget_alerts` (one row
  per provider x character-or-roster x month x threshold).
- operations: `alerts` (every operator alert, sent once per key).

Conventions:

- Times are UTC `timestamptz`; calendar days (partition dates) are `date`.
- Money is integer cents with an ISO 4217 currency; credits are integers. Amounts are never
  negative: the sign comes from the kind (a `refund` revenue event is money going back).
- Enumerations are `text` plus a CHECK built from the tuples below (not PostgreSQL ENUM types,
  which cannot lose a value inside a transaction); Python code imports the same tuples.
- Every side effect (a post, a reply, a DM, an alert, a generation task, a ledger entry) has a
  UNIQUE natural key, so the intent row is written before the outside call and a retried run
  finds it instead of acting twice.
- Foreign keys are ON DELETE RESTRICT unless stated: rows that record money or a side effect
  never disappear with their parent. Characters are disabled, accounts get status `disabled`,
  and forgetting a subscriber nulls or anonymises the personal columns (handle, display_name,
  message texts, event payloads, `external_id` replaced by an opaque value) and sets
  `forgotten_at`, keeping the rows that revenue, ledgers and dedupe keys need. Only pure
  measurements (engagement snapshots) cascade with their post.
- `updated_at` is set by SQLAlchemy on Core updates (`onupdate`); upserts set it explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# ---------------------------------------------------------------------------------------------
# Enumerations (CHECK constraints below are built from these, so Python and the DB agree)
# ---------------------------------------------------------------------------------------------

CHARACTER_SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MIN_CHARACTER_AGE = 18

CONTENT_RATINGS = ("general", "mature")
# Only general-audience content goes to the social platforms (DESIGN.md section 8).
SOCIAL_PLATFORMS = ("tiktok", "instagram", "youtube")
# Subscriber channels. OnlyFans and Fansly have no public API: CSV import + manual-send queue.
SUBSCRIBER_PLATFORMS = ("fanvue", "telegram", "onlyfans", "fansly", "instagram")
PLATFORMS = ("tiktok", "instagram", "youtube", "fanvue", "telegram", "onlyfans", "fansly")
ACCOUNT_STATUSES = ("active", "needs_reauth", "disabled")

REEL_TIERS = ("standard", "premium")
REEL_STATUSES = (
    "planned", "blocked", "generating", "generated", "stored", "branded", "published", "failed",
    "skipped",  # not made on purpose: its slot passed before it could be rendered
)
# Reels still on their way to `branded`: what the generation sensor resumes.
UNFINISHED_REEL_STATUSES = ("planned", "generating", "generated", "stored")
GENERATION_PROVIDERS = ("a2e", "runpod")

VIDEO_VARIANTS = ("raw", "branded")
STORAGE_BACKENDS = ("local", "s3")

POST_STATES = (
    "planned",           # intent recorded, nothing sent yet
    "initiated",         # init call made; remote_handle saved as soon as the platform gave one
    "uploaded",          # bytes delivered
    "processing",        # platform is processing / container not finished
    "published",         # live; published_at set
    "failed_retryable",  # next_attempt_at says when
    "failed_permanent",  # gave up; alerted
    "unknown",           # timeout or lost answer: reconcile with the platform before retrying
    "deferred",          # not attempted yet on purpose (quota, window, budget, rating)
    "skipped",           # never sent: its slot was stale (older than the stale age) when due
)
# States a post may be in without AI disclosure: nothing has been sent to the platform.
POST_STATES_WITHOUT_DISCLOSURE = ("planned", "deferred", "failed_permanent", "skipped")
# How a failed call is classified (DESIGN.md section 6).
ERROR_CLASSES = ("retryable", "rate_limited", "auth", "permanent", "unknown")
POST_ATTEMPT_OUTCOMES = ("success", *ERROR_CLASSES)

# Comment replies (waifugen_assets/comments, docs/comments.md). A comment's decision and its one
# reply's delivery: `sending` is committed before the call, `unknown` when the answer was lost;
# both are settled by listing the comment's replies on the platform before any resend.
COMMENT_CLASSES = ("question", "compliment", "neutral", "spam", "hostile", "unsafe")
COMMENT_STATES = (
    "new",       # to be answered (its reply row may be on its way)
    "answered",  # our reply is on the platform
    "held",      # unsafe or doubtful: waits for `waifugen comments review`
    "skipped",   # never answered: spam, hostile, skipped by an operator, refused, too late
    "own",       # the account's own comment
)
REPLY_STATES = ("planned", "sending", "sent", "unknown", "failed", "deferred", "held")
# Replies that still have work: what the comments sensor and the cycle read (partial index).
OPEN_REPLY_STATES = ("planned", "sending", "unknown", "deferred")
REPLY_SOURCES = ("llm", "template", "operator")
DM_STATES = ("planned", "sending", "sent", "failed", "unknown", "skipped", "held", "queued_manual")
REVENUE_KINDS = ("subscription", "renewal", "tip", "purchase", "refund")
# Normalized inbound event types (docs/subscriber-channels.md); the platform's own type is in
# the payload.
INBOUND_EVENT_TYPES = (
    "subscriber.new", "subscriber.renewal", "subscriber.cancelled", "subscriber.blocked",
    "message.received", "revenue.tip", "revenue.purchase",
)

CREDIT_PROVIDERS = GENERATION_PROVIDERS
# top_up: credits bought, detected by the credit_ledger asset from a balance rise.
LEDGER_KINDS = ("task_cost", "balance_snapshot", "adjustment", "top_up")
# The daily Telegram report: a photo (the chart, its caption) and a message, each sent once.
REPORT_PARTS = ("photo", "text")
REPORT_MESSAGE_STATES = ("planned", "sending", "sent", "unknown", "failed")
# Backups (waifugen_assets/operations): which database an archive holds, and where it went.
BACKUP_DATABASES = ("app", "dagster", "globals")
BACKUP_STATES = ("running", "done", "failed", "pruned")
# The read-only PostgreSQL role of analysts (migration 0013): the marts, nothing else.
ANALYST_ROLE = "waifugen_analyst"
ANALYTICS_SCHEMA = "analytics"
BUDGET_ALERT_THRESHOLDS = (50, 80, 100)

# Everything whose quota we track: the platforms plus the paid generation APIs.
QUOTA_SERVICES = (*PLATFORMS, *CREDIT_PROVIDERS)
QUOTA_WINDOW_KINDS = ("second", "minute", "hour", "day", "rolling_24h")

# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------

# Deterministic constraint names: Alembic can drop what it created, and errors name the rule.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: Iterable[str | int]) -> sa.CheckConstraint:
    """CHECK (column IN (...)), named after the column: ck_<table>_<column>."""
    rendered = ", ".join(str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"
                         for v in values)
    return sa.CheckConstraint(f"{column} IN ({rendered})", name=column)


def _nonneg(*columns: str) -> list[sa.CheckConstraint]:
    """CHECK (column >= 0) for each column (NULL passes: unknown is not negative)."""
    return [sa.CheckConstraint(f"{c} >= 0", name=f"{c}_nonneg") for c in columns]


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                     server_default=sa.func.now())


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                     server_default=sa.func.now(), onupdate=sa.func.now())


def _ts(name: str, nullable: bool = True, **kw: object) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **kw)


def _id() -> sa.Column:
    # BIGSERIAL
    return sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, nullable: bool = False, ondelete: str = "RESTRICT") -> sa.Column:
    type_ = sa.Text if target.startswith("characters.") else sa.BigInteger
    return sa.Column(name, type_, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


_JSONB_ARRAY = sa.text("'[]'::jsonb")
_JSONB_OBJECT = sa.text("'{}'::jsonb")
_FIRST_OF_MONTH = "EXTRACT(DAY FROM period_start) = 1"

# ---------------------------------------------------------------------------------------------
# Roster
# ---------------------------------------------------------------------------------------------

characters = sa.Table(
    "characters",
    metadata,
    # The slug is the Dagster partition key too, so it is immutable and URL/path safe.
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("persona", sa.Text, nullable=False, server_default=""),
    sa.Column("age", sa.Integer, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),  # IANA name, validated by the roster loader
    sa.Column("content_rating", sa.Text, nullable=False, server_default="general"),
    # Local "HH:MM" posting times, in order; slot N of a day is slots[N].
    sa.Column("slots", postgresql.JSONB, nullable=False, server_default=_JSONB_ARRAY),
    sa.Column("watermark", postgresql.JSONB, nullable=True),
    sa.Column("a2e_avatar_id", sa.Text, nullable=True),
    sa.Column("a2e_voice_id", sa.Text, nullable=True),
    # Percent of each provider's monthly budget; NULL = an even share of what is unassigned.
    sa.Column("budget_share", sa.Numeric(5, 2), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    _created_at(),
    _updated_at(),
    sa.CheckConstraint(f"id ~ '{CHARACTER_SLUG_PATTERN}'", name="id_slug"),
    sa.CheckConstraint(f"age >= {MIN_CHARACTER_AGE}", name="age_adult"),
    _in("content_rating", CONTENT_RATINGS),
    sa.CheckConstraint("jsonb_typeof(slots) = 'array'", name="slots_array"),
    sa.CheckConstraint("budget_share >= 0 AND budget_share <= 100", name="budget_share_percent"),
)

platform_accounts = sa.Table(
    "platform_accounts",
    metadata,
    _id(),
    _fk("character_id", "characters.id"),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("account_ref", sa.Text, nullable=False),  # handle / channel / page as configured
    sa.Column("external_user_id", sa.Text, nullable=True),  # the platform's id, once authorised
    # Fernet ciphertext; tokens are never stored in clear. key_id names the encryption key so
    # keys can be rotated (decrypt with the old, re-encrypt with the new).
    sa.Column("access_token_enc", sa.LargeBinary, nullable=True),
    sa.Column("refresh_token_enc", sa.LargeBinary, nullable=True),
    sa.Column("key_id", sa.Text, nullable=True),
    _ts("token_expires_at"),
    _ts("refresh_expires_at"),
    sa.Column("scopes", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    _created_at(),
    _updated_at(),
    sa.UniqueConstraint("character_id", "platform"),
    sa.UniqueConstraint("platform", "account_ref"),
    _in("platform", PLATFORMS),
    _in("status", ACCOUNT_STATUSES),
    sa.CheckConstraint(
        "key_id IS NOT NULL OR (access_token_enc IS NULL AND refresh_token_enc IS NULL)",
        name="tokens_have_key_id",
    ),
)

# Which secrets exist and how old they are; the secret itself lives in env / secret files.
credentials = sa.Table(
    "credentials",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False, unique=True),  # e.g. "tiktok:aiko-tanaka"
    sa.Column("kind", sa.Text, nullable=False),  # oauth_token, api_key, bot_token, ...
    sa.Column("key_id", sa.Text, nullable=True),
    _created_at(),
    _ts("rotated_at"),
    _ts("expires_at"),
    _ts("last_used_at"),
    # A short fingerprint of the value in use (sha256 prefix; never the value), and when a
    # cheap authenticated read last accepted it (`waifugen credentials rotate`).
    sa.Column("fingerprint", sa.Text, nullable=True),
    _ts("validated_at"),
)

# ---------------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------------

reels = sa.Table(
    "reels",
    metadata,
    _id(),
    _fk("character_id", "characters.id"),
    sa.Column("date", sa.Date, nullable=False),  # the partition date (character's local day)
    sa.Column("slot", sa.SmallInteger, nullable=False),  # 0-based index into characters.slots
    sa.Column("tier", sa.Text, nullable=False, server_default="standard"),
    sa.Column("content_rating", sa.Text, nullable=False, server_default="general"),
    _ts("scheduled_at", nullable=False),  # the slot's local time converted to UTC
    # script, caption, hashtags, title, disclosure, source ("llm" | "template")
    sa.Column("plan", postgresql.JSONB, nullable=False, server_default=_JSONB_OBJECT),
    sa.Column("status", sa.Text, nullable=False, server_default="planned"),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("generation_provider", sa.Text, nullable=True),
    # The remote task handle, saved right after submit and before polling, so a crash resumes
    # the same task instead of paying for a second one.
    sa.Column("generation_task_id", sa.Text, nullable=True),
    # Where the provider put the finished video (often a URL that expires within days).
    sa.Column("generation_result_url", sa.Text, nullable=True),
    # Paid submissions made for this reel: a rerun after a crash must not add one.
    sa.Column("generation_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    _ts("generation_submitted_at"),
    # When the generation sensor should look again: a submit retried after a rate limit or
    # an outage, or a render's next status poll. NULL = now.
    _ts("next_attempt_at"),
    sa.Column("projected_credits", sa.Integer, nullable=False, server_default=sa.text("0")),
    _created_at(),
    _updated_at(),
    sa.UniqueConstraint("character_id", "date", "tier", "slot"),
    sa.UniqueConstraint("generation_provider", "generation_task_id"),
    sa.Index(None, "date", "character_id"),
    # The generation sensor's query: only unfinished reels, so a tick does not grow with
    # history.
    sa.Index("ix_reels_unfinished", "scheduled_at",
             postgresql_where=sa.text("status IN ("
                                      + ", ".join(f"'{s}'" for s in UNFINISHED_REEL_STATUSES)
                                      + ")")),
    # The posting sensor's query: reels branded and not yet published everywhere (a reel
    # becomes `published` once every platform has it), by slot time.
    sa.Index("ix_reels_awaiting_post", "scheduled_at",
             postgresql_where=sa.text("status = 'branded'")),
    sa.CheckConstraint("slot >= 0", name="slot_nonneg"),
    _in("tier", REEL_TIERS),
    _in("content_rating", CONTENT_RATINGS),
    _in("status", REEL_STATUSES),
    _in("generation_provider", GENERATION_PROVIDERS),
    sa.CheckConstraint(
        "generation_task_id IS NULL OR generation_provider IS NOT NULL", name="task_has_provider"
    ),
    *_nonneg("projected_credits", "generation_attempts"),
)

videos = sa.Table(
    "videos",
    metadata,
    _id(),
    _fk("reel_id", "reels.id"),
    sa.Column("variant", sa.Text, nullable=False),
    sa.Column("storage_backend", sa.Text, nullable=False),
    # Content-addressed key; the same bytes may back several rows, so not unique.
    sa.Column("storage_key", sa.Text, nullable=False),
    sa.Column("public_url", sa.Text, nullable=True),
    sa.Column("sha256", sa.CHAR(64), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=True),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("video_codec", sa.Text, nullable=True),
    sa.Column("audio_codec", sa.Text, nullable=True),
    _created_at(),
    sa.UniqueConstraint("reel_id", "variant"),
    sa.Index(None, "sha256"),
    _in("variant", VIDEO_VARIANTS),
    _in("storage_backend", STORAGE_BACKENDS),
    sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
    *_nonneg("bytes", "duration_ms"),
    sa.CheckConstraint("width > 0 AND height > 0", name="dimensions_positive"),
)

# ---------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------

social_posts = sa.Table(
    "social_posts",
    metadata,
    _id(),
    _fk("reel_id", "reels.id"),
    sa.Column("platform", sa.Text, nullable=False),
    _fk("account_id", "platform_accounts.id", nullable=True),
    sa.Column("state", sa.Text, nullable=False, server_default="planned"),
    # No default: whoever plans the post decides, and the CHECK below keeps an undisclosed post
    # from ever leaving `planned` / `deferred` (DESIGN.md section 8).
    sa.Column("ai_disclosure", sa.Boolean, nullable=False),
    # TikTok publish_id / Instagram container id / YouTube upload session URI: saved as soon as
    # it exists, so an unknown outcome is reconciled by asking the platform.
    sa.Column("remote_handle", sa.Text, nullable=True),
    sa.Column("remote_post_id", sa.Text, nullable=True),
    # What a resume needs beyond the handle: TikTok upload URL and chunk plan, Instagram
    # container id and upload URI, YouTube session URI.
    sa.Column("remote_state", postgresql.JSONB, nullable=False, server_default=_JSONB_OBJECT),
    sa.Column("permalink", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("error_class", sa.Text, nullable=True),
    _ts("next_attempt_at"),
    _ts("published_at"),
    # Engagement read-back (waifugen_assets/engagement): how many of the snapshot ages
    # (1 h, 6 h, 24 h, 3 d, 7 d, 30 d) are taken, and when the next is due (NULL: none left).
    sa.Column("metrics_checkpoint", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
    _ts("metrics_next_at"),
    _created_at(),
    _updated_at(),
    sa.UniqueConstraint("reel_id", "platform"),
    sa.UniqueConstraint("platform", "remote_post_id"),
    sa.Index(None, "state", "next_attempt_at"),  # the posting sensor's "what is due" query
    # The engagement schedule's "which snapshots are due": only posts with one left.
    sa.Index("ix_social_posts_metrics_due", "metrics_next_at",
             postgresql_where=sa.text("metrics_next_at IS NOT NULL")),
    _in("platform", SOCIAL_PLATFORMS),
    _in("state", POST_STATES),
    _in("error_class", ERROR_CLASSES),
    *_nonneg("attempts"),
    sa.CheckConstraint(
        "ai_disclosure OR state IN ("
        + ", ".join(f"'{s}'" for s in POST_STATES_WITHOUT_DISCLOSURE) + ")",
        name="disclosed_before_sending",
    ),
    sa.CheckConstraint("state <> 'published' OR published_at IS NOT NULL",
                       name="published_has_time"),
)

# One row per publish attempt, written when the attempt starts: the audit trail of every call.
post_attempts = sa.Table(
    "post_attempts",
    metadata,
    _id(),
    _fk("post_id", "social_posts.id"),
    sa.Column("attempt", sa.Integer, nullable=False),  # 1-based
    _ts("started_at", nullable=False, server_default=sa.func.now()),
    _ts("finished_at"),
    sa.Column("outcome", sa.Text, nullable=True),  # NULL while in flight
    sa.Column("error", sa.Text, nullable=True),
    # Method, endpoint, status codes, remote handle; redacted, never tokens or bodies.
    sa.Column("request_summary", postgresql.JSONB, nullable=True),
    sa.UniqueConstraint("post_id", "attempt"),
    sa.CheckConstraint("attempt >= 1", name="attempt_positive"),
    _in("outcome", POST_ATTEMPT_OUTCOMES),
    sa.CheckConstraint("finished_at IS NULL OR finished_at >= started_at", name="finished_after"),
)

# Per platform account (or token) quota counters: one row per window.
quota_usage = sa.Table(
    "quota_usage",
    metadata,
    _id(),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("account_key", sa.Text, nullable=False),  # account id, token id or project
    _ts("window_start", nullable=False),
    sa.Column("window_kind", sa.Text, nullable=False),
    sa.Column("units", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    _updated_at(),
    sa.UniqueConstraint("platform", "account_key", "window_kind", "window_start",
                        name="uq_quota_usage_window"),
    _in("platform", QUOTA_SERVICES),
    _in("window_kind", QUOTA_WINDOW_KINDS),
    *_nonneg("units"),
)

# Client-side rate limits shared by every process (resources/quota_store.py): one row per
# acquisition, kept while inside its window, so "at most N in any P seconds" holds exactly.
rate_limit_log = sa.Table(
    "rate_limit_log",
    metadata,
    _id(),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("account_key", sa.Text, nullable=False),  # limiter name + token/chat fingerprint
    sa.Column("window_seconds", sa.Float, nullable=False),
    _ts("taken_at", nullable=False),
    sa.Column("units", sa.Integer, nullable=False),
    _in("platform", QUOTA_SERVICES),
    sa.CheckConstraint("units > 0", name="units_positive"),
    sa.CheckConstraint("window_seconds > 0", name="window_seconds_positive"),
    sa.Index("ix_rate_limit_log_key", "platform", "account_key", "window_seconds", "taken_at"),
)

# ---------------------------------------------------------------------------------------------
# Engagement
# ---------------------------------------------------------------------------------------------

engagement_snapshots = sa.Table(
    "engagement_snapshots",
    metadata,
    _id(),
    # Measurements only (no side effect), so they go with their post.
    _fk("post_id", "social_posts.id", ondelete="CASCADE"),
    _ts("captured_at", nullable=False),
    # NULL where the platform does not report the metric.
    sa.Column("views", sa.BigInteger, nullable=True),
    sa.Column("likes", sa.BigInteger, nullable=True),
    sa.Column("comments", sa.BigInteger, nullable=True),
    sa.Column("shares", sa.BigInteger, nullable=True),
    sa.Column("saves", sa.BigInteger, nullable=True),
    sa.Column("reach", sa.BigInteger, nullable=True),  # Instagram only
    sa.UniqueConstraint("post_id", "captured_at"),
    sa.Index(None, "captured_at"),
    *_nonneg("views", "likes", "comments", "shares", "saves", "reach"),
)

# What each character's posts gained per local day and platform, rolled up from the snapshots
# (lifetime counters: a day's gain is the last reading by the day's end minus the last before
# it). Small enough for the weekly_premium schedule and the reports to read many days of.
engagement_daily = sa.Table(
    "engagement_daily",
    metadata,
    _fk("character_id", "characters.id"),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("posts_read", sa.Integer, nullable=False),  # posts with a reading that day
    sa.Column("views", sa.BigInteger, nullable=False),
    sa.Column("likes", sa.BigInteger, nullable=False),
    sa.Column("comments", sa.BigInteger, nullable=False),
    sa.Column("shares", sa.BigInteger, nullable=False),
    sa.Column("saves", sa.BigInteger, nullable=False),
    _updated_at(),
    sa.PrimaryKeyConstraint("character_id", "date", "platform"),
    sa.Index(None, "date"),  # weekly_premium: a week of days for the whole roster
    _in("platform", SOCIAL_PLATFORMS),
    *_nonneg("posts_read", "views", "likes", "comments", "shares", "saves"),
)

follower_snapshots = sa.Table(
    "follower_snapshots",
    metadata,
    _id(),
    _fk("character_id", "characters.id"),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("captured_on", sa.Date, nullable=False),
    sa.Column("followers", sa.BigInteger, nullable=False),
    _created_at(),
    _ts("captured_at"),  # the day's last good read (the row is upserted through the day)
    sa.UniqueConstraint("character_id", "platform", "captured_on"),
    sa.Index(None, "captured_on"),  # the engagement schedule: today's rows for the roster
    _in("platform", PLATFORMS),
    *_nonneg("followers"),
)

comments = sa.Table(
    "comments",
    metadata,
    _id(),
    _fk("post_id", "social_posts.id"),
    _fk("character_id", "characters.id"),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("remote_comment_id", sa.Text, nullable=False),
    # Personal data of the commenter: nullable so it can be erased on request.
    sa.Column("author_id", sa.Text, nullable=True),
    sa.Column("author_handle", sa.Text, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    _ts("commented_at"),
    _ts("fetched_at", nullable=False, server_default=sa.func.now()),  # first seen
    # NULL for the account's own comments (never classified, never answered).
    sa.Column("classification", sa.Text, nullable=True),
    sa.Column("state", sa.Text, nullable=False, server_default="new"),
    sa.Column("reason", sa.Text, nullable=True),  # why held or skipped
    _updated_at(),
    sa.UniqueConstraint("platform", "remote_comment_id"),
    sa.Index(None, "post_id"),
    # The cycle's and the sensor's "to be answered", the review queue: open comments only.
    sa.Index("ix_comments_open", "character_id", "state",
             postgresql_where=sa.text("state IN ('new', 'held')")),
    _in("platform", SOCIAL_PLATFORMS),
    _in("classification", COMMENT_CLASSES),
    _in("state", COMMENT_STATES),
    sa.CheckConstraint("state = 'own' OR classification IS NOT NULL", name="classified"),
)

comment_replies = sa.Table(
    "comment_replies",
    metadata,
    _id(),
    # UNIQUE: at most one reply per comment, whatever retries happen.
    _fk("comment_id", "comments.id"),
    sa.Column("text", sa.Text, nullable=False),  # frozen before the call, disclosure included
    sa.Column("source", sa.Text, nullable=False, server_default="template"),
    sa.Column("state", sa.Text, nullable=False, server_default="planned"),
    sa.Column("remote_reply_id", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # Sends tried (a resend only after the platform showed no reply of ours); the caps count
    # attempted_at, the time of the last one.
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    _ts("attempted_at"),
    # When the cycle may look at the reply again: a cap or rate limit frees up, YouTube's
    # quota resets, a doubtful send may be reconciled. NULL = now.
    _ts("next_attempt_at"),
    _created_at(),
    _updated_at(),
    _ts("sent_at"),
    sa.UniqueConstraint("comment_id"),
    sa.Index("ix_comment_replies_open", "next_attempt_at",
             postgresql_where=sa.text("state IN ("
                                      + ", ".join(f"'{s}'" for s in OPEN_REPLY_STATES) + ")")),
    # The caps: replies tried in the last hour (per post) and day (per account).
    sa.Index(None, "attempted_at", postgresql_where=sa.text("attempted_at IS NOT NULL")),
    _in("state", REPLY_STATES),
    _in("source", REPLY_SOURCES),
    *_nonneg("attempts"),
    sa.CheckConstraint("state <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
)

# When automatic replies were switched on for an account: comments from before are never
# answered. Written by the first comment_replies run of the account (or `switch_on`).
comment_accounts = sa.Table(
    "comment_accounts",
    metadata,
    _fk("account_id", "platform_accounts.id"),
    _ts("switched_on_at", nullable=False),
    _created_at(),
    sa.PrimaryKeyConstraint("account_id"),
)

# Each post's comment polling: when it was read and when it is read next (tiered by the post's
# age; NULL once its reply window is over, so the sensor's index holds open posts only).
comment_polls = sa.Table(
    "comment_polls",
    metadata,
    _fk("post_id", "social_posts.id"),
    _fk("character_id", "characters.id"),
    _ts("last_polled_at"),
    _ts("next_poll_at"),
    sa.Column("error", sa.Text, nullable=True),  # the last poll's failure, if it failed
    _created_at(),
    _updated_at(),
    sa.PrimaryKeyConstraint("post_id"),
    sa.Index("ix_comment_polls_due", "next_poll_at",
             postgresql_where=sa.text("next_poll_at IS NOT NULL")),
)
# The comments sensor's "posts published in their reply window with no poll row yet": recent
# Instagram and YouTube posts by publication time (TikTok has no comment API for this app).
sa.Index("ix_social_posts_comment_window", social_posts.c.published_at,
         postgresql_where=sa.text("state = 'published' AND platform IN ('instagram', 'youtube')"))

# ---------------------------------------------------------------------------------------------
# Milestones (waifugen_assets/milestones, docs/milestones.md)
# ---------------------------------------------------------------------------------------------

PHASE_DIRECTIONS = ("up", "down")

# Each phase change of a character, recorded once with the follower reading that caused it
# (the phases are configuration, roster/phases.py: the name is text, not an enumeration). The
# phase on a local day is the newest row in effect by then; none: the first phase.
character_phases = sa.Table(
    "character_phases",
    metadata,
    _id(),
    _fk("character_id", "characters.id"),
    sa.Column("phase", sa.Text, nullable=False),
    sa.Column("previous_phase", sa.Text, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    # The local day of the reading that crossed (follower_snapshots.captured_on), its total
    # across the counted platforms, the threshold crossed, and the reading per platform
    # ([{platform, captured_on, followers, snapshot_id}]).
    sa.Column("crossed_on", sa.Date, nullable=False),
    sa.Column("followers", sa.BigInteger, nullable=False),
    sa.Column("threshold", sa.BigInteger, nullable=False),
    sa.Column("snapshot", postgresql.JSONB, nullable=False),
    # The character's first local day planned in the new phase: never a day already begun.
    sa.Column("effective_on", sa.Date, nullable=False),
    _ts("recorded_at", nullable=False),  # the pipeline's clock
    _created_at(),
    sa.UniqueConstraint("character_id", "phase", "direction", "crossed_on"),
    _in("direction", PHASE_DIRECTIONS),
    *_nonneg("followers", "threshold"),
    sa.CheckConstraint("effective_on > crossed_on", name="effective_after_crossing"),
    sa.CheckConstraint("jsonb_typeof(snapshot) = 'array'", name="snapshot_array"),
)

# ---------------------------------------------------------------------------------------------
# Subscribers and messaging
# ---------------------------------------------------------------------------------------------

subscribers = sa.Table(
    "subscribers",
    metadata,
    _id(),
    _fk("character_id", "characters.id"),
    sa.Column("platform", sa.Text, nullable=False),
    # The platform's user id. "Forget" replaces it with an opaque value (the row stays, so
    # revenue and sent-message history keep their keys) and nulls the personal columns.
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("handle", sa.Text, nullable=True),
    sa.Column("display_name", sa.Text, nullable=True),
    sa.Column("timezone", sa.Text, nullable=True),  # IANA; NULL = the character's
    sa.Column("tier", sa.Text, nullable=False, server_default="standard"),
    sa.Column("tags", postgresql.JSONB, nullable=False, server_default=_JSONB_ARRAY),
    sa.Column("score", sa.Numeric(10, 2), nullable=False, server_default=sa.text("0")),
    _ts("subscribed_at"),
    _ts("last_inbound_at"),  # starts Instagram's 24 h messaging window
    _ts("last_outbound_at"),  # frequency caps
    _ts("opted_out_at"),
    _ts("forgotten_at"),
    # Lifetime spend as reported by a CSV export (OnlyFans, Fansly): an aggregate, not revenue
    # events, because an export has no stable id per payment (docs/subscribers.md).
    sa.Column("imported_spend_cents", sa.BigInteger, nullable=True),
    sa.Column("imported_spend_currency", sa.CHAR(3), nullable=True),
    _created_at(),
    _updated_at(),
    sa.UniqueConstraint("character_id", "platform", "external_id"),
    _in("platform", SUBSCRIBER_PLATFORMS),
    sa.CheckConstraint("jsonb_typeof(tags) = 'array'", name="tags_array"),
    *_nonneg("imported_spend_cents"),
    sa.CheckConstraint("imported_spend_currency ~ '^[A-Z]{3}$'",
                       name="imported_spend_currency_iso4217"),
    # Due-step selection: who subscribed inside a step's window, among those still reachable
    # (messaging.plan_due); a range scan instead of a pass over every subscriber.
    sa.Index("ix_subscribers_reachable_since", "character_id", "tier", "subscribed_at",
             postgresql_where=sa.text("opted_out_at IS NULL AND forgotten_at IS NULL")),
)

# Webhooks and imported events, deduplicated by the platform's own event id.
inbound_events = sa.Table(
    "inbound_events",
    metadata,
    _id(),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    _fk("character_id", "characters.id", nullable=True),
    _fk("subscriber_id", "subscribers.id", nullable=True),
    # The subscriber's platform id, set when stored (before any subscriber row exists), so an
    # event not applied yet can still be found and anonymised by "forget".
    sa.Column("external_id", sa.Text, nullable=True),
    _ts("occurred_at"),
    # The event as received; NULLed when its subscriber is forgotten.
    sa.Column("payload", postgresql.JSONB, nullable=True),
    # The normalized fields apply needs (handle, display name, text, amount, ...); NULLed with
    # the payload.
    sa.Column("data", postgresql.JSONB, nullable=True),
    _ts("received_at", nullable=False, server_default=sa.func.now()),
    _ts("processed_at"),
    # Why the event was not applied (processed, but rejected); NULL when applied.
    sa.Column("error", sa.Text, nullable=True),
    sa.UniqueConstraint("platform", "event_id"),
    # Unprocessed events, oldest first.
    sa.Index("ix_inbound_events_unprocessed", "received_at",
             postgresql_where=sa.text("processed_at IS NULL")),
    sa.Index(None, "platform", "external_id"),
    sa.Index(None, "subscriber_id"),
    # The poll run's "newest fan message stored" per character: one step back from the end.
    sa.Index("ix_inbound_events_fanvue_messages", "character_id", "occurred_at",
             postgresql_where=sa.text("platform = 'fanvue' AND event_type = 'message.received'")),
    _in("platform", PLATFORMS),
    _in("event_type", INBOUND_EVENT_TYPES),
)
# The poll run's Telegram offset: a bot's newest update id (event ids `<bot>:<update>`). The
# same bot prefix, so the longest id and then the greatest is the greatest update id: the last
# entry for the bot, where a numeric cast could fail a write on an odd id.
sa.Index("ix_inbound_events_telegram_update",
         sa.func.split_part(inbound_events.c.event_id, ":", 1),
         sa.func.length(inbound_events.c.event_id), inbound_events.c.event_id,
         postgresql_where=sa.text("platform = 'telegram'"))

dm_sequences = sa.Table(
    "dm_sequences",
    metadata,
    _id(),
    # "<character or default>/<tier>/<name>@<version>": a changed sequence gets a new key, so
    # messages already planned keep pointing at the definition they were planned from.
    sa.Column("key", sa.Text, nullable=False, unique=True),
    _fk("character_id", "characters.id", nullable=True),  # NULL = default for every character
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("definition", postgresql.JSONB, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    _created_at(),
)

dm_messages = sa.Table(
    "dm_messages",
    metadata,
    _id(),
    _fk("subscriber_id", "subscribers.id"),
    _fk("sequence_id", "dm_sequences.id"),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("variant", sa.Text, nullable=True),
    sa.Column("state", sa.Text, nullable=False, server_default="planned"),
    _ts("due_at", nullable=False),
    # Not before this time (quiet hours, frequency cap, Retry-After); NULL = when due.
    _ts("not_before"),
    sa.Column("text", sa.Text, nullable=True),  # NULLed when the subscriber is forgotten
    sa.Column("remote_message_id", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    _created_at(),
    _updated_at(),
    _ts("sent_at"),
    sa.UniqueConstraint("subscriber_id", "sequence_id", "step"),
    sa.Index(None, "state", "due_at"),  # the DM sensor's "what is due" query
    sa.Index(None, "sequence_id"),
    *_nonneg("step"),
    _in("state", DM_STATES),
    sa.CheckConstraint("state <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
)

revenue_events = sa.Table(
    "revenue_events",
    metadata,
    _id(),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    _fk("character_id", "characters.id"),
    _fk("subscriber_id", "subscribers.id", nullable=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),  # >= 0; a refund is kind=refund
    sa.Column("currency", sa.CHAR(3), nullable=False),
    _ts("occurred_at", nullable=False),
    _created_at(),
    sa.UniqueConstraint("platform", "event_id"),
    sa.Index(None, "occurred_at"),
    sa.Index(None, "character_id", "occurred_at"),
    _in("platform", PLATFORMS),
    _in("kind", REVENUE_KINDS),
    *_nonneg("amount_cents"),
    sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
)

# ---------------------------------------------------------------------------------------------
# Credits and budgets
# ---------------------------------------------------------------------------------------------

credit_ledger = sa.Table(
    "credit_ledger",
    metadata,
    _id(),
    sa.Column("provider", sa.Text, nullable=False),
    # task_cost: credits a task consumed; balance_snapshot: the provider's remaining balance
    # (external_ref `balance:<date>`, one a day, refreshed by a rerun of that day);
    # top_up: credits bought (external_ref `top_up:<date>`, detected from a balance rise);
    # adjustment: a manual correction (amount in credits, explained in note).
    sa.Column("kind", sa.Text, nullable=False),
    _fk("character_id", "characters.id", nullable=True),
    _fk("reel_id", "reels.id", nullable=True),
    sa.Column("external_ref", sa.Text, nullable=True),  # the task id for task_cost
    sa.Column("credits", sa.BigInteger, nullable=False),
    sa.Column("ledger_date", sa.Date, nullable=False),
    _ts("occurred_at", nullable=False, server_default=sa.func.now()),
    sa.Column("note", sa.Text, nullable=True),
    # balance_snapshot only: credits the provider had already taken for tasks we had not
    # costed yet (submitted, not finished) when the balance was read; reconciliation needs it.
    sa.Column("in_flight_credits", sa.BigInteger, nullable=True),
    _created_at(),
    # A task's cost is recorded once, however often the run is retried.
    sa.UniqueConstraint("provider", "kind", "external_ref"),
    sa.Index(None, "ledger_date", "provider"),
    sa.Index(None, "reel_id"),
    _in("provider", CREDIT_PROVIDERS),
    _in("kind", LEDGER_KINDS),
    *_nonneg("credits", "in_flight_credits"),
    sa.CheckConstraint("kind <> 'task_cost' OR external_ref IS NOT NULL",
                       name="task_cost_has_ref"),
)

budgets = sa.Table(
    "budgets",
    metadata,
    _id(),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),  # first day of the month
    sa.Column("credits_limit", sa.BigInteger, nullable=False),
    _created_at(),
    _updated_at(),
    sa.UniqueConstraint("provider", "period_start"),
    _in("provider", CREDIT_PROVIDERS),
    *_nonneg("credits_limit"),
    sa.CheckConstraint(_FIRST_OF_MONTH, name="period_start_first_of_month"),
)

# One row per budget threshold reached (provider x character-or-roster x month); the message it
# raises is the `alerts` row keyed `budget:<id>`.
budget_alerts = sa.Table(
    "budget_alerts",
    metadata,
    _id(),
    sa.Column("provider", sa.Text, nullable=False),
    _fk("character_id", "characters.id", nullable=True),  # NULL = the whole roster
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    _created_at(),
    # NULLS NOT DISTINCT (PostgreSQL 15+): the roster-wide alert (character_id NULL) is unique
    # too, where a plain UNIQUE would let every retry insert another one.
    sa.UniqueConstraint("provider", "character_id", "period_start", "threshold",
                        name="uq_budget_alerts_once", postgresql_nulls_not_distinct=True),
    _in("provider", CREDIT_PROVIDERS),
    _in("threshold", BUDGET_ALERT_THRESHOLDS),
    sa.CheckConstraint(_FIRST_OF_MONTH, name="period_start_first_of_month"),
)

# Every operator alert (budget thresholds, accounts needing re-authorisation, posts failed for
# good): the row is the intent, written once per key before the message goes out; sent_at is
# the outcome. An alert whose send failed stays unsent and is retried by the next run.
alerts = sa.Table(
    "alerts",
    metadata,
    _id(),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    _created_at(),
    _ts("sent_at"),
    # The operators' chat's id of the message, when the sender returned one: the daily
    # report's reconciliation (reporting/report_send.py) must never edit an alert.
    sa.Column("remote_message_id", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("key", name="uq_alerts_key"),
)

# ---------------------------------------------------------------------------------------------
# The daily report (waifugen_assets/reporting, docs/analytics.md)
# ---------------------------------------------------------------------------------------------

# The daily Telegram report's two messages: each row is the intent, written (state `sending`
# committed) before its call; an answer lost on the way leaves `unknown`, which the next run
# settles by asking Telegram (never by sending again).
report_messages = sa.Table(
    "report_messages",
    metadata,
    _id(),
    sa.Column("report_date", sa.Date, nullable=False),
    sa.Column("part", sa.Text, nullable=False),
    sa.Column("chat_id", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="planned"),
    sa.Column("body", sa.Text, nullable=False),  # the HTML caption or message, as sent
    sa.Column("remote_message_id", sa.BigInteger, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("error", sa.Text, nullable=True),
    _created_at(),
    _updated_at(),
    _ts("sent_at"),
    sa.UniqueConstraint("report_date", "part"),
    _in("part", REPORT_PARTS),
    _in("state", REPORT_MESSAGE_STATES),
    *_nonneg("attempts"),
    sa.CheckConstraint("state <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
)

# ---------------------------------------------------------------------------------------------
# Operations (waifugen_assets/operations, docs/runbooks/)
# ---------------------------------------------------------------------------------------------

# One row per archive written by `waifugen backup create` (pg_dump -Fc of the app and the
# Dagster database, pg_dumpall --globals-only): its checksum, recorded when it was written, is
# what `verify` and `restore` check before anything is restored. A set (one `create`) shares
# its `set_id`; verification (a restore into a scratch database, row counts, the Alembic
# revision and sequence values compared) is recorded on each archive.
backups = sa.Table(
    "backups",
    metadata,
    _id(),
    sa.Column("set_id", sa.Text, nullable=False),  # UTC timestamp of the set, e.g. 20261205T060000Z
    sa.Column("database", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="running"),
    sa.Column("location", sa.Text, nullable=False),  # a local path or s3://bucket/key
    sa.Column("bytes", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.CHAR(64), nullable=True),
    sa.Column("server_version", sa.Text, nullable=True),
    sa.Column("alembic_revision", sa.Text, nullable=True),
    # Row counts and sequence values at dump time ({"tables": {...}, "sequences": {...}}).
    sa.Column("facts", postgresql.JSONB, nullable=False, server_default=_JSONB_OBJECT),
    sa.Column("error", sa.Text, nullable=True),
    _ts("started_at", nullable=False, server_default=sa.func.now()),
    _ts("finished_at"),
    _ts("verified_at"),
    sa.Column("verify_result", postgresql.JSONB, nullable=True),
    _ts("pruned_at"),
    _created_at(),
    sa.UniqueConstraint("set_id", "database"),
    sa.Index(None, "finished_at"),
    _in("database", BACKUP_DATABASES),
    _in("state", BACKUP_STATES),
    *_nonneg("bytes"),
    sa.CheckConstraint("sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
    sa.CheckConstraint("state <> 'done' OR (sha256 IS NOT NULL AND finished_at IS NOT NULL)",
                       name="done_has_checksum"),
)
