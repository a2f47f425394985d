"""Ollama (local LLM) through the official `ollama` client, on the shared HTTP transport.

A generic chat: one JSON-schema-constrained turn (`chat_json`, used to plan reels) or a plain
text turn (`chat_text`, DM personalisation). The client's requests go through resources.http
(timeouts, retries, redaction); what to ask and what to do with a failure or an answer that
does not fit is the caller's (waifugen_assets/planning/plans.py falls back to templates).
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import ollama
from pydantic import Field

from resources.http import RetryPolicy, make_transport
from waifugen_assets.core.config import get_settings


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
