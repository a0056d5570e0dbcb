"""The native core against the reference model: identical bytes on random and hostile input.

The Python modules in `tests/reference/` are the rules written plainly; the Rust core
(`rating_engine._core`) must print exactly what they print. Three families of rules:

- simulate: random event streams (calls and account commands of several tenants, with
  duplicates, out-of-order stamps, malformed lines, blank and CRLF lines, shared pools
  running dry) give the same simulate lines, byte for byte, natively as in the reference;
- rate: random CDR lines, valid or not, give the same record bytes and refusal reason;
- hostile input at the Python boundary: random bytes, broken UTF-8, a 10 MB line, JSON
  nested 10,000 deep, 400-digit numbers, 1e999, NaN, -0, duplicate keys, NUL, lone
  surrogate escapes, a BOM, stray CR/LF: always a dead letter or an `invalid` line with a
  reason, never an exception out of the core, and the reference's bytes where it copes.

The hypothesis settings (`DIFF`) run 400 examples per rule, about 5,000 random streams and
lines in all within a minute; `DIFF_EXAMPLES` raises that for a longer hunt.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating_engine import core

from . import rate_support
from .reference import cdr as ref_cdr
from .reference import deck as ref_deck
from .reference import engine as ref_engine
from .tenant_support import (
    DE_DEST,
    DECK_ROWS,
    FR_FREE,
    GB_DEST,
    HEADER,
    JP_NO_RATE,
    US_CALLER,
    US_DEST,
    US_PREMIUM,
    US_TOLLFREE,
    T,
    add_funds,
    assign_licence,
    build_deck,
    call_end,
    call_start,
    payment_result,
    remove_licence,
    set_auto_recharge,
    set_pool,
    to_line,
)

# ---------------------------------------------------------------- the two engines

NATIVE_DECK = build_deck()
REFERENCE_DECK = ref_deck.compile_rows("tests/literal-deck.csv", HEADER, DECK_ROWS)
NATIVE_RATE_DECK = core.compile_rows("test.csv", list(rate_support.COLUMNS), rate_support.ROWS)
REFERENCE_RATE_DECK = ref_deck.compile_rows(
    "test.csv", list(rate_support.COLUMNS), [dict(r) for r in rate_support.ROWS]
)

# examples per rule; DIFF_EXAMPLES=5000 for a long hunt
DIFF = settings(
    max_examples=int(os.environ.get("DIFF_EXAMPLES", "400")),
    deadline=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def native_simulate(data: bytes, cuts: list[int] | None = None) -> bytes:
    """`simulate` on the native core; `cuts` feeds the text in pieces at those newlines."""
    sim = core.Simulation(NATIVE_DECK)
    if not cuts:
        return sim.feed(data) + sim.finish()
    out, at = [], 0
    for cut in sorted(set(cuts)):
        out.append(sim.feed(data[at:cut]))
        at = cut
    out.append(sim.feed(data[at:]))
    return b"".join(out) + sim.finish()


def reference_simulate(data: bytes) -> bytes:
    """`simulate` of the reference model: a binary file's lines (split at `\\n` only),
    each output as `with_topic(topic, payload)` plus a newline, as its command printed."""
    lines = ref_engine.simulate_lines(REFERENCE_DECK, io.BytesIO(data))
    return b"".join(ref_engine.with_topic(t, p) + b"\n" for t, p in lines)


def native_rate(raw: bytes, deck: Any = NATIVE_RATE_DECK) -> tuple[bytes, str | None]:
    record, reason = core.rate_line(deck, raw)
    return bytes(record), reason


def reference_rate(raw: bytes, deck: Any = REFERENCE_RATE_DECK) -> tuple[bytes, str | None]:
    record, reason = ref_cdr.rate_line(deck, raw)
    return orjson.dumps(record), reason


def joined(lines: list[bytes], ending: bytes = b"\n") -> bytes:
    return b"".join(line + ending for line in lines)


def assert_same_simulate(data: bytes) -> bytes:
    native = native_simulate(data)
    reference = reference_simulate(data)
    assert native == reference, first_difference(native, reference)
    return native


def first_difference(native: bytes, reference: bytes) -> str:
    a, b = native.splitlines(), reference.splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"output line {i + 1}:\n native    {x[:600]!r}\n reference {y[:600]!r}"
    return f"native has {len(a)} lines, reference {len(b)}; first extra: {(a[len(b) :] or b[len(a) :])[0][:600]!r}"


# ---------------------------------------------------------------- random event streams

TENANTS = ["t1", "t2", "t3"]
USERS = ["ann"] * 6 + ["bob", None]
KINDS = ["user_outbound"] * 3 + ["conference_dialout", "tollfree_inbound", "inbound"]
DESTS = [
    US_DEST,
    US_DEST,
    GB_DEST,
    DE_DEST,
    US_PREMIUM,
    US_TOLLFREE,
    JP_NO_RATE,
    "12345",
    None,
    "+1206555019",
    "+120655501990000000",
]
LOCATIONS = ["US", "US", "GB", "DE", None]
AMOUNTS = [
    "0.0500",
    "0.2500",
    "1.0000",
    "1.0000",
    3,
    "0.0100",
    "2",
    "0.00001",
    "-1",
    "0",
    0,
    1.5,
    "1e3",
    " 1.0",
    "abc",
    True,
    None,
    18446744073709551615,
    "18446744073709551615.9999",
]
POOLS = [
    ("domestic", "US"),
    ("international", "US"),
    ("domestic", "GB"),
    ("conferencing", None),
    ("domestic", None),
    ("weekly", "US"),
    ("international", "DE"),
]
MINUTES = [1, 2, 1, 0, "1", "x", -1, 1.0, True, None, 18446744073709551615]
TRIGGERS = ["0", "0.0500", "0.5000", "2.0000", None, "-0.1"]
RECHARGES = ["0.1000", "1.0000", None, "0"]
# gaps between lines in milliseconds, short ones more often; an hour, a day and 40 days reach
# month refills, recharge back-offs and (with the 400-day gap) lot expiries
GAPS_MS = (
    [0] * 8
    + [1, 250, 500, 1000, 2500, 7000] * 4
    + [30_000, 61_000, 90_000, 600_000] * 3
    + [3_600_000, 25 * 3_600_000, 40 * 86_400_000, 400 * 86_400_000]
)
JUNK = [
    b'{"type": "call_end", oops',
    b"[]",
    b"null",
    b'"call_start"',
    b"{}",
    b'{"type": 7}',
    b'{"type": "call_forward"}',
    b"\xff\xfe{}",
    b'{"type":"call_end","call_id":"c1"}',
    b"   ",
    b"\t",
    b"\r",
    b'{"type":"add_funds","tenant_id":"t1"}',
    b"\x0b\x0c",  # blank to Python's bytes.isspace: no output, the line still counts
    b"\x1c",  # blank for str.isspace only: for bytes a line, so a dead letter
    b"\xa0",
    b"\xc2\x85",
]
BAD_VALUES: list[Any] = [None, 0, 1, -1, "", "x", True, [], {}, 1.5, [1], {"a": None}]


@st.composite
def event_streams(
    draw: Callable,
    *,
    max_ops: int = 50,
    gaps_ms: list[int] = GAPS_MS,
    dests: list[Any] = DESTS,
    mutate: bool = True,
    pooled: bool = False,
) -> bytes:
    """A random events text: each tenant's setup, then random calls, commands and junk.

    `pooled`: every tenant starts with a 1- or 2-minute pool (so shared pools run dry).
    """
    now_ms = 0
    lines: list[bytes] = []
    started: dict[str, list[str]] = {t: [] for t in TENANTS}

    def stamp(ms: int) -> str:
        """The instant `ms` after the base, mostly as printed, sometimes in another spelling."""
        text = T(Fraction(ms, 1000))
        style = draw(st.integers(0, 39))
        if style == 0:  # the same instant in a +01:00 zone
            when = datetime.fromisoformat(text[:-1]) + timedelta(hours=1)
            return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+01:00"
        if style == 1:  # 123 microseconds later: finer than the printed milliseconds
            return text[:-1] + "123Z"
        if style == 2:  # a fraction of a microsecond later
            return text[:-1] + "000000005Z"
        return text

    for tenant in TENANTS:
        ts = stamp(0)
        lot = draw(st.sampled_from(AMOUNTS[:6] + [None]))
        if lot is not None:
            lines.append(to_line(add_funds("f0", ts, lot, tenant=tenant)))
        lines.append(to_line(assign_licence("l0", ts, "ann", tenant=tenant)))
        if pooled or draw(st.booleans()):
            plan, country = draw(st.sampled_from(POOLS[:4]))
            minutes = draw(st.sampled_from([1, 2] if pooled else [1, 2, 1, 0]))
            lines.append(to_line(set_pool("p0", ts, plan, country, minutes, tenant=tenant)))
        auto = draw(st.integers(0, 3))
        if auto < 2:
            lines.append(
                to_line(
                    set_auto_recharge(
                        "a0",
                        ts,
                        auto == 0,
                        draw(st.sampled_from(TRIGGERS[:4])),
                        draw(st.sampled_from(RECHARGES[:2])),
                        tenant=tenant,
                    )
                )
            )

    ops = draw(st.integers(5, max_ops))
    for n in range(1, ops + 1):
        now_ms += draw(st.sampled_from(gaps_ms))
        tenant = draw(st.sampled_from(TENANTS))
        ts = stamp(now_ms)
        action = draw(st.integers(0, 19))
        obj: dict[str, Any] | None = None
        raw: bytes | None = None
        if action <= 6:
            kind = draw(st.sampled_from(KINDS))
            frm, to = US_CALLER, draw(st.sampled_from(dests))
            if kind == "tollfree_inbound":
                frm, to = (
                    draw(st.sampled_from([US_CALLER, GB_DEST, JP_NO_RATE, "bad"])),
                    US_TOLLFREE,
                )
            call_id = (
                f"c{n}" if draw(st.integers(0, 9)) else draw(st.sampled_from(["c1", "c2", "x"]))
            )
            obj = call_start(
                call_id,
                ts,
                tenant=tenant,
                user=draw(st.sampled_from(USERS)),
                kind=kind,
                frm=frm,
                to=to,
                loc=draw(st.sampled_from(LOCATIONS)),
                switch=draw(st.sampled_from(["sw-1", "sw-2", 7, None])),
            )
            started[tenant].append(call_id)
            # several calls at the same instant share a pool: it empties at R/n
            for extra in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
                twin = dict(obj, call_id=f"{call_id}-{extra}")
                started[tenant].append(twin["call_id"])
                lines.append(orjson.dumps(twin))
        elif action <= 10:
            calls = started[tenant]
            pick = draw(st.integers(0, 11))
            call_id = calls[-1 - pick % len(calls)] if calls and pick != 11 else f"nope{n}"
            obj = call_end(call_id, ts, tenant=tenant)
        elif action == 11:
            currency = draw(st.sampled_from(["USD"] * 5 + ["EUR", "", None]))
            obj = add_funds(
                f"f{n}" if draw(st.integers(0, 5)) else "f0",
                ts,
                draw(st.sampled_from(AMOUNTS)),
                tenant=tenant,
                currency=currency,
            )
        elif action == 12:
            plan, country = draw(st.sampled_from(POOLS))
            obj = set_pool(
                f"p{n}", ts, plan, country, draw(st.sampled_from(MINUTES)), tenant=tenant
            )
        elif action in (13, 14):
            build = assign_licence if action == 13 else remove_licence
            obj = build(
                f"l{n}",
                ts,
                draw(st.sampled_from(["ann", "ann", "bob", "bob", "", None])),
                tenant=tenant,
            )
        elif action == 15:
            obj = set_auto_recharge(
                f"a{n}",
                ts,
                draw(st.sampled_from([True, True, False, "yes", None])),
                draw(st.sampled_from(TRIGGERS)),
                draw(st.sampled_from(RECHARGES)),
                tenant=tenant,
            )
        elif action == 16:
            obj = payment_result(
                f"r{n}",
                ts,
                f"{tenant}:recharge:{draw(st.sampled_from([1, 1, 2, 3]))}",
                draw(st.sampled_from(["succeeded", "failed", "failed", "pending", None])),
                draw(st.sampled_from([None, "card_expired", 7, ["deep", {"x": 1}]])),
                tenant=tenant,
            )
        elif action == 17:  # out of order: a day before the clock
            obj = add_funds(f"f{n}", stamp(max(0, now_ms - 86_400_000)), "1.0000", tenant=tenant)
        elif action == 18:
            raw = draw(st.sampled_from(JUNK))
        else:  # a blank line
            raw = draw(st.sampled_from([b"", b" ", b"\r"]))
        if obj is not None:
            if mutate and draw(st.integers(0, 7)) == 0:
                field = draw(st.sampled_from(sorted(obj)))
                if draw(st.booleans()):
                    del obj[field]
                else:
                    obj[field] = draw(st.sampled_from(BAD_VALUES))
            raw = orjson.dumps(obj)
        assert raw is not None
        lines.append(raw)
        if draw(st.integers(0, 8)) == 0:
            lines.append(raw)  # an exact duplicate right after
    ending = draw(st.sampled_from([b"\n"] * 6 + [b"\r\n", b"\r\r\n"]))
    text = joined(lines, ending)
    if draw(st.booleans()):
        text = text.rstrip(b"\r\n")  # the last line without its newline
    return text


# ---------------------------------------------------------------- simulate: random streams


@DIFF
@given(event_streams())
def test_simulate_random_streams_match_reference_bytes(data: bytes) -> None:
    """Calls and commands of three tenants, gaps from 0 ms to 400 days, junk and duplicate
    lines: every simulate line the native core prints is the reference's, in order."""
    assert_same_simulate(data)


