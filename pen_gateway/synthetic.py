"""Generated handwriting for demos and benchmarks, sans-I/O: ``handwriting(...)`` is a seeded
timeline of samples (letters as loops of a few strokes, rows across the pad, pressure rising
and falling in each stroke, a little tilt), ``SyntheticAdapter`` plays it at its rate."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from .adapters import PacedAdapter
from .device import DeviceInfo, PenEvent, Phase, Sample, TiltKind

SYNTHETIC_PAD = DeviceInfo("synthetic pad", 0, 21_600, 0, 13_500, 100.0, 100.0, 8191, TiltKind.DEGREES, 240.0)


def handwriting(seconds: float, rate_hz: float = 240.0, seed: int = 0,
                info: DeviceInfo = SYNTHETIC_PAD) -> Iterator[PenEvent]:
    """``seconds`` of writing at ``rate_hz``: strokes of 0.15-0.6 s with 40-200 ms lifts."""
    rng = random.Random(seed)
    dt = 1.0 / rate_hz
    t = 0.0
    seq = 0
    w, h = info.x_max - info.x_min, info.y_max - info.y_min
    cx, cy = info.x_min + 0.05 * w, info.y_min + 0.08 * h
    while t < seconds:
        n = max(2, int(rng.uniform(0.15, 0.6) * rate_hz))
        r = rng.uniform(0.01, 0.03) * w
        phase0 = rng.uniform(0, 2 * math.pi)
        turns = rng.uniform(0.6, 1.8)
        for i in range(n):
            if t >= seconds:
                break
            u = i / (n - 1)
            a = phase0 + turns * 2 * math.pi * u
            x = cx + r * math.cos(a) + u * r * 1.5
            y = cy + r * 0.8 * math.sin(a)
            p = int(info.pressure_max * (0.25 + 0.6 * math.sin(math.pi * u)))
            phase = Phase.DOWN if i == 0 else Phase.MOVE
            yield Sample(seq, t, int(x), int(y), p, phase, tilt_x=int(30 + 10 * math.sin(a)),
                         tilt_y=int(-20 + 5 * math.cos(a)))
            seq += 1
            t += dt
        yield Sample(seq, t, int(x), int(y), 0, Phase.UP)
        seq += 1
        t += rng.uniform(0.04, 0.2)
        cx += r * 2.2
        if cx > info.x_max - 0.08 * w:
            cx = info.x_min + 0.05 * w
            cy += 0.07 * h
            if cy > info.y_max - 0.05 * h:
                cy = info.y_min + 0.08 * h


class SyntheticAdapter(PacedAdapter):
    def __init__(self, seconds: float = 3600.0, rate_hz: float = 240.0, seed: int = 0, speed: float = 1.0) -> None:
        info = SYNTHETIC_PAD if rate_hz == SYNTHETIC_PAD.nominal_rate_hz else \
            DeviceInfo(SYNTHETIC_PAD.name, 0, 21_600, 0, 13_500, 100.0, 100.0, 8191, TiltKind.DEGREES, rate_hz)
        super().__init__(info, handwriting(seconds, rate_hz, seed, info), speed=speed)
