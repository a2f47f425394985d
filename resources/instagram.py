"""Instagram Graph API: Reels content publishing (PROTOCOLS.md section 2).

A typed client over the shared HTTP layer. The flow: read `publishing_limit()`, create a
REELS container from the video's public URL (`video_url`) or for a resumable upload
(`upload_resumable` to the rupload URI it returns), poll `container_status` until FINISHED,
`publish` it, then read the permalink with `media`.

Tokens: `access_token` is called for every request, so a refreshed token is picked up at
once; Graph calls send it as `Authorization: Bearer`, rupload calls as `Authorization: OAuth`
(as Meta's samples do). Instagram Login's long-lived token refreshes itself:
`refresh_token(...)` calls `GET /refresh_access_token?grant_type=ig_refresh_token` and the
answer's token replaces the old one (the Facebook Login `fb_exchange_token` flow is not
used). Meta does not refresh a token that has already expired: refresh well before the 60
days are up; after an AuthError, one refresh attempt is all that makes sense.

Exactly once (DESIGN.md section 6):
- `create_reel_container` and `publish` are POSTs that are never resent once they may have
  reached Meta (no idempotent mark). A lost answer raises UnknownOutcome.
- A lost container-create answer needs no reconciliation: a container is not a post, and one
  that is never published expires after 24 h. Create another (it counts against the 400
  containers a day).
- A lost `publish` answer must be reconciled before any new attempt: `container_status` says
  PUBLISHED if it went through (FINISHED if not, so publishing again is safe); the media id
  and permalink come from `find_media(marker)`, which scans `recent_media` for a unique
  marker the caller put in the caption (e.g. a short reel tag). Never publish a container
  twice to learn its media id: the sandbox answers an error (code 9007), and whether Meta
  would repeat the first id is unverified.
- Reads (status, media, listing, limit, insights, followers, comments) are GETs: retried
  on 5xx, timeouts and 429. `reply_to_comment` (POST /{comment}/replies, top-level comments
  only) is sent once: after UnknownOutcome list `comment_replies` before replying again.
- rupload chunk POSTs are resumable by offset: each is marked idempotent with a
  BODY_FACTORY that re-reads its byte range from the file, so the layer may resend it as is
  (the server accepts an offset at or below what it has). When a chunk still fails,
  `upload_resumable` asks the server for its offset (GET on the upload URI) and continues
  from there, so bytes that arrived before a dropped connection are not sent again.

Errors (Graph `{"error": {"code", "error_subcode", "message", ...}}`; rupload
`{"debug_info": {"retriable", "message"}}`):
- code 190 / 102 -> AuthError (refresh the token once).
- codes 4, 17, 32, 613 (and 80002, the Instagram business-use-case limit), HTTP 429 ->
  RateLimited, `retry_after` from Retry-After or the X-Business-Use-Case-Usage header's
  `estimated_time_to_regain_access` (minutes).
- code 9 subcode 2207042 -> `PublishingLimitReached` (a PermanentError with
  `deferrable = True`): the rolling 24 h publishing (or container) limit is spent; defer the
  slot, do not fail the post.
- subcodes 2207052 (media fetch failed) and 2207003 (media download timeout) -> retryable:
  Meta raises them while fetching the media, before anything is published (Postiz PR #1900
  made 2207052 retryable for that reason). For a container they mean "create a new one".
- subcode 2207027 (container not ready), codes 1 and 2, `is_transient: true`, HTTP 5xx ->
  retryable. Everything else -> PermanentError with Meta's code, subcode and message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from resources.engagement_model import AccountStats, PostCounters
from resources.http import (
    BODY_FACTORY,
    IDEMPOTENT,
    HttpError,
    InvalidResponse,
    Kind,
    Outcome,
    OwnsHttpClient,
    PermanentError,
    RateLimited,
    RetryableError,
    RetryPolicy,
    UnknownOutcome,
    file_range,
    header_retry_after,
    json_body,
    json_int,
    json_request,
    make_client,
    parse_json_object,
)
from resources.social_comments import RemoteComment, parse_time
from waifugen_assets.core.config import get_settings
from waifugen_assets.core.tokens import TokenSet

SYSTEM = "instagram"
PRODUCTION_URL = "https://graph.instagram.com"  # Instagram Login; graph.facebook.com works too
RUPLOAD_URL = "https://rupload.facebook.com"
API_VERSION = "v25.0"
DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024
MAX_CAPTION, MAX_HASHTAGS = 2200, 30
# The AI-disclosure labels we put in captions and accept (case-insensitive), e.g.
# "#AIgenerated" (planning.AI_LABEL) or "AI-generated virtual creator".
AI_LABEL = re.compile(
    r"#ai[_-]?generated\b|#madewithai\b|\bai[- ]generated\b|\bmade with ai\b", re.IGNORECASE)
AUTH_CODES = frozenset({190, 102})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80002})
TRANSIENT_CODES = frozenset({1, 2})
QUOTA = (9, 2207042)
FETCH_FAILED, FETCH_TIMEOUT, NOT_READY = 2207052, 2207003, 2207027
RETRYABLE_SUBCODES = frozenset({FETCH_FAILED, FETCH_TIMEOUT, NOT_READY})
_CODES = re.compile(r"^code (-?\d+)(?:/(\d+))?: ")
_SUBCODE_IN_TEXT = re.compile(r"\b(2207\d{3})\b")
# Media insights that are not deprecated (plays, impressions & co went in April 2025).
INSIGHT_METRICS = "views,reach,likes,comments,shares,saved,total_interactions"
COMMENT_FIELDS = "id,text,timestamp,username,from,like_count,parent_id,hidden"
COMMENT_PAGE = "50"
_READ = {IDEMPOTENT: True}
_SEND_ONCE = {IDEMPOTENT: False}


class PublishingLimitReached(PermanentError):
    """Meta's rolling 24 h limit (posts, or containers) is spent: defer, do not fail."""

    deferrable = True


