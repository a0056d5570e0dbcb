"""Kafka load test: traffic generator, worker runner, passthrough baseline, report.

Everything runs against the project's broker (`deploy/kafka/broker.sh`, 127.0.0.1:9092 unless
`RATING_ENGINE_KAFKA_PORT` says otherwise), each run on its own topic prefix, bounded by
timeouts; every process started is stopped. On a secure broker the workers connect as the
`worker` role and the generator, monitor and collector as `operator`, each with the
settings `broker.sh env ROLE` names (`use_roles`); `kafka_security.py` runs the same
saturation on the plaintext and the TLS + SCRAM listener of one broker.

    # real time: Poisson calls at --rate call events/s for --duration s, 1..4 workers,
    # optional rebalance (a worker added at 1/3 of the run, one SIGKILLed at 2/3)
    .venv/bin/python loadtest/kafka_load.py live --rate 1000 --duration 60 --tenants 200 \
        --partitions 8 --workers 1 [--rebalance]
    # saturation: provision, then burst --events call events into `calls` as fast as the
    # producer goes; time until the workers have consumed all; then the passthrough baseline
    # on the same topic
    .venv/bin/python loadtest/kafka_load.py saturate --events 60000 --tenants 200 \
        --partitions 8 --workers 1 [--passthrough]
    # loadtest/results/kafka.md and PNGs from the loadtest/results/kafka-*.json of the runs
    .venv/bin/python loadtest/kafka_load.py report

Each run writes `var/loadtest/<run>/input.jsonl` (the input exactly as sent, in send order),
`outputs.jsonl` (every output record with its receive wall time: in `live` runs only
disconnects are read as they come, the rest after the run, to leave the cores to the
worker) and the worker logs, then
`loadtest/results/kafka-<run>.json` with the checker's summary and the time series.

Times: the worker's core is driven by event `ts`, its timers by the wall clock. In `live`
runs every event is stamped with the wall instant it is due to be sent (schedule starts a few
seconds ahead, sends are paced to it). Call durations are exponential with mean
180 s / --time-scale, pools are minutes and funds cents, so pools run dry and credits run out
within the run. In `saturate` runs the schedule is stamped one day ahead, so no wall-clock
timer fires during the run and the result stays comparable with `simulate` whatever the lag:
timers are fired inline as the events advance each tenant's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from checker import check, write_outputs  # noqa: E402

from rating_engine.core import DISCONNECTS, OUTPUT_TOPICS, US_PER_S, format_instant  # noqa: E402
from rating_engine.stream import connection  # noqa: E402
from rating_engine.stream.kafkaio import collect, route  # noqa: E402
from rating_engine.stream.worker import produce_waiting  # noqa: E402

BROKER = f"kafka://127.0.0.1:{os.environ.get('RATING_ENGINE_KAFKA_PORT', '9092')}"
# The connection variables (RATING_ENGINE_BROKER, RATING_ENGINE_KAFKA_*) of the harness
# (generator, monitor, collector, passthrough) and of the workers; see `use_roles`.
HARNESS_ENV: dict[str, str] = {"RATING_ENGINE_BROKER": BROKER}
WORKER_ENV: dict[str, str] = {"RATING_ENGINE_BROKER": BROKER}
PINNED = False  # a driver chose both identities itself (`pin_connection`)
DECK = REPO / "rates" / "sample-deck.csv"
RESULTS = HERE / "results"
RUNS = REPO / "var" / "loadtest"
APP_ID = "rating-engine"

# Destinations priced by rates/sample-deck.csv: US (6/6 s), UK, DE, FR, BR, IN, US premium, toll-free.
DOMESTIC = ["+12065550100", "+13125550100", "+14155550123"]
FOREIGN = [
    "+442071234567",
    "+447700900123",
    "+4930123456",
    "+33155550100",
    "+919812345678",
    "+5511912345678",
]


def now_us() -> int:
    return time.time_ns() // 1000


# --------------------------------------------------------------------------- generator


@dataclass
class Schedule:
    items: list[tuple[int, bytes]]  # (send wall instant us, raw line), in send order
    setup: int  # how many leading items are provisioning commands
    t_first_call_us: int
    t_end_us: int  # the fence: every tenant's clock is moved here by a last command
    fence_at: int  # index of the first fence command in `items`
    meta: dict[str, Any] = field(default_factory=dict)


def generate(
    *,
    tenants: int,
    rate: float,
    duration: float,
    t0_us: int,
    seed: int = 7,
    time_scale: float = 60.0,
    mean_call_s: float = 180.0,
    dup_share: float = 0.01,
    bad_share: float = 0.005,
    poor_share: float = 0.3,
    lead_s: float = 3.0,
    max_events: int | None = None,
) -> Schedule:
    """Tenants with pools, credits, licences and auto-recharge, then Poisson calls.

    `rate`: call events per second (a call is a start and, if it ends within the run, an end).
    `poor_share` of tenants have cents of credit and no pool: their calls run the money out
    and are disconnected (`funds_exhausted`) or refused (`no_funds`). Some calls are by users
    without a licence, to bad numbers or to premium numbers (refused at start). `dup_share` of
    call events are sent twice, `bad_share` of lines are malformed (not JSON, or a field missing).
    """
    rng = random.Random(seed)
    items: list[tuple[int, bytes]] = []
    poor = set()

    def add(at: int, obj: dict | bytes) -> None:
        items.append((at, obj if isinstance(obj, bytes) else orjson.dumps(obj)))

    for i in range(tenants):
        tid = f"lt{i:04d}"
        at = t0_us + i
        ts = format_instant(at)
        is_poor = rng.random() < poor_share
        if is_poor:
            poor.add(tid)
            amount = rng.choice(["0.02", "0.05", "0.10"])
        else:
            amount = rng.choice(["5", "20", "100"])
            add(
                at,
                {
                    "type": "set_pool",
                    "tenant_id": tid,
                    "command_id": f"{tid}-pd",
                    "ts": ts,
                    "plan": "domestic",
                    "country": "US",
                    "minutes": rng.choice([1, 3, 10, 60]),
                },
            )
            add(
                at,
                {
                    "type": "set_pool",
                    "tenant_id": tid,
                    "command_id": f"{tid}-pi",
                    "ts": ts,
                    "plan": "international",
                    "country": "US",
                    "minutes": rng.choice([0, 1, 5]),
                },
            )
            add(
                at,
                {
                    "type": "set_pool",
                    "tenant_id": tid,
                    "command_id": f"{tid}-pc",
                    "ts": ts,
                    "plan": "conferencing",
                    "country": None,
                    "minutes": rng.choice([0, 2]),
                },
            )
        add(
            at,
            {
                "type": "add_funds",
                "tenant_id": tid,
                "command_id": f"{tid}-f",
                "ts": ts,
                "amount": amount,
                "currency": "USD",
            },
        )
        for u in range(4):  # user u4 never has a licence
            add(
                at,
                {
                    "type": "assign_licence",
                    "tenant_id": tid,
                    "command_id": f"{tid}-l{u}",
                    "ts": ts,
                    "user_id": f"u{u}@{tid}",
                },
            )
        add(
            at,
            {
                "type": "set_auto_recharge",
                "tenant_id": tid,
                "command_id": f"{tid}-ar",
                "ts": ts,
                "enabled": rng.random() < 0.5,
                "trigger_amount": "1",
                "recharge_amount": "25",
            },
        )
    setup = len(items)
    mean_s = mean_call_s / time_scale
    t_begin = t0_us + int(lead_s * US_PER_S)
    t_stop = t_begin + int(duration * US_PER_S)
    calls: list[tuple[int, int, bytes]] = []  # (at, seq, raw) for the call phase
    seq = 0

    def push(at: int, obj: dict | bytes) -> None:
        nonlocal seq
        seq += 1
        calls.append((at, seq, obj if isinstance(obj, bytes) else orjson.dumps(obj)))

    lam = rate / 2.0  # calls per second: each brings a start and (usually) an end
    t = float(t_begin)
    c = 0
    n_bad = n_dup = 0
    while True:
        t += rng.expovariate(lam) * US_PER_S
        start_us = int(t)
        if start_us >= t_stop or (max_events is not None and len(calls) >= max_events):
            break
        c += 1
        tid = f"lt{rng.randrange(tenants):04d}"
        kind = rng.choices(
            ["user_outbound", "conference_dialout", "tollfree_inbound", "inbound"], [82, 8, 6, 4]
        )[0]
        roll = rng.random()
        if kind == "tollfree_inbound":
            frm, to = rng.choice(["+14255550100", "+447700900123", "+4930123456"]), "+18005550100"
        elif roll < 0.01:
            frm, to = "+14255550100", "12345"  # bad number: refused at start
        elif roll < 0.02:
            frm, to = "+14255550100", "+19005550100"  # premium: fee + first minute
        elif roll < 0.70:
            frm, to = "+14255550100", rng.choice(DOMESTIC)
        else:
            frm, to = "+14255550100", rng.choice(FOREIGN)
        cid = f"k{c}"
        start = {
            "type": "call_start",
            "call_id": cid,
            "tenant_id": tid,
            "user_id": f"u{rng.randrange(5)}@{tid}",
            "kind": kind,
            "from": frm,
            "to": to,
            "usage_location": "US",
            "switch_id": f"sw{rng.randrange(4)}",
            "ts": format_instant(start_us),
        }
        push(start_us, start)
        if rng.random() < dup_share:
            push(start_us, start)
            n_dup += 1
        end_us = start_us + max(1, int(rng.expovariate(1 / mean_s) * US_PER_S))
        if end_us < t_stop:
            end = {
                "type": "call_end",
                "call_id": cid,
                "tenant_id": tid,
                "ts": format_instant(end_us),
            }
            push(end_us, end)
            if rng.random() < dup_share:
                push(end_us, end)
                n_dup += 1
        if rng.random() < bad_share:
            n_bad += 1
            if rng.random() < 0.5:
                push(
                    start_us, b'{"type": "call_start", "tenant_id": "' + tid.encode() + b'", trunc'
                )
            else:
                push(
                    start_us, {"type": "call_end", "tenant_id": tid, "ts": format_instant(start_us)}
                )
    calls.sort()
    items.extend((at, raw) for at, _, raw in calls)
    fence_at = len(items)
    fence = (max(at for at, _, _ in calls) if max_events is not None and calls else t_stop) + 1
    for i in range(tenants):  # move every tenant's clock to the end, as simulate's clock is
        tid = f"lt{i:04d}"
        items.append(
            (
                fence,
                orjson.dumps(
                    {
                        "type": "assign_licence",
                        "tenant_id": tid,
                        "command_id": f"{tid}-fence",
                        "ts": format_instant(fence),
                        "user_id": f"fence@{tid}",
                    }
                ),
            )
        )
    return Schedule(
        items,
        setup,
        t_begin,
        fence,
        fence_at,
        {"calls": c, "bad": n_bad, "duplicates": n_dup, "poor_tenants": len(poor)},
    )


# ----------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def role_env(role: str) -> dict[str, str]:
    """The connection variables of `role` on the running broker (`broker.sh env ROLE`)."""
    found = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), "env", role],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    if found.returncode != 0:
        raise RuntimeError(f"broker.sh env {role}: {found.stderr.strip()}")
    values: dict[str, str] = {}
    for line in Path(found.stdout.strip()).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, raw = line.partition("=")
            values[key] = "".join(shlex.split(raw))
    return values


def use_roles(harness: str = "operator", worker: str = "worker") -> None:
    """Take the harness's and the workers' identities from the running broker's env files
    (once `broker_topics` has started it), unless a driver pinned them."""
    if not PINNED:
        pin_connection(role_env(harness), role_env(worker), pinned=False)


def pin_connection(
    harness_env: dict[str, str], worker_env: dict[str, str], pinned: bool = True
) -> None:
    """Connect the harness and the workers with these variables from now on."""
    global PINNED
    HARNESS_ENV.clear()
    HARNESS_ENV.update(harness_env)
    WORKER_ENV.clear()
    WORKER_ENV.update(worker_env)
    PINNED = pinned


def harness() -> connection.KafkaSettings:
    return connection.from_env(HARNESS_ENV)


def broker_topics(prefix: str, partitions: int, attempts: int = 3) -> None:
    """`broker.sh start` for the run's topics (starts the broker too if it is down; never stops it).

    Retried: on this shared machine `start` once saw the running broker's pid file as foreign.
    """
    for attempt in range(attempts):
        done = subprocess.run(
            [
                "bash",
                str(REPO / "deploy" / "kafka" / "broker.sh"),
                "start",
                "--topic-prefix",
                prefix,
                "--partitions",
                str(partitions),
            ],
            cwd=REPO,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
        if done.returncode == 0:
            return
        time.sleep(3)
    raise RuntimeError(f"broker.sh start --topic-prefix {prefix} failed {attempts} times")


# the worker's histograms kept from its last scrape: commit time, and lateness at commit
HISTOGRAMS = ("rating_commit_seconds_bucket", "rating_disconnect_lateness_seconds_bucket")


class Worker:
    env: dict[str, str] = {}  # extra environment of every worker (--worker-env)

    def __init__(self, name: str, prefix: str, partitions: int, run_dir: Path, deck: Path = DECK):
        self.name, self.prefix, self.partitions, self.deck = name, prefix, partitions, deck
        self.dir = run_dir / name
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.last: dict[str, float] = {}
        self.histograms: dict[str, dict[str, float]] = {}  # the worker's own, last scraped
        self.started_at = self.stopped_at = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "worker.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rating_engine.cli",
                "worker",
                "--rates",
                str(self.deck),
                "--topic-prefix",
                self.prefix,
                "--partitions",
                str(self.partitions),
                "--metrics-port",
                str(self.port),
                "--state-dir",
                str(self.dir / "state"),
                "--app-id",
                APP_ID,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **WORKER_ENV, **self.env},  # the broker connection by env
        )
        self.started_at = time.time()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.stopped_at = time.time()

    def stop(self, timeout: float = 60) -> int | None:
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            return -9
        finally:
            self.stopped_at = time.time()

    def scrape(self) -> dict[str, float] | None:
        """Sums of the counters we plot; None when the worker does not answer."""
        if not self.alive():
            return None
        try:
            text = (
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2)
                .read()
                .decode()
            )
        except OSError:
            return None
        out = {"calls": 0.0, "accounts": 0.0, "ticks": 0.0, "out": 0.0}
        for line in text.splitlines():
            m = re.match(
                r'^rating_events_in_total\{topic="([a-z]+)",type="[a-z_]+"\} ([0-9.e+]+)$', line
            )
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
            elif line.startswith("rating_records_out_total{"):
                out["out"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith(HISTOGRAMS):  # cumulative buckets: le -> count
                name, rest = line.split('_bucket{le="', 1)
                le, count = rest.split('"} ')
                self.histograms.setdefault(name, {})[le] = float(count)
        out["cpu"] = self.cpu_s()
        self.last = out
        return out

    def cpu_s(self) -> float:
        """CPU seconds (user + system) this worker process has used so far."""
        try:
            fields = (
                (Path("/proc") / str(self.proc.pid) / "stat").read_text().rsplit(")", 1)[1].split()
            )  # type: ignore[union-attr]
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError):
            return self.last.get("cpu", 0.0)


# ------------------------------------------------------------------------ monitoring


async def group_lag(admin: Any, consumer: Any, group: str, tps: list[Any]) -> int | None:
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets(tps)
    except Exception:
        return None
    lag = 0
    for tp in tps:
        c = committed.get(tp)
        lag += ends[tp] - (c.offset if c is not None and c.offset >= 0 else 0)
    return lag


async def group_members(admin: Any, group: str) -> int:
    try:
        resp = await admin.describe_consumer_groups([group])
        for r in resp:
            for g in r.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                if g[2] == "Stable":
                    return len(g[5])
                return 0
    except Exception:
        return 0
    return 0


class Monitor:
    """Every `every` s: each worker's counters (kept after it dies) and the group's input lag."""

    def __init__(self, prefix: str, partitions: int, workers: list[Worker], every: float = 0.5):
        self.prefix, self.partitions, self.workers, self.every = prefix, partitions, workers, every
        self.samples: list[dict[str, Any]] = []
        self.stop = asyncio.Event()

    def totals(self) -> dict[str, float]:
        tot = {"calls": 0.0, "accounts": 0.0, "ticks": 0.0, "out": 0.0, "cpu": 0.0}
        for w in self.workers:
            for k in tot:
                tot[k] += w.last.get(k, 0.0)
        return tot

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**harness().aiokafka())
        consumer = AIOKafkaConsumer(**harness().aiokafka())
        await admin.start()
        await consumer.start()
        tps = [
            TopicPartition(self.prefix + t, p)
            for t in ("calls", "accounts")
            for p in range(self.partitions)
        ]
        try:
            while not self.stop.is_set():
                await asyncio.gather(
                    *(asyncio.to_thread(w.scrape) for w in self.workers if w.alive())
                )
                lag = await group_lag(admin, consumer, self.prefix + APP_ID, tps)
                tot = self.totals()
                self.samples.append(
                    {
                        "t": time.time(),
                        "events": tot["calls"] + tot["accounts"],
                        "ticks": tot["ticks"],
                        "out": tot["out"],
                        "lag": lag,
                        "cpu": tot["cpu"],
                        "workers": sum(1 for w in self.workers if w.alive()),
                    }
                )
                try:
                    await asyncio.wait_for(self.stop.wait(), self.every)
                except asyncio.TimeoutError:
                    pass
        finally:
            await consumer.stop()
            await admin.close()


async def wait_all_partitions(
    prefix: str, partitions: int, members: int, timeout_s: float = 240
) -> float:
    """A probe on every partition of `calls` is dead-lettered, and the group is stable with
    `members` members: every partition is owned and processing. Returns the seconds waited."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    started = time.monotonic()
    producer = AIOKafkaProducer(**harness().aiokafka())
    consumer = AIOKafkaConsumer(
        prefix + "dead-letters",
        **harness().aiokafka(),
        auto_offset_reset="latest",
        enable_auto_commit=False,
        group_id=None,
    )
    admin = AIOKafkaAdminClient(**harness().aiokafka())
    await producer.start()
    await consumer.start()
    await admin.start()
    try:
        while time.monotonic() - started < timeout_s:
            token = uuid.uuid4().hex
            pending = {p: orjson.dumps({"probe": f"{token}-{p}"}) for p in range(partitions)}
            for p, probe in pending.items():
                await producer.send_and_wait(prefix + "calls", probe, partition=p)
            round_end = time.monotonic() + 8
            while pending and time.monotonic() < round_end:
                batch = await consumer.getmany(timeout_ms=300)
                for msgs in batch.values():
                    for m in msgs:
                        for p in [
                            p for p, probe in pending.items() if f"{token}-{p}".encode() in m.value
                        ]:
                            del pending[p]
            if not pending:
                if await group_members(admin, prefix + APP_ID) == members:
                    return time.monotonic() - started
                await asyncio.sleep(1.0)  # every partition answers but the group is still forming
        raise TimeoutError(f"{members} worker(s) on {prefix!r} not ready after {timeout_s}s")
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


