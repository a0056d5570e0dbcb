"""Rate-deck compiler: CSV rows into a prefix table keyed by service.

Loading (polars) is the only I/O here; `compile_rows` is pure so tests can
build decks from literal rows. A lookup walks the number's prefixes from the
longest, one dict probe each, so it costs O(number length), never a scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .clock import Instant, day_start_us
from .money import MoneyError, parse_decimal_micros

COLUMNS = (
    "prefix",
    "country",
    "destination",
    "zone",
    "number_type",
    "service",
    "rate_per_minute",
    "connection_fee",
    "currency",
    "first_increment",
    "next_increment",
    "effective_from",
    "effective_to",
)
ZONES = frozenset("ABCD")
NUMBER_TYPES = frozenset({"geographic", "mobile", "tollfree", "premium", "other"})
SERVICES = frozenset({"outbound", "tollfree_inbound"})
NEVER = None  # an open end of an effective window


class DeckError(ValueError):
    """An invalid deck; the message names file, line and column."""


@dataclass(frozen=True, slots=True)
class Rate:
    """One compiled deck row. `*_text` keep the deck's own spelling for output."""

    index: int
    line: int
    prefix: str
    country: str
    destination: str
    zone: str
    number_type: str
    service: str
    rate_text: str
    fee_text: str
    rate_micros_per_min: int
    fee_micros: int
    currency: str
    first_increment_s: int
    next_increment_s: int
    effective_from_us: int | None
    effective_to_us: int | None

    def covers(self, at: Instant) -> bool:
        lo, hi = self.effective_from_us, self.effective_to_us
        return (lo is None or at >= lo) and (hi is None or at < hi)


@dataclass(slots=True)
class Deck:
    """Compiled deck: `table[service][prefix]` holds that prefix's rows by window."""

    path: str
    currency: str | None
    rows: list[Rate]
    table: dict[str, dict[str, tuple[Rate, ...]]]
    max_prefix_len: int
    # `lengths[service][first two digits]`: the lengths, longest first, of that service's
    # prefixes a number starting with those digits can have (so a lookup probes only those)
    lengths: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)

    def lookup(self, service: str, digits: str, at: Instant) -> Rate | None:
        """Longest prefix of `digits` with a row of `service` in effect at `at`."""
        by_prefix = self.table.get(service)
        if not by_prefix:
            return None
        get = by_prefix.get
        candidates = self.lengths.get(service, {}).get(digits[:2])
        if candidates is None:  # not two digits, or no index: every length
            candidates = range(min(len(digits), self.max_prefix_len), 0, -1)
        for length in candidates:
            rows = get(digits[:length])
            if rows is not None:
                for row in rows:  # `row.covers(at)`, inlined: this is the per-call hot path
                    lo, hi = row.effective_from_us, row.effective_to_us
                    if (lo is None or at >= lo) and (hi is None or at < hi):
                        return row
        return None


def _fail(path: str, line: int, column: str | None, message: str) -> DeckError:
    where = f"{path}:{line}" + (f": column {column}" if column else "")
    return DeckError(f"{where}: {message}")


def _parse_row(path: str, line: int, index: int, raw: Mapping[str, str | None]) -> Rate:
    def text(col: str) -> str:
        value = raw.get(col)
        return "" if value is None else str(value).strip()

    def need(col: str, ok: bool, what: str) -> None:
        if not ok:
            raise _fail(path, line, col, f"{text(col)!r} is not {what}")

    prefix = text("prefix")
    need("prefix", prefix.isascii() and prefix.isdigit() and len(prefix) <= 15, "a digit prefix")
    country = text("country")
    need(
        "country",
        len(country) == 2 and country.isascii() and country.isalpha() and country.isupper(),
        "an ISO 3166 alpha-2 code",
    )
    destination = text("destination")
    zone = text("zone")
    need("zone", zone in ZONES, "a zone A, B, C or D")
    number_type = text("number_type")
    need("number_type", number_type in NUMBER_TYPES, "one of " + ", ".join(sorted(NUMBER_TYPES)))
    service = text("service") or "outbound"
    need("service", service in SERVICES, "outbound or tollfree_inbound")
    currency = text("currency")
    need(
        "currency",
        len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper(),
        "an ISO 4217 code",
    )

    def decimal(col: str) -> int:
        try:
            micros = parse_decimal_micros(text(col), max_places=6)
        except MoneyError:
            raise _fail(
                path, line, col, f"{text(col)!r} is not a decimal with at most 6 places"
            ) from None
        if micros < 0:
            raise _fail(path, line, col, f"{text(col)!r} is negative")
        return micros

    def whole_seconds(col: str) -> int:
        value = text(col)
        if value.startswith("-") and value[1:].isdigit():
            raise _fail(path, line, col, f"{value!r} is negative")
        need(col, value.isascii() and value.isdigit() and int(value) >= 1, "whole seconds >= 1")
        return int(value)

    def day(col: str) -> int | None:
        value = text(col)
        if not value:
            return NEVER
        try:
            return day_start_us(value)
        except ValueError:
            raise _fail(path, line, col, f"{value!r} is not an ISO date (YYYY-MM-DD)") from None

    rate = decimal("rate_per_minute")
    fee = decimal("connection_fee")
    first = whole_seconds("first_increment")
    nxt = whole_seconds("next_increment")
    lo, hi = day("effective_from"), day("effective_to")
    if lo is not None and hi is not None and hi <= lo:
        raise _fail(
            path, line, "effective_to", "window is empty: effective_to must be after effective_from"
        )
    return Rate(
        index,
        line,
        prefix,
        country,
        destination,
        zone,
        number_type,
        service,
        text("rate_per_minute"),
        text("connection_fee"),
        rate,
        fee,
        currency,
        first,
        nxt,
        lo,
        hi,
    )


