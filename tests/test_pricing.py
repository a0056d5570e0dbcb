"""contracts.md section 2: pricing a call (numbers, rate row, increments, exact half-up charge).

Figures come from the literal deck of `rate_support.ROWS`; every expected charge is worked out
in the comment next to it.
"""

from __future__ import annotations

from fractions import Fraction

import orjson
import pytest

from rating_engine.core import format_money, parse_instant, rate_line

from .rate_support import DECK, REFERENCE_DECK, cdr, make_reference_deck, rate, span
from .rate_support import row as deck_row
from .reference.pricing import billed_seconds, is_e164, price_micros, rate_for
from .reference.records import priced_fields

UK = "+442071234567"  # 44: 0.060000 until 2026-12-01, then 0.030000; 60/1
UK_MOBILE = "+447700900123"  # 447: 0.120000 + fee 0.0100; 30/6
NOV = "2026-11-24T10:00:00Z"
DEC = "2026-12-10T10:00:00Z"


def charge_of(number: str, seconds: str, start: str = NOV, kind: str = "user_outbound", **more):
    record, _ = rate(cdr(kind=kind, to=number, **span(start, seconds), **more))
    return record["billed_seconds"], record["charge"]


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "+1234567",  # 7 digits
        "+1234567890123456",  # 16 digits
        "442071234567",  # missing +
        None,  # null
        442071234567,  # a JSON number
        "+44 20 7123 4567",  # spaces
        "+44-20-71234567",
        "++442071234567",
        "+٤٤٢٠٧١٢٣٤٥٦٧",  # non-ASCII digits
        "",
    ],
)
@pytest.mark.parametrize("field", ["from", "to"])
def test_bad_number_is_invalid(field, number):
    record, reason = rate(cdr(**{field: number}))
    assert reason == "bad_number"
    assert (record["status"], record["reason"], record["charge"], record["billed_seconds"]) == (
        "invalid",
        "bad_number",
        "0.0000",
        0,
    )
    assert record["prefix"] is None and record["currency"] == "USD"


@pytest.mark.parametrize("number", ["+44207123", "+442071234567890"])  # 8 and 15 digits
def test_eight_to_fifteen_digits_are_numbers(number):
    assert is_e164(number)
    record, reason = rate(cdr(to=number))
    assert reason is None and record["status"] == "rated" and record["prefix"] == "44"


def test_bad_number_checked_on_tollfree_inbound_too():
    record, reason = rate(cdr(kind="tollfree_inbound", from_="0044207", to="+18005550100"))
    assert reason == "bad_number"


@pytest.mark.parametrize("number", [None, "12", 5, "not a number"])
def test_inbound_numbers_are_not_checked(number):
    record, reason = rate(cdr(kind="inbound", from_=number, to=number))
    assert reason is None and record["status"] == "free"


# --- the rate row ---------------------------------------------------------------------------


def test_outbound_kinds_use_outbound_rows_on_to():
    for kind in ("user_outbound", "conference_dialout"):
        record, _ = rate(cdr(kind=kind, from_="+33142685300", to=UK_MOBILE))
        assert (record["prefix"], record["destination"]) == ("447", "United Kingdom - Mobile")


def test_tollfree_inbound_priced_on_caller_from():
    # caller +44: the tollfree_inbound row of 44 (0.048, 60/60); 61 s -> 120 s -> 0.096
    record, reason = rate(
        cdr(kind="tollfree_inbound", from_=UK, to="+18005550100", **span(NOV, "61"))
    )
    assert reason is None
    assert (record["status"], record["prefix"], record["destination"]) == (
        "rated",
        "44",
        "Toll-free from United Kingdom",
    )
    assert (record["billed_seconds"], record["charge"], record["rate_per_minute"]) == (
        120,
        "0.0960",
        "0.048",
    )


def test_tollfree_inbound_uses_only_tollfree_inbound_rows():
    # 33 has an outbound row but no tollfree_inbound row
    record, reason = rate(cdr(kind="tollfree_inbound", from_="+33142685300", to="+18005550100"))
    assert (record["status"], reason, record["prefix"]) == ("unrated", "no_rate", None)


def test_longest_prefix_wins_over_shorter_prefix():
    record, _ = rate(cdr(to=UK_MOBILE))
    assert record["prefix"] == "447"
    record, _ = rate(cdr(to="+18005550100"))
    assert (record["prefix"], record["charge"]) == ("1800", "0.0000")
    record, _ = rate(cdr(to="+14255550123"))
    assert record["prefix"] == "1"


def test_prefix_with_only_row_out_of_window_falls_back_to_shorter_prefix():
    # 4475's only row ends 2026-11-01: before, 4475 (0.9/min, 1/1); from then on, 447
    before, _ = rate(cdr(to="+447512345678", **span("2026-10-31T23:59:59Z", "187.25")))
    after, _ = rate(cdr(to="+447512345678", **span("2026-11-01T00:00:00Z", "187.25")))
    assert (before["prefix"], before["billed_seconds"], before["charge"]) == (
        "4475",
        188,
        "2.8200",
    )  # 0.9*188/60
    assert (after["prefix"], after["billed_seconds"], after["charge"]) == ("447", 192, "0.3940")


