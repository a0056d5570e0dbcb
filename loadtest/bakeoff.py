"""Kafka client bake-off: the same consume -> produce passthrough with each candidate client.

One run on the project's broker: `--events` call events (keyed by tenant, about the size of
real ones) are written to `<prefix>calls` once, then each variant reads them all from the
start in its own consumer group and writes each record unchanged, with its key, to its own
output topic, and stops when every record is delivered (acks=all). Variants:

- `aiokafka`: `getmany` batches, `send` per record, offsets committed every second;
- `aiokafka-txn`: the same inside transactions committed every `--commit-ms`
  (`send_offsets_to_transaction` with the group id: aiokafka has no KIP-447 group metadata);
- `confluent`: confluent-kafka (librdkafka) `consume` batches, `produce` per record;
- `confluent-txn`: the same inside transactions committed every `--commit-ms`, offsets sent
  with the consumer's group metadata (KIP-447);
- `faust`: faust-streaming (`loadtest/faust_passthrough.py`, the worker's former envelope).

    .venv/bin/python loadtest/bakeoff.py --events 200000 [--variants aiokafka,confluent,...]

Prints one JSON line per variant (events/s between the first record read and the last
delivered, events per CPU-second of the process), then a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from rating_engine.stream import connection  # noqa: E402

VARIANTS = ("aiokafka", "aiokafka-txn", "confluent", "confluent-txn", "faust")


def event(i: int, tenants: int) -> tuple[bytes, bytes]:
    tenant = f"tenant-{i % tenants:04d}"
    value = (
        '{"type":"call_start","tenant_id":"%s","call_id":"c-%09d","user_id":"u-%03d",'
        '"kind":"user_outbound","from":"+14155550100","to":"+442071838750",'
        '"switch_id":"sw-1","ts":"2030-01-01T00:00:00.000000Z"}' % (tenant, i, i % 500)
    )
    return tenant.encode(), value.encode()


def fill(
    settings: connection.KafkaSettings, topic: str, partitions: int, n: int, tenants: int
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.librdkafka())
    for fut in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        fut.result()
    producer = Producer({**settings.librdkafka(), "linger.ms": 20, "partitioner": "murmur2_random"})
    for i in range(n):
        key, value = event(i, tenants)
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()


def result(name: str, count: int, first: float | None, last: float, cpu_s: float) -> dict[str, Any]:
    span = last - (first or last)
    return {
        "variant": name,
        "count": count,
        "seconds": round(span, 3),
        "events_per_s": round(count / span) if span > 0 else None,
        "events_per_cpu_s": round(count / cpu_s) if cpu_s > 0 else None,
    }


async def aiokafka_run(
    settings: connection.KafkaSettings, src: str, out: str, n: int, txn: bool, commit_ms: int
) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    group = f"{out}-group"
    consumer = AIOKafkaConsumer(
        src,
        **settings.aiokafka(),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=2000,
    )
    extra: dict[str, Any] = {"transactional_id": f"{out}-txn"} if txn else {}
    producer = AIOKafkaProducer(
        **settings.aiokafka(), acks="all", linger_ms=5, max_batch_size=256 * 1024, **extra
    )
    await consumer.start()
    await producer.start()
    count, first = 0, None
    cpu0 = time.process_time()
    last_commit = time.monotonic()
    in_txn = False
    try:
        while count < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            if not batch:
                continue
            if first is None:
                first = time.time()
            if txn and not in_txn:
                await producer.begin_transaction()
                in_txn = True
            futs = []
            for msgs in batch.values():
                for m in msgs:
                    futs.append(await producer.send(out, m.value, key=m.key))
                    count += 1
            now = time.monotonic()
            if now - last_commit >= commit_ms / 1000 or count >= n:
                offsets = {tp: await consumer.position(tp) for tp in consumer.assignment()}
                if txn:
                    await producer.send_offsets_to_transaction(offsets, group)
                    await producer.commit_transaction()
                    in_txn = False
                else:
                    await producer.flush()
                    await consumer.commit(offsets)
                last_commit = now
        await producer.flush()
        last = time.time()
    finally:
        await producer.stop()
        await consumer.stop()
    return result(
        "aiokafka-txn" if txn else "aiokafka", count, first, last, time.process_time() - cpu0
    )


def confluent_run(
    settings: connection.KafkaSettings, src: str, out: str, n: int, txn: bool, commit_ms: int
) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            **settings.librdkafka(),
            "group.id": f"{out}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    conf: dict[str, Any] = {
        **settings.librdkafka(),
        "linger.ms": 5,
        "acks": "all",
        "partitioner": "murmur2_random",
    }
    if txn:
        conf["transactional.id"] = f"{out}-txn"
    producer = Producer(conf)
    if txn:
        producer.init_transactions()
    consumer.subscribe([src])
    count, first = 0, None
    cpu0 = time.process_time()
    last_commit = time.monotonic()
    in_txn = False
    try:
        while count < n:
            msgs = consumer.consume(2000, 0.2)
            if not msgs:
                continue
            if first is None:
                first = time.time()
            if txn and not in_txn:
                producer.begin_transaction()
                in_txn = True
            for m in msgs:
                if m.error():
                    continue
                while True:
                    try:
                        producer.produce(out, m.value(), m.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
            producer.poll(0)
            now = time.monotonic()
            if now - last_commit >= commit_ms / 1000 or count >= n:
                positions = consumer.position(consumer.assignment())
                if txn:
                    producer.send_offsets_to_transaction(
                        positions, consumer.consumer_group_metadata()
                    )
                    producer.commit_transaction()
                    in_txn = False
                else:
                    producer.flush()
                    consumer.commit(offsets=positions, asynchronous=False)
                last_commit = now
        producer.flush()
        last = time.time()
    finally:
        consumer.close()
    return result(
        "confluent-txn" if txn else "confluent", count, first, last, time.process_time() - cpu0
    )


def faust_run(settings: connection.KafkaSettings, prefix: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "faust_passthrough.py"),
            "--topic-prefix",
            prefix,
            "--expect",
            str(n),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env={**os.environ, "RATING_ENGINE_BROKER": settings.broker},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"variant": "faust", "error": (proc.stderr or proc.stdout)[-400:]}
    got = json.loads(lines[-1])
    return {
        "variant": "faust",
        "count": got.get("count"),
        "events_per_s": got.get("sustained_events_per_s") or got.get("events_per_s"),
        "events_per_cpu_s": got.get("events_per_cpu_s"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    connection.add_arguments(ap)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--commit-ms", type=int, default=100)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    settings = connection.from_args(args)
    prefix = f"bake{uuid.uuid4().hex[:6]}-"
    src = prefix + "calls"
    started = time.monotonic()
    fill(settings, src, args.partitions, args.events, args.tenants)
    print(
        f"# {args.events} events written to {src} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "aiokafka": lambda: asyncio.run(
            aiokafka_run(settings, src, prefix + "out-aiokafka", args.events, False, args.commit_ms)
        ),
        "aiokafka-txn": lambda: asyncio.run(
            aiokafka_run(
                settings, src, prefix + "out-aiokafka-txn", args.events, True, args.commit_ms
            )
        ),
        "confluent": lambda: confluent_run(
            settings, src, prefix + "out-confluent", args.events, False, args.commit_ms
        ),
        "confluent-txn": lambda: confluent_run(
            settings, src, prefix + "out-confluent-txn", args.events, True, args.commit_ms
        ),
        "faust": lambda: faust_run(settings, prefix, args.events),
    }
    rows = []
    for name in args.variants.split(","):
        row = runs[name]()
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| client | events/s | events per CPU-s |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r.get('events_per_s')} | {r.get('events_per_cpu_s')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
