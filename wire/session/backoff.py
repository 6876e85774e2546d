"""Reconnect delays: exponential backoff with full jitter, capped low, never giving up.

After the n-th failure in a row (n = 0, 1, 2, ...) the client waits a uniformly random time in
``[0, min(cap, initial * 2**n))``. Full jitter spreads the reconnects of many clients cut by the
same outage; the low cap bounds how long a client sits idle after its link comes back (at most
``cap`` plus the handshake). The counter goes back to 0 once a link has stayed up long enough.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial_s: float = 0.1
    cap_s: float = 1.0
    refused_retry_s: float = 5.0  # after a join refusal that may pass (2008 TOO_MANY_JOINS, 2009, 3004)

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.cap_s or self.refused_retry_s <= 0:
            raise ValueError("backoff needs 0 < initial_s <= cap_s and refused_retry_s > 0")

    def bound(self, failures: int) -> float:
        """The upper end of the delay after ``failures`` failures before this one."""
        return min(self.cap_s, self.initial_s * 2.0 ** min(failures, 64))


class Backoff:
    """Draws the delays of one client; ``rng`` is passed in so tests can seed it."""

    __slots__ = ("failures", "policy", "rng")

    def __init__(self, policy: BackoffPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt after a network failure (full jitter)."""
        delay = self.rng.uniform(0.0, self.policy.bound(self.failures))
        self.failures += 1
        return delay

    def refused_delay(self) -> float:
        """The wait after the server refused the join for a reason that may pass: long enough
        that a server counting joins (2008) is not kept busy."""
        self.failures += 1
        return self.policy.refused_retry_s * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0
