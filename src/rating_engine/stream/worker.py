"""The streaming worker: read a batch, decide it in the core, produce it, commit it atomically.

- One confluent-kafka (librdkafka) consumer reads `calls` and `accounts` (keyed by tenant,
  co-partitioned) in the batches the client has fetched; the core's `Driver` decides a whole
  batch in one call (`native/src/batch.rs`) over the two tables below (it writes the batch's
  `seen` entries itself), and hands back the outputs, those entries for the changelog and
  each changed tenant's next due instant and live calls.
- Tables: tenant state (`tenants`) and remembered outputs for duplicate re-emission (`seen`)
  live in memory for the partitions this worker owns, in the core's `Table` (bytes by key,
  the open transaction's writes undone when it aborts), each backed by a compacted changelog
  topic co-partitioned with the inputs (`<prefix><app-id>-tenants-changelog`,
  `-seen-changelog`), restored when a partition is assigned.
- Exactly-once (KIP-447): outputs, changelog writes and the input offsets of a stretch of
  batches go in one Kafka transaction, its offsets bound to the consumer group's metadata,
  so a `read_committed` consumer sees each record once even when the worker dies between
  produce and commit. A transaction is committed at the latest `--commit-interval-ms` after
  it began; one that holds a disconnect (the switch must see it now) at once, unless the
  last commit ended less than `--disconnect-commit-ms` ago: then when it is that long ago
  (under load, one commit for many batches: a commit costs milliseconds of round trips).
- Timers: a heap of the owned tenants' next due instants; the loop's wait ends exactly at
  the earliest (no polling). A due timer fires inside the worker as a tick record decided
  after the inputs already fetched, and is put off while inputs sent before it are still on
  the wire for its partition (a backlog, also the one a partition brings when it is
  assigned), so the tenant gets the same timeline as in `simulate`.
- Tenant states are written once per transaction, when it commits (`save_tenants`): each
  tenant it changed, as it stands then, to the tenants table and changelog, and its account
  view (rendered by the core from the tenant in memory: the bytes `core.account_view` gives
  of that state) to the compacted `<prefix>account-views`.
- Failover: range assignment (co-partitioned), optional static membership
  (`--instance-id`), short session timeouts; the transactional id follows the instance id, so a restarted
  instance fences its predecessor and aborts its open transaction at once.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import logging
import math
import signal
import time
import uuid
from collections import Counter
from typing import Any, Collection

import orjson

from ..core import (
    DEAD_LETTERS,
    DISCONNECTS,
    OUTPUT_TOPICS,
    US_PER_S,
    Driver,
    Instant,
    Table,
    Tenant,
    load_deck,
    parse_instant,
    stamp_of,
)
from . import connection, metrics

log = logging.getLogger("rating_engine.stream.worker")

INPUTS = ("calls", "accounts")
VIEWS = "account-views"  # compacted: each tenant's latest account view (docs/account-views.md)
TABLES = ("tenants", "seen")
DEFER_RETRY_US = 5_000  # a deferred tick is tried again this long after
IDLE_WAIT_S = 0.5  # longest wait for input when no timer or commit is due (to see SIGTERM)
GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections (CPython: 700)
EXIT_FENCED = 3  # another instance with this transactional id took over
EXIT_REFUSED = 2  # the broker refuses this worker's settings or identity: no retry helps
REFUSALS = frozenset(
    {
        "INVALID_SESSION_TIMEOUT",
        "GROUP_AUTHORIZATION_FAILED",
        "TOPIC_AUTHORIZATION_FAILED",
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        "SASL_AUTHENTICATION_FAILED",
        "_AUTHENTICATION",
        "_SSL",
    }
)

# One input record for the core: (topic without prefix, partition, offset, key, value).
Record = tuple[str, int, int, "bytes | None", "bytes | None"]


def produce_waiting(
    producer: Any, topic: str, value: bytes, key: bytes | None, partition: int = -1
) -> None:
    """`producer.produce`, waiting while the client's queue is full (it delivers meanwhile)."""
    while True:
        try:
            producer.produce(topic, value, key, partition)
            return
        except BufferError:
            producer.poll(0.05)


