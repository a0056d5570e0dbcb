"""The vectorised XLSX writer (`rating_engine.xlsx`): read back with openpyxl
(and polars' calamine reader when installed), compared with an xlsxwriter
workbook of the same data, and the XML structure Excel insists on."""

from __future__ import annotations

import datetime
import re
import zipfile
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

import openpyxl
import polars as pl
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from xlsxwriter.xmlwriter import XMLwriter

from rating_engine.report import xlsx
from rating_engine.report.xlsx import Sheet, column_letter, escape_text, write_xlsx

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
M = "{%s}" % NS["m"]

TEXTS = [
    "&<>\"'",
    "a\x01b",
    "_x0041_",
    "  lead and trail  ",
    "Côte d’Ivoire 日本",
    "line\nbreak\r\ttab",
    "\ufffe\uffff and _xABCD_ and _x12_",
    "🙂 emoji",
]
FORMATS = ["0.0000", "0.000", "0.00", "0", "0.0", "yyyy-mm-dd"]
NUMBERS = {
    "0.0000": ["12.3456", "-3", "0.001", "123456789.0001", None, "0", "-0.5", "1e5"],
    "0.000": ["1.5", None, "0.001", "-12.25", "3", "86400.125", "7", "0"],
    "0.00": ["1.25", "99.99", None, "-0.01", "10", "0.1", "2", "3"],
    "0": ["3", "-7", "0", None, "1048576", "42", "2147483648", "5"],
    "0.0": ["2.5", "-0.1", None, "100.0", "0", "7.7", "8.8", "9"],
    "yyyy-mm-dd": ["46349", "1", "61", None, "2958465", "45658", "46000", "40000"],
}


def usage_sheet(name: str = "calls & <x>") -> Sheet:
    values = {"text": TEXTS} | {f"n{j}": NUMBERS[f] for j, f in enumerate(FORMATS)}
    return Sheet(
        name=name,
        columns=["tenant & <name>", *FORMATS],
        formats=[None, *FORMATS],
        values=pl.DataFrame(values, schema={k: pl.String for k in values}),
        widths=[10.0, 12.0, 12.5, 0.5, 1.0, 60.0, 14.0],
    )


def empty_sheet(name: str = "empty") -> Sheet:
    return Sheet(
        name=name,
        columns=["a", "b"],
        formats=[None, "0.00"],
        values=pl.DataFrame({"a": [], "b": []}, schema={"a": pl.String, "b": pl.String}),
        widths=[8.0, 9.0],
    )


def wide_sheet(ncols: int = 30) -> Sheet:
    cols = [f"h{j}" for j in range(ncols)]
    values = {
        c: [f"t{j}-{i}" if j % 2 else str(i * 100 + j) for i in range(3)]
        for j, c in enumerate(cols)
    }
    return Sheet(
        name="wide",
        columns=cols,
        formats=[None if j % 2 else "0" for j in range(ncols)],
        values=pl.DataFrame(values),
        widths=[8.0 + j for j in range(ncols)],
    )


def excel_unescape(text: str) -> str:
    """Excel's reading of the _xHHHH_ escapes (one left-to-right pass)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def xlsxwriter_escape(text: str) -> str:
    return XMLwriter()._escape_data(XMLwriter._escape_control_characters(text))


def raw_cells(path: Path, index: int) -> dict[str, tuple[str | None, str | None, str]]:
    """{ref: (t attribute, s attribute, raw text)} of a worksheet, text as stored
    (escaped) whether inline or shared."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        shared = []
        if "xl/sharedStrings.xml" in names:
            sst = ET.fromstring(zf.read("xl/sharedStrings.xml"))
            shared = [si.find("m:t", NS).text or "" for si in sst.findall("m:si", NS)]
        root = ET.fromstring(zf.read(f"xl/worksheets/sheet{index + 1}.xml"))
    out = {}
    for c in root.iter(M + "c"):
        t = c.get("t")
        if t == "inlineStr":
            text = c.find("m:is/m:t", NS).text or ""
        elif t == "s":
            text = shared[int(c.find("m:v", NS).text)]
        else:
            text = c.find("m:v", NS).text
        out[c.get("r")] = (t, c.get("s"), text)
    return out


