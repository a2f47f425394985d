"""The DM safety gate (true and false positives), the automation disclosure, and LLM
personalisation with its fallbacks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waifugen_assets.subscribers.safety import (
    DISCLOSURE,
    SYSTEM_PROMPT,
    Personalized,
    UnsafeTemplate,
    fill,
    gate,
    personalize,
    with_disclosure,
)

PERSONA = "A retro-gaming streamer who restores old handheld consoles."
VARIABLES = {"name": "Sam", "handle": "@sam", "character": "Mika"}
TEMPLATE = "Hi {name}, welcome! My newest video is up this week."


# --- the gate -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "reason"), [
    ("you look so sexy today", "sexual content: 'sexy'"),
    ("SEXY", "sexual content: 'sexy'"),
    ("want to see my nudes?", "sexual content: 'nudes'"),
    ("this is NSFW", "sexual content: 'nsfw'"),
    ("s3xy pics", "sexual content: 'sexy'"),  # digits for letters
    ("se\u200bxy", "sexual content: 'sexy'"),  # a zero-width space inside the word
    ("S\u00c9XY", "sexual content: 'sexy'"),  # an accent
    ("\uff53\uff45\uff58\uff59", "sexual content: 'sexy'"),  # fullwidth letters
    ("sex_chat later?", "sexual content: 'sex'"),  # underscore separates words
    ("some explicit photos for you", "sexual content: 'explicit photos'"),
    ("porn", "sexual content: 'porn'"),
    ("a teen fan", "about minors: 'teen'"),
    ("my teenage years", "about minors: 'teenage'"),
    ("t33n", "about minors: 'teen'"),
    ("schoolgirl outfit", "about minors: 'schoolgirl'"),
    ("school girl", "about minors: 'school girl'"),
    ("underage", "about minors: 'underage'"),
    ("under-age", "about minors: 'under-age'"),
    ("preteen", "about minors: 'preteen'"),
    ("barely legal", "about minors: 'barely legal'"),
    ("16 yo", "about minors: age under 18 ('16 yo')"),
    ("16yo", "about minors: age under 18 ('16yo')"),
    ("a 15-year-old", "about minors: age under 18 ('15-year-old')"),
    ("I'm 17", "about minors: age under 18 (\"i'm 17\")"),
    ("I\u2019m 17.", "about minors: age under 18 (\"i'm 17\")"),
    ("i am 16 and a half", "about minors: age under 18 ('i am 16')"),
    ("she's 12", "about minors: age under 18 (\"she's 12\")"),
    ("just turned 16!", "about minors: age under 18 ('turned 16')"),
    ("aged 14", "about minors: age under 18 ('aged 14')"),
    ("sixteen years old", "about minors: age under 18 ('sixteen years old')"),
    ("tip me on PayPal", "off-platform payment: 'paypal'"),
    ("paypal.me/mika", "off-platform payment: 'paypal.me'"),
    ("Cash App me", "off-platform payment: 'cash app'"),
    ("cashapp", "off-platform payment: 'cashapp'"),
    ("my $mikacash", "off-platform payment: cashtag '$mikacash'"),
    ("venmo @mika", "off-platform payment: 'venmo'"),
    ("use Zelle", "off-platform payment: 'zelle'"),
    ("wire me the money", "off-platform payment: 'wire me'"),
    ("send btc", "off-platform payment: 'btc'"),
    ("0x52908400098527886E0F7030069857D2E4169EE7", "off-platform payment: crypto wallet "
     "address"),
    ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "off-platform payment: crypto wallet "
     "address"),
    ("send to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "off-platform payment: crypto wallet "
     "address"),
    ("write me at mika@example.com", "off-platform contact: e-mail address"),
    ("go to https://evil.example/pay", "link to a host that is not allowed: 'evil.example'"),
    ("see www.evil.com", "link to a host that is not allowed: 'www.evil.com'"),
    ("see evil.com/pay", "link to a host that is not allowed: 'evil.com'"),
    ("join t.me/mikabot", "link to a host that is not allowed: 't.me'"),
    ("http://fanvue.com.evil.com/", "link to a host that is not allowed: 'fanvue.com.evil.com'"),
    ("http://fanvue.com@evil.com/", "link to a host that is not allowed: 'evil.com'"),
    ("https://f\u0430nvue.com/", "link to a host that is not allowed: 'f\u0430nvue.com'"),
    ("http://10.0.0.1/x", "link to a host that is not allowed: '10.0.0.1'"),
])
def test_gate_refuses(text: str, reason: str) -> None:
    assert reason in gate(text, allowed_hosts=["fanvue.com"])


@pytest.mark.parametrize("text", [
    "Greetings from Essex!", "I grew up in Sussex", "Middlesex county", "Wessex and Sussex",
    "lunch at the canteen", "Jan Steen painted it", "steen", "a sextant for navigation",
    "sextet", "unisex jacket", "a cocktail at the bar", "peacock feathers", "Hancock",
    "a teeny tiny console", "I'm nineteen", "nineteen years old", "eighteen", "fifteen minutes",
    "childhood memories", "no kidding", "skids", "the pedometer says 10k steps",
    "I'm 24", "24 yo", "I'm 5 minutes away", "I'm 5'6\"", "I'm 2 episodes in",
    "I'm 16:00 free", "season 16 finale", "16:00 stream", "the 17th level",
    "top 10 games", "$5 off", "US$10", "it costs 5$", "e.g. this one", "i.e. that one",
    "find me as @mika.hoshizora", "Hi @mika_hoshizora_bot", "version 1.2.3",
    "wireless controller", "a minor update", "bank holiday weekend", "between us",
    "my console collection", "assessment", "grapefruit", "analysis", "therapist",
    "Thanks.See you!", "rock-paper-scissors", "1234567891234567891234567891234",
    "https://fanvue.com/mika", "https://www.fanvue.com/mika", "fanvue.com/mika",
    "https://FANVUE.com/x", DISCLOSURE, "",
])
def test_gate_lets_ordinary_text_through(text: str) -> None:
    assert gate(text, allowed_hosts=["fanvue.com"]) == []


def test_links_need_the_allow_list() -> None:
    assert gate("https://fanvue.com/mika") == [
        "link to a host that is not allowed: 'fanvue.com'"]
    assert gate("https://fanvue.com/mika", allowed_hosts=["FANVUE.com."]) == []
    assert gate("https://api.fanvue.com/x", allowed_hosts=["fanvue.com"]) == []
    assert gate("https://notfanvue.com/x", allowed_hosts=["fanvue.com"]) != []


def test_gate_lists_every_reason_once() -> None:
    reasons = gate("sexy sexy teen, paypal me at evil.com")
    assert reasons == [
        "sexual content: 'sexy'", "about minors: 'teen'", "off-platform payment: 'paypal'",
        "link to a host that is not allowed: 'evil.com'"]


# --- disclosure ---------------------------------------------------------------------------


def test_disclosure_says_the_message_is_automated() -> None:
    assert "automated" in DISCLOSURE.lower() and "ai" in DISCLOSURE.lower().split()
    assert "\n" not in DISCLOSURE


def test_with_disclosure_appends_once() -> None:
    once = with_disclosure("Hi Sam!", 500)
    assert once == "Hi Sam!\n\n" + DISCLOSURE
    assert with_disclosure(once, 500) == once
    assert with_disclosure(once + "  \n", 500) == once
    assert with_disclosure(once + "\n" + DISCLOSURE, 500) == once
    assert with_disclosure("", 500) == DISCLOSURE
    assert with_disclosure("   ", 500) == DISCLOSURE


def test_with_disclosure_trims_the_body_not_the_disclosure() -> None:
    body = "word " * 100
    limit = len(DISCLOSURE) + 40
    out = with_disclosure(body, limit)
    assert len(out) <= limit and out.endswith("\n\n" + DISCLOSURE)
    head = out[: -len(DISCLOSURE) - 2]
    assert head.endswith("…") and body.startswith(head[:-1])
    assert with_disclosure(body, len(DISCLOSURE)) == DISCLOSURE
    with pytest.raises(ValueError, match="shorter than the disclosure"):
        with_disclosure("hi", len(DISCLOSURE) - 1)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400) | st.builds(lambda t: t + DISCLOSURE, st.text(max_size=50)),
       extra=st.integers(0, 300))
def test_with_disclosure_is_idempotent_and_fits(text: str, extra: int) -> None:
    limit = len(DISCLOSURE) + extra
    once = with_disclosure(text, limit)
    assert len(once) <= limit
    assert once.endswith(DISCLOSURE)
    assert once.count(DISCLOSURE) >= 1
    assert with_disclosure(once, limit) == once
    body = once[: -len(DISCLOSURE)].rstrip()
    stripped = text.rstrip()
    while stripped.endswith(DISCLOSURE):
        stripped = stripped[: -len(DISCLOSURE)].rstrip()
    if len(stripped) + 2 + len(DISCLOSURE) <= limit:
        assert body == stripped  # nothing is cut when it fits


# --- personalize --------------------------------------------------------------------------


class Writer:
    """A stand-in for the Ollama call: records the prompts and answers as told."""

    def __init__(self, answer: str | Exception | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, system: str, user: str) -> str | None:
        self.calls.append((system, user))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def run(writer: Writer | None, template: str = TEMPLATE, max_len: int = 600,
        prompt: str | None = "Welcome them warmly.",
        variables: dict[str, str] | None = None) -> Personalized:
    return personalize(template, variables=variables or VARIABLES, persona=PERSONA,
                       prompt=prompt, writer=writer, max_len=max_len,
                       allowed_hosts=["fanvue.com"])


def test_without_a_writer_the_filled_template_is_sent() -> None:
    out = run(None)
    assert out == Personalized(
        "Hi Sam, welcome! My newest video is up this week.\n\n" + DISCLOSURE, "template", ())


def test_the_writer_gets_persona_rules_instruction_and_the_filled_template() -> None:
    writer = Writer("Hey Sam! So happy you're here, a new video lands this week.")
    out = run(writer)
    assert out.source == "llm" and out.refused == ()
    assert out.text == ("Hey Sam! So happy you're here, a new video lands this week.\n\n"
                        + DISCLOSURE)
    [(system, user)] = writer.calls
    assert PERSONA in system and "No sexual" in system and "at most" in system
    assert system == SYSTEM_PROMPT.format(persona=PERSONA, limit=600 - len(DISCLOSURE) - 2)
    assert "Welcome them warmly." in user
    assert "Hi Sam, welcome! My newest video is up this week." in user


def test_llm_text_is_cleaned_and_gets_the_disclosure_once() -> None:
    out = run(Writer('"Hello Sam!"\n\n' + DISCLOSURE))
    assert out == Personalized("Hello Sam!\n\n" + DISCLOSURE, "llm", ())


@pytest.mark.parametrize(("answer", "refused"), [
    (None, ("writer gave no text",)),
    (TimeoutError("ollama timed out"), ("writer failed: TimeoutError",)),
    (ValueError("bad json"), ("writer failed: ValueError",)),
    ("   ", ("writer gave an empty text",)),
    ("Hi Sam, you look sexy", ("sexual content: 'sexy'",)),
    ("Hi Sam! Tip me on PayPal", ("off-platform payment: 'paypal'",)),
    ("Hi Sam, I'm 17 too", ("about minors: age under 18 (\"i'm 17\")",)),
    ("See https://evil.com", ("link to a host that is not allowed: 'evil.com'",)),
    ("Hi {name}!", ("left a {placeholder} unfilled",)),
    ("x" * 600, (f"too long: 600 characters (at most {600 - len(DISCLOSURE) - 2})",)),
])
def test_a_failing_or_refused_llm_falls_back_to_the_template(
    answer: str | Exception | None, refused: tuple[str, ...]
) -> None:
    out = run(Writer(answer))
    assert out.source == "template"
    assert out.refused == refused
    assert out.text == "Hi Sam, welcome! My newest video is up this week.\n\n" + DISCLOSURE


def test_an_allowed_link_from_the_llm_is_kept() -> None:
    out = run(Writer("Hi Sam! More at https://fanvue.com/mika"))
    assert out.source == "llm"


def test_an_unsafe_template_is_the_authors_error() -> None:
    writer = Writer("never asked")
    with pytest.raises(UnsafeTemplate) as info:
        run(writer, template="Hi {name}, want my nudes?")
    assert info.value.reasons == ("sexual content: 'nudes'",)
    assert writer.calls == []
    with pytest.raises(UnsafeTemplate, match="e-mail"):
        run(None, template="Write to mika@example.com")


def test_an_unsafe_subscriber_name_is_replaced_not_sent() -> None:
    variables = {**VARIABLES, "name": "sexy_boy69", "handle": "@paypal_me"}
    out = run(None, template="Hi {name} ({handle})!", variables=variables)
    assert out.text == "Hi there (there)!\n\n" + DISCLOSURE
    writer = Writer("Hello!")
    run(writer, variables=variables)
    assert "sexy" not in writer.calls[0][1]


def test_an_unsafe_character_value_is_refused() -> None:
    with pytest.raises(UnsafeTemplate, match="character"):
        run(None, template="I'm {character}", variables={**VARIABLES, "character": "Teen Mika"})


def test_a_missing_variable_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no value for template placeholder"):
        run(None, template="Hi {name} from {character}", variables={"name": "Sam"})
    assert fill("{{literal}} {name}", {"name": "A{b}"}) == "{literal} A{b}"


def test_the_template_is_trimmed_to_fit_with_the_disclosure() -> None:
    long_template = "Hi {name}, " + "this is a long message " * 20
    out = run(None, template=long_template, max_len=len(DISCLOSURE) + 60)
    assert len(out.text) <= len(DISCLOSURE) + 60
    assert out.text.startswith("Hi Sam, this is") and out.text.endswith(DISCLOSURE)



def test_a_short_body_that_fits_exactly_is_kept() -> None:
    # Found by hypothesis: a one-character body with room for exactly it was dropped.
    assert with_disclosure("0", len(DISCLOSURE) + 3) == "0\n\n" + DISCLOSURE
    assert with_disclosure("01", len(DISCLOSURE) + 3) == DISCLOSURE  # no room to cut
