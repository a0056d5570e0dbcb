"""The API's Kafka side: the account views and the charges read into memory and SQLite, and
the commands produced to `accounts`.

Both topics are read from every partition without a consumer group (each API process keeps
its own copy; nothing is committed to the broker), `read_committed` like every consumer of
the worker's transactional outputs. The views topic is compacted and keyed by tenant, so
reading it from the start gives the latest view of every tenant; charges resume from the
offsets stored with them. Until the views are read up to the ends the API saw at start,
`GET …/account` answers 503 rather than an old balance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import orjson

from ..stream.connection import KafkaSettings
from .store import Store

log = logging.getLogger("rating_engine.api.broker")

VIEWS, CHARGES, ACCOUNTS = "account-views", "charges", "accounts"
RETRY_S = 1.0


class Views:
    """The latest account view of each tenant, as JSON bytes ready to serve."""

    def __init__(self, currency: str | None = None) -> None:
        self.currency = currency
        self.by_tenant: dict[str, bytes] = {}
        self.ready = asyncio.Event()

    def put(self, tenant_id: str, view: bytes | None) -> None:
        if view is None:
            self.by_tenant.pop(tenant_id, None)
            return
        if self.currency is not None and b'"currency":null' in view:
            doc = orjson.loads(view)
            doc["currency"] = self.currency
            view = orjson.dumps(doc)
        self.by_tenant[tenant_id] = view

    def get(self, tenant_id: str) -> bytes | None:
        return self.by_tenant.get(tenant_id)


class Broker:
    """The consumers of `account-views` and `charges` and the producer to `accounts`."""

    def __init__(self, settings: KafkaSettings, prefix: str, views: Views, store: Store) -> None:
        self.settings, self.prefix, self.views, self.store = settings, prefix, views, store
        self.producer: Any = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            **self.settings.aiokafka(), acks="all", enable_idempotence=True, linger_ms=0
        )
        await self.producer.start()
        self.tasks = [
            asyncio.create_task(self._follow(VIEWS, self._on_views, {}), name="views"),
            asyncio.create_task(
                self._follow(CHARGES, self._on_charges, self.store.offsets(self.prefix + CHARGES)),
                name="charges",
            ),
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.producer is not None:
            await self.producer.stop()

    async def produce(self, tenant_id: str, payload: bytes) -> None:
        """Send one command keyed by its tenant; returns once the broker has it (acks=all)."""
        await self.producer.send_and_wait(self.prefix + ACCOUNTS, payload, key=tenant_id.encode())

    # ------------------------------------------------------------ consumers

    async def _partitions(self, topic: str) -> set[int]:
        """The topic's partitions from the broker's metadata; empty while it does not exist.

        Asked through the producer: a consumer without a group or subscription keeps no
        metadata for a topic and has no public way to fetch it."""
        from aiokafka.errors import UnknownTopicOrPartitionError

        try:
            return set(await self.producer.partitions_for(topic))
        except UnknownTopicOrPartitionError:
            return set()

    def _on_views(self, records: list[Any]) -> None:
        for m in records:
            if m.key is not None:
                self.views.put(m.key.decode("utf-8", "replace"), m.value)

    def _on_charges(self, records: list[Any]) -> None:
        # offsets kept under the topic's full name: another --topic-prefix starts from 0
        self.store.add_charges(
            self.prefix + CHARGES, ((m.partition, m.offset, m.value) for m in records)
        )

    async def _follow(
        self, name: str, handle: Callable[[list[Any]], None], start: dict[int, int]
    ) -> None:
        """Read every partition of `<prefix><name>` from `start` (or the beginning), forever;
        a broker that is down or a topic not created yet is waited for."""
        while True:
            try:
                await self._read(name, handle, start)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: start over from what we have
                log.warning("reading %s%s failed (%s); retrying", self.prefix, name, exc)
                if name == CHARGES:
                    start = self.store.offsets(self.prefix + CHARGES)
                await asyncio.sleep(RETRY_S)

    async def _read(
        self, name: str, handle: Callable[[list[Any]], None], start: dict[int, int]
    ) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = self.prefix + name
        consumer = AIOKafkaConsumer(
            **self.settings.aiokafka(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            partitions = await self._partitions(topic)
            while not partitions:
                if name == VIEWS:
                    self.views.ready.set()  # no topic yet: there is nothing to wait for
                await asyncio.sleep(RETRY_S)
                partitions = await self._partitions(topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            for tp in tps:
                if tp.partition in start:
                    consumer.seek(tp, start[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, msgs in batch.items():
                    handle(msgs)
                if name == VIEWS and not self.views.ready.is_set():
                    positions = [await consumer.position(tp) for tp in ends]
                    if all(at >= end for at, end in zip(positions, ends.values(), strict=True)):
                        self.views.ready.set()
        finally:
            await consumer.stop()
