"""Going on with a recording on the node a session moved to (``docs/recordings.md``, Moves).

When a node dies (or hands a room over), the room's new home rebuilds it from Redis with the same
session id, epoch and seqs, and its recording goes on in the same folder ``{session_id}-{epoch}``
when the nodes share their recordings directory. ``resume_files`` makes that folder writable
again, whatever state the old node left it in: still ``recording`` (killed mid-write: the torn
tails are cut as recovery cuts them), ``interrupted`` (another node's startup recovery closed it
out meanwhile) or ``complete`` (the old node ended it when it heard of the move). The event log
goes on after its last good record; each speaker's Ogg stream goes on after its last good page
(its end of stream taken back: one stream per speaker on the one session timeline, the time the
session was nowhere filled with silence); the participants, clock offsets, devices, late-audio
counts and the packets already recorded come back from the log and the manifest. The move is
logged (``NOTE {"moved": {...}}``) and listed in the manifest's ``moves``.

Where the folder does not exist (recordings directories not shared), it is created as a new
recording would be, on the session's own timeline, and its ``moves`` say that the part before the
move was recorded elsewhere (``continued: false``).

Run it off the event loop (it reads and repairs files): the archiver does it on a thread of its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wire import PROTOCOL_VERSION

from . import RecordingError
from .eventlog import MAGIC, Kind, LogRead, LogRecord, LogWriter, encode_record, trim_log
from .folderlock import FolderLock
from .layout import AUDIO_GLOB, LOG_NAME, audio_pid, late_audio_pid
from .loader import decode_event, scan_log
from .manifest import MANIFEST_NAME, ClockOffset, Manifest, Move, RecordingStatus, read_manifest, write_manifest
from .ogg import SAMPLES_PER_MS, OggOpusWriter, reopen_ogg
from .recording import DEFAULT_SYNC, RecordingFiles, SyncConfig, _Seen

LOCK_POLL_S = 0.05  # how often a resume asks again for a folder another process still holds


class FolderBusy(RecordingError):
    """The folder stayed locked by another process (a node still writing it) past the wait."""


@dataclass(frozen=True, slots=True)
class MoveRequest:
    """What ``Archiver.resume`` was told: the session, the nodes, and when (unix time) it moved."""

    session_id: str
    epoch: int
    moved_from: str
    moved_to: str
    at_unix: float
    started_unix: float  # the session's start, for a folder that has to be created here
    durable_seq: int | None = None  # events logged after this seq never reached Redis: cut (Archiver.resume)


def try_resume(root: Path, move: MoveRequest, sync: SyncConfig = DEFAULT_SYNC) -> RecordingFiles | None:
    """The recording's files, ready to go on from the move (see the module docstring); None while
    another process holds the folder (ask again later). Never waits."""
    folder = root / f"{move.session_id}-{move.epoch}"
    if not (folder / MANIFEST_NAME).is_file():
        if (folder / LOG_NAME).is_file():  # a crash before the first manifest: keep what is good
            trim_log(folder / LOG_NAME)
        files = RecordingFiles.create(root, move.session_id, move.epoch, move.started_unix, sync)
        _moved(files, Move(_ms(move.at_unix - move.started_unix), move.moved_from, move.moved_to, False))
        return files
    lock = FolderLock.take(folder, move.session_id)
    if lock is None:
        return None
    try:
        return _continue(folder, move, lock, sync)
    except BaseException:
        lock.release()
        raise


def resume_files(root: Path, move: MoveRequest, sync: SyncConfig = DEFAULT_SYNC, *, lock_wait_s: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> RecordingFiles:
    """``try_resume``, waiting at most ``lock_wait_s`` for a folder another process still holds
    (``FolderBusy``), for callers with a thread to spare (tools, tests)."""
    deadline = monotonic() + lock_wait_s
    while (files := try_resume(root, move, sync)) is None:
        if monotonic() >= deadline:
            raise busy(move, lock_wait_s)
        sleep(LOCK_POLL_S)  # a file lock tells nobody when it goes: ask again
    return files


def busy(move: MoveRequest, waited_s: float) -> FolderBusy:
    return FolderBusy(f"{move.session_id}-{move.epoch} is still being written by another process after "
                      f"{waited_s:g} s")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _continue(folder: Path, move: MoveRequest, lock: FolderLock, sync: SyncConfig) -> RecordingFiles:
    manifest = read_manifest(folder)
    if manifest.protocol != PROTOCOL_VERSION:
        raise RecordingError(f"{folder.name} is a recording of protocol {manifest.protocol}; it cannot go on")
    read = trim_log(folder / LOG_NAME) if (folder / LOG_NAME).is_file() else LogRead([], 0, None)
    if move.durable_seq is not None:
        read = _cut_after(folder / LOG_NAME, read, move.durable_seq, manifest.protocol)
    files = RecordingFiles(folder, manifest.session_id, manifest.epoch, manifest.started_unix,
                           LogWriter(folder / LOG_NAME), sync)
    files.lock = lock
    try:
        _restore(files, manifest, read.records)
        _reopen_audio(files)
    except BaseException:
        files.lock = None  # the caller releases it
        files.abandon()
        raise
    at_ms = max(_ms(move.at_unix - manifest.started_unix), files.last_ms)
    _moved(files, Move(at_ms, move.moved_from, move.moved_to, True))
    return files


def _cut_after(path: Path, read: LogRead, durable_seq: int, protocol: int) -> LogRead:
    """The log without its first event after ``durable_seq`` and everything after that event
    (what the old node logged of a tail that never reached Redis); the file is cut to match."""
    for index, record in enumerate(read.records):
        if record.kind is Kind.EVENT and isinstance(record.body, bytes):
            event = decode_event(record.body, protocol)
            if event is not None and event.seq > durable_seq:
                kept = read.records[:index]
                size = len(MAGIC) + sum(len(encode_record(r)) for r in kept)
                with path.open("r+b") as f:
                    f.truncate(size)
                    f.flush()
                    os.fsync(f.fileno())
                return LogRead(kept, size, None)
    return read


def _restore(files: RecordingFiles, manifest: Manifest, records: list[LogRecord]) -> None:
    """What the recording knew when the old node stopped, from its log (the truth) and manifest."""
    contents = scan_log(records, manifest.protocol)
    files.last_seq = contents.events[-1].seq if contents.events else 0
    files.last_ms = max(contents.last_ms, manifest.duration_ms)
    files.recovery = manifest.recovery
    files.moves = list(manifest.moves)
    for p in manifest.participants:
        files.seen[p.pid] = _Seen(p.role, p.user_id, p.first_ms, p.last_ms)
    for pid, p in contents.participants.items():
        files.seen[pid] = _Seen(p.role, p.user_id, p.first_ms, p.last_ms)
    for pid, offsets in contents.offsets.items():
        files.offsets[pid] = [(c.at_ms, c.offset_ms, c.rtt_ms, c.drift_ppm) for c in offsets]
    for d in manifest.devices:
        if d.device:
            files.devices_seen[(d.pid, d.device)] = None
            if d.clock_offsets:
                files.device_offsets[(d.pid, d.device)] = list(d.clock_offsets)
            else:  # a device without a clock of its own is the one the participant's clock is of
                files.primary.setdefault(d.pid, d.device)
    for dev, clocks in contents.device_clocks.items():
        for c in clocks:
            files.devices_seen[(c.pid, dev)] = None
            known = files.device_offsets.setdefault((c.pid, dev), [])
            if not any(k.at_ms == c.at_ms for k in known):
                known.append(ClockOffset(c.at_ms, c.offset_ms, c.rtt_ms, c.drift_ppm))
    for pid in contents.offsets:
        files.primary.setdefault(pid, "")
    for pid, late in manifest.late_audio.items():
        files.late_span[pid] = (late.first_ms, late.last_ms)
    late_counts: dict[int, int] = {}
    for r in records:
        if r.kind is not Kind.AUDIO or r.pid is None or not isinstance(r.body, list) or len(r.body) < 3:
            continue
        if r.device_ms:  # a packet with a capture time: one sent again is recorded once
            files._recent_of(r.pid).add((r.body[0], r.device_ms))
        if len(r.body) == 4 and r.body[3] == "late":
            late_counts[r.pid] = late_counts.get(r.pid, 0) + 1
    for pid, count in late_counts.items():
        files.late_counts[pid] = max(count, manifest.late_audio[pid].packets if pid in manifest.late_audio else 0)


def _reopen_audio(files: RecordingFiles) -> None:
    """Each speaker's stream (and late stream) made ready to go on where it ends."""
    for path in sorted(files.folder.glob(AUDIO_GLOB)):
        live, late = audio_pid(path.name, PROTOCOL_VERSION), late_audio_pid(path.name)
        if (live is None and late is None) or not path.is_file():
            continue
        read = reopen_ogg(path)
        if read is None:  # its headers were lost: the speaker's audio starts again in a new file
            continue
        writer = OggOpusWriter.continuing(path, read)
        if late is not None:
            files.late[late] = writer
            if late not in files.late_span and read.packets:
                files.late_span[late] = (0, (read.granule - read.pre_skip) // SAMPLES_PER_MS)
        elif live is not None:
            files.audio[live] = writer


def _moved(files: RecordingFiles, move: Move) -> None:
    """Log the move, list it in the manifest (``recording`` again, whatever it said), make it durable."""
    files.moves.append(move)
    files.last_ms = max(files.last_ms, move.at_ms)
    files.log.append(LogRecord(Kind.NOTE, move.at_ms, None, None, {"moved": move.to_doc()}))
    files.log.flush(fsync=True)
    # The one way back from complete or interrupted: the session went on elsewhere.
    write_manifest(files.folder, files.manifest(RecordingStatus.RECORDING), check_lifecycle=False)
