"""The client's pacing under the server's rate limit (``Welcome.rate_per_s``/``rate_burst``).

The server spends one token of a bucket (capacity ``rate_burst``, refilled at ``rate_per_s``,
full when the connection opens) on every frame after the Join and closes the connection at the
first frame that finds it empty (1007, close 4008). The client keeps a smaller, slower copy of
that bucket: ``rate_per_s * rate_factor`` tokens a second, at most ``rate_burst // 2`` saved,
full at the Welcome. Every frame it sends takes a token. Ops wait until one is there; frames
that must not wait (a Pong, audio, signalling) take theirs at once and may leave the bucket in
debt, which later ops then wait out. So over any interval the client sends at most
``burst // 2 + debt + rate * factor * t`` frames, where the server allows ``burst + rate * t``.
"""

from __future__ import annotations

_EPS = 1e-9  # float refill arithmetic must not leave a token at 0.9999999 forever


class Pacer:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("pacing needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    @classmethod
    def under(cls, rate_per_s: int, rate_burst: int, now: float, rate_factor: float = 0.9) -> Pacer:
        """The pacing for a server that announced ``rate_per_s`` and ``rate_burst``."""
        return cls(rate_per_s * rate_factor, max(1, rate_burst // 2), now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def ready(self, now: float) -> bool:
        """A frame that waits for its token may go now."""
        self._refill(now)
        return self.tokens >= 1.0 - _EPS

    def spend(self, now: float) -> None:
        """One frame goes out now (whether or not a token was there)."""
        self._refill(now)
        self.tokens -= 1.0

    def ready_at(self, now: float) -> float:
        """When ``ready`` will next be true (``now`` if it is)."""
        self._refill(now)
        return now if self.tokens >= 1.0 - _EPS else now + (1.0 - self.tokens) / self.rate
