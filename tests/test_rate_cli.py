"""contracts.md section 3: `rating-engine rate` (output fields and formats, reasons, stderr,
blank lines, exit codes), and the threaded batch call printing the reference model's bytes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import orjson
import pytest

from rating_engine import core
from rating_engine.cli import main
from rating_engine.core import COLUMNS

from .rate_support import (
    DECK,
    REFERENCE_DECK,
    ROWS,
    cdr,
    deck_csv,
    jsonl,
    make_deck,
    make_reference_deck,
    reference_rate_text,
    row,
    span,
    write_deck,
)
from .reference.clock import seconds_text
from .reference.deck import load_deck as reference_load_deck

ROOT = Path(__file__).resolve().parents[1]
NOV = "2026-11-24T10:00:00Z"
SECTION3_FIELDS = (
    "call_id",
    "status",
    "reason",
    "prefix",
    "destination",
    "country",
    "duration_seconds",
    "billed_seconds",
    "rate_per_minute",
    "connection_fee",
    "charge",
    "currency",
)


@pytest.fixture()
def deck_path(tmp_path) -> Path:
    return write_deck(tmp_path)


def run_rate(capsysbinary, deck_path, cdrs: bytes | Path, tmp_path, *extra: str):
    """`rating-engine rate` in-process: (exit code, stdout bytes, stderr text)."""
    if isinstance(cdrs, Path):
        path = cdrs
    else:
        path = tmp_path / "cdrs.jsonl"
        path.write_bytes(cdrs)
    code = main(["rate", "--rates", str(deck_path), *extra, str(path)])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode(), path


def records(out: bytes) -> list[dict]:
    return [orjson.loads(line) for line in out.splitlines()]


# --- output ---------------------------------------------------------------------------------


def test_output_has_section3_fields_in_order(capsysbinary, deck_path, tmp_path):
    code, out, err, _ = run_rate(
        capsysbinary, deck_path, jsonl([cdr(to="+447700900123")]), tmp_path
    )
    assert code == 0 and err == ""
    assert out == (
        b'{"call_id":"c1","tenant_id":"contoso","user_id":"ann@contoso.com","kind":"user_outbound",'
        b'"status":"rated","reason":null,"prefix":"447","destination":"United Kingdom - Mobile",'
        b'"country":"GB","number_type":"mobile","zone":"B","rate_per_minute":"0.120000",'
        b'"connection_fee":"0.0100","duration_seconds":187.25,"billed_seconds":192,"charge":"0.3940",'
        b'"currency":"USD"}\n'
    )
    (rec,) = records(out)
    assert all(field in rec for field in SECTION3_FIELDS)


def test_one_output_line_per_input_line_same_order(capsysbinary, deck_path, tmp_path):
    objs = [
        cdr(call_id=f"c{i}", to=to)
        for i, to in enumerate(["+447700900123", "+8613800138000", "+14255550100"])
    ]
    code, out, _, _ = run_rate(capsysbinary, deck_path, jsonl(objs), tmp_path)
    assert [r["call_id"] for r in records(out)] == ["c0", "c1", "c2"]
    assert [r["status"] for r in records(out)] == ["rated", "unrated", "rated"]


def test_tenant_and_user_carried_when_present(capsysbinary, deck_path, tmp_path):
    objs = [cdr(tenant_id=..., user_id=...), cdr(user_id=None), cdr(tenant_id="t", user_id=...)]
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl(objs), tmp_path)
    lines = out.splitlines()
    assert lines[0].startswith(b'{"call_id":"c1","kind":"user_outbound",')
    assert lines[1].startswith(b'{"call_id":"c1","tenant_id":"contoso","user_id":null,"kind"')
    assert lines[2].startswith(b'{"call_id":"c1","tenant_id":"t","kind"')


# --- field formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds,text",
    [
        ("187.25", b"187.25"),
        ("62", b"62"),
        ("0.001", b"0.001"),
        ("0.000001", b"0.000001"),
        ("3600", b"3600"),
        ("-4.5", b"-4.5"),
        ("0", b"0"),
        ("59.999999", b"59.999999"),
    ],
)
def test_duration_seconds_exact_json_number(capsysbinary, deck_path, tmp_path, seconds, text):
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl([cdr(**span(NOV, seconds))]), tmp_path)
    assert b'"duration_seconds":' + text + b',"billed_seconds":' in out


def test_duration_seconds_exact_beyond_microseconds(capsysbinary, deck_path, tmp_path):
    obj = cdr(start="2026-11-24T10:00:00Z", end="2026-11-24T10:00:01.0000001Z")
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl([obj]), tmp_path)
    assert b'"duration_seconds":1.0000001,"billed_seconds":60,' in out


def test_seconds_rounded_half_up_to_three_places_when_not_terminating():
    assert seconds_text(Fraction(1_000_000, 3)) == "0.333"
    assert seconds_text(Fraction(2_000_000, 3)) == "0.667"
    assert seconds_text(Fraction(-2_000_000, 3)) == "-0.667"
    assert seconds_text(Fraction(1_000_000 * 2001, 6)) == "333.5"  # 333.5 exactly: terminates
    assert seconds_text(Fraction(5_000_000, 7)) == "0.714"


def test_billed_seconds_is_a_json_integer(capsysbinary, deck_path, tmp_path):
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl([cdr()]), tmp_path)
    assert b'"billed_seconds":188,' in out  # 60 + ceil(127.25)
    assert isinstance(records(out)[0]["billed_seconds"], int)


def test_charge_is_a_four_place_string(capsysbinary, deck_path, tmp_path):
    objs = [cdr(), cdr(to="+18005550100"), cdr(to="+8613800138000"), cdr(kind="inbound")]
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl(objs), tmp_path)
    assert [r["charge"] for r in records(out)] == ["0.1880", "0.0000", "0.0000", "0.0000"]


def test_rate_and_fee_as_written_in_the_deck_trimmed(capsysbinary, tmp_path):
    text = deck_csv([row("447", "UK Mobile", "0.120000", fee="0.0100", first="30", nxt="6")])
    text = text.replace(",0.120000,0.0100,", ", 0.120000 ,  0.0100 ,")
    deck = tmp_path / "spaced.csv"
    deck.write_text(text)
    _, out, _, _ = run_rate(capsysbinary, deck, jsonl([cdr(to="+447700900123")]), tmp_path)
    assert b'"rate_per_minute":"0.120000","connection_fee":"0.0100",' in out


def test_deck_fields_null_on_invalid_and_unrated_lines(capsysbinary, deck_path, tmp_path):
    objs = [cdr(to="+1234"), cdr(to="+8613800138000")]
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl(objs), tmp_path)
    for rec in records(out):
        assert rec["status"] in ("invalid", "unrated")
        assert all(
            rec[k] is None
            for k in ("prefix", "destination", "country", "rate_per_minute", "connection_fee")
        )
        assert (rec["billed_seconds"], rec["charge"], rec["currency"]) == (0, "0.0000", "USD")


def test_end_before_start_rated_billed_zero_negative_duration(capsysbinary, deck_path, tmp_path):
    obj = cdr(start="2026-11-24T10:00:00Z", end="2026-11-24T09:59:58.75Z")
    _, out, err, _ = run_rate(capsysbinary, deck_path, jsonl([obj]), tmp_path)
    assert err == ""
    assert b'"status":"rated","reason":null,"prefix":"44"' in out
    assert b'"duration_seconds":-1.25,"billed_seconds":0,"charge":"0.0000","currency":"USD"}' in out


# --- invalid lines and reasons ----------------------------------------------------------------

REASON_LINES = [
    (b'{"call_id": "x", "kind": ', "invalid_json"),
    (b"not json at all", "invalid_json"),
    (b'{"call_id": "x", "call_id": NaN}', "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'"a string"', "not_an_object"),
    (b"42", "not_an_object"),
    (b"null", "not_an_object"),
    *[
        (orjson.dumps(cdr(**{f: ...})), f"missing_field:{f}")
        for f in ("call_id", "kind", "from", "to", "start", "end")
    ],
    (orjson.dumps(cdr(kind="outbound")), "bad_field:kind"),
    (orjson.dumps(cdr(kind=["user_outbound"])), "bad_field:kind"),
    (orjson.dumps(cdr(kind={"a": 1})), "bad_field:kind"),
    (orjson.dumps(cdr(kind=None)), "bad_field:kind"),
    (orjson.dumps(cdr(start="2026-11-24T10:00:00")), "bad_field:start"),  # no zone
    (orjson.dumps(cdr(start="2026-11-24 10:00")), "bad_field:start"),
    (orjson.dumps(cdr(start=1795519200)), "bad_field:start"),
    (orjson.dumps(cdr(start="2026-11-24T10:00:00Z\n")), "bad_field:start"),
    (orjson.dumps(cdr(start="٢٠٢٦-11-24T10:00:00Z")), "bad_field:start"),
    (orjson.dumps(cdr(start="2026-02-30T10:00:00Z")), "bad_field:start"),
    (orjson.dumps(cdr(start="2026-11-24T24:00:00Z")), "bad_field:start"),
    (orjson.dumps(cdr(end="2026-11-24T10:03:07.250")), "bad_field:end"),
    (orjson.dumps(cdr(call_id=None)), "bad_field:call_id"),
    (orjson.dumps(cdr(call_id=17)), "bad_field:call_id"),
    (orjson.dumps(cdr(to="+1234567")), "bad_number"),
    (orjson.dumps(cdr(to="+1234567890123456")), "bad_number"),
    (orjson.dumps(cdr(from_="14255550100")), "bad_number"),
    (orjson.dumps(cdr(to=None)), "bad_number"),
]


@pytest.mark.parametrize("raw,reason", REASON_LINES)
def test_invalid_line_reason_and_stderr(capsysbinary, deck_path, tmp_path, raw, reason):
    good = jsonl([cdr()])
    code, out, err, path = run_rate(capsysbinary, deck_path, good + raw + b"\n" + good, tmp_path)
    assert code == 0
    assert err == f"{path}:2: invalid: {reason}\n"
    lines = out.splitlines()
    assert len(lines) == 3
    rec = orjson.loads(lines[1])
    assert (
        rec["status"],
        rec["reason"],
        rec["billed_seconds"],
        rec["charge"],
        rec["currency"],
    ) == ("invalid", reason, 0, "0.0000", "USD")
    assert rec["prefix"] is None


def test_no_rate_is_unrated_without_stderr(capsysbinary, deck_path, tmp_path):
    code, out, err, _ = run_rate(
        capsysbinary, deck_path, jsonl([cdr(to="+8613800138000")]), tmp_path
    )
    assert (code, err) == (0, "")
    assert records(out)[0]["reason"] == "no_rate"


def test_call_id_null_when_absent(capsysbinary, deck_path, tmp_path):
    _, out, _, _ = run_rate(capsysbinary, deck_path, jsonl([cdr(call_id=...), b"{oops"]), tmp_path)
    assert [r["call_id"] for r in records(out)] == [None, None]


def test_blank_line_gives_no_output_but_counts_for_line_numbers(capsysbinary, deck_path, tmp_path):
    data = b"\n" + jsonl([cdr()]) + b"   \n\r\n" + b"{bad\n" + b"\t\n" + jsonl([cdr(to="+1")])
    code, out, err, path = run_rate(capsysbinary, deck_path, data, tmp_path)
    assert code == 0
    assert len(out.splitlines()) == 3
    assert err == f"{path}:5: invalid: invalid_json\n{path}:7: invalid: bad_number\n"


def test_crlf_line_endings(capsysbinary, deck_path, tmp_path):
    data = jsonl([cdr()]).replace(b"\n", b"\r\n") * 2
    _, out, err, _ = run_rate(capsysbinary, deck_path, data, tmp_path)
    assert err == "" and len(records(out)) == 2


def test_stdin(deck_path, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rating_engine.cli", "rate", "--rates", str(deck_path), "-"],
        input=jsonl([cdr(), b"[]"]),
        capture_output=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    assert proc.stderr.decode() == "<stdin>:2: invalid: not_an_object\n"
    assert len(proc.stdout.splitlines()) == 2


def test_output_file_option(capsysbinary, deck_path, tmp_path):
    target = tmp_path / "charges.jsonl"
    code, out, _, _ = run_rate(
        capsysbinary, deck_path, jsonl([cdr()]), tmp_path, "--output", str(target)
    )
    assert code == 0 and out == b""
    assert records(target.read_bytes())[0]["charge"] == "0.1880"


def test_sample_files_rate_without_error():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rating_engine.cli",
            "rate",
            "--rates",
            "rates/sample-deck.csv",
            "rates/sample-cdrs.jsonl",
        ],
        capture_output=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    sample = (ROOT / "rates/sample-cdrs.jsonl").read_bytes()
    assert len(proc.stdout.splitlines()) == sum(1 for line in sample.splitlines() if line.strip())


# --- exit codes -----------------------------------------------------------------------------


def bad_deck(tmp_path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


INVALID_DECKS = {
    "missing_column": (
        lambda rows: deck_csv(rows, [c for c in COLUMNS if c != "next_increment"]),
        1,
        "next_increment",
    ),
    "unparsable_value": (
        lambda rows: deck_csv(rows[:2] + [dict(rows[2], rate_per_minute="0,06")]),
        4,
        "rate_per_minute",
    ),
    "negative_number": (
        lambda rows: deck_csv(rows[:1] + [dict(rows[1], connection_fee="-0.01")]),
        3,
        "connection_fee",
    ),
    "overlapping_windows": (
        lambda rows: deck_csv(
            rows + [row("44", "UK", "0.05", effective_from="2026-11-15", effective_to="2026-11-20")]
        ),
        14,
        "effective_from",
    ),
    "mixed_currencies": (
        lambda rows: deck_csv(rows[:3] + [dict(rows[3], currency="EUR")]),
        5,
        "currency",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_DECKS))
def test_invalid_deck_exit_2_names_file_line_and_column(capsysbinary, tmp_path, case):
    make, line, column = INVALID_DECKS[case]
    path = bad_deck(tmp_path, text=make(ROWS))
    code, out, err, _ = run_rate(capsysbinary, path, jsonl([cdr()]), tmp_path)
    assert code == 2 and out == b""
    assert err.startswith(f"rating-engine: invalid deck: {path}:{line}: column {column}: "), err
    assert err.count("\n") == 1


def test_invalid_deck_exit_2_through_the_command(tmp_path):
    path = bad_deck(tmp_path, text=deck_csv(ROWS[:1] + [dict(ROWS[1], first_increment="x")]))
    cdrs = tmp_path / "c.jsonl"
    cdrs.write_bytes(jsonl([cdr()]))
    proc = subprocess.run(
        [sys.executable, "-m", "rating_engine.cli", "rate", "--rates", str(path), str(cdrs)],
        capture_output=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().startswith(
        f"rating-engine: invalid deck: {path}:3: column first_increment: "
    )


def test_missing_cdr_file_exit_2(capsysbinary, deck_path, tmp_path):
    code = main(["rate", "--rates", str(deck_path), str(tmp_path / "none.jsonl")])
    assert code == 2
    assert "cannot open" in capsysbinary.readouterr().err.decode()


def test_bad_lines_exit_0(capsysbinary, deck_path, tmp_path):
    code, _, err, _ = run_rate(
        capsysbinary, deck_path, b"{\n[]\n" + jsonl([cdr(kind="x")]), tmp_path
    )
    assert code == 0 and err.count(": invalid: ") == 3


# --- the bulk path prints the same bytes as the per-call path -----------------------------------


def bad_lines_file(n_good: int = 3000, seed: int = 11) -> bytes:
    """Good CDRs in both spacings mixed with every kind of odd and bad line."""
    rnd = random.Random(seed)
    odd: list[bytes] = [
        b"",
        b"   ",
        b"\t",
        b"\r",
        b"{",
        b"[]",
        b'"x"',
        b"42",
        b"null",
        b"{}",
        b'{"call_id": "x"}',
        b'{"call_id": "x", "kind": NaN}',
        b"\xef\xbb\xbf" + orjson.dumps(cdr()),
        orjson.dumps(cdr()) + b"   ",
        b"  " + orjson.dumps(cdr()),
        orjson.dumps(cdr()).replace(b"ann", b"\xff\xfe"),  # invalid UTF-8
        orjson.dumps(cdr()).replace(b"ann", b"a\x00n"),  # NUL byte
        orjson.dumps(cdr()).replace(b"ann", b"a\tn"),  # raw tab in a string
        orjson.dumps(cdr()).replace(b"ann", b"a\rn"),  # raw CR in a string
        orjson.dumps(cdr()) + b"\r",  # CRLF line end
        orjson.dumps(cdr()).replace(b"ann", b'a\\"n'),  # escaped quote
        orjson.dumps(cdr()).replace(b"ann", b"\\u00e9"),  # escape
        orjson.dumps(cdr()).replace(b"ann", b"\\ud800"),  # lone surrogate
        orjson.dumps(cdr(user_id="josé@contoso.com")),
        orjson.dumps(cdr(call_id="☎️-1")),
        orjson.dumps(cdr(user_id="a\u2028b\x7f")),
        b'{"call_id": "d", "call_id": "e", "kind": "inbound", "from": "+1", "to": "+2", '
        b'"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T10:00:01Z"}',  # duplicate key
        json.dumps(dict(reversed(list(cdr().items())))).encode(),  # other key order
        json.dumps(cdr(switch_id="sw1")).encode(),  # extra key
        json.dumps(cdr(tenant_id=7)).encode(),
        json.dumps(cdr(tenant_id=1.5)).encode(),
        json.dumps(cdr(tenant_id=None)).encode(),
        json.dumps(cdr(user_id=[1, 2])).encode(),
        json.dumps(cdr(call_id=17)).encode(),
        json.dumps(cdr(call_id=True)).encode(),
        json.dumps(cdr(call_id="")).encode(),
        json.dumps(cdr(call_id="a" * 300)).encode(),
        json.dumps(cdr(kind="outbound")).encode(),
        json.dumps(cdr(kind=3)).encode(),
        json.dumps(cdr(kind="inbound", to=None, from_=7)).encode(),
        json.dumps(cdr(from_=[1, 2])).encode(),
        json.dumps(cdr(to={"a": 1})).encode(),  # unhashable numbers
        json.dumps(cdr(to="+0044207123456")).encode(),
        json.dumps(cdr(to="+123456789012345")).encode(),
        json.dumps(cdr(to=442071234567)).encode(),
        json.dumps(cdr(to="+44 20 7123 4567")).encode(),
        json.dumps(cdr(start="2026-11-24T10:00:00")).encode(),
        json.dumps(cdr(start="2026-11-24t10:00:00z")).encode(),
        json.dumps(cdr(start="2026-11-24 10:00:00+0100")).encode(),
        json.dumps(cdr(start="2026-11-24T10:00:00,5-05:00")).encode(),
        json.dumps(cdr(end="2026-11-24T10:03:07.1234567Z")).encode(),
        json.dumps(cdr(end="2026-11-24T10:03:07.123456789012Z")).encode(),
        json.dumps(cdr(end="2026-11-24T10:03:07.1234567890123Z")).encode(),
        json.dumps(cdr(start="2026-02-29T10:00:00Z")).encode(),
        json.dumps(cdr(start="2028-02-29T10:00:00Z")).encode(),
        json.dumps(cdr(start="2026-11-24T23:59:60Z")).encode(),
        json.dumps(cdr(start="2026-11-24T10:00:00+24:00")).encode(),
        json.dumps(cdr(start="0000-01-01T00:00:00Z")).encode(),
        json.dumps(cdr(start="0001-01-01T00:00:00+01:00")).encode(),
        json.dumps(cdr(end="9999-12-31T23:59:59.999999Z")).encode(),
        json.dumps(cdr(start="2026-11-24T10:00:00Z", end="2026-11-24T09:00:00Z")).encode(),
        json.dumps(cdr(end="2026-11-24T10:00:00Z")).encode(),
        json.dumps(cdr(start="2026-11-24T10:00:00.000001Z", end="2026-11-24T10:00:00Z")).encode(),
        json.dumps(cdr(kind="tollfree_inbound", from_="+442071234567", to="+18005550100")).encode(),
        json.dumps(cdr(kind="tollfree_inbound", from_="+33142685300", to="+18005550100")).encode(),
        json.dumps(cdr(to="+8613800138000")).encode(),
        json.dumps(cdr(to="+447512345678")).encode(),
        json.dumps(cdr(to="+447512345678", start="2026-10-31T23:59:59Z")).encode(),
        b'{"call_id": "nested", "tenant_id": {"a": 1}, "user_id": "u", "kind": "inbound", "from": "+1", '
        b'"to": "+2", "start": "2026-11-24T10:00:00Z", "end": "2026-11-24T10:00:01Z"}',
        b'{"call_id": "sp" , "kind": "inbound", "from": "+1", "to": "+2", "start": "2026-11-24T10:00:00Z", '
        b'"end": "2026-11-24T10:00:01Z"}',
        b'{"call_id":"c","tenant_id":"t","kind":"user_outbound","from":"+14255550100","to":"+447700900123",'
        b'"start":"2026-11-24T10:00:00Z","end":"2026-11-24T10:00:31Z"}',
        b'{"call_id":"c","kind":"user_outbound","from":"+14255550100","to":"+447700900123",'
        b'"start":"2026-11-24T10:00:00Z","end":"2026-11-24T10:00:31Z","tenant_id":"late"}',
        b'{"call_id": "c", "kind": "user_outbound", "from": "+14255550100", "to": "+447700900123", '
        b'"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T10:00:31Z"}   x',
    ]
    numbers = [
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
    ]
    starts = [
        "2026-10-31T23:59:59Z",
        "2026-11-01T00:00:00Z",
        "2026-11-24T10:00:00Z",
        "2026-11-30T23:59:59.999999Z",
        "2026-12-01T00:00:00Z",
        "2026-12-01T00:30:00+01:00",
        "2026-11-30T19:00:00-05:00",
    ]
    lines: list[bytes] = []
    for i in range(n_good):
        kind = rnd.choice(["user_outbound", "conference_dialout", "tollfree_inbound", "inbound"])
        seconds = rnd.choice(
            [
                "0",
                "0.001",
                "29.999",
                "30",
                "30.001",
                "35.999",
                "36.001",
                "59.999",
                "60",
                "60.001",
                "187.25",
                "-3",
                "3600.5",
                "1",
            ]
        )
        obj = cdr(
            call_id=f"c{i}",
            kind=kind,
            from_=rnd.choice(numbers),
            to=rnd.choice(numbers),
            **span(rnd.choice(starts), seconds),
        )
        if rnd.random() < 0.2:
            obj.pop("tenant_id")
        if rnd.random() < 0.2:
            obj.pop("user_id")
        lines.append(json.dumps(obj).encode() if rnd.random() < 0.5 else orjson.dumps(obj))
        if rnd.random() < 0.05:
            lines.append(rnd.choice(odd))
    lines[:0] = odd[12:13]  # the BOM line first, where polars would drop the BOM
    lines.extend(odd)
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n_good", [3000, 100])
def test_rate_on_threads_prints_the_reference_bytes_on_bad_lines_file(threads, n_good):
    """The batch call splits lines over threads; output and messages keep the file's order."""
    data = bad_lines_file(n_good)
    out, messages, seen = core.rate_text(DECK, data, "f.jsonl", 1, threads)
    expected_out, expected_err = reference_rate_text(REFERENCE_DECK, data, name="f.jsonl")
    assert messages.decode() == expected_err
    assert out == expected_out
    assert seen == data.count(b"\n")
    assert expected_err.count("\n") > 25


