"""TikTok Content Posting API: Direct Post of a local video file (FILE_UPLOAD), and OAuth refresh.

A typed client over the shared HTTP layer (PROTOCOLS.md section 1): `Authorization: Bearer
<user access token>` (asked of the `access_token` callable on every request, so a refreshed
token is picked up), the `{"data", "error": {"code", "message", "log_id"}}` envelope, and
client-side limits per access token: 6 inits, 30 status fetches and 20 creator_info queries a
minute (TikTok's own limits; they are tracked, not discovered by a 429), and 600 a minute
for each of the Display API reads `query_videos` (/v2/video/query/, 20 ids a call) and
`user_stats` (/v2/user/info/). TikTok offers this kind of app no comment API.

Publishing one video:

    plan = chunk_plan(path.stat().st_size)                    # pure; follows the chunk rules
    init = client.init_direct_post(title, size, privacy_level="PUBLIC_TO_EVERYONE")
    # store init.publish_id (and when) before anything else
    client.upload(init.upload_url, path, init.chunks)
    client.status(init.publish_id)  # ... until .terminal: PUBLISH_COMPLETE or FAILED

Exactly once (DESIGN.md section 6):
- `init_direct_post` creates the post: a POST that is never resent once it may have reached
  TikTok (only a 429 or a request that never left is resent). A 5xx raises RetryableError, a
  lost answer UnknownOutcome. Reconciling a lost init needs no read: a FILE_UPLOAD post is
  published only after its bytes arrive at the upload_url, and that URL was in the lost answer,
  so nothing can have been published; record the attempt and init again (the orphan init may
  have used one of the 6 inits a minute and a slot of the daily cap; it expires unused).
- Once the publish_id is stored, every later doubt is settled by `status(publish_id)`, a read
  that is retried freely: `uploaded_bytes` says where to resume (`upload(..., start_at=
  status.uploaded_bytes)`), PUBLISH_COMPLETE / FAILED is the outcome. Never init again for a
  publish_id that may still complete; only when its upload_url has expired (an hour after the
  init) with the upload unfinished is the publish dead for sure.
- Chunk PUTs are idempotent by Content-Range: a chunk whose answer was lost (5xx, timeout,
  dropped connection) is re-sent, its body re-read from the file (BODY_FACTORY).

Errors (all HttpError subclasses): access_token_invalid -> AuthError (refresh the token once,
then retry); rate_limit_exceeded -> RateLimited (retry_after from Retry-After, else TikTok's 60 s
window); internal_error / 5xx -> RetryableError; anything else -> TikTokError (a
PermanentError) with TikTok's `code`. A spent posting quota (spam_risk_too_many_posts,
spam_risk_too_many_pending_share, reached_active_user_cap) raises TikTokQuotaError, whose
`deferrable` is True: the caller defers the slot instead of failing it. Tell them apart with
`getattr(exc, "deferrable", False)` (or isinstance TikTokQuotaError). A post TikTok accepted
and then FAILED is a PublishStatus with `failed` True and TikTok's `fail_reason`
(`deferrable` again for quota reasons).

`refresh_token(...)` talks to /v2/oauth/token/. TikTok ROTATES refresh tokens: the TokenSet's
refresh_token replaces the one sent, which stops working; store it at once (see
waifugen_assets.core.tokens). A lost refresh answer (UnknownOutcome) may have rotated the token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from resources.engagement_model import AccountStats, PostCounters
from resources.http import (
    BODY_FACTORY,
    IDEMPOTENT,
    AuthError,
    InvalidResponse,
    Kind,
    Limit,
    Outcome,
    OwnsHttpClient,
    PermanentError,
    RateLimiter,
    RateLimitStore,
    RetryPolicy,
    classify_status,
    error_for,
    file_range,
    fingerprint,
    header_retry_after,
    json_body,
    json_int,
    json_request,
    make_client,
    parse_json_object,
    reason_from_body,
)
from waifugen_assets.core.config import ConfigError, get_settings
from waifugen_assets.core.redaction import register_secret
from waifugen_assets.core.tokens import TokenSet

SYSTEM = "tiktok"
PRODUCTION_URL = "https://open.tiktokapis.com"
SANDBOX_CLIENT_KEY = "sandbox_client_key"
SANDBOX_CLIENT_SECRET = "sandbox_client_secret"  # noqa: S105 - the sandbox accepts any
MB = 1024 * 1024  # TikTok's chunk limits are in MiB (as its own SDKs compute them)
MIN_CHUNK, MAX_CHUNK, MAX_FINAL_CHUNK, MAX_CHUNKS = 5 * MB, 64 * MB, 128 * MB, 1000
DEFAULT_CHUNK_SIZE = 10_000_000  # the media transfer guide's example size
TITLE_MAX_UTF16 = 2200
RATE_WINDOW = 60.0
INITS_PER_MINUTE, STATUS_PER_MINUTE, CREATOR_INFO_PER_MINUTE = 6, 30, 20
# Display API reads: 600 requests per 1-minute sliding window, per endpoint.
QUERIES_PER_MINUTE = USER_INFOS_PER_MINUTE = 600
QUERY_BATCH = 20  # ids per /v2/video/query/ call
UPLOAD_URL_TTL = 3600.0  # "valid for one hour after issuance"
CREATOR_INFO_PATH = "/v2/post/publish/creator_info/query/"
INIT_PATH = "/v2/post/publish/video/init/"
STATUS_PATH = "/v2/post/publish/status/fetch/"
TOKEN_PATH = "/v2/oauth/token/"  # noqa: S105 - a URL path
QUERY_PATH = "/v2/video/query/"
USER_INFO_PATH = "/v2/user/info/"
QUERY_FIELDS = "id,view_count,like_count,comment_count,share_count"
USER_INFO_FIELDS = "follower_count,following_count,likes_count,video_count"
DEFERRABLE_CODES = frozenset({
    "spam_risk_too_many_posts", "spam_risk_too_many_pending_share", "reached_active_user_cap"})
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
               ".webm": "video/webm"}
_CODE = re.compile(r"[a-z][a-z0-9_]*")


class PrivacyLevel(StrEnum):
    PUBLIC_TO_EVERYONE = "PUBLIC_TO_EVERYONE"
    MUTUAL_FOLLOW_FRIENDS = "MUTUAL_FOLLOW_FRIENDS"
    FOLLOWER_OF_CREATOR = "FOLLOWER_OF_CREATOR"
    SELF_ONLY = "SELF_ONLY"


class PublishState(StrEnum):
    PROCESSING_UPLOAD = "PROCESSING_UPLOAD"
    PROCESSING_DOWNLOAD = "PROCESSING_DOWNLOAD"
    SEND_TO_USER_INBOX = "SEND_TO_USER_INBOX"
    PUBLISH_COMPLETE = "PUBLISH_COMPLETE"
    FAILED = "FAILED"


class TikTokError(PermanentError):
    """TikTok refused the request; `.code` is its error code (e.g. invalid_params)."""

    deferrable: bool = False

    def __init__(self, message: str, *, system: str = SYSTEM, status: int | None = None,
                 reason: str = "", code: str = "") -> None:
        super().__init__(message, system=system, status=status, reason=reason)
        self.code = code


class TikTokQuotaError(TikTokError):
    """A posting quota is spent (daily cap, pending shares, active users): defer, not fail."""

    deferrable = True


@dataclass(frozen=True)
class CreatorInfo:
    username: str
    nickname: str
    avatar_url: str
    privacy_level_options: tuple[str, ...]
    comment_disabled: bool
    duet_disabled: bool
    stitch_disabled: bool
    max_video_post_duration_sec: int | None


@dataclass(frozen=True)
class InitResult:
    publish_id: str
    upload_url: str  # carries its upload_token: treat it as a secret; valid for an hour
    chunk_size: int
    total_chunk_count: int
    chunks: tuple[tuple[int, int], ...]  # (first, last) byte of each chunk, inclusive

    @property
    def video_size(self) -> int:
        return self.chunks[-1][1] + 1


@dataclass(frozen=True)
class PublishStatus:
    status: str  # a PublishState value, or an unknown word TikTok added (keep polling)
    fail_reason: str | None
    post_ids: tuple[str, ...]  # publicaly_available_post_id: after moderation, public posts
    uploaded_bytes: int | None

    @property
    def terminal(self) -> bool:
        return self.status in (PublishState.PUBLISH_COMPLETE, PublishState.FAILED)

    @property
    def published(self) -> bool:
        return self.status == PublishState.PUBLISH_COMPLETE

    @property
    def failed(self) -> bool:
        return self.status == PublishState.FAILED

    @property
    def deferrable(self) -> bool:
        """FAILED because a quota was spent: publish again later instead of giving up."""
        return self.failed and self.fail_reason in DEFERRABLE_CODES


# --- the chunk rules -------------------------------------------------------------------------

def chunk_plan(video_size: int, preferred: int = DEFAULT_CHUNK_SIZE) -> list[tuple[int, int]]:
    """(first, last) byte ranges, inclusive, for a FILE_UPLOAD of `video_size` bytes.

    TikTok's rules: chunks of 5-64 MB, total_chunk_count = floor(video_size / chunk_size)
    (1..1000) with the trailing bytes in the final chunk (at most 128 MB); a video under 5 MB
    is one chunk; one over 64 MB at least two. `preferred` is clamped to 5-64 MB and grown
    when the video would need more than 1000 chunks. chunk_size is the first chunk's length.
    """
    if video_size < 1:
        raise ValueError("video_size must be at least 1 byte")
    size = min(max(preferred, MIN_CHUNK), MAX_CHUNK)
    if video_size // size > MAX_CHUNKS:
        size = -(-video_size // MAX_CHUNKS)  # ceil: at most 1000 chunks
        if size > MAX_CHUNK:
            raise ValueError(f"a video of {video_size} bytes needs chunks over 64 MB")
    count = video_size // size
    if video_size > MAX_CHUNK and count < 2:
        size, count = video_size // 2, 2  # > 64 MB must be multi-chunk; halves are 32-64 MB
    if count <= 1:
        return [(0, video_size - 1)]  # chunk_size = video_size (5-64 MB, or a small video)
    return [(i * size, video_size - 1 if i == count - 1 else (i + 1) * size - 1)
            for i in range(count)]


def _check_plan(video_size: int, chunks: Sequence[tuple[int, int]]) -> None:
    if not chunks or chunks[0][0] != 0 or chunks[-1][1] != video_size - 1 or any(
            a[1] + 1 != b[0] for a, b in pairwise(chunks)):
        raise ValueError(f"the chunks do not cover bytes 0-{video_size - 1} in order")


def content_type_for(path: str | Path) -> str:
    """The upload Content-Type TikTok accepts for this file name (MP4 unless .mov/.webm)."""
    return VIDEO_TYPES.get(Path(path).suffix.lower(), "video/mp4")


# --- classification --------------------------------------------------------------------------

def classify(response: httpx.Response) -> Outcome | None:
    """The v2 envelope: `error.code` "ok" is success (None: the status decides); other codes
    are classified by meaning, since TikTok's HTTP statuses alone blur auth and scope."""
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None  # not the API envelope (upload answers, OAuth): the status code decides
    code = str(error.get("code") or "")
    if code == "ok" and response.status_code < 400:
        return None
    message, log_id = str(error.get("message") or ""), error.get("log_id")
    reason = f"{code}: {message}" if message else code
    if log_id:
        reason += f" (log_id {log_id})"
    if code == "access_token_invalid":
        return Outcome(Kind.AUTH, reason)
    if code == "rate_limit_exceeded" or response.status_code == 429:
        # TikTok documents no Retry-After: its windows are a minute long.
        retry_after = header_retry_after(response)
        return Outcome(Kind.RATE_LIMITED, reason,
                       RATE_WINDOW if retry_after is None else retry_after)
    if code == "internal_error" or response.status_code >= 500:
        return Outcome(Kind.RETRYABLE, reason, header_retry_after(response))
    if response.status_code >= 400 and response.status_code != 401:
        return classify_status(response.status_code, reason=reason)
    return Outcome(Kind.PERMANENT, reason)  # scope_not_authorized & co: ask the user again


