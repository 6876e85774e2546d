"""Cells of the CSV files that researchers and schools open in spreadsheets.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
as a formula (CSV or formula injection): a user id such as ``=HYPERLINK(...)`` or ``-2-3`` would
be evaluated when the file is opened. ``text_cell`` makes such a text inert with a leading
apostrophe, which spreadsheets show as nothing and never evaluate (the OWASP advice); numbers the
export writes itself are not text cells and stay as they are. A carriage return inside a text
becomes a line feed: Python's CSV writer quotes a cell holding a line feed but not one holding a
lone carriage return, which would otherwise split the row for a reader.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """``value`` as a CSV text cell that no spreadsheet evaluates."""
    inert = "'" + value if value.startswith(FORMULA_STARTS) else value
    return inert.replace("\r", "\n")
