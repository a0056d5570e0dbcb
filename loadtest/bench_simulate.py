"""Benchmark: a month of traffic for 1,000 tenants through the decision core (`simulate`).

    .venv/bin/python loadtest/bench_simulate.py [--tenants 1000] [--calls 500000] [--rounds 3]

The reference, measured in the same run on the same lines: CPython merely parsing each line
with `orjson.loads`. Prints events/s and CPU-s of both, best of `--rounds`, and the ratio
(core time / parse-loop time), and appends the figures to loadtest/results/simulate.md.
The core runs on one thread (`Simulation` is sequential by nature: one virtual clock).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from traffic import generate  # noqa: E402

from rating_engine.core import Simulation, load_deck  # noqa: E402


def best_of(rounds: int, run: Callable[[], int]) -> tuple[float, float, int]:
    """(wall s, CPU s, result) of the fastest of `rounds` runs."""
    best: tuple[float, float, int] | None = None
    for _ in range(rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = run()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
    assert best is not None
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=500_000)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deck", default=str(HERE.parent / "rates" / "sample-deck.csv"))
    args = ap.parse_args()
    lines = list(generate(args.tenants, args.calls, args.days))
    data = b"".join(line.rstrip(b"\n") + b"\n" for line in lines)
    deck = load_deck(args.deck)

    def simulate() -> int:
        sim = Simulation(deck)
        out = sim.feed(data) + sim.finish()
        return out.count(b"\n")

    def parse_loop() -> int:
        loads, error = orjson.loads, orjson.JSONDecodeError
        for line in lines:
            try:
                loads(line)
            except error:  # the traffic's deliberately broken lines
                pass
        return len(lines)

    sim_wall, sim_cpu, records = best_of(args.rounds, simulate)
    ref_wall, ref_cpu, _ = best_of(args.rounds, parse_loop)
    n = len(lines)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    line = (
        f"{n:,} events ({args.tenants:,} tenants, {args.calls:,} calls, {args.days:g} days) "
        f"-> {records:,} records. `simulate` core: {sim_wall:.3f} s, {n / sim_wall:,.0f} events/s "
        f"(CPU {sim_cpu:.3f} s). Reference, `orjson.loads` loop over the same lines: "
        f"{ref_wall:.3f} s, {n / ref_wall:,.0f} events/s (CPU {ref_cpu:.3f} s). "
        f"Ratio core / parse loop: {sim_wall / ref_wall:.2f}x wall, {sim_cpu / ref_cpu:.2f}x CPU "
        f"(best of {args.rounds}; load average {load})"
    )
    print(line)
    out = HERE / "results" / "simulate.md"
    with out.open("a") as f:
        f.write(
            f"- {datetime.date.today()} {platform.node()} ({os.cpu_count()} cores): {line}. "
            f"Command: `.venv/bin/python loadtest/bench_simulate.py --tenants {args.tenants} "
            f"--calls {args.calls} --rounds {args.rounds}`\n"
        )


if __name__ == "__main__":
    main()
