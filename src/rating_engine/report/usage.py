"""PSTN usage report and funding advice: ``rating-engine report``.

    rating-engine report CHARGES.jsonl [MORE.jsonl | -] --out DIR
        [--tenant ID]... [--top N] [--lead-days N] [--cover-days N]
        [--percentile P] [--chart-tenants N] [--max-bad-lines N]

Input: the charges records of contracts.md section 4, one JSON object a line,
as written by the worker's ``charges`` topic, by ``simulate`` (records carry
``"topic"``; records of any other topic are ignored and counted) or by
``rate`` (no pool fields; ``tenant_id``/``user_id`` only when the CDR had
them: such records are reported under the tenant ``(none)``).

Output in DIR: ``usage.xlsx`` (one sheet per table), one CSV per table
(``summary.csv``, ``by_user.csv``, ``by_destination.csv``, ``by_kind.csv``,
``by_day.csv``, ``by_payer.csv``, ``disconnects.csv``, ``by_status.csv``,
``top_destinations.csv``, ``funding.csv``, ``bad_lines.csv``, ``notes.csv``)
and a self-contained ``report.html`` (tables and inline SVG charts, no
external resource, no script).

Exactness
---------
Money never goes through a binary float while it is summed: every money
string (``"0.0234"``) is parsed as an exact integer count of 0.0001 (the
4-decimal string with its dot removed, cast to Int64), sums are integer
sums, and the CSV/HTML print them back as 4-decimal strings. Second counts
(``duration_seconds``, ``pool_seconds``: JSON numbers with at most 3
decimals) are held as integer milliseconds, ``billed_seconds`` as an
integer; minutes are derived from those integers, rounded half-up to 2
decimals. The only place a float appears is the XLSX: money cells are Excel
numbers (value = units / 10000, number format ``0.0000``), seconds cells
``0.000`` and minutes ``0.00``, because Excel has no decimal type; the value
shown is exact, the double behind it is the nearest one.

Meaning of the columns
----------------------
``calls`` records; ``talk_seconds`` the sum of ``duration_seconds`` (a
missing or null one counts 0); ``pool_seconds`` the seconds the minute pools
paid; ``credit_seconds`` the sum of ``billed_seconds``, the seconds the
Communications Credits paid (whole increments); ``*_minutes`` the same / 60;
``charge`` the credits spent. A call is put on the UTC day of its ``start``
(a call over midnight counts on the day it began); records without a
``start`` are on the day "(no date)".

Funding advice (per tenant and currency)
----------------------------------------
From the tenant's daily credit spend ``s_1..s_n`` over its period (its
first to its last day with a record, days without spend count 0):

* ``pNN_daily`` = the PP-th percentile of the daily spend (nearest rank: the
  ``ceil(PP/100 * n)``-th smallest day), default P95;
* ``trigger_amount`` = max(pNN_daily x ``lead_days``, the largest spend seen
  over any ``lead_days`` consecutive days), rounded up to a whole currency
  unit. ``lead_days`` (default 2) is how long a recharge may take to land:
  a failed payment waits 24 h before the next request (accounts.md rule 8),
  so 2 days cover one failure and its retry;
* ``recharge_amount`` = max(mean_daily x ``cover_days`` (default 30: about
  one card charge a month), ``trigger_amount``), rounded up to a whole unit;
* ``add_funds`` = ``trigger_amount`` + ``recharge_amount`` (an opening
  balance one full recharge above the trigger).

The advice is then replayed on the actual daily series (balance starts at
``add_funds``; each day's spend is taken off; when the balance is below the
trigger and no recharge is pending, one is requested and lands at the start
of the day ``lead_days`` later). If the balance would have reached zero,
the trigger is raised by the shortfall (rounded up to a whole unit) and the
replay runs again, so the figures printed are ones that would have kept the
tenant above zero over the period. ``replay_min_balance`` and
``replay_recharges`` show the outcome.

Bad lines
---------
A line that is not JSON, not an object, or whose ``charge`` (a 4-decimal
string), ``status``, ``billed_seconds`` (an integer), ``duration_seconds``,
``pool_seconds`` (numbers) or ``start`` (ISO 8601 with a zone) is missing
or can't be read is left out of every total, counted, and listed with its
file and 1-based line number (blank lines count, as everywhere in the
contracts) in ``bad_lines`` and in the notes; the report still comes out.

Streaming
---------
Each file is read once, by polars' NDJSON reader (``scan_ndjson`` with an
explicit schema: only the fields above, as the reader looks each one up in
every record) on the streaming engine, which parses on every core and hands
the records over in batches (``collect_batches``). Each batch is normalised
(typed and checked: one small ``state`` per row says whether it is a
charges record, a record of another topic, or a bad line and why; the raw
fields are then dropped), copied into one piece per column (the reader hands
it over in many; grouping those costs more than the copy) and reduced to
four partial aggregates, merged as it goes: per tenant x day, per tenant x
kind x pool x status x reason x disconnect, per tenant x user, per tenant x
destination. Every table is
derived from those, so memory holds a few batches and the aggregates, not
the input. (One group-by over all those keys would be no reduction: it has
about as many groups as rows.) Parsing the JSON is most of the work; the
aggregation and the outputs come next (see loadtest/results/report.md).
One single-threaded process per core, each reading its share of the file's
chunks (as ``rate`` does), was measured slower than this single scan (the
notes of 2026-11-24 14:41 there).

When a file holds a line polars can't parse, it is first rewritten to a
temporary file where each such line is replaced by a marker object (blocks
that parse are copied as they are; only a failing block is checked line by
line with orjson).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import polars as pl

PROG = "rating-engine report"

# Fields of a charges record the report reads (everything as text: a value of
# the wrong JSON type then never stops the scan; it is checked below).
FIELDS = (
    "topic",
    "tenant_id",
    "user_id",
    "kind",
    "status",
    "reason",
    "start",
    "duration_seconds",
    "billed_seconds",
    "destination",
    "country",
    "number_type",
    "charge",
    "currency",
    "pool",
    "pool_seconds",
    "disconnected",
)
BAD_MARK = "__rating_engine_report_bad__"
# Numbers are read as numbers (a value of another JSON type makes polars
# refuse the file, which then goes through `sanitise`); the rest as text.
NUMERIC = {"duration_seconds": pl.Float64, "pool_seconds": pl.Float64, "billed_seconds": pl.Int64}
SCHEMA = {name: NUMERIC.get(name, pl.String) for name in FIELDS}
# A file rewritten by `sanitise` also carries the marker of each line it replaced.
MARKED_SCHEMA = {**SCHEMA, BAD_MARK: pl.String}

STATUSES = ("rated", "free", "unrated", "invalid")
DISCONNECT_REASONS = ("no_rate", "not_licensed", "no_funds", "funds_exhausted", "bad_number")
NONE_LABEL = "(none)"
NO_DATE_LABEL = "(no date)"
MONEY_UNIT = 10_000  # units of 0.0001 in one currency unit

# Column kinds (how a renderer formats an integer column).
TEXT, INT, MONEY, SECONDS, MINUTES, DATE, NUMBER = (
    "text",
    "int",
    "money",
    "seconds",
    "minutes",
    "date",
    "number",
)

MEASURES: dict[str, str] = {
    "calls": INT,
    "talk_seconds": SECONDS,
    "pool_seconds": SECONDS,
    "credit_seconds": SECONDS,
    "talk_minutes": MINUTES,
    "pool_minutes": MINUTES,
    "credit_minutes": MINUTES,
    "charge": MONEY,
}


@dataclasses.dataclass
class Table:
    """One output table: ``df`` holds integers (money in 0.0001 units, seconds
    and minutes in milliseconds) and ``kinds`` says how to print each column."""

    name: str
    title: str
    df: pl.DataFrame
    kinds: dict[str, str]
    description: str = ""

    def __post_init__(self) -> None:
        self.df = self.df.select(list(self.kinds))


@dataclasses.dataclass
class Report:
    tables: dict[str, Table]
    notes: list[str]
    records: int  # charges records read (good ones)
    bad_count: int
    ignored_count: int
    files: list[str]
    params: dict[str, object]


class ReportError(Exception):
    """A usage error or an unreadable input (exit 2)."""


# ---------------------------------------------------------------------------
# scanning

# What each row is, as one small integer (``state``): a charges record to
# count, a record of another topic, or a bad line and why.
OK, IGNORED, MARKED = 0, 1, 2
BAD_REASONS = (  # states MARKED + 1, MARKED + 2, ... in the order they are checked
    "missing_field:charge",
    "bad_field:charge",
    "missing_field:status",
    "bad_field:status",
    "missing_field:billed_seconds",
    "bad_field:start",
)

# The columns a batch keeps once normalised: the grouping keys, the integer
# measures (see `normalise`), ``state`` and ``rec`` (record index in its file).
KEYS = (
    "tenant_id",
    "currency",
    "user_id",
    "kind",
    "pool",
    "status",
    "reason",
    "disconnected",
    "country",
    "number_type",
    "destination",
)
SUMS = ("talk_ms", "pool_ms", "billed_ms", "charge_u")

# The partial aggregates of the charges records, by name: their keys. They
# are not crossed with one another: one group-by over all the keys would have
# about as many groups as rows. No breakdown of the report crosses the day
# with another dimension, so the day gets an aggregate of its own ("days",
# one row per tenant x day) and the other call dimensions share one ("dims").
TK = ("tenant_id", "currency")
AGG_KEYS: dict[str, tuple[str, ...]] = {
    "days": (*TK, "day"),
    "dims": (*TK, "kind", "pool", "status", "reason", "disconnected"),
    "users": (*TK, "user_id"),
    "dests": (*TK, "country", "number_type", "destination"),
}

# Bytes of input polars' NDJSON reader parses at a time. Its default for a
# local file is about 0.5 MB (1000 records), many small pieces to glue into
# each batch: 4 MiB ones cost about 6 % less CPU. Read from the environment
# when a scan starts (see `main`), ignored by a version without it.
NDJSON_READ_SIZE = ("POLARS_FORCE_NDJSON_READ_SIZE", str(4 << 20))


def blocks(src: BinaryIO, size: int) -> Iterator[bytes]:
    """`src` in blocks of about `size` bytes, each cut after a newline (the last maybe not)."""
    while True:
        block = src.read(size)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += src.readline()
        yield block


def scan_file(path: str | os.PathLike[str], *, marked: bool = False) -> pl.LazyFrame:
    """Lazy scan of one charges file (records numbered in ``rec``); ``marked``:
    a file rewritten by :func:`sanitise`, which may hold marker objects.

    Only the fields the report reads are asked for: the reader looks each of
    them up in every record, so a narrower schema is a cheaper parse."""
    schema = MARKED_SCHEMA if marked else SCHEMA
    return pl.scan_ndjson(os.fspath(path), schema=schema, row_index_name="rec")


def _ms(col: str) -> pl.Expr:
    """A seconds count (a JSON number, at most 3 decimals) -> integer ms."""
    return (pl.col(col) * 1000).round(0).cast(pl.Int64)


def _day() -> pl.Expr:
    """UTC date of ``start``: ``...Z`` times read from their first 10
    characters, the others (an offset) through the full ISO 8601 parse."""
    start = pl.col("start")
    zulu = start.str.ends_with("Z") & (start.str.slice(10, 1) == "T")
    other = pl.when(~zulu).then(start)  # only those go through the full parse
    return pl.coalesce(
        pl.when(zulu).then(start.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)),
        other.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone="UTC").dt.date(),
    )


def _state(marked: bool) -> pl.Expr:
    """``state`` of a row of :func:`normalise` (see ``OK``, ``BAD_REASONS``)."""
    c = pl.col
    topic = c("topic")
    cases = [(topic.is_not_null() & (topic != "charges"), IGNORED)]
    if marked:  # a marker is bad whatever else the row says
        cases.insert(0, (c(BAD_MARK).is_not_null(), MARKED))
    checks = (
        c("charge").is_null(),
        c("charge_u").is_null(),
        c("status").is_null(),
        ~c("status").is_in(STATUSES),
        c("billed_seconds").is_null(),
        c("start").is_not_null() & c("day").is_null(),
    )
    cases += [(check, code) for code, check in enumerate(checks, start=MARKED + 1)]
    expr: Any = pl.when(cases[0][0]).then(pl.lit(cases[0][1], pl.Int8))
    for check, code in cases[1:]:
        expr = expr.when(check).then(pl.lit(code, pl.Int8))
    return expr.otherwise(pl.lit(OK, pl.Int8))


def normalise(lf: pl.LazyFrame, *, marked: bool = False) -> pl.LazyFrame:
    """Raw charges records (see ``SCHEMA``) -> the grouping keys, ``day``
    (UTC date of ``start``), the integer measures ``talk_ms``, ``pool_ms``,
    ``billed_ms``, ``charge_u`` (0.0001 units), ``state`` and ``rec``; the raw
    fields are dropped once read, so a batch carries only what is summed."""
    c = pl.col
    charge = c("charge")
    lf = lf.with_columns(
        charge_u=pl.when(charge.str.slice(-5, 1) == ".").then(
            charge.str.replace(".", "", literal=True).cast(pl.Int64, strict=False)
        ),
        billed_ms=c("billed_seconds") * 1000,
        talk_ms=_ms("duration_seconds").fill_null(0),
        pool_ms=_ms("pool_seconds").fill_null(0),
        day=_day(),
    )
    mark = [BAD_MARK] if marked else []
    return lf.select("rec", *KEYS, "day", *SUMS, *mark, state=_state(marked))


def _partial_aggregates(rows: pl.LazyFrame) -> list[pl.LazyFrame]:
    """The aggregates (``AGG_KEYS`` order) of normalised charges records."""
    c = pl.col
    extra = {
        "dims": [
            c("pool").is_not_null().sum().alias("pool_calls"),
            (c("billed_ms") > 0).sum().alias("credit_calls"),
        ],
        "users": [c("disconnected").is_not_null().sum().alias("disconnects")],
    }
    sums = [pl.len().alias("calls"), *(c(s).sum() for s in SUMS)]
    return [rows.group_by(keys).agg(*sums, *extra.get(n, [])) for n, keys in AGG_KEYS.items()]


def _bad_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """``rec`` and ``reason`` of the bad rows of a normalised batch."""
    c = pl.col
    reason = c("state").replace_strict(
        range(MARKED + 1, MARKED + 1 + len(BAD_REASONS)),
        BAD_REASONS,
        default=None,
        return_dtype=pl.String,
    )
    if BAD_MARK in rows.columns:
        reason = pl.when(c("state") == MARKED).then(c(BAD_MARK)).otherwise(reason)
    return rows.filter(c("state") >= MARKED).select("rec", reason.alias("reason"))


def _merge(frames: list[pl.DataFrame], keys: Sequence[str]) -> pl.DataFrame:
    """Partial aggregates -> one, with fresh string buffers: a key must not
    keep a whole batch of parsed lines alive (polars strings are views)."""
    df = pl.concat(frames, how="vertical")
    values = [n for n in df.columns if n not in keys]
    return (
        df.group_by(list(keys))
        .agg(pl.col(values).sum())
        .with_columns(pl.col(pl.String).cast(pl.Categorical).cast(pl.String))
    )


class _Aggregates:
    """Partial aggregates merged as batches come (every ``merge_every``), rows
    counted by state, and the first ``max_bad_lines`` bad lines."""

    def __init__(self, max_bad_lines: int, merge_every: int) -> None:
        self.max_bad_lines = max_bad_lines
        self.merge_every = merge_every
        self.merged: dict[str, pl.DataFrame | None] = dict.fromkeys(AGG_KEYS)
        self.pending: dict[str, list[pl.DataFrame]] = {n: [] for n in AGG_KEYS}
        self.states: dict[int, int] = {}
        self.bad_counts: dict[str, int] = {}
        self.bad_first: pl.DataFrame | None = None
        self.batches = 0

    def add(self, file_no: int, rows: pl.DataFrame) -> None:
        """Take in one normalised batch of the file ``file_no``."""
        state = rows["state"]
        if not state.max():  # only charges records (the usual case)
            self.states[OK] = self.states.get(OK, 0) + rows.height
        else:
            for code, n in state.value_counts().iter_rows():
                self.states[code] = self.states.get(code, 0) + n
            self._add_bad(file_no, _bad_rows(rows))
            rows = rows.filter(state == OK)
        # one piece per column first: a batch comes in ~26 pieces, and grouping
        # those costs more than copying the (narrow) rows once
        parts = pl.collect_all(_partial_aggregates(rows.rechunk().lazy()))
        for n, part in zip(AGG_KEYS, parts, strict=True):
            self.pending[n].append(part)
        self.batches += 1
        if self.batches % self.merge_every == 0:
            self.merge()

    def _add_bad(self, file_no: int, bad: pl.DataFrame) -> None:
        for reason, n in bad.group_by("reason").len().iter_rows():
            self.bad_counts[reason] = self.bad_counts.get(reason, 0) + n
        bad = bad.select(pl.lit(file_no, pl.Int32).alias("file_no"), "rec", "reason")
        keep = bad if self.bad_first is None else pl.concat([self.bad_first, bad])
        self.bad_first = keep.sort("file_no", "rec").head(self.max_bad_lines)

    def merge(self) -> None:
        for n, keys in AGG_KEYS.items():
            if self.pending[n]:
                old = self.merged[n]
                self.merged[n] = _merge(([old] if old is not None else []) + self.pending[n], keys)
                self.pending[n] = []

    def result(self) -> dict[str, pl.DataFrame]:
        """``days``, ``dims``, ``users``, ``dests`` (tenant and currency
        ``(none)`` when missing), ``states`` (rows by state), ``bad``
        (``file_no``, ``rec``, ``reason``) and ``bad_counts``."""
        self.merge()
        empty = normalise(pl.LazyFrame(schema={"rec": pl.get_index_type(), **SCHEMA}))
        out: dict[str, pl.DataFrame] = {}
        for (n, df), schema_lf in zip(self.merged.items(), _partial_aggregates(empty), strict=True):
            df = schema_lf.collect() if df is None else df
            out[n] = df.with_columns(pl.col(*TK).fill_null(NONE_LABEL))
        out["states"] = pl.DataFrame(
            list(self.states.items()), schema={"state": pl.Int8, "n": pl.Int64}, orient="row"
        )
        bad_schema = {"file_no": pl.Int32, "rec": pl.get_index_type(), "reason": pl.String}
        out["bad"] = pl.DataFrame(schema=bad_schema) if self.bad_first is None else self.bad_first
        out["bad_counts"] = pl.DataFrame(
            sorted(self.bad_counts.items()),
            schema={"reason": pl.String, "n": pl.Int64},
            orient="row",
        )
        return out


def aggregate(
    sources: Sequence[tuple[str | os.PathLike[str], bool]],
    *,
    max_bad_lines: int = 1000,
    tenants: Sequence[str] | None = None,
    batch_rows: int = 200_000,
    merge_every: int = 8,
) -> dict[str, pl.DataFrame]:
    """One streaming pass over each file of ``sources`` ((path, marked)).

    The scan runs on polars' streaming engine (parsing on every core) and
    hands over batches of ``batch_rows`` records (``collect_batches``); each
    is normalised and reduced to its partial aggregates while the engine
    parses the next ones, so memory holds a few batches and the aggregates,
    whatever the size of the input. See :meth:`_Aggregates.result` for what
    comes out.
    """
    acc = _Aggregates(max_bad_lines, merge_every)
    wanted = pl.col("tenant_id").is_in(list(tenants or ())) | (pl.col("state") >= MARKED)
    for file_no, (path, marked) in enumerate(sources):
        batches = scan_file(path, marked=marked).collect_batches(
            chunk_size=batch_rows, maintain_order=False, engine="streaming"
        )
        for batch in batches:
            rows = normalise(batch.lazy(), marked=marked)
            acc.add(file_no, (rows.filter(wanted) if tenants else rows).collect())
    return acc.result()


# ---------------------------------------------------------------------------
# unparseable lines


_BLOCK = 8 << 20


def _marker(reason: str) -> bytes:
    return orjson.dumps({BAD_MARK: reason}) + b"\n"


def _check_block(block: bytes) -> bool:
    try:
        pl.read_ndjson(io.BytesIO(block), schema=SCHEMA)
    except Exception:  # noqa: BLE001 - any parse failure: check line by line
        return False
    return True


def sanitise(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy ``src`` to ``dst`` replacing each line polars can't read (not
    JSON, not an object, not UTF-8, a number field of another JSON type) by a
    marker object naming the problem; same lines, so line numbers are kept.

    Blocks of about 8 MiB that polars reads are copied as they are; a block
    it refuses is screened line by line with orjson."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in blocks(fin, _BLOCK):
            if not block.endswith(b"\n"):
                block += b"\n"
            if _check_block(block):
                fout.write(block)
                continue
            lines = block.split(b"\n")
            lines.pop()  # after the final newline
            screened = [_screen_line(raw) for raw in lines]
            joined = b"".join(screened)
            if not _check_block(joined):
                # polars refuses a line orjson accepted: find it (rare)
                joined = b"".join(
                    ln if _check_block(ln) else _marker("unreadable") for ln in screened
                )
            fout.write(joined)


def _screen_line(raw: bytes) -> bytes:
    """One line, checked with orjson: as it is, or a marker."""
    if not raw.strip():
        return b"\n"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _marker("invalid_json")
    if not isinstance(obj, dict):
        return _marker("not_an_object")
    for name, dtype in NUMERIC.items():
        value = obj.get(name)
        if value is None:
            continue
        ok_type = int if dtype == pl.Int64 else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or abs(value) >= 2**63:
            return _marker(f"bad_field:{name}")
    return raw.rstrip(b"\r") + b"\n"


def _line_numbers(path: str | os.PathLike[str], recs: Sequence[int]) -> dict[int, int]:
    """Record index (non-blank lines, as scan_ndjson counts) -> 1-based line."""
    if not recs:
        return {}
    df = (
        pl.scan_lines(os.fspath(path), name="text")
        .with_row_index("line", offset=1)
        .filter(pl.col("text").str.strip_chars() != "")
        .with_row_index("rec")
        .filter(pl.col("rec").is_in(list(recs)))
        .select("rec", "line")
        .collect()
    )
    return dict(zip(df["rec"].to_list(), df["line"].to_list(), strict=True))


# ---------------------------------------------------------------------------
# tables


def _measures(df: pl.DataFrame) -> pl.DataFrame:
    """Output measure columns from ``*_ms``/``charge_u`` sums."""
    c = pl.col
    return df.with_columns(
        talk_seconds=c("talk_ms"),
        pool_seconds=c("pool_ms"),
        credit_seconds=c("billed_ms"),
        talk_minutes=c("talk_ms"),
        pool_minutes=c("pool_ms"),
        credit_minutes=c("billed_ms"),
        charge=c("charge_u"),
    )


def _sum_by(df: pl.DataFrame, keys: Sequence[str], extra: Sequence[pl.Expr] = ()) -> pl.DataFrame:
    c = pl.col
    return df.group_by(list(keys)).agg(
        c("calls").sum(),
        c("talk_ms").sum(),
        c("pool_ms").sum(),
        c("billed_ms").sum(),
        c("charge_u").sum(),
        *extra,
    )


def _kinds(
    keys: dict[str, str], measures: bool = True, extra: dict[str, str] | None = None
) -> dict:
    out = dict(keys)
    if measures:
        out.update(MEASURES)
    if extra:
        out.update(extra)
    return out


TENANT_KEYS = {"tenant_id": TEXT, "currency": TEXT}


def _fill(df: pl.DataFrame, cols: Sequence[str], label: str = NONE_LABEL) -> pl.DataFrame:
    return df.with_columns(pl.col(c).fill_null(label) for c in cols)


def percentile_nearest_rank(values: Sequence[int], pct: float) -> int:
    """The ``pct``-th percentile of integers, nearest-rank method."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _ceil_unit(units: int) -> int:
    return -(-units // MONEY_UNIT) * MONEY_UNIT


def replay(
    spend: Sequence[int], add_funds: int, trigger: int, recharge: int, lead_days: int
) -> tuple[int, int]:
    """Daily replay of a balance with auto-recharge: (min balance, recharges).

    Each day's spend is taken off; when the balance is below ``trigger`` and
    no recharge is pending, one is requested and lands at the start of the
    day ``lead_days`` later (``lead_days`` 0: at once)."""
    balance, pending, recharges = add_funds, None, 0
    low = balance
    for i, s in enumerate(spend):
        if pending is not None and pending <= i:
            balance += recharge
            recharges += 1
            pending = None
        balance -= s
        if balance < trigger and pending is None:
            if lead_days <= 0:
                balance += recharge
                recharges += 1
            else:
                pending = i + lead_days
        low = min(low, balance)
    return low, recharges


def funding_advice(
    spend: Sequence[int], *, lead_days: int, cover_days: int, pct: float
) -> dict[str, int]:
    """Funding figures (money in 0.0001 units) from a daily spend series."""
    n = len(spend)
    total = sum(spend)
    mean = (2 * total + n) // (2 * n) if n else 0  # half-up
    p = percentile_nearest_rank(spend, pct)
    window = max(1, lead_days)
    sums = [sum(spend[i : i + window]) for i in range(max(1, n - window + 1))]
    worst = max(sums) if sums else 0
    out = {
        "days": n,
        "total_spend": total,
        "mean_daily": mean,
        "pct_daily": p,
        "max_daily": max(spend) if spend else 0,
        "worst_window": worst,
    }
    if total <= 0:
        out.update(trigger=0, recharge=0, add_funds=0, min_balance=0, recharges=0)
        return out
    trigger = _ceil_unit(max(p * lead_days, worst))
    recharge = _ceil_unit(max(mean * cover_days, trigger, 1))
    for _ in range(100):
        add = trigger + recharge
        low, recharges = replay(spend, add, trigger, recharge, lead_days)
        if low > 0:
            break
        trigger = _ceil_unit(trigger + (1 - low))
        recharge = max(recharge, trigger)
    else:  # pragma: no cover - cannot happen: a trigger above the total spend never runs dry
        trigger = recharge = _ceil_unit(total + 1)
        add = trigger + recharge
        low, recharges = replay(spend, add, trigger, recharge, lead_days)
    out.update(
        trigger=trigger, recharge=recharge, add_funds=add, min_balance=low, recharges=recharges
    )
    return out


def build_tables(
    agg: dict[str, pl.DataFrame],
    *,
    top: int = 10,
    lead_days: int = 2,
    cover_days: int = 30,
    percentile: float = 95.0,
) -> dict[str, Table]:
    """The report's tables from the aggregates of :func:`aggregate`."""
    c = pl.col
    days = agg["days"]  # tenant x day
    dims = agg["dims"]  # tenant x kind x pool x status x reason x disconnect
    users = agg["users"]
    dests = agg["dests"]
    tk = list(TK)

    by_kind = _measures(_fill(_sum_by(dims, [*tk, "kind"]), ["kind"])).sort([*tk, "kind"])
    by_day = _measures(_sum_by(days, [*tk, "day"])).sort([*tk, "day"], nulls_last=True)
    by_status = _measures(_fill(_sum_by(dims, [*tk, "status", "reason"]), ["reason"], "")).sort(
        [*tk, "status", "reason"]
    )
    disconnects = (
        dims.filter(c("disconnected").is_not_null())
        .group_by([*tk, "disconnected"])
        .agg(c("calls").sum(), c("talk_ms").sum(), c("billed_ms").sum(), c("charge_u").sum())
        .rename({"disconnected": "reason"})
        .with_columns(
            talk_minutes=c("talk_ms"), credit_minutes=c("billed_ms"), charge=c("charge_u")
        )
        .sort([*tk, "reason"])
    )
    pools = (
        dims.filter(c("pool").is_not_null())
        .group_by([*tk, "pool"])
        .agg(c("pool_calls").sum().alias("calls"), c("pool_ms").sum().alias("ms"))
        .with_columns(charge=pl.lit(0, dtype=pl.Int64))
        .rename({"pool": "paid_by"})
    )
    credits = (
        dims.group_by(tk)
        .agg(
            c("credit_calls").sum().alias("calls"),
            c("billed_ms").sum().alias("ms"),
            c("charge_u").sum().alias("charge"),
        )
        .with_columns(paid_by=pl.lit("credits"))
    )
    by_payer = (
        pl.concat([pools, credits.select(pools.columns)])
        .with_columns(
            calls=c("calls").cast(pl.Int64),
            seconds=c("ms"),
            minutes=c("ms"),
            share_of_paid_minutes=pl.when(c("ms").sum().over(tk) > 0)
            .then(c("ms") / c("ms").sum().over(tk) * 100)
            .otherwise(0.0),
            _o=(c("paid_by") == "credits").cast(pl.Int8),
        )
        .sort([*tk, "_o", "paid_by"])
    )

    by_user = _measures(_fill(users, ["user_id"])).sort(
        [*tk, "charge_u", "user_id"], descending=[False, False, True, False]
    )
    dests_f = _fill(dests, ["country", "number_type", "destination"])
    by_destination = _measures(_sum_by(dests_f, [*tk, "country", "number_type"])).sort(
        [*tk, "country", "number_type"]
    )
    top_dest = (
        _measures(_sum_by(dests_f, [*tk, "destination", "country", "number_type"]))
        .sort(
            [*tk, "charge_u", "talk_ms", "destination"],
            descending=[False, False, True, True, False],
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over(tk).cast(pl.Int64))
        .filter(c("rank") <= top)
    )

    # summary: measures per tenant + counts
    totals = _sum_by(days, tk)
    status_counts = dims.group_by(tk).agg(
        *[c("calls").filter(c("status") == s).sum().alias(s) for s in STATUSES],
        c("calls").filter(c("disconnected").is_not_null()).sum().alias("disconnected"),
    )
    periods = days.group_by(tk).agg(
        c("day").min().alias("first_day"), c("day").max().alias("last_day")
    )
    user_counts = users.filter(c("user_id").is_not_null()).group_by(tk).agg(pl.len().alias("users"))
    summary = (
        totals.join(status_counts, on=tk, how="left")
        .join(periods, on=tk, how="left")
        .join(user_counts, on=tk, how="left")
        .with_columns(c("users").fill_null(0).cast(pl.Int64))
        .pipe(_measures)
        .sort(tk)
    )

    funding = _funding_table(by_day, summary, lead_days, cover_days, percentile)

    pct_label = f"p{percentile:g}_daily"
    tables = {
        "summary": Table(
            "summary",
            "Totals per tenant",
            summary,
            _kinds(
                TENANT_KEYS,
                extra={
                    "users": INT,
                    "first_day": DATE,
                    "last_day": DATE,
                    **{s: INT for s in STATUSES},
                    "disconnected": INT,
                },
            ),
            "calls, minutes, credits spent and call status counts per tenant and currency",
        ),
        "by_user": Table(
            "by_user",
            "By user",
            by_user,
            _kinds({**TENANT_KEYS, "user_id": TEXT}, extra={"disconnects": INT}),
            "per user (for conference dial-outs: the organizer), by credits spent",
        ),
        "by_destination": Table(
            "by_destination",
            "By destination country and number type",
            by_destination,
            _kinds({**TENANT_KEYS, "country": TEXT, "number_type": TEXT}),
        ),
        "by_kind": Table("by_kind", "By call kind", by_kind, _kinds({**TENANT_KEYS, "kind": TEXT})),
        "by_day": Table(
            "by_day",
            "By day (UTC, day the call started)",
            by_day,
            _kinds({**TENANT_KEYS, "day": DATE}),
        ),
        "by_payer": Table(
            "by_payer",
            "Minutes paid by each pool vs. by credits",
            by_payer,
            {
                **TENANT_KEYS,
                "paid_by": TEXT,
                "calls": INT,
                "seconds": SECONDS,
                "minutes": MINUTES,
                "share_of_paid_minutes": NUMBER,
                "charge": MONEY,
            },
            "pool rows: seconds of talk the pool paid (calls = calls that started on it); "
            "credits row: billed seconds and the charge the credits paid",
        ),
        "disconnects": Table(
            "disconnects",
            "Disconnects and refusals by reason",
            disconnects,
            {
                **TENANT_KEYS,
                "reason": TEXT,
                "calls": INT,
                "talk_minutes": MINUTES,
                "credit_minutes": MINUTES,
                "charge": MONEY,
            },
            "calls the engine refused or dropped (the record's `disconnected` field)",
        ),
        "by_status": Table(
            "by_status",
            "By rating status and reason",
            by_status,
            _kinds({**TENANT_KEYS, "status": TEXT, "reason": TEXT}),
        ),
        "top_destinations": Table(
            "top_destinations",
            f"Top {top} destinations by spend",
            top_dest,
            _kinds(
                {
                    **TENANT_KEYS,
                    "rank": INT,
                    "destination": TEXT,
                    "country": TEXT,
                    "number_type": TEXT,
                }
            ),
        ),
        "funding": Table(
            "funding",
            "Funding advice",
            funding,
            {
                **TENANT_KEYS,
                "add_funds": MONEY,
                "trigger_amount": MONEY,
                "recharge_amount": MONEY,
                "period_start": DATE,
                "period_end": DATE,
                "days": INT,
                "total_credit_spend": MONEY,
                "mean_daily": MONEY,
                pct_label: MONEY,
                "max_daily": MONEY,
                "max_window_spend": MONEY,
                "lead_days": INT,
                "cover_days": INT,
                "replay_min_balance": MONEY,
                "replay_recharges": INT,
                "advice": TEXT,
            },
            FUNDING_METHOD.format(pct=f"{percentile:g}", lead=lead_days, cover=cover_days),
        ),
    }
    return tables


FUNDING_METHOD = (
    "From each tenant's daily credit spend over its period (first to last day with a record, "
    "days without spend count 0): trigger_amount = max(P{pct} of daily spend x {lead} lead days, "
    "the largest spend over any {lead} consecutive days) — enough to keep calling while a "
    "recharge lands (a failed payment waits 24 h before the next try); recharge_amount = "
    "max(mean daily spend x {cover} days, trigger_amount); add_funds = trigger_amount + "
    "recharge_amount; all rounded up to a whole currency unit. The advice is replayed on the "
    "actual days (recharge requested when the balance is below the trigger, landing {lead} days "
    "later) and the trigger raised until the balance never reaches zero; replay_min_balance is "
    "the lowest balance that replay saw."
)


def _funding_table(
    by_day: pl.DataFrame, summary: pl.DataFrame, lead_days: int, cover_days: int, pct: float
) -> pl.DataFrame:
    pct_label = f"p{pct:g}_daily"
    rows = []
    spend_by = {}
    for (tenant, cur), grp in by_day.filter(pl.col("day").is_not_null()).group_by(
        ["tenant_id", "currency"], maintain_order=True
    ):
        spend_by[(tenant, cur)] = dict(
            zip(grp["day"].to_list(), grp["charge_u"].to_list(), strict=True)
        )
    for row in summary.select("tenant_id", "currency", "first_day", "last_day").iter_rows(
        named=True
    ):
        key = (row["tenant_id"], row["currency"])
        first, last = row["first_day"], row["last_day"]
        if first is None or last is None:
            series: list[int] = []
        else:
            daily = spend_by.get(key, {})
            n = (last - first).days + 1
            series = [daily.get(first + timedelta(days=i), 0) for i in range(n)]
        fig = funding_advice(series, lead_days=lead_days, cover_days=cover_days, pct=pct)
        if not series:
            advice = "no dated records: no advice"
        elif fig["total_spend"] <= 0:
            advice = "no credit spend in the period: no funding needed"
        else:
            advice = (
                f"add_funds {_fmt_units(fig['add_funds'])}, auto-recharge trigger "
                f"{_fmt_units(fig['trigger'])}, recharge {_fmt_units(fig['recharge'])} {key[1]}"
            )
        rows.append(
            {
                "tenant_id": key[0],
                "currency": key[1],
                "period_start": first,
                "period_end": last,
                "days": fig["days"],
                "total_credit_spend": fig["total_spend"],
                "mean_daily": fig["mean_daily"],
                pct_label: fig["pct_daily"],
                "max_daily": fig["max_daily"],
                "max_window_spend": fig["worst_window"],
                "lead_days": lead_days,
                "cover_days": cover_days,
                "trigger_amount": fig["trigger"],
                "recharge_amount": fig["recharge"],
                "add_funds": fig["add_funds"],
                "replay_min_balance": fig["min_balance"],
                "replay_recharges": fig["recharges"],
                "advice": advice,
            }
        )
    schema = {
        "tenant_id": pl.String,
        "currency": pl.String,
        "period_start": pl.Date,
        "period_end": pl.Date,
        **{
            k: pl.Int64
            for k in (
                "days",
                "total_credit_spend",
                "mean_daily",
                pct_label,
                "max_daily",
                "max_window_spend",
                "lead_days",
                "cover_days",
                "trigger_amount",
                "recharge_amount",
                "add_funds",
                "replay_min_balance",
                "replay_recharges",
            )
        },
        "advice": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _fmt_units(units: int) -> str:
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), MONEY_UNIT)
    return f"{sign}{q}.{r:04d}"


