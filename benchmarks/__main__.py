"""`make bench` / `python -m benchmarks [NAME ...]`: run the harnesses, each rewriting its own
section of docs/benchmarks.md. Benchmarks are not tests: they measure against a baseline in
the same run (raw ffmpeg, curl) and record the numbers with the machine and date."""

from __future__ import annotations

import importlib
import sys

HARNESSES = ("storage_memory", "branding", "upload", "dm_due", "dm_send", "webhook_ingest")


def main(argv: list[str]) -> int:
    names = argv or list(HARNESSES)
    unknown = sorted(set(names) - set(HARNESSES))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(HARNESSES)}")
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        status = module.main([]) or status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
