"""Exactly-once on the real broker: a worker killed between produce and commit.

The worker writes a stretch of batches (outputs, changelogs, input offsets) in one Kafka
transaction. Killed after its charges are produced but before they are committed, it leaves
them in an open transaction: a `read_committed` consumer (billing) must never see them, and
after the restart it must see every charge exactly once, while a `read_uncommitted` reader
sees both copies (which shows the kill did fall between produce and commit).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import orjson
import pytest

from rating_engine.core import US_PER_S, format_instant
from rating_engine.stream import connection
from rating_engine.stream.kafkaio import produce_lines, wait_ready

from .kafka_support import BROKER, WorkerProcess, call_start, lines_of, now_us, unique_prefix

pytestmark = pytest.mark.kafka

CALLS = 5


def read_charges(prefix: str, isolation: str, want: int, timeout_s: float) -> list[bytes]:
    """Every `charges` record from the start, as a reader with `isolation` sees it."""
    from confluent_kafka import Consumer

    settings = connection.from_env(broker=BROKER)
    consumer = Consumer(
        {
            **settings.librdkafka(),
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([prefix + "charges"])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(got) < want:
            for m in consumer.consume(100, 0.2):
                if m.error() is None:
                    got.append(m.value())
    finally:
        consumer.close()
    return got


def calls(base_us: int) -> list[bytes]:
    s = US_PER_S
    events: list[dict] = [
        {
            "type": "add_funds",
            "tenant_id": "eos",
            "command_id": "f",
            "ts": format_instant(base_us),
            "amount": "10",
            "currency": "USD",
        },
        {
            "type": "assign_licence",
            "tenant_id": "eos",
            "command_id": "l",
            "ts": format_instant(base_us),
            "user_id": "u",
        },
    ]
    for i in range(CALLS):
        events.append(call_start("eos", f"c{i}", format_instant(base_us + s + i * 1000)))
    for i in range(CALLS):
        events.append(
            {
                "type": "call_end",
                "call_id": f"c{i}",
                "tenant_id": "eos",
                "ts": format_instant(base_us + (3 + i) * s),
            }
        )
    return lines_of(events)


def test_a_worker_killed_between_produce_and_commit_charges_each_call_once(
    kafka_broker, tmp_path, monkeypatch
):
    prefix = unique_prefix("eos")
    monkeypatch.setenv("RATING_ENGINE_INSTANCE_ID", "eos-1")
    monkeypatch.setenv("RATING_ENGINE_COMMIT_INTERVAL_MS", "60000")  # only a disconnect commits
    first = WorkerProcess(prefix, tmp_path / "a")
    first.start()
    asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
    asyncio.run(produce_lines(BROKER, prefix, calls(now_us() - 60 * US_PER_S)))

    produced = read_charges(prefix, "read_uncommitted", CALLS, 60)
    assert len(produced) == CALLS, first.log_tail()
    first.kill()  # its transaction holds the charges, not yet committed
    assert read_charges(prefix, "read_committed", 1, 3) == []

    monkeypatch.setenv("RATING_ENGINE_COMMIT_INTERVAL_MS", "200")
    second = WorkerProcess(prefix, tmp_path / "b")  # same instance id: fences the first
    second.start()
    try:
        committed = read_charges(prefix, "read_committed", CALLS + 1, 30)
    finally:
        assert second.terminate() == 0, second.log_tail()
    everything = read_charges(prefix, "read_uncommitted", 2 * CALLS + 1, 10)

    ids = Counter(orjson.loads(v)["charge_id"] for v in committed)
    assert ids == {f"eos:c{i}": 1 for i in range(CALLS)}
    assert len(everything) == 2 * CALLS  # the aborted copies, and the committed ones
    assert sorted(everything) == sorted(produced + committed)  # the replay gave the same bytes
