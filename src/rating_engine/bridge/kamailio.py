"""`rating-engine bridge kamailio`: Kamailio's calls into `calls`, `disconnects` back into BYEs.

- Events in: one evapi TCP connection to the proxy; each answered call (dialog:start) and each
  ended one (dialog:end) becomes a `call_start` / `call_end` on `calls`, keyed by tenant, in
  the order the proxy sent them (a burst is published, then its acks awaited, then the next).
- Disconnects out: `disconnects` read with the committed offsets of the bridge's group
  (read_committed, partitions assigned directly, no rebalance wait); a record for this
  `switch_id` ends its dialog at once with `dlg.end_dlg` over binrpc, and Kamailio sends BYE
  to both ends. A call that already ended, or was already cut, is a no-op; so is a repeat.
- Reconnects: evapi with back-off (0.1 s doubling to 5 s). On every connection the bridge first
  reads what the proxy kept while no bridge was connected (`htable.dump missed`) and the live
  dialogs (`dlg.list`: after a restart of the bridge it learns each call's handle there, and
  re-publishes its `call_start`, which the engine takes as the duplicate it is); disconnects
  wait for that first sync. A call the bridge knew that the proxy no longer has (the proxy
  restarted and lost it) gets a `call_end` at the instant the connection dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

from ..core import US_PER_S, format_instant, parse_instant
from ..stream import connection
from . import metrics
from .binrpc import BinRpcClient, RpcError, RpcFault
from .events import CallEvent, Handle, Netstrings, Unreadable, dialogs_of, from_proxy, missed_of

log = logging.getLogger("rating_engine.bridge.kamailio")

BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.1, 5.0
SETTLE_S = 0.1  # after connecting: an event the proxy was storing as we connected lands first
GONE_GRACE_S = 2.0  # a dialog missing from dlg.list waits this long for its own call_end
FINISHED_MAX = 100_000  # calls remembered as ended or cut, for repeated disconnects
Key = tuple[str, str]  # (tenant_id, call_id)


def wall_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class BridgeConfig:
    evapi_host: str
    evapi_port: int
    ctl: str
    switch_id: str
    topic_prefix: str
    settings: connection.KafkaSettings
    rpc_retry_s: float = 60.0

    @property
    def calls_topic(self) -> str:
        return self.topic_prefix + "calls"

    @property
    def disconnects_topic(self) -> str:
        return self.topic_prefix + "disconnects"

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}switch-bridge-{self.switch_id}"


def reason_header(reason: object) -> str:
    """The BYE's Reason header (RFC 3326) naming the engine's disconnect reason."""
    text = reason if isinstance(reason, str) and reason.replace("_", "").isalnum() else "rating"
    return f'Reason: Q.850;cause=16;text="{text}"\r\n'


class Bridge:
    def __init__(self, cfg: BridgeConfig) -> None:
        self.cfg = cfg
        self.rpc = BinRpcClient(cfg.ctl)
        self.live: dict[Key, Handle] = {}
        self.finished: OrderedDict[Key, None] = OrderedDict()
        self.synced = asyncio.Event()
        self.ready = asyncio.Event()
        self.lost_at_us: int | None = None
        self.producer: Any = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ events in

    def _remember_finished(self, key: Key) -> None:
        self.finished[key] = None
        self.finished.move_to_end(key)
        while len(self.finished) > FINISHED_MAX:
            self.finished.popitem(last=False)

    def _apply(self, event: CallEvent) -> None:
        key = (event.tenant_id, event.call_id)
        if event.kind == "call_start":
            if event.handle is not None and key not in self.finished:
                self.live[key] = event.handle
        else:
            self.live.pop(key, None)
            self._remember_finished(key)
        metrics.LIVE_CALLS.set(len(self.live))

    async def publish(self, items: Iterable[CallEvent | Unreadable], source: str) -> None:
        """Send a burst to `calls` in order and wait for every ack (retrying until acked)."""
        batch = list(items)
        if not batch:
            return
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                futures = []
                for item in batch:
                    key = item.key
                    futures.append(
                        await self.producer.send(self.cfg.calls_topic, item.value, key=key)
                    )
                await asyncio.gather(*futures)
                break
            except Exception as exc:  # a Kafka error: the events must not be lost
                log.error(
                    "publishing %d events to %s failed (%s); retrying",
                    len(batch),
                    self.cfg.calls_topic,
                    exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        for item in batch:
            if isinstance(item, CallEvent):
                self._apply(item)
                metrics.EVENTS_RELAYED.labels(item.kind, source).inc()
            else:
                metrics.EVENTS_UNREADABLE.labels(item.reason).inc()
                log.error(
                    "unreadable proxy message (%s), published as-is: %r",
                    item.reason,
                    item.value[:300],
                )

    async def catch_up(self) -> None:
        """What happened while no bridge was connected, then the live dialogs."""
        missed = missed_of(await self._rpc("htable.dump", "missed"))
        if missed:
            log.info("%d events kept by the proxy while no bridge was connected", len(missed))
            await self.publish((from_proxy(raw, self.cfg.switch_id) for _, raw in missed), "missed")
            for name, _ in missed:
                await self._rpc("htable.delete", "missed", name)
            await self._rpc("pv.shvSet", "missed_n", "int", 0)
        dialogs = dialogs_of(await self._rpc("dlg.list"), self.cfg.switch_id)
        on_proxy: set[Key] = set()
        starts = []
        for d in dialogs:
            if d.start is None:
                continue
            key = (d.start.tenant_id, d.start.call_id)
            on_proxy.add(key)
            if key not in self.live and key not in self.finished:
                starts.append(d.start)
            elif key in self.live:
                self.live[key] = d.handle
        await self.publish(starts, "dlg_list")
        gone = {k: h for k, h in self.live.items() if k not in on_proxy}
        if gone:
            task = asyncio.get_running_loop().create_task(self._end_gone(gone, self.lost_at_us))
            self._background.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._background.discard)
        log.info(
            "synced with the proxy: %d live calls (%d learnt from dlg.list)",
            len(self.live),
            len(starts),
        )

    async def _end_gone(self, gone: dict[Key, Handle], lost_at_us: int | None) -> None:
        """Calls the proxy no longer has and that sent no call_end: end them when it was lost."""
        await asyncio.sleep(GONE_GRACE_S)
        ts = format_instant(lost_at_us if lost_at_us is not None else wall_us())
        ends = []
        for (tenant, call_id), handle in gone.items():
            if self.live.get((tenant, call_id)) != handle:
                continue
            record = {"type": "call_end", "call_id": call_id, "tenant_id": tenant, "ts": ts}
            ends.append(CallEvent("call_end", tenant, call_id, handle, orjson.dumps(record)))
        if ends:
            log.warning(
                "%d calls vanished from the proxy (restarted?): call_end at %s", len(ends), ts
            )
            await self.publish(ends, "dlg_list")

    async def proxy_loop(self) -> None:
        backoff, first = BACKOFF_FIRST_S, True
        host, port = self.cfg.evapi_host, self.cfg.evapi_port
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                log.warning(
                    "proxy evapi %s:%d unreachable (%s); retry in %.1f s", host, port, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            metrics.PROXY_CONNECTED.set(1)
            if not first:
                metrics.RECONNECTS.inc()
            first = False
            log.info("connected to the proxy's evapi %s:%d", host, port)
            try:
                await asyncio.sleep(SETTLE_S)
                await self.catch_up()
                self.synced.set()
                backoff = BACKOFF_FIRST_S
                await self._read_events(reader)
                log.warning("the proxy closed the evapi connection")
            except (OSError, RpcError, RpcFault, ValueError) as exc:
                log.warning("proxy link lost: %s", exc)
            finally:
                self.lost_at_us = wall_us()
                metrics.PROXY_CONNECTED.set(0)
                writer.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        frames = Netstrings()
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            messages = frames.feed(data)
            await self.publish((from_proxy(m, self.cfg.switch_id) for m in messages), "live")

    # ------------------------------------------------------------------ disconnects out

    async def _rpc(self, method: str, *params: int | str) -> list[Any]:
        try:
            return await self.rpc.call(method, *params)
        except RpcError:
            metrics.RPC_FAILURES.labels(method).inc()
            raise

    async def _lookup(self, key: Key) -> Handle | None:
        """The dialog of a call the bridge did not see start (a restart raced it)."""
        tenant, call_id = key
        try:
            reply = await self._rpc("dlg.dlg_list", call_id)
        except RpcFault:
            return None
        for d in dialogs_of(reply, self.cfg.switch_id):
            if d.start is not None and d.start.tenant_id == tenant:
                return d.handle
        return None

    async def execute(self, value: bytes | None) -> str:
        """End the dialog a disconnect record names; returns the outcome (a metric label)."""
        try:
            rec = orjson.loads(value or b"")
            tenant, call_id, at = rec["tenant_id"], rec["call_id"], rec["at"]
            if not (isinstance(tenant, str) and isinstance(call_id, str)):
                raise ValueError("tenant_id and call_id must be strings")
            at_us = parse_instant(at)
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
            log.error("unreadable disconnect record (%s): %r", exc, (value or b"")[:300])
            return "invalid"
        if rec.get("switch_id") != self.cfg.switch_id:
            return "other_switch"
        key = (tenant, call_id)
        deadline = time.monotonic() + self.cfg.rpc_retry_s
        backoff = BACKOFF_FIRST_S / 2
        while True:
            if key in self.finished:
                return "ended"
            try:
                handle = self.live.get(key) or await self._lookup(key)
                if handle is None:
                    log.info("disconnect %s/%s: no such dialog on the proxy", tenant, call_id)
                    self._remember_finished(key)
                    return "unknown"
                await self._rpc(
                    "dlg.end_dlg", handle.h_entry, handle.h_id, reason_header(rec.get("reason"))
                )
            except RpcFault as fault:
                if fault.code == 404:  # ended between our lookup and the call
                    self._remember_finished(key)
                    return "ended"
                metrics.RPC_FAILURES.labels("dlg.end_dlg").inc()
                log.error(
                    "disconnect %s/%s: the proxy refused dlg.end_dlg: %s", tenant, call_id, fault
                )
                return "unknown"
            except RpcError as exc:
                if time.monotonic() > deadline:
                    log.error("disconnect %s/%s given up: %s", tenant, call_id, exc)
                    return "unknown"
                log.warning("disconnect %s/%s: %s; retrying", tenant, call_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            lateness_s = (wall_us() - at_us) / US_PER_S
            metrics.LATENESS.observe(float(lateness_s))
            self._remember_finished(key)
            log.info(
                "cut %s/%s (%s), BYE %.1f ms after its at",
                tenant,
                call_id,
                rec.get("reason"),
                float(lateness_s) * 1000,
            )
            return "executed"

    async def disconnect_loop(self) -> None:
        """Read and execute disconnects; a failed consumer is rebuilt after a back-off."""
        await self.synced.wait()
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                await self._consume_disconnects()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.READY.set(0)
                log.error("disconnects consumer failed (%s); again in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _partitions(self, topic: str) -> list[int]:
        """The topic's partitions, once it exists (the worker or broker.sh creates it)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**self.cfg.settings.aiokafka())
        await admin.start()
        try:
            while True:
                for t in await admin.describe_topics([topic]):
                    if t.get("topic") == topic and t.get("error_code") == 0 and t["partitions"]:
                        return sorted(p["partition"] for p in t["partitions"])
                log.info("waiting for topic %s", topic)
                await asyncio.sleep(1.0)
        finally:
            await admin.close()

    async def _consume_disconnects(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            group_id=self.cfg.group_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",  # a new switch starts at the live end
            isolation_level="read_committed",  # what the worker committed, nothing it aborted
            fetch_max_wait_ms=200,
            **self.cfg.settings.aiokafka(),
        )
        await consumer.start()
        try:
            topic = self.cfg.disconnects_topic
            parts = await self._partitions(topic)
            consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
            # the committed offsets, or the end for a new group: committed at once, so a
            # disconnect published while this bridge is down is read after its restart
            start = {tp: await consumer.position(tp) for tp in consumer.assignment()}
            await consumer.commit(start)
            self.ready.set()
            metrics.READY.set(1)
            log.info("reading %s (%d partitions) as group %s", topic, len(parts), self.cfg.group_id)
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                records = [r for rs in batch.values() for r in rs]
                if not records:
                    continue
                outcomes = await asyncio.gather(*(self.execute(r.value) for r in records))
                for outcome in outcomes:
                    metrics.DISCONNECTS.labels(outcome).inc()
                await consumer.commit()
        finally:
            await consumer.stop()

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, linger_ms=1, **self.cfg.settings.aiokafka()
        )
        await self.producer.start()
        tasks = [
            asyncio.create_task(self.proxy_loop(), name="proxy"),
            asyncio.create_task(self.disconnect_loop(), name="disconnects"),
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in (*tasks, stopper):
                t.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            await self.producer.stop()


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--evapi must be HOST:PORT, got {text!r}")
    return host, int(port)


def run_bridge(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit 0 then, 2 on bad settings."""
    from prometheus_client import start_http_server

    from ..offline.files import CliError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        host, port = _host_port(args.evapi)
        cfg = BridgeConfig(
            evapi_host=host,
            evapi_port=port,
            ctl=args.ctl,
            switch_id=args.switch_id,
            topic_prefix=args.topic_prefix,
            settings=connection.from_args(args),
            rpc_retry_s=args.rpc_retry_s,
        )
        bridge = Bridge(cfg)
    except (ValueError, connection.SettingsError) as exc:
        raise CliError(str(exc)) from None
    if args.metrics_port:
        try:
            start_http_server(args.metrics_port, addr="127.0.0.1")
        except OSError as exc:
            raise CliError(f"metrics port {args.metrics_port}: {exc.strerror}") from None
    metrics.prime()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "bridge %s: evapi %s, ctl %s, topics %s / %s",
            cfg.switch_id,
            args.evapi,
            cfg.ctl,
            cfg.calls_topic,
            cfg.disconnects_topic,
        )
        await bridge.run(stop)

    asyncio.run(main())
    return 0
