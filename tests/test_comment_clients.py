"""Comment reads and replies of resources.instagram / youtube against the sandbox over real
HTTP: paging of comments and of replies (cursor, page token), the reply's id and its place in
the replies listing, replies sent once (a lost answer is reconciled by listing, never resent),
what the platforms refuse, and YouTube's units (1 a page, 50 a reply) counted before the call.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from test_engagement_clients import (  # the sandbox accounts, shared
    InstagramAccount,
    YouTubeAccount,
    instagram,
    mark,
    requests_to,
    youtube,
)

from resources.http import PermanentError, RateLimited, UnknownOutcome
from resources.social_comments import RemoteComment
from resources.youtube import QuotaExceeded

__all__ = ["instagram", "youtube"]  # fixtures used below

MONTH = 30 * 86400
REPLY = "Thank you so much! (an AI-generated virtual creator answering)"


def when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def add_comment(account: InstagramAccount | YouTubeAccount, post: str, text: str,
                **extra: Any) -> dict[str, Any]:
    return account.control("comments", post=post, text=text, **extra)


def listed(account: InstagramAccount | YouTubeAccount, post: str) -> list[dict[str, Any]]:
    return account.control("comments", "GET", post=post)


# --- Instagram ---------------------------------------------------------------------------------

def test_instagram_comments_page_by_cursor(sandbox: Any, instagram: InstagramAccount) -> None:
    sandbox.set_clock(time.time())  # frozen: the listing and the pages see the same comments
    instagram.audience(comments_scale=4)  # 80-192 top-level comments
    [media] = instagram.seed(at=time.time() - MONTH)
    add_comment(instagram, media, "you won't see me", hidden=True)
    since = mark(sandbox)
    seen: list[RemoteComment] = []
    pages = 0
    after: str | None = None
    while True:
        page, after = instagram.client.comments(media, after=after)
        seen += page
        pages += 1
        if after is None:
            break
    truth = {c["id"]: c for c in listed(instagram, media)}
    top = sorted((c for c in truth.values() if c["parent"] is None and not c["hidden"]),
                 key=lambda c: (when(c["created"]), c["id"]), reverse=True)
    assert [c.id for c in seen] == [c["id"] for c in top]  # newest first, each once
    every_top = [c for c in truth.values() if c["parent"] is None]  # hidden ones take room
    assert len(top) > 50 and pages == -(-len(every_top) // 50)
    calls = requests_to(sandbox, "instagram", since, f"/{media}/comments", "GET")
    assert [c["query"].get("after") is None for c in calls] == [True] + [False] * (pages - 1)
    assert all(c["query"]["limit"] == "50" for c in calls)
    for comment in seen:
        raw = truth[comment.id]
        assert (comment.text, comment.author_id, comment.author_name, comment.parent_id) == (
            raw["text"], raw["author_id"], raw["author_name"], None)
        assert comment.published_at == when(raw["created"]).replace(microsecond=0)
        assert isinstance(comment.like_count, int)
    own = [c for c in seen if truth[c.id]["class"] == "own"]
    assert own and all(c.author_id == instagram.user.id for c in own)


def test_instagram_reply_is_listed_under_its_comment(sandbox: Any,
                                                     instagram: InstagramAccount) -> None:
    [media] = instagram.seed()
    question = add_comment(instagram, media, "What song is this?", **{"class": "question"})
    assert instagram.client.comment_replies(question["id"]) == []
    since = mark(sandbox)
    reply_id = instagram.client.reply_to_comment(question["id"], REPLY)
    [sent] = requests_to(sandbox, "instagram", since, f"/{question['id']}/replies", "POST")
    assert sent["status"] == 200 and sent["body"]["message"] == REPLY
    [reply] = instagram.client.comment_replies(question["id"])
    assert (reply.id, reply.text, reply.parent_id) == (reply_id, REPLY, question["id"])
    assert reply.author_id == instagram.user.id  # our own: never to be answered
    [stored] = instagram.control("replies", "GET", ig_user_id=instagram.user.id)
    assert (stored["id"], stored["parent"]) == (reply_id, question["id"])


def test_instagram_replies_are_paged(sandbox: Any, instagram: InstagramAccount) -> None:
    [media] = instagram.seed()
    top = add_comment(instagram, media, "Where was this filmed?")
    start = time.time() - 3600
    made = [add_comment(instagram, media, f"reply {i}", parent=top["id"], at=start + i)["id"]
            for i in range(61)]
    since = mark(sandbox)
    replies = instagram.client.comment_replies(top["id"])
    assert [r.id for r in replies] == made  # oldest first, all pages
    assert all(r.parent_id == top["id"] for r in replies)
    assert len(requests_to(sandbox, "instagram", since, f"/{top['id']}/replies", "GET")) == 2


def test_instagram_refused_replies(sandbox: Any, instagram: InstagramAccount) -> None:
    [media] = instagram.seed()
    top = add_comment(instagram, media, "So calming")
    answer = add_comment(instagram, media, "agreed", parent=top["id"])
    hidden = add_comment(instagram, media, "free followers www.x.example", hidden=True)
    with pytest.raises(PermanentError, match="top-level"):
        instagram.client.reply_to_comment(answer["id"], REPLY)
    with pytest.raises(PermanentError, match="hidden"):
        instagram.client.reply_to_comment(hidden["id"], REPLY)
    since = mark(sandbox)
    with pytest.raises(ValueError, match="needs a message"):
        instagram.client.reply_to_comment(top["id"], "  ")
    assert not sandbox.journal("instagram", since)  # refused locally
    instagram.audience(reply_writes_per_hour=1)  # the account's write cap
    instagram.client.reply_to_comment(top["id"], REPLY)
    other = add_comment(instagram, media, "Love the vibe")
    with pytest.raises(RateLimited, match="code 17"):
        instagram.client.reply_to_comment(other["id"], REPLY)
    assert [r["parent"] for r in instagram.control("replies", "GET",
                                                   ig_user_id=instagram.user.id)] == [top["id"]]


def test_instagram_lost_reply_is_not_resent(sandbox: Any, instagram: InstagramAccount) -> None:
    [media] = instagram.seed()
    top = add_comment(instagram, media, "Is this a real place?")
    route = f"/v*/{top['id']}/replies"
    sandbox.add_fault(system="instagram", route=route, method="POST", action="drop",
                      phase="after", times=1)
    since = mark(sandbox)
    with pytest.raises(UnknownOutcome):
        instagram.client.reply_to_comment(top["id"], REPLY)
    assert len(requests_to(sandbox, "instagram", since, f"/{top['id']}/replies", "POST")) == 1
    [reply] = instagram.client.comment_replies(top["id"])  # how the caller reconciles
    assert reply.author_id == instagram.user.id and reply.text == REPLY


# --- YouTube -----------------------------------------------------------------------------------

def test_youtube_threads_page_by_token_with_inline_replies(sandbox: Any,
                                                          youtube: YouTubeAccount) -> None:
    sandbox.set_clock(time.time())
    youtube.audience(comments_scale=8)  # 160-320 top-level comments
    [video] = youtube.seed(at=time.time() - MONTH)
    since = mark(sandbox)
    seen: list[RemoteComment] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = youtube.client.comment_threads(video, page_token=token)
        seen += page
        pages += 1
        if token is None:
            break
    truth = {c["id"]: c for c in listed(youtube, video)}
    top = sorted((c for c in truth.values() if c["parent"] is None),
                 key=lambda c: (when(c["created"]), c["id"]), reverse=True)
    assert [c.id for c in seen if c.parent_id is None] == [c["id"] for c in top]
    assert len(top) > 100 and pages == -(-len(top) // 100)
    assert youtube.spent == ["commentThreads.list"] * pages  # 1 unit a page
    calls = requests_to(sandbox, "youtube", since, "/youtube/v3/commentThreads", "GET")
    assert all((c["query"]["part"], c["query"]["order"], c["query"]["maxResults"],
                c["query"]["textFormat"]) == ("snippet,replies", "time", "100", "plainText")
               for c in calls)
    replies_of: dict[str, list[str]] = {}
    for c in truth.values():
        if c["parent"] is not None:
            replies_of.setdefault(c["parent"], []).append(c["id"])
    current = None
    for comment in seen:
        raw = truth[comment.id]
        assert comment.text == raw["text"] and comment.author_id == raw["author_id"]
        assert comment.author_name == f"@{raw['author_name']}"
        if comment.parent_id is None:
            current = comment
            assert comment.reply_count == len(replies_of.get(comment.id, []))
        else:  # an inline reply follows its thread's top-level comment
            assert current is not None and comment.parent_id == current.id
            assert comment.id in replies_of[current.id]
    assert any(c.parent_id for c in seen)
    own = [c for c in seen if truth[c.id]["class"] == "own"]
    assert own and all(c.author_id == youtube.channel for c in own)


def test_youtube_channel_threads_cover_every_video_at_one_unit_a_page(
        sandbox: Any, youtube: YouTubeAccount) -> None:
    sandbox.set_clock(time.time())
    youtube.audience(comments_scale=0)  # only the comments made here
    start = time.time() - 3 * 3600
    videos = youtube.seed(count=3, at=start)
    made = {add_comment(youtube, videos[n % 3], f"comment {n}", at=start + 60 + n)["id"]:
            videos[n % 3] for n in range(130)}
    reply = add_comment(youtube, videos[0], "agreed", parent=next(iter(made)),
                        at=start + 600)
    since = mark(sandbox)
    seen: list[Any] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = youtube.client.channel_comment_threads(youtube.channel, page_token=token)
        seen += page
        pages += 1
        if token is None:
            break
    top = [(c.video_id, c.comment) for c in seen if c.comment.parent_id is None]
    assert {c.id: v for v, c in top} == made  # every video's comments, each on its video
    times = [c.published_at for _, c in top]
    assert times == sorted(times, reverse=True)  # newest first across the channel
    assert [(c.video_id, c.comment.id) for c in seen if c.comment.parent_id] == [
        (videos[0], reply["id"])]  # an inline reply, with its thread's video
    assert pages == 2 and youtube.spent == ["commentThreads.list"] * 2  # 1 unit a page
    calls = requests_to(sandbox, "youtube", since, "/youtube/v3/commentThreads", "GET")
    assert all(c["query"]["allThreadsRelatedToChannelId"] == youtube.channel
               and "videoId" not in c["query"] and c["query"]["order"] == "time"
               and c["query"]["maxResults"] == "100" for c in calls)
    assert len(calls) == 2


def test_youtube_reply_is_listed_and_costs_fifty_units(sandbox: Any,
                                                       youtube: YouTubeAccount) -> None:
    [video] = youtube.seed()
    question = add_comment(youtube, video, "What app do you use?", **{"class": "question"})
    since = mark(sandbox)
    reply_id = youtube.client.reply_to_comment(question["id"], REPLY)
    [sent] = requests_to(sandbox, "youtube", since, "/youtube/v3/comments", "POST")
    assert sent["status"] == 200 and sent["body"] == {
        "snippet": {"parentId": question["id"], "textOriginal": REPLY}}
    assert sent["query"]["part"] == "snippet"
    [reply] = youtube.client.comment_replies(question["id"])
    assert (reply.id, reply.text, reply.parent_id, reply.author_id) == (
        reply_id, REPLY, question["id"], youtube.channel)
    threads, _ = youtube.client.comment_threads(video)
    [thread] = [c for c in threads if c.id == question["id"]]
    assert thread.reply_count == 1
    assert youtube.spent == ["comments.insert", "comments.list", "commentThreads.list"]
    [stored] = youtube.control("replies", "GET", account=youtube.channel)
    assert (stored["id"], stored["parent"]) == (reply_id, question["id"])


def test_youtube_replies_are_paged(sandbox: Any, youtube: YouTubeAccount) -> None:
    [video] = youtube.seed()
    top = add_comment(youtube, video, "Where was this filmed?")
    start = time.time() - 3600
    made = [add_comment(youtube, video, f"reply {i}", parent=top["id"], at=start + i)["id"]
            for i in range(103)]
    replies = youtube.client.comment_replies(top["id"])
    assert [r.id for r in replies] == made  # oldest first, all pages
    assert all(r.parent_id == top["id"] for r in replies)
    assert youtube.spent == ["comments.list", "comments.list"]


def test_youtube_refused_replies(sandbox: Any, youtube: YouTubeAccount) -> None:
    [video] = youtube.seed()
    top = add_comment(youtube, video, "So cozy")
    answer = add_comment(youtube, video, "agreed", parent=top["id"])
    with pytest.raises(PermanentError, match="top-level"):
        youtube.client.reply_to_comment(answer["id"], REPLY)
    with pytest.raises(PermanentError, match="commentNotFound"):
        youtube.client.reply_to_comment("UgxNoSuchComment0000004AaABAg", REPLY)
    since = mark(sandbox)
    with pytest.raises(ValueError, match="needs text"):
        youtube.client.reply_to_comment(top["id"], "")
    with pytest.raises(ValueError, match="at most 10000"):
        youtube.client.reply_to_comment(top["id"], "x" * 10_001)
    assert not sandbox.journal("youtube", since)  # refused locally
    youtube.control("config", client_id=youtube.client_id, units_remaining=49)
    with pytest.raises(QuotaExceeded) as spent:  # the day's units: defer, do not fail
        youtube.client.reply_to_comment(top["id"], REPLY)
    assert spent.value.deferrable and spent.value.quota_reason == "quotaExceeded"
    assert youtube.control("replies", "GET", account=youtube.channel) == []


def test_youtube_lost_reply_is_not_resent(sandbox: Any, youtube: YouTubeAccount) -> None:
    [video] = youtube.seed()
    top = add_comment(youtube, video, "Do you ever do live streams?")
    sandbox.add_fault(system="youtube", route="/youtube/v3/comments", method="POST",
                      action="drop", phase="after", times=1)
    since = mark(sandbox)
    with pytest.raises(UnknownOutcome):
        youtube.client.reply_to_comment(top["id"], REPLY)
    assert len(requests_to(sandbox, "youtube", since, "/youtube/v3/comments", "POST")) == 1
    [reply] = youtube.client.comment_replies(top["id"])  # how the caller reconciles
    assert reply.author_id == youtube.channel and reply.text == REPLY


def test_youtube_comment_read_errors(sandbox: Any, youtube: YouTubeAccount) -> None:
    [video] = youtube.seed()
    sandbox.add_fault(system="youtube", route="/youtube/v3/commentThreads",
                      action="rate_limit", retry_after=300)
    with pytest.raises(RateLimited):
        youtube.client.comment_threads(video)
    sandbox.clear_faults()
    with pytest.raises(PermanentError, match="videoNotFound"):
        youtube.client.comment_threads("zz000000000")
    top = add_comment(youtube, video, "first")
    youtube.control("config", client_id=youtube.client_id, units_remaining=0)
    with pytest.raises(QuotaExceeded):
        youtube.client.comment_replies(top["id"])
