"""YouTube Data API v3: resumable video uploads, reads of one's own videos, quota, OAuth.

The mount `/youtube` stands for https://www.googleapis.com, and `/youtube/oauth2` for
https://oauth2.googleapis.com (PROTOCOLS.md section 3). Routes below the mount:

- `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` (videos.insert):
  `Authorization: Bearer`, `Content-Type: application/json; charset=UTF-8`, optional
  `X-Upload-Content-Length` and `X-Upload-Content-Type` (video/* or application/octet-stream),
  a video resource body -> 200, empty body, `Location: <mount>/upload/youtube/v3/videos?
  uploadType=resumable&upload_id=...` (the session URI).
- `PUT <session URI>` with `Content-Range: bytes first-last/total` (total may be `*` until the
  last chunk) and `Content-Length`: -> 308 with `Range: bytes=0-N` (no Range while nothing is
  stored), or 201 with the video resource when the last byte arrives. Chunks other than the
  last must be multiples of 262144 bytes (400 otherwise). A PUT without Content-Range is the
  whole file in one request. Probe: `Content-Length: 0`, `Content-Range: bytes */total` (or
  `bytes */*`) -> 308 + Range, or 200 with the resource once complete. Sessions do not need
  the Authorization header (the upload_id is the credential, as in Google's upload service);
  one that is unknown or expired (`session_ttl`, default 7 days) answers 404.
- `GET /youtube/v3/videos?part=snippet,status,statistics,contentDetails&id=a,b` (<= 50 ids):
  statistics are strings; uploadStatus is `uploaded` in the insert answer and `processed`
  (or `failed` / `rejected`, see next_uploads) from the first read on. Private videos are
  visible to their channel only.
- `GET /youtube/v3/channels?part=contentDetails,snippet,statistics&mine=true` (or `id=`):
  `contentDetails.relatedPlaylists.uploads` is the channel's uploads playlist (`UU...`).
- `GET /youtube/v3/playlistItems?part=snippet,contentDetails&playlistId=UU...&maxResults=
  (0-50, default 5)&pageToken=`: the uploads, newest first. This is the official way to list
  one's own uploads (search.list forMine costs 100 units and lags), so a lost final answer
  can be reconciled by a marker in the title or description.
- Audience reads and replies (ANALYTICS_OPS.md sections 3-4; numbers and comments from
  `sandbox/audience.py`; nobody but the owner sees a private or unprocessed video, so it has
  zero counters and no comments): videos.list `statistics` (string-encoded lifetime
  counters; commentCount = the comments and replies listed); channels.list `statistics`
  (`subscriberCount` rounded down to 3 significant digits, absent with
  `hiddenSubscriberCount: true`). `GET /youtube/v3/commentThreads?part=snippet,replies&
  videoId=` (or `allThreadsRelatedToChannelId=`) `&order=time|relevance&maxResults=1..100(20)
  &pageToken=&textFormat=html|plainText`: top-level comments newest first with
  `totalReplyCount` and at most 5 replies inline (the oldest: page comments.list for the
  rest); `textOriginal` only on the caller's own comments. `GET /youtube/v3/comments?part=
  snippet&parentId=` (oldest first, paged) or `&id=`. `POST /youtube/v3/comments?part=
  snippet` `{"snippet": {"parentId", "textOriginal"}}` -> the reply (`<parent>.<22>` id):
  400 parentIdMissing / commentTextRequired / commentTextTooLong (over 10,000 characters) /
  operationNotSupported (a reply to a reply) / invalidCommentMetadata, 404 commentNotFound
  (also an unknown video in commentThreads: videoNotFound). Costs: the lists 1 unit,
  comments.insert 50, in the project's daily units bucket (403 quotaExceeded).
- `POST /oauth2/token` (form: client_id, client_secret, refresh_token,
  grant_type=refresh_token) -> `{"access_token", "expires_in": 3599, "scope", "token_type":
  "Bearer"}`; no new refresh token (Google does not rotate). Revoked: 400 `invalid_grant`.
  `POST /oauth2/revoke?token=...` revokes a refresh token (or the grant of an access token).

Accounts: a refresh token `1//sandbox` + `[A-Za-z0-9_-]*` is a valid grant, as if the consent
flow had issued it; its channel id is `channel_id_for(refresh_token)`. The OAuth client_id
(`*.apps.googleusercontent.com`) is the API project: quota is counted per project; the first
client_secret seen for a client_id is its secret (another one: 401 invalid_client). Access
tokens are issued by the token route (`ya29.sandbox-...`) and expire after 3599 s or when
expired by control; an expired or unknown one gets Google's 401 authError envelope.

Quota (per project, per day, reset at midnight America/Los_Angeles by the sandbox clock, which
every time here follows: token and session expiry, publishAt, view counts): model `classic`
(default) is one bucket of `units_per_day` (10,000) where videos.insert costs `insert_units`
(1600); model `buckets` gives videos.insert its own bucket of `inserts_per_day` (100 calls,
cost 1) beside the units bucket. videos.list, channels.list, playlistItems.list cost 1 unit;
a request that fails validation costs 1 unit too. Exhausted: 403 `youtube.quota` / `quotaExceeded`.
Each channel may start `channel_uploads_per_day` uploads a day (50), then 400
`uploadLimitExceeded`. Projects are `audited` by default; an unaudited project's uploads are
locked to private, as Google does for unverified API projects.

Chunk rules, decided from Google's resumable protocol: a chunk that starts before the next
expected byte (a resend whose 308 was lost) adds only its unseen tail; one that starts after it
(a gap) is not stored and answered 308 with the current Range, as Google does, so a client
that trusts the Range always resumes correctly. A chunk cut short (client gone) is discarded
whole. Bytes go to `<state_dir>/youtube/uploads/<upload_id>.part` as they arrive (constant
memory); when complete, their sha256 is recorded and the file deleted.

Control routes (no auth; journaled):
- `GET /_control/published?account=<channel id>`: uploaded videos (id, channel, title,
  description, privacyStatus, containsSyntheticMedia, selfDeclaredMadeForKids, sha256, size,
  uploadStatus, upload_id, project, created), oldest first; without `account`, every channel.
- `POST /_control/expire_token {"access_token"}`; `POST /_control/revoke_token
  {"refresh_token"}` (like /oauth2/revoke).
- `POST /_control/expire_session {"upload_id" | "session_uri"}`.
- `POST /_control/config {"client_id"?, "quota_model", "units_per_day", "insert_units",
  "inserts_per_day", "channel_uploads_per_day", "session_ttl", "audited", "units_remaining",
  "inserts_remaining", "reset_usage"}`: without client_id the defaults of every project; with
  it that project's overrides and today's usage (`*_remaining` need it).
  `GET /_control/quota?client_id=`: config, today's usage and what remains.
- `POST /_control/chunk_faults {"offset": int | "last", "action": "status" | "drop",
  "status": 503, "phase": "before" | "after", "upload_id"?, "times": 1}`: a fault on the
  chunk PUT starting at `offset` (or the last chunk) of that session (or any): `before` the
  chunk is stored, or `after` it (stored, then the answer is an error or never sent).
  `GET` lists, `DELETE` clears. (Generic faults match paths only, which every chunk and
  probe share.)
- `POST /_control/next_uploads {"outcome": "failed" | "rejected", "reason"?, "count": 1,
  "account"?}`: the next uploads completed (of that channel, else any) end in that
  uploadStatus with failureReason / rejectionReason (default `codec` / `duplicate`).
- `POST /_control/audience {"account"?: channel id, ...}`: audience settings.
- `POST /_control/comments {"post": video id, "text", "class"?, "parent"?, "author"?,
  "own"?, "at"?}` adds a comment or reply; `GET /_control/comments?post=` lists every
  comment on the video now, with its class; `GET /_control/replies?account=<channel>&post=`
  the replies sent through comments.insert.
- `POST /_control/seed_posts {"channel", "count", "at"?, "spacing"?, "privacyStatus"?,
  "title"?, "description"?}`: processed videos without an upload (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import html
import json
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox import audience_text
from sandbox.audience import (
    Audience,
    Comment,
    CommentBook,
    CommentIds,
    Counters,
    Owner,
    abbreviate,
    apply_settings,
    comment_view,
    control_comment_request,
    seed_request,
    settings_of,
)
from sandbox.connection import cut_connection
from sandbox.control import BadControlBody, read_control_body
from sandbox.state import SystemState, append_new, pop_first
from sandbox.system import System, SystemContext

UPLOAD_PATH = "/upload/youtube/v3/videos"
API = "/youtube/v3"
CHUNK_UNIT = 262144
MAX_FILE_BYTES = 256 * 1024**3
TOKEN_TTL = 3599
SCOPE = ("https://www.googleapis.com/auth/youtube.upload "
         "https://www.googleapis.com/auth/youtube.readonly "
         "https://www.googleapis.com/auth/youtube.force-ssl")
PACIFIC = ZoneInfo("America/Los_Angeles")
REFRESH_TOKEN = re.compile(r"1//sandbox[A-Za-z0-9_-]*")
CLIENT_ID = re.compile(r"[A-Za-z0-9._-]+\.apps\.googleusercontent\.com")
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{20,100}")
VIDEO_PARTS = frozenset({"snippet", "status", "statistics", "contentDetails", "id"})
INSERT_PARTS = frozenset({"snippet", "status", "contentDetails", "id", "recordingDetails",
                          "localizations"})
PRIVACY = ("private", "unlisted", "public")
READ_COST = 1
COMMENT_INSERT_COST = 50
INLINE_REPLIES = 5  # a thread inlines at most this many replies (the oldest): page the rest
MAX_COMMENT_CHARS = 10_000
THREAD_PARTS = frozenset({"id", "snippet", "replies"})
COMMENT_PARTS = frozenset({"id", "snippet"})
SIMULATED_TOP = re.compile(r"Ug([A-Za-z0-9_-]{11})([0-9a-f]{3})[A-Za-z0-9_-]{6}4AaABAg")
MAX_TAG_CHARS = 500
DEFAULTS: dict[str, Any] = {
    "quota_model": "classic", "units_per_day": 10_000, "insert_units": 1600,
    "inserts_per_day": 100, "channel_uploads_per_day": 50, "session_ttl": 7 * 86400.0,
    "audited": True,
}
_CONFIG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "quota_model": (lambda v: v in ("classic", "buckets"), "'classic' or 'buckets'"),
    "units_per_day": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "insert_units": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "inserts_per_day": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "channel_uploads_per_day": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "session_ttl": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
    "audited": (lambda v: isinstance(v, bool), "true or false"),
}
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ABORTED", 411: "LENGTH_REQUIRED",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_REASONS = {400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound",
            429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
QUOTA_MESSAGE = ("The request cannot be completed because you have exceeded your "
                 "<a href=\"/youtube/v3/getting-started#quota\">quota</a>.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def quota_day(epoch: float) -> str:
    """The quota day (YYYY-MM-DD in Pacific time) that `epoch` falls in."""
    moment = dt.datetime.fromtimestamp(epoch, PACIFIC)
    return moment.date().isoformat()


def channel_id_for(refresh_token: str) -> str:
    """The sandbox channel a refresh token belongs to: `UC` + 22 characters."""
    digest = hashlib.sha256(f"channel:{refresh_token}".encode()).digest()
    return "UC" + "".join(_ID_ALPHABET[b % 64] for b in digest[:22])


def uploads_playlist(channel_id: str) -> str:
    return "UU" + channel_id[2:]


class YouTubeError(Exception):
    """An API error answered with Google's envelope."""

    def __init__(self, status: int, reason: str, message: str, *, domain: str = "global",
                 extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.domain = status, reason, message, domain
        self.extra, self.headers = extra or {}, headers or {}

    def response(self) -> JSONResponse:
        detail = {"message": self.message, "domain": self.domain, "reason": self.reason,
                  **self.extra}
        body = {"error": {"code": self.status, "message": self.message, "errors": [detail],
                          "status": _STATUS_NAMES.get(self.status, "UNKNOWN")}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class OAuthError(Exception):
    """The token endpoint's own shape: {"error", "error_description"}."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status)


def error_response(status: int, message: str, retry_after: float | None) -> Response:
    """Injected faults look like Google's errors."""
    response = YouTubeError(status, _REASONS.get(status, "backendError"), message).response()
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def bad(reason: str, message: str, domain: str = "global", status: int = 400) -> YouTubeError:
    return YouTubeError(status, reason, message, domain=domain)


def auth_error(message: str, reason: str) -> YouTubeError:
    return YouTubeError(
        401, reason, message, extra={"location": "Authorization", "locationType": "header"},
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                     'error="invalid_token"'})


# --- request parsing and metadata validation (pure) -------------------------------------------

def parse_parts(raw: str | None, allowed: frozenset[str]) -> list[str]:
    if not raw or not raw.strip():
        raise bad("required", "No filter selected. Expected one of: part", "global")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise bad("unknownPart", f"'{unknown[0]}'", "youtube.part")
    return parts


def parse_content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) from `bytes a-b/T`, `bytes */T`, `bytes a-b/*`; None for `*`."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        raise bad("badContent", "Failed to parse Content-Range header.")
    first, last, total = match.groups()
    if first is not None and int(last) < int(first):
        raise bad("badContent", "Failed to parse Content-Range header.")
    return (None if first is None else int(first), None if last is None else int(last),
            None if total == "*" else int(total))


