"""dagster-dbt gives every dbt command its own target folder (`target/<op>-<run>-<uuid>/`,
dagster_dbt/core/resource.py `_get_unique_target_path`); left alone they pile up, one per run.
Each run removes its own when done, and folders of runs that were killed are swept once they
are a day old. `target/manifest.json` and `partial_parse.msgpack` (from `dbt parse`) stay."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

STALE_AFTER_S = 24 * 3600
PER_RUN = re.compile(r"^[A-Za-z0-9_]+-[0-9a-f]{7}-[0-9a-f]{7}$")


PARSE_STATE = "partial_parse.msgpack"


def keep_parse(run_target: Path, target_dir: Path) -> None:
    """Keep a finished run's saved parse as the project's: dagster-dbt copies
    `target/partial_parse.msgpack` into every run's folder, and one made with this
    deployment's profile (the build-time parse had none) spares the next run a full parse.
    Replaced atomically: runs finishing together each leave a whole file."""
    source = run_target / PARSE_STATE
    if not source.is_file():
        return
    tmp = target_dir / f".{PARSE_STATE}.{uuid.uuid4().hex}"
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target_dir / PARSE_STATE)
    finally:
        tmp.unlink(missing_ok=True)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sweep(target_dir: Path, now: float | None = None) -> list[Path]:
    """Remove per-run folders under `target_dir` older than a day; returns what was removed."""
    if not target_dir.is_dir():
        return []
    cutoff = (now if now is not None else time.time()) - STALE_AFTER_S
    removed = []
    for entry in target_dir.iterdir():
        if entry.is_dir() and PER_RUN.match(entry.name) and entry.stat().st_mtime < cutoff:
            remove(entry)
            removed.append(entry)
    return removed
