"""Vectorised bulk path of `rating-engine rate` (contracts.md section 3) for large CDR files.

The per-call core (`cdr.rate_line` + orjson) is the reference: for every line this module
prints the same bytes, in the same order, with the same `FILE:LINE: invalid: reason` messages
(tests/test_rate_cli.py and the hypothesis test in tests/test_pricing_props.py check it).

How a chunk (~64 MiB of whole lines; two chunks at a time on two threads) is rated:

1. polars reads the chunk as one text column, one row per line (blank lines are null).
2. A line takes the fast path only when it is exactly
   `{"call_id": "…", ["tenant_id": "…",] ["user_id": "…",] "kind": "…", "from": "…",
   "to": "…", "start": "…", "end": "…"}` in that key order, with string values, spaced as
   Python's `json.dumps` writes or compact as orjson writes, ASCII, and no `"`, `\\` or
   control character inside a value: `find` locates the key tokens, and the line must be the
   template glued around the pieces between them (see `_cut`). Such a line is valid JSON whose
   values are exactly those pieces, so it needs no JSON parser and cannot differ from orjson.
3. Timestamps are cut at fixed places into date (with separator), `HH:MM`, `:SS` and tail
   (fraction and zone). Each distinct date and tail is judged and valued once by
   `clock.parse_instant` itself, so the fast path accepts exactly the timestamps the per-call
   core accepts (those with <= 6 fractional digits), as exact integer microseconds.
4. Longest prefix: the deck's window boundaries cut time into segments inside which the set
   of rows in effect is fixed. For each prefix length L of the deck, the first L digits of the
   number, the segment of the start instant and the service make one Int64 key, looked up in
   the map of rows of length L; the longest hit wins.
5. Billed seconds and the charge are Int64 arithmetic on microseconds and micro-units (never a
   float), rounded half-up once; a line whose figures could overflow goes per call instead.
6. The output JSON is glued from text pieces; the deck fields of each row are serialised once
   by orjson.

Every other line (invalid JSON, missing or null fields, another key order, extra keys, ids
that are not strings, escapes, non-ASCII text, bad numbers, odd timestamps, ...) goes through
the per-call core, and its record is put back in its place. Statuses made here are `rated`,
`free` and `unrated`; every `invalid` line and its stderr message come from the per-call core.
"""

from __future__ import annotations

import io
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import orjson
import polars as pl

from . import clock
from .cdr import rate_line
from .deck import Deck
from .records import deck_fields

CHUNK_BYTES = 64 * 1024 * 1024  # ~290k lines of ~230 bytes
WORKERS = min(2, os.cpu_count() or 1)  # chunks rated at once
BULK_MIN_BYTES = 1024 * 1024  # below this, the per-call loop is as fast and simpler

_KEYS = ("call_id", "tenant_id", "user_id", "kind", "from", "to", "start", "end")
_STYLES = {"spaced": (": ", ", "), "compact": (":", ",")}
_KINDS = ("user_outbound", "conference_dialout", "tollfree_inbound", "inbound")
_SERVICE_ID = {"outbound": 0, "tollfree_inbound": 1}
_BOM = b"\xef\xbb\xbf"
_US = 1_000_000
_FIGURE_LIMIT = 1 << 61  # fee*60 + rate*billed stays below this in Int64 (2x + 6000 < 2**63)
_MAX_INCREMENT_S = 10**9
_MAX_MAP_ENTRIES = 4_000_000
_E164 = r"^\+[0-9]{8,15}$"
_UNCLEAN = r'["\\\x00-\x1f]'  # quote, backslash or control character (lines are ASCII here)


@dataclass
class _DeckIndex:
    """The deck laid out for vectorised lookups; `usable` is False when a deck is too odd."""

    usable: bool
    bounds: pl.Series | None = None  # sorted window boundaries (Int64 us)
    n_ss: int = 2  # segments x services
    maps: tuple[tuple[int, pl.Series, pl.Series], ...] = ()  # (L, keys, row indices), longest L first
    first_s: pl.Series | None = None  # per row, then the UNRATED and FREE pseudo-rows (zeros)
    next_s: pl.Series | None = None
    rate_micros: pl.Series | None = None
    fee_micros: pl.Series | None = None
    max_billed: pl.Series | None = None
    heads: pl.Series | None = None  # `"status":…,"reason":…,<deck fields>` per row and pseudo-row
    currency_json: str = "null"


