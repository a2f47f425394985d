"""Ollama (local LLM) through the official `ollama` client, on the shared HTTP transport.

Used to write reel texts in the character's persona with JSON-schema-constrained output. The
client's requests go through resources.http (timeouts, retries, redaction); a failure or an
answer that does not fit the schema makes the caller fall back to templates.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import ollama
from pydantic import Field

from resources.http import RetryPolicy, make_transport
from waifugen_assets.config import get_settings
from waifugen_assets.planning import PLAN_SCHEMA, PlanRequest, Writer, valid_llm_texts

SYSTEM_PROMPT = (
    "You are {name}, a virtual creator (an adult; all content is for a general audience). "
    "Persona: {persona} Write in first person, upbeat, no sexual content, no links."
)
USER_PROMPT = (
    "Plan short vertical video number {slot_no} for {date} (posting at {slot_time} local). "
    "Give a title, a spoken script of 2-4 sentences, a caption and 3-6 hashtags, as JSON.{tier}"
)
PREMIUM_HINT = " It is a premium reel for subscribers: make it feel exclusive and personal."


class OllamaResource(dg.ConfigurableResource):
    host: str | None = Field(default=None, description="Base URL; default OLLAMA_HOST.")
    model: str | None = Field(default=None, description="Model; default OLLAMA_MODEL.")
    timeout_seconds: float = 60.0

    def client(self) -> ollama.Client:
        settings = get_settings()
        transport = make_transport(
            "ollama",
            timeout=self.timeout_seconds,
            # Generation has no side effects, so a POST may be repeated safely.
            retry=RetryPolicy(max_attempts=3, retry_non_idempotent=True),
        )
        return ollama.Client(host=self.host or settings.ollama_host, transport=transport,
                             timeout=self.timeout_seconds)

    def model_name(self) -> str:
        return self.model or get_settings().ollama_model

    def chat_json(self, system: str, user: str, schema: dict[str, Any],
                  seed: int = 0) -> object:
        """One chat turn whose answer must be JSON for `schema`; returns the parsed JSON."""
        resp = self.client().chat(
            model=self.model_name(),
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            format=schema,
            options={"temperature": 0.7, "seed": seed},
            stream=False,
        )
        return json.loads(resp.message.content or "")

    def chat_text(self, system: str, user: str, seed: int = 0) -> str | None:
        """One plain-text chat turn (DM personalisation); None when the answer is empty."""
        resp = self.client().chat(
            model=self.model_name(),
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            options={"temperature": 0.7, "seed": seed}, stream=False)
        return (resp.message.content or "").strip() or None

    def plan_writer(self) -> Writer:
        model = self.model_name()

        def write(req: PlanRequest) -> dict[str, Any] | None:
            answer = self.chat_json(
                SYSTEM_PROMPT.format(name=req.character_name, persona=req.persona),
                USER_PROMPT.format(slot_no=req.slot + 1, date=req.date.isoformat(),
                                   slot_time=req.slot_time,
                                   tier=PREMIUM_HINT if req.tier == "premium" else ""),
                PLAN_SCHEMA,
                seed=req.slot,
            )
            texts = valid_llm_texts(answer)
            return None if texts is None else {**texts, "source": "ollama", "model": model}

        return write