# -------------------------------------------------------------------------- sending


async def send_schedule(
    items: list[tuple[int, bytes]], prefix: str, paced: bool
) -> dict[str, float]:
    """Send each line to `calls`/`accounts` keyed by tenant; paced: not before its instant.

    On a thread of its own, through confluent-kafka: the sender shares the machine with the
    worker and the broker, and with the disconnect reader on this process's event loop, whose
    receive instants are the lateness measured. An aiokafka `send` per line cost the cores
    enough that the schedule fell up to seconds behind at 10,000 lines/s, and the reader's
    instants with it."""
    return await asyncio.to_thread(_send_blocking, items, prefix, paced)


def _send_blocking(items: list[tuple[int, bytes]], prefix: str, paced: bool) -> dict[str, float]:
    from confluent_kafka import Producer

    failed: list[str] = []

    def on_error(err: Any, msg: Any) -> None:
        failed.append(str(err))

    producer = Producer(
        {
            **harness().librdkafka(),
            "linger.ms": 5,
            "acks": 1,
            "partitioner": "murmur2_random",  # the partition aiokafka and Java clients pick
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
            "on_delivery": on_error,
        }
    )
    routed = [(due, prefix + route(raw)[0], route(raw)[1], raw) for due, raw in items]
    first = time.time()
    max_behind = 0.0
    i, n = 0, len(routed)
    while i < n:
        if paced:
            now = now_us()
            due = routed[i][0]
            if due > now:
                time.sleep(min(0.05, (due - now) / US_PER_S))
                continue
            max_behind = max(max_behind, (now - due) / US_PER_S)
            j = i
            while j < n and routed[j][0] <= now:
                j += 1
        else:
            j = min(n, i + 2000)
        for _, topic, key, raw in routed[i:j]:
            produce_waiting(producer, topic, raw, key)
        producer.poll(0)
        i = j
    left = producer.flush(120.0)
    if left or failed:
        raise RuntimeError(f"sending: {left} lines undelivered, errors {failed[:3]}")
    return {
        "first_send": first,
        "last_send": time.time(),
        "max_send_behind_s": round(max_behind, 4),
    }


