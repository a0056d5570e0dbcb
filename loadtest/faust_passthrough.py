"""Faust passthrough: the worker's envelope with no decision, to show what Faust itself costs.

A Faust app consumes `calls` + `accounts` of an existing run with the same settings as the
worker (`take_events` batches, records handed to aiokafka through `Outbox`) and forwards
each event unchanged to `<prefix>faust-passthrough`. It stops after `--expect` events and
prints one JSON line: events/s and events per CPU-second between 10 % and 90 % of them.

    .venv/bin/python loadtest/faust_passthrough.py --topic-prefix P --expect N

The broker connection comes from `rating_engine.stream.connection` (flags or variables).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from typing import Any

from faust_outbox import Outbox

from rating_engine.stream import connection


def credentials(settings: connection.KafkaSettings) -> Any:
    """Faust's form of the settings' TLS and SCRAM (None on plaintext)."""
    import faust

    if settings.uses_sasl:
        return faust.SASLCredentials(
            username=settings.user,
            password=settings.password,
            ssl_context=settings.ssl_context() if settings.uses_tls else None,
            mechanism=settings.sasl_mechanism,
        )
    if settings.uses_tls:
        return faust.SSLCredentials(settings.ssl_context())
    return None


def build(args: argparse.Namespace, result: dict[str, Any]) -> Any:
    import faust

    settings = connection.from_args(args)
    app = faust.App(
        f"{args.topic_prefix}faust-pt-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=credentials(settings),
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="faust-pt-"),
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    source = app.topic(
        args.topic_prefix + "calls",
        args.topic_prefix + "accounts",
        key_type=bytes,
        value_type=bytes,
    )
    out_topic = args.topic_prefix + "faust-passthrough"
    marks: dict[str, tuple[float, float]] = {}

    def crash(fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            logging.error("send failed: %r", fut.exception())

    @app.agent(source)
    async def forward(stream: Any) -> None:
        outbox = Outbox(app.producer._ensure_producer(), crash)
        count = 0
        async for batch in stream.take_events(args.batch_max, within=0.005):
            for event in batch:
                await outbox.add(out_topic, event.message.key, event.value)
            await outbox.flush()
            count += len(batch)
            for name, share in (("t10", 0.1), ("t90", 0.9)):
                if name not in marks and count >= share * args.expect:
                    marks[name] = (time.time(), time.process_time())
            if count >= args.expect:
                t10, t90 = marks["t10"], marks["t90"]
                n = 0.8 * args.expect
                result.update(
                    count=count,
                    sustained_events_per_s=round(n / (t90[0] - t10[0]), 1),
                    events_per_cpu_s=round(n / (t90[1] - t10[1]), 1),
                )
                os.write(1, json.dumps(result).encode() + b"\n")  # fd 1: Faust redirects sys.stdout
                os._exit(0)  # measured: no need to wait for Faust's orderly shutdown

    return app


def main(argv: list[str] | None = None) -> int:
    from faust import Worker

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    connection.add_arguments(ap)
    ap.add_argument("--topic-prefix", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--batch-max", type=int, default=1000)
    args = ap.parse_args(argv)
    result: dict[str, Any] = {}
    worker = Worker(build(args, result), loglevel="WARNING", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()  # exits the process once measured
    return 1


if __name__ == "__main__":
    sys.exit(main())