def write_with_xlsxwriter(path: Path, sheets: list[Sheet]) -> None:
    """The same workbook the way report_render writes it with xlsxwriter."""
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    head = wb.add_format({"bold": True, "bg_color": "#DDE4EE", "bottom": 1})
    fmts = {f: wb.add_format({"num_format": f}) for f in FORMATS}
    for sheet in sheets:
        ws = wb.add_worksheet(sheet.name)
        for j, (col, fmt, width) in enumerate(
            zip(sheet.columns, sheet.formats, sheet.widths, strict=True)
        ):
            ws.write_string(0, j, col, head)
            ws.set_column(j, j, width)
            for i, v in enumerate(sheet.values.to_series(j).to_list(), start=1):
                if v is None:
                    continue
                if fmt is None:
                    ws.write_string(i, j, v)
                elif fmt == "yyyy-mm-dd":
                    day = datetime.date(1899, 12, 30) + datetime.timedelta(days=int(v))
                    if int(v) < 61:  # Excel's phantom 1900-02-29
                        day += datetime.timedelta(days=1)
                    ws.write_datetime(i, j, day, fmts[fmt])
                else:
                    ws.write_number(i, j, float(v), fmts[fmt])
        ws.freeze_panes(1, 0)
        if sheet.values.height:
            ws.autofilter(0, 0, sheet.values.height, len(sheet.columns) - 1)
    wb.close()


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = tmp_path / "usage.xlsx"
    write_xlsx(path, [usage_sheet(), empty_sheet(), wide_sheet()])
    return path


# ---------------------------------------------------------------------------
# read back with openpyxl


def test_sheets_headers_and_layout(book: Path) -> None:
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == ["calls & <x>", "empty", "wide"]
    ws = wb["calls & <x>"]
    assert [c.value for c in ws[1]] == ["tenant & <name>", *FORMATS]
    assert all(c.font.b for c in ws[1])
    assert ws["A1"].fill.fgColor.rgb == "FFDDE4EE"
    assert ws["A1"].border.bottom.style == "thin"
    assert ws.max_row == 1 + len(TEXTS)
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:G{1 + len(TEXTS)}"
    # xlsxwriter's width conversion (Calibri 11: 7 px a digit, 5 px padding)
    widths = {k: d.width for k, d in ws.column_dimensions.items()}
    assert widths == {
        "A": 10.7109375,
        "B": 12.7109375,
        "C": 13.28515625,
        "D": 0.85546875,
        "E": 1.7109375,
        "F": 60.7109375,
        "G": 14.7109375,
    }


def test_text_values(book: Path) -> None:
    ws = openpyxl.load_workbook(book)["calls & <x>"]
    got = [ws.cell(row=i, column=1).value for i in range(2, 2 + len(TEXTS))]
    # openpyxl does not decode Excel's _xHHHH_ escapes of inline strings
    assert [excel_unescape(v) for v in got] == TEXTS
    assert got[0] == "&<>\"'"
    assert got[1] == "a_x0001_b"
    assert got[2] == "_x005F_x0041_"
    assert got[3] == "  lead and trail  "
    assert got[4] == "Côte d’Ivoire 日本"
    assert all(ws.cell(row=i, column=1).number_format == "General" for i in range(2, 10))


def test_numbers_dates_and_nulls(book: Path) -> None:
    ws = openpyxl.load_workbook(book)["calls & <x>"]
    for j, fmt in enumerate(FORMATS, start=2):
        for i, text in enumerate(NUMBERS[fmt], start=2):
            cell = ws.cell(row=i, column=j)
            if text is None:
                assert cell.value is None
            elif fmt == "yyyy-mm-dd":
                assert cell.is_date
                assert cell.number_format == "yyyy-mm-dd"
                day = datetime.date(1899, 12, 30) + datetime.timedelta(days=int(text))
                if int(text) < 61:
                    day += datetime.timedelta(days=1)
                assert cell.value.date() == day
            else:
                assert not cell.is_date
                assert cell.number_format == fmt
                assert Decimal(str(cell.value)) == Decimal(text), (cell.coordinate, text)
    assert ws["B2"].value == 12.3456
    assert ws["G2"].value.date() == datetime.date(2026, 11, 23)