def test_rate_command_in_small_pieces_prints_the_reference_bytes(
    tmp_path, deck_path, capfd, monkeypatch
):
    """The command reads the file in pieces of whole lines: line numbers run on across pieces,
    and a last line without its newline is still rated."""
    from rating_engine.offline import rate

    monkeypatch.setattr(rate, "CHUNK_BYTES", 2048)
    cdrs = tmp_path / "big.jsonl"
    data = bad_lines_file(n_good=800, seed=9) + b"no newline at the end"
    cdrs.write_bytes(data)
    capfd.readouterr()
    assert main(["rate", "--rates", str(deck_path), "--jobs", "2", str(cdrs)]) == 0
    captured = capfd.readouterr()
    expected_out, expected_err = reference_rate_text(
        reference_load_deck(str(deck_path)), data, name=str(cdrs)
    )
    assert captured.out.encode() == expected_out
    assert captured.err == expected_err
    last_line = data.count(b"\n") + 1
    assert captured.err.endswith(f":{last_line}: invalid: invalid_json\n")


def test_rate_sample_files_print_the_reference_bytes():
    deck = core.load_deck(str(ROOT / "rates/sample-deck.csv"))
    data = (ROOT / "rates/sample-cdrs.jsonl").read_bytes()
    out, messages, _ = core.rate_text(deck, data, "sample", 1, 2)
    reference = reference_rate_text(
        reference_load_deck(str(ROOT / "rates/sample-deck.csv")), data, "sample"
    )
    assert (out, messages.decode()) == reference


