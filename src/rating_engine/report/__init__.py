"""`rating-engine report`: the PSTN usage report and funding advice from charges records.

`usage` scans and aggregates (polars), `render` writes CSV, HTML and XLSX, `xlsx` is the
workbook writer, `charts` the inline SVG charts.
"""

from .usage import main

__all__ = ["main"]
