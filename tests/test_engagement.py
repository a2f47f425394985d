"""Engagement score and tags: formulas, monotonicity, tag boundaries, and that
docs/engagement.md states every constant as coded."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waifugen_assets.core.config import project_root
from waifugen_assets.subscribers import score as engagement
from waifugen_assets.subscribers.score import (
    MONEY_FULL_CENTS,
    NEW_DAYS,
    SILENT_DAYS,
    TAGS,
    WHALE_MIN_CENTS,
    EngagementFacts,
    facts_from,
    score,
    tags,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def ef(**overrides: object) -> EngagementFacts:
    values: dict[str, object] = {
        "now": NOW, "subscribed_at": NOW - 30 * DAY, "last_inbound_at": None,
        "inbound_30d": 0, "spent_cents_90d": 0, "spent_cents_total": 0, "opted_out": False,
    }
    values.update(overrides)
    return EngagementFacts(**values)  # type: ignore[arg-type]


# --- score --------------------------------------------------------------------------------


def test_score_examples_from_the_doc() -> None:
    assert score(ef()) == 0.0
    assert score(ef(last_inbound_at=NOW, inbound_30d=4)) == 55.0  # 100 * (0.4 + 0.3 * 0.5)
    assert score(ef(last_inbound_at=NOW - 7 * DAY)) == 20.0  # one half-life: 0.4 * 0.5
    assert score(ef(spent_cents_90d=MONEY_FULL_CENTS)) == 30.0
    assert score(ef(spent_cents_90d=10 * MONEY_FULL_CENTS)) == 30.0  # capped
    best = ef(last_inbound_at=NOW, inbound_30d=10_000, spent_cents_90d=MONEY_FULL_CENTS)
    assert score(best) == 100.0
    assert score(ef(last_inbound_at=NOW + DAY)) == 40.0  # a future time counts as now


facts_strategy = st.builds(
    EngagementFacts,
    now=st.just(NOW),
    subscribed_at=st.integers(0, 400).map(lambda d: NOW - d * DAY),
    last_inbound_at=st.one_of(st.none(), st.floats(0, 400).map(lambda d: NOW - d * DAY)),
    inbound_30d=st.integers(0, 500),
    spent_cents_90d=st.integers(0, 10_000_000),
    spent_cents_total=st.integers(0, 10_000_000),
    opted_out=st.booleans(),
)


@settings(max_examples=300)
@given(f=facts_strategy)
def test_score_is_between_0_and_100(f: EngagementFacts) -> None:
    assert 0.0 <= score(f) <= 100.0


@settings(max_examples=300)
@given(f=facts_strategy, sooner=st.floats(0, 400))
def test_a_more_recent_message_never_lowers_the_score(f: EngagementFacts,
                                                       sooner: float) -> None:
    base = f.last_inbound_at
    newer = NOW - sooner * DAY if base is None else base + sooner * DAY
    assert score(replace(f, last_inbound_at=newer)) >= score(f)


@settings(max_examples=300)
@given(f=facts_strategy, more=st.integers(0, 1_000_000), messages=st.integers(0, 100))
def test_more_money_or_messages_never_lower_the_score(f: EngagementFacts, more: int,
                                                      messages: int) -> None:
    assert score(replace(f, spent_cents_90d=f.spent_cents_90d + more)) >= score(f)
    assert score(replace(f, inbound_30d=f.inbound_30d + messages)) >= score(f)


def test_score_strictly_rises_where_it_is_not_saturated() -> None:
    assert score(ef(spent_cents_90d=500)) > score(ef(spent_cents_90d=100)) > score(ef())
    assert score(ef(inbound_30d=2)) > score(ef(inbound_30d=1))
    assert (score(ef(last_inbound_at=NOW - DAY))
            > score(ef(last_inbound_at=NOW - 2 * DAY)) > 0)


# --- tags ---------------------------------------------------------------------------------


def test_new_until_seven_days() -> None:
    assert "new" in tags(ef(subscribed_at=NOW - NEW_DAYS * DAY + timedelta(seconds=1)))
    assert "new" not in tags(ef(subscribed_at=NOW - NEW_DAYS * DAY))


def test_engaged_needs_a_recent_message_and_enough_of_them() -> None:
    recent = NOW - 7 * DAY + timedelta(seconds=1)
    assert "engaged" in tags(ef(last_inbound_at=recent, inbound_30d=3))
    assert "engaged" not in tags(ef(last_inbound_at=recent, inbound_30d=2))
    assert "engaged" not in tags(ef(last_inbound_at=NOW - 7 * DAY, inbound_30d=3))
    assert "engaged" not in tags(ef(last_inbound_at=None, inbound_30d=3))


def test_silent_after_fourteen_days_or_never_after_seven() -> None:
    assert "silent" in tags(ef(last_inbound_at=NOW - SILENT_DAYS * DAY))
    assert "silent" not in tags(ef(last_inbound_at=NOW - SILENT_DAYS * DAY
                                   + timedelta(seconds=1)))
    assert "silent" in tags(ef(subscribed_at=NOW - 7 * DAY, last_inbound_at=None))
    assert "silent" not in tags(ef(subscribed_at=NOW - 7 * DAY + timedelta(seconds=1)))


def test_at_risk_is_silent_after_showing_interest() -> None:
    quiet = NOW - 20 * DAY
    assert "at_risk" in tags(ef(last_inbound_at=quiet, inbound_30d=5))
    assert "at_risk" in tags(ef(last_inbound_at=NOW - 40 * DAY, spent_cents_90d=1))
    assert "at_risk" in tags(ef(last_inbound_at=None, spent_cents_90d=999))  # paid, never wrote
    assert tags(ef(last_inbound_at=NOW - 40 * DAY)) == frozenset({"silent"})
    assert "at_risk" not in tags(ef(last_inbound_at=NOW - 13 * DAY, inbound_30d=5))


def test_whale_and_opted_out() -> None:
    assert "whale" in tags(ef(spent_cents_total=WHALE_MIN_CENTS))
    assert "whale" not in tags(ef(spent_cents_total=WHALE_MIN_CENTS - 1))
    assert "opted_out" in tags(ef(opted_out=True))
    assert "opted_out" not in tags(ef())


@settings(max_examples=300)
@given(f=facts_strategy)
def test_tags_are_known_and_engaged_is_never_silent(f: EngagementFacts) -> None:
    found = tags(f)
    assert found <= set(TAGS)
    assert not {"engaged", "silent"} <= found
    assert "at_risk" not in found or "silent" in found


# --- facts ---------------------------------------------------------------------------------


def test_facts_from_events_counts_windows_refunds_and_ignores_the_future() -> None:
    f = facts_from(
        NOW, NOW - 100 * DAY,
        inbound_at=[NOW - 40 * DAY, NOW - 30 * DAY, NOW - 29 * DAY, NOW - DAY, NOW + DAY],
        payments=[(NOW - 120 * DAY, 5000), (NOW - 10 * DAY, 2000), (NOW - 5 * DAY, -500),
                  (NOW + DAY, 9999)],
        opted_out=False)
    assert f.last_inbound_at == NOW - DAY
    assert f.inbound_30d == 2  # 29 days and 1 day ago; exactly 30 days ago is out
    assert f.spent_cents_90d == 1500
    assert f.spent_cents_total == 6500
    refunded = facts_from(NOW, NOW, [], [(NOW - DAY, 100), (NOW, -300)], opted_out=True)
    assert refunded.spent_cents_90d == 0 and refunded.spent_cents_total == 0
    assert refunded.last_inbound_at is None and refunded.opted_out


def test_bad_facts_are_refused() -> None:
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        ef(now=datetime(2026, 5, 1))
    with pytest.raises(ValueError, match="inbound_30d must not be negative"):
        ef(inbound_30d=-1)
    with pytest.raises(ValueError, match="event time"):
        facts_from(NOW, NOW, [datetime(2026, 4, 1)], [], opted_out=False)


# --- the doc ------------------------------------------------------------------------------


def test_the_doc_states_every_constant_as_coded() -> None:
    doc = (project_root() / "docs" / "engagement.md").read_text(encoding="utf-8")
    constants = {name: value for name, value in vars(engagement).items()
                 if name.isupper() and isinstance(value, int | float)}
    assert len(constants) >= 13
    for name, value in constants.items():
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", doc, re.MULTILINE)
        assert row is not None, f"docs/engagement.md has no row for {name}"
        assert row.group(1).strip() == str(value), name
    for tag in TAGS:
        assert f"| `{tag}` |" in doc
