"""Passthrough baseline: a consumer that reads `calls` (and `accounts`) and writes each event
unchanged, with its key, to `<prefix>passthrough` (`<prefix>passthrough-confluent`). What Kafka +
one Python process cost with no decision at all; the worker's events/s is reported as a ratio
to it. `--client aiokafka` (default) or `confluent` (confluent-kafka, the worker's client:
`consume` batches, `produce` per record).

    .venv/bin/python loadtest/passthrough.py --topic-prefix P --expect N [--client confluent]

The broker connection comes from `rating_engine.stream.connection` (its flags or
`RATING_ENGINE_*` variables), so a secure broker's TLS and SCRAM cost is measured too.

Reads from the earliest offset in its own consumer group (`<prefix>passthrough`), stops after
`--expect` records (or when idle for `--idle` s after the first), flushes, and prints one JSON
line: count, first/last consume wall time, the 10 %/90 % crossing times and events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from rating_engine.stream import connection
from rating_engine.stream.worker import produce_waiting


async def run(
    broker: connection.KafkaSettings,
    prefix: str,
    expect: int,
    timeout_s: float,
    idle_s: float,
    inputs: tuple[str, ...] = ("calls", "accounts"),
) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        *(prefix + t for t in inputs),
        **broker.aiokafka(),
        group_id=prefix + "passthrough",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=1000,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(**broker.aiokafka(), linger_ms=5, acks=1, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    out = prefix + "passthrough"
    count, first, last = 0, None, None
    marks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s and count < expect:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            now = time.time()
            if not batch:
                if first is not None and now - (last or now) > idle_s:
                    break
                continue
            if first is None:
                first = now
            for msgs in batch.values():
                for m in msgs:
                    await producer.send(out, m.value, key=m.key)
                    count += 1
            last = time.time()
            mark(marks, cpu, count, expect, last)
        await producer.flush()
        last = time.time()
    finally:
        await producer.stop()
        await consumer.stop()
    return summary(count, first, last, marks, cpu, expect)


def run_confluent(
    broker: connection.KafkaSettings,
    prefix: str,
    expect: int,
    timeout_s: float,
    idle_s: float,
    inputs: tuple[str, ...] = ("calls", "accounts"),
) -> dict:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            **broker.librdkafka(),
            "group.id": prefix + "passthrough-confluent",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
        }
    )
    producer = Producer({**broker.librdkafka(), "linger.ms": 5, "acks": 1})
    consumer.subscribe([prefix + t for t in inputs])
    out = prefix + "passthrough-confluent"
    count, first, last = 0, None, None
    marks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s and count < expect:
            msgs = consumer.consume(2000, 0.2)
            now = time.time()
            if not msgs:
                if first is not None and now - (last or now) > idle_s:
                    break
                continue
            if first is None:
                first = now
            for m in msgs:
                if m.error() is not None:
                    continue
                produce_waiting(producer, out, m.value(), m.key())
                count += 1
            producer.poll(0)
            last = time.time()
            mark(marks, cpu, count, expect, last)
        producer.flush(60.0)
        last = time.time()
    finally:
        consumer.close()
    return summary(count, first, last, marks, cpu, expect)


def mark(
    marks: dict[str, float], cpu: dict[str, float], count: int, expect: int, now: float
) -> None:
    """Note the wall and CPU instants at which 10, 50 and 90 % of the records were passed."""
    for name, share in (("t10", 0.1), ("t50", 0.5), ("t90", 0.9)):
        if name not in marks and count >= share * expect:
            marks[name] = now
            cpu[name] = time.process_time()


def summary(
    count: int,
    first: float | None,
    last: float | None,
    marks: dict[str, float],
    cpu: dict[str, float],
    expect: int,
) -> dict:
    """Events/s over the whole run and over its 10-90 % stretch (wall and CPU)."""
    result = {"count": count, "first": first, "last": last, **marks}
    if first is not None and last is not None and last > first:
        result["events_per_s"] = round(count / (last - first), 1)
    if "t10" in marks and "t90" in marks and marks["t90"] > marks["t10"]:
        result["sustained_events_per_s"] = round(0.8 * expect / (marks["t90"] - marks["t10"]), 1)
    if "t10" in cpu and "t90" in cpu and cpu["t90"] > cpu["t10"]:
        result["events_per_cpu_s"] = round(0.8 * expect / (cpu["t90"] - cpu["t10"]), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    connection.add_arguments(ap)
    ap.add_argument("--topic-prefix", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--client", choices=("aiokafka", "confluent"), default="aiokafka")
    args = ap.parse_args(argv)
    try:
        broker = connection.from_args(args)
    except connection.SettingsError as exc:
        ap.error(str(exc))
    how = (args.topic_prefix, args.expect, args.timeout, args.idle)
    if args.client == "confluent":
        result = run_confluent(broker, *how)
    else:
        result = asyncio.run(run(broker, *how))
    print(json.dumps(result))
    return 0 if result["count"] >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