def wall_us() -> int:
    return time.time_ns() // 1000


def _inst_text(x: Instant) -> str:
    return str(x) if isinstance(x, int) else f"{x.numerator}/{x.denominator}"


def in_ts_order(batch: list[Record]) -> list[Record]:
    """The batch with its inputs merged by `ts` across `calls` and `accounts`, ticks in place.

    The consumer hands out the records of one fetch topic-partition by topic-partition, so a
    `calls` event can come before an `accounts` command stamped earlier that was on the wire
    first (a licence assigned at T, a call started at T + 100 ms: `not_licensed`). Each
    topic-partition keeps its own order (an input stamped before its predecessor, or not
    stamped at all, counts as stamped like it), and equal stamps keep their arrival order.
    """
    slots = [i for i, r in enumerate(batch) if r[0] in INPUTS]
    if len({batch[i][0] for i in slots}) < 2:
        return batch  # one input topic: its partitions' own orders are all there is
    last: dict[tuple[str, int], Instant | None] = {}
    keys: list[tuple[bool, Instant, int]] = []
    for n, i in enumerate(slots):
        topic, partition, _, _, value = batch[i]
        tp = (topic, partition)
        ts, prev = stamp_of(value or b""), last.get(tp)
        if ts is None or (prev is not None and ts < prev):
            ts = prev
        last[tp] = ts
        keys.append((ts is not None, ts or 0, n))  # unstamped before all, until a stamp is met
    merged = list(batch)
    for slot, (_, _, n) in zip(slots, sorted(keys)):
        merged[slot] = batch[slots[n]]
    return merged


def undecided_before(end: int, position: int, resumed_from: int, low: int) -> bool:
    """Does a topic-partition hold an input before offset `end` that is not decided yet?

    Offsets below 0 are unknown to the client: `end` before the first fetch since the
    assignment (then the answer is yes, to be safe), `position` until a record of it is
    consumed (reading then resumes at the committed offset `resumed_from`, or at the log's
    start `low` for a group with no commit)."""
    if end < 0:
        return True
    at = position if position >= 0 else resumed_from if resumed_from >= 0 else max(low, 0)
    return at < end


def commit_due(
    now_us: int,
    started_us: int,
    interval_us: int,
    urgent: bool,
    last_commit_us: int,
    spacing_us: int,
) -> bool:
    """Is the open transaction to be committed now?

    `interval_us` after it began; when it holds a disconnect (`urgent`), at once, unless the
    last commit ended less than `spacing_us` ago: then as soon as it is that long ago. Under
    load a commit per batch would leave the loop waiting on commits (each costs milliseconds
    of round trips to the coordinators) while the input backs up behind it; spaced, a
    disconnect waits at most `spacing_us` and one commit carries the batches of that time."""
    if now_us - started_us >= interval_us:
        return True
    return urgent and now_us - last_commit_us >= spacing_us


