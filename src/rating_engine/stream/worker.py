"""The streaming worker: Faust on Kafka, driving the same tenant core as `simulate`.

Design (see README "Streaming worker"):
- One agent consumes `calls`, `accounts` and an internal `ticks` topic, all
  keyed by tenant and co-partitioned, in `take_events` batches: it decides a
  batch in order, then hands its outputs, its `seen` entries and each changed
  tenant's state (once per batch) to aiokafka as record batches (`outbox.py`).
- The core's `Driver` decides a whole batch in one call (`native/src/batch.rs`): the
  records in order, ticks included, with read access to the two tables below; it hands
  back the outputs, the `seen` entries to write and each changed tenant's state bytes,
  next due instant and live calls.
- Tenant state lives in the `tenants` table, remembered outputs (for
  duplicate re-emission) in the `seen` table; both are changelog-backed, so a
  restarted or rebalanced worker recovers them. `seen` entries and states are
  stamped with input offsets, so an entry whose state was lost is ignored.
- Each worker keeps a heap of its tenants' next due instants and sleeps until
  the earliest (no polling). At the due wall-clock instant it publishes a tick
  to the tenant's partition; the agent fires the timers through the core,
  after the inputs that were on the wire before the tick.
- Outputs are sent before the state is saved: a crash replays the input from
  the last commit and re-emits identical records with identical ids, so
  at-least-once delivery is harmless downstream.
- Two faust-streaming rebalance faults are caught: records skipped by the
  consumer (an offset jump: they are read again) and a partition whose commit
  is stuck (the worker exits, code 3, so the group reassigns it).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import os
import time
from collections import Counter
from fractions import Fraction
from typing import Any

import orjson

from ..core import (
    DEAD_LETTERS,
    DISCONNECTS,
    OUTPUT_TOPICS,
    US_PER_S,
    Driver,
    Instant,
    Tenant,
    load_deck,
    parse_instant,
    stamp_of,
)
from . import metrics
from .kafkaio import bootstrap, ensure_topics
from .outbox import Outbox

log = logging.getLogger("rating_engine.stream.worker")

DEFER_RETRY_US = 50_000  # a deferred tick is tried again this long after
STALL_CHECK_S = 5.0  # how often owned input partitions are checked for progress
STALL_S = 20.0  # an input partition's commit stuck this long with records waiting: exit
EXIT_STALLED = 3


def load_tenant(data: bytes, deck: Any) -> tuple[Tenant, dict[str, Any]]:
    """A tenant from the `tenants` table, with the worker's members of its state."""
    t, extra = Tenant.load(deck, data)
    return t, orjson.loads(extra)


def wall_us() -> int:
    return time.time_ns() // 1000


def _inst_text(x: Instant) -> str:
    return str(x) if isinstance(x, int) else f"{x.numerator}/{x.denominator}"


def _inst_parse(text: str) -> Instant:
    q = Fraction(text)
    return q.numerator if q.denominator == 1 else q


# One input record for the core: (topic without prefix, partition, offset, key, value).
Record = tuple[str, int, int, "bytes | None", "bytes | None"]
# One output: (tenant or None, output topic without prefix, payload, emitted by a timer).
Output = tuple["str | None", str, bytes, bool]


MARK = b"\x00decided\x1f"  # tenants-table key prefix of the last decided offset per input partition


def _mark_key(tp: Any) -> bytes:
    return MARK + f"{tp.topic}\x1f{tp.partition}".encode()


def in_ts_order(batch: list[Any], inputs: tuple[str, ...]) -> list[Any]:
    """The batch with its inputs merged by `ts` across `calls` and `accounts`, ticks in place.

    The consumer hands out the records of one fetch round-robin across topic-partitions, so a
    `calls` event can come before an `accounts` command stamped earlier that was on the wire
    first (a licence assigned at T, a call started at T + 100 ms: `not_licensed`). Each
    topic-partition keeps its own order (an input stamped before its predecessor, or not
    stamped at all, counts as stamped like it), and equal stamps keep their arrival order.
    """
    slots = [i for i, e in enumerate(batch) if e.message.topic in inputs]
    if len(slots) < 2:
        return batch
    last: dict[Any, Instant | None] = {}
    keys: list[tuple[bool, Instant, int]] = []
    for n, i in enumerate(slots):
        tp = batch[i].message.tp
        ts, prev = stamp_of(batch[i].value or b""), last.get(tp)
        if ts is None or (prev is not None and ts < prev):
            ts = prev
        last[tp] = ts
        keys.append((ts is not None, ts or 0, n))  # unstamped before all, until a stamp is met
    merged = list(batch)
    for slot, (_, _, n) in zip(slots, sorted(keys)):
        merged[slot] = batch[slots[n]]
    return merged


