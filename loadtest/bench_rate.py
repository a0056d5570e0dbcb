"""Benchmark of `rating-engine rate` (not a test).

    .venv/bin/python loadtest/bench_rate.py [--n 5000000] [--per-call-n 1000000] [--rounds 3]

1. Generates N CDRs over `rates/sample-deck.csv` into a JSONL file under /tmp/rating-bench,
   once (later runs with the same N, share and deck reuse it; `--cache-dir`) (Python's
   `json.dumps` spacing, like `rates/sample-cdrs.jsonl`; kinds, destinations from every deck
   row, start instants across the deck's effective-date boundaries, ~10% with a `+01:00`
   offset, and `--bad-share` odd or broken lines, all still JSON so that polars alone can read
   the file: missing field, unknown kind, bad number, timestamp without zone, escapes and
   non-ASCII text, blank lines).
2. Times, in separate processes and alternately (`--rounds` times, best kept, as other work on
   the machine moves the figures): `rating-engine rate` on the file (all cores), and polars
   alone reading and writing the same JSONL (`pl.read_ndjson` + `write_ndjson`), with the
   peak memory (max RSS) of each process.
3. Times per-call pricing, the worker's path, on the first `--per-call-n` lines: the core's
   `rate_line` called once per line from Python, and the same lines handed to `rate_text` on
   one thread in batches of `--per-call-batch` lines (default 1,000, as a stream driver
   hands them over); checks both give the bytes `rate` wrote for those lines.

Prints CDRs/s for each and the ratio (best of each, and the median of the per-round ratios: the
host's speed drifts), and appends them to loadtest/results/rate.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable

POLARS_ONLY = """
import sys, time, polars as pl
t = time.perf_counter()
pl.read_ndjson(sys.argv[1]).write_ndjson(sys.argv[2])
print(time.perf_counter() - t)
"""


def fallback_deck(path: Path) -> None:
    """A deck like the sample one, for when rates/sample-deck.csv is not there."""
    rnd = random.Random(3)
    from rating_engine.core import COLUMNS

    cols = list(COLUMNS)
    rows = []
    for cc in [
        "1",
        "7",
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
        "212",
        "213",
        "234",
        "254",
    ]:
        rows.append(
            [
                cc,
                "XX",
                f"Country {cc}",
                "B",
                "geographic",
                "outbound",
                f"{rnd.uniform(0.005, 0.2):.4f}",
                "0",
                "USD",
                "60",
                "6",
                "",
                "",
            ]
        )
        rows.append(
            [
                cc + "9",
                "XX",
                f"Country {cc} - Mobile",
                "C",
                "mobile",
                "outbound",
                f"{rnd.uniform(0.01, 0.3):.6f}",
                "0.0100",
                "USD",
                "30",
                "6",
                "",
                "",
            ]
        )
    rows += [
        [
            "44",
            "GB",
            "United Kingdom",
            "A",
            "geographic",
            "outbound",
            "0.0095",
            "0",
            "USD",
            "60",
            "1",
            "",
            "2026-12-01",
        ],
        [
            "44",
            "GB",
            "United Kingdom",
            "A",
            "geographic",
            "outbound",
            "0.0089",
            "0",
            "USD",
            "60",
            "1",
            "2026-12-01",
            "",
        ],
        [
            "1",
            "US",
            "Toll-free from US",
            "A",
            "geographic",
            "tollfree_inbound",
            "0.0240",
            "0",
            "USD",
            "6",
            "6",
            "",
            "",
        ],
        [
            "44",
            "GB",
            "Toll-free from UK",
            "A",
            "geographic",
            "tollfree_inbound",
            "0.0480",
            "0",
            "USD",
            "60",
            "6",
            "",
            "",
        ],
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)


def generate(path: Path, n: int, deck_path: Path, bad_share: float, seed: int = 20261124) -> int:
    """Write `n` CDR lines; returns how many are deliberately odd or broken."""
    rnd = random.Random(seed)
    with deck_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    outbound = [
        r["prefix"].strip() for r in rows if (r["service"].strip() or "outbound") == "outbound"
    ]
    tollfree = [
        r["prefix"].strip() for r in rows if r["service"].strip() == "tollfree_inbound"
    ] or ["1"]
    users = [
        (t, f"{u}@{t}.example")
        for t in ("contoso", "northwind", "fabrikam", "adatum", "tailspin")
        for u in ("ann", "bob", "carol", "dave", "eve", "frank")
    ]
    kinds = (
        ["user_outbound"] * 12
        + ["conference_dialout"] * 2
        + ["tollfree_inbound"] * 2
        + ["inbound"] * 4
    )
    base = int(datetime.datetime(2026, 11, 15, tzinfo=datetime.timezone.utc).timestamp())
    span = 120 * 86_400
    days = {}

    def stamp(sec: int, ms: int, offset_h: int) -> str:
        sec += offset_h * 3600
        day, rest = divmod(sec, 86_400)
        date = days.get(day)
        if date is None:
            date = days[day] = (
                datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
            ).isoformat()
        h, rest = divmod(rest, 3600)
        m, s = divmod(rest, 60)
        frac = f".{ms:03d}" if ms else ""
        return f"{date}T{h:02d}:{m:02d}:{s:02d}{frac}" + (
            "Z" if offset_h == 0 else f"+{offset_h:02d}:00"
        )

    def digits(k: int) -> str:
        return str(rnd.getrandbits(50)).zfill(16)[:k]

    bad = 0
    batch = []
    with path.open("w") as out:
        for i in range(n):
            tenant, user = users[rnd.randrange(len(users))]
            kind = kinds[rnd.randrange(len(kinds))]
            if kind == "tollfree_inbound":
                p = tollfree[rnd.randrange(len(tollfree))]
                src, dst = "+" + p + digits(max(1, 11 - len(p))), "+1800555" + digits(4)
            else:
                p = outbound[rnd.randrange(len(outbound))]
                src, dst = "+1425555" + digits(4), "+" + p + digits(max(1, 11 - len(p)))
            start = base + rnd.randrange(span)
            dur_ms = 0 if rnd.random() < 0.01 else int(rnd.expovariate(1 / 180_000))
            offset = 1 if rnd.random() < 0.1 else 0
            end_ms = start * 1000 + dur_ms
            obj = {
                "call_id": f"c{i:09d}",
                "tenant_id": tenant,
                "user_id": user,
                "kind": kind,
                "from": src,
                "to": dst,
                "start": stamp(start, 0, offset),
                "end": stamp(end_ms // 1000, end_ms % 1000, offset),
            }
            line = json.dumps(obj)
            if rnd.random() < bad_share:
                bad += 1
                choice = rnd.randrange(6)
                if choice == 0:
                    obj["kind"] = "outbound"
                    line = json.dumps(obj)  # bad_field:kind
                elif choice == 1:
                    del obj["to"]
                    line = json.dumps(obj)  # missing_field:to
                elif choice == 2:
                    obj["to"] = obj["to"][1:]
                    line = json.dumps(obj)  # bad_number
                elif choice == 3:
                    obj["start"] = obj["start"][:19]
                    line = json.dumps(obj)  # bad_field:start (no zone)
                elif choice == 4:
                    line = ""  # blank line
                else:
                    obj["call_id"] = "c\u00e9\\" + obj["call_id"]
                    line = json.dumps(obj)  # escapes: per-call fallback
            batch.append(line)
            if len(batch) >= 100_000:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            out.write("\n".join(batch) + "\n")
    return bad


class Run:
    """One measured process: wall and CPU seconds, peak memory, its stdout and stderr."""

    def __init__(self, wall_s: float, cpu_s: float, max_rss_mib: float, out: bytes, err: bytes):
        self.wall_s, self.cpu_s, self.max_rss_mib = wall_s, cpu_s, max_rss_mib
        self.out, self.err = out, err


def timed(cmd: list[str], **kw) -> Run:
    """Run `cmd` and measure it alone (`wait4` gives this child's own CPU and max RSS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = Run(
            wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read(), err.read()
        )
    if proc.returncode != 0:
        sys.exit(
            f"bench_rate: {' '.join(cmd)} failed ({proc.returncode}): {run.err.decode()[-2000:]}"
        )
    return run


