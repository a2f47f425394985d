"""The backup catalog's types: a set of archives, where they come from and go to."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waifugen_assets.core import redaction
from waifugen_assets.operations.backup_store import S3Target

SET_ID_FORMAT = "%Y%m%dT%H%M%SZ"


class BackupError(RuntimeError):
    """A backup could not be made, found, verified or restored (one line)."""


@dataclass(frozen=True)
class DagsterSource:
    """Where the Dagster instance keeps runs, event logs and schedules."""

    url: str | None = field(default=None, repr=False)  # PostgreSQL storage (has the password)
    base_dir: Path | None = None  # SQLite storage (the sandbox)

    @property
    def kind(self) -> str:
        return "postgres" if self.url else "sqlite"


@dataclass(frozen=True)
class BackupConfig:
    app_url: str = field(repr=False)  # may hold the password
    dagster: DagsterSource | None
    backup_dir: Path
    s3: S3Target | None = None
    pg_bin_dir: str | None = None
    include_globals: bool = True


@dataclass
class Archive:
    set_id: str
    database: str
    state: str
    location: str
    bytes: int | None = None
    sha256: str | None = None
    server_version: str | None = None
    alembic_revision: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    verified_at: dt.datetime | None = None
    verify_result: dict[str, Any] | None = None
    pruned_at: dt.datetime | None = None


@dataclass
class BackupSet:
    set_id: str
    archives: list[Archive]

    @property
    def ok(self) -> bool:
        """Every archive done and stored everywhere configured (a failed upload is an error
        on a done archive)."""
        return bool(self.archives) and all(a.state == "done" and not a.error
                                           for a in self.archives)

    @property
    def started_at(self) -> dt.datetime | None:
        return min((a.started_at for a in self.archives if a.started_at), default=None)

    def archive(self, database: str) -> Archive | None:
        return next((a for a in self.archives if a.database == database), None)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redaction.redact(text)[:1000]
