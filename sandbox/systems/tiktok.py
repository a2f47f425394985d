"""TikTok Content Posting API (Direct Post, FILE_UPLOAD) and OAuth token refresh.

Routes below the `/tiktok` mount (the API host, https://open.tiktokapis.com; the upload host's
`/video/` lives on the same mount), PROTOCOLS.md section 1 and its Addenda:

- `POST /v2/post/publish/creator_info/query/` -> `{creator_avatar_url, creator_username,
  creator_nickname, privacy_level_options, comment_disabled, duet_disabled, stitch_disabled,
  max_video_post_duration_sec}` (20 a minute per token)
- `POST /v2/post/publish/video/init/` `{"post_info": {title, privacy_level, disable_duet,
  disable_comment, disable_stitch, video_cover_timestamp_ms, brand_content_toggle,
  brand_organic_toggle, is_aigc}, "source_info": {"source": "FILE_UPLOAD", video_size,
  chunk_size, total_chunk_count}}` -> `{publish_id: "v_pub_file~v2.<n>", upload_url}`
  (6 a minute per token). PULL_FROM_URL answers 403 url_ownership_unverified (no domain of the
  sandbox's app is verified).
- `PUT /video/?upload_id=&upload_token=` (the upload_url; no Authorization): one chunk with
  `Content-Type: video/mp4|video/quicktime|video/webm`, `Content-Range: bytes first-last/total`
  and the chunk's exact length. 206 for an intermediate chunk, 201 for the final one.
- `POST /v2/post/publish/status/fetch/` `{"publish_id"}` -> `{status, fail_reason?,
  publicaly_available_post_id: [...], uploaded_bytes}` (30 a minute per token; the field name is
  TikTok's own misspelling)
- `POST /v2/oauth/token/` (form: client_key, client_secret, grant_type=refresh_token,
  refresh_token) -> `{access_token, expires_in, open_id, refresh_expires_in, refresh_token,
  scope, token_type: "Bearer"}`
- Display API reads (ANALYTICS_OPS.md section 3), numbers from the sandbox audience
  (`sandbox/audience.py`): `POST /v2/video/query/?fields=id,view_count,like_count,
  comment_count,share_count,...` `{"filters": {"video_ids": [1..20 ids]}}` -> `{videos,
  cursor: 0, has_more: false}`: only the token account's published posts, asked by their
  post id; SELF_ONLY posts (all an unaudited app makes) are absent unless the account's
  `query_self_only` is set (then also by publish id). `GET /v2/user/info/?fields=
  follower_count,following_count,likes_count,video_count,...` -> `{user}`. Each 600 a
  minute per endpoint and token (`video_query_per_minute`, `user_info_per_minute`). A missing
  or unknown field, or more than 20 ids, is 400 invalid_params. TikTok offers no comment API
  to this kind of app, so the sandbox has none.

Envelope of the v2 API: `{"data": {...}, "error": {"code": "ok", "message": "", "log_id"}}`;
errors carry TikTok's codes and HTTP statuses: 400 invalid_params /
privacy_level_option_mismatch / invalid_file_upload, 401 access_token_invalid, 403
spam_risk_too_many_posts / unaudited_client_can_only_post_to_private_accounts /
url_ownership_unverified, 429 rate_limit_exceeded (no Retry-After: TikTok documents none; the
window is 60 s), 5xx internal_error. OAuth errors use the OAuth shape `{"error",
"error_description", "log_id"}`: 400 invalid_request / invalid_grant / unsupported_grant_type
(the HTTP status TikTok uses for these is not documented; RFC 6749's is used).

Accounts and tokens. An account is a name (`[A-Za-z0-9_-]{1,64}`), created on first sight.
- Access tokens `act.sandbox.<account>` or `act.sandbox.<account>.<anything>` are accepted
  without being issued ("implicit"), so each test can be its own account, and several tokens
  of one account have separate rate budgets. Tokens issued by a refresh look the same, are
  recorded and expire after `access_ttl` (7200 s, TikTok's 2 hours).
- `POST /_control/expire_token` `{"account"}` expires every access token of the account issued
  so far, implicit ones included (then only tokens from a later refresh work); `{"access_token"}`
  expires just that one. Expired tokens get 401 access_token_invalid.
- Refresh tokens ROTATE: each account has exactly one valid refresh token. Before its first
  refresh that is `rft.sandbox.<account>`; each refresh returns a new one and the one sent stops
  working (invalid_grant). `POST /_control/accounts` `{"account", ...config}` issues a fresh
  pair (rotating the refresh token too).

Chunk rules (TikTok's media transfer guide, MB = MiB as in TikTok's own SDKs), checked at init
by `chunk_rule_violation`: chunk_size 5..64 MB; total_chunk_count = floor(video_size /
chunk_size), 1..1000; the final chunk takes the trailing bytes (up to 128 MB); a video under
5 MB is one chunk with chunk_size = video_size; one over 64 MB needs at least two chunks. A
bad plan is 400 invalid_params "The chunk size is invalid: ...". Chunks must arrive in order
with exactly the declared ranges (chunk i is bytes i*chunk_size.. ; the last one runs to the
end): a missing or malformed Content-Range, another total, an out-of-order or unknown range,
or a body of another length is 416. Sandbox choice: re-sending a chunk already received (the
same range, the same bytes) is accepted again with the same status (206, or 201 for the last)
and changes nothing, so a client may retry a chunk whose answer it lost; the same range with
other bytes is 400 invalid_file_upload. The upload_url works for `upload_ttl` seconds (3600,
"valid for one hour"); then 403. Unknown upload_id: 404; wrong upload_token: 403.

After the final chunk the video is checked like TikTok's processing would: an MP4/QuickTime
must be a chain of ISO BMFF boxes (an MP4's first one `ftyp`) holding a `moov` whose `mvhd`
duration is at most the account's max_video_post_duration_sec; a WebM must start with the EBML
magic. A failure ends the post FAILED with fail_reason file_format_check_failed /
duration_check_failed. Otherwise the post is published at that moment (TikTok publishes
whether or not anyone polls) and appears in `/_control/published`.

Status, per publish (advancing only when polled, so tests never wait): PROCESSING_UPLOAD until
the last chunk; then `processing_polls` (1) more polls of PROCESSING_UPLOAD; then
PUBLISH_COMPLETE (or FAILED with fail_reason). `publicaly_available_post_id` is `[]` for
`moderation_polls` (0) polls after completion, then `[post_id]`; SELF_ONLY posts never get a
public id. A post whose upload never finishes stays PROCESSING_UPLOAD and is never published.

Limits and rules per account (config): privacy_level must be one of the account's
privacy_level_options (400 privacy_level_option_mismatch; `private` accounts offer
FOLLOWER_OF_CREATOR instead of PUBLIC_TO_EVERYONE); `audited` false (the app is unaudited)
allows only SELF_ONLY (403 unaudited_client_can_only_post_to_private_accounts); branded content
cannot be SELF_ONLY; titles up to 2200 UTF-16 units; `daily_cap` (15) accepted inits per 24 h
(403 spam_risk_too_many_posts); per-token limits per 60 s window (429 rate_limit_exceeded;
every authenticated request counts, refused ones do not). `post_info.is_aigc` is recorded
(missing counts as false, as TikTok's default). Every time here (rate windows, the rolling
24 h of the daily cap, token and upload_url expiry, timestamps) is the sandbox clock's.

Control routes (no auth; `account` in the JSON body or the query):
- `POST /_control/accounts` `{"account", ...config}` -> `{account, open_id, access_token,
  refresh_token, expires_in, refresh_expires_in}`
- `POST /_control/config` `{"account"?, ...}`: that account's overrides, else the defaults of
  every account. Fields: audited, private, daily_cap, max_video_post_duration_sec,
  processing_polls, moderation_polls, upload_ttl, access_ttl, refresh_ttl,
  creator_info_per_minute, init_per_minute, status_per_minute, video_query_per_minute,
  user_info_per_minute, query_self_only, `reset_limits: true` (forget the account's rate and
  daily counts).
- `GET /_control/state?account=`: effective config, token epoch, inits in the last 24 h.
- `POST /_control/expire_token` `{"account"}` | `{"access_token"}`
- `POST /_control/next_posts` `{"account"?, "fail_reason": "spam_risk_text", "count": 1}`: the
  next `count` accepted inits (of the account, else of anyone) end FAILED with that reason
  after their upload ("accepted then FAILED"); `DELETE` clears the queue.
- `GET /_control/published?account=`: every published post: publish_id, post_id, account,
  open_id, title, is_aigc, privacy_level, video_sha256 and video_size of the uploaded bytes,
  content_type, created_at, completed_at, status (as last shown to the client).
- `GET /_control/posts?account=`: every publish, in any state, with outcome and fail_reason.
- `POST /_control/audience` `{"account"?, ...}`: the audience settings (`sandbox/audience.py`).
- `POST /_control/seed_posts` `{"account", "count", "at"?, "spacing"?, "privacy_level"?,
  "title"?, "is_aigc"?}`: published posts without an upload (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.audience import Audience, Counters, apply_settings, seed_request, settings_of
from sandbox.control import BadControlBody, read_control_body
from sandbox.state import pop_first
from sandbox.system import System, SystemContext

API = "/v2/post/publish"
MB = 1024 * 1024
MIN_CHUNK, MAX_CHUNK, MAX_FINAL_CHUNK, MAX_CHUNKS = 5 * MB, 64 * MB, 128 * MB, 1000
UPLOAD_TYPES = ("video/mp4", "video/quicktime", "video/webm")
PUBLIC_OPTIONS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
PRIVATE_OPTIONS = ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
ALL_PRIVACY = sorted({*PUBLIC_OPTIONS, *PRIVATE_OPTIONS})
TITLE_MAX_UTF16 = 2200
SCOPE = "user.info.basic,user.info.stats,video.list,video.publish,video.upload"
DAY = 86400.0
WINDOW = 60.0
ACCOUNT = re.compile(r"[A-Za-z0-9_-]{1,64}")
ACCESS_TOKEN = re.compile(r"act\.sandbox\.([A-Za-z0-9_-]{1,64})(?:\.[A-Za-z0-9_-]{1,64})?")
FIRST_REFRESH = re.compile(r"rft\.sandbox\.([A-Za-z0-9_-]{1,64})")
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
DEFAULTS: dict[str, Any] = {
    "audited": True, "private": False, "daily_cap": 15, "max_video_post_duration_sec": 600,
    "processing_polls": 1, "moderation_polls": 0, "upload_ttl": 3600.0,
    "access_ttl": 7200, "refresh_ttl": 180 * 86400,
    "creator_info_per_minute": 20, "init_per_minute": 6, "status_per_minute": 30,
    "video_query_per_minute": 600, "user_info_per_minute": 600, "query_self_only": False,
}
_CONFIG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "audited": (lambda v: isinstance(v, bool), "true or false"),
    "private": (lambda v: isinstance(v, bool), "true or false"),
    "daily_cap": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "max_video_post_duration_sec": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "processing_polls": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "moderation_polls": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "upload_ttl": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
    "access_ttl": (lambda v: _is_int(v) and v >= 0, "an integer number of seconds >= 0"),
    "refresh_ttl": (lambda v: _is_int(v) and v >= 0, "an integer number of seconds >= 0"),
    "creator_info_per_minute": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "init_per_minute": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "status_per_minute": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "video_query_per_minute": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "user_info_per_minute": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "query_self_only": (lambda v: isinstance(v, bool), "true or false"),
}
VIDEO_FIELDS = ("id", "create_time", "title", "video_description", "duration", "height",
                "width", "cover_image_url", "share_url", "embed_link", "embed_html",
                "like_count", "comment_count", "share_count", "view_count")
USER_FIELDS = ("open_id", "union_id", "avatar_url", "avatar_url_100", "avatar_large_url",
               "display_name", "bio_description", "profile_deep_link", "is_verified",
               "username", "follower_count", "following_count", "likes_count", "video_count")
MAX_QUERY_IDS = 20
_STATUS_CODES = {400: "invalid_params", 401: "access_token_invalid", 403: "permission_denied",
                 404: "not_found", 405: "method_not_allowed", 429: "rate_limit_exceeded"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:24]


def open_id_of(account: str) -> str:
    return "-000" + hashlib.sha256(f"open_id:{account}".encode()).hexdigest()[:28]


# --- the chunk rules -------------------------------------------------------------------------

def chunk_rule_violation(video_size: int, chunk_size: int, total_chunk_count: int) -> str | None:
    """What is wrong with this FILE_UPLOAD plan under TikTok's chunk rules, or None."""
    if video_size < 1:
        return "video_size must be at least 1 byte"
    if video_size < MIN_CHUNK:
        if chunk_size != video_size or total_chunk_count != 1:
            return ("a video under 5 MB must be sent as one chunk with chunk_size equal to "
                    "video_size")
        return None
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        return f"chunk_size must be between {MIN_CHUNK} and {MAX_CHUNK} bytes (5-64 MB)"
    expected = video_size // chunk_size
    if total_chunk_count != expected:
        return f"total_chunk_count must be floor(video_size / chunk_size) = {expected}"
    if not 1 <= total_chunk_count <= MAX_CHUNKS:
        return f"total_chunk_count must be between 1 and {MAX_CHUNKS}"
    if video_size > MAX_CHUNK and total_chunk_count < 2:
        return "a video over 64 MB must be sent in more than one chunk"
    if video_size - (total_chunk_count - 1) * chunk_size > MAX_FINAL_CHUNK:
        return "the final chunk may be at most 128 MB"
    return None