def test_numbers_stored_exactly(book: Path) -> None:
    # the <v> text is the caller's decimal text, untouched by any float
    cells = raw_cells(book, 0)
    for j, fmt in enumerate(FORMATS, start=1):
        for i, text in enumerate(NUMBERS[fmt], start=2):
            ref = f"{column_letter(j)}{i}"
            if text is None:
                assert ref not in cells
            else:
                assert cells[ref][2] == text
    assert cells["B5"][2] == "123456789.0001"


def test_more_than_26_columns(book: Path) -> None:
    ws = openpyxl.load_workbook(book)["wide"]
    assert ws.max_column == 30
    assert ws["Z1"].value == "h25"
    assert ws["AA1"].value == "h26"
    assert ws["AD1"].value == "h29"
    assert ws["AA2"].value == 26 and ws["AA2"].number_format == "0"
    assert ws["AB4"].value == "t27-2"
    assert ws.auto_filter.ref == "A1:AD4"
    assert ws.column_dimensions["AA"].width == xlsx_width(8.0 + 26)
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702, 16383)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
        "XFD",
    ]


def xlsx_width(width: float) -> float:
    return float(xlsx._col_width(width))


def test_empty_sheet(book: Path) -> None:
    ws = openpyxl.load_workbook(book)["empty"]
    assert [c.value for c in ws[1]] == ["a", "b"]
    assert ws.max_row == 1
    assert ws.auto_filter.ref is None
    assert ws.freeze_panes == "A2"
    with zipfile.ZipFile(book) as zf:
        sheet = zf.read("xl/worksheets/sheet2.xml").decode()
        workbook = zf.read("xl/workbook.xml").decode()
    assert "<autoFilter" not in sheet
    assert '<dimension ref="A1:B1"/>' in sheet
    assert 'localSheetId="1"' not in workbook


def test_deterministic(tmp_path: Path) -> None:
    sheets = [usage_sheet(), empty_sheet(), wide_sheet()]
    write_xlsx(tmp_path / "a.xlsx", sheets)
    write_xlsx(tmp_path / "b.xlsx", sheets)
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.xlsx") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}


def test_nulls_across_many_rows(tmp_path: Path) -> None:
    n = 1000
    values = {
        "t": [None if i % 7 == 0 else f"row {i}" for i in range(n)],
        "v": [None if i % 5 == 0 else str(i) for i in range(n)],
    }
    sheet = Sheet("s", ["t", "v"], [None, "0"], pl.DataFrame(values), [10, 10])
    write_xlsx(tmp_path / "many.xlsx", [sheet])
    ws = openpyxl.load_workbook(tmp_path / "many.xlsx")["s"]
    assert [c.value for c in ws["A"][1:]] == values["t"]
    assert [c.value for c in ws["B"][1:]] == [None if v is None else int(v) for v in values["v"]]


def test_empty_strings_rows_and_options(tmp_path: Path) -> None:
    # "" is no cell (as xlsxwriter's write_string("")), a row without cells is
    # left out, a Null-typed column is allowed, and the flags turn off.
    values = pl.DataFrame(
        {"a": ["x", "", None, "y"], "b": ["1", None, None, ""], "c": [None] * 4},
        schema={"a": pl.String, "b": pl.String, "c": pl.Null},
    )
    sheet = Sheet("s", ["a", "b", "c"], [None, "0.00", None], values, [9, 9, 9], False, False)
    path = tmp_path / "o.xlsx"
    write_xlsx(path, [sheet])
    ws = openpyxl.load_workbook(path)["s"]
    assert [[c.value for c in row] for row in ws.iter_rows()] == [
        ["a", "b", "c"],
        ["x", 1, None],
        [None, None, None],
        [None, None, None],
        ["y", None, None],
    ]
    assert ws.freeze_panes is None
    assert ws.auto_filter.ref is None
    cells = raw_cells(path, 0)
    assert sorted(cells) == ["A1", "A2", "A5", "B1", "B2", "C1"]
    with zipfile.ZipFile(path) as zf:
        sheet_xml = zf.read("xl/worksheets/sheet1.xml").decode()
    assert '<row r="3">' not in sheet_xml
    assert "<pane" not in sheet_xml


