"""The one memory probe of the benchmarks: the rise of this process's peak RSS over a block.

`ru_maxrss` only moves above the high-water mark left by imports and set-up, so a psutil
thread also samples RSS every 5 ms as a cross-check (it can miss a spike between samples);
the benchmarks report both.
"""

from __future__ import annotations

import contextlib
import resource
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

MB = 1_000_000
SAMPLE_SECONDS = 0.005


@dataclass
class RssWatch:
    baseline_kib: int
    baseline_rss: int
    peak_rss: int
    after_kib: int = 0

    @property
    def maxrss_increase_mb(self) -> float:
        return (self.after_kib - self.baseline_kib) * 1024 / MB

    @property
    def sampled_increase_mb(self) -> float:
        return (self.peak_rss - self.baseline_rss) / MB

    @property
    def baseline_maxrss_mb(self) -> float:
        return self.baseline_kib * 1024 / MB

    @property
    def peak_maxrss_mb(self) -> float:
        return self.after_kib * 1024 / MB


@contextlib.contextmanager
def watch_rss() -> Iterator[RssWatch]:
    """Measure the block: read the RssWatch's properties after it ends."""
    process = psutil.Process()
    rss = process.memory_info().rss
    watch = RssWatch(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss, rss)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_SECONDS):
            watch.peak_rss = max(watch.peak_rss, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield watch
    finally:
        stop.set()
        sampler.join()
        watch.after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
