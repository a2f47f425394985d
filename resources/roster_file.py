"""Where the roster file (characters.yaml) is, as a resource, so tests and deployments can point
elsewhere. Parsing it is the roster stage's job (waifugen_assets/roster/model.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
from pydantic import Field

from waifugen_assets.core.config import get_settings


class RosterResource(dg.ConfigurableResource):
    path: str | None = Field(default=None, description="Roster file; default WAIFUGEN_ROSTER.")

    def file(self) -> Path:
        return Path(self.path) if self.path else get_settings().roster_path

    def fingerprint(self) -> str:
        """sha256 of the file bytes, cheap enough for every sensor tick."""
        try:
            return hashlib.sha256(self.file().read_bytes()).hexdigest()
        except OSError:
            return "missing"