class TimerHeap:
    """Next due instant per tenant; the loop's wait ends at the earliest.

    A timer fires at its due instant, or later when its tick was deferred (`defer`): then
    `fire_at` is the wall instant of the next try.
    """

    def __init__(self) -> None:
        self.heap: list[tuple[int, str]] = []  # (fire_at µs, tenant), stale ones skipped
        self.due: dict[str, tuple[Instant, int, int]] = {}  # tenant -> (due, partition, fire_at)

    def set(self, tenant_id: str, due: Instant | None, partition: int) -> None:
        """Plan the tenant's next timer (None: it has none). The pending gauge is the
        caller's to update, once per batch."""
        current = self.due.get(tenant_id)
        if due is None:
            if current is not None:
                del self.due[tenant_id]
        elif current is None or current[0] != due:
            self._put(tenant_id, due, partition, due)

    def defer(self, tenant_id: str, due: Instant, partition: int, fire_at: Instant) -> None:
        """Try the tick of `due` again at `fire_at`, unless the tenant is re-planned before."""
        if tenant_id not in self.due:
            self._put(tenant_id, due, partition, fire_at)

    def _put(self, tenant_id: str, due: Instant, partition: int, fire_at: Instant) -> None:
        # the wall clock has whole microseconds: a rational instant fires at the next one,
        # and the heap compares ints (a Fraction's comparison is a Python call)
        fire_us = math.ceil(fire_at)
        self.due[tenant_id] = (due, partition, fire_us)
        heapq.heappush(self.heap, (fire_us, tenant_id))

    def pop_due(self, now: Instant) -> list[tuple[str, Instant, int]]:
        fired = []
        while self.heap and self.heap[0][0] <= now:
            fire_at, tid = heapq.heappop(self.heap)
            cur = self.due.get(tid)
            if cur is None or cur[2] != fire_at:
                continue
            del self.due[tid]
            fired.append((tid, cur[0], cur[1]))
        return fired

    def next_instant(self) -> Instant | None:
        while self.heap:
            fire_at, tid = self.heap[0]
            cur = self.due.get(tid)
            if cur is not None and cur[2] == fire_at:
                return fire_at
            heapq.heappop(self.heap)
        return None

    def drop_partitions(self, partitions: Collection[int]) -> None:
        for tid in [t for t, (_, p, _) in self.due.items() if p in partitions]:
            del self.due[tid]
        metrics.TIMERS_PENDING.set(len(self.due))


