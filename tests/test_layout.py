"""The layout's contract (docs/architecture.md): imports run one way, Dagster stays in the
definition modules, modules and sandbox functions stay small enough to read."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("waifugen_assets", "resources", "sensors", "sandbox")
# Modules that hold Dagster definitions; everything else in waifugen_assets is plain Python.
DEFINITION_FILES = {"assets.py", "checks.py", "jobs.py", "schedules.py", "definitions.py"}
DAGSTER_PACKAGES = ("waifugen_assets/pipeline", "waifugen_assets/app")
MAX_MODULE_LINES = 500
LONG_MODULES_ALLOWED = {"waifugen_assets/core/schema.py"}  # the tables, in one place
MAX_SANDBOX_FUNCTION_LINES = 150


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _copy_tree(dest: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    # resources/ must not reach up into a stage...
    ("resources/video_store.py", "import waifugen_assets.publishing.flows",
     "resources is not allowed to import waifugen_assets.publishing"),
    # ...core must not reach into resources...
    ("waifugen_assets/core/clock.py", "import resources.http",
     "waifugen_assets.core is not allowed to import resources"),
    # ...a stage must not import the app...
    ("waifugen_assets/rendering/renderer.py", "import waifugen_assets.app.cli",
     "waifugen_assets.rendering is not allowed to import waifugen_assets.app"),
    # ...and the sandbox must not check with the client it fakes.
    ("sandbox/clock.py", "import resources.telegram",
     "sandbox is not allowed to import resources"),
    ("waifugen_assets/core/redaction.py", "import dagster",
     "waifugen_assets.core is not allowed to import dagster"),
])
def test_a_forbidden_import_fails_the_check(tmp_path: Path, module: str, line: str,
                                            broken: str) -> None:
    _copy_tree(tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert broken in result.stdout, result.stdout[-3000:]


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):  # nested imports count too
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_definition_modules_import_dagster() -> None:
    offenders = []
    for path in _python_files("waifugen_assets"):
        rel = path.relative_to(ROOT).as_posix()
        if path.name in DEFINITION_FILES or rel.startswith(DAGSTER_PACKAGES):
            continue
        found = {n for n in _imports(ast.parse(path.read_text())) if n.startswith("dagster")}
        if found:
            offenders.append(f"{rel}: {sorted(found)}")
    assert not offenders, "plain modules importing Dagster:\n" + "\n".join(offenders)


def test_modules_stay_under_the_size_limit() -> None:
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _python_files("waifugen_assets")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
            and p.relative_to(ROOT).as_posix() not in LONG_MODULES_ALLOWED]
    assert not long, "\n".join(long)


def test_sandbox_functions_stay_short() -> None:
    long = []
    for path in _python_files("sandbox"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_SANDBOX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not long, "\n".join(long)
