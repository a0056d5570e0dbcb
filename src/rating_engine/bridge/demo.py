"""The SIP demo's calls (deploy/demo-sip.sh): a worker, the bridge, sipp, a tenant with 0.05 USD.

    python -m rating_engine.bridge.demo --prefix P --sip HOST:PORT --evapi HOST:PORT
        --ctl unix:PATH --gateway-port N --state-dir DIR

The script starts the broker and the proxy; this starts the worker and the bridge on topic
prefix P and the gateway (a sipp UAS on 127.0.0.1:N), funds the tenant `demo.example`
(0.05 USD, a licence for `ann`), places four calls through the proxy, and prints for each
its answer, its due instant (the disconnect's `at`), when each end got its BYE, and what it
was charged. Everything it starts it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson

from ..core import format_instant, parse_instant
from ..stream.kafkaio import collect, produce_lines, wait_ready
from .sipcalls import Call, Uac, Uas

TENANT = "demo.example"
CALLS = [  # (seconds after the first, call, how long the caller would talk, what it shows)
    (0.0, Call("2348031234567", "ann", TENANT, "+14255550100"), 60, "Nigeria, 0.18/min"),
    (2.0, Call("2348031234568", "ann", TENANT, "+14255550100"), 60, "Nigeria, shares the balance"),
    (3.0, Call("12125550100", "ann", TENANT, "+14255550100"), 4, "US, hangs up after 4 s"),
    (4.0, Call("12125550101", "bob", TENANT, "+14255550101"), 60, "US, bob has no licence"),
]


def _t(us: int | None) -> str:
    return format_instant(us)[11:23] if us is not None else "-"


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--prefix", "--sip", "--evapi", "--ctl", "--state-dir", "--rates"):
        ap.add_argument(flag, required=flag != "--rates")
    ap.add_argument("--gateway-port", type=int, required=True)
    ap.add_argument("--broker", default="kafka://127.0.0.1:9092")
    ap.add_argument("--worker-metrics-port", type=int, default=9108)
    ap.add_argument("--bridge-metrics-port", type=int, default=9109)
    args = ap.parse_args(argv)
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    rates = args.rates or str(Path(__file__).resolve().parents[3] / "rates" / "test-deck.csv")
    cli = [sys.executable, "-m", "rating_engine.cli"]
    conn = ["--broker", args.broker, "--topic-prefix", args.prefix]
    procs: list[subprocess.Popen[bytes]] = []
    uas = Uas(state / "sipp", args.gateway_port)
    try:
        procs.append(
            _start(
                [*cli, "worker", "--rates", rates, *conn, "--state-dir", str(state / "worker"),
                 "--metrics-port", str(args.worker_metrics_port)],
                state / "worker.log",
            )
        )  # fmt: skip
        print(f"demo-sip: worker starting (log {state}/worker.log)", file=sys.stderr)
        asyncio.run(wait_ready(args.broker, args.prefix, timeout_s=180))
        procs.append(
            _start(
                [*cli, "bridge", "kamailio", "--evapi", args.evapi, "--ctl", args.ctl,
                 "--switch-id", "demo-proxy", *conn,
                 "--metrics-port", str(args.bridge_metrics_port)],
                state / "bridge.log",
            )
        )  # fmt: skip
        url = f"http://127.0.0.1:{args.bridge_metrics_port}/metrics"
        deadline = time.monotonic() + 60
        while "rating_engine_bridge_ready 1.0" not in _read(url):
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                raise RuntimeError(f"the bridge did not get ready (log {state}/bridge.log)")
            time.sleep(0.2)
        print(f"demo-sip: bridge ready (log {state}/bridge.log, metrics {url})", file=sys.stderr)
        uas.start()
        ts = format_instant(time.time_ns() // 1000)
        cmds = [
            {"type": "add_funds", "tenant_id": TENANT, "command_id": "demo-funds", "ts": ts,
             "amount": "0.05", "currency": "USD"},
            {"type": "assign_licence", "tenant_id": TENANT, "command_id": "demo-licence",
             "ts": ts, "user_id": "ann"},
        ]  # fmt: skip
        asyncio.run(produce_lines(args.broker, args.prefix, [orjson.dumps(c) for c in cmds]))
        print(f"demo-sip: {TENANT} holds 0.05 USD; placing {len(CALLS)} calls", file=sys.stderr)
        time.sleep(1.0)
        uacs = [
            Uac(state / "sipp", f"call{n}", args.sip, [call], hold_s=hold)
            for n, (_, call, hold, _) in enumerate(CALLS, 1)
        ]
        t0 = time.monotonic()
        for (offset, _, _, _), uac in zip(CALLS, uacs):
            time.sleep(max(0.0, t0 + offset - time.monotonic()))
            uac.start()
        waiters = [threading.Thread(target=u.wait, args=(120,)) for u in uacs]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join()
        time.sleep(1.0)
        got = asyncio.run(collect(args.broker, args.prefix, idle_s=1.0, max_s=20))
    finally:
        uas.stop()
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    cuts = {r["call_id"]: r for t, r, _ in got if t == "disconnects"}
    charges = {r["call_id"]: r for t, r, _ in got if t == "charges"}
    gateway = uas.byes()
    print()
    print(f"{'call':<22} {'what':<28} {'answered':<13} {'due (at)':<13} {'BYE caller':<13} "
          f"{'BYE gateway':<13} {'late':>8}  {'charge':>7}  why")  # fmt: skip
    for (_, _, _, what), uac in zip(CALLS, uacs):
        (cid,) = uac.call_ids()
        cut, charge = cuts.get(cid), charges.get(cid)
        at = int(parse_instant(cut["at"])) if cut else None
        caller = uac.byes().get(cid) or uac.hangups().get(cid)
        bye = gateway.get(cid)
        late = f"{(max(caller or 0, bye or 0) - at) / 1000:+.1f}ms" if at and caller and bye else ""
        why = cut["reason"] if cut else "caller hung up"
        print(
            f"{cid:<22} {what:<28} {_t(uac.answers().get(cid)):<13} {_t(at):<13} "
            f"{_t(caller):<13} {_t(bye):<13} {late:>8}  {charge['charge'] if charge else '-':>7}"
            f"  {why}"
        )
    print("\ndue: the disconnect's `at`, the instant nothing could pay the call any more; late: "
          "the later BYE minus it.")  # fmt: skip
    return 0


def _read(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
