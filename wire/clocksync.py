"""Clock offset and round-trip time from Ping/Pong timestamps, sans-I/O.

The side that pings sends its clock ``t0``; the other answers with ``t0`` and its own clock
``t1``; the pinger reads its clock ``t2`` on the Pong. Then ``rtt = t2 - t0`` and the other
side's clock minus ours is ``offset = t1 - (t0 + t2) / 2`` (the answer is assumed to be taken
halfway). Of the last few samples the one with the smallest RTT is the least distorted by
queueing, so that one gives the estimate (the NTP clock filter, simplified).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClockSample:
    rtt_ms: float
    offset_ms: float


class ClockEstimator:
    def __init__(self, window: int = 8) -> None:
        self._samples: deque[ClockSample] = deque(maxlen=window)

    def add(self, t0: float, t1: float, t2: float) -> ClockSample | None:
        """Record one Ping/Pong exchange; ``None`` (ignored) if its times are impossible."""
        rtt = t2 - t0
        if rtt < 0:
            return None
        sample = ClockSample(rtt, t1 - (t0 + t2) / 2)
        self._samples.append(sample)
        return sample

    @property
    def samples(self) -> int:
        """How many exchanges the estimate rests on (at most the window)."""
        return len(self._samples)

    @property
    def best(self) -> ClockSample | None:
        return min(self._samples, key=lambda s: s.rtt_ms, default=None)

    @property
    def rtt_ms(self) -> float | None:
        """The latest round trip (what a connection indicator shows)."""
        return self._samples[-1].rtt_ms if self._samples else None

    @property
    def offset_ms(self) -> float | None:
        """The other clock minus ours, from the least-delayed recent sample."""
        best = self.best
        return None if best is None else best.offset_ms