class MissingDisclosure(ValueError):
    """A caption without an AI-disclosure label: it is never sent (DESIGN.md section 8)."""


class ContainerCode(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"
    PUBLISHED = "PUBLISHED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Quota:
    used: int
    total: int
    window_s: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.used)


@dataclass(frozen=True)
class Container:
    id: str
    upload_uri: str | None  # the rupload URI of a resumable container


@dataclass(frozen=True)
class ContainerStatus:
    code: ContainerCode
    message: str  # Meta's `status` text
    subcode: int | None  # from the status text, when ERROR

    @property
    def terminal(self) -> bool:
        return self.code is not ContainerCode.IN_PROGRESS

    @property
    def retryable(self) -> bool:
        """ERROR/EXPIRED that a new container may cure (fetch failures, expiry)."""
        if self.code is ContainerCode.EXPIRED:
            return True
        return self.code is ContainerCode.ERROR and self.subcode in RETRYABLE_SUBCODES


@dataclass(frozen=True)
class Media:
    id: str
    permalink: str | None = None
    caption: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True)
class IgUser:
    id: str
    username: str | None


def has_ai_label(caption: str) -> bool:
    return bool(AI_LABEL.search(caption))


def check_caption(caption: str) -> None:
    """Refuse what must not be sent: no AI label, over 2200 characters, over 30 hashtags."""
    if not has_ai_label(caption):
        raise MissingDisclosure("Instagram caption lacks an AI-disclosure label "
                                "(e.g. #AIgenerated): refusing to post")
    if len(caption) > MAX_CAPTION:
        raise ValueError(f"caption is {len(caption)} characters (at most {MAX_CAPTION})")
    if len(re.findall(r"#\w+", caption)) > MAX_HASHTAGS:
        raise ValueError(f"caption has more than {MAX_HASHTAGS} hashtags")


# --- classification ---------------------------------------------------------------------------




def buc_retry_after(response: httpx.Response) -> float | None:
    """Seconds until Meta lifts a business-use-case rate limit (header given in minutes)."""
    raw = response.headers.get("x-business-use-case-usage")
    try:
        usage = json.loads(raw) if raw else None
    except ValueError:
        return None
    minutes = [json_int(item.get("estimated_time_to_regain_access"))
               for items in (usage.values() if isinstance(usage, dict) else [])
               if isinstance(items, list) for item in items if isinstance(item, dict)]
    known = [m for m in minutes if m is not None]
    return max(known) * 60.0 if known else None


