"""The safety gate and the automation disclosure of subscriber DMs; LLM personalisation.

Every DM text passes `gate` before it can be sent, and every DM ends with `DISCLOSURE`
(DESIGN section 8: "DMs say they are automated"). `personalize` asks the LLM (Ollama, in the
character's persona) to rewrite a sequence step's template; whatever the LLM answers is only
used if it passes the gate and fits, otherwise the filled template is sent. A template that
fails the gate is the sequence author's mistake (`UnsafeTemplate`); `load_sequences` already
refuses one, so seeing it at send time means a template bypassed the loader.

The gate is lexical: a documented list of words and patterns matched on word boundaries after
normalisation (NFKC, case folding, accents and zero-width characters removed, common digit
look-alikes such as "s3xy"). It refuses too much rather than too little (an LLM text it refuses
falls back to the template, which costs nothing), and it cannot understand meaning: innuendo
without any listed word, spaced-out letters ("s e x") and spelled-out links ("evil dot com")
pass. docs/sequences.md lists these limits. Pure domain code: no HTTP, no database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Literal
from urllib.parse import urlsplit

# One line, appended after a blank line to every DM. Platforms and some jurisdictions
# (California's bot law, Germany) want automated chats to say so.
DISCLOSURE = "(Automated message sent by an AI assistant on behalf of this character.)"
_SEPARATOR = "\n\n"
_ELLIPSIS = "…"

# Fallbacks for subscriber-controlled variables whose value the gate refuses (a display name
# like "sexy_boy69" must not put that word into our message).
SAFE_FALLBACKS: Mapping[str, str] = {"name": "there", "handle": "there"}


class UnsafeTemplate(ValueError):
    """A sequence template (or a roster value put into it) fails the safety gate."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("template refused by the safety gate: " + "; ".join(self.reasons))


@dataclass(frozen=True)
class Personalized:
    text: str  # always ends with DISCLOSURE and fits max_len
    source: Literal["llm", "template"]
    refused: tuple[str, ...]  # why the LLM's text was not used (empty when it was, or no LLM)


# --- disclosure ---------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary and ended with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head.strip():
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,.;:-\n") + _ELLIPSIS


def _strip_disclosure(text: str) -> str:
    body = text.rstrip()
    while body.endswith(DISCLOSURE):
        body = body[: -len(DISCLOSURE)].rstrip()
    return body


def with_disclosure(text: str, max_len: int) -> str:
    """`text` with DISCLOSURE appended once, the whole at most `max_len` characters.

    When too long, the body is shortened (at a word, with an ellipsis), never the disclosure;
    if not even a short body fits, the message is the disclosure alone. Idempotent: a text
    that already ends with the disclosure gets it only once.
    """
    if max_len < len(DISCLOSURE):
        raise ValueError(
            f"max_len {max_len} is shorter than the disclosure ({len(DISCLOSURE)} characters)"
        )
    body = _strip_disclosure(text)
    room = max_len - len(DISCLOSURE) - len(_SEPARATOR)
    if body and len(body) <= room:  # it fits as it is
        return body + _SEPARATOR + DISCLOSURE
    if not body or room < 2:  # a cut needs room for one character and the ellipsis
        return DISCLOSURE
    return _cut(body, room) + _SEPARATOR + DISCLOSURE


# --- the gate -----------------------------------------------------------------------------

# Characters used to hide a word from a filter ("se\u200bx") and apostrophe look-alikes.
_INVISIBLE = {ord(c): None for c in "\u00ad\u200b\u200c\u200d\u2060\ufeff"}
_APOSTROPHES = {ord(c): "'" for c in "\u2018\u2019\u02bc\u0060\u00b4"}
# Digits and signs written for letters ("s3xy", "t33n", "pa$$word"); applied in a second pass
# only, because ages and amounts need the real digits.
_LEET = str.maketrans("013457@$", "oieasta" + "s")

