"""Cutting large JSONL files into blocks of whole lines (for `rate` and `report`).

Kept apart from bulk.py (polars) so that the parent of the `rate` processes can plan without
loading polars before it starts them.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterator

CHUNK_BYTES = 16 * 1024 * 1024  # ~75k CDR lines of ~230 bytes
BULK_MIN_BYTES = 1024 * 1024  # below this, the per-call loop is as fast and simpler
_SCAN = 1 << 16  # bytes read at a time while looking for a line start


def blocks(src: BinaryIO, size: int) -> Iterator[bytes]:
    """`src` in blocks of about `size` bytes, each cut after a newline (the last maybe not)."""
    while True:
        block = src.read(size)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += src.readline()
        yield block


def count_lines(block: bytes) -> int:
    """Lines in a block of whole lines (a last line without its newline counts)."""
    return block.count(b"\n") + (0 if block.endswith(b"\n") else 1)


def cut(fd: int, k: int, chunk_bytes: int, size: int) -> int:
    """Where chunk `k` of a file starts: its first line start at or after k * chunk_bytes.

    Anyone holding the file finds the same cuts, so processes can share the chunks out without
    talking. Returns `size` past the end.
    """
    if k == 0:
        return 0
    pos = k * chunk_bytes - 1  # a newline here means the line start is exactly k * chunk_bytes
    while pos < size:
        block = os.pread(fd, _SCAN, pos)
        at = block.find(b"\n")
        if at >= 0:
            return min(pos + at + 1, size)
        if not block:
            break
        pos += len(block)
    return size
