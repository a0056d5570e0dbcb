"""Tenant state to bytes and back, for the worker's changelog-backed tables.

Instants that are Fractions travel as `"num/den"` strings, everything else as
JSON integers, so a restored tenant decides exactly as the one that was saved.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Any, MutableMapping, Sequence

import orjson

from .clock import Instant
from .deck import Deck
from .tenant import LiveCall, Lot, Output, Pool, Tenant

FORMAT_VERSION = 1


def _t(x: Instant | None) -> int | str | None:
    if x is None or isinstance(x, int):
        return x
    return f"{x.numerator}/{x.denominator}"


def _i(x: int | str | None) -> Instant | None:
    if x is None or isinstance(x, int):
        return x
    return Fraction(x)


def dump_tenant(t: Tenant, extra: dict[str, Any] | None = None) -> bytes:
    doc = {
        "v": FORMAT_VERSION,
        "tenant_id": t.tenant_id,
        "clock": _t(t.clock),
        "pools": [
            [
                p.key,
                p.allowance_us,
                p.month,
                _t(p.settled_at),
                _t(p.used_us),
                p.calls,
                p.sent_80,
                p.sent_100,
            ]
            for p in t.pools.values()
        ],
        "month_due": t.month_due,
        "lots": [
            [
                lot.lot_id,
                lot.seq,
                _t(lot.bought_at),
                _t(lot.expires_at),
                lot.remaining_micros,
                lot.expired,
                lot.forfeits,
            ]
            for lot in t.lots
        ],
        "lot_seq": t.lot_seq,
        "balance": t.balance_micros,
        "holds": t.holds_micros,
        "licences": sorted(t.licences),
        "auto": [t.auto_enabled, t.trigger_micros, t.recharge_micros],
        "outstanding": list(t.outstanding) if t.outstanding else None,
        "backoff_until": _t(t.backoff_until),
        "counters": [t.requests_n, t.plain_notices_n, t.call_seq],
        "live": [
            [
                c.call_id,
                c.seq,
                c.user_id,
                c.kind,
                c.switch_id,
                None if c.row is None else c.row.index,
                _t(c.start),
                c.pool_key,
                c.on_pool,
                _t(c.pool_end),
                _t(c.credit_start),
                c.with_fee,
                c.prepaid_s,
                c.hold_micros,
            ]
            for c in t.live.values()
        ],
        "forget": [[_t(at), key] for at, key in t.forget],
        "extra": extra or {},
    }
    return orjson.dumps(doc)


def load_tenant(
    data: bytes, deck: Deck, seen: MutableMapping[str, Sequence[Output]] | None = None
) -> tuple[Tenant, dict[str, Any]]:
    doc = orjson.loads(data)
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown tenant state version {doc.get('v')!r}")
    t = Tenant(doc["tenant_id"], deck, seen)
    t.clock = _i(doc["clock"])
    for key, allowance, month, settled, used, calls, s80, s100 in doc["pools"]:
        t.pools[key] = Pool(key, allowance, month, _i(settled), _i(used), list(calls), s80, s100)
    t.month_due = doc["month_due"]
    t.lots = [
        Lot(lot_id, seq, _i(bought), _i(expires), rem, expired, forfeits)
        for lot_id, seq, bought, expires, rem, expired, forfeits in doc["lots"]
    ]
    t.lot_seq, t.balance_micros, t.holds_micros = doc["lot_seq"], doc["balance"], doc["holds"]
    t.licences = set(doc["licences"])
    t.auto_enabled, t.trigger_micros, t.recharge_micros = doc["auto"]
    t.outstanding = tuple(doc["outstanding"]) if doc["outstanding"] else None  # type: ignore[assignment]
    t.backoff_until = _i(doc["backoff_until"])
    t.requests_n, t.plain_notices_n, t.call_seq = doc["counters"]
    for (
        call_id,
        seq,
        user_id,
        kind,
        switch_id,
        row,
        start,
        pool_key,
        on_pool,
        pool_end,
        credit_start,
        with_fee,
        prepaid,
        hold,
    ) in doc["live"]:
        t.live[call_id] = LiveCall(
            call_id,
            seq,
            user_id,
            kind,
            switch_id,
            None if row is None else deck.rows[row],
            _i(start),
            pool_key,
            on_pool,
            _i(pool_end),
            _i(credit_start),
            with_fee,
            prepaid,
            hold,
        )
    t.forget = deque((_i(at), key) for at, key in doc["forget"])
    return t, doc["extra"]


def dump_outputs(outputs: Sequence[Output]) -> bytes:
    """Remembered outputs of one input, for duplicate re-emission: `topic\\tjson` lines."""
    return b"\n".join(topic.encode() + b"\t" + payload for topic, payload in outputs)


def load_outputs(data: bytes) -> list[Output]:
    if not data:
        return []
    out: list[Output] = []
    for line in data.split(b"\n"):
        topic, _, payload = line.partition(b"\t")
        out.append((topic.decode(), payload))
    return out
