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


@dataclass(frozen=True, slots=True)
class ClockFit:
    """The other clock minus ours as a line: ``offset_ms`` at our time ``at_ms``, changing by
    ``drift_ppm`` millionths of the time elapsed (the other clock runs that much faster)."""

    at_ms: float
    offset_ms: float
    drift_ppm: float

    def offset_at(self, t_ms: float) -> float:
        return self.offset_ms + self.drift_ppm * 1e-6 * (t_ms - self.at_ms)


@dataclass(frozen=True, slots=True)
class TimedSample:
    t_ms: float  # our clock, halfway through the exchange
    rtt_ms: float
    offset_ms: float


CARRY_TOLERANCE_MS = 20.0  # a carried model is kept while the first new sample agrees within this (+ RTT/2)
MAX_DRIFT_PPM = 500.0  # quartz is within about 100 ppm; a fit beyond this is noise
CUTOFF = 10.0  # samples with an RTT this many margins above the least do not count at all


class ClockModel:
    """Offset plus drift of another clock, from Ping/Pong exchanges (sans-I/O).

    The samples of the last ``window_ms`` (at most ``max_samples``) are kept. Queueing only ever
    adds delay, so only the low-RTT envelope is trusted: the samples whose RTT is within
    ``max(margin_ms, margin_ratio * min RTT)`` of the window's least. Over those, offset and drift
    are fitted by least squares once they span ``drift_span_ms`` (at least three samples); before
    that the offset is their mean and the drift 0. A jitter spike (a sample with a long round
    trip) therefore never moves the estimate, and the estimate moves smoothly as samples age."""

    def __init__(self, *, window_ms: float = 300_000.0, max_samples: int = 128, margin_ms: float = 2.0,
                 margin_ratio: float = 0.1, drift_span_ms: float = 20_000.0) -> None:
        self.window_ms = window_ms
        self.margin_ms = margin_ms
        self.margin_ratio = margin_ratio
        self.drift_span_ms = drift_span_ms
        self._samples: deque[TimedSample] = deque(maxlen=max_samples)
        self.fit: ClockFit | None = None
        self._carried = False  # samples of a previous connection, not yet checked against a new one

    def carry(self, previous: ClockModel) -> None:
        """Go on from ``previous``, the same participant's model on its last connection, so that a
        reconnect does not start over from one noisy sample. Call before the first ``add``. The
        first sample added is checked against it: if it disagrees by more than
        ``CARRY_TOLERANCE_MS`` plus half its round trip (another device clock, as after a reload),
        the carried samples are dropped and the model starts from that sample."""
        self._samples.extend(previous._samples)
        self.fit = previous.fit
        self._carried = bool(self._samples)

    @property
    def samples(self) -> int:
        return len(self._samples)

    def add(self, t0: float, t1: float, t2: float) -> ClockFit | None:
        """Record one exchange (``t0``, ``t2`` ours, ``t1`` theirs) and refit; ``None`` (ignored)
        if its times are impossible."""
        rtt = t2 - t0
        if rtt < 0:
            return None
        now = (t0 + t2) / 2
        if self._carried:
            self._carried = False
            if self.fit is not None and abs(t1 - now - self.fit.offset_at(now)) > CARRY_TOLERANCE_MS + rtt / 2:
                self._samples.clear()
        self._samples.append(TimedSample(now, rtt, t1 - now))
        while self._samples and now - self._samples[0].t_ms > self.window_ms:
            self._samples.popleft()
        self.fit = self._fit(now)
        return self.fit

    def offset_at(self, t_ms: float) -> float | None:
        return None if self.fit is None else self.fit.offset_at(t_ms)

    def _fit(self, now: float) -> ClockFit:
        least = min(s.rtt_ms for s in self._samples)
        scale = max(self.margin_ms, self.margin_ratio * least)
        env = [s for s in self._samples if s.rtt_ms <= least + CUTOFF * scale]
        weights = [1.0 / (1.0 + ((s.rtt_ms - least) / scale) ** 2) for s in env]
        total = sum(weights)
        mean_t = sum(w * s.t_ms for w, s in zip(weights, env, strict=True)) / total
        mean_o = sum(w * s.offset_ms for w, s in zip(weights, env, strict=True)) / total
        drift = 0.0
        if len(env) >= 3 and env[-1].t_ms - env[0].t_ms >= self.drift_span_ms:
            var = sum(w * (s.t_ms - mean_t) ** 2 for w, s in zip(weights, env, strict=True))
            cov = sum(w * (s.t_ms - mean_t) * (s.offset_ms - mean_o) for w, s in zip(weights, env, strict=True))
            drift = max(-MAX_DRIFT_PPM, min(MAX_DRIFT_PPM, cov / var * 1e6))
        line = ClockFit(mean_t, mean_o, drift)
        return ClockFit(now, line.offset_at(now), drift)
