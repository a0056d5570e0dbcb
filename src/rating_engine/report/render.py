"""Writers of the usage report: CSV, XLSX, self-contained HTML with charts.

The tables come from :mod:`rating_engine.report` with integer columns
(money in 0.0001 units, seconds and minutes in milliseconds) and a kind per
column. Text outputs (CSV, HTML) print them with exact integer arithmetic:
money with 4 decimals, seconds exact (at most 3 decimals, integers without a
point), minutes rounded half-up to 2 decimals. The XLSX holds numbers (Excel
has no decimal type), written as the same exact decimal text, which Excel
reads as the nearest double: money with format ``0.0000``, seconds
``0.000``, minutes ``0.00`` (the value already rounded to 2 decimals), so the
number shown is the exact figure. Charts are inline SVG drawn by
:mod:`rating_engine.charts` (no external resource, no script).
"""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path

import polars as pl

from rating_engine.report import xlsx
from rating_engine.report.charts import tenant_svg
from rating_engine.report.usage import (
    DATE,
    INT,
    MINUTES,
    MONEY,
    MONEY_UNIT,
    NO_DATE_LABEL,
    NUMBER,
    SECONDS,
    TEXT,
    Report,
    Table,
)
from rating_engine.report.xlsx import Sheet

XLSX_MAX_ROWS = 1_048_575  # Excel's rows, less the header
HTML_MAX_ROWS = 200  # rows of one table for one tenant in report.html

SHEET_ORDER = (
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
)


# ---------------------------------------------------------------------------
# exact text formats (polars expressions)


