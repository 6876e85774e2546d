"""The outgoing side of a WebRTC leg: Opus packets handed to aiortc as they are, to be packetized
and never encoded.

``MediaTimeline`` decides each packet's media time (the RTP timestamp, 48 kHz); it is pure and
takes ``now``. ``PassthroughTrack`` is the ``MediaStreamTrack`` the leg's sender reads: a bounded
queue that drops its oldest packet rather than hold up the speaker.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .packets import AudioPacket

SAMPLE_RATE = 48000
TIME_BASE = Fraction(1, SAMPLE_RATE)
_SEQ_MOD = 1 << 32


class MediaTimeline:
    """Media time for forwarded packets, as a listener's jitter buffer wants it.

    While a speaker talks, packets follow each other (``seq`` + 1 from the same participant): each starts
    where the previous one ended, however late or bunched it arrives, so network jitter upstream
    stays jitter and is not baked into the timestamps. Anything else (a silence, DTX, packets lost
    upstream, another speaker, a sender that restarted) advances by the real time that passed since
    the previous packet, as a browser's own sender does across a silence: the listener sees a gap in
    time with contiguous RTP sequence numbers (aiortc renumbers them), which it treats as a pause
    and not as a delay spike, so its buffer does not grow. Time never goes backwards.
    """

    def __init__(self) -> None:
        self._last: tuple[int, int, float] | None = None
        self._last_pts = 0
        self._next_pts = 0

    def stamp(self, pid: int, seq: int, samples: int, now: float) -> int:
        """The media time (48 kHz samples since the first packet) of a packet arriving at ``now``
        (seconds, monotonic)."""
        if self._last is None:
            pts = 0
        else:
            last_pid, last_seq, last_now = self._last
            if pid == last_pid and seq == (last_seq + 1) % _SEQ_MOD:
                pts = self._next_pts
            else:
                elapsed = round((now - last_now) * SAMPLE_RATE)
                pts = max(self._next_pts, self._last_pts + elapsed)
        self._last = (pid, seq, now)
        self._last_pts = pts
        self._next_pts = pts + samples
        return pts


class PassthroughTrack(MediaStreamTrack):
    """An audio track whose ``recv()`` returns ``av.Packet`` (Opus, ``time_base`` 1/48000), which
    aiortc's sender only packetizes. ``push`` never blocks: when ``limit`` packets wait, the oldest
    is dropped (a listener would rather lose 20 ms than fall behind)."""

    kind = "audio"

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._limit = limit
        self._clock = clock
        self._timeline = MediaTimeline()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.packets_out = 0
        self.packets_dropped = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, packet: AudioPacket) -> None:
        """Queue ``packet`` for sending; stamps its media time on arrival, so a dropped packet
        leaves a hole the listener conceals like a lost one."""
        if self.readyState != "live":
            return
        pts = self._timeline.stamp(packet.pid, packet.seq, packet.samples, self._clock())
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.packets_dropped += 1
        self._queue.append((pts, packet.payload))
        self._wake()

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        pts, payload = self._queue.popleft()
        out = av.Packet(payload)
        out.pts = pts
        out.time_base = TIME_BASE
        self.packets_out += 1
        return out

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
