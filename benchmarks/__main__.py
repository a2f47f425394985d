"""`make bench` / `python -m benchmarks [NAME ...]`: run the harnesses, each rewriting its own
section of docs/benchmarks.md. Benchmarks are not tests: they measure against a baseline in
the same run (raw ffmpeg, curl) and record the numbers with the machine and date."""

from __future__ import annotations

import importlib
import sys

HARNESSES = ("storage_memory", "branding", "upload", "dm_due", "dm_send", "webhook_ingest",
             "day_at_scale", "sensor_ticks", "engagement_readback", "dbt_build",
             "metrics_scrape")


def main(argv: list[str]) -> int:
    """`NAME ...` runs those harnesses; options after the names go to them (`day_at_scale
    --characters 100`)."""
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:split] or list(HARNESSES), argv[split:]
    unknown = sorted(set(names) - set(HARNESSES))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(HARNESSES)}")
        return 2
    if options and len(names) != 1:
        print("options go to one harness: name it alone (python -m benchmarks NAME --opt ...)")
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        status = module.main(options) or status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