def classify(response: httpx.Response) -> Outcome | None:
    """Graph and rupload error envelopes; None (status code rules) for anything else."""
    body = json_body(response)
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error"), dict):
        return _graph_outcome(response, body["error"])
    info = body.get("debug_info")
    if isinstance(info, dict) and response.status_code >= 400:
        reason = f"rupload {info.get('type') or 'error'}: {info.get('message') or ''}"
        if response.status_code in (401, 403):
            return Outcome(Kind.AUTH, reason)
        if response.status_code == 429:
            return Outcome(Kind.RATE_LIMITED, reason, header_retry_after(response))
        retriable = info.get("retriable") is True or response.status_code >= 500
        return Outcome(Kind.RETRYABLE if retriable else Kind.PERMANENT, reason)
    return None


def _graph_outcome(response: httpx.Response, error: Mapping[str, Any]) -> Outcome:
    code, subcode = json_int(error.get("code")), json_int(error.get("error_subcode"))
    text = " ".join(str(error.get(k)) for k in ("message", "error_user_msg") if error.get(k))
    reason = f"code {code}{f'/{subcode}' if subcode else ''}: {text}"
    if code in AUTH_CODES:
        return Outcome(Kind.AUTH, reason)
    if code in RATE_LIMIT_CODES or response.status_code == 429:
        retry_after = header_retry_after(response)
        return Outcome(Kind.RATE_LIMITED, reason,
                       retry_after if retry_after is not None else buc_retry_after(response))
    if (code, subcode) == QUOTA:
        return Outcome(Kind.PERMANENT, reason)
    if (subcode in RETRYABLE_SUBCODES or code in TRANSIENT_CODES
            or error.get("is_transient") is True or response.status_code >= 500):
        return Outcome(Kind.RETRYABLE, reason, header_retry_after(response))
    return Outcome(Kind.PERMANENT, reason)


def graph_codes(error: HttpError) -> tuple[int | None, int | None]:
    """Meta's (code, subcode) of an error raised by this client, when it carried them."""
    match = _CODES.match(error.reason or "")
    if match is None:
        return None, None
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


def _subcode_of(status_text: str) -> int | None:
    match = _SUBCODE_IN_TEXT.search(status_text)
    return int(match.group(1)) if match else None


# --- token refresh ----------------------------------------------------------------------------


def refresh_token(http_client_or_base_url: httpx.Client | str, client_id: str | None,
                  client_secret: str | None, refresh_token: str, *,
                  timeout: float = 30.0) -> TokenSet:
    """Refresh an Instagram Login long-lived token (`grant_type=ig_refresh_token`).

    The long-lived token is its own refresh credential: pass it as `refresh_token`; the new
    token comes back as both `access_token` and `refresh_token`, valid `expires_in` seconds
    (60 days). `client_id`/`client_secret` are not used by this endpoint (kept for the
    common signature). The old token is not revoked by Meta, but store the new one at once.
    """
    del client_id, client_secret
    owns = not isinstance(http_client_or_base_url, httpx.Client)
    http = (make_client(SYSTEM, base_url=str(http_client_or_base_url).rstrip("/"),
                        timeout=timeout, classifier=classify)
            if owns else http_client_or_base_url)
    try:
        body = json_request(http, "GET", "/refresh_access_token", require=["access_token"],
                            params={"grant_type": "ig_refresh_token",
                                    "access_token": refresh_token})
    finally:
        if owns:
            http.close()
    token = body["access_token"]
    if not isinstance(token, str) or not token:
        raise InvalidResponse(f"{SYSTEM}: refresh_access_token: no access_token",
                              system=SYSTEM, reason="no access_token")
    expires = json_int(body.get("expires_in"))
    return TokenSet(access_token=token, refresh_token=token, expires_in=expires,
                    refresh_expires_in=expires)


