"""End-of-run checker for the Kafka load test: proves, from the recorded input and
everything the worker(s) published, that

- every finished call has exactly one charge (distinct content per `charge_id`; identical
  re-emissions after a crash or rebalance are the documented at-least-once and count once);
- every due disconnect arrived, with its lateness (receive wall time - `at`);
- the balances implied by the lots (add_funds, recharges) and the charges and forfeits never
  go below zero;
- every bad input line is in dead-letters;
- the distinct records equal what `simulate` gives on the same input file.

Importable (`check(...)`) and a CLI:

    .venv/bin/python loadtest/checker.py --rates rates/sample-deck.csv \
        --input var/loadtest/RUN/input.jsonl --outputs var/loadtest/RUN/outputs.jsonl [--cutoff ISO]

`outputs.jsonl` lines are `{"topic", "record", "received"}` (receive wall time, epoch s).
Exit 0 when every check passes, 1 otherwise; the summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import orjson

from rating_engine import _core
from rating_engine.core import US_PER_S, load_deck, parse_instant, simulate_lines

INSTANT_FIELD = {"charges": "end", "disconnects": "at", "notifications": "ts", "payments": "ts"}
TIMED_REASONS = frozenset({"funds_exhausted"})  # disconnects fired by a timer, not by an input


def is_probe(topic: str, record: dict) -> bool:
    return topic == "dead-letters" and '"probe"' in (record.get("original") or "")


def instant_of(topic: str, record: dict) -> int | None:
    field = INSTANT_FIELD.get(topic)
    if field is None or record.get(field) is None:
        return None
    return int(parse_instant(record[field]))


def canonical(topic: str, record: dict) -> str:
    rec = dict(record)
    rec.pop("topic", None)
    if topic == "dead-letters":
        rec.pop("line", None)  # 1-based line in simulate, partition offset on the wire
    return topic + "\t" + json.dumps(rec, sort_keys=True)


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    v = sorted(values)

    def q(p: float) -> float:
        return v[min(len(v) - 1, max(0, int(round(p * len(v) + 0.5)) - 1))]

    return {"n": len(v), "p50": round(q(0.50), 4), "p99": round(q(0.99), 4), "max": round(v[-1], 4)}


def simulate_records(rates: str, lines: list[bytes]) -> list[tuple[str, dict]]:
    deck = load_deck(rates)
    return [(topic, orjson.loads(payload)) for topic, payload in simulate_lines(deck, lines)]


def check(
    lines: list[bytes],
    got: Iterable[tuple[str, dict, float]],
    rates: str,
    *,
    cutoff_us: int | None = None,
    windows: list[tuple[float, float]] | None = None,
    expected: list[tuple[str, dict]] | None = None,
    samples: int = 5,
) -> dict[str, Any]:
    """All checks of one run. `got`: (topic, record, receive wall time s), probes included or not.

    `cutoff_us`: the worker's records after this instant are ignored for the comparison with
    `simulate` (its clock stops at the last input; a real worker's wall clock does not).
    `windows`: wall-time intervals (s) whose disconnect lateness is reported separately
    (a rebalance). Returns a JSON-able summary with `ok` and the list of failed checks.
    """
    deck = load_deck(rates)
    if expected is None:
        expected = simulate_records(rates, lines)
    got = [(t, r, w) for t, r, w in got if not is_probe(t, r)]

    def in_range(topic: str, rec: dict) -> bool:
        at = instant_of(topic, rec)
        return cutoff_us is None or at is None or at <= cutoff_us

    # ---- input facts, from the file alone
    bad_lines: list[bytes] = []
    finished_calls: set[str] = set()  # tenant:call_id with a call_end in the input
    funds: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    seen_cmds: set[tuple[str, str]] = set()
    for raw in lines:
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        _, valid, _, _ = _core.parse_input(deck, raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if not valid or not isinstance(obj, dict):
            bad_lines.append(raw)
            continue
        if obj["type"] == "call_end":
            finished_calls.add(f"{obj['tenant_id']}:{obj['call_id']}")
        elif obj["type"] == "add_funds":
            key = (obj["tenant_id"], obj["command_id"])
            if key not in seen_cmds:
                seen_cmds.add(key)
                funds[obj["tenant_id"]].append(
                    (int(parse_instant(obj["ts"])), Decimal(str(obj["amount"])))
                )

    # ---- charges: exactly one per finished call
    charge_versions: dict[str, set[str]] = defaultdict(set)
    charge_rec: dict[str, dict] = {}
    copies: Counter[str] = Counter()
    for topic, rec, _ in got:
        if topic == "charges":
            cid = rec["charge_id"]
            charge_versions[cid].add(json.dumps(rec, sort_keys=True))
            charge_rec[cid] = rec
            copies[cid] += 1
    double = sorted(cid for cid, v in charge_versions.items() if len(v) > 1)
    per_call: Counter[str] = Counter(
        f"{r['tenant_id']}:{r['call_id']}" for r in charge_rec.values()
    )
    double += sorted(k for k, n in per_call.items() if n > 1)
    expected_charges = {r["charge_id"] for t, r in expected if t == "charges" and in_range(t, r)}
    lost_charges = sorted((expected_charges | finished_calls) - set(charge_rec))

    # ---- disconnects: every due one arrived; lateness = first receive - at
    first_seen: dict[tuple[str, str], tuple[dict, float]] = {}
    for topic, rec, received in got:
        if topic == "disconnects":
            key = (rec["tenant_id"], rec["call_id"])
            if key not in first_seen or received < first_seen[key][1]:
                first_seen[key] = (rec, received)
    due = {
        (r["tenant_id"], r["call_id"]) for t, r in expected if t == "disconnects" and in_range(t, r)
    }
    lost_disconnects = sorted(f"{a}:{b}" for a, b in due - set(first_seen))
    timed, refusals, in_window = [], [], []
    for rec, received in first_seen.values():
        late = received - parse_instant(rec["at"]) / US_PER_S
        (timed if rec["reason"] in TIMED_REASONS else refusals).append(float(late))
        if rec["reason"] in TIMED_REASONS and windows:
            at_s = parse_instant(rec["at"]) / US_PER_S
            if any(a <= at_s <= b for a, b in windows):
                in_window.append(float(late))
    timed_out_window = (
        timed
        if not windows
        else [
            float(received - parse_instant(rec["at"]) / US_PER_S)
            for rec, received in first_seen.values()
            if rec["reason"] in TIMED_REASONS
            and not any(a <= parse_instant(rec["at"]) / US_PER_S <= b for a, b in windows)
        ]
    )

    # ---- balances implied by lots, recharges, forfeits and charges
    moves: dict[str, list[tuple[int, int, Decimal]]] = defaultdict(list)
    for tid, items in funds.items():
        for at, amount in items:
            moves[tid].append((at, 0, amount))
    seen_notes: set[str] = set()
    for topic, rec, _ in got:
        if topic == "notifications" and rec["notification_id"] not in seen_notes:
            seen_notes.add(rec["notification_id"])
            at = int(parse_instant(rec["ts"]))
            if rec["kind"] == "recharge_succeeded":
                moves[rec["tenant_id"]].append((at, 0, Decimal(rec["amount"])))
            elif rec["kind"] == "funds_expired":
                moves[rec["tenant_id"]].append((at, 1, -Decimal(rec["amount"])))
    for rec in charge_rec.values():
        moves[rec["tenant_id"]].append((int(parse_instant(rec["end"])), 1, -Decimal(rec["charge"])))
    negative: list[str] = []
    lowest = None
    for tid, items in moves.items():
        bal = Decimal(0)
        for _, _, delta in sorted(items, key=lambda x: (x[0], x[1])):
            bal += delta
            lowest = bal if lowest is None or bal < lowest else lowest
            if bal < 0:
                negative.append(f"{tid}: {bal}")
                break

    # ---- dead letters: every bad input line is there
    dead = Counter(r["original"] for t, r, _ in got if t == "dead-letters")
    bad_texts = Counter(raw.decode("utf-8", errors="replace") for raw in bad_lines)
    missing_dead = sorted(text for text, n in bad_texts.items() if dead[text] < n)

    # ---- same distinct records as simulate
    exp_set = {canonical(t, r) for t, r in expected}
    got_set = {canonical(t, r) for t, r, _ in got if in_range(t, r)}
    only_sim = sorted(exp_set - got_set)
    only_worker = sorted(got_set - exp_set)

    failures = []
    if double:
        failures.append("double_charged")
    if lost_charges:
        failures.append("lost_charges")
    if lost_disconnects:
        failures.append("lost_disconnects")
    if negative:
        failures.append("negative_balance")
    if missing_dead:
        failures.append("bad_input_not_dead_lettered")
    if only_sim or only_worker:
        failures.append("differs_from_simulate")
    by_topic = Counter(t for t, _, _ in got)
    return {
        "ok": not failures,
        "failures": failures,
        "input_lines": len(lines),
        "records_received": len(got),
        "records_by_topic": dict(sorted(by_topic.items())),
        "simulate_records": len(expected),
        "charges_distinct": len(charge_rec),
        "charges_reemitted_identical": sum(n - 1 for n in copies.values()),
        "finished_calls_in_input": len(finished_calls),
        "double_charged": len(double),
        "lost_charges": len(lost_charges),
        "disconnects_due": len(due),
        "disconnects_received": len(first_seen),
        "lost_disconnects": len(lost_disconnects),
        "negative_balances": len(negative),
        "lowest_balance": None if lowest is None else str(lowest),
        "bad_inputs": len(bad_lines),
        "bad_inputs_missing_from_dead_letters": len(missing_dead),
        "simulate_match": not (only_sim or only_worker),
        "only_in_simulate": len(only_sim),
        "only_in_worker": len(only_worker),
        "lateness_timer_disconnects_s": percentiles(timed),
        "lateness_outside_windows_s": percentiles(timed_out_window),
        "lateness_in_windows_s": percentiles(in_window) if windows else None,
        "lateness_refusals_s": percentiles(refusals),
        "lateness_values_s": sorted(round(x, 4) for x in timed),
        "samples": {
            "double": double[:samples],
            "lost_charges": lost_charges[:samples],
            "lost_disconnects": lost_disconnects[:samples],
            "negative": negative[:samples],
            "missing_dead": missing_dead[:samples],
            "only_in_simulate": only_sim[:samples],
            "only_in_worker": only_worker[:samples],
        },
    }


def read_outputs(path: Path) -> list[tuple[str, dict, float]]:
    out = []
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                obj = orjson.loads(line)
                out.append((obj["topic"], obj["record"], obj["received"]))
    return out


def write_outputs(path: Path, got: Iterable[tuple[str, dict, float]]) -> None:
    with path.open("wb") as f:
        for topic, rec, received in got:
            f.write(orjson.dumps({"topic": topic, "record": rec, "received": received}) + b"\n")


def read_lines(path: Path) -> list[bytes]:
    return [line.rstrip(b"\r\n") for line in path.read_bytes().splitlines()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", required=True)
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--outputs", required=True, type=Path)
    ap.add_argument("--cutoff", help="ISO instant: ignore worker records after it")
    ap.add_argument(
        "--window",
        action="append",
        default=[],
        help="A,B wall-time seconds (epoch) whose disconnect lateness is reported apart",
    )
    args = ap.parse_args(argv)
    windows = [tuple(float(x) for x in w.split(",")) for w in args.window]
    summary = check(
        read_lines(args.input),
        read_outputs(args.outputs),
        args.rates,
        cutoff_us=None if args.cutoff is None else int(parse_instant(args.cutoff)),
        windows=windows or None,
    )
    summary.pop("lateness_values_s")
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
