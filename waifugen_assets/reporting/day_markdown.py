"""One day of the roster as the `daily_status` asset shows it in the Dagster UI: a Markdown
table with a row per character (reels per stage, posts per platform with a link to each live
post, budget %, DMs, what waits), the numbers Dagster plots across days, and what keeps the
day from being complete (the `day_complete` check names each item and its reason).

Links: a post's public URL (its permalink; TikTok's is built from the handle and post id).
In sandbox mode those public pages do not exist, so each link opens the sandbox platform's
record of that post instead (`<platform mount>/_control/published/<post id>`; the list of
all of them without an id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from waifugen_assets.core import schema
from waifugen_assets.core.redaction import redact
from waifugen_assets.publishing.live_posts import post_url
from waifugen_assets.roster.model import PUBLISH_PLATFORMS

PLATFORM_TITLES = {"tiktok": "TikTok", "instagram": "Instagram", "youtube": "YouTube"}
_STAGE_TITLES = (("planned", "planned"), ("generated", "rendered"), ("stored", "stored"),
                 ("branded", "branded"), ("published", "published"), ("failed", "failed"),
                 ("missed", "missed"))
_NOT_PUBLISHED = ("pending", "deferred", "skipped", "failed")


@dataclass(frozen=True)
class LivePost:
    character_id: str
    platform: str
    slot: str  # local HH:MM of the reel's slot: the link's text
    url: str | None


def sandbox_url(base: str, post_id: str | None) -> str:
    """The sandbox platform's record of the post (of all its published posts without an id)."""
    return f"{base.rstrip('/')}/_control/published" + (f"/{post_id}" if post_id else "")


def live_posts(conn: sa.Connection, days: Mapping[str, dt.date],
               sandbox_bases: Mapping[str, str] | None = None) -> list[LivePost]:
    """Every published post of each character's day, in slot order. `sandbox_bases`
    (platform -> API base) in sandbox mode, None in production."""
    if not days:
        return []
    r, sp, pa, ch = (schema.reels, schema.social_posts, schema.platform_accounts,
                     schema.characters)
    rows = conn.execute(
        sa.select(r.c.character_id, ch.c.timezone, r.c.scheduled_at, sp.c.platform,
                  sp.c.remote_post_id, sp.c.permalink, pa.c.account_ref)
        .join(r, r.c.id == sp.c.reel_id)
        .join(ch, ch.c.id == r.c.character_id)
        .outerjoin(pa, pa.c.id == sp.c.account_id)
        .where(sa.tuple_(r.c.character_id, r.c.date).in_(list(days.items())),
               sp.c.state == "published")
        .order_by(r.c.character_id, r.c.scheduled_at, r.c.id, sp.c.platform)).all()
    out = []
    for cid, tz, at, platform, post_id, permalink, account in rows:
        url = (sandbox_url(sandbox_bases[platform], post_id)
               if sandbox_bases is not None and platform in sandbox_bases
               else post_url(platform, "published", post_id, permalink, account))
        slot = at.astimezone(ZoneInfo(tz)).strftime("%H:%M") if at else "post"
        out.append(LivePost(cid, platform, slot, url))
    return out


def unposted(conn: sa.Connection, days: Mapping[str, dt.date]) -> dict[str, list[dt.datetime]]:
    """Per character, the slots of branded reels that no platform has a post row for yet
    (their slot has not come: the posting sensor posts them then). Their posts do not exist,
    so the status's `open` cannot name them."""
    if not days:
        return {}
    r, sp = schema.reels, schema.social_posts
    rows = conn.execute(
        sa.select(r.c.character_id, r.c.scheduled_at)
        .where(sa.tuple_(r.c.character_id, r.c.date).in_(list(days.items())),
               r.c.status == "branded", ~sa.exists().where(sp.c.reel_id == r.c.id))
        .order_by(r.c.scheduled_at)).all()
    out: dict[str, list[dt.datetime]] = {}
    for cid, at in rows:
        out.setdefault(cid, []).append(at)
    return out


def day_state(day: dt.date, timezone: str, now: dt.datetime) -> str:
    """`not begun`, `in progress, HH:MM` (local time) or `over`, for a character's day."""
    local = now.astimezone(ZoneInfo(timezone))
    if local.date() < day:
        return "not begun"
    if local.date() > day:
        return "over"
    return f"in progress, {local:%H:%M}"


def findings(report: Mapping[str, Any], now: dt.datetime,
             waiting_slots: Mapping[str, list[dt.datetime]] | None = None) -> list[str]:
    """What keeps the day from being complete, one line per character and reason."""
    lines = []
    for c in report["characters"]:
        state = day_state(dt.date.fromisoformat(c["date"]), c["timezone"], now)
        if state == "not begun":
            lines.append(f"{c['id']}: its day {c['date']} has not begun ({c['timezone']})")
        elif c["reels"]["planned"] == 0:
            lines.append(f"{c['id']}: no reels planned for {c['date']} (day {state})")
        slots = (waiting_slots or {}).get(c["id"], [])
        if slots:
            first = slots[0].astimezone(ZoneInfo(c["timezone"]))
            lines.append(f"{c['id']}: {len(slots)} reels branded, not posted yet: waiting "
                         f"for their slot (next {first:%H:%M})")
        lines += [f"{c['id']}: {n} {what}" for what, n in c.get("open", {}).items()]
        lines += [f"{c['id']}: {n} {what}" for what, n in c.get("failed", {}).items()]
    return lines