def oauth_classify(response: httpx.Response) -> Outcome | None:
    """OAuth answers `{"error": "invalid_grant", "error_description", "log_id"}`: a refresh
    token or client TikTok no longer accepts means authorising again (AuthError)."""
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, str) or not error:
        return None
    reason = f"{error}: {body.get('error_description') or ''}".rstrip(": ")
    if error in ("invalid_grant", "invalid_client", "unauthorized_client", "access_denied"):
        return Outcome(Kind.AUTH, reason)
    if response.status_code >= 500 or response.status_code == 429:
        return classify_status(response.status_code, reason=reason,
                               retry_after=header_retry_after(response))
    return Outcome(Kind.PERMANENT, reason)


def _refine(exc: PermanentError) -> TikTokError:
    """The shared layer's PermanentError as a TikTokError carrying TikTok's code."""
    head = exc.reason.split(":", 1)[0].split(" ", 1)[0].strip()
    code = head if _CODE.fullmatch(head) else ""
    cls = TikTokQuotaError if code in DEFERRABLE_CODES else TikTokError
    return cls(str(exc), system=exc.system, status=exc.status, reason=exc.reason, code=code)


# --- limits ----------------------------------------------------------------------------------

def _per_token_on(path: str) -> Callable[[httpx.Request], str | None]:
    """Key by the access token (fingerprinted) on requests to `path` (any base-URL prefix)."""
    def key(request: httpx.Request) -> str | None:
        token = request.headers.get("authorization")
        if not token or not request.url.path.endswith(path):
            return None
        return fingerprint(token)
    return key