def _index_deck(deck: Deck) -> _DeckIndex:
    rows = deck.rows
    bounds = sorted({b for r in rows for b in (r.effective_from_us, r.effective_to_us) if b is not None})
    n_seg = len(bounds) + 1
    n_ss = 2 * n_seg
    if n_seg > 4096:
        return _DeckIndex(False)

    def covers(r, seg: int) -> bool:  # segment `seg` is [bounds[seg-1], bounds[seg])
        lo, hi = r.effective_from_us, r.effective_to_us
        lo_ok = lo is None or (seg > 0 and lo <= bounds[seg - 1])
        hi_ok = hi is None or (seg < len(bounds) and hi >= bounds[seg])
        return lo_ok and hi_ok

    by_len: dict[int, dict[int, int]] = {}
    entries = 0
    for i, r in enumerate(rows):
        if len(r.prefix) > 15 or r.service not in _SERVICE_ID:
            return _DeckIndex(False)
        base = int(r.prefix) * n_ss + _SERVICE_ID[r.service]
        table = by_len.setdefault(len(r.prefix), {})
        for seg in range(n_seg):
            if covers(r, seg):
                key = base + 2 * seg
                if key in table:  # overlapping windows: compile_rows refuses those
                    return _DeckIndex(False)
                table[key] = i
                entries += 1
        if entries > _MAX_MAP_ENTRIES:
            return _DeckIndex(False)
    maps = tuple(
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
        maps=maps,
        first_s=pl.Series([r.first_increment_s for r in rows] + zeros, dtype=pl.Int64),
        next_s=pl.Series([r.next_increment_s for r in rows] + [1, 1], dtype=pl.Int64),
        rate_micros=pl.Series([r.rate_micros_per_min for r in rows] + zeros, dtype=pl.Int64),
        fee_micros=pl.Series([r.fee_micros for r in rows] + zeros, dtype=pl.Int64),
        max_billed=pl.Series(max_billed + [1 << 62, 1 << 62], dtype=pl.Int64),
        heads=pl.Series(heads, dtype=pl.String),
        currency_json=currency_json,
    )


# --- timestamps: their pieces are valued by the per-call parser itself -----------------------

# A timestamp `clock._TS_RE` accepts is always `YYYY-MM-DDT` (11 chars, `T`, `t` or space),
# `HH:MM`, `:SS`, then an optional fraction and the zone (the tail). Its instant is the sum of
# the values of `<date>00:00:00Z`, `HH:MM`, `:SS` and `1970-01-01T00:00:00<tail>`, and it is
# valid exactly when all four pieces are: so each distinct date and tail is judged once by
# `clock.parse_instant`, and the fast path accepts exactly what the per-call core accepts (but
# only with <= 6 fractional digits, which stay whole microseconds).
_DATE_CACHE: dict[str, int | None] = {}
_TAIL_CACHE: dict[str, int | None] = {}
_CACHE_MAX = 1_000_000
# `HH:MM` and `:SS` are valid exactly when `clock._TS_RE` reads two digits each and HH <= 23,
# MM <= 59, SS <= 59: these are all of them, with their microseconds.
_HM = (pl.Series([f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)], dtype=pl.String),
       pl.Series([(h * 60 + m) * 60 * _US for h in range(24) for m in range(60)], dtype=pl.Int64))
_S = (pl.Series([f":{s:02d}" for s in range(60)], dtype=pl.String),
      pl.Series([s * _US for s in range(60)], dtype=pl.Int64))


def _date_value(text: str) -> int | None:
    if len(text) != 11:
        return None
    try:
        return clock.parse_instant(text + "00:00:00Z")  # type: ignore[return-value]
    except clock.TimestampError:
        return None