# Word lists, as regular-expression fragments over normalised text (lowercase, no accents).
# A space inside a term matches any run of spaces, hyphens, dots or underscores, or nothing
# ("cash app", "cash-app", "cashapp"). Each term must stand as a whole word: it may not be
# preceded or followed by a letter or digit, which is what lets "Essex", "Sussex",
# "Middlesex", "canteen", "steen", "sextant" and "cocktail" through.
SEXUAL_TERMS: tuple[str, ...] = (
    r"sex(?:y|ier|iest|ual|ually|uality|ting|t|ts|ted)?", r"porn(?:o|ographic|ography)?",
    r"nsfw", r"xxx", r"nudes?", r"nudity", r"naked", r"topless", r"horny", r"orgasms?",
    r"erotic(?:a|ally)?", r"fetish(?:es)?", r"kinky", r"bdsm", r"bondage", r"lewd",
    r"boobs?", r"boobies", r"tits", r"titties", r"nipples?", r"cocks?", r"pussy",
    r"dick pics?", r"blow jobs?", r"hand jobs?", r"cumshots?", r"masturbat(?:e|es|ed|ing|ion)",
    r"genitals?", r"penis", r"vagina", r"aroused", r"arousing", r"strip ?tease", r"strippers?",
    r"explicit (?:content|photos?|pics?|videos?)", r"spicy (?:content|photos?|pics?|videos?)",
    r"adult (?:content|photos?|pics?|videos?)",
)
MINOR_TERMS: tuple[str, ...] = (
    r"teen(?:s|age|aged|ager|agers)?", r"pre teens?", r"tweens?", r"under ?aged?",
    r"minors", r"child(?:ren)?", r"kids?", r"kiddies", r"lol(?:i|ita|itas)", r"jail bait",
    r"barely legal", r"school ?(?:girls?|boys?|kids?)", r"high ?school(?:ers?)?",
    r"middle school", r"junior high", r"little (?:girls?|boys?)", r"young (?:girls?|boys?)",
    r"p(?:a)?edo(?:s|phile|philes|philia)?",
)
PAYMENT_TERMS: tuple[str, ...] = (
    r"pay pal(?:\.me)?", r"cash app", r"venmo", r"zelle", r"wire me", r"wire transfers?",
    r"wire (?:the )?(?:money|funds|cash)", r"western union", r"money gram",
    r"bank (?:transfer|details|account)", r"iban", r"swift code", r"bitcoin", r"btc",
    r"ethereum", r"usdt", r"crypto(?:currency|currencies)?", r"gift cards?", r"revolut",
    r"skrill", r"ko fi", r"patreon", r"buy me a coffee",
    r"pay me (?:directly|outside|off)", r"send (?:me )?(?:the )?money",
)

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17,
}
_NUM = r"(?P<n>\d{1,2}|" + "|".join(_NUMBER_WORDS) + ")"
# What may follow "I'm 5" without it being an age: units of time, money, size, order, counts.
_UNITS = (
    r"(?:mins?|minutes?|h|hrs?|hours?|secs?|seconds?|days?|weeks?|wks?|months?|years?|yrs?|"
    r"k|m|x|times|am|pm|a\.m|p\.m|th|st|nd|rd|cm|km|kg|lbs?|ft|feet|foot|miles?|euros?|"
    r"dollars?|bucks|usd|eur|gbp|percent|o'clock|episodes?|parts?|points?|pts|levels?|"
    r"games?|wins?|tries|attempts?|runs?|videos?|reels?|posts?|photos?|pics?)"
)
_AGE_AFTER = re.compile(  # "16 yo", "16yo", "sixteen years old", "16-year-old"
    r"(?<![\w.,:$€£#/'])" + _NUM
    + r"\s*-?\s*(?:yo|y/o|y\.o\.?|yrs?[\s-]*old|years?[\s-]*old|years?[\s-]*young)(?![\w])"
)
_AGE_BEFORE = re.compile(  # "I'm 17", "she's 16", "aged 15", "just turned 16"
    r"(?<![\w'])(?:i'?m|i am|she'?s|he'?s|she is|he is|they'?re|they are|aged?|age of|"
    r"turned|turning)\s+" + _NUM
    + r"(?!\w|[.,:]\d|[/%'\"\u2032\u2033$€£]|\s*[-+]|\s*" + _UNITS + r"(?!\w))"
)

_WALLETS = (
    re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])"),  # Ethereum and its kin
    re.compile(r"(?<![0-9A-Za-z])(?:bc1|ltc1|tb1)[02-9ac-hj-np-z]{11,71}(?![0-9A-Za-z])",
               re.IGNORECASE),  # bech32 (Bitcoin, Litecoin)
    # Base58 (Bitcoin legacy, Tron, Solana, Monero, ...): a long token of the base58 alphabet.
    # Words are never this long; the mixed-case-and-digit check below spares long numbers.
    re.compile(r"(?<![0-9A-Za-z])[1-9A-HJ-NP-Za-km-z]{26,95}(?![0-9A-Za-z])"),
)
_CASHTAG = re.compile(r"(?<![\w$])\$[^\W\d_][\w]{1,19}")  # $name, not "$5" or "US$5"

