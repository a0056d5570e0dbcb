"""Benchmark: a month of traffic for 1,000 tenants through the decision core (`simulate`).

    .venv/bin/python loadtest/bench_simulate.py [--tenants 1000] [--calls 100000]

Prints events/s and appends the figure to loadtest/results/simulate.md. CPU seconds are
printed too: on a shared machine they, not wall time, say what the core costs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from traffic import generate  # noqa: E402

from rating_engine.deck import load_deck  # noqa: E402
from rating_engine.engine import simulate_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--deck", default=str(HERE.parent / "rates" / "sample-deck.csv"))
    args = ap.parse_args()
    lines = list(generate(args.tenants, args.calls, args.days))
    deck = load_deck(args.deck)
    started, cpu_started = time.perf_counter(), time.process_time()
    outputs = 0
    for _ in simulate_lines(deck, lines):
        outputs += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rate = len(lines) / elapsed
    line = (
        f"{len(lines):,} events ({args.tenants:,} tenants, {args.calls:,} calls, {args.days:g} days) "
        f"-> {outputs:,} records in {elapsed:.2f} s: {rate:,.0f} events/s "
        f"(CPU {cpu:.2f} s: {len(lines) / cpu:,.0f} events per CPU-second)"
    )
    print(line)
    out = HERE / "results" / "simulate.md"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        f.write(
            f"- {datetime.date.today()} {platform.node()} ({os.cpu_count()} cores): {line}. "
            f"Command: `.venv/bin/python loadtest/bench_simulate.py --tenants {args.tenants} "
            f"--calls {args.calls}`\n"
        )


if __name__ == "__main__":
    main()