def totals(report: Mapping[str, Any], waits: Sequence[str],
           waiting_slots: Mapping[str, list[dt.datetime]]) -> dict[str, int | float]:
    """The day's numbers across the roster: plain ints and floats, so Dagster plots them."""
    people = report["characters"]
    reels = {s: sum(c["reels"][s] for c in people) for s in ("planned", "generated",
                                                            "branded", "published",
                                                            "failed", "missed")}
    posts = {k: sum(p[k] for c in people for p in c["posts"].values())
             for k in ("published", *_NOT_PUBLISHED)}
    used = sum(c["budget"]["used"] for c in people)
    limit = sum(c["budget"]["limit"] for c in people)
    return {
        "characters": len(people),
        **{f"reels_{k}": v for k, v in reels.items()},
        # Not yet branded, not failed, not missed: still on its way.
        "reels_pending": reels["planned"] - reels["branded"] - reels["failed"] - reels["missed"],
        # Branded, no post yet: their slot has not come.
        "reels_unposted": sum(len(v) for v in waiting_slots.values()),
        **{f"posts_{k}": v for k, v in posts.items()},
        "credits_used": used,
        "budget_used_pct": round(100.0 * used / limit, 1) if limit else 0.0,
        "dms_sent": sum(c["dms"]["sent"] for c in people),
        "dms_waiting": sum(c["dms"]["waiting"] for c in people),
        "waiting_items": len(waits),  # (character, what and why) lines of day_complete
        **{k: sum(c.get("engagement", {}).get(k, 0) for c in people)
           for k in ("views_24h", "followers", "replies_sent_24h", "replies_held")},
    }


def render_markdown(report: Mapping[str, Any], posts: Sequence[LivePost],
                    now: dt.datetime, waits: Sequence[str]) -> str:
    """The day as one Markdown table, a row per character, then what waits and why."""
    links: dict[tuple[str, str], list[str]] = {}
    for p in posts:
        text = f"[{p.slot}]({p.url})" if p.url else p.slot
        links.setdefault((p.character_id, p.platform), []).append(text)
    head = (["character", "day", *(t for _, t in _STAGE_TITLES)]
            + [PLATFORM_TITLES.get(p, p) for p in PUBLISH_PLATFORMS]
            + ["budget (month)", "DMs due", "phase", "views 24 h", "followers",
               "replies 24 h (held)", "waits (below)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in report["characters"]:
        day = dt.date.fromisoformat(c["date"])
        waiting = sum(1 for w in waits if w.startswith(f"{c['id']}: "))
        cells = [f"**{c['id']}**", f"{c['date']} ({day_state(day, c['timezone'], now)})",
                 *(str(c["reels"][s]) for s, _ in _STAGE_TITLES),
                 *(_posts_cell(c["posts"].get(p, {}), links.get((c["id"], p), []))
                   for p in PUBLISH_PLATFORMS),
                 _budget_cell(c["budget"]), _dms_cell(c["dms"]), c.get("phase", "-"),
                 *_engagement_cells(c.get("engagement", {})),
                 str(waiting) if waiting else "-"]
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    if not report["characters"]:
        lines.append("\n(no enabled characters)")
    lines += ["", "**What waits, and why**" if waits else "**Nothing waits: the day is done.**"]
    lines += [f"- {_cell(w)}" for w in waits]
    return "\n".join(lines)


def _posts_cell(counts: Mapping[str, int], links: list[str]) -> str:
    published = counts.get("published", 0)
    rest = ", ".join(f"{counts[k]} {k}" for k in _NOT_PUBLISHED if counts.get(k))
    if not published and not rest:
        return "-"
    text = f"{published}" + (": " + " ".join(links) if links else "")
    return text + (f" ({rest})" if rest else "")


def _engagement_cells(e: Mapping[str, int]) -> list[str]:
    if not e:
        return ["-", "-", "-"]
    return [f"{e['views_24h']:,}", f"{e['followers']:,}",
            f"{e['replies_sent_24h']} ({e['replies_held']})"]


def _budget_cell(budget: Mapping[str, int]) -> str:
    used, limit = budget["used"], budget["limit"]
    pct = f"{100.0 * used / limit:.1f}%" if limit else "no limit"
    return f"{pct} ({used}/{limit})"


def _dms_cell(dms: Mapping[str, int]) -> str:
    parts = [f"{dms[k]} {k}" for k in ("sent", "waiting", "held", "manual", "skipped")
             if dms.get(k)]
    return (", ".join(parts) or "none") + f" ({dms.get('subscribers', 0)} subscribers)"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table row: redacted (metadata is not a log line, so the
    log filter never sees it), one line, no bare column separators."""
    return " ".join(redact(str(text)).split()).replace("|", "\\|")