def _tail_value(text: str) -> int | None:
    try:
        us = clock.parse_instant("1970-01-01T00:00:00" + text)
    except clock.TimestampError:
        return None
    return us if us.__class__ is int else None  # type: ignore[return-value]


def _mapping(values: pl.Series, cache: dict[str, int | None],
             value: Callable[[str], int | None]) -> tuple[pl.Series, pl.Series]:
    """(texts, values) of the valid distinct `values`, valued once per process."""
    old: list[str] = []
    new: list[int] = []
    get = cache.get
    for text in values.to_list():
        v = get(text, False)
        if v is False:
            v = value(text)
            if len(cache) < _CACHE_MAX:
                cache[text] = v
        if v is not None:
            old.append(text)
            new.append(v)  # type: ignore[arg-type]
    return pl.Series(old, dtype=pl.String), pl.Series(new, dtype=pl.Int64)


# --- one chunk -------------------------------------------------------------------------------

def _style_of(chunk: bytes) -> str:
    head = chunk[:200]
    return "compact" if head.lstrip().startswith(b'{"call_id":"') else "spaced"


def _cut(lines: pl.DataFrame, style: str, ascii_chunk: bool) -> pl.DataFrame:
    """The values of the lines that are exactly in the template layout, with their index `i`.

    `find` locates each key's token (`", "kind": "`). When the line starts with
    `{"call_id": "`, ends with `"}` and the tokens follow each other in template order without
    overlapping, the line is the template glued around the pieces between the tokens, which are
    the values. With no `"`, `\\` or control character in any value (checked in `_rate_frame`:
    the free-text values against `_UNCLEAN`, the kind, numbers and timestamps against stricter
    patterns) it is valid JSON holding exactly those strings, with no key twice.
    Timestamps come as their four pieces (`start_d`, `start_hm`, `start_s`, `start_t`).
    """
    colon, comma = _STYLES[style]
    start_tok = '{"call_id"' + colon + '"'
    sep = {k: '"' + comma + '"' + k + '"' + colon + '"' for k in _KEYS[1:]}
    end_tok = '"}'
    line = pl.col("l")
    pos = {k: pl.col("p_" + k) for k in _KEYS[1:]}
    begin = {"call_id": pl.lit(len(start_tok), dtype=pl.Int64)}
    for k in _KEYS[1:]:
        begin[k] = pos[k] + len(sep[k])
    stop = {
        "call_id": pl.coalesce(pos["tenant_id"], pos["user_id"], pos["kind"]),
        "tenant_id": pl.coalesce(pos["user_id"], pos["kind"]),
        "user_id": pos["kind"],
        "kind": pos["from"],
        "from": pos["to"],
        "to": pos["start"],
        "start": pos["end"],
        "end": pl.col("n_bytes") - len(end_tok),
    }
    # Template order: every present token starts at or after the end of the one before.
    in_order = [
        line.str.starts_with(start_tok),
        line.str.ends_with(end_tok),
        *(pos[k].is_not_null() for k in ("kind", "from", "to", "start", "end")),
        pos["tenant_id"].is_null() | (pos["tenant_id"] >= len(start_tok)),
        pos["user_id"].is_null() | (pos["user_id"] >= pl.coalesce(begin["tenant_id"], len(start_tok))),
        pos["kind"] >= pl.coalesce(begin["user_id"], begin["tenant_id"], len(start_tok)),
        pos["from"] >= begin["kind"],
        pos["to"] >= begin["from"],
        pos["start"] >= begin["to"],
        pos["end"] >= begin["start"],
        stop["end"] >= begin["end"],
    ]
    if not ascii_chunk:  # `find` counts bytes, `slice` characters: ASCII lines only
        in_order.append(line.str.len_chars() == pl.col("n_bytes"))

    def value(k: str) -> pl.Expr:
        return line.str.slice(begin[k], stop[k] - begin[k]).alias(k)

    def stamp(k: str) -> list[pl.Expr]:  # constant offsets into the short value are cheap
        ts = pl.col(k)
        return [ts.str.slice(0, 11).alias(k + "_d"), ts.str.slice(11, 5).alias(k + "_hm"),
                ts.str.slice(16, 3).alias(k + "_s"), ts.str.slice(19).alias(k + "_t")]

    return (
        lines.lazy()
        .with_columns([line.str.find(sep[k], literal=True).cast(pl.Int64).alias("p_" + k) for k in _KEYS[1:]]
                      + [line.str.len_bytes().cast(pl.Int64).alias("n_bytes")])
        .filter(pl.all_horizontal(in_order).fill_null(False))
        .with_columns([value(k) for k in _KEYS])
        .with_columns(stamp("start") + stamp("end"))
        .drop("l", "start", "end", *("p_" + k for k in _KEYS[1:]), "n_bytes")
        .collect()
    )