def _text(container: dict[str, Any], name: str) -> str | None:
    value = container.get(name)
    if value is not None and not isinstance(value, str):
        raise bad("invalidVideoMetadata", f"Invalid value for {name}: a string is expected.",
                  "youtube.video")
    return value


def _flag(status: dict[str, Any], name: str) -> bool | None:
    value = status.get(name)
    if value is not None and not isinstance(value, bool):
        field = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
        raise bad("invalid", f"Invalid value at 'resource.status.{field}' (TYPE_BOOL), "
                             f"{json.dumps(value)}")
    return value


def validate_snippet(snippet: Any) -> dict[str, Any]:
    if not isinstance(snippet, dict):
        raise bad("invalidTitle", "The request metadata does not specify a video title.",
                  "youtube.video")
    title = _text(snippet, "title")
    if title is None or not title.strip():
        raise bad("invalidTitle", "The request metadata does not specify a video title.",
                  "youtube.video")
    if len(title) > 100 or "<" in title or ">" in title:
        raise bad("invalidTitle", "The request metadata specifies an invalid video title "
                                  "(at most 100 characters, no < or >).", "youtube.video")
    description = _text(snippet, "description") or ""
    if len(description.encode()) > 5000 or "<" in description or ">" in description:
        raise bad("invalidDescription", "The request metadata specifies an invalid video "
                                        "description (at most 5000 bytes, no < or >).",
                  "youtube.video")
    tags = snippet.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or \
            sum(len(t) + (2 if " " in t else 0) for t in tags) + max(len(tags) - 1, 0) \
            > MAX_TAG_CHARS:
        raise bad("invalidTags", "The request metadata specifies invalid video keywords.",
                  "youtube.video")
    category = _text(snippet, "categoryId") or "22"
    if not category.isdigit():
        raise bad("invalidCategoryId", "The snippet.categoryId property specifies an invalid "
                                       "category ID.", "youtube.video")
    return {"title": title, "description": description, "tags": tags, "categoryId": category,
            "defaultLanguage": _text(snippet, "defaultLanguage")}