def crossing(samples: list[dict[str, Any]], key: str, value: float) -> float | None:
    prev = None
    for s in samples:
        if s[key] >= value:
            if prev is None or s[key] == prev[key]:
                return s["t"]
            return prev["t"] + (value - prev[key]) / (s[key] - prev[key]) * (s["t"] - prev["t"])
        prev = s
    return None


def write_input(run_dir: Path, items: list[tuple[int, bytes]]) -> Path:
    path = run_dir / "input.jsonl"
    with path.open("wb") as f:
        for _, raw in items:
            f.write(raw + b"\n")
    return path


def save_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"kafka-{name}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def base_result(args: argparse.Namespace, mode: str, prefix: str) -> dict[str, Any]:
    return {
        "mode": mode,
        "name": args.name,
        "prefix": prefix,
        "date": str(datetime.date.today()),
        "host": f"{platform.node()} ({os.cpu_count()} cores)",
        "loadavg_before": os.getloadavg(),
        "command": " ".join(
            [".venv/bin/python loadtest/kafka_load.py", *getattr(args, "argv", sys.argv[1:])]
        ),
        "args": vars(args),
    }


# ----------------------------------------------------------------------- live runs


async def live(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"lt{uuid.uuid4().hex[:6]}-{args.name}-"
    run_dir = Path(args.run_dir) if getattr(args, "run_dir", None) else RUNS / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    result = base_result(args, "live", prefix)
    broker_topics(prefix, args.partitions)
    use_roles()
    workers = [Worker(f"w{i}", prefix, args.partitions, run_dir) for i in range(args.workers)]
    events: list[dict[str, Any]] = []
    try:
        for w in workers:
            w.start()
        result["ready_s"] = round(
            await wait_all_partitions(prefix, args.partitions, len(workers)), 1
        )
        sched = generate(
            tenants=args.tenants,
            rate=args.rate,
            duration=args.duration,
            t0_us=now_us() + 2 * US_PER_S,
            seed=args.seed,
            time_scale=args.time_scale,
            lead_s=args.lead,
            poor_share=args.poor_share,
        )
        write_input(run_dir, sched.items)
        result["schedule"] = {
            **sched.meta,
            "lines": len(sched.items),
            "setup": sched.setup,
            "t_first_call": sched.t_first_call_us / US_PER_S,
            "t_end": sched.t_end_us / US_PER_S,
            "t_end_iso": format_instant(sched.t_end_us),
        }
        mon = Monitor(prefix, args.partitions, workers)
        mon_task = asyncio.create_task(mon.run())
        stop_collect = asyncio.Event()
        # Only disconnects are read while the run lasts (lateness is theirs); the other
        # outputs are read after it, so the harness takes less of the cores the worker needs.
        collector = asyncio.create_task(
            collect(
                harness(),
                prefix,
                idle_s=args.idle,
                max_s=args.duration + 600,
                stop=stop_collect,
                topics=[DISCONNECTS],
            )
        )

        async def rebalance() -> None:
            span = args.duration
            await asyncio.sleep(max(0.0, sched.t_first_call_us / US_PER_S + span / 3 - time.time()))
            extra = Worker(f"w{len(workers)}", prefix, args.partitions, run_dir)
            workers.append(extra)
            extra.start()
            events.append({"what": "worker added", "t": time.time(), "worker": extra.name})
            await asyncio.sleep(
                max(0.0, sched.t_first_call_us / US_PER_S + 2 * span / 3 - time.time())
            )
            victim = workers[0]
            victim.kill()
            events.append({"what": "worker SIGKILLed", "t": time.time(), "worker": victim.name})

        reb = asyncio.create_task(rebalance()) if args.rebalance else None
        result["send"] = await send_schedule(sched.items[: sched.fence_at], prefix, paced=True)
        if reb is not None:
            await reb

        async def drained() -> None:  # the group has consumed everything (lag 0, as committed)
            deadline = time.time() + args.drain_timeout
            seen_at = time.time()
            while time.time() < deadline:
                s = mon.samples[-1] if mon.samples else None
                if s is not None and s["t"] > seen_at + 1.5 and s["lag"] == 0:
                    return
                await asyncio.sleep(0.5)

        await drained()
        # the fences (every tenant's clock to the end) only now: between the two input topics
        # the worker goes by arrival, so a fence must not overtake a call still in the backlog
        await send_schedule(sched.items[sched.fence_at :], prefix, paced=False)
        await drained()
        result["drained_at"] = time.time()
        stop_collect.set()
        got = await collector
        rest = [t for t in OUTPUT_TOPICS if t != DISCONNECTS]
        got += await collect(harness(), prefix, idle_s=3.0, max_s=600.0, topics=rest)
        mon.stop.set()
        await mon_task
    finally:
        result["exit_codes"] = {w.name: w.stop() for w in workers}
    got = [(t, r, w) for t, r, w in got]
    write_outputs(run_dir / "outputs.jsonl", got)
    windows = [(e["t"], e["t"] + args.window) for e in events] or None
    result["rebalance_events"] = events
    result["worker_histograms"] = {w.name: w.histograms for w in workers}
    result["windows"] = windows
    result["check"] = check(
        [raw for _, raw in sched.items], got, str(DECK), cutoff_us=sched.t_end_us, windows=windows
    )
    result["timeline"] = mon.samples
    t_a, t_b = sched.t_first_call_us / US_PER_S + 2, sched.t_end_us / US_PER_S - 1
    inside = [s for s in mon.samples if t_a <= s["t"] <= t_b]
    if len(inside) >= 2:
        result["offered_events_per_s"] = round(
            sum(1 for due, _ in sched.items if t_a * US_PER_S <= due <= t_b * US_PER_S)
            / (t_b - t_a),
            1,
        )
        result["processed_events_per_s"] = round(
            (inside[-1]["events"] - inside[0]["events"]) / (inside[-1]["t"] - inside[0]["t"]), 1
        )
        lags = [s["lag"] for s in inside if s["lag"] is not None]
        result["lag_max"] = max(lags) if lags else None
    return result


# ---------------------------------------------------------------- saturation runs


async def saturate(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"lt{uuid.uuid4().hex[:6]}-{args.name}-"
    run_dir = RUNS / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    result = base_result(args, "saturate", prefix)
    broker_topics(prefix, args.partitions)
    use_roles()
    # A day ahead: no wall-clock timer fires during the run (see module docstring).
    sched = generate(
        tenants=args.tenants,
        rate=args.virtual_rate,
        duration=1e9,
        t0_us=now_us() + 86400 * US_PER_S,
        seed=args.seed,
        time_scale=args.time_scale,
        lead_s=args.lead,
        max_events=args.events,
        poor_share=args.poor_share,
    )
    write_input(run_dir, sched.items)
    setup, calls = sched.items[: sched.setup], sched.items[sched.setup : sched.fence_at]
    fences = sched.items[sched.fence_at :]
    result["schedule"] = {**sched.meta, "lines": len(sched.items), "setup": sched.setup}
    workers = [Worker(f"w{i}", prefix, args.partitions, run_dir) for i in range(args.workers)]
    try:
        for w in workers:
            w.start()
        result["ready_s"] = round(
            await wait_all_partitions(prefix, args.partitions, len(workers)), 1
        )
        mon = Monitor(prefix, args.partitions, workers, every=0.25)
        mon_task = asyncio.create_task(mon.run())
        await send_schedule(setup, prefix, paced=False)
        deadline = time.time() + 120
        while mon.totals()["accounts"] < len(setup) and time.time() < deadline:
            await asyncio.sleep(0.25)
        base = mon.totals()["calls"] + mon.totals()["accounts"]
        result["send"] = await send_schedule(calls, prefix, paced=False)
        target = base + len(calls)
        deadline = time.time() + args.drain_timeout
        while time.time() < deadline:
            tot = mon.totals()
            if tot["calls"] + tot["accounts"] >= target:
                break
            await asyncio.sleep(0.25)
        result["done_at"] = time.time()
        # the fences only once the calls are consumed: between topics the worker goes by arrival
        await send_schedule(fences, prefix, paced=False)
        deadline = time.time() + 120
        while mon.totals()["accounts"] < len(setup) + len(fences) and time.time() < deadline:
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)
        mon.stop.set()
        await mon_task
    finally:
        result["exit_codes"] = {w.name: w.stop() for w in workers}
    samples = mon.samples
    n = len(calls)
    t0 = result["send"]["first_send"]
    t10, t90 = (
        crossing(samples, "events", base + 0.1 * n),
        crossing(samples, "events", base + 0.9 * n),
    )
    t100 = crossing(samples, "events", base + n)
    result["events"] = n
    result["sustained_events_per_s"] = (
        round(0.8 * n / (t90 - t10), 1) if t10 and t90 and t90 > t10 else None
    )
    result["overall_events_per_s"] = round(n / (t100 - t0), 1) if t100 else None
    result["producer_events_per_s"] = round(n / (result["send"]["last_send"] - t0), 1)
    if t10 and t90 and t90 > t10:  # CPU the workers used between the 10 % and 90 % crossings
        cpu = [(x["t"], x["cpu"]) for x in samples]
        c10 = next(c for t, c in cpu if t >= t10)
        c90 = next(c for t, c in cpu if t >= t90)
        if c90 > c10:
            result["events_per_worker_cpu_s"] = round(0.8 * n / (c90 - c10), 1)
            result["worker_cpu_share"] = round((c90 - c10) / (t90 - t10), 2)
    result["timeline"] = samples
    if args.passthrough:

        def baseline(script: str, expect: int, *flags: str) -> dict[str, Any]:
            """One baseline's JSON line: it reads the same topics in its own group."""
            proc = subprocess.run(
                [sys.executable, str(HERE / script), *flags, "--topic-prefix", prefix]
                + ["--expect", str(expect)],
                capture_output=True,
                timeout=args.drain_timeout + 60,
                cwd=REPO,
                env={**os.environ, **HARNESS_ENV},
            )
            lines = proc.stdout.decode().strip().splitlines()
            return json.loads(lines[-1]) if lines else {}

        expect = len(sched.items) + args.partitions
        # aiokafka, and the worker's own client with no decision (the reference it is held to)
        for key, ratio, flags in (
            ("passthrough", "ratio_to_passthrough", ()),
            ("confluent_passthrough", "ratio_to_confluent_passthrough", ("--client", "confluent")),
        ):
            result[key] = baseline("passthrough.py", expect, *flags)
            pt = result[key].get("sustained_events_per_s")
            if pt and result["sustained_events_per_s"]:
                result[ratio] = round(result["sustained_events_per_s"] / pt, 3)
        result["faust_passthrough"] = baseline("faust_passthrough.py", len(sched.items))
    got = await collect(harness(), prefix, idle_s=3.0, max_s=600.0)
    write_outputs(run_dir / "outputs.jsonl", got)
    result["check"] = check(
        [raw for _, raw in sched.items], got, str(DECK), cutoff_us=sched.t_end_us
    )
    result["check"]["lateness_values_s"] = []  # stamped a day ahead: no lateness in this mode
    return result


# -------------------------------------------------------------------------- report


def plot_run(res: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res["timeline"]
    t0 = s[0]["t"] if s else 0
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    ts = [x["t"] - t0 for x in s]
    rates = [0.0] + [
        (b["events"] - a["events"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
        for a, b in zip(s, s[1:])
    ]
    axes[0].plot(ts, rates, lw=1, label="worker(s): calls+accounts events/s")
    for e in res.get("rebalance_events", []):
        axes[0].axvline(e["t"] - t0, color="red", ls="--", lw=1)
        axes[2].axvline(e["t"] - t0, color="red", ls="--", lw=1)
    axes[0].set_title("events/s (red: worker added / killed)")
    axes[0].set_xlabel("s")
    axes[0].legend(fontsize=7)
    vals = res["check"].get("lateness_values_s") or []
    lat = res["check"]["lateness_timer_disconnects_s"]
    if vals:
        axes[1].hist([v * 1000 for v in vals], bins=50)
        axes[1].set_yscale("log")
    axes[1].set_title(
        f"disconnect lateness ms: p50 {fmt_ms(lat['p50'])} p99 {fmt_ms(lat['p99'])} "
        f"max {fmt_ms(lat['max'])}",
        fontsize=9,
    )
    axes[1].set_xlabel("receive - at (ms)")
    axes[2].plot(ts, [x["lag"] if x["lag"] is not None else float("nan") for x in s], lw=1)
    axes[2].set_title("consumer lag (calls+accounts records)")
    axes[2].set_xlabel("s")
    fig.suptitle(f"{res['name']}: {res['command']}", fontsize=8)
    fig.tight_layout()
    name = f"kafka-{res['name']}.png"
    fig.savefig(RESULTS / name, dpi=90)
    plt.close(fig)
    return name


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("kafka-*.json"))]
    runs = [r for r in runs if "mode" in r]  # the security bench's results sit beside them

    def series(r: dict[str, Any]) -> str:  # runs that differ only by their worker count
        return re.sub(r"-w\d+", "", r["name"])

    sat = sorted(
        [r for r in runs if r["mode"] == "saturate"],
        key=lambda r: (series(r), r["args"]["workers"]),
    )
    liv = [r for r in runs if r["mode"] == "live"]
    lines = [
        "# Kafka load test",
        "",
        "Generated by `.venv/bin/python loadtest/kafka_load.py report` from the `kafka-*.json` of each run.",
        "Machine: 2 cores shared by the broker, the worker(s), the load generator/collector and, at the",
        "time of these runs, other jobs (load average before each run is given). Broker: the project's",
        "Kafka 3.9.1 on 127.0.0.1. Deck `rates/sample-deck.csv`. Inputs and outputs of each run:",
        "`var/loadtest/<run>/` (not committed).",
        "",
    ]
    lines += [
        "## Saturation: sustained events/s",
        "",
        "Provision the tenants, then burst the call events into `calls` as fast as one producer goes,",
        "with the workers already running and every partition owned; events/s between 10 % and 90 % of",
        "the events consumed (worker metric `rating_events_in_total`). The passthrough baselines (aiokafka,",
        "and confluent-kafka, the worker's own client) read the same topics afterwards in their own groups. The Faust passthrough (`loadtest/faust_passthrough.py`)",
        "is the worker's envelope with no decision: a Faust agent with the same `take_events` batches and",
        "`Outbox` forwarding each event unchanged, i.e. the ceiling Faust itself puts on the worker.",
        "",
        "| run | workers | events | sustained ev/s | overall ev/s | worker CPU share | ev per worker CPU-s | "
        "passthrough ev/s (per CPU-s) | ratio | confluent-kafka passthrough ev/s (per CPU-s) | ratio | "
        "Faust passthrough ev/s (per CPU-s) | vs 1 worker | checker | load avg | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ones = {series(r): r["sustained_events_per_s"] for r in sat if r["args"]["workers"] == 1}
    for r in sat:
        c = r["check"]
        one = ones.get(series(r))
        pt = r.get("passthrough", {}).get("sustained_events_per_s")
        vs = (
            f"{r['sustained_events_per_s'] / one:.2f}x"
            if one and r["sustained_events_per_s"]
            else "-"
        )
        ptc = r.get("passthrough", {}).get("events_per_cpu_s")
        cpt = r.get("confluent_passthrough", {})
        cp = (
            f"{cpt.get('sustained_events_per_s', '-')} ({cpt.get('events_per_cpu_s', '-')})"
            if cpt
            else "-"
        )
        fpt = r.get("faust_passthrough", {})
        fp = (
            f"{fpt.get('sustained_events_per_s', '-')} ({fpt.get('events_per_cpu_s', '-')})"
            if fpt
            else "-"
        )
        lines.append(
            f"| {r['name']} | {r['args']['workers']} | {r['events']:,} | {r['sustained_events_per_s']} | "
            f"{r['overall_events_per_s']} | {r.get('worker_cpu_share', '-')} | "
            f"{r.get('events_per_worker_cpu_s', '-')} | {pt or '-'} ({ptc or '-'}) | "
            f"{r.get('ratio_to_passthrough', '-')} | {cp} | "
            f"{r.get('ratio_to_confluent_passthrough', '-')} | {fp} | {vs} | "
            f"{summary_check(c)} | {r['loadavg_before'][0]:.1f} | `{r['command']}` |"
        )
    core = core_ceiling()
    if core:
        lines += [
            "",
            f"Decision core alone on the same input (`simulate_lines` on "
            f"`var/loadtest/saturate-w1/input.jsonl`, one process, at report time): {core:,.0f} events/s.",
        ]
    lines += [
        "",
        "## Real time: paced Poisson traffic, disconnect lateness",
        "",
        "Events stamped with their send instant and sent on schedule; lateness = receive time at the",
        "checker's consumer - the disconnect's `at`, for disconnects fired by a timer (`funds_exhausted`).",
        "",
        "| run | workers | offered ev/s | processed ev/s | max lag | lateness p50 / p99 / max (ms) | "
        "refusal latency p50 / p99 (ms) | checker | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in liv:
        c = r["check"]
        lat, ref = c["lateness_timer_disconnects_s"], c["lateness_refusals_s"]
        w = r["args"]["workers"]
        lines.append(
            f"| {r['name']} | {w}{' +1 -1' if r['args'].get('rebalance') else ''} | "
            f"{r.get('offered_events_per_s')} | {r.get('processed_events_per_s')} | {r.get('lag_max')} | "
            f"{fmt_ms(lat['p50'])} / {fmt_ms(lat['p99'])} / {fmt_ms(lat['max'])} (n={lat['n']}) | "
            f"{fmt_ms(ref['p50'])} / {fmt_ms(ref['p99'])} | {summary_check(c)} | `{r['command']}` |"
        )
    for r in liv:
        if r["args"].get("rebalance"):
            c = r["check"]
            lines += ["", f"### Rebalance ({r['name']})", ""]
            for e in r["rebalance_events"]:
                lines.append(
                    f"- {e['what']} ({e['worker']}) at +{e['t'] - r['timeline'][0]['t']:.1f} s"
                )
            a, b = c["lateness_in_windows_s"], c["lateness_outside_windows_s"]
            lines += [
                f"- lateness inside the {r['args']['window']:g} s after each change: "
                f"p50 {fmt_ms(a['p50'])} / p99 {fmt_ms(a['p99'])} / max {fmt_ms(a['max'])} ms (n={a['n']})",
                f"- lateness outside: p50 {fmt_ms(b['p50'])} / p99 {fmt_ms(b['p99'])} / max {fmt_ms(b['max'])} ms "
                f"(n={b['n']})",
                f"- charges: {c['charges_distinct']:,} distinct, {c['double_charged']} double-charged, "
                f"{c['lost_charges']} lost, {c['charges_reemitted_identical']:,} identical re-emissions "
                f"(at-least-once replay after the SIGKILL, deduplicated by `charge_id`)",
                f"- disconnects: {c['disconnects_received']:,} received, {c['lost_disconnects']} lost; "
                f"negative balances: {c['negative_balances']}",
            ]
    lines += [
        "",
        "## Checker details per run",
        "",
        "| run | input lines | bad lines | records | charges | double | lost charges | disconnects due / lost "
        "| negative balances | same as simulate (only sim / only worker) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c = r["check"]
        lines.append(
            f"| {r['name']} | {c['input_lines']:,} | {c['bad_inputs']} (all dead-lettered: "
            f"{c['bad_inputs_missing_from_dead_letters'] == 0}) | {c['records_received']:,} | "
            f"{c['charges_distinct']:,} | {c['double_charged']} | {c['lost_charges']} | "
            f"{c['disconnects_due']} / {c['lost_disconnects']} | {c['negative_balances']} | "
            f"{c['simulate_match']} ({c['only_in_simulate']} / {c['only_in_worker']}) |"
        )
    lines += ["", "## Plots", ""]
    for r in runs:
        lines.append(f"- {r['name']}: ![{r['name']}]({plot_run(r)})")
    if sat:
        sat = [r for r in sat if series(r) == "saturate"] or sat
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [f"{r['args']['workers']} worker(s)" for r in sat]
        vals = [r["sustained_events_per_s"] or 0 for r in sat]
        pts = [
            r.get("passthrough", {}).get("sustained_events_per_s")
            for r in sat
            if r.get("passthrough")
        ]
        if pts:
            labels.append("passthrough")
            vals.append(max(pts))
        ax.bar(labels, vals)
        ax.axhline(5000, color="red", ls="--", lw=1, label="target 5,000")
        ax.set_ylabel("events/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "kafka-scaleout.png", dpi=90)
        plt.close(fig)
        lines.append("- scale-out: ![scale-out](kafka-scaleout.png)")
    notes = RESULTS / "kafka-notes.md"  # hand-written reading of the figures, kept across re-runs
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    (RESULTS / "kafka.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def core_ceiling() -> float | None:
    path = RUNS / "saturate-w1" / "input.jsonl"
    if not path.exists():
        return None
    from rating_engine.core import load_deck, simulate_lines

    lines = path.read_bytes().splitlines()
    deck = load_deck(str(DECK))
    started = time.perf_counter()
    for _ in simulate_lines(deck, lines):
        pass
    return len(lines) / (time.perf_counter() - started)


def summary_check(c: dict[str, Any]) -> str:
    return "pass" if c["ok"] else "FAIL: " + ", ".join(c["failures"])


# ------------------------------------------------------------------------------ cli


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode in ("live", "saturate"):
        p = sub.add_parser(mode)
        p.add_argument("--name", default=None, help="run name (results file kafka-NAME.json)")
        p.add_argument("--tenants", type=int, default=200)
        p.add_argument("--partitions", type=int, default=8)
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument(
            "--time-scale", type=float, default=20.0, help="call durations: mean 180 s / this"
        )
        p.add_argument(
            "--lead", type=float, default=3.0, help="seconds between provisioning and calls"
        )
        p.add_argument(
            "--poor-share", type=float, default=0.3, help="tenants with cents of credit, no pool"
        )
        p.add_argument("--drain-timeout", type=float, default=300.0)
        p.add_argument(
            "--worker-env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="extra environment for the workers, e.g. Faust's PRODUCER_LINGER=0.005",
        )
        if mode == "live":
            p.add_argument("--rate", type=float, default=1000.0, help="call events per second")
            p.add_argument("--duration", type=float, default=60.0, help="seconds of calls")
            p.add_argument(
                "--rebalance", action="store_true", help="add a worker at 1/3, SIGKILL one at 2/3"
            )
            p.add_argument(
                "--window", type=float, default=15.0, help="s after a change reported apart"
            )
            p.add_argument("--idle", type=float, default=3.0)
        else:
            p.add_argument("--events", type=int, default=60000, help="call events in the burst")
            p.add_argument(
                "--virtual-rate", type=float, default=1000.0, help="event spacing in the ts"
            )
            p.add_argument("--passthrough", action="store_true")
    sub.add_parser("report")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.mode == "report":
        report(args)
        return 0
    if args.name is None:
        args.name = f"{args.mode}-w{args.workers}" + (
            "-rebalance" if getattr(args, "rebalance", False) else ""
        )
    Worker.env = dict(kv.split("=", 1) for kv in args.worker_env)
    res = asyncio.run(live(args) if args.mode == "live" else saturate(args))
    path = save_result(args.name, res)
    c = dict(res["check"])
    c.pop("lateness_values_s", None)
    brief = {k: v for k, v in res.items() if k not in ("timeline", "check", "args")}
    print(json.dumps({**brief, "check": c}, indent=1))
    print(f"saved {path}")
    return 0 if res["check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