def test_long_strings_cut_to_excels_limit(tmp_path: Path) -> None:
    long = "é" * 40_000
    astral = "a" + "🙂" * 20_000  # 40001 UTF-16 units
    sheet = Sheet(
        "s", ["t"], [None], pl.DataFrame({"t": [long, astral, "short"]}), [10], autofilter=False
    )
    write_xlsx(tmp_path / "o.xlsx", [sheet])
    ws = openpyxl.load_workbook(tmp_path / "o.xlsx")["s"]
    assert ws["A2"].value == "é" * 32_767
    assert ws["A3"].value == "a" + "🙂" * 16_383
    assert ws["A4"].value == "short"


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.xlsx"
    good = usage_sheet()
    bad_number = Sheet("s", ["n"], ["0.00"], pl.DataFrame({"n": ["1.5", "NaN"]}), [9])
    with pytest.raises(ValueError, match="'NaN' that is not a number"):
        write_xlsx(path, [good, bad_number])
    floats = Sheet("s", ["n"], ["0.00"], pl.DataFrame({"n": [1.5]}), [9])
    with pytest.raises(TypeError, match="not pl.String"):
        write_xlsx(path, [floats])
    short = Sheet("s", ["a", "b"], [None], pl.DataFrame({"a": ["x"], "b": ["y"]}), [9, 9])
    with pytest.raises(ValueError, match="2 columns, 1 formats"):
        write_xlsx(path, [short])
    assert not path.exists()


@pytest.mark.parametrize(
    "text", ["NaN", "inf", "-inf", "1,5", "+1", "1.", ".5", " 1", "1 ", "0x10", "1e", "--1", "12a"]
)
def test_number_text_is_checked(tmp_path: Path, text: str) -> None:
    sheet = Sheet("s", ["n"], ["0.00"], pl.DataFrame({"n": ["1.5", text]}), [9])
    with pytest.raises(ValueError, match="not a number"):
        write_xlsx(tmp_path / "o.xlsx", [sheet])
    ok = Sheet("s", ["n"], ["0.00"], pl.DataFrame({"n": ["-0.5", "1e-3", "2E+20", "007"]}), [9])
    write_xlsx(tmp_path / "o.xlsx", [ok])


# ---------------------------------------------------------------------------
# escapes


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from(
                [*"_xX0aFf9G&<>\"' \t\n\r\x00\x01\x1f\x7fé\ufffe\uffff", "🙂"]
            ),
            max_size=24,
        ),
        min_size=1,
        max_size=10,
    )
)
def test_escapes_match_xlsxwriter(texts: list[str]) -> None:
    df = pl.DataFrame({"c0": texts}, schema={"c0": pl.String})
    vectorised = df.select(xlsx._text_expr("c0", True))["c0"].to_list()
    expected = [xlsxwriter_escape(t) for t in texts]
    assert vectorised == expected
    assert [escape_text(t) for t in texts] == expected
    # and an XML parser + Excel's unescaping gives the text back
    assert [excel_unescape(ET.fromstring(f"<t>{e}</t>").text or "") for e in expected] == texts


