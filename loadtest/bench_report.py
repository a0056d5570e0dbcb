"""Benchmark of ``rating-engine report``: N charges records (default 10 M).

    .venv/bin/python loadtest/bench_report.py [--records N] [--keep FILE]

Generates the charges file with polars (vectorised, no Python loop) into a
temporary directory: 200 tenants x 50 users, 12 destinations, 30 days, the
four call kinds, pools and disconnects in realistic shares, the same fields
in the same order as the worker's ``charges`` topic (about 530 bytes a record:
10 M records are 5.3 GB; the seconds are floats as polars prints them, e.g.
``812.6080000000001`` where the worker writes ``812.608``, a few bytes more
to parse). Then runs ``report`` once, in a fresh process,
exactly as ``rating-engine report FILE --out DIR`` would,
and prints the seconds and records per second; then, as a measure of the host's
speed at that moment (it drifts by up to ~1.8x within minutes), the time polars
alone takes to parse the first 2 M records the way ``report`` does. The figures
are appended to ``loadtest/results/report.md``. Target: 10 M records in under 20 s on the
project's machine (2 cores, 24 GiB).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "report.md"
RUN = "import sys; from rating_engine.report import main; sys.exit(main(sys.argv[1:]))"

DESTS = [
    ("44", "United Kingdom", "GB", "geographic", "A", "0.023400"),
    ("447", "United Kingdom - Mobile", "GB", "mobile", "A", "0.104000"),
    ("1", "United States", "US", "geographic", "A", "0.012000"),
    ("1800", "United States - Toll Free", "US", "tollfree", "A", "0.000000"),
    ("33", "France", "FR", "geographic", "A", "0.028000"),
    ("336", "France - Mobile", "FR", "mobile", "B", "0.118000"),
    ("49", "Germany", "DE", "geographic", "A", "0.025000"),
    ("4915", "Germany - Mobile", "DE", "mobile", "B", "0.121000"),
    ("91", "India", "IN", "geographic", "C", "0.089000"),
    ("8190", "Japan - Mobile", "JP", "mobile", "C", "0.143000"),
    ("1900", "United States - Premium", "US", "premium", "D", "1.900000"),
    ("61", "Australia", "AU", "geographic", "B", "0.034000"),
]
KINDS = ["user_outbound", "conference_dialout", "tollfree_inbound", "inbound"]
DISCONNECTS = [None, "no_rate", "not_licensed", "no_funds", "funds_exhausted", "bad_number"]


def generate(n: int, path: str | os.PathLike[str], *, seed: int = 7, tenants: int = 200) -> None:
    """Write ``n`` charges records (JSON lines) to ``path``."""
    rng = np.random.default_rng(seed)
    c = pl.col
    df = pl.DataFrame(
        {
            "ti": rng.integers(0, tenants, n),
            "ui": rng.integers(0, 50, n),
            "di": rng.integers(0, len(DESTS), n),
            "ki": rng.choice(len(KINDS), n, p=[0.7, 0.1, 0.1, 0.1]),
            "day": rng.integers(0, 30, n),
            "sec": rng.integers(0, 86400, n),
            "ms": rng.integers(0, 1000, n),
            "dur_ms": rng.integers(0, 900_000, n),
            "pf": rng.random(n),
            "disc": rng.choice(len(DISCONNECTS), n, p=[0.95, 0.01, 0.01, 0.01, 0.01, 0.01]),
        }
    )
    dests = pl.DataFrame(
        {
            "di": list(range(len(DESTS))),
            "prefix": [d[0] for d in DESTS],
            "destination": [d[1] for d in DESTS],
            "country": [d[2] for d in DESTS],
            "number_type": [d[3] for d in DESTS],
            "zone": [d[4] for d in DESTS],
            "rate_per_minute": [d[5] for d in DESTS],
        }
    ).with_columns(c("di").cast(pl.Int64))
    start = pl.datetime(2026, 11, 1, time_zone="UTC") + pl.duration(
        days=c("day"), seconds=c("sec"), milliseconds=c("ms")
    )
    in_pool = c("pool").is_not_null()
    (
        df.lazy()
        .join(dests.lazy(), on="di", how="left")
        .with_columns(
            tenant_id=pl.format("tenant{}", c("ti")),
            kind=c("ki").replace_strict(list(range(len(KINDS))), KINDS, return_dtype=pl.String),
            disconnected=c("disc").replace_strict(
                list(range(len(DISCONNECTS))), DISCONNECTS, return_dtype=pl.String
            ),
            start_dt=start,
        )
        .with_columns(
            user_id=pl.format("user{}@{}.example", c("ui"), c("tenant_id")),
            end_dt=c("start_dt") + pl.duration(milliseconds=c("dur_ms")),
            pool=pl.when(c("kind") == "user_outbound")
            .then(
                pl.when(c("country") == "US")
                .then(pl.lit("domestic:US"))
                .otherwise(pl.lit("international:US"))
            )
            .when((c("kind") == "conference_dialout") & (c("zone") == "A"))
            .then(pl.lit("conferencing"))
            .otherwise(None),
        )
        .with_columns(
            pool_ms=pl.when(in_pool & (c("pf") < 0.6))
            .then(c("dur_ms"))
            .when(in_pool & (c("pf") < 0.8))
            .then(c("dur_ms") // 2)
            .otherwise(0)
        )
        .with_columns(credit_ms=c("dur_ms") - c("pool_ms"))
        .with_columns(
            billed_seconds=pl.when(c("kind") == "inbound")
            .then(0)
            .otherwise((c("credit_ms") + 59_999) // 60_000 * 60)
        )
        .with_columns(rate_u=c("rate_per_minute").str.replace(".", "", literal=True).cast(pl.Int64))
        # charge = rate * billed / 60, rate in 1e-6 -> charge in 1e-4, half-up
        .with_columns(charge_u=(c("rate_u") * c("billed_seconds") // 60 + 50) // 100)
        .select(
            charge_id=pl.format("{}:c{}", c("tenant_id"), pl.int_range(pl.len())),
            call_id=pl.format("c{}", pl.int_range(pl.len())),
            tenant_id="tenant_id",
            user_id="user_id",
            kind="kind",
            start=c("start_dt").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            end=c("end_dt").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            status=pl.when(c("kind") == "inbound").then(pl.lit("free")).otherwise(pl.lit("rated")),
            reason=pl.lit(None, dtype=pl.String),
            prefix="prefix",
            destination="destination",
            country="country",
            number_type="number_type",
            zone="zone",
            rate_per_minute="rate_per_minute",
            connection_fee=pl.lit("0"),
            duration_seconds=c("dur_ms") / 1000,
            billed_seconds="billed_seconds",
            charge=pl.format(
                "{}.{}",
                c("charge_u") // 10_000,
                (c("charge_u") % 10_000).cast(pl.String).str.zfill(4),
            ),
            currency=pl.lit("USD"),
            pool="pool",
            pool_seconds=c("pool_ms") / 1000,
            disconnected="disconnected",
        )
        .sink_ndjson(path)
    )


FLOOR_RECORDS = 2_000_000
FLOOR = """
import os, sys
import polars as pl
from rating_engine.report.usage import NDJSON_READ_SIZE, SCHEMA
os.environ.setdefault(*NDJSON_READ_SIZE)
lf = pl.scan_ndjson(sys.argv[1], schema=SCHEMA, n_rows=int(sys.argv[2]))
for _ in lf.collect_batches(chunk_size=200_000, maintain_order=False, engine="streaming"):
    pass
