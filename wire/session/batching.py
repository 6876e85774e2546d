"""Link-adaptive batching of ink: how long the client holds the newest ``StrokePoints`` op so
that points coming meanwhile merge into it (``Outbox.push``), one frame instead of several.

On a good link the hold is 0: a batch goes as soon as pacing and the window allow (the pen app
already batches at most 16 ms). When the link slows, each frame's fixed cost (WebSocket header,
msgpack envelope, TCP/IP headers, the ack) is what fills it: a 32 kbit/s link carries 240 Hz
pen input in 100 ms batches but not in 16 ms ones. So the hold grows with what the client can
see of the link:

* the ack delay: from sending an op to its ``Ack``, smoothed (``srtt``, as TCP's, gain 1/8),
  minus the server's ack coalescing (``ack_delay_s``) and a good link's round trip
  (``good_rtt_s``); half of what is left is held;
* the send backlog: how long the oldest op in flight has waited for its ``Ack``; an ack that
  is late says the link is behind before the ack itself comes back, and is taken as a delay;

kept across reconnects (a weak link stays weak), and never more than ``max_batch_s``
(default 100 ms), so ink is never late by more than that on top
of the link's own delay. Sans-I/O: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BATCH_S = 0.100


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_batch_s: float = MAX_BATCH_S  # the longest an ink batch is held for merging (0: never held)
    good_rtt_s: float = 0.150  # ack delays up to this (beyond the server's coalescing) hold nothing
    ack_delay_s: float = 0.040  # the server's TUTORWIRE_ACK_DELAY_MS, taken out of the ack delay
    min_hold_s: float = 0.016  # a shorter hold gains nothing over the pen app's own 16 ms batches: 0


class LinkBatcher:
    """The hold for the newest ink batch, from the ack delays and the backlog seen so far."""

    __slots__ = ("policy", "srtt_s")

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self.srtt_s: float | None = None  # smoothed delay from sending an op to its Ack

    def observe_ack(self, delay_s: float) -> None:
        """An op was acknowledged ``delay_s`` after it was sent."""
        delay_s = max(0.0, delay_s)
        self.srtt_s = delay_s if self.srtt_s is None else self.srtt_s + (delay_s - self.srtt_s) / 8

    def hold_s(self, oldest_in_flight_s: float = 0.0) -> float:
        """How long to hold the newest ink batch for more points to merge into it;
        ``oldest_in_flight_s``: how long the oldest unacknowledged op has been in flight."""
        p = self.policy
        if p.max_batch_s <= 0:
            return 0.0
        delay = max(self.srtt_s or 0.0, oldest_in_flight_s)
        hold = max(0.0, delay - p.ack_delay_s - p.good_rtt_s) / 2
        return min(hold, p.max_batch_s) if hold >= p.min_hold_s else 0.0
