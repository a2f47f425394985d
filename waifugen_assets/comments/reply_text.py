"""The text of a public reply: the character's persona writer (Ollama) through the DM safety
gate, a fixed template when the writer fails or is refused, the AI disclosure on every reply.

The writer sees the comment, so it can answer a question; whatever it writes is only used if
it is non-empty, fits, leaves no placeholder and passes `subscribers.safety.gate` (no sexual
content, nothing about minors, no links, e-mail or payment) and the personal-data rule here
(no phone numbers, no @mentions of anyone). Otherwise the class's template is the reply: short,
general, safe whatever the comment said. Every reply ends with the disclosure
(`with_disclosure`, as DMs do). Pure: the writer is the caller's function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from waifugen_assets.subscribers.safety import DISCLOSURE, gate, with_disclosure

Writer = Callable[[str, str], str | None]
MAX_REPLY_CHARS = 400  # with the disclosure; a comment reply is one or two sentences

TEMPLATES: dict[str, str] = {
    "question": "Thanks for asking! I'll share more about that in an upcoming video.",
    "compliment": "Thank you so much, that really means a lot!",
    "neutral": "Thanks for watching and for stopping by!",
}
SYSTEM_PROMPT = (
    "You reply publicly to one comment under your own short video, as the fictional adult "
    "virtual creator described here. Persona: {persona}\n"
    "Rules: one or two short sentences, warm and friendly, suitable for a general audience. "
    "No sexual or suggestive content. Never mention children, teenagers, school or anyone's "
    "age. No links, prices, payment methods, e-mail addresses, phone numbers, places to meet "
    "or other personal details, yours or the commenter's; do not tag anyone. Do not promise "
    "anything. Do not add a signature or a disclaimer: one is added automatically. Plain "
    "text, at most {limit} characters. Answer with the reply only."
)
USER_PROMPT = "The comment ({label}), exactly as written:\n<<<{comment}>>>\nWrite your reply."
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
_PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{6,}\d(?!\w)")
_MENTION = re.compile(r"(?<![\w@])@[\w.]{2,}")
_SEPARATOR = "\n\n"
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])\s+")


@dataclass(frozen=True)
class Draft:
    text: str  # ends with DISCLOSURE, at most max_len characters
    source: Literal["llm", "template"]
    refused: tuple[str, ...]  # why the writer's text was not used


def personal_data(text: str) -> list[str]:
    """Personal details the gate does not look for: phone numbers, @mentions."""
    found = []
    if _PHONE.search(text):
        found.append("personal data: a phone number")
    if _MENTION.search(text):
        found.append("personal data: an @mention")
    return found


def refusals(text: str, max_len: int = MAX_REPLY_CHARS) -> list[str]:
    """Why a finished reply (disclosure included) may not be sent; [] when it may."""
    reasons = gate(text) + personal_data(text)
    if not text.rstrip().endswith(DISCLOSURE):
        reasons.append("no AI disclosure")
    if len(text) > max_len:
        reasons.append(f"too long: {len(text)} characters (at most {max_len})")
    return reasons


def template_reply(label: str, max_len: int = MAX_REPLY_CHARS) -> str:
    return with_disclosure(TEMPLATES.get(label, TEMPLATES["neutral"]), max_len)


def operator_reply(text: str, max_len: int = MAX_REPLY_CHARS) -> str:
    """An operator's text with the disclosure; ValueError naming what the gate refuses."""
    if not text.strip():
        raise ValueError("the reply text is empty")
    room = max_len - len(DISCLOSURE) - len(_SEPARATOR)
    if len(text.strip()) > room:  # never cut what a person wrote: say so
        raise ValueError(f"the reply text is too long ({len(text.strip())} characters, at "
                         f"most {room})")
    reply = with_disclosure(text.strip(), max_len)
    problems = refusals(reply, max_len)
    if problems:
        raise ValueError("the safety gate refuses the text: " + "; ".join(problems))
    return reply


def _clean(text: str) -> str:
    text = text.strip()
    while text.endswith(DISCLOSURE):
        text = text[: -len(DISCLOSURE)].rstrip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def whole_sentences(text: str, limit: int) -> str:
    """`text`, or as many of its first sentences as fit in `limit` ("" if not even one):
    a writer that ran long loses whole sentences, never half of one."""
    if len(text) <= limit:
        return text
    kept = ""
    for sentence in _SENTENCE_END.split(text):
        longer = f"{kept} {sentence}".strip()
        if len(longer) > limit:
            break
        kept = longer
    return kept


def compose(comment: str, label: str, persona: str, writer: Writer | None,
            max_len: int = MAX_REPLY_CHARS) -> Draft:
    """The reply to a comment of class `label` (question, compliment, neutral): the writer's
    text if it is safe and fits, else the template; always with the disclosure."""
    fallback = template_reply(label, max_len)
    if writer is None:
        return Draft(fallback, "template", ())
    limit = max_len - len(DISCLOSURE) - len(_SEPARATOR)
    system = SYSTEM_PROMPT.format(persona=persona, limit=limit)
    user = USER_PROMPT.format(label=label, comment=comment.replace(">>>", ">> >"))
    try:
        answer = writer(system, user)
    except Exception as exc:  # the writer is optional: any failure means the template
        return Draft(fallback, "template", (f"writer failed: {type(exc).__name__}",))
    text = _clean(str(answer or ""))
    refused: list[str] = []
    if not text:
        refused.append("writer gave no text")
    elif not whole_sentences(text, limit):
        refused.append(f"too long: a first sentence over {limit} characters")
    text = whole_sentences(text, limit)
    if re.search(r"\{[^{}]*\}", text):
        refused.append("left a {placeholder} unfilled")
    refused += gate(text) + personal_data(text)
    if refused:
        return Draft(fallback, "template", tuple(refused))
    return Draft(with_disclosure(text, max_len), "llm", ())
