"""Plan texts: LLM answers validated, template fallback, per-platform limits, disclosure."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waifugen_assets.planning.plans import (
    AI_DISCLOSURE,
    INSTAGRAM_HASHTAGS_MAX,
    PlanRequest,
    plan_texts,
    platform_texts,
    valid_llm_texts,
)

REQ = PlanRequest(character_id="ana-sol", character_name="Ana Sol",
                  persona="Rooftop gardener and jazz pianist in Lisbon.",
                  date=dt.date(2026, 11, 25), slot=1, slot_time="12:30")


@pytest.mark.parametrize("junk", [
    None, "text", [], {}, {"title": "t", "script": "s", "caption": "c"},
    {"title": "", "script": "s", "caption": "c", "hashtags": ["#a"]},
    {"title": "t", "script": "s", "caption": "c", "hashtags": "not-a-list"},
    {"title": "t", "script": "s", "caption": "c", "hashtags": ["#", " "]},
    {"title": 5, "script": "s", "caption": "c", "hashtags": ["#a"]},
])
def test_junk_answers_are_rejected(junk: object) -> None:
    assert valid_llm_texts(junk) is None


def test_writer_failures_fall_back_to_the_template() -> None:
    def broken(req: PlanRequest) -> dict:
        raise ConnectionError("ollama is down")

    texts = plan_texts(REQ, broken)
    assert texts["source"] == "template" and "ollama is down" in texts["fallback_reason"]
    assert plan_texts(REQ, lambda req: None)["fallback_reason"] == "writer returned no valid plan"
    assert texts["disclosure"] == AI_DISCLOSURE
    assert plan_texts(REQ, None) == plan_texts(REQ, None)  # deterministic


def test_premium_template_is_marked_exclusive() -> None:
    premium = PlanRequest(**{**REQ.__dict__, "tier": "premium"})
    assert plan_texts(premium, None)["title"].startswith("Exclusive")


def _check_limits(texts: dict) -> None:
    p = platform_texts(texts)
    assert len(p["tiktok"]["title"]) <= 2200 and p["tiktok"]["is_aigc"] is True
    assert AI_DISCLOSURE in p["tiktok"]["title"]
    caption = p["instagram"]["caption"]
    assert len(caption) <= 2200 and AI_DISCLOSURE in caption
    assert len(re.findall(r"#\w+", caption)) <= INSTAGRAM_HASHTAGS_MAX
    yt = p["youtube"]
    assert 0 < len(yt["title"]) <= 100 and "<" not in yt["title"] and ">" not in yt["title"]
    assert len(yt["description"].encode()) <= 5000 and AI_DISCLOSURE in yt["description"]
    assert yt["containsSyntheticMedia"] is True


def test_youtube_description_limit_is_in_bytes() -> None:
    texts = {"title": "t", "script": "日本語のテキスト " * 800, "caption": "キャプション",
             "hashtags": ["#a"], "disclosure": AI_DISCLOSURE}
    description = platform_texts(texts)["youtube"]["description"]
    assert len(description.encode()) <= 5000 and AI_DISCLOSURE in description


def test_long_texts_are_cut_and_keep_the_disclosure() -> None:
    texts = {"title": "<b>" + "very long title " * 20 + "</b>", "script": "word " * 3000,
             "caption": "caption #tag " * 400,
             "hashtags": [f"#t{i}" for i in range(50)], "disclosure": AI_DISCLOSURE}
    _check_limits(texts)
    assert platform_texts(texts)["youtube"]["title"].endswith("…")


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({
    "title": st.text(max_size=400), "script": st.text(max_size=6000),
    "caption": st.text(max_size=3000),
    "hashtags": st.lists(st.from_regex(r"#[a-z0-9]{1,12}", fullmatch=True), max_size=60),
}))
def test_limits_always_hold(texts: dict) -> None:
    _check_limits({**texts, "disclosure": AI_DISCLOSURE})
