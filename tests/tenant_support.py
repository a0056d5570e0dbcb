"""Helpers for the tenant rule and property tests (accounts.md, contracts.md §2, §4, §5).

They only build inputs and decode outputs; every expected value in the tests is
computed by hand from the spec.

- `DECK_ROWS` / `build_deck()`: a literal deck for `deck.compile_rows`. Most rows cost
  0.060000/min = 0.001/s with 1 s / 1 s increments, so a credit second is "0.0010";
  the GB row has a 0.010000 fee and 60 s / 6 s increments; FR costs nothing.
- `T(s)`: s seconds after 2026-11-24T10:00:00Z in the engine's print format.
- builders: `call_start`, `call_end`, `add_funds`, `assign_licence`, `remove_licence`,
  `set_pool`, `set_auto_recharge`, `payment_result`.
- `run_with` / `run_raw_with`: simulate events (dicts or raw lines), decoded records
  with their `"topic"` (floats as `Decimal`), or `(topic, bytes)`.
- `Sim`: an `Engine` fed one line at a time, to inspect `Engine.tenants` between steps.
- `of`, `brief`, `briefs`, `subset`: read outputs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable

import orjson

from rating_engine import core
from rating_engine.core import COLUMNS, Deck, compile_rows

# ---------------------------------------------------------------- numbers

US_CALLER = "+12065550100"  # prefix 1, US, zone A
US_DEST = "+12065550199"  # prefix 1, US, zone A, 0.060000/min, 1/1
US_PREMIUM = "+19005550100"  # prefix 1900, US premium
US_TOLLFREE = "+18005550100"  # prefix 1800, US toll-free (outbound row)
GB_DEST = "+442071234567"  # prefix 44, GB, zone A, 0.060000/min + 0.010000 fee, 60/6
DE_DEST = "+493012345678"  # prefix 49, DE, zone B
FR_FREE = "+33123456789"  # prefix 33, FR, zone A, rate 0 and fee 0
JP_NO_RATE = "+81312345678"  # no row

HEADER = list(COLUMNS)
DECK_ROWS: list[dict[str, str]] = [
    # prefix country destination zone number_type service rate fee currency first next from to
    dict(
        zip(
            HEADER,
            [
                "1",
                "US",
                "United States",
                "A",
                "geographic",
                "outbound",
                "0.060000",
                "0.000000",
                "USD",
                "1",
                "1",
                "",
                "",
            ],
        )
    ),
    dict(
        zip(
            HEADER,
            [
                "1900",
                "US",
                "United States - Premium",
                "A",
                "premium",
                "outbound",
                "0.060000",
                "0.000000",
                "USD",
                "1",
                "1",
                "",
                "",
            ],
        )
    ),
    dict(
        zip(
            HEADER,
            [
                "1800",
                "US",
                "United States - Toll-free",
                "A",
                "tollfree",
                "outbound",
                "0.060000",
                "0.000000",
                "USD",
                "1",
                "1",
                "",
                "",
            ],
        )
    ),
    dict(
        zip(
            HEADER,
            [
                "44",
                "GB",
                "United Kingdom",
                "A",
                "geographic",
                "outbound",
                "0.060000",
                "0.010000",
                "USD",
                "60",
                "6",
                "",
                "",
            ],
        )
    ),
    dict(
        zip(
            HEADER,
            [
                "49",
                "DE",
                "Germany",
                "B",
                "geographic",
                "outbound",
                "0.060000",
                "0.000000",
                "USD",
                "1",
                "1",
                "",
                "",
            ],
        )
    ),
    dict(
        zip(
            HEADER,
            [
                "33",
                "FR",
                "France - free",
                "A",
                "geographic",
                "outbound",
                "0.000000",
                "0.000000",
                "USD",
                "1",
                "1",
                "",
                "",
            ],
        )
    ),
    dict(
        zip(
            HEADER,
            [
                "1",
                "US",
                "United States - toll-free caller",
                "A",
                "tollfree",
                "tollfree_inbound",
                "0.060000",
                "0.000000",
                "USD",
                "1",
                "1",
                "",
                "",
            ],
        )
    ),
]


def build_deck() -> Deck:
    return compile_rows("tests/literal-deck.csv", HEADER, DECK_ROWS)


# ---------------------------------------------------------------- instants

BASE = datetime(2026, 11, 24, 10, 0, 0, tzinfo=timezone.utc)


def iso(when: datetime) -> str:
    """The engine's print format, floored to the millisecond."""
    ms = when.microsecond // 1000
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def T(seconds: int | str | Fraction = 0, base: str | None = None) -> str:
    """`seconds` after `base` (default 2026-11-24T10:00:00Z), printed `...SS.mmmZ`.

    Only for whole milliseconds: fractional instants are written out by hand.
    """
    start = BASE if base is None else datetime.fromisoformat(base.replace("Z", "+00:00"))
    s = Fraction(seconds)
    us = s * 1_000_000
    assert us.denominator == 1 and us % 1000 == 0, "T() is for whole milliseconds"
    return iso(start + timedelta(microseconds=int(us)))


# ---------------------------------------------------------------- builders


def call_start(
    call_id: str,
    ts: str,
    *,
    tenant: str = "t1",
    user: str | None = "ann",
    kind: str = "user_outbound",
    frm: Any = US_CALLER,
    to: Any = US_DEST,
    loc: str | None = "US",
    switch: Any = "sw-1",
) -> dict[str, Any]:
    return {
        "type": "call_start",
        "call_id": call_id,
        "tenant_id": tenant,
        "user_id": user,
        "kind": kind,
        "from": frm,
        "to": to,
        "usage_location": loc,
        "switch_id": switch,
        "ts": ts,
    }


