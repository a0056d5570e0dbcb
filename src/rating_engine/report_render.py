"""Writers of the usage report: CSV, XLSX, self-contained HTML with charts.

The tables come from :mod:`rating_engine.report` with integer columns
(money in 0.0001 units, seconds and minutes in milliseconds) and a kind per
column. Text outputs (CSV, HTML) print them with exact integer arithmetic:
money with 4 decimals, seconds exact (at most 3 decimals, integers without a
point), minutes rounded half-up to 2 decimals. The XLSX holds numbers (Excel
has no decimal type): money = units / 10000 with format ``0.0000``, seconds
``0.000``, minutes ``0.00`` (the value already rounded to 2 decimals), so the
number shown is the exact figure. Charts are PNGs drawn by matplotlib's Agg
backend and embedded in the HTML as ``data:`` URIs (no external resource, no
script).
"""

from __future__ import annotations

import base64
import html
import io
import os
import pickle
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl

from rating_engine.report import (
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


def text_frame(table: Table, *, no_date: str = "") -> pl.DataFrame:
    """The table with every column as display text (CSV and HTML)."""
    exprs = []
    for name, kind in table.kinds.items():
        col = pl.col(name)
        if kind == MONEY:
            e = money_text(col)
        elif kind == SECONDS:
            e = seconds_text(col)
        elif kind == MINUTES:
            e = minutes_text(col)
        elif kind == DATE:
            e = col.cast(pl.String).fill_null(no_date)
        elif kind == NUMBER:
            e = col.round(1).cast(pl.String)
        else:
            e = col.cast(pl.String)
        exprs.append(e.alias(name))
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


def xlsx_payload(report: Report) -> tuple[list, list[str]]:
    """Plain Python values of every sheet: [(sheet, [(column, kind)],
    [values per column], widths)], and the notes (with a line per sheet cut
    at Excel's row limit)."""
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
        values = [_xlsx_values(df, col, kind) for col, kind in cols]
        widths = []
        for col, kind in cols:
            width = max(len(col), 12 if kind != TEXT else 10) + 2
            if kind == TEXT and df.height:
                longest = df[col].cast(pl.String).str.len_chars().max() or 0
                width = max(width, min(int(longest) + 2, 60))
            widths.append(width)
        sheets.append((name[:31], cols, values, widths))
    return sheets, notes


def write_xlsx_payload(sheets: list, notes: list[str], path: str | Path) -> None:
    """Write the workbook from :func:`xlsx_payload`'s values (no polars)."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    try:
        head = wb.add_format({"bold": True, "bg_color": "#DDE4EE", "bottom": 1})
        fmts = {
            MONEY: wb.add_format({"num_format": "0.0000"}),
            SECONDS: wb.add_format({"num_format": "0.000"}),
            MINUTES: wb.add_format({"num_format": "0.00"}),
            INT: wb.add_format({"num_format": "0"}),
            NUMBER: wb.add_format({"num_format": "0.0"}),
            DATE: wb.add_format({"num_format": "yyyy-mm-dd"}),
        }
        for name, cols, values, widths in sheets:
            ws = wb.add_worksheet(name)
            nrows = len(values[0]) if values else 0
            for j, ((col, kind), vals, width) in enumerate(zip(cols, values, widths, strict=True)):
                ws.write_string(0, j, col, head)
                ws.set_column(j, j, width)
                if kind == TEXT:
                    write = ws.write_string
                    for i, v in enumerate(vals, start=1):
                        if v is not None:
                            write(i, j, v)
                elif kind == DATE:
                    write, fmt = ws.write_datetime, fmts[DATE]
                    for i, v in enumerate(vals, start=1):
                        if v is not None:
                            write(i, j, v, fmt)
                else:
                    write, fmt = ws.write_number, fmts[kind]
                    for i, v in enumerate(vals, start=1):
                        if v is not None:
                            write(i, j, v, fmt)
            ws.freeze_panes(1, 0)
            if nrows:
                ws.autofilter(0, 0, nrows, len(cols) - 1)
        ws = wb.add_worksheet("notes")
        ws.write_string(0, 0, "note", head)
        ws.set_column(0, 0, 120)
        for i, note in enumerate(notes, start=1):
            ws.write_string(i, 0, note)
    finally:
        wb.close()


def write_xlsx(report: Report, path: Path) -> Path:
    sheets, notes = xlsx_payload(report)
    write_xlsx_payload(sheets, notes, path)
    return path


def _ratio(values: list, div: int) -> list:
    # Python's int / int is correctly rounded: the double nearest the exact
    # decimal (polars may multiply by the reciprocal: 912 / 100 -> 9.120000000000001)
    return [None if v is None else v / div for v in values]


def _xlsx_values(df: pl.DataFrame, col: str, kind: str) -> list:
    s = df[col]
    if kind == MONEY:
        return _ratio(s.to_list(), MONEY_UNIT)
    if kind == SECONDS:
        return _ratio(s.to_list(), 1000)
    if kind == MINUTES:
        return _ratio(df.select(centi_minutes(pl.col(col)))[col].to_list(), 100)
    if kind == INT:
        return s.cast(pl.Int64).to_list()
    if kind == NUMBER:
        return [None if v is None else round(v, 1) for v in s.cast(pl.Float64).to_list()]
    if kind == DATE:
        return s.to_list()
    return s.cast(pl.String).to_list()


# ---------------------------------------------------------------------------
# charts


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, pil_kwargs={"compress_level": 3})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chart_data(report: Report, tenant: str, currency: str) -> dict:
    """What the tenant's charts show, as plain Python values (floats only
    for drawing)."""
    key = (pl.col("tenant_id") == tenant) & (pl.col("currency") == currency)
    days = report.tables["by_day"].df.filter(key & pl.col("day").is_not_null())
    payer = report.tables["by_payer"].df.filter(key)
    top = report.tables["top_destinations"].df.filter(key).sort("rank")
    return {
        "tenant": tenant,
        "currency": currency,
        "days": [d.toordinal() for d in days["day"].to_list()],
        "spend": (days["charge"] / MONEY_UNIT).to_list(),
        "payers": payer["paid_by"].to_list(),
        "payer_minutes": (payer["seconds"] / 60000).to_list(),
        "destinations": top["destination"].to_list(),
        "destination_spend": (top["charge"] / MONEY_UNIT).to_list(),
    }


def draw_chart(data: dict) -> str:
    """One PNG (data URI) with a tenant's three charts: credit spend per day,
    minutes paid by each pool vs. by credits, top destinations by spend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    currency = data["currency"]
    fig = Figure(figsize=(14, 3.6))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1.0, 1.1]})
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.2, top=0.9, wspace=0.62)

    ax = axes[0]
    xs = data["days"]
    if xs:
        ax.bar(xs, data["spend"], width=0.8, color="#3b6ea5")
        step = max(1, len(xs) // 6)
        ax.set_xticks(xs[::step], [date.fromordinal(x).strftime("%m-%d") for x in xs[::step]])
    else:
        ax.text(0.5, 0.5, "no dated calls", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"Credit spend per day ({currency})", fontsize=10)
    ax.tick_params(labelsize=8)

    ax = axes[1]
    labels = data["payers"]
    if labels:
        colors = ["#d08c2f" if lab == "credits" else "#4f9a6b" for lab in labels]
        ax.barh(range(len(labels)), data["payer_minutes"], color=colors)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
    ax.set_title("Minutes paid: pools vs. credits", fontsize=10)
    ax.set_xlabel("minutes", fontsize=8)
    ax.tick_params(labelsize=8)

    ax = axes[2]
    labels = [_short(d) for d in data["destinations"]]
    if labels:
        ax.barh(range(len(labels)), data["destination_spend"], color="#8a5aa8")
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
    ax.set_title(f"Top destinations by spend ({currency})", fontsize=10)
    ax.tick_params(labelsize=8)
    return _png(fig)


def tenant_chart(report: Report, tenant: str, currency: str) -> str:
    return draw_chart(chart_data(report, tenant, currency))


def _short(text: str, n: int = 26) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


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
img.chart{max-width:100%;height:auto;border:1px solid #c9d1dc}
nav a{margin-right:.8em}
"""

NUMERIC_KINDS = {INT, MONEY, SECONDS, MINUTES, NUMBER}


def html_table(
    table: Table,
    df: pl.DataFrame | None = None,
    *,
    drop=(),
    max_rows: int | None = None,
    text: pl.DataFrame | None = None,
) -> str:
    """An HTML table of ``table`` (or of ``df``, rows of it) as display text;
    ``text``: the rows already formatted by :func:`text_frame`."""
    if text is None:
        frame = table.df if df is None else df
        text = text_frame(Table(table.name, table.title, frame, table.kinds), no_date=NO_DATE_LABEL)
    total = text.height
    if max_rows is not None and total > max_rows:
        text = text.head(max_rows)
    cols = [c for c in table.kinds if c not in drop]
    numeric = [table.kinds[c] in NUMERIC_KINDS for c in cols]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    out = [
        f'<div class="scroll"><table data-table="{html.escape(table.name)}">'
        f"<thead><tr>{head}</tr></thead><tbody>"
    ]
    esc = html.escape
    for row in text.select(cols).iter_rows():
        cells = [
            (f'<td class="n">{"" if v is None else esc(v)}</td>' if num
             else f"<td>{'' if v is None else esc(v)}</td>")
            for v, num in zip(row, numeric, strict=True)
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
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


def write_html(
    report: Report,
    path: Path,
    *,
    chart_tenants: int = 10,
    charts: dict[tuple[str, str], str] | None = None,
) -> Path:
    """``charts``: data URIs already drawn, by (tenant, currency); those
    missing among the first ``chart_tenants`` tenants are drawn here."""
    return finish_html(report, html_parts(report, chart_tenants=chart_tenants), path, charts)


def finish_html(
    report: Report,
    parts: list,
    path: Path,
    charts: dict[tuple[str, str], str] | None = None,
) -> Path:
    """Write the page of :func:`html_parts`, each chart slot filled from
    ``charts`` or drawn here."""
    charts = charts or {}
    text = "".join(
        p if isinstance(p, str) else charts.get(p) or tenant_chart(report, *p) for p in parts
    )
    path.write_text(text, encoding="utf-8")
    return path


def html_parts(report: Report, *, chart_tenants: int = 10) -> list:
    """The page as a list of strings, with a (tenant, currency) key where the
    data URI of that tenant's chart goes (the charts may still be drawing)."""
    t = report.tables
    keys = tenants_by_spend(report)
    summary = t["summary"].df.sort(["charge", "tenant_id", "currency"], descending=[True, False, False])
    parts: list = [
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
    nav = ["<nav><a href='#notes'>Notes</a><a href='#funding'>Funding advice</a>",
           "<a href='#summary'>All tenants</a>"]
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

    per_tenant = ("by_payer", "by_kind", "by_destination", "top_destinations", "disconnects",
                  "by_status", "by_day", "by_user")
    parts_of = {}
    for name in per_tenant:
        text = text_frame(t[name], no_date=NO_DATE_LABEL)
        parts_of[name] = text.partition_by(["tenant_id", "currency"], as_dict=True, maintain_order=True)
    drop = ("tenant_id", "currency")
    for i, (tenant, cur) in enumerate(keys):
        parts.append(f"<h2 id='t{i}'>Tenant {html.escape(tenant)} ({html.escape(cur)})</h2>")
        if i < chart_tenants:
            alt = f"charts of tenant {tenant}: spend per day, minutes by pool vs credits, top destinations"
            parts += [f"<img class='chart' alt='{html.escape(alt)}' src='", (tenant, cur), "'>"]
        elif i == chart_tenants:
            parts.append(
                "<p class='note muted'>charts are drawn for the first "
                f"{chart_tenants} tenants by spend only (--chart-tenants).</p>"
            )
        for name in per_tenant:
            table = t[name]
            rows = parts_of[name].get((tenant, cur))
            if rows is None or not rows.height:
                continue
            parts.append(f"<h3>{html.escape(table.title)}</h3>")
            if table.description:
                parts.append(f"<p class='note muted'>{html.escape(table.description)}</p>")
            parts.append(html_table(table, drop=drop, max_rows=HTML_MAX_ROWS, text=rows))
    parts.append("</body></html>\n")
    return parts


def _child() -> None:  # pragma: no cover - runs in the child process
    """Child process: draw the charts whose data come pickled on stdin,
    pickle the data URIs to stdout (nothing if stdin closes first)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.figure  # noqa: F401 - imported while the parent still scans

    try:
        payload = pickle.load(sys.stdin.buffer)
    except EOFError:
        return
    pickle.dump([draw_chart(d) for d in payload], sys.stdout.buffer)
    sys.stdout.buffer.flush()


PARALLEL_MIN_CHARTS = 3  # from this many charts, a child process draws them


class ChartChild:
    """A new interpreter that draws the charts (matplotlib and xlsxwriter are
    both pure Python at heart: the parent writes the workbook meanwhile).

    Start it before the input is scanned: its imports (about a second of
    CPU) then overlap the scan instead of delaying the report; it waits for
    the chart data on its stdin. Not a fork of a process running polars'
    threads."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from rating_engine.report_render import _child; _child()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def send(self, data: list[dict]) -> None:
        assert self.proc.stdin is not None
        try:
            with self.proc.stdin:
                pickle.dump(data, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        except BrokenPipeError:
            pass

    def receive(self) -> list[str] | None:
        """The data URIs, or None if the child failed."""
        assert self.proc.stdout is not None
        with self.proc.stdout:
            stdout = self.proc.stdout.read()
        self.proc.wait()
        return pickle.loads(stdout) if self.proc.returncode == 0 and stdout else None

    def close(self) -> None:
        """Stop a child that got no data (it exits on the closed stdin)."""
        if self.proc.returncode is not None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.receive()


def write_all(
    report: Report,
    out: Path,
    *,
    chart_tenants: int = 10,
    parallel: bool | None = None,
    child: ChartChild | None = None,
) -> list[Path]:
    """Write the CSVs, ``usage.xlsx`` and ``report.html`` into ``out``.

    With several charts to draw, a :class:`ChartChild` (``child``, or one
    started here) draws them while this process writes the workbook, the
    CSVs and the HTML tables; ``parallel`` forces that on or off. ``child``
    is always finished."""
    out.mkdir(parents=True, exist_ok=True)
    keys = tenants_by_spend(report)[:chart_tenants]
    data = [chart_data(report, tenant, cur) for tenant, cur in keys]
    if parallel is None:
        parallel = len(data) >= PARALLEL_MIN_CHARTS and (os.cpu_count() or 1) > 1
    if not (parallel and data) and child is not None:
        child.close()
        child = None
    elif parallel and data:
        child = child or ChartChild()
        child.send(data)
    charts: dict[tuple[str, str], str] = {}
    try:
        written = [write_xlsx(report, out / "usage.xlsx")]
        written += write_csv(report, out)
        page = html_parts(report, chart_tenants=chart_tenants)
    finally:
        if child is not None:
            uris = child.receive()
            if uris is not None:
                charts = dict(zip(keys, uris, strict=True))
            # else: drawn below, in this process
    written.append(finish_html(report, page, out / "report.html", charts))
    return written
