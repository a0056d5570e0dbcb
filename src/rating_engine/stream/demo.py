"""The Python half of `bash deploy/demo.sh`: talk to the broker and the worker, print what happened.

    python -m rating_engine.stream.demo wait-ready --prefix P [--worker-pid PID] [--timeout S]
    python -m rating_engine.stream.demo run --prefix P --events FILE --rates DECK [--metrics-url URL]
    python -m rating_engine.stream.demo cleanup --prefix P

`wait-ready` sends a probe line `{"probe":true}` to the calls topic and waits
for the worker to dead-letter it (so the worker is subscribed and deciding).
`run` replays an events file with its timestamps moved to now, paced in real
time, then reads every output topic, prints them per topic, checks them against
`simulate` on the same shifted events, and shows the worker's key metrics.
`cleanup` deletes the topics of a prefix. The shell script starts and stops
the broker and the worker; this module never does. Every command takes the broker
connection flags of `rating_engine.stream.connection` (or its `RATING_ENGINE_*` variables):
on a secure broker the demo acts as the `operator`, the worker as `worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence

import orjson

from ..core import OUTPUT_TOPICS, US_PER_S, parse_instant, stamp_of
from . import connection, kafkaio
from .connection import KafkaSettings

PROBE = b'{"probe":true}'
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
LATENESS_LIMIT_S = 1.0  # accounts.md "Time": disconnects go out within 1 s of their due instant
KEY_METRICS = (
    "rating_events_in_total",
    "rating_records_out_total",
    "rating_dead_letters_total",
    "rating_disconnect_lateness_seconds_count",
    "rating_disconnect_lateness_seconds_sum",
    "rating_event_processing_seconds_count",
    "rating_event_processing_seconds_sum",
    "rating_live_calls",
    "rating_tenants",
    "rating_timers_pending",
    "rating_timer_fires_total",
)


def say(text: str = "") -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def is_probe(topic: str, record: dict) -> bool:
    """A readiness probe's dead letter (ours, or any `{"probe": ...}` line)."""
    if topic != "dead-letters" or '"probe"' not in (record.get("original") or ""):
        return False
    try:
        original = orjson.loads(record["original"])
    except orjson.JSONDecodeError:
        return False
    return isinstance(original, dict) and "probe" in original and "type" not in original


def process_alive(pid: int | None) -> bool:
    """True unless `pid` is gone or a zombie (the shell reaps its children late)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


# ---------------------------------------------------------------- wait-ready


async def wait_ready(
    broker: KafkaSettings, prefix: str, timeout: float, worker_pid: int | None
) -> int:
    started = time.monotonic()
    await kafkaio.produce_lines(broker, prefix, [PROBE])
    while time.monotonic() - started < timeout:
        if not process_alive(worker_pid):
            warn(f"the worker (pid {worker_pid}) exited before it was ready")
            return EXIT_FAILED
        got = await kafkaio.collect(broker, prefix, idle_s=1.0, max_s=3.0)
        if any(is_probe(topic, record) for topic, record, _ in got):
            say(
                f"worker ready: the probe came back as a dead letter after "
                f"{time.monotonic() - started:.1f} s"
            )
            return EXIT_OK
    warn(f"the worker did not dead-letter the probe within {timeout:.0f} s")
    return EXIT_FAILED


# ---------------------------------------------------------------- run


def _hms(instant: object) -> str:
    """`2026-11-24T10:00:01.000Z` -> `10:00:01.000` (the demo runs within one day)."""
    return instant[11:23] if isinstance(instant, str) and len(instant) >= 23 else str(instant)


def _num(x: object) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def describe(topic: str, r: dict) -> str:
    """One compact line for one output record."""
    tenant = r.get("tenant_id")
    if topic == "disconnects":
        return f"{_hms(r['at'])}  {tenant}/{r['call_id']}  {r['reason']}  (switch {r['switch_id']})"
    if topic == "charges":
        pool = f"  pool {r['pool']} {_num(r['pool_seconds'])}s" if r.get("pool") else ""
        why = "".join(f"  {k}={r[k]}" for k in ("reason", "disconnected") if r.get(k))
        return (
            f"{_hms(r['end'])}  {tenant}/{r['call_id']}  {r['kind']}  {r.get('destination')}  "
            f"{_hms(r['start'])}-{_hms(r['end'])} {_num(r['duration_seconds'])}s  "
            f"billed {_num(r['billed_seconds'])}s  {r['charge']} {r['currency']}{pool}  "
            f"[{r['status']}]{why}"
        )
    if topic == "notifications":
        extra = "  ".join(
            f"{k}={_num(v)}"
            for k, v in r.items()
            if k not in ("notification_id", "tenant_id", "kind", "ts")
        )
        return f"{_hms(r['ts'])}  {tenant}  {r['kind']}  {extra}"
    if topic == "payments":
        return f"{_hms(r['ts'])}  {tenant}  {r['request_id']}  {r['amount']} {r['currency']}"
    if topic == "dead-letters":
        original = r.get("original") or ""
        if len(original) > 60:
            original = original[:57] + "..."
        return f"{r['reason']}  tenant={tenant}  offset={r.get('line')}  original={original!r}"
    return orjson.dumps(r).decode()


def _sort_key(topic: str, r: dict) -> str:
    for field in ("at", "end", "ts"):
        if isinstance(r.get(field), str):
            return r[field]
    return ""


def _canonical(topic: str, r: dict) -> tuple[str, bytes]:
    if topic == "dead-letters":  # `line` is the partition offset on the wire, the line in a file
        r = {k: v for k, v in r.items() if k != "line"}
    return topic, orjson.dumps(r, option=orjson.OPT_SORT_KEYS)


def compare_with_simulate(
    rates: str, lines: list[bytes], got: list[tuple[str, dict]]
) -> tuple[int, list[str]]:
    """(records simulate expects, differences) for the worker's output on the same events."""
    from ..core import load_deck, simulate_lines

    expected = simulate_lines(load_deck(rates), lines)
    want = Counter(_canonical(t, orjson.loads(p)) for t, p in expected)
    have = Counter(_canonical(t, r) for t, r in got)
    problems = []
    for (topic, body), n in sorted((want - have).items()):
        problems.append(f"missing  {topic}: {body.decode()}" + (f" (x{n})" if n > 1 else ""))
    for (topic, body), n in sorted((have - want).items()):
        problems.append(f"extra    {topic}: {body.decode()}" + (f" (x{n})" if n > 1 else ""))
    return sum(want.values()), problems


