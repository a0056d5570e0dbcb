"""A small, fast XLSX writer for the usage report.

Why: xlsxwriter costs ~9 µs per cell in Python (one ``write_*`` call, its
checks and its XML writer per cell), so a ~300k-cell report takes seconds.
Here each sheet's ``<sheetData>`` is built with polars string expressions --
one expression per column produces every cell's XML at once, then the columns
are concatenated into ``<row>`` elements and joined -- so no Python code runs
per cell.  The parts are zipped with the stdlib ``zipfile`` (deflate level 1);
the data rows are built in chunks by a worker thread, so that polars builds
the next chunk (without the GIL) while this thread deflates the last one.

The workbook mirrors what xlsxwriter writes (same parts, same element order in
the worksheet, the same styles for the bold header and the number formats, the
hidden ``_xlnm._FilterDatabase`` name per autofilter, the same column-width
conversion, the same ``_xHHHH_`` escapes), except that text is written as
inline strings (no shared-strings table) and no theme part is written (the
fonts name Calibri directly instead of referring to theme colours/fonts).

Values come in as text: a number column holds the number exactly as it is
stored in ``<v>`` (a date as its Excel serial day number), so no float ever
touches them.  The output is deterministic (fixed zip timestamps and document
properties): the same input gives the same bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import zipfile
from collections.abc import Sequence

import polars as pl

__all__ = ["Sheet", "write_xlsx"]


@dataclasses.dataclass
class Sheet:
    """One worksheet: a bold header row and the data rows below it."""

    name: str
    """Excel sheet name (the caller guarantees <= 31 chars and unique)."""
    columns: list[str]
    """Header texts (row 1)."""
    formats: list[str | None]
    """Per column: an Excel number format ("0.0000", "yyyy-mm-dd", ...) or None for text."""
    values: pl.DataFrame
    """One pl.String column per header, same order.  Text columns hold the
    text; number columns the number as decimal text exactly as stored in
    ``<v>`` (a date as its serial day number).  Null or "" = no cell."""
    widths: list[float]
    """Column widths in Excel character units."""
    freeze_header: bool = True
    """Freeze row 1."""
    autofilter: bool = True
    """Autofilter over the header and data rows (only when there is a data row)."""


# Excel's limits.
MAX_ROWS = 1_048_576
MAX_COLS = 16_384
MAX_STRING = 32_767  # in UTF-16 code units

# Deflate level 1 is several times faster than 6 on the sheet XML and the file
# is only ~20% bigger.
COMPRESSLEVEL = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CORE_DATE = "1980-01-01T00:00:00Z"

_HEADER_XF = 1  # cellXfs index of the bold header style

# The characters that are not allowed in XML 1.0 text plus CR (which an XML
# parser would turn into LF) and the non-characters U+FFFE/U+FFFF: Excel
# stores them as _xHHHH_ (as xlsxwriter does).
_CONTROL = [chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20)]] + ["\ufffe", "\uffff"]
_TEXT_FROM = [*_CONTROL, "&", "<", ">"]
_TEXT_TO = [f"_x{ord(c):04X}_" for c in _CONTROL] + ["&amp;", "&lt;", "&gt;"]
# A literal "_xHHHH_" in the text is protected by escaping its underscore.
_ESCAPE_LITERAL = r"_(x[0-9a-fA-F]{4}_)"
_ESCAPE_LITERAL_TO = "_x005F_${1}"
_RE_ESCAPE_LITERAL = re.compile(_ESCAPE_LITERAL)
_RE_TEXT = re.compile("[" + "".join(re.escape(c) for c in _TEXT_FROM) + "]")
_TEXT_MAP = dict(zip(_TEXT_FROM, _TEXT_TO, strict=True))
# The decimal text a number cell may hold: a strict subset of xsd:double (no
# INF/NaN, no "+", no ".5" or "5.").
_NUMBER = r"^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"


# ---------------------------------------------------------------------------
# public


def write_xlsx(path: str | os.PathLike[str], sheets: Sequence[Sheet]) -> None:
    """Write a workbook with these sheets, in order, to ``path``."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    # Checked (and the values prepared) before the file is touched.
    prepared = [_prepare(sheet) for sheet in sheets]
    numfmts, xf_of = _styles(sheets)
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESSLEVEL) as zf:
            _write_part(zf, "[Content_Types].xml", _content_types(len(sheets)))
            _write_part(zf, "_rels/.rels", _ROOT_RELS.encode())
            _write_part(zf, "xl/_rels/workbook.xml.rels", _workbook_rels(len(sheets)))
            for i, (sheet, df) in enumerate(zip(sheets, prepared, strict=True)):
                xml = _worksheet(sheet, df, i == 0, xf_of)
                _write_part(zf, f"xl/worksheets/sheet{i + 1}.xml", xml)
            _write_part(zf, "xl/workbook.xml", _workbook(sheets))
            _write_part(zf, "xl/styles.xml", _styles_xml(numfmts))
            _write_part(zf, "docProps/core.xml", _CORE.encode())
            _write_part(zf, "docProps/app.xml", _app(sheets))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)  # no half-written workbook
        raise


