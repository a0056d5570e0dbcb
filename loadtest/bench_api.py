"""Benchmark of the account API: `GET /v1/tenants/{id}/account` at a fixed request rate.

    .venv/bin/python loadtest/bench_api.py [--rate 1000] [--duration 20] [--rounds 2]

Needs the broker of deploy/kafka/broker.sh running (plaintext or secure). The bench creates
its own topics (`broker.sh start --topic-prefix bench-api-…`), puts one account view on
`account-views` (contoso's after the demo traffic, computed by the core, as the operator),
starts the real `rating-engine api` on them as the `admin` role with a tenant token, and
deletes its topics at the end.

The load client is open-loop: request i is due at start + i / rate whatever the answers
before it did, on as many keep-alive connections as it takes (at most 256), and its latency
runs from when it was due to when its answer was read, so a stall of the server counts
against every request it delays (no coordinated omission). `client lag` is how late the
client itself sent (it shares the 2 cores with the server). wrk (Debian) is closed-loop
(no fixed rate), so it cannot give a latency at 1,000 requests/s.

Every round measures three targets back to back at the same rate: the account (token check,
view lookup, the view's bytes), `GET /v1/health` of the same process (routing and the
server alone: the reference), and a bare Starlette app under the same uvicorn settings that
answers the same bytes with no work (the framework's floor). Each line also gives the
server's CPU per request. Results are appended to loadtest/results/api.md.
Target: account p99 < 10 ms at 1,000 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from kafka_load import free_port, role_env  # noqa: E402

from rating_engine import core  # noqa: E402
from rating_engine.stream import connection  # noqa: E402

RESULTS = HERE / "results" / "api.md"
DECK = REPO / "rates" / "sample-deck.csv"
DEMO = REPO / "rates" / "demo-events.jsonl"
TENANT = "contoso"
MAX_CONNECTIONS = 256
WARMUP_S = 2.0


# ----------------------------------------------------------------------- the load client


@dataclass
class Phase:
    """One target's measured requests."""

    name: str
    latencies_s: list[float]
    lags_s: list[float]
    errors: int
    elapsed_s: float
    cpu_s: float

    def line(self) -> str:
        done = sorted(self.latencies_s)
        lags = sorted(self.lags_s)
        sent = sorted(d - g for d, g in zip(self.latencies_s, self.lags_s, strict=True))

        def at(xs: list[float], q: float) -> float:
            return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")

        rate = len(done) / self.elapsed_s
        cpu_us = self.cpu_s / max(1, len(done)) * 1e6
        return (
            f"{self.name}: {len(done):,} requests at {rate:,.0f}/s, p50 {at(done, 0.50):.2f} ms, "
            f"p99 {at(done, 0.99):.2f} ms, max {done[-1] * 1000 if done else 0:.2f} ms, "
            f"{self.errors} errors; server CPU {cpu_us:.0f} us/request; "
            f"client lag p99 {at(lags, 0.99):.2f} ms (from send: p99 {at(sent, 0.99):.2f} ms)"
        )

    def p99_ms(self) -> float:
        done = sorted(self.latencies_s)
        return done[min(len(done) - 1, int(0.99 * len(done)))] * 1000


class Client:
    """Keep-alive HTTP/1.1 connections to one server, handed out one request at a time."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port, self.request = port, request
        # first in, first out: every connection stays busy (uvicorn closes one idle for 5 s)
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self.opened = 0
        self.freed = asyncio.Condition()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while not self.idle:
            if self.opened < MAX_CONNECTIONS:
                self.opened += 1
                return await asyncio.open_connection("127.0.0.1", self.port)
            async with self.freed:
                await self.freed.wait()
        return self.idle.popleft()

    async def get(self) -> tuple[int, bytes]:
        """One request; (status, body)."""
        reader, writer = await self._connection()
        try:
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
        except BaseException:
            self.opened -= 1  # this connection is not handed out again
            writer.close()
            raise
        self.idle.append((reader, writer))
        async with self.freed:
            self.freed.notify()
        return status, body

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_loop(
    name: str, port: int, request: bytes, expect: bytes, rate: float, duration_s: float, pid: int
) -> Phase:
    """`rate` requests a second for `duration_s` after a warm-up, each due at its own instant."""
    client = Client(port, request)
    interval = 1.0 / rate
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float, measured: bool) -> None:
        nonlocal errors
        sent = time.perf_counter()
        try:
            status, body = await client.get()
            ok = status == 200 and body == expect
        except (OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        if measured:
            if ok:
                latencies.append(time.perf_counter() - due)
                lags.append(sent - due)
            else:
                errors += 1

    async def run(seconds: float, measured: bool) -> float:
        start = time.perf_counter()
        n = int(seconds * rate)
        for i in range(n):
            due = start + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(due, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        return time.perf_counter() - start

    await run(WARMUP_S, measured=False)
    cpu0 = _cpu_s(pid)
    elapsed = await run(duration_s, measured=True)
    cpu = _cpu_s(pid) - cpu0
    await client.close()
    return Phase(name, latencies, lags, errors, elapsed, cpu)


# ----------------------------------------------------------------------- the servers


def serve_reference(port: int, body_file: str) -> None:
    """A bare Starlette app answering fixed bytes, under the API's uvicorn settings."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(body_file).read_bytes()

    async def fixed(request: object) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/", fixed)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


