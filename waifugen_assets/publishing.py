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
from typing import Any

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
from resources.instagram import ContainerCode, InstagramClient
from resources.oauth import TokenSet
from resources.tiktok import TikTokClient
from resources.youtube import DEFAULT_CHUNK_SIZE, SessionExpired, YouTubeClient, next_reset
from waifugen_assets import clock, schema
from waifugen_assets.claims import Claims
from waifugen_assets.config import ConfigError
from waifugen_assets.tokens import TokenError, TokenVault

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
        self.set(state="published", remote_post_id=post_id, permalink=permalink,
                 published_at=sa.func.now(), last_error=None, error_class=None,
                 next_attempt_at=None)


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

@dataclass
class TikTokFlow:
    client: TikTokClient
    privacy_level: str = "PUBLIC_TO_EVERYONE"
    daily_posts: PostQuota | None = None  # the account's accepted inits per day
    max_polls: int = 30
    poll_interval: float = 0.0
    sleep: Callable[[float], None] = clock.sleep

    def run(self, job: PostJob, ledger: Ledger) -> None:
        row = ledger.row()
        rs = dict(row["remote_state"] or {})
        size = job.video.stat().st_size
        if not rs.get("publish_id") or _stale_upload(rs, size):
            rs = self._init(job, ledger, size)
        status = self.client.status(rs["publish_id"])  # settles any earlier doubt
        if not status.terminal and (status.uploaded_bytes or 0) < size:
            chunks = [tuple(c) for c in rs["chunks"]]
            try:
                self.client.upload(rs["upload_url"], job.video, chunks,
                                   start_at=status.uploaded_bytes or 0)
            except PermanentError as exc:  # e.g. the upload URL expired: this publish is dead
                ledger.set(remote_state={}, remote_handle=None)
                raise Retry(f"tiktok upload refused, will init again: {exc}") from exc
            ledger.set(state="uploaded")
        for poll in range(self.max_polls):
            if status.terminal:
                break
            if poll:
                self.sleep(self.poll_interval)
            status = self.client.status(rs["publish_id"])
        if not status.terminal:
            ledger.set(state="processing")
            raise Retry(f"tiktok publish {rs['publish_id']} still {status.status}")
        if status.published:
            ledger.published(status.post_ids[0] if status.post_ids else None, None)
            return
        reason = status.fail_reason or "unknown"
        ledger.set(remote_state={}, remote_handle=None)  # a new init is needed either way
        if status.deferrable:
            raise Deferred(f"tiktok quota: {reason}", now_utc() + dt.timedelta(hours=24))
        raise Fatal(f"tiktok failed the post: {reason}")

    def _init(self, job: PostJob, ledger: Ledger, size: int) -> dict[str, Any]:
        title = str(job.texts.get("title") or "")
        if self.daily_posts is not None:
            self.daily_posts.take("tiktok daily post cap")
        for attempt in range(2):
            ledger.intent()
            try:
                init = self.client.init_direct_post(title, size, privacy_level=self.privacy_level,
                                                    is_aigc=True)
            except (UnknownOutcome, RateLimited) as exc:
                # Nothing can publish without the upload URL that answer carried: init again.
                if isinstance(exc, RateLimited) or attempt:
                    raise
                continue
            rs = {"publish_id": init.publish_id, "upload_url": init.upload_url,
                  "chunks": [list(c) for c in init.chunks], "initiated_at": now_utc().isoformat()}
            ledger.handle(init.publish_id, rs)
            return rs
        raise AssertionError("unreachable")


def _stale_upload(rs: Mapping[str, Any], size: int) -> bool:
    started = rs.get("initiated_at")
    if not started or rs.get("uploaded"):
        return False
    return now_utc() - dt.datetime.fromisoformat(started) > UPLOAD_URL_TTL and size > 0