@pytest.mark.parametrize(
    "start,rate_text",
    [
        ("2026-11-30T23:59:59.999999Z", "0.060000"),
        ("2026-12-01T00:00:00Z", "0.030000"),  # effective_from is inclusive
        ("2026-12-01T00:00:00.000001Z", "0.030000"),
        ("2026-12-01T00:30:00+01:00", "0.060000"),  # still 23:30 on Nov 30 UTC
        ("2026-12-01T00:59:59.999+01:00", "0.060000"),
        ("2026-12-01T01:00:00+01:00", "0.030000"),
        ("2026-11-30T19:00:00-05:00", "0.030000"),  # midnight UTC in New York time
        ("2026-11-30T18:59:59-05:00", "0.060000"),
        ("2026-12-01T00:00:00+0000", "0.030000"),
    ],
)
def test_effective_window_boundary_at_midnight_utc(start, rate_text):
    record, _ = rate(cdr(to=UK, start=start, end="2026-12-01T02:00:00Z"))
    assert (record["status"], record["prefix"], record["rate_per_minute"]) == (
        "rated",
        "44",
        rate_text,
    )


def test_window_judged_at_start_not_end():
    # starts before midnight, ends after: the old rate for the whole call (0.06; 180 s -> 0.18)
    record, _ = rate(cdr(to=UK, start="2026-11-30T23:59:00Z", end="2026-12-01T00:02:00Z"))
    assert (record["rate_per_minute"], record["billed_seconds"], record["charge"]) == (
        "0.060000",
        180,
        "0.1800",
    )


def test_no_row_is_unrated_no_rate():
    record, reason = rate(cdr(to="+8613800138000"))
    assert reason == "no_rate"
    assert (
        record["status"],
        record["reason"],
        record["billed_seconds"],
        record["charge"],
        record["currency"],
    ) == ("unrated", "no_rate", 0, "0.0000", "USD")
    assert all(
        record[k] is None
        for k in ("prefix", "destination", "country", "rate_per_minute", "connection_fee")
    )


def test_rate_for_matches_kind_to_service():
    at = parse_instant(NOV)
    assert rate_for(REFERENCE_DECK, "user_outbound", UK, "+18005550100", at).prefix == "1800"
    assert (
        rate_for(REFERENCE_DECK, "tollfree_inbound", UK, "+18005550100", at).service
        == "tollfree_inbound"
    )


# --- inbound ---------------------------------------------------------------------------------


def test_inbound_is_free():
    record, reason = rate(
        cdr(kind="inbound", from_=UK_MOBILE, to="+14255550100", **span(NOV, "600"))
    )
    assert reason is None
    assert (record["status"], record["reason"], record["billed_seconds"], record["charge"]) == (
        "free",
        None,
        0,
        "0.0000",
    )
    assert record["prefix"] is None and record["duration_seconds"] == 600


# --- durations and increments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds,billed,charge",
    [
        ("0", 0, "0.0000"),  # d <= 0: nothing, not even the fee
        ("-5", 0, "0.0000"),
        ("0.001", 30, "0.0700"),  # 0.01 + 0.12*30/60
        ("29.999", 30, "0.0700"),  # first increment - 1 ms
        ("30", 30, "0.0700"),  # exactly the first increment
        ("30.001", 36, "0.0820"),  # first + 1 ms: one next increment; 0.01 + 0.12*36/60
        ("35.999", 36, "0.0820"),  # next increment - 1 ms
        ("36", 36, "0.0820"),
        ("36.001", 42, "0.0940"),  # next increment + 1 ms
        ("0.000001", 30, "0.0700"),  # one microsecond
        ("187.25", 192, "0.3940"),  # 30 + ceil(157.25/6)*6 = 192; 0.01 + 0.384
    ],
)
def test_boundary_durations_first_and_next_increment(seconds, billed, charge):
    assert charge_of(UK_MOBILE, seconds) == (billed, charge)


@pytest.mark.parametrize(
    "seconds,billed",
    [
        ("59.999", 60),
        ("60", 60),
        ("60.001", 61),
        ("60.999", 61),
        ("61", 61),
        ("61.001", 62),
    ],
)
def test_boundary_durations_sixty_then_one(seconds, billed):
    b, charge = charge_of(UK, seconds)  # 0.06/min = 0.001/s
    assert (b, charge) == (billed, format_money(billed * 1000))


def test_billed_seconds_formula():
    assert billed_seconds(0, 30, 6) == 0
    assert billed_seconds(-1, 30, 6) == 0
    assert billed_seconds(1, 30, 6) == 30
    assert billed_seconds(30_000_000, 30, 6) == 30
    assert billed_seconds(30_000_001, 30, 6) == 36
    assert billed_seconds(Fraction(30_000_001, 10), 1, 1) == 4  # 3.0000001 s
    assert billed_seconds(Fraction(1, 10), 6, 6) == 6


