"""Is a subscriber's message an opt-out ("STOP")? Pure logic, no I/O.

The rule (docs/subscribers.md): a message is an opt-out when, after normalisation, the WHOLE
message is one of the opt-out phrases below, or a bot command `/stop`, `/unsubscribe`,
`/optout` (optionally `@botname`). Normalisation: Unicode NFKC (full-width letters become
ASCII), case folding, Latin accents removed ("arrêt" = "arret"), every character that is not a
letter or digit (punctuation, emoji, apostrophes) becomes a space, runs of spaces collapse.
Politeness words at either end ("please", "por favor", "bitte", ...) are ignored, and a
one-word keyword may be repeated ("stop stop STOP").

A keyword inside a longer sentence does not count ("don't stop", "stop by tomorrow?", "I can't
stop thinking about you"): a false opt-out would silence a paying fan who was talking, and the
platforms' own unsubscribe (cancellation, blocking the bot) is always honoured separately.
Unambiguous English requests count anywhere in a message, though ("please unsubscribe me, I'm
busy", "Stop sending me these", "I want to opt out"), unless negated just before ("don't stop
sending me videos").
"""

from __future__ import annotations

import re
import unicodedata

# Whole-message phrases, already normalised (lower case, no accents, no punctuation).
_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (
        "stop", "stopall", "stop all", "unsubscribe", "unsub", "opt out", "optout", "cancel",
        "end", "quit", "stop messaging me", "stop messaging", "stop texting me",
        "stop sending me messages", "stop sending messages", "stop the messages",
        "stop messages", "no more messages", "remove me", "leave me alone",
        "do not message me", "don t message me", "dont message me", "do not contact me",
        "don t contact me", "dont contact me", "stop contacting me", "unsubscribe me",
    ),
    "es": (
        "para", "parar", "alto", "basta", "baja", "darme de baja", "dar de baja",
        "cancelar", "cancelar suscripcion", "desuscribir", "desuscribirme",
        "no quiero mas mensajes", "no mas mensajes", "deja de escribirme",
        "deja de enviarme mensajes", "deja de mandarme mensajes", "no me escribas mas",
    ),
    "fr": (
        "arret", "arreter", "arrete", "arretez", "desabonner", "me desabonner",
        "desabonnement", "desinscrire", "me desinscrire", "je veux me desabonner",
        "arrete de m ecrire", "arretez de m ecrire", "arrete les messages",
        "arretez les messages", "plus de messages", "ne m ecris plus", "ne m ecrivez plus",
    ),
    "de": (
        "stopp", "abmelden", "abbestellen", "austragen", "aufhoren", "hor auf", "hort auf",
        "horen sie auf", "keine nachrichten mehr", "schreib mir nicht mehr",
        "schreiben sie mir nicht mehr", "abo beenden",
    ),
    "it": (
        "basta", "ferma", "fermati", "disiscrivimi", "disiscriviti", "cancellami",
        "annulla iscrizione", "smetti di scrivermi", "non scrivermi piu",
        "niente piu messaggi", "basta messaggi",
    ),
    "pt": (
        "pare", "parar", "para", "sair", "cancelar", "descadastrar", "descadastre me",
        "cancelar inscricao", "nao quero mais mensagens", "pare de me mandar mensagens",
        "pare de me enviar mensagens", "para de me mandar mensagens",
    ),
    "nl": ("afmelden", "uitschrijven", "stop met berichten"),
    "pl": ("wypisz", "wypisz mnie", "koniec"),
    "ru": ("стоп", "отписаться", "отписка", "хватит", "не пишите мне", "не пиши мне"),
    "ja": (
        "停止", "配信停止", "配信解除", "解除", "登録解除", "やめて", "やめてください", "止めて",
        "ストップ", "もう送らないで", "送らないで", "送らないでください", "メッセージをやめて",
        "メッセージ停止",
    ),
    "ko": (
        "중지", "정지", "그만", "그만해", "그만해요", "그만 보내", "그만 보내세요", "수신거부",
        "수신 거부", "구독 취소", "구독취소", "메시지 그만", "그만 보내주세요",
    ),
    "zh": ("停止", "退订", "取消订阅", "别再发了", "不要再发了", "不要再发消息"),
}
OPT_OUT_PHRASES: frozenset[str] = frozenset(p for ps in _PHRASES.values() for p in ps)
# Keywords that may be repeated as the whole message ("stop stop").
_SINGLE_WORDS = frozenset(p for p in OPT_OUT_PHRASES if " " not in p)

# Words ignored at either end of a message, normalised the same way.
_POLITE = ("please", "pls", "plz", "por favor", "s il vous plait", "s il te plait", "svp",
           "stp", "bitte", "per favore", "obrigado", "obrigada", "thanks", "thank you",
           "now", "ahora", "maintenant", "jetzt", "subito", "agora")

# Requests that mean "stop" wherever they appear (normalised text: no apostrophes).
_ANYWHERE = re.compile(
    r"(?<!\S)(?P<neg>(?:don t|dont|do not|never|not) )?"
    r"(?:unsubscribe me|opt ?out|stop (?:messaging|texting|sending|dming|writing|spamming|"
    r"contacting)(?: me)?|(?:don t|dont|do not) (?:message|text|dm|contact|write(?: to)?) me|"
    r"no more (?:messages|dms|texts)|leave me alone|remove me from)(?!\S)")
_COMMAND = re.compile(r"^/(stop|unsubscribe|optout|opt_out)(@[A-Za-z0-9_]+)?$", re.IGNORECASE)
_LATIN_MARKS = re.compile("[\u0300-\u036f]")  # only Latin diacritics: kana voicing stays


def normalize(text: str) -> str:
    """Lower case, no Latin accents, letters and digits separated by single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    stripped = unicodedata.normalize("NFC", _LATIN_MARKS.sub("", unicodedata.normalize(
        "NFD", folded)))
    kept = "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in stripped)
    return " ".join(kept.split())


def _strip_polite(words: str) -> str:
    changed = True
    while changed and words:
        changed = False
        for polite in _POLITE:
            if words == polite:
                return ""
            if words.startswith(polite + " "):
                words, changed = words[len(polite) + 1:], True
            elif words.endswith(" " + polite):
                words, changed = words[: -len(polite) - 1], True
    return words


def is_opt_out(text: str | None) -> bool:
    """True when the whole message asks us to stop messaging (see the module docstring)."""
    if not text:
        return False
    if _COMMAND.match(text.strip()):
        return True
    words = _strip_polite(normalize(text))
    if not words:
        return False
    if words in OPT_OUT_PHRASES:
        return True
    if any(m.group("neg") is None for m in _ANYWHERE.finditer(words)):
        return True
    # Japanese/Chinese are written without spaces: "停止 停止" normalises with a space anyway.
    parts = words.split(" ")
    return len(set(parts)) == 1 and parts[0] in _SINGLE_WORDS