@dataclass
class InstagramFlow:
    client: InstagramClient
    resumable: bool = True
    daily_publishes: PostQuota | None = None  # our own count, next to the live limit read
    max_polls: int = 30
    poll_interval: float = 0.0
    sleep: Callable[[float], None] = clock.sleep

    def caption(self, job: PostJob) -> str:
        caption = str(job.texts.get("caption") or "")
        return f"{caption}\n{job.marker}"

    def run(self, job: PostJob, ledger: Ledger) -> None:
        row = ledger.row()
        rs = dict(row["remote_state"] or {})
        if rs.get("container_id"):
            status = self.client.container_status(rs["container_id"])
            if status.code is ContainerCode.PUBLISHED:  # the lost publish went through
                self._found(job, ledger)
                return
            if status.code in (ContainerCode.EXPIRED, ContainerCode.ERROR):
                rs = {}  # a new container
        if not rs.get("container_id"):
            rs = self._create(job, ledger)
        if rs.get("upload_uri") and not rs.get("uploaded"):
            self.client.upload_resumable(rs["upload_uri"], job.video)
            rs["uploaded"] = True
            ledger.set(state="uploaded", remote_state=rs)
        status = self.client.container_status(rs["container_id"])
        for _ in range(self.max_polls):
            if status.terminal:
                break
            self.sleep(self.poll_interval)
            status = self.client.container_status(rs["container_id"])
        if status.code is ContainerCode.PUBLISHED:
            self._found(job, ledger)
            return
        if status.code is not ContainerCode.FINISHED:
            if status.code is ContainerCode.IN_PROGRESS:
                ledger.set(state="processing")
                raise Retry(f"instagram container {rs['container_id']} still in progress")
            ledger.set(remote_state={}, remote_handle=None)
            if status.code is ContainerCode.ERROR and not status.retryable:
                raise Fatal(f"instagram refused the video: {status.message}")
            raise Retry(f"instagram container {status.code.value}: {status.message}")
        ledger.set(state="processing")
        quota = self.client.publishing_limit()
        if quota.remaining <= 0:
            raise Deferred("instagram publishing limit reached",
                           now_utc() + dt.timedelta(seconds=quota.window_s))
        if self.daily_publishes is not None and not rs.get("publish_counted"):
            self.daily_publishes.take("instagram publishing limit")
            rs["publish_counted"] = True  # a retried publish of this container is not new
            ledger.set(remote_state=rs)
        try:
            media_id = self.client.publish(rs["container_id"])
        except UnknownOutcome:
            ledger.set(state="unknown")
            # Settle it now: PUBLISHED means it went through, FINISHED that it did not.
            if self.client.container_status(rs["container_id"]).code is ContainerCode.PUBLISHED:
                self._found(job, ledger)
                return
            raise
        media = self.client.media(media_id)
        ledger.published(media.id, media.permalink)

    def _create(self, job: PostJob, ledger: Ledger) -> dict[str, Any]:
        quota = self.client.publishing_limit()
        if quota.remaining <= 0:
            raise Deferred("instagram publishing limit reached",
                           now_utc() + dt.timedelta(seconds=quota.window_s))
        for attempt in range(2):
            ledger.intent()
            try:
                if self.resumable or not job.public_url:
                    container = self.client.create_reel_container(self.caption(job),
                                                                  resumable=True)
                else:
                    container = self.client.create_reel_container(self.caption(job),
                                                                  video_url=job.public_url)
            except UnknownOutcome:
                if attempt:  # a container is not a post: a lost one just expires
                    raise
                continue
            rs = {"container_id": container.id, "upload_uri": container.upload_uri}
            ledger.handle(container.id, rs)
            return rs
        raise AssertionError("unreachable")

    def _found(self, job: PostJob, ledger: Ledger) -> None:
        media = self.client.find_media(job.marker)
        if media is None:
            ledger.set(state="unknown")
            raise Retry(f"instagram container published but {job.marker} not found yet")
        ledger.published(media.id, media.permalink)


@dataclass
class YouTubeFlow:
    engine: sa.Engine
    quota_key: str  # the API project (client id): quota is per project
    insert_units: int = 1600
    daily_units: int = 10_000
    chunk_size: int = DEFAULT_CHUNK_SIZE
    client: YouTubeClient | None = None  # set after: its on_quota is this flow's `spend`

    def metadata(self, job: PostJob) -> tuple[dict[str, Any], dict[str, Any]]:
        texts = job.texts
        description = f"{texts.get('description') or ''}\n{job.marker}"
        snippet = {"title": str(texts.get("title") or "Short"), "description": description,
                   "categoryId": "22"}
        status = {"privacyStatus": "public", "selfDeclaredMadeForKids": False,
                  "containsSyntheticMedia": True}
        return snippet, status

    def run(self, job: PostJob, ledger: Ledger) -> None:
        assert self.client is not None
        row = ledger.row()
        rs = dict(row["remote_state"] or {})
        if not rs.get("session_uri"):
            rs = self._start(job, ledger)
        try:
            video = self.client.upload(rs["session_uri"], job.video, chunk_size=self.chunk_size)
        except SessionExpired:
            found = self.client.find_upload(job.marker)
            if found is not None:  # it finished before the session expired
                ledger.published(found.id, found.shorts_url)
                return
            ledger.set(remote_state={}, remote_handle=None)
            raise Retry("youtube upload session expired before the upload finished") from None
        if video.failed:
            raise Fatal(f"youtube {video.upload_status}: "
                        f"{video.failure_reason or video.rejection_reason or 'no reason'}")
        ledger.published(video.id, video.shorts_url)

    def _start(self, job: PostJob, ledger: Ledger) -> dict[str, Any]:
        now = now_utc()
        if self.units_used(now) + self.insert_units > self.daily_units:
            raise Deferred("youtube daily quota spent", next_reset(now))
        assert self.client is not None
        snippet, status = self.metadata(job)
        size = job.video.stat().st_size
        for attempt in range(2):
            ledger.intent()
            try:
                session = self.client.start_upload(snippet, status, size)
            except UnknownOutcome:
                if attempt:  # a session only becomes a video with its last byte
                    raise
                continue
            rs = {"session_uri": session, "size": size}
            ledger.handle(session, rs)
            return rs
        raise AssertionError("unreachable")

    # quota_usage: one row per project and Pacific day, so a slot is deferred, not failed.
    def window(self, now: dt.datetime) -> dt.datetime:
        return next_reset(now) - dt.timedelta(days=1)

    def units_used(self, now: dt.datetime) -> int:
        q = schema.quota_usage
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(q.c.units).where(
                q.c.platform == "youtube", q.c.account_key == self.quota_key,
                q.c.window_kind == "day", q.c.window_start == self.window(now))) or 0)

    def spend(self, operation: str) -> None:
        units = self.insert_units if operation == "videos.insert" else 1
        q = schema.quota_usage
        stmt = insert(q).values(platform="youtube", account_key=self.quota_key,
                                window_kind="day", window_start=self.window(now_utc()),
                                units=units)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(
                constraint="uq_quota_usage_window",
                set_={"units": q.c.units + units, "updated_at": sa.func.now()}))