def call_end(call_id: str, ts: str, *, tenant: str = "t1") -> dict[str, Any]:
    return {"type": "call_end", "call_id": call_id, "tenant_id": tenant, "ts": ts}


def _cmd(kind: str, cmd: str, ts: str, tenant: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "tenant_id": tenant, "command_id": cmd, "ts": ts, **fields}


def add_funds(cmd: str, ts: str, amount: Any, *, tenant: str = "t1", currency: str = "USD"):
    return _cmd("add_funds", cmd, ts, tenant, amount=amount, currency=currency)


def assign_licence(cmd: str, ts: str, user: str = "ann", *, tenant: str = "t1"):
    return _cmd("assign_licence", cmd, ts, tenant, user_id=user)


def remove_licence(cmd: str, ts: str, user: str = "ann", *, tenant: str = "t1"):
    return _cmd("remove_licence", cmd, ts, tenant, user_id=user)


def set_pool(
    cmd: str, ts: str, plan: str, country: str | None, minutes: Any, *, tenant: str = "t1"
):
    return _cmd("set_pool", cmd, ts, tenant, plan=plan, country=country, minutes=minutes)


def set_auto_recharge(
    cmd: str, ts: str, enabled: Any, trigger: Any, recharge: Any, *, tenant: str = "t1"
):
    return _cmd(
        "set_auto_recharge",
        cmd,
        ts,
        tenant,
        enabled=enabled,
        trigger_amount=trigger,
        recharge_amount=recharge,
    )


def payment_result(
    cmd: str,
    ts: str,
    request_id: str,
    status: str = "succeeded",
    reason: str | None = None,
    *,
    tenant: str = "t1",
):
    return _cmd(
        "payment_result", cmd, ts, tenant, request_id=request_id, status=status, reason=reason
    )


# ---------------------------------------------------------------- running


def to_line(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return orjson.dumps(item)


def decode(topic: str, payload: bytes) -> dict[str, Any]:
    rec = json.loads(payload, parse_float=Decimal)
    return {"topic": topic, **rec}


def run_raw_with(deck: Deck, events: Iterable[Any]) -> list[tuple[str, bytes]]:
    """Simulate events on the native core: the records of `simulate`, as (topic, bytes)."""
    lines = b"".join(to_line(e) + b"\n" for e in events)
    sim = core.Simulation(deck)
    out = sim.feed(lines) + sim.finish()
    return [core.split_topic(line) for line in out.splitlines()]


def run_with(deck: Deck, events: Iterable[Any]) -> list[dict[str, Any]]:
    return [decode(t, p) for t, p in run_raw_with(deck, events)]


class Sim:
    """An `Engine` fed one line at a time (line numbers count from 1), for state checks."""

    def __init__(self, deck: Deck) -> None:
        self.engine = NativeEngine(deck)
        self.line = 0

    def feed(self, item: Any) -> list[dict[str, Any]]:
        self.line += 1
        return [decode(t, p) for t, p in self.engine.feed(to_line(item), self.line)]

    def finish(self) -> list[dict[str, Any]]:
        return [decode(t, p) for t, p in self.engine.finish()]

    def tenant(self, tenant_id: str = "t1"):
        return self.engine.tenant_at(tenant_id)


# ---------------------------------------------------------------- reading outputs


def of(records: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [r for r in records if r["topic"] == topic]


def brief(rec: dict[str, Any]) -> tuple:
    """A short, order-revealing view of one record."""
    t = rec["topic"]
    if t == "disconnects":
        return ("disconnect", rec["call_id"], rec["reason"], rec["at"])
    if t == "charges":
        return ("charge", rec["call_id"], rec["charge"])
    if t == "notifications":
        return (rec["kind"], rec["notification_id"], rec["ts"])
    if t == "payments":
        return ("payment", rec["request_id"], rec["ts"])
    if t == "dead-letters":
        return ("dead", rec["reason"], rec["line"])
    raise AssertionError(f"unknown topic {t}")


def briefs(records: list[dict[str, Any]]) -> list[tuple]:
    return [brief(r) for r in records]


def subset(rec: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The fields of `rec` named in `expected` (missing ones as '<missing>')."""
    return {k: rec.get(k, "<missing>") for k in expected}


class NativeEngine:
    """The native core's `Engine` with the reference engine's inspection surface:
    `tenants` maps ids to decoded snapshots (`core.TenantView`), in order of appearance."""

    def __init__(self, deck: Deck) -> None:
        self._engine = core.Engine(deck)

    def feed(self, raw: bytes, line: int) -> list[tuple[str, bytes]]:
        return self._engine.feed(raw, line)

    def finish(self) -> list[tuple[str, bytes]]:
        return self._engine.finish()

    def run_until(self, until: Any, phase: int) -> list[tuple[str, bytes]]:
        return self._engine.run_until(until, phase)

    @property
    def clock(self) -> Any:
        return self._engine.clock

    def tenant_at(self, tenant_id: str, until: Any = None) -> core.TenantView:
        return core.tenant_view(self._engine.tenant_state(tenant_id, until))

    @property
    def tenants(self) -> dict[str, core.TenantView]:
        return {tid: self.tenant_at(tid) for tid in self._engine.tenant_ids()}