def chunk_ranges(video_size: int, chunk_size: int, count: int) -> list[tuple[int, int]]:
    """(first, last) byte of each chunk, inclusive; the last chunk runs to the end."""
    return [(i * chunk_size, video_size - 1 if i == count - 1 else (i + 1) * chunk_size - 1)
            for i in range(count)]


# --- what TikTok's processing would check ----------------------------------------------------

def _mvhd_seconds(moov: bytes) -> float | None:
    offset = 0
    while offset + 8 <= len(moov):
        size = int.from_bytes(moov[offset:offset + 4], "big")
        kind = moov[offset + 4:offset + 8]
        if size < 8 or offset + size > len(moov):
            return None
        if kind == b"mvhd":
            body = moov[offset + 8:offset + size]
            if body[:1] == b"\x01" and len(body) >= 32:
                scale, length = body[20:24], body[24:32]
            elif len(body) >= 20:
                scale, length = body[12:16], body[16:20]
            else:
                return None
            timescale = int.from_bytes(scale, "big")
            return int.from_bytes(length, "big") / timescale if timescale else None
        offset += size
    return None


def inspect_video(path: Path, content_type: str) -> tuple[str | None, float | None]:
    """(fail_reason or None, duration in seconds if known) for an uploaded file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if content_type == "video/webm":
            return (None, None) if f.read(4) == EBML_MAGIC else ("file_format_check_failed",
                                                                 None)
        offset, kinds, duration = 0, [], None
        while offset < size:
            f.seek(offset)
            head = f.read(8)
            if len(head) < 8:
                return "file_format_check_failed", None
            box, kind, header = int.from_bytes(head[:4], "big"), head[4:8], 8
            if box == 1:
                box, header = int.from_bytes(f.read(8), "big"), 16
            elif box == 0:
                box = size - offset
            if box < header or offset + box > size:
                return "file_format_check_failed", None
            kinds.append(kind)
            if kind == b"moov" and box <= 64 * MB:
                f.seek(offset + header)
                duration = _mvhd_seconds(f.read(box - header))
            offset += box
    # Old QuickTime files may start with `wide`/`mdat` instead of `ftyp`; MP4s may not.
    needs_ftyp = content_type == "video/mp4"
    if b"moov" not in kinds or duration is None or (needs_ftyp and kinds[0] != b"ftyp"):
        return "file_format_check_failed", None
    return None, duration


class TikTokError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _field(obj: dict[str, Any], name: str, check: Callable[[Any], bool], what: str,
           where: str, default: Any = None, required: bool = False) -> Any:
    if name not in obj or obj[name] is None:
        if required:
            raise TikTokError(400, "invalid_params", f"{where}.{name} is required")
        return default
    if not check(obj[name]):
        raise TikTokError(400, "invalid_params", f"{where}.{name} must be {what}")
    return obj[name]


async def _json_body(request: Request) -> dict[str, Any]:
    if _media_type(request) != "application/json":
        raise TikTokError(400, "invalid_params",
                          "Content-Type must be application/json; charset=UTF-8")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise TikTokError(400, "invalid_params", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise TikTokError(400, "invalid_params", "The request body must be a JSON object")
    return body


def _invalid_token(detail: str) -> TikTokError:
    return TikTokError(401, "access_token_invalid",
                       f"The access token is invalid or not found in the request. ({detail})")


def _source_info_of(body: dict[str, Any]) -> dict[str, int]:
    info = body.get("source_info")
    if not isinstance(info, dict):
        raise TikTokError(400, "invalid_params", "source_info is required")
    source = info.get("source")
    if source == "PULL_FROM_URL":
        raise TikTokError(403, "url_ownership_unverified",
                          "The domain or URL prefix of video_url is not verified for this app")
    if source != "FILE_UPLOAD":
        raise TikTokError(400, "invalid_params",
                          "source_info.source must be FILE_UPLOAD or PULL_FROM_URL")
    sizes = {name: _field(info, name, _is_int, "an integer", "source_info", required=True)
             for name in ("video_size", "chunk_size", "total_chunk_count")}
    problem = chunk_rule_violation(sizes["video_size"], sizes["chunk_size"],
                                   sizes["total_chunk_count"])
    if problem:
        raise TikTokError(400, "invalid_params", f"The chunk size is invalid: {problem}")
    return sizes


def _post_fields(info: dict[str, Any]) -> dict[str, Any]:
    """post_info's fields, checked one by one (the account's rules come after)."""
    def flag(name: str) -> bool:
        return bool(_field(info, name, lambda v: isinstance(v, bool), "true or false",
                           "post_info", False))

    title = _field(info, "title", lambda v: isinstance(v, str), "a string", "post_info", "")
    if len(title.encode("utf-16-le")) // 2 > TITLE_MAX_UTF16:
        raise TikTokError(400, "invalid_params",
                          f"post_info.title is longer than {TITLE_MAX_UTF16} UTF-16 units")
    privacy = _field(info, "privacy_level", lambda v: v in ALL_PRIVACY,
                     f"one of {ALL_PRIVACY}", "post_info", required=True)
    cover = _field(info, "video_cover_timestamp_ms", lambda v: _is_int(v) and v >= 0,
                   "an integer >= 0", "post_info")
    return {"title": title, "privacy_level": privacy, "video_cover_timestamp_ms": cover,
            **{name: flag(name) for name in (
                "disable_duet", "disable_comment", "disable_stitch", "brand_content_toggle",
                "brand_organic_toggle", "is_aigc")}}


def _expected_range(doc: dict[str, Any]) -> str:
    ranges = chunk_ranges(doc["video_size"], doc["chunk_size"], doc["total_chunk_count"])
    received = len(doc["chunks"])
    if received >= len(ranges):
        return "nothing more (the upload is complete)"
    first, last = ranges[received]
    return f"bytes {first}-{last}/{doc['video_size']}"


async def _receive_chunk(request: Request, path: Path | None, first: int,
                         size: int) -> tuple[int, str]:
    """Stream the body (to `path` at `first` when given); (bytes seen, sha256)."""
    digest, seen = hashlib.sha256(), 0
    handle = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
        handle.seek(first)
    try:
        async for piece in request.stream():
            seen += len(piece)
            digest.update(piece)
            if handle is not None and seen <= size:
                handle.write(piece)
    finally:
        if handle is not None:
            handle.close()
    return seen, digest.hexdigest()


def _examine(path: Path, content_type: str) -> tuple[str, str | None, float | None]:
    """(sha256, fail_reason or None, duration) of an uploaded file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MB):
            digest.update(block)
    problem, seconds = inspect_video(path, content_type)
    return digest.hexdigest(), problem, seconds


