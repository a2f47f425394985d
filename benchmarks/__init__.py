"""Performance and reliability harnesses; results in docs/benchmarks.md."""