def tiktok_limits(*, store: RateLimitStore | None = None, max_wait: float = 30.0,
                  inits: int = INITS_PER_MINUTE, statuses: int = STATUS_PER_MINUTE,
                  creator_infos: int = CREATOR_INFO_PER_MINUTE,
                  queries: int = QUERIES_PER_MINUTE,
                  user_infos: int = USER_INFOS_PER_MINUTE) -> list[Limit]:
    """TikTok's per-token limits as client-side limits. Pass a cross-process `store` to share
    them between workers; `max_wait` is how long a call may wait for a slot before it raises
    RateLimited (whose retry_after says when to come back)."""
    def limiter(name: str, limit: int) -> RateLimiter:
        return RateLimiter(f"{SYSTEM}.{name}", limit, RATE_WINDOW, store=store,
                           max_wait=max_wait)

    return [Limit(limiter("init", inits), _per_token_on(INIT_PATH)),
            Limit(limiter("status", statuses), _per_token_on(STATUS_PATH)),
            Limit(limiter("creator_info", creator_infos), _per_token_on(CREATOR_INFO_PATH)),
            Limit(limiter("video_query", queries), _per_token_on(QUERY_PATH)),
            Limit(limiter("user_info", user_infos), _per_token_on(USER_INFO_PATH))]


