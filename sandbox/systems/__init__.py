"""The registry of sandbox systems: mount name -> factory(SystemContext) -> System.

Adding a system: write `sandbox/systems/<name>.py` with `create(ctx) -> System` and add one
line here. It is then served at `/<name>`, journaled, and a valid target for faults.
"""

from __future__ import annotations

from sandbox.system import SystemFactory
from sandbox.systems import a2e, fanvue, instagram, media, ollama, runpod, telegram, tiktok, youtube

SYSTEMS: dict[str, SystemFactory] = {
    "instagram": instagram.create,
    "youtube": youtube.create,
    "tiktok": tiktok.create,
    "ollama": ollama.create,
    "a2e": a2e.create,
    "runpod": runpod.create,
    "telegram": telegram.create,
    "media": media.create,
    "fanvue": fanvue.create,
}
