"""What TLS + SCRAM cost the worker: the same saturation run on one broker's plaintext and
secure listeners, alternated, in one run.

    .venv/bin/python loadtest/kafka_security.py [--events 30000] [--tenants 200] \\
        [--partitions 8] [--rounds 2] [--no-passthrough]

It runs its own broker (`deploy/kafka/broker.sh start --secure --plaintext`, on
`RATING_ENGINE_KAFKA_PORT`, default 19092, and `RATING_ENGINE_KAFKA_DATA`, default
~/.cache/rating-engine/kafka-security-bench), so the shared broker is not disturbed and both
modes share one JVM, one disk and one set of topics configuration; it stops the broker if it
started it. Each round runs `kafka_load.py saturate` once per mode:

- plaintext: workers and harness on `PLAINTEXT://127.0.0.1:PORT+3` (anonymous super user);
- secure: workers as `worker` (TLS + SCRAM-SHA-512, held to their ACLs), harness as
  `operator`, on `SASL_SSL://127.0.0.1:PORT`.

Prints one JSON summary, writes `loadtest/results/kafka-security.json` (the runs without
their time series) and appends the dated figures to `loadtest/results/kafka-security.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_PORT = "19092"
DEFAULT_DATA = Path.home() / ".cache" / "rating-engine" / "kafka-security-bench"


def broker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), *args],
        cwd=REPO,
        timeout=600,
        text=True,
        capture_output=True,
    )


def summary(res: dict[str, Any]) -> dict[str, Any]:
    pt = res.get("passthrough") or {}
    return {
        "sustained_events_per_s": res.get("sustained_events_per_s"),
        "events_per_worker_cpu_s": res.get("events_per_worker_cpu_s"),
        "passthrough_events_per_s": pt.get("sustained_events_per_s"),
        "passthrough_events_per_cpu_s": pt.get("events_per_cpu_s"),
        "check_ok": res["check"]["ok"],
        "loadavg_before": [round(x, 2) for x in res["loadavg_before"]],
    }


def round_ratio(r: dict[str, Any]) -> float | None:
    """Secure over plaintext worker events/s within one round."""
    secure, plain = r["secure"]["sustained_events_per_s"], r["plaintext"]["sustained_events_per_s"]
    return secure / plain if secure and plain else None


def median(values: list[float]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def markdown(when: str, command: str, rounds: list[dict[str, Any]], worker: str) -> str:
    lines = [
        f"## {when}",
        "",
        f"`{command}`",
        "",
        f"Machine: {platform.node()} ({os.cpu_count()} cores, shared). Worker: {worker}.",
        "",
        "| round | mode | worker events/s (10-90 %) | events per worker CPU-s | aiokafka "
        "passthrough events/s | checks | load before | secure / plaintext |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for r in rounds:
        ratio = round_ratio(r)
        if ratio is not None:
            ratios.append(ratio)
        for mode in ("plaintext", "secure"):
            s = r[mode]
            shown = f"{ratio:.2f}" if mode == "secure" and ratio is not None else ""
            lines.append(
                f"| {r['round']} | {mode} | {_n(s['sustained_events_per_s'])} | "
                f"{_n(s['events_per_worker_cpu_s'])} | {_n(s['passthrough_events_per_s'])} | "
                f"{'pass' if s['check_ok'] else 'FAIL'} | {s['loadavg_before'][0]} | {shown} |"
            )
    mid = median(ratios)
    if mid is not None:
        lines += ["", f"Secure / plaintext worker events/s, median of the rounds: {mid:.2f}."]
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=30000)
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-passthrough", dest="passthrough", action="store_false")
    ap.add_argument(
        "--worker",
        default="the confluent-kafka worker (one core call per batch)",
        help="which worker was measured, for the results file",
    )
    args = ap.parse_args(argv)

    os.environ.setdefault("RATING_ENGINE_KAFKA_PORT", DEFAULT_PORT)
    os.environ.setdefault("RATING_ENGINE_KAFKA_DATA", str(DEFAULT_DATA))
    os.environ["RATING_ENGINE_KAFKA_SECURE"] = "1"
    os.environ["RATING_ENGINE_KAFKA_PLAINTEXT"] = "1"
    port = int(os.environ["RATING_ENGINE_KAFKA_PORT"])
    was_running = broker("status").returncode == 0
    started = broker("start")
    if started.returncode != 0:
        sys.stderr.write(started.stderr)
        return 1
    if "also PLAINTEXT://" not in started.stderr:
        sys.stderr.write(
            "the broker on this port runs without its local plaintext listener: stop it first\n"
        )
        return 1

    sys.path.insert(0, str(HERE))
    import kafka_load  # after the environment: it reads the port at import

    plain_env = {
        "RATING_ENGINE_BROKER": f"kafka://127.0.0.1:{port + 3}",
        "RATING_ENGINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }
    rounds: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    try:
        for i in range(1, args.rounds + 1):
            row: dict[str, Any] = {"round": i}
            for mode in ("plaintext", "secure") if i % 2 else ("secure", "plaintext"):
                if mode == "plaintext":
                    kafka_load.pin_connection(plain_env, plain_env)
                else:
                    kafka_load.pin_connection(
                        kafka_load.role_env("operator"), kafka_load.role_env("worker")
                    )
                name = f"security-{mode}-r{i}"
                saturate = [
                    "saturate",
                    "--name",
                    name,
                    "--events",
                    str(args.events),
                    "--tenants",
                    str(args.tenants),
                    "--partitions",
                    str(args.partitions),
                    "--workers",
                    "1",
                    *(["--passthrough"] if args.passthrough else []),
                ]
                run_args = kafka_load.parser().parse_args(saturate)
                run_args.argv = saturate
                res = asyncio.run(kafka_load.saturate(run_args))
                res.pop("timeline", None)
                res.get("check", {}).pop("lateness_values_s", None)
                runs[name] = res
                row[mode] = summary(res)
                print(json.dumps({name: row[mode]}), flush=True)
            rounds.append(row)
    finally:
        if not was_running:
            broker("stop")

    ratio = median([x for x in map(round_ratio, rounds) if x is not None])
    command = " ".join([".venv/bin/python loadtest/kafka_security.py", *(argv or sys.argv[1:])])
    when = f"{datetime.date.today()}"
    results = HERE / "results"
    (results / "kafka-security.json").write_text(
        json.dumps({"date": when, "command": command, "rounds": rounds, "runs": runs}, indent=1)
    )
    md = results / "kafka-security.md"
    if not md.exists():
        md.write_text(
            "# Worker throughput: TLS + SCRAM against plaintext\n\n"
            "Each run: `loadtest/kafka_security.py`, the same `kafka_load.py saturate` run on "
            "one broker's plaintext listener and on its TLS + SCRAM-SHA-512 listener "
            "(worker held to its ACLs), alternated.\n\n"
        )
    with md.open("a") as f:
        f.write(markdown(when, command, rounds, args.worker))
    print(json.dumps({"rounds": rounds, "secure_over_plaintext": ratio}, indent=1))
    ok = all(r[m]["check_ok"] for r in rounds for m in ("plaintext", "secure"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
