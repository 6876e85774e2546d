"""The pages of a session as they stand: strokes with their ink, in drawing order."""

from __future__ import annotations

from dataclasses import dataclass, field

from wire import PointState, Tool
from wire import messages as m

StrokeKey = tuple[int, int]  # (pid of the author, the author's stroke id)


@dataclass(slots=True)
class Stroke:
    pid: int
    stroke: int
    page: int
    tool: Tool
    color: int
    width: int
    flags: int
    device_t0: int
    blob: bytearray = field(default_factory=bytearray)  # concatenated batch blobs
    count: int = 0
    state: PointState = field(default_factory=PointState)
    ended: bool = False

    def snapshot(self) -> m.SnapshotStroke:
        return m.SnapshotStroke(self.pid, self.stroke, self.tool, self.color, self.width,
                                self.flags, self.device_t0, self.count, bytes(self.blob), self.ended)


@dataclass(slots=True)
class Page:
    strokes: dict[StrokeKey, Stroke] = field(default_factory=dict)  # insertion = drawing order
