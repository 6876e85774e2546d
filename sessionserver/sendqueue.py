"""A bounded queue of frames for one connection's writer."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator

from .metrics import COUNTS

FRAME_OVERHEAD_BYTES = 64  # what a queued frame costs beyond its bytes (the object, its slot)


class SendQueue:
    """Frames waiting to be written, bounded in frames (``max_frames``) and in bytes
    (``max_bytes``, counting each frame's bytes plus ``FRAME_OVERHEAD_BYTES``, and the batch the
    writer is sending). ``put`` never blocks: it refuses past either bound, and the caller
    applies the slow-consumer policy (close 4010; the client resumes).

    A join's catch-up is a *source* (``put_catch_up``): an iterator of frames read only as the
    writer has room (while less than half of ``max_bytes`` waits), so it counts against the
    bound without being held in memory whole. Everything put after it goes after it.

    Live audio has a lane of its own (``put_media``) with its own small bound: when a client
    falls behind, its oldest audio packets are dropped (stale audio is worse than none) and
    its ink, which must never be dropped, is not affected."""

    def __init__(self, max_frames: int, max_bytes: int = 1 << 62, max_media: int = 10) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._frames: deque[bytes] = deque()
        self._bytes = 0  # cost of the frames in _frames
        self._sending = 0  # cost of the batch the writer has, until it asks for the next one
        self._head: list[bytes] = []  # what goes before the catch-up (its Welcome)
        self._head_bytes = 0
        self._source: Iterator[bytes] | None = None
        self._media: deque[bytes] = deque(maxlen=max_media)
        self.media_dropped = 0
        self._ready = asyncio.Event()
        self.closed = False
        self.close_code: int | None = None  # set by finish(): close after the queued frames
        self.close_reason = ""

    def __len__(self) -> int:
        return len(self._head) + len(self._frames) + len(self._media) + (self._source is not None)

    @property
    def queued_bytes(self) -> int:
        """What the queue holds now, by the bound's count (the writer's batch included)."""
        return self._head_bytes + self._bytes + self._sending

    def put_media(self, frame: bytes) -> None:
        """Queue a live audio frame; past the lane's bound the oldest one is dropped."""
        if self.closed:
            return
        if len(self._media) == self._media.maxlen:
            self.media_dropped += 1
            COUNTS.audio_dropped += 1
        self._media.append(frame)
        self._ready.set()

    def put(self, frame: bytes) -> bool:
        if self.closed:
            return True  # the connection is going away; its frames no longer matter
        cost = len(frame) + FRAME_OVERHEAD_BYTES
        if len(self._frames) >= self.max_frames or self.queued_bytes + cost > self.max_bytes:
            return False
        self._frames.append(frame)
        self._bytes += cost
        self._ready.set()
        return True

    def put_catch_up(self, first: bytes, source: Iterator[bytes]) -> None:
        """Queue ``first`` (a Welcome) past the bound, then the frames of ``source`` as the writer
        has room; frames put later wait until ``source`` is exhausted."""
        self._head.append(first)
        self._head_bytes += len(first) + FRAME_OVERHEAD_BYTES
        self._source = source
        self._ready.set()

    def finish(self, code: int, reason: str, final: list[bytes]) -> None:
        """Send ``final`` after what is queued, then close with ``code``; refuse anything more.
        A catch-up still being read is dropped: the client resumes anyway."""
        if self.closed:
            return
        self._source = None
        self._frames.extendleft(reversed(self._head))  # a Welcome not yet sent still goes first
        self._bytes += self._head_bytes
        self._head, self._head_bytes = [], 0
        self._frames.extend(final)
        self._bytes += sum(len(f) + FRAME_OVERHEAD_BYTES for f in final)
        self.closed = True
        self.close_code, self.close_reason = code, reason
        self._ready.set()

    def discard(self) -> None:
        """Drop everything queued and refuse anything more (the connection is cut at once)."""
        self._source = None
        self._head, self._head_bytes = [], 0
        self._frames.clear()
        self._media.clear()
        self._bytes = self._sending = 0
        self.closed = True

    async def get_batch(self) -> list[bytes]:
        """The frames to write now (the previous batch is taken as written); waits while there
        is nothing and the queue is not finished."""
        self._sending = 0
        while (not self._head and not self._frames and not self._media and self._source is None
               and not self.closed):
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    def take(self) -> list[bytes]:
        """The frames to write now, without waiting (empty when there are none): the previous
        batch is taken as written, this one counts against the byte bound until the next call."""
        batch, self._head = self._head, []
        cost, self._head_bytes = self._head_bytes, 0
        if self._source is not None:  # as much of the catch-up as fits in half the bound
            budget = self.max_bytes // 2
            for frame in self._source:
                batch.append(frame)
                cost += len(frame) + FRAME_OVERHEAD_BYTES
                if self._bytes + cost >= budget:
                    break
            else:
                self._source = None
        if self._source is None:  # the catch-up is all out: the live frames follow it
            batch.extend(self._frames)
            self._frames.clear()
            cost += self._bytes
            self._bytes = 0
        self._sending = cost
        if self._media:  # live audio does not wait for the catch-up
            batch.extend(self._media)
            self._media.clear()
        return batch
