"""The archiver's I/O shell: one ``SessionRecorder`` per live room writes its event log, one Ogg
Opus file per speaker and its manifest, as the session happens.

Everything a recorder is given is buffered in memory and written by ``flush`` (the archiver
flushes every ``flush_s``, so at most that much is at risk in a crash); ``close`` finalizes
atomically: flush, fsync, end the Ogg streams, manifest ``complete`` by write-and-rename.
On start, ``Archiver.start`` recovers recordings a crash left open (``recovery.recover_all``).

Audio goes on the timeline at its capture time mapped to the session clock by the speaker's
measured clock offset where the speaker gave one (the pen gateway, WebSocket clients), so
network jitter does not smear it; WebRTC packets (no capture time) go at their arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wire import Seat
from wire import messages as m
from wire.audio import AudioPacket

from .eventlog import Kind, LogRecord, LogWriter
from .manifest import ClockOffset, Manifest, Participant, RecordingStatus, file_entries, write_manifest
from .ogg import OggOpusWriter
from .recovery import recover_all

log = logging.getLogger("tutorwire.archiver")
LOG_NAME = "events.log"


def audio_name(seat: Seat) -> str:
    return f"audio-{seat.role}.opus"


@dataclass
class _Seen:
    user_id: str
    first_ms: int
    last_ms: int


@dataclass
class SessionRecorder:
    folder: Path
    session_id: str
    epoch: int
    started_unix: float
    log: LogWriter
    audio: dict[Seat, OggOpusWriter] = field(default_factory=dict)
    seen: dict[Seat, _Seen] = field(default_factory=dict)
    offsets: dict[Seat, list[tuple[int, float, float]]] = field(default_factory=dict)
    last_ms: int = 0
    accepting: bool = True  # False once closing (or failed): nothing more is buffered
    failed: bool = False
    closed: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set when the recording is final

    @classmethod
    def open(cls, root: Path, session_id: str, epoch: int, started_unix: float) -> SessionRecorder:
        folder = root / f"{session_id}-{epoch}"
        folder.mkdir(parents=True, exist_ok=True)
        recorder = cls(folder, session_id, epoch, started_unix, LogWriter(folder / LOG_NAME))
        recorder.log.append(LogRecord(Kind.NOTE, 0, None, None, {"started": started_unix}))
        write_manifest(folder, recorder.manifest(RecordingStatus.RECORDING))
        recorder.log.flush(fsync=True)
        return recorder

    # -- what the room tells it ----------------------------------------------------------------
    # A recording must never take the live session down with it: a failure here (a full disk,
    # a bug) is logged once, the recording stops taking input, and the session goes on.

    def on_event(self, event: m.Event, frame: bytes) -> None:
        self._guard(self._on_event, event, frame)

    def on_audio(self, packet: AudioPacket) -> None:
        self._guard(self._on_audio, packet)

    def on_clock(self, seat: Seat, session_ms: int, offset_ms: float, rtt_ms: float) -> None:
        """A measured offset of the seat's device clock to the session clock (device - session)."""
        self._guard(self._on_clock, seat, session_ms, offset_ms, rtt_ms)

    def _guard(self, method: Callable[..., None], *args: object) -> None:
        if not self.accepting:
            return
        try:
            method(*args)
        except Exception:
            self.accepting = False
            self.failed = True
            log.exception("recording %s failed; the session goes on unrecorded from here", self.folder.name)

    def _on_event(self, event: m.Event, frame: bytes) -> None:
        if not self.accepting:
            return
        device = event.body.device_t0 if isinstance(event.body, m.StrokeBegin) else None
        self.log.append(LogRecord(Kind.EVENT, event.session_ms, device, int(event.seat), frame))
        self.last_ms = max(self.last_ms, event.session_ms)
        if isinstance(event.body, m.Presence):
            seen = self.seen.get(event.seat)
            if seen is None:
                self.seen[event.seat] = _Seen(event.body.user_id, event.session_ms, event.session_ms)
            else:
                seen.last_ms = event.session_ms

    def _on_audio(self, packet: AudioPacket) -> None:
        if not self.accepting:
            return
        writer = self.audio.get(packet.seat)
        if writer is None:
            writer = self.audio[packet.seat] = OggOpusWriter(self.folder / audio_name(packet.seat),
                                                             serial=0x7477_0000 + int(packet.seat))
        at_ms = self.timeline_ms(packet.seat, packet.capture_ts, packet.session_ms)
        granule = writer.add(packet.payload, packet.samples, at_ms)
        self.log.append(LogRecord(Kind.AUDIO, packet.session_ms, packet.capture_ts or None, int(packet.seat),
                                  [packet.seq, packet.samples, granule]))
        self.last_ms = max(self.last_ms, packet.session_ms)

    def _on_clock(self, seat: Seat, session_ms: int, offset_ms: float, rtt_ms: float) -> None:
        if not self.accepting:
            return
        self.offsets.setdefault(seat, []).append((session_ms, offset_ms, rtt_ms))
        self.log.append(LogRecord(Kind.CLOCK, session_ms, None, int(seat), [offset_ms, rtt_ms]))

    def timeline_ms(self, seat: Seat, device_ms: int, arrival_ms: int) -> int:
        """Where something the device stamped ``device_ms`` belongs on the session timeline: its
        device time minus the latest measured offset, never after it arrived; the arrival time
        when there is no device time or no offset yet."""
        offsets = self.offsets.get(seat)
        if not device_ms or not offsets:
            return arrival_ms
        mapped = round(device_ms - offsets[-1][1])
        return max(0, min(mapped, arrival_ms))

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> list[int]:
        """Write everything buffered (on the event loop: a few small writes to the page cache);
        the descriptors to fsync, which the archiver does off the loop."""
        for writer in self.audio.values():
            writer.flush(fsync=False)
        self.log.flush(fsync=False)
        return [self.log.fileno(), *(w.fileno() for w in self.audio.values())]

    def manifest(self, status: RecordingStatus, files: bool = False) -> Manifest:
        participants = [Participant(seat.role, s.user_id, s.first_ms, s.last_ms)
                        for seat, s in sorted(self.seen.items())]
        offsets = {seat.role: [ClockOffset(at, off, rtt) for at, off, rtt in values]
                   for seat, values in self.offsets.items()}
        names = [LOG_NAME, *(audio_name(seat) for seat in sorted(self.audio))]
        return Manifest(
            session_id=self.session_id, epoch=self.epoch, status=status, started_unix=self.started_unix,
            participants=participants, clock_offsets=offsets, duration_ms=self.last_ms,
            files=file_entries(self.folder, names) if files else {},
        )

    def close(self, reason: str) -> None:
        """Finalize: everything written and synced, Ogg streams ended, manifest complete. Runs
        off the event loop once ``accepting`` is False, so nothing else touches the files."""
        if self.closed:
            return
        self.accepting = False
        self.log.append(LogRecord(Kind.NOTE, self.last_ms, None, None, {"ended": reason}))
        for writer in self.audio.values():
            writer.close()
        self.log.flush(fsync=True)
        self.log.close()
        self.closed = True
        write_manifest(self.folder, self.manifest(RecordingStatus.COMPLETE, files=True))


