"""Pen gateway test helpers: a WAV file of known audio, the strokes a replay must deliver, and
a gateway run in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from pen_gateway.device import DeviceInfo, PenEvent, Sample
from pen_gateway.gateway import Gateway
from pen_gateway.pages import PageMap
from pen_gateway.strokes import Begin, Points, StrokeBuilder
from sessionserver.client import SessionClient


def write_wav(path: Path, seconds: float, rate: int = 48000, freq: float = 440.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * freq * t) * 0.3 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def expected_strokes(info: DeviceInfo, timeline: list[PenEvent]) -> list[list[tuple[int, int, int, int, int]]]:
    """(x, y, pressure, tilt_x, tilt_y) of every point of every stroke, as the page map makes them."""
    builder = StrokeBuilder(PageMap(info))
    strokes: list[list[tuple[int, int, int, int, int]]] = []
    for e in timeline:
        if isinstance(e, Sample):
            builder.feed(e)
    builder.end_open()
    for action in builder.flush(float("inf")):
        if isinstance(action, Begin):
            strokes.append([])
        elif isinstance(action, Points):
            strokes[-1].extend((p.x, p.y, p.pressure, p.tilt_x, p.tilt_y) for p in action.points)
    return strokes


def delivered(student: SessionClient, pid: int) -> list[list[tuple[int, int, int, int, int]]]:
    return [[(p.x, p.y, p.pressure, p.tilt_x, p.tilt_y) for p in s.points] for s in student.replica.strokes(pid)]


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