async def _oauth_form(request: Request) -> dict[str, str]:
    """The checked form of POST /v2/oauth/token (a refresh_token grant), else OAuthError."""
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise OAuthError(400, "invalid_request", "Content-Type must be "
                                                 "application/x-www-form-urlencoded")
    raw = await request.body()
    try:
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", "The body is not valid form data") from None
    for name in ("client_key", "client_secret", "grant_type"):
        if not form.get(name):
            raise OAuthError(400, "invalid_request", f"{name} is required")
    if form["grant_type"] == "authorization_code":
        raise OAuthError(400, "invalid_grant", "The sandbox issues no authorization "
                                               "codes: use grant_type=refresh_token")
    if form["grant_type"] != "refresh_token":
        raise OAuthError(400, "unsupported_grant_type",
                         f"grant_type {form['grant_type']} is not supported")
    if not form.get("refresh_token"):
        raise OAuthError(400, "invalid_request", "refresh_token is required")
    return form


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _account_param(value: Any) -> str | None:
    if isinstance(value, str) and ACCOUNT.fullmatch(value):
        return value
    return None


def _settings_of(body: dict[str, Any]) -> dict[str, Any] | str:
    known = {*_CONFIG_RULES, "account", "reset_limits"}
    unknown = sorted(set(body) - known)
    if unknown:
        return f"unknown fields {unknown}; known: {sorted(known)}"
    settings = {k: v for k, v in body.items() if k in _CONFIG_RULES}
    for name, value in settings.items():
        check, description = _CONFIG_RULES[name]
        if not check(value):
            return f"{name} must be {description}"
    return settings


