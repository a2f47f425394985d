"""Deterministic, persona-flavoured text for systems that answer in words (Ollama, comments).

Words come from the persona (the system prompt) and the request (the user prompt), phrasing
from a small phrase bank; every choice is made with the caller's seeded RNG. So two
characters get different text, and the same request gets the same text every time.
"""

from __future__ import annotations

import random
import re

# Common English plus the instruction words prompts are full of, which say nothing about who
# is speaking.
STOPWORDS = frozenset("""
a about after all also always an and any are as at be been before being but by can could
did do does each every for from get gets give has have her here hers him his how i if in
into is it its just like make more most much my no not now of on one only or our out over
own she should so some such than that the their them then there these they this those to
too under up very was we were what when where which while who whom why will with would you
your yours loves love based
adult adults audience content general sexual explicit first person persona write writes
written upbeat links link virtual creator creators character assistant answer answers reply
respond response return json object field fields format plan planned give short vertical
video videos reel reels number posting post posts local title titles spoken script scripts
sentence sentences caption captions hashtag hashtags tags include including using use must
keep style tone voice words word text please today""".split())

_NAME = re.compile(r"\b(?:[Yy]ou are|I am|I'm|[Nn]amed|[Nn]ame is|[Cc]alled)\s+([A-Z][\w'-]+)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")

GENERIC_WORDS = ("sunshine", "coffee", "music", "city", "weekend", "journal", "sketches",
                 "plants", "sunsets", "stories", "playlists", "adventures")

_OPENERS = (
    "Hey, it's {name} here!", "Hi friends, {name} again.", "Okay, {name} checking in.",
    "Good vibes from {name}!", "{name} here with a little update.",
)
_SENTENCES = (
    "Today is all about {a} and a little bit of {b}.",
    "Honestly, nothing beats {a} when the {b} hits just right.",
    "Quick thought: {a} makes everything feel more like {b}.",
    "Tell me your favourite {a} moment and I'll share mine about {b}.",
    "I tried something new with {a} this week, and {b} made it even better.",
    "If you love {a} as much as I do, you'll understand the {b} part.",
    "Small wins count: a bit of {a}, a dash of {b}, and a big smile.",
    "Here's my secret: start with {a}, finish with {b}.",
    "Can we talk about {a} for a second? Because {b} changed my whole day.",
    "Saving this {a} idea for later, and the {b} one for the weekend.",
    "Every {a} story needs a little {b}, right?",
    "Stay close, more {a} and {b} are coming soon.",
)
_TITLES = (
    "My {A} Routine", "{A} and {B}, Together", "A Little {A} Magic", "{A} Diaries",
    "Why I Love {A}", "{A} Meets {B}", "The {A} Challenge", "One Day of {A}",
)


def persona_name(text: str) -> str | None:
    match = _NAME.search(text)
    return match.group(1).rstrip("'-,.") if match else None


def keywords(text: str, limit: int = 16) -> list[str]:
    """Distinctive lower-case words of `text`, in order of first appearance."""
    seen: list[str] = []
    for word in (w.lower().strip("'-") for w in _WORD.findall(text)):
        if word not in STOPWORDS and word not in seen and len(word) >= 3:
            seen.append(word)
    return seen[:limit]


class PersonaVoice:
    """Text in one persona's voice; `rng` decides every choice."""

    def __init__(self, persona: str, prompt: str, rng: random.Random) -> None:
        self.rng = rng
        self.name = persona_name(persona) or "I"
        self.persona_words = [w for w in keywords(persona) if w != self.name.lower()]
        self.prompt_words = [w for w in keywords(prompt) if w not in self.persona_words]
        if not self.persona_words:
            self.persona_words = list(GENERIC_WORDS)

    def word(self) -> str:
        # Mostly the persona's own words: that is what makes characters sound different.
        if self.prompt_words and self.rng.random() < 0.25:
            return self.rng.choice(self.prompt_words)
        return self.rng.choice(self.persona_words)

    def two_words(self, own_first: bool = False) -> tuple[str, str]:
        a = self.rng.choice(self.persona_words) if own_first else self.word()
        for _ in range(4):
            b = self.word()
            if b != a:
                return a, b
        return a, self.rng.choice(GENERIC_WORDS)

    def sentence(self) -> str:
        a, b = self.two_words()
        return self.rng.choice(_SENTENCES).format(a=a, b=b)

    def paragraph(self, sentences: int | None = None, opener: bool = True) -> str:
        count = sentences if sentences is not None else self.rng.randint(2, 4)
        parts = [self.rng.choice(_OPENERS).format(name=self.name)] \
            if opener and self.name != "I" else []
        templates = self.rng.sample(_SENTENCES, min(count, len(_SENTENCES)))  # no repeats
        for index, template in enumerate(templates):
            a, b = self.two_words(own_first=index == 0)  # always something of the persona
            parts.append(template.format(a=a, b=b))
        return " ".join(parts)

    def title(self) -> str:
        a, b = self.two_words()
        return self.rng.choice(_TITLES).format(A=a.title(), B=b.title())

    def hashtag(self) -> str:
        return "#" + re.sub(r"[^a-z0-9]", "", self.word().lower())