_FRAC_CACHE: dict[int, str] = {}
_CHARGE_FRAC = (pl.Series(range(10_000), dtype=pl.Int64), pl.Series([f".{i:04d}" for i in range(10_000)]))


def _fractions(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    old, new = [], []
    for v in values.to_list():
        text = _FRAC_CACHE.get(v)
        if text is None:
            text = f".{v:06d}".rstrip("0") if v else ""
            if len(_FRAC_CACHE) < _CACHE_MAX:
                _FRAC_CACHE[v] = text
        old.append(v)
        new.append(text)
    return pl.Series(old, dtype=pl.Int64), pl.Series(new, dtype=pl.String)


def _rate_frame(idx: _DeckIndex, cut: pl.DataFrame) -> pl.DataFrame:
    """Columns `i` and `out` (the JSON line) of the cut lines the fast path rates exactly.

    Each step is its own `with_columns`, so polars computes each intermediate column once.
    """
    dates = _mapping(pl.concat([cut["start_d"], cut["end_d"]]).unique(), _DATE_CACHE, _date_value)
    tails = _mapping(pl.concat([cut["start_t"], cut["end_t"]]).unique(), _TAIL_CACHE, _tail_value)

    def instant(k: str) -> pl.Expr:
        return (pl.col(k + "_d").replace_strict(dates[0], dates[1], default=None, return_dtype=pl.Int64)
                + pl.col(k + "_hm").replace_strict(_HM[0], _HM[1], default=None, return_dtype=pl.Int64)
                + pl.col(k + "_s").replace_strict(_S[0], _S[1], default=None, return_dtype=pl.Int64)
                + pl.col(k + "_t").replace_strict(tails[0], tails[1], default=None, return_dtype=pl.Int64)
                ).alias(k + "_us")

    kind = pl.col("kind")
    inbound = kind == "inbound"
    tollfree = kind == "tollfree_inbound"
    n_rows = len(idx.heads) - 2
    clean = ~pl.concat_str([pl.col(k) for k in ("call_id", "tenant_id", "user_id", "from", "to")],
                           ignore_nulls=True).str.contains(_UNCLEAN)
    ok = (clean & kind.is_in(_KINDS) & pl.col("start_us").is_not_null() & pl.col("end_us").is_not_null()
          & (inbound | (pl.col("from").str.contains(_E164) & pl.col("to").str.contains(_E164))))
    number = pl.when(tollfree).then(pl.col("from")).otherwise(pl.col("to"))
    if len(idx.bounds):
        seg = pl.lit(idx.bounds).search_sorted(pl.col("start_us"), side="right").cast(pl.Int64)
    else:
        seg = pl.lit(0, dtype=pl.Int64)
    n_len = pl.col("number").str.len_bytes().cast(pl.Int64) - 1
    step2 = [
        n_len.alias("n_len"),
        (pl.col("number").str.slice(1).cast(pl.Int64, strict=False)
         * n_len.replace_strict(list(range(8, 16)), [10 ** (15 - n) for n in range(8, 16)],
                                default=None, return_dtype=pl.Int64)).alias("num15"),
        (seg * 2 + tollfree.cast(pl.Int64)).alias("ss"),
    ]
    # longest prefix: one map per prefix length, the longest hit wins
    hits = []
    for length, keys, rows in idx.maps:
        key = (pl.col("num15") // 10 ** (15 - length)) * idx.n_ss + pl.col("ss")
        if length > 8:  # E.164 numbers have at least 8 digits
            key = pl.when(pl.col("n_len") >= length).then(key)
        hits.append(key.replace_strict(keys, rows, default=None, return_dtype=pl.Int32))
    row = pl.coalesce(hits) if hits else pl.lit(None, dtype=pl.Int32)
    which = pl.when(inbound).then(pl.lit(n_rows + 1, dtype=pl.Int32)).otherwise(
        pl.col("row").fill_null(pl.lit(n_rows, dtype=pl.Int32)))
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

    stage = (
        cut.lazy()
        .with_columns(instant("start"), instant("end"))
        .with_columns(ok.fill_null(False).alias("ok"), number.alias("number"),
                      (pl.col("end_us") - pl.col("start_us")).alias("d"))
        .filter(pl.col("ok"))
        .with_columns(step2)
        .with_columns(row.alias("row"))
        .with_columns(which.alias("which"))
        .with_columns(gathered)
        .with_columns(billed.alias("billed"))
        .filter(b <= pl.col("max_billed"))
        .with_columns(charge.alias("charge"))
        .collect()
    )
    fracs = _fractions((stage["d"].abs() % _US).unique())
    q = pl.col("charge")
    a = d.abs()
    texts = [  # `clock.seconds_text` of whole microseconds (sign, whole, `.fraction`), money, billed
        pl.when(d < 0).then(pl.lit("-")).alias("t_sign"),
        (a // _US).cast(pl.String).alias("t_whole"),
        (a % _US).replace_strict(fracs[0], fracs[1], default=None, return_dtype=pl.String).alias("t_frac"),
        b.cast(pl.String).alias("t_billed"),
        (q // 10_000).cast(pl.String).alias("t_units"),
        (q % 10_000).replace_strict(_CHARGE_FRAC[0], _CHARGE_FRAC[1], return_dtype=pl.String).alias("t_4dp"),
        pl.when(pl.col("tenant_id").is_not_null()).then(pl.lit('","tenant_id":"')).alias("t_tenant"),
        pl.when(pl.col("user_id").is_not_null()).then(pl.lit('","user_id":"')).alias("t_user"),
    ]
    out = pl.concat_str(
        [
            pl.lit('{"call_id":"'), pl.col("call_id"), pl.col("t_tenant"), pl.col("tenant_id"),
            pl.col("t_user"), pl.col("user_id"), pl.lit('","kind":"'), kind, pl.lit('",'), pl.col("head"),
            pl.lit(',"duration_seconds":'), pl.col("t_sign"), pl.col("t_whole"), pl.col("t_frac"),
            pl.lit(',"billed_seconds":'), pl.col("t_billed"), pl.lit(',"charge":"'), pl.col("t_units"),
            pl.col("t_4dp"), pl.lit('","currency":' + idx.currency_json + "}"),
        ],
        ignore_nulls=True,
    )
    return stage.lazy().with_columns(texts).select("i", out.alias("out")).collect()


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


def rate_chunk(deck: Deck, idx: _DeckIndex, chunk: bytes, first_line: int, name: str,
               ) -> tuple[pl.Series, list[str]]:
    """Rate the whole lines of `chunk` (line numbers from `first_line`).

    Returns the output lines (blank input lines dropped) and the stderr messages in order.
    """
    n_lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
    original = chunk
    forced: dict[int, bytes] = {}  # lines polars must not see, by index: judged per call
    if b"\x00" in chunk or chunk.startswith(_BOM) or not chunk.isascii() and not _utf8(chunk):
        parts = chunk.split(b"\n")[:n_lines]
        for i, part in enumerate(parts):
            if b"\x00" in part or (i == 0 and part.startswith(_BOM)) or not part.isascii() and not _utf8(part):
                forced[i] = part
                parts[i] = b""
        chunk = b"\n".join(parts) + b"\n"  # one row per line, an emptied last line included
    lines = _lines_frame(chunk) if chunk else pl.Series("l", [], dtype=pl.String)
    if len(lines) != n_lines:  # never seen; the per-call core is the safe answer
        return _rate_slowly(deck, original, first_line, name)

    out = pl.repeat(None, n_lines, dtype=pl.String, eager=True).alias("out")
    fast = pl.repeat(False, n_lines, dtype=pl.Boolean, eager=True).alias("fast")
    if idx.usable and n_lines:
        frame = lines.to_frame("l").with_row_index("i")
        first, second = ("compact", "spaced") if _style_of(chunk) == "compact" else ("spaced", "compact")
        ascii_chunk = chunk.isascii()
        cut = _cut(frame, first, ascii_chunk)
        if len(cut) < n_lines:  # the other spacing, for the lines left
            rest = frame.filter(pl.col("l").is_not_null() & ~pl.col("i").is_in(cut["i"].implode()))
            if len(rest):
                cut = pl.concat([cut, _cut(rest, second, ascii_chunk)])
        rated = _rate_frame(idx, cut)
        if len(rated) == n_lines and not forced:  # every line rated here: nothing to merge
            return (rated["out"] if rated["i"].is_sorted() else rated.sort("i")["out"]), []
        fast_idx = rated["i"]
        out = out.scatter(fast_idx, rated["out"])
        fast = fast.scatter(fast_idx, True)

    slow = (~fast & (lines.is_not_null() | pl.Series([i in forced for i in range(n_lines)])
                     if forced else ~fast & lines.is_not_null()))
    slow_idx = slow.arg_true().to_list()
    errors: list[str] = []
    if slow_idx:
        texts = lines.gather(slow_idx).to_list()
        results = []
        for i, text in zip(slow_idx, texts):
            raw = forced[i] if i in forced else (text or "").encode()
            line_out, reason = _per_call(deck, raw)
            results.append(line_out)
            if reason is not None:
                errors.append(f"{name}:{first_line + i}: invalid: {reason}\n")
        out = out.scatter(slow_idx, pl.Series(results, dtype=pl.String))
    return out.drop_nulls(), errors


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _rate_slowly(deck: Deck, chunk: bytes, first_line: int, name: str) -> tuple[pl.Series, list[str]]:
    results, errors = [], []
    for i, raw in enumerate(io.BytesIO(chunk)):
        line_out, reason = _per_call(deck, raw)
        if line_out is not None:
            results.append(line_out)
        if reason is not None:
            errors.append(f"{name}:{first_line + i}: invalid: {reason}\n")
    return pl.Series("out", results, dtype=pl.String), errors


def _chunks(src: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    while True:
        block = src.read(chunk_bytes)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += src.readline()
        yield block


def _write(dst: BinaryIO, out: pl.Series) -> None:
    if len(out):
        out.to_frame().write_csv(dst, include_header=False, quote_style="never", line_terminator="\n")


def rate_stream(deck: Deck, src: BinaryIO, dst: BinaryIO, name: str, err: Callable[[str], object],
                progress=None, chunk_bytes: int = CHUNK_BYTES, workers: int = WORKERS) -> int:
    """Rate a whole CDR stream; returns the number of lines read.

    Up to `workers` chunks are rated at once (polars releases the GIL), and the output of each is
    written, with its stderr messages, in input order; at most `workers + 1` chunks are held.
    """
    idx = _index_deck(deck)
    line_no = 1
    done = 0
    pending: deque = deque()

    def finish() -> None:
        nonlocal done
        job, size, lines = pending.popleft()
        out, errors = job.result() if isinstance(job, Future) else job
        for message in errors:
            err(message)
        _write(dst, out)
        done += size
        if progress is not None:
            progress.update(done, lines)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for chunk in _chunks(src, chunk_bytes):
            if workers > 1:
                job = pool.submit(rate_chunk, deck, idx, chunk, line_no, name)
            else:
                job = rate_chunk(deck, idx, chunk, line_no, name)
            line_no += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            pending.append((job, len(chunk), line_no - 1))
            while len(pending) > max(0, workers - 1):
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
            messages.append(f"{name}:{line_no}: invalid: {reason}\n")
    return b"".join(out), "".join(messages)


__all__ = ["BULK_MIN_BYTES", "CHUNK_BYTES", "rate_bytes", "rate_bytes_per_call", "rate_chunk", "rate_stream"]
