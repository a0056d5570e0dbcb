"""Small aiokafka tools around the worker: replay an events file, collect the output topics.

Used by the demo (`rating_engine.stream.demo`), the integration tests and the load
test; they are edges, not part of the core. Each takes the `KafkaSettings` of the identity
it acts as (`rating_engine.stream.connection`), so on a secure broker it connects with TLS
and SCRAM and is held to that role's ACLs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterable, Sequence

import orjson

from ..core import COMMAND_FIELDS, OUTPUT_TOPICS, US_PER_S, format_instant, parse_instant, stamp_of
from .connection import KafkaSettings, from_env

ACCOUNT_TYPES = frozenset(COMMAND_FIELDS)  # the commands travel on `accounts`
TS_FIELDS = ("ts",)


def settings_of(target: KafkaSettings | str) -> KafkaSettings:
    """The settings themselves; a bare `kafka://host:port` takes the identity (protocol,
    user, password and CA files) from the `RATING_ENGINE_KAFKA_*` variables."""
    return target if isinstance(target, KafkaSettings) else from_env(broker=target)


def client_kwargs(target: KafkaSettings | str) -> dict[str, Any]:
    """aiokafka keyword arguments: address, TLS context and SASL credentials."""
    return settings_of(target).aiokafka()


def bootstrap(target: KafkaSettings | str) -> str:
    """`host:port` for a client that takes the address alone (plaintext only)."""
    return settings_of(target).bootstrap


def route(raw: bytes) -> tuple[str, bytes | None]:
    """Which input topic a line goes to, and its key (the tenant), as a switch would send it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "calls", None
    if not isinstance(obj, dict):
        return "calls", None
    tenant = obj.get("tenant_id")
    key = tenant.encode() if isinstance(tenant, str) else None
    return ("accounts" if obj.get("type") in ACCOUNT_TYPES else "calls"), key


def shift_times(lines: Iterable[bytes], new_start_us: int) -> list[bytes]:
    """Move every `ts` so the first event is at `new_start_us`, keeping the gaps exact."""
    out: list[bytes] = []
    first: int | None = None
    for raw in lines:
        try:
            obj = orjson.loads(raw)
            ts = parse_instant(obj["ts"])
        except Exception:
            out.append(raw)
            continue
        if first is None:
            first = int(ts)
        obj["ts"] = format_instant(ts - first + new_start_us)
        out.append(orjson.dumps(obj))
    return out


async def produce_lines(
    broker: KafkaSettings | str, prefix: str, lines: list[bytes], paced: bool = False
) -> int:
    """Send each line to `calls` or `accounts`; paced: at the wall time of its `ts`."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**client_kwargs(broker), linger_ms=5, acks="all")
    await producer.start()
    try:
        for raw in lines:
            due = stamp_of(raw) if paced else None
            if due is not None:
                delay = float(due / US_PER_S) - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            topic, key = route(raw)
            await producer.send(prefix + topic, raw, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(lines)


async def collect(
    broker: KafkaSettings | str,
    prefix: str,
    idle_s: float = 3.0,
    max_s: float = 120.0,
    until: int | None = None,
    stop: asyncio.Event | None = None,
    topics: Sequence[str] = OUTPUT_TOPICS,
) -> list[tuple[str, dict, float]]:
    """Read the output `topics` (all by default) from the start until quiet (and `stop` is
    set, if given).

    Returns (topic, record, receive wall time) in arrival order.
    """
    from aiokafka import AIOKafkaConsumer

    topics = [prefix + t for t in topics]
    consumer = AIOKafkaConsumer(
        *topics,
        **client_kwargs(broker),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",  # as billing and switches read: committed only
    )
    await consumer.start()
    got: list[tuple[str, dict, float]] = []
    started = last = time.monotonic()
    try:
        while time.monotonic() - started < max_s:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for tp, msgs in batch.items():
                for m in msgs:
                    got.append((tp.topic[len(prefix) :], orjson.loads(m.value), now))
            if batch:
                last = time.monotonic()
            if until is not None and len(got) >= until:
                break
            if time.monotonic() - last > idle_s and (stop is None or stop.is_set()):
                break
    finally:
        await consumer.stop()
    return got


async def wait_ready(broker: KafkaSettings | str, prefix: str, timeout_s: float = 120.0) -> None:
    """Send a probe line until the worker dead-letters it: proof it consumes and produces."""
    import uuid

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    token = uuid.uuid4().hex
    probe = orjson.dumps({"probe": token})
    producer = AIOKafkaProducer(**client_kwargs(broker))
    consumer = AIOKafkaConsumer(
        prefix + "dead-letters",
        **client_kwargs(broker),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        next_probe = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_probe:
                await producer.send_and_wait(prefix + "calls", probe)
                next_probe = time.monotonic() + 5.0
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    if token.encode() in m.value:
                        return
        raise TimeoutError(f"worker on prefix {prefix!r} not ready after {timeout_s}s")
    finally:
        await producer.stop()
        await consumer.stop()


def is_probe(topic: str, record: dict) -> bool:
    return topic == "dead-letters" and '"probe"' in (record.get("original") or "")
