"""Synthetic traffic for benchmarks: tenants with pools, credits, licences, auto-recharge,
and calls arriving as a Poisson process with exponential durations (mean ~3 min).

Deterministic for a seed. Events come out sorted by `ts`, as `simulate` wants them.
"""

from __future__ import annotations

import heapq
import random
from typing import Iterator

import orjson

from rating_engine.core import US_PER_S, format_instant, parse_instant

DESTINATIONS = [
    "+12065550100",
    "+13125550100",
    "+442071234567",
    "+447700900123",
    "+4930123456",
    "+33155550100",
    "+919812345678",
    "+5511912345678",
    "+19005550100",
    "+18005550100",
]


def generate(
    tenants: int,
    calls: int,
    days: float,
    seed: int = 7,
    start: str = "2026-11-01T00:00:00Z",
    mean_call_s: float = 180.0,
    dup_share: float = 0.01,
    bad_share: float = 0.002,
) -> Iterator[bytes]:
    rng = random.Random(seed)
    t0 = parse_instant(start)
    span_us = int(days * 86400 * US_PER_S)
    pending: list[tuple[int, int, bytes]] = []
    seq = 0

    def push(at: int, obj: dict | bytes) -> None:
        nonlocal seq
        seq += 1
        raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        heapq.heappush(pending, (at, seq, raw))

    for i in range(tenants):
        tid = f"tenant{i:05d}"
        at = t0 + i  # one microsecond apart keeps the set-up in tenant order
        push(
            at,
            {
                "type": "set_pool",
                "tenant_id": tid,
                "command_id": f"{tid}-pool-d",
                "ts": format_instant(at),
                "plan": "domestic",
                "country": "US",
                "minutes": rng.choice([0, 600, 3000]),
            },
        )
        push(
            at,
            {
                "type": "set_pool",
                "tenant_id": tid,
                "command_id": f"{tid}-pool-i",
                "ts": format_instant(at),
                "plan": "international",
                "country": "US",
                "minutes": rng.choice([0, 60, 400]),
            },
        )
        push(
            at,
            {
                "type": "add_funds",
                "tenant_id": tid,
                "command_id": f"{tid}-funds",
                "ts": format_instant(at),
                "amount": rng.choice(["5", "20", "100"]),
                "currency": "USD",
            },
        )
        for u in range(5):
            if rng.random() < 0.8:
                push(
                    at,
                    {
                        "type": "assign_licence",
                        "tenant_id": tid,
                        "command_id": f"{tid}-lic{u}",
                        "ts": format_instant(at),
                        "user_id": f"u{u}@{tid}",
                    },
                )
        push(
            at,
            {
                "type": "set_auto_recharge",
                "tenant_id": tid,
                "command_id": f"{tid}-auto",
                "ts": format_instant(at),
                "enabled": rng.random() < 0.5,
                "trigger_amount": "2",
                "recharge_amount": "25",
            },
        )
    for c in range(calls):
        tid = f"tenant{rng.randrange(tenants):05d}"
        start_us = t0 + 1000 + int(rng.random() * span_us)
        dur_us = int(rng.expovariate(1 / mean_call_s) * US_PER_S)
        kind = rng.choices(
            ["user_outbound", "conference_dialout", "tollfree_inbound", "inbound"], [80, 8, 7, 5]
        )[0]
        cid = f"c{c}"
        start = {
            "type": "call_start",
            "call_id": cid,
            "tenant_id": tid,
            "user_id": f"u{rng.randrange(5)}@{tid}",
            "kind": kind,
            "from": "+14255550100" if kind != "tollfree_inbound" else "+447700900123",
            "to": rng.choice(DESTINATIONS) if kind != "tollfree_inbound" else "+18005550100",
            "usage_location": "US",
            "switch_id": "sw1",
            "ts": format_instant(start_us),
        }
        push(start_us, start)
        end = {
            "type": "call_end",
            "call_id": cid,
            "tenant_id": tid,
            "ts": format_instant(start_us + dur_us),
        }
        push(start_us + dur_us, end)
        if rng.random() < dup_share:
            push(start_us + dur_us, end)
        if rng.random() < bad_share:
            push(
                start_us, b'{"type": "call_start", "tenant_id": "' + tid.encode() + b'", truncated'
            )
    while pending:
        yield heapq.heappop(pending)[2]
