"""The order of the DM rules in `decide`, quiet hours across zones and DST, the frequency cap,
the messaging window, opt-out keywords."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waifugen_assets.core.config import project_root
from waifugen_assets.subscribers.opt_out import is_opt_out
from waifugen_assets.subscribers.rules import (
    DEFAULT_WINDOWS,
    Decision,
    Rules,
    decide,
    local_zone,
    quiet_until,
)
from waifugen_assets.subscribers.sequences import Condition, Step, SubscriberFacts, Variant

# 2026-05-01 12:00 UTC: 14:00 in Madrid, 21:00 in Tokyo, 08:00 in New York.
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RULES = Rules()
DST_ZONES = [
    "America/New_York", "Europe/London", "Europe/Madrid", "Australia/Sydney",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/Santiago", "America/Havana",  # transitions at midnight
    "Pacific/Chatham", "Asia/Tokyo", "Asia/Kolkata", "UTC",
]


def facts(**overrides: object) -> SubscriberFacts:
    values: dict[str, object] = {
        "id": 1, "platform": "fanvue", "tier": "standard", "tags": frozenset(), "score": 50.0,
        "timezone": "Europe/Madrid", "character_timezone": "Asia/Tokyo",
        "subscribed_at": NOW - timedelta(days=3), "last_inbound_at": NOW - timedelta(hours=1),
        "last_outbound_at": None, "opted_out_at": None, "has_replied": True, "spent_cents": 0,
    }
    values.update(overrides)
    return SubscriberFacts(**values)  # type: ignore[arg-type]


def step(condition: Condition = Condition(), expire: int = 72) -> Step:  # noqa: B008
    return Step(1, 3, "check-in", condition, (Variant("a", 1, "Hi {name}", None),), expire)


def local(dt: datetime, zone: str) -> time:
    return dt.astimezone(ZoneInfo(zone)).time()


# --- the order of the rules ---------------------------------------------------------------


def test_send_when_nothing_stops_it() -> None:
    assert decide(facts(), step(), NOW, NOW, RULES) == Decision("send", "ok", None)


def test_opted_out_wins_over_everything() -> None:
    everything_wrong = facts(
        opted_out_at=NOW - timedelta(days=1), tier="vip", platform="instagram",
        last_inbound_at=None, timezone="Asia/Tokyo", sent_last_24h=9,
        last_outbound_at=NOW - timedelta(hours=1))
    old_due = NOW - timedelta(days=30)
    assert decide(everything_wrong, step(Condition(tiers=("standard",))), old_due, NOW,
                  RULES) == Decision("skip", "opted_out", None)


def test_expired_comes_before_the_condition() -> None:
    due = NOW - timedelta(hours=72)
    at_limit = decide(facts(tier="vip"), step(Condition(tiers=("standard",))), due, NOW, RULES)
    assert at_limit == Decision("skip", "tier vip not in (standard)", None)
    late = decide(facts(tier="vip"), step(Condition(tiers=("standard",))),
                  due - timedelta(seconds=1), NOW, RULES)
    assert late == Decision("skip", "expired", None)
    assert decide(facts(), step(expire=1), NOW - timedelta(hours=2), NOW, RULES).reason == (
        "expired")


def test_a_step_not_yet_due_waits_for_its_time() -> None:
    due = NOW + timedelta(hours=5)
    assert decide(facts(), step(), due, NOW, RULES) == Decision("wait", "not_due", due)


def test_condition_failure_is_a_skip_with_its_reason() -> None:
    decision = decide(facts(spent_cents=10), step(Condition(min_spent_cents=500)), NOW, NOW,
                      RULES)
    assert decision == Decision("skip", "spent 10 cents, below 500", None)


def test_condition_comes_before_the_window_and_quiet_hours() -> None:
    closed_and_quiet = facts(platform="instagram", last_inbound_at=None, timezone="Asia/Tokyo",
                             tier="vip")
    decision = decide(closed_and_quiet, step(Condition(tiers=("standard",))), NOW, NOW, RULES)
    assert decision.action == "skip"


def test_messaging_window_on_instagram() -> None:
    never_wrote = facts(platform="instagram", last_inbound_at=None)
    assert decide(never_wrote, step(), NOW, NOW, RULES) == Decision(
        "wait", "messaging_window", None)
    wrote_25h_ago = facts(platform="instagram", last_inbound_at=NOW - timedelta(hours=25))
    assert decide(wrote_25h_ago, step(), NOW, NOW, RULES).reason == "messaging_window"
    exactly_24h = facts(platform="instagram", last_inbound_at=NOW - timedelta(hours=24))
    assert decide(exactly_24h, step(), NOW, NOW, RULES).reason == "messaging_window"
    wrote_23h_ago = facts(platform="instagram", last_inbound_at=NOW - timedelta(hours=23))
    assert decide(wrote_23h_ago, step(), NOW, NOW, RULES).action == "send"
    # Platforms without a window (Telegram, Fanvue) do not need a recent message.
    assert decide(facts(platform="telegram", last_inbound_at=None), step(), NOW, NOW,
                  RULES).action == "send"
    assert dict(DEFAULT_WINDOWS) == {"instagram": timedelta(hours=24)}
    custom = Rules(windows={"telegram": timedelta(hours=48)})
    assert decide(facts(platform="telegram", last_inbound_at=None), step(), NOW, NOW,
                  custom).reason == "messaging_window"


def test_window_comes_before_quiet_hours() -> None:
    f = facts(platform="instagram", last_inbound_at=None, timezone="Asia/Tokyo")  # 21:00 ok
    late = NOW + timedelta(hours=2)  # 23:00 in Tokyo: quiet
    assert decide(f, step(), NOW, late, RULES).reason == "messaging_window"


def test_quiet_hours_wait_until_they_end_in_the_subscriber_zone() -> None:
    tokyo = facts(timezone="Asia/Tokyo")
    at_2300 = NOW + timedelta(hours=2)  # 23:00 JST on May 1
    decision = decide(tokyo, step(), NOW, at_2300, RULES)
    assert decision == Decision("wait", "quiet_hours", datetime(2026, 5, 2, 0, 0, tzinfo=UTC))
    at_0300 = NOW + timedelta(hours=6)  # 03:00 JST on May 2: same morning
    assert decide(tokyo, step(), NOW, at_0300, RULES).not_before == datetime(
        2026, 5, 2, 0, 0, tzinfo=UTC)
    at_0900 = datetime(2026, 5, 2, 0, 0, tzinfo=UTC)  # quiet_end itself is not quiet
    assert decide(tokyo, step(), NOW, at_0900, RULES).action == "send"
    at_2200 = datetime(2026, 5, 1, 13, 0, tzinfo=UTC)  # quiet_start itself is quiet
    assert decide(tokyo, step(), NOW, at_2200, RULES).reason == "quiet_hours"


def test_zone_falls_back_from_subscriber_to_character_to_utc() -> None:
    assert local_zone(facts(timezone="Asia/Tokyo")) == ZoneInfo("Asia/Tokyo")
    assert local_zone(facts(timezone=None)) == ZoneInfo("Asia/Tokyo")
    assert local_zone(facts(timezone="Mars/Olympus")) == ZoneInfo("Asia/Tokyo")
    assert local_zone(facts(timezone="../../etc/passwd")) == ZoneInfo("Asia/Tokyo")
    assert local_zone(facts(timezone="localtime", character_timezone="")) == ZoneInfo("UTC")
    assert local_zone(facts(timezone=None, character_timezone=None)) == ZoneInfo("UTC")
    # 23:00 JST: quiet for a subscriber without a zone of a Tokyo character, not in Madrid.
    late = NOW + timedelta(hours=2)
    assert decide(facts(timezone=None), step(), NOW, late, RULES).reason == "quiet_hours"
    assert decide(facts(timezone="Nowhere/Land"), step(), NOW, late,
                  RULES).reason == "quiet_hours"
    assert decide(facts(), step(), NOW, late, RULES).action == "send"


def test_quiet_hours_end_is_dst_correct() -> None:
    ny = ZoneInfo("America/New_York")
    # Spring forward on 2026-03-08: 00:00 EST is quiet; 09:00 that day is EDT (13:00 UTC).
    spring = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert quiet_until(spring, ny, RULES) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    # Fall back on 2026-11-01: 00:30 EDT is quiet; 09:00 that day is EST (14:00 UTC).
    fall = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)
    assert quiet_until(fall, ny, RULES) == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    # Evening before the spring change: 23:00 EST -> 09:00 EDT the next day.
    eve = datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
    assert quiet_until(eve, ny, RULES) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


def test_quiet_end_inside_a_fold_or_a_gap() -> None:
    ny = ZoneInfo("America/New_York")
    fold_rules = Rules(quiet_start=time(22, 0), quiet_end=time(1, 30))
    # 01:10 EST, the second 01:10 of 2026-11-01: the first 01:30 (EDT) is past; the second
    # (EST, 06:30 UTC) is the end.
    second_pass = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    assert quiet_until(second_pass, ny, fold_rules) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    first_pass = datetime(2026, 11, 1, 5, 10, tzinfo=UTC)  # 01:10 EDT
    assert quiet_until(first_pass, ny, fold_rules) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    # 02:30 does not exist on 2026-03-08: the end moves forward by the gap (03:30 EDT).
    gap_rules = Rules(quiet_start=time(22, 0), quiet_end=time(2, 30))
    before_gap = datetime(2026, 3, 8, 6, 59, tzinfo=UTC)  # 01:59 EST
    assert quiet_until(before_gap, ny, gap_rules) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_quiet_hours_that_do_not_wrap_and_none_at_all() -> None:
    siesta = Rules(quiet_start=time(14, 0), quiet_end=time(16, 0))
    assert siesta.is_quiet(time(14, 0)) and siesta.is_quiet(time(15, 59))
    assert not siesta.is_quiet(time(16, 0)) and not siesta.is_quiet(time(13, 59))
    madrid_1400 = NOW  # 14:00 CEST
    assert decide(facts(), step(), NOW, madrid_1400, siesta).not_before == datetime(
        2026, 5, 1, 14, 0, tzinfo=UTC)
    never = Rules(quiet_start=time(3, 0), quiet_end=time(3, 0))
    assert not any(never.is_quiet(time(h, m)) for h in range(24) for m in (0, 30))


def test_frequency_cap_waits_24h_after_the_last_message() -> None:
    last = NOW - timedelta(hours=3)
    capped = facts(sent_last_24h=2, last_outbound_at=last)
    assert decide(capped, step(), NOW, NOW, RULES) == Decision(
        "wait", "frequency_cap", last + timedelta(hours=24))
    assert decide(facts(sent_last_24h=1, last_outbound_at=last), step(), NOW, NOW,
                  RULES).action == "send"
    assert decide(capped, step(), NOW, NOW, Rules(cap_per_24h=3)).action == "send"
    # A count that disagrees with last_outbound_at waits a full day instead of spinning.
    odd = facts(sent_last_24h=2, last_outbound_at=None)
    assert decide(odd, step(), NOW, NOW, RULES).not_before == NOW + timedelta(hours=24)
    stale = facts(sent_last_24h=2, last_outbound_at=NOW - timedelta(days=2))
    assert decide(stale, step(), NOW, NOW, RULES).not_before == NOW + timedelta(hours=24)


def test_quiet_hours_come_before_the_cap() -> None:
    capped = facts(timezone="Asia/Tokyo", sent_last_24h=5,
                   last_outbound_at=NOW - timedelta(hours=1))
    assert decide(capped, step(), NOW, NOW + timedelta(hours=2), RULES).reason == "quiet_hours"


def test_naive_times_and_bad_rules_are_refused() -> None:
    naive = datetime(2026, 5, 1, 12, 0)
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        decide(facts(), step(), NOW, naive, RULES)
    with pytest.raises(ValueError, match="due must be a timezone-aware"):
        decide(facts(), step(), naive, NOW, RULES)
    with pytest.raises(ValueError, match="cap_per_24h"):
        Rules(cap_per_24h=0)
    with pytest.raises(ValueError, match="window"):
        Rules(windows={"instagram": timedelta(0)})


# --- properties ---------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                        timezones=st.just(UTC))
zones = st.sampled_from([*DST_ZONES, "Not/AZone", None])
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@settings(max_examples=400, deadline=None)
@given(now=instants, zone=zones, char_zone=zones, start=clock, end=clock)
def test_never_send_inside_quiet_hours(now: datetime, zone: str | None,
                                       char_zone: str | None, start: time, end: time) -> None:
    rules = Rules(quiet_start=start, quiet_end=end)
    f = facts(timezone=zone, character_timezone=char_zone, subscribed_at=now,
              last_inbound_at=now)
    decision = decide(f, step(), now, now, rules)
    quiet = rules.is_quiet(now.astimezone(local_zone(f)).time())
    assert (decision.action == "send") == (not quiet)
    if quiet:
        assert decision.reason == "quiet_hours"
        assert decision.not_before is not None
        assert now < decision.not_before <= now + timedelta(hours=26)


@settings(max_examples=400, deadline=None)
@given(now=instants, zone=st.sampled_from(DST_ZONES))
def test_default_quiet_hours_end_exactly_at_the_first_non_quiet_moment(
    now: datetime, zone: str
) -> None:
    until = quiet_until(now, ZoneInfo(zone), RULES)
    if until is None:
        assert not RULES.is_quiet(local(now, zone))
        return
    assert local(until, zone) == RULES.quiet_end
    assert RULES.is_quiet(local(until - timedelta(seconds=1), zone))
    assert RULES.is_quiet(local(now, zone))


@settings(max_examples=200, deadline=None)
@given(now=instants, sent=st.integers(0, 10), cap=st.integers(1, 5),
       hours_ago=st.floats(0, 23.9), zone=zones)
def test_cap_reached_never_sends(now: datetime, sent: int, cap: int, hours_ago: float,
                                 zone: str | None) -> None:
    f = facts(sent_last_24h=sent, last_outbound_at=now - timedelta(hours=hours_ago),
              timezone=zone, subscribed_at=now, last_inbound_at=now)
    decision = decide(f, step(), now, now, Rules(cap_per_24h=cap))
    if sent >= cap:
        assert decision.action == "wait"
        assert decision.not_before is not None and decision.not_before > now


@settings(max_examples=40, deadline=None)
@given(start=instants, cap=st.integers(1, 3),
       offsets=st.lists(st.integers(0, 6 * 24 * 60), min_size=1, max_size=12))
def test_a_simulated_week_never_exceeds_the_cap(start: datetime, cap: int,
                                                offsets: list[int]) -> None:
    """Steps due at random minutes, decided every 20 minutes like the sensor would: no 24 h
    window ever holds more than `cap` sends."""
    rules = Rules(cap_per_24h=cap, quiet_start=time(22, 0), quiet_end=time(9, 0))
    pending = {i: start + timedelta(minutes=m) for i, m in enumerate(offsets)}
    sent: list[datetime] = []
    now = start
    while now <= start + timedelta(days=8) and pending:
        for index, due in sorted(pending.items()):
            recent = [t for t in sent if t > now - timedelta(hours=24)]
            f = facts(timezone="America/New_York", subscribed_at=start, last_inbound_at=now,
                      sent_last_24h=len(recent), last_outbound_at=max(sent, default=None))
            decision = decide(f, step(expire=10_000), due, now, rules)
            if decision.action == "send":
                sent.append(now)
                del pending[index]
        now += timedelta(minutes=20)
    for t in sent:
        assert sum(1 for u in sent if t - timedelta(hours=24) < u <= t) <= cap
        assert not rules.is_quiet(local(t, "America/New_York"))


@settings(max_examples=200, deadline=None)
@given(now=instants, opted=st.floats(-1000, 1000), zone=zones,
       platform=st.sampled_from(["fanvue", "telegram", "instagram", "onlyfans"]),
       sent=st.integers(0, 5))
def test_opted_out_never_sends(now: datetime, opted: float, zone: str | None, platform: str,
                               sent: int) -> None:
    f = facts(opted_out_at=now + timedelta(hours=opted), timezone=zone, platform=platform,
              sent_last_24h=sent, subscribed_at=now, last_inbound_at=now)
    assert decide(f, step(), now, now, RULES) == Decision("skip", "opted_out", None)


@settings(max_examples=200, deadline=None)
@given(now=instants, inbound_hours_ago=st.one_of(st.none(), st.floats(24, 24 * 60)),
       zone=zones)
def test_closed_instagram_window_never_sends(now: datetime, inbound_hours_ago: float | None,
                                             zone: str | None) -> None:
    last = None if inbound_hours_ago is None else now - timedelta(hours=inbound_hours_ago)
    f = facts(platform="instagram", last_inbound_at=last, timezone=zone, subscribed_at=now)
    assert decide(f, step(), now, now, RULES) == Decision("wait", "messaging_window", None)


# --- opt-out keywords (waifugen_assets.subscribers.opt_out) ---------------------------


@pytest.mark.parametrize("text", [
    "STOP", "stop", " Stop. ", "STOP ALL", "Unsubscribe", "unsubscribe me please",
    "please stop messaging me", "Stop sending me these", "don't message me again",
    "Do not contact me", "opt out", "Opt-out", "I want to opt out", "no more messages",
    "leave me alone", "Remove me from this list", "Baja", "cancel", "END", "quit",
    "don\u2019t text me",
])
def test_opt_out_messages(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", [
    "I can't stop watching your videos", "don't stop!", "see you at the bus stop",
    "the end of the video was great", "cancel culture is weird", "what a quest",
    "love it, never stop", "stopwatch speedrun?", "", "Hi!",
])
def test_ordinary_messages_do_not_opt_out(text: str) -> None:
    assert not is_opt_out(text)


def test_docs_list_the_rules_in_decide_order() -> None:
    doc = (project_root() / "docs" / "sequences.md").read_text(encoding="utf-8")
    table = doc.split("## Whether a due step is sent", 1)[1].split("## A/B variants", 1)[0]
    codes = ["opted_out", "expired", "not_due", "condition", "messaging_window", "quiet_hours",
             "frequency_cap", "send `ok`"]
    positions = [table.index(code) for code in codes]
    assert positions == sorted(positions)
