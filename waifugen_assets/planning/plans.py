"""Reel planning, pure domain logic: which reels a character gets on a day and their texts.

A plan's texts come from the LLM writer when it answers with valid JSON, otherwise from the
deterministic template below; `source` records which one, so operators can see fallbacks.
Every plan carries the AI-disclosure label (trust rule: disclosure on every post).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

AI_DISCLOSURE = "AI-generated virtual creator. This video was made with AI."
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 90},
        "script": {"type": "string", "maxLength": 600},
        "caption": {"type": "string", "maxLength": 300},
        "hashtags": {"type": "array", "items": {"type": "string", "maxLength": 30},
                     "minItems": 3, "maxItems": 8},
    },
    "required": ["title", "script", "caption", "hashtags"],
}

_THEMES = (
    "a morning routine", "a quick tip", "behind the scenes", "a favourite place",
    "a tiny challenge", "today's mood", "something new I tried", "a question for you",
)
_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have her his i in is it its of on or our she "
    "that the their they this to was who with you your loves love".split()
)


@dataclass(frozen=True)
class PlanRequest:
    character_id: str
    character_name: str
    persona: str
    date: dt.date
    slot: int
    slot_time: str
    tier: str = "standard"


@dataclass(frozen=True)
class ReelPlan:
    slot: int
    tier: str
    content_rating: str
    scheduled_at: dt.datetime
    texts: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.texts.get("source", "template"))


def persona_keywords(persona: str, limit: int = 4) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", persona)]
    seen: list[str] = []
    for word in words:
        if word not in _STOPWORDS and word not in seen:
            seen.append(word)
    return seen[:limit] or ["daily", "life"]


def _pick(seq: Sequence[str], *parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return seq[int.from_bytes(digest[:4], "big") % len(seq)]


def template_texts(req: PlanRequest) -> dict[str, Any]:
    """Deterministic texts from the persona: the fallback when the LLM is down or talks junk."""
    theme = _pick(_THEMES, req.character_id, req.date, req.slot)
    keywords = persona_keywords(req.persona)
    topic = _pick(keywords, req.character_id, req.date, req.slot, "kw")
    title = f"{req.character_name}: {theme} ({topic})"
    if req.tier == "premium":
        title = f"Exclusive - {title}"
    return {
        "title": title,
        "script": (f"Hi, it's {req.character_name}! Here's {theme} about {topic}. "
                   "Tell me what you think in the comments."),
        "caption": f"{theme.capitalize()} with {req.character_name} - all about {topic}.",
        "hashtags": [f"#{k.replace('-', '')}" for k in keywords] + ["#aicreator"],
        "source": "template",
    }


def valid_llm_texts(data: object) -> dict[str, Any] | None:
    """The LLM's answer if it has every field with the right type and is not empty, else None."""
    if not isinstance(data, dict):
        return None
    fields = {k: data.get(k) for k in ("title", "script", "caption")}
    if not all(isinstance(v, str) and v.strip() for v in fields.values()):
        return None
    tags = data.get("hashtags")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        return None
    hashtags = ["#" + t.strip().lstrip("#").replace(" ", "") for t in tags if t.strip("# ")]
    if not hashtags:
        return None
    return {**{k: v.strip() for k, v in fields.items()}, "hashtags": hashtags}


Writer = Callable[[PlanRequest], dict[str, Any] | None]


def plan_texts(req: PlanRequest, writer: Writer | None) -> dict[str, Any]:
    """Texts from the writer when it gives valid ones, else the template; always disclosed."""
    texts: dict[str, Any] | None = None
    fallback_reason = None
    if writer is not None:
        try:
            texts = writer(req)
        except Exception as exc:  # any writer failure means: use the template
            fallback_reason = f"{type(exc).__name__}: {exc}"[:300]
        else:
            if texts is None:
                fallback_reason = "writer returned no valid plan"
    if texts is None:
        texts = template_texts(req)
        if fallback_reason:
            texts["fallback_reason"] = fallback_reason
    texts["disclosure"] = AI_DISCLOSURE
    texts["platforms"] = platform_texts(texts)
    return texts



# --- the day's slots ---------------------------------------------------------------------------

SLOT_ROUNDING_MINUTES = 5


def day_slot_times(listed: Sequence[str], count: int) -> list[str]:
    """The day's posting times when `count` reels are planned (docs/milestones.md).

    Every time the roster lists is kept. While there are fewer than `count`, one more goes in
    the middle of the widest gap between two neighbouring times (the earliest of equal gaps),
    on a 5-minute mark when one fits: never before the first listed time or after the last, so
    the day's last post time (the publishing deadline) does not move. A single listed time has
    no gap: nothing is added.
    """
    minutes = sorted({int(t[:2]) * 60 + int(t[3:5]) for t in listed})
    while len(minutes) < count and len(minutes) > 1:
        at = max(range(len(minutes) - 1), key=lambda i: (minutes[i + 1] - minutes[i], -i))
        low, high = minutes[at], minutes[at + 1]
        if high - low < 2:  # no whole minute between them
            break
        middle = (low + high) // 2
        rounded = middle - middle % SLOT_ROUNDING_MINUTES
        minutes.insert(at + 1, rounded if low < rounded < high else middle)
    return [f"{m // 60:02d}:{m % 60:02d}" for m in minutes]