class _Refetched:
    """A record read again by the worker itself, shaped like the Faust event `decide` takes."""

    def __init__(self, record: Any) -> None:
        from faust.types import TP

        self.value = record.value
        self.message = self
        self.topic, self.partition, self.offset = record.topic, record.partition, record.offset
        self.tp = TP(record.topic, record.partition)


class TimerHeap:
    """Next due instant per tenant; one sleeping task wakes at the earliest.

    A timer fires at its due instant, or later when its tick was deferred
    (`defer`): then `fire_at` is the wall instant of the next try.
    """

    def __init__(self) -> None:
        self.heap: list[tuple[Instant, str]] = []
        self.due: dict[
            str, tuple[Instant, int, Instant]
        ] = {}  # tenant -> (due, partition, fire_at)
        self.changed = asyncio.Event()

    def set(self, tenant_id: str, due: Instant | None, partition: int) -> None:
        current = self.due.get(tenant_id)
        if due is None:
            if current is not None:
                del self.due[tenant_id]
        elif current is None or current[0] != due:
            self._put(tenant_id, due, partition, due)
        metrics.TIMERS_PENDING.set(len(self.due))

    def defer(self, tenant_id: str, due: Instant, partition: int, fire_at: Instant) -> None:
        """Try the tick of `due` again at `fire_at`, unless the tenant is re-planned before."""
        if tenant_id not in self.due:
            self._put(tenant_id, due, partition, fire_at)
        metrics.TIMERS_PENDING.set(len(self.due))

    def _put(self, tenant_id: str, due: Instant, partition: int, fire_at: Instant) -> None:
        self.due[tenant_id] = (due, partition, fire_at)
        heapq.heappush(self.heap, (fire_at, tenant_id))
        if self.heap[0] == (fire_at, tenant_id):
            self.changed.set()

    def pop_due(self, now: Instant) -> list[tuple[str, Instant, int]]:
        fired = []
        while self.heap and self.heap[0][0] <= now:
            fire_at, tid = heapq.heappop(self.heap)
            cur = self.due.get(tid)
            if cur is None or cur[2] != fire_at:
                continue
            del self.due[tid]
            fired.append((tid, cur[0], cur[1]))
        metrics.TIMERS_PENDING.set(len(self.due))
        return fired

    def next_instant(self) -> Instant | None:
        while self.heap:
            fire_at, tid = self.heap[0]
            cur = self.due.get(tid)
            if cur is not None and cur[2] == fire_at:
                return fire_at
            heapq.heappop(self.heap)
        return None

    def clear(self) -> None:
        self.heap.clear()
        self.due.clear()