class _CallableBearer(httpx.Auth):
    """`Authorization: Bearer <token()>`, asked per request: a refreshed token is used at once."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token()
        if not token:
            raise ValueError("the access_token callable returned no token")
        register_secret(token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request



class TikTokClient(OwnsHttpClient):
    """Typed calls to the Content Posting API; every request goes through resources.http.

    `limits` defaults to `tiktok_limits()` (process-wide budgets per token); `retry` to the
    shared default policy; `upload_timeout` (default: `timeout`) bounds each chunk PUT's phases;
    `inner` replaces the network transport.
    """

    def __init__(self, access_token: Callable[[], str], *, base_url: str = PRODUCTION_URL,
                 timeout: float | httpx.Timeout = 30.0, retry: RetryPolicy | None = None,
                 limits: Sequence[Limit] | None = None,
                 upload_timeout: float | httpx.Timeout | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = list(limits) if limits is not None else tiktok_limits()
        self._retry = retry
        self._timeout = timeout
        self._inner = inner
        self._http = make_client(
            SYSTEM, base_url=self.base_url, auth=_CallableBearer(access_token),
            headers={"Content-Type": "application/json; charset=UTF-8"},
            timeout=timeout, retry=retry, classifier=classify, limits=self.limits, inner=inner)
        # The upload host authenticates by the upload_token in the URL: no Authorization.
        self._uploads = make_client(
            SYSTEM, timeout=upload_timeout if upload_timeout is not None else timeout,
            retry=retry, classifier=classify, inner=inner)

    def close(self) -> None:
        super().close()
        self._uploads.close()

    def _invalid(self, path: str, problem: str) -> InvalidResponse:
        return InvalidResponse(f"{SYSTEM}: {path}: {problem}", system=SYSTEM, reason=problem)

    def _api(self, path: str, body: dict[str, Any] | None, *, idempotent: bool,
             method: str = "POST", params: dict[str, str] | None = None) -> dict[str, Any]:
        """POST `body` (or GET without one), check the envelope, return `data`."""
        try:
            envelope = json_request(self._http, method, path, json=body, params=params,
                                    extensions={IDEMPOTENT: idempotent},
                                    require=["data", "error"])
        except PermanentError as exc:
            raise _refine(exc) from exc
        error, data = envelope["error"], envelope["data"]
        if not isinstance(error, dict) or error.get("code") != "ok":
            raise self._invalid(path, f"unexpected error object {str(error)[:120]!r}")
        if not isinstance(data, dict):
            raise self._invalid(path, f"data is not an object: {str(data)[:80]!r}")
        return data

    # --- calls -------------------------------------------------------------------------------

    def creator_info(self) -> CreatorInfo:
        """The creator's posting options; privacy_level must be one of privacy_level_options."""
        data = self._api(CREATOR_INFO_PATH, {}, idempotent=True)
        options = data.get("privacy_level_options")
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise self._invalid(CREATOR_INFO_PATH, "no privacy_level_options list")
        return CreatorInfo(
            username=str(data.get("creator_username") or ""),
            nickname=str(data.get("creator_nickname") or ""),
            avatar_url=str(data.get("creator_avatar_url") or ""),
            privacy_level_options=tuple(options),
            comment_disabled=bool(data.get("comment_disabled")),
            duet_disabled=bool(data.get("duet_disabled")),
            stitch_disabled=bool(data.get("stitch_disabled")),
            max_video_post_duration_sec=json_int(data.get("max_video_post_duration_sec")))

    def init_direct_post(self, title: str, video_size: int, *, privacy_level: str,
                         is_aigc: bool = True, disable_comment: bool = False,
                         disable_duet: bool = False, disable_stitch: bool = False,
                         video_cover_timestamp_ms: int | None = None,
                         brand_content_toggle: bool = False,
                         brand_organic_toggle: bool = False,
                         chunk_size: int = DEFAULT_CHUNK_SIZE) -> InitResult:
        """Start a Direct Post of a `video_size`-byte file; sent at most once.

        Store `publish_id` before uploading. RetryableError / UnknownOutcome: see the module
        doc (nothing can publish without the upload; record the attempt, then init again).
        """
        if len(title.encode("utf-16-le")) // 2 > TITLE_MAX_UTF16:
            raise ValueError(f"title is longer than TikTok's {TITLE_MAX_UTF16} UTF-16 units")
        plan = chunk_plan(video_size, chunk_size)
        post_info: dict[str, Any] = {
            "title": title, "privacy_level": str(privacy_level), "is_aigc": is_aigc,
            "disable_comment": disable_comment, "disable_duet": disable_duet,
            "disable_stitch": disable_stitch, "brand_content_toggle": brand_content_toggle,
            "brand_organic_toggle": brand_organic_toggle}
        if video_cover_timestamp_ms is not None:
            post_info["video_cover_timestamp_ms"] = video_cover_timestamp_ms
        first_size = plan[0][1] - plan[0][0] + 1
        source_info = {"source": "FILE_UPLOAD", "video_size": video_size,
                       "chunk_size": first_size, "total_chunk_count": len(plan)}
        # Creates the post: never resent once it may have been received.
        data = self._api(INIT_PATH, {"post_info": post_info, "source_info": source_info},
                         idempotent=False)
        publish_id, upload_url = data.get("publish_id"), data.get("upload_url")
        if not isinstance(publish_id, str) or not publish_id:
            raise self._invalid(INIT_PATH, "no publish_id")
        if not isinstance(upload_url, str) or not upload_url.startswith(("https://",
                                                                          "http://")):
            raise self._invalid(INIT_PATH, f"no upload_url for publish {publish_id}")
        register_secret(httpx.URL(upload_url).params.get("upload_token"))
        return InitResult(publish_id=publish_id, upload_url=upload_url, chunk_size=first_size,
                          total_chunk_count=len(plan), chunks=tuple(plan))

    def upload(self, upload_url: str, path: str | Path, chunks: Sequence[tuple[int, int]], *,
               content_type: str | None = None, start_at: int = 0) -> None:
        """PUT the file's chunks in order, each streamed from disk and retried on its own.

        `start_at`: resume after a crash from PublishStatus.uploaded_bytes (a chunk boundary);
        chunks before it are skipped. PermanentError (e.g. 416: the plan does not match the
        init, or the upload_url expired) means this publish cannot finish: init again.
        """
        path = Path(path)
        size = path.stat().st_size
        _check_plan(size, chunks)
        if start_at and all(first != start_at for first, _ in chunks) and start_at != size:
            raise ValueError(f"start_at {start_at} is not a chunk boundary")
        kind = content_type or content_type_for(path)
        for first, last in chunks:
            if first >= start_at:
                self._put_chunk(upload_url, path, first, last, size, kind)

    def _put_chunk(self, upload_url: str, path: Path, first: int, last: int, size: int,
                   content_type: str) -> None:
        def body() -> Iterator[bytes]:
            return file_range(path, first, last - first + 1)

        headers = {"Content-Type": content_type, "Content-Length": str(last - first + 1),
                   "Content-Range": f"bytes {first}-{last}/{size}"}
        try:
            response = self._uploads.put(upload_url, content=body(), headers=headers,
                                         extensions={BODY_FACTORY: body, IDEMPOTENT: True})
        except PermanentError as exc:
            raise _refine(exc) from exc
        if response.status_code not in (200, 201, 206):
            raise self._invalid("upload", f"unexpected HTTP {response.status_code} for bytes "
                                          f"{first}-{last}")

    def status(self, publish_id: str) -> PublishStatus:
        """Where the publish stands (a read: retried on 5xx, timeouts and 429)."""
        data = self._api(STATUS_PATH, {"publish_id": publish_id}, idempotent=True)
        status = data.get("status")
        if not isinstance(status, str) or not status:
            raise self._invalid(STATUS_PATH, f"no status for {publish_id}")
        ids = data.get("publicaly_available_post_id")  # sic: TikTok's spelling
        if ids is None:
            ids = data.get("publicly_available_post_id")
        if not isinstance(ids, list):
            ids = [] if ids is None else [ids]
        reason = data.get("fail_reason")
        return PublishStatus(
            status=status, fail_reason=str(reason) if reason else None,
            post_ids=tuple(str(i) for i in ids if isinstance(i, int | str) and str(i)),
            uploaded_bytes=json_int(data.get("uploaded_bytes")))

    # --- engagement reads (Display API, scope video.list / user.info.stats) -----------------

    def query_videos(self, video_ids: Sequence[str]) -> dict[str, PostCounters]:
        """Lifetime counters of the account's posts by public post id, 20 ids a call.

        Ids TikTok leaves out of its answer are absent from the result, never zeros: a post
        the app may not see (SELF_ONLY posts of an unaudited app, a deleted post) has no
        metrics. Each call waits for the 600-a-minute budget of the endpoint first."""
        wanted = list(dict.fromkeys(str(i) for i in video_ids if str(i)))
        found: dict[str, PostCounters] = {}
        for start in range(0, len(wanted), QUERY_BATCH):
            batch = wanted[start:start + QUERY_BATCH]
            data = self._api(QUERY_PATH, {"filters": {"video_ids": batch}}, idempotent=True,
                             params={"fields": QUERY_FIELDS})
            videos = data.get("videos")
            if not isinstance(videos, list):
                raise self._invalid(QUERY_PATH, "data.videos is not a list")
            asked = set(batch)
            for video in videos:
                video_id = str(video.get("id") or "") if isinstance(video, dict) else ""
                if video_id in asked:
                    found[video_id] = PostCounters(
                        views=json_int(video.get("view_count")),
                        likes=json_int(video.get("like_count")),
                        comments=json_int(video.get("comment_count")),
                        shares=json_int(video.get("share_count")), saves=None)
        return found

    def user_stats(self) -> AccountStats:
        """The account's follower, following and video counts (GET /v2/user/info/)."""
        data = self._api(USER_INFO_PATH, None, idempotent=True, method="GET",
                         params={"fields": USER_INFO_FIELDS})
        user = data.get("user")
        if not isinstance(user, dict):
            raise self._invalid(USER_INFO_PATH, "data.user is not an object")
        return AccountStats(followers=json_int(user.get("follower_count")),
                            following=json_int(user.get("following_count")),
                            posts=json_int(user.get("video_count")))

    def refresh_token(self, client_key: str, client_secret: str, token: str) -> TokenSet:
        """`refresh_token` against this client's base URL (same transport and retries)."""
        with make_client(SYSTEM, base_url=self.base_url, timeout=self._timeout,
                         retry=self._retry, classifier=oauth_classify,
                         inner=self._inner) as http:
            return refresh_token(http, client_key, client_secret, token)