def _fields_param(request: Request, allowed: tuple[str, ...]) -> list[str]:
    """The `fields` query parameter of a Display API read, every name checked."""
    raw = request.query_params.get("fields")
    if raw is None or not raw.strip():
        raise TikTokError(400, "invalid_params", "The fields query parameter is required")
    fields = list(dict.fromkeys(f.strip() for f in raw.split(",") if f.strip()))
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise TikTokError(400, "invalid_params", f"Invalid fields: {', '.join(unknown)}; "
                                                 f"allowed: {', '.join(allowed)}")
    return fields


def _video_ids_of(body: dict[str, Any]) -> list[str]:
    """filters.video_ids of a /v2/video/query/ body: 1..20 ids."""
    filters = body.get("filters")
    ids = filters.get("video_ids") if isinstance(filters, dict) else None
    if not isinstance(ids, list) or not ids:
        raise TikTokError(400, "invalid_params", "filters.video_ids must be a non-empty list "
                                                 "of video ids")
    if len(ids) > MAX_QUERY_IDS:
        raise TikTokError(400, "invalid_params", f"filters.video_ids can hold at most "
                                                 f"{MAX_QUERY_IDS} ids, not {len(ids)}")
    out = []
    for value in ids:
        if isinstance(value, str) and value.strip():
            out.append(value.strip())
        elif _is_int(value) and value >= 0:
            out.append(str(value))
        else:
            raise TikTokError(400, "invalid_params", f"filters.video_ids holds an invalid "
                                                     f"video id: {value!r}")
    return list(dict.fromkeys(out))


def _post_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "publish_id": doc["publish_id"], "post_id": doc["post_id"],
        "account": doc["account"], "open_id": open_id_of(doc["account"]),
        "title": doc["title"], "is_aigc": doc["is_aigc"],
        "privacy_level": doc["privacy_level"], "disable_comment": doc["disable_comment"],
        "video_sha256": doc["video_sha256"], "video_size": doc["video_size"],
        "content_type": doc["content_type"], "created_at": _iso(doc["created"]),
        "completed_at": _iso(doc["completed"]) if doc["completed"] else None,
        "status": doc["shown"],
    }