# Links: with a scheme, starting "www.", or a bare domain on a common top-level domain.
_TLDS = (
    "com|net|org|io|me|co|app|link|xyz|ly|gg|tv|info|biz|site|online|shop|store|club|live|"
    "fun|page|cc|us|uk|de|es|fr|it|jp|ru|ai|vip|pro|bio|top|icu|cam|ee|gl|sh|to|fans|money|"
    "pay|cash|chat|social"
)
_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'()]+|(?<![\w.@-])www\.[^\s<>\"'()]+", re.I)
_BARE_DOMAIN = re.compile(
    r"(?<![\w.@/-])((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:" + _TLDS + r"))(?![\w-])", re.I
)
_EMAIL = re.compile(r"[\w.+-]+@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,}", re.I)


def _normalise(text: str) -> str:
    """NFKC, case-folded, zero-width characters dropped, accents removed."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_APOSTROPHES)
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _word_pattern(terms: Iterable[str]) -> re.Pattern[str]:
    joined = "|".join(term.replace(" ", r"[\s._-]*") for term in terms)
    # Not preceded or followed by a letter or digit (underscore counts as a separator).
    return re.compile(r"(?<![^\W_])(?:" + joined + r")(?![^\W_])")


_SEXUAL = _word_pattern(SEXUAL_TERMS)
_MINORS = _word_pattern(MINOR_TERMS)
_PAYMENT = _word_pattern(PAYMENT_TERMS)


def _age(match: re.Match[str]) -> int:
    n = match.group("n")
    return int(n) if n.isdigit() else _NUMBER_WORDS[n]


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.rstrip(".").casefold()
    return any(host == a or host.endswith("." + a) for a in allowed)


def _hosts(text: str) -> tuple[list[str], str]:
    """The host of every link with a scheme or "www.", and the text with those links blanked
    out (for the e-mail and bare-domain passes, which must not see them again)."""
    hosts: list[str] = []
    for match in _URL.finditer(text):
        url = match.group()
        if url.startswith("www."):
            url = "http://" + url
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:  # e.g. a malformed IPv6 literal: still a link we cannot vouch for
            host = ""
        hosts.append(host or url)
    return hosts, _URL.sub(" ", text)


def gate(text: str, allowed_hosts: Sequence[str] = ()) -> list[str]:
    """Why `text` may not be sent to a subscriber; an empty list means it may.

    Refused: sexual content, anything about minors (words, and ages under 18 written as
    numbers or number words: "16 yo", "I'm 17", "sixteen years old"), off-platform payment
    (payment services, "$cashtags", crypto wallet addresses, "wire me"), e-mail addresses and
    links to any host not in `allowed_hosts` (a host's subdomains are allowed with it).
    """
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    plain = _normalise(text)
    leet = plain.translate(_LEET)
    for label, pattern in (("sexual content", _SEXUAL), ("about minors", _MINORS),
                           ("off-platform payment", _PAYMENT)):
        for variant in (plain, leet):
            for match in pattern.finditer(variant):
                add(f"{label}: {match.group()!r}")
    for pattern in (_AGE_AFTER, _AGE_BEFORE):
        for match in pattern.finditer(plain):
            if _age(match) < 18:
                add(f"about minors: age under 18 ({match.group()!r})")
    for match in _CASHTAG.finditer(plain):
        add(f"off-platform payment: cashtag {match.group()!r}")

    folded = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    for pattern in _WALLETS:
        for match in pattern.finditer(folded):
            token = match.group()
            if pattern is _WALLETS[2] and not (
                re.search(r"\d", token) and re.search(r"[a-z]", token)
                and re.search(r"[A-Z]", token)
            ):
                continue
            add("off-platform payment: crypto wallet address")
    folded = folded.casefold()
    hosts, rest = _hosts(folded)
    if _EMAIL.search(rest):
        add("off-platform contact: e-mail address")
    hosts += [m.group(1) for m in _BARE_DOMAIN.finditer(_EMAIL.sub(" ", rest))]
    allowed = [h.strip().rstrip(".").casefold() for h in allowed_hosts if h.strip()]
    for host in hosts:
        if not _host_allowed(host, allowed):
            add(f"link to a host that is not allowed: {host!r}")
    return reasons


# --- personalisation ----------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You write one private message to a subscriber, as the fictional adult virtual creator "
    "described here. Persona: {persona}\n"
    "Rules: first person, warm and friendly, suitable for a general audience. No sexual or "
    "suggestive content. Never mention children, teenagers, school or anyone's age. No links, "
    "prices, payment methods, e-mail addresses or other contact details. Do not add a "
    "signature or a disclaimer: one is added automatically. Plain text, at most {limit} "
    "characters. Answer with the message only."
)
USER_PROMPT = (
    "{instruction}\n\nThe subscriber is called {name}. Base message (keep its meaning and any "
    "offer in it):\n{message}"
)
DEFAULT_INSTRUCTION = "Rewrite this message in your own voice."
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"


def fill(template_text: str, variables: Mapping[str, str]) -> str:
    """`template_text` with its `{placeholders}` replaced; a missing one is a ValueError."""
    try:
        parsed = list(Formatter().parse(template_text))
    except ValueError as exc:
        raise ValueError(f"template is not valid: {exc}") from None
    missing = sorted({f for _, f, _, _ in parsed if f is not None and f not in variables})
    if missing:
        raise ValueError(f"no value for template placeholder(s): {', '.join(missing)}")
    out = []
    for literal, field, _spec, _conv in parsed:
        out.append(literal)
        if field is not None:
            out.append(str(variables[field]))
    return "".join(out)


def _safe_variables(variables: Mapping[str, str], allowed_hosts: Sequence[str]) -> dict[str, str]:
    safe: dict[str, str] = {}
    for key, value in variables.items():
        reasons = gate(str(value), allowed_hosts)
        if not reasons:
            safe[key] = str(value)
        elif key in SAFE_FALLBACKS:
            safe[key] = SAFE_FALLBACKS[key]
        else:  # e.g. the character's name: roster data, so the author's problem
            raise UnsafeTemplate([f"{{{key}}}: {r}" for r in reasons])
    return safe


def _clean_llm_text(text: str) -> str:
    text = _strip_disclosure(text.strip())
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def personalize(
    template_text: str,
    *,
    variables: Mapping[str, str],
    persona: str,
    prompt: str | None,
    writer: Callable[[str, str], str | None] | None,
    max_len: int,
    allowed_hosts: Sequence[str] = (),
) -> Personalized:
    """The text to send: the LLM's rewrite of the filled template if it is safe and fits,
    else the filled template; always ending with the disclosure.

    `writer(system_prompt, user_prompt)` is the caller's LLM call; None, an exception, an
    empty, overlong or refused answer all fall back to the template (the reasons are in
    `refused`). Raises UnsafeTemplate when the template itself fails the gate.
    """
    template_reasons = gate(template_text, allowed_hosts)
    if template_reasons:
        raise UnsafeTemplate(template_reasons)
    filled = fill(template_text, _safe_variables(variables, allowed_hosts))
    filled_reasons = gate(filled, allowed_hosts)
    if filled_reasons:  # only a value that combines badly with the text can get here
        raise UnsafeTemplate(filled_reasons)
    fallback = Personalized(with_disclosure(filled, max_len), "template", ())
    if writer is None:
        return fallback

    limit = max_len - len(DISCLOSURE) - len(_SEPARATOR)
    if limit < 2:
        return fallback
    system = SYSTEM_PROMPT.format(persona=persona, limit=limit)
    name = _safe_variables({"name": variables.get("name", "there")}, allowed_hosts)["name"]
    user = USER_PROMPT.format(instruction=prompt or DEFAULT_INSTRUCTION, name=name,
                              message=filled)
    try:
        answer = writer(system, user)
    except Exception as exc:  # the LLM is optional: any failure means the template
        return Personalized(fallback.text, "template", (f"writer failed: {type(exc).__name__}",))
    if answer is None:
        return Personalized(fallback.text, "template", ("writer gave no text",))
    text = _clean_llm_text(str(answer))
    refused: list[str] = []
    if not text:
        refused.append("writer gave an empty text")
    elif len(text) > limit:
        refused.append(f"too long: {len(text)} characters (at most {limit})")
    if re.search(r"\{[^{}]*\}", text):
        refused.append("left a {placeholder} unfilled")
    refused.extend(gate(text, allowed_hosts))
    if refused:
        return Personalized(fallback.text, "template", tuple(refused))
    return Personalized(with_disclosure(text, max_len), "llm", ())