def compile_rows(
    path: str, header: Sequence[str], rows: Iterable[Mapping[str, str | None]], first_line: int = 2
) -> Deck:
    """Validate and index rows; the first failing rule raises `DeckError`."""
    names = [h.strip() for h in header]
    for col in COLUMNS:
        if col not in names:
            raise _fail(path, 1, col, "missing column")
    if names != list(
        header
    ):  # a header spelled " country": the rows must be read by the trimmed name
        rows = ({k.strip() if isinstance(k, str) else k: v for k, v in raw.items()} for raw in rows)
    parsed: list[Rate] = []
    currency: str | None = None
    for offset, raw in enumerate(rows):
        line = first_line + offset
        rate = _parse_row(path, line, len(parsed), raw)
        if currency is None:
            currency = rate.currency
        elif rate.currency != currency:
            raise _fail(
                path, line, "currency", f"{rate.currency} differs from the deck's {currency}"
            )
        parsed.append(rate)

    grouped: dict[str, dict[str, list[Rate]]] = {}
    for rate in parsed:
        grouped.setdefault(rate.service, {}).setdefault(rate.prefix, []).append(rate)
    table: dict[str, dict[str, tuple[Rate, ...]]] = {}
    for service, by_prefix in grouped.items():
        table[service] = {}
        for prefix, windows in by_prefix.items():
            windows.sort(
                key=lambda r: (-1 if r.effective_from_us is None else r.effective_from_us, r.line)
            )
            for before, after in zip(windows, windows[1:]):
                if before.effective_to_us is None or (
                    after.effective_from_us is None
                    or after.effective_from_us < before.effective_to_us
                ):
                    late = max(before, after, key=lambda r: r.line)
                    early = min(before, after, key=lambda r: r.line)
                    raise _fail(
                        path,
                        late.line,
                        "effective_from",
                        f"window overlaps line {early.line} for prefix {prefix} ({service})",
                    )
            table[service][prefix] = tuple(windows)
    max_len = max((len(r.prefix) for r in parsed), default=0)
    return Deck(path, currency, parsed, table, max_len, _lengths_index(table))


def _lengths_index(
    table: dict[str, dict[str, tuple[Rate, ...]]],
) -> dict[str, dict[str, tuple[int, ...]]]:
    """For each service and each two-digit start, the prefix lengths worth probing, longest first.

    A number starting `d1 d2` can only have a prefix `p` of length >= 2 with `p[:2] == d1 d2`,
    or the one-digit prefix `d1`; a probe longer than the number finds nothing (a prefix is
    never longer than the digits it matches), so the lookup stays exact.
    """
    index: dict[str, dict[str, tuple[int, ...]]] = {}
    for service, by_prefix in table.items():
        by_head: dict[str, set[int]] = {
            f"{a}{b}": set() for a in "0123456789" for b in "0123456789"
        }
        for prefix in by_prefix:
            if len(prefix) >= 2:
                by_head[prefix[:2]].add(len(prefix))
        for head, found in by_head.items():
            if head[0] in by_prefix:
                found.add(1)
        index[service] = {
            head: tuple(sorted(found, reverse=True)) for head, found in by_head.items()
        }
    return index


def load_deck(path: str) -> Deck:
    """Read a deck CSV with polars (every column as text, as written) and compile it."""
    import polars as pl

    try:
        frame = pl.read_csv(path, infer_schema=False, has_header=True, quote_char='"')
    except FileNotFoundError:
        raise DeckError(f"{path}: no such file") from None
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise DeckError(f"{path}:1: cannot read CSV: {exc}") from None
    return compile_rows(path, frame.columns, frame.iter_rows(named=True))