class TikTokSystem:
    """TikTok's Content Posting API (Direct Post by FILE_UPLOAD) and its OAuth refresh, with
    per-account rules, rate limits, a daily cap and polled publish statuses."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.spool = ctx.state.store.state_dir / "tiktok" / "uploads"
        self.log_numbers = itertools.count(1)
        self.audience = Audience(ctx.rng, "tiktok")
        self.ensure_indexes()

    # --- helpers: envelopes ----------------------------------------------------------------

    def log_id(self) -> str:
        number = next(self.log_numbers)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.ctx.clock()))
        return f"{stamp}{self.ctx.rng('log', number).getrandbits(72):018X}"

    def ok(self, data: Any) -> JSONResponse:
        return JSONResponse({"data": data,
                             "error": {"code": "ok", "message": "", "log_id": self.log_id()}})

    def fail(self, exc: TikTokError) -> JSONResponse:
        return JSONResponse({"data": {}, "error": {"code": exc.code, "message": exc.message,
                                                   "log_id": self.log_id()}},
                            status_code=exc.status)

    def oauth_fail(self, exc: OAuthError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "error_description": exc.description,
                             "log_id": self.log_id()}, status_code=exc.status)

    def random_token(self, kind: str, account: str, bits: int) -> str:
        rng = self.ctx.rng(kind, account, self.state.next_id(kind))
        return f"{rng.getrandbits(bits):0{bits // 4}x}"

    # --- helpers: accounts and config ------------------------------------------------------

    def config(self, account: str | None) -> dict[str, Any]:
        merged = {**DEFAULTS, **self.state.get("config", {})}
        if account is not None:
            merged.update(self.state.get(f"account/{account}", {}).get("config", {}))
        return merged

    def account_doc(self, name: str) -> dict[str, Any]:
        existing = self.state.get(f"account/{name}")
        if existing is not None:
            return existing
        return self.state.update(f"account/{name}", lambda a: a or {
            "config": {}, "epoch": 0, "refresh_fp": None, "refresh_expires": None,
            "client_key": None, "created": self.ctx.clock()}, default=None)

    def issue_access(self, name: str, epoch: int) -> tuple[str, int]:
        token = f"act.sandbox.{name}.{self.random_token('access', name, 96)}"
        ttl = int(self.config(name)["access_ttl"])
        self.state.put(f"token/{fingerprint(token)}", {"account": name, "epoch": epoch,
                                                       "expires": self.ctx.clock() + ttl,
                                                       "expired": False})
        return token, ttl

    # --- helpers: rate limits --------------------------------------------------------------

    def take_slot(self, key: str, limit: int, window: float) -> bool:
        """Record one request in the log at `key` unless `limit` fall in the last `window`
        seconds; whether it was taken."""
        now = self.ctx.clock()
        refused: list[bool] = []

        def change(log: list[float]) -> list[float]:
            # Requests "after" now (the clock was set back) have not happened yet.
            recent = [t for t in log if now - window < t <= now]
            if len(recent) >= limit:
                refused.append(True)
                return recent
            return [*recent, now]

        self.state.update(key, change, default=[])
        return not refused

    def admit(self, kind: str, account: str, token_fp: str) -> None:
        limit = int(self.config(account)[f"{kind}_per_minute"])
        if not self.take_slot(f"ratelog/{account}/{kind}/{token_fp}", limit, WINDOW):
            raise TikTokError(429, "rate_limit_exceeded",
                              f"The API rate limit was exceeded: at most {limit} {kind} "
                              f"requests per minute per access token. Please try again later.")

    def take_daily_slot(self, account: str) -> None:
        cap = int(self.config(account)["daily_cap"])
        if not self.take_slot(f"daily/{account}", cap, DAY):
            raise TikTokError(403, "spam_risk_too_many_posts",
                              f"The user has reached the daily post cap ({cap} posts in 24 "
                              f"hours) for this app. Please try again later.")

    # --- helpers: auth ---------------------------------------------------------------------

    def authenticate(self, request: Request) -> tuple[str, str]:
        """(account, token fingerprint) of a valid Bearer access token, else 401."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _invalid_token("missing Authorization: Bearer header")
        fp = fingerprint(token)
        record = self.state.get(f"token/{fp}")
        if record is None:
            match = ACCESS_TOKEN.fullmatch(token)
            if match is None:
                raise _invalid_token("unknown token")
            name = match.group(1)
            if self.account_doc(name)["epoch"] != 0:
                raise _invalid_token("the token has expired")
            record = {"account": name, "epoch": 0, "expires": None, "expired": False}
            self.state.put(f"token/{fp}", record)
        name = record["account"]
        expired = record["expired"] or record["epoch"] != self.account_doc(name)["epoch"] or (
            record["expires"] is not None and self.ctx.clock() >= record["expires"])
        if expired:
            raise _invalid_token("the token has expired")
        return name, fp

    def api(self, kind: str, handler: Callable[[Request, str], Awaitable[Any]]) -> Callable[
            [Request], Awaitable[Response]]:
        """A v2 API route: auth, the `kind` rate limit and the envelope around `handler`."""
        async def endpoint(request: Request) -> Response:
            try:
                name, fp = self.authenticate(request)
                self.admit(kind, name, fp)
                return self.ok(await handler(request, name))
            except TikTokError as exc:
                return self.fail(exc)
        return endpoint

    # --- helpers: publishing ---------------------------------------------------------------

    def post_info_of(self, body: dict[str, Any], account: str) -> dict[str, Any]:
        info = body.get("post_info")
        if not isinstance(info, dict):
            raise TikTokError(400, "invalid_params", "post_info is required for a direct post")
        out = _post_fields(info)
        privacy = out["privacy_level"]
        cfg = self.config(account)
        options = PRIVATE_OPTIONS if cfg["private"] else PUBLIC_OPTIONS
        if privacy not in options:
            raise TikTokError(400, "privacy_level_option_mismatch",
                              f"privacy_level {privacy} is not among the creator's "
                              f"privacy_level_options {options}")
        if not cfg["audited"] and privacy != "SELF_ONLY":
            raise TikTokError(403, "unaudited_client_can_only_post_to_private_accounts",
                              "Unaudited clients can only post with privacy_level SELF_ONLY")
        if out["brand_content_toggle"] and privacy == "SELF_ONLY":
            raise TikTokError(400, "invalid_params", "Branded content cannot be private "
                                                     "(SELF_ONLY)")
        return out

    def visible(self, doc: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config(doc["account"])
        out: dict[str, Any] = {"status": "PROCESSING_UPLOAD", "publicaly_available_post_id": [],
                               "uploaded_bytes": doc["uploaded_bytes"]}
        polls = doc["polls"]
        if doc["completed"] is None or polls <= cfg["processing_polls"]:
            return out
        if doc["outcome"] == "fail":
            return {**out, "status": "FAILED", "fail_reason": doc["fail_reason"]}
        public = doc["privacy_level"] != "SELF_ONLY"
        moderated = polls > cfg["processing_polls"] + cfg["moderation_polls"]
        ids = [int(doc["post_id"])] if public and moderated else []
        return {**out, "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": ids}

    # --- helpers: the upload host ----------------------------------------------------------

    def spool_path(self, doc: dict[str, Any]) -> Path:
        return self.spool / f"{doc['upload_id']}.part"

    def upload_of(self, request: Request) -> tuple[dict[str, Any], str]:
        """(publish doc, media type) of a chunk PUT whose upload_url and Content-Type are
        good, else TikTokError."""
        upload_id = request.query_params.get("upload_id", "")
        publish_id = self.state.get(f"upload/{upload_id}") if upload_id else None
        doc = self.state.get(f"publish/{publish_id}") if publish_id else None
        if doc is None:
            raise TikTokError(404, "invalid_params", "Unknown upload_id")
        token = request.query_params.get("upload_token", "")
        if not hmac.compare_digest(token.encode(), doc["upload_token"].encode()):
            raise TikTokError(403, "permission_denied", "Invalid upload_token")
        if self.ctx.clock() >= doc["upload_expires"]:
            raise TikTokError(403, "permission_denied",
                              "The upload_url has expired (valid for one hour after init)")
        media = _media_type(request)
        if media not in UPLOAD_TYPES:
            raise TikTokError(400, "invalid_params",
                              f"Content-Type must be one of {list(UPLOAD_TYPES)}")
        if doc["content_type"] not in (None, media):
            raise TikTokError(400, "invalid_params", f"Content-Type changed from "
                                                     f"{doc['content_type']} to {media}")
        return doc, media

    @staticmethod
    def chunk_of(request: Request, doc: dict[str, Any]) -> tuple[int, int, int, bool]:
        """(index, first, last, final) of the chunk the Content-Range names, else 416."""
        match = CONTENT_RANGE.fullmatch(request.headers.get("content-range", "").strip())
        if match is None or int(match.group(3)) != doc["video_size"]:
            raise TikTokError(416, "invalid_params", f"Content-Range must be "
                                                     f"{_expected_range(doc)}")
        first, last = int(match.group(1)), int(match.group(2))
        ranges = chunk_ranges(doc["video_size"], doc["chunk_size"], doc["total_chunk_count"])
        index = ranges.index((first, last)) if (first, last) in ranges else None
        if index is None or index > len(doc["chunks"]):
            raise TikTokError(416, "invalid_params", f"Chunks must be sent in order with "
                                                     f"the declared sizes: expected "
                                                     f"{_expected_range(doc)}")
        size = last - first + 1
        declared = request.headers.get("content-length")
        if declared is not None and declared != str(size):
            raise TikTokError(416, "invalid_params", f"Content-Length {declared} does not "
                                                     f"match Content-Range ({size} bytes)")
        return index, first, last, index == len(ranges) - 1

    async def finish_upload(self, doc: dict[str, Any]) -> None:
        """After the last chunk: hash, check the video like TikTok's processing, publish."""
        path = self.spool_path(doc)
        sha, problem, seconds = await asyncio.to_thread(_examine, path, doc["content_type"])
        limit = self.config(doc["account"])["max_video_post_duration_sec"]
        if problem is None and seconds is not None and seconds > limit:
            problem = "duration_check_failed"

        def change(current: dict[str, Any]) -> dict[str, Any]:
            if current["completed"] is not None:
                return current
            verdict = ({"outcome": "fail", "fail_reason": problem} if problem else {})
            return {**current, **verdict, "completed": self.ctx.clock(), "video_sha256": sha,
                    "duration": seconds}

        self.index_post(self.state.update(f"publish/{doc['publish_id']}", change, default={}))
        path.unlink(missing_ok=True)

    async def store_chunk(self, doc: dict[str, Any], index: int, last: int, sha: str,
                          media: str, final: bool) -> None:
        """Append a new chunk to the publish (once, however many copies race) and finish the
        upload after the last one."""
        appended: list[bool] = []

        def change(current: dict[str, Any]) -> dict[str, Any]:
            if len(current["chunks"]) != index:  # a concurrent copy of this chunk won
                return current
            appended.append(True)
            return {**current, "chunks": [*current["chunks"], sha], "uploaded_bytes": last + 1,
                    "content_type": media}

        doc = self.state.update(f"publish/{doc['publish_id']}", change, default={})
        if final and appended:
            await self.finish_upload(doc)

    # --- helpers: the audience (Display API reads) -----------------------------------------

    def index_post(self, doc: dict[str, Any]) -> None:
        """Make a published post findable by its post id and listed under its account."""
        if doc["completed"] is None or doc["outcome"] != "publish":
            return
        publish_id = doc["publish_id"]
        self.state.put(f"post/{doc['post_id']}", publish_id)
        self.state.update(f"posts_of/{doc['account']}",
                          lambda ids: ids if publish_id in ids else [*ids, publish_id],
                          default=[])

    def ensure_indexes(self) -> None:
        """Index posts published before the indexes existed (state from an older sandbox)."""
        if self.state.get("indexes") == 1:
            return
        for doc in self.state.list_prefix("publish/").values():
            self.index_post(doc)
        self.state.put("indexes", 1)

    def readable(self, doc: dict[str, Any], account: str, asked: str) -> bool:
        """Whether the Display API shows this post to the account's token: its own,
        published, and public (asked by its post id) unless the account is configured with
        `query_self_only` (then SELF_ONLY posts answer by post id or publish id too)."""
        if doc["account"] != account or doc["completed"] is None \
                or doc["outcome"] != "publish" or doc["completed"] > self.ctx.clock():
            return False
        if doc["privacy_level"] == "SELF_ONLY":
            return bool(self.config(account)["query_self_only"])
        return asked == str(doc["post_id"])

    def find_post(self, video_id: str) -> dict[str, Any] | None:
        """A publish by its post id, or by its publish id (SELF_ONLY posts have no other)."""
        publish_id = self.state.get(f"post/{video_id}")
        if publish_id is None and video_id.startswith("v_pub_"):
            publish_id = video_id
        return self.state.get(f"publish/{publish_id}") if publish_id else None

    def counters(self, doc: dict[str, Any]) -> Counters:
        return self.audience.counters(str(doc["post_id"]), doc["completed"], self.ctx.clock(),
                                      settings_of(self.state, doc["account"]))

    def video_view(self, request: Request, doc: dict[str, Any], asked: str,
                   fields: list[str]) -> dict[str, Any]:
        post_id, handle = str(doc["post_id"]), doc["account"].lower()
        counts = self.counters(doc)
        share_url = f"https://www.tiktok.com/@{handle}/video/{post_id}"
        values = {
            "id": asked, "create_time": int(doc["completed"]), "title": doc["title"],
            "video_description": doc["title"], "duration": int(doc.get("duration") or 0),
            "height": 1920, "width": 1080,
            "cover_image_url": f"{request.base_url}covers/{post_id}.jpeg",
            "share_url": share_url, "embed_link": f"https://www.tiktok.com/player/v1/{post_id}",
            "embed_html": f'<blockquote class="tiktok-embed" cite="{share_url}" '
                          f'data-video-id="{post_id}"></blockquote>',
            "like_count": counts.likes, "comment_count": counts.comments,
            "share_count": counts.shares, "view_count": counts.views,
        }
        return {f: values[f] for f in fields}

    # --- helpers: OAuth --------------------------------------------------------------------

    def refresh_owner(self, token: str) -> str:
        """The account whose one valid refresh token this is, else invalid_grant."""
        rejected = OAuthError(400, "invalid_grant",
                              "The refresh token is invalid, expired or revoked (refresh "
                              "tokens rotate: only the newest one works).")
        fp = fingerprint(token)
        owner = self.state.get(f"refresh/{fp}")
        first = FIRST_REFRESH.fullmatch(token)
        if owner is None and first is not None:
            name = first.group(1)
            if self.account_doc(name)["refresh_fp"] is None:
                return name
        if owner is None:
            raise rejected
        acc = self.account_doc(owner)
        expires = acc.get("refresh_expires")
        if acc["refresh_fp"] != fp or (expires is not None and self.ctx.clock() >= expires):
            raise rejected
        return owner

    def rotate(self, name: str, form: dict[str, str]) -> dict[str, Any]:
        old_fp = fingerprint(form["refresh_token"])
        acc = self.account_doc(name)
        if acc["client_key"] not in (None, form["client_key"]):
            raise OAuthError(400, "invalid_grant", "The refresh token was issued to another "
                                                   "client")
        cfg = self.config(name)
        new_refresh = f"rft.sandbox.{name}.{self.random_token('refresh', name, 128)}"
        swapped: list[bool] = []

        def change(current: dict[str, Any]) -> dict[str, Any]:
            if current["refresh_fp"] != acc["refresh_fp"]:  # a concurrent refresh won
                return current
            swapped.append(True)
            return {**current, "refresh_fp": fingerprint(new_refresh),
                    "refresh_expires": self.ctx.clock() + cfg["refresh_ttl"],
                    "client_key": form["client_key"]}

        current = self.state.update(f"account/{name}", change, default={})
        if not swapped:
            raise OAuthError(400, "invalid_grant", "The refresh token was already used")
        self.state.put(f"refresh/{fingerprint(new_refresh)}", name)
        self.state.delete(f"refresh/{old_fp}")
        access, ttl = self.issue_access(name, current["epoch"])
        return {"access_token": access, "expires_in": ttl, "open_id": open_id_of(name),
                "refresh_expires_in": cfg["refresh_ttl"], "refresh_token": new_refresh,
                "scope": SCOPE, "token_type": "Bearer"}

    # --- helpers: control ------------------------------------------------------------------

    def apply_settings(self, name: str | None, settings: dict[str, Any], reset: bool) -> None:
        if name is None:
            self.state.update("config", lambda c: {**c, **settings}, default={})
            return
        self.account_doc(name)
        self.state.update(f"account/{name}", lambda a: {
            **a, "config": {**a.get("config", {}), **settings}}, default={})
        if reset:
            self.state.put(f"daily/{name}", [])
            for key in self.state.list_prefix(f"ratelog/{name}/"):
                self.state.put(key, [])

    def snapshot(self, name: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"config": self.config(name)}
        if name is not None:
            now = self.ctx.clock()
            recent = [t for t in self.state.get(f"daily/{name}", []) if now - DAY < t <= now]
            out.update(account=name, open_id=open_id_of(name),
                       epoch=self.account_doc(name)["epoch"], inits_last_24h=len(recent),
                       queue=self.state.get(f"queue/{name}", []))
        return out

    def posts_of(self, request: Request) -> list[dict[str, Any]] | None:
        raw = request.query_params.get("account")
        name = _account_param(raw)
        if raw is not None and name is None:
            return None
        docs = [d for d in self.state.list_prefix("publish/").values()
                if name is None or d["account"] == name]
        return sorted(docs, key=lambda d: (d["created"], d["publish_id"]))

    def expire_access_token(self, token: str) -> Response:
        fp = fingerprint(token)
        match = ACCESS_TOKEN.fullmatch(token)
        record = self.state.get(f"token/{fp}")
        if record is None and match is None:
            return _bad("unknown access_token", 404)
        owner = record["account"] if record else match.group(1)  # type: ignore[union-attr]
        epoch = self.account_doc(owner)["epoch"]
        self.state.put(f"token/{fp}", {**(record or {"epoch": epoch, "expires": None}),
                                       "account": owner, "expired": True})
        return JSONResponse({"expired": "access_token", "account": owner})

    # --- API routes ------------------------------------------------------------------------

    async def creator_info(self, request: Request, account: str) -> Any:
        cfg = self.config(account)
        return {
            "creator_avatar_url": f"{request.base_url}avatars/{account}.jpeg",
            "creator_username": account.lower(), "creator_nickname": account,
            "privacy_level_options": PRIVATE_OPTIONS if cfg["private"] else PUBLIC_OPTIONS,
            "comment_disabled": False, "duet_disabled": False, "stitch_disabled": False,
            "max_video_post_duration_sec": cfg["max_video_post_duration_sec"],
        }

    async def video_init(self, request: Request, account: str) -> Any:
        body = await _json_body(request)
        post = self.post_info_of(body, account)
        source = _source_info_of(body)
        self.take_daily_slot(account)
        plan = pop_first(self.state, f"queue/{account}", "queue/*") or {}
        number = self.state.next_id("publish")
        publish_id = f"v_pub_file~v2.{self.ctx.rng('publish', number).getrandbits(62)}"
        upload_id = str(self.ctx.rng("upload", number).getrandbits(63))
        now = self.ctx.clock()
        doc = {
            "publish_id": publish_id, "upload_id": upload_id,
            "upload_token": self.random_token("upload_token", account, 128),
            "account": account, **post, **source, "created": now,
            "upload_expires": now + float(self.config(account)["upload_ttl"]),
            "content_type": None, "chunks": [], "uploaded_bytes": 0, "completed": None,
            "video_sha256": None, "outcome": "fail" if plan else "publish",
            "fail_reason": plan.get("fail_reason"),
            "post_id": str(7_000_000_000_000_000_000
                           + self.ctx.rng("post", publish_id).getrandbits(59)),
            "polls": 0, "shown": "PROCESSING_UPLOAD",
        }
        self.state.put(f"publish/{publish_id}", doc)
        self.state.put(f"upload/{upload_id}", publish_id)
        url = f"{request.base_url}video/?upload_id={upload_id}&upload_token={doc['upload_token']}"
        return {"publish_id": publish_id, "upload_url": url}

    async def status_fetch(self, request: Request, account: str) -> Any:
        body = await _json_body(request)
        publish_id = body.get("publish_id")
        if not isinstance(publish_id, str) or not publish_id:
            raise TikTokError(400, "invalid_params", "publish_id is required")
        doc = self.state.get(f"publish/{publish_id}")
        if doc is None or doc["account"] != account:
            raise TikTokError(400, "invalid_params", f"publish_id {publish_id} is invalid")

        def change(current: dict[str, Any]) -> dict[str, Any]:
            polls = current["polls"] + 1 if current["completed"] is not None else 0
            advanced = {**current, "polls": polls}
            return {**advanced, "shown": self.visible(advanced)["status"]}

        return self.visible(self.state.update(f"publish/{publish_id}", change, default={}))

    async def video_query(self, request: Request, account: str) -> Any:
        fields = _fields_param(request, VIDEO_FIELDS)
        videos = []
        for asked in _video_ids_of(await _json_body(request)):
            doc = self.find_post(asked)
            if doc is not None and self.readable(doc, account, asked):
                videos.append(self.video_view(request, doc, asked, fields))
        return {"videos": videos, "cursor": 0, "has_more": False}

    async def user_info(self, request: Request, account: str) -> Any:
        fields = _fields_param(request, USER_FIELDS)
        posts = [d for d in (self.state.get(f"publish/{p}")
                             for p in self.state.get(f"posts_of/{account}", []))
                 if d is not None and self.readable(d, account, str(d["post_id"]))]
        now = self.ctx.clock()
        created = float(self.account_doc(account).get("created") or now)
        handle = account.lower()
        values = {
            "open_id": open_id_of(account), "union_id": "u" + open_id_of(account)[4:],
            "avatar_url": f"{request.base_url}avatars/{account}.jpeg",
            "avatar_url_100": f"{request.base_url}avatars/{account}_100.jpeg",
            "avatar_large_url": f"{request.base_url}avatars/{account}_large.jpeg",
            "display_name": account, "bio_description": "", "is_verified": False,
            "profile_deep_link": f"https://vm.tiktok.com/@{handle}", "username": handle,
            "follower_count": self.audience.followers(account, created, now,
                                                      settings_of(self.state, account)),
            "following_count": self.audience.following(account),
            "likes_count": sum(self.counters(d).likes for d in posts),
            "video_count": len(posts),
        }
        return {"user": {f: values[f] for f in fields}}

    async def upload_chunk(self, request: Request) -> Response:
        try:
            doc, media = self.upload_of(request)
            index, first, last, final = self.chunk_of(request, doc)
            size = last - first + 1
            resend = index < len(doc["chunks"])
            seen, sha = await _receive_chunk(
                request, None if resend else self.spool_path(doc), first, size)
            if seen != size:
                raise TikTokError(416, "invalid_params", f"The chunk has {seen} bytes, "
                                                         f"Content-Range says {size}")
            if resend and sha != doc["chunks"][index]:
                raise TikTokError(400, "invalid_file_upload",
                                  f"bytes {first}-{last} differ from the chunk received "
                                  f"before")
        except TikTokError as exc:
            return self.fail(exc)
        if not resend:
            await self.store_chunk(doc, index, last, sha, media, final)
        elif final and doc["completed"] is None:  # a restart between last chunk and check
            await self.finish_upload(doc)
        return Response(status_code=201 if final else 206)

    async def oauth_token(self, request: Request) -> Response:
        try:
            form = await _oauth_form(request)
            return JSONResponse(self.rotate(self.refresh_owner(form["refresh_token"]), form))
        except OAuthError as exc:
            return self.oauth_fail(exc)

    # --- control routes --------------------------------------------------------------------

    async def control_config(self, request: Request) -> Response:
        try:
            body = await read_control_body(request)
        except BadControlBody:
            return _bad("body must be a JSON object")
        name = body.get("account")
        if name is not None and _account_param(name) is None:
            return _bad("account must match [A-Za-z0-9_-]{1,64}")
        settings = _settings_of(body)
        if isinstance(settings, str):
            return _bad(settings)
        self.apply_settings(name, settings, bool(body.get("reset_limits")))
        return JSONResponse(self.snapshot(name))

    async def control_accounts(self, request: Request) -> Response:
        try:
            body = await read_control_body(request)
        except BadControlBody:
            body = None
        name = _account_param((body or {}).get("account"))
        if body is None or name is None:
            return _bad("account (matching [A-Za-z0-9_-]{1,64}) is required")
        settings = _settings_of(body)
        if isinstance(settings, str):
            return _bad(settings)
        self.apply_settings(name, settings, bool(body.get("reset_limits")))
        acc = self.account_doc(name)
        refresh = f"rft.sandbox.{name}.{self.random_token('refresh', name, 128)}"
        ttl = int(self.config(name)["refresh_ttl"])
        self.state.update(f"account/{name}", lambda a: {
            **a, "refresh_fp": fingerprint(refresh), "refresh_expires": self.ctx.clock() + ttl},
            default={})
        self.state.put(f"refresh/{fingerprint(refresh)}", name)
        access, access_ttl = self.issue_access(name, acc["epoch"])
        return JSONResponse({"account": name, "open_id": open_id_of(name),
                             "access_token": access, "expires_in": access_ttl,
                             "refresh_token": refresh, "refresh_expires_in": ttl})

    async def control_state(self, request: Request) -> Response:
        raw = request.query_params.get("account")
        name = _account_param(raw)
        if raw is not None and name is None:
            return _bad("account must match [A-Za-z0-9_-]{1,64}")
        return JSONResponse(self.snapshot(name))

    async def control_expire(self, request: Request) -> Response:
        try:
            body = await read_control_body(request)
        except BadControlBody:
            body = {}
        token, name = body.get("access_token"), _account_param(body.get("account"))
        if isinstance(token, str) and token:
            return self.expire_access_token(token)
        if name is None:
            return _bad("give account or access_token")
        self.account_doc(name)
        acc = self.state.update(f"account/{name}", lambda a: {**a, "epoch": a["epoch"] + 1},
                                default={})
        return JSONResponse({"expired": "account", "account": name, "epoch": acc["epoch"]})

    async def control_next_posts(self, request: Request) -> Response:
        if request.method == "DELETE":
            name = _account_param(request.query_params.get("account"))
            self.state.put(f"queue/{name or '*'}", [])
            return JSONResponse({"queue": []})
        try:
            body = await read_control_body(request)
        except BadControlBody:
            return _bad("body must be a JSON object")
        raw, count = body.get("account"), body.get("count", 1)
        reason = body.get("fail_reason", "spam_risk_text")
        name = _account_param(raw)
        if raw is not None and name is None:
            return _bad("account must match [A-Za-z0-9_-]{1,64}")
        if not isinstance(reason, str) or not reason:
            return _bad("fail_reason must be a non-empty string")
        if not _is_int(count) or count < 1:
            return _bad("count must be an integer >= 1")
        entry = {"fail_reason": reason}
        queue = self.state.update(f"queue/{name or '*'}", lambda q: [*q, *([entry] * count)],
                                  default=[])
        return JSONResponse({"queue": queue})

    async def control_audience(self, request: Request) -> Response:
        try:
            return JSONResponse(apply_settings(self.state, await read_control_body(request)))
        except ValueError as exc:  # BadControlBody too
            return _bad(str(exc))

    async def control_seed_posts(self, request: Request) -> Response:
        """Published posts without an upload, for tests and benchmarks of the reads."""
        try:
            want = seed_request(await read_control_body(request), self.ctx.clock(), "account",
                                ("privacy_level", "title", "is_aigc"))
        except ValueError as exc:
            return _bad(str(exc))
        name, privacy = _account_param(want["account"]), want.get("privacy_level",
                                                                  "PUBLIC_TO_EVERYONE")
        if name is None or privacy not in ALL_PRIVACY:
            return _bad(f"account must match [A-Za-z0-9_-]{{1,64}}, privacy_level be one of "
                        f"{ALL_PRIVACY}")
        self.account_doc(name)
        docs = [self.seed_doc(number, name, at, privacy, want) for number, at in
                zip(self.state.next_ids("publish", want["count"]), want["times"], strict=True)]
        self.state.put_many({**{f"publish/{d['publish_id']}": d for d in docs},
                             **{f"post/{d['post_id']}": d["publish_id"] for d in docs}})
        made = [d["publish_id"] for d in docs]
        self.state.update(f"posts_of/{name}", lambda ids: [*ids, *made], default=[])
        return JSONResponse([_post_view(d) for d in docs])

    def seed_doc(self, number: int, account: str, at: float, privacy: str,
                 want: dict[str, Any]) -> dict[str, Any]:
        """A published post's record as an upload would have left it."""
        publish_id = f"v_pub_file~v2.{self.ctx.rng('publish', number).getrandbits(62)}"
        flags = dict.fromkeys(("disable_duet", "disable_comment", "disable_stitch",
                               "brand_content_toggle", "brand_organic_toggle"), False)
        return {
            "publish_id": publish_id, "upload_id": None, "upload_token": "", "account": account,
            "title": str(want.get("title", f"seeded post {number}")), "privacy_level": privacy,
            "video_cover_timestamp_ms": None, **flags, "is_aigc": bool(want.get("is_aigc", True)),
            "video_size": 0, "chunk_size": 0, "total_chunk_count": 1, "created": at,
            "upload_expires": at, "content_type": "video/mp4", "chunks": [], "uploaded_bytes": 0,
            "completed": at, "video_sha256": hashlib.sha256(publish_id.encode()).hexdigest(),
            "outcome": "publish", "fail_reason": None, "duration": 8.0,
            "post_id": str(7_000_000_000_000_000_000
                           + self.ctx.rng("post", publish_id).getrandbits(59)),
            "polls": 2, "shown": "PUBLISH_COMPLETE", "seeded": True,
        }

    async def control_published(self, request: Request) -> Response:
        docs = self.posts_of(request)
        if docs is None:
            return _bad("account must match [A-Za-z0-9_-]{1,64}")
        return JSONResponse([_post_view(d) for d in docs
                             if d["completed"] is not None and d["outcome"] == "publish"])

    async def control_published_post(self, request: Request) -> Response:
        """One published post by its post id (or publish id): what a status link opens."""
        wanted = request.path_params["post_id"]
        for d in self.state.list_prefix("publish/").values():
            if (d["completed"] is not None and d["outcome"] == "publish"
                    and wanted in (str(d["post_id"]), d["publish_id"])):
                return JSONResponse(_post_view(d))
        return JSONResponse({"error": f"no published post {wanted}"}, status_code=404)

    async def control_posts(self, request: Request) -> Response:
        docs = self.posts_of(request)
        if docs is None:
            return _bad("account must match [A-Za-z0-9_-]{1,64}")
        return JSONResponse([{**_post_view(d), "outcome": d["outcome"],
                              "fail_reason": d["fail_reason"], "uploaded_bytes":
                              d["uploaded_bytes"], "chunks_received": len(d["chunks"]),
                              "total_chunk_count": d["total_chunk_count"]} for d in docs])

    # --- errors ----------------------------------------------------------------------------

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.fail(TikTokError(404, "not_found", f"Not Found: {request.url.path}"))

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.fail(TikTokError(405, "method_not_allowed", f"Method Not Allowed: "
                                                                f"{request.method}"))

    def error_response(self, status: int, message: str, retry_after: float | None) -> Response:
        code = _STATUS_CODES.get(status, "internal_error" if status >= 500 else "invalid_params")
        return self.fail(TikTokError(status, code, message))

    def routes(self) -> list[Route]:
        return [
            Route(f"{API}/creator_info/query/", self.api("creator_info", self.creator_info),
                  methods=["POST"]),
            Route(f"{API}/video/init/", self.api("init", self.video_init), methods=["POST"]),
            Route(f"{API}/status/fetch/", self.api("status", self.status_fetch),
                  methods=["POST"]),
            Route("/v2/video/query/", self.api("video_query", self.video_query),
                  methods=["POST"]),
            Route("/v2/user/info/", self.api("user_info", self.user_info), methods=["GET"]),
            Route("/video/", self.upload_chunk, methods=["PUT"]),
            Route("/v2/oauth/token/", self.oauth_token, methods=["POST"]),
            Route("/_control/accounts", self.control_accounts, methods=["POST"]),
            Route("/_control/config", self.control_config, methods=["POST"]),
            Route("/_control/state", self.control_state, methods=["GET"]),
            Route("/_control/expire_token", self.control_expire, methods=["POST"]),
            Route("/_control/next_posts", self.control_next_posts, methods=["POST", "DELETE"]),
            Route("/_control/audience", self.control_audience, methods=["POST"]),
            Route("/_control/seed_posts", self.control_seed_posts, methods=["POST"]),
            Route("/_control/published", self.control_published, methods=["GET"]),
            Route("/_control/published/{post_id}", self.control_published_post,
                  methods=["GET"]),
            Route("/_control/posts", self.control_posts, methods=["GET"]),
        ]

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app, error_response=self.error_response)


def create(ctx: SystemContext) -> System:
    return TikTokSystem(ctx).system()
