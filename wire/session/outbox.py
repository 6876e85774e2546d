"""The client's ops that the server has not acknowledged yet, bounded, in cseq order.

Each entry is an op with its encoded frame. Entries are sent from the front in order, so the
outbox is always a run of entries sent on the current link (in flight) followed by a run still
to send. The bound counts both: ``max_ops`` entries and ``max_bytes`` bytes of frames; an op
that does not fit is refused (the caller reports it), never queued past the bound.

Coalescing: the points blobs of consecutive batches of one stroke concatenate into a valid
blob of both (``wire.ink``), so two ``StrokePoints`` ops of one stroke, the second starting
where the first ends, are one op ``StrokePoints(cseq of the second, stroke, start of the first,
both counts, both blobs)``. That is safe only while the server has seen neither: for the
waiting tail of the outbox at any time, and for the whole outbox right after a ``Welcome``
(which says exactly which cseqs the server has processed). The merged op keeps the later cseq,
so cseqs stay strictly increasing along the outbox (the protocol allows gaps).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .. import messages as m
from ..codec import encode
from ..rebase import Applied


@dataclass(slots=True)
class Entry:
    op: m.Op
    frame: bytes
    sent: bool = False  # sent on the current link
    ever_sent: bool = False  # sent on some link: the server may know its cseq
    queued_at: float = 0.0  # when its first points were queued (a merge keeps the earlier one)
    sent_at: float = 0.0  # when it was last sent
    applied: Applied | None = None  # what applying it locally did to the pages (wire.rebase)


SETTLED_KEPT = 256  # acked entries kept: a refusal's Error follows its Ack (as the JS outbox keeps)


class Outbox:
    def __init__(self, max_ops: int, max_bytes: int, max_points_per_message: int, max_frame_bytes: int) -> None:
        if min(max_ops, max_bytes, max_points_per_message, max_frame_bytes) <= 0:
            raise ValueError("outbox bounds must be positive")
        self.max_ops = max_ops
        self.max_bytes = max_bytes
        self.max_points = max_points_per_message
        self.max_frame = max_frame_bytes
        self._entries: deque[Entry] = deque()
        self._in_flight = 0  # the first _in_flight entries are sent on the current link
        self.bytes = 0
        self.acked_sent_at = 0.0  # see ack()
        self._settled: dict[int, Entry] = {}  # cseq -> entry, the last few acked (a refused op's Error follows its Ack)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def in_flight(self) -> int:
        """Entries sent on the current link and not acknowledged."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Entries not yet sent on the current link."""
        return len(self._entries) - self._in_flight

    @property
    def last_cseq(self) -> int:
        return self._entries[-1].op.cseq if self._entries else 0

    def ops(self) -> list[m.Op]:
        return [e.op for e in self._entries]

    def fits(self, frame_bytes: int) -> bool:
        """Whether one more op of ``frame_bytes`` stays within both bounds."""
        return len(self._entries) < self.max_ops and self.bytes + frame_bytes <= self.max_bytes

    # --- adding and sending -------------------------------------------------------------------

    def push(self, op: m.Op, frame: bytes, now: float = 0.0) -> bool:
        """Append ``op`` (the caller checked ``fits``), queued at ``now``; ``True`` if it merged
        into the waiting tail instead of adding an entry."""
        if self.waiting and isinstance(op, m.StrokePoints):
            tail = self._entries[-1]
            # not into an op sent on an earlier link: the server may have it (its Ack lost with
            # the link), and the merged op, resent, would start before the server's count (1015)
            merged = None if tail.ever_sent else self._merge(tail, op)
            if merged is not None:
                self.bytes += len(merged.frame) - len(tail.frame)
                self._entries[-1] = merged
                return True
        self._entries.append(Entry(op, frame, queued_at=now))
        self.bytes += len(frame)
        return False

    def _merge(self, first: Entry, op: m.StrokePoints) -> Entry | None:
        a = first.op
        if not (isinstance(a, m.StrokePoints) and a.stroke == op.stroke and op.start == a.start + a.count
                and a.count + op.count <= self.max_points and op.cseq > a.cseq):
            return None
        merged = m.StrokePoints(op.cseq, a.stroke, a.start, a.count + op.count, a.blob + op.blob)
        frame = encode(merged)
        if len(frame) > self.max_frame:
            return None
        return Entry(merged, frame, ever_sent=first.ever_sent, queued_at=first.queued_at)

    @property
    def oldest_sent_at(self) -> float | None:
        """When the oldest entry in flight on this link was sent (``None``: none is)."""
        return self._entries[0].sent_at if self._in_flight else None

    @property
    def tail(self) -> Entry | None:
        """The newest entry (the one later points of its stroke would merge into)."""
        return self._entries[-1] if self._entries else None

    def peek(self) -> Entry | None:
        """The first entry not sent on this link, without sending it."""
        return self._entries[self._in_flight] if self._in_flight < len(self._entries) else None

    def next_to_send(self) -> Entry | None:
        """The first entry not sent on this link, now marked sent; ``None`` if all are."""
        if self._in_flight >= len(self._entries):
            return None
        entry = self._entries[self._in_flight]
        entry.sent = entry.ever_sent = True
        self._in_flight += 1
        return entry

    # --- settling -----------------------------------------------------------------------------

    def ack(self, cseq: int) -> int:
        """Acks are cumulative: drop every entry up to ``cseq``; how many went. ``acked_sent_at``
        is then when the last of them that was sent on this link went (0: none was)."""
        dropped = 0
        entries = self._entries
        self.acked_sent_at = 0.0
        while entries and entries[0].op.cseq <= cseq:
            entry = entries.popleft()
            if entry.sent:
                self.acked_sent_at = entry.sent_at
            self.bytes -= len(entry.frame)
            if entry.sent:
                self._in_flight -= 1
            self._settled[entry.op.cseq] = entry
            dropped += 1
        while len(self._settled) > SETTLED_KEPT:
            del self._settled[next(iter(self._settled))]
        return dropped

    def discard(self, cseq: int) -> Entry | None:
        """Take out the entry of op ``cseq`` (refused, or not worth sending): it, held or just acked."""
        for i, entry in enumerate(self._entries):
            if entry.op.cseq == cseq:
                del self._entries[i]
                self.bytes -= len(entry.frame)
                if entry.sent:
                    self._in_flight -= 1
                return entry
        return self._settled.pop(cseq, None)

    def link_lost(self) -> None:
        """The link is gone: nothing is in flight on it any more. What the server got is only
        known at the next ``Welcome`` (see ``welcome``), so nothing is merged here."""
        for entry in self._entries:
            entry.sent = False
        self._in_flight = 0

    def welcome(self, acked_cseq: int) -> int:
        """The server has processed exactly the cseqs up to ``acked_cseq``: drop those, give
        ops that were never sent numbers above it if someone else (another tab or device of
        this participant) used theirs meanwhile, and coalesce the rest for the resend. Returns
        the highest cseq in the outbox afterwards (0 if empty)."""
        self.link_lost()
        entries = list(self._entries)
        kept = [e for e in entries if not e.ever_sent or e.op.cseq > acked_cseq]
        fresh = [e for e in kept if not e.ever_sent]
        if fresh and fresh[0].op.cseq <= acked_cseq:
            base = max([acked_cseq] + [e.op.cseq for e in kept if e.ever_sent])
            for n, e in enumerate(fresh, 1):
                op = _with_cseq(e.op, base + n)
                e.op, e.frame = op, encode(op)
        coalesced: list[Entry] = []
        for e in kept:
            merged = None
            if coalesced and isinstance(e.op, m.StrokePoints):
                merged = self._merge(coalesced[-1], e.op)
            if merged is not None:
                merged.ever_sent = merged.ever_sent or e.ever_sent
                coalesced[-1] = merged
            else:
                coalesced.append(e)
        self._entries = deque(coalesced)
        self.bytes = sum(len(e.frame) for e in coalesced)
        return self.last_cseq


def _with_cseq(op: m.Op, cseq: int) -> m.Op:
    return replace(op, cseq=cseq)
