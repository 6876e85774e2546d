"""The recording's events replayed into strokes, every point placed on the session clock.

Call ``replay`` once per export; it never raises on a recording the server wrote (ops arrive in
seq order and were validated before they were logged). Ops that refer to a stroke the log does
not hold, and point batches that do not decode (a recording recovered after damage), are skipped.

Point times. A point's device time is ``device_t0 + t`` (the pen's own clock). Its session time
is that device time through the author's clock model in force when the point's batch arrived (the
latest ``CLOCK`` record at or before the arrival, or the first one for a batch that came before
any), exactly as the recording placed audio that arrived then, so ink and voice share one
mapping; a mapped time that is not believable (``model.believable``) is the batch's arrival time.
Protocol-1 recordings keep their own rule: the offset measured nearest in time, no drift. If the
author has no clock record at all, the points are spread over the session times at which the
stroke began and ended, in proportion to their device times. ``Stroke.timing`` says which was
used.

Undo and clear do not delete: the stroke stays, with ``removed`` set and when and how it went
(as it stands at the end), and ``hidden``, every span of session time it was off the page (a
Clear that a Restore later undid is a closed span; the final removal is an open one).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from wire import CLEAR_LAYERS_KEPT, Limits, Point, PointState, ProtocolError, decode_points
from wire import messages as m

from .model import ClockOffset, RecordingData, believable

_TRUSTED = Limits(max_points_per_message=2**31, max_points_per_stroke=2**31)
TIMING_CLOCK = "clock"
TIMING_SPREAD = "spread"


@dataclass(frozen=True, slots=True)
class InkPoint:
    index: int  # the point's place in its stroke, from 0
    x: int
    y: int
    pressure: int
    tilt_x: int
    tilt_y: int
    t: int  # ms since the stroke's device_t0, as sent
    device_ms: int  # device_t0 + t
    session_ms: float  # on the session clock, rounded to 1 µs


@dataclass(frozen=True, slots=True)
class Stroke:
    pid: int  # the author
    label: str  # the author's name in exports (RecordingData.label)
    stroke: int  # the author's stroke id
    page: int
    tool: m.Tool
    color: int  # 0xRRGGBBAA
    width: int
    flags: int
    device_t0: int
    begin_ms: int  # session time of StrokeBegin
    end_ms: int | None  # session time of StrokeEnd; None if the stroke never ended
    points: tuple[InkPoint, ...]
    timing: str  # TIMING_CLOCK or TIMING_SPREAD
    removed: bool = False
    removed_by: str | None = None  # "undo" or "clear" (as it stands at the end: a Restore brings cleared ink back)
    removed_ms: int | None = None
    hidden: tuple[tuple[int, int | None], ...] = ()  # [from, to) spans off the page; to None: to the end

    @property
    def key(self) -> str:
        """A name unique within the recording's strokes: ``tutor-12`` (``viewer-7-12`` in a class)."""
        return f"{self.label}-{self.stroke}"


@dataclass(slots=True)
class _Building:
    begin: m.StrokeBegin
    pid: int
    begin_ms: int
    last_ms: int
    points: list[Point] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)  # each point's batch's session time
    state: PointState = field(default_factory=PointState)
    end_ms: int | None = None
    removed_by: str | None = None
    removed_ms: int | None = None
    hidden: list[tuple[int, int | None]] = field(default_factory=list)

    def remove(self, how: str, at_ms: int) -> None:
        self.removed_by, self.removed_ms = how, at_ms
        self.hidden.append((at_ms, None))

    def restore(self, at_ms: int) -> None:
        self.removed_by, self.removed_ms = None, None
        self.hidden[-1] = (self.hidden[-1][0], at_ms)


class ClockMap:
    """Each participant's clock records, sorted by session time, to map device times with."""

    def __init__(self, clocks: list[ClockOffset], nearest: bool = False) -> None:
        self.nearest = nearest
        by_pid: dict[int, list[ClockOffset]] = {}
        for c in clocks:
            by_pid.setdefault(c.pid, []).append(c)
        self._by_pid: dict[int, tuple[list[int], list[ClockOffset]]] = {}
        for pid, mine in by_pid.items():
            mine.sort(key=lambda c: c.at_ms)
            self._by_pid[pid] = ([c.at_ms for c in mine], mine)

    def knows(self, pid: int) -> bool:
        return pid in self._by_pid

    def in_force(self, pid: int, session_ms: float) -> ClockOffset:
        """The latest record at or before ``session_ms``; the first if none is."""
        times, records = self._by_pid[pid]
        return records[max(0, bisect.bisect_right(times, session_ms) - 1)]

    def nearest_to(self, pid: int, session_ms: float) -> ClockOffset:
        """The record nearest to ``session_ms`` (the earlier one on a tie)."""
        times, records = self._by_pid[pid]
        i = bisect.bisect_left(times, session_ms)
        if i == 0:
            return records[0]
        if i == len(times) or session_ms - times[i - 1] <= times[i] - session_ms:
            return records[i - 1]
        return records[i]

    def to_session(self, pid: int, device_ms: int, arrival_ms: float) -> float:
        """``device_ms``, which arrived at session ``arrival_ms``, on the session clock."""
        if self.nearest:  # protocol 1: looked up near ``arrival_ms``, then near the estimate that gives
            estimate = device_ms - self.nearest_to(pid, arrival_ms).offset_ms
            return round(device_ms - self.nearest_to(pid, estimate).offset_ms, 3)
        mapped = self.in_force(pid, arrival_ms).to_session(device_ms)
        return round(mapped if believable(mapped, arrival_ms) else arrival_ms, 3)