async def live_tail(broker: KafkaSettings, prefix: str, start_s: float) -> None:
    """Print output records as the worker publishes them (while the replay runs)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *(prefix + t for t in OUTPUT_TOPICS),
        **broker.aiokafka(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for tp, msgs in batch.items():
                topic = tp.topic[len(prefix) :]
                for m in msgs:
                    record = orjson.loads(m.value)
                    if is_probe(topic, record):
                        continue
                    line = f"  +{now - start_s:6.2f}s  {topic:<13} {describe(topic, record)}"
                    if topic == "disconnects":
                        late = now - float(parse_instant(record["at"])) / US_PER_S
                        line += f"  (seen {late * 1000:.0f} ms after due)"
                    say(line)
    finally:
        await consumer.stop()


def scrape(url: str) -> list[tuple[str, str, float]]:
    """(name, labels, value) of the worker's samples."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = []
    for line in text.splitlines():
        if not line.startswith("rating_"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        out.append((name, labels.rstrip("}"), float(value)))
    return out


def show_metrics(url: str) -> tuple[int, int] | None:
    """Print the key metrics; (disconnects, those published over 1 s late), None if unreadable."""
    say(
        f"metrics: {url}  (Prometheus: deploy/prometheus/prometheus.yml, "
        f"Grafana: deploy/grafana/rating-engine.json)"
    )
    try:
        samples = scrape(url)
    except OSError as exc:
        warn(f"cannot read {url}: {exc}")
        return None
    for name, labels, value in samples:
        if name in KEY_METRICS:
            shown = f"{name}{{{labels}}}" if labels else name
            say(f"  {shown} {_num(int(value) if value.is_integer() else round(value, 6))}")
    buckets = [
        (float(lbl.split('le="')[1].split('"')[0]), v)
        for n, lbl, v in samples
        if n == "rating_disconnect_lateness_seconds_bucket"
    ]
    total = max((v for _, v in buckets), default=0.0)
    if not total:
        return 0, 0
    bound = min(le for le, v in buckets if v >= total)
    within = "an unbounded time" if math.isinf(bound) else f"{bound * 1000:g} ms"
    say(f"  => all {int(total)} disconnects published within {within} of their due instant")
    on_time = max((v for le, v in buckets if le <= LATENESS_LIMIT_S), default=0.0)
    return int(total), int(total - on_time)


async def run(args: argparse.Namespace, broker: KafkaSettings, raw_lines: list[bytes]) -> int:
    start_us = (time.time_ns() // 1000 + int(args.lead * US_PER_S)) // 1000 * 1000
    lines = kafkaio.shift_times(raw_lines, start_us)
    # a line without a valid ts is sent as it is, like the worker would get it
    stamps = [float(ts) / US_PER_S for ts in map(stamp_of, lines) if ts is not None]
    span = (max(stamps) - min(stamps)) if stamps else 0.0
    routed = Counter(kafkaio.route(line)[0] for line in lines)
    say(
        f"replaying {len(lines)} lines of {args.events} ({routed['calls']} to {args.prefix}calls, "
        f"{routed['accounts']} to {args.prefix}accounts), timestamps moved to now, "
        f"paced in real time over {span:.0f} s"
    )
    say("output records as the worker publishes them (time since the first event):")

    start_s = start_us / US_PER_S
    tail = asyncio.create_task(live_tail(broker, args.prefix, start_s))
    try:
        await kafkaio.produce_lines(broker, args.prefix, lines, paced=True)
        say(f"replay done; collecting the output topics until they are quiet for {args.idle:g} s")
        collected = await kafkaio.collect(broker, args.prefix, idle_s=args.idle)
    finally:
        tail.cancel()
        try:
            await tail
        except asyncio.CancelledError:
            pass
    got = [(topic, record) for topic, record, _ in collected if not is_probe(topic, record)]

    say()
    say(f"=== output topics ({args.prefix}*): {len(got)} records ===")
    for topic in OUTPUT_TOPICS:
        records = sorted((r for t, r in got if t == topic), key=lambda r: _sort_key(topic, r))
        say(f"{topic} ({len(records)})")
        for r in records:
            say(f"  {describe(topic, r)}")

    status = EXIT_OK
    if args.check:
        expected, problems = compare_with_simulate(args.rates, lines, got)
        say()
        if problems:
            status = EXIT_FAILED
            say(
                f"CHECK FAILED: the worker's output differs from `rating-engine simulate` on the "
                f"same shifted events ({expected} records expected, {len(got)} received):"
            )
            for p in problems:
                say(f"  {p}")
        else:
            say(
                f"check: the worker's {len(got)} records equal `rating-engine simulate` on the "
                f"same events (dead-letter `line` aside: on the wire it is the partition offset)"
            )
    if not got:
        warn("the worker published nothing")
        status = EXIT_FAILED

    say()
    lateness = show_metrics(args.metrics_url)
    if args.check and lateness is not None and lateness[1]:
        status = EXIT_FAILED
        say(
            f"CHECK FAILED: {lateness[1]} of {lateness[0]} disconnects were published more than "
            f"{LATENESS_LIMIT_S:g} s after their due instant (see {args.metrics_url})"
        )
    return status


# ---------------------------------------------------------------- topics


async def cleanup(broker: KafkaSettings, prefix: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    if not prefix:
        warn("cleanup needs a non-empty --prefix")
        return EXIT_USAGE
    admin = AIOKafkaAdminClient(**broker.aiokafka())
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if names:
            await admin.delete_topics(names)
        say(f"deleted {len(names)} topics {prefix}*")
    finally:
        await admin.close()
    return EXIT_OK


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rating_engine.stream.demo", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        connection.add_arguments(p)
        p.add_argument("--prefix", required=True, help="topic prefix of this demo run")

    ready = sub.add_parser("wait-ready", help="probe the worker until it answers")
    common(ready)
    ready.add_argument("--timeout", type=float, default=120.0)
    ready.add_argument("--worker-pid", type=int, help="give up at once if this process exits")

    run_p = sub.add_parser("run", help="replay, collect, summarise, check, show metrics")
    common(run_p)
    run_p.add_argument("--events", required=True, metavar="EVENTS.jsonl")
    run_p.add_argument("--rates", required=True, metavar="DECK.csv")
    run_p.add_argument("--metrics-url", default="http://127.0.0.1:9108/metrics")
    run_p.add_argument(
        "--lead", type=float, default=1.0, help="seconds from now to the first event"
    )
    run_p.add_argument("--idle", type=float, default=6.0, help="collect until quiet this long")
    run_p.add_argument(
        "--no-check", dest="check", action="store_false", help="do not compare with simulate"
    )

    clean = sub.add_parser("cleanup", help="delete the topics of a prefix")
    common(clean)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        broker = connection.from_args(args)
    except connection.SettingsError as exc:
        warn(str(exc))
        return EXIT_USAGE
    try:
        if args.command == "wait-ready":
            return asyncio.run(wait_ready(broker, args.prefix, args.timeout, args.worker_pid))
        if args.command == "run":
            try:
                with open(args.events, "rb") as f:
                    lines = [line.rstrip(b"\r\n") for line in f]
            except OSError as exc:
                warn(f"{args.events}: cannot open: {exc.strerror}")
                return EXIT_USAGE
            return asyncio.run(run(args, broker, [line for line in lines if line.strip()]))
        return asyncio.run(cleanup(broker, args.prefix))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
