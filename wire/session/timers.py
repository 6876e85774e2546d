"""Timer arithmetic shared by both ends: the ping cadence with its fast start, and deadlines.

Both machines expose ``get_timer()`` (the earliest moment ``handle_timer(now)`` has work, or
``None``) as aioquic's connection does; only the I/O shell reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence

# Pings at join: at once and several more within the first second, so that a clock offset
# good to a few ms (the least-delayed of several samples) is known almost at once; the
# recordings need it for the first strokes of a session. Then one every interval.
FAST_START_S: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)


class PingSchedule:
    """When the next Ping is due: at ``start + FAST_START_S[i]``, then every ``interval_s`` after
    the last of those. ``interval_s <= 0`` disables pinging altogether."""

    __slots__ = ("_index", "_next", "_origin", "fast_start", "interval_s")

    def __init__(self, interval_s: float, fast_start: Sequence[float] = FAST_START_S) -> None:
        if list(fast_start) != sorted(fast_start) or any(t < 0 for t in fast_start):
            raise ValueError("fast_start must be non-negative and ascending")
        self.interval_s = interval_s
        self.fast_start = tuple(fast_start) or (0.0,)
        self._next: float | None = None
        self._origin = 0.0
        self._index = 0

    def start(self, now: float) -> None:
        self._origin = now
        self._index = 0
        self._next = None if self.interval_s <= 0 else now + self.fast_start[0]

    def stop(self) -> None:
        self._next = None

    @property
    def due(self) -> float | None:
        return self._next

    def is_due(self, now: float) -> bool:
        return self._next is not None and now >= self._next

    def fired(self, now: float) -> None:
        """The ping of the current slot was sent (or skipped): schedule the next one. A shell
        that woke late does not get a burst of pings to catch up."""
        if self._next is None:
            return
        self._index += 1
        fast = self.fast_start
        if self._index < len(fast):
            self._next = max(now, self._origin + fast[self._index])
            return
        target = self._origin + fast[-1] + self.interval_s if self._index == len(fast) else self._next + self.interval_s
        self._next = target if target > now else now + self.interval_s


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of the deadlines that are set."""
    found = [d for d in deadlines if d is not None]
    return min(found) if found else None
