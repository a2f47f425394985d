"""Publishing reels to TikTok, Instagram and YouTube, exactly once (docs/publishing.md).

One `social_posts` row per reel x platform is the ledger, as `reels` is for rendering:
1. the row (state `planned`, ai_disclosure true) exists before anything is sent;
2. before each call that creates something remotely the state says so (`initiated`);
3. the remote handle (TikTok publish_id, Instagram container id, YouTube session URI) and what
   a resume needs (`remote_state`) are committed the moment the platform returns them;
4. a rerun resumes from the row; an unknown outcome is settled by asking the platform
   (TikTok `status`, Instagram `container_status` + `find_media`, YouTube probe /
   `find_upload`) before anything is sent again.

Errors: AuthError -> one refresh through the vault, then one retry (then `needs_reauth`);
deferrable quota errors -> `deferred` with next_attempt_at; RateLimited -> stays where it is,
retried later; PermanentError -> `failed_permanent` with the platform's reason; anything
retryable -> `failed_retryable`, retried by the next run. One post's failure never stops the
others (the caller loops over posts, each isolated).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from resources.http import (
    AuthError,
    HttpError,
    PermanentError,
    RateLimited,
    RateLimitStore,
    UnknownOutcome,
)
from waifugen_assets.core import clock, schema
from waifugen_assets.core.claims import Claims
from waifugen_assets.core.config import ConfigError
from waifugen_assets.core.tokens import TokenError, TokenSet, TokenVault

DONE = ("published", "failed_permanent", "skipped")
# Nothing of the post has reached the platform in these: a stale slot may be skipped.
NOT_STARTED = ("planned", "deferred")
WAITING = ("deferred", "failed_retryable")  # retried once next_attempt_at has passed
UPLOAD_URL_TTL = dt.timedelta(minutes=55)  # TikTok's upload_url lives an hour
_HOLD = object()


def now_utc() -> dt.datetime:
    return clock.now()


@dataclass(frozen=True)
class PostJob:
    reel_id: int
    character_id: str
    platform: str
    content_rating: str
    plan: Mapping[str, Any]
    video: Path
    public_url: str | None = None
    scheduled_at: dt.datetime | None = None

    @property
    def marker(self) -> str:
        """Put in the caption / description: finds the post again after a lost answer."""
        return f"wg-r{self.reel_id}"

    @property
    def texts(self) -> Mapping[str, Any]:
        return (self.plan.get("platforms") or {}).get(self.platform) or {}


class Deferred(Exception):  # a control-flow signal, not an error
    def __init__(self, reason: str, until: dt.datetime) -> None:
        super().__init__(reason)
        self.until = until


class Retry(Exception):  # the attempt failed but nothing is lost: retry later
    pass


class Fatal(Exception):  # this post can never be published as it is
    pass


@dataclass(frozen=True)
class PostQuota:
    """A per-account posting quota counted in quota_usage *before* the call (DESIGN.md §6):
    a spent quota defers the slot instead of being discovered by a refused request."""

    store: RateLimitStore
    key: str  # e.g. "posts:<platform account id>"
    limit: int
    period: float = 86400.0

    def take(self, what: str) -> None:
        wait, _ = self.store.try_take(self.key, self.limit, self.period, 1, clock.timestamp())
        if wait > 0:
            raise Deferred(f"{what}: {self.limit} per {int(self.period)} s spent",
                           now_utc() + dt.timedelta(seconds=wait))


class TokenSource:
    """The access token a client asks for on every request; refreshed once after a 401."""

    def __init__(self, vault: TokenVault, character_id: str, platform: str,
                 refresher: Callable[[str], TokenSet]) -> None:
        self.vault, self.character_id, self.platform = vault, character_id, platform
        self.refresher = refresher
        self._token: str | None = None

    def __call__(self) -> str:
        if self._token is None:
            self._token = self.vault.access_token(self.character_id, self.platform,
                                                  self.refresher)
        return self._token

    def refresh(self) -> None:
        self._token = self.vault.refresh(self.character_id, self.platform, self.refresher,
                                         stale=self._token)


@dataclass
class PublishOutcome:
    states: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, platform: str, state: str, key: str, reason: str | None) -> None:
        per = self.states.setdefault(platform, {})
        per[state] = per.get(state, 0) + 1
        if reason and state != "published":
            self.reasons[key] = reason

    def totals(self) -> dict[str, int]:
        """Posts of this run by state, every platform together."""
        out: dict[str, int] = {}
        for per in self.states.values():
            for state, n in per.items():
                out[state] = out.get(state, 0) + n
        return out


# --- the ledger ----------------------------------------------------------------------------------

class Ledger:
    """Row updates of one social_posts row; each commits at once (the intent survives)."""

    def __init__(self, engine: sa.Engine, post_id: int) -> None:
        self.engine, self.post_id = engine, post_id

    def row(self) -> dict[str, Any]:
        sp = schema.social_posts
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(sp).where(sp.c.id == self.post_id))
                        .mappings().one())

    def set(self, **values: Any) -> None:
        sp = schema.social_posts
        with self.engine.begin() as conn:
            conn.execute(sa.update(sp).where(sp.c.id == self.post_id)
                         .values(**values, updated_at=sa.func.now()))

    def intent(self, state: str = "initiated") -> None:
        """Recorded before a call that may create something remotely."""
        self.set(state=state, attempts=schema.social_posts.c.attempts + 1, last_error=None,
                 error_class=None, next_attempt_at=None)

    def handle(self, handle: str, remote_state: dict[str, Any], state: str = "initiated") -> None:
        self.set(state=state, remote_handle=handle, remote_state=remote_state)

    def published(self, post_id: str | None, permalink: str | None) -> None:
        # The pipeline's clock (a simulation's too); the first engagement reading is due an
        # hour after publication (waifugen_assets/engagement).
        at = now_utc()
        self.set(state="published", remote_post_id=post_id, permalink=permalink,
                 published_at=at, last_error=None, error_class=None, next_attempt_at=None,
                 metrics_checkpoint=0, metrics_next_at=at + dt.timedelta(hours=1))


def ensure_post(engine: sa.Engine, reel_id: int, platform: str, account_id: int) -> int:
    """The post's row, created `planned` (with its disclosure) before anything is sent."""
    sp = schema.social_posts
    with engine.begin() as conn:
        conn.execute(insert(sp).values(reel_id=reel_id, platform=platform,
                                       account_id=account_id, state="planned",
                                       ai_disclosure=True)
                     .on_conflict_do_nothing(index_elements=[sp.c.reel_id, sp.c.platform]))
        return int(conn.scalar(sa.select(sp.c.id).where(sp.c.reel_id == reel_id,
                                                        sp.c.platform == platform)))