def refresh_token(http_client_or_base_url: httpx.Client | str, client_id: str,
                  client_secret: str, refresh_token: str, *,
                  timeout: float | httpx.Timeout = 30.0) -> TokenSet:
    """A new access token AND a new refresh token (the one sent stops working: store the new
    one at once). AuthError when TikTok rejects the refresh token or the client (invalid_grant,
    invalid_client): the account must be authorised again. Never resent once it may have
    arrived: a lost answer (UnknownOutcome) may have rotated the token."""
    for secret in (client_secret, refresh_token):
        register_secret(secret)
    form = {"client_key": client_id, "client_secret": client_secret,
            "grant_type": "refresh_token", "refresh_token": refresh_token}
    if isinstance(http_client_or_base_url, str):
        with make_client(SYSTEM, base_url=http_client_or_base_url.rstrip("/"),
                         timeout=timeout, classifier=oauth_classify) as http:
            return _refresh(http, form)
    return _refresh(http_client_or_base_url, form)


def _refresh(http: httpx.Client, form: dict[str, str]) -> TokenSet:
    try:
        response = http.request("POST", TOKEN_PATH, data=form, auth=None,
                                headers={"Content-Type": "application/x-www-form-urlencoded"},
                                extensions={IDEMPOTENT: False})
    except PermanentError as exc:  # a shared-layer client with another classifier
        if exc.reason.split(":", 1)[0] in ("invalid_grant", "invalid_client"):
            raise AuthError(str(exc), system=exc.system, status=exc.status,
                            reason=exc.reason) from exc
        raise
    response.read()
    # A plain httpx client returns errors; TikTok may also word one inside a 200.
    outcome = oauth_classify(response) or classify_status(
        response.status_code, reason=reason_from_body(response) if response.status_code >= 400
        else "")
    if not outcome.ok:
        raise error_for(SYSTEM, response.request, response.status_code, outcome)
    body = parse_json_object(response, system=SYSTEM, require=["access_token"])
    access, new_refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not access:
        raise InvalidResponse(f"{SYSTEM}: POST {TOKEN_PATH}: no access_token", system=SYSTEM,
                              reason="no access_token")
    register_secret(access)
    fresh = new_refresh if isinstance(new_refresh, str) and new_refresh else None
    register_secret(fresh)
    return TokenSet(access_token=access, refresh_token=fresh,
                    expires_in=json_int(body.get("expires_in")),
                    refresh_expires_in=json_int(body.get("refresh_expires_in")))