def money_text(e: pl.Expr) -> pl.Expr:
    """0.0001 units -> "12.3456"."""
    a = e.abs()
    return pl.concat_str(
        pl.when(e < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (a // MONEY_UNIT).cast(pl.String),
        pl.lit("."),
        (a % MONEY_UNIT).cast(pl.String).str.zfill(4),
    )


def seconds_text(e: pl.Expr) -> pl.Expr:
    """Milliseconds -> seconds, exact: "187.25", "60", "0.001"."""
    a = e.abs()
    frac = (a % 1000).cast(pl.String).str.zfill(3).str.strip_chars_end("0")
    return pl.concat_str(
        pl.when(e < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (a // 1000).cast(pl.String),
        pl.when(a % 1000 == 0).then(pl.lit("")).otherwise(pl.lit(".") + frac),
    )


def centi_minutes(e: pl.Expr) -> pl.Expr:
    """Milliseconds -> hundredths of a minute, rounded half-up (away from 0)."""
    a = e.abs()
    centi = (a + 300) // 600
    return pl.when(e < 0).then(-centi).otherwise(centi)


def minutes_text(e: pl.Expr) -> pl.Expr:
    c = centi_minutes(e)
    a = c.abs()
    return pl.concat_str(
        pl.when(c < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (a // 100).cast(pl.String),
        pl.lit("."),
        (a % 100).cast(pl.String).str.zfill(2),
    )


EXCEL_EPOCH = date(1899, 12, 30)  # serial day 0 (for dates from 1900-03-01)


def cell_text(name: str, kind: str, *, no_date: str = "", excel: bool = False) -> pl.Expr:
    """A column as display text (CSV and HTML; a null date prints
    ``no_date``) or, with ``excel``, as the text of its XLSX cells: the
    same exact decimals (Excel reads the nearest double), dates as serial
    day numbers, no cell for a number that is not finite."""
    e = pl.col(name)
    if kind == MONEY:
        e = money_text(e)
    elif kind == SECONDS:
        e = seconds_text(e)
    elif kind == MINUTES:
        e = minutes_text(e)
    elif kind == DATE and excel:
        e = (e - pl.lit(EXCEL_EPOCH)).dt.total_days().cast(pl.String)
    elif kind == DATE:
        e = e.cast(pl.String).fill_null(no_date)
    elif kind == NUMBER and excel:
        e = pl.when(e.is_finite()).then(e.round(1).cast(pl.String))
    elif kind == NUMBER:
        e = e.round(1).cast(pl.String)
    else:
        e = e.cast(pl.String)
    return e.alias(name)


def text_frame(table: Table, *, no_date: str = "") -> pl.DataFrame:
    """The table with every column as display text (CSV and HTML)."""
    exprs = [cell_text(name, kind, no_date=no_date) for name, kind in table.kinds.items()]
    return table.df.select(exprs) if exprs else table.df


# ---------------------------------------------------------------------------
# CSV


def write_csv(report: Report, out: Path) -> list[Path]:
    paths = []
    for table in report.tables.values():
        path = out / f"{table.name}.csv"
        text_frame(table).write_csv(path, null_value="")
        paths.append(path)
    path = out / "notes.csv"
    pl.DataFrame({"note": report.notes}, schema={"note": pl.String}).write_csv(path)
    paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# XLSX


XLSX_FORMATS = {
    MONEY: "0.0000",
    SECONDS: "0.000",
    MINUTES: "0.00",
    INT: "0",
    NUMBER: "0.0",
    DATE: "yyyy-mm-dd",
    TEXT: None,
}


def xlsx_sheets(report: Report) -> list[Sheet]:
    """One sheet per table (``SHEET_ORDER`` first) and the notes, with a
    note per sheet cut at Excel's row limit."""
    notes = list(report.notes)
    names = [n for n in SHEET_ORDER if n in report.tables]
    names += [n for n in report.tables if n not in names]
    sheets = []
    for name in names:
        table = report.tables[name]
        df = table.df
        if df.height > XLSX_MAX_ROWS:
            notes.append(
                f"sheet {name}: {df.height} rows, the first {XLSX_MAX_ROWS} kept "
                f"(Excel's limit); {name}.csv has them all."
            )
            df = df.head(XLSX_MAX_ROWS)
        cols = list(table.kinds.items())
        widths: list[float] = []
        for col, kind in cols:
            width = max(len(col), 12 if kind != TEXT else 10) + 2
            if kind == TEXT and df.height:
                longest = df[col].cast(pl.String).str.len_chars().max() or 0
                width = max(width, min(int(longest) + 2, 60))  # type: ignore[arg-type]
            widths.append(width)
        sheets.append(
            Sheet(
                name=name[:31],
                columns=[col for col, _ in cols],
                formats=[XLSX_FORMATS[kind] for _, kind in cols],
                values=df.select([cell_text(col, kind, excel=True) for col, kind in cols]),
                widths=widths,
            )
        )
    notes_df = pl.DataFrame({"note": notes}, schema={"note": pl.String})
    sheets.append(Sheet("notes", ["note"], [None], notes_df, [120], False, False))
    return sheets


def write_xlsx(report: Report, path: Path) -> Path:
    xlsx.write_xlsx(path, xlsx_sheets(report))
    return path


# ---------------------------------------------------------------------------
# charts


def chart_data(report: Report, tenant: str, currency: str) -> dict:
    """What the tenant's charts show (see :func:`charts.tenant_svg`)."""
    key = (pl.col("tenant_id") == tenant) & (pl.col("currency") == currency)
    days = report.tables["by_day"].df.filter(key & pl.col("day").is_not_null())
    payer = report.tables["by_payer"].df.filter(key)
    top = report.tables["top_destinations"].df.filter(key).sort("rank")
    return {
        "tenant": tenant,
        "currency": currency,
        "days": days["day"].to_list(),
        "spend": days["charge"].to_list(),
        "payers": payer["paid_by"].to_list(),
        "payer_ms": payer["seconds"].to_list(),
        "destinations": top["destination"].to_list(),
        "destination_spend": top["charge"].to_list(),
    }


def tenant_chart(report: Report, tenant: str, currency: str) -> str:
    return tenant_svg(chart_data(report, tenant, currency))


# ---------------------------------------------------------------------------
# HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#1d2430;background:#fff}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:2px solid #3b6ea5;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;font-size:.82em;margin:.3em 0 1em}
th,td{border:1px solid #c9d1dc;padding:.2em .5em;white-space:nowrap}th{background:#dde4ee;text-align:left}
div.scroll{overflow-x:auto;max-width:100%}
td.n{text-align:right;font-variant-numeric:tabular-nums}
p.note,li{font-size:.9em}.muted{color:#5b6676}
figure.chart{margin:.5em 0 1em;max-width:1120px;border:1px solid #c9d1dc}
nav a{margin-right:.8em}
"""

NUMERIC_KINDS = {INT, MONEY, SECONDS, MINUTES, NUMBER}


def html_escape(e: pl.Expr) -> pl.Expr:
    """``html.escape`` (quote=True) of a text column, in one pass."""
    return e.str.replace_many(
        ["&", "<", ">", '"', "'"], ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"]
    )


def html_rows(table: Table, text: pl.DataFrame, *, drop=()) -> pl.Expr:
    """One ``<tr>`` per row of ``text`` (display text of :func:`text_frame`),
    built by polars: a report has tens of thousands of table rows."""
    cells: list = [pl.lit("<tr>")]
    for col in (c for c in table.kinds if c not in drop):
        cells += [
            pl.lit('<td class="n">' if table.kinds[col] in NUMERIC_KINDS else "<td>"),
            html_escape(pl.col(col)).fill_null(""),
            pl.lit("</td>"),
        ]
    cells.append(pl.lit("</tr>"))
    return pl.concat_str(cells).alias("_tr")


def html_table(
    table: Table,
    df: pl.DataFrame | None = None,
    *,
    drop=(),
    max_rows: int | None = None,
    rows: pl.Series | None = None,
) -> str:
    """An HTML table of ``table`` (or of ``df``, rows of it) as display text;
    ``rows``: its ``<tr>`` already built by :func:`html_rows`."""
    if rows is None:
        frame = table.df if df is None else df
        text = text_frame(Table(table.name, table.title, frame, table.kinds), no_date=NO_DATE_LABEL)
        rows = text.select(html_rows(table, text, drop=drop)).to_series()
    total = rows.len()
    if max_rows is not None and total > max_rows:
        rows = rows.head(max_rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.kinds if c not in drop)
    out = [
        f'<div class="scroll"><table data-table="{html.escape(table.name)}">'
        f"<thead><tr>{head}</tr></thead><tbody>",
        *rows.to_list(),
        "</tbody></table></div>",
    ]
    if max_rows is not None and total > max_rows:
        out.append(
            f'<p class="note muted">first {max_rows} of {total} rows; '
            f"{html.escape(table.name)}.csv and usage.xlsx have them all.</p>"
        )
    return "".join(out)


def tenants_by_spend(report: Report) -> list[tuple[str, str]]:
    """(tenant, currency) keys, the biggest credit spend first."""
    summary = report.tables["summary"].df
    order = summary.sort(["charge", "tenant_id", "currency"], descending=[True, False, False])
    return [tuple(k) for k in order.select("tenant_id", "currency").rows()]


def write_html(report: Report, path: Path, *, chart_tenants: int = 10) -> Path:
    path.write_text(html_page(report, chart_tenants=chart_tenants), encoding="utf-8")
    return path


def html_page(report: Report, *, chart_tenants: int = 10) -> str:
    """The whole page: notes, funding advice, all tenants, then each tenant
    (biggest spend first) with its charts (the first ``chart_tenants``) and
    its tables (at most ``HTML_MAX_ROWS`` rows each)."""
    t = report.tables
    keys = tenants_by_spend(report)
    summary = t["summary"].df.sort(
        ["charge", "tenant_id", "currency"], descending=[True, False, False]
    )
    parts: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        "<title>PSTN usage report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>PSTN usage report</h1>",
        f"<p class='muted'>From {html.escape(', '.join(report.files))}: "
        f"{report.records} charges records, {report.bad_count} bad line(s), "
        f"{report.ignored_count} record(s) of other topics ignored. Money in the currency of each "
        "row, exact to 0.0001; minutes rounded to 0.01.</p>",
    ]
    nav = [
        "<nav><a href='#notes'>Notes</a><a href='#funding'>Funding advice</a>",
        "<a href='#summary'>All tenants</a>",
    ]
    for i, (tenant, cur) in enumerate(keys):
        if i < 50:
            nav.append(f"<a href='#t{i}'>{html.escape(tenant)} ({html.escape(cur)})</a>")
    nav.append("</nav>")
    parts += nav

    parts.append("<h2 id='notes'>Notes</h2><ul>")
    parts += [f"<li>{html.escape(n)}</li>" for n in report.notes]
    parts.append("</ul>")
    if t["bad_lines"].df.height:
        parts.append("<h3>Bad lines</h3>")
        parts.append(html_table(t["bad_lines"]))

    parts.append("<h2 id='funding'>Funding advice</h2>")
    parts.append(f"<p class='note'>{html.escape(t['funding'].description)}</p>")
    parts.append(html_table(t["funding"]))

    parts.append("<h2 id='summary'>All tenants</h2>")
    parts.append(html_table(t["summary"], summary))

    per_tenant = (
        "by_payer",
        "by_kind",
        "by_destination",
        "top_destinations",
        "disconnects",
        "by_status",
        "by_day",
        "by_user",
    )
    drop = ("tenant_id", "currency")
    parts_of = {}
    for name in per_tenant:
        text = text_frame(t[name], no_date=NO_DATE_LABEL)
        rows = text.select(*drop, html_rows(t[name], text, drop=drop))
        parts_of[name] = rows.partition_by(list(drop), as_dict=True, maintain_order=True)
    for i, (tenant, cur) in enumerate(keys):
        parts.append(f"<h2 id='t{i}'>Tenant {html.escape(tenant)} ({html.escape(cur)})</h2>")
        if i < chart_tenants:
            parts += ["<figure class='chart'>", tenant_chart(report, tenant, cur), "</figure>"]
        elif i == chart_tenants:
            parts.append(
                "<p class='note muted'>charts are drawn for the first "
                f"{chart_tenants} tenants by spend only (--chart-tenants).</p>"
            )
        for name in per_tenant:
            table = t[name]
            part = parts_of[name].get((tenant, cur))
            if part is None or not part.height:
                continue
            parts.append(f"<h3>{html.escape(table.title)}</h3>")
            if table.description:
                parts.append(f"<p class='note muted'>{html.escape(table.description)}</p>")
            parts.append(html_table(table, drop=drop, max_rows=HTML_MAX_ROWS, rows=part["_tr"]))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_all(report: Report, out: Path, *, chart_tenants: int = 10) -> list[Path]:
    """Write the CSVs, ``usage.xlsx`` and ``report.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [write_xlsx(report, out / "usage.xlsx")]
    written += write_csv(report, out)
    written.append(write_html(report, out / "report.html", chart_tenants=chart_tenants))
    return written