def lookup_user(base_url: str, access_token: str, *, api_version: str = API_VERSION,
                timeout: float = 30.0) -> IgUser:
    """The professional account a token belongs to (`GET /me?fields=user_id,username`)."""
    with make_client(SYSTEM, base_url=base_url.rstrip("/"), timeout=timeout,
                     classifier=classify,
                     headers={"Authorization": f"Bearer {access_token}"}) as http:
        body = json_request(http, "GET", f"/{api_version}/me",
                            params={"fields": "user_id,username"})
    uid = body.get("user_id") or body.get("id")
    if not isinstance(uid, str) or not uid:
        raise InvalidResponse(f"{SYSTEM}: /me: no user id", system=SYSTEM, reason="no user id")
    return IgUser(id=uid, username=body.get("username"))


# --- the client -------------------------------------------------------------------------------


class _TokenAuth(httpx.Auth):
    """`Authorization: <scheme> <token>` with the token read when the request is built."""

    def __init__(self, token: Callable[[], str], scheme: str) -> None:
        self._token, self._scheme = token, scheme

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"{self._scheme} {self._token()}"
        yield request



class InstagramClient(OwnsHttpClient):
    """Reels publishing for one Instagram professional account (`ig_user_id`)."""

    def __init__(self, access_token: Callable[[], str], ig_user_id: str, *,
                 base_url: str = PRODUCTION_URL, api_version: str = API_VERSION,
                 rupload_base: str = RUPLOAD_URL, timeout: float | httpx.Timeout = 30.0,
                 retry: RetryPolicy | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 max_resumes: int = 5, inner: httpx.BaseTransport | None = None) -> None:
        if not ig_user_id:
            raise ValueError("Instagram needs the professional account's ig_user_id")
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be positive")
        self.ig_user_id = ig_user_id
        self.api_version = api_version
        self.base_url = base_url.rstrip("/")
        self.rupload_base = rupload_base.rstrip("/")
        self.chunk_bytes = chunk_bytes
        self.max_resumes = max_resumes
        self.access_token = access_token
        self._graph_auth = _TokenAuth(access_token, "Bearer")
        self._upload_auth = _TokenAuth(access_token, "OAuth")
        self._http = make_client(SYSTEM, base_url=self.base_url, timeout=timeout, retry=retry,
                                 classifier=classify, retry_after_from_response=buc_retry_after,
                                 inner=inner)


    # --- plumbing ----------------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return "/" + "/".join((self.api_version, *parts))

    def _graph(self, method: str, path: str, *, require: tuple[str, ...] = (),
               **kwargs: Any) -> dict[str, Any]:
        try:
            return json_request(self._http, method, path, require=require,
                                auth=self._graph_auth, **kwargs)
        except PermanentError as exc:
            if graph_codes(exc) == QUOTA:
                raise PublishingLimitReached(str(exc), system=SYSTEM, status=exc.status,
                                             reason=exc.reason) from exc
            raise

    def _invalid(self, path: str, problem: str) -> InvalidResponse:
        return InvalidResponse(f"{SYSTEM}: {path}: {problem}", system=SYSTEM, reason=problem)

    # --- publishing --------------------------------------------------------------------------

    def publishing_limit(self) -> Quota:
        """Posts published in the rolling window, of how many (read before publishing)."""
        path = self._path(self.ig_user_id, "content_publishing_limit")
        body = self._graph("GET", path, require=("data",),
                           params={"fields": "quota_usage,config"})
        items = body["data"]
        item = items[0] if isinstance(items, list) and items else None
        config = item.get("config") if isinstance(item, dict) else None
        used = json_int(item.get("quota_usage")) if isinstance(item, dict) else None
        if used is None or not isinstance(config, dict):
            raise self._invalid(path, f"unexpected limit answer {str(body)[:120]!r}")
        total, window = json_int(config.get("quota_total")), json_int(config.get("quota_duration"))
        if total is None or window is None:
            raise self._invalid(path, f"unexpected limit config {config!r}")
        return Quota(used=used, total=total, window_s=window)

    def create_reel_container(self, caption: str, *, video_url: str | None = None,
                              resumable: bool = False, share_to_feed: bool = True,
                              thumb_offset_ms: int | None = None) -> Container:
        """A REELS container from `video_url`, or (`resumable=True`) one to upload into.

        Sent at most once (see the module doc). The caption must carry an AI label.
        """
        if (video_url is None) == (not resumable):
            raise ValueError("give exactly one of video_url or resumable=True")
        check_caption(caption)
        form: dict[str, str] = {"media_type": "REELS", "caption": caption,
                                "share_to_feed": "true" if share_to_feed else "false"}
        if video_url is not None:
            form["video_url"] = video_url
        else:
            form["upload_type"] = "resumable"
        if thumb_offset_ms is not None:
            form["thumb_offset"] = str(int(thumb_offset_ms))
        path = self._path(self.ig_user_id, "media")
        body = self._graph("POST", path, require=("id",), data=form, extensions=_SEND_ONCE)
        container_id = str(body["id"])
        uri = body.get("uri")
        if resumable and not isinstance(uri, str):
            uri = f"{self.rupload_base}/ig-api-upload/{self.api_version}/{container_id}"
        return Container(id=container_id, upload_uri=uri if resumable else None)

    def container_status(self, container_id: str) -> ContainerStatus:
        """IN_PROGRESS, FINISHED, PUBLISHED, ERROR (with its subcode) or EXPIRED."""
        path = self._path(container_id)
        body = self._graph("GET", path, require=("status_code",),
                           params={"fields": "status_code,status"})
        try:
            code = ContainerCode(str(body["status_code"]))
        except ValueError:
            raise self._invalid(path, f"unknown status_code {body['status_code']!r}") from None
        message = str(body.get("status") or "")
        subcode = _subcode_of(message) if code is ContainerCode.ERROR else None
        return ContainerStatus(code=code, message=message, subcode=subcode)

    def publish(self, container_id: str) -> str:
        """Publish a FINISHED container; returns the media id. Never resent automatically:
        on UnknownOutcome reconcile with `container_status` and `find_media`."""
        body = self._graph("POST", self._path(self.ig_user_id, "media_publish"),
                           require=("id",), data={"creation_id": container_id},
                           extensions=_SEND_ONCE)
        return str(body["id"])

    def media(self, media_id: str) -> Media:
        body = self._graph("GET", self._path(media_id), require=("id",),
                           params={"fields": "id,permalink,caption,timestamp"})
        return _media(body)

    def recent_media(self, limit: int = 25) -> list[Media]:
        """The account's newest published media (up to `limit`), with captions."""
        out: list[Media] = []
        params: dict[str, Any] = {"fields": "id,caption,timestamp,permalink",
                                  "limit": min(max(limit, 1), 100)}
        path = self._path(self.ig_user_id, "media")
        while len(out) < limit:
            body = self._graph("GET", path, require=("data",), params=params)
            items = body["data"]
            if not isinstance(items, list):
                raise self._invalid(path, "data is not a list")
            out.extend(_media(item) for item in items if isinstance(item, dict))
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
            after = cursors.get("after")
            if not items or not paging.get("next") or not isinstance(after, str):
                break
            params = {**params, "after": after}
        return out[:limit]

    def find_media(self, marker: str, *, limit: int = 50) -> Media | None:
        """The newest recent media whose caption contains `marker` (reconciliation)."""
        if not marker:
            raise ValueError("marker must not be empty")
        return next((m for m in self.recent_media(limit) if marker in (m.caption or "")), None)

    # --- engagement reads and comment replies ------------------------------------------------

    def media_insights(self, media_id: str) -> PostCounters:
        """A reel's lifetime insights. A metric missing from the answer (empty data while
        Meta has none yet, up to 48 h) is None, not 0; error #10 "not enough viewers" means
        no insights for this media: every counter None."""
        path = self._path(media_id, "insights")
        try:
            body = self._graph("GET", path, require=("data",),
                               params={"metric": INSIGHT_METRICS})
        except PermanentError as exc:
            if graph_codes(exc)[0] == 10 and "not enough viewers" in exc.reason.lower():
                return PostCounters(None, None, None, None, None, None)
            raise
        if not isinstance(body["data"], list):
            raise self._invalid(path, "data is not a list")
        value = {str(m.get("name")): _insight_value(m) for m in body["data"]
                 if isinstance(m, dict)}
        return PostCounters(views=value.get("views"), likes=value.get("likes"),
                            comments=value.get("comments"), shares=value.get("shares"),
                            saves=value.get("saved"), reach=value.get("reach"))

    def followers(self) -> AccountStats:
        """followers_count, follows_count and media_count of the account's user node."""
        body = self._graph("GET", self._path(self.ig_user_id),
                           params={"fields": "followers_count,follows_count,media_count"})
        return AccountStats(followers=json_int(body.get("followers_count")),
                            following=json_int(body.get("follows_count")),
                            posts=json_int(body.get("media_count")))

    def comments(self, media_id: str, *,
                 after: str | None = None) -> tuple[list[RemoteComment], str | None]:
        """One page of a media's top-level comments, newest first, and the cursor of the
        next page (None on the last one). Hidden comments (the owner still sees them) are
        left out: nothing can be done with them, not even a reply."""
        return self._comment_page(self._path(media_id, "comments"), None, after)

    def comment_replies(self, comment_id: str) -> list[RemoteComment]:
        """Every reply to a top-level comment (all pages), oldest first as Meta lists them."""
        out: list[RemoteComment] = []
        after: str | None = None
        while True:
            page, after = self._comment_page(self._path(comment_id, "replies"), comment_id,
                                             after)
            out.extend(page)
            if after is None:
                return out

    def reply_to_comment(self, comment_id: str, message: str) -> str:
        """Reply to a top-level comment; returns the reply's id. Sent once, never resent:
        after UnknownOutcome, list `comment_replies` before anything is sent again."""
        if not message.strip():
            raise ValueError("a reply needs a message")
        body = self._graph("POST", self._path(comment_id, "replies"), require=("id",),
                           data={"message": message}, extensions=_SEND_ONCE)
        return str(body["id"])

    def _comment_page(self, path: str, parent_id: str | None,
                      after: str | None) -> tuple[list[RemoteComment], str | None]:
        params = {"fields": COMMENT_FIELDS, "limit": COMMENT_PAGE}
        if after:
            params["after"] = after
        body = self._graph("GET", path, require=("data",), params=params)
        if not isinstance(body["data"], list):
            raise self._invalid(path, "data is not a list")
        page = [_comment(item, parent_id) for item in body["data"]
                if isinstance(item, dict) and item.get("hidden") is not True]
        paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
        cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
        cursor = cursors.get("after")
        more = bool(body["data"]) and bool(paging.get("next")) and isinstance(cursor, str)
        return page, cursor if more else None

    # --- resumable upload --------------------------------------------------------------------

    def upload_offset(self, upload_uri: str) -> int:
        """Bytes the rupload server holds for this container (where to resume)."""
        response = self._http.get(upload_uri, auth=self._upload_auth, extensions=_READ)
        body = parse_json_object(response, system=SYSTEM)
        offset = json_int(body.get("offset", body.get("file_offset")))
        if offset is None or offset < 0:
            raise self._invalid("rupload", f"no offset in {str(body)[:120]!r}")
        return offset

    def upload_resumable(self, upload_uri: str, path: str | os.PathLike[str]) -> None:
        """Stream the file to the container's rupload URI, resuming from the server's
        offset (also after a crash: call it again with the same URI)."""
        source = Path(path)
        size = source.stat().st_size
        if size == 0:
            raise ValueError(f"{source} is empty")
        offset = self.upload_offset(upload_uri)
        resumes = 0
        while offset < size:
            end = min(size, offset + self.chunk_bytes)
            try:
                self._send_range(upload_uri, source, offset, end, size)
                offset = end
            except (RetryableError, UnknownOutcome) as exc:
                long_wait = isinstance(exc, RateLimited) and exc.retry_after is not None
                resumes += 1
                if long_wait or resumes > self.max_resumes:
                    raise
                offset = self.upload_offset(upload_uri)

    def _send_range(self, upload_uri: str, source: Path, start: int, end: int,
                    size: int) -> None:
        def body() -> Iterator[bytes]:
            return file_range(source, start, end - start)

        response = self._http.post(
            upload_uri, content=body(), auth=self._upload_auth,
            headers={"offset": str(start), "file_size": str(size),
                     "Content-Type": "application/octet-stream",
                     "Content-Length": str(end - start)},
            extensions={IDEMPOTENT: True, BODY_FACTORY: body})
        answer = parse_json_object(response, system=SYSTEM)
        if answer.get("success") is not True:
            raise self._invalid("rupload", f"upload not acknowledged: {str(answer)[:120]!r}")

    # --- tokens ------------------------------------------------------------------------------

    def refresh_token(self) -> TokenSet:
        """A fresh long-lived token for the current one (store it; `access_token` should
        then return it)."""
        return refresh_token(self._http, None, None, self.access_token())


