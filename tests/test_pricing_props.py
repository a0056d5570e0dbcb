"""Properties of pricing (contracts.md section 2) and of the two `rate` paths (section 3).

- the charge is never negative;
- billed seconds cover the duration, by less than one next increment (past the first);
- pricing the same CDR twice gives the same bytes;
- on any line, odd ones included, the native per-call core answers the same bytes twice and
  never a negative charge (its agreement with the reference model is `test_differential`).

The arithmetic properties are checked on the reference model's functions, which the
differential tests tie to the native core byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from fractions import Fraction

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating_engine.core import US_PER_S, rate_line

from .rate_support import DECK, ROWS
from .reference import clock
from .reference.clock import _day_us, seconds_text
from .reference.deck import Rate
from .reference.money import parse_decimal_micros
from .reference.pricing import KINDS, billed_seconds, price_micros

US = US_PER_S

# --- pricing properties ------------------------------------------------------------------------

decimal_text = st.builds(
    lambda whole, frac, places: (
        f"{whole}.{str(frac).zfill(places)[:places]}" if places else str(whole)
    ),
    st.integers(0, 50),
    st.integers(0, 999_999),
    st.integers(0, 6),
)
increments = st.integers(1, 3600)
durations = st.one_of(
    st.integers(-(10**9), 10 * 3600 * US),  # whole microseconds
    st.builds(
        lambda n, p: Fraction(n, 10**p), st.integers(-(10**12), 10**15), st.integers(7, 12)
    ),  # finer
)


def make_rate(rate_text: str, fee_text: str, first: int, nxt: int) -> Rate:
    return Rate(
        0,
        2,
        "44",
        "GB",
        "UK",
        "A",
        "geographic",
        "outbound",
        rate_text,
        fee_text,
        parse_decimal_micros(rate_text),
        parse_decimal_micros(fee_text),
        "USD",
        first,
        nxt,
        None,
        None,
    )


@given(decimal_text, decimal_text, increments, increments, durations)
def test_charge_never_negative(rate_text, fee_text, first, nxt, duration):
    row = make_rate(rate_text, fee_text, first, nxt)
    billed = billed_seconds(duration, first, nxt)
    charge = price_micros(row, billed)
    assert billed >= 0 and charge >= 0
    assert charge % 100 == 0  # a whole 4-place amount
    if duration <= 0:
        assert billed == 0 and charge == 0


@given(increments, increments, durations)
def test_billed_covers_duration_by_less_than_one_next_increment(first, nxt, duration):
    billed = billed_seconds(duration, first, nxt)
    if duration <= 0:
        assert billed == 0
    elif duration <= first * US:
        assert billed == first
    else:
        assert billed * US >= duration
        assert billed * US < duration + nxt * US
        assert (billed - first) % nxt == 0


@given(decimal_text, decimal_text, increments, increments, st.integers(1, 10**6))
def test_charge_is_fee_plus_minutes_rounded_half_up_once(rate_text, fee_text, first, nxt, billed):
    row = make_rate(rate_text, fee_text, first, nxt)
    exact = Fraction(row.fee_micros) + Fraction(row.rate_micros_per_min * billed, 60)  # micros
    in_4dp = exact / 100
    floor = in_4dp.numerator // in_4dp.denominator
    expected = floor + (1 if in_4dp - floor >= Fraction(1, 2) else 0)
    assert price_micros(row, billed) == expected * 100


# --- CDR lines: a generator of well-formed, odd and broken lines -------------------------------

NUMBERS = [
    "+14255550100",
    "+442071234567",
    "+447700900123",
    "+447512345678",
    "+18005550100",
    "+33142685300",
    "+4930901820",
    "+390612345678",
    "+34912345678",
    "+8613800138000",
    "+44207123",
    "+442071234567890",
    "+0044207123456",
]
prefixes = sorted({r["prefix"] for r in ROWS} | {"86", "7", "0", "99"})


@st.composite
def numbers(draw, odd: bool = True):
    choice = draw(st.integers(0, 9 if odd else 7))
    if choice <= 4:
        return draw(st.sampled_from(NUMBERS))
    if choice <= 7:
        prefix = draw(st.sampled_from(prefixes))
        rest = draw(
            st.text(
                "0123456789",
                min_size=0 if odd else 8 - len(prefix),
                max_size=16 if odd else 15 - len(prefix),
            )
        )
        return "+" + prefix + rest
    return draw(
        st.one_of(
            st.none(),
            st.integers(-10, 10**16),
            st.text(max_size=6),
            st.just("+1 425 555 0100"),
            st.just("+١٢٣٤٥٦٧٨٩"),
        )
    )


@st.composite
def timestamps(draw, odd: bool = True):
    if odd and draw(st.integers(0, 15)) == 0:
        return draw(
            st.one_of(
                st.none(),
                st.integers(-(2**63), 2**63 - 1),  # what orjson can write
                st.text(max_size=25),
                st.just("2026-11-24T10:00:00"),
            )
        )
    # days around the deck's windows (2026-11-01, 2026-12-01), sometimes far away
    day = draw(
        st.one_of(
            st.integers(20_392, 20_460),
            st.integers(20_392, 20_460),
            st.integers(-719_162, 2_932_896),
        )
    )
    us = day * 86_400 * US + draw(
        st.one_of(st.integers(0, 86_400 * US - 1), st.sampled_from([0, 86_400 * US - 1]))
    )
    when = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)
    text = f"{when.year:04d}" + when.strftime("-%m-%d")
    text += draw(st.sampled_from("TTTTt ")) + when.strftime("%H:%M:%S")
    digits = draw(st.sampled_from([0, 0, 3, 3, 6, 1, 2, 5] + ([7, 9, 12, 13] if odd else [])))
    if digits:
        frac = f"{when.microsecond:06d}" + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=7, max_size=7))
        )
        text += draw(st.sampled_from("..,")) + frac[:digits]
    zones = [
        "Z",
        "Z",
        "Z",
        "z",
        "+01:00",
        "-05:00",
        "+0530",
        "+00:00",
        "-00:00",
        "+14:00",
        "+23:59",
    ]
    if odd:
        zones += ["+24:00", "+01:60", "", "+1", "UTC"]
    return text + draw(st.sampled_from(zones))


SAFE = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"\\'), max_size=12
)


@st.composite
def text_values(draw):
    return draw(
        st.one_of(
            st.sampled_from(
                [
                    "contoso",
                    "ann@contoso.com",
                    "c-1",
                    "",
                    "x" * 40,
                    "josé",
                    'a"b',
                    "a\\b",
                    "a\tb",
                    "☎",
                    "a\u2028b",
                    "\x7f",
                ]
            ),
            st.text(max_size=8),
            st.none(),
            st.integers(-5, 5),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.lists(st.integers(-10, 10), max_size=2),
        )
    )


@st.composite
def cdr_objects(draw):
    """Mostly well-formed CDRs (what the fast path takes), some with odd or broken fields."""
    odd = draw(st.integers(0, 3)) == 0
    obj = {
        "call_id": draw(
            text_values()
            if odd
            else st.one_of(SAFE, st.builds(lambda i: f"c{i}", st.integers(0, 10**6)))
        ),
        "tenant_id": draw(text_values() if odd else SAFE),
        "user_id": draw(text_values() if odd else SAFE),
        "kind": draw(
            st.one_of(st.sampled_from(sorted(KINDS)), text_values())
            if odd
            else st.sampled_from(sorted(KINDS))
        ),
        "from": draw(numbers(odd)),
        "to": draw(numbers(odd)),
    }
    start = draw(timestamps(odd))
    if draw(st.booleans()) and isinstance(start, str) and len(start) >= 19:
        # an end a little after (or before) the start: realistic durations
        try:
            when = dt.datetime.strptime(
                start[:19].replace("t", "T").replace(" ", "T"), "%Y-%m-%dT%H:%M:%S"
            )
            when += dt.timedelta(milliseconds=draw(st.integers(-5_000, 4_000_000)))
            end = when.strftime("%Y-%m-%dT%H:%M:%S") + draw(
                st.sampled_from(["Z", ".5Z", ".250Z", ".000001Z", "+01:00", start[19:]])
            )
        except (ValueError, OverflowError):
            end = draw(timestamps(odd))
    else:
        end = draw(timestamps(odd))
    obj["start"], obj["end"] = start, end
    if odd:
        for key in list(obj):
            if draw(st.integers(0, 6)) == 0:
                del obj[key]
        if draw(st.integers(0, 4)) == 0:
            obj["switch_id"] = "sw-1"
    if draw(st.integers(0, 3)) == 0:
        obj.pop("tenant_id", None)
    if draw(st.integers(0, 3)) == 0:
        obj.pop("user_id", None)
    return obj


@st.composite
def cdr_lines(draw):
    obj = draw(cdr_objects())
    style = draw(st.integers(0, 9))
    if style <= 3:
        raw = orjson.dumps(obj)
    elif style <= 7:
        raw = json.dumps(
            obj, ensure_ascii=draw(st.booleans())
        ).encode()  # spaced, like Python writes
    elif style == 8:
        items = list(obj.items())
        random.Random(draw(st.integers())).shuffle(items)
        raw = json.dumps(dict(items)).encode()
    else:
        raw = draw(
            st.sampled_from(
                [
                    b"",
                    b"  ",
                    b"{",
                    b"[]",
                    b"null",
                    b"\xff",
                    b"\xef\xbb\xbf{}",
                    b"{}\r",
                    b'{"call_id": "a", "call_id": "b"}',
                    b"\x00",
                ]
            )
        )
    if draw(st.integers(0, 20)) == 0 and raw:  # damage it
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=3)).replace(b"\n", b"") + raw[cut:]
    return raw.replace(b"\n", b"")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdr_lines())
def test_pricing_a_cdr_twice_gives_the_same_bytes(raw):
    first = rate_line(DECK, raw)
    second = rate_line(DECK, raw)
    assert first == second


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdr_lines())
def test_charge_never_negative_on_any_line(raw):
    record = orjson.loads(rate_line(DECK, raw)[0])
    assert not record["charge"].startswith("-") and record["billed_seconds"] >= 0


def test_day_cache_agrees_with_datetime():
    assert _day_us(2026, 12, 1) == 1_796_083_200_000_000


# --- the per-call core's shortcuts give the exact answers --------------------------------------


def _seconds_reference(us: int) -> str:
    """Seconds as the exact decimal of `us / 1e6` (no trailing zeros), by Fraction arithmetic."""
    s = Fraction(us, US)
    sign, s = ("-", -s) if s < 0 else ("", s)
    whole, rest = divmod(s, 1)
    digits = ""
    while rest:
        rest *= 10
        d, rest = divmod(rest, 1)
        digits += str(d)
    return f"{sign}{whole}" + (f".{digits}" if digits else "")


@given(
    st.one_of(
        st.integers(-(10**16), 10**16), st.integers(-(10**7), 10**7).map(lambda ms: ms * 1000)
    )
)
def test_seconds_text_is_the_exact_decimal(us):
    assert seconds_text(us) == _seconds_reference(us)


@settings(max_examples=500)
@given(timestamps())
def test_cached_timestamp_parse_agrees_with_the_full_parse(text):
    def full(t):
        try:
            return clock._parse_instant_slow(t) if isinstance(t, str) else "not a string"
        except clock.TimestampError:
            return "invalid"

    def cached(t):
        try:
            return clock.parse_instant(t)
        except clock.TimestampError:
            return "not a string" if not isinstance(t, str) else "invalid"

    expected = full(text)
    assert cached(text) == expected
    assert cached(text) == expected  # the second time from the caches
