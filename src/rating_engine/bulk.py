"""Vectorised bulk path of `rating-engine rate` (contracts.md section 3) for large CDR files.

The per-call core (`cdr.rate_line` + orjson) is the reference: for every line this module
prints the same bytes, in the same order, with the same `FILE:LINE: invalid: reason` messages
(tests/test_rate_cli.py and the hypothesis test in tests/test_pricing_props.py check it).

How a chunk (~16 MiB of whole lines, rated on one thread while the main thread reads the next
and writes the last; polars spreads each query over the cores) is rated, in two polars passes
over all its lines (no filtering: a line that fails a check gets a null output):

1. polars reads the chunk as one text column, one row per line (blank lines are null).
2. A line takes the fast path only when it is exactly
   `{"call_id": "…", ["tenant_id": "…",] ["user_id": "…",] "kind": "…", "from": "…",
   "to": "…", "start": "…", "end": "…"}` in that key order, with string values, spaced as
   Python's `json.dumps` writes or compact as orjson writes, and printable ASCII with no `"` or
   `\\` inside a value. One anchored regex (`_layout`) proves the layout up to the start value,
   with the kind one of the four and both numbers E.164; the start and end values are proven by
   the timestamp lookups of step 3 (their tables hold no `"`), and the line must end with `"}`.
   Such a line is valid JSON holding exactly those strings, so it needs no JSON parser and
   cannot differ from orjson; `find` then locates the key tokens, which cannot occur in values.
3. Timestamps are cut at fixed places into date (with separator), `HH:MM:SS` and tail (fraction
   and zone), each looked up by a cast to a polars Enum of its valid texts. Each distinct date
   and tail is judged and valued once by `clock.parse_instant` itself, so the fast path accepts
   exactly the timestamps the per-call core accepts (those with <= 6 fractional digits), as
   exact integer microseconds.
4. Longest prefix: the deck's window boundaries cut time into segments inside which the set of
   rows in effect is fixed. The number (padded to 15 digits), the segment of the start instant
   and the service make one Int64 key; the prefixes of <= 8 digits (all E.164 numbers have
   that many) cut the key space into intervals, each with its longest prefix's row, found by one
   `search_sorted`. Longer prefixes (rare) are probed in one map per length first.
5. Billed seconds and the charge are Int64 arithmetic on microseconds and micro-units (never a
   float), rounded half-up once; a line whose figures could overflow goes per call instead.
6. The output JSON line is five columns written as CSV with "," between them (the commas
   between its fields): the line's own text up to the kind (spaces dropped), the status and
   deck fields of its row (serialised once by orjson), then duration, billed seconds and
   charge, the only texts glued per line. Long texts are never copied into one string.

Every other line (invalid JSON, missing or null fields, another key order, extra keys, ids
that are not strings, escapes, non-ASCII text, bad numbers, odd timestamps, ...) goes through
the per-call core, and its record is put back in its place. Statuses made here are `rated`,
`free` and `unrated`; every `invalid` line and its stderr message come from the per-call core.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Callable

import orjson
import polars as pl

from . import clock
from .cdr import invalid_message, rate_line
from .chunks import BULK_MIN_BYTES, CHUNK_BYTES, blocks, count_lines
from .deck import Deck
from .records import deck_fields

WORKERS = 1  # threads rating chunks (polars runs each query on all cores; more cost more)

_STYLES = {"spaced": (": ", ", "), "compact": (":", ",")}
_KIND_LEN = {"inbound": 7, "user_outbound": 13, "tollfree_inbound": 16, "conference_dialout": 18}
_SERVICE_ID = {"outbound": 0, "tollfree_inbound": 1}
_BOM = b"\xef\xbb\xbf"
_US = 1_000_000
_PAD = 15  # numbers are padded to 15 digits (the longest E.164 number) in lookup keys
_SHORT = 8  # prefixes up to this long (the shortest E.164 number) go in the interval table
_FIGURE_LIMIT = 1 << 61  # fee*60 + rate*billed stays below this in Int64 (2x + 6000 < 2**63)
_MAX_INCREMENT_S = 10**9
_MAX_MAP_ENTRIES = 4_000_000
_VALUE = r'[ !#-\[\]-\x7f]*'  # printable ASCII and DEL but `"` and `\` (no control character)
_TIGHT_VALUE = r'[!#-\[\]-\x7f]*'  # the same without space (spaced lines: see `_cut`)
_E164 = r'\+[0-9]{8,15}'


@dataclass
class _DeckIndex:
    """The deck laid out for vectorised lookups; `usable` is False when a deck is too odd."""

    usable: bool
    bounds: pl.Series | None = None  # sorted window boundaries (Int64 us)
    n_ss: int = 2  # segments x services
    starts: pl.Series | None = None  # sorted keys where the intervals of short prefixes start
    rows_at: pl.Series | None = None  # each interval's row (or the UNRATED pseudo-row)
    long_maps: tuple[tuple[int, pl.Series, pl.Series], ...] = ()  # (L, keys, rows), L > _SHORT, longest first
    first_s: pl.Series | None = None  # per row, then the UNRATED and FREE pseudo-rows (zeros)
    next_s: pl.Series | None = None
    rate_micros: pl.Series | None = None
    fee_micros: pl.Series | None = None
    max_billed: pl.Series | None = None
    heads: pl.Series | None = None  # `"status":…,<deck fields>,"duration_seconds":` per row and pseudo-row
    cents: pl.Series | None = None  # `.0000","currency":"USD"}` … `.9999","currency":"USD"}`


def _index_deck(deck: Deck) -> _DeckIndex:
    rows = deck.rows
    bounds = sorted({b for r in rows for b in (r.effective_from_us, r.effective_to_us) if b is not None})
    n_seg = len(bounds) + 1
    n_ss = 2 * n_seg  # keys stay below n_ss * 10**15 <= 8192e15 < 2**63
    if n_seg > 4096:
        return _DeckIndex(False)

    def covers(r, seg: int) -> bool:  # segment `seg` is [bounds[seg-1], bounds[seg])
        lo, hi = r.effective_from_us, r.effective_to_us
        lo_ok = lo is None or (seg > 0 and lo <= bounds[seg - 1])
        hi_ok = hi is None or (seg < len(bounds) and hi >= bounds[seg])
        return lo_ok and hi_ok

    short: list[dict[str, int]] = [{} for _ in range(n_ss)]  # per segment x service: prefix -> row
    by_len: dict[int, dict[int, int]] = {}
    entries = 0
    for i, r in enumerate(rows):
        if len(r.prefix) > _PAD or r.service not in _SERVICE_ID:
            return _DeckIndex(False)
        for seg in range(n_seg):
            if covers(r, seg):
                ss = 2 * seg + _SERVICE_ID[r.service]
                if len(r.prefix) <= _SHORT:
                    table, key = short[ss], r.prefix
                else:
                    table, key = by_len.setdefault(len(r.prefix), {}), int(r.prefix) * n_ss + ss
                if key in table:  # overlapping windows: compile_rows refuses those
                    return _DeckIndex(False)
                table[key] = i
                entries += 1
        if entries > _MAX_MAP_ENTRIES:
            return _DeckIndex(False)
    starts, rows_at = _intervals(short, len(rows))
    long_maps = tuple(
        (length, pl.Series(list(t.keys()), dtype=pl.Int64), pl.Series(list(t.values()), dtype=pl.Int32))
        for length, t in sorted(by_len.items(), reverse=True)
    )
    currency_json = orjson.dumps(deck.currency).decode()

    def head(status: str, reason: str | None, row) -> str:
        fields = {"status": status, "reason": reason}
        fields.update(deck_fields(row))
        return orjson.dumps(fields).decode()[1:-1]

    heads = [head("rated", None, r) for r in rows] + [head("unrated", "no_rate", None), head("free", None, None)]
    max_billed = []
    for r in rows:
        ok = (r.first_increment_s <= _MAX_INCREMENT_S and r.next_increment_s <= _MAX_INCREMENT_S
              and r.fee_micros * 60 < _FIGURE_LIMIT and orjson.dumps(r.currency).decode() == currency_json)
        if not ok:
            max_billed.append(-1)  # never the fast path
        elif r.rate_micros_per_min == 0:
            max_billed.append(1 << 62)
        else:
            max_billed.append((_FIGURE_LIMIT - r.fee_micros * 60) // r.rate_micros_per_min)
    zeros = [0, 0]
    return _DeckIndex(
        usable=True,
        bounds=pl.Series(bounds, dtype=pl.Int64),
        n_ss=n_ss,
        starts=starts,
        rows_at=rows_at,
        long_maps=long_maps,
        first_s=pl.Series([r.first_increment_s for r in rows] + zeros, dtype=pl.Int64),
        next_s=pl.Series([r.next_increment_s for r in rows] + [1, 1], dtype=pl.Int64),
        rate_micros=pl.Series([r.rate_micros_per_min for r in rows] + zeros, dtype=pl.Int64),
        fee_micros=pl.Series([r.fee_micros for r in rows] + zeros, dtype=pl.Int64),
        max_billed=pl.Series(max_billed + [1 << 62, 1 << 62], dtype=pl.Int64),
        heads=pl.Series(heads, dtype=pl.String),
        cents=pl.Series([f'.{i:04d}","currency":{currency_json}}}' for i in range(10_000)], dtype=pl.String),
    )


def _intervals(short: list[dict[str, int]], unrated: int) -> tuple[pl.Series, pl.Series]:
    """The short prefixes as sorted disjoint intervals of keys `ss * 10**15 + number15`.

    A prefix P of L digits covers the padded numbers [P * 10**(15-L), (P+1) * 10**(15-L)):
    nested for nested prefixes, so between two consecutive interval ends the longest prefix in
    effect is the same everywhere, namely the longest prefix of the interval's first number.
    """
    starts: list[int] = []
    rows_at: list[int] = []
    top = 10**_PAD
    for ss, table in enumerate(short):
        cuts = {0}
        for prefix in table:
            scale = 10 ** (_PAD - len(prefix))
            cuts.update((int(prefix) * scale, (int(prefix) + 1) * scale))
        for cut in sorted(c for c in cuts if c < top):
            digits = str(cut).zfill(_PAD)
            row = next((table[digits[:n]] for n in range(_SHORT, 0, -1) if digits[:n] in table), unrated)
            if not rows_at or row != rows_at[-1] or cut == 0:
                starts.append(ss * top + cut)
                rows_at.append(row)
    return pl.Series(starts, dtype=pl.Int64), pl.Series(rows_at, dtype=pl.Int32)


# --- timestamps: their pieces are valued by the per-call parser itself -----------------------

# A timestamp `clock._TS_RE` accepts is always `YYYY-MM-DDTHH` (13 chars; `T`, `t` or space),
# `:MM:SS`, then an optional fraction and the zone (the tail). Its instant is the sum of the
# values of `<date and hour>:00:00Z`, `:MM:SS` and `1970-01-01T00:00:00<tail>`, and it is valid
# exactly when all three pieces are: so each distinct date-and-hour and tail is judged once by
# `clock.parse_instant`, and the fast path accepts exactly what the per-call core accepts (but
# only with <= 6 fractional digits, which stay whole microseconds).
# `:MM:SS` is valid exactly when `clock._TS_RE` reads two digits each and MM <= 59, SS <= 59:
# `clock.MM_SS_US` lists all of them, in order, so a text's index is its second of the hour
# (the per-call parser cuts timestamps at the same places). (A small Enum: a cast builds the
# category map each time.)
_MS = pl.Enum(list(clock.MM_SS_US))
_PIECES_MAX = 20_000  # texts remembered per piece


def _hour_value(text: str) -> int | None:
    if len(text) != 13:
        return None
    try:
        return clock.parse_instant(text + ":00:00Z")  # type: ignore[return-value]
    except clock.TimestampError:
        return None


def _tail_value(text: str) -> int | None:
    try:
        us = clock.parse_instant("1970-01-01T00:00:00" + text)
    except clock.TimestampError:
        return None
    return us if us.__class__ is int else None  # type: ignore[return-value]


class _Pieces:
    """The valid texts of one timestamp piece seen so far, with their values, as an Enum.

    A cast to the Enum is a fast lookup; a text not in it reads as null, so a line whose pieces
    are not all known yet fails the fast path and `_rate_frame` learns its pieces and retries.
    """

    def __init__(self, value: Callable[[str], int | None]) -> None:
        self.value = value
        self.seen: dict[str, int | None] = {}
        self.table: tuple[pl.Enum, pl.Series] = (pl.Enum([]), pl.Series([], dtype=pl.Int64))
        self.lock = threading.Lock()

    def learn(self, texts: pl.Series) -> tuple[bool, tuple[pl.Enum, pl.Series]]:
        """Value the texts not seen yet: (whether the table grew, a table holding all `texts`)."""
        with self.lock:
            distinct = texts.drop_nulls().unique().to_list()
            fresh = [t for t in distinct if t not in self.seen]
            cleared = len(self.seen) + len(fresh) > _PIECES_MAX  # a cast builds the category map: keep it small
            if cleared:
                self.seen.clear()
                fresh = distinct
            grew = False
            for text in fresh:
                v = self.seen[text] = self.value(text)
                grew = grew or v is not None
            if grew or cleared:
                valid = [(t, v) for t, v in self.seen.items() if v is not None]
                self.table = (pl.Enum([t for t, _ in valid]), pl.Series([v for _, v in valid], dtype=pl.Int64))
            return grew, self.table


def _lookup(piece: pl.Expr, table: tuple[pl.Enum, pl.Series]) -> pl.Expr:
    return pl.lit(table[1]).gather(piece.cast(table[0], strict=False).to_physical())


_HOURS = _Pieces(_hour_value)
_TAILS = _Pieces(_tail_value)


# --- one chunk -------------------------------------------------------------------------------

def _style_of(chunk: bytes) -> str:
    head = chunk[:200]
    return "compact" if head.lstrip().startswith(_opening("compact").encode()) else "spaced"


def _opening(style: str) -> str:
    return '{"call_id"' + _STYLES[style][0] + '"'


def _tokens(style: str) -> dict[str, str]:
    """The key tokens `find` locates, each from the closing quote of the value before."""
    colon, comma = _STYLES[style]
    return {k: f'"{comma}"{k}"{colon}"' for k in ("kind", "from", "to", "start", "end")}


def _layout(style: str) -> str:
    """The regex of a template line up to its start value (see the module docstring)."""
    colon, comma = _STYLES[style]
    ids = _TIGHT_VALUE if style == "spaced" else _VALUE

    def field(key: str, value: str) -> str:
        return f'"{key}"{colon}"{value}"'

    return ("^\\{" + field("call_id", ids)
            + f"(?:{comma}{field('tenant_id', ids)})?(?:{comma}{field('user_id', ids)})?"
            + comma + field("kind", "(?:" + "|".join(_KIND_LEN) + ")")
            + comma + field("from", _E164) + comma + field("to", _E164) + comma + f'"start"{colon}"')


def _cut(lines: pl.DataFrame, style: str, ascii_chunk: bool) -> pl.DataFrame:
    """Pass 1: the lines in the template layout (`ok`), and their pieces (null on other lines).

    `pre` is the output's text up to the kind (the line's own, spaces dropped), `kind_len` tells
    the four kinds apart, `num15` is the number to price (`to`, `from` when toll-free) padded
    to 15 digits, and each timestamp comes as date and hour, `:MM:SS` and tail.
    """
    tok = _tokens(style)
    line = pl.col("l")
    ok = line.str.contains(_layout(style)) & line.str.ends_with('"}')
    if not ascii_chunk:  # `find` counts bytes, `slice` characters: ASCII lines only
        ok = ok & (line.str.len_chars() == line.str.len_bytes())
    found = [line.str.find(t, literal=True).cast(pl.Int64).alias("p_" + k) for k, t in tok.items()]
    begin = [pl.when(pl.col("ok")).then(pl.col("p_" + k) + len(t)).alias(k) for k, t in tok.items()]
    b = {k: pl.col(k) for k in tok}
    n = line.str.len_bytes().cast(pl.Int64)
    kind_len = b["from"] - len(tok["from"]) - b["kind"]
    tollfree = pl.col("kind_len") == _KIND_LEN["tollfree_inbound"]
    num_at = pl.when(tollfree).then(b["from"]).otherwise(b["to"]) + 1  # digits after the `+`
    num_end = pl.when(tollfree).then(b["to"] - len(tok["to"])).otherwise(b["start"] - len(tok["start"]))
    n_len = pl.col("n_len")
    pad = pl.lit(pl.Series([10 ** (_PAD - k) if k <= _PAD else 0 for k in range(_PAD + 1)], dtype=pl.Int64))
    pre = line.str.head(b["from"] - len(tok["from"]) + 1)  # up to the quote closing the kind
    if style == "spaced":  # ids without spaces (`_layout`): every space there is the template's
        pre = pre.str.replace_all(" ", "", literal=True)

    def stamp(k: str, at: pl.Expr, stop: pl.Expr) -> list[pl.Expr]:
        return [line.str.slice(at, 13).alias(k + "h"), line.str.slice(at + 13, 6).alias(k + "ms"),
                line.str.slice(at + 19, (stop - at - 19).clip(0)).alias(k + "t")]

    return (
        lines.lazy()
        .with_columns(ok.alias("ok"), *found)
        .with_columns(begin)
        .with_columns(kind_len.alias("kind_len"))
        .with_columns((num_end - num_at).alias("n_len"), num_at.alias("num_at"))
        .with_columns(
            pre.alias("pre"),
            (line.str.slice(pl.col("num_at"), n_len).str.to_integer(strict=False)
             * pad.gather(n_len.clip(0, _PAD))).alias("num15"),
            *stamp("s", b["start"], b["end"] - len(tok["end"])),
            *stamp("e", b["end"], n - 2),
        )
        .select("ok", "pre", "kind_len", "n_len", "num15", "sh", "sms", "st", "eh", "ems", "et")
        .collect()
    )


# `clock.seconds_text` of whole microseconds: the fraction `part` (0 <= part < 10**6) is
# `_FRAC_HEAD[hi + 1000 * (lo > 0)] + _FRAC_TAIL[lo]` with hi, lo = divmod(part, 1000); the
# tail carries the next key (fewer pieces to glue).
_FRAC_HEAD = pl.Series([""] + [f".{ms:03d}".rstrip("0") for ms in range(1, 1000)] + [f".{h:03d}" for h in range(1000)])
_FRAC_TAIL = pl.Series([f"{lo:03d}".rstrip("0") for lo in range(1000)])
_DURATION_KEY = pl.Series(['"duration_seconds":', '"duration_seconds":-'])  # by sign


def _rate_frame(idx: _DeckIndex, cut: pl.DataFrame) -> pl.DataFrame:
    """Pass 2: each line's output pieces (`_OUT`) and whether the fast path could say (`fast`).

    Lines in the layout that fail are retried once if some of their timestamp pieces were new.
    """
    frame = _price(idx, cut, _HOURS.table, _TAILS.table)
    retry = (~frame["fast"] & cut["ok"]).arg_true()
    if len(retry):
        again = cut[retry]
        new_hours, hours = _HOURS.learn(pl.concat([again["sh"], again["eh"]]))
        new_tails, tails = _TAILS.learn(pl.concat([again["st"], again["et"]]))
        if new_hours or new_tails:
            frame = _scatter(frame, retry, _price(idx, again, hours, tails))
    return frame


# An output line is written as five CSV columns joined by "," (the JSON's own commas between
# fields), so that the line's head and the deck fields are never copied into one string:
# up to the kind, the status up to the deck fields, then duration, billed seconds and charge.
_OUT = ("o1", "o2", "o3", "o4", "o5")
_CUT_BEFORE = (',"status":', ',"duration_seconds":', ',"billed_seconds":', ',"charge":')


def _pieces(text: str) -> list[str]:
    """A whole output line cut into the `_OUT` columns (at the commas before those keys).

    Those keys are unique, and `,"` cannot occur inside a JSON string (its quote is escaped).
    """
    pieces, at = [], 0
    for key in _CUT_BEFORE:
        end = text.index(key, at)
        pieces.append(text[at:end])
        at = end + 1
    pieces.append(text[at:])
    return pieces


def _scatter(frame: pl.DataFrame, rows: pl.Series | list[int], values: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(frame[c].scatter(rows, values[c]) for c in values.columns)


def _texts_frame(texts: list[str | None]) -> pl.DataFrame:
    """Whole output lines (None: no line) as `_OUT` columns."""
    columns: list[list[str | None]] = [[] for _ in _OUT]
    for text in texts:
        for column, piece in zip(columns, _pieces(text) if text is not None else [None] * len(_OUT)):
            column.append(piece)
    return pl.DataFrame({c: pl.Series(v, dtype=pl.String) for c, v in zip(_OUT, columns)})


def _price(idx: _DeckIndex, cut: pl.DataFrame, hours: tuple[pl.Enum, pl.Series],
           tails: tuple[pl.Enum, pl.Series]) -> pl.DataFrame:
    def instant(k: str) -> pl.Expr:
        return (_lookup(pl.col(k + "h"), hours) + _lookup(pl.col(k + "t"), tails)
                + pl.col(k + "ms").cast(_MS, strict=False).to_physical().cast(pl.Int64) * _US).alias(k + "_us")

    kind_len = pl.col("kind_len")
    tollfree = (kind_len == _KIND_LEN["tollfree_inbound"]).cast(pl.Int64)
    n_rows = len(idx.heads) - 2
    if len(idx.bounds):
        seg = pl.lit(idx.bounds).search_sorted(pl.col("s_us"), side="right").cast(pl.Int64)
    else:
        seg = pl.lit(0, dtype=pl.Int64)
    ss = seg * 2 + tollfree
    key = (ss * 10**_PAD + pl.col("num15")).fill_null(0)
    hits = []
    for length, keys, rows in idx.long_maps:  # longest first; n_len >= 8 always
        long_key = pl.when(pl.col("n_len") >= length).then(pl.col("num15") // 10 ** (_PAD - length) * idx.n_ss + ss)
        hits.append(long_key.replace_strict(keys, rows, default=None, return_dtype=pl.Int32))
    interval = pl.lit(idx.starts).search_sorted(key, side="right").cast(pl.Int64) - 1
    row = pl.coalesce(*hits, pl.lit(idx.rows_at).gather(interval))
    which = pl.when(kind_len == _KIND_LEN["inbound"]).then(pl.lit(n_rows + 1, dtype=pl.Int32)).otherwise(row)
    w = pl.col("which")
    gathered = [pl.lit(series).gather(w).alias(name) for name, series in (
        ("first_s", idx.first_s), ("next_s", idx.next_s), ("rate", idx.rate_micros),
        ("fee", idx.fee_micros), ("max_billed", idx.max_billed), ("head", idx.heads))]
    # billed seconds and the charge in 1e-4 units, exact Int64
    d = pl.col("d")
    first_us = pl.col("first_s") * _US
    next_us = pl.col("next_s") * _US
    billed = (pl.when((w >= n_rows) | (d <= 0)).then(0)
              .when(d <= first_us).then(pl.col("first_s"))
              .otherwise(pl.col("first_s") + (d - first_us + next_us - 1) // next_us * pl.col("next_s")))
    b = pl.col("billed")
    charge = pl.when(b > 0).then((2 * (pl.col("fee") * 60 + pl.col("rate") * b) + 6000) // 12000).otherwise(0)
    q = pl.col("charge")
    part = d.abs() % _US
    lo = part % 1000
    # only the short figures are glued (see `_OUT`)
    duration = pl.concat_str([pl.lit(_DURATION_KEY).gather((d < 0).cast(pl.Int64)), (d.abs() // _US).cast(pl.String),
                              pl.lit(_FRAC_HEAD).gather(part // 1000 + 1000 * (lo > 0).cast(pl.Int64)),
                              pl.lit(_FRAC_TAIL).gather(lo)])
    billed_text = pl.concat_str([pl.lit('"billed_seconds":'), b.cast(pl.String)])
    charge_text = pl.concat_str([pl.lit('"charge":"'), (q // 10_000).cast(pl.String), pl.lit(idx.cents).gather(q % 10_000)])
    fast = (pl.col("ok") & pl.col("s_us").is_not_null() & pl.col("e_us").is_not_null()
            & (pl.col("billed") <= pl.col("max_billed")))
    return (
        cut.lazy()
        .with_columns(instant("s"), instant("e"))
        .with_columns((pl.col("e_us") - pl.col("s_us")).alias("d"), row.alias("row"))
        .with_columns(which.alias("which"))
        .with_columns(gathered)
        .with_columns(billed.alias("billed"))
        .with_columns(charge.alias("charge"))
        .select(fast.fill_null(False).alias("fast"), pl.col("pre").alias("o1"), pl.col("head").alias("o2"),
                duration.alias("o3"), billed_text.alias("o4"), charge_text.alias("o5"))
        .collect()
    )


def _rate_lines(idx: _DeckIndex, lines: pl.Series, style: str, ascii_chunk: bool) -> pl.DataFrame:
    return _rate_frame(idx, _cut(lines.to_frame("l"), style, ascii_chunk))


def _lines_frame(chunk: bytes) -> pl.Series:
    frame = pl.read_csv(io.BytesIO(chunk), has_header=False, separator="\x00", quote_char=None,
                        schema={"l": pl.String}, comment_prefix=None, raise_if_empty=False,
                        truncate_ragged_lines=False)
    return frame.to_series()


def _per_call(deck: Deck, raw: bytes) -> tuple[str | None, str | None]:
    """`cmd_rate`'s per-call handling of one line: (output JSON or None if blank, reason)."""
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        return None, None
    record, reason = rate_line(deck, raw)
    text = orjson.dumps(record).decode()
    return text, (reason if reason is not None and record["status"] == "invalid" else None)


