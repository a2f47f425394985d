"""Instagram Graph API (Reels content publishing) and its rupload host.

The `/instagram` mount stands for the Graph host (graph.facebook.com, or graph.instagram.com
with Instagram Login: same paths) and `/instagram/rupload` for rupload.facebook.com. Paths
carry a version prefix (`v25.0`, any `vNN.N`). PROTOCOLS.md section 2.

Graph routes (token: `Authorization: Bearer|OAuth <token>`, or `access_token` in the query
or the form/JSON body; parameters in the query string or the body):

- `GET /{v}/me?fields=id,user_id,username` (and `GET /{v}/{ig-user-id}`): the account.
- `POST /{v}/{ig-user-id}/media` `media_type=REELS` and either `video_url=<url>` or
  `upload_type=resumable`; `caption`, `share_to_feed` (true|false), `thumb_offset` (ms);
  `cover_url`, `audio_name`, `collaborators`, `location_id` accepted and ignored.
  -> `{"id"}`, or `{"id", "uri"}` for resumable uploads.
- `GET /{v}/{container-id}?fields=id,status_code,status` -> status_code IN_PROGRESS |
  FINISHED | ERROR | EXPIRED | PUBLISHED.
- `POST /{v}/{ig-user-id}/media_publish` `creation_id=<container-id>` -> `{"id": media id}`.
- `GET /{v}/{media-id}?fields=id,caption,permalink,shortcode,timestamp,media_type,
  media_product_type,username,is_shared_to_feed,like_count,comments_count`.
- `GET /{v}/{ig-user-id}/media?fields=...&limit=25&after=<cursor>`: published media,
  newest first, `{"data", "paging": {"cursors": {"before", "after"}, "next"?}}`.
- `GET /{v}/{ig-user-id}/content_publishing_limit?fields=quota_usage,config` ->
  `{"data": [{"quota_usage": n, "config": {"quota_total": 50, "quota_duration": 86400}}]}`.
- `GET /refresh_access_token` (also `/{v}/refresh_access_token`)
  `?grant_type=ig_refresh_token&access_token=<long-lived token>` -> `{"access_token",
  "token_type": "bearer", "expires_in"}`: Instagram Login's refresh (the long-lived token is
  its own refresh credential; the Facebook Login `fb_exchange_token` flow is not modelled).

Reads and replies (ANALYTICS_OPS.md sections 3-4), from the sandbox audience
(`sandbox/audience.py`):

- `GET /{v}/{media-id}/insights?metric=views,reach,likes,comments,shares,saved,
  total_interactions[,ig_reels_avg_watch_time,ig_reels_video_view_total_time]` ->
  `{"data": [{"name", "period": "lifetime", "values": [{"value"}], "title", "description",
  "id"}]}`, lifetime totals. A metric deprecated on 2025-04-21 (plays, impressions,
  clips_replays_count, ig_reels_aggregated_all_plays_count; video_views) fails the whole
  call with code 100; an unknown one too. Younger than the account's `insights_delay`:
  `{"data": []}` (Meta's "no data yet", never zeros); fewer views than its
  `insights_min_views`: code 10 "Not enough viewers".
- `GET /{v}/{ig-user-id}?fields=followers_count,follows_count,media_count`.
- `GET /{v}/{media-id}/comments?fields=id,text,timestamp,username,from,like_count,hidden,
  parent_id,media,replies&limit=1..100(25)&after=`: top-level comments, newest first,
  hidden ones included (`hidden: true`, the owner sees them); `GET /{v}/{comment-id}/replies`
  the replies, oldest first (none under a reply). Cursors as in the media edge.
- `POST /{v}/{comment-id}/replies` `message=` (1..2200 characters) -> `{"id"}`: only to a
  top-level comment that is not hidden, on the account's own media (code 100 otherwise);
  at most the account's `reply_writes_per_hour` (60) an hour, then code 17. The reply is
  stored: it shows in the listings and the media's comment counters at once.

rupload routes (token: `Authorization: OAuth <token>` only, as Meta's samples send it):

- `POST /rupload/ig-api-upload/{v}/{container-id}` with headers `offset`, `file_size` and the
  bytes as body (streamed to disk). A POST may carry only part of the file: its bytes are
  written at `offset`, which must not exceed the bytes received so far (a lower offset
  rewrites from there, so resending a chunk is harmless). Bytes that arrived before a
  dropped connection are kept. The last byte -> `{"success": true, "message": "Upload
  successful."}`; a partial POST -> `{"success": true, "message": "Upload in progress.",
  "offset": n}` (sandbox choice). Once complete, further POSTs are acknowledged and ignored.
- `GET` on the same URI -> `{"id", "offset": <bytes received>, "file_size"}`. Meta does not
  document this answer (PROTOCOLS: UNCERTAIN); the sandbox names the field `offset` like the
  request header (Graph's generic Resumable Upload API calls it `file_offset`).
- Errors: `{"debug_info": {"retriable": bool, "type", "message"}}` (401 for token errors).
  `file_url` (hosted) uploads are not modelled.

Accounts and tokens: a token `IGAAsandbox` + `[A-Za-z0-9_-]*` (e.g. `IGAAsandbox_mira`) is an
account's first long-lived token, created on first use: its own ig-user-id (17841 + 12
digits from the token's hash), username (the suffix), containers, media and quota. Refreshed
tokens are random `IGAA...` strings of the same account; the previous token stays valid until
its own expiry (60 days). An unknown token -> 190; an expired one -> 190 subcode 463. Graph
errors use HTTP 400 and `{"error": {"message", "type", "code", "error_subcode"?,
"is_transient", "error_user_title"?, "error_user_msg"?, "fbtrace_id"}}`; injected 5xx faults
answer code 2 (transient), 429 faults code 4, 401/403 faults code 190.

Containers: a `video_url` is downloaded during the create call (so the create answer waits
for it), only from loopback hosts (the sandbox's own routes or a test's server on loopback;
no redirects, `video/*` or `application/octet-stream`). A failed download makes the
container ERROR with subcode 2207052 (2207003 on a timeout). Media are then checked like
Reels: MP4/MOV with `ftyp` first and `moov` before `mdat`, H.264/HEVC video up to 1920 wide
at 23-60 fps, AAC audio (<= 48 kHz) if any, 3 s to 15 min, at most 300 MB (the lower of the
two published figures); a failure -> ERROR 2207026. Each status poll of a container whose
media is in advances it one step: IN_PROGRESS until `finish_polls` polls (default 2), then
FINISHED (or ERROR). A container not published `container_ttl` (24 h) after creation is
EXPIRED (see the controllable clock). 400 containers per rolling 24 h per account.

Publishing: only a FINISHED container; IN_PROGRESS -> code 9007 subcode 2207027 (not ready),
EXPIRED -> 9007/2207020, ERROR -> 9007 with the container's subcode. Publishing a container
again does not create a second media: it answers code 9007 "Media ID is not available: the
container has already been published" (no subcode; sandbox choice, the stricter of the two
plausible behaviours). More than `quota_total` (50) publishes in the rolling
`quota_duration` (24 h) -> code 9 subcode 2207042; 400 containers in 24 h -> the same code
and subcode with a container-limit message (sandbox choice).

AI disclosure: every container and media records `has_ai_label`: the caption contains one of
`#AIgenerated`, `#AI_generated`, `#AI-generated`, `#MadeWithAI`, `AI-generated`,
`AI generated`, `Made with AI` (any case). Instagram itself accepts captions without one, so
the sandbox records rather than refuses; tests count published media by this flag.

Control routes (no auth; JSON bodies; journaled like everything else):
- `GET /_control/account?access_token=` -> `{"ig_user_id", "username"}` (creates a sandbox
  account for a new `IGAAsandbox...` token).
- `POST /_control/expire_token {"access_token", "refreshable": true}`: the token now fails
  with 190/463. Meta refuses to refresh an expired long-lived token; `refreshable: true` (the
  default) still lets the sandbox refresh it, so a client's "auth error -> refresh once" path
  can be exercised; `false` gives Meta's behaviour.
- `POST /_control/age {"container_id", "seconds"}`: move the container's creation back.
- `GET|POST /_control/clock {"advance": seconds}`: move Instagram's clock forward (tokens,
  container expiry, quota and container windows): an offset on top of the sandbox clock
  (`/_sandbox/clock`), which every time here follows.
- `POST|DELETE /_control/next_containers {"outcome": "error"|"slow", "subcode", "message",
  "polls", "count", "ig_user_id"?}`: the next containers created (by that account, else by
  any) end in ERROR with that subcode / need `polls` polls to finish.
- `POST|DELETE /_control/next_errors {"code", "subcode"?, "message"?, "route": glob,
  "method"?, "count": 1, "http_status": 400, "regain_minutes"?, "ig_user_id"?}`: the next
  matching Graph calls (route: fnmatch on the path below the mount, e.g. `*/media_publish`)
  answer that Graph error without acting; `regain_minutes` adds an `X-Business-Use-Case-Usage`
  header with `estimated_time_to_regain_access`, as Meta does for rate limits.
- `POST|DELETE /_control/next_uploads {"cut_after": bytes, "container_id"?}`: the next rupload
  POST keeps `cut_after` bytes of its body, then the connection drops (no answer).
- `POST /_control/quota {"ig_user_id", "quota_total"?, "quota_usage"?}`: the account's
  publishing limit; `quota_usage` replaces its publish log with that many publishes now.
- `GET|POST /_control/config {"finish_polls", "container_limit", "quota_total",
  "quota_duration", "container_ttl", "token_ttl", "fetch_timeout", "max_video_bytes"}`.
- `GET /_control/containers?ig_user_id=` and `GET /_control/published?ig_user_id=` (all
  accounts without it): containers (status as a poll would see it, without counting as one)
  and published media (`id, container_id, ig_user_id, caption, has_ai_label, video_sha256,
  video_size, permalink, timestamp`).
- `POST /_control/audience {"account"?: ig_user_id, ...}`: audience settings.
- `POST /_control/comments {"post", "text", "class"?, "parent"?, "author"?, "own"?,
  "hidden"?, "at"?}` adds a comment (or a reply to a top-level comment); `GET
  /_control/comments?post=` lists every comment on the media now, with its class;
  `GET /_control/replies?ig_user_id=&post=` the replies sent through the API.
- `POST /_control/seed_posts {"ig_user_id", "count", "at"?, "spacing"?, "caption"?}`:
  published media without a container (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import fnmatch
import hashlib
import ipaddress
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
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
    apply_settings,
    comment_view,
    control_comment_request,
    seed_request,
    settings_of,
)
from sandbox.connection import cut_connection
from sandbox.control import BadControlBody, read_control_body
from sandbox.media import ffmpeg_exe
from sandbox.state import SystemState, append_new, pop_first
from sandbox.system import System, SystemContext

TOKEN = re.compile(r"IGAAsandbox[A-Za-z0-9_-]*")
VERSION = re.compile(r"v\d{1,2}\.\d")
AI_LABEL = re.compile(
    r"#ai[_-]?generated\b|#madewithai\b|\bai[- ]generated\b|\bmade with ai\b", re.IGNORECASE)
HASHTAG = re.compile(r"#\w+")
MENTION = re.compile(r"@[\w.]+")
MAX_CAPTION, MAX_HASHTAGS, MAX_MENTIONS = 2200, 30, 20
MB = 1024 * 1024
DEFAULTS: dict[str, Any] = {
    "finish_polls": 2, "container_limit": 400, "quota_total": 50, "quota_duration": 86400,
    "container_ttl": 86400, "token_ttl": 60 * 86400, "fetch_timeout": 30.0,
    "max_video_bytes": 300 * MB,
}
_POSITIVE_INT = (lambda v: _is_int(v) and v >= 1, "an integer >= 1")
_CONFIG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "finish_polls": _POSITIVE_INT, "container_limit": _POSITIVE_INT,
    "quota_total": _POSITIVE_INT, "quota_duration": _POSITIVE_INT,
    "container_ttl": _POSITIVE_INT, "token_ttl": _POSITIVE_INT,
    "max_video_bytes": _POSITIVE_INT,
    "fetch_timeout": (lambda v: _is_number(v) and v > 0, "a number of seconds > 0"),
}
MEDIA_FIELDS = ("id", "caption", "media_type", "media_product_type", "permalink", "shortcode",
                "timestamp", "username", "is_shared_to_feed", "like_count", "comments_count")
USER_FIELDS = ("id", "user_id", "username", "account_type", "media_count", "followers_count",
               "follows_count")
COMMENT_FIELDS = ("id", "text", "timestamp", "username", "from", "like_count", "hidden",
                  "parent_id", "media", "replies")
INSIGHT_METRICS = ("views", "reach", "likes", "comments", "shares", "saved",
                   "total_interactions", "ig_reels_avg_watch_time",
                   "ig_reels_video_view_total_time")
# Deprecated for every version on 2025-04-21 (v22.0 before): asking for one fails the call.
DEPRECATED_METRICS = ("plays", "clips_replays_count", "ig_reels_aggregated_all_plays_count",
                      "impressions", "video_views")
INSIGHT_TITLES = {"views": "Views", "reach": "Accounts reached", "likes": "Likes",
                  "comments": "Comments", "shares": "Shares", "saved": "Saves",
                  "total_interactions": "Interactions",
                  "ig_reels_avg_watch_time": "Average watch time",
                  "ig_reels_video_view_total_time": "Watch time"}
MAX_COMMENT_CHARS = 2200
SIMULATED_COMMENT = re.compile(r"18(\d{9})(\d)(\d{3})(\d{2})")
CONTAINER_FIELDS = ("id", "status_code", "status")
LIMIT_FIELDS = ("quota_usage", "config")
# Meta's own words where known (PROTOCOLS.md section 2, Postiz PR #1900).
FETCH_FAILED, FETCH_TIMEOUT, BAD_FORMAT = 2207052, 2207003, 2207026
NOT_READY, EXPIRED_SUBCODE, QUOTA_SUBCODE = 2207027, 2207020, 2207042
SUBCODE_TEXT = {
    FETCH_FAILED: "Media download has failed. The media URI doesn't meet our requirements.",
    FETCH_TIMEOUT: "Timeout downloading media.",
    BAD_FORMAT: "The video format is not supported. Please check spec for supported format.",
}
STATUS_TEXT = {
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "WAITING": "In Progress: Waiting for the media upload to complete.",
    "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
    "PUBLISHED": "Published: Media has been successfully published.",
    "EXPIRED": "Expired: The media container was not published within 24 hours.",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def has_ai_label(caption: str | None) -> bool:
    """Whether a caption carries one of the AI-disclosure labels the sandbox accepts."""
    return bool(caption and AI_LABEL.search(caption))


def graph_time(epoch: float) -> str:
    """Graph's timestamp format: 2026-05-01T12:00:00+0000."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class GraphError(Exception):
    """A Graph API error: `{"error": {...}}` with an HTTP status (400 unless told)."""

    def __init__(self, code: int, message: str, *, subcode: int | None = None,
                 status: int = 400, kind: str = "OAuthException", transient: bool = False,
                 user_title: str | None = None, user_msg: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode, self.status = code, message, subcode, status
        self.kind, self.transient = kind, transient
        self.user_title, self.user_msg, self.headers = user_title, user_msg, headers or {}


class UploadError(Exception):
    """A rupload error: `{"debug_info": {"retriable", "type", "message"}}`."""

    def __init__(self, status: int, kind: str, message: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.retriable = status, kind, message, retriable


def _no_such_object(object_id: str) -> GraphError:
    return GraphError(100, f"Unsupported request. Object with ID '{object_id}' does not "
                           "exist, cannot be loaded due to missing permissions, or does not "
                           "support this operation.", subcode=33, kind="GraphMethodException")


def _bad_param(message: str, subcode: int | None = None) -> GraphError:
    return GraphError(100, f"(#100) {message}", subcode=subcode)


class _NoResponse(Response):
    """What a route returns after it cut the connection: nothing more is sent."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


# --- media checks (blocking: run in a thread) -------------------------------------------------


def _top_level_boxes(path: Path, most: int = 64) -> list[str]:
    """The MP4 top-level box types in file order (stops at `most` or a malformed header)."""
    kinds: list[str] = []
    size = path.stat().st_size
    with path.open("rb") as f:
        position = 0
        while position + 8 <= size and len(kinds) < most:
            f.seek(position)
            header = f.read(16)
            length = int.from_bytes(header[:4], "big")
            kinds.append(header[4:8].decode("latin-1"))
            if length == 1 and len(header) >= 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                break
            if length < 8:
                break
            position += length
    return kinds


def _container_problem(path: Path) -> str | None:
    boxes = _top_level_boxes(path)
    if not boxes or boxes[0] != "ftyp":
        return "the file is not an MP4/MOV (no ftyp box first)"
    if "moov" not in boxes:
        return "the file has no moov atom"
    if "mdat" in boxes and boxes.index("moov") > boxes.index("mdat"):
        return "the moov atom must come before the media data (fast start)"
    return None


def _stream_problem(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            if not {"mp4", "mov"} & set(container.format.name.split(",")):
                return f"container {container.format.name} is not MP4/MOV"
            if not container.streams.video:
                return "the file has no video stream"
            video = container.streams.video[0]
            codec = video.codec_context.name
            if codec not in ("h264", "hevc"):
                return f"video codec {codec} is not H.264/HEVC"
            if video.codec_context.width > 1920:
                return f"video is {video.codec_context.width} px wide (at most 1920)"
            rate = video.average_rate or video.guessed_rate
            if rate is None or not 23 <= Fraction(rate) <= 60:
                return f"frame rate {float(rate or 0):.2f} is outside 23-60 fps"
            for audio in container.streams.audio:
                if audio.codec_context.name != "aac" or audio.codec_context.sample_rate > 48000:
                    return "audio must be AAC at most 48 kHz"
            seconds = (container.duration / 1_000_000 if container.duration
                       else float((video.duration or 0) * (video.time_base or 0)))
    except Exception as exc:  # any demuxer failure means "not a readable video"
        return f"the file cannot be read as a video ({type(exc).__name__})"
    if not 3 <= seconds <= 900:
        return f"duration {seconds:.2f} s is outside 3 s - 15 min"
    return None


def video_problem(path: Path, max_bytes: int) -> str | None:
    """Why Instagram would refuse the file as a Reel, or None."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    if size > max_bytes:
        return f"the file is {size} bytes (at most {max_bytes})"
    return _container_problem(path) or _stream_problem(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def render_reel(path: Path, *, seconds: float = 3.0, fps: int = 24, width: int = 180,
                height: int = 320, colour: str = "0x3366aa") -> Path:
    """A small MP4 that passes the Reels checks above (tests): H.264 + AAC, fast start."""
    import subprocess

    duration = f"{seconds:.2f}"
    subprocess.run([
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}:r={fps}:d={duration}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps),
        "-c:a", "aac", "-b:a", "48k", "-movflags", "+faststart", "-shortest",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-f", "mp4", str(path),
    ], check=True, capture_output=True, timeout=60)
    return path


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _save_stream(response: httpx.Response, path: Path,
                       max_bytes: int) -> tuple[int, str] | None:
    """Write a download to `path`; (BAD_FORMAT, why) once it runs past `max_bytes`."""
    written = 0
    with path.open("wb") as out:
        async for chunk in response.aiter_raw():
            written += len(chunk)
            if written > max_bytes:
                return BAD_FORMAT, f"the video is larger than {max_bytes} bytes"
            out.write(chunk)
    return None


async def _write_body(request: Request, path: Path, offset: int, file_size: int,
                      cut_after: int | None) -> int | None:
    """Write the body at `offset`; the end offset, or None after a planned cut."""
    with path.open("r+b" if path.exists() else "wb") as out:
        out.truncate(offset)
        out.seek(offset)
        position = offset
        try:
            async for chunk in request.stream():
                if cut_after is not None and position - offset + len(chunk) >= cut_after:
                    out.write(chunk[: cut_after - (position - offset)])
                    out.flush()
                    await cut_connection(request.scope, request.receive, flush=False)
                    return None
                if position + len(chunk) > file_size:
                    out.truncate(offset)
                    raise UploadError(400, "BadRequest", f"the body runs past file_size "
                                                         f"{file_size}")
                out.write(chunk)
                position += len(chunk)
        except ClientDisconnect:
            out.flush()  # bytes that arrived stay: the client resumes after them
            raise
    return position


# --- the system --------------------------------------------------------------------------------

# A Graph handler gets the request, its parameters and (for authenticated routes) the account;
# a control handler gets the request and its JSON body. Both return what is sent as JSON.
GraphHandler = Callable[..., Awaitable[Any]]
ControlHandler = Callable[[Request, dict[str, Any]], Any]
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def _cursor(media: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(media["id"].encode()).decode()


def _positive_count(body: dict[str, Any]) -> int:
    count = body.get("count", 1)
    if not _is_int(count) or count < 1:
        raise ValueError("count must be an integer >= 1")
    return count


class InstagramSystem:
    """Instagram Graph API Reels publishing plus its rupload host: accounts per sandbox token,
    containers that download or receive their video and are checked as Reels, publishing
    with Meta's quota, and control routes that steer all of it."""

    def __init__(self, ctx: SystemContext) -> None:
        self.ctx = ctx
        self.state: SystemState = ctx.state
        self.files = ctx.state.store.state_dir / "instagram"
        self.traces = itertools.count(1)
        # One lock per container: concurrent rupload POSTs of it run one after the other.
        self.upload_locks: dict[str, asyncio.Lock] = {}
        self.audience = Audience(ctx.rng, "instagram")
        self.book = CommentBook(self.state, self.audience)
        self.ensure_indexes()

    # --- answers -------------------------------------------------------------------------------

    def trace_id(self) -> str:
        rng = self.ctx.rng("trace", next(self.traces))
        return "A" + "".join(rng.choice(_ID_ALPHABET) for _ in range(22))

    def graph_response(self, exc: GraphError) -> JSONResponse:
        error: dict[str, Any] = {"message": exc.message, "type": exc.kind, "code": exc.code}
        if exc.subcode is not None:
            error["error_subcode"] = exc.subcode
        error["is_transient"] = exc.transient
        if exc.user_title:
            error["error_user_title"] = exc.user_title
        if exc.user_msg:
            error["error_user_msg"] = exc.user_msg
        error["fbtrace_id"] = self.trace_id()
        return JSONResponse({"error": error}, status_code=exc.status, headers=exc.headers)

    @staticmethod
    def upload_response(exc: UploadError) -> JSONResponse:
        return JSONResponse({"debug_info": {"retriable": exc.retriable, "type": exc.kind,
                                            "message": exc.message}}, status_code=exc.status)

    # --- clock and config ----------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock plus this system's own `/_control/clock` offset."""
        return self.ctx.clock() + float(self.state.get("clock", 0.0))

    def config(self) -> dict[str, Any]:
        return {**DEFAULTS, **self.state.get("config", {})}

    # --- accounts and tokens -------------------------------------------------------------------

    def provision(self, token: str) -> dict[str, Any] | None:
        """The token's record, creating a sandbox account for a new IGAAsandbox token."""
        fp = fingerprint(token)
        record = self.state.get(f"token/{fp}")
        if record is not None or not TOKEN.fullmatch(token):
            return record
        uid = f"17841{int(fp, 16) % 10**12:012d}"
        suffix = re.sub(r"[^a-z0-9._]", "", token[len("IGAAsandbox"):].lower()).strip("._")
        username = suffix or "sandbox"
        created = self.now()

        def make_account(acc: dict[str, Any]) -> dict[str, Any]:
            return acc or {"ig_user_id": uid, "username": username[:30], "created": created,
                           "publishes": [], "containers": [], "quota_total": None}

        self.state.update(f"account/{uid}", make_account, default={})
        ttl = self.config()["token_ttl"]
        return self.state.update(f"token/{fp}", lambda r: r or {
            "ig_user_id": uid, "issued": created, "expires": created + ttl,
            "refreshable": True}, default={})

    @staticmethod
    def token_of(request: Request, params: dict[str, str]) -> str:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        return params.get("access_token", "").strip()

    def check_token(self, token: str) -> dict[str, Any]:
        """The account of a valid token, else GraphError 190."""
        record = self.provision(token) if token else None
        if record is None:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        if self.now() >= record["expires"]:
            raise GraphError(190, f"Error validating access token: Session has expired on "
                                  f"{graph_time(record['expires'])}. The current time is "
                                  f"{graph_time(self.now())}.", subcode=463)
        return self.state.get(f"account/{record['ig_user_id']}")

    @staticmethod
    def account_of(uid: str, acct: dict[str, Any]) -> dict[str, Any]:
        if uid not in ("me", acct["ig_user_id"]):
            raise _no_such_object(uid)
        return acct

    # --- request parsing -----------------------------------------------------------------------

    @staticmethod
    async def params_of(request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and kind in ("application/x-www-form-urlencoded",
                                                 "multipart/form-data"):
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        elif request.method == "POST" and kind == "application/json":
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise _bad_param("The request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise _bad_param("The request body must be a JSON object")
            for key, value in body.items():
                params[key] = (("true" if value else "false") if isinstance(value, bool)
                               else value if isinstance(value, str) else json.dumps(value))
        return params

    @staticmethod
    def fields_of(params: dict[str, str], allowed: tuple[str, ...], node: str,
                  default: tuple[str, ...] = ("id",)) -> list[str]:
        raw = params.get("fields")
        if raw is None or not raw.strip():
            return list(default)
        fields = [f.strip() for f in raw.split(",") if f.strip()]
        for field in fields:
            if field not in allowed:
                raise _bad_param(f"Tried accessing nonexisting field ({field}) on node type "
                                 f"({node})")
        return fields

    @staticmethod
    def check_version(version: str) -> None:
        if not VERSION.fullmatch(version):
            raise GraphError(2500, f"Unknown path components: /{version}", kind="OAuthException")

    # --- injected Graph errors -----------------------------------------------------------------

    def take_injected(self, request: Request, uid: str) -> dict[str, Any] | None:
        """Take the first queued error matching the request (the account's queue first)."""
        path = request.url.path[len(request.scope.get("root_path", "")):]
        taken: list[dict[str, Any]] = []

        def take(queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for i, entry in enumerate(queue):
                if fnmatch.fnmatchcase(path, entry["route"]) and entry.get("method") in (
                        None, request.method):
                    taken.append(entry)
                    return queue[:i] + queue[i + 1:]
            return queue

        for key in (f"errors/{uid}", "errors/*"):
            if self.state.get(key):
                self.state.update(key, take, default=[])
                if taken:
                    break
        return taken[0] if taken else None

    def injected_error(self, request: Request, uid: str) -> GraphError | None:
        entry = self.take_injected(request, uid)
        if entry is None:
            return None
        headers = {}
        if entry.get("regain_minutes") is not None:
            headers["X-Business-Use-Case-Usage"] = json.dumps({uid: [{
                "type": "instagram", "call_count": 100, "total_cputime": 100,
                "total_time": 100, "estimated_time_to_regain_access": entry["regain_minutes"]}]})
        code = entry["code"]
        return GraphError(code, entry.get("message") or f"(#{code}) sandbox injected error",
                          subcode=entry.get("subcode"), status=entry.get("http_status", 400),
                          transient=code in (1, 2, 4, 17, 32, 613), headers=headers)

    async def answer_graph(self, request: Request, handler: GraphHandler, *,
                           auth: bool = True) -> Response:
        """A Graph route: version, token, injected errors, then the handler's JSON."""
        try:
            self.check_version(request.path_params.get("v", "v25.0"))
            params = await self.params_of(request)
            if not auth:
                return JSONResponse(await handler(request, params))
            acct = self.check_token(self.token_of(request, params))
            injected = self.injected_error(request, acct["ig_user_id"])
            if injected is not None:
                raise injected
            return JSONResponse(await handler(request, params, acct))
        except GraphError as exc:
            return self.graph_response(exc)

    # --- containers ----------------------------------------------------------------------------

    def new_id(self, kind: str, digit: str) -> str:
        number = self.state.next_id(kind)
        return f"17{digit}{self.ctx.rng(kind, number).randrange(10**8):08d}{number % 10**6:06d}"

    def container_view(self, c: dict[str, Any]) -> tuple[str, str, int | None]:
        """(status_code, status, subcode) as of now, without counting a poll."""
        if c.get("media_id"):
            return "PUBLISHED", STATUS_TEXT["PUBLISHED"], None
        error_due = c["ready"] and c["verdict"] and c["polls"] >= c["needed"]
        if error_due:
            subcode, message = c["verdict"]["subcode"], c["verdict"]["message"]
            return "ERROR", f"Error: {message} (subcode {subcode})", subcode
        if self.now() - c["created"] >= self.config()["container_ttl"]:
            return "EXPIRED", STATUS_TEXT["EXPIRED"], EXPIRED_SUBCODE
        if not c["ready"]:
            return "IN_PROGRESS", STATUS_TEXT["WAITING"], None
        if c["polls"] < c["needed"]:
            return "IN_PROGRESS", STATUS_TEXT["IN_PROGRESS"], None
        return "FINISHED", STATUS_TEXT["FINISHED"], None

    def poll(self, cid: str) -> dict[str, Any]:
        def change(c: dict[str, Any]) -> dict[str, Any]:
            code = self.container_view(c)[0]
            if c["ready"] and code == "IN_PROGRESS":
                return {**c, "polls": c["polls"] + 1}
            return c
        return self.state.update(f"container/{cid}", change, default={})

    def own_container(self, cid: str, acct: dict[str, Any]) -> dict[str, Any]:
        c = self.state.get(f"container/{cid}") if cid.isdigit() else None
        if c is None or c["ig_user_id"] != acct["ig_user_id"]:
            raise _no_such_object(cid)
        return c

    def pop_plan(self, uid: str) -> dict[str, Any]:
        return pop_first(self.state, f"queue/{uid}", "queue/*") or {}

    @staticmethod
    def validate_caption(caption: str) -> None:
        if len(caption) > MAX_CAPTION:
            raise _bad_param(f"The caption is {len(caption)} characters long (at most "
                             f"{MAX_CAPTION})")
        if len(HASHTAG.findall(caption)) > MAX_HASHTAGS:
            raise _bad_param(f"The caption has more than {MAX_HASHTAGS} hashtags")
        if len(MENTION.findall(caption)) > MAX_MENTIONS:
            raise _bad_param(f"The caption has more than {MAX_MENTIONS} @mentions")

    def reel_params(self, params: dict[str, str]) -> dict[str, Any]:
        media_type = params.get("media_type")
        if media_type is None:
            raise _bad_param("The parameter image_url is required.")
        if media_type != "REELS":
            raise _bad_param(f"The media type {media_type} is not supported here: publish "
                             "videos with media_type=REELS", subcode=2207023)
        video_url, upload_type = params.get("video_url"), params.get("upload_type")
        if upload_type is not None and upload_type != "resumable":
            raise _bad_param("upload_type must be resumable")
        if video_url and upload_type:
            raise _bad_param("Give either video_url or upload_type=resumable, not both")
        if not video_url and not upload_type:
            raise _bad_param("The parameter video_url is required.")
        share = params.get("share_to_feed", "true").lower()
        if share not in ("true", "false"):
            raise _bad_param("share_to_feed must be true or false")
        thumb = params.get("thumb_offset")
        if thumb is not None and not thumb.isdigit():
            raise _bad_param("thumb_offset must be a whole number of milliseconds >= 0")
        caption = params.get("caption", "")
        self.validate_caption(caption)
        return {"video_url": video_url or None, "resumable": upload_type == "resumable",
                "caption": caption, "share_to_feed": share == "true",
                "thumb_offset": int(thumb) if thumb is not None else None}

    def admit_container(self, uid: str) -> None:
        cfg, t = self.config(), self.now()
        refused: list[int] = []

        def change(acc: dict[str, Any]) -> dict[str, Any]:
            recent = [x for x in acc["containers"] if x > t - 86400]
            if len(recent) >= cfg["container_limit"]:
                refused.append(len(recent))
                return {**acc, "containers": recent}
            return {**acc, "containers": [*recent, t]}

        self.state.update(f"account/{uid}", change, default={})
        if refused:
            raise GraphError(9, f"(#9) The account created {refused[0]} media containers in "
                                f"the last 24 hours (at most {cfg['container_limit']})",
                             subcode=QUOTA_SUBCODE, user_title="Container limit reached")

    def new_container(self, uid: str, reel: dict[str, Any],
                      plan: dict[str, Any]) -> dict[str, Any]:
        """A fresh container record, shaped by a `/_control/next_containers` plan if any."""
        cid = self.new_id("container", "8")
        needed = plan.get("polls") if plan.get("outcome") == "slow" else None
        verdict = None
        if plan.get("outcome") == "error":
            subcode = plan.get("subcode") or 2207082
            verdict = {"subcode": subcode, "message": plan.get("message") or SUBCODE_TEXT.get(
                subcode, "Media processing failed (sandbox injected error).")}
        return {
            "id": cid, "ig_user_id": uid, "created": self.now(), "caption": reel["caption"],
            "has_ai_label": has_ai_label(reel["caption"]),
            "share_to_feed": reel["share_to_feed"], "thumb_offset": reel["thumb_offset"],
            "source": "resumable" if reel["resumable"] else "url",
            "video_url": reel["video_url"], "ready": False, "polls": 0,
            "needed": needed or self.config()["finish_polls"], "verdict": verdict,
            "planned_error": verdict is not None, "file_size": None, "sha256": None,
            "size": None, "media_id": None,
        }

    async def create_container(self, request: Request, params: dict[str, str],
                               acct: dict[str, Any]) -> Any:
        uid = self.account_of(request.path_params["uid"], acct)["ig_user_id"]
        reel = self.reel_params(params)
        self.admit_container(uid)
        container = self.new_container(uid, reel, self.pop_plan(uid))
        cid = container["id"]
        self.state.put(f"container/{cid}", container)
        if reel["resumable"]:
            version = request.path_params["v"]
            return {"id": cid, "uri": f"{request.base_url}rupload/ig-api-upload/{version}/{cid}"}
        await self.fetch_into(cid, reel["video_url"])
        return {"id": cid}

    async def fetch_into(self, cid: str, url: str) -> None:
        """Download the container's video_url like Meta does; failures become its ERROR."""
        path = self.files / f"{cid}.mp4"
        self.files.mkdir(parents=True, exist_ok=True)
        failure = await self.download(url, path)
        if failure is None:
            await self.finish_media(cid, path)
            return
        subcode, message = failure
        self.state.update(f"container/{cid}", lambda c: {
            **c, "ready": True, "needed": 1,
            "verdict": {"subcode": subcode, "message": message}}, default={})

    async def download(self, url: str, path: Path) -> tuple[int, str] | None:
        """Fetch `url` into `path`; (subcode, message) when Meta would refuse it."""
        cfg = self.config()
        parts = urlsplit(url)
        refused = (FETCH_FAILED, f"The media could not be fetched from this URI: {url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return refused
        if not _loopback(parts.hostname):
            return FETCH_FAILED, (f"The media could not be fetched from this URI: {url} "
                                  "(the sandbox fetches loopback URLs only)")
        complete = False
        try:
            async with httpx.AsyncClient(timeout=cfg["fetch_timeout"], trust_env=False,
                                         follow_redirects=False) as client, \
                    client.stream("GET", url) as response:
                if response.status_code != 200:
                    return FETCH_FAILED, f"{refused[1]} (HTTP {response.status_code})"
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind and not (kind.startswith("video/") or kind == "application/octet-stream"):
                    return FETCH_FAILED, "Only photo or video can be accepted as media type."
                too_big = await _save_stream(response, path, cfg["max_video_bytes"])
                if too_big is not None:
                    return too_big
                complete = True
        except httpx.TimeoutException:
            return FETCH_TIMEOUT, f"Timeout downloading media from {url}"
        except httpx.HTTPError as exc:
            return FETCH_FAILED, f"{refused[1]} ({type(exc).__name__})"
        return None if complete else refused

    async def finish_media(self, cid: str, path: Path) -> None:
        """The media is complete: hash it, check it as a Reel, let polls advance."""
        max_bytes = self.config()["max_video_bytes"]
        sha = await asyncio.to_thread(sha256_file, path)
        problem = await asyncio.to_thread(video_problem, path, max_bytes)
        size = path.stat().st_size

        def change(c: dict[str, Any]) -> dict[str, Any]:
            verdict = c["verdict"]
            if verdict is None and problem is not None:
                verdict = {"subcode": BAD_FORMAT, "message": f"{SUBCODE_TEXT[BAD_FORMAT]} "
                                                             f"({problem})"}
            return {**c, "ready": True, "sha256": sha, "size": size, "verdict": verdict}

        self.state.update(f"container/{cid}", change, default={})


    # --- the audience: counters and comments ---------------------------------------------------

    def owner(self, uid: str) -> Owner:
        return Owner(uid, self.state.get(f"account/{uid}")["username"])

    def comment_ids(self, media: dict[str, Any]) -> CommentIds:
        """Simulated comment ids: `18` + the media's sequence number + reply slot (0 for a
        top-level comment) + the comment's index + 2 check digits (17 digits)."""
        def ids(index: int, reply: int | None) -> str:
            core = f"18{media['seq']:09d}{0 if reply is None else reply + 1}{index:03d}"
            return f"{core}{self.ctx.rng('comment-id', core).randrange(100):02d}"
        return ids

    def all_comments(self, media: dict[str, Any]) -> list[Comment]:
        """Every comment and reply on the media that exists now, oldest first."""
        uid = media["ig_user_id"]
        simulated = self.audience.comments(media["id"], media["published"], self.owner(uid),
                                           self.comment_ids(media), settings_of(self.state, uid))
        return self.book.visible(simulated, media["id"], self.now())

    def media_counters(self, media: dict[str, Any]) -> Counters:
        settings, now = settings_of(self.state, media["ig_user_id"]), self.now()
        comments = self.book.count(media["id"], media["published"], now, settings)
        return self.audience.counters(media["id"], media["published"], now, settings,
                                      comments=comments)

    def account_media(self, uid: str) -> list[dict[str, Any]]:
        docs = (self.state.get(f"media/{i}") for i in self.state.get(f"media_of/{uid}", []))
        return [m for m in docs if m is not None]

    def index_media(self, uid: str, ids: list[str]) -> None:
        append_new(self.state, f"media_of/{uid}", ids)

    def ensure_indexes(self) -> None:
        """Index media stored before the indexes existed (older sandbox state)."""
        if self.state.get("indexes") == 1:
            return
        by_account: dict[str, list[str]] = {}
        for media in self.state.list_prefix("media/").values():
            by_account.setdefault(media["ig_user_id"], []).append(media["id"])
            self.state.put(f"media_seq/{media['seq']}", media["id"])
        for uid, ids in by_account.items():
            self.index_media(uid, ids)
        self.state.put("indexes", 1)

    def media_by_seq(self, seq: int) -> dict[str, Any] | None:
        media_id = self.state.get(f"media_seq/{seq}")
        return self.state.get(f"media/{media_id}") if media_id else None

    def find_comment(self, comment_id: str) -> tuple[Comment, dict[str, Any]] | None:
        """A comment that exists now, with its media, by id (stored or simulated)."""
        post = self.book.post_of_stored(comment_id)
        match = SIMULATED_COMMENT.fullmatch(comment_id) if post is None else None
        media = self.media_by_seq(int(match.group(1))) if match else (
            self.state.get(f"media/{post}") if post else None)
        if media is None:
            return None
        found = [c for c in self.all_comments(media) if c.id == comment_id]
        return (found[0], media) if found else None

    def own_comment(self, comment_id: str, acct: dict[str, Any]) -> tuple[Comment, dict]:
        found = self.find_comment(comment_id) if comment_id.isdigit() else None
        if found is None or found[1]["ig_user_id"] != acct["ig_user_id"]:
            raise _no_such_object(comment_id)
        return found

    def own_media(self, media_id: str, acct: dict[str, Any]) -> dict[str, Any]:
        media = self.state.get(f"media/{media_id}") if media_id.isdigit() else None
        if media is None or media["ig_user_id"] != acct["ig_user_id"]:
            raise _no_such_object(media_id)
        return media

    def comment_fields(self, c: Comment, fields: list[str],
                       replies: list[Comment]) -> dict[str, Any]:
        now = self.now()
        values: dict[str, Callable[[], Any]] = {
            "id": lambda: c.id, "text": lambda: c.text,
            "timestamp": lambda: graph_time(c.created), "username": lambda: c.author_name,
            "from": lambda: {"id": c.author_id, "username": c.author_name},
            "like_count": lambda: c.like_count(now), "hidden": lambda: c.hidden,
            "parent_id": lambda: c.parent, "media": lambda: {"id": c.post,
                                                            "media_product_type": "REELS"},
            "replies": lambda: {"data": [{"id": r.id, "timestamp": graph_time(r.created),
                                          "text": r.text} for r in replies]},
        }
        out = {f: values[f]() for f in fields}
        if c.parent is None:
            out.pop("parent_id", None)
        if not replies:
            out.pop("replies", None)
        return out

    def comment_page(self, request: Request, params: dict[str, str],
                     items: list[Comment], every: list[Comment]) -> dict[str, Any]:
        """One page of `items` (limit 1-100, default 25; cursor `after`) with Graph paging."""
        fields = self.fields_of(params, COMMENT_FIELDS, "IGComment", ("timestamp", "text", "id"))
        limit = params.get("limit", "25")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise _bad_param("limit must be an integer between 1 and 100")
        start = 0
        if params.get("after"):
            try:
                after = base64.urlsafe_b64decode(params["after"].encode()).decode()
            except ValueError:
                raise _bad_param("Invalid after cursor") from None
            start = next((i + 1 for i, c in enumerate(items) if c.id == after), len(items))
        page = items[start:start + int(limit)]
        body: dict[str, Any] = {"data": [self.comment_fields(
            c, fields, [r for r in every if r.parent == c.id]) for c in page]}
        if page:
            cursor = {"before": _cursor({"id": page[0].id}), "after": _cursor({"id": page[-1].id})}
            body["paging"] = {"cursors": cursor}
            if start + len(page) < len(items):
                query = {k: v for k, v in params.items() if k != "access_token"}
                query["after"] = cursor["after"]
                body["paging"]["next"] = f"{request.url.replace(query='')}?{urlencode(query)}"
        return body

    def take_write(self, uid: str) -> None:
        """One reply against the account's hourly write cap, else Graph's user limit."""
        limit, t = settings_of(self.state, uid)["reply_writes_per_hour"], self.now()
        refused: list[bool] = []

        def change(log: list[float]) -> list[float]:
            recent = [x for x in log if t - 3600 < x <= t]
            if len(recent) >= limit:
                refused.append(True)
                return recent
            return [*recent, t]

        self.state.update(f"writes/{uid}", change, default=[])
        if refused:
            raise GraphError(17, f"(#17) User request limit reached: at most {limit} comment "
                                 f"replies per hour for this account", transient=True,
                             user_title="Too many requests")

    # --- Graph handlers ------------------------------------------------------------------------

    def user_fields(self, acct: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        uid = acct["ig_user_id"]
        values: dict[str, Callable[[], Any]] = {
            "id": lambda: uid, "user_id": lambda: uid, "username": lambda: acct["username"],
            "account_type": lambda: "BUSINESS",
            "media_count": lambda: len(self.state.get(f"media_of/{uid}", [])),
            "followers_count": lambda: self.audience.followers(
                uid, acct["created"], self.now(), settings_of(self.state, uid)),
            "follows_count": lambda: self.audience.following(uid),
        }
        return {f: values[f]() for f in fields}

    async def me(self, request: Request, params: dict[str, str], acct: dict[str, Any]) -> Any:
        return self.user_fields(acct, self.fields_of(params, USER_FIELDS, "User"))

    def media_fields(self, m: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        acct = self.state.get(f"account/{m['ig_user_id']}")
        values = {
            "id": m["id"], "caption": m["caption"], "media_type": "VIDEO",
            "media_product_type": "REELS", "permalink": m["permalink"],
            "shortcode": m["shortcode"], "timestamp": graph_time(m["published"]),
            "username": acct["username"], "is_shared_to_feed": m["share_to_feed"],
        }
        if {"like_count", "comments_count"} & set(fields):
            counts = self.media_counters(m)
            values.update(like_count=counts.likes, comments_count=counts.comments)
        return {f: values[f] for f in fields}

    async def node(self, request: Request, params: dict[str, str], acct: dict[str, Any]) -> Any:
        node_id = request.path_params["node"]
        if node_id == acct["ig_user_id"]:
            return self.user_fields(acct, self.fields_of(params, USER_FIELDS, "User"))
        media = self.state.get(f"media/{node_id}") if node_id.isdigit() else None
        if media is not None and media["ig_user_id"] == acct["ig_user_id"]:
            return self.media_fields(media, self.fields_of(params, MEDIA_FIELDS, "Media"))
        self.own_container(node_id, acct)
        fields = self.fields_of(params, CONTAINER_FIELDS, "ShadowIGMediaBuilder")
        code, status, _ = self.container_view(self.poll(node_id))
        values = {"id": node_id, "status_code": code, "status": status}
        return {f: values[f] for f in fields}

    async def insights(self, request: Request, params: dict[str, str],
                       acct: dict[str, Any]) -> Any:
        media = self.own_media(request.path_params["node"], acct)
        metrics = [m.strip() for m in params.get("metric", "").split(",") if m.strip()]
        if not metrics:
            raise _bad_param("The parameter metric is required.")
        for i, metric in enumerate(metrics):
            if metric in DEPRECATED_METRICS:
                raise GraphError(100, f"(#100) Starting from version v22.0 and for all versions "
                                      f"as of April 21, 2025, the {metric} metric is no longer "
                                      f"supported for the queried media. Please refer to the "
                                      f"documentation for a list of supported metrics.")
            if metric not in INSIGHT_METRICS:
                raise _bad_param(f"metric[{i}] must be one of the following values: "
                                 f"{', '.join(INSIGHT_METRICS)}")
        if params.get("period", "lifetime") != "lifetime":
            raise _bad_param("period must be lifetime for media insights")
        cfg = settings_of(self.state, acct["ig_user_id"])
        if self.now() - media["published"] < cfg["insights_delay"]:
            return {"data": []}  # Meta has no data yet: empty, not zeros
        c = self.media_counters(media)
        if c.views < cfg["insights_min_views"]:
            raise GraphError(10, "(#10) Not enough viewers for the media to show insights",
                             user_title="Not enough viewers")
        watch_ms = self.ctx.rng("watch-time", media["id"]).randint(2000, 9000)
        values = {"views": c.views, "reach": c.reach, "likes": c.likes, "comments": c.comments,
                  "shares": c.shares, "saved": c.saves,
                  "total_interactions": c.likes + c.comments + c.shares + c.saves,
                  "ig_reels_avg_watch_time": watch_ms if c.views else 0,
                  "ig_reels_video_view_total_time": watch_ms * c.views}
        return {"data": [{"name": m, "period": "lifetime", "values": [{"value": values[m]}],
                          "title": INSIGHT_TITLES[m], "description": f"Lifetime {m} of the reel",
                          "id": f"{media['id']}/insights/{m}/lifetime"} for m in metrics]}

    async def comments_edge(self, request: Request, params: dict[str, str],
                            acct: dict[str, Any]) -> Any:
        """A media's top-level comments, newest first (hidden ones too: the owner sees them)."""
        media = self.own_media(request.path_params["node"], acct)
        every = self.all_comments(media)
        # `every` is oldest first (ties in the order added): reversed, the newest comes first.
        top = [c for c in reversed(every) if c.parent is None]
        return self.comment_page(request, params, top, every)

    async def replies_edge(self, request: Request, params: dict[str, str],
                           acct: dict[str, Any]) -> Any:
        if request.method == "POST":
            return self.reply(request.path_params["node"], params, acct)
        comment, media = self.own_comment(request.path_params["node"], acct)
        every = self.all_comments(media)
        replies = [c for c in every if c.parent == comment.id]  # oldest first
        return self.comment_page(request, params, replies, every)

    def reply(self, comment_id: str, params: dict[str, str], acct: dict[str, Any]) -> Any:
        """POST /{comment}/replies: only to a visible top-level comment of the account's
        media, 1..2200 characters, within the hourly write cap."""
        message = params.get("message")
        if message is None or not message.strip():
            raise _bad_param("The parameter message is required.")
        if len(message) > MAX_COMMENT_CHARS:
            raise _bad_param(f"The comment is {len(message)} characters long (at most "
                             f"{MAX_COMMENT_CHARS})")
        comment, media = self.own_comment(comment_id, acct)
        if comment.parent is not None:
            raise GraphError(100, "(#100) Replies can only be made to top-level comments; "
                                  f"{comment_id} is a reply", kind="OAuthException")
        if comment.hidden:
            raise GraphError(100, f"(#100) The comment {comment_id} is hidden and cannot be "
                                  "replied to")
        uid = acct["ig_user_id"]
        self.take_write(uid)
        reply = Comment(id=self.new_id("comment", "7"), post=media["id"], parent=comment.id,
                        text=message, author_id=uid, author_name=acct["username"],
                        created=self.now(), kind=audience_text.OWN, source="api",
                        extra={"seq": self.state.next_id("reply_seq"), "account": uid})
        return {"id": self.book.add(reply).id}

    def quota(self, acct: dict[str, Any], since: float | None = None) -> tuple[int, int, int]:
        cfg = self.config()
        duration = cfg["quota_duration"]
        start = max(self.now() - duration, since or 0)
        used = sum(1 for t in acct["publishes"] if t > start)
        return used, acct.get("quota_total") or cfg["quota_total"], duration

    async def publishing_limit(self, request: Request, params: dict[str, str],
                               acct: dict[str, Any]) -> Any:
        self.account_of(request.path_params["uid"], acct)
        fields = self.fields_of(params, LIMIT_FIELDS, "ContentPublishingLimit", ("quota_usage",))
        since = params.get("since")
        if since is not None and not since.isdigit():
            raise _bad_param("since must be a Unix timestamp")
        used, total, duration = self.quota(acct, float(since) if since else None)
        values = {"quota_usage": used,
                  "config": {"quota_total": total, "quota_duration": duration}}
        return {"data": [{f: values[f] for f in fields}]}

    def refuse_publish(self, c: dict[str, Any]) -> GraphError | None:
        code, _, subcode = self.container_view(c)
        if code == "FINISHED":
            return None
        if code == "PUBLISHED":
            return GraphError(9007, "(#9007) Media ID is not available: the media container "
                                    "has already been published")
        if code == "EXPIRED":
            return GraphError(9007, "(#9007) The media container has expired: create a new "
                                    "one", subcode=EXPIRED_SUBCODE)
        if code == "ERROR":
            return GraphError(9007, "(#9007) Media ID is not available", subcode=subcode,
                              user_title="Media upload has failed", user_msg=c["verdict"][
                                  "message"])
        return GraphError(9007, "(#9007) Media ID is not available", subcode=NOT_READY,
                          user_title="Media is not ready to be published",
                          user_msg="The media is not ready to be published. Please wait a "
                                   "moment.")

    async def media_publish(self, request: Request, params: dict[str, str],
                            acct: dict[str, Any]) -> Any:
        # No await from here to the end: the checks and writes below are one atomic step on
        # the event loop, so two racing publishes of one container cannot both succeed.
        uid = self.account_of(request.path_params["uid"], acct)["ig_user_id"]
        cid = params.get("creation_id", "").strip()
        if not cid:
            raise _bad_param("The parameter creation_id is required.")
        container = self.own_container(cid, acct)
        refusal = self.refuse_publish(container)
        if refusal is not None:
            raise refusal
        used, total, _ = self.quota(acct)
        if used >= total:
            raise GraphError(9, f"(#9) You have reached the maximum number of posts ({total}) "
                                f"that can be published through the API in 24 hours.",
                             subcode=QUOTA_SUBCODE, user_title="Max. posts reached")
        return {"id": self.publish(container, uid)}

    def publish(self, container: dict[str, Any], uid: str) -> str:
        t = self.now()
        media_id = self.store_media(container, uid, t)
        self.state.update(f"container/{container['id']}",
                          lambda c: {**c, "media_id": media_id, "published": t}, default={})
        self.state.update(f"account/{uid}",
                          lambda a: {**a, "publishes": [*a["publishes"], t]}, default={})
        return media_id

    def store_media(self, container: dict[str, Any], uid: str, t: float) -> str:
        """A published media record (and its sequence index) from a container's facts."""
        media_id = self.new_id("media", "9")
        rng = self.ctx.rng("shortcode", media_id)
        shortcode = "D" + "".join(rng.choice(_ID_ALPHABET) for _ in range(10))
        seq = self.state.next_id("media_seq")
        self.state.put(f"media_seq/{seq}", media_id)
        self.state.put(f"media/{media_id}", {
            "id": media_id, "seq": seq, "ig_user_id": uid,
            "container_id": container["id"], "caption": container["caption"],
            "has_ai_label": container["has_ai_label"],
            "share_to_feed": container["share_to_feed"], "video_sha256": container["sha256"],
            "video_size": container["size"], "shortcode": shortcode,
            "permalink": f"https://www.instagram.com/reel/{shortcode}/", "published": t,
        })
        self.index_media(uid, [media_id])
        return media_id

    async def media_edge(self, request: Request, params: dict[str, str],
                         acct: dict[str, Any]) -> Any:
        if request.method == "POST":
            return await self.create_container(request, params, acct)
        return self.list_media(request, params, acct)

    def list_media(self, request: Request, params: dict[str, str],
                   acct: dict[str, Any]) -> dict[str, Any]:
        """A page of the account's published media, newest first, with cursors."""
        uid = self.account_of(request.path_params["uid"], acct)["ig_user_id"]
        fields = self.fields_of(params, MEDIA_FIELDS, "Media")
        limit = params.get("limit", "25")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise _bad_param("limit must be an integer between 1 and 100")
        mine = sorted(self.account_media(uid), key=lambda m: m["seq"], reverse=True)
        start = 0
        if params.get("after"):
            try:
                after = base64.urlsafe_b64decode(params["after"].encode()).decode()
            except ValueError:
                raise _bad_param("Invalid after cursor") from None
            start = next((i + 1 for i, m in enumerate(mine) if m["id"] == after), len(mine))
        page = mine[start:start + int(limit)]
        body: dict[str, Any] = {"data": [self.media_fields(m, fields) for m in page]}
        if page:
            body["paging"] = {"cursors": {"before": _cursor(page[0]),
                                          "after": _cursor(page[-1])}}
            if start + len(page) < len(mine):
                query = {k: v for k, v in params.items() if k != "access_token"}
                query["after"] = _cursor(page[-1])
                body["paging"]["next"] = f"{request.url.replace(query='')}?{urlencode(query)}"
        return body

    async def refresh(self, request: Request, params: dict[str, str]) -> Any:
        if params.get("grant_type") != "ig_refresh_token":
            raise _bad_param("Unsupported grant_type: use grant_type=ig_refresh_token")
        token = params.get("access_token", "").strip()
        record = self.provision(token) if token else None
        if record is None:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        if self.now() >= record["expires"] and not record.get("refreshable", True):
            raise GraphError(190, "Error validating access token: Session has expired and "
                                  "the token can no longer be refreshed.", subcode=463)
        number = self.state.next_id("refresh")
        rng = self.ctx.rng("token", fingerprint(token), number)
        new = "IGAA" + f"{rng.getrandbits(192):048x}"
        ttl = self.config()["token_ttl"]
        self.state.put(f"token/{fingerprint(new)}", {
            "ig_user_id": record["ig_user_id"], "issued": self.now(),
            "expires": self.now() + ttl, "refreshable": True})
        return {"access_token": new, "token_type": "bearer", "expires_in": ttl}

    # --- rupload -------------------------------------------------------------------------------

    def upload_account(self, request: Request) -> dict[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "oauth" or not token.strip():
            raise UploadError(401, "OAuthException",
                              "Authorization header must be 'OAuth <access token>'")
        try:
            return self.check_token(token.strip())
        except GraphError as exc:
            raise UploadError(401, "OAuthException", exc.message) from None

    def upload_container(self, request: Request, acct: dict[str, Any]) -> dict[str, Any]:
        if not VERSION.fullmatch(request.path_params["v"]):
            raise UploadError(400, "BadRequest", "unknown API version in the upload URI")
        cid = request.path_params["cid"]
        try:
            container = self.own_container(cid, acct)
        except GraphError:
            raise UploadError(400, "ProcessingFailedError",
                              f"media container {cid} does not exist") from None
        if container["source"] != "resumable":
            raise UploadError(400, "ProcessingFailedError",
                              f"media container {cid} was not created with "
                              "upload_type=resumable")
        return container

    @staticmethod
    def int_header(request: Request, name: str, minimum: int) -> int:
        raw = request.headers.get(name)
        if raw is None or not raw.strip().isdigit() or int(raw) < minimum:
            raise UploadError(400, "BadRequest",
                              f"header {name} is required: an integer >= {minimum}")
        return int(raw)

    def received(self, cid: str) -> int:
        path = self.files / f"{cid}.mp4"
        return path.stat().st_size if path.exists() else 0

    def check_upload(self, request: Request, container: dict[str, Any]) -> tuple[int, int]:
        """The POST's (offset, file_size), refused with UploadError when they do not fit."""
        offset = self.int_header(request, "offset", 0)
        file_size = self.int_header(request, "file_size", 1)
        if file_size > self.config()["max_video_bytes"]:
            raise UploadError(400, "BadRequest", f"file_size {file_size} exceeds "
                                                 f"{self.config()['max_video_bytes']} bytes")
        if container["file_size"] not in (None, file_size):
            raise UploadError(400, "BadRequest", f"file_size {file_size} differs from "
                                                 f"{container['file_size']} given before")
        return offset, file_size

    def check_offset(self, cid: str, offset: int, file_size: int) -> None:
        have = self.received(cid)
        if offset > have:
            raise UploadError(400, "BadRequest", f"offset {offset} is past the {have} bytes "
                                                 "received: GET the upload URI for the offset")
        if offset >= file_size:
            raise UploadError(400, "BadRequest", f"offset {offset} must be below file_size "
                                                 f"{file_size}")

    async def receive_upload(self, request: Request, container: dict[str, Any]) -> Response:
        cid = container["id"]
        offset, file_size = self.check_upload(request, container)
        if container["ready"]:  # complete: a resend of bytes already in place changes nothing
            return JSONResponse({"success": True, "message": "Upload successful."})
        self.check_offset(cid, offset, file_size)
        self.state.update(f"container/{cid}", lambda c: {**c, "file_size": file_size},
                          default={})
        cut = self.pop_cut(cid)
        path = self.files / f"{cid}.mp4"
        self.files.mkdir(parents=True, exist_ok=True)
        end = await _write_body(request, path, offset, file_size, cut)
        if end is None:  # the planned cut happened: nothing is answered
            return _NoResponse()
        if end < file_size:
            return JSONResponse({"success": True, "message": "Upload in progress.",
                                 "offset": end})
        await self.finish_media(cid, path)
        return JSONResponse({"success": True, "message": "Upload successful."})

    def pop_cut(self, cid: str) -> int | None:
        return pop_first(self.state, f"cuts/{cid}", "cuts/*")

    # --- API routes ----------------------------------------------------------------------------

    async def api_refresh(self, request: Request) -> Response:
        return await self.answer_graph(request, self.refresh, auth=False)

    async def api_me(self, request: Request) -> Response:
        return await self.answer_graph(request, self.me)

    async def api_media(self, request: Request) -> Response:
        return await self.answer_graph(request, self.media_edge)

    async def api_media_publish(self, request: Request) -> Response:
        return await self.answer_graph(request, self.media_publish)

    async def api_publishing_limit(self, request: Request) -> Response:
        return await self.answer_graph(request, self.publishing_limit)

    async def api_node(self, request: Request) -> Response:
        return await self.answer_graph(request, self.node)

    async def api_insights(self, request: Request) -> Response:
        return await self.answer_graph(request, self.insights)

    async def api_comments(self, request: Request) -> Response:
        return await self.answer_graph(request, self.comments_edge)

    async def api_replies(self, request: Request) -> Response:
        return await self.answer_graph(request, self.replies_edge)

    async def api_rupload(self, request: Request) -> Response:
        try:
            acct = self.upload_account(request)
            container = self.upload_container(request, acct)
            cid = container["id"]
            if request.method == "GET":
                return JSONResponse({"id": cid, "offset": self.received(cid),
                                     "file_size": container["file_size"]})
            lock = self.upload_locks.setdefault(cid, asyncio.Lock())
            async with lock:  # re-read inside: a concurrent upload may have completed it
                return await self.receive_upload(request, self.state.get(f"container/{cid}"))
        except UploadError as exc:
            return self.upload_response(exc)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        path = request.url.path[len(request.scope.get("root_path", "")):]
        return self.graph_response(GraphError(2500, f"Unknown path components: {path}"))

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.graph_response(_bad_param(f"Unsupported {request.method.lower()} request."))

    # --- control -------------------------------------------------------------------------------

    @staticmethod
    def control_error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def answer_control(self, request: Request, handler: ControlHandler) -> Response:
        """A control route: its JSON body (POST/DELETE only; GET ones take none), then the
        handler's answer; ValueError -> 400, LookupError -> 404."""
        try:
            body = (await read_control_body(request)
                    if request.method in ("POST", "DELETE") else {})
            return JSONResponse(handler(request, body))
        except BadControlBody as exc:
            return self.control_error(str(exc))
        except ValueError as exc:
            return self.control_error(str(exc))
        except LookupError as exc:
            return self.control_error(str(exc.args[0]), 404)

    def known_account(self, uid: Any) -> dict[str, Any]:
        acct = self.state.get(f"account/{uid}") if isinstance(uid, str) else None
        if acct is None:
            raise LookupError(f"unknown ig_user_id {uid!r}")
        return acct

    def scope_uid(self, body: dict[str, Any]) -> str:
        uid = body.get("ig_user_id")
        return "*" if uid is None else self.known_account(uid)["ig_user_id"]

    def wanted_uid(self, request: Request) -> str | None:
        uid = request.query_params.get("ig_user_id")
        return None if uid is None else self.known_account(uid)["ig_user_id"]

    def container_record(self, c: dict[str, Any]) -> dict[str, Any]:
        code, status, subcode = self.container_view(c)
        keys = ("id", "ig_user_id", "caption", "has_ai_label", "source", "video_url",
                "file_size", "sha256", "size", "media_id", "polls", "share_to_feed",
                "thumb_offset")
        return {**{k: c[k] for k in keys}, "status_code": code, "status": status,
                "subcode": subcode, "created": graph_time(c["created"]),
                "received": self.received(c["id"]) if c["source"] == "resumable" else c["size"]}

    def enqueue(self, key: str, entries: list[Any]) -> dict[str, Any]:
        return {"queue": self.state.update(key, lambda q: [*q, *entries], default=[])}

    def c_account(self, request: Request, body: dict[str, Any]) -> Any:
        token = request.query_params.get("access_token", "")
        record = self.provision(token) if token else None
        if record is None:
            raise LookupError("unknown access_token (sandbox tokens start with IGAAsandbox)")
        acct = self.state.get(f"account/{record['ig_user_id']}")
        return {"ig_user_id": acct["ig_user_id"], "username": acct["username"]}

    def c_expire_token(self, request: Request, body: dict[str, Any]) -> Any:
        token = body.get("access_token")
        record = self.provision(token) if isinstance(token, str) and token else None
        if record is None:
            raise LookupError("unknown access_token")
        refreshable = body.get("refreshable", True)
        if not isinstance(refreshable, bool):
            raise ValueError("refreshable must be true or false")
        t = self.now()
        self.state.update(f"token/{fingerprint(token)}", lambda r: {
            **r, "expires": min(r["expires"], t - 1), "refreshable": refreshable}, default={})
        return {"ig_user_id": record["ig_user_id"], "expired": True, "refreshable": refreshable}

    def c_age(self, request: Request, body: dict[str, Any]) -> Any:
        cid, seconds = body.get("container_id"), body.get("seconds")
        if not isinstance(cid, str) or self.state.get(f"container/{cid}") is None:
            raise LookupError(f"unknown container_id {cid!r}")
        if not _is_number(seconds) or seconds < 0:
            raise ValueError("seconds must be a number >= 0")
        c = self.state.update(f"container/{cid}",
                              lambda c: {**c, "created": c["created"] - seconds}, default={})
        return self.container_record(c)

    def c_clock(self, request: Request, body: dict[str, Any]) -> Any:
        advance = body.get("advance", 0)
        if not _is_number(advance) or advance < 0:
            raise ValueError("advance must be a number of seconds >= 0")
        offset = self.state.update("clock", lambda o: o + advance, default=0.0)
        return {"offset": offset, "now": graph_time(self.now())}

    def c_next_containers(self, request: Request, body: dict[str, Any]) -> Any:
        key = f"queue/{self.scope_uid(body)}"
        if request.method == "DELETE":
            self.state.put(key, [])
            return {"queue": []}
        outcome = body.get("outcome")
        if outcome not in ("error", "slow"):
            raise ValueError("outcome must be error or slow")
        count = _positive_count(body)
        entry: dict[str, Any] = {"outcome": outcome}
        if outcome == "error":
            subcode, message = body.get("subcode", 2207082), body.get("message")
            if not _is_int(subcode):
                raise ValueError("subcode must be an integer")
            if message is not None and not isinstance(message, str):
                raise ValueError("message must be a string")
            entry.update(subcode=subcode, message=message)
        else:
            polls = body.get("polls", 5)
            if not _is_int(polls) or polls < 1:
                raise ValueError("polls must be an integer >= 1")
            entry["polls"] = polls
        return self.enqueue(key, [entry] * count)

    def c_next_errors(self, request: Request, body: dict[str, Any]) -> Any:
        key = f"errors/{self.scope_uid(body)}"
        if request.method == "DELETE":
            self.state.put(key, [])
            return {"queue": []}
        if not _is_int(body.get("code")):
            raise ValueError("code must be an integer (Graph error code)")
        count = _positive_count(body)
        entry = {"code": body["code"], "subcode": body.get("subcode"),
                 "message": body.get("message"), "route": body.get("route", "*"),
                 "method": body.get("method"), "http_status": body.get("http_status", 400),
                 "regain_minutes": body.get("regain_minutes")}
        if entry["subcode"] is not None and not _is_int(entry["subcode"]):
            raise ValueError("subcode must be an integer")
        if not isinstance(entry["route"], str):
            raise ValueError("route must be a glob string")
        if not _is_int(entry["http_status"]) or not 400 <= entry["http_status"] <= 599:
            raise ValueError("http_status must be 400-599")
        if entry["regain_minutes"] is not None and not _is_int(entry["regain_minutes"]):
            raise ValueError("regain_minutes must be an integer")
        return self.enqueue(key, [entry] * count)

    def c_next_uploads(self, request: Request, body: dict[str, Any]) -> Any:
        cid = body.get("container_id")
        if cid is not None and (not isinstance(cid, str)
                                or self.state.get(f"container/{cid}") is None):
            raise LookupError(f"unknown container_id {cid!r}")
        key = f"cuts/{cid or '*'}"
        if request.method == "DELETE":
            self.state.put(key, [])
            return {"queue": []}
        cut_after = body.get("cut_after")
        if not _is_int(cut_after) or cut_after < 0:
            raise ValueError("cut_after must be an integer >= 0 (bytes kept)")
        return self.enqueue(key, [cut_after] * _positive_count(body))

    def c_quota(self, request: Request, body: dict[str, Any]) -> Any:
        uid = self.known_account(body.get("ig_user_id"))["ig_user_id"]
        total, usage = body.get("quota_total"), body.get("quota_usage")
        if total is not None and (not _is_int(total) or total < 1):
            raise ValueError("quota_total must be an integer >= 1")
        if usage is not None and (not _is_int(usage) or usage < 0):
            raise ValueError("quota_usage must be an integer >= 0")
        t = self.now()

        def change(acc: dict[str, Any]) -> dict[str, Any]:
            out = dict(acc)
            if total is not None:
                out["quota_total"] = total
            if usage is not None:
                out["publishes"] = [t] * usage
            return out

        acct = self.state.update(f"account/{uid}", change, default={})
        used, quota_total, duration = self.quota(acct)
        return {"quota_usage": used, "config": {"quota_total": quota_total,
                                                "quota_duration": duration}}

    def c_config(self, request: Request, body: dict[str, Any]) -> Any:
        unknown = sorted(set(body) - set(_CONFIG_RULES))
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known: {sorted(_CONFIG_RULES)}")
        for name, value in body.items():
            check, description = _CONFIG_RULES[name]
            if not check(value):
                raise ValueError(f"{name} must be {description}")
        if body:
            self.state.update("config", lambda c: {**c, **body}, default={})
        return self.config()

    def c_containers(self, request: Request, body: dict[str, Any]) -> Any:
        uid = self.wanted_uid(request)
        return [self.container_record(c) for c in self.state.list_prefix("container/").values()
                if uid in (None, c["ig_user_id"])]

    def c_published(self, request: Request, body: dict[str, Any]) -> Any:
        uid = self.wanted_uid(request)
        keys = ("id", "container_id", "ig_user_id", "caption", "has_ai_label", "video_sha256",
                "video_size", "permalink", "shortcode")
        mine = sorted((m for m in self.state.list_prefix("media/").values()
                       if uid in (None, m["ig_user_id"])), key=lambda m: m["seq"])
        return [{**{k: m[k] for k in keys}, "timestamp": graph_time(m["published"])}
                for m in mine]

    def c_published_post(self, request: Request, body: dict[str, Any]) -> Any:
        wanted = request.path_params["media_id"]
        found = [m for m in self.c_published(request, body) if m["id"] == wanted]
        if not found:
            raise LookupError(f"no published media {wanted}")
        return found[0]

    def c_audience(self, request: Request, body: dict[str, Any]) -> Any:
        if body.get("account") is not None:
            self.known_account(body["account"])
        return apply_settings(self.state, body)

    def c_add_comment(self, request: Request, body: dict[str, Any]) -> Any:
        want = control_comment_request(body, self.now())
        media = self.state.get(f"media/{want['post']}") if want["post"].isdigit() else None
        if media is None:
            raise LookupError(f"no published media {want['post']}")
        parent = want["parent"]
        if parent is not None:
            found = self.find_comment(parent)
            if found is None or found[1]["id"] != media["id"] or found[0].parent is not None:
                raise LookupError(f"no top-level comment {parent} on media {media['id']}")
        owner = self.owner(media["ig_user_id"])
        name = owner.author_name if want["own"] else (want["author"] or "sandbox_fan")
        comment = Comment(
            id=self.new_id("comment", "7"), post=media["id"], parent=parent, text=want["text"],
            author_id=owner.author_id if want["own"] else self.audience.author_id(name),
            author_name=name, created=want["at"],
            kind=audience_text.OWN if want["own"] else want["kind"], hidden=want["hidden"],
            source="control")
        return comment_view(self.book.add(comment), self.now())

    def c_seed_posts(self, request: Request, body: dict[str, Any]) -> Any:
        """Published media without a container or upload, for tests and benchmarks."""
        want = seed_request(body, self.now(), "ig_user_id", ("caption",))
        uid = self.known_account(want["account"])["ig_user_id"]
        caption = want.get("caption", "Seeded reel. AI-generated virtual creator #AIgenerated")
        if not isinstance(caption, str):
            raise ValueError("caption must be a string")
        count, docs = want["count"], {}
        for number, seq, t in zip(self.state.next_ids("media", count),
                                  self.state.next_ids("media_seq", count), want["times"],
                                  strict=True):
            media_id = (f"179{self.ctx.rng('media', number).randrange(10**8):08d}"
                        f"{number % 10**6:06d}")
            shortcode = "D" + "".join(self.ctx.rng("shortcode", media_id).choice(_ID_ALPHABET)
                                      for _ in range(10))
            docs[f"media/{media_id}"] = {
                "id": media_id, "seq": seq, "ig_user_id": uid, "container_id": None,
                "caption": caption, "has_ai_label": has_ai_label(caption),
                "share_to_feed": True, "video_sha256": None, "video_size": 0,
                "shortcode": shortcode, "published": t,
                "permalink": f"https://www.instagram.com/reel/{shortcode}/"}
            docs[f"media_seq/{seq}"] = media_id
        self.state.put_many(docs)
        self.index_media(uid, [m["id"] for k, m in docs.items() if k.startswith("media/")])
        keys = ("id", "container_id", "ig_user_id", "caption", "has_ai_label", "video_sha256",
                "video_size", "permalink", "shortcode")
        return [{**{k: m[k] for k in keys}, "timestamp": graph_time(m["published"])}
                for key, m in docs.items() if key.startswith("media/")]

    def c_comments(self, request: Request, body: dict[str, Any]) -> Any:
        post = request.query_params.get("post", "")
        media = self.state.get(f"media/{post}") if post.isdigit() else None
        if media is None:
            raise LookupError(f"no published media {post!r} (give ?post=<media id>)")
        return [comment_view(c, self.now()) for c in self.all_comments(media)]

    def c_replies(self, request: Request, body: dict[str, Any]) -> Any:
        uid, post = self.wanted_uid(request), request.query_params.get("post")
        return [comment_view(c, self.now()) for c in self.book.api_replies()
                if uid in (None, c.extra.get("account")) and post in (None, c.post)]

    # --- control routes ------------------------------------------------------------------------

    async def control_account(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_account)

    async def control_expire_token(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_expire_token)

    async def control_age(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_age)

    async def control_clock(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_clock)

    async def control_next_containers(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_next_containers)

    async def control_next_errors(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_next_errors)

    async def control_next_uploads(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_next_uploads)

    async def control_quota(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_quota)

    async def control_config(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_config)

    async def control_containers(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_containers)

    async def control_published(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_published)

    async def control_published_post(self, request: Request) -> Response:
        """One published media by id: what a status link opens."""
        return await self.answer_control(request, self.c_published_post)

    async def control_audience(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_audience)

    async def control_comments(self, request: Request) -> Response:
        handler = self.c_add_comment if request.method == "POST" else self.c_comments
        return await self.answer_control(request, handler)

    async def control_seed_posts(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_seed_posts)

    async def control_replies(self, request: Request) -> Response:
        return await self.answer_control(request, self.c_replies)

    # --- wiring --------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        both, change = ["GET", "POST"], ["POST", "DELETE"]
        return [
            Route("/_control/account", self.control_account, methods=["GET"]),
            Route("/_control/expire_token", self.control_expire_token, methods=["POST"]),
            Route("/_control/age", self.control_age, methods=["POST"]),
            Route("/_control/clock", self.control_clock, methods=both),
            Route("/_control/next_containers", self.control_next_containers, methods=change),
            Route("/_control/next_errors", self.control_next_errors, methods=change),
            Route("/_control/next_uploads", self.control_next_uploads, methods=change),
            Route("/_control/quota", self.control_quota, methods=["POST"]),
            Route("/_control/config", self.control_config, methods=both),
            Route("/_control/containers", self.control_containers, methods=["GET"]),
            Route("/_control/published", self.control_published, methods=["GET"]),
            Route("/_control/published/{media_id}", self.control_published_post,
                  methods=["GET"]),
            Route("/_control/audience", self.control_audience, methods=["POST"]),
            Route("/_control/comments", self.control_comments, methods=both),
            Route("/_control/replies", self.control_replies, methods=["GET"]),
            Route("/_control/seed_posts", self.control_seed_posts, methods=["POST"]),
            Route("/rupload/ig-api-upload/{v}/{cid}", self.api_rupload, methods=both),
            Route("/refresh_access_token", self.api_refresh, methods=["GET"]),
            Route("/{v}/refresh_access_token", self.api_refresh, methods=["GET"]),
            Route("/{v}/me", self.api_me, methods=["GET"]),
            Route("/{v}/{uid}/media", self.api_media, methods=both),
            Route("/{v}/{uid}/media_publish", self.api_media_publish, methods=["POST"]),
            Route("/{v}/{uid}/content_publishing_limit", self.api_publishing_limit,
                  methods=["GET"]),
            Route("/{v}/{node}/insights", self.api_insights, methods=["GET"]),
            Route("/{v}/{node}/comments", self.api_comments, methods=["GET"]),
            Route("/{v}/{node}/replies", self.api_replies, methods=both),
            Route("/{v}/{node}", self.api_node, methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, retry_after: float | None) -> Response:
        """Injected faults worded as Graph errors."""
        if status == 429:
            error = GraphError(4, f"(#4) Application request limit reached ({message})",
                               status=429, transient=True)
        elif status >= 500:
            error = GraphError(2, f"An unexpected error has occurred. Please retry your "
                                  f"request later. ({message})", status=status, transient=True)
        elif status in (401, 403):
            error = GraphError(190, f"Invalid OAuth access token ({message})", status=status)
        else:
            error = GraphError(100, f"(#100) {message}", status=status)
        return self.graph_response(error)

    def system(self) -> System:
        app = Starlette(routes=self.routes(),
                        exception_handlers={404: self.not_found, 405: self.not_allowed})
        return System(app=app, error_response=self.error_response)


def create(ctx: SystemContext) -> System:
    return InstagramSystem(ctx).system()
