"""What the offline commands share: opening files, a progress bar, pieces of whole lines,
and the one user-facing error (printed as one line, exit 2)."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from ..core import Deck, DeckError, load_deck

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
PROGRESS_MIN_BYTES = 16 * 1024 * 1024


class CliError(Exception):
    """A fatal, user-facing error: printed as one line, exit 2."""


def open_deck(path: str) -> Deck:
    try:
        return load_deck(path)
    except DeckError as exc:
        raise CliError(f"invalid deck: {exc}") from None


@contextmanager
def open_in(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise CliError(f"{path}: cannot open: {exc.strerror}") from None
    with f:
        yield f


@contextmanager
def open_out(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        f = open(path, "wb")
    except OSError as exc:
        raise CliError(f"{path}: cannot write: {exc.strerror}") from None
    with f:
        yield f


class Progress:
    """A one-line progress bar on stderr, redrawn at most twice a second."""

    def __init__(self, total_bytes: int, label: str) -> None:
        self.total, self.label = total_bytes, label
        self.started = self.last = time.monotonic()
        self.lines = 0

    def update(self, done_bytes: int, lines: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        frac = done_bytes / self.total if self.total else 1.0
        width = 30
        bar = "#" * int(frac * width)
        rate = lines / max(now - self.started, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{bar:<{width}}] {frac:6.1%} {lines:,} lines {rate:,.0f}/s"
        )
        sys.stderr.flush()

    def close(self, lines: int) -> None:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.label}: {lines:,} lines in {elapsed:.1f}s{' ' * 30}\n")


def progress_for(path: str, label: str) -> Progress | None:
    if path == "-" or sys.stdout.isatty():
        return None
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    return Progress(size, label) if size >= PROGRESS_MIN_BYTES else None


def whole_lines(src: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """The input in pieces of whole lines (the last piece may lack its newline)."""
    rest = b""
    while True:
        block = src.read(chunk_bytes)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            continue
        rest = block[cut:]
        yield block[:cut]
