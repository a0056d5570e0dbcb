"""The package's face of the native decision core (`rating_engine._core`, Rust).

Everything that decides (deck compile, pricing, the tenant state machine, output records)
lives in the core; this module only adapts Python values to it: deck rows read by polars,
instants as `int` or `Fraction` microseconds, tenant state decoded for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence, Union

import orjson

from . import _core
from ._core import (
    AFTER,
    EVENTS,
    Deck,
    DeckError,
    Driver,
    Engine,
    Simulation,
    Table,
    Tenant,
    account_view,
    format_money,
    parse_input,
    rate_line,
    rate_text,
)

Instant = Union[int, Fraction]
US_PER_S: int = _core.US_PER_S
OUTPUT_TOPICS: tuple[str, ...] = tuple(_core.OUTPUT_TOPICS)
DISCONNECTS, DEAD_LETTERS = "disconnects", "dead-letters"
assert DISCONNECTS in OUTPUT_TOPICS and DEAD_LETTERS in OUTPUT_TOPICS
COLUMNS: tuple[str, ...] = tuple(_core.COLUMNS)  # the deck's columns, in contract order
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {
    "add_funds": ("amount", "currency"),
    "set_auto_recharge": ("enabled", "trigger_amount", "recharge_amount"),
    "payment_result": ("request_id", "status"),
    "assign_licence": ("user_id",),
    "remove_licence": ("user_id",),
    "set_pool": ("plan", "country", "minutes"),
}

__all__ = [
    "AFTER",
    "DEAD_LETTERS",
    "DISCONNECTS",
    "EVENTS",
    "Tenant",
    "COLUMNS",
    "COMMAND_FIELDS",
    "Deck",
    "DeckError",
    "Driver",
    "Engine",
    "Instant",
    "OUTPUT_TOPICS",
    "Simulation",
    "Table",
    "TenantView",
    "US_PER_S",
    "account_view",
    "compile_rows",
    "format_instant",
    "format_money",
    "load_deck",
    "parse_instant",
    "parse_input",
    "rate_line",
    "rate_text",
    "stamp_of",
    "simulate_lines",
    "split_topic",
    "tenant_view",
]


def compile_rows(
    path: str, header: Sequence[str], rows: Iterable[Mapping[str, Any]], first_line: int = 2
) -> Deck:
    """Compile deck rows (mappings by header name) in the core; raises `DeckError`."""
    names = list(header)
    cells = [[None if (v := raw.get(h)) is None else str(v) for h in names] for raw in rows]
    return _core.compile_rows(path, names, cells, first_line)


def load_deck(path: str) -> Deck:
    """Read a deck CSV with polars (every column as text, as written) and compile it."""
    import polars as pl

    try:
        frame = pl.read_csv(path, infer_schema=False, has_header=True, quote_char='"')
    except FileNotFoundError:
        raise DeckError(f"{path}: no such file") from None
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise DeckError(f"{path}:1: cannot read CSV: {exc}") from None
    return _core.compile_rows(path, list(frame.columns), [list(r) for r in frame.iter_rows()])


def simulate_lines(deck: Deck, lines: Iterable[bytes]) -> list[tuple[str, bytes]]:
    """`simulate` on these input lines: every record as (topic, published bytes), in order."""
    sim = Simulation(deck)
    out = sim.feed(b"".join(line.rstrip(b"\r\n") + b"\n" for line in lines)) + sim.finish()
    return [split_topic(line) for line in out.splitlines()]


def split_topic(line: bytes) -> tuple[str, bytes]:
    """A `simulate` line back into its topic and record (the `"topic"` member is first)."""
    head, _, rest = line.partition(b'",')
    return head[len(b'{"topic":"') :].decode(), b"{" + rest


def parse_instant(text: object) -> Instant:
    """ISO 8601 with a zone to exact epoch microseconds; ValueError if it is not one."""
    if not isinstance(text, str):
        raise ValueError("timestamp is not a string")
    return _core.parse_instant(text)  # type: ignore[no-any-return]


def format_instant(us: Instant) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ`, floored to the millisecond."""
    return _core.format_instant(us)  # type: ignore[no-any-return]


def stamp_of(raw: bytes) -> Instant | None:
    """An input line's `ts`, or None when it has none that parses (it will be dead-lettered)."""
    return _core.stamp_of(raw)  # type: ignore[no-any-return]


def _i(x: int | str | None) -> Instant | None:
    return x if x is None or isinstance(x, int) else Fraction(x)


def _at(x: int | str) -> Instant:
    """An instant the state always has (an int, or a Fraction written as its text)."""
    return x if isinstance(x, int) else Fraction(x)


@dataclass
class PoolView:
    key: str
    allowance_us: int
    month: str
    settled_at: Instant
    used_us: Instant
    calls: list[str]
    sent_80: bool
    sent_100: bool

    @property
    def remaining_us(self) -> Instant:
        return max(0, self.allowance_us - self.used_us)


@dataclass
class LotView:
    lot_id: str
    seq: int
    bought_at: Instant
    expires_at: Instant
    remaining_micros: int
    expired: bool
    forfeits: int


@dataclass
class CallView:
    call_id: str
    user_id: str | None
    kind: str
    row: int | None
    start: Instant
    pool_key: str | None
    on_pool: bool
    credit_start: Instant | None
    prepaid_s: int
    hold_micros: int

    def boundary(self) -> Instant | None:
        return None if self.credit_start is None else self.credit_start + self.prepaid_s * US_PER_S


@dataclass
class TenantView:
    """A read-only snapshot of one tenant, decoded from its state bytes (for tests and tools)."""

    tenant_id: str
    clock: Instant | None
    balance_micros: int
    holds_micros: int
    licences: set[str]
    requests_n: int
    pools: dict[str, PoolView] = field(default_factory=dict)
    lots: list[LotView] = field(default_factory=list)
    live: dict[str, CallView] = field(default_factory=dict)


def tenant_view(state: bytes) -> TenantView:
    doc = orjson.loads(state)
    t = TenantView(
        doc["tenant_id"],
        _i(doc["clock"]),
        doc["balance"],
        doc["holds"],
        set(doc["licences"]),
        doc["counters"][0],
    )
    for key, allowance, month, settled, used, calls, s80, s100 in doc["pools"]:
        t.pools[key] = PoolView(
            key, allowance, month, _at(settled), _at(used), list(calls), s80, s100
        )
    t.lots = [
        LotView(i, seq, _at(b), _at(e), rem, exp, f) for i, seq, b, e, rem, exp, f in doc["lots"]
    ]
    for (
        cid,
        _seq,
        user,
        kind,
        _sw,
        row,
        start,
        pool_key,
        on_pool,
        _pe,
        credit,
        _fee,
        prepaid,
        hold,
    ) in doc["live"]:
        t.live[cid] = CallView(
            cid,
            user,
            kind,
            row,
            _at(start),
            pool_key,
            on_pool,
            _i(credit),
            prepaid,
            hold,
        )
    return t