def rate_chunk(deck: Deck, idx: _DeckIndex, chunk: bytes) -> tuple[pl.DataFrame, list[tuple[int, str]], int]:
    """Rate the whole lines of `chunk`.

    Returns the output lines as `_OUT` columns (blank input lines dropped), in order the invalid lines as
    (index in the chunk, reason) for the caller to number (`invalid_message`), and the number
    of lines in the chunk.
    """
    original = chunk
    ascii_chunk = chunk.isascii()
    forced: dict[int, bytes] = {}  # lines polars must not see, by index: judged per call
    n_lines = -1
    if b"\x00" in chunk or chunk.startswith(_BOM) or not ascii_chunk and not _utf8(chunk):
        n_lines = count_lines(chunk)
        parts = chunk.split(b"\n")[:n_lines]
        for i, part in enumerate(parts):
            if b"\x00" in part or (i == 0 and part.startswith(_BOM)) or not part.isascii() and not _utf8(part):
                forced[i] = part
                parts[i] = b""
        chunk = b"\n".join(parts) + b"\n"  # one row per line, an emptied last line included
    lines = _lines_frame(chunk) if chunk else pl.Series("l", [], dtype=pl.String)
    if n_lines < 0:
        n_lines = _lines_in(chunk, lines)
    if len(lines) != n_lines:  # never seen; the per-call core is the safe answer
        return _rate_slowly(deck, original)

    frame = pl.DataFrame({"fast": pl.repeat(False, n_lines, eager=True),
                          **{c: pl.repeat(None, n_lines, dtype=pl.String, eager=True) for c in _OUT}})
    if idx.usable and n_lines:
        first, second = ("compact", "spaced") if _style_of(chunk) == "compact" else ("spaced", "compact")
        frame = _rate_lines(idx, lines, first, ascii_chunk)
        left = (~frame["fast"] & lines.is_not_null()).arg_true()
        if len(left) and lines.gather(left).str.starts_with(_opening(second)).any():
            frame = _scatter(frame, left, _rate_lines(idx, lines.gather(left), second, ascii_chunk))

    slow = ~frame["fast"] & lines.is_not_null()
    if forced:
        slow = slow | pl.Series([i in forced for i in range(n_lines)])
    slow_idx = slow.arg_true().to_list()
    keep = lines.is_not_null()  # blank lines give no output line
    errors: list[tuple[int, str]] = []
    if slow_idx:
        texts = lines.gather(slow_idx).to_list()
        results = []
        for i, text in zip(slow_idx, texts):
            raw = forced[i] if i in forced else (text or "").encode()
            line_out, reason = _per_call(deck, raw)
            results.append(line_out)
            if reason is not None:
                errors.append((i, reason))
        frame = _scatter(frame, slow_idx, _texts_frame(results))
        keep = keep.scatter(slow_idx, pl.Series([r is not None for r in results], dtype=pl.Boolean))
    return frame.filter(keep).select(_OUT), errors, n_lines


