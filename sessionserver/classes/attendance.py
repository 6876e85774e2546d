"""Who attended a class, as a school wants it: one row a stay in the class's room."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from recordings.exports.cells import text_cell
from wire import Role

from .model import ROOM_PREFIX, ClassRecord, Visit

if TYPE_CHECKING:
    from .catalogue import ClassCatalogue

log = logging.getLogger("tutorwire.classes")

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


class AttendanceRecorder:
    """Keeps a class's attendance from its room's presence (``Hub.presence_hooks``): each join
    and leave of a class room (``class-{id}``) becomes a stay in the catalogue. The store is
    written off the room's path, in a task; a store that fails loses that stay's record, never
    the room."""

    def __init__(self, catalogue: ClassCatalogue, wall_clock: Callable[[], float] = time.time) -> None:
        self.catalogue = catalogue
        self.wall_clock = wall_clock
        self._writing: set[asyncio.Task[None]] = set()

    def __call__(self, room_id: str, user_id: str, role: Role, online: bool) -> None:
        if not room_id.startswith(ROOM_PREFIX):
            return
        class_id, now = room_id.removeprefix(ROOM_PREFIX), self.wall_clock()
        write = (self.catalogue.joined if online else self.catalogue.left)(class_id, user_id, role, now)
        task = asyncio.get_running_loop().create_task(write)
        self._writing.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._writing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("attendance not recorded: %s", task.exception())

    async def settle(self) -> None:
        """Wait for the writes under way (tests, and a clean shutdown)."""
        while self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
