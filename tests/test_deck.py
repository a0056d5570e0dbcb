"""contracts.md section 1: the rate deck (columns, values, windows, currency, errors)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rating_engine import core
from rating_engine.core import COLUMNS, DeckError

from .rate_support import ROWS, DeckView, deck_csv, row, write_deck
from .rate_support import make_deck as make_native_deck
from .reference.clock import day_start_us


def compile_rows(path, header, rows) -> DeckView:
    return DeckView(core.compile_rows(path, header, rows))


def load_deck(path: str) -> DeckView:
    return DeckView(core.load_deck(path))


def make_deck(rows=ROWS) -> DeckView:
    return DeckView(make_native_deck(rows))


MIDNIGHT_DEC_1 = 1_796_083_200_000_000  # 2026-12-01T00:00:00Z in microseconds
RATES = Path(__file__).resolve().parents[1] / "rates"


def error_of(rows, header=COLUMNS, path="deck.csv") -> str:
    with pytest.raises(DeckError) as info:
        compile_rows(path, list(header), [dict(r) for r in rows])
    return str(info.value)


# --- columns --------------------------------------------------------------------------------


def test_columns_in_any_order(tmp_path):
    columns = list(COLUMNS)
    random.Random(7).shuffle(columns)
    assert columns != list(COLUMNS)
    shuffled = load_deck(str(write_deck(tmp_path, columns=columns)))
    canonical = load_deck(str(write_deck(tmp_path, name="canonical.csv")))

    def strip(rows):
        return [
            (
                r.prefix,
                r.service,
                r.rate_text,
                r.fee_text,
                r.first_increment_s,
                r.next_increment_s,
                r.effective_from_us,
                r.effective_to_us,
                r.destination,
            )
            for r in rows
        ]

    assert strip(shuffled.rows) == strip(canonical.rows)


def test_header_names_are_trimmed(tmp_path):
    text = deck_csv([ROWS[0]]).replace("country,", " country ,", 1)
    path = tmp_path / "spaced.csv"
    path.write_text(text)
    deck = load_deck(str(path))
    assert deck.rows[0].country == "US"


@pytest.mark.parametrize("column", COLUMNS)
def test_missing_column_names_file_line_and_column(tmp_path, column):
    columns = [c for c in COLUMNS if c != column]
    path = write_deck(tmp_path, columns=columns)
    with pytest.raises(DeckError) as info:
        load_deck(str(path))
    assert str(info.value) == f"{path}:1: column {column}: missing column"


def test_extra_columns_are_ignored():
    deck = compile_rows("d.csv", list(COLUMNS) + ["comment"], [dict(ROWS[0], comment="hello")])
    assert deck.rows[0].prefix == "1"


# --- values ---------------------------------------------------------------------------------

BAD_VALUES = [
    ("prefix", "44a"),
    ("prefix", ""),
    ("prefix", "+44"),
    ("prefix", "1234567890123456"),
    ("prefix", "٤٤"),  # Arabic-Indic digits are not E.164 digits
    ("country", "GBR"),
    ("country", "gb"),
    ("country", ""),
    ("zone", "E"),
    ("zone", ""),
    ("number_type", "fixed"),
    ("service", "inbound"),
    ("rate_per_minute", "0.1x"),
    ("rate_per_minute", ""),
    ("rate_per_minute", "0.1234567"),
    ("rate_per_minute", "1e-3"),
    ("connection_fee", "abc"),
    ("connection_fee", "0.0000001"),
    ("currency", "US"),
    ("currency", "usd"),
    ("first_increment", "1.5"),
    ("first_increment", "0"),
    ("first_increment", ""),
    ("next_increment", "six"),
    ("next_increment", "0"),
    ("effective_from", "2026-13-01"),
    ("effective_from", "01/12/2026"),
    ("effective_from", "2026-02-30"),
    ("effective_from", "2026-1-1"),
    ("effective_from", "２０２６-12-01"),
    ("effective_to", "tomorrow"),
]


@pytest.mark.parametrize("column,value", BAD_VALUES)
def test_unparsable_value_names_file_line_and_column(column, value):
    rows = [ROWS[0], dict(ROWS[2], **{column: value})]
    message = error_of(rows, path="rates/x.csv")
    assert message.startswith(f"rates/x.csv:3: column {column}: "), message


@pytest.mark.parametrize(
    "column,value",
    [
        ("rate_per_minute", "-0.01"),
        ("connection_fee", "-0.0100"),
        ("first_increment", "-1"),
        ("next_increment", "-6"),
    ],
)
def test_negative_number_names_file_line_and_column(column, value):
    message = error_of([dict(ROWS[0], **{column: value})])
    assert message == f"deck.csv:2: column {column}: {value!r} is negative"


def test_unparsable_value_in_csv_file_names_its_line(tmp_path):
    rows = [ROWS[0], ROWS[1], dict(ROWS[4], first_increment="thirty")]
    path = write_deck(tmp_path, rows)
    with pytest.raises(DeckError) as info:
        load_deck(str(path))
    assert str(info.value).startswith(f"{path}:4: column first_increment: ")


def test_six_decimal_places_are_kept_exactly():
    deck = make_deck([row("39", "Italy", "0.123456", fee="0.000001")])
    rate = deck.rows[0]
    assert (rate.rate_micros_per_min, rate.fee_micros) == (123_456, 1)
    assert (rate.rate_text, rate.fee_text) == ("0.123456", "0.000001")


def test_values_are_trimmed_and_text_kept_as_written():
    deck = make_deck([row(" 44 ", " United Kingdom ", " 0.060000 ", fee=" 0 ", first=" 60 ")])
    rate = deck.rows[0]
    assert (
        rate.prefix,
        rate.destination,
        rate.rate_text,
        rate.fee_text,
        rate.first_increment_s,
    ) == ("44", "United Kingdom", "0.060000", "0", 60)


def test_trailing_zeros_beyond_six_places_are_still_exact():
    deck = make_deck([row("1", "US", "0.12345600")])
    assert deck.rows[0].rate_micros_per_min == 123_456
    assert deck.rows[0].rate_text == "0.12345600"


def test_empty_service_means_outbound():
    deck = make_deck([row("44", "UK", "0.06", service="")])
    assert deck.rows[0].service == "outbound"
    assert deck.lookup("outbound", "442071234567", MIDNIGHT_DEC_1) is deck.rows[0]


# --- effective windows ----------------------------------------------------------------------


def test_dates_are_utc_days():
    deck = make_deck(
        [row("44", "UK", "0.06", effective_from="2026-12-01", effective_to="2026-12-02")]
    )
    assert deck.rows[0].effective_from_us == MIDNIGHT_DEC_1 == day_start_us("2026-12-01")
    assert deck.rows[0].effective_to_us == MIDNIGHT_DEC_1 + 86_400_000_000


def test_effective_from_inclusive_effective_to_exclusive():
    deck = make_deck(
        [row("44", "UK", "0.06", effective_from="2026-12-01", effective_to="2026-12-02")]
    )
    r = deck.rows[0]
    assert deck.lookup("outbound", "4420", MIDNIGHT_DEC_1 - 1) is None
    assert deck.lookup("outbound", "4420", MIDNIGHT_DEC_1) is r
    assert deck.lookup("outbound", "4420", MIDNIGHT_DEC_1 + 86_400_000_000 - 1) is r
    assert deck.lookup("outbound", "4420", MIDNIGHT_DEC_1 + 86_400_000_000) is None


@pytest.mark.parametrize(
    "first,second",
    [
        (("", ""), ("2026-12-01", "")),  # open window against anything
        (("", "2026-12-02"), ("2026-12-01", "")),  # overlap by one day
        (("2026-11-01", "2026-12-01"), ("2026-11-15", "2026-11-16")),  # one inside the other
        (("2026-12-01", ""), ("2026-12-01", "2027-01-01")),  # same start
        (("2026-12-01", ""), ("", "2026-12-02")),  # later line starts earlier
    ],
)
def test_overlapping_windows_same_prefix_and_service_invalid(first, second):
    rows = [
        row("44", "UK", "0.06", effective_from=first[0], effective_to=first[1]),
        row("1", "US", "0.006"),
        row("44", "UK", "0.05", effective_from=second[0], effective_to=second[1]),
    ]
    message = error_of(rows)
    assert message.startswith(
        "deck.csv:4: column effective_from: window overlaps line 2 for prefix 44"
    ), message


def test_adjacent_windows_do_not_overlap():
    deck = make_deck(
        [
            row("44", "UK", "0.06", effective_to="2026-12-01"),
            row("44", "UK", "0.03", effective_from="2026-12-01"),
        ]
    )
    assert deck.lookup("outbound", "44", MIDNIGHT_DEC_1 - 1).rate_text == "0.06"
    assert deck.lookup("outbound", "44", MIDNIGHT_DEC_1).rate_text == "0.03"


def test_same_prefix_other_service_may_overlap():
    deck = make_deck(
        [row("44", "UK", "0.06"), row("44", "UK toll-free", "0.048", service="tollfree_inbound")]
    )
    assert deck.lookup("tollfree_inbound", "44", 0).rate_text == "0.048"
    assert deck.lookup("outbound", "44", 0).rate_text == "0.06"


def test_empty_window_is_invalid():
    message = error_of(
        [row("44", "UK", "0.06", effective_from="2026-12-01", effective_to="2026-12-01")]
    )
    assert message.startswith("deck.csv:2: column effective_to: ")


# --- currency -------------------------------------------------------------------------------


def test_mixed_currencies_invalid():
    rows = [
        row("1", "US", "0.006"),
        row("44", "UK", "0.06", currency="USD"),
        row("49", "DE", "0.03", currency="EUR"),
    ]
    assert error_of(rows) == "deck.csv:4: column currency: EUR differs from the deck's USD"


def test_one_currency_is_the_decks():
    assert make_deck().currency == "USD"


# --- lookup ---------------------------------------------------------------------------------


def test_longest_prefix_wins():
    deck = make_deck()
    assert deck.lookup("outbound", "447700900123", MIDNIGHT_DEC_1).prefix == "447"
    assert deck.lookup("outbound", "442071234567", MIDNIGHT_DEC_1).prefix == "44"
    assert deck.lookup("outbound", "18005550100", MIDNIGHT_DEC_1).prefix == "1800"
    assert deck.lookup("outbound", "14255550100", MIDNIGHT_DEC_1).prefix == "1"


def test_prefix_only_row_out_of_window_falls_back_to_shorter_prefix():
    deck = make_deck()
    nov_1 = day_start_us("2026-11-01")
    assert deck.lookup("outbound", "447512345678", nov_1 - 1).prefix == "4475"
    assert deck.lookup("outbound", "447512345678", nov_1).prefix == "447"


def test_no_row_is_none():
    assert make_deck().lookup("outbound", "8612345678", 0) is None
    assert make_deck().lookup("tollfree_inbound", "33142685300", 0) is None


# --- loading --------------------------------------------------------------------------------


def test_load_sample_decks():
    for name in ("sample-deck.csv", "test-deck.csv"):
        deck = load_deck(str(RATES / name))
        assert deck.currency == "USD" and deck.rows


def test_missing_file_is_a_deck_error(tmp_path):
    with pytest.raises(DeckError) as info:
        load_deck(str(tmp_path / "nope.csv"))
    assert "no such file" in str(info.value)
