"""Helpers for the deck, pricing and `rate` tests (contracts.md sections 1-3).

`ROWS` is a small literal deck whose figures are easy to check by hand:

| prefix | service          | rate/min | fee     | first/next | window                  |
|--------|------------------|----------|---------|------------|-------------------------|
| 1      | outbound         | 0.006    | 0       | 6/6        |                         |
| 1800   | outbound         | 0        | 0       | 1/1        |                         |
| 44     | outbound         | 0.060000 | 0       | 60/1       | until 2026-12-01        |
| 44     | outbound         | 0.030000 | 0       | 60/1       | from 2026-12-01         |
| 447    | outbound         | 0.120000 | 0.0100  | 30/6       |                         |
| 4475   | outbound         | 0.900000 | 0       | 1/1        | until 2026-11-01        |
| 33     | outbound         | 0.003    | 0       | 1/1        | (1 s = 0.00005 exactly) |
| 49     | outbound         | 0.002999 | 0       | 1/1        | (1 s = 0.0000499833...) |
| 39     | outbound         | 0.123456 | 0       | 1/1        | (six decimals)          |
| 34     | outbound         | 0        | 1.00005 | 1/1        | (fee at a half)         |
| 1      | tollfree_inbound | 0.024    | 0       | 1/1        |                         |
| 44     | tollfree_inbound | 0.048    | 0       | 60/60      |                         |
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, Sequence

import orjson

from rating_engine.core import COLUMNS, Deck, compile_rows, format_instant, parse_instant, rate_line

from .reference.deck import Deck as ReferenceDeck
from .reference.deck import compile_rows as reference_compile_rows

R = dict  # a deck row


def row(
    prefix: str,
    destination: str,
    rate: str,
    fee: str = "0",
    first: str = "1",
    nxt: str = "1",
    service: str = "outbound",
    country: str = "US",
    zone: str = "A",
    number_type: str = "geographic",
    currency: str = "USD",
    effective_from: str = "",
    effective_to: str = "",
) -> dict[str, str]:
    return {
        "prefix": prefix,
        "country": country,
        "destination": destination,
        "zone": zone,
        "number_type": number_type,
        "service": service,
        "rate_per_minute": rate,
        "connection_fee": fee,
        "currency": currency,
        "first_increment": first,
        "next_increment": nxt,
        "effective_from": effective_from,
        "effective_to": effective_to,
    }


ROWS: list[dict[str, str]] = [
    row("1", "United States", "0.006", first="6", nxt="6"),
    row("1800", "United States - Toll-free", "0", number_type="tollfree"),
    row(
        "44",
        "United Kingdom",
        "0.060000",
        first="60",
        nxt="1",
        country="GB",
        effective_to="2026-12-01",
    ),
    row(
        "44",
        "United Kingdom",
        "0.030000",
        first="60",
        nxt="1",
        country="GB",
        effective_from="2026-12-01",
    ),
    row(
        "447",
        "United Kingdom - Mobile",
        "0.120000",
        fee="0.0100",
        first="30",
        nxt="6",
        country="GB",
        zone="B",
        number_type="mobile",
    ),
    row(
        "4475",
        "United Kingdom - Mobile (withdrawn)",
        "0.900000",
        country="GB",
        zone="B",
        number_type="mobile",
        effective_to="2026-11-01",
    ),
    row("33", "France", "0.003", country="FR"),
    row("49", "Germany", "0.002999", country="DE"),
    row("39", "Italy", "0.123456", country="IT"),
    row("34", "Spain", "0", fee="1.00005", country="ES"),
    row("1", "Toll-free from United States", "0.024", service="tollfree_inbound"),
    row(
        "44",
        "Toll-free from United Kingdom",
        "0.048",
        first="60",
        nxt="60",
        country="GB",
        service="tollfree_inbound",
    ),
]


class DeckView:
    """A compiled native deck with its rows readable as attributes (`rows`, `lookup`), so
    the deck's tests can check what the core compiled, not only what it prints."""

    def __init__(self, deck: Deck) -> None:
        self.deck = deck
        self.currency = deck.currency
        self.rows = [SimpleNamespace(**deck.row_fields(i)) for i in range(len(deck))]

    def lookup(self, service: str, digits: str, at: int) -> SimpleNamespace | None:
        index = self.deck.lookup_index(service, digits, at)
        return None if index is None else self.rows[index]