class Worker:
    """Consume -> decide -> produce -> commit, one loop on one thread."""

    def __init__(self, args: argparse.Namespace, settings: connection.KafkaSettings) -> None:
        from confluent_kafka import Consumer, Producer

        self.args = args
        self.settings = settings
        self.prefix = args.topic_prefix
        self.deck = load_deck(args.rates)
        self.driver = Driver(self.deck)
        self.timers = TimerHeap()
        self.grace_us = args.timer_grace_ms * 1000
        self.defer_max_us = args.tick_defer_max_ms * 1000
        self.commit_us = args.commit_interval_ms * 1000
        app = f"{self.prefix}{args.app_id}"
        self.tables = {name: Table(f"{app}-{name}-changelog") for name in TABLES}
        self.inputs = [self.prefix + t for t in INPUTS]
        self.owned: set[int] = set()
        self.held: set[int] = set()  # revoked, tables kept until the next assignment
        self.live_counts: dict[str, int] = {}
        self.live_total = 0  # the sum of live_counts (the live calls gauge)
        self.waiting: dict[str, tuple[Instant, list[tuple[Any, int]]]] = {}  # deferred ticks
        # (topic, partition) -> the committed offset its reading resumed from at assignment
        self.starts: dict[tuple[str, int], int] = {}
        self.assigned_ends: dict[tuple[str, int], int] = {}  # (topic, p) -> end at assignment
        self.assigned_us: dict[int, int] = {}  # partition -> wall instant of its assignment
        self.stopping = False
        self.in_txn = False
        self.txn_started_us = 0
        self.txn_urgent = False  # the open transaction holds a disconnect
        self.last_commit_us = 0  # wall instant the last commit ended
        self.spacing_us = args.disconnect_commit_ms * 1000
        self.txn_disconnects: list[bytes] = []
        self.txn_ids = f"{app}-{args.instance_id or uuid.uuid4().hex[:12]}"
        self.out_topics = {name: self.prefix + name for name in OUTPUT_TOPICS}
        base = settings.librdkafka()
        consumer_conf: dict[str, Any] = {
            **base,
            "group.id": app,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # range gives partition p of `calls` and of `accounts` to the same worker (the
            # sticky assignors do not): a tenant is decided in one place
            "partition.assignment.strategy": "range",
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": max(100, args.session_timeout_ms // 4),
            "max.poll.interval.ms": max(args.session_timeout_ms, 30_000),
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": False,
        }
        if args.instance_id:
            consumer_conf["group.instance.id"] = f"{app}-{args.instance_id}"
        self.consumer = Consumer(consumer_conf)
        self.producer = Producer(
            {
                **base,
                "transactional.id": self.txn_ids,
                "transaction.timeout.ms": args.transaction_timeout_ms,
                "partitioner": "murmur2_random",  # where Java clients put a key
                "linger.ms": 2,
                # the broker's record limit: outputs echoing a 1 MiB input's fields fit
                "message.max.bytes": 8_388_608,
                "acks": "all",
                "enable.idempotence": True,
            }
        )
        self.restorer_conf = {
            **base,
            "group.id": f"{app}-restore",  # never subscribes nor commits; assign() only
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        }

    # ------------------------------------------------------------------ rebalance

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Restore the new partitions' tables, then plan their tenants' timers."""
        assigned = {tp.partition for tp in partitions if tp.topic in self.inputs}
        new = assigned - self.owned
        for table in self.tables.values():  # held since the revocation, not ours again
            table.drop(sorted(self.held - assigned))
        kept, self.held = self.held & new, set()
        if not new:
            return
        started = time.monotonic()
        restored = self.restore(new - kept)  # a partition back to its holder is current
        self.note_starts(consumer, new)
        self.owned |= new
        tenants = self.tables["tenants"]
        self.plan_timers(new)
        took = time.monotonic() - started
        metrics.RESTORE_SECONDS.observe(took)
        metrics.TENANTS.set(len(tenants))
        self.count_live_calls()
        log.info(
            "assigned partitions %s: %d table records restored in %.3f s",
            sorted(new),
            restored,
            took,
        )

    def on_revoke(self, consumer: Any, partitions: list[Any], keep: bool = True) -> None:
        """Commit what was decided (its offsets still ours), then stop deciding the partitions.

        With the range assignor a rebalance revokes every partition and usually gives most of
        them back: their tables are held (nobody decides them between the revocation and the
        assignment) and dropped only if another worker gets them."""
        gone = {tp.partition for tp in partitions if tp.topic in self.inputs} & self.owned
        if not gone:
            return
        if self.in_txn:
            self.commit()
        self.owned -= gone
        if keep:
            self.held |= gone
        else:
            for table in self.tables.values():
                table.drop(sorted(gone))
        self.timers.drop_partitions(gone)
        self.waiting.clear()
        self.starts = {tp: o for tp, o in self.starts.items() if tp[1] not in gone}
        self.assigned_ends = {tp: o for tp, o in self.assigned_ends.items() if tp[1] not in gone}
        self.driver.forget()
        self.live_counts = {
            tid: n for tid, n in self.live_counts.items() if tid.encode() in self.tables["tenants"]
        }
        metrics.TENANTS.set(len(self.tables["tenants"]))
        self.count_live_calls()
        log.info("revoked partitions %s", sorted(gone))

    def count_live_calls(self) -> None:
        self.live_total = sum(self.live_counts.values())
        metrics.LIVE_CALLS.set(self.live_total)

    def on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions taken away without a handover (this worker was too slow or cut off):
        its open transaction cannot commit any more, so it is aborted and forgotten."""
        if self.in_txn:
            try:
                self.producer.abort_transaction(30.0)
            finally:
                self.in_txn = False
                for table in self.tables.values():
                    table.rollback()
                self.txn_disconnects.clear()
        self.on_revoke(consumer, partitions, keep=False)

    def restore(self, partitions: set[int]) -> int:
        """Read the tables' changelog partitions from the start to their committed end."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        restorer = Consumer(self.restorer_conf)
        n = 0
        try:
            todo: dict[tuple[str, int], int] = {}
            for table in self.tables.values():
                for p in partitions:
                    lo, hi = restorer.get_watermark_offsets(TopicPartition(table.topic, p), 10.0)
                    if hi > lo:
                        todo[(table.topic, p)] = hi
            if not todo:
                return 0
            by_topic = {t.topic: t for t in self.tables.values()}
            restorer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p) in todo])
            while todo:
                for m in restorer.consume(10_000, 0.5):
                    err = m.error()
                    topic, partition, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
                    tp = (topic, partition)
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if tp in todo and offset >= todo[tp]:
                                del todo[tp]
                        continue
                    key = m.key()
                    if key is not None:
                        by_topic[topic].restored(partition, key, m.value())
                        n += 1
                    if tp in todo and offset + 1 >= todo[tp]:
                        del todo[tp]
                if todo:  # an open transaction holds the end back, or markers follow
                    for (t, p), hi in list(todo.items()):
                        pos = restorer.position([TopicPartition(t, p)])[0].offset
                        if pos >= hi:
                            del todo[(t, p)]
        finally:
            restorer.close()
        return n

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        # The loop's objects are short tuples and bytes that reference counting frees; the
        # tables are large and long-lived. Collections that scan them every 700 allocations
        # took ~8 % of a saturated worker: move what exists now out of the collector's view
        # and collect the young generation less often.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.producer.init_transactions(30.0)
        self.consumer.subscribe(
            self.inputs, on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost
        )
        try:
            while not self.stopping:
                self.step()
            if self.in_txn:
                self.commit()
        finally:
            self.consumer.close()
            self.producer.flush(10.0)
        return 0

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def wait_s(self) -> float:
        """How long the next poll may block: until the earliest timer or commit is due."""
        now = wall_us()
        until: list[Instant] = []
        nxt = self.timers.next_instant()
        if nxt is not None:
            until.append(nxt + self.grace_us)
        if self.in_txn:
            until.append(self.txn_started_us + self.commit_us)
            if self.txn_urgent:
                until.append(self.last_commit_us + self.spacing_us)
        if not until:
            return IDLE_WAIT_S
        return min(IDLE_WAIT_S, max(0.0, float(min(until) - now) / US_PER_S))

    def poll(self) -> list[Any]:
        """What the client has fetched, at once; else wait for the first record (or a due)."""
        msgs = self.consumer.consume(self.args.batch_max, 0)
        if not msgs:
            first = self.consumer.poll(self.wait_s())
            if first is None:
                return []
            more = (
                self.consumer.consume(self.args.batch_max - 1, 0) if self.args.batch_max > 1 else []
            )
            msgs = [first, *more]
        return msgs

    def step(self) -> None:
        msgs = self.poll()
        plen = len(self.prefix)
        records: list[Record] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal() or err.name() in REFUSALS:
                    log.error("consumer: %s; stopping", err)
                    raise SystemExit(EXIT_REFUSED)
                log.warning("consumer: %s", err)
                continue
            records.append((m.topic()[plen:], m.partition(), m.offset(), m.key(), m.value()))
        records = in_ts_order(records)
        records.extend(self.due_ticks())
        if records:
            if not self.in_txn:
                self.producer.begin_transaction()
                self.in_txn, self.txn_started_us, self.txn_urgent = True, wall_us(), False
            self.decide(records)
        if self.in_txn and commit_due(
            wall_us(),
            self.txn_started_us,
            self.commit_us,
            self.txn_urgent,
            self.last_commit_us,
            self.spacing_us,
        ):
            self.commit()

    def input_partitions(self, partitions: Collection[int]) -> list[Any]:
        """`partitions` of every input topic, as the client's `TopicPartition`s."""
        from confluent_kafka import TopicPartition

        return [TopicPartition(t, p) for t in self.inputs for p in sorted(partitions)]

    def note_starts(self, consumer: Any, partitions: set[int]) -> None:
        """Where reading the new partitions resumes: until their first record is consumed the
        client knows no position, and a timer overdue since the handover must still wait for
        the inputs that were sent before it (the backlog left by the previous owner)."""
        tps = self.input_partitions(partitions)
        for tp in consumer.committed(tps, 30.0):
            self.starts[(tp.topic, tp.partition)] = tp.offset
        # The broker's end now, asked for: the client's cached end of a partition this worker
        # owned before (revoked and given back) is that of its last fetch then, so a timer
        # that came due in between would otherwise fire before the inputs sent meanwhile.
        for tp in tps:
            _, hi = consumer.get_watermark_offsets(tp, timeout=10.0, cached=False)
            self.assigned_ends[(tp.topic, tp.partition)] = hi
        now = wall_us()
        for p in partitions:
            self.assigned_us[p] = now

    def input_ends(self, partition: int) -> list[tuple[Any, int]]:
        """The inputs of `partition` as far as the broker had them: at the client's last
        fetch, and at least at the assignment (-1 or below: not known)."""
        ends = []
        for tp in self.input_partitions([partition]):
            _, hi = self.consumer.get_watermark_offsets(tp, cached=True)
            ends.append((tp, max(hi, self.assigned_ends.get((tp.topic, partition), -1))))
        return ends

    def behind(self, ends: list[tuple[Any, int]]) -> bool:
        """Are inputs that were on the wire when the timer came due still undecided?

        A partition not fetched yet since its assignment counts as behind (its end is not
        known); one fetched but not read from yet is behind when its end is past the
        offset its reading resumed from."""
        positions = self.consumer.position([tp for tp, _ in ends])
        for pos, (_, end) in zip(positions, ends):
            resumed = self.starts.get((pos.topic, pos.partition), -1)
            low, _ = self.consumer.get_watermark_offsets(pos, cached=True)
            if undecided_before(end, pos.offset, resumed, low):
                return True
        return False

    @staticmethod
    def known(ends: list[tuple[Any, int]]) -> bool:
        return all(hi >= 0 for _, hi in ends)

    def due_ticks(self) -> list[Record]:
        """Ticks of the timers due now, after the inputs that were on the wire when they came
        due (noted at the first try: later inputs do not hold a timer back). The wait is
        bounded by `--tick-defer-max-ms` after the due instant, or after the assignment for a
        timer that came due while its partition had no owner."""
        now = wall_us()
        ticks: list[Record] = []
        for tid, due, partition in self.timers.pop_due(now - self.grace_us):
            noted = self.waiting.pop(tid, None)
            if noted is not None and noted[0] == due and self.known(noted[1]):
                ends = noted[1]
            else:
                ends = self.input_ends(partition)
            since = max(due, self.assigned_us.get(partition, 0))
            if now < since + self.defer_max_us and self.behind(ends):
                metrics.TICKS_DEFERRED.inc()
                self.waiting[tid] = (due, ends)
                self.timers.defer(tid, due, partition, now + DEFER_RETRY_US)
                continue
            tick = orjson.dumps({"tenant_id": tid, "due": _inst_text(due)})
            ticks.append(("ticks", partition, -1, tid.encode(), tick))
        if ticks:
            metrics.TIMER_FIRES.inc(len(ticks))
            metrics.EVENTS_IN.labels("ticks", "tick").inc(len(ticks))
        metrics.TIMERS_PENDING.set(len(self.timers.due))
        return ticks

    def decide(self, records: list[Record]) -> None:
        started = time.perf_counter()
        tenants, seen = self.tables["tenants"], self.tables["seen"]
        outputs, writes, changed, kinds = self.driver.decide(records, tenants, seen)
        metrics.observe_many(
            metrics.PROCESSING, (time.perf_counter() - started) / len(records), len(records)
        )
        for (topic_name, kind), n in Counter(kinds).items():
            metrics.EVENTS_IN.labels(topic_name, kind).inc(n)
        produce = self.producer.produce
        out_topics = self.out_topics
        out_counts: Counter[str] = Counter()
        for tid, name, payload, timed in outputs:
            topic, key = out_topics[name], None if tid is None else tid.encode()
            try:
                produce(topic, payload, key)
            except BufferError:
                produce_waiting(self.producer, topic, payload, key)
            out_counts[name] += 1
            if name == DISCONNECTS:
                self.txn_urgent = True
                if timed:
                    self.txn_disconnects.append(payload)
            elif name == DEAD_LETTERS:
                metrics.DEAD_LETTERS.labels(orjson.loads(payload)["reason"]).inc()
        for name, n in out_counts.items():
            metrics.RECORDS_OUT.labels(name).inc(n)
        topic = seen.topic
        for partition, key, value in writes:
            try:
                produce(topic, value, key, partition)
            except BufferError:
                produce_waiting(self.producer, topic, value, key, partition)
        live_counts, timers, moved = self.live_counts, self.timers, 0
        for tid, partition, due, live in changed:
            timers.set(tid, due, partition)
            before = live_counts.get(tid, 0)
            if before != live:
                live_counts[tid] = live
                moved += live - before
        if moved:
            self.live_total += moved
            metrics.LIVE_CALLS.set(self.live_total)
        metrics.TIMERS_PENDING.set(len(timers.due))

    def save_tenants(self) -> None:
        """Write each tenant the transaction changed, once: its state to the table and its
        changelog, its account view to `account-views`. Only a transaction's last state is ever
        read back (its commit is atomic), so the states of the batches before it are not
        written at all: a tenant touched by every batch costs one state per commit."""
        tenants, views = self.tables["tenants"], self.prefix + VIEWS
        for tid, partition, data, view in self.driver.take_unsaved():
            key = tid.encode()
            tenants.put(partition, key, data)
            produce_waiting(self.producer, tenants.topic, data, key, partition)
            produce_waiting(self.producer, views, view, key)
        metrics.TENANTS.set(len(tenants))

    def commit(self) -> None:
        """Commit the open transaction with the consumed offsets; on an abortable error,
        abort it and go back to the last commit (tables undone, inputs read again)."""
        from confluent_kafka import KafkaException

        try:
            self.save_tenants()  # into this transaction, not counted as the commit's time
            started = time.perf_counter()
            # the owned input partitions are the assignment (asking the client for it is a
            # round trip through its main thread, which was a few percent of a busy loop)
            owned = self.input_partitions(self.owned)
            positions = [tp for tp in self.consumer.position(owned) if tp.offset >= 0]
            if positions:
                self.producer.send_offsets_to_transaction(
                    positions, self.consumer.consumer_group_metadata(), 30.0
                )
            self.producer.commit_transaction(30.0)
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal() or not err.txn_requires_abort():
                log.error("transaction failed (%s); stopping", err)
                raise SystemExit(EXIT_FENCED) from None
            log.warning("transaction aborted (%s); deciding its inputs again", err)
            self.producer.abort_transaction(30.0)
            self.rewind()
            return
        finally:
            self.in_txn = False
            self.last_commit_us = wall_us()
        now = self.last_commit_us
        for payload in self.txn_disconnects:
            at = parse_instant(orjson.loads(payload)["at"])
            metrics.DISCONNECT_LATENESS.observe(float(max(0, now - at) / US_PER_S))
        self.txn_disconnects.clear()
        for table in self.tables.values():
            table.committed()

    def rewind(self) -> None:
        for table in self.tables.values():
            table.rollback()
        self.txn_disconnects.clear()
        self.driver.forget()
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, 30.0):
            if tp.offset >= 0:
                self.consumer.seek(tp)
        self.timers = TimerHeap()
        self.waiting.clear()
        self.plan_timers(self.owned)

    def plan_timers(self, partitions: Collection[int]) -> None:
        """Each tenant of `partitions`, as its table holds it: its next timer and live calls."""
        tenants = self.tables["tenants"]
        for partition in partitions:
            for _, data in tenants.partition_items(partition):
                t, _ = Tenant.load(self.deck, data)
                self.live_counts[t.tenant_id] = t.live_calls
                due = t.next_due()
                self.timers.set(t.tenant_id, None if due is None else due[0], partition)
        metrics.TIMERS_PENDING.set(len(self.timers.due))