def validate_status(status: Any, now: float) -> dict[str, Any]:
    if status is None:
        status = {}
    if not isinstance(status, dict):
        raise bad("invalidVideoMetadata", "The request metadata is invalid.", "youtube.video")
    privacy = _text(status, "privacyStatus") or "public"
    if privacy not in PRIVACY:
        raise bad("invalidVideoMetadata", f"Invalid privacyStatus {privacy!r}: expected one "
                                          f"of {', '.join(PRIVACY)}.", "youtube.video")
    publish_at = _text(status, "publishAt")
    if publish_at is not None:
        try:
            when = dt.datetime.fromisoformat(publish_at.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if privacy != "private" or when is None or when.tzinfo is None or \
                when.timestamp() <= now:
            raise bad("invalidPublishAt", "The request metadata specifies an invalid scheduled "
                                          "publishing time.", "youtube.video")
    license_ = _text(status, "license") or "youtube"
    if license_ not in ("youtube", "creativeCommon"):
        raise bad("invalidVideoMetadata", f"Invalid license {license_!r}.", "youtube.video")
    return {"privacyStatus": privacy, "publishAt": publish_at, "license": license_,
            "embeddable": _flag(status, "embeddable"),
            "publicStatsViewable": _flag(status, "publicStatsViewable"),
            "selfDeclaredMadeForKids": _flag(status, "selfDeclaredMadeForKids"),
            "containsSyntheticMedia": _flag(status, "containsSyntheticMedia")}


def media_type_ok(value: str) -> bool:
    media = value.split(";")[0].strip().lower()
    return media.startswith("video/") or media == "application/octet-stream"


# --- resources (pure) -------------------------------------------------------------------------

def statistics(counts: Counters) -> dict[str, str]:
    """videos.list statistics: string-encoded lifetime counters (no dislikes, no favourites)."""
    return {"viewCount": str(counts.views), "likeCount": str(counts.likes),
            "favoriteCount": "0", "commentCount": str(counts.comments)}


def _audience_sees(video: dict[str, Any]) -> bool:
    """Whether anyone but the owner can watch it (processed, and public or unlisted)."""
    current = _processing_outcome(video) or video
    return current["privacyStatus"] != "private" and current["uploadStatus"] == "processed"


def _handle(channel: str) -> str:
    return f"sandbox{channel[-6:].lower()}"


def _cursor_token(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _cursor_value(token: str | None, kind: str) -> str | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text.startswith(f"{kind}:"):
        raise bad("invalidPageToken", "The request specifies an invalid page token.",
                  "youtube.parameter")
    return text[len(kind) + 1:]


def _only_parts(resource: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    return resource if "snippet" in parts else {k: v for k, v in resource.items()
                                                if k != "snippet"}


def _text_display(words: str, text_format: str) -> str:
    if text_format == "plainText":
        return words
    return html.escape(words, quote=False).replace("\n", "<br>")


def video_resource(video: dict[str, Any], parts: list[str], stats: dict[str, str]) -> dict:
    out: dict[str, Any] = {"kind": "youtube#video",
                           "etag": _sha(json.dumps(video, sort_keys=True))[:27],
                           "id": video["id"]}
    if "snippet" in parts:
        snippet = {"publishedAt": _rfc3339(video["created"]), "channelId": video["channel"],
                   "title": video["title"], "description": video["description"],
                   "channelTitle": f"Sandbox channel {video['channel'][-6:]}",
                   "categoryId": video["categoryId"], "liveBroadcastContent": "none",
                   "localized": {"title": video["title"],
                                 "description": video["description"]}}
        if video["tags"]:
            snippet["tags"] = video["tags"]
        if video.get("defaultLanguage"):
            snippet["defaultLanguage"] = video["defaultLanguage"]
        out["snippet"] = snippet
    if "status" in parts:
        status = {"uploadStatus": video["uploadStatus"], "privacyStatus": video["privacyStatus"],
                  "license": video["license"],
                  "embeddable": video["embeddable"] is not False,
                  "publicStatsViewable": video["publicStatsViewable"] is not False,
                  "madeForKids": bool(video["selfDeclaredMadeForKids"])}
        for name in ("selfDeclaredMadeForKids", "containsSyntheticMedia", "publishAt",
                     "failureReason", "rejectionReason"):
            if video.get(name) is not None:  # returned only when set
                status[name] = video[name]
        out["status"] = status
    if "contentDetails" in parts:
        out["contentDetails"] = {"duration": "P0D", "dimension": "2d", "definition": "hd",
                                 "caption": "false", "licensedContent": False,
                                 "projection": "rectangular"}
    if "statistics" in parts:
        out["statistics"] = stats
    return out


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith("o:") and text[2:].isdigit():
            return int(text[2:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise bad("invalidPageToken", "The request specifies an invalid page token.",
              "youtube.playlistItem")


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise bad("invalidParameter", f"Invalid value '{raw}' for {name}: expected "
                                      f"{low}-{high}.", "youtube.parameter")
    return int(raw)


def _processing_outcome(video: dict[str, Any] | None) -> dict[str, Any] | None:
    """A just-uploaded video as its processing leaves it (a queued outcome, else processed)."""
    if video is None or video["uploadStatus"] != "uploaded":
        return video
    outcome = video.get("pending_outcome")
    if outcome == "failed":
        return {**video, "uploadStatus": "failed",
                "failureReason": video.get("outcome_reason") or "codec"}
    if outcome == "rejected":
        return {**video, "uploadStatus": "rejected",
                "rejectionReason": video.get("outcome_reason") or "duplicate"}
    return {**video, "uploadStatus": "processed"}


def _visible(video: dict[str, Any], channel: str) -> bool:
    return video["channel"] == channel or video["privacyStatus"] != "private"


def _list_response(kind: str, items: list[dict[str, Any]], total: int | None = None,
                   per_page: int | None = None, next_token: str | None = None) -> Response:
    body: dict[str, Any] = {
        "kind": f"youtube#{kind}ListResponse",
        "etag": _sha(json.dumps(items, sort_keys=True))[:27],
        "pageInfo": {"totalResults": len(items) if total is None else total,
                     "resultsPerPage": len(items) if per_page is None else per_page},
        "items": items}
    if next_token:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


def _playlist_item(video: dict[str, Any], playlist: str, position: int,
                   parts: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "youtube#playlistItem",
                           "etag": _sha(video["id"] + playlist)[:27],
                           "id": base64.urlsafe_b64encode(
                               f"{playlist}.{video['id']}".encode()).decode().rstrip("=")}
    if "snippet" in parts:
        out["snippet"] = {
            "publishedAt": _rfc3339(video["created"]), "channelId": video["channel"],
            "title": video["title"], "description": video["description"],
            "channelTitle": f"Sandbox channel {video['channel'][-6:]}",
            "playlistId": playlist, "position": position,
            "resourceId": {"kind": "youtube#video", "videoId": video["id"]},
            "videoOwnerChannelId": video["channel"]}
    if "contentDetails" in parts:
        out["contentDetails"] = {"videoId": video["id"],
                                 "videoPublishedAt": _rfc3339(video["created"])}
    if "status" in parts:
        out["status"] = {"privacyStatus": video["privacyStatus"]}
    return out


def _chunk_fault_spec(body: dict[str, Any]) -> dict[str, Any]:
    """The chunk fault a POST /_control/chunk_faults body describes; 400 when it is not valid."""
    offset, action = body.get("offset"), body.get("action")
    phase, times = body.get("phase", "before"), body.get("times", 1)
    status, upload_id = body.get("status", 503), body.get("upload_id")
    if not (offset == "last" or (_is_int(offset) and offset >= 0)):
        raise bad("badRequest", "offset must be a byte offset >= 0 or 'last'")
    if action not in ("status", "drop") or phase not in ("before", "after"):
        raise bad("badRequest", "action must be 'status' or 'drop', phase 'before' or "
                                "'after'")
    if not _is_int(status) or not 400 <= status <= 599:
        raise bad("badRequest", "status must be an HTTP error status")
    if not _is_int(times) or times < 1:
        raise bad("badRequest", "times must be an integer >= 1")
    if upload_id is not None and not isinstance(upload_id, str):
        raise bad("badRequest", "upload_id must be a string")
    return {"offset": offset, "action": action, "phase": phase, "status": status,
            "times": times, "upload_id": upload_id}


_ApiHandler = Callable[[Request, dict[str, Any]], Awaitable[Response]]
_Endpoint = Callable[[Request], Awaitable[Response]]


class YouTubeSystem:
    """YouTube Data API v3 and Google's OAuth token endpoint: resumable uploads, reads of
    one's own videos, channels and uploads playlists, per-project daily quota."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state: SystemState = ctx.state
        self.upload_dir = ctx.state.store.state_dir / "youtube" / "uploads"
        # one lock per upload session, so that its chunk PUTs are applied one at a time
        self.locks: dict[str, asyncio.Lock] = {}
        self.audience = Audience(ctx.rng, "youtube")
        self.book = CommentBook(self.state, self.audience)
        self.ensure_indexes()

    # --- helpers: ids, config and quota ----------------------------------------------------

    def new_id(self, kind: str, length: int) -> str:
        rng = self.ctx.rng(kind, self.state.next_id(kind))
        return "".join(rng.choice(_ID_ALPHABET) for _ in range(length))

    def config(self, project: str | None) -> dict[str, Any]:
        merged = {**DEFAULTS, **self.state.get("config", {})}
        if project is not None:
            merged.update(self.state.get(f"project/{project}", {}))
        return merged

    @staticmethod
    def limits(cfg: dict[str, Any]) -> dict[str, int]:
        out = {"units": cfg["units_per_day"]}
        if cfg["quota_model"] == "buckets":
            out["inserts"] = cfg["inserts_per_day"]
        return out

    @staticmethod
    def insert_cost(cfg: dict[str, Any]) -> dict[str, int]:
        if cfg["quota_model"] == "buckets":
            return {"inserts": 1}
        return {"units": cfg["insert_units"]}

    def charge(self, project: str, cost: dict[str, int], *, best_effort: bool = False) -> None:
        """Take `cost` from today's buckets, all or nothing; 403 quotaExceeded if short."""
        caps = self.limits(self.config(project))
        short: list[str] = []

        def change(used: dict[str, int]) -> dict[str, int]:
            over = [b for b, n in cost.items() if used.get(b, 0) + n > caps.get(b, 0)]
            if over:
                short.extend(over)
                return used
            return {**used, **{b: used.get(b, 0) + n for b, n in cost.items()}}

        self.state.update(f"usage/{project}/{quota_day(self.ctx.clock())}", change, default={})
        if short and not best_effort:
            raise YouTubeError(403, "quotaExceeded", QUOTA_MESSAGE, domain="youtube.quota")

    def quota_view(self, project: str) -> dict[str, Any]:
        cfg = self.config(project)
        day = quota_day(self.ctx.clock())
        used = self.state.get(f"usage/{project}/{day}", {})
        caps = self.limits(cfg)
        return {"client_id": project, "day": day, "config": cfg,
                "used": {b: used.get(b, 0) for b in caps},
                "remaining": {b: max(0, caps[b] - used.get(b, 0)) for b in caps}}

    # --- helpers: auth ---------------------------------------------------------------------

    def authenticate(self, request: Request) -> dict[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise auth_error("Login Required.", "required")
        record = self.state.get(f"token/{_sha(token)}")
        if record is None or record.get("expired") or record["expires_at"] <= self.ctx.clock():
            raise auth_error("Request had invalid authentication credentials. Expected OAuth "
                             "2 access token, login cookie or other valid authentication "
                             "credential.", "authError")
        grant = self.state.get(f"refresh/{record['refresh']}", {})
        if grant.get("revoked"):
            raise auth_error("Request had invalid authentication credentials (the grant was "
                             "revoked).", "authError")
        return record

    def api(self, handler: _ApiHandler) -> _Endpoint:
        """An authenticated API route: Google's error envelope, and 400s still cost a unit."""
        async def endpoint(request: Request) -> Response:
            try:
                token = self.authenticate(request)
            except YouTubeError as exc:
                return exc.response()
            try:
                return await handler(request, token)
            except YouTubeError as exc:
                if exc.status == 400:  # invalid requests still cost a unit
                    self.charge(token["project"], {"units": READ_COST}, best_effort=True)
                return exc.response()
        return endpoint


    # --- helpers: the audience -------------------------------------------------------------

    def channel_created(self, channel: str) -> float:
        """When the sandbox first saw the channel (its follower days count from there)."""
        now = self.ctx.clock()
        return float(self.state.update(f"channel/{channel}", lambda c: c or {"created": now},
                                       default=None)["created"])

    def owner(self, channel: str) -> Owner:
        return Owner(channel, _handle(channel))

    def comment_ids(self, video_id: str) -> CommentIds:
        """Simulated ids: `Ug` + video id + index (3 hex) + 6 check characters + `4AaABAg`;
        a reply's is `<top-level id>.<slot><21 characters>`, as YouTube's look."""
        def ids(index: int, reply: int | None) -> str:
            rng = self.ctx.rng("comment-id", video_id, index)
            top = f"Ug{video_id}{index:03x}" + "".join(rng.choice(_ID_ALPHABET) for _ in
                                                       range(6)) + "4AaABAg"
            if reply is None:
                return top
            rng = self.ctx.rng("reply-id", video_id, index, reply)
            return f"{top}.{reply:x}" + "".join(rng.choice(_ID_ALPHABET) for _ in range(21))
        return ids

    def all_comments(self, video: dict[str, Any]) -> list[Comment]:
        """Every comment and reply on the video that exists now, oldest first (none while
        only its owner can see it)."""
        if not _audience_sees(video):
            return []
        channel = video["channel"]
        simulated = self.audience.comments(video["id"], video["created"], self.owner(channel),
                                           self.comment_ids(video["id"]),
                                           settings_of(self.state, channel))
        return self.book.visible(simulated, video["id"], self.ctx.clock())

    def video_counters(self, video: dict[str, Any]) -> Counters:
        if not _audience_sees(video):
            return Counters(0, 0, 0, 0, 0, 0)
        settings, now = settings_of(self.state, video["channel"]), self.ctx.clock()
        comments = self.book.count(video["id"], video["created"], now, settings)
        return self.audience.counters(video["id"], video["created"], now, settings,
                                      comments=comments)

    def find_comment(self, comment_id: str) -> tuple[Comment, dict[str, Any]] | None:
        """A comment that exists now, with its video, by id (stored or simulated)."""
        post = self.book.post_of_stored(comment_id)
        if post is None:
            match = SIMULATED_TOP.match(comment_id)
            post = match.group(1) if match else None
        video = self.state.get(f"video/{post}") if post else None
        if video is None:
            return None
        found = [c for c in self.all_comments(video) if c.id == comment_id]
        return (found[0], video) if found else None

    def comment_resource(self, c: Comment, video: dict[str, Any], viewer: str,
                         text_format: str) -> dict[str, Any]:
        snippet: dict[str, Any] = {
            "channelId": video["channel"], "videoId": video["id"],
            "textDisplay": _text_display(c.text, text_format),
            "authorDisplayName": f"@{c.author_name}",
            "authorProfileImageUrl": f"https://yt3.ggpht.com/sandbox/{c.author_id}=s48",
            "authorChannelUrl": f"http://www.youtube.com/@{c.author_name}",
            "authorChannelId": {"value": c.author_id}, "canRate": True,
            "viewerRating": "none", "likeCount": c.like_count(self.ctx.clock()),
            "publishedAt": _rfc3339(c.created), "updatedAt": _rfc3339(c.created)}
        if c.author_id == viewer:  # the original text only goes to its author
            snippet["textOriginal"] = c.text
        if c.parent is not None:
            snippet["parentId"] = c.parent
        return {"kind": "youtube#comment", "etag": _sha(c.id + c.text)[:27], "id": c.id,
                "snippet": snippet}

    def thread_resource(self, top: Comment, replies: list[Comment], video: dict[str, Any],
                        parts: list[str], viewer: str, text_format: str) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "youtube#commentThread",
                               "etag": _sha(top.id + str(len(replies)))[:27], "id": top.id}
        if "snippet" in parts:
            out["snippet"] = {"channelId": video["channel"], "videoId": video["id"],
                              "topLevelComment": self.comment_resource(top, video, viewer,
                                                                       text_format),
                              "canReply": True, "totalReplyCount": len(replies),
                              "isPublic": True}
        if "replies" in parts and replies:
            out["replies"] = {"comments": [self.comment_resource(r, video, viewer, text_format)
                                           for r in replies[:INLINE_REPLIES]]}
        return out

    def thread_videos(self, request: Request, viewer: str) -> list[dict[str, Any]]:
        """The videos a commentThreads.list names: `videoId` or
        `allThreadsRelatedToChannelId` (exactly one)."""
        query = request.query_params
        given = [n for n in ("videoId", "allThreadsRelatedToChannelId", "id", "channelId")
                 if query.get(n)]
        if len(given) != 1:
            raise bad("missingRequiredParameter" if not given else "incompatibleParameters",
                      "Specify exactly one of videoId, allThreadsRelatedToChannelId.",
                      "youtube.parameter")
        if given[0] in ("id", "channelId"):
            raise bad("invalidParameter", f"The sandbox lists threads by videoId or "
                                          f"allThreadsRelatedToChannelId, not {given[0]}.",
                      "youtube.parameter")
        if given[0] == "allThreadsRelatedToChannelId":
            return [v for v in self.channel_videos(query["allThreadsRelatedToChannelId"])
                    if _visible(v, viewer)]
        video = self.processed(query["videoId"])
        if video is None or not _visible(video, viewer):
            raise bad("videoNotFound", "The video identified by the videoId parameter could "
                                       "not be found.", "youtube.commentThread", status=404)
        return [video]

    # --- helpers: OAuth --------------------------------------------------------------------

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = (await request.body()).decode("utf-8", "replace")
        fields = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if media != "application/x-www-form-urlencoded" and request.method == "POST" and raw:
            raise OAuthError(400, "invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded")
        return {**dict(request.query_params), **fields}

    def check_client(self, client_id: str, secret: str) -> None:
        if not CLIENT_ID.fullmatch(client_id):
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        known = self.state.update(f"client/{client_id}",
                                  lambda c: c or {"secret": _sha(secret)}, default=None)
        if known["secret"] != _sha(secret):
            raise OAuthError(401, "invalid_client", "Unauthorized")

    def issue(self, refresh: str, client_id: str) -> dict[str, Any]:
        if not REFRESH_TOKEN.fullmatch(refresh):
            raise OAuthError(400, "invalid_grant", "Bad Request")
        fp = _sha(refresh)
        grant = self.state.update(f"refresh/{fp}", lambda g: g or {
            "client_id": client_id, "channel": channel_id_for(refresh), "revoked": False},
            default=None)
        if grant["revoked"]:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if grant["client_id"] != client_id:
            raise OAuthError(401, "unauthorized_client", "Unauthorized")
        self.channel_created(grant["channel"])
        token = "ya29.sandbox-" + self.new_id("access", 64)
        self.state.put(f"token/{_sha(token)}", {
            "channel": grant["channel"], "project": client_id, "refresh": fp,
            "expires_at": self.ctx.clock() + TOKEN_TTL, "expired": False})
        return {"access_token": token, "expires_in": TOKEN_TTL, "scope": SCOPE,
                "token_type": "Bearer"}

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token's grant, or the grant behind an access token."""
        fp = _sha(token)
        record = self.state.get(f"token/{fp}")
        if record is not None:
            fp = record["refresh"]
        elif self.state.get(f"refresh/{fp}") is None:
            if not REFRESH_TOKEN.fullmatch(token):
                return False
            self.state.put(f"refresh/{fp}", {"client_id": None,
                                             "channel": channel_id_for(token), "revoked": True})
            return True
        self.state.update(f"refresh/{fp}", lambda g: {**g, "revoked": True}, default={})
        return True

    # --- helpers: upload sessions ----------------------------------------------------------

    async def read_insert(self, request: Request) -> tuple[list[str], dict[str, Any],
                                                            str | None, int | None]:
        """videos.insert's request checked: (parts, video resource, media type, total size)."""
        query = request.query_params
        if query.get("uploadType") != "resumable":
            raise bad("invalidParameter", "The sandbox accepts videos.insert uploads with "
                                          "uploadType=resumable only.", "global")
        parts = parse_parts(query.get("part"), INSERT_PARTS)
        media = request.headers.get("content-type", "")
        if media.split(";")[0].strip().lower() != "application/json":
            raise bad("badContent", f"Unsupported content with type: {media or 'none'}")
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise bad("parseError", "Parse Error") from None
        if not isinstance(body, dict):
            raise bad("parseError", "The request body must be a video resource.")
        upload_type = request.headers.get("x-upload-content-type")
        if upload_type is not None and not media_type_ok(upload_type):
            raise bad("badContent", f"Media type '{upload_type}' is not supported. Valid media "
                                    "types: [video/*, application/octet-stream]")
        total = request.headers.get("x-upload-content-length")
        if total is not None and (not total.isdigit() or not 0 < int(total) <= MAX_FILE_BYTES):
            raise bad("badContent", f"Invalid X-Upload-Content-Length: {total}")
        return parts, body, upload_type, int(total) if total else None

    def open_session(self, token: dict[str, Any], parts: list[str], snippet: dict[str, Any],
                     status: dict[str, Any], total: int | None,
                     upload_type: str | None) -> str:
        """Count the upload against the channel and the quota, and start its session."""
        project, channel = token["project"], token["channel"]
        cfg = self.config(project)
        day_key = f"uploads/{channel}/{quota_day(self.ctx.clock())}"
        if self.state.get(day_key, 0) >= cfg["channel_uploads_per_day"]:
            raise bad("uploadLimitExceeded", "The user has exceeded the number of videos they "
                                             "may upload.", "youtube.video")
        self.charge(project, self.insert_cost(cfg))
        self.state.update(day_key, lambda n: n + 1, default=0)
        if not cfg["audited"]:  # unverified API projects upload private only
            status = {**status, "privacyStatus": "private"}
        upload_id = self.new_id("upload", 64)
        self.state.put(f"session/{upload_id}", {
            "upload_id": upload_id, "channel": channel, "project": project,
            "created": self.ctx.clock(), "total": total,
            "content_type": upload_type, "received": 0, "parts": parts,
            "snippet": snippet, "status": status, "video_id": None, "expired": False})
        return upload_id

    def live_session(self, upload_id: str | None) -> dict[str, Any]:
        session = self.state.get(f"session/{upload_id}") if upload_id and \
            UPLOAD_ID.fullmatch(upload_id) else None
        if session is not None and not session["expired"]:
            ttl = float(self.config(session["project"])["session_ttl"])
            if self.ctx.clock() <= session["created"] + ttl:
                return session
        raise bad("notFound", "The upload session was not found or has expired; start a new "
                              "upload.", status=404)

    @staticmethod
    def incomplete(session: dict[str, Any]) -> Response:
        headers = {"X-GUploader-UploadID": session["upload_id"], "Content-Length": "0"}
        if session["received"] > 0:
            headers["Range"] = f"bytes=0-{session['received'] - 1}"
        return Response(status_code=308, headers=headers)

    def finished(self, session: dict[str, Any], status_code: int) -> Response:
        video = self.state.get(f"video/{session['video_id']}")
        resource = video_resource(video, session["parts"],
                                  statistics(self.video_counters(video)))
        return JSONResponse(resource, status_code=status_code,
                            headers={"X-GUploader-UploadID": session["upload_id"]})

    async def put_locked(self, request: Request, session: dict[str, Any]) -> Response:
        length_header = request.headers.get("content-length")
        if length_header is None or not length_header.isdigit():
            raise bad("badRequest", "Content-Length is required.", status=411)
        length = int(length_header)
        content_range = request.headers.get("content-range")
        if content_range is None:  # the whole file in one request
            first, last, total = 0, length - 1, length
        else:
            first, last, total = parse_content_range(content_range)
        if first is None or last is None:  # a status probe (`bytes */total`)
            if length:
                raise bad("badContent", "A status request (bytes */total) must have no body.")
            self.check_total(session, total)
            return self.finished(session, 200) if session["video_id"] \
                else self.incomplete(session)
        total = self.check_chunk(request, session, first, last, total, length)
        if session["video_id"]:  # a resend after completion
            return self.finished(session, 200)
        final = total is not None and last + 1 == total
        if not final and length % CHUNK_UNIT:
            raise bad("badContent", f"Invalid chunk: {length} bytes. Every chunk but the last "
                                    f"must be a multiple of {CHUNK_UNIT} bytes.")
        return await self.take_chunk(request, session, first, last, total, final)

    def check_chunk(self, request: Request, session: dict[str, Any], first: int, last: int,
                    total: int | None, length: int) -> int | None:
        """A chunk's headers checked against each other and the session; its total size."""
        content_range = request.headers.get("content-range")
        if length != last - first + 1:
            raise bad("badContent", f"Content-Length {length} does not match Content-Range "
                                    f"{content_range}.")
        media = request.headers.get("content-type")
        if media is not None and not media_type_ok(media):
            raise bad("badContent", f"Media type '{media}' is not supported. Valid media "
                                    "types: [video/*, application/octet-stream]")
        total = self.check_total(session, total)
        if total is not None and last >= total:
            raise bad("badContent", f"Content-Range {content_range} goes past the total size.")
        return total

    async def take_chunk(self, request: Request, session: dict[str, Any], first: int,
                         last: int, total: int | None, final: bool) -> Response:
        """Store a valid chunk (with any chunk fault around it) and answer 308 or the video."""
        fault = self.take_chunk_fault(session, first, final)
        if fault is not None and fault["phase"] == "before":
            return await self.apply_fault(request, fault)
        if first > session["received"]:  # a gap: keep nothing, say where to continue
            return self.incomplete(session)
        session = await self.store_chunk(request, session, first, last)
        if total is not None and session["received"] == total:
            session = await self.complete(session)
        if fault is not None:
            return await self.apply_fault(request, fault)
        if session["video_id"]:
            return self.finished(session, 201)
        return self.incomplete(session)

    def check_total(self, session: dict[str, Any], total: int | None) -> int | None:
        known = session["total"]
        if total is not None and known is not None and total != known:
            raise bad("badContent", f"The total size {total} differs from the upload's "
                                    f"{known} bytes.")
        if total is not None and known is None:
            self.state.update(f"session/{session['upload_id']}",
                              lambda s: {**s, "total": total})
            session["total"] = total
        return total if total is not None else known

    async def store_chunk(self, request: Request, session: dict[str, Any], first: int,
                          last: int) -> dict[str, Any]:
        """Append the chunk's unseen bytes to the part file; all of them or none."""
        received = session["received"]
        skip = received - first
        path = self.upload_dir / f"{session['upload_id']}.part"
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with path.open("r+b" if path.exists() else "w+b") as out:
            out.truncate(received)
            out.seek(received)
            try:
                async for piece in request.stream():
                    if skip > 0:
                        dropped = min(skip, len(piece))
                        piece, skip = piece[dropped:], skip - dropped
                    if piece:
                        out.write(piece)
                        written += len(piece)
            except ClientDisconnect:
                out.truncate(received)
                raise
            if written != max(0, last + 1 - received):  # cut short, no disconnect message
                out.truncate(received)
                raise bad("badContent", "The chunk ended before Content-Length bytes.")
        new_received = max(received, last + 1)
        return self.state.update(f"session/{session['upload_id']}",
                                 lambda s: {**s, "received": new_received})

    async def complete(self, session: dict[str, Any]) -> dict[str, Any]:
        path = self.upload_dir / f"{session['upload_id']}.part"
        digest, size = await asyncio.to_thread(_hash_file, path)
        plan = pop_first(self.state, f"next_uploads/{session['channel']}",
                         "next_uploads/*") or {}
        video_id = self.new_id("video", 11)
        snippet, status = session["snippet"], session["status"]
        self.state.put(f"video/{video_id}", {
            "id": video_id, "channel": session["channel"], "project": session["project"],
            "upload_id": session["upload_id"], "created": self.ctx.clock(), **snippet,
            **status, "uploadStatus": "uploaded", "pending_outcome": plan.get("outcome"),
            "outcome_reason": plan.get("reason"), "failureReason": None,
            "rejectionReason": None, "sha256": digest, "size": size,
            "content_type": session["content_type"]})
        self.index_videos(session["channel"], [video_id])
        path.unlink(missing_ok=True)
        return self.state.update(f"session/{session['upload_id']}",
                                 lambda s: {**s, "video_id": video_id})

    # --- helpers: chunk faults -------------------------------------------------------------

    def take_chunk_fault(self, session: dict[str, Any], first: int,
                         final: bool) -> dict[str, Any] | None:
        taken: list[dict[str, Any]] = []

        def change(faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for index, fault in enumerate(faults):
                if fault["upload_id"] not in (None, session["upload_id"]):
                    continue
                if fault["offset"] != first and not (fault["offset"] == "last" and final):
                    continue
                taken.append(fault)
                kept = [{**fault, "times": fault["times"] - 1}] if fault["times"] > 1 else []
                return [*faults[:index], *kept, *faults[index + 1:]]
            return faults

        self.state.update("chunk_faults", change, default=[])
        return taken[0] if taken else None

    @staticmethod
    async def apply_fault(request: Request, fault: dict[str, Any]) -> Response:
        if fault["action"] == "drop":
            return _Dropped()
        return error_response(fault["status"], f"sandbox chunk fault: HTTP {fault['status']}",
                              None)

    # --- helpers: reads --------------------------------------------------------------------

    def processed(self, video_id: str) -> dict[str, Any] | None:
        """The video, its processing finished on this first read (nothing happens between
        reads, so tests never wait)."""
        if self.state.get(f"video/{video_id}") is None:
            return None
        return self.state.update(f"video/{video_id}", _processing_outcome)

    def channel_videos(self, channel: str) -> list[dict[str, Any]]:
        docs = (self.state.get(f"video/{i}") for i in self.state.get(f"videos_of/{channel}", []))
        mine = [v for v in docs if v is not None]
        return sorted(mine, key=lambda v: (v["created"], v["id"]), reverse=True)

    def index_videos(self, channel: str, ids: list[str]) -> None:
        append_new(self.state, f"videos_of/{channel}", ids)

    def ensure_indexes(self) -> None:
        """Index videos stored before the per-channel index existed (older sandbox state)."""
        if self.state.get("indexes") == 1:
            return
        by_channel: dict[str, list[str]] = {}
        for video in self.state.list_prefix("video/").values():
            by_channel.setdefault(video["channel"], []).append(video["id"])
        for channel, ids in by_channel.items():
            self.index_videos(channel, ids)
        self.state.put("indexes", 1)

    def channel_resource(self, channel: str, parts: list[str], viewer: str) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "youtube#channel", "etag": _sha(channel)[:27],
                               "id": channel}
        if "snippet" in parts:
            out["snippet"] = {"title": f"Sandbox channel {channel[-6:]}", "description": "",
                              "customUrl": f"@sandbox{channel[-6:].lower()}",
                              "publishedAt": "2024-01-01T00:00:00Z"}
        if "contentDetails" in parts:
            out["contentDetails"] = {"relatedPlaylists": {"likes": "",
                                                          "uploads": uploads_playlist(channel)}}
        if "statistics" in parts:
            out["statistics"] = self.channel_statistics(channel, viewer)
        return out

    def channel_statistics(self, channel: str, viewer: str) -> dict[str, Any]:
        """viewCount over the videos the viewer sees; subscriberCount rounded down to 3
        significant digits as YouTube shows it, and absent while the channel hides it."""
        videos = [v for v in self.channel_videos(channel) if _visible(v, viewer)]
        settings = settings_of(self.state, channel)
        stats: dict[str, Any] = {
            "viewCount": str(sum(self.video_counters(v).views for v in videos))}
        if not settings["hidden_subscribers"]:
            count = self.audience.followers(channel, self.channel_created(channel),
                                            self.ctx.clock(), settings)
            stats["subscriberCount"] = str(abbreviate(count))
        stats.update(hiddenSubscriberCount=bool(settings["hidden_subscribers"]),
                     videoCount=str(len(videos)))
        return stats

    # --- API routes ------------------------------------------------------------------------

    async def insert(self, request: Request, token: dict[str, Any]) -> Response:
        parts, body, upload_type, total = await self.read_insert(request)
        snippet = validate_snippet(body.get("snippet") if "snippet" in parts else None)
        status = validate_status(body.get("status") if "status" in parts else None,
                                 self.ctx.clock())
        upload_id = self.open_session(token, parts, snippet, status, total, upload_type)
        location = f"{request.base_url}{UPLOAD_PATH.lstrip('/')}?uploadType=resumable" \
                   f"&upload_id={upload_id}"
        return Response(status_code=200, headers={"Location": location,
                                                  "X-GUploader-UploadID": upload_id})

    async def upload_put(self, request: Request) -> Response:
        upload_id = request.query_params.get("upload_id")
        try:
            self.live_session(upload_id)
            async with self.locks.setdefault(str(upload_id), asyncio.Lock()):
                return await self.put_locked(request, self.live_session(upload_id))
        except YouTubeError as exc:
            return exc.response()

    async def videos_list(self, request: Request, token: dict[str, Any]) -> Response:
        parts = parse_parts(request.query_params.get("part"), VIDEO_PARTS)
        raw_ids = request.query_params.get("id")
        if not raw_ids:
            raise bad("missingRequiredParameter", "No filter selected. Expected one of: id, "
                                                  "chart, myRating.", "youtube.parameter")
        ids = [i.strip() for i in raw_ids.split(",") if i.strip()]
        if len(ids) > 50:
            raise bad("invalidParameter", "At most 50 video ids per request.",
                      "youtube.parameter")
        self.charge(token["project"], {"units": READ_COST})
        items = []
        for video_id in ids:
            video = self.processed(video_id) if re.fullmatch(r"[A-Za-z0-9_-]{11}", video_id) \
                else None
            if video is not None and _visible(video, token["channel"]):
                items.append(video_resource(video, parts, statistics(self.video_counters(video))))
        return _list_response("video", items)

    async def channels_list(self, request: Request, token: dict[str, Any]) -> Response:
        parts = parse_parts(request.query_params.get("part"),
                            frozenset({"id", "snippet", "contentDetails", "statistics"}))
        query = request.query_params
        if query.get("mine") == "true":
            ids = [token["channel"]]
        elif query.get("id"):
            ids = [i for i in query["id"].split(",") if re.fullmatch(r"UC[\w-]{22}", i)]
        else:
            raise bad("missingRequiredParameter", "No filter selected. Expected one of: mine, "
                                                  "id, forHandle, forUsername.",
                      "youtube.parameter")
        self.charge(token["project"], {"units": READ_COST})
        items = []
        for channel in ids:
            if channel != token["channel"] and not self.channel_videos(channel):
                continue  # a channel the sandbox has never seen
            items.append(self.channel_resource(channel, parts, token["channel"]))
        return _list_response("channel", items)

    async def playlist_items(self, request: Request, token: dict[str, Any]) -> Response:
        parts = parse_parts(request.query_params.get("part"),
                            frozenset({"id", "snippet", "contentDetails", "status"}))
        playlist = request.query_params.get("playlistId")
        if not playlist:
            raise bad("missingRequiredParameter", "No filter selected. Expected one of: "
                                                  "playlistId, id.", "youtube.parameter")
        per_page = _int_param(request, "maxResults", 5, 0, 50)
        offset = _page_offset(request.query_params.get("pageToken"))
        channel = "UC" + playlist[2:] if playlist.startswith("UU") else None
        if channel is None or (channel != token["channel"] and not self.channel_videos(channel)):
            raise bad("playlistNotFound", "The playlist identified with the request's "
                                          "playlistId parameter cannot be found.",
                      "youtube.playlistItem", status=404)
        self.charge(token["project"], {"units": READ_COST})
        videos = [v for v in self.channel_videos(channel) if _visible(v, token["channel"])]
        page = videos[offset: offset + per_page]
        items = [_playlist_item(v, playlist, offset + i, parts) for i, v in enumerate(page)]
        more = offset + per_page < len(videos) and per_page > 0
        return _list_response("playlistItem", items, total=len(videos), per_page=per_page,
                              next_token=_page_token(offset + per_page) if more else None)

    async def comment_threads(self, request: Request, token: dict[str, Any]) -> Response:
        """commentThreads.list (1 unit): top-level comments of a video (or of every video of
        a channel), newest first (`order=time`, the default) or by likes (`relevance`), each
        with totalReplyCount and at most INLINE_REPLIES of its replies (the oldest)."""
        query, viewer = request.query_params, token["channel"]
        parts = parse_parts(query.get("part"), THREAD_PARTS)
        order = query.get("order", "time")
        text_format = query.get("textFormat", "html")
        if order not in ("time", "relevance") or text_format not in ("html", "plainText"):
            raise bad("invalidParameter", "order must be time or relevance, textFormat html "
                                          "or plainText.", "youtube.parameter")
        status = query.get("moderationStatus", "published")
        if status not in ("published", "heldForReview", "likelySpam"):
            raise bad("invalidParameter", f"Invalid moderationStatus {status!r}.",
                      "youtube.parameter")
        per_page = _int_param(request, "maxResults", 20, 1, 100)
        after = _cursor_value(query.get("pageToken"), order)
        videos = self.thread_videos(request, viewer)
        self.charge(token["project"], {"units": READ_COST})
        threads: list[tuple[Comment, list[Comment], dict[str, Any]]] = []
        for video in videos if status == "published" else []:  # nothing held in the sandbox
            every = self.all_comments(video)
            threads += [(c, [r for r in every if r.parent == c.id], video)
                        for c in every if c.parent is None]
        now = self.ctx.clock()
        # Ties (comments added at the same instant) keep the order they were added in, so a
        # reversed listing shows the later one first: a stable, deterministic order.
        added = {t[0].id: i for i, t in enumerate(threads)}
        key = ((lambda t: (t[0].created, added[t[0].id])) if order == "time"
               else (lambda t: (t[0].like_count(now), t[0].created, added[t[0].id])))
        threads.sort(key=key, reverse=True)
        start = 0
        if after is not None:
            start = next((i + 1 for i, t in enumerate(threads) if t[0].id == after),
                         len(threads))
        page = threads[start:start + per_page]
        items = [self.thread_resource(top, replies, video, parts, viewer, text_format)
                 for top, replies, video in page]
        more = start + per_page < len(threads)
        return _list_response("commentThread", items, per_page=per_page,
                              next_token=_cursor_token(order, page[-1][0].id) if more else None)

    async def comments_list(self, request: Request, token: dict[str, Any]) -> Response:
        """comments.list (1 unit): the replies to a top-level comment (`parentId`), oldest
        first, paged; or comments by `id`."""
        query, viewer = request.query_params, token["channel"]
        parts = parse_parts(query.get("part"), COMMENT_PARTS)
        text_format = query.get("textFormat", "html")
        if text_format not in ("html", "plainText"):
            raise bad("invalidParameter", "textFormat must be html or plainText.",
                      "youtube.parameter")
        if bool(query.get("id")) == bool(query.get("parentId")):
            raise bad("missingRequiredParameter", "Specify exactly one of id, parentId.",
                      "youtube.parameter")
        per_page = _int_param(request, "maxResults", 20, 1, 100)
        after = _cursor_value(query.get("pageToken"), "reply")
        if query.get("id"):
            self.charge(token["project"], {"units": READ_COST})
            found = [self.find_comment(i.strip()) for i in query["id"].split(",")]
            items = [self.comment_resource(c, v, viewer, text_format) for c, v in
                     (f for f in found if f is not None) if _visible(v, viewer)]
            return _list_response("comment", [_only_parts(i, parts) for i in items])
        found_parent = self.find_comment(query["parentId"])
        if found_parent is None or not _visible(found_parent[1], viewer):
            raise bad("commentNotFound", "The comment identified by the parentId parameter "
                                         "could not be found.", "youtube.comment", status=404)
        parent, video = found_parent
        self.charge(token["project"], {"units": READ_COST})
        replies = [c for c in self.all_comments(video) if c.parent == parent.id]
        start = 0
        if after is not None:
            start = next((i + 1 for i, c in enumerate(replies) if c.id == after), len(replies))
        page = replies[start:start + per_page]
        items = [_only_parts(self.comment_resource(c, video, viewer, text_format), parts)
                 for c in page]
        more = start + per_page < len(replies)
        return _list_response("comment", items, per_page=per_page,
                              next_token=_cursor_token("reply", page[-1].id) if more else None)

    async def comments_insert(self, request: Request, token: dict[str, Any]) -> Response:
        """comments.insert (50 units): a reply to a visible top-level comment."""
        parse_parts(request.query_params.get("part"), COMMENT_PARTS)
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise bad("parseError", "Parse Error") from None
        snippet = body.get("snippet") if isinstance(body, dict) else None
        if not isinstance(snippet, dict):
            raise bad("invalidCommentMetadata", "The request metadata is invalid.",
                      "youtube.comment")
        parent_id, words = snippet.get("parentId"), snippet.get("textOriginal")
        if not isinstance(parent_id, str) or not parent_id:
            raise bad("parentIdMissing", "The comment must be linked to a parent comment: "
                                         "snippet.parentId is required.", "youtube.comment")
        if not isinstance(words, str) or not words.strip():
            raise bad("commentTextRequired", "The comment resource must specify a value for "
                                             "snippet.textOriginal.", "youtube.comment")
        if len(words) > MAX_COMMENT_CHARS:
            raise bad("commentTextTooLong", f"snippet.textOriginal has {len(words)} characters "
                                            f"(at most {MAX_COMMENT_CHARS}).", "youtube.comment")
        found = self.find_comment(parent_id)
        if found is None or not _visible(found[1], token["channel"]):
            raise bad("commentNotFound", "The comment identified by snippet.parentId could not "
                                         "be found.", "youtube.comment", status=404)
        parent, video = found
        if parent.parent is not None:
            raise bad("operationNotSupported", "Replies can only be made to top-level "
                                               "comments.", "youtube.comment")
        self.charge(token["project"], {"units": COMMENT_INSERT_COST})
        channel = token["channel"]
        reply = self.book.add(Comment(
            id=f"{parent.id}.{self.new_id('reply', 22)}", post=video["id"], parent=parent.id,
            text=words, author_id=channel, author_name=_handle(channel),
            created=self.ctx.clock(),
            kind=audience_text.OWN if channel == video["channel"] else audience_text.REPLY,
            source="api", extra={"seq": self.state.next_id("reply_seq"), "account": channel,
                                 "project": token["project"]}))
        return JSONResponse(self.comment_resource(reply, video, channel, "html"))

    async def token_endpoint(self, request: Request) -> Response:
        try:
            fields = await self.form(request)
            grant_type = fields.get("grant_type", "")
            for name in ("client_id", "client_secret", "grant_type"):
                if not fields.get(name):
                    raise OAuthError(400, "invalid_request", f"Missing required parameter: "
                                                             f"{name}")
            if grant_type != "refresh_token":
                raise OAuthError(400, "unsupported_grant_type",
                                 f"Invalid grant_type: {grant_type}")
            refresh = fields.get("refresh_token", "")
            if not refresh:
                raise OAuthError(400, "invalid_request",
                                 "Missing required parameter: refresh_token")
            self.check_client(fields["client_id"], fields["client_secret"])
            return JSONResponse(self.issue(refresh, fields["client_id"]))
        except OAuthError as exc:
            return exc.response()

    async def revoke_endpoint(self, request: Request) -> Response:
        try:
            token = (await self.form(request)).get("token", "")
        except OAuthError as exc:
            return exc.response()
        if not token or not self.revoke(token):
            return OAuthError(400, "invalid_token", "Token expired or revoked").response()
        return JSONResponse({})

    @staticmethod
    async def not_found(request: Request, exc: Exception) -> Response:
        return bad("notFound", f"Not Found: {request.method} {request.url.path}",
                   status=404).response()

    @staticmethod
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return bad("methodNotAllowed", f"Method Not Allowed: {request.method}",
                   status=405).response()

    # --- control routes --------------------------------------------------------------------

    @staticmethod
    def control(handler: Callable[[Request], Awaitable[Any]]) -> _Endpoint:
        """A control route: its value as JSON, errors as {"error": message}."""
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await handler(request))
            except YouTubeError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except BadControlBody as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return endpoint

    async def published(self, request: Request) -> Any:
        account = request.query_params.get("account") or request.query_params.get("channel")
        videos = [v for v in self.state.list_prefix("video/").values()
                  if account in (None, "", v["channel"])]
        videos.sort(key=lambda v: (v["created"], v["id"]))
        keys = ("id", "channel", "title", "description", "privacyStatus",
                "containsSyntheticMedia", "selfDeclaredMadeForKids", "sha256", "size",
                "uploadStatus", "upload_id", "project")
        return {"videos": [{**{k: v.get(k) for k in keys}, "created": _rfc3339(v["created"])}
                           for v in videos]}

    async def published_video(self, request: Request) -> Any:
        """One published video by id: what a status link opens."""
        wanted = request.path_params["video_id"]
        for video in (await self.published(request))["videos"]:
            if video["id"] == wanted:
                return video
        raise YouTubeError(404, "videoNotFound", f"no published video {wanted}")

    async def expire_token(self, request: Request) -> Any:
        token = (await read_control_body(request)).get("access_token")
        key = f"token/{_sha(token)}" if isinstance(token, str) else ""
        if not key or self.state.get(key) is None:
            raise bad("notFound", "unknown access_token", status=404)
        self.state.update(key, lambda r: {**r, "expired": True})
        return {"expired": True}

    async def revoke_token(self, request: Request) -> Any:
        token = (await read_control_body(request)).get("refresh_token")
        if not isinstance(token, str) or not self.revoke(token):
            raise bad("notFound", "unknown refresh_token", status=404)
        return {"revoked": True}

    async def expire_session(self, request: Request) -> Any:
        body = await read_control_body(request)
        upload_id = body.get("upload_id")
        if isinstance(body.get("session_uri"), str):
            upload_id = parse_qs(urlsplit(body["session_uri"]).query).get("upload_id", [""])[0]
        key = f"session/{upload_id}"
        if not isinstance(upload_id, str) or self.state.get(key) is None:
            raise bad("notFound", "unknown upload session", status=404)
        self.state.update(key, lambda s: {**s, "expired": True})
        return {"expired": True, "upload_id": upload_id}

    async def config_route(self, request: Request) -> Any:
        body = await read_control_body(request)
        project = body.get("client_id")
        known = {*_CONFIG_RULES, "client_id", "units_remaining", "inserts_remaining",
                 "reset_usage"}
        if unknown := sorted(set(body) - known):
            raise bad("badRequest", f"unknown config fields {unknown}; known: {sorted(known)}")
        settings = {k: v for k, v in body.items() if k in _CONFIG_RULES}
        for name, value in settings.items():
            check, description = _CONFIG_RULES[name]
            if not check(value):
                raise bad("badRequest", f"{name} must be {description}")
        if project is None:
            if {"units_remaining", "inserts_remaining", "reset_usage"} & set(body):
                raise bad("badRequest", "usage changes need a client_id")
            self.state.update("config", lambda c: {**c, **settings}, default={})
            return {"config": self.config(None)}
        if not isinstance(project, str) or not project:
            raise bad("badRequest", "client_id must be a string")
        self.state.update(f"project/{project}", lambda c: {**c, **settings}, default={})
        self.set_usage(project, body)
        return self.quota_view(project)

    def set_usage(self, project: str, body: dict[str, Any]) -> None:
        caps = self.limits(self.config(project))
        usage_key = f"usage/{project}/{quota_day(self.ctx.clock())}"
        if body.get("reset_usage"):
            self.state.put(usage_key, {})
        for field, bucket in (("units_remaining", "units"), ("inserts_remaining", "inserts")):
            value = body.get(field)
            if value is None:
                continue
            if not _is_int(value) or value < 0:
                raise bad("badRequest", f"{field} must be an integer >= 0")
            cap = caps.get(bucket, self.config(project)["inserts_per_day"])
            self.state.update(usage_key,
                              lambda u, b=bucket, c=cap, v=value: {**u, b: max(0, c - v)},
                              default={})

    async def quota_route(self, request: Request) -> Any:
        project = request.query_params.get("client_id")
        if not project:
            raise bad("badRequest", "client_id is required")
        return self.quota_view(project)

    async def chunk_faults(self, request: Request) -> Any:
        if request.method == "GET":
            return {"faults": self.state.get("chunk_faults", [])}
        if request.method == "DELETE":
            self.state.put("chunk_faults", [])
            return {"faults": []}
        fault = _chunk_fault_spec(await read_control_body(request))
        return {"faults": self.state.update("chunk_faults", lambda f: [*f, fault], default=[])}

    async def next_uploads(self, request: Request) -> Any:
        body = await read_control_body(request)
        outcome, count = body.get("outcome"), body.get("count", 1)
        reason, account = body.get("reason"), body.get("account")
        if outcome not in ("failed", "rejected"):
            raise bad("badRequest", "outcome must be 'failed' or 'rejected'")
        if not _is_int(count) or count < 1:
            raise bad("badRequest", "count must be an integer >= 1")
        if reason is not None and not isinstance(reason, str):
            raise bad("badRequest", "reason must be a string")
        entry = {"outcome": outcome, "reason": reason}
        key = f"next_uploads/{account or '*'}"
        return {"queue": self.state.update(key, lambda q: [*q, *([entry] * count)],
                                           default=[])}

    async def audience_route(self, request: Request) -> Any:
        try:
            return apply_settings(self.state, await read_control_body(request))
        except BadControlBody:
            raise
        except ValueError as exc:
            raise bad("badRequest", str(exc)) from None

    async def comments_route(self, request: Request) -> Any:
        """POST: add a comment (or reply) to a video; GET ?post=: every comment on it."""
        now = self.ctx.clock()
        if request.method == "GET":
            video = self.state.get(f"video/{request.query_params.get('post', '')}")
            if video is None:
                raise bad("notFound", "give ?post=<video id> of a published video", status=404)
            return [comment_view(c, now) for c in self.all_comments(video)]
        try:
            want = control_comment_request(await read_control_body(request), now)
        except BadControlBody:
            raise
        except ValueError as exc:
            raise bad("badRequest", str(exc)) from None
        video = self.state.get(f"video/{want['post']}")
        if video is None or not _audience_sees(video):
            raise bad("notFound", f"no public or unlisted processed video {want['post']}",
                      status=404)
        parent = want["parent"]
        if parent is not None:
            found = self.find_comment(parent)
            if found is None or found[1]["id"] != video["id"] or found[0].parent is not None:
                raise bad("notFound", f"no top-level comment {parent} on video {video['id']}",
                          status=404)
        owner = self.owner(video["channel"])
        name = owner.author_name if want["own"] else (want["author"] or "sandbox_fan")
        comment_id = (f"{parent}.{self.new_id('reply', 22)}" if parent
                      else f"UgC{self.new_id('comment', 17)}AaABAg")
        comment = Comment(
            id=comment_id, post=video["id"], parent=parent, text=want["text"],
            author_id=owner.author_id if want["own"] else self.audience.author_id(name),
            author_name=name, created=want["at"],
            kind=audience_text.OWN if want["own"] else want["kind"], hidden=want["hidden"],
            source="control")
        return comment_view(self.book.add(comment), now)

    async def seed_posts(self, request: Request) -> Any:
        """Processed videos without an upload, for tests and benchmarks of the reads."""
        try:
            want = seed_request(await read_control_body(request), self.ctx.clock(), "channel",
                                ("privacyStatus", "title", "description"))
        except BadControlBody:
            raise
        except ValueError as exc:
            raise bad("badRequest", str(exc)) from None
        channel, privacy = want["account"], want.get("privacyStatus", "public")
        if not re.fullmatch(r"UC[\w-]{22}", channel) or privacy not in PRIVACY:
            raise bad("badRequest", f"channel must be a channel id (UC + 22 characters), "
                                    f"privacyStatus one of {', '.join(PRIVACY)}")
        self.channel_created(channel)
        videos = {}
        for number, at in zip(self.state.next_ids("video", want["count"]), want["times"],
                              strict=True):
            rng = self.ctx.rng("video", number)
            video_id = "".join(rng.choice(_ID_ALPHABET) for _ in range(11))
            videos[f"video/{video_id}"] = {
                "id": video_id, "channel": channel, "project": "sandbox-seed", "upload_id": None,
                "created": at, "title": str(want.get("title", f"Seeded short {video_id}")),
                "description": str(want.get("description", "AI-generated. #Shorts")),
                "tags": [], "categoryId": "22", "defaultLanguage": None,
                "privacyStatus": privacy, "publishAt": None, "license": "youtube",
                "embeddable": None, "publicStatsViewable": None,
                "selfDeclaredMadeForKids": False, "containsSyntheticMedia": True,
                "uploadStatus": "processed", "pending_outcome": None, "outcome_reason": None,
                "failureReason": None, "rejectionReason": None, "sha256": _sha(video_id),
                "size": 0, "content_type": "video/mp4", "seeded": True}
        self.state.put_many(videos)
        self.index_videos(channel, [v["id"] for v in videos.values()])
        keys = ("id", "channel", "title", "description", "privacyStatus",
                "containsSyntheticMedia", "selfDeclaredMadeForKids", "sha256", "size",
                "uploadStatus", "upload_id", "project")
        return {"videos": [{**{k: v.get(k) for k in keys}, "created": _rfc3339(v["created"])}
                           for v in videos.values()]}

    async def replies_route(self, request: Request) -> Any:
        account = request.query_params.get("account") or request.query_params.get("channel")
        post = request.query_params.get("post")
        now = self.ctx.clock()
        return [comment_view(c, now) for c in self.book.api_replies()
                if account in (None, c.extra.get("account")) and post in (None, c.post)]


    def routes(self) -> list[Route]:
        api, control = self.api, self.control
        return [
            Route(UPLOAD_PATH, api(self.insert), methods=["POST"]),
            Route(UPLOAD_PATH, self.upload_put, methods=["PUT"]),
            Route(f"{API}/videos", api(self.videos_list), methods=["GET"]),
            Route(f"{API}/channels", api(self.channels_list), methods=["GET"]),
            Route(f"{API}/playlistItems", api(self.playlist_items), methods=["GET"]),
            Route(f"{API}/commentThreads", api(self.comment_threads), methods=["GET"]),
            Route(f"{API}/comments", api(self.comments_list), methods=["GET"]),
            Route(f"{API}/comments", api(self.comments_insert), methods=["POST"]),
            Route("/oauth2/token", self.token_endpoint, methods=["POST"]),
            Route("/oauth2/revoke", self.revoke_endpoint, methods=["POST"]),
            Route("/_control/published", control(self.published), methods=["GET"]),
            Route("/_control/published/{video_id}", control(self.published_video),
                  methods=["GET"]),
            Route("/_control/expire_token", control(self.expire_token), methods=["POST"]),
            Route("/_control/revoke_token", control(self.revoke_token), methods=["POST"]),
            Route("/_control/expire_session", control(self.expire_session), methods=["POST"]),
            Route("/_control/config", control(self.config_route), methods=["POST"]),
            Route("/_control/quota", control(self.quota_route), methods=["GET"]),
            Route("/_control/chunk_faults", control(self.chunk_faults),
                  methods=["GET", "POST", "DELETE"]),
            Route("/_control/next_uploads", control(self.next_uploads), methods=["POST"]),
            Route("/_control/audience", control(self.audience_route), methods=["POST"]),
            Route("/_control/comments", control(self.comments_route),
                  methods=["GET", "POST"]),
            Route("/_control/replies", control(self.replies_route), methods=["GET"]),
            Route("/_control/seed_posts", control(self.seed_posts), methods=["POST"]),
        ]

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app, error_response=error_response)


class _Dropped(Response):
    """Closes the connection instead of answering: the client never hears back."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await cut_connection(scope, receive, flush=False)


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def create(ctx: SystemContext) -> System:
    return YouTubeSystem(ctx).system()