# --- per-platform texts ------------------------------------------------------------------------
# Limits from reference/PROTOCOLS.md: TikTok's post title (its caption) up to 2200 characters;
# Instagram captions up to 2200 characters and 30 hashtags; YouTube titles up to 100
# characters without '<' or '>', descriptions up to 5000.
TIKTOK_TITLE_MAX = 2200
INSTAGRAM_CAPTION_MAX = 2200
INSTAGRAM_HASHTAGS_MAX = 30
YOUTUBE_TITLE_MAX = 100
YOUTUBE_DESCRIPTION_MAX = 5000
AI_LABEL = "#AIgenerated"


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis when shortened."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return head.rstrip(" ,.;:-") + "…"


def _compose(body: str, tail: str, limit: int) -> str:
    """`body` shortened so that `body + tail` fits: the tail (disclosure, tags) always stays."""
    room = limit - len(tail) - 1
    return f"{_cut(body, max(room, 0))} {tail}".strip() if room > 0 else _cut(tail, limit)


def _compose_bytes(body: str, tail: str, limit: int) -> str:
    """Like _compose, for limits counted in UTF-8 bytes (YouTube descriptions)."""
    room = limit - len(tail.encode()) - 1
    if room <= 0:
        return _cut(tail, limit // 4)
    lo, hi = 0, len(body)
    while lo < hi:  # the longest cut of `body` that fits `room` bytes
        mid = (lo + hi + 1) // 2
        if len(_cut(body, mid).encode()) <= room:
            lo = mid
        else:
            hi = mid - 1
    return f"{_cut(body, lo)} {tail}".strip() if lo else tail


_HASHTAG = re.compile(r"#\w+")


def limit_hashtags(text: str, most: int) -> str:
    """Drop hashtags after the first `most` (Instagram rejects captions with more than 30)."""
    seen = 0

    def keep(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return match.group() if seen <= most else ""

    return " ".join(_HASHTAG.sub(keep, text).split(" ")).replace("  ", " ").strip()


def platform_texts(texts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each platform receives, within its limits and always with the AI disclosure."""
    hashtags = [h for h in texts.get("hashtags", []) if h][:INSTAGRAM_HASHTAGS_MAX - 1]
    tags = " ".join([*hashtags, AI_LABEL])
    disclosure = str(texts.get("disclosure") or AI_DISCLOSURE)
    caption = str(texts.get("caption", ""))
    title = str(texts.get("title", "")).replace("<", "").replace(">", "")
    return {
        "tiktok": {"title": _compose(caption, f"{tags} {disclosure}", TIKTOK_TITLE_MAX),
                   "is_aigc": True},
        # The tags come last, so trimming extra hashtags keeps the body's first ones.
        "instagram": {"caption": limit_hashtags(_compose(caption, f"{disclosure}\n{tags}",
                                                         INSTAGRAM_CAPTION_MAX),
                                                INSTAGRAM_HASHTAGS_MAX)},
        "youtube": {"title": _cut(title, YOUTUBE_TITLE_MAX) or "Short",
                    "description": _compose_bytes(f"{caption}\n\n{texts.get('script', '')}",
                                                  f"{disclosure} {tags}",
                                                  YOUTUBE_DESCRIPTION_MAX),
                    "containsSyntheticMedia": True},
    }


# --- the LLM writer ---------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are {name}, a virtual creator (an adult; all content is for a general audience). "
    "Persona: {persona} Write in first person, upbeat, no sexual content, no links."
)
USER_PROMPT = (
    "Plan short vertical video number {slot_no} for {date} (posting at {slot_time} local). "
    "Give a title, a spoken script of 2-4 sentences, a caption and 3-6 hashtags, as JSON.{tier}"
)
PREMIUM_HINT = " It is a premium reel for subscribers: make it feel exclusive and personal."


class JsonChat(Protocol):
    def chat_json(self, system: str, user: str, schema: dict[str, Any],
                  seed: int = 0) -> object: ...

    def model_name(self) -> str: ...


def llm_writer(chat: JsonChat) -> Writer:
    """A Writer asking the LLM for a plan in the character's persona; None (-> templates) when
    the answer does not fit PLAN_SCHEMA."""
    model = chat.model_name()

    def write(req: PlanRequest) -> dict[str, Any] | None:
        answer = chat.chat_json(
            SYSTEM_PROMPT.format(name=req.character_name, persona=req.persona),
            USER_PROMPT.format(slot_no=req.slot + 1, date=req.date.isoformat(),
                               slot_time=req.slot_time,
                               tier=PREMIUM_HINT if req.tier == "premium" else ""),
            PLAN_SCHEMA,
            seed=req.slot,
        )
        texts = valid_llm_texts(answer)
        return None if texts is None else {**texts, "source": "ollama", "model": model}

    return write
