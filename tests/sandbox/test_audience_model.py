"""The sandbox audience model on its own: lifetime counters that never decrease and flatten,
the same numbers for the same seed, every comment class in a post's first 20 comments and in
a simulated week, follower days with gains and the odd loss, YouTube's 3-digit rounding."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.audience import (
    DAY,
    HOUR,
    SETTINGS_DEFAULTS,
    Audience,
    CommentIds,
    Owner,
    abbreviate,
)
from sandbox.audience_text import CLASSES, DECK, OWN, QUESTION, REPLY
from sandbox.determinism import derive_rng

OWNER = Owner("17841000000000001", "mira")
SETTINGS: dict[str, Any] = dict(SETTINGS_DEFAULTS)


def audience(platform: str, seed: int = 1234) -> Audience:
    return Audience(lambda *parts: derive_rng(seed, platform, *parts), platform)


def ids(post: str) -> CommentIds:
    return lambda index, reply: f"{post}-{index}-{reply}"


@settings(max_examples=40, deadline=None)
@given(post=st.text(min_size=1, max_size=12), platform=st.sampled_from(
    ["tiktok", "instagram", "youtube"]), ages=st.lists(
    st.floats(min_value=-DAY, max_value=400 * DAY, allow_nan=False), min_size=2, max_size=12))
def test_counters_never_decrease(post: str, platform: str, ages: list[float]) -> None:
    model = audience(platform)
    seen = [model.counters(post, 0.0, age, SETTINGS) for age in sorted(ages)]
    for earlier, later in itertools.pairwise(seen):
        for name in ("views", "likes", "comments", "shares", "saves", "reach"):
            assert getattr(later, name) >= getattr(earlier, name), (name, earlier, later)
    assert all(c.reach <= c.views and c.likes <= c.views for c in seen)


def test_counters_grow_fast_then_flatten_and_depend_only_on_the_seed() -> None:
    model = audience("tiktok")
    views = {h: model.counters("p1", 0.0, h * HOUR, SETTINGS).views for h in (0, 6, 24, 168,
                                                                              720, 2160)}
    assert views[0] == 0 < views[6] < views[24] < views[168] <= views[720] <= views[2160]
    assert views[24] - views[0] > views[2160] - views[720]  # the first day beats months 2-3
    again = audience("tiktok").counters("p1", 0.0, 24 * HOUR, SETTINGS)
    assert again == model.counters("p1", 0.0, 24 * HOUR, SETTINGS)
    assert audience("tiktok", seed=99).counters("p1", 0.0, 24 * HOUR, SETTINGS) != again
    scaled = model.counters("p1", 0.0, 24 * HOUR, {**SETTINGS, "views_scale": 10.0})
    assert scaled.views > 9 * again.views


@pytest.mark.parametrize("platform", ["instagram", "youtube"])
def test_every_run_of_twenty_comments_holds_every_class(platform: str) -> None:
    model = audience(platform)
    for n in range(30):
        post = f"{platform}-{n}"
        top = [c for c in model.comments(post, 0.0, OWNER, ids(post), SETTINGS)
               if c.parent is None]
        assert len(top) >= 20
        for start in range(0, len(top) - 19, 20):
            assert {c.kind for c in top[start:start + 20]} == set(CLASSES), post
        assert Counter(c.kind for c in top[:20]) == Counter(DECK)


def test_a_simulated_week_shows_every_class_and_own_replies() -> None:
    model = audience("instagram")
    week: list[Any] = []
    for day in range(7):
        post = f"week-{day}"
        week += [c for c in model.comments(post, day * DAY, OWNER, ids(post), SETTINGS)
                 if c.created <= 7 * DAY]
    kinds = Counter(c.kind for c in week)
    assert set(CLASSES) | {REPLY} <= set(kinds), kinds
    own = [c for c in week if c.kind == OWN]
    assert own and all((c.author_id, c.author_name) == (OWNER.author_id, OWNER.author_name)
                       for c in own)
    own_replies = [c for c in own if c.parent is not None]
    parents = {c.id: c for c in week}
    assert own_replies and all(parents[c.parent].kind == QUESTION for c in own_replies)
    others = [c for c in week if c.kind != OWN]
    assert all(c.author_id != OWNER.author_id for c in others)
    assert all(c.created > parents[c.parent].created for c in week if c.parent in parents)
    # some thread has more replies than a YouTube thread inlines (5)
    assert max(Counter(c.parent for c in week if c.parent).values()) > 5


def test_followers_grow_by_the_day_with_the_odd_loss() -> None:
    model = audience("instagram")
    daily = [model.followers("acct", 0.0, d * DAY, SETTINGS) for d in range(121)]
    changes = [b - a for a, b in itertools.pairwise(daily)]
    assert daily[120] > daily[30] > daily[0]
    assert any(c < 0 for c in changes) and sum(c > 0 for c in changes) > 100
    assert len(set(changes)) > 20  # some days fewer than others
    assert model.followers("acct", 0.0, 10.5 * DAY, SETTINGS) == audience(
        "instagram").followers("acct", 0.0, 10.5 * DAY, SETTINGS)
    assert model.followers("acct", 0.0, -DAY, SETTINGS) == daily[0]
    pinned = {**SETTINGS, "followers_base": 9990, "followers_daily": 0.0}
    assert model.followers("acct", 0.0, 3 * DAY, pinned) == 9990


@pytest.mark.parametrize(("count", "shown"), [(0, 0), (999, 999), (1000, 1000), (1234, 1230),
                                              (12345, 12300), (999_999, 999_000),
                                              (1_234_567, 1_230_000)])
def test_subscriber_counts_round_down_to_three_significant_digits(count: int,
                                                                  shown: int) -> None:
    assert abbreviate(count) == shown