def build_app(args: argparse.Namespace) -> Any:
    """Create the Faust app, its topics, tables, agent and timer task."""
    import faust
    from faust.exceptions import NotReady
    from faust.types import TP

    deck = load_deck(args.rates)
    prefix = args.topic_prefix
    n = args.partitions
    app = faust.App(
        f"{prefix}{args.app_id}",
        broker=args.broker,
        store="memory://",
        datadir=args.state_dir,
        web_enabled=False,
        topic_partitions=n,
        topic_replication_factor=1,
        table_standby_replicas=0,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=2.0,
        key_serializer="raw",
        value_serializer="raw",
    )

    def topic(name: str) -> Any:
        return app.topic(
            prefix + name, key_type=bytes, value_type=bytes, partitions=n, internal=True
        )

    source = app.topic(
        prefix + "calls",
        prefix + "accounts",
        prefix + "ticks",
        key_type=bytes,
        value_type=bytes,
        partitions=n,
        internal=True,
    )
    ticks = topic("ticks")
    outputs = {name: topic(name) for name in OUTPUT_TOPICS}
    tenants_table = app.Table("tenants", partitions=n, key_type=bytes, value_type=bytes)
    seen_table = app.Table("seen", partitions=n, key_type=bytes, value_type=bytes)
    timers = TimerHeap()
    grace_us = args.timer_grace_ms * 1000
    driver = Driver(deck)  # the tenants this worker decides, kept between batches
    live_counts: dict[str, int] = {}
    tenants_topic = tenants_table.changelog_topic.get_topic_name()
    seen_topic = seen_table.changelog_topic.get_topic_name()
    defer_max_us = args.tick_defer_max_ms * 1000
    inputs = (prefix + "calls", prefix + "accounts")
    decided: dict[Any, int] = {}  # input topic-partition -> offset of the last input decided

    async def input_ends(partition: int) -> list[int | None]:
        """The input partitions' ends: as this consumer last saw them, else asked of the broker."""
        tps = [TP(name, partition) for name in inputs]
        ends: list[int | None] = []
        for tp in tps:
            try:
                ends.append(app.consumer.highwater(tp))
            except (AssertionError, KeyError):  # not assigned (any more)
                ends.append(None)
        if None in ends:  # nothing fetched yet, e.g. just after a rebalance: the broker knows
            try:
                asked = await app.consumer.highwaters(*tps)
                ends = [asked.get(tp) for tp in tps]
            except Exception as exc:  # no deferral then, the tick fires as before
                log.warning("input ends of partition %d unknown: %r", partition, exc)
        return ends

    def last_decided(tp: Any) -> int | None:
        """The last offset of input partition `tp` this agent decided: in memory, else the
        mark kept in the `tenants` table (it survives a rebalance); None before any."""
        done = decided.get(tp)
        if done is None:
            mark = tenants_table.data.get(_mark_key(tp))
            done = None if mark is None else int(mark)
        return done

    def behind(partition: int, after: list[int | None] | None) -> bool:
        """Are inputs that were on the wire when the tick was sent still undecided?

        A tick can overtake them (it travels on its own topic); deciding them
        first gives the tenant the same timeline as `simulate`.
        """
        for name, end in zip(inputs, after or ()):
            if end is None:
                continue
            tp = TP(name, partition)
            done = last_decided(tp)
            next_offset = done + 1 if done is not None else app.consumer._committed_offset.get(tp)
            if next_offset is not None and next_offset < end:
                return True
        return False

    def take(event: Any, records: list[Record]) -> None:
        """One event into the batch's records for the core, in order; a tick whose inputs
        are still on the wire is deferred instead."""
        msg = event.message
        value = event.value
        raw = value if value is None or isinstance(value, bytes) else bytes(value)
        topic_name = msg.topic[len(prefix) :]
        if topic_name == "ticks":
            tick = orjson.loads(raw or b"null")
            tid, due = tick["tenant_id"], _inst_parse(tick["due"])
            metrics.EVENTS_IN.labels(topic_name, "tick").inc()
            if behind(msg.partition, tick.get("after")) and wall_us() < due + defer_max_us:
                metrics.TICKS_DEFERRED.inc()
                timers.defer(tid, due, msg.partition, wall_us() + DEFER_RETRY_US)
                return
            metrics.TIMER_FIRES.inc()
        else:
            decided[msg.tp] = msg.offset
        records.append((topic_name, msg.partition, msg.offset, msg.key, raw))

    def decide(records: list[Record]) -> tuple[list[Output], list[Any], list[Any]]:
        """The batch through the core: its outputs, seen entries and changed tenants. The
        entries go to the `seen` store at once; the changelog gets them in `save`."""
        started = time.perf_counter()
        outputs, writes, changed, kinds = driver.decide(
            records, tenants_table.data, seen_table.data
        )
        if records:
            each = (time.perf_counter() - started) / len(records)
            for _ in records:
                metrics.PROCESSING.observe(each)
        for (topic_name, kind), n in Counter(kinds).items():
            metrics.EVENTS_IN.labels(topic_name, kind).inc(n)
        for _, key, value in writes:
            seen_table.data[key] = value
        metrics.TENANTS.set(len(driver))
        return outputs, writes, changed

    def on_delivered(fut: Any) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if (
            exc is not None
        ):  # the input would be committed without its outputs: stop, replay on restart
            log.error("could not publish a record: %r; stopping so the input is replayed", exc)
            asyncio.ensure_future(app.crash(exc))

    async def publish(outbox: Outbox, out: list[Output]) -> None:
        for tid, name, payload, timed in out:
            await outbox.add(prefix + name, None if tid is None else tid.encode(), payload)
            metrics.RECORDS_OUT.labels(name).inc()
            if name == DISCONNECTS and timed:
                at = parse_instant(orjson.loads(payload)["at"])
                metrics.DISCONNECT_LATENESS.observe(max(0, wall_us() - at) / US_PER_S)
            elif name == DEAD_LETTERS:
                metrics.DEAD_LETTERS.labels(orjson.loads(payload)["reason"]).inc()

    async def save(outbox: Outbox, writes: list[Any], changed: list[Any], read: set[Any]) -> None:
        """The batch's state, after its outputs: seen entries, each changed tenant once, and
        the last decided offset of each input partition the batch `read`."""
        for partition, key, value in writes:
            await outbox.add(seen_topic, key, value, partition)
        for tid, partition, data, due, live in changed:
            key = tid.encode()
            tenants_table.data[key] = data
            await outbox.add(tenants_topic, key, data, partition)
            timers.set(tid, due, partition)
            if live_counts.get(tid, 0) != live:
                live_counts[tid] = live
                metrics.LIVE_CALLS.set(sum(live_counts.values()))
        for tp in read:
            key, value = _mark_key(tp), str(decided[tp]).encode()
            tenants_table.data[key] = value
            await outbox.add(tenants_topic, key, value, tp.partition)

    refetcher: list[Any] = []  # a group-less aiokafka consumer, started on first need

    async def skipped_before(tp: Any, offset: int) -> list[Any]:
        """Inputs of `tp` before `offset` that were never decided, fetched again, in order.

        Kafka offsets of an input partition are consecutive, and this agent decides
        every input. The last decided offset of each input partition is kept in the
        `tenants` table (so it survives a rebalance); a jump past it means the consumer
        skipped records (faust-streaming skips, and acks, records fetched under an
        older group generation). They are read again directly and decided first.
        """
        last = last_decided(tp)
        if last is None or offset <= last + 1:
            return []
        missed = await refetch(tp, last + 1, offset)
        if missed:  # (a transactional producer's commit markers also leave offsets without records)
            log.error(
                "input %s: %d record(s) between offsets %d and %d were skipped by the consumer; "
                "read again and decided",
                tp,
                len(missed),
                last + 1,
                offset - 1,
            )
            metrics.REFETCHED.inc(len(missed))
        return missed

    async def refetch(tp: Any, start: int, end: int) -> list[Any]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if not refetcher:
            side = AIOKafkaConsumer(
                bootstrap_servers=bootstrap(args.broker), enable_auto_commit=False
            )
            await side.start()
            refetcher.append(side)
        side = refetcher[0]
        ktp = TopicPartition(tp.topic, tp.partition)
        side.assign([ktp])
        side.seek(ktp, start)
        got: list[Any] = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (not got or got[-1].message.offset < end - 1):
            records = (await side.getmany(ktp, timeout_ms=1000)).get(ktp, [])
            got.extend(_Refetched(r) for r in records if start <= r.offset < end)
        return got

    @app.agent(source)
    async def rate(stream: Any) -> None:
        """Decide a batch of inputs in `ts` order, then publish its outputs, then its state."""
        outbox = Outbox(app.producer._ensure_producer(), on_delivered)
        async for batch in stream.take_events(args.batch_max, within=args.batch_ms / 1000):
            records: list[Record] = []
            for event in in_ts_order(batch, inputs):
                msg = event.message
                if msg.topic in inputs:
                    for missed in await skipped_before(msg.tp, msg.offset):
                        take(missed, records)
                take(event, records)
            out, writes, changed = decide(records)
            await publish(outbox, out)
            await save(
                outbox, writes, changed, {e.message.tp for e in batch if e.message.topic in inputs}
            )
            await outbox.flush()

    @app.task
    async def fire_timers() -> None:
        """Sleep until the earliest due instant, then tick each due tenant's partition."""
        for out_topic in (ticks, *outputs.values()):
            await out_topic.maybe_declare()
        while True:
            timers.changed.clear()
            now = wall_us()
            for tid, due, partition in timers.pop_due(now - grace_us):
                tick = {
                    "tenant_id": tid,
                    "due": _inst_text(due),
                    "after": await input_ends(partition),
                }
                try:
                    await ticks.send(
                        key=tid.encode(), partition=partition, value=orjson.dumps(tick)
                    )
                except NotReady:
                    if app.should_stop:  # the producer stopped first: no tick is lost, the
                        return  # partition's next owner plans its timers from the table
                    raise
            nxt = timers.next_instant()
            timeout = (
                None if nxt is None else max(0.0, float(nxt + grace_us - wall_us()) / US_PER_S)
            )
            try:
                await asyncio.wait_for(timers.changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    stalled_since: dict[Any, tuple[int, float]] = {}  # input tp -> (committed offset, since)

    @app.timer(interval=STALL_CHECK_S)
    async def watch_inputs() -> None:
        """Exit when an owned input partition's committed offset stops short of its end.

        Seen with faust-streaming after rebalances: a partition assigned but not fetched
        (faust-streaming/faust#629), or inputs decided but one ack missing, so the commit
        never passes it. After STALL_S s without progress the worker exits (code 3): the
        group hands the partition to another worker (or the supervisor restarts this
        one), which reads it again from the committed offset; the core re-emits identical
        records for inputs already decided. Seeking the partition in place was tried:
        Faust then skipped and acked the re-read inputs, losing them.
        """
        if app.rebalancing:
            stalled_since.clear()
            return
        owned = [tp for tp in app.consumer.assignment() if tp.topic in inputs]
        try:
            ends = await app.consumer.highwaters(*owned) if owned else {}
        except Exception as exc:
            log.warning("stall check: input ends unknown: %r", exc)
            return
        now = time.monotonic()
        for tp in owned:
            committed, end = app.consumer._committed_offset.get(tp), ends.get(tp)
            if committed is None or end is None or committed >= end:
                stalled_since.pop(tp, None)
                continue
            seen = stalled_since.get(tp)
            if seen is None or seen[0] != committed:
                stalled_since[tp] = (committed, now)
            elif now - seen[1] >= STALL_S:
                metrics.STALLS.inc()
                log.error(
                    "input %s committed at %d of %d for %.0f s; exiting so the group reassigns it",
                    tp,
                    committed,
                    end,
                    now - seen[1],
                )
                os._exit(EXIT_STALLED)

    @app.on_partitions_revoked.connect
    async def forget_cache(app: Any, revoked: Any, **kwargs: Any) -> None:
        driver.forget()
        decided.clear()
        stalled_since.clear()
        live_counts.clear()
        timers.clear()
        metrics.TENANTS.set(0)
        metrics.LIVE_CALLS.set(0)

    @app.on_before_shutdown.connect
    async def close_refetcher(app: Any, **kwargs: Any) -> None:
        """The side consumer of `refetch` leaves with the worker (its connections closed)."""
        while refetcher:
            await refetcher.pop().stop()

    @app.on_rebalance_complete.connect
    async def plan_timers(app: Any, **kwargs: Any) -> None:
        """After recovery, schedule every owned tenant's next timer from the table."""
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == prefix + "calls"}
        tenants = 0
        for key, data in list(tenants_table.data.items()):
            if key.startswith(MARK):
                continue
            t, extra = load_tenant(data, deck)
            partition = extra.get("partition")
            if partition in owned:
                tenants += 1
                live_counts[t.tenant_id] = t.live_calls
                due = t.next_due()
                timers.set(t.tenant_id, None if due is None else due[0], partition)
        metrics.TENANTS.set(tenants)
        metrics.LIVE_CALLS.set(sum(live_counts.values()))
        timers.changed.set()

    return app


def run_worker(args: argparse.Namespace) -> int:
    import os

    from faust import Worker
    from prometheus_client import start_http_server

    from ..offline.files import CliError

    os.makedirs(args.state_dir, exist_ok=True)
    try:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    except OSError as exc:
        raise CliError(f"metrics port {args.metrics_port}: {exc.strerror}") from None
    try:
        # Created before the group join: left to Faust, `ticks` could be declared after the
        # first join (no timers), and a broker that auto-creates topics gives them 1 partition.
        asyncio.run(
            ensure_topics(
                args.broker,
                args.topic_prefix,
                args.partitions,
                ("calls", "accounts", "ticks", *OUTPUT_TOPICS),
            )
        )
    except Exception as exc:  # the broker is down or refuses: one clear line, exit 2
        raise CliError(f"broker {args.broker}: cannot create topics: {exc}") from None
    metrics.prime()
    app = build_app(args)
    worker = Worker(app, loglevel="WARNING", quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (faust/worker.py
    # _setup_spinner_handler): every library debug line would then be built and dropped.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