def _broker(*args: str) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_api: broker.sh {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def demo_view() -> bytes:
    """contoso's account view after the demo traffic, as the worker would publish it."""
    deck = core.load_deck(str(DECK))
    engine = core.Engine(deck)
    for line, raw in enumerate(DEMO.read_bytes().splitlines(), 1):
        engine.feed(raw, line)
    engine.finish()
    state = engine.tenant_state(TENANT)
    assert state is not None
    return core.account_view(state, deck.currency)


async def put_view(prefix: str, view: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    settings = connection.from_env(role_env("operator"))
    producer = AIOKafkaProducer(**settings.aiokafka(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(prefix + "account-views", view, key=TENANT.encode())
    finally:
        await producer.stop()


async def delete_topics(prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**connection.from_env(role_env("operator")).aiokafka())
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def _wait_http(url: str, headers: dict[str, str], proc: subprocess.Popen[bytes]) -> bytes:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench_api: the server exited ({proc.returncode})")
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.read()
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"bench_api: {url} did not answer 200 within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _request(path: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per target")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the three targets")
    ap.add_argument("--no-results", action="store_true", help="do not append to results/api.md")
    ap.add_argument("--serve-reference", nargs=2, metavar=("PORT", "BODY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_reference:
        serve_reference(int(args.serve_reference[0]), args.serve_reference[1])
        return 0

    import tempfile

    prefix = f"bench-api-{int(time.time())}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    view = demo_view()
    _broker("start", "--topic-prefix", prefix, "--partitions", "1")
    procs: list[subprocess.Popen[bytes]] = []
    lines: list[str] = []
    try:
        asyncio.run(put_view(prefix, view))
        tokens = tmp / "tokens.json"
        token = subprocess.run(
            [sys.executable, "-m", "rating_engine.cli", "api", "token", "add"]
            + ["--tokens", str(tokens), "--tenant", TENANT],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout.strip()
        api_port, ref_port = free_port(), free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "rating_engine.cli", "api", "--rates", str(DECK)]
            + ["--listen", f"127.0.0.1:{api_port}", "--tokens", str(tokens)]
            + ["--store", str(tmp / "store.sqlite"), "--topic-prefix", prefix]
            + connection.flags_of_env(role_env("admin")),
            stdout=open(tmp / "api.log", "ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        procs.append(api)
        account = f"/v1/tenants/{TENANT}/account"
        served = _wait_http(
            f"http://127.0.0.1:{api_port}{account}", {"Authorization": f"Bearer {token}"}, api
        )
        assert served == view, "the API serves another view than the one put on the topic"
        health = _wait_http(f"http://127.0.0.1:{api_port}/v1/health", {}, api)
        (tmp / "body.json").write_bytes(view)
        ref = subprocess.Popen(
            [sys.executable, __file__, "--serve-reference", str(ref_port), str(tmp / "body.json")],
            stdout=open(tmp / "reference.log", "ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        procs.append(ref)
        _wait_http(f"http://127.0.0.1:{ref_port}/", {}, ref)

        targets = [
            ("account", api_port, _request(account, token), view, api.pid),
            ("health (same process)", api_port, _request("/v1/health"), health, api.pid),
            ("bare Starlette, same bytes", ref_port, _request("/"), view, ref.pid),
        ]
        account_p99: list[float] = []
        for r in range(1, args.rounds + 1):
            for name, port, request, expect, pid in targets:
                phase = asyncio.run(
                    open_loop(name, port, request, expect, args.rate, args.duration, pid)
                )
                if name == "account":
                    account_p99.append(phase.p99_ms())
                line = f"round {r}, {phase.line()}"
                print(line, flush=True)
                lines.append(line)
    finally:
        for proc in procs:
            _stop(proc)
        try:
            asyncio.run(delete_topics(prefix))
        except Exception as exc:  # the figures are still worth keeping
            print(f"bench_api: could not delete the topics {prefix}*: {exc}", file=sys.stderr)

    worst = max(account_p99)
    verdict = "met" if worst < 10 else "missed"
    print(f"target p99 < 10 ms at {args.rate:,.0f}/s: {verdict} (worst round {worst:.2f} ms)")
    if not args.no_results:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        mode = role_env("admin").get("RATING_ENGINE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
        cmd = "`.venv/bin/python loadtest/bench_api.py " + " ".join(argv or sys.argv[1:]) + "`"
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(
                f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()} "
                f"({os.cpu_count()} cores, load average {load}; broker {mode})\n\n"
                f"Command: {cmd.replace(' `', '`')}; open loop at {args.rate:,.0f} requests/s, "
                f"{args.duration:g} s measured per target after {WARMUP_S:g} s of warm-up.\n\n"
            )
            out.writelines(f"- {line}\n" for line in lines)
            out.write(f"- target p99 < 10 ms: {verdict} (worst round {worst:.2f} ms)\n")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
