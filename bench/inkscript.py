"""What the benchmark's tutors write: 120 Hz handwriting, cut into batches of at most 16 ms.

Strokes are encoded once, before the load starts (``encode_points`` is far too slow to run at
load), as ``StrokeScript``s: a stroke's points blob split into the batches a pen app would send.
Each batch holds the samples taken in one 16 ms window of a 120 Hz pen, so one or two points
(48 points every 25 batches). Batch blobs concatenate into the stroke's blob (see ``ink.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from wire import HAS_PRESSURE, Point, PointState, encode_points

PEN_HZ = 120
BATCH_MS = 16


@dataclass(frozen=True, slots=True)
class StrokeScript:
    """One pre-encoded stroke: ``batches[i]`` is the (point count, blob) sent in tick ``i``."""

    batches: tuple[tuple[int, bytes], ...]
    points: int
    flags: int = HAS_PRESSURE


def handwriting(n: int, rng: random.Random) -> list[Point]:
    """A smooth pen path of ``n`` samples at 120 Hz with pressure (after ``tests/inkdata.py``)."""
    x, y = rng.uniform(5_000, 60_000), rng.uniform(5_000, 60_000)
    vx, vy, p = rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(300, 1_500)
    points = []
    for i in range(n):
        vx += rng.uniform(-6, 6)
        vy += rng.uniform(-6, 6)
        x, y = min(max(x + vx, 0), 65_535), min(max(y + vy, 0), 65_535)
        p = min(max(p + rng.uniform(-12, 12), 1), 4_095)
        points.append(Point(int(x), int(y), round(i * 1_000 / PEN_HZ), int(p)))
    return points


def points_in_batch(i: int) -> int:
    """Samples of a 120 Hz pen that fall in the ``i``-th 16 ms window of a stroke."""
    per_window = PEN_HZ * BATCH_MS  # samples per 1000 windows
    return (i + 1) * per_window // 1_000 - i * per_window // 1_000


def stroke_script(points: list[Point]) -> StrokeScript:
    state = PointState()
    batches = []
    done = i = 0
    while done < len(points):
        count = min(points_in_batch(i), len(points) - done)  # at least 1: 120 Hz is above 1/16 ms
        batches.append((count, encode_points(points[done : done + count], HAS_PRESSURE, state)))
        done += count
        i += 1
    return StrokeScript(tuple(batches), len(points))


def library(count: int, seed: int, min_points: int = 100, max_points: int = 200) -> list[StrokeScript]:
    """``count`` different strokes of ``min_points``..``max_points`` points (0.8-1.7 s of pen)."""
    rng = random.Random(seed)
    return [stroke_script(handwriting(rng.randint(min_points, max_points), rng)) for _ in range(count)]


def wire_bytes_per_point(batch_ms: int, blob_only: bool = False, seed: int = 2024, strokes: int = 64) -> float:
    """What a point of the benchmark's strokes costs on the wire when they are cut into batches
    of ``batch_ms``: each ``StrokePoints`` frame from the client (WebSocket header with its mask
    key, the msgpack envelope, the blob) over the points it carries; ``blob_only``: the point
    blob alone. StrokeBegin and StrokeEnd are left out (once a stroke, not per point)."""
    import msgpack

    from .wsload import frame_header

    rng = random.Random(seed)
    total = points_total = 0
    per_window = PEN_HZ * batch_ms
    for _ in range(strokes):
        points = handwriting(rng.randint(100, 200), rng)
        state = PointState()
        done = i = 0
        cseq = 1000  # a session some way in: cseq and start take their usual sizes
        while done < len(points):
            count = min((i + 1) * per_window // 1_000 - i * per_window // 1_000, len(points) - done)
            i += 1
            if count == 0:
                continue
            blob = encode_points(points[done : done + count], HAS_PRESSURE, state)
            cseq += 1
            payload = msgpack.packb([3, cseq, 7, done, count, blob], use_bin_type=True)
            total += len(blob) if blob_only else len(frame_header(2, len(payload))) + len(payload)
            points_total += count
            done += count
    return total / points_total
