"""How each platform publishes one post: TikTok (init, upload, status), Instagram (container,
upload, publish) and YouTube (resumable session, upload), each resumable from its row, plus
TikTok's check after publishing. The shared machinery (the row as ledger, claims, errors,
retries) is flows.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from resources.http import HttpError, PermanentError, RateLimited, UnknownOutcome
from resources.instagram import ContainerCode, InstagramClient
from resources.tiktok import TikTokClient
from resources.youtube import (
    DEFAULT_CHUNK_SIZE,
    UNITS,
    QuotaLedger,
    SessionExpired,
    YouTubeClient,
    next_reset,
)
from resources.youtube_quota import UnitsGate
from waifugen_assets.core import clock, schema
from waifugen_assets.publishing.flows import (
    UPLOAD_URL_TTL,
    Deferred,
    Fatal,
    Ledger,
    PostJob,
    PostQuota,
    Retry,
    now_utc,
)


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
    # The one quota model (resources/youtube.py): every call the client makes is counted at
    # its real cost (videos.insert 1,600 or a bucket, reads 1, comments.insert 50).
    quota: QuotaLedger = field(default_factory=QuotaLedger)
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
        if not self.quota.fits("videos.insert", self.used(now)):
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

    # quota_usage: one row per project, bucket and Pacific day, counted before each call
    # (resources/youtube_quota.UnitsGate, which refuses a call that does not fit), so a slot
    # is deferred, not refused by YouTube. Reads and comment replies share the same rows.
    def __post_init__(self) -> None:
        self.units = UnitsGate(self.engine, self.quota_key, self.quota)

    def used(self, now: dt.datetime) -> dict[str, int]:
        """Today's spend per bucket of the quota model."""
        return self.units.used(now)

    def units_used(self, now: dt.datetime) -> int:
        return self.used(now)[UNITS]

    def spend(self, operation: str) -> None:
        """The client's on_quota: one call of `operation`, at its cost in every bucket."""
        self.units(operation)


def verify_tiktok(engine: sa.Engine, client: TikTokClient, character_id: str, day: object,
                  alert: Callable[[str, str], None] | None = None) -> dict[str, int]:
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
                alert(f"post_failed:{row.id}", f"{character_id}: reel {row.reel_id}: {reason}")
    return {"checked": len(rows), "public_ids": found, "failed_after_publish": failed}