class Archiver:
    """All recorders of this process, with the periodic flush."""

    def __init__(self, root: Path, flush_s: float, wall_clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.flush_s = flush_s
        self.wall_clock = wall_clock
        self.recorders: dict[str, SessionRecorder] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        reports = await asyncio.to_thread(recover_all, self.root, self.wall_clock())
        for report in reports:
            log.warning("recovered an interrupted recording: %s", report)
        self._task = asyncio.create_task(self._flush_loop())

    def open(self, session_id: str, epoch: int) -> SessionRecorder:
        recorder = SessionRecorder.open(self.root, session_id, epoch, self.wall_clock())
        self.recorders[f"{session_id}-{epoch}"] = recorder
        return recorder

    async def close(self, recorder: SessionRecorder, reason: str) -> None:
        self.recorders.pop(recorder.folder.name, None)
        recorder.accepting = False
        try:
            await asyncio.to_thread(recorder.close, reason)
        except OSError:  # left as it is on disk; the next start recovers it as interrupted
            log.exception("recording %s could not be finalized", recorder.folder.name)
        finally:
            recorder.done.set()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)  # the cadence itself: nothing to wait for
            await self.flush_all()

    async def flush_all(self) -> None:
        fds: list[int] = []
        try:
            for recorder in list(self.recorders.values()):
                if recorder.accepting:
                    try:
                        fds += recorder.flush()
                    except OSError:
                        recorder.accepting, recorder.failed = False, True
                        log.exception("recording %s cannot be written; it stops here", recorder.folder.name)
            if fds:
                await asyncio.to_thread(_fsync_all, fds)
        except OSError:
            log.exception("flushing recordings failed; retrying at the next flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for recorder in list(self.recorders.values()):
            await self.close(recorder, "server shut down")


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):  # a recording closed meanwhile; its close synced it
            os.fsync(fd)