class TikTokResource(dg.ConfigurableResource):
    """TikTok for the pipeline. Defaults come from settings: the sandbox's /tiktok and its
    client credentials in sandbox mode; https://open.tiktokapis.com and TIKTOK_CLIENT_KEY /
    TIKTOK_CLIENT_SECRET in production. Access tokens come from the caller (per account)."""

    base_url: str | None = Field(default=None, description="Default TIKTOK_BASE_URL.")
    client_key: str | None = Field(default=None, description="Default TIKTOK_CLIENT_KEY.")
    client_secret: str | None = Field(default=None,
                                      description="Default TIKTOK_CLIENT_SECRET.")
    timeout_seconds: float | None = Field(default=None,
                                          description="Default HTTP_TIMEOUT_SECONDS.")
    max_wait_seconds: float = Field(
        default=30.0, description="Longest wait for a rate-limit slot before RateLimited.")

    def resolved_base_url(self) -> str:
        settings = get_settings()
        return (self.base_url or settings.service_url(
            "TIKTOK_BASE_URL", SYSTEM, PRODUCTION_URL)).rstrip("/")

    def get_client(self, access_token: Callable[[], str], *,
                   limits: Sequence[Limit] | None = None) -> TikTokClient:
        return TikTokClient(
            access_token, base_url=self.resolved_base_url(),
            timeout=self.timeout_seconds or get_settings().http_timeout,
            limits=limits if limits is not None else tiktok_limits(
                max_wait=self.max_wait_seconds))

    def refresher(self) -> Callable[[str], TokenSet]:
        """`refresh_token` with this app's credentials: what waifugen_assets.core.tokens calls."""
        settings = get_settings()
        key = self.client_key or settings.get("TIKTOK_CLIENT_KEY",
                                              sandbox_default=SANDBOX_CLIENT_KEY)
        secret = self.client_secret or settings.get("TIKTOK_CLIENT_SECRET",
                                                    sandbox_default=SANDBOX_CLIENT_SECRET)
        if not key or not secret:
            raise ConfigError("TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET must be set")
        base = self.resolved_base_url()
        timeout = self.timeout_seconds or settings.http_timeout
        return lambda token: refresh_token(base, key, secret, token, timeout=timeout)
