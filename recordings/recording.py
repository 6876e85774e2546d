"""The files of one recording, written synchronously: ``RecordingFiles`` is what the archiver's
writer thread holds for each live recording (``archiver.py``), and what a tool that records
without an event loop uses directly (``bench/archive.py``). Never call it on an event loop: every
method may write, and ``create``, ``flush(fsync=True)`` and ``finish`` fsync.

What it writes is ``docs/recordings.md``: the event log, an Ogg Opus file per speaker
(``audio-{role}-{pid}.opus``) and the manifest (protocol 2). Audio goes on the timeline at its
capture time mapped to the session clock by the speaker's clock model (offset plus drift, from the
server's pings) where the speaker gave one (the pen gateway, WebSocket clients), so network jitter
does not smear it; a speaker's packets that come before its clock is known are held (``SyncConfig``)
and placed once it is. WebRTC packets (no capture time) go at their arrival time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire import Role
from wire import messages as m
from wire.audio import AudioPacket

from . import RecordingError
from .eventlog import Kind, LogRecord, LogWriter
from .exports.model import MAX_AHEAD_MS, believable, model_to_session
from .folderlock import FolderLock
from .layout import LOG_NAME, audio_name, late_audio_name
from .manifest import (
    ClockOffset,
    Device,
    LateAudio,
    Manifest,
    Move,
    Participant,
    RecordingStatus,
    file_entries,
    write_manifest,
)
from .ogg import SAMPLES_PER_MS, OggOpusWriter

OGG_SERIAL_BASE = 0x7477_0000  # "tw": each speaker's stream serial is this plus its pid (mod 2**32)
LATE_SERIAL_BASE = 0x746C_0000  # "tl": each speaker's late stream
LATE_HOLD_PACKETS = 3000  # late packets held for their speaker's clock at most (a minute of 20 ms packets)
PEN_DEVICE = "pen"  # the device id of the pen gateway's pairing grant (sessionserver.auth)
RECENT_PACKETS = 1 << 16  # (seq, capture_ts) kept per speaker to drop a late packet it has already


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """How long a speaker's audio waits for its clock. Packets with a capture time are held until
    ``settle_samples`` clock measurements of their speaker came (the server's fast-start pings
    give five within about a second of the join), or until the held ones span ``hold_ms`` of
    arrival time or number ``hold_packets``; then they are placed with the clock model as it
    stands (or at their arrival times if there is none)."""

    hold_ms: int = 3000
    hold_packets: int = 150
    settle_samples: int = 5


DEFAULT_SYNC = SyncConfig()


@dataclass(frozen=True, slots=True)
class ClockModelAt:
    """A participant's device clock minus the session clock, ``offset_ms`` at session ``at_ms``,
    changing by ``drift_ppm`` (what the server's ``wire.clocksync.ClockModel`` said then)."""

    at_ms: int
    offset_ms: float
    drift_ppm: float

    def to_session(self, device_ms: float) -> float:
        return model_to_session(device_ms, self.at_ms, self.offset_ms, self.drift_ppm)


class _Recent:
    """A set that remembers its last ``bound`` items."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._items: dict[tuple[int, int], None] = {}

    def add(self, item: tuple[int, int]) -> None:
        self._items[item] = None
        if len(self._items) > self.bound:
            del self._items[next(iter(self._items))]

    def __contains__(self, item: object) -> bool:
        return item in self._items


@dataclass
class _Seen:
    role: Role
    user_id: str
    first_ms: int
    last_ms: int


class RecordingFiles:
    """One recording's open files and what its manifest will say. Not thread-safe: one thread."""

    def __init__(self, folder: Path, session_id: str, epoch: int, started_unix: float, log: LogWriter,
                 sync: SyncConfig = DEFAULT_SYNC) -> None:
        self.folder = folder
        self.sync = sync
        self.session_id = session_id
        self.epoch = epoch
        self.started_unix = started_unix
        self.log = log
        self.audio: dict[int, OggOpusWriter] = {}  # by pid
        self.seen: dict[int, _Seen] = {}  # by pid, from presence events
        # by pid: (at_ms, offset_ms, rtt_ms, drift_ppm)
        self.offsets: dict[int, list[tuple[int, float, float, float]]] = {}
        self.models: dict[int, ClockModelAt] = {}  # by pid: the latest
        self.clock_counts: Counter[int] = Counter()
        self.settled: set[int] = set()  # pids whose clock model is logged and used as it comes
        self._rtt: dict[int, float] = {}  # by pid: the latest measurement's round trip
        self.held: dict[int, list[AudioPacket]] = {}  # by pid: packets waiting for the clock
        self.late: dict[int, OggOpusWriter] = {}  # by pid: the late stream (AudioLate)
        self.held_late: dict[int, list[AudioPacket]] = {}  # by pid: late packets waiting for the clock
        self.late_counts: Counter[int] = Counter()  # by pid: late packets placed
        self.late_span: dict[int, tuple[int, int]] = {}  # by pid: session ms of the first and last placed
        self.late_repeats = 0  # packets dropped as already recorded (a repeated upload)
        self._recent: dict[int, _Recent] = {}  # by pid: the packets recorded (with a capture time)
        # A participant's clock is that of the first device it was measured on (``models``); a
        # second device of it (the pen gateway beside the browser) has a model of its own here,
        # logged as CLOCK records that name the device and kept in the manifest's ``devices``.
        self.primary: dict[int, str] = {}  # by pid: the device whose clock ``models`` holds
        self.device_models: dict[tuple[int, str], ClockModelAt] = {}
        self.device_offsets: dict[tuple[int, str], list[ClockOffset]] = {}
        self.devices_seen: dict[tuple[int, str], None] = {}  # devices ("" aside) that sent a clock
        self.last_ms = 0
        self.manifest_due = False  # someone new was seen: rewrite the live manifest at the next flush
        self.finished = False
        self.lock: FolderLock | None = None  # held while this process writes the folder (folderlock.py)
        self.last_seq = 0  # of the last event logged: an event at or below it is a repeat, skipped
        self.repeats = 0  # events skipped as repeats (a resumed recording fed its stream again)
        self.moves: list[Move] = []  # the session's moves between nodes (the manifest's ``moves``)
        self.recovery: dict[str, Any] | None = None  # a recovery report the folder had before a resume

    @classmethod
    def create(cls, root: Path, session_id: str, epoch: int, started_unix: float,
               sync: SyncConfig = DEFAULT_SYNC) -> RecordingFiles:
        """The folder ``{session_id}-{epoch}`` with its log and a ``recording`` manifest, synced."""
        folder = root / f"{session_id}-{epoch}"
        folder.mkdir(parents=True, exist_ok=True)
        lock = FolderLock.take(folder, session_id)
        if lock is None:
            raise RecordingError(f"{folder.name} is being written by another process")
        try:
            files = cls(folder, session_id, epoch, started_unix, LogWriter(folder / LOG_NAME), sync)
        except BaseException:
            lock.release()
            raise
        files.lock = lock
        files.log.append(LogRecord(Kind.NOTE, 0, None, None, {"started": started_unix}))
        write_manifest(folder, files.manifest(RecordingStatus.RECORDING))
        files.log.flush(fsync=True)
        return files

    # -- what the room saw -------------------------------------------------------------------------

    def event(self, event: m.Event, frame: bytes) -> None:
        """Log a room event; one at or below the last seq logged is a repeat and is skipped (a
        resumed recording is fed every event its room's stream holds, from seq 1)."""
        if event.seq <= self.last_seq:
            self.repeats += 1
            return
        self.last_seq = event.seq
        device = event.body.device_t0 if isinstance(event.body, m.StrokeBegin) else None
        self.log.append(LogRecord(Kind.EVENT, event.session_ms, device, event.pid, frame))
        self.last_ms = max(self.last_ms, event.session_ms)
        body = event.body
        if isinstance(body, m.Presence):
            self._saw(event.pid, body.role, body.user_id, event.session_ms)
        elif isinstance(body, m.Roster):  # a class's viewers, coalesced
            for change in body.changes:
                self._saw(change.pid, change.role, change.user_id, event.session_ms)

    def _saw(self, pid: int, role: Role, user_id: str, session_ms: int) -> None:
        seen = self.seen.get(pid)
        if seen is None or (seen.role, seen.user_id) != (role, user_id):
            first = seen.first_ms if seen is not None else session_ms
            self.seen[pid] = _Seen(role, user_id, first, session_ms)
            self.manifest_due = True
        else:
            seen.last_ms = session_ms

    def audio_packet(self, packet: AudioPacket) -> None:
        """A speaker's packet: placed at once by its capture time once its clock is settled (or by
        its arrival time if it has none), else held until then (``SyncConfig``)."""
        if not packet.capture_ts:
            self._place(packet)
            return
        recent, key = self._recent_of(packet.pid), (packet.seq, packet.capture_ts)
        if key in recent:  # sent live again after a reconnect: recorded once
            self.late_repeats += 1
            return
        recent.add(key)
        held = self.held.get(packet.pid)
        if held is None and packet.pid in self.settled:
            self._place(packet)
            return
        if held is None:
            held = self.held[packet.pid] = []
        held.append(packet)
        self.last_ms = max(self.last_ms, packet.session_ms)
        if len(held) >= self.sync.hold_packets or packet.session_ms - held[0].session_ms >= self.sync.hold_ms:
            self.release(packet.pid)

    def release(self, pid: int) -> None:
        """Place the packets held for ``pid``'s clock, with the model as it stands (which is
        logged from then on, settled or not)."""
        held = self.held.pop(pid, [])
        if pid not in self.settled and pid in self.models:
            self._settle(pid)
        for packet in held:
            self._place(packet)
        for packet in self.held_late.pop(pid, []):
            self._place_late(packet)

    def late_audio_packet(self, packet: AudioPacket) -> None:
        """A packet its sender could not play live (``AudioLate``): placed at its capture time
        through the speaker's clock model in the late stream ``audio-{role}-{pid}-late.opus``,
        held like live audio until the model has settled (at most ``LATE_HOLD_PACKETS``). One
        this recording has already (live or late: the same seq and capture time) is dropped."""
        recent = self._recent_of(packet.pid)
        key = (packet.seq, packet.capture_ts)
        if key in recent:
            self.late_repeats += 1
            return
        recent.add(key)
        self.last_ms = max(self.last_ms, packet.session_ms)
        if packet.pid in self.settled or not packet.capture_ts:
            self._place_late(packet)
            return
        held = self.held_late.setdefault(packet.pid, [])
        held.append(packet)
        if len(held) >= LATE_HOLD_PACKETS:
            self.release(packet.pid)

    def _place_late(self, packet: AudioPacket) -> None:
        pid = packet.pid
        writer = self.late.get(pid)
        if writer is None:
            seen = self.seen.get(pid)
            path = self.folder / late_audio_name(seen.role if seen else None, pid)
            writer = self.late[pid] = OggOpusWriter(path, serial=(LATE_SERIAL_BASE + pid) & 0xFFFFFFFF)
            self.manifest_due = True
        model = self._model(pid, packet.dev)
        at_ms, by_arrival = float(packet.session_ms), True
        if packet.capture_ts and model is not None:
            mapped = model.to_session(packet.capture_ts)
            if 0 <= mapped <= packet.session_ms + MAX_AHEAD_MS:  # any time before its arrival is believable
                at_ms, by_arrival = mapped, False
        granule = writer.add(packet.payload, packet.samples, round(at_ms * SAMPLES_PER_MS), arrival=by_arrival)
        self.log.append(LogRecord(Kind.AUDIO, packet.session_ms, packet.capture_ts or None, pid,
                                  [packet.seq, packet.samples, granule, "late"]))
        self.late_counts[pid] += 1
        first, _ = self.late_span.get(pid, (int(at_ms), 0))
        self.late_span[pid] = (min(first, int(at_ms)), int(at_ms) + packet.samples // SAMPLES_PER_MS)

    def _recent_of(self, pid: int) -> _Recent:
        recent = self._recent.get(pid)
        if recent is None:
            recent = self._recent[pid] = _Recent(RECENT_PACKETS)
        return recent

    def _place(self, packet: AudioPacket) -> None:
        writer = self.audio.get(packet.pid)
        if writer is None:
            seen = self.seen.get(packet.pid)
            path = self.folder / audio_name(seen.role if seen else None, packet.pid)
            writer = self.audio[packet.pid] = OggOpusWriter(path, serial=(OGG_SERIAL_BASE + packet.pid) & 0xFFFFFFFF)
        at_ms, by_arrival = self._position(packet.pid, packet.capture_ts, packet.session_ms, packet.dev)
        granule = writer.add(packet.payload, packet.samples, round(at_ms * SAMPLES_PER_MS), arrival=by_arrival)
        self.log.append(LogRecord(Kind.AUDIO, packet.session_ms, packet.capture_ts or None, packet.pid,
                                  [packet.seq, packet.samples, granule]))
        self.last_ms = max(self.last_ms, packet.session_ms)

    def clock(self, pid: int, session_ms: int, offset_ms: float, rtt_ms: float, drift_ppm: float = 0.0,
              dev: str = "") -> None:
        """The participant's clock model at ``session_ms``: device clock minus session clock, and
        its drift. Once ``settle_samples`` have come (the model has settled), this and every later
        one is logged and kept for the manifest, and the audio held for the clock is placed.
        Before that the model is logged as a ``NOTE {"clock_settling": [offset_ms, rtt_ms,
        drift_ppm]}`` only: the first ``CLOCK`` record is the model the held audio is
        placed with, so that ink made meanwhile (mapped by the exports with the logged offset
        nearest in time) lands on the same clock as that audio. A device of ``pid`` other than
        the first one measured (``dev``) keeps a model of its own (``_device_clock``)."""
        if dev and (pid, dev) not in self.devices_seen:
            self.devices_seen[(pid, dev)] = None
            self.manifest_due = True
        if self.primary.setdefault(pid, dev) != dev:
            self._device_clock(pid, dev, session_ms, offset_ms, rtt_ms, drift_ppm)
            return
        self.models[pid] = ClockModelAt(session_ms, offset_ms, drift_ppm)
        self._rtt[pid] = rtt_ms
        self.clock_counts[pid] += 1
        if pid in self.settled:
            self._log_clock(pid)
        elif self.clock_counts[pid] >= self.sync.settle_samples:
            self._settle(pid)
        else:  # kept, but where no export maps ink with it
            self.log.append(LogRecord(Kind.NOTE, session_ms, None, pid,
                                      {"clock_settling": [offset_ms, rtt_ms, drift_ppm]}))

    def _log_clock(self, pid: int) -> None:
        model = self.models[pid]
        self.offsets.setdefault(pid, []).append((model.at_ms, model.offset_ms, self._rtt[pid], model.drift_ppm))
        body = [model.offset_ms, self._rtt[pid]]
        if model.drift_ppm:
            body.append(model.drift_ppm)  # recovery reads the drift
        self.log.append(LogRecord(Kind.CLOCK, model.at_ms, None, pid, body))

    def _settle(self, pid: int) -> None:
        """From here ``pid``'s model is logged and its audio placed as it comes."""
        if pid in self.settled:
            return
        self.settled.add(pid)
        if pid in self.models:
            self._log_clock(pid)
        self.release(pid)

    def note(self, body: dict[str, Any]) -> None:
        self.log.append(LogRecord(Kind.NOTE, self.last_ms, None, None, body))

    def timeline_ms(self, pid: int, device_ms: int, arrival_ms: int) -> float:
        """Where something the device stamped ``device_ms`` belongs on the session timeline: its
        device time through the participant's clock model; the arrival time when there is no
        device time or no model yet, or when the mapped time is not believable (more than
        ``MAX_AHEAD_MS`` after its arrival or ``MAX_BEHIND_MS`` before it)."""
        return self._position(pid, device_ms, arrival_ms)[0]

    def _model(self, pid: int, dev: str) -> ClockModelAt | None:
        """The clock model of device ``dev`` of ``pid``: the participant's, or its own for a
        second device (None until it has one: its times go by arrival until then)."""
        if self.primary.get(pid, dev) == dev:
            return self.models.get(pid)
        return self.device_models.get((pid, dev))

    def _device_clock(self, pid: int, dev: str, session_ms: int, offset_ms: float, rtt_ms: float,
                      drift_ppm: float) -> None:
        """A second device's clock: its own model, a CLOCK record ``[offset_ms, rtt_ms, drift_ppm,
        dev]`` (readers of the participant's clock skip a record of four), the manifest's device."""
        key = (pid, dev)
        self.device_models[key] = ClockModelAt(session_ms, offset_ms, drift_ppm)
        self.device_offsets.setdefault(key, []).append(ClockOffset(session_ms, offset_ms, rtt_ms, drift_ppm))
        self.log.append(LogRecord(Kind.CLOCK, session_ms, None, pid, [offset_ms, rtt_ms, drift_ppm, dev]))
        self.manifest_due = True

    def stroke_device(self, pid: int, stroke: int, dev: str) -> None:
        """A stroke of ``pid`` written on device ``dev``: where that is not the device whose clock
        is the participant's, a ``NOTE {"stroke_device": [stroke, dev]}`` says which clock the
        exports map its points with (the device's own CLOCK records)."""
        if self.primary.setdefault(pid, dev) != dev:
            self.log.append(LogRecord(Kind.NOTE, self.last_ms, None, pid, {"stroke_device": [stroke, dev]}))

    def _position(self, pid: int, device_ms: int, arrival_ms: int, dev: str = "") -> tuple[float, bool]:
        """``timeline_ms`` and whether it is the arrival time."""
        model = self._model(pid, dev)
        if not device_ms or model is None:
            return arrival_ms, True
        mapped = model.to_session(device_ms)
        if not believable(mapped, arrival_ms):
            return arrival_ms, True
        return max(0.0, mapped), False

    # -- writing -------------------------------------------------------------------------------------

    def flush(self, fsync: bool) -> None:
        """Write everything buffered (pages of audio too), and with ``fsync`` make it durable; the
        manifest is rewritten if someone new was seen since the last flush."""
        for writer in (*self.audio.values(), *self.late.values()):
            writer.flush(fsync=fsync)
        self.log.flush(fsync=fsync)
        if self.manifest_due:
            self.manifest_due = False
            write_manifest(self.folder, self.manifest(RecordingStatus.RECORDING))

    def manifest(self, status: RecordingStatus, files: bool = False) -> Manifest:
        participants = [Participant(pid, s.role, s.user_id, s.first_ms, s.last_ms)
                        for pid, s in sorted(self.seen.items())]
        offsets = {pid: [ClockOffset(at, off, rtt, drift) for at, off, rtt, drift in values]
                   for pid, values in sorted(self.offsets.items())}
        names = [LOG_NAME, *(self.audio[pid].path.name for pid in sorted(self.audio)),
                 *(self.late[pid].path.name for pid in sorted(self.late))]
        late = {pid: LateAudio(self.late[pid].path.name, self.late_counts[pid], *self.late_span.get(pid, (0, 0)))
                for pid in sorted(self.late)}
        devices = [Device(pid, "pen-gateway" if dev == PEN_DEVICE else "browser-pointer", device=dev,
                          clock_offsets=tuple(self.device_offsets.get((pid, dev), ())))
                   for pid, dev in sorted(self.devices_seen)]
        return Manifest(
            session_id=self.session_id, epoch=self.epoch, status=status, started_unix=self.started_unix,
            participants=participants, clock_offsets=offsets, duration_ms=self.last_ms,
            files=file_entries(self.folder, names) if files else {}, late_audio=late, devices=devices,
            moves=list(self.moves), recovery=self.recovery,
        )

    def finish(self, reason: str) -> None:
        """Finalize: a ``NOTE {"ended": reason}``, the Ogg streams ended, everything synced, the
        manifest ``complete`` with the files' sizes and hashes. Finishing twice does nothing."""
        if self.finished:
            return
        for pid in list(self.models):
            self._settle(pid)
        for pid in [*self.held, *self.held_late]:
            self.release(pid)
        self.note({"ended": reason})
        for writer in (*self.audio.values(), *self.late.values()):
            writer.close()
        self.log.close(fsync=True)
        self.finished = True
        write_manifest(self.folder, self.manifest(RecordingStatus.COMPLETE, files=True))
        self.release_lock()

    def release_lock(self) -> None:
        """Let others (recovery, a node the session moves to) have the folder."""
        if self.lock is not None:
            self.lock.release()

    def abandon(self) -> None:
        """Close the files as they are (no final note, no EOS, manifest left ``recording``), for
        recovery to close out at the next start: after a failure that finishing would repeat."""
        self.finished = True
        for closer in (*(w.abandon for w in (*self.audio.values(), *self.late.values())), self.log.abandon):
            try:
                closer()
            except OSError:
                pass
        self.release_lock()  # recovery may close it out now