def make_deck(
    rows: Sequence[Mapping[str, str]] = ROWS,
    path: str = "test.csv",
    header: Sequence[str] = COLUMNS,
) -> Deck:
    return compile_rows(path, list(header), [dict(r) for r in rows])


DECK = make_deck()


def make_reference_deck(
    rows: Sequence[Mapping[str, str]] = ROWS,
    path: str = "test.csv",
    header: Sequence[str] = COLUMNS,
) -> ReferenceDeck:
    """The same rows compiled by the reference model (for its pricing functions' tests)."""
    return reference_compile_rows(path, list(header), [dict(r) for r in rows])


REFERENCE_DECK = make_reference_deck()


def deck_csv(rows: Sequence[Mapping[str, str]] = ROWS, columns: Sequence[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in columns})
    return out.getvalue()


def write_deck(
    directory: Path,
    rows: Sequence[Mapping[str, str]] = ROWS,
    columns: Sequence[str] = COLUMNS,
    name: str = "deck.csv",
) -> Path:
    path = directory / name
    path.write_text(deck_csv(rows, columns))
    return path


BASE_CDR: dict[str, Any] = {
    "call_id": "c1",
    "tenant_id": "contoso",
    "user_id": "ann@contoso.com",
    "kind": "user_outbound",
    "from": "+14255550100",
    "to": "+442071234567",
    "start": "2026-11-24T10:00:00Z",
    "end": "2026-11-24T10:03:07.250Z",
}


def cdr(**changes: Any) -> dict[str, Any]:
    """BASE_CDR with fields changed; a value of `...` removes the field."""
    out = dict(BASE_CDR)
    for key, value in changes.items():
        key = {"from_": "from"}.get(key, key)
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def rate(obj: Any, deck: Deck = DECK) -> tuple[dict[str, Any], str | None]:
    """Rate one CDR through the per-call core; the record comes back decoded from its bytes."""
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    record, reason = rate_line(deck, raw)
    return orjson.loads(record), reason


def rated_bytes(obj: Any, deck: Deck = DECK) -> bytes:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return bytes(rate_line(deck, raw)[0])


def reference_rate_text(
    deck: ReferenceDeck, data: bytes, name: str = "<bytes>"
) -> tuple[bytes, str]:
    """What `rate` prints for `data`, by the reference model one line at a time: each non-blank
    line's record, and `FILE:LINE: invalid: reason` for each refused one (stdout, stderr)."""
    from .reference.cdr import invalid_message
    from .reference.cdr import rate_line as reference_rate_line

    out: list[bytes] = []
    messages: list[str] = []
    for line_no, raw in enumerate(io.BytesIO(data), start=1):
        if not raw.strip():
            continue
        record, reason = reference_rate_line(deck, raw.rstrip(b"\n"))
        out.append(orjson.dumps(record) + b"\n")
        if reason is not None and reason != "no_rate":
            messages.append(invalid_message(name, line_no, reason))
    return b"".join(out), "".join(messages)


def jsonl(objs: Iterable[Any]) -> bytes:
    return b"".join((o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n" for o in objs)


def span(start: str, seconds: str) -> dict[str, str]:
    """`start`/`end` fields for a call of `seconds` (a decimal string, may be negative) from `start`."""
    from decimal import Decimal

    us = parse_instant(start) + int(Decimal(seconds) * 1_000_000)
    end = format_instant(us)[:-1]  # millisecond text; add the microseconds back exactly
    rest = us % 1000
    return {"start": start, "end": end + (f"{rest:03d}" if rest else "") + "Z"}