def _finish(b: _Building, clocks: ClockMap, label: str) -> Stroke:
    t0 = b.begin.device_t0
    pts = b.points
    if clocks.knows(b.pid):
        timing = TIMING_CLOCK
        # Protocol 1 looked every point of a stroke up near the stroke's beginning.
        arrivals = [b.begin_ms] * len(pts) if clocks.nearest else b.arrivals
        session = [clocks.to_session(b.pid, t0 + p.t, at) for p, at in zip(pts, arrivals, strict=True)]
    else:
        timing = TIMING_SPREAD
        start, stop = b.begin_ms, b.end_ms if b.end_ms is not None else b.last_ms
        span_t = pts[-1].t - pts[0].t if pts else 0
        if span_t > 0:
            session = [round(start + (p.t - pts[0].t) / span_t * (stop - start), 3) for p in pts]
        elif len(pts) > 1:  # all at one device time: spread by index
            session = [round(start + i / (len(pts) - 1) * (stop - start), 3) for i in range(len(pts))]
        else:
            session = [float(start)] * len(pts)
    points = tuple(
        InkPoint(i, p.x, p.y, p.pressure, p.tilt_x, p.tilt_y, p.t, t0 + p.t, s)
        for i, (p, s) in enumerate(zip(pts, session, strict=True))
    )
    op = b.begin
    return Stroke(b.pid, label, op.stroke, op.page, op.tool, op.color, op.width, op.flags, op.device_t0,
                  b.begin_ms, b.end_ms, points, timing, b.removed_by is not None, b.removed_by, b.removed_ms,
                  tuple(b.hidden))


def replay(data: RecordingData) -> list[Stroke]:
    """Every stroke of the recording, in the order they began (removed ones included)."""
    order: list[_Building] = []
    live: dict[tuple[int, int], _Building] = {}
    cleared: dict[int, list[list[_Building]]] = {}  # by page: what its Clears took (a Restore brings it back)
    for ev in data.events:
        op = ev.body
        if isinstance(op, m.StrokeBegin):
            b = _Building(op, ev.pid, ev.session_ms, ev.session_ms)
            live[(ev.pid, op.stroke)] = b
            order.append(b)
        elif isinstance(op, m.StrokePoints | m.StrokeEnd | m.Undo):
            author = op.author if isinstance(op, m.Undo) and op.author else ev.pid
            found = live.get((author, op.stroke))
            if found is None:
                continue
            found.last_ms = ev.session_ms
            if isinstance(op, m.StrokePoints):
                try:
                    batch = decode_points(op.blob, op.count, found.begin.flags, found.state, _TRUSTED)
                except ProtocolError:  # only in a damaged log: skip the batch, keep the stroke
                    continue
                found.points += batch
                found.arrivals += [ev.session_ms] * len(batch)
            elif isinstance(op, m.StrokeEnd):
                found.end_ms = ev.session_ms
            elif found.removed_by is None:
                found.remove("undo", ev.session_ms)
        elif isinstance(op, m.Clear):
            layer = [b for b in order if b.begin.page == op.page and b.removed_by is None]
            for b in layer:
                b.remove("clear", ev.session_ms)
            if not layer:
                continue  # an empty page's Clear keeps no layer, as in the room
            layers = cleared.setdefault(op.page, [])
            layers.append(layer)
            del layers[:-CLEAR_LAYERS_KEPT]
        elif isinstance(op, m.Restore) and cleared.get(op.page):  # the undo of the page's latest Clear
            for b in cleared[op.page].pop():
                b.restore(ev.session_ms)
    clocks = ClockMap(data.clocks, nearest=data.protocol == 1)
    by_device = {dev: ClockMap(records) for dev, records in data.device_clocks.items()}

    def clock_of(b: _Building) -> ClockMap:  # a second device's stroke: that device's clock
        dev = data.stroke_devices.get((b.pid, b.begin.stroke))
        own = by_device.get(dev) if dev is not None else None
        return own if own is not None and own.knows(b.pid) else clocks

    return [_finish(b, clock_of(b), data.label(b.pid)) for b in order]


def pages_used(strokes: list[Stroke]) -> list[int]:
    """The pages that hold at least one stroke (removed or not), ascending."""
    return sorted({s.page for s in strokes})


def ms_text(value: float) -> str:
    """A session time as the exports write it: an integer when whole, else up to 3 decimals."""
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0")
