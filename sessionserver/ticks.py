"""One loop timer for many connections: wakes rounded up to a tick and shared.

Every session connection's machine wants a wake for its next timer (the held ack, 40 ms after an
op; the next ping; the join timeout). Arming an event-loop timer of its own for each costs a
``TimerHandle`` and a cancel per op at ink rates, about a sixth of the server's CPU at 200
sessions. Here wakes are rounded up to the next ``TICK_S`` (5 ms) and every connection due in the
same tick shares one loop timer, so a tick costs one timer however many connections it wakes.
A wake is never early and at most one tick late; a wake whose tick is already being run goes to
the next tick (a machine that keeps asking for "now" cannot starve the loop).
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Callable

TICK_S = 0.005

Fire = Callable[[int], None]  # called with the tick it was woken for


class Ticker:
    """Shared wakes on one event loop; ``clock`` is the connections' monotonic clock."""

    __slots__ = ("_buckets", "_clock", "_loop", "_running", "tick_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float], tick_s: float = TICK_S) -> None:
        self._loop = loop
        self._clock = clock
        self.tick_s = tick_s
        # by tick: its loop timer and who it wakes (by owner: a wake is cancelled by its owner)
        self._buckets: dict[int, tuple[asyncio.TimerHandle, dict[int, Fire]]] = {}
        self._running = -1  # the tick whose wakes are being run

    def wake(self, due: float, owner: object, fire: Fire) -> int:
        """Call ``fire(tick)`` at ``due`` or within a tick after; returns that tick. ``owner``
        has at most one wake a tick (a second replaces the first)."""
        tick = math.ceil(due / self.tick_s)
        if tick <= self._running:
            tick = self._running + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            handle = self._loop.call_later(max(0.0, tick * self.tick_s - self._clock()), self._run, tick)
            bucket = self._buckets[tick] = (handle, {})
        bucket[1][id(owner)] = fire
        return tick

    def cancel(self, tick: int, owner: object) -> None:
        """Drop ``owner``'s wake at ``tick`` (nothing if it has none): nothing keeps it alive."""
        bucket = self._buckets.get(tick)
        if bucket is not None and bucket[1].pop(id(owner), None) is not None and not bucket[1]:
            bucket[0].cancel()
            del self._buckets[tick]

    def _run(self, tick: int) -> None:
        bucket = self._buckets.pop(tick, None)
        if bucket is None:
            return
        self._running = tick
        try:
            for fire in bucket[1].values():
                fire(tick)  # each catches its own faults
        finally:
            self._running = -1

    def pending(self) -> int:
        """How many wakes wait (tests, diagnostics)."""
        return sum(len(b[1]) for b in self._buckets.values())


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = weakref.WeakKeyDictionary()


def ticker(clock: Callable[[], float]) -> Ticker:
    """The running loop's ticker for ``clock`` (one a loop: a server has one clock)."""
    loop = asyncio.get_running_loop()
    found = _tickers.get(loop)
    if found is None or found._clock is not clock:
        found = _tickers[loop] = Ticker(loop, clock)
    return found
