"""Side by side on real SIP: calls cut by the engine (worker + bridge) versus by Kamailio's cnxcc.

    .venv/bin/python loadtest/bench_sip.py [--calls 1200] [--rate 20] [--limit 200]
        [--budget-s 10] [--modes engine,cnxcc]

The same sipp call load runs twice through the project's Kamailio config (deploy/kamailio),
once per mode, each with a fresh proxy and a fresh sipp UAS as the gateway:

- `engine`: every call is on its own tenant holding exactly `budget` seconds of credit
  (`budget × 0.0001` USD, the test deck's US rate with 1 s increments, a licence for its user);
  the worker disconnects it at answer + budget, the bridge ends the dialog.
- `cnxcc`: the proxy loads cnxcc (with a private redis-server) and gives each call
  `cnxcc_set_max_time(<Call-ID>, budget)` from its `X-Max-Time` header; cnxcc's check loop
  (`credit_check_period` 1 s, its minimum) ends it.

The callers would talk `budget + 10` s, so every call is cut. The due instant of each call is
the proxy's own answer instant (`dialog:start`, read over evapi by this script) + budget; the
lateness is the later of the two BYEs (caller and gateway, from sipp's `-trace_msg` stamps)
minus the due instant. p50, p99 and max per mode, and any call not cut, are printed and a
line per mode is appended to loadtest/results/sip.md. Needs the broker
(deploy/kafka/broker.sh start) and Debian's kamailio, cnxcc, redis-server and sipp
(deploy/kamailio/kamailio.sh install). Not a test: it takes about 2 × (calls / rate + 25) s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import orjson

from rating_engine.bridge.events import Netstrings
from rating_engine.bridge.sipcalls import Call, Uac, Uas
from rating_engine.core import format_instant
from rating_engine.stream.kafkaio import produce_lines, wait_ready

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "loadtest" / "results" / "sip.md"
KAMAILIO_SH = REPO / "deploy" / "kamailio" / "kamailio.sh"
BROKER = os.environ.get("RATING_ENGINE_BROKER", "kafka://127.0.0.1:9092")
DECK = REPO / "rates" / "test-deck.csv"
US = "12125550100"  # the test deck: 0.006000/min, 1/1 increments = 0.0001 a second
PER_SECOND_MICROS = 100  # 0.0001 USD


def free_port(below: int = 65536) -> int:
    """A free port; cnxcc keeps redis' port in 16 signed bits, so it needs one below 32768."""
    for port in range(20000, below) if below < 65536 else [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def pressure() -> str:
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return line.split("avg10=")[1].split()[0] + " %"
    except (OSError, IndexError):
        return "n/a"


class AnswerLog(threading.Thread):
    """A second evapi client of the proxy: the proxy's answer instant of every call."""

    def __init__(self, evapi: str) -> None:
        super().__init__(daemon=True)
        host, port = evapi.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.answers_us: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        frames = Netstrings()
        self.sock.settimeout(0.5)
        while not self.stop.is_set():
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            if not data:
                return
            for raw in frames.feed(data):
                ev = orjson.loads(raw)
                if ev.get("event") == "call_start":
                    whole, _, frac = ev["ts"].partition(".")
                    us = int(whole) * 1_000_000 + int((frac + "000000")[:6])
                    self.answers_us.setdefault(ev["call_id"], us)


def kamailio(env: dict[str, str], *args: str) -> None:
    subprocess.run(["bash", str(KAMAILIO_SH), *args], env=env, check=True, timeout=900)


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest rank."""
    if not sorted_values:
        return 0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


class Engine:
    """The worker and the bridge for the `engine` mode, on their own topic prefix."""

    def __init__(self, work: Path, evapi: str, ctl: str) -> None:
        self.work, self.prefix = work, f"bench-sip-{int(time.time())}-"
        self.evapi, self.ctl = evapi, ctl
        self.bridge_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        subprocess.run(
            ["bash", str(REPO / "deploy/kafka/broker.sh"), "start", "--topic-prefix", self.prefix],
            check=True,
            timeout=600,
        )
        cli = [sys.executable, "-m", "rating_engine.cli"]
        self.procs.append(
            subprocess.Popen(
                [*cli, "worker", "--rates", str(DECK), "--broker", BROKER,
                 "--topic-prefix", self.prefix, "--metrics-port", str(free_port()),
                 "--state-dir", str(self.work / "worker")],
                stdout=open(self.work / "worker.log", "ab"), stderr=subprocess.STDOUT, cwd=REPO,
            )
        )  # fmt: skip
        asyncio.run(wait_ready(BROKER, self.prefix, timeout_s=180))
        self.procs.append(
            subprocess.Popen(
                [*cli, "bridge", "kamailio", "--evapi", self.evapi, "--ctl", self.ctl,
                 "--switch-id", "bench", "--broker", BROKER, "--topic-prefix", self.prefix,
                 "--metrics-port", str(self.bridge_port)],
                stdout=open(self.work / "bridge.log", "ab"), stderr=subprocess.STDOUT, cwd=REPO,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{self.bridge_port}/metrics"
                if "rating_engine_bridge_ready 1.0" in urllib.request.urlopen(url).read().decode():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"bridge not ready (see {self.work}/bridge.log)")

    def fund(self, calls: list[Call], budget_s: int) -> None:
        ts = format_instant(time.time_ns() // 1000)
        amount = f"{budget_s * PER_SECOND_MICROS / 1_000_000:.4f}"
        lines = []
        for c in calls:
            for cmd in (
                {"type": "add_funds", "tenant_id": c.tenant, "command_id": "f", "ts": ts,
                 "amount": amount, "currency": "USD"},
                {"type": "assign_licence", "tenant_id": c.tenant, "command_id": "l", "ts": ts,
                 "user_id": c.user},
            ):  # fmt: skip
                lines.append(orjson.dumps(cmd))
        asyncio.run(produce_lines(BROKER, self.prefix, lines))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


def run_mode(mode: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    sip, evapi = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ctl = work / "kamailio" / "ctl.sock"
    env = {
        **os.environ,
        "RATING_ENGINE_KAMAILIO_DIR": str(work / "kamailio"),
        "RATING_ENGINE_KAMAILIO_SIP": sip,
        "RATING_ENGINE_KAMAILIO_EVAPI": evapi,
        "RATING_ENGINE_KAMAILIO_CTL": str(ctl),
        "RATING_ENGINE_KAMAILIO_REDIS_PORT": str(free_port(below=32768)),
    }
    uas = Uas(work, free_port())
    uas.start()
    engine = None
    try:
        kamailio(
            env, "start", "--gateway", f"127.0.0.1:{uas.port}", *(["--cnxcc"] * (mode == "cnxcc"))
        )
        answers = AnswerLog(evapi)
        answers.start()
        tag = f"{mode}{int(time.time())}"
        calls = [
            Call(US, f"u{n}", f"b{n}.{tag}.example", "+14255550100", budget_s=args.budget_s)
            for n in range(args.calls)
        ]
        if mode == "engine":
            engine = Engine(work, evapi, f"unix:{ctl}")
            engine.start()
            engine.fund(calls, args.budget_s)
            time.sleep(2.0)
        before = (os.getloadavg()[0], pressure())
        uac = Uac(work, mode, sip, calls, hold_s=args.budget_s + 10, rate=args.rate,
                  limit=args.limit)  # fmt: skip
        uac.start()
        uac.wait(args.calls / args.rate + args.budget_s + 120)
        after = (os.getloadavg()[0], pressure())
        status = subprocess.run(["bash", str(KAMAILIO_SH), "status"], env=env,
                                capture_output=True)  # fmt: skip
        crashed = status.returncode != 0
        time.sleep(1.0)
        answers.stop.set()
        ids = uac.call_ids()
        caller, gateway, hangups = uac.byes(), uas.byes(), uac.hangups()
    finally:
        if engine is not None:
            engine.stop()
        kamailio(env, "stop")
        uas.stop()
    late: list[int] = []
    why: dict[str, int] = {}
    for cid in ids:
        answered = answers.answers_us.get(cid)
        a, b = caller.get(cid), gateway.get(cid)
        problem = (
            "not answered" if answered is None
            else "caller hung up" if cid in hangups
            else "no BYE at the caller" if a is None
            else "no BYE at the gateway" if b is None
            else None
        )  # fmt: skip
        if problem is not None:
            why[problem] = why.get(problem, 0) + 1
            continue
        late.append(max(a, b) - (answered + args.budget_s * 1_000_000))
    late.sort()
    uncut = sum(why.values())
    if crashed:
        why["the proxy crashed"] = 0  # its log: <work>/<mode>/kamailio/kamailio.log
    return {
        "mode": mode,
        "calls": len(ids),
        "cut": len(late),
        "uncut": uncut,
        "why": ", ".join(f"{n} {w}" if n else w for w, n in sorted(why.items())) or "-",
        "p50_ms": percentile(late, 0.50) / 1000,
        "p99_ms": percentile(late, 0.99) / 1000,
        "max_ms": (late[-1] if late else 0) / 1000,
        "min_ms": (late[0] if late else 0) / 1000,
        "load": f"{before[0]:.1f}/{after[0]:.1f}",
        "pressure": f"{before[1]}/{after[1]}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1200)
    ap.add_argument("--rate", type=float, default=20.0, help="new calls a second")
    ap.add_argument("--limit", type=int, default=200, help="calls at once at most")
    ap.add_argument("--budget-s", type=int, default=10, help="seconds each call may last")
    ap.add_argument("--modes", default="engine,cnxcc")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rating-bench-sip"))
    ap.add_argument("--no-record", action="store_true", help="do not append to sip.md")
    args = ap.parse_args(argv)
    command = "loadtest/bench_sip.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    rows = []
    for mode in args.modes.split(","):
        print(f"bench_sip: {mode}: {args.calls} calls, {args.rate}/s, at most {args.limit} at "
              f"once, {args.budget_s} s each", file=sys.stderr)  # fmt: skip
        r = run_mode(mode, args, args.work / mode)
        rows.append(r)
        print(
            f"{mode:>7}: lateness of the BYE after the budget's end: p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms (min {r['min_ms']:.1f} ms); "
            f"{r['cut']} of {r['calls']} calls cut, {r['uncut']} not ({r['why']}); load {r['load']}, "
            f"CPU pressure {r['pressure']}"
        )
    if not args.no_record:
        with RESULTS.open("a") as out:
            for r in rows:
                out.write(
                    f"| {stamp} | {r['mode']} | {r['calls']} @ {args.rate:g}/s, ≤ {args.limit} "
                    f"at once, {args.budget_s} s | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                    f"{r['max_ms']:.1f} | {r['min_ms']:.1f} | {r['uncut']} ({r['why']}) | {r['load']} | {r['pressure']} | "
                    f"`{command.strip()}` |\n"
                )
    return 0 if all(r["uncut"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