def _lines_in(chunk: bytes, lines: pl.Series) -> int:
    """The chunk's line count if polars' rows are exactly its lines, else -1.

    Without a carriage return (which polars drops before a newline) the rows' bytes plus the
    newlines must add up to the chunk: cheaper than counting newlines in Python.
    """
    if b"\r" in chunk:
        n = count_lines(chunk)
        return n if n == len(lines) else -1
    newlines = len(lines) - (0 if chunk.endswith(b"\n") else 1)
    return len(lines) if (lines.str.len_bytes().sum() or 0) + newlines == len(chunk) else -1


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _rate_slowly(deck: Deck, chunk: bytes) -> tuple[pl.DataFrame, list[tuple[int, str]], int]:
    results: list[str | None] = []
    errors: list[tuple[int, str]] = []
    n = 0
    for n, raw in enumerate(io.BytesIO(chunk), start=1):
        line_out, reason = _per_call(deck, raw)
        if line_out is not None:
            results.append(line_out)
        if reason is not None:
            errors.append((n - 1, reason))
    return _texts_frame(results), errors, n


def write_lines(dst: BinaryIO, out: pl.DataFrame) -> None:
    """Write output lines held as `_OUT` columns (joined by the commas they stand for)."""
    if len(out):
        out.write_csv(dst, include_header=False, quote_style="never", separator=",", line_terminator="\n")