"""


def parse_floor(path: Path, records: int = FLOOR_RECORDS) -> tuple[float, float]:
    """(wall s, CPU s) of polars alone parsing the first ``records`` records of ``path``
    as ``report`` does (same schema and read size, batches drained, nothing else): the
    host's speed at the moment of the run, as the report's JSON parse is most of its work
    and the host's speed drifts."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR, str(path), str(records)], check=True)
    secs = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return secs, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _cpu_pressure() -> str:
    try:
        text = Path("/proc/pressure/cpu").read_text()
    except OSError:
        return "n/a"
    return text.split("avg10=")[1].split()[0] if "avg10=" in text else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_report")
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument(
        "--keep", metavar="FILE", help="generate into FILE and keep it (reused if present)"
    )
    ap.add_argument("--no-results", action="store_true", help="do not append to results/report.md")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        data = Path(args.keep) if args.keep else Path(tmp) / "charges.jsonl"
        t0 = time.perf_counter()
        if not data.exists():
            generate(args.records, data)
        gen_s = time.perf_counter() - t0
        size = data.stat().st_size
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-c", RUN, str(data), "--out", str(out)]
        pressure_before = _cpu_pressure()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        pressure = _cpu_pressure()
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        rate = args.records / secs
        floor_n = min(FLOOR_RECORDS, args.records)
        floor_s, floor_cpu = parse_floor(data, floor_n)
        print(proc.stderr.strip())
        print(
            f"report: {args.records} records ({size / 1e9:.2f} GB) in {secs:.2f} s "
            f"= {rate:,.0f} records/s; CPU {cpu:.1f} s (user+sys, all processes); "
            f"max RSS {r1.ru_maxrss / 1e6:.2f} GB (includes the mmapped input); "
            f"CPU pressure of other work (avg10) before/after: {pressure_before}/{pressure} "
            f"(generation {gen_s:.1f} s)"
        )
        fast = ""
        if floor_n == FLOOR_RECORDS:  # references measured on this machine
            fast = " (4.2 CPU s on polars 1.44 in a fast phase; 4.7-5.1 on 2.1 at the usual speed)"
        print(
            f"host speed right after: polars alone parses the first {floor_n:,} "
            f"records in {floor_s:.2f} s, {floor_cpu:.2f} CPU s{fast}"
        )
        if not args.no_results:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            new = not RESULTS.exists()
            with RESULTS.open("a", encoding="utf-8") as f:
                if new:
                    f.write(
                        "# `rating-engine report` benchmark\n\n"
                        "Written by `loadtest/bench_report.py` (one run per line; target: "
                        "10 M records in under 20 s).\n\n"
                        "`CPU s` is user+sys of the report's processes: with 2 cores, the wall "
                        "time on a quiet machine is at best about half of it. `CPU pressure` is "
                        "/proc/pressure/cpu `some avg10` before/after the run: above 0, "
                        "other work was competing for the cores.\n\n"
                        "| when (UTC) | records | file GB | wall s | records/s | CPU s | "
                        "CPU pressure | cores | polars | NDJSON floor, 2 M records: s / CPU s |\n"
                        "|---|---|---|---|---|---|---|---|---|---|\n"
                    )
                f.write(
                    f"| {datetime.now(timezone.utc):%Y-%m-%d %H:%M} | {args.records} | "
                    f"{size / 1e9:.2f} | {secs:.2f} | {rate:,.0f} | {cpu:.1f} | "
                    f"{pressure_before}/{pressure} | {os.cpu_count()} | "
                    f"{pl.__version__} ({platform.machine()}) | {floor_s:.2f} / {floor_cpu:.2f} |\n"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
