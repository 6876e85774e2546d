"""A page snapshot in bounded pieces: ``Snapshot`` frames of at most about ``part_bytes`` each.

A page whose snapshot would be larger goes as several ``Snapshot`` frames of the same page and
seq, numbered by ``part`` (0, 1, ...), the last one with ``last`` true. Strokes keep their
drawing order; a stroke too big for what is left of a part is cut at a point boundary and
continues in the next part as a ``SnapshotStroke`` of the same (pid, stroke) carrying the
following points (the receiver appends them; the stroke's ``ended`` is that of its last piece).

The pages are captured when the join happens (``capture``) and encoded piece by piece as the
connection's writer has room (``page_frames``), so a join costs no copy of the room's ink up
front. Strokes only ever grow at their end, so a captured (stroke, count, byte length) pair
still names exactly the ink the stroke had at the join.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from wire import encode
from wire import messages as m
from wire.ink import HAS_TILT

from .pages import Page, Stroke

STROKE_OVERHEAD = 48  # msgpack bytes of a SnapshotStroke besides its blob, at most
FRAME_OVERHEAD = 32  # msgpack bytes of a Snapshot besides its strokes, at most
MIN_PART_BYTES = 256  # a part holds at least a few points whatever the setting


@dataclass(frozen=True, slots=True)
class Captured:
    stroke: Stroke
    count: int  # points it had at the join
    size: int  # bytes of those points
    ended: bool
    layer: int = 0  # 0 on the page; k: in its k-th kept cleared layer (``messages.SnapshotStroke``)


def capture(pages: Sequence[Page]) -> list[list[Captured]]:
    """Each page's strokes as they stand: its cleared layers' (oldest first), then its own, which
    is their drawing order."""
    out = []
    for page in pages:
        strokes = [Captured(s, s.count, len(s.blob), s.ended, k)
                   for k, layer in enumerate(page.cleared, 1) for s in layer.values()]
        strokes += [Captured(s, s.count, len(s.blob), s.ended) for s in page.strokes.values()]
        out.append(strokes)
    return out


def _skip_varint(blob: bytes | bytearray, pos: int) -> int:
    while blob[pos] & 0x80:
        pos += 1
    return pos + 1


def _skip_pair(blob: bytes | bytearray, pos: int) -> int:
    if blob[pos] == 0x80:  # escaped pair: two varints follow
        return _skip_varint(blob, _skip_varint(blob, pos + 1))
    return pos + 1


def _point_end(blob: bytes | bytearray, pos: int, flags: int) -> int:
    """Where the point at ``pos`` of a (validated) points blob ends (see ``wire.ink``)."""
    pos = _skip_pair(blob, _skip_varint(blob, _skip_varint(blob, pos)))
    return _skip_pair(blob, pos) if flags & HAS_TILT else pos


def _piece(c: Captured, blob: bytes, count: int, ended: bool) -> m.SnapshotStroke:
    s = c.stroke
    return m.SnapshotStroke(s.pid, s.stroke, s.tool, s.color, s.width, s.flags, s.device_t0, count, blob, ended,
                            c.layer)


def page_frames(seq: int, index: int, strokes: list[Captured], part_bytes: int) -> Iterator[bytes]:
    """The Snapshot frames of one page, each at most about ``part_bytes``."""
    budget = max(part_bytes, MIN_PART_BYTES) - FRAME_OVERHEAD
    part: list[m.SnapshotStroke] = []
    room = budget
    number = 0
    for c in strokes:
        blob = c.stroke.blob
        start, done = 0, 0  # byte offset and points of this stroke already sent
        while True:
            left = c.size - start
            if left + STROKE_OVERHEAD <= room:  # the rest of the stroke fits in this part
                part.append(_piece(c, bytes(blob[start:c.size]), c.count - done, c.ended))
                room -= left + STROKE_OVERHEAD
                break
            if room - STROKE_OVERHEAD < 64 and part:  # hardly any room left: start a new part
                yield encode(m.Snapshot(seq, index, tuple(part), number, False))
                part, room, number = [], budget, number + 1
                continue
            end, n = start, 0  # as many whole points as fit (at least one)
            while end < c.size:
                nxt = _point_end(blob, end, c.stroke.flags)
                if nxt - start + STROKE_OVERHEAD > room and n:
                    break
                end, n = nxt, n + 1
            part.append(_piece(c, bytes(blob[start:end]), n, False))
            start, done = end, done + n
            yield encode(m.Snapshot(seq, index, tuple(part), number, False))
            part, room, number = [], budget, number + 1
    yield encode(m.Snapshot(seq, index, tuple(part), number, True))