def _media(item: Mapping[str, Any]) -> Media:
    media_id = item.get("id")
    if not isinstance(media_id, str) or not media_id:
        raise InvalidResponse(f"{SYSTEM}: media without an id", system=SYSTEM,
                              reason="media without an id")

    def text(key: str) -> str | None:
        value = item.get(key)
        return value if isinstance(value, str) else None

    return Media(id=media_id, permalink=text("permalink"), caption=text("caption"),
                 timestamp=text("timestamp"))


def _insight_value(metric: Mapping[str, Any]) -> int | None:
    """`values[0].value` (period lifetime), or `total_value.value` (metric_type total_value)."""
    values = metric.get("values")
    if isinstance(values, list) and values and isinstance(values[0], dict):
        return json_int(values[0].get("value"))
    total = metric.get("total_value")
    return json_int(total.get("value")) if isinstance(total, dict) else None


def _comment(item: Mapping[str, Any], parent_id: str | None) -> RemoteComment:
    comment_id = item.get("id")
    if not isinstance(comment_id, str) or not comment_id:
        raise InvalidResponse(f"{SYSTEM}: comment without an id", system=SYSTEM,
                              reason="comment without an id")
    author = item.get("from") if isinstance(item.get("from"), dict) else {}
    name = author.get("username") or item.get("username")
    parent = item.get("parent_id") if isinstance(item.get("parent_id"), str) else parent_id
    return RemoteComment(
        id=comment_id, text=str(item.get("text") or ""),
        author_id=str(author["id"]) if author.get("id") else None,
        author_name=str(name) if name else None, published_at=parse_time(item.get("timestamp")),
        parent_id=parent or None, like_count=json_int(item.get("like_count")))