@DIFF
@given(
    event_streams(
        max_ops=40,
        gaps_ms=[0, 0, 1, 10, 250, 1000, 7000, 30_000, 61_000],
        dests=[US_DEST, US_DEST, GB_DEST, FR_FREE, DE_DEST],
        mutate=False,
        pooled=True,
    )
)
def test_simulate_dense_streams_with_free_calls_match_reference_bytes(data: bytes) -> None:
    """Short gaps (at most 61 s), zero-rate calls and concurrent calls sharing 1-minute
    pools: pool-empty instants at fractions of a microsecond must print the same."""
    assert_same_simulate(data)


@DIFF
@given(event_streams(max_ops=30), st.lists(st.integers(0, 10_000), max_size=6))
def test_simulate_fed_in_pieces_of_whole_lines_prints_the_same_bytes(
    data: bytes, picks: list[int]
) -> None:
    """`simulate` reads its input in blocks cut at newlines; where the cuts fall must not
    change a byte (line numbers of dead letters included)."""
    newlines = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    cuts = [newlines[p % len(newlines)] for p in picks] if newlines else []
    assert native_simulate(data, cuts) == reference_simulate(data)


@DIFF
@given(
    st.lists(
        st.sampled_from(
            [
                call_start("c1", T(0)),
                call_start("c2", T(0), to=GB_DEST),
                call_end("c1", T(30)),
                call_end("c2", T(90)),
                add_funds("f1", T(0), "0.0500"),
                add_funds("f2", T(10), "0.0100"),
                set_pool("p1", T(0), "domestic", "US", 1),
                set_pool("p2", T(5), "domestic", "US", 2),
                assign_licence("l1", T(0)),
                remove_licence("l2", T(45)),
                set_auto_recharge("a1", T(0), True, "0.0200", "0.1000"),
                payment_result("r1", T(20), "t1:recharge:1"),
                payment_result("r2", T(21), "t1:recharge:1", "failed", "declined"),
            ]
        ),
        min_size=1,
        max_size=25,
    )
)
def test_simulate_shuffled_stamps_match_reference_bytes(events: list[dict[str, Any]]) -> None:
    """A fixed set of events in any order and with any repeats: out-of-order stamps are
    dead-lettered and re-sent commands re-emit, identically in both cores."""
    assert_same_simulate(joined([to_line(e) for e in events]))


