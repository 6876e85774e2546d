"""Who attended a class, as a school wants it: one row a stay in the class's room."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from recordings.exports.cells import text_cell

from .model import ClassRecord, Visit

COLUMNS = ("class_id", "title", "user_id", "role", "joined_utc", "left_utc", "minutes")


def _utc(unix: float | None) -> str:
    return "" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes(visit: Visit, now: float) -> float:
    """How long the stay lasted, in minutes to 0.1 (a stay still going: up to ``now``)."""
    until = visit.left_unix if visit.left_unix is not None else now
    return round(max(0.0, until - visit.joined_unix) / 60, 1)


def in_order(visits: list[Visit]) -> list[Visit]:
    return sorted(visits, key=lambda v: (v.joined_unix, v.user_id))


def attendance_csv(record: ClassRecord, visits: list[Visit], now: float) -> str:
    """The CSV export (RFC 4180, UTF-8 with a BOM so that spreadsheets read Chinese titles), a
    row a stay in join order; every text cell is made inert for spreadsheets (``text_cell``)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for v in in_order(visits):
        writer.writerow([text_cell(record.class_id), text_cell(record.title), text_cell(v.user_id), v.role,
                         _utc(v.joined_unix), _utc(v.left_unix), minutes(v, now)])
    return out.getvalue()