class InstagramResource(dg.ConfigurableResource):
    """Instagram for the pipeline: URLs and version from here, tokens and ig-user-id from
    the caller (platform_accounts). Sandbox mode defaults to the sandbox's /instagram."""

    base_url: str | None = Field(default=None, description="Graph host; default "
                                 "https://graph.instagram.com, sandbox: /instagram.")
    rupload_base: str | None = Field(default=None, description="rupload host; default "
                                     "https://rupload.facebook.com, sandbox: "
                                     "/instagram/rupload.")
    api_version: str = Field(default=API_VERSION, description="Graph API version.")
    timeout_seconds: float | None = Field(default=None,
                                          description="Default HTTP_TIMEOUT_SECONDS.")
    chunk_bytes: int = Field(default=DEFAULT_CHUNK_BYTES,
                             description="Bytes per rupload POST (resume granularity).")

    def resolved_urls(self) -> tuple[str, str]:
        """(Graph base, rupload base). rupload has no setting of its own: the sandbox serves
        it under its Graph mount, production uses rupload.facebook.com (and the upload URI
        a container returns is used anyway; this is only the fallback)."""
        settings = get_settings()
        base = (self.base_url or settings.service_url(
            "INSTAGRAM_BASE_URL", SYSTEM, PRODUCTION_URL)).rstrip("/")
        rupload = self.rupload_base or (f"{base}/rupload" if settings.is_sandbox
                                        else RUPLOAD_URL)
        return base, rupload.rstrip("/")

    def get_client(self, access_token: Callable[[], str], ig_user_id: str, *,
                   retry: RetryPolicy | None = None) -> InstagramClient:
        base, rupload = self.resolved_urls()
        return InstagramClient(
            access_token, ig_user_id, base_url=base, api_version=self.api_version,
            rupload_base=rupload, timeout=self.timeout_seconds or get_settings().http_timeout,
            retry=retry, chunk_bytes=self.chunk_bytes)