# ---------------------------------------------------------------- rate: random CDR lines

RATE_NUMBERS = [
    "+14255550100",
    "+442071234567",
    "+447700900123",
    "+447512345678",
    "+33123456789",
    "+4930123456",
    "+39061234567",
    "+34911234567",
    "+18005550100",
    "+8613800138000",
    "+1425555010",
    "+1234567890123456",
    "14255550100",
    "+1 4255550100",
    "",
    None,
    14255550100,
    "+١٤٢٥٥٥٥٠١٠٠",
]
RATE_KINDS = [
    "user_outbound",
    "conference_dialout",
    "tollfree_inbound",
    "inbound",
    "outbound",
    None,
    3,
]
RATE_STAMPS = [
    "2026-11-24T10:00:00Z",
    "2026-11-24T10:03:07.250Z",
    "2026-12-01T00:00:00Z",
    "2026-11-30T23:59:59.999999+00:00",
    "2026-11-24T11:00:00+01:00",
    "2026-10-31T23:59:59Z",
    "2026-11-24T10:00:00",
    "2026-11-24 10:00:00z",
    "2026-11-24T10:00:00.123456789012Z",
    "2026-02-30T10:00:00Z",
    "2026-11-24T24:00:00Z",
    "2026-11-24T10:00:60Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-11-24T10:00:00,5-05:30",
    "",
    None,
    1732442400,
]
RATE_FIELDS = ["call_id", "tenant_id", "user_id", "kind", "from", "to", "start", "end"]
ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -0.0,
    1.5,
    18446744073709551615,
    -9223372036854775808,
    "",
    "é\u2028",
    [],
    {},
    [1, [2, [3]]],
    {"k": {"v": None}},
    '\x00\x1f"\\',
]


