"""The pages of a session as they stand: strokes with their ink, in drawing order."""

from __future__ import annotations

from dataclasses import dataclass, field

from wire import PointState, Tool

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


@dataclass(slots=True)
class Page:
    strokes: dict[StrokeKey, Stroke] = field(default_factory=dict)  # insertion = drawing order
    # what the page's Clears took, oldest first, at most ``wire.CLEAR_LAYERS_KEPT``: a Restore
    # puts the newest back beneath ``strokes`` (every layer was drawn before what follows it)
    cleared: list[dict[StrokeKey, Stroke]] = field(default_factory=list)
