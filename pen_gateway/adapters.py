"""The one small interface every pen adapter implements, and the pacing shell the file-backed
adapters share.

An adapter declares its device once (``info``, a ``DeviceInfo``) and yields ``PenEvent``s
(``Sample``, ``Loss``, ``PageTurn``, ``DeviceGone``, ``DeviceBack``) from ``events()``, an async
iterator, until ``close()``. ``Sample.host_s`` is on ``time.monotonic()``; samples are numbered
from 0 in ``seq``. That is all the gateway needs: a vendor SDK becomes an adapter by turning its
callbacks into those events (docs/pen-adapters.md).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable

from .device import DeviceInfo, PenEvent, Sample


class PenAdapter(abc.ABC):
    info: DeviceInfo

    @abc.abstractmethod
    def events(self) -> AsyncIterator[PenEvent]:
        """The device's events, in order, until ``close()`` (or the end of a file)."""

    async def close(self) -> None:  # noqa: B027 - adapters without resources need nothing here
        """Release the device; ``events()`` ends."""


class PacedAdapter(PenAdapter):
    """Yields events of a timeline (``host_s`` from any origin) at ``speed`` times real time,
    each re-stamped with the monotonic time it is yielded at (``clock``)."""

    def __init__(self, info: DeviceInfo, timeline: Iterable[PenEvent], *, speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.info = info
        self._timeline = timeline
        self.speed = speed
        self._clock = clock
        self._closed = asyncio.Event()

    async def events(self) -> AsyncIterator[PenEvent]:
        start = self._clock()
        origin: float | None = None
        for event in self._timeline:
            if self._closed.is_set():
                return
            t = event.host_s
            if origin is None:
                origin = t
            due = start + (t - origin) / self.speed
            wait = due - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)  # the device's own pace: this is the input, not a wait for an event
            yield _restamped(event, max(due, start))

    async def close(self) -> None:
        self._closed.set()


def _restamped(e: PenEvent, host_s: float) -> PenEvent:
    if type(e) is Sample:  # the hot path: built directly (dataclasses.replace costs 5x as much)
        return Sample(e.seq, host_s, e.x, e.y, e.pressure, e.phase, e.tool, e.tilt_x, e.tilt_y, e.device_ms)
    return dataclasses.replace(e, host_s=host_s)


def renumber(events: Iterable[PenEvent]) -> Iterable[PenEvent]:
    """Samples numbered 0, 1, 2, ... in order (files joined end to end keep counting)."""
    n = 0
    for e in events:
        if isinstance(e, Sample):
            e = dataclasses.replace(e, seq=n)
            n += 1
        yield e