def test_end_before_start_is_rated_with_nothing_billed():
    record, reason = rate(
        cdr(to=UK_MOBILE, start="2026-11-24T10:00:05Z", end="2026-11-24T10:00:00.5Z")
    )
    assert reason is None
    assert (
        record["status"],
        record["billed_seconds"],
        record["charge"],
        record["duration_seconds"],
    ) == ("rated", 0, "0.0000", -4.5)
    assert record["prefix"] == "447" and record["connection_fee"] == "0.0100"


# --- the charge: exact, rounded once, half-up ----------------------------------------------------


def test_half_up_at_exactly_half_a_ten_thousandth():
    # 33: 0.003/min -> 1 s is 0.00005 exactly -> 0.0001 (banker's rounding would give 0.0000)
    assert charge_of("+33142685300", "1") == (1, "0.0001")
    # 3 s: 0.00015 -> 0.0002 (half-up, not to even)
    assert charge_of("+33142685300", "3") == (3, "0.0002")


def test_just_below_half_rounds_down():
    # 49: 0.002999/min -> 1 s is 0.0000499833... -> 0.0000
    assert charge_of("+4930901820", "1") == (1, "0.0000")
    # 2 s: 0.0000999666... -> 0.0001
    assert charge_of("+4930901820", "2") == (2, "0.0001")


def test_six_decimal_rate():
    # 39: 0.123456/min: 60 s -> 0.123456 -> 0.1235; 30 s -> 0.061728 -> 0.0617; 1 s -> 0.0020576 -> 0.0021
    assert charge_of("+390612345678", "60") == (60, "0.1235")
    assert charge_of("+390612345678", "30") == (30, "0.0617")
    assert charge_of("+390612345678", "1") == (1, "0.0021")
    record, _ = rate(cdr(to="+390612345678"))
    assert record["rate_per_minute"] == "0.123456"


def test_connection_fee_at_half_rounds_up_once():
    # 34: fee 1.00005, rate 0: 1.00005 -> 1.0001 (a float would hold 1.0000499999...)
    assert charge_of("+34912345678", "1") == (1, "1.0001")
    assert charge_of("+34912345678", "0") == (0, "0.0000")  # no fee on an unanswered call


def test_fee_and_minutes_rounded_together_once():
    row = REFERENCE_DECK.lookup("outbound", "447700900123", parse_instant(NOV))
    # 0.0100 + 0.12 * 31 / 60 = 0.072 exactly
    assert price_micros(row, 31) == 72_000
    deck = make_reference_deck([deck_row("9", "X", "0.0018", fee="0.00004")])
    # fee 0.00004 + 0.0018/60 (= 0.00003) = 0.00007 -> 0.0001; rounding each part first gives 0.0000
    assert price_micros(deck.rows[0], 1) == 100


def test_price_micros_no_charge_without_billed_seconds():
    row = REFERENCE_DECK.lookup("outbound", "447700900123", 0)
    assert price_micros(row, 0) == 0


def test_money_is_a_four_place_string():
    record, _ = rate(cdr(to=UK_MOBILE, **span(NOV, "187.25")))
    assert record["charge"] == "0.3940" and isinstance(record["charge"], str)


# --- the native per-call core builds the record the reference's priced_fields describes ---------------------------


@pytest.mark.parametrize("seconds", ["187.25", "0", "-3", "0.000001"])
def test_rate_line_rated_record_matches_priced_fields(seconds):
    obj = cdr(to=UK_MOBILE, **span(NOV, seconds))
    record, _ = rate_line(DECK, orjson.dumps(obj))
    start, end = parse_instant(obj["start"]), parse_instant(obj["end"])
    row = REFERENCE_DECK.lookup("outbound", obj["to"][1:], start)
    billed = billed_seconds(end - start, row.first_increment_s, row.next_increment_s)
    expected = {
        "call_id": "c1",
        "tenant_id": "contoso",
        "user_id": "ann@contoso.com",
        "kind": "user_outbound",
    }
    expected.update(
        priced_fields(
            "rated", None, row, end - start, billed, price_micros(row, billed), row.currency
        )
    )
    assert record == orjson.dumps(expected)
    assert list(orjson.loads(record)) == list(expected)


def test_rate_line_free_record_matches_priced_fields():
    obj = cdr(kind="inbound", **span(NOV, "62.5"))
    record, _ = rate_line(DECK, orjson.dumps(obj))
    expected = {
        "call_id": "c1",
        "tenant_id": "contoso",
        "user_id": "ann@contoso.com",
        "kind": "inbound",
    }
    expected.update(priced_fields("free", None, None, 62_500_000, 0, 0, "USD"))
    assert record == orjson.dumps(expected)
