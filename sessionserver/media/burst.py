"""Live audio's writes of one event-loop iteration, sent together when the iteration's input is
handled: ``later(send, item)`` calls ``send(item)`` from a callback scheduled once per iteration.

Why: every packet a listener gets is a socket write that wakes the process reading that
socket if it sleeps. Writes made one by one, with each speaker's packet handled in between,
let a reader go back to sleep between them, so nearly every write pays for a wake-up (on
loopback the writer pays for it: measured as the largest kernel cost of forwarding). Sent back
to back after the iteration's reads, the writes to one reader mostly find it awake. The delay
is the rest of the iteration (microseconds); the order of one listener's packets is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["flush", "later"]

logger = logging.getLogger(__name__)


class _Burst:
    __slots__ = ("calls", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[tuple[Callable[[Any], None], Any]] = []

    def flush(self) -> None:
        calls, self.calls = self.calls, []
        for send, item in calls:
            try:
                send(item)
            except Exception:  # one listener's fault is its own
                logger.exception("a deferred audio write failed")


_current: _Burst | None = None  # the running loop's (a new loop, as in tests, gets a new one)


def later(send: Callable[[Any], None], item: Any) -> None:
    """Call ``send(item)`` once this loop iteration's callbacks have run (in the order asked)."""
    global _current
    loop = asyncio.get_running_loop()
    burst = _current
    if burst is None or burst.loop is not loop:
        burst = _current = _Burst(loop)
    if not burst.calls:
        loop.call_soon(burst.flush)
    burst.calls.append((send, item))


def flush() -> None:
    """Make the writes that wait now, without waiting for the end of the iteration (its scheduled
    callback then finds nothing)."""
    if _current is not None:
        _current.flush()