def rate_stream(deck: Deck, src: BinaryIO, dst: BinaryIO, name: str, err: Callable[[str], object],
                progress=None, chunk_bytes: int = CHUNK_BYTES, workers: int = WORKERS) -> int:
    """Rate a whole CDR stream; returns the number of lines read.

    Chunks are rated on `workers` threads (polars releases the GIL) while this one reads the next
    and writes the output of the last, with its stderr messages, in input order.
    """
    idx = _index_deck(deck)
    line_no = 1
    done = 0
    pending: deque = deque()

    def finish() -> None:
        nonlocal done, line_no
        job, size = pending.popleft()
        out, errors, n_lines = job.result()
        for i, reason in errors:
            err(invalid_message(name, line_no + i, reason))
        write_lines(dst, out)
        done += size
        line_no += n_lines
        if progress is not None:
            progress.update(done, line_no - 1)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for chunk in blocks(src, chunk_bytes):
            pending.append((pool.submit(rate_chunk, deck, idx, chunk), len(chunk)))
            while len(pending) > max(1, workers):
                finish()
        while pending:
            finish()
    return line_no - 1


def rate_bytes(deck: Deck, data: bytes, name: str = "<bytes>",
               chunk_bytes: int = CHUNK_BYTES) -> tuple[bytes, str]:
    """Rate JSONL held in memory (for tests): (stdout bytes, stderr text)."""
    dst = io.BytesIO()
    messages: list[str] = []
    rate_stream(deck, io.BytesIO(data), dst, name, messages.append, chunk_bytes=chunk_bytes)
    return dst.getvalue(), "".join(messages)


def rate_bytes_per_call(deck: Deck, data: bytes, name: str = "<bytes>") -> tuple[bytes, str]:
    """The per-call loop of `cmd_rate` over JSONL in memory: the reference for `rate_bytes`."""
    out: list[bytes] = []
    messages: list[str] = []
    for line_no, raw in enumerate(io.BytesIO(data), start=1):
        text, reason = _per_call(deck, raw)
        if text is not None:
            out.append(text.encode() + b"\n")
        if reason is not None:
            messages.append(invalid_message(name, line_no, reason))
    return b"".join(out), "".join(messages)


__all__ = ["BULK_MIN_BYTES", "CHUNK_BYTES", "rate_bytes", "rate_bytes_per_call", "rate_chunk", "rate_stream"]
