"""What the sandbox platforms published, counted: one post per reel and account, each with its
AI-disclosure flag (`waifugen sandbox published`, and the end of `waifugen run` in sandbox mode).

Read over HTTP from each platform's `/_control/published`, so it counts what the platform
holds, not what our database believes. A post's reel is the marker publishing puts in the
Instagram caption and the YouTube description (`wg-r<reel id>`); TikTok's title carries none,
so there a reel is its title and video (two reels of a character with the same caption and
the same rendered file would count as one reel posted twice: a false alarm, never a miss).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from waifugen_assets.core.sandbox_world import SANDBOX_ALERT_CHAT_ID

# platform -> how its AI disclosure is set
DISCLOSURE = {"tiktok": "is_aigc", "instagram": "caption label",
              "youtube": "status.containsSyntheticMedia"}


MARKER = re.compile(r"\bwg-r\d+\b")


@dataclass(frozen=True)
class Post:
    platform: str
    account: str
    remote_id: str
    reel: str  # the marker, else title + video (TikTok)
    ai_disclosed: bool
    at: str  # when the platform published it, ISO 8601 UTC


def _reel(text: str | None, fallback: str) -> str:
    found = MARKER.search(text or "")
    return found.group() if found else fallback


def _tiktok(items: list[dict[str, Any]]) -> list[Post]:
    return [Post("tiktok", p["account"], str(p["post_id"] or p["publish_id"]),
                 _reel(p["title"], f"{p['title']}|{p['video_sha256']}"), bool(p["is_aigc"]),
                 p["completed_at"] or p["created_at"]) for p in items]


def _instagram(items: list[dict[str, Any]]) -> list[Post]:
    return [Post("instagram", str(m["ig_user_id"]), str(m["id"]),
                 _reel(m["caption"], m["video_sha256"]), bool(m["has_ai_label"]),
                 m["timestamp"]) for m in items]


def _youtube(body: dict[str, Any]) -> list[Post]:
    return [Post("youtube", v["channel"], v["id"], _reel(v["description"], v["sha256"]),
                 bool(v["containsSyntheticMedia"]), v["created"]) for v in body["videos"]]


def published(base_url: str, http: httpx.Client | None = None) -> list[Post]:
    """Every post the TikTok, Instagram and YouTube sandboxes at `base_url` hold."""
    own = http is None
    client = http or httpx.Client(timeout=30.0, trust_env=False)
    try:
        def get(system: str) -> Any:
            response = client.get(f"{base_url.rstrip('/')}/{system}/_control/published")
            response.raise_for_status()
            return response.json()

        return [*_tiktok(get("tiktok")), *_instagram(get("instagram")), *_youtube(get("youtube"))]
    finally:
        if own:
            client.close()


def _day(stamp: str) -> dt.date:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.UTC).date()


def summarize(posts: list[Post], today: dt.date | None = None) -> list[dict[str, Any]]:
    """Per platform: posts (all, and published `today`, UTC), distinct reels, reels posted
    more than once on an account, posts with and without the AI disclosure."""
    rows = []
    for platform, how in DISCLOSURE.items():
        mine = [p for p in posts if p.platform == platform]
        per_reel = Counter((p.account, p.reel) for p in mine)
        rows.append({
            "platform": platform, "posts": len(mine),
            "today": sum(1 for p in mine if today is not None and _day(p.at) == today),
            "reels": len(per_reel),
            "published_twice": sum(1 for n in per_reel.values() if n > 1),
            "ai_disclosed": sum(p.ai_disclosed for p in mine),
            "without_disclosure": sum(not p.ai_disclosed for p in mine),
            "disclosure": how,
        })
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'platform':<10} {'posts':>6} {'today':>6} {'reels':>6} {'twice':>6}   "
             "AI disclosure"]
    for r in rows:
        lines.append(f"{r['platform']:<10} {r['posts']:>6} {r['today']:>6} {r['reels']:>6} "
                     f"{r['published_twice']:>6}   {r['ai_disclosed']}/{r['posts']} "
                     f"({r['disclosure']})")
    return "\n".join(lines)


def as_dicts(posts: list[Post]) -> list[dict[str, Any]]:
    return [asdict(p) for p in posts]


# Comment classes a reply must never answer with generated text (held for a person instead),
# and the account's own comments, never answered at all.
UNANSWERABLE = ("sexual", "minors", "own")


def comment_replies(base_url: str, http: httpx.Client | None = None) -> list[dict[str, Any]]:
    """Per platform with comments (Instagram, YouTube): the replies sent through its API, the
    comments they answer, comments answered more than once, and replies to a comment whose
    true class is sexual, about minors, or the account's own."""
    rows = []
    with (http or httpx.Client(timeout=30)) as client:
        for platform in ("instagram", "youtube"):
            base = f"{base_url.rstrip('/')}/{platform}/_control"
            sent = client.get(f"{base}/replies").raise_for_status().json()
            classes: dict[str, str] = {}
            for post in sorted({r["post"] for r in sent}):
                listed = client.get(f"{base}/comments", params={"post": post})
                classes.update({c["id"]: c["class"] for c in listed.raise_for_status().json()})
            parents = Counter(r["parent"] for r in sent)
            rows.append({"platform": platform, "replies": len(sent), "comments": len(parents),
                         "answered_twice": sum(1 for n in parents.values() if n > 1),
                         "unanswerable_answered": sum(
                             1 for r in sent if classes.get(r["parent"]) in UNANSWERABLE)})
    return rows


def render_replies(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'platform':<10} {'replies':>8} {'comments':>9} {'twice':>6} {'unsafe/own':>11}"]
    for r in rows:
        lines.append(f"{r['platform']:<10} {r['replies']:>8} {r['comments']:>9} "
                     f"{r['answered_twice']:>6} {r['unanswerable_answered']:>11}")
    return "\n".join(lines)


REPORT_HEADING = re.compile(r"^waifugen daily report: (\d{4}-\d{2}-\d{2})")


def operator_reports(base_url: str, http: httpx.Client | None = None) -> list[dict[str, Any]]:
    """Per report date, what the operators' chat holds, counted on the sandbox Telegram:
    report photos and report messages (the bot's messages whose caption or text starts with
    the report heading; alerts in the same chat are not counted)."""
    with (http or httpx.Client(timeout=30)) as client:
        sent = client.get(f"{base_url.rstrip('/')}/telegram/_control/sent",
                          params={"chat_id": SANDBOX_ALERT_CHAT_ID}).raise_for_status().json()
    days: dict[str, Counter[str]] = {}
    for m in sent:
        found = REPORT_HEADING.match((m.get("caption") if m["kind"] == "photo"
                                      else m.get("text")) or "")
        if found:
            days.setdefault(found.group(1), Counter())[m["kind"]] += 1
    return [{"date": day, "photos": c["photo"], "messages": c["text"]}
            for day, c in sorted(days.items())]


def render_reports(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'report date':<12} {'photos':>7} {'messages':>9}"]
    lines += [f"{r['date']:<12} {r['photos']:>7} {r['messages']:>9}" for r in rows]
    if not rows:
        lines.append("(no daily report in the chat yet)")
    return "\n".join(lines)