def column_letter(index: int) -> str:
    """Excel's column letters of a 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def escape_text(text: str) -> str:
    """Text as the content of an XML element, with Excel's ``_xHHHH_`` escapes
    (the same rules as the vectorised :func:`_text_expr`)."""
    text = _RE_ESCAPE_LITERAL.sub(r"_x005F_\1", text)
    return _RE_TEXT.sub(lambda m: _TEXT_MAP[m.group()], text)


# ---------------------------------------------------------------------------
# sheet data


def _prepare(sheet: Sheet) -> pl.DataFrame:
    """Check the sheet; its values as String columns named c0, c1, ... with
    "" as null, text cut to Excel's 32767 UTF-16 units, numbers checked."""
    n = len(sheet.columns)
    if not (len(sheet.formats) == len(sheet.widths) == sheet.values.width == n):
        raise ValueError(
            f"sheet {sheet.name!r}: {n} columns, {len(sheet.formats)} formats, "
            f"{len(sheet.widths)} widths and {sheet.values.width} value columns"
        )
    if n > MAX_COLS:
        raise ValueError(f"sheet {sheet.name!r}: {n} columns, Excel allows {MAX_COLS}")
    if sheet.values.height > MAX_ROWS - 1:
        raise ValueError(
            f"sheet {sheet.name!r}: {sheet.values.height} rows, Excel allows "
            f"{MAX_ROWS - 1} below the header"
        )
    for name, dtype in sheet.values.schema.items():
        if dtype not in (pl.String, pl.Null):
            raise TypeError(f"sheet {sheet.name!r}: column {name!r} is {dtype}, not pl.String")
    df = sheet.values.rename({c: f"c{j}" for j, c in enumerate(sheet.values.columns)})
    if n == 0:
        return df
    df = df.with_columns(pl.all().cast(pl.String)).with_columns(
        pl.when(pl.all() != "").then(pl.all())
    )
    text = [f"c{j}" for j, fmt in enumerate(sheet.formats) if fmt is None]
    numbers = [f"c{j}" for j, fmt in enumerate(sheet.formats) if fmt is not None]
    if numbers:
        bad = df.select(pl.col(numbers).str.contains(_NUMBER).not_().any()).row(0)
        for name, is_bad in zip(numbers, bad, strict=True):
            if is_bad:
                j = int(name[1:])
                first = df.filter(~pl.col(name).str.contains(_NUMBER))[name][0]
                raise ValueError(
                    f"sheet {sheet.name!r}: column {sheet.columns[j]!r} has the number "
                    f"format {sheet.formats[j]!r} but a value {first!r} that is not a number"
                )
    if text:
        # UTF-16 units <= UTF-8 bytes, so only a value of more than 32767
        # bytes can be too long; those (rare) few are cut in Python.
        long = df.select(pl.col(text).str.len_bytes().max() > MAX_STRING).row(0)
        for name, is_long in zip(text, long, strict=True):
            if is_long:
                s = df[name]
                idx = (s.str.len_bytes() > MAX_STRING).fill_null(False).arg_true()
                cut = [_utf16_truncate(v, MAX_STRING) for v in s.gather(idx).to_list()]
                df = df.with_columns(s.scatter(idx, cut))
    return df