def ensure_topics(settings: connection.KafkaSettings, args: argparse.Namespace) -> None:
    """The inputs, outputs and the worker's changelogs, with the worker's partition count
    (a broker that auto-creates topics would give them one partition)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.librdkafka())
    app = f"{args.topic_prefix}{args.app_id}"
    wanted: dict[str, dict[str, str]] = {
        args.topic_prefix + t: {} for t in (*INPUTS, *OUTPUT_TOPICS)
    }
    wanted[args.topic_prefix + VIEWS] = {"cleanup.policy": "compact"}
    for name in TABLES:
        wanted[f"{app}-{name}-changelog"] = {"cleanup.policy": "compact"}
    existing = set(admin.list_topics(timeout=15).topics)
    missing = [
        NewTopic(t, args.partitions, 1, config=conf)
        for t, conf in wanted.items()
        if t not in existing
    ]
    if not missing:
        return
    for topic, fut in admin.create_topics(missing, request_timeout=15).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def add_arguments(work: argparse.ArgumentParser, env: Any) -> None:
    """The worker's own flags (the broker's come from `connection.add_arguments`)."""
    work.add_argument("--rates", default=env("rates", None), metavar="DECK.csv")
    connection.add_arguments(work)
    work.add_argument("--topic-prefix", default=env("topic_prefix", ""))
    work.add_argument("--partitions", type=int, default=int(env("partitions", "4") or 4))
    work.add_argument("--metrics-port", type=int, default=int(env("metrics_port", "9108") or 9108))
    # accepted and unused: the state lives in the changelogs; a batch is what was fetched
    work.add_argument("--state-dir", default=env("state_dir", None), help=argparse.SUPPRESS)
    work.add_argument("--batch-ms", type=float, default=None, help=argparse.SUPPRESS)
    work.add_argument("--app-id", default=env("app_id", "rating-engine"))
    work.add_argument(
        "--instance-id",
        default=env("instance_id", None),
        help="a stable name for this worker process: static group membership (a restart "
        "within the session timeout keeps its partitions) and its transactional id",
    )
    work.add_argument(
        "--timer-grace-ms",
        type=int,
        default=int(env("timer_grace_ms", "20") or 20),
        help="fire a timer this long after its due instant, so call events stamped just "
        "before it (still in flight) are applied first",
    )
    work.add_argument(
        "--batch-max",
        type=int,
        default=int(env("batch_max", "2000") or 2000),
        help="decide at most this many inputs in one core call",
    )
    work.add_argument(
        "--commit-interval-ms",
        type=int,
        default=int(env("commit_interval_ms", "100") or 100),
        help="commit a transaction at the latest this long after it began (sooner when it "
        "holds a disconnect: --disconnect-commit-ms)",
    )
    work.add_argument(
        "--disconnect-commit-ms",
        type=int,
        default=int(env("disconnect_commit_ms", "20") or 20),
        help="a transaction holding a disconnect commits at once, unless the last commit "
        "ended less than this long ago (then when it is that long ago)",
    )
    work.add_argument(
        "--session-timeout-ms",
        type=int,
        default=int(env("session_timeout_ms", "1000") or 1000),
        help="a worker silent this long loses its partitions to the others",
    )
    work.add_argument(
        "--transaction-timeout-ms",
        type=int,
        default=int(env("transaction_timeout_ms", "1500") or 1500),
        help="the broker aborts a transaction open this long (a dead worker's, so the "
        "partitions' new owner can read past it)",
    )
    work.add_argument(
        "--tick-defer-max-ms",
        type=int,
        default=int(env("tick_defer_max_ms", "5000") or 5000),
        help="a timer waits for inputs sent before it (a backlog) at most this long after "
        "its due instant",
    )


def run_worker(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from ..offline.files import CliError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = connection.from_args(args)
    except connection.SettingsError as exc:
        raise CliError(str(exc)) from None
    try:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    except OSError as exc:
        raise CliError(f"metrics port {args.metrics_port}: {exc.strerror}") from None
    try:
        ensure_topics(settings, args)
    except Exception as exc:  # the broker is down or refuses: one clear line, exit 2
        raise CliError(f"broker {settings.broker}: cannot create topics: {exc}") from None
    metrics.prime()
    return Worker(args, settings).run()
