"""Comment classification (the rules table, the sandbox audience's every class) and the reply
text: the persona writer through the safety gate, the templates, the disclosure."""

from __future__ import annotations

import pytest

from sandbox.audience_text import TEXTS
from waifugen_assets.comments.classify import classify, language_doubt
from waifugen_assets.comments.reply_text import (
    MAX_REPLY_CHARS,
    TEMPLATES,
    compose,
    operator_reply,
    refusals,
    template_reply,
)
from waifugen_assets.core.schema import COMMENT_CLASSES
from waifugen_assets.subscribers.safety import DISCLOSURE

PERSONA = "A home cook from Madrid who turns market finds into quick tapas."

# text, class, held
TABLE = [
    # questions, compliments, neutral: answered
    ("What song is this?", "question", False),
    ("how do you make the sauce", "question", False),
    ("Can you make one about autumn next?", "question", False),
    ("Love this!! what pan is that?", "question", False),
    ("This is so cozy, I love it!", "compliment", False),
    ("😍😍😍", "compliment", False),
    ("Best thing on my feed today", "compliment", False),
    ("first", "neutral", False),
    ("👀", "neutral", False),
    ("watching this at 3am", "neutral", False),
    ("watched it 3 times already", "neutral", False),
    ("this is 10 times better than the last one", "neutral", False),  # not an age
    ("I'm 25 and just learning to cook", "neutral", False),
    ("greetings from Essex", "neutral", False),
    # unsafe: held, never answered with generated text
    ("you look so sexy", "unsafe", True),
    ("you're so hot, show us more skin 😏", "unsafe", True),
    ("post one in a bikini", "unsafe", True),
    ("nice 🍑", "unsafe", True),
    ("I'm 12 and you're my favourite", "unsafe", True),
    ("my little sister is 11 and loves you", "unsafe", True),
    ("my son is 9 and watches every video", "unsafe", True),
    ("what grade are you in?", "unsafe", True),
    ("she is fourteen years old", "unsafe", True),
    ("honestly I want to kill myself", "unsafe", True),
    # spam and hostile: skipped, counted
    ("DM me for a collab 💸", "spam", False),
    ("free followers at www.example-followers.com", "spam", False),
    ("send it to my paypal", "spam", False),
    ("write me: someone@example.com", "spam", False),
    ("check my bio for more", "spam", False),
    ("AI slop, unfollowing", "hostile", False),
    ("this is garbage", "hostile", False),
    ("kill yourself", "hostile", False),
    # doubtful: held with the class it would have had
    ("¡Me encanta este video!", "neutral", True),
    ("C'est trop mignon !", "neutral", True),
    ("Очень красиво 💖", "compliment", True),
    ("where do you live?", "question", True),
    ("how old are you?", "question", True),
]


@pytest.mark.parametrize(("text", "label", "hold"), TABLE)
def test_the_rules_table(text: str, label: str, hold: bool) -> None:
    found = classify(text)
    assert (found.label, found.hold) == (label, hold), found
    assert found.label in COMMENT_CLASSES
    assert bool(found.reason) == (hold or found.skip)


SANDBOX_CLASSES = {  # the sandbox audience's ground truth -> (class, held)
    "question": ("question", False), "compliment": ("compliment", False),
    "neutral": ("neutral", False), "spam": ("spam", False), "hostile": ("hostile", False),
    "sexual": ("unsafe", True), "minors": ("unsafe", True),
}


@pytest.mark.parametrize("truth", sorted(SANDBOX_CLASSES))
def test_every_simulated_comment_of_a_class_is_recognised(truth: str) -> None:
    for text in TEXTS[truth]:
        found = classify(text)
        assert (found.label, found.hold) == SANDBOX_CLASSES[truth], (text, found)


def test_other_languages_are_held_never_answered_unread() -> None:
    for text in TEXTS["other_language"]:
        found = classify(text)
        assert found.hold and found.reason.startswith("doubtful:"), (text, found)
        assert language_doubt(text)
    for text in TEXTS["question"] + TEXTS["compliment"] + TEXTS["neutral"]:
        assert language_doubt(text) is None, text


# --- reply text ---------------------------------------------------------------------------


def test_every_template_passes_its_own_gate() -> None:
    for label in TEMPLATES:
        reply = template_reply(label)
        assert reply.endswith(DISCLOSURE) and refusals(reply) == []


def _writer(answer: str | None) -> object:
    return lambda system, user: answer


@pytest.mark.parametrize(("answer", "refused"), [
    ("Come see the full recipe at https://evil.example/tapas!", "link to a host"),
    ("Text me on 555 123 4567 for the recipe", "personal data: a phone number"),
    ("Thanks @sleepy_otter42!", "personal data: an @mention"),
    ("You look sexy in that apron", "sexual content"),
    ("My little cousin is 12 and loves this too", None),  # not the gate's: passes as text
    ("", "writer gave no text"),
    (None, "writer gave no text"),
    ("Use {ingredient} next time", "left a {placeholder} unfilled"),
    ("x" * 500, "too long"),
])
def test_a_refused_writer_text_falls_back_to_the_template(answer: str | None,
                                                          refused: str | None) -> None:
    draft = compose("What pan is that?", "question", PERSONA, _writer(answer))
    if refused is None:
        assert draft.source == "llm"
        return
    assert draft.source == "template", draft
    assert draft.text == template_reply("question")
    assert any(r.startswith(refused) for r in draft.refused), draft.refused


def test_the_writer_sees_the_comment_and_its_answer_is_disclosed() -> None:
    seen: list[tuple[str, str]] = []

    def writer(system: str, user: str) -> str:
        seen.append((system, user))
        return f'"A carbon-steel pan from the Rastro market!"\n\n{DISCLOSURE}'

    draft = compose("What pan is that?", "question", PERSONA, writer)
    assert draft.source == "llm"
    assert draft.text == f"A carbon-steel pan from the Rastro market!\n\n{DISCLOSURE}"
    system, user = seen[0]
    assert PERSONA in system and "What pan is that?" in user
    assert "No sexual" in system and "age" in system


def test_a_long_answer_keeps_whole_sentences_that_fit() -> None:
    sentence = "Thanks so much for watching this one with me today. "
    draft = compose("love it", "compliment", PERSONA, _writer(sentence * 12))
    assert draft.source == "llm" and len(draft.text) <= MAX_REPLY_CHARS
    body = draft.text[: -len(DISCLOSURE)].strip()
    assert body.endswith("today.") and body.count("Thanks") >= 2


def test_a_failing_writer_means_the_template() -> None:
    def writer(system: str, user: str) -> str:
        raise TimeoutError("ollama is down")

    draft = compose("first", "neutral", PERSONA, writer)
    assert (draft.source, draft.text) == ("template", template_reply("neutral"))
    assert draft.refused == ("writer failed: TimeoutError",)


def test_an_operator_text_passes_the_same_gate() -> None:
    assert operator_reply("Thank you, take care!") == f"Thank you, take care!\n\n{DISCLOSURE}"
    for bad, why in (("see https://x.example", "link"), ("so sexy", "sexual"),
                     ("call 555 123 4567", "phone"), ("  ", "empty"),
                     ("word " * 200, "too long")):
        with pytest.raises(ValueError, match=why):
            operator_reply(bad)
