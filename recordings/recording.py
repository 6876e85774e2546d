"""The files of one recording, written synchronously: ``RecordingFiles`` is what the archiver's
writer thread holds for each live recording (``archiver.py``), and what a tool that records
without an event loop uses directly (``bench/archive.py``). Never call it on an event loop: every
method may write, and ``create``, ``flush(fsync=True)`` and ``finish`` fsync.

What it writes is ``docs/recordings.md``: the event log, an Ogg Opus file per speaker
(``audio-{role}-{pid}.opus``) and the manifest (protocol 2). Audio goes on the timeline at its
capture time mapped to the session clock by the speaker's latest measured clock offset where the
speaker gave one (the pen gateway, WebSocket clients), so network jitter does not smear it;
WebRTC packets (no capture time) go at their arrival time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire import Role
from wire import messages as m
from wire.audio import AudioPacket

from .eventlog import Kind, LogRecord, LogWriter
from .layout import LOG_NAME, audio_name
from .manifest import ClockOffset, Manifest, Participant, RecordingStatus, file_entries, write_manifest
from .ogg import OggOpusWriter

OGG_SERIAL_BASE = 0x7477_0000  # "tw": each speaker's stream serial is this plus its pid (mod 2**32)


@dataclass
class _Seen:
    role: Role
    user_id: str
    first_ms: int
    last_ms: int


class RecordingFiles:
    """One recording's open files and what its manifest will say. Not thread-safe: one thread."""

    def __init__(self, folder: Path, session_id: str, epoch: int, started_unix: float, log: LogWriter) -> None:
        self.folder = folder
        self.session_id = session_id
        self.epoch = epoch
        self.started_unix = started_unix
        self.log = log
        self.audio: dict[int, OggOpusWriter] = {}  # by pid
        self.seen: dict[int, _Seen] = {}  # by pid, from presence events
        self.offsets: dict[int, list[tuple[int, float, float]]] = {}  # by pid: (at_ms, offset_ms, rtt_ms)
        self.last_ms = 0
        self.manifest_due = False  # someone new was seen: rewrite the live manifest at the next flush
        self.finished = False

    @classmethod
    def create(cls, root: Path, session_id: str, epoch: int, started_unix: float) -> RecordingFiles:
        """The folder ``{session_id}-{epoch}`` with its log and a ``recording`` manifest, synced."""
        folder = root / f"{session_id}-{epoch}"
        folder.mkdir(parents=True, exist_ok=True)
        files = cls(folder, session_id, epoch, started_unix, LogWriter(folder / LOG_NAME))
        files.log.append(LogRecord(Kind.NOTE, 0, None, None, {"started": started_unix}))
        write_manifest(folder, files.manifest(RecordingStatus.RECORDING))
        files.log.flush(fsync=True)
        return files

    # -- what the room saw -------------------------------------------------------------------------

    def event(self, event: m.Event, frame: bytes) -> None:
        device = event.body.device_t0 if isinstance(event.body, m.StrokeBegin) else None
        self.log.append(LogRecord(Kind.EVENT, event.session_ms, device, event.pid, frame))
        self.last_ms = max(self.last_ms, event.session_ms)
        body = event.body
        if isinstance(body, m.Presence):
            seen = self.seen.get(event.pid)
            if seen is None or (seen.role, seen.user_id) != (body.role, body.user_id):
                first = seen.first_ms if seen is not None else event.session_ms
                self.seen[event.pid] = _Seen(body.role, body.user_id, first, event.session_ms)
                self.manifest_due = True
            else:
                seen.last_ms = event.session_ms

    def audio_packet(self, packet: AudioPacket) -> None:
        writer = self.audio.get(packet.pid)
        if writer is None:
            seen = self.seen.get(packet.pid)
            path = self.folder / audio_name(seen.role if seen else None, packet.pid)
            writer = self.audio[packet.pid] = OggOpusWriter(path, serial=(OGG_SERIAL_BASE + packet.pid) & 0xFFFFFFFF)
        at_ms = self.timeline_ms(packet.pid, packet.capture_ts, packet.session_ms)
        granule = writer.add(packet.payload, packet.samples, at_ms)
        self.log.append(LogRecord(Kind.AUDIO, packet.session_ms, packet.capture_ts or None, packet.pid,
                                  [packet.seq, packet.samples, granule]))
        self.last_ms = max(self.last_ms, packet.session_ms)

    def clock(self, pid: int, session_ms: int, offset_ms: float, rtt_ms: float) -> None:
        """A measured offset of the participant's device clock to the session clock (device - session)."""
        self.offsets.setdefault(pid, []).append((session_ms, offset_ms, rtt_ms))
        self.log.append(LogRecord(Kind.CLOCK, session_ms, None, pid, [offset_ms, rtt_ms]))

    def note(self, body: dict[str, Any]) -> None:
        self.log.append(LogRecord(Kind.NOTE, self.last_ms, None, None, body))

    def timeline_ms(self, pid: int, device_ms: int, arrival_ms: int) -> int:
        """Where something the device stamped ``device_ms`` belongs on the session timeline: its
        device time minus the latest measured offset, never after it arrived; the arrival time
        when there is no device time or no offset yet."""
        offsets = self.offsets.get(pid)
        if not device_ms or not offsets:
            return arrival_ms
        mapped = round(device_ms - offsets[-1][1])
        return max(0, min(mapped, arrival_ms))

    # -- writing -------------------------------------------------------------------------------------

    def flush(self, fsync: bool) -> None:
        """Write everything buffered (pages of audio too), and with ``fsync`` make it durable; the
        manifest is rewritten if someone new was seen since the last flush."""
        for writer in self.audio.values():
            writer.flush(fsync=fsync)
        self.log.flush(fsync=fsync)
        if self.manifest_due:
            self.manifest_due = False
            write_manifest(self.folder, self.manifest(RecordingStatus.RECORDING))

    def manifest(self, status: RecordingStatus, files: bool = False) -> Manifest:
        participants = [Participant(pid, s.role, s.user_id, s.first_ms, s.last_ms)
                        for pid, s in sorted(self.seen.items())]
        offsets = {pid: [ClockOffset(at, off, rtt) for at, off, rtt in values]
                   for pid, values in sorted(self.offsets.items())}
        names = [LOG_NAME, *(self.audio[pid].path.name for pid in sorted(self.audio))]
        return Manifest(
            session_id=self.session_id, epoch=self.epoch, status=status, started_unix=self.started_unix,
            participants=participants, clock_offsets=offsets, duration_ms=self.last_ms,
            files=file_entries(self.folder, names) if files else {},
        )

    def finish(self, reason: str) -> None:
        """Finalize: a ``NOTE {"ended": reason}``, the Ogg streams ended, everything synced, the
        manifest ``complete`` with the files' sizes and hashes. Finishing twice does nothing."""
        if self.finished:
            return
        self.note({"ended": reason})
        for writer in self.audio.values():
            writer.close()
        self.log.close(fsync=True)
        self.finished = True
        write_manifest(self.folder, self.manifest(RecordingStatus.COMPLETE, files=True))

    def abandon(self) -> None:
        """Close the files as they are (no final note, no EOS, manifest left ``recording``), for
        recovery to close out at the next start: after a failure that finishing would repeat."""
        self.finished = True
        for closer in (*(w.abandon for w in self.audio.values()), self.log.abandon):
            try:
                closer()
            except OSError:
                pass
