"""Counting what the sandbox platforms published: one post per reel, each disclosed."""

from __future__ import annotations

import datetime as dt

from sandbox.published import Post, render, summarize

TODAY = dt.date(2026, 12, 3)


def post(platform: str, reel: str, *, account: str = "a", disclosed: bool = True,
         at: str = "2026-12-03T10:00:00Z") -> Post:
    return Post(platform, account, f"id-{reel}-{at}", reel, disclosed, at)


def test_a_reel_posted_twice_and_a_post_without_disclosure_are_counted() -> None:
    posts = [
        post("tiktok", "wg-r1"), post("tiktok", "wg-r2"),
        post("tiktok", "wg-r1", at="2026-12-03T11:00:00Z"),  # the same reel again
        post("tiktok", "wg-r1", account="b"),  # another account: its own post
        post("instagram", "wg-r1", disclosed=False, at="2026-12-02T23:59:59+00:00"),
    ]
    rows = {r["platform"]: r for r in summarize(posts, TODAY)}
    assert rows["tiktok"] == {
        "platform": "tiktok", "posts": 4, "today": 4, "reels": 3, "published_twice": 1,
        "ai_disclosed": 4, "without_disclosure": 0, "disclosure": "is_aigc"}
    assert (rows["instagram"]["today"], rows["instagram"]["without_disclosure"]) == (0, 1)
    assert rows["youtube"]["posts"] == 0
    text = render(list(rows.values()))
    assert text.splitlines()[1].split() == ["tiktok", "4", "4", "3", "1", "4/4", "(is_aigc)"]
