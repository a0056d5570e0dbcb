"""`rating-engine report`: every total of a hand-made charges file, in the
CSVs, in usage.xlsx (read back with openpyxl) and in report.html; bad lines
counted with their line numbers; funding advice figures."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating_engine.report import usage as report
from rating_engine.report.usage import funding_advice, main, percentile_nearest_rank, replay


def rec(**kw) -> dict:
    base = {
        "charge_id": None,
        "call_id": "c",
        "tenant_id": "contoso",
        "user_id": "ann@contoso.com",
        "kind": "user_outbound",
        "status": "rated",
        "reason": None,
        "start": "2026-11-24T10:00:00.000Z",
        "end": "2026-11-24T10:00:00.000Z",
        "duration_seconds": 0,
        "billed_seconds": 0,
        "prefix": "44",
        "destination": "United Kingdom",
        "country": "GB",
        "number_type": "geographic",
        "zone": "A",
        "rate_per_minute": "0.023400",
        "connection_fee": "0",
        "charge": "0.0000",
        "currency": "USD",
        "pool": None,
        "pool_seconds": 0,
        "disconnected": None,
    }
    base.update(kw)
    if base["charge_id"] is None and base.get("tenant_id"):
        base["charge_id"] = f"{base['tenant_id']}:{base['call_id']}"
    return base


def line(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


# contoso: 8 records, fabrikam: 2, no tenant (rate output): 1
R1 = rec(
    call_id="c1",
    start="2026-11-24T10:00:00.000Z",
    end="2026-11-24T10:03:07.250Z",
    duration_seconds=187.25,
    billed_seconds=60,
    charge="0.0234",
    pool="international:US",
    pool_seconds=127.25,
)
R2 = rec(
    call_id="c2",
    start="2026-11-24T11:00:00.000Z",
    duration_seconds=65.5,
    billed_seconds=66,
    prefix="447",
    destination="United Kingdom - Mobile",
    number_type="mobile",
    rate_per_minute="0.104000",
    charge="0.1144",
)
R3 = rec(
    call_id="c3",
    user_id="bob@contoso.com",
    kind="conference_dialout",
    start="2026-11-25T09:00:00.000Z",
    duration_seconds=600,
    prefix="1",
    destination="United States",
    country="US",
    rate_per_minute="0.012000",
    pool="conferencing",
    pool_seconds=600,
)
R4 = rec(
    call_id="c4",
    user_id="bob@contoso.com",
    kind="tollfree_inbound",
    start="2026-11-26T23:59:59.999Z",
    duration_seconds=120.001,
    billed_seconds=121,
    prefix="1800",
    destination="United States - Toll Free",
    country="US",
    number_type="tollfree",
    rate_per_minute="0.030000",
    charge="0.0605",
)
R5 = rec(
    call_id="c5",
    user_id="carol@contoso.com",
    start="2026-11-26T08:00:00.000Z",
    duration_seconds=300,
    billed_seconds=300,
    prefix="336",
    destination="France - Mobile",
    country="FR",
    number_type="mobile",
    zone="B",
    rate_per_minute="0.118000",
    charge="0.5900",
    disconnected="funds_exhausted",
)
R6 = rec(
    call_id="c6",
    user_id="carol@contoso.com",
    reason="not_licensed",
    start="2026-11-27T08:00:00.000Z",
    prefix="49",
    destination="Germany",
    country="DE",
    rate_per_minute="0.025000",
    disconnected="not_licensed",
)
R7 = rec(
    call_id="c7",
    user_id="dave@contoso.com",
    kind="inbound",
    status="free",
    start="2026-11-24T13:00:00.000Z",
    duration_seconds=30,
    prefix=None,
    destination=None,
    country=None,
    number_type=None,
    zone=None,
    rate_per_minute=None,
    connection_fee=None,
)
R8 = rec(
    call_id="c8",
    status="invalid",
    reason="bad_number",
    start="2026-11-24T12:00:00.000Z",
    duration_seconds=None,
    prefix=None,
    destination=None,
    country=None,
    number_type=None,
    zone=None,
    rate_per_minute=None,
    connection_fee=None,
    disconnected="bad_number",
)
R9 = rec(
    call_id="f1",
    tenant_id="fabrikam",
    user_id="erin@fabrikam.com",
    start="2026-11-24T10:00:00.000Z",
    duration_seconds=1200,
    billed_seconds=1200,
    prefix="1",
    destination="United States",
    country="US",
    rate_per_minute="0.012000",
    charge="0.2400",
)
R10 = {
    "topic": "charges",
    **rec(
        call_id="f2",
        tenant_id="fabrikam",
        user_id="erin@fabrikam.com",
        start="2026-11-26T10:00:00.000Z",
        duration_seconds=60,
        billed_seconds=60,
        prefix="1900",
        destination="United States - Premium",
        country="US",
        number_type="premium",
        zone="D",
        rate_per_minute="1.900000",
        charge="1.9000",
    ),
}
R11 = {
    "call_id": "r1",
    "status": "unrated",
    "reason": "no_rate",
    "prefix": None,
    "destination": None,
    "country": None,
    "duration_seconds": 10,
    "billed_seconds": 0,
    "rate_per_minute": None,
    "connection_fee": None,
    "charge": "0.0000",
    "currency": "USD",
}

LINES = [
    line(R1),  # 1
    line(R2),  # 2
    "",  # 3 blank: counts, not bad
    line(R3),  # 4
    "not json at all",  # 5 invalid_json
    line(R4),  # 6
    "[1, 2]",  # 7 not_an_object
    line(R5),  # 8
    line(rec(call_id="x1", charge=0.5)),  # 9 bad_field:charge (a number)
    line(R6),  # 10
    line(rec(call_id="x2", billed_seconds="60")),  # 11 bad_field:billed_seconds
    line(R7),  # 12
    line({"topic": "notifications", "tenant_id": "contoso", "kind": "pool_80"}),  # 13 ignored
    line(R8),  # 14
    line(rec(call_id="x3", status="weird")),  # 15 bad_field:status
    line(R9),  # 16
    line({k: v for k, v in rec(call_id="x4").items() if k != "charge"}),  # 17 missing charge
    line(R10),  # 18
    line(R11),  # 19
    line(rec(call_id="x5", start="not-a-date")),  # 20 bad_field:start
]
BAD = {
    5: "invalid_json",
    7: "not_an_object",
    9: "bad_field:charge",
    11: "bad_field:billed_seconds",
    15: "bad_field:status",
    17: "missing_field:charge",
    20: "bad_field:start",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    src = tmp / "charges.jsonl"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp / "out"
    assert main([str(src), "--out", str(out)]) == 0
    return src, out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def rows_of(out: Path, name: str, **match) -> list[dict[str, str]]:
    return [r for r in read_csv(out / f"{name}.csv") if all(r[k] == v for k, v in match.items())]


def one(out: Path, name: str, **match) -> dict[str, str]:
    rows = rows_of(out, name, **match)
    assert len(rows) == 1, (name, match, rows)
    return rows[0]


# ---------------------------------------------------------------------------
# expected figures (worked out by hand from the records above)

SUMMARY = {
    "contoso": {
        "calls": "8",
        "talk_seconds": "1302.751",
        "pool_seconds": "727.25",
        "credit_seconds": "547",
        "talk_minutes": "21.71",
        "pool_minutes": "12.12",
        "credit_minutes": "9.12",
        "charge": "0.7883",
        "users": "4",
        "first_day": "2026-11-24",
        "last_day": "2026-11-27",
        "rated": "6",
        "free": "1",
        "unrated": "0",
        "invalid": "1",
        "disconnected": "3",
    },
    "fabrikam": {
        "calls": "2",
        "talk_seconds": "1260",
        "pool_seconds": "0",
        "credit_seconds": "1260",
        "talk_minutes": "21.00",
        "pool_minutes": "0.00",
        "credit_minutes": "21.00",
        "charge": "2.1400",
        "users": "1",
        "first_day": "2026-11-24",
        "last_day": "2026-11-26",
        "rated": "2",
        "free": "0",
        "unrated": "0",
        "invalid": "0",
        "disconnected": "0",
    },
    "(none)": {
        "calls": "1",
        "talk_seconds": "10",
        "pool_seconds": "0",
        "credit_seconds": "0",
        "charge": "0.0000",
        "users": "0",
        "first_day": "",
        "last_day": "",
        "rated": "0",
        "unrated": "1",
    },
}


def test_summary_csv(built):
    _, out = built
    rows = read_csv(out / "summary.csv")
    assert [r["tenant_id"] for r in rows] == ["(none)", "contoso", "fabrikam"]
    for tenant, expected in SUMMARY.items():
        row = one(out, "summary", tenant_id=tenant)
        assert row["currency"] == "USD"
        for k, v in expected.items():
            assert row[k] == v, (tenant, k, row[k], v)


def test_by_day_csv(built):
    _, out = built
    got = {
        (r["tenant_id"], r["day"]): (
            r["calls"],
            r["charge"],
            r["credit_seconds"],
            r["pool_seconds"],
        )
        for r in read_csv(out / "by_day.csv")
    }
    assert got == {
        ("contoso", "2026-11-24"): ("4", "0.1378", "126", "127.25"),
        ("contoso", "2026-11-25"): ("1", "0.0000", "0", "600"),
        ("contoso", "2026-11-26"): ("2", "0.6505", "421", "0"),
        ("contoso", "2026-11-27"): ("1", "0.0000", "0", "0"),
        ("fabrikam", "2026-11-24"): ("1", "0.2400", "1200", "0"),
        ("fabrikam", "2026-11-26"): ("1", "1.9000", "60", "0"),
        ("(none)", ""): ("1", "0.0000", "0", "0"),
    }


def test_by_user_csv(built):
    _, out = built
    got = {
        (r["tenant_id"], r["user_id"]): (
            r["calls"],
            r["talk_seconds"],
            r["charge"],
            r["disconnects"],
        )
        for r in read_csv(out / "by_user.csv")
    }
    assert got == {
        ("contoso", "ann@contoso.com"): ("3", "252.75", "0.1378", "1"),
        ("contoso", "bob@contoso.com"): ("2", "720.001", "0.0605", "0"),
        ("contoso", "carol@contoso.com"): ("2", "300", "0.5900", "2"),
        ("contoso", "dave@contoso.com"): ("1", "30", "0.0000", "0"),
        ("fabrikam", "erin@fabrikam.com"): ("2", "1260", "2.1400", "0"),
        ("(none)", "(none)"): ("1", "10", "0.0000", "0"),
    }
    # biggest spender first within a tenant
    users = [r["user_id"] for r in rows_of(out, "by_user", tenant_id="contoso")]
    assert users == ["carol@contoso.com", "ann@contoso.com", "bob@contoso.com", "dave@contoso.com"]


def test_by_destination_and_kind_csv(built):
    _, out = built
    got = {
        (r["country"], r["number_type"]): (r["calls"], r["charge"], r["credit_minutes"])
        for r in rows_of(out, "by_destination", tenant_id="contoso")
    }
    assert got == {
        ("GB", "geographic"): ("1", "0.0234", "1.00"),
        ("GB", "mobile"): ("1", "0.1144", "1.10"),
        ("US", "geographic"): ("1", "0.0000", "0.00"),
        ("US", "tollfree"): ("1", "0.0605", "2.02"),
        ("FR", "mobile"): ("1", "0.5900", "5.00"),
        ("DE", "geographic"): ("1", "0.0000", "0.00"),
        ("(none)", "(none)"): ("2", "0.0000", "0.00"),
    }
    kinds = {
        r["kind"]: (r["calls"], r["charge"]) for r in rows_of(out, "by_kind", tenant_id="contoso")
    }
    assert kinds == {
        "user_outbound": ("5", "0.7278"),
        "conference_dialout": ("1", "0.0000"),
        "tollfree_inbound": ("1", "0.0605"),
        "inbound": ("1", "0.0000"),
    }


def test_pools_vs_credits_csv(built):
    _, out = built
    got = [
        (
            r["paid_by"],
            r["calls"],
            r["seconds"],
            r["minutes"],
            r["share_of_paid_minutes"],
            r["charge"],
        )
        for r in rows_of(out, "by_payer", tenant_id="contoso")
    ]
    assert got == [
        ("conferencing", "1", "600", "10.00", "47.1", "0.0000"),
        ("international:US", "1", "127.25", "2.12", "10.0", "0.0000"),
        ("credits", "4", "547", "9.12", "42.9", "0.7883"),
    ]
    fab = [
        (r["paid_by"], r["seconds"], r["charge"])
        for r in rows_of(out, "by_payer", tenant_id="fabrikam")
    ]
    assert fab == [("credits", "1260", "2.1400")]


def test_disconnects_status_and_top_destinations_csv(built):
    _, out = built
    disc = {
        r["reason"]: (r["calls"], r["charge"])
        for r in rows_of(out, "disconnects", tenant_id="contoso")
    }
    assert disc == {
        "bad_number": ("1", "0.0000"),
        "funds_exhausted": ("1", "0.5900"),
        "not_licensed": ("1", "0.0000"),
    }
    assert rows_of(out, "disconnects", tenant_id="fabrikam") == []
    status = {
        (r["status"], r["reason"]): r["calls"]
        for r in rows_of(out, "by_status", tenant_id="contoso")
    }
    assert status == {
        ("free", ""): "1",
        ("invalid", "bad_number"): "1",
        ("rated", ""): "5",
        ("rated", "not_licensed"): "1",
    }
    top = [
        (r["rank"], r["destination"], r["charge"])
        for r in rows_of(out, "top_destinations", tenant_id="contoso")
    ]
    assert top == [
        ("1", "France - Mobile", "0.5900"),
        ("2", "United Kingdom - Mobile", "0.1144"),
        ("3", "United States - Toll Free", "0.0605"),
        ("4", "United Kingdom", "0.0234"),
        ("5", "United States", "0.0000"),  # 600 s of talk
        ("6", "(none)", "0.0000"),  # 30 s
        ("7", "Germany", "0.0000"),  # 0 s
    ]


def test_funding_csv(built):
    _, out = built
    row = one(out, "funding", tenant_id="contoso")
    # daily spend 11-24..11-27: 0.1378, 0, 0.6505, 0
    assert row["period_start"] == "2026-11-24" and row["period_end"] == "2026-11-27"
    assert row["days"] == "4"
    assert row["total_credit_spend"] == "0.7883"
    assert row["mean_daily"] == "0.1971"  # 0.197075 half-up
    assert row["p95_daily"] == "0.6505"  # nearest rank: the 4th of 4
    assert row["max_daily"] == "0.6505"
    assert row["max_window_spend"] == "0.6505"  # worst 2 consecutive days
    assert row["lead_days"] == "2" and row["cover_days"] == "30"
    assert row["trigger_amount"] == "2.0000"  # ceil(0.6505 x 2)
    assert row["recharge_amount"] == "6.0000"  # ceil(0.1971 x 30)
    assert row["add_funds"] == "8.0000"
    assert row["replay_min_balance"] == "7.2117"  # 8 - 0.7883
    assert row["replay_recharges"] == "0"
    fab = one(out, "funding", tenant_id="fabrikam")
    assert (fab["p95_daily"], fab["trigger_amount"], fab["recharge_amount"], fab["add_funds"]) == (
        "1.9000",
        "4.0000",
        "22.0000",
        "26.0000",
    )
    none = one(out, "funding", tenant_id="(none)")
    assert none["add_funds"] == "0.0000" and "no dated records" in none["advice"]


def test_bad_lines_listed_with_line_numbers(built):
    src, out = built
    got = {int(r["line"]): r["reason"] for r in read_csv(out / "bad_lines.csv")}
    assert got == BAD
    assert all(r["file"] == str(src) for r in read_csv(out / "bad_lines.csv"))
    notes = [r["note"] for r in read_csv(out / "notes.csv")]
    assert any(n.startswith("7 bad line(s)") for n in notes), notes
    assert any("1 record(s) of other topics ignored" in n for n in notes), notes
    assert any(n.startswith("11 charges records read") for n in notes), notes
    for num, reason in BAD.items():
        assert f"bad line: {src}:{num}: {reason}" in notes


def test_xlsx_read_back(built):
    _, out = built
    wb = openpyxl.load_workbook(out / "usage.xlsx")
    assert {
        "summary",
        "funding",
        "by_user",
        "by_destination",
        "by_kind",
        "by_day",
        "by_payer",
        "disconnects",
        "by_status",
        "top_destinations",
        "bad_lines",
        "notes",
    } <= set(wb.sheetnames)

    def sheet_rows(name):
        ws = wb[name]
        rows = list(ws.iter_rows())
        head = [c.value for c in rows[0]]
        return [dict(zip(head, r, strict=True)) for r in rows[1:]]

    summary = {r["tenant_id"].value: r for r in sheet_rows("summary")}
    c = summary["contoso"]
    assert c["calls"].value == 8
    assert Decimal(str(c["charge"].value)) == Decimal("0.7883")
    assert c["charge"].number_format == "0.0000"
    assert Decimal(str(c["talk_seconds"].value)) == Decimal("1302.751")
    assert c["talk_seconds"].number_format == "0.000"
    assert Decimal(str(c["talk_minutes"].value)) == Decimal("21.71")
    assert c["talk_minutes"].number_format == "0.00"
    assert Decimal(str(c["pool_minutes"].value)) == Decimal("12.12")
    assert Decimal(str(c["credit_minutes"].value)) == Decimal("9.12")
    assert str(c["first_day"].value)[:10] == "2026-11-24"
    assert c["first_day"].is_date
    assert Decimal(str(summary["fabrikam"]["charge"].value)) == Decimal("2.14")
    # every money cell of every sheet equals its CSV text
    for name in ("summary", "by_day", "by_user", "by_payer", "funding", "top_destinations"):
        csv_rows = read_csv(out / f"{name}.csv")
        xl_rows = sheet_rows(name)
        assert len(csv_rows) == len(xl_rows), name
        for crow, xrow in zip(csv_rows, xl_rows, strict=True):
            for k, cell in xrow.items():
                if cell.number_format == "0.0000":
                    assert Decimal(crow[k]) == Decimal(str(cell.value)).quantize(
                        Decimal("0.0001")
                    ), (name, k)
                elif cell.number_format == "0" and cell.value is not None:
                    assert crow[k] == str(cell.value), (name, k)
    funding = {r["tenant_id"].value: r for r in sheet_rows("funding")}
    assert Decimal(str(funding["contoso"]["add_funds"].value)) == Decimal("8")
    assert Decimal(str(funding["contoso"]["trigger_amount"].value)) == Decimal("2")
    bad = {r["line"].value: r["reason"].value for r in sheet_rows("bad_lines")}
    assert bad == BAD
    notes = [r["note"].value for r in sheet_rows("notes")]
    assert any(n.startswith("7 bad line(s)") for n in notes)


def test_html_has_the_figures_and_charts(built):
    src, out = built
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # no external resource of any kind
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", text)
    assert "<script" not in text
    svgs = re.findall(r"<figure class='chart'>(<svg .*?</svg>)</figure>", text, re.S)
    assert len(svgs) == 3  # one chart figure per tenant
    import xml.etree.ElementTree as ET

    for svg in svgs:
        assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    # each bar carries its exact figure, as in by_day.csv and by_payer.csv
    assert "<title>2026-11-24: 0.1378 USD</title>" in text
    assert "<title>2026-11-26: 0.6505 USD</title>" in text
    assert "<title>credits: 9.12 minutes</title>" in text
    # the totals, as in the CSVs
    for fig in (
        "0.7883",
        "1302.751",
        "727.25",
        "21.71",
        "12.12",
        "9.12",
        "2.1400",
        "0.1378",
        "0.6505",
        "8.0000",
        "2.0000",
        "6.0000",
        "7.2117",
        "26.0000",
        "22.0000",
        "France - Mobile",
        "funds_exhausted",
        "not_licensed",
        "international:US",
        "42.9",
    ):
        assert fig in text, fig
    for num, reason in BAD.items():
        assert f'<td>{src}</td><td class="n">{num}</td><td>{reason}</td>' in text, (num, reason)
    assert "7 bad line(s)" in text
    assert "(no date)" in text
    assert "Funding advice" in text and "P95 of daily spend" in text


def test_fast_path_line_numbers_and_blank_lines(tmp_path, monkeypatch):
    """No unparseable line: the file is scanned as it is (no rewrite), and
    the line numbers of bad records still count blank lines."""
    monkeypatch.setattr(report, "sanitise", lambda *a: pytest.fail("rewrote the file"))
    lines = [
        line(R1),
        "",
        "   ",
        line(rec(call_id="b1", status="nope")),
        line(R2),
        "",
        line(rec(call_id="b2", charge="1.5")),
        line(rec(call_id="b3", charge="abc.1234")),
    ]
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(lines), encoding="utf-8")  # no final newline
    out = tmp_path / "out"
    assert main([str(src), "--out", str(out)]) == 0
    got = {int(r["line"]): r["reason"] for r in read_csv(out / "bad_lines.csv")}
    assert got == {4: "bad_field:status", 7: "bad_field:charge", 8: "bad_field:charge"}
    assert one(out, "summary", tenant_id="contoso")["charge"] == "0.1378"


def test_several_files_stdin_and_tenant_filter(tmp_path, monkeypatch):
    a = tmp_path / "a.jsonl"
    a.write_text(line(R1) + "\n" + line(R9) + "\n", encoding="utf-8")
    stdin = io.TextIOWrapper(io.BytesIO((line(R2) + "\nbroken\n").encode()), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    out = tmp_path / "out"
    assert main([str(a), "-", "--out", str(out)]) == 0
    assert one(out, "summary", tenant_id="contoso")["charge"] == "0.1378"
    assert one(out, "summary", tenant_id="fabrikam")["charge"] == "0.2400"
    bad = read_csv(out / "bad_lines.csv")
    assert [(r["file"], r["line"], r["reason"]) for r in bad] == [("<stdin>", "2", "invalid_json")]

    out2 = tmp_path / "out2"
    assert main([str(a), "--out", str(out2), "--tenant", "fabrikam"]) == 0
    assert [r["tenant_id"] for r in read_csv(out2 / "summary.csv")] == ["fabrikam"]


def test_other_timezones_and_mixed_currencies(tmp_path):
    lines = [
        line(
            rec(call_id="z1", start="2026-11-24T00:30:00+01:00", charge="0.1000", billed_seconds=60)
        ),
        line(
            rec(call_id="z2", start="2026-11-24T23:30:00-02:00", charge="0.2000", billed_seconds=60)
        ),
        line(rec(call_id="z3", currency="EUR", charge="0.3000", billed_seconds=60)),
    ]
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main([str(src), "--out", str(out)]) == 0
    days = {
        (r["currency"], r["day"]): r["charge"] for r in rows_of(out, "by_day", tenant_id="contoso")
    }
    assert days == {
        ("USD", "2026-11-23"): "0.1000",
        ("USD", "2026-11-25"): "0.2000",
        ("EUR", "2026-11-24"): "0.3000",
    }
    notes = [r["note"] for r in read_csv(out / "notes.csv")]
    assert any("more than one currency" in n for n in notes)


def test_empty_input(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text("", encoding="utf-8")
    out = tmp_path / "out"
    assert main([str(src), "--out", str(out)]) == 0
    assert read_csv(out / "summary.csv") == []
    assert (out / "report.html").exists() and (out / "usage.xlsx").exists()


def test_usage_errors(tmp_path, capsys):
    assert main([]) == 2
    assert main([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main([str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    src = tmp_path / "c.jsonl"
    src.write_text(line(R1) + "\n", encoding="utf-8")
    assert main([str(src)]) == 2  # --out is required
    assert main([str(src), "--out", str(tmp_path / "o"), "--top", "0"]) == 2
    assert main([str(src), "--out", str(tmp_path / "o"), "--percentile", "101"]) == 2
    assert main(["--help"]) == 0


# ---------------------------------------------------------------------------
# funding advice and exactness


def test_percentile_nearest_rank():
    assert percentile_nearest_rank([], 95) == 0
    assert percentile_nearest_rank([5], 95) == 5
    vals = list(range(1, 101))
    assert percentile_nearest_rank(vals, 95) == 95
    assert percentile_nearest_rank(vals, 100) == 100
    assert percentile_nearest_rank([3, 1, 2], 50) == 2


def test_replay_recharge_lands_after_lead_days():
    # trigger 10, recharge 20, lead 2: below the trigger on day 1, lands on day 3
    low, n = replay([5, 5, 5, 5], add_funds=16, trigger=10, recharge=20, lead_days=2)
    assert (low, n) == (1, 1)


@given(
    spend=st.lists(st.integers(min_value=0, max_value=5_000_000), min_size=1, max_size=60),
    lead=st.integers(min_value=1, max_value=5),
    cover=st.integers(min_value=1, max_value=40),
)
@settings(max_examples=200, deadline=None)
def test_funding_advice_never_runs_dry(spend, lead, cover):
    fig = funding_advice(spend, lead_days=lead, cover_days=cover, pct=95)
    if sum(spend) == 0:
        assert fig["add_funds"] == 0
        return
    assert fig["trigger"] % 10_000 == 0 and fig["recharge"] % 10_000 == 0
    assert fig["add_funds"] == fig["trigger"] + fig["recharge"]
    assert fig["trigger"] >= fig["pct_daily"] * lead
    low, _ = replay(spend, fig["add_funds"], fig["trigger"], fig["recharge"], lead)
    assert low > 0 and low == fig["min_balance"]


money = st.integers(min_value=0, max_value=10**9).map(lambda u: f"{u // 10000}.{u % 10000:04d}")


@given(
    records=st.lists(
        st.tuples(
            st.sampled_from(["t1", "t2", "t3"]),
            st.sampled_from(["u1", "u2"]),
            money,
            st.integers(min_value=0, max_value=10**6),
            st.integers(min_value=0, max_value=10**7),  # pool ms
            st.integers(min_value=0, max_value=29),
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_totals_are_exact(tmp_path, records):
    lines = []
    for i, (tenant, user, charge, billed, pool_ms, day) in enumerate(records):
        lines.append(
            line(
                rec(
                    call_id=f"p{i}",
                    tenant_id=tenant,
                    user_id=user,
                    charge=charge,
                    billed_seconds=billed,
                    pool="domestic:US",
                    pool_seconds=pool_ms / 1000,
                    duration_seconds=(pool_ms + billed * 1000) / 1000,
                    start=f"2026-11-{day + 1:02d}T00:00:00.000Z",
                )
            )
        )
    src = tmp_path / f"h{abs(hash(tuple(records)))}.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep = report.build_report([str(src)])
    from rating_engine.report.render import text_frame

    summary = {r["tenant_id"]: r for r in text_frame(rep.tables["summary"]).iter_rows(named=True)}
    for tenant in {r[0] for r in records}:
        mine = [r for r in records if r[0] == tenant]
        assert Decimal(summary[tenant]["charge"]) == sum((Decimal(r[2]) for r in mine), Decimal(0))
        assert summary[tenant]["credit_seconds"] == str(sum(r[3] for r in mine))
        assert Decimal(summary[tenant]["pool_seconds"]) == sum(Decimal(r[4]) for r in mine) / 1000
        assert summary[tenant]["calls"] == str(len(mine))


def test_number_fields_of_another_type_and_crlf(tmp_path):
    lines = [
        line(R1),
        line(rec(call_id="n1", billed_seconds=60.0)),
        line(rec(call_id="n2", duration_seconds="3.5")),
        line(rec(call_id="n3", pool_seconds=True)),
        '{"tenant_id": "contoso", "billed_seconds": 123456789012345678901234567890, "charge": "0.0000"}',
        line(rec(call_id="n4", duration_seconds=1e3, billed_seconds=0, charge="0.0000")),
        "{truncated",
    ]
    src = tmp_path / "c.jsonl"
    src.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    out = tmp_path / "out"
    assert main([str(src), "--out", str(out)]) == 0
    got = {int(r["line"]): r["reason"] for r in read_csv(out / "bad_lines.csv")}
    assert got == {
        2: "bad_field:billed_seconds",
        3: "bad_field:duration_seconds",
        4: "bad_field:pool_seconds",
        5: "bad_field:billed_seconds",  # beyond 64 bits
        7: "invalid_json",
    }
    row = one(out, "summary", tenant_id="contoso")
    assert (row["calls"], row["talk_seconds"], row["charge"]) == ("2", "1187.25", "0.0234")


# ---------------------------------------------------------------------------
# streaming: batches, merges and the chart child


def test_small_batches_give_the_same_tables(tmp_path):
    """Partial aggregates merged over many batches (some holding bad lines or
    records of other topics, some not) add up to the one-batch figures."""
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    work = tmp_path / "w.jsonl"
    report.sanitise(src, work)
    one = report.aggregate([(work, True)])
    many = report.aggregate([(work, True)], batch_rows=2, merge_every=3)
    for name, keys in report.AGG_KEYS.items():
        assert one[name].sort(list(keys)).equals(many[name].sort(list(keys))), name
    for name in ("states", "bad", "bad_counts"):
        assert one[name].sort(one[name].columns).equals(many[name].sort(many[name].columns)), name
    code = {reason: report.MARKED + 1 + i for i, reason in enumerate(report.BAD_REASONS)}
    assert dict(many["states"].iter_rows()) == {
        report.OK: 11,
        report.IGNORED: 1,
        report.MARKED: 3,  # lines 5, 7, 11: rewritten by sanitise
        code["bad_field:charge"]: 1,
        code["bad_field:status"]: 1,
        code["missing_field:charge"]: 1,
        code["bad_field:start"]: 1,
    }
    assert many["bad"].height == len(BAD)


def test_ndjson_read_size_set_only_during_the_scan(tmp_path, monkeypatch):
    name, value = report.NDJSON_READ_SIZE
    monkeypatch.delenv(name, raising=False)
    seen = []
    real = report.build_report

    def spy(*args, **kw):
        seen.append(os.environ.get(name))
        return real(*args, **kw)

    monkeypatch.setattr(report, "build_report", spy)
    src = tmp_path / "c.jsonl"
    src.write_text(line(R1) + "\n", encoding="utf-8")
    assert main([str(src), "--out", str(tmp_path / "o")]) == 0
    assert seen == [value] and name not in os.environ
    monkeypatch.setenv(name, "65536")  # the user's choice wins
    assert main([str(src), "--out", str(tmp_path / "o2")]) == 0
    assert seen[-1] == "65536" and os.environ[name] == "65536"