def first_lines(cdrs: Path, n: int) -> bytes:
    with cdrs.open("rb") as f:
        return b"".join(line for _, line in zip(range(n), f))


def best_of(rounds: int, run) -> tuple[float, float, bytes]:
    """(wall s, CPU s, output) of the fastest of `rounds` runs of `run()`."""
    best = None
    for _ in range(max(1, rounds)):
        started, cpu0 = time.perf_counter(), time.process_time()
        output = run()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        if best is None or wall < best[0]:
            best = (wall, cpu, output)
    return best  # type: ignore[return-value]


def per_call_lines(deck_path: Path, data: bytes, rounds: int) -> tuple[float, float, bytes]:
    """The core's `rate_line` called from Python once per line (what a driver calling per CDR
    pays), best of `rounds`."""
    from rating_engine.core import load_deck, rate_line

    deck = load_deck(str(deck_path))
    raws = [raw.rstrip(b"\r\n") for raw in data.splitlines()]

    def run() -> bytes:
        out: list[bytes] = []
        append = out.append
        for raw in raws:
            if raw.strip():
                append(rate_line(deck, raw)[0])
        return b"\n".join(out) + b"\n"

    return best_of(rounds, run)


def per_call_batch(
    deck_path: Path, data: bytes, rounds: int, batch_lines: int
) -> tuple[float, float, bytes]:
    """The same lines priced through the batch interface on one thread, `batch_lines` lines a
    `rate_text` call, as a driver pricing a stream hands them over (the worker's batches are
    of this order). One call for the whole sample would measure fresh output pages instead:
    hundreds of MiB that the kernel zeroes on first touch."""
    from rating_engine.core import load_deck, rate_text

    deck = load_deck(str(deck_path))
    rows = data.splitlines(keepends=True)
    batches = [b"".join(rows[i : i + batch_lines]) for i in range(0, len(rows), batch_lines)]

    def run() -> bytes:
        return b"".join(bytes(rate_text(deck, b, "bench", 1, 1)[0]) for b in batches)

    return best_of(rounds, run)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.node()}, {os.cpu_count()} cores ({model or platform.machine()}), load average {load}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5_000_000, help="CDR lines (default 5,000,000)")
    ap.add_argument("--per-call-n", type=int, default=1_000_000, help="lines for per-call pricing")
    ap.add_argument(
        "--per-call-batch", type=int, default=1000, help="lines a `rate_text` call (per-call)"
    )
    ap.add_argument("--deck", default=str(ROOT / "rates" / "sample-deck.csv"))
    ap.add_argument("--bad-share", type=float, default=0.001, help="share of odd or broken lines")
    ap.add_argument("--rounds", type=int, default=3, help="alternate runs of each, best kept")
    ap.add_argument(
        "--cdrs", help="rate this CDR file instead of generating one (N is then its line count)"
    )
    ap.add_argument(
        "--cache-dir",
        default=str(Path(tempfile.gettempdir()) / "rating-bench"),
        help="where the generated CDR file is kept for later runs",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (outputs)")
    ap.add_argument(
        "--no-write", action="store_true", help="do not append to loadtest/results/rate.md"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-rate-"))
    deck = Path(args.deck)
    if not deck.exists():
        deck = tmp / "deck.csv"
        fallback_deck(deck)
        print(f"{args.deck} not found: using a generated deck {deck}")
    if args.cdrs:
        cdrs = Path(args.cdrs)
        with cdrs.open("rb") as f:
            args.n = sum(1 for _ in f)
        bad = -1
    else:
        # generated once and reused (same N, share and deck give the same bytes)
        cache = Path(args.cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        cdrs = cache / f"cdrs-{args.n}-{args.bad_share:g}-{deck.stem}.jsonl"
        count = cdrs.with_suffix(".bad")
        if cdrs.exists() and count.exists():
            bad = int(count.read_text())
            print(f"reusing {cdrs} ({args.n:,} CDRs, {bad:,} odd or broken)")
        else:
            t = time.perf_counter()
            partial = cdrs.with_suffix(".partial")
            bad = generate(partial, args.n, deck, args.bad_share)
            partial.rename(cdrs)
            count.write_text(f"{bad}\n")
            print(
                f"generated {args.n:,} CDRs ({bad:,} odd or broken) into {cdrs}, "
                f"{cdrs.stat().st_size / 2**20:,.0f} MiB in {time.perf_counter() - t:.1f} s"
            )
    size = cdrs.stat().st_size

    rate_runs: list[Run] = []
    polars_runs: list[Run] = []
    for _ in range(args.rounds):
        polars_runs.append(timed([PY, "-c", POLARS_ONLY, str(cdrs), str(tmp / "polars.jsonl")]))
        (tmp / "polars.jsonl").unlink()
        (tmp / "rated.jsonl").unlink(missing_ok=True)  # both write a new file
        rate_cmd = [PY, "-m", "rating_engine.cli", "rate", "--rates", str(deck)]
        rate_cmd += ["-o", str(tmp / "rated.jsonl"), str(cdrs)]
        rate_runs.append(timed(rate_cmd, cwd=ROOT))
    rate = min(rate_runs, key=lambda r: r.wall_s)
    pol = min(polars_runs, key=lambda r: r.wall_s)
    pol_inner = min(float(r.out.decode().strip()) for r in polars_runs)
    invalid = rate.err.count(b": invalid: ")

    sample = first_lines(cdrs, args.per_call_n)
    pc_n = sample.count(b"\n")
    pl_wall, pl_cpu, pl_out = per_call_lines(deck, sample, args.rounds)
    pb_wall, pb_cpu, pb_out = per_call_batch(deck, sample, args.rounds, args.per_call_batch)
    with (tmp / "rated.jsonl").open("rb") as f:
        head = b"".join(f.readline() for _ in range(pb_out.count(b"\n")))
    same = head == pb_out == pl_out

    ratio = rate.wall_s / pol.wall_s
    # The host's speed drifts within minutes: a round's two runs, back to back, share a
    # moment, so the median of the per-round ratios is the steadier figure.
    pairs = [r.wall_s / p.wall_s for p, r in zip(polars_runs, rate_runs)]
    median = statistics.median(pairs)
    polars_version = __import__("polars").__version__
    lines = [
        f"- {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, {machine()}, polars {polars_version}, "
        f"Python {platform.python_version()}, native core. Command: `.venv/bin/python "
        f"loadtest/bench_rate.py --n {args.n} --per-call-n {args.per_call_n} "
        f"--per-call-batch {args.per_call_batch} --rounds {args.rounds}`",
        f"  - input: {args.n:,} CDRs, {size / 2**20:,.0f} MiB, "
        + (f"{bad:,} odd or broken lines " if bad >= 0 else f"file {cdrs} ")
        + f"({invalid:,} reported invalid on stderr)",
        f"  - `rating-engine rate` (native core, all cores): {rate.wall_s:.2f} s wall, {rate.cpu_s:.2f} s CPU, "
        f"peak {rate.max_rss_mib:,.0f} MiB -> {args.n / rate.wall_s:,.0f} CDRs/s "
        f"(runs: {', '.join(f'{r.wall_s:.2f}' for r in rate_runs)} s)",
        f"  - polars alone, `read_ndjson` + `write_ndjson` of the same file: {pol.wall_s:.2f} s wall "
        f"({pol_inner:.2f} s inside the process), {pol.cpu_s:.2f} s CPU, peak {pol.max_rss_mib:,.0f} MiB "
        f"-> {args.n / pol.wall_s:,.0f} CDRs/s (runs: {', '.join(f'{r.wall_s:.2f}' for r in polars_runs)} s)",
        f"  - ratio rate / polars: {ratio:.2f}x wall, {rate.cpu_s / pol.cpu_s:.2f}x CPU, "
        f"{rate.max_rss_mib / pol.max_rss_mib:.2f}x peak memory (best of each); per round (back to back): "
        f"{', '.join(f'{x:.2f}' for x in pairs)}x, median {median:.2f}x",
        f"  - per-call pricing on {pc_n:,} lines, best of {args.rounds}: `rate_line` once per line from "
        f"Python {pl_wall:.2f} s -> {pc_n / pl_wall:,.0f} CDRs/s; `rate_text` on one thread, "
        f"{args.per_call_batch:,} lines a call, "
        f"{pb_wall:.2f} s -> {pc_n / pb_wall:,.0f} CDRs/s; both identical to `rate`'s output: {same}",
    ]
    print("\n".join(lines))
    if not args.no_write:
        out = HERE / "results" / "rate.md"
        out.parent.mkdir(exist_ok=True)
        if not out.exists():
            out.write_text("# `rating-engine rate` benchmark (loadtest/bench_rate.py)\n\n")
        with out.open("a") as f:
            f.write("\n".join(lines) + "\n")
    if args.keep:
        print(f"kept {tmp}")
    else:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    if not same:
        sys.exit("bench_rate: per-call pricing differs from `rate`'s output")


if __name__ == "__main__":
    main()
