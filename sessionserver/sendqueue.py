"""A bounded queue of frames for one connection's writer."""

from __future__ import annotations

import asyncio
from collections import deque


class SendQueue:
    """Frames waiting to be written. ``put`` never blocks: it refuses when the queue is full,
    and the caller applies the slow-consumer policy (close 4010; the client resumes).

    Live audio has a lane of its own (``put_media``) with its own small bound: when a client
    falls behind, its oldest audio packets are dropped (stale audio is worse than none) and
    its ink, which must never be dropped, is not affected."""

    def __init__(self, max_frames: int, max_media: int = 10) -> None:
        self.max_frames = max_frames
        self._frames: deque[bytes] = deque()
        self._media: deque[bytes] = deque(maxlen=max_media)
        self.media_dropped = 0
        self._ready = asyncio.Event()
        self.closed = False
        self.close_code: int | None = None  # set by finish(): close after the queued frames
        self.close_reason = ""
        self._exempt = 0  # frames queued past the bound that do not count against it

    def __len__(self) -> int:
        return len(self._frames) + len(self._media)

    def put_media(self, frame: bytes) -> None:
        """Queue a live audio frame; past the lane's bound the oldest one is dropped."""
        if self.closed:
            return
        if len(self._media) == self._media.maxlen:
            self.media_dropped += 1
        self._media.append(frame)
        self._ready.set()

    def put(self, frame: bytes) -> bool:
        if self.closed:
            return True  # the connection is going away; its frames no longer matter
        if len(self._frames) - self._exempt >= self.max_frames:
            return False
        self._frames.append(frame)
        self._ready.set()
        return True

    def put_unbounded(self, frames: list[bytes]) -> None:
        """Queue frames past the bound: a join's catch-up (itself bounded by the op log) or a
        final error before closing."""
        self._frames.extend(frames)
        self._exempt += len(frames)
        self._ready.set()

    def finish(self, code: int, reason: str, final: list[bytes]) -> None:
        """Send ``final`` after what is queued, then close with ``code``; refuse anything more."""
        if self.closed:
            return
        self.put_unbounded(final)
        self.closed = True
        self.close_code, self.close_reason = code, reason
        self._ready.set()

    async def get_batch(self) -> list[bytes]:
        """All frames queued now; waits while the queue is empty and not finished."""
        while not self._frames and not self._media and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._frames)
        self._frames.clear()
        self._exempt = 0
        if self._media:
            batch.extend(self._media)
            self._media.clear()
        return batch
