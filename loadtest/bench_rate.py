"""Benchmark of `rating-engine rate` (not a test).

    .venv/bin/python loadtest/bench_rate.py [--n 5000000] [--per-call-n 300000] [--rounds 2]

1. Generates N CDRs over `rates/sample-deck.csv` into a temporary JSONL file (Python's
   `json.dumps` spacing, like `rates/sample-cdrs.jsonl`; kinds, destinations from every deck
   row, start instants across the deck's effective-date boundaries, ~10% with a `+01:00`
   offset, and `--bad-share` odd or broken lines, all still JSON so that polars alone can read
   the file: missing field, unknown kind, bad number, timestamp without zone, escapes and
   non-ASCII text, blank lines; invalid JSON is in tests/test_rate_cli.py instead).
2. Times, in separate processes and alternately (`--rounds` times, best kept, as other work on
   the machine moves the figures): `rating-engine rate` on the file (the vectorised bulk
   path), and polars alone reading and writing the same JSONL (`pl.read_ndjson` +
   `write_ndjson`), the floor for any polars-based reader/writer.
3. Times the per-call core (`cdr.rate_line` + `orjson.dumps`, as `cmd_rate` runs it for
   stdin and small files) on the first `--per-call-n` lines (best of `--rounds`), and checks
   the bulk output of those lines is byte-identical.

Prints CDRs/s for each and the ratio (best of each, and the median of the per-round ratios: the
host's speed drifts), and appends them to loadtest/results/rate.md.
Targets: bulk rate <= 1.5x the polars read+write time; per-call core >= 100k CDRs/s.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import random
import resource
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
    cols = [
        "prefix",
        "country",
        "destination",
        "zone",
        "number_type",
        "service",
        "rate_per_minute",
        "connection_fee",
        "currency",
        "first_increment",
        "next_increment",
        "effective_from",
        "effective_to",
    ]
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


def timed(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, child CPU seconds, process) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, **kw)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(
            f"bench_rate: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}"
        )
    return wall, cpu, proc


def per_call(deck_path: Path, cdrs: Path, n: int, rounds: int) -> tuple[float, float, int, bytes]:
    """Best of `rounds` runs of the per-call loop over the first `n` lines."""
    best = None
    for _ in range(max(1, rounds)):
        run = _per_call_once(deck_path, cdrs, n)
        if best is None or run[0] < best[0]:
            best = run
    return best  # type: ignore[return-value]


def _per_call_once(deck_path: Path, cdrs: Path, n: int) -> tuple[float, float, int, bytes]:
    import orjson
    from rating_engine.cdr import rate_line

    from rating_engine.deck import load_deck

    deck = load_deck(str(deck_path))
    raws = []
    with cdrs.open("rb") as f:
        for raw in f:
            if len(raws) >= n:
                break
            raws.append(raw)
    dst = io.BytesIO()
    write = dst.write
    started, cpu0 = time.perf_counter(), time.process_time()
    for raw in raws:  # the loop of cli.cmd_rate's per-call path (each line written at once)
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        record, _ = rate_line(deck, raw)
        write(orjson.dumps(record))
        write(b"\n")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    return wall, cpu, len(raws), dst.getvalue()


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
    ap.add_argument("--per-call-n", type=int, default=300_000, help="lines for the per-call core")
    ap.add_argument("--deck", default=str(ROOT / "rates" / "sample-deck.csv"))
    ap.add_argument("--bad-share", type=float, default=0.001, help="share of odd or broken lines")
    ap.add_argument("--rounds", type=int, default=2, help="alternate runs of each, best kept")
    ap.add_argument(
        "--cdrs", help="rate this CDR file instead of generating one (N is then its line count)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
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
        cdrs = tmp / "cdrs.jsonl"
        t = time.perf_counter()
        bad = generate(cdrs, args.n, deck, args.bad_share)
        print(
            f"generated {args.n:,} CDRs ({bad:,} odd or broken), {cdrs.stat().st_size / 2**20:,.0f} MiB "
            f"in {time.perf_counter() - t:.1f} s"
        )
    size = cdrs.stat().st_size

    rate_runs, polars_runs = [], []
    for _ in range(args.rounds):
        polars_runs.append(timed([PY, "-c", POLARS_ONLY, str(cdrs), str(tmp / "polars.jsonl")]))
        (tmp / "polars.jsonl").unlink()
        (tmp / "rated.jsonl").unlink(
            missing_ok=True
        )  # both write a new file (ext4 flushes a truncated one on close)
        rate_runs.append(
            timed(
                [
                    PY,
                    "-m",
                    "rating_engine.cli",
                    "rate",
                    "--rates",
                    str(deck),
                    "-o",
                    str(tmp / "rated.jsonl"),
                    str(cdrs),
                ],
                cwd=ROOT,
            )
        )
    rate_wall, rate_cpu, rate_proc = min(rate_runs, key=lambda r: r[0])
    pol_wall, pol_cpu, pol_proc = min(polars_runs, key=lambda r: r[0])
    pol_inner = min(float(r[2].stdout.decode().strip()) for r in polars_runs)
    invalid = rate_proc.stderr.count(b": invalid: ")

    pc_wall, pc_cpu, pc_n, pc_out = per_call(deck, cdrs, args.per_call_n, args.rounds)
    with (tmp / "rated.jsonl").open("rb") as f:
        head = b"".join(f.readline() for _ in range(pc_out.count(b"\n")))
    same = head == pc_out

    ratio = rate_wall / pol_wall
    # The host's speed drifts by up to ~1.7x within minutes: a round's two runs, back to back,
    # share a moment, so the median of the per-round ratios is the steadier figure.
    pairs = [r[0] / p[0] for p, r in zip(polars_runs, rate_runs)]
    median = statistics.median(pairs)
    lines = [
        f"- {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, {machine()}, polars {__import__('polars').__version__}, "
        f"Python {platform.python_version()}. Command: `.venv/bin/python loadtest/bench_rate.py --n {args.n} "
        f"--per-call-n {args.per_call_n} --rounds {args.rounds}`",
        f"  - input: {args.n:,} CDRs, {size / 2**20:,.0f} MiB, "
        + (f"{bad:,} odd or broken lines " if bad >= 0 else f"file {cdrs} ")
        + f"({invalid:,} reported invalid on stderr)",
        f"  - `rating-engine rate` (bulk path): {rate_wall:.2f} s wall, {rate_cpu:.2f} s CPU -> "
        f"{args.n / rate_wall:,.0f} CDRs/s (runs: {', '.join(f'{r[0]:.2f}' for r in rate_runs)} s)",
        f"  - polars alone, `read_ndjson` + `write_ndjson` of the same file: {pol_wall:.2f} s wall "
        f"({pol_inner:.2f} s inside the process), {pol_cpu:.2f} s CPU -> {args.n / pol_wall:,.0f} CDRs/s "
        f"(runs: {', '.join(f'{r[0]:.2f}' for r in polars_runs)} s)",
        f"  - ratio rate / polars: {ratio:.2f}x wall, {rate_cpu / pol_cpu:.2f}x CPU (best of each; target <= 1.5x); "
        f"per round (the two back to back): {', '.join(f'{x:.2f}' for x in pairs)}x, median {median:.2f}x",
        f"  - per-call core (`cdr.rate_line` + orjson) on {pc_n:,} lines, best of {args.rounds}: {pc_wall:.2f} s wall, "
        f"{pc_cpu:.2f} s CPU -> {pc_n / pc_wall:,.0f} CDRs/s wall, {pc_n / pc_cpu:,.0f} CDRs/s CPU "
        f"(target >= 100k); bulk output of those lines identical: {same}",
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
        sys.exit("bench_rate: the bulk output differs from the per-call core")


if __name__ == "__main__":
    main()