# ---------------------------------------------------------------------------
# the whole report


def _is_parse_error(exc: Exception) -> bool:
    return isinstance(exc, pl.exceptions.ComputeError)


def build_report(
    paths: Sequence[str],
    *,
    top: int = 10,
    lead_days: int = 2,
    cover_days: int = 30,
    percentile: float = 95.0,
    max_bad_lines: int = 1000,
    tenants: Sequence[str] | None = None,
    tmpdir: str | None = None,
    labels: Sequence[str] | None = None,
) -> Report:
    """Read the charges files at ``paths`` and build every table."""
    labels = list(labels) if labels else list(paths)
    scan_paths = list(paths)

    def run(marked: bool) -> dict[str, pl.DataFrame]:
        sources = [(p, marked) for p in scan_paths]
        return aggregate(sources, max_bad_lines=max_bad_lines, tenants=tenants)

    try:
        agg = run(marked=False)
    except pl.exceptions.PolarsError as exc:
        if not _is_parse_error(exc):
            raise
        # some line polars can't parse: rewrite the files with markers
        work = tempfile.mkdtemp(prefix="report-", dir=tmpdir)
        try:
            scan_paths = []
            for i, p in enumerate(paths):
                dst = os.path.join(work, f"{i}.jsonl")
                sanitise(p, dst)
                scan_paths.append(dst)
            agg = run(marked=True)
            return _finish(
                agg, scan_paths, labels, top, lead_days, cover_days, percentile, max_bad_lines
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _finish(agg, scan_paths, labels, top, lead_days, cover_days, percentile, max_bad_lines)


def _finish(
    agg: dict[str, pl.DataFrame],
    scan_paths: Sequence[str],
    labels: Sequence[str],
    top: int,
    lead_days: int,
    cover_days: int,
    percentile: float,
    max_bad_lines: int,
) -> Report:
    states = dict(agg["states"].iter_rows())
    n_ok = states.get(OK, 0)
    n_ignored = states.get(IGNORED, 0)
    bad_counts = agg["bad_counts"].sort("reason")
    n_bad = int(bad_counts["n"].sum())

    bad = agg["bad"]
    bad_rows = []
    for file_no in sorted(set(bad["file_no"].to_list())):
        part = bad.filter(pl.col("file_no") == file_no)
        recs = part["rec"].to_list()
        lines = _line_numbers(scan_paths[file_no], recs)
        for rec, reason in zip(recs, part["reason"].to_list(), strict=True):
            bad_rows.append({"file": labels[file_no], "line": lines.get(rec), "reason": reason})
    bad_df = pl.DataFrame(
        bad_rows, schema={"file": pl.String, "line": pl.Int64, "reason": pl.String}, orient="row"
    )
    order = {lab: i for i, lab in enumerate(labels)}
    bad_df = (
        bad_df.with_columns(
            _f=pl.col("file").replace_strict(order, return_dtype=pl.Int64, default=0)
        )
        .sort("_f", "line")
        .drop("_f")
    )

    tables = build_tables(
        agg, top=top, lead_days=lead_days, cover_days=cover_days, percentile=percentile
    )
    tables["bad_lines"] = Table(
        "bad_lines",
        "Bad lines",
        bad_df,
        {"file": TEXT, "line": INT, "reason": TEXT},
        "lines left out of every total",
    )

    notes = [f"{n_ok} charges records read from {len(labels)} file(s): {', '.join(labels)}."]
    if n_bad:
        detail = ", ".join(f"{r} {n}" for r, n in bad_counts.iter_rows())
        shown = "; all listed" if n_bad <= max_bad_lines else f"; the first {max_bad_lines} listed"
        notes.append(f"{n_bad} bad line(s) left out of every total ({detail}{shown}).")
        for row in bad_df.iter_rows(named=True):
            notes.append(f"bad line: {row['file']}:{row['line']}: {row['reason']}")
    else:
        notes.append("0 bad lines.")
    if n_ignored:
        notes.append(f"{n_ignored} record(s) of other topics ignored.")
    cur = tables["summary"].df.group_by("tenant_id").agg(pl.col("currency").n_unique().alias("n"))
    for tenant in cur.filter(pl.col("n") > 1)["tenant_id"].to_list():
        notes.append(
            f"tenant {tenant} has charges in more than one currency: one row per currency."
        )
    return Report(
        tables=tables,
        notes=notes,
        records=n_ok,
        bad_count=n_bad,
        ignored_count=n_ignored,
        files=list(labels),
        params={
            "top": top,
            "lead_days": lead_days,
            "cover_days": cover_days,
            "percentile": percentile,
            "max_bad_lines": max_bad_lines,
        },
    )


# ---------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="PSTN usage report and funding advice from charges records (JSON lines).",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="CHARGES.jsonl", help="charges files, or - for stdin"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument(
        "--tenant",
        action="append",
        default=None,
        metavar="ID",
        help="only this tenant (repeatable)",
    )
    p.add_argument("--top", type=_positive_int, default=10, help="top destinations per tenant (10)")
    p.add_argument(
        "--lead-days", type=_positive_int, default=2, help="days a recharge may take to land (2)"
    )
    p.add_argument(
        "--cover-days", type=_positive_int, default=30, help="days of mean spend per recharge (30)"
    )
    p.add_argument(
        "--percentile", type=_percent, default=95.0, help="percentile of daily spend (95)"
    )
    p.add_argument(
        "--chart-tenants",
        type=_nonneg_int,
        default=10,
        help="tenants (by spend) that get charts in report.html (10)",
    )
    p.add_argument(
        "--max-bad-lines", type=_nonneg_int, default=1000, help="bad lines listed (1000)"
    )
    return p


