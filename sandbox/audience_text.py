"""What the simulated audience writes: comment texts per class and commenter names.

Every class the comment-reply stage must tell apart is here, each with texts a deterministic
classifier can recognise and some it has to think about. The `minors` and `sexual` texts are
what a general-audience account must never answer with generated text (they are held for
review); they stay suggestive-at-most on purpose.
"""

from __future__ import annotations

import random

# The classes of simulated comments (ground truth, shown by the control routes).
QUESTION, COMPLIMENT, NEUTRAL = "question", "compliment", "neutral"
OTHER_LANGUAGE = "other_language"
SPAM, HOSTILE, SEXUAL, MINORS, OWN = "spam", "hostile", "sexual", "minors", "own"
REPLY = "reply"  # an audience member answering another comment
CLASSES = (QUESTION, COMPLIMENT, NEUTRAL, OTHER_LANGUAGE, SPAM, HOSTILE, SEXUAL, MINORS, OWN)

# One deck of 20: every post deals its top-level comments from shuffled copies of it, so any
# 20 consecutive comments of a post hold every class.
DECK = ((QUESTION,) * 5 + (COMPLIMENT,) * 5 + (NEUTRAL,) * 2 + (OTHER_LANGUAGE,) * 2
        + (SPAM,) * 2 + (HOSTILE, SEXUAL, MINORS, OWN))

TEXTS: dict[str, tuple[str, ...]] = {
    QUESTION: (
        "What song is this?", "Where was this filmed?", "How long did this take to make?",
        "When is the next video coming out?", "Do you ever do live streams?",
        "What's your favourite ramen place?", "Is this a real place? I want to go!",
        "How do you get the colours so soft?", "Can you make one about autumn next?",
        "what app do you use for editing??",
    ),
    COMPLIMENT: (
        "This is so cozy, I love it!", "Your videos always make my day ✨",
        "The colours in this are beautiful", "Instant favourite, watched it three times",
        "So calming, thank you for this 💕", "Love the vibe of this one",
        "This deserves way more views", "Okay this is adorable 😭",
        "Best thing on my feed today", "The lighting here is perfect",
    ),
    NEUTRAL: (
        "first", "watching this at 3am", "👀", "saw this on my feed", "ok",
        "here before it blows up", "same", "the rain sounds tho",
    ),
    OTHER_LANGUAGE: (
        "¡Me encanta este video! 😍", "Qué bonito, saludos desde México",
        "C'est trop mignon !", "すごくかわいい、次の動画も楽しみ", "Das ist so schön geworden",
        "Que vídeo lindo!", "이 영상 너무 좋아요", "Bellissimo, complimenti!",
        "Очень красиво 💖", "Ang ganda nito!",
    ),
    SPAM: (
        "Earn $500 a day from home 💰 DM me or visit https://bit.ly/fast-cash-now",
        "Free followers here → www.free-followerz.example/join",
        "Crypto signals 🚀 100x guaranteed, join t.me/pumpgroup_signals",
        "Promote your page with us! promo-hub.example/ig 🔥",
        "DM me for a collab 💸 paid promo, check my bio link",
        "I made $3000 this week with this app: https://cashout.example/ref=77",
    ),
    HOSTILE: (
        "This is so cringe, delete your account", "Nobody asked for this garbage",
        "AI slop, unfollowing", "You're pathetic and so is this video",
        "worst channel on this app honestly",
    ),
    SEXUAL: (
        "you're so hot, show us more skin 😏", "send me something spicy in DMs 🍑",
        "take it off next time 😈", "wanna see you in a bikini, post it",
    ),
    MINORS: (
        "I'm 12 and you're my favourite!! can we be friends?",
        "my little sister is 11 and she copies all your videos lol",
        "are you still in middle school? what grade are you in?",
        "I'm 13, can you send me a message? 🥺",
    ),
    OWN: (
        "New video every day! Which one should I make next? 💕",
        "Thank you all for watching 🌸 more tomorrow!",
        "Pinned: this one is AI-generated, hope you like it 💫",
    ),
    REPLY: (
        "same question!", "+1", "agreed 💯", "lol yes", "omg same",
        "I was wondering this too", "right??", "😂😂",
    ),
}

OWN_REPLIES = ("Thank you so much! 💕", "Aww thanks for watching 🌸",
               "Glad you liked it ✨", "More coming soon! 💫")

_ADJECTIVES = ("sleepy", "cozy", "lunar", "mint", "rainy", "tiny", "pixel", "velvet",
               "quiet", "sunny", "misty", "lazy", "cosmic", "honey", "paper", "neon")
_NOUNS = ("otter", "panda", "fox", "cloud", "ramen", "koi", "bunny", "comet", "tea",
          "maple", "sparrow", "noodle", "mochi", "whale", "lantern", "cactus")


def commenter_name(rng: random.Random) -> str:
    """A plausible public username, e.g. `sleepy_otter42`."""
    return f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}{rng.randint(1, 999)}"


def comment_text(rng: random.Random, kind: str) -> str:
    return rng.choice(TEXTS[kind])