@st.composite
def cdr_lines(draw: Callable) -> bytes:
    """A CDR line: mostly plausible fields, some missing, some of the wrong type or shape."""
    obj: dict[str, Any] = {
        "call_id": draw(st.sampled_from(["c1", "c2", "", None, 7])),
        "tenant_id": draw(st.sampled_from(["contoso", "t", None, 1])),
        "user_id": draw(st.sampled_from(["ann@contoso.com", None, ["a"]])),
        "kind": draw(st.sampled_from(RATE_KINDS)),
        "from": draw(st.sampled_from(RATE_NUMBERS)),
        "to": draw(st.sampled_from(RATE_NUMBERS)),
        "start": draw(st.sampled_from(RATE_STAMPS)),
    }
    if draw(st.integers(0, 3)):
        start = obj["start"] if isinstance(obj["start"], str) else RATE_STAMPS[0]
        seconds = draw(
            st.sampled_from(
                [
                    "0",
                    "0.001",
                    "1",
                    "5.999999",
                    "6",
                    "59.5",
                    "60",
                    "61",
                    "187.25",
                    "3600",
                    "-1",
                    "-0.000001",
                    "0.0000005",
                    "86400.1",
                ]
            )
        )
        try:
            obj["end"] = rate_support.span(start, seconds)["end"]
        except (ValueError, TypeError, OverflowError):  # outside years 1-9999
            obj["end"] = draw(st.sampled_from(RATE_STAMPS))
    else:
        obj["end"] = draw(st.sampled_from(RATE_STAMPS))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        field = draw(st.sampled_from(RATE_FIELDS + ["extra"]))
        if draw(st.booleans()):
            obj.pop(field, None)
        else:
            obj[field] = draw(st.sampled_from(ODD_VALUES))
    if draw(st.integers(0, 9)) == 0:
        keys = list(obj)
        order = draw(st.permutations(keys))
        obj = {k: obj[k] for k in order}
    return orjson.dumps(obj)


@DIFF
@given(cdr_lines())
def test_rate_random_cdr_lines_match_reference_bytes(raw: bytes) -> None:
    """Every priced record (rated, free, unrated, invalid) and its refusal reason are the
    reference's, byte for byte."""
    assert native_rate(raw) == reference_rate(raw)


