"""The code location loads: in-process, in a clean environment, and through Dagster's loader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from waifugen_assets.definitions import defs


def test_definitions_validate() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"characters", "reel_plans"} <= keys
    job = defs.resolve_job_def("daily_content")
    assert isinstance(job.partitions_def, dg.MultiPartitionsDefinition)
    assert defs.resolve_sensor_def("roster") is not None


def test_loads_with_no_environment(project_dir: Path, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "WAIFUGEN_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", "from waifugen_assets.definitions import defs; print('ok')"],
        env=env, cwd=project_dir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_production_without_settings_fails_to_load_by_name(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "WAIFUGEN_MODE": "production"}
    proc = subprocess.run(
        [sys.executable, "-c", "import waifugen_assets.definitions"],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "DATABASE_URL" in proc.stderr and "WAIFUGEN_SECRET_KEY" in proc.stderr


def test_dagster_loader_accepts_workspace(project_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "WAIFUGEN_HOME": str(tmp_path / "h")}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=project_dir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