def _utf16_truncate(text: str, limit: int) -> str:
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return text[:i]
    return text


def _text_expr(col: str, literal_escapes: bool) -> pl.Expr:
    """The XML element content of the text in ``col``, escaped as xlsxwriter
    does (``literal_escapes``: the column has a "_x" that may need protecting)."""
    text = pl.col(col)
    if literal_escapes:
        text = text.str.replace_all(_ESCAPE_LITERAL, _ESCAPE_LITERAL_TO)
    return text.str.replace_many(_TEXT_FROM, _TEXT_TO)


def _header_row(sheet: Sheet) -> str:
    cells = "".join(
        f'<c r="{column_letter(j)}1" s="{_HEADER_XF}" t="inlineStr"><is>'
        f'<t xml:space="preserve">{escape_text(_utf16_truncate(col, MAX_STRING))}</t></is></c>'
        for j, col in enumerate(sheet.columns)
    )
    return f'<row r="1">{cells}</row>'


def _rows_xml(df: pl.DataFrame, cells: list[pl.Expr]) -> bytes:
    """The ``<row>`` elements of ``df`` (from sheet row 2), from the cell
    expressions of :func:`_cell_exprs`."""
    row = pl.col("_r")
    row_xml = pl.concat_str(
        [pl.lit('<row r="'), row, pl.lit('">'), pl.col("_cells"), pl.lit("</row>")]
    )
    return (
        df.with_columns(_r=pl.int_range(2, 2 + df.height).cast(pl.String))
        # One column per cell expression first: polars evaluates them in parallel.
        .select(row, *cells)
        .select(row, _cells=pl.concat_str(pl.exclude("_r")))
        .filter(pl.col("_cells") != "")  # a row without cells is left out
        .select(row_xml.str.join("").cast(pl.Binary))
        .item()
    )


def _cell_exprs(sheet: Sheet, df: pl.DataFrame, xf_of: dict[str, int]) -> list[pl.Expr]:
    """Per column, the expression of its cells' XML ("" for a null): the row
    number comes from column "_r"."""
    text = [f"c{j}" for j, fmt in enumerate(sheet.formats) if fmt is None]
    has_x = {}
    if text:
        found = df.select(pl.col(text).str.contains("_x", literal=True).any()).row(0)
        has_x = dict(zip(text, found, strict=True))
    cells = []
    for j, fmt in enumerate(sheet.formats):
        if fmt is None:
            parts = [
                pl.lit('" t="inlineStr"><is><t xml:space="preserve">'),
                _text_expr(f"c{j}", bool(has_x[f"c{j}"])),
                pl.lit("</t></is></c>"),
            ]
        else:
            parts = [pl.lit(f'" s="{xf_of[fmt]}"><v>'), pl.col(f"c{j}"), pl.lit("</v></c>")]
        cell = pl.concat_str([pl.lit(f'<c r="{column_letter(j)}'), pl.col("_r"), *parts])
        cells.append(cell.fill_null("").alias(f"x{j}"))
    return cells


# ---------------------------------------------------------------------------
# worksheet


def _col_width(width: float) -> str:
    # xlsxwriter's conversion: character width -> pixels (Calibri 11, max
    # digit width 7 px, 5 px padding) -> the stored character width.
    if width <= 0:
        pixels = 0
    elif width < 1:
        pixels = int(width * 12 + 0.5)
    else:
        pixels = int(width * 7 + 0.5) + 5
    return f"{(pixels * 256 // 7) / 256.0:.16g}"