def _positive_int(text: str) -> int:
    value = _nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected 0 < P <= 100, got {text!r}")
    return value


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` meanwhile, unless the user has set it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value  # before the scans start: polars threads read it
    try:
        yield
    finally:
        del os.environ[name]


def main(argv: list[str] | None = None) -> int:
    """``rating-engine report``: 0 ok, 2 usage error or unreadable input."""
    from rating_engine.report import render as report_render

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for a usage error
        return int(exc.code or 0)
    if args.inputs.count("-") > 1:
        print(f"{PROG}: '-' (stdin) given more than once", file=sys.stderr)
        return 2
    out = Path(args.out)
    tmp = tempfile.mkdtemp(prefix="rating-engine-report-")
    try:
        paths = []
        for name in args.inputs:
            if name == "-":
                dst = os.path.join(tmp, "stdin.jsonl")
                with open(dst, "wb") as fout:
                    shutil.copyfileobj(sys.stdin.buffer, fout, 1 << 20)
                paths.append(dst)
                continue
            try:
                with open(name, "rb"):
                    pass
            except OSError as exc:
                print(f"{PROG}: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            if os.path.isdir(name):
                print(f"{PROG}: cannot read {name}: is a directory", file=sys.stderr)
                return 2
            paths.append(name)
        labels = ["<stdin>" if n == "-" else n for n in args.inputs]
        try:
            with _environ(*NDJSON_READ_SIZE):
                report = build_report(
                    paths,
                    labels=labels,
                    top=args.top,
                    lead_days=args.lead_days,
                    cover_days=args.cover_days,
                    percentile=args.percentile,
                    max_bad_lines=args.max_bad_lines,
                    tenants=args.tenant,
                    tmpdir=tmp,
                )
        except (OSError, pl.exceptions.PolarsError) as exc:
            print(f"{PROG}: cannot read the charges: {exc}", file=sys.stderr)
            return 2
        try:
            out.mkdir(parents=True, exist_ok=True)
            written = report_render.write_all(report, out, chart_tenants=args.chart_tenants)
        except OSError as exc:
            print(f"{PROG}: cannot write to {out}: {exc}", file=sys.stderr)
            return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{PROG}: {report.records} records, {report.bad_count} bad line(s), "
        f"{report.ignored_count} ignored; wrote {len(written)} files to {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
