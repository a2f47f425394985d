"""What a comment is, by deterministic rules (no LLM): question, compliment, neutral, spam,
hostile or unsafe, and whether it must wait for a person (held) before anything is said.

Rules in order, the first that matches decides:
1. unsafe (held): sexual or suggestive words (the DM gate's list and a comment list of milder
   ones: "hot", "bikini", "take it off", suggestive emoji), anything about minors (the gate's
   words and ages under 18, and "my little sister is 11", "what grade are you in"), self-harm;
2. spam (skipped): links, e-mail addresses, payment and crypto talk (the DM gate), "DM me",
   "check my bio", promotion, easy money;
3. hostile (skipped): insults and contempt ("cringe", "garbage", "AI slop");
4. doubtful (held, with the class it would have had): a language the word lists cannot read
   (another script, or more words of other languages than of English: a Spanish insult would
   pass every rule above), and questions after the person (age, address, phone, meeting);
5. question ("?", or a question word first), compliment (praise words, hearts), else neutral.

Lexical rules over-hold rather than under-hold: a held comment costs an operator a look, an
answered one cannot be taken back. Their limits (meaning without listed words, spaced-out
letters) are the DM gate's, listed in docs/comments.md. Pure: no database, no HTTP.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from waifugen_assets.subscribers.safety import gate

ANSWERED = ("question", "compliment", "neutral")


@dataclass(frozen=True)
class Classification:
    label: str  # one of schema.COMMENT_CLASSES
    hold: bool  # waits for review (unsafe, or doubtful)
    reason: str  # why held or skipped; "" for a comment answered as it is

    @property
    def skip(self) -> bool:
        return self.label in ("spam", "hostile")


def _words(*terms: str) -> re.Pattern[str]:
    joined = "|".join(t.replace(" ", r"[\s._-]*") for t in terms)
    return re.compile(r"(?<![^\W_])(?:" + joined + r")(?![^\W_])")


_SUGGESTIVE = _words(
    r"hot(?:ter|test|tie)?", r"skin", r"spicy", r"take (?:it|that|them|everything) off",
    r"bikinis?", r"lingerie", r"underwear", r"panties", r"bra", r"feet pics?", r"thicc?",
    r"booty", r"body count", r"onlyfans", r"only fans", r"fansly", r"private (?:pics?|show)",
    r"send (?:me )?(?:pics|something)", r"in (?:my|your) dms?", r"daddy", r"kiss me",
    r"seductive", r"sensual", r"curves",
)
_SUGGESTIVE_EMOJI = re.compile("[\U0001F351\U0001F346\U0001F4A6\U0001F608\U0001F60F\U0001F445]")
_MINORS = _words(
    r"little (?:sister|brother|sis|bro|son|daughter)", r"my (?:son|daughter|kid|niece|nephew)",
    r"grade", r"elementary", r"middle school", r"primary school", r"homework", r"my mom says",
    r"my parents",
)
# "is 11", "am 12", "turning 9": an age under 18 after a verb the gate does not know.
_YOUNG_AGE = re.compile(
    r"(?<![\w'])(?:is|am|was|turning|turns|age)\s+(\d{1,2})(?![\d\w%.,:/'])"
    r"(?!\s*(?:times|x|k|mins?|minutes?|hours?|hrs?|h|secs?|seconds?|days?|weeks?|months?|"
    r"years?(?! old)|am|pm|percent|out of|stars?|dollars?|bucks|euros?|million|thousand|"
    r"views|followers|likes|episodes?|parts?|songs?|videos?)(?!\w))")
_SELF_HARM = _words(
    r"kill(?:ing)? myself", r"suicid(?:e|al)", r"self harm(?:ing)?", r"cut(?:ting)? myself",
    r"(?:want|wanna|going) to die", r"wanna die", r"end (?:my|it) (?:life|all)", r"kms",
    r"hurt(?:ing)? myself",
)
_SPAM = _words(
    r"dm me", r"message me", r"text me", r"check (?:out )?my (?:bio|profile|page|channel|link)",
    r"link in (?:my )?bio", r"bio link", r"follow (?:me|back)", r"f4f", r"sub ?4 ?sub",
    r"l4l", r"promo(?:te|tion|tions|s)?", r"collab", r"earn", r"make money",
    r"free followers", r"followers? here", r"giveaway", r"whats ?app", r"telegram", r"signals?",
    r"invest(?:ment|ing)?",
    r"forex", r"100x", r"guaranteed", r"passive income", r"click (?:here|the link)",
    r"join (?:now|us|my)", r"cash ?out", r"ref(?:erral)? (?:code|link)",
)
_HOSTILE = _words(
    r"cringe", r"garbage", r"trash", r"slop", r"pathetic", r"worst", r"stupid", r"idiot(?:s|ic)?",
    r"dumb", r"ugly", r"hate (?:you|this|it|u)", r"loser", r"disgusting", r"awful", r"terrible",
    r"sucks?", r"fake", r"delete (?:your|ur) (?:account|channel)", r"nobody asked",
    r"unfollow(?:ing|ed)?", r"unsubscrib(?:e|ing|ed)", r"kys", r"kill yourself", r"shut up",
    r"clown", r"go away", r"waste of time", r"lame",
)
_PERSONAL = _words(
    r"where do you live", r"where are you from", r"your (?:address|number|phone|email|snap"
    r"|snapchat|real name|location|age)", r"phone number", r"meet (?:up|you|me|irl)",
    r"in person", r"irl", r"how old", r"are you (?:single|real|human|a bot)",
)
_QUESTION_START = _words(
    r"what", r"whats", r"how", r"when", r"where", r"why", r"who", r"which", r"can you",
    r"could you", r"would you", r"will you", r"do you", r"does", r"did you", r"is (?:this|it|that)",
    r"are you", r"any (?:tips|chance)",
)
_PRAISE = _words(
    r"love(?:d|ly|s)?", r"beautiful", r"adorable", r"favou?rite", r"best", r"perfect",
    r"amazing", r"awesome", r"great", r"wonderful", r"incredible", r"stunning", r"gorgeous",
    r"cute", r"cozy", r"calming", r"relaxing", r"make?s? my day", r"deserves?", r"vibes?",
    r"so good", r"nice", r"wow", r"brilliant", r"masterpiece", r"talented", r"pretty",
    r"thank(?:s| you)", r"obsessed", r"goals", r"fire", r"slay(?:ed|s)?", r"queen",
)
_HEARTS = re.compile("[\u2764\u2665\u2728\U0001F495-\U0001F49F\U0001F60D\U0001F970"
                     "\U0001F525\U0001F44F\U0001F62D\U0001F929\U0001F338\U0001F496]")

# Function words of English, and of the languages whose comments use Latin letters too
# (Spanish, Portuguese, French, German, Italian, Tagalog). Accents are stripped first.
ENGLISH = frozenset("""
a about after again all also always am an and any are as at be because been before best but
by can come could day did do does done dont for from get go going good got had has have he
her here him his how i if im in is it its ive just know like little look love made make many
me more most much my need never new next no not now of oh ok okay on one only or other our
out over please really right same saw see she so some still such take than thank thanks that
the their them then there these they thing think this those tho though time to today too
try up us very video videos want was watch watched watching way we well were what when where
which who why will wish with would wow yes yet you your youre first again lol omg haha
song place app make next favourite favorite colours colors lighting vibe feed here sounds
""".split())
FOREIGN = frozenset("""
que el la los las del y en es esta este estas muy por para con mi tu su desde lindo linda
bonito bonita hermoso hermosa encanta gracias saludos hola amor pero como cuando donde
c'est cest est le les et tres trop mignon mignonne une des pour avec je tu suis tres
das ist und nicht sehr schon ich du der die mit geworden auch wie
che il molto bello bella bellissimo bellissima complimenti grazie ciao sono
ang nito ganda ng sa ako ka mo naman talaga
ola obrigado obrigada voce muito
""".split())
_INVERTED = re.compile("[\u00a1\u00bf]")  # ¡ ¿
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("\u2019", "'")


def _script(text: str) -> str | None:
    """The first letter outside the Latin script, if any ("CJK", "HANGUL", "CYRILLIC"...)."""
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            if name and not name.startswith("LATIN"):
                return name.split(" ")[0]
    return None


def language_doubt(text: str) -> str | None:
    """Why the word lists cannot vouch for `text`'s language, or None when it reads as
    English (or has no words: emoji, "👀")."""
    script = _script(text)
    if script:
        return f"written in a script the rules cannot read ({script.lower()})"
    plain = _plain(text)
    words = _WORD.findall(plain)
    foreign = sum(w in FOREIGN and w not in ENGLISH for w in words)
    english = sum(w in ENGLISH for w in words)
    if _INVERTED.search(text) or (foreign and foreign >= english):
        return "another language than English: the rules cannot read it"
    return None


def _young_age(plain: str) -> str | None:
    for match in _YOUNG_AGE.finditer(plain):
        if int(match.group(1)) < 18:
            return match.group()
    return None


def classify(text: str) -> Classification:
    """The class of a comment and whether it is held; see the module docstring."""
    plain = _plain(text)
    reasons = gate(text)
    unsafe = [r for r in reasons if r.startswith(("sexual content", "about minors"))]
    if unsafe:
        return Classification("unsafe", True, unsafe[0])
    for pattern, label in ((_SUGGESTIVE, "suggestive"), (_MINORS, "about minors"),
                           (_SELF_HARM, "self-harm")):
        found = pattern.search(plain)
        if found:
            return Classification("unsafe", True, f"{label}: {found.group()!r}")
    if _SUGGESTIVE_EMOJI.search(text):
        return Classification("unsafe", True, "suggestive emoji")
    age = _young_age(plain)
    if age:
        return Classification("unsafe", True, f"about minors: age under 18 ({age!r})")
    if reasons:  # links, e-mail, payment: what the gate leaves is off-platform traffic
        return Classification("spam", False, reasons[0])
    found = _SPAM.search(plain)
    if found:
        return Classification("spam", False, f"spam: {found.group()!r}")
    found = _HOSTILE.search(plain)
    if found:
        return Classification("hostile", False, f"hostile: {found.group()!r}")
    label = _answerable(text, plain)
    doubt = language_doubt(text)
    if doubt:
        return Classification(label, True, f"doubtful: {doubt}")
    found = _PERSONAL.search(plain)
    if found:
        return Classification(label, True, f"doubtful: asks after the person ({found.group()!r})")
    return Classification(label, False, "")


def _answerable(text: str, plain: str) -> str:
    if "?" in text or _QUESTION_START.match(plain.lstrip(" \"'@#")):
        return "question"
    if _PRAISE.search(plain) or _HEARTS.search(text):
        return "compliment"
    return "neutral"
