"""Pen samples become stroke actions in batches of at most ``batch_ms`` (16), sans-I/O.

``feed(sample)`` takes samples in order; ``due(now_s)`` says when the open batch must go;
``flush(now_s)`` returns the actions to submit: ``Begin`` (a new stroke on a page), ``Points``
(one batch of a stroke), ``End``, ``Page`` (a page turn). A contact (DOWN .. UP) is one stroke;
hover is not ink (the protocol carries no hover), nor is a sample that does not touch. What a
broken device may send is made legal here: tilt clamped to ±90, time never going back.
"""

from __future__ import annotations

from dataclasses import dataclass

from wire import HAS_PRESSURE, HAS_TILT, Point
from wire.limits import TILT_MAX
from wire.messages import Tool

from .device import PageTurn, PenTool, Phase, Sample, TiltKind
from .pages import PageMap


@dataclass(frozen=True, slots=True)
class Begin:
    page: int
    tool: Tool
    flags: int
    device_t0: int  # device ms of the first point


@dataclass(frozen=True, slots=True)
class Points:
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class End:
    pass


@dataclass(frozen=True, slots=True)
class Page:
    page: int


Action = Begin | Points | End | Page


def _clamp(v: int, bound: int) -> int:
    return max(-bound, min(bound, v))


class StrokeBuilder:
    """``device_epoch_s`` maps a sample's ``host_s`` (monotonic) to device ms:
    ``(host_s + device_epoch_s) * 1000``, the clock of ``StrokeBegin.device_t0``."""

    def __init__(self, pages: PageMap, *, device_epoch_s: float = 0.0, batch_ms: float = 16.0) -> None:
        self.pages = pages
        self.device_epoch_s = device_epoch_s
        self.batch_s = batch_ms / 1000.0
        info = pages.info
        self.flags = (HAS_PRESSURE if info.pressure_max > 0 else 0) | (HAS_TILT if info.tilt is TiltKind.DEGREES else 0)
        self._out: list[Action] = []
        self._batch: list[Point] = []
        self._batch_since: float | None = None
        self._t0_ms: int | None = None  # device ms of the open stroke's first point
        self._last_t = 0
        self.strokes = 0
        self.points = 0

    @property
    def open(self) -> bool:
        return self._t0_ms is not None

    def device_ms(self, host_s: float) -> int:
        return int((host_s + self.device_epoch_s) * 1000)

    def feed(self, event: Sample | PageTurn) -> None:
        if isinstance(event, PageTurn):
            self._end(event.host_s)
            page = event.page if event.page is not None else self.pages.page + 1
            self.pages.page = page
            self._out.append(Page(page))
            return
        s = event
        if s.phase is Phase.DOWN or (s.phase is Phase.MOVE and not self.open):
            self._end(s.host_s)
            self._t0_ms = max(0, self.device_ms(s.host_s))
            self._last_t = 0
            tool = Tool.ERASER if s.tool is PenTool.ERASER else Tool.PEN
            self._out.append(Begin(self.pages.page, tool, self.flags, self._t0_ms))
            self.strokes += 1
        if s.phase in (Phase.DOWN, Phase.MOVE):
            self._point(s)
        elif s.phase is Phase.UP:
            self._end(s.host_s)

    def _point(self, s: Sample) -> None:
        assert self._t0_ms is not None
        x, y, p = self.pages.map(s)
        t = max(self._last_t, min(2**31 - 1, self.device_ms(s.host_s) - self._t0_ms))
        self._last_t = t
        tx, ty = (_clamp(s.tilt_x, TILT_MAX), _clamp(s.tilt_y, TILT_MAX)) if self.flags & HAS_TILT else (0, 0)
        self._batch.append(Point(x, y, t, p if self.flags & HAS_PRESSURE else 0, tx, ty))
        self.points += 1
        if self._batch_since is None:
            self._batch_since = s.host_s

    def _cut(self) -> None:
        if self._batch:
            self._out.append(Points(tuple(self._batch)))
            self._batch = []
        self._batch_since = None

    def _end(self, now_s: float) -> None:
        if self.open:
            self._cut()
            self._out.append(End())
            self._t0_ms = None

    def end_open(self) -> None:
        """End a stroke left open (the device vanished, the gateway stops)."""
        self._end(0.0)

    def due(self) -> float | None:
        """When the open batch is ``batch_ms`` old (``None``: nothing waits)."""
        return None if self._batch_since is None else self._batch_since + self.batch_s

    def flush(self, now_s: float) -> list[Action]:
        """The actions ready now: everything finished, and the open batch once it is due (its
        first point ``batch_ms`` old, by the clock of the samples or of the caller)."""
        due = self.due()
        if due is not None and now_s >= due:
            self._cut()
        out, self._out = self._out, []
        return out
