"""Request bodies streamed from files: upload chunks without holding them in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

READ_BLOCK = 1024 * 1024


def file_range(path: Path, start: int, length: int, block: int = READ_BLOCK) -> Iterator[bytes]:
    """`length` bytes of `path` from byte `start`, `block` at a time (constant memory).

    A new iterator re-reads from the file, so it doubles as a BODY_FACTORY for retries."""
    with Path(path).open("rb") as handle:
        handle.seek(start)
        left = length
        while left > 0:
            piece = handle.read(min(block, left))
            if not piece:
                raise OSError(f"{path} is shorter than expected (ended at "
                              f"{start + length - left} of {start + length} bytes)")
            left -= len(piece)
            yield piece