@DIFF
@given(
    st.lists(cdr_lines(), min_size=1, max_size=20),
    st.sampled_from([b"\n", b"\r\n"]),
    st.integers(1, 4),
)
def test_rate_text_prints_the_reference_lines_and_messages(
    lines: list[bytes], ending: bytes, threads: int
) -> None:
    """`rate_text` (the `rate` command's batch call, on 1-4 threads) prints each line's
    reference record and a `FILE:LINE: invalid: reason` message per refused line."""
    lines = lines + [b"", b" \t", b"\x0b", b"\x1c"]  # blank lines give nothing but count
    data = joined(lines, ending)
    out, messages, seen = core.rate_text(NATIVE_RATE_DECK, data, "cdrs.jsonl", 1, threads)
    expected_out, expected_messages = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        record, reason = reference_rate(raw)
        expected_out.append(record + b"\n")
        if reason is not None and reason != "no_rate":
            expected_messages.append(ref_cdr.invalid_message("cdrs.jsonl", number, reason))
    assert bytes(out) == b"".join(expected_out)
    assert bytes(messages).decode() == "".join(expected_messages)
    assert seen == len(lines)


# ---------------------------------------------------------------- hostile input

DEEP = 10_000
HOSTILE_JSON: dict[str, bytes] = {
    "empty object": b"{}",
    "deep arrays 10000": b"[" * DEEP + b"]" * DEEP,
    "deep objects 10000": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep arrays 1024 (the limit)": b"[" * 1024 + b"]" * 1024,
    "deep arrays 1025 (one past)": b"[" * 1025 + b"]" * 1025,
    "deep unclosed 10000": b"[" * DEEP,
    "400 digits": b"1" + b"0" * 399,
    "-400 digits": b"-" + b"9" * 400,
    "400 fraction digits": b"0." + b"3" * 400,
    "1e999": b"1e999",
    "-1e999": b"-1e999",
    "1e-999": b"1e-999",
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "-0": b"-0",
    "-0.0": b"-0.0",
    "u64 max": b"18446744073709551615",
    "u64 max + 1": b"18446744073709551616",
    "i64 min - 1": b"-9223372036854775809",
    "NUL": b"\x00",
    "NUL in string": b'"a\x00b"',
    "NUL after object": b"{}\x00",
    "lone high surrogate": b'"\\ud800"',
    "lone low surrogate": b'"\\udc00"',
    "reversed pair": b'"\\udc00\\ud800"',
    "surrogate pair": b'"\\ud83d\\ude00"',
    "BOM object": b"\xef\xbb\xbf{}",
    "overlong UTF-8": b'"\xc0\xaf"',
    "UTF-8 surrogate bytes": b'"\xed\xa0\x80"',
    "truncated UTF-8": b'"\xe2\x82"',
    "latin-1": b'{"a":"caf\xe9"}',
    "trailing comma": b"[1,]",
    "single quotes": b"{'a': 1}",
    "leading zero": b"01",
    "lone minus": b"-",
    "exponent without digits": b"1e",
    "two values": b"{} {}",
    "form feed": b"\x0c{}",
    "vertical tab": b"\x0b{}",
    "bare CR inside": b"{\r}",
}


def hostile_events() -> dict[str, bytes]:
    """Hostile lines shaped as events: the traps placed in the fields that are read."""
    start = call_start("h1", T(0))
    funds = add_funds("hf", T(0), "1.0000")
    pool = set_pool("hp", T(0), "domestic", "US", 1)
    body = orjson.dumps(start)[1:-1]
    out = dict(HOSTILE_JSON)
    for name, value in [
        ("400 digits", b"1" + b"0" * 399),
        ("1e999", b"1e999"),
        ("NaN", b"NaN"),
        ("-0", b"-0"),
        ("-0.0", b"-0.0"),
        ("u64 max", b"18446744073709551615"),
        ("u64 max + 1", b"18446744073709551616"),
        ("1e-999", b"1e-999"),
        ("deep 300", b"[" * 300 + b"]" * 300),
        ("deep 1024", b"[" * 1024 + b"]" * 1024),
    ]:
        for field, base in [
            ("amount", funds),
            ("minutes", pool),
            ("ts", funds),
            ("switch_id", start),
            ("reason", payment_result("hr", T(0), "t1:recharge:1", "failed")),
        ]:
            head = orjson.dumps({k: v for k, v in base.items() if k != field})[:-1]
            out[f"{field} = {name}"] = head + b',"' + field.encode() + b'":' + value + b"}"
    out["duplicate type keys"] = b'{"type":"call_end",' + body + b"}"
    out["duplicate ts keys"] = b"{" + body + b',"ts":"garbage"}'
    out["duplicate ts keys, valid last"] = b'{"ts":"garbage",' + body + b"}"
    out["NUL in tenant"] = orjson.dumps(call_start("h2", T(0), tenant="t\x00"))
    out["lone surrogate in tenant"] = (
        orjson.dumps(call_start("h3", T(0)))[:-1] + b',"tenant_id":"\\ud800"}'
    )
    out["escaped NUL in call id"] = (
        orjson.dumps(call_start("h4", T(0)))[:-1] + b',"call_id":"\\u0000"}'
    )
    out["BOM before event"] = b"\xef\xbb\xbf" + orjson.dumps(funds)
    out["CR inside event"] = orjson.dumps(funds).replace(b",", b",\r", 1)
    out["invalid UTF-8 in a string"] = orjson.dumps(funds).replace(b'"t1"', b'"t\xff1"')
    out["latin-1 tenant"] = orjson.dumps(funds).replace(b'"t1"', b'"t\xe91"')
    return out


