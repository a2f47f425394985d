"""YouTube engagement reads and comment replies: the part of YouTubeClient that issue 12 added.

A mixin, so `resources/youtube.py` stays readable: `YouTubeClient` inherits these methods and
supplies `_get` / `_post`, which report each call to `on_quota` (the operation's units, before
the request is sent: a quota gate may refuse it there) and turn 403 quotaExceeded into the
deferrable QuotaExceeded.

Units (classic cost table): videos.list 1 per call of up to 50 ids, channels.list 1,
commentThreads.list 1 per page of up to 100 threads (of one video, or of a whole channel with
allThreadsRelatedToChannelId), comments.list 1 per page of up to 100 replies, comments.insert
50. Counts come as strings ("123"); an absent count (likes hidden by the owner, a hidden
subscriber count) is None, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from resources.engagement_model import AccountStats, PostCounters
from resources.http import InvalidResponse, json_int
from resources.social_comments import RemoteComment, parse_time

SYSTEM = "youtube"
API = "/youtube/v3"
VIDEOS_PER_CALL = 50
PAGE_SIZE = 100  # the most commentThreads.list / comments.list return a page
COMMENT_MAX_CHARS = 10_000


def _items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _next(body: Mapping[str, Any]) -> str | None:
    token = body.get("nextPageToken")
    return token if isinstance(token, str) and token else None


def _invalid(what: str, problem: str) -> InvalidResponse:
    return InvalidResponse(f"{SYSTEM}: {what}: {problem}", system=SYSTEM, reason=problem)


def parse_comment(item: Mapping[str, Any], *, reply_count: int | None = None) -> RemoteComment:
    """A comment resource (a thread's topLevelComment, an inline reply, a comments.list
    item) as a RemoteComment; `parent_id` is snippet.parentId (None for top-level)."""
    comment_id = item.get("id")
    snippet = item.get("snippet")
    if not isinstance(comment_id, str) or not comment_id or not isinstance(snippet, dict):
        raise _invalid("comment", "a comment without an id or snippet")
    author = snippet.get("authorChannelId")
    author_id = author.get("value") if isinstance(author, dict) else None
    text = snippet.get("textOriginal")
    if not isinstance(text, str):
        text = snippet.get("textDisplay")
    parent = snippet.get("parentId")
    name = snippet.get("authorDisplayName")
    return RemoteComment(
        id=comment_id, text=text if isinstance(text, str) else "",
        author_id=author_id if isinstance(author_id, str) and author_id else None,
        author_name=name if isinstance(name, str) and name else None,
        published_at=parse_time(snippet.get("publishedAt")),
        parent_id=parent if isinstance(parent, str) and parent else None,
        like_count=json_int(snippet.get("likeCount")), reply_count=reply_count)


def parse_thread(item: Mapping[str, Any]) -> list[RemoteComment]:
    """A commentThread: its top-level comment, then the replies YouTube inlined (a subset)."""
    snippet = item.get("snippet")
    top = snippet.get("topLevelComment") if isinstance(snippet, dict) else None
    if not isinstance(top, dict):
        raise _invalid("commentThreads.list", "a thread without a topLevelComment")
    out = [parse_comment(top, reply_count=json_int(snippet.get("totalReplyCount")))]
    replies = item.get("replies")
    inline = replies.get("comments") if isinstance(replies, dict) else None
    for reply in inline if isinstance(inline, list) else []:
        if isinstance(reply, dict):
            parsed = parse_comment(reply)
            out.append(parsed if parsed.parent_id else replace(parsed, parent_id=out[0].id))
    return out


class ChannelComment(NamedTuple):
    """A comment read from a channel-wide listing, with the video it is on."""

    video_id: str
    comment: RemoteComment


def _thread_video(item: Mapping[str, Any]) -> str | None:
    """The video a thread is on: snippet.videoId (or its top-level comment's); None for a
    comment on the channel itself (not on a video)."""
    snippet = item.get("snippet")
    if not isinstance(snippet, dict):
        return None
    top = snippet.get("topLevelComment")
    top_snippet = top.get("snippet") if isinstance(top, dict) else None
    for value in (snippet.get("videoId"),
                  top_snippet.get("videoId") if isinstance(top_snippet, dict) else None):
        if isinstance(value, str) and value:
            return value
    return None


class YouTubeReads:
    """Engagement reads and comment replies; mixed into YouTubeClient."""

    def _get(self, operation: str, path: str,
             params: Mapping[str, Any]) -> dict[str, Any]:  # pragma: no cover - supplied
        raise NotImplementedError

    def _post(self, operation: str, path: str, params: Mapping[str, Any],
              body: Mapping[str, Any]) -> dict[str, Any]:  # pragma: no cover - supplied
        raise NotImplementedError

    def video_counters(self, video_ids: Sequence[str]) -> dict[str, PostCounters]:
        """Lifetime views, likes and comments by video id, 50 ids per videos.list call (1
        unit each). Videos YouTube does not return (deleted, private to another channel) are
        absent; a count the owner hides is None. YouTube has no share or save counter."""
        wanted = list(dict.fromkeys(str(i) for i in video_ids if str(i)))
        found: dict[str, PostCounters] = {}
        for start in range(0, len(wanted), VIDEOS_PER_CALL):
            batch = wanted[start:start + VIDEOS_PER_CALL]
            body = self._get("videos.list", f"{API}/videos",
                             {"part": "statistics", "id": ",".join(batch)})
            asked = set(batch)
            for item in _items(body):
                stats = item.get("statistics")
                if item.get("id") in asked and isinstance(stats, dict):
                    found[str(item["id"])] = PostCounters(
                        views=json_int(stats.get("viewCount")),
                        likes=json_int(stats.get("likeCount")),
                        comments=json_int(stats.get("commentCount")), shares=None, saves=None)
        return found

    def channel_stats(self) -> AccountStats:
        """The authorised channel's subscribers (None while hidden; YouTube rounds public
        counts to 3 significant digits) and video count (channels.list mine=true, 1 unit)."""
        body = self._get("channels.list", f"{API}/channels",
                         {"part": "statistics", "mine": "true"})
        items = _items(body)
        stats = items[0].get("statistics") if items else None
        if not isinstance(stats, dict):
            raise _invalid("channels.list", "no channel statistics (is there a channel?)")
        hidden = stats.get("hiddenSubscriberCount") is True
        return AccountStats(followers=None if hidden else json_int(stats.get("subscriberCount")),
                            posts=json_int(stats.get("videoCount")))

    def comment_threads(self, video_id: str, *, page_token: str | None = None
                        ) -> tuple[list[RemoteComment], str | None]:
        """One page (up to 100 threads, newest first, 1 unit) of a video's comments and the
        next page's token (None on the last). Each top-level comment (parent_id None,
        reply_count = totalReplyCount) is followed by the replies YouTube inlined with it,
        which are only a subset: `comment_replies` lists them all."""
        params = {"part": "snippet,replies", "videoId": video_id, "order": "time",
                  "maxResults": PAGE_SIZE, "textFormat": "plainText"}
        if page_token:
            params["pageToken"] = page_token
        body = self._get("commentThreads.list", f"{API}/commentThreads", params)
        return [c for item in _items(body) for c in parse_thread(item)], _next(body)

    def channel_comment_threads(self, channel_id: str, *, page_token: str | None = None
                                ) -> tuple[list[ChannelComment], str | None]:
        """One page (up to 100 threads, newest first, 1 unit) of the comments on every video
        of a channel (allThreadsRelatedToChannelId), each with its video id, and the next
        page's token (None on the last): one read for the whole channel instead of one per
        video. Top-level comments first in each thread, then the replies YouTube inlined
        (parent_id set). Threads on no video (channel discussions) are left out."""
        params = {"part": "snippet,replies", "allThreadsRelatedToChannelId": channel_id,
                  "order": "time", "maxResults": PAGE_SIZE, "textFormat": "plainText"}
        if page_token:
            params["pageToken"] = page_token
        body = self._get("commentThreads.list", f"{API}/commentThreads", params)
        out: list[ChannelComment] = []
        for item in _items(body):
            video = _thread_video(item)
            if video is not None:
                out += [ChannelComment(video, c) for c in parse_thread(item)]
        return out, _next(body)

    def comment_replies(self, parent_id: str) -> list[RemoteComment]:
        """Every reply to a top-level comment (comments.list parentId=, 1 unit a page)."""
        out: list[RemoteComment] = []
        token: str | None = None
        while True:
            params = {"part": "snippet", "parentId": parent_id, "maxResults": PAGE_SIZE,
                      "textFormat": "plainText"}
            if token:
                params["pageToken"] = token
            body = self._get("comments.list", f"{API}/comments", params)
            out.extend(parse_comment(item) for item in _items(body))
            token = _next(body)
            if token is None:
                return out

    def reply_to_comment(self, parent_id: str, text: str) -> str:
        """Reply to a top-level comment (comments.insert, 50 units); returns the reply's id.

        Sent once, never resent: after UnknownOutcome, list `comment_replies` before anything
        is sent again. A spent daily quota raises QuotaExceeded (deferrable, resume_at)."""
        if not text.strip():
            raise ValueError("a reply needs text")
        if len(text) > COMMENT_MAX_CHARS:
            raise ValueError(f"a YouTube comment is at most {COMMENT_MAX_CHARS} characters")
        body = self._post("comments.insert", f"{API}/comments", {"part": "snippet"},
                          {"snippet": {"parentId": parent_id, "textOriginal": text}})
        reply_id = body.get("id")
        if not isinstance(reply_id, str) or not reply_id:
            raise _invalid("comments.insert", "no id in the answer")
        return reply_id