# --- the platforms -------------------------------------------------------------------------------

# --- one post, classified ------------------------------------------------------------------------

class Flow(Protocol):
    """One platform's way to publish a post (publishing/platform_flows.py)."""

    def run(self, job: PostJob, ledger: Ledger) -> None: ...


ELSEWHERE = "elsewhere"  # publish_post's state for a post another process holds


def publish_post(engine: sa.Engine, job: PostJob, post_id: int, flow: Flow,
                 tokens: TokenSource, vault: TokenVault,
                 now: Callable[[], dt.datetime] = now_utc,
                 alert: Callable[[str, str], None] | None = None,
                 claims: Claims | None = None,
                 stale_before: dt.datetime | None = None,
                 post_late: bool = False) -> tuple[str, str | None]:
    """Run one post's flow once (twice after a refreshed token); returns (state, reason).

    With `claims`, the post is claimed first (claims.py): a post another process is working
    on is left alone and reported as ELSEWHERE. `stale_before`: a slot earlier than this is
    stale, and a post of it that has not started is recorded `skipped` instead of sent;
    `post_late` sends a stale slot anyway (and reopens one skipped before).
    `alert` hears of a post that failed for good and of an account that needs
    re-authorisation, once each (the transitions happen once)."""
    if claims is not None and not claims.take("post", post_id):
        return ELSEWHERE, "being published by another run"
    try:
        return _publish_claimed(engine, job, post_id, flow, tokens, vault, now, alert,
                                None if post_late else stale_before, post_late)
    finally:
        if claims is not None:
            claims.release("post", post_id)