def _worksheet(sheet: Sheet, df: pl.DataFrame, first: bool, xf_of: dict[str, int]) -> bytes:
    """The worksheet XML (``first``: the selected tab)."""
    ncols = len(sheet.columns)
    dimension = "A1" if ncols == 0 else f"A1:{column_letter(ncols - 1)}{sheet.values.height + 1}"
    selected = ' tabSelected="1"' if first else ""
    if sheet.freeze_header:
        view = (
            f'<sheetView{selected} workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft"/></sheetView>'
        )
    else:
        view = f'<sheetView{selected} workbookViewId="0"/>'
    cols = "".join(
        f'<col min="{j + 1}" max="{j + 1}" width="{_col_width(w)}" customWidth="1"/>'
        for j, w in enumerate(sheet.widths)
    )
    head = (
        _XML_DECL + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
        f' xmlns:r="{_REL}"><dimension ref="{dimension}"/><sheetViews>{view}</sheetViews>'
        '<sheetFormatPr defaultRowHeight="15"/>' + (f"<cols>{cols}</cols>" if cols else "")
    )
    tail = (
        (f'<autoFilter ref="{dimension}"/>' if _has_filter(sheet) else "")
        + '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    )
    if ncols == 0:
        return (head + "<sheetData/>" + tail).encode()
    rows = _rows_xml(df, _cell_exprs(sheet, df, xf_of)) if df.height else b""
    return b"".join(
        [
            (head + "<sheetData>" + _header_row(sheet)).encode(),
            rows,
            ("</sheetData>" + tail).encode(),
        ]
    )


def _has_filter(sheet: Sheet) -> bool:
    return sheet.autofilter and sheet.values.height > 0 and len(sheet.columns) > 0


# ---------------------------------------------------------------------------
# workbook parts


_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_CT = "application/vnd.openxmlformats-officedocument"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

_RELS = '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
_ROOT_RELS = (
    _XML_DECL
    + _RELS
    + f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships'
    '/metadata/core-properties" Target="docProps/core.xml"/>'
    f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/>'
    "</Relationships>"
)

_CORE = (
    _XML_DECL + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
    'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:dcterms="http://purl.org/dc/terms/" xmlns:dcmitype="http://purl.org/dc/dcmitype/"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator></dc:creator>'
    "<cp:lastModifiedBy></cp:lastModifiedBy>"
    f'<dcterms:created xsi:type="dcterms:W3CDTF">{_CORE_DATE}</dcterms:created>'
    f'<dcterms:modified xsi:type="dcterms:W3CDTF">{_CORE_DATE}</dcterms:modified>'
    "</cp:coreProperties>"
)


def _attr(text: str) -> str:
    """Text as an XML attribute value (in double quotes)."""
    return escape_text(text).replace('"', "&quot;")


def _content_types(nsheets: int) -> bytes:
    overrides = [
        ("/docProps/app.xml", f"{_CT}.extended-properties+xml"),
        ("/docProps/core.xml", "application/vnd.openxmlformats-package.core-properties+xml"),
        ("/xl/styles.xml", f"{_CT}.spreadsheetml.styles+xml"),
        ("/xl/workbook.xml", f"{_CT}.spreadsheetml.sheet.main+xml"),
    ] + [
        (f"/xl/worksheets/sheet{i + 1}.xml", f"{_CT}.spreadsheetml.worksheet+xml")
        for i in range(nsheets)
    ]
    return (
        _XML_DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        + "".join(f'<Override PartName="{p}" ContentType="{t}"/>' for p, t in overrides)
        + "</Types>"
    ).encode()


def _workbook_rels(nsheets: int) -> bytes:
    rels = [
        f'<Relationship Id="rId{i + 1}" Type="{_REL}/worksheet"'
        f' Target="worksheets/sheet{i + 1}.xml"/>'
        for i in range(nsheets)
    ]
    rels.append(f'<Relationship Id="rId{nsheets + 1}" Type="{_REL}/styles" Target="styles.xml"/>')
    return (_XML_DECL + _RELS + "".join(rels) + "</Relationships>").encode()


def _workbook(sheets: Sequence[Sheet]) -> bytes:
    entries = "".join(
        f'<sheet name="{_attr(s.name)}" sheetId="{i + 1}" r:id="rId{i + 1}"/>'
        for i, s in enumerate(sheets)
    )
    names = ""
    for i, s in enumerate(sheets):
        if _has_filter(s):
            quoted = "'" + s.name.replace("'", "''") + "'"
            last = f"${column_letter(len(s.columns) - 1)}${s.values.height + 1}"
            names += (
                f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
                f"{escape_text(quoted)}!$A$1:{last}</definedName>"
            )
    return (
        _XML_DECL + '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
        f' xmlns:r="{_REL}"><fileVersion appName="xl" lastEdited="4" lowestEdited="4"'
        ' rupBuild="4505"/><workbookPr/><bookViews><workbookView xWindow="240" yWindow="15"'
        ' windowWidth="16095" windowHeight="9660"/></bookViews>'
        f"<sheets>{entries}</sheets>"
        + (f"<definedNames>{names}</definedNames>" if names else "")
        + '<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>'
    ).encode()


def _app(sheets: Sequence[Sheet]) -> bytes:
    n = len(sheets)
    titles = "".join(f"<vt:lpstr>{escape_text(s.name)}</vt:lpstr>" for s in sheets)
    return (
        _XML_DECL + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
        'extended-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/'
        'docPropsVTypes"><Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity>'
        '<ScaleCrop>false</ScaleCrop><HeadingPairs><vt:vector size="2" baseType="variant">'
        "<vt:variant><vt:lpstr>Worksheets</vt:lpstr></vt:variant>"
        f"<vt:variant><vt:i4>{n}</vt:i4></vt:variant></vt:vector></HeadingPairs>"
        f'<TitlesOfParts><vt:vector size="{n}" baseType="lpstr">{titles}</vt:vector>'
        "</TitlesOfParts><Company></Company><LinksUpToDate>false</LinksUpToDate>"
        "<SharedDoc>false</SharedDoc><HyperlinksChanged>false</HyperlinksChanged>"
        "<AppVersion>12.0000</AppVersion></Properties>"
    ).encode()


# ---------------------------------------------------------------------------
# styles


def _styles(sheets: Sequence[Sheet]) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """The cell formats in order of first use: [(numFmtId, format)] (one xf
    each, from index 2) and {format: xf index}.  As xlsxwriter: "0" is the
    built-in id 1, "General" id 0, any other format a custom id from 164."""
    numfmts: list[tuple[int, str]] = []
    xf_of: dict[str, int] = {}
    custom = 164
    for sheet in sheets:
        for fmt in sheet.formats:
            if fmt is None or fmt in xf_of:
                continue
            if fmt == "0":
                fmt_id = 1
            elif fmt == "General":
                fmt_id = 0
            else:
                fmt_id, custom = custom, custom + 1
            xf_of[fmt] = 2 + len(numfmts)
            numfmts.append((fmt_id, fmt))
    return numfmts, xf_of


def _styles_xml(numfmts: list[tuple[int, str]]) -> bytes:
    custom = [(i, f) for i, f in numfmts if i >= 164]
    numfmt_xml = ""
    if custom:
        numfmt_xml = (
            f'<numFmts count="{len(custom)}">'
            + "".join(f'<numFmt numFmtId="{i}" formatCode="{_attr(f)}"/>' for i, f in custom)
            + "</numFmts>"
        )
    xfs = (
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1"'
        ' applyFill="1" applyBorder="1"/>'
        + "".join(
            f'<xf numFmtId="{i}" fontId="0" fillId="0" borderId="0" xfId="0"'
            ' applyNumberFormat="1"/>'
            for i, _ in numfmts
        )
    )
    return (
        _XML_DECL
        + '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + numfmt_xml
        + '<fonts count="2"><font><sz val="11"/><color rgb="FF000000"/><name val="Calibri"/>'
        '<family val="2"/></font><font><b/><sz val="11"/><color rgb="FF000000"/>'
        '<name val="Calibri"/><family val="2"/></font></fonts>'
        '<fills count="3"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill>'
        '<fill><patternFill patternType="solid"><fgColor rgb="FFDDE4EE"/><bgColor indexed="64"/>'
        "</patternFill></fill></fills>"
        '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
        '<border><left/><right/><top/><bottom style="thin"><color auto="1"/></bottom><diagonal/>'
        "</border></borders>"
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        f'</cellStyleXfs><cellXfs count="{2 + len(numfmts)}">{xfs}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        '<dxfs count="0"/><tableStyles count="0" defaultTableStyle="TableStyleMedium9"'
        ' defaultPivotStyle="PivotStyleLight16"/></styleSheet>'
    ).encode()


# ---------------------------------------------------------------------------
# zip


def _zipinfo(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp so that the same input gives the same bytes.
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    return info


def _write_part(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    zf.writestr(_zipinfo(name), data, compresslevel=COMPRESSLEVEL)
