"""Where a new room goes: the least-loaded live node under the load threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """What a node announces (every ``node_announce_s``): its id and public URL, its rooms and
    participants, its CPU use (0-1 of one core) and event-loop lag, and when (unix seconds)."""

    node_id: str
    url: str
    rooms: int
    participants: int
    cpu: float
    lag_ms: float
    announced_unix: float

    def to_wire(self) -> list[Any]:
        return [self.node_id, self.url, self.rooms, self.participants, self.cpu, self.lag_ms, self.announced_unix]

    @classmethod
    def from_wire(cls, raw: Any) -> NodeLoad:
        node_id, url, rooms, participants, cpu, lag_ms, announced = raw
        return cls(str(node_id), str(url), int(rooms), int(participants), float(cpu), float(lag_ms), float(announced))

    def alive(self, now: float, dead_after_s: float) -> bool:
        return now - self.announced_unix <= dead_after_s


def choose_node(nodes: list[NodeLoad], now: float, dead_after_s: float, max_cpu: float,
                max_participants: int) -> NodeLoad | None:
    """The live node a new room should go to: of those under both thresholds, the one with the
    least CPU in steps of 10 % of a core (rooms, participants, then id break ties, so every
    caller picks the same; the caller may count rooms from the directory, which is current
    where announcements are up to ``node_announce_s`` old); ``None`` when every live node is
    over a threshold (the caller says "busy, retry")."""
    fit = [n for n in nodes if n.alive(now, dead_after_s) and n.cpu < max_cpu and n.participants < max_participants]
    if not fit:
        return None
    return min(fit, key=lambda n: (round(n.cpu, 1), n.rooms, n.participants, n.node_id))