HOSTILE_EVENTS = hostile_events()


def dead_letters(text: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in text.splitlines()
        if core.split_topic(line)[0] == "dead-letters"
    ]


@pytest.mark.parametrize("name", sorted(HOSTILE_EVENTS))
def test_simulate_hostile_line_matches_reference_bytes(name: str) -> None:
    """Each hostile line, alone and between two good events, prints the reference's bytes
    (a dead letter with a reason where it cannot be an event); the core never raises."""
    raw = HOSTILE_EVENTS[name]
    assert_same_simulate(raw)
    good = to_line(add_funds("ok1", T(0), "1.0000"))
    later = to_line(add_funds("ok2", T(1), "1.0000"))
    out = assert_same_simulate(good + b"\n" + raw + b"\n" + later + b"\n")
    for letter in dead_letters(out):
        assert letter["reason"], letter


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_simulate_hostile_json_is_a_dead_letter_with_a_reason(name: str) -> None:
    """A line that is no event at all is exactly one dead letter naming why."""
    out = assert_same_simulate(HOSTILE_JSON[name] + b"\n")
    (letter,) = dead_letters(out)
    assert letter["reason"] in ("invalid_json", "not_an_object") or letter["reason"].startswith(
        "missing_field:"
    )
    assert letter["line"] == 1


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_rate_hostile_json_is_invalid_with_a_reason(name: str) -> None:
    """A CDR line that is not a JSON object is an `invalid` record with its reason."""
    raw = HOSTILE_JSON[name]
    native = native_rate(raw)
    assert native == reference_rate(raw)
    record = orjson.loads(native[0])
    assert record["status"] == "invalid" and record["reason"] == native[1]


def hostile_cdrs() -> dict[str, bytes]:
    base = orjson.dumps(rate_support.BASE_CDR)
    out: dict[str, bytes] = {}
    for name, value in [
        ("400 digits", b"1" + b"0" * 399),
        ("1e999", b"1e999"),
        ("NaN", b"NaN"),
        ("-0", b"-0"),
        ("-0.0", b"-0.0"),
        ("u64 max + 1", b"18446744073709551616"),
        ("lone surrogate", b'"\\ud800"'),
        ("escaped NUL", b'"\\u0000"'),
        ("deep 254", b"[" * 254 + b"]" * 254),
        ("deep 1024", b"[" * 1024 + b"]" * 1024),
    ]:
        for field in ["call_id", "kind", "to", "start", "end"]:
            out[f"{field} = {name}"] = base[:-1] + b',"' + field.encode() + b'":' + value + b"}"
    out["duplicate to keys"] = base[:-1] + b',"to":"+447700900123"}'
    out["duplicate start keys"] = base[:-1] + b',"start":"2026-11-24T09:00:00Z"}'
    out["BOM"] = b"\xef\xbb\xbf" + base
    out["NUL after"] = base + b"\x00"
    out["invalid UTF-8 in call id"] = base.replace(b'"c1"', b'"c\xff"')
    return out


HOSTILE_CDRS = hostile_cdrs()


@pytest.mark.parametrize("name", sorted(HOSTILE_CDRS))
def test_rate_hostile_cdr_fields_match_reference_bytes(name: str) -> None:
    """Traps inside a CDR's fields give the reference's record and reason."""
    raw = HOSTILE_CDRS[name]
    assert native_rate(raw) == reference_rate(raw)


@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_rate_echoed_tenant_nested_past_the_writer_limit_does_not_raise(depth: int) -> None:
    """An echoed `tenant_id` nested deeper than 254 cannot be written by orjson (the reference
    raises `JSONEncodeError`, so there are no reference bytes to compare); the native core
    must still answer with a record and never raise."""
    nested = b"[" * depth + b"]" * depth
    raw = orjson.dumps(rate_support.BASE_CDR)[:-1] + b',"tenant_id":' + nested + b"}"
    with pytest.raises(orjson.JSONEncodeError):
        reference_rate(raw)
    record, _ = native_rate(raw)
    assert record.startswith(b'{"call_id":"c1"')


TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize("shape", ["junk", "string", "object", "event"])
def test_ten_megabyte_line_matches_reference_in_both_commands(shape: str) -> None:
    """A 10 MB line (junk, one long JSON string, an object with a 10 MB member, an event with
    a 10 MB call id) is handled like any other; the reference copes in well under a second, so
    its bytes are compared too."""
    big = b"x" * TEN_MB
    raw = {
        "junk": big,
        "string": b'"' + big + b'"',
        "object": b'{"pad":"' + big + b'"}',
        "event": orjson.dumps(call_start("x" * TEN_MB, T(0))),
    }[shape]
    assert_same_simulate(raw + b"\n")
    assert native_rate(raw) == reference_rate(raw)


DEAD_LETTER_MAX = 65_536  # bytes of an input its dead letter keeps


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * DEAD_LETTER_MAX,  # at the limit: kept whole
        b"x" * (DEAD_LETTER_MAX + 1),
        b"x" * (DEAD_LETTER_MAX - 1) + "é".encode() + b"}",  # the cut splits a character
        b"x" * (DEAD_LETTER_MAX - 2) + "€".encode() + b"}",
        b"\xff" * (DEAD_LETTER_MAX + 5),  # not UTF-8: the kept bytes also as base64
        b"\x00" * (3 * DEAD_LETTER_MAX),  # control bytes: the longest text form
    ],
    ids=["at-limit", "one-over", "cut-2-byte", "cut-3-byte", "invalid-utf8", "control-bytes"],
)
def test_dead_letter_of_a_large_line_keeps_its_head_with_size_and_hash(raw: bytes) -> None:
    """Beyond the limit a dead letter keeps the first bytes (a character the cut left
    incomplete dropped) and the whole line's size and SHA-256, as the reference does."""
    import hashlib

    out = assert_same_simulate(raw + b"\n")
    letter = orjson.loads(out.splitlines()[0])
    assert letter["reason"] == "invalid_json"
    if len(raw) <= DEAD_LETTER_MAX:
        assert letter["original"].encode() == raw and "original_size" not in letter
        return
    assert letter["original_size"] == len(raw)
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(out) < 8 * DEAD_LETTER_MAX


@DIFF
@given(st.binary(max_size=300))
def test_random_bytes_match_reference_in_both_commands(raw: bytes) -> None:
    """Arbitrary bytes as an event line and as a CDR line: the reference's bytes, no exception."""
    assert_same_simulate(raw)
    assert native_rate(raw) == reference_rate(raw)


@DIFF
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda kids: st.one_of(
            st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_random_json_values_match_reference_in_both_commands(value: Any) -> None:
    """Any JSON value (huge integers and lone surrogates included, via the standard library's
    writer) as an event line and as a CDR line gives the reference's bytes."""
    raw = json.dumps(value, allow_nan=True).encode("utf-8", errors="surrogatepass")
    assert_same_simulate(raw)
    assert native_rate(raw) == reference_rate(raw)


@DIFF
@given(
    st.lists(st.sampled_from(sorted(HOSTILE_EVENTS)), min_size=1, max_size=8),
    st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\r\n", b"\n \n"]),
)
def test_hostile_lines_mixed_with_events_match_reference(names: list[str], ending: bytes) -> None:
    """Hostile lines between good ones, with any newline style, keep the good lines' effects
    and the line numbers of the dead letters identical to the reference's."""
    good = [
        to_line(e)
        for e in (
            add_funds("g1", T(0), "1.0000"),
            assign_licence("g2", T(0)),
            call_start("g3", T(1)),
            call_end("g3", T(40)),
        )
    ]
    lines = []
    for i, name in enumerate(names):
        lines.append(good[i % len(good)])
        lines.append(HOSTILE_EVENTS[name])
    assert_same_simulate(joined(lines, ending))


# ---------------------------------------------------------------- echoed values

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=12,
)


def json_text(value: Any) -> bytes:
    """The standard library's JSON text (it spells big integers and -0.0, and lone surrogates
    as `\\udxxx` escapes, differently from orjson)."""
    return json.dumps(value).encode()


@DIFF
@given(JSON_VALUES)
def test_failed_payment_reason_of_any_shape_is_echoed_like_the_reference(reason: Any) -> None:
    """`recharge_failed` carries the payment's `reason` as given, whatever JSON value it is:
    numbers, nested containers and escapes must be written back exactly as orjson does."""
    head = joined(
        [
            to_line(add_funds("f1", T(0), "1.0000")),
            to_line(set_auto_recharge("a1", T(0), True, "2.0000", "1.0000")),
        ]
    )
    result = orjson.dumps(payment_result("r1", T(1), "t1:recharge:1", "failed"))
    line = result[:-1] + b',"reason":' + json_text(reason) + b"}"
    out = assert_same_simulate(head + line + b"\n")
    assert b'"kind":"recharge_failed"' in out


@DIFF
@given(JSON_VALUES, JSON_VALUES)
def test_rate_echoes_tenant_and_user_of_any_shape_like_the_reference(
    tenant: Any, user: Any
) -> None:
    """`rate` carries `tenant_id` and `user_id` through whatever JSON they hold."""
    raw = (
        orjson.dumps(rate_support.BASE_CDR)[:-1]
        + b',"tenant_id":'
        + json_text(tenant)
        + (b',"user_id":' + json_text(user) + b"}")
    )
    assert native_rate(raw) == reference_rate(raw)


