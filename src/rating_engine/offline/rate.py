"""`rating-engine rate`: price a CDR file in the native core (contracts.md section 3).

Read pieces of whole lines, hand each to the core (which splits its lines over threads and
gives back the output and the stderr messages in line order), write them: memory stays
bounded by the piece size, whatever the file's size.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..core import rate_text
from .files import EXIT_OK, open_deck, open_in, open_out, progress_for, whole_lines

# One call into the core (its lines split over the threads): small enough that its buffers
# are reused instead of being fresh pages every time.
CHUNK_BYTES = 1 << 20


def run(args: argparse.Namespace) -> int:
    """Rate `args.cdrs` with deck `args.rates` into `args.output`; exit code 0."""
    jobs = args.jobs if args.jobs is not None else _default_jobs()
    deck = open_deck(args.rates)
    progress = progress_for(args.cdrs, "rate")
    name = _name(args.cdrs)
    line, done = 1, 0
    with open_in(args.cdrs) as src, open_out(args.output) as dst:
        for piece in whole_lines(src, CHUNK_BYTES):
            output, messages, lines = rate_text(deck, piece, name, line, jobs)
            if messages:
                sys.stderr.write(messages.decode("utf-8", errors="replace"))
            dst.write(output)
            line += lines
            done += len(piece)
            if progress is not None:
                progress.update(done, line - 1)
        if progress is not None:
            progress.close(line - 1)
    return EXIT_OK


def _name(cdrs: str) -> str:
    return "<stdin>" if cdrs == "-" else cdrs


def _default_jobs() -> int:
    """One rating thread per available core (at most 8): RATING_ENGINE_RATE_JOBS overrides."""
    try:
        return max(1, int(os.environ["RATING_ENGINE_RATE_JOBS"]))
    except (KeyError, ValueError):
        return min(8, len(os.sched_getaffinity(0)))