def _publish_claimed(engine: sa.Engine, job: PostJob, post_id: int, flow: Flow,
                     tokens: TokenSource, vault: TokenVault, now: Callable[[], dt.datetime],
                     alert: Callable[[str, str], None] | None, stale_before: dt.datetime | None,
                     post_late: bool) -> tuple[str, str | None]:
    ledger = Ledger(engine, post_id)
    row = ledger.row()  # read after the claim: what another process did is visible
    if post_late and row["state"] == "skipped":
        ledger.set(state="planned", last_error=None)
        row = ledger.row()
    if (stale_before is not None and job.scheduled_at is not None
            and job.scheduled_at < stale_before and row["state"] in NOT_STARTED):
        late = now() - job.scheduled_at
        reason = (f"stale: its slot ({job.scheduled_at:%Y-%m-%d %H:%M} UTC) was "
                  f"{late.total_seconds() / 3600:.1f} h ago; not posted (post late to send it)")
        ledger.set(state="skipped", last_error=reason, error_class=None, next_attempt_at=None)
        return "skipped", reason
    if row["state"] in DONE:
        return row["state"], row["last_error"]
    if row["state"] in WAITING and row["next_attempt_at"] and row["next_attempt_at"] > now():
        return row["state"], row["last_error"]
    if job.content_rating != "general":
        reason = (f"content_rating {job.content_rating!r}: only general-audience reels go to "
                  "social platforms")
        ledger.set(state="failed_permanent", last_error=reason, error_class="permanent")
        return "failed_permanent", reason
    attempt = _start_attempt(engine, post_id)
    outcome, reason = "success", None
    try:
        for refreshed in (False, True):
            try:
                flow.run(job, ledger)
                break
            except AuthError as exc:
                if refreshed or isinstance(exc, PermanentError):
                    raise
                tokens.refresh()  # one refresh through the vault, then one retry
    except Deferred as exc:
        outcome, reason = "rate_limited", str(exc)
        ledger.set(state="deferred", next_attempt_at=exc.until, last_error=reason,
                   error_class="rate_limited")
    except Fatal as exc:
        outcome, reason = "permanent", str(exc)
        ledger.set(state="failed_permanent", last_error=reason, error_class="permanent")
    except Retry as exc:
        outcome, reason = "retryable", str(exc)
        _retry_later(ledger, reason, "retryable", now())
    except ConfigError:  # e.g. a token that does not decrypt: stop the run, blame no account
        _finish_attempt(engine, post_id, attempt, "retryable", "configuration error")
        raise
    except AuthError as exc:  # the platform's own answer: only this marks an account
        outcome, reason = "auth", f"{job.platform} authorisation failed: {exc}"
        if vault.mark_needs_reauth(job.character_id, job.platform) and alert:
            alert(f"needs_reauth:{job.character_id}:{job.platform}:{post_id}",
                  f"{job.character_id}: the {job.platform} account needs re-authorisation "
                  f"({exc}). Posts wait until `waifugen tokens set` stores a new token.")
        _retry_later(ledger, reason, "auth", now() + dt.timedelta(hours=1))
    except TokenError as exc:  # nothing stored to try: the account was never authorised
        outcome, reason = "auth", f"{job.platform}: {exc}"
        _retry_later(ledger, reason, "auth", now() + dt.timedelta(hours=1))
    except RateLimited as exc:
        outcome, reason = "rate_limited", f"{job.platform} rate limit: {exc}"
        _retry_later(ledger, reason, "rate_limited",
                     now() + dt.timedelta(seconds=exc.retry_after or 60))
    except PermanentError as exc:
        if getattr(exc, "deferrable", False):
            outcome, reason = "rate_limited", f"{job.platform} quota: {exc.reason or exc}"
            until = getattr(exc, "resume_at", None) or now() + dt.timedelta(hours=24)
            ledger.set(state="deferred", next_attempt_at=until, last_error=reason,
                       error_class="rate_limited", remote_state={}, remote_handle=None)
        else:
            outcome, reason = "permanent", f"{job.platform} refused: {exc.reason or exc}"
            ledger.set(state="failed_permanent", last_error=reason[:1000],
                       error_class="permanent")
    except UnknownOutcome as exc:
        outcome, reason = "unknown", f"{job.platform}: outcome unknown, reconciled next run: {exc}"
        ledger.set(state="unknown", last_error=reason[:1000], error_class="unknown")
    except (HttpError, ValueError, OSError) as exc:
        outcome, reason = "retryable", f"{job.platform}: {exc}"
        _retry_later(ledger, reason, "retryable", now())
    _finish_attempt(engine, post_id, attempt, outcome, reason)
    if outcome == "success":  # the platform took the token: the account is fine again
        vault.mark_active(job.character_id, job.platform)
    final = ledger.row()
    if final["state"] == "failed_permanent" and alert:
        alert(f"post_failed:{post_id}",
              f"{job.character_id}: reel {job.reel_id} was not published on {job.platform}: "
              f"{reason}")
    return final["state"], reason


def _retry_later(ledger: Ledger, reason: str, error_class: str, at: dt.datetime) -> None:
    """A saved handle stays in remote_state, so the next run resumes it rather than resend."""
    ledger.set(state="failed_retryable", last_error=reason[:1000], error_class=error_class,
               next_attempt_at=at)


def _start_attempt(engine: sa.Engine, post_id: int) -> int:
    pa = schema.post_attempts
    with engine.begin() as conn:
        n = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(pa.c.attempt), 0))
                            .where(pa.c.post_id == post_id))) + 1
        conn.execute(insert(pa).values(post_id=post_id, attempt=n))
    return n


def _finish_attempt(engine: sa.Engine, post_id: int, attempt: int, outcome: str,
                    error: str | None) -> None:
    pa = schema.post_attempts
    with engine.begin() as conn:
        conn.execute(sa.update(pa).where(pa.c.post_id == post_id, pa.c.attempt == attempt)
                     .values(finished_at=sa.func.now(), outcome=outcome,
                             error=None if error is None else error[:1000]))


#END