# --- one post, classified ------------------------------------------------------------------------

Flow = TikTokFlow | InstagramFlow | YouTubeFlow


ELSEWHERE = "elsewhere"  # publish_post's state for a post another process holds


def publish_post(engine: sa.Engine, job: PostJob, post_id: int, flow: Flow,
                 tokens: TokenSource, vault: TokenVault,
                 now: Callable[[], dt.datetime] = now_utc,
                 alert: Callable[[str], None] | None = None,
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
                     alert: Callable[[str], None] | None, stale_before: dt.datetime | None,
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
            alert(f"{job.character_id}: the {job.platform} account needs re-authorisation "
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
        alert(f"{job.character_id}: reel {job.reel_id} was not published on {job.platform}: "
              f"{reason}")
    return final["state"], reason


def verify_tiktok(engine: sa.Engine, client: TikTokClient, character_id: str, day: object,
                  alert: Callable[[str], None] | None = None) -> dict[str, int]:
    """After publishing: TikTok gives the public post id only after moderation, and a post it
    accepted can still end FAILED. Ask again for the partition's published posts that have no
    public id yet; record the id, or report the failure."""
    sp, r = schema.social_posts, schema.reels
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sp.c.id, sp.c.reel_id, sp.c.remote_handle)
                            .join(r, r.c.id == sp.c.reel_id)
                            .where(r.c.character_id == character_id, r.c.date == day,
                                   sp.c.platform == "tiktok", sp.c.state == "published",
                                   sp.c.remote_post_id.is_(None),
                                   sp.c.remote_handle.is_not(None))).all()
    found = failed = 0
    for row in rows:
        try:
            status = client.status(row.remote_handle)
        except HttpError:  # asked again on the next run
            continue
        ledger = Ledger(engine, row.id)
        if status.post_ids:
            ledger.set(remote_post_id=status.post_ids[0])
            found += 1
        elif status.failed:
            reason = f"tiktok failed the post after accepting it: {status.fail_reason}"
            ledger.set(state="failed_permanent", last_error=reason, error_class="permanent")
            failed += 1
            if alert:
                alert(f"{character_id}: reel {row.reel_id}: {reason}")
    return {"checked": len(rows), "public_ids": found, "failed_after_publish": failed}


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


def seed_sandbox_tokens(vault: TokenVault, suffix: str = "") -> list[tuple[str, str]]:
    """Sandbox only: give every publish account without a token its sandbox token, so
    `make run` publishes. YouTube gets an expired access token: the first use refreshes."""
    pa = schema.platform_accounts
    with vault.engine.connect() as conn:
        rows = conn.execute(sa.select(pa.c.character_id, pa.c.platform).where(
            pa.c.platform.in_(schema.SOCIAL_PLATFORMS), pa.c.access_token_enc.is_(None))).all()
    seeded = []
    for cid, platform in rows:
        account = f"{cid}{suffix}"
        if platform == "tiktok":
            tokens = TokenSet(f"act.sandbox.{account}", f"rft.sandbox.{account}", 7200, 86400)
        elif platform == "instagram":
            token = f"IGAAsandbox{account.replace('-', '')}"
            tokens = TokenSet(token, token, 60 * 86400, 60 * 86400)
        else:
            tokens = TokenSet(f"ya29.expired-{account}", f"1//sandbox-{account}", -60, None)
        with vault.engine.begin() as conn:
            vault.save(conn, cid, platform, tokens)
        seeded.append((cid, platform))
    return seeded
