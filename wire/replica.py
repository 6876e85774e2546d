"""A client's copy of a session's pages, sans-I/O: apply what the server sends, in order.

Used by the Python client helper (and the tests) to check that what arrived is what was sent.
``apply_local`` applies the client's own ops, which the server does not echo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import messages as m
from .errors import ErrorCode, ProtocolError
from .ink import Point, PointState, decode_points
from .limits import Limits

_TRUSTED = Limits(max_points_per_message=2**31, max_points_per_stroke=2**31)


@dataclass(slots=True)
class ReplicaStroke:
    seat: m.Seat
    stroke: int
    page: int
    tool: m.Tool
    color: int
    width: int
    flags: int
    device_t0: int
    points: list[Point] = field(default_factory=list)
    state: PointState = field(default_factory=PointState)
    ended: bool = False

    def add(self, blob: bytes, count: int) -> None:
        self.points += decode_points(blob, count, self.flags, self.state, _TRUSTED)


class Replica:
    def __init__(self, seat: m.Seat) -> None:
        self.seat = seat
        self.last_seq = 0
        self.epoch = 0  # the room epoch last_seq belongs to
        self.pages: list[dict[tuple[m.Seat, int], ReplicaStroke]] = [{}]
        self.current_pages = [0] * len(m.Seat)
        self.online: dict[m.Seat, bool] = {}
        self.muted: dict[m.Seat, bool] = {seat: False for seat in m.Seat}
        self.awaiting_pages: set[int] = set()  # snapshot pages announced but not yet received

    def strokes(self, seat: m.Seat | None = None) -> list[ReplicaStroke]:
        return [s for page in self.pages for s in page.values() if seat is None or s.seat is seat]

    def welcome(self, welcome: m.Welcome) -> None:
        self.epoch = welcome.epoch
        self.online = {seat: welcome.online[seat] for seat in m.Seat}
        self.muted = {seat: welcome.muted[seat] for seat in m.Seat}
        if welcome.mode is m.CatchUp.SNAPSHOT:
            self.pages = [{} for _ in range(welcome.page_count)]
            self.awaiting_pages = set(range(welcome.page_count))
            # The pages are gone until the snapshot is whole: a drop before then must resume
            # from nothing, never replay onto empty pages.
            self.last_seq = 0 if self.awaiting_pages else welcome.last_seq
        self.current_pages = list(welcome.current_pages)

    def snapshot(self, snap: m.Snapshot) -> None:
        page: dict[tuple[m.Seat, int], ReplicaStroke] = {}
        for s in snap.strokes:  # decode it all first: a refused snapshot leaves the replica as it was
            stroke = ReplicaStroke(s.seat, s.stroke, snap.page, s.tool, s.color, s.width, s.flags,
                                   s.device_t0, ended=s.ended)
            stroke.add(s.blob, s.count)
            page[(s.seat, s.stroke)] = stroke
        while len(self.pages) <= snap.page:
            self.pages.append({})
        self.pages[snap.page] = page
        self.awaiting_pages.discard(snap.page)
        if not self.awaiting_pages:  # the snapshot is whole: live events continue after it
            self.last_seq = snap.seq

    def _is_next(self, seq: int) -> bool:
        """``seq`` is the next event; ``False`` if seen already, ``ProtocolError`` on a gap."""
        if seq <= self.last_seq:
            return False
        if seq != self.last_seq + 1:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"event {seq} after {self.last_seq}: a gap")
        return True

    def own(self, seq: int) -> None:
        """Our own op became event ``seq`` (from an ``Ack``); it is applied locally already.

        Acks are cumulative and may be coalesced: the server queues every other seat's event
        for us before it acks a later op of ours, so every seq up to ``seq`` that has not
        arrived as an ``Event`` was one of our own ops."""
        if seq > self.last_seq:
            self.last_seq = seq

    def event(self, event: m.Event, applied_cseq: int = 0) -> bool:
        """Apply ``event``; ``False`` if seen already. ``applied_cseq`` is the highest cseq of
        ``self.seat``'s ops applied locally, so their replayed events are not applied twice.
        A gap in seq is an error. An event that cannot be applied raises ``ProtocolError`` and is
        not consumed (``last_seq`` stays), so the replica never silently skips part of the session."""
        if not self._is_next(event.seq):
            return False
        if event.seat is self.seat and 0 < event.cseq <= applied_cseq:
            pass  # our own op, applied locally already
        elif isinstance(event.body, m.Presence):
            self.online[event.seat] = event.body.online
        else:
            self.apply_local(event.seat, event.body)
        self.last_seq = event.seq
        return True

    def apply_local(self, seat: m.Seat, op: m.Op) -> None:
        if isinstance(op, m.StrokeBegin):
            stroke = ReplicaStroke(seat, op.stroke, op.page, op.tool, op.color, op.width, op.flags,
                                   op.device_t0)
            self._page(op.page)[(seat, op.stroke)] = stroke
        elif isinstance(op, m.StrokePoints):
            self._find(seat, op.stroke).add(op.blob, op.count)
        elif isinstance(op, m.StrokeEnd):
            self._find(seat, op.stroke).ended = True
        elif isinstance(op, m.Undo):
            stroke = self._find(seat, op.stroke)
            del self.pages[stroke.page][(seat, op.stroke)]
        elif isinstance(op, m.PageAdd):
            while len(self.pages) <= op.page:
                self.pages.append({})
        elif isinstance(op, m.PageSwitch):
            self._page(op.page)
            self.current_pages[seat] = op.page
        elif isinstance(op, m.Mute):
            self.muted[seat] = op.muted
        else:
            self._page(op.page).clear()

    def _page(self, page: int) -> dict[tuple[m.Seat, int], ReplicaStroke]:
        if not 0 <= page < len(self.pages):
            raise ProtocolError(ErrorCode.UNKNOWN_PAGE, f"replica has no page {page} (it has {len(self.pages)})")
        return self.pages[page]

    def _find(self, seat: m.Seat, stroke_id: int) -> ReplicaStroke:
        for page in self.pages:
            stroke = page.get((seat, stroke_id))
            if stroke is not None:
                return stroke
        raise ProtocolError(ErrorCode.UNKNOWN_STROKE, f"replica has no stroke {stroke_id} of {seat.role}")
