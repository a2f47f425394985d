"""Shared by the harnesses: what machine a number was measured on, and writing one's own
section of docs/benchmarks.md without touching the others."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nResults of the harnesses in `benchmarks/`; each section is "
          "rewritten by its harness.\n")


def machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "load_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "os": platform.platform(terse=True)}


def write_section(section: str, heading_prefix: str, docs: Path = DOCS) -> None:
    """Replace the section whose heading starts with `heading_prefix` (or append it)."""
    text = docs.read_text(encoding="utf-8") if docs.exists() else HEADER
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(heading_prefix)), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        rest = "\n".join(lines[end:])
        new = "\n".join(lines[:start]) + "\n" + section + ("\n" + rest if rest else "")
    docs.parent.mkdir(parents=True, exist_ok=True)
    tmp = docs.with_name(f".{docs.name}.{os.getpid()}.tmp")
    tmp.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
    tmp.replace(docs)
