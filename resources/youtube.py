"""YouTube Data API v3: resumable uploads, reads of one's own videos, quota ledger, OAuth;
engagement reads and comment replies come from the mixin in resources.youtube_reads, and
resources.youtube_quota's UnitsGate counts (or refuses) every call's units before it is sent.

A typed client over the shared HTTP layer (PROTOCOLS.md section 3). The access token comes
from a callable asked on every request, so a refreshed token is picked up at once.

Exactly once (DESIGN.md section 6):
- `start_upload` (videos.insert, a POST) creates an upload session and is never resent. Save
  the returned session URI before anything else. A session only becomes a video when its last
  byte arrives, so when `start_upload` itself fails with UnknownOutcome or RetryableError no
  video can exist: starting another session is safe (it costs quota again; an orphaned
  session simply expires).
- `upload` sends the file in chunks (multiples of 256 KiB, read from disk one piece at a time:
  constant memory). It first probes the session, so calling it again after a crash resumes
  where the session stands. After any failed chunk (5xx, dropped connection, lost answer) it
  probes (`Content-Range: bytes */total`, a read, retried) and continues from the Range the
  session reports; a lost answer to the last chunk is found by that probe as the finished
  video. 404/410 on the session raises SessionExpired.
- After SessionExpired the upload may still have finished before the session expired: look
  for the marker you put in the title or description with `find_upload` (uploads playlist,
  newest first) before starting a new session.

Errors: 401 -> AuthError (refresh once via `refresh_token`, then retry); 403 quotaExceeded and
400 uploadLimitExceeded -> QuotaExceeded, a PermanentError with `deferrable = True` and
`resume_at` (the next Pacific midnight): defer the slot, do not fail it; 403
rate/userRateLimitExceeded and 429 -> RateLimited; 5xx -> retryable; a revoked refresh
token -> InvalidGrant (both AuthError and PermanentError: re-authorise, refreshing again is
pointless). `QuotaLedger` is the pure arithmetic to consult before starting an upload.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
from pydantic import Field

from resources.http import (
    BODY_FACTORY,
    IDEMPOTENT,
    AuthError,
    InvalidResponse,
    Kind,
    Outcome,
    OwnsHttpClient,
    PermanentError,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
    classify_status,
    error_for,
    file_range,
    header_retry_after,
    json_body,
    json_int,
    json_request,
    make_client,
    parse_json_object,
    reason_from_body,
)
from resources.youtube_reads import YouTubeReads
from waifugen_assets.core import clock
from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.core.redaction import register_secret
from waifugen_assets.core.tokens import TokenSet

SYSTEM = "youtube"
PRODUCTION_URL = "https://www.googleapis.com"
PRODUCTION_TOKEN_URL = "https://oauth2.googleapis.com"  # noqa: S105 - a URL
UPLOAD_PATH = "/upload/youtube/v3/videos"
CHUNK_UNIT = 256 * 1024  # every chunk but the last is a multiple of this
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
TITLE_MAX = 100
DESCRIPTION_MAX_BYTES = 5000
PACIFIC = ZoneInfo("America/Los_Angeles")  # YouTube quotas reset at midnight Pacific
SANDBOX_CLIENT_ID = "waifugen-sandbox.apps.googleusercontent.com"
SANDBOX_CLIENT_SECRET = "GOCSPX-sandbox-waifugen"  # noqa: S105 - sandbox only
SANDBOX_REFRESH_PREFIX = "1//sandbox"  # + [A-Za-z0-9_-]*: a valid grant in the sandbox
DEFERRABLE_REASONS = frozenset({"quotaExceeded", "uploadLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_RANGE = re.compile(r"bytes=0-(\d+)")


# --- errors ------------------------------------------------------------------------------------

class QuotaExceeded(PermanentError):
    """The project's daily quota or the channel's daily uploads are spent: defer the slot
    to `resume_at` (the next midnight Pacific), do not fail it."""

    deferrable = True

    def __init__(self, message: str, *, reason: str, status: int | None,
                 resume_at: dt.datetime) -> None:
        super().__init__(message, system=SYSTEM, status=status, reason=reason)
        self.quota_reason = reason.split(":", 1)[0]  # quotaExceeded | uploadLimitExceeded
        self.resume_at = resume_at


class SessionExpired(PermanentError):
    """The upload session is unknown or expired (404/410): reconcile with `find_upload`,
    then start a new session."""


class VideoNotFound(PermanentError):
    """No such video, or not visible to this channel."""


class InvalidGrant(AuthError, PermanentError):
    """The refresh token is revoked or expired: the account must be authorised again."""


# --- values ------------------------------------------------------------------------------------



@dataclass(frozen=True)
class VideoStatistics:
    view_count: int | None
    like_count: int | None
    comment_count: int | None
    favorite_count: int | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> VideoStatistics:
        """YouTube sends the counts as strings; a hidden count is absent (None)."""
        return cls(json_int(raw.get("viewCount")), json_int(raw.get("likeCount")),
                   json_int(raw.get("commentCount")), json_int(raw.get("favoriteCount")))


@dataclass(frozen=True)
class Video:
    """A video resource as YouTube reports it (fields of parts not requested are None)."""

    id: str
    title: str | None = None
    description: str | None = None
    channel_id: str | None = None
    published_at: str | None = None
    privacy_status: str | None = None
    upload_status: str | None = None  # uploaded, processed, failed, rejected, deleted
    failure_reason: str | None = None
    rejection_reason: str | None = None
    contains_synthetic_media: bool | None = None
    self_declared_made_for_kids: bool | None = None
    made_for_kids: bool | None = None
    statistics: VideoStatistics | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"https://www.youtube.com/watch?v={self.id}"

    @property
    def shorts_url(self) -> str:
        return f"https://www.youtube.com/shorts/{self.id}"

    @property
    def failed(self) -> bool:
        """Accepted, then failed processing or rejected (or deleted): report it."""
        return self.upload_status in ("failed", "rejected", "deleted")

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> Video:
        snippet = item.get("snippet") if isinstance(item.get("snippet"), dict) else {}
        status = item.get("status") if isinstance(item.get("status"), dict) else {}
        stats = item.get("statistics")
        return cls(
            id=str(item["id"]), title=snippet.get("title"),
            description=snippet.get("description"), channel_id=snippet.get("channelId"),
            published_at=snippet.get("publishedAt"),
            privacy_status=status.get("privacyStatus"), upload_status=status.get("uploadStatus"),
            failure_reason=status.get("failureReason"),
            rejection_reason=status.get("rejectionReason"),
            contains_synthetic_media=status.get("containsSyntheticMedia"),
            self_declared_made_for_kids=status.get("selfDeclaredMadeForKids"),
            made_for_kids=status.get("madeForKids"),
            statistics=VideoStatistics.parse(stats) if isinstance(stats, dict) else None,
            raw=item)


@dataclass(frozen=True)
class UploadProgress:
    """What a session probe says: bytes stored so far, or the finished video."""

    received_bytes: int
    video: Video | None = None

    @property
    def complete(self) -> bool:
        return self.video is not None


# --- quota ledger (pure) -------------------------------------------------------------------

class QuotaModel(StrEnum):
    CLASSIC = "classic"  # one bucket of 10,000 units a day; videos.insert costs 1600
    BUCKETS = "buckets"  # videos.insert and search.list: own buckets of 100 calls a day


UNITS, INSERTS, SEARCHES = "units", "inserts", "searches"
# Units per call in the classic cost table (developers.google.com/youtube/v3/determine_quota_cost).
CLASSIC_COSTS: Mapping[str, int] = {
    "videos.insert": 1600, "videos.list": 1, "videos.update": 50, "videos.delete": 50,
    "channels.list": 1, "playlistItems.list": 1, "search.list": 100,
    "commentThreads.list": 1, "commentThreads.insert": 50, "comments.list": 1,
    "comments.insert": 50, "thumbnails.set": 50,
}


@dataclass(frozen=True)
class QuotaSpend:
    """One quota-costing call the caller made (persist these, per API project)."""

    at: dt.datetime  # timezone-aware
    operation: str  # e.g. "videos.insert"


def quota_day(now: dt.datetime) -> dt.date:
    """The quota day `now` falls in: the calendar date in Pacific time."""
    if now.tzinfo is None:
        raise ValueError("quota arithmetic needs a timezone-aware datetime")
    return now.astimezone(PACIFIC).date()


def next_reset(now: dt.datetime) -> dt.datetime:
    """The next midnight Pacific after `now` (in UTC), when daily quotas refill."""
    tomorrow = quota_day(now) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0), tzinfo=PACIFIC).astimezone(dt.UTC)


@dataclass(frozen=True)
class QuotaLedger:
    """YouTube's daily quota arithmetic under either cost model; no I/O, no clock. The one
    quota model: publishing (waifugen_assets/publishing/platform_flows.py) counts every call
    the client reports through `on_quota` at `cost(operation)` and asks `fits` before an upload.

    Callers keep either the spends (`used`/`can_afford`/`defer_until`) or running totals per
    bucket (`left`/`fits`); if an upload does not fit, it waits for `next_reset`.
    """

    model: QuotaModel = QuotaModel.CLASSIC
    daily_units: int = 10_000
    insert_units: int = 1600  # classic model
    daily_inserts: int = 100  # buckets model
    daily_searches: int = 100  # buckets model

    def cost(self, operation: str) -> dict[str, int]:
        """Units taken from each bucket by one call of `operation`."""
        if self.model is QuotaModel.BUCKETS and operation == "videos.insert":
            return {INSERTS: 1}
        if self.model is QuotaModel.BUCKETS and operation == "search.list":
            return {SEARCHES: 1}
        if operation == "videos.insert":
            return {UNITS: self.insert_units}
        return {UNITS: CLASSIC_COSTS.get(operation, 1)}

    def limits(self) -> dict[str, int]:
        if self.model is QuotaModel.BUCKETS:
            return {UNITS: self.daily_units, INSERTS: self.daily_inserts,
                    SEARCHES: self.daily_searches}
        return {UNITS: self.daily_units}

    def used(self, spends: Iterable[QuotaSpend], now: dt.datetime) -> dict[str, int]:
        """Units spent per bucket during `now`'s quota day."""
        today = quota_day(now)
        totals = dict.fromkeys(self.limits(), 0)
        for spend in spends:
            if quota_day(spend.at) == today:
                for bucket, units in self.cost(spend.operation).items():
                    totals[bucket] = totals.get(bucket, 0) + units
        return totals

    def left(self, used: Mapping[str, int]) -> dict[str, int]:
        """What is left per bucket, given the units already `used` today per bucket."""
        return {b: max(0, cap - used.get(b, 0)) for b, cap in self.limits().items()}

    def remaining(self, spends: Iterable[QuotaSpend], now: dt.datetime) -> dict[str, int]:
        return self.left(self.used(spends, now))

    def fits(self, operation: str, used: Mapping[str, int], *, reserve_units: int = 0) -> bool:
        """Whether one `operation` fits on top of today's `used` units per bucket, keeping
        `reserve_units` for follow-up reads (what callers that keep running totals ask)."""
        left = self.left(used)
        need = self.cost(operation)
        need[UNITS] = need.get(UNITS, 0) + reserve_units
        return all(left.get(bucket, 0) >= units for bucket, units in need.items())

    def can_afford(self, operation: str, spends: Iterable[QuotaSpend], now: dt.datetime, *,
                   reserve_units: int = 0) -> bool:
        """Whether one `operation` fits today, keeping `reserve_units` for follow-up reads."""
        return self.fits(operation, self.used(spends, now), reserve_units=reserve_units)

    def uploads_left(self, spends: Iterable[QuotaSpend], now: dt.datetime) -> int:
        """How many more videos.insert calls fit today."""
        left = self.remaining(spends, now)
        return min(left.get(b, 0) // units for b, units in self.cost("videos.insert").items())

    def defer_until(self, operation: str, spends: Iterable[QuotaSpend], now: dt.datetime, *,
                    reserve_units: int = 0) -> dt.datetime | None:
        """None when `operation` fits now, else the next Pacific midnight."""
        if self.can_afford(operation, list(spends), now, reserve_units=reserve_units):
            return None
        return next_reset(now)


# --- classification ----------------------------------------------------------------------------

def google_error(response: httpx.Response) -> tuple[str, str]:
    """(reason, message) from Google's {"error": {"message", "errors": [{"reason"}]}}."""
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    details = error.get("errors")
    first = details[0] if isinstance(details, list) and details and \
        isinstance(details[0], dict) else {}
    return str(first.get("reason") or ""), str(error.get("message") or "")


def classify(response: httpx.Response) -> Outcome | None:
    """Google's API errors: quota reasons are permanent (deferrable), rate reasons retried."""
    if response.status_code < 400:
        return None
    reason, message = google_error(response)
    text = f"{reason}: {message}" if reason else message
    if reason in DEFERRABLE_REASONS:
        return Outcome(Kind.PERMANENT, text)
    if reason in RATE_REASONS:
        return Outcome(Kind.RATE_LIMITED, text, header_retry_after(response))
    return classify_status(response.status_code, reason=text,
                           retry_after=header_retry_after(response)) if text else None


def oauth_classify(response: httpx.Response) -> Outcome | None:
    """The token endpoint: {"error": "invalid_grant", ...}; a bad client is permanent."""
    if response.status_code < 400:
        return None
    body = json_body(response)
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return None
    text = f"{body['error']}: {body.get('error_description') or ''}".rstrip(": ")
    if response.status_code >= 500 or response.status_code == 429:
        return classify_status(response.status_code, reason=text,
                               retry_after=header_retry_after(response))
    return Outcome(Kind.PERMANENT, text)


def _deferrable(exc: PermanentError) -> PermanentError:
    code = exc.reason.split(":", 1)[0]
    if code in DEFERRABLE_REASONS:
        return QuotaExceeded(str(exc), reason=exc.reason, status=exc.status,
                             resume_at=next_reset(clock.now()))
    return exc


# --- OAuth -------------------------------------------------------------------------------------

def refresh_token(http_client_or_base_url: httpx.Client | str, client_id: str,
                  client_secret: str, refresh_token: str) -> TokenSet:
    """A new access token from Google's token endpoint (`<base>/token`; the base is
    https://oauth2.googleapis.com or the sandbox's /youtube/oauth2). Google does not rotate
    refresh tokens: `TokenSet.refresh_token` is None unless it sent a new one. A revoked or
    expired refresh token raises InvalidGrant. Safe to resend, so it is retried."""
    for secret in (client_secret, refresh_token):
        register_secret(secret)
    own = isinstance(http_client_or_base_url, str)
    client = make_client(f"{SYSTEM}-oauth", base_url=http_client_or_base_url.rstrip("/"),
                         classifier=oauth_classify) \
        if isinstance(http_client_or_base_url, str) else http_client_or_base_url
    form = {"client_id": client_id, "client_secret": client_secret,
            "refresh_token": refresh_token, "grant_type": "refresh_token"}
    try:
        response = client.post("/token", data=form, extensions={IDEMPOTENT: True})
        if response.status_code >= 400:  # a plain httpx client hands errors back unraised
            response.read()
            outcome = oauth_classify(response) or classify_status(
                response.status_code, reason=reason_from_body(response))
            raise error_for(f"{SYSTEM}-oauth", response.request, response.status_code, outcome)
        body = parse_json_object(response, system=f"{SYSTEM}-oauth", require=["access_token"])
    except PermanentError as exc:
        if exc.reason.startswith("invalid_grant"):
            raise InvalidGrant(str(exc), system=exc.system, status=exc.status,
                               reason=exc.reason) from None
        raise
    finally:
        if own:
            client.close()
    register_secret(str(body["access_token"]))
    return TokenSet(access_token=str(body["access_token"]),
                    refresh_token=body.get("refresh_token") or None,
                    expires_in=json_int(body.get("expires_in")),
                    refresh_expires_in=json_int(body.get("refresh_token_expires_in")))


# --- the client --------------------------------------------------------------------------------

def check_metadata(snippet: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """Refuse locally what YouTube would refuse (and still charge for), and any post without
    an explicit AI-disclosure and made-for-kids declaration."""
    title = snippet.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("snippet.title is required")
    if len(title) > TITLE_MAX or "<" in title or ">" in title:
        raise ValueError(f"snippet.title must be at most {TITLE_MAX} characters without < >")
    description = snippet.get("description") or ""
    if len(str(description).encode()) > DESCRIPTION_MAX_BYTES or "<" in description \
            or ">" in description:
        raise ValueError(f"snippet.description must be at most {DESCRIPTION_MAX_BYTES} bytes "
                         "without < >")
    for name in ("containsSyntheticMedia", "selfDeclaredMadeForKids"):
        if not isinstance(status.get(name), bool):
            raise ValueError(f"status.{name} must be declared (true or false)")



class YouTubeClient(YouTubeReads, OwnsHttpClient):
    """Typed calls to the YouTube Data API; every request goes through resources.http.

    `access_token` is called per request. `on_quota(operation)` is called before each
    quota-costing request ("videos.insert", "videos.list", ...), so the caller can record the
    spend for its `QuotaLedger`, or refuse the call by raising (resources.youtube_quota's
    UnitsGate raises QuotaExceeded: nothing is sent). Chunk PUTs and probes cost no quota and
    carry no token (the session URI is the credential). Engagement reads and comment replies
    (video_counters, channel_stats, comment_threads, comment_replies, reply_to_comment) come
    from resources.youtube_reads.
    """

    def __init__(self, access_token: Callable[[], str], *, base_url: str = PRODUCTION_URL,
                 upload_base: str | None = None, timeout: float | httpx.Timeout = 30.0,
                 retry: RetryPolicy | None = None,
                 on_quota: Callable[[str], None] | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        self._access_token = access_token
        self.base_url = base_url.rstrip("/")
        self.upload_base = (upload_base or base_url).rstrip("/")
        self._retry = retry if retry is not None else RetryPolicy()
        self._on_quota = on_quota
        self._uploads_playlist: str | None = None
        self._http = make_client(SYSTEM, base_url=self.base_url, timeout=timeout,
                                 retry=self._retry, classifier=classify, inner=inner)


    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token()}"}

    def _spend(self, operation: str) -> None:
        if self._on_quota is not None:
            self._on_quota(operation)

    def _get(self, operation: str, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self._spend(operation)
        try:
            return json_request(self._http, "GET", path, params=dict(params),
                                headers=self._auth())
        except PermanentError as exc:
            raise _deferrable(exc) from None

    def _post(self, operation: str, path: str, params: Mapping[str, Any],
              body: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON POST that acts (comments.insert): sent once, never resent blindly."""
        self._spend(operation)
        try:
            return json_request(self._http, "POST", path, params=dict(params), json=dict(body),
                                headers=self._auth(), extensions={IDEMPOTENT: False})
        except PermanentError as exc:
            raise _deferrable(exc) from None

    # --- uploads -------------------------------------------------------------------------

    def start_upload(self, snippet: Mapping[str, Any], status: Mapping[str, Any], size: int,
                     content_type: str = "video/mp4") -> str:
        """videos.insert: open a resumable session for `size` bytes; returns its URI.

        Sent once, never resent (a POST). Save the URI before calling `upload`."""
        check_metadata(snippet, status)
        if size <= 0:
            raise ValueError("size must be positive")
        self._spend("videos.insert")
        headers = {**self._auth(), "Content-Type": "application/json; charset=UTF-8",
                   "X-Upload-Content-Length": str(size), "X-Upload-Content-Type": content_type}
        try:
            response = self._http.post(
                f"{self.upload_base}{UPLOAD_PATH}",
                params={"uploadType": "resumable", "part": "snippet,status"},
                json={"snippet": dict(snippet), "status": dict(status)}, headers=headers,
                extensions={IDEMPOTENT: False})
        except PermanentError as exc:
            raise _deferrable(exc) from None
        location = response.headers.get("location")
        response.close()
        if not location or "upload_id=" not in location:
            raise InvalidResponse(f"{SYSTEM}: POST {UPLOAD_PATH}: no session Location header",
                                  system=SYSTEM, status=response.status_code,
                                  reason="no Location")
        _register_session(location)
        return location

    def probe(self, session_uri: str, total: int) -> UploadProgress:
        """Ask the session how far it got (`bytes */total`): retried, costs no quota."""
        _register_session(session_uri)
        response = self._session_request(
            session_uri, headers={"Content-Length": "0", "Content-Range": f"bytes */{total}"},
            content=b"", extensions={IDEMPOTENT: True})
        return self._progress(response, total)

    def upload(self, session_uri: str, path: str | Path, *,
               chunk_size: int = DEFAULT_CHUNK_SIZE, content_type: str = "video/mp4",
               max_resumes: int = 5) -> Video:
        """Send the file through the session, resuming after failures; returns the video.

        Starts with a probe, so it also resumes an upload a crashed run left half done (or
        returns the video if it already finished). More than `max_resumes` chunks in a row
        without progress re-raise the last error (RetryableError or UnknownOutcome).
        """
        if chunk_size <= 0 or chunk_size % CHUNK_UNIT:
            raise ValueError(f"chunk_size must be a positive multiple of {CHUNK_UNIT}")
        path = Path(path)
        total = path.stat().st_size
        progress = self.probe(session_uri, total)
        failures = 0
        while progress.video is None:
            start = progress.received_bytes
            try:
                progress = self._send_chunk(session_uri, path, start,
                                            min(chunk_size, total - start), total, content_type)
            except (RetryableError, UnknownOutcome) as exc:
                failures += 1
                if failures > max_resumes:
                    raise
                self._retry.sleep(exc.retry_after if exc.retry_after is not None
                                  else self._retry.backoff(failures))
                progress = self.probe(session_uri, total)
                continue
            if progress.received_bytes > start or progress.video is not None:
                failures = 0
                continue
            failures += 1  # a 308 that stored nothing: never loop on it forever
            if failures > max_resumes:
                raise RetryableError(f"{SYSTEM}: PUT {UPLOAD_PATH}: the session stays at byte "
                                     f"{progress.received_bytes} of {total}", system=SYSTEM,
                                     status=308, reason="no progress")
        return progress.video

    def _send_chunk(self, session_uri: str, path: Path, start: int, length: int, total: int,
                    content_type: str) -> UploadProgress:
        headers = {"Content-Length": str(length), "Content-Type": content_type,
                   "Content-Range": f"bytes {start}-{start + length - 1}/{total}"}
        # Not marked idempotent: after a 5xx or a lost answer `upload` probes and resumes
        # from what the session stored, rather than the transport resending blindly. The
        # factory lets the transport resend when the chunk never left (connect error, 429).
        response = self._session_request(
            session_uri, headers=headers, content=file_range(path, start, length),
            extensions={IDEMPOTENT: False,
                        BODY_FACTORY: lambda: file_range(path, start, length)})
        return self._progress(response, total)

    def _session_request(self, session_uri: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request("PUT", session_uri, **kwargs)
        except PermanentError as exc:
            if exc.status in (404, 410):
                raise SessionExpired(f"{SYSTEM}: upload session expired or unknown (HTTP "
                                     f"{exc.status}): reconcile, then start a new upload",
                                     system=SYSTEM, status=exc.status, reason=exc.reason) \
                    from None
            raise

    def _progress(self, response: httpx.Response, total: int) -> UploadProgress:
        if response.status_code == 308:
            response.close()
            match = _RANGE.fullmatch(response.headers.get("range", "").strip())
            return UploadProgress(int(match.group(1)) + 1 if match else 0)
        if response.status_code in (200, 201):
            item = parse_json_object(response, system=SYSTEM, require=["id"])
            video = Video.parse(item)
            return UploadProgress(total, video)
        response.close()
        raise InvalidResponse(f"{SYSTEM}: PUT {UPLOAD_PATH}: unexpected HTTP "
                              f"{response.status_code}", system=SYSTEM,
                              status=response.status_code, reason="unexpected status")

    # --- reads ---------------------------------------------------------------------------

    def videos(self, video_ids: Sequence[str],
               parts: str = "snippet,status,statistics") -> list[Video]:
        """Up to 50 videos by id (unknown or invisible ones are left out); retried."""
        if not video_ids:
            return []
        if len(video_ids) > 50:
            raise ValueError("at most 50 ids per videos.list call")
        body = self._get("videos.list", "/youtube/v3/videos",
                         {"part": parts, "id": ",".join(video_ids)})
        return [Video.parse(i) for i in _items(body) if i.get("id")]

    def video(self, video_id: str) -> Video:
        found = self.videos([video_id])
        if not found:
            raise VideoNotFound(f"{SYSTEM}: video {video_id} not found", system=SYSTEM,
                                status=404, reason="video not found")
        return found[0]

    def uploads_playlist(self) -> str:
        """The authorised channel's uploads playlist id (channels.list mine=true)."""
        if self._uploads_playlist is None:
            body = self._get("channels.list", "/youtube/v3/channels",
                             {"part": "contentDetails", "mine": "true"})
            items = _items(body)
            uploads = items[0].get("contentDetails", {}).get("relatedPlaylists", {}) \
                .get("uploads") if items else None
            if not isinstance(uploads, str) or not uploads:
                raise InvalidResponse(f"{SYSTEM}: channels.list: no uploads playlist (is "
                                      "there a channel?)", system=SYSTEM,
                                      reason="no uploads playlist")
            self._uploads_playlist = uploads
        return self._uploads_playlist

    def my_recent_uploads(self, limit: int = 50) -> list[Video]:
        """The channel's newest uploads (newest first), with snippet, status, statistics:
        the official listing (uploads playlist, then videos.list), used to reconcile."""
        playlist = self.uploads_playlist()
        ids: list[str] = []
        token: str | None = None
        while len(ids) < limit:
            params = {"part": "contentDetails", "playlistId": playlist,
                      "maxResults": min(50, limit - len(ids))}
            if token:
                params["pageToken"] = token
            body = self._get("playlistItems.list", "/youtube/v3/playlistItems", params)
            ids += [str(i["contentDetails"]["videoId"]) for i in _items(body)
                    if isinstance(i.get("contentDetails"), dict)
                    and i["contentDetails"].get("videoId")]
            token = body.get("nextPageToken") if isinstance(body.get("nextPageToken"), str) \
                else None
            if not token:
                break
        by_id: dict[str, Video] = {}
        for batch in range(0, len(ids), 50):
            by_id.update({v.id: v for v in self.videos(ids[batch:batch + 50])})
        return [by_id[i] for i in ids if i in by_id]

    def find_upload(self, marker: str, limit: int = 50) -> Video | None:
        """The newest recent upload whose title or description contains `marker`."""
        for video in self.my_recent_uploads(limit):
            if marker in (video.title or "") or marker in (video.description or ""):
                return video
        return None


def _items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _register_session(session_uri: str) -> None:
    # The upload_id is a bearer credential for the session: keep it out of logs.
    for value in parse_qs(urlsplit(session_uri).query).get("upload_id", []):
        register_secret(value)


# --- Dagster resource --------------------------------------------------------------------------

class YouTubeResource(dg.ConfigurableResource):
    """YouTube for the pipeline. Defaults from settings: the sandbox's /youtube and its OAuth
    client in sandbox mode; www.googleapis.com and YOUTUBE_CLIENT_ID / _SECRET in production."""

    base_url: str | None = Field(default=None, description="Default YOUTUBE_BASE_URL.")
    token_url: str | None = Field(default=None, description="OAuth base (POST <base>/token); "
                                  "default YOUTUBE_TOKEN_URL.")
    client_id: str | None = Field(default=None, description="Default YOUTUBE_CLIENT_ID.")
    client_secret: str | None = Field(default=None,
                                      description="Default YOUTUBE_CLIENT_SECRET.")
    timeout_seconds: float | None = Field(default=None,
                                          description="Default HTTP_TIMEOUT_SECONDS.")
    quota_model: str = Field(default=QuotaModel.CLASSIC.value,
                             description="'classic' (insert = 1600 of 10,000 units) or "
                                         "'buckets' (100 inserts a day of their own).")
    daily_units: int = Field(default=10_000, description="The project's daily units.")

    def resolved_base_url(self) -> str:
        settings = get_settings()
        return (self.base_url or settings.service_url(
            "YOUTUBE_BASE_URL", SYSTEM, PRODUCTION_URL)).rstrip("/")

    def resolved_token_url(self) -> str:
        settings = get_settings()
        return (self.token_url or settings.service_url(
            "YOUTUBE_TOKEN_URL", SYSTEM, PRODUCTION_TOKEN_URL, "/oauth2")).rstrip("/")

    def credentials(self) -> tuple[str, str]:
        settings = get_settings()
        client_id = self.client_id or settings.get("YOUTUBE_CLIENT_ID",
                                                   sandbox_default=SANDBOX_CLIENT_ID)
        secret = self.client_secret or settings.get("YOUTUBE_CLIENT_SECRET",
                                                    sandbox_default=SANDBOX_CLIENT_SECRET)
        if not client_id or not secret:
            raise ConfigError("YOUTUBE_CLIENT_ID and YOUTUBE_CLIENT_SECRET are not set")
        return client_id, secret

    def get_client(self, access_token: Callable[[], str], *,
                   on_quota: Callable[[str], None] | None = None) -> YouTubeClient:
        return YouTubeClient(access_token, base_url=self.resolved_base_url(),
                             timeout=self.timeout_seconds or get_settings().http_timeout,
                             on_quota=on_quota)

    def refresh(self, refresh_token_value: str) -> TokenSet:
        client_id, secret = self.credentials()
        return refresh_token(self.resolved_token_url(), client_id, secret, refresh_token_value)

    def ledger(self) -> QuotaLedger:
        return QuotaLedger(model=QuotaModel(self.quota_model), daily_units=self.daily_units)