def test_text_as_stored_matches_xlsxwriter(tmp_path: Path) -> None:
    # the escaped text of every cell, ours (inline) vs xlsxwriter's (shared)
    sheets = [usage_sheet(), usage_sheet("it's <2>")]
    write_xlsx(tmp_path / "ours.xlsx", sheets)
    write_with_xlsxwriter(tmp_path / "theirs.xlsx", sheets)
    for index in range(2):
        ours = raw_cells(tmp_path / "ours.xlsx", index)
        theirs = raw_cells(tmp_path / "theirs.xlsx", index)
        assert ours.keys() == theirs.keys()
        for ref, (t, _, text) in ours.items():
            if t == "inlineStr":
                assert text == theirs[ref][2], ref
                assert theirs[ref][0] == "s"
            else:
                # xlsxwriter stores "%.16G" of the double (99.99 -> 99.98999999999999)
                assert float(text) == float(theirs[ref][2]), ref


# ---------------------------------------------------------------------------
# against xlsxwriter


def test_same_as_xlsxwriter_in_openpyxl(tmp_path: Path) -> None:
    sheets = [usage_sheet(), empty_sheet(), wide_sheet(), usage_sheet("it's <2>")]
    write_xlsx(tmp_path / "ours.xlsx", sheets)
    write_with_xlsxwriter(tmp_path / "theirs.xlsx", sheets)
    ours = openpyxl.load_workbook(tmp_path / "ours.xlsx")
    theirs = openpyxl.load_workbook(tmp_path / "theirs.xlsx")
    assert ours.sheetnames == theirs.sheetnames
    for a, b in zip(ours, theirs, strict=True):
        assert (a.max_row, a.max_column) == (b.max_row, b.max_column)
        assert a.freeze_panes == b.freeze_panes
        assert a.auto_filter.ref == b.auto_filter.ref
        assert {k: d.width for k, d in a.column_dimensions.items()} == {
            k: d.width for k, d in b.column_dimensions.items()
        }
        for row_a, row_b in zip(a.iter_rows(), b.iter_rows(), strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                assert x.number_format == y.number_format, x.coordinate
                assert x.is_date == y.is_date, x.coordinate
                assert (x.font.b, x.fill.fgColor.rgb, x.border.bottom.style) == (
                    y.font.b,
                    y.fill.fgColor.rgb,
                    y.border.bottom.style,
                ), x.coordinate
                if isinstance(x.value, str):
                    # openpyxl reads inline strings raw but drops "x005F_"
                    # from shared ones (the exact stored text is compared in
                    # test_text_as_stored_matches_xlsxwriter)
                    assert x.value.replace("x005F_", "") == y.value, x.coordinate
                else:
                    assert x.value == y.value, x.coordinate
        assert a.defined_names.keys() == b.defined_names.keys()


def test_styles_numfmts_like_xlsxwriter(tmp_path: Path) -> None:
    sheets = [usage_sheet()]
    write_xlsx(tmp_path / "ours.xlsx", sheets)
    write_with_xlsxwriter(tmp_path / "theirs.xlsx", sheets)

    def numfmts(path: Path) -> tuple[list, list]:
        with zipfile.ZipFile(path) as zf:
            root = ET.fromstring(zf.read("xl/styles.xml"))
        custom = [(e.get("numFmtId"), e.get("formatCode")) for e in root.iter(M + "numFmt")]
        xfs = [e.get("numFmtId") for e in root.find("m:cellXfs", NS)]
        return custom, xfs

    assert numfmts(tmp_path / "ours.xlsx") == numfmts(tmp_path / "theirs.xlsx")


# ---------------------------------------------------------------------------
# structure


def test_xml_structure(book: Path) -> None:
    with zipfile.ZipFile(book) as zf:
        names = zf.namelist()
        parts = {n: ET.fromstring(zf.read(n)) for n in names}  # all well-formed
    assert names[0] == "[Content_Types].xml"
    assert sorted(names) == sorted(
        [
            "[Content_Types].xml",
            "_rels/.rels",
            "docProps/app.xml",
            "docProps/core.xml",
            "xl/_rels/workbook.xml.rels",
            "xl/styles.xml",
            "xl/workbook.xml",
            "xl/worksheets/sheet1.xml",
            "xl/worksheets/sheet2.xml",
            "xl/worksheets/sheet3.xml",
        ]
    )
    ct = "{http://schemas.openxmlformats.org/package/2006/content-types}"
    overrides = {e.get("PartName") for e in parts["[Content_Types].xml"].iter(ct + "Override")}
    assert overrides == {"/" + n for n in names if n.endswith(".xml") and n[0] != "["}
    rel = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
    targets = {e.get("Target") for e in parts["xl/_rels/workbook.xml.rels"].iter(rel)}
    assert targets == {f"worksheets/sheet{i}.xml" for i in (1, 2, 3)} | {"styles.xml"}

    # CT_Worksheet's element order
    for i in range(3):
        root = parts[f"xl/worksheets/sheet{i + 1}.xml"]
        tags = [e.tag.removeprefix(M) for e in root]
        expected = ["dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData"]
        expected += ["autoFilter"] if i != 1 else []
        assert tags == [*expected, "pageMargins"]
        view = root.find("m:sheetViews/m:sheetView", NS)
        assert view.get("tabSelected") == ("1" if i == 0 else None)
        pane = view.find("m:pane", NS)
        assert pane.attrib == {
            "ySplit": "1",
            "topLeftCell": "A2",
            "activePane": "bottomLeft",
            "state": "frozen",
        }
        rows = [int(r.get("r")) for r in root.iter(M + "row")]
        assert rows == sorted(rows) and rows[0] == 1
        for r in root.iter(M + "row"):  # cells of this row, in column order
            refs = [re.fullmatch(r"([A-Z]+)([0-9]+)", c.get("r")).groups() for c in r]
            assert {row for _, row in refs} == {r.get("r")}
            cols = [(len(letters), letters) for letters, _ in refs]
            assert cols == sorted(set(cols))

    names = parts["xl/workbook.xml"].findall("m:definedNames/m:definedName", NS)
    assert [(d.get("name"), d.get("localSheetId"), d.get("hidden"), d.text) for d in names] == [
        ("_xlnm._FilterDatabase", "0", "1", "'calls & <x>'!$A$1:$G$9"),
        ("_xlnm._FilterDatabase", "2", "1", "'wide'!$A$1:$AD$4"),
    ]


def test_quote_in_sheet_name(tmp_path: Path) -> None:
    write_xlsx(tmp_path / "o.xlsx", [usage_sheet("it's")])
    wb = openpyxl.load_workbook(tmp_path / "o.xlsx")
    assert wb.sheetnames == ["it's"]
    with zipfile.ZipFile(tmp_path / "o.xlsx") as zf:
        root = ET.fromstring(zf.read("xl/workbook.xml"))
    assert root.find("m:definedNames/m:definedName", NS).text == "'it''s'!$A$1:$G$9"


# ---------------------------------------------------------------------------
# polars' reader


def test_polars_read_excel(book: Path) -> None:
    pytest.importorskip("fastexcel")
    df = pl.read_excel(book, sheet_name="calls & <x>", engine="calamine")
    assert df.columns == ["tenant & <name>", *FORMATS]
    # calamine decodes the _xHHHH_ escapes, but leaves those of the
    # non-characters U+FFFE/U+FFFF (so it reads xlsxwriter's files too)
    expected = [t.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_") for t in TEXTS]
    assert df["tenant & <name>"].to_list() == expected
    for fmt in ["0.0000", "0.00", "0.0"]:
        assert df[fmt].to_list() == [None if v is None else float(v) for v in NUMBERS[fmt]]
    assert df["yyyy-mm-dd"][0] == datetime.date(2026, 11, 23)
    wide = pl.read_excel(book, sheet_name="wide", engine="calamine")
    assert wide.columns[26] == "h26"
    assert wide["h27"].to_list() == ["t27-0", "t27-1", "t27-2"]


def test_polars_read_excel_openpyxl(book: Path) -> None:
    df = pl.read_excel(book, sheet_name="wide", engine="openpyxl")
    assert df.columns == [f"h{j}" for j in range(30)]
    assert df["h26"].to_list() == [26, 126, 226]
    assert df["h29"].to_list() == ["t29-0", "t29-1", "t29-2"]
