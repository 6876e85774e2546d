"""Synthetic handwriting and helpers to draw it through a client."""

from __future__ import annotations

import random

from sessionserver.client import SessionClient
from wire import HAS_PRESSURE, Point, Role


def handwriting(n: int, seed: int, tilt: bool = False) -> list[Point]:
    """A smooth pen path sampled at 240 Hz with pressure (and tilt)."""
    rng = random.Random(seed)
    x, y, vx, vy, p = 20_000.0, 20_000.0, 30.0, 0.0, 800.0
    points = []
    for i in range(n):
        vx += rng.uniform(-6, 6)
        vy += rng.uniform(-6, 6)
        x, y = min(max(x + vx, 0), 65_535), min(max(y + vy, 0), 65_535)
        p = min(max(p + rng.uniform(-12, 12), 1), 4095)
        tx, ty = (30 + i // 40, -20) if tilt else (0, 0)
        points.append(Point(int(x), int(y), int(i * 1000 / 240), int(p), tx, ty))
    return points


async def draw(client: SessionClient, points: list[Point], batch: int = 4, *, page: int = 0,
               flags: int = HAS_PRESSURE) -> int:
    """One whole stroke, sent in batches of ``batch`` points; returns its id."""
    stroke = await client.begin_stroke(page, flags=flags)
    for i in range(0, len(points), batch):
        await client.add_points(stroke, points[i : i + batch])
    await client.end_stroke(stroke)
    return stroke


def pid(client: SessionClient, role: Role) -> int:
    """The id of the participant with ``role`` as ``client`` knows it (0: not known yet)."""
    return client.replica.pid_of(role) or 0


def finished(client: SessionClient, role: Role) -> list[list[Point]]:
    """The points of the ``role`` participant's ended strokes as ``client`` has them, in stroke
    order ([] while ``client`` does not know that participant)."""
    author = client.replica.pid_of(role)
    if author is None:
        return []
    strokes = sorted(client.replica.strokes(author), key=lambda s: s.stroke)
    return [s.points for s in strokes if s.ended]


def pages_of(client: SessionClient) -> list[dict[tuple[int, int], tuple[bool, list[Point]]]]:
    """Everything on every page, for comparing two clients' views."""
    return [{k: (s.ended, s.points) for k, s in page.items()} for page in client.replica.pages]