def test_rate_longest_prefix_at_nested_prefixes_and_windows():
    """Nested prefixes up to 15 digits, in and out of their windows, price as the reference does."""
    extra = [
        row("4420", "London", "0.01", country="GB"),
        row("442071", "London Central", "0.02", country="GB"),
        row("44207123", "Eight digits", "0.03", country="GB"),
        row("442071234", "Nine digits", "0.04", country="GB"),
        row("442071230", "Nine digits ending in 0", "0.045", country="GB"),
        row("4420712345678", "Thirteen digits", "0.05", country="GB", effective_from="2026-11-24"),
        row("9", "Nines", "0.5"),
        row("99999999", "Top of the key space", "0.6"),
        row("999999999999999", "Fifteen nines", "0.7"),
        row("0", "Zero", "0.8"),
    ]
    numbers = [
        "+44207123",
        "+442071234",
        "+4420712345",
        "+44207123456789",
        "+442071234567",
        "+4420712345678",
        "+44207122999",
        "+44207124000",
        "+4420700000",
        "+44199999999",
        "+44200000000",
        "+99999999",
        "+999999999999999",
        "+99999998",
        "+00000000",
        "+10000000",
        "+447512345678",
        "+447712345678",
        "+18005550100",
        "+21212345678",
    ]
    starts = [
        "2026-10-31T23:59:59Z",
        "2026-11-23T23:59:59.999999Z",
        "2026-11-24T00:00:00Z",
        "2026-12-01T00:00:00Z",
    ]
    objs = [
        cdr(call_id=f"c{i}", to=n, **span(s, "61.5"))
        for i, (n, s) in enumerate((n, s) for n in numbers for s in starts)
    ]
    objs += [
        cdr(call_id=f"t{i}", kind="tollfree_inbound", from_=n, to="+18005550100")
        for i, n in enumerate(numbers)
    ]
    data = jsonl(objs) + jsonl(json.dumps(o).encode() for o in objs)
    out, messages, _ = core.rate_text(make_deck(ROWS + extra), data, "x", 1, 2)
    expected = reference_rate_text(make_reference_deck(ROWS + extra), data, "x")
    assert (out, messages.decode()) == expected
    assert b'"Thirteen digits"' in out and b'"Fifteen nines"' in out


def test_rate_invalid_deck_exit_2_before_output(tmp_path, capfd):
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,country\n1,US\n")
    cdrs = tmp_path / "big.jsonl"
    cdrs.write_bytes(bad_lines_file(n_good=300, seed=1))
    out = tmp_path / "out.jsonl"
    assert main(["rate", "--rates", str(deck), "--jobs", "2", "-o", str(out), str(cdrs)]) == 2
    assert "invalid deck" in capfd.readouterr().err
    assert not out.exists()


def test_rate_into_a_closed_pipe_stops_quietly(tmp_path, deck_path):
    """`rate ... | head`: the command stops at the broken pipe with exit 0 and no traceback."""
    cdrs = tmp_path / "big.jsonl"
    cdrs.write_bytes(bad_lines_file(n_good=20_000, seed=3))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rating_engine.cli", "rate", "--rates", str(deck_path), str(cdrs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in err