@DIFF
@given(
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.text(max_size=6),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
    )
)
def test_switch_id_of_any_scalar_is_echoed_in_disconnects_like_the_reference(switch: Any) -> None:
    """A refused call's disconnect names the switch as given (a string or an integer, which
    may be past 64 bits and so a float); other shapes are dead letters."""
    line = (
        orjson.dumps(call_start("c1", T(0), to=JP_NO_RATE))[:-1]
        + b',"switch_id":'
        + json_text(switch)
        + b"}"
    )
    assert_same_simulate(joined([to_line(assign_licence("l1", T(0))), line]))


@pytest.mark.parametrize("depth", [253, 254, 300])
def test_failed_payment_reason_nested_past_the_writer_limit_does_not_raise(depth: int) -> None:
    """A `reason` nested so deep that the record passes orjson's writer limit (255 levels)
    makes the reference raise mid-simulation (`TypeError: Recursion limit reached`), so only
    the native behaviour is asserted there: the notification is still printed, whole."""
    head = joined(
        [
            to_line(add_funds("f1", T(0), "1.0000")),
            to_line(set_auto_recharge("a1", T(0), True, "2.0000", "1.0000")),
        ]
    )
    nested = b"[" * depth + b"]" * depth
    line = (
        orjson.dumps(payment_result("r1", T(1), "t1:recharge:1", "failed"))[:-1]
        + b',"reason":'
        + nested
        + b"}"
    )
    data = head + line + b"\n"
    if depth < 254:
        assert_same_simulate(data)
        return
    with pytest.raises(TypeError):
        reference_simulate(data)
    out = native_simulate(data).splitlines()
    assert (
        core.split_topic(out[-1])[0] == "notifications"
        and json.loads(core.split_topic(out[-1])[1])["reason"]
    )


# ---------------------------------------------------------------- bounds of numbers and instants

U64_MAX = "18446744073709551615"


@pytest.mark.parametrize(
    "amount",
    ["1" * 19, U64_MAX, U64_MAX + ".9999", "000" + U64_MAX, int(U64_MAX), " " + U64_MAX + " "],
)
def test_command_amounts_up_to_the_json_integer_range_match_reference(amount: Any) -> None:
    """An amount as a decimal string is accepted over the same range as a JSON integer
    (whole part up to 2**64 - 1): lots, recharges and charges print as the reference's."""
    events = [
        add_funds("f1", T(0), amount),
        add_funds("f2", T(0), amount),
        assign_licence("l1", T(0)),
        set_auto_recharge("a1", T(0), True, amount, amount),
        call_start("c1", T(1)),
        call_start("c2", T(1), to=GB_DEST),
        call_end("c1", T(100)),
        payment_result("r1", T(101), "t1:recharge:1", "failed", "declined"),
        add_funds("f3", T(400 * 86_400), amount),
    ]
    assert_same_simulate(joined([to_line(e) for e in events]))


@pytest.mark.parametrize("amount", ["18446744073709551616", "9" * 40, "9" * 30 + ".9999"])
def test_command_amount_past_the_json_integer_range_is_a_dead_letter(amount: str) -> None:
    """Past 2**64 - 1 units the native core refuses an amount (`bad_field:amount`) where the
    reference, on unbounded Python integers, accepts it: the core keeps money in exact
    128-bit integers, and a JSON integer amount cannot be larger either (orjson reads it
    as a float, refused by both). So only the native outcome is asserted."""
    (letter,) = dead_letters(native_simulate(to_line(add_funds("f1", T(0), amount))))
    assert letter["reason"] == "bad_field:amount"


@pytest.mark.parametrize(
    "events",
    [
        [add_funds("f1", "9999-12-31T23:59:59Z", "1.0000")],
        [set_pool("p1", "9999-12-31T23:59:59Z", "domestic", "US", 1)],
        [add_funds("f1", "0001-01-01T00:30:00+01:00", "1.0000")],
        [add_funds("f1", "9999-12-31T23:30:00-01:00", "1.0000")],
        [
            add_funds("f1", "9999-12-31T23:59:00Z", "1.0000"),
            assign_licence("l1", "9999-12-31T23:59:00Z"),
            call_start("c1", "9999-12-31T23:59:01Z"),
            call_end("c1", "9999-12-31T23:59:59.999Z"),
        ],
    ],
    ids=["lot expiring in 10000", "refill in 10000", "before year 1", "after 9999", "call in 9999"],
)
def test_instants_at_the_calendar_edges_do_not_raise(events: list[dict[str, Any]]) -> None:
    """Stamps whose lot expiry, month refill or instant itself falls outside years 1-9999
    make the reference raise (Python's `datetime` range), so only the native core is
    checked: it answers without an exception and prints whole JSON lines."""
    data = joined([to_line(e) for e in events])
    with pytest.raises((ValueError, OverflowError)):
        reference_simulate(data)
    for line in native_simulate(data).splitlines():
        json.loads(line)
