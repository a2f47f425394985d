"""Where the dbt project (dbt_analytics/) is, and its manifest.

The manifest is prepared at build time (`make setup`, CI, the Docker image: `dbt parse`, which
never connects), so the code location loads without running dbt. `ensure_manifest()` is what
`make` and the CLI call: it parses again only when a project file is newer than the manifest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from waifugen_assets.core.config import ConfigError, project_root

DBT_DIR = project_root() / "dbt_analytics"
TARGET_DIR = DBT_DIR / "target"  # dbt's default target path, as dagster-dbt's DbtProject has it
MANIFEST = TARGET_DIR / "manifest.json"
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")


def dbt_executable() -> str:
    """The venv's dbt beside this interpreter (a CLI run without the venv on PATH), else PATH's."""
    here = Path(sys.executable).parent / "dbt"
    return str(here) if here.exists() else "dbt"


def _newest_source(project_dir: Path) -> float:
    newest = 0.0
    for name in PROJECT_FILES:
        path = project_dir / name
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
        elif path.is_dir():
            for f in path.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
    return newest


def manifest_is_current(project_dir: Path = DBT_DIR) -> bool:
    path = project_dir / "target" / "manifest.json"
    return path.exists() and path.stat().st_mtime >= _newest_source(project_dir)


def ensure_manifest(project_dir: Path = DBT_DIR) -> Path:
    """Parse the project (no database needed) when the manifest is missing or older than a
    project file; returns the manifest's path. A parse error is raised with dbt's message."""
    manifest = project_dir / "target" / "manifest.json"
    if manifest_is_current(project_dir):
        return manifest
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")
    proc = subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--project-dir", str(project_dir),
         "--profiles-dir", str(project_dir), "--target-path", "target"],
        env=env, cwd=project_dir, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not manifest.exists():
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        raise ConfigError("dbt parse failed for dbt_analytics/: "
                          + (detail[-1] if detail else f"exit {proc.returncode}"))
    manifest.touch()  # a parse that changed nothing still makes it current
    return manifest


def require_manifest(project_dir: Path = DBT_DIR) -> Path:
    """The manifest's path, or a clear error naming how to prepare it (never runs dbt)."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.exists():
        raise ConfigError(f"the dbt manifest {manifest} does not exist: run `make setup` "
                          "(it runs `dbt parse`, no database needed)")
    return manifest
