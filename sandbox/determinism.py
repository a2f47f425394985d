"""Seeded randomness: the same seed and the same request content give the same answer.

Every random choice in the sandbox comes from `derive_rng(seed, *parts)`, a fresh
random.Random keyed by a hash of the parts, so answers depend neither on the order requests
arrive in nor on how many other requests came before.
"""

from __future__ import annotations

import hashlib
import json
import random


def canonical(value: object) -> bytes:
    """Stable bytes for JSON-like values (dict key order does not matter)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def derive_seed(seed: int, *parts: object) -> int:
    digest = hashlib.sha256(str(seed).encode())
    for part in parts:
        digest.update(b"\x1f")
        digest.update(canonical(part))
    return int.from_bytes(digest.digest()[:8], "big")


def derive_rng(seed: int, *parts: object) -> random.Random:
    return random.Random(derive_seed(seed, *parts))
