"""The roster file (characters.yaml) as a resource, so tests and deployments can point elsewhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
from pydantic import Field

from waifugen_assets.config import get_settings
from waifugen_assets.roster import Roster, load_roster


class RosterResource(dg.ConfigurableResource):
    path: str | None = Field(default=None, description="Roster file; default WAIFUGEN_ROSTER.")

    def file(self) -> Path:
        return Path(self.path) if self.path else get_settings().roster_path

    def load(self) -> Roster:
        return load_roster(self.file())

    def fingerprint(self) -> str:
        """sha256 of the file bytes, cheap enough for every sensor tick."""
        try:
            return hashlib.sha256(self.file().read_bytes()).hexdigest()
        except OSError:
            return "missing"
