"""`rating-engine simulate`: the decision core on a virtual clock, fed an events file.

The same `Simulation` the tests drive: input lines in, each record out as a JSON line with
`"topic"` first; timers fire at their exact instants as the clock passes them.
"""

from __future__ import annotations

import argparse

from ..core import Simulation
from .files import EXIT_OK, open_deck, open_in, open_out, whole_lines

PIECE_BYTES = 4 * 1024 * 1024


def run(args: argparse.Namespace) -> int:
    """Simulate `args.events` with deck `args.rates` into `args.output`; exit code 0."""
    deck = open_deck(args.rates)
    sim = Simulation(deck)
    with open_in(args.events) as src, open_out(args.output) as dst:
        for piece in whole_lines(src, PIECE_BYTES):
            dst.write(sim.feed(piece))
        dst.write(sim.finish())
    return EXIT_OK
