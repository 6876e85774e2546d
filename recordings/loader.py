"""Reading recordings back: the list of a folder's recordings, and one recording as the
in-memory ``RecordingData`` the exports work on. Damaged files are read up to the damage.

Both protocol versions are read into the same shape. A recording of protocol 1 (its manifest has
format 1, or ``protocol: 1``) stored version-1 ``Event`` frames and seats in its log records and
named its audio ``audio-tutor.opus`` / ``audio-student.opus``: its frames are upgraded with
``wire.legacy.upgrade_v1_event`` and seat ``s`` becomes participant ``s + 1`` (tutor 1, student 2),
as a room of protocol 2 would have numbered them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wire import Limits, ProtocolError, decode_frame
from wire import messages as m
from wire.legacy import upgrade_v1_event, v1_seat_pid

from .eventlog import Kind, LogRecord, read_log
from .exports.model import AudioTrack, ClockOffset, InkEvent, Person, RecordingData, labels
from .layout import AUDIO_GLOB, LOG_NAME, audio_pid, late_audio_pid
from .manifest import MANIFEST_NAME, Manifest, Participant, read_manifest
from .manifest import ClockOffset as ManifestOffset
from .ogg import read_ogg_opus

RECORDING_ID = re.compile(r"[A-Za-z0-9_-]{1,64}-[0-9]{1,16}")
_LIMITS = Limits(max_frame_bytes=1 << 30, max_points_per_message=1 << 20)  # our own files: no wire limits


class RecordingNotFound(LookupError):
    pass


def folder_of(root: Path, recording_id: str) -> Path:
    """The folder of ``recording_id`` under ``root``; ``RecordingNotFound`` for anything else
    (including names that try to leave ``root``)."""
    if not RECORDING_ID.fullmatch(recording_id):
        raise RecordingNotFound(f"no recording {recording_id!r}")
    folder = root / recording_id
    if not (folder / MANIFEST_NAME).is_file():
        raise RecordingNotFound(f"no recording {recording_id!r}")
    return folder


def list_recordings(root: Path) -> list[dict[str, Any]]:
    """A line per recording, newest first: id, session, status, start, duration, participants
    (their user ids), protocol."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for folder in root.iterdir():
        if not RECORDING_ID.fullmatch(folder.name) or not (folder / MANIFEST_NAME).is_file():
            continue
        try:
            manifest = read_manifest(folder)
        except (ValueError, OSError):
            continue
        out.append({"id": folder.name, "session_id": manifest.session_id, "status": manifest.status.value,
                    "started_unix": manifest.started_unix, "duration_ms": manifest.duration_ms,
                    "participants": [p.user_id for p in manifest.participants], "protocol": manifest.protocol})
    out.sort(key=lambda r: -float(r["started_unix"]))
    return out


def decode_event(frame: bytes, protocol: int) -> m.Event | None:
    """A stored ``Event`` frame of ``protocol`` as a version-2 ``Event``; None if it is not one."""
    try:
        msg = decode_frame(upgrade_v1_event(frame) if protocol == 1 else frame, _LIMITS)
    except ProtocolError:  # only in a damaged or foreign log
        return None
    return msg if isinstance(msg, m.Event) else None


def record_pid(record: LogRecord, protocol: int) -> int | None:
    """The participant a log record is of (a protocol-1 record holds the seat)."""
    if record.pid is None or protocol != 1:
        return record.pid
    return v1_seat_pid(record.pid) if record.pid in (0, 1) else None


@dataclass
class LogContents:
    """What a log holds, in protocol-2 terms: events, clock offsets (for the exports, and as the
    manifest has them: by pid, with the drift where the record holds one), the participants seen
    (first and last presence), and the last session time of any record."""

    events: list[m.Event]
    clocks: list[ClockOffset]
    participants: dict[int, Participant]
    last_ms: int
    offsets: dict[int, list[ManifestOffset]]
    # a participant's second device: its CLOCK records by device id, the strokes written on it
    device_clocks: dict[str, list[ClockOffset]] = field(default_factory=dict)
    stroke_devices: dict[tuple[int, int], str] = field(default_factory=dict)


def scan_log(records: list[LogRecord], protocol: int) -> LogContents:
    events: list[m.Event] = []
    clocks: list[ClockOffset] = []
    seen: dict[int, Participant] = {}
    offsets: dict[int, list[ManifestOffset]] = {}
    device_clocks: dict[str, list[ClockOffset]] = {}
    stroke_devices: dict[tuple[int, int], str] = {}
    last_ms = 0
    for record in records:
        last_ms = max(last_ms, record.session_ms)
        if record.kind is Kind.EVENT and isinstance(record.body, bytes):
            event = decode_event(record.body, protocol)
            if event is None:
                continue
            events.append(event)
            body = event.body
            changes = [(event.pid, body.role, body.user_id)] if isinstance(body, m.Presence) else \
                [(c.pid, c.role, c.user_id) for c in body.changes] if isinstance(body, m.Roster) else []
            for who, role, user_id in changes:  # a presence, or a class's coalesced Roster
                known = seen.get(who)
                first = known.first_ms if known else event.session_ms
                seen[who] = Participant(who, role, user_id, first, event.session_ms)
        elif record.kind is Kind.CLOCK and (pid := record_pid(record, protocol)) is not None:
            try:  # [offset_ms, rtt_ms] or [offset_ms, rtt_ms, drift_ppm]
                offset, rtt, *more = record.body
                drift = float(more[0]) if len(more) == 1 else 0.0
                if len(more) == 2 and isinstance(more[1], str):  # a second device's: [..., drift, dev]
                    device_clocks.setdefault(more[1], []).append(
                        ClockOffset(pid, record.session_ms, float(offset), float(rtt), float(more[0])))
                    continue
                if len(more) > 1:
                    continue
                clock = ClockOffset(pid, record.session_ms, float(offset), float(rtt), drift)
            except (TypeError, ValueError):
                continue
            clocks.append(clock)
            offsets.setdefault(pid, []).append(ManifestOffset(clock.at_ms, clock.offset_ms, clock.rtt_ms, drift))
        elif (record.kind is Kind.NOTE and record.pid is not None and isinstance(record.body, dict)
              and isinstance(note := record.body.get("stroke_device"), list) and len(note) == 2
              and isinstance(note[0], int) and isinstance(note[1], str)):
            stroke_devices[(record.pid, note[0])] = note[1]
    return LogContents(events, clocks, dict(sorted(seen.items())), last_ms, dict(sorted(offsets.items())),
                       device_clocks, stroke_devices)


def audio_files(folder: Path, manifest: Manifest) -> dict[int, Path]:
    """Each participant's Ogg Opus file in ``folder``, by pid."""
    found: dict[int, Path] = {}
    for path in sorted(folder.glob(AUDIO_GLOB)):
        pid = audio_pid(path.name, manifest.protocol)
        if pid is not None and path.is_file():
            found[pid] = path
    return found


def late_audio_files(folder: Path) -> dict[int, Path]:
    """Each participant's late-audio Ogg Opus file (``audio-{role}-{pid}-late.opus``), by pid."""
    found: dict[int, Path] = {}
    for path in sorted(folder.glob(AUDIO_GLOB)):
        pid = late_audio_pid(path.name)
        if pid is not None and path.is_file():
            found[pid] = path
    return found


def audio_file(folder: Path, name: str) -> Path | None:
    """The Ogg file the replay API serves as ``audio/{name}.opus``: ``name`` is a participant's
    export label (``tutor`` in a one-on-one session, ``viewer-7`` in a class) or ``{role}-{pid}``."""
    manifest = read_manifest(folder)
    people = {p.pid: Person(p.pid, p.role, p.user_id) for p in manifest.participants}
    by_name = {label: pid for pid, label in labels(people).items()}
    by_name.update({f"{p.role.label}-{pid}": pid for pid, p in people.items()})
    pid = by_name.get(name)
    return audio_files(folder, manifest).get(pid) if pid is not None else None


def load(root: Path, recording_id: str) -> RecordingData:
    folder = folder_of(root, recording_id)
    manifest = read_manifest(folder)
    read = read_log((folder / LOG_NAME).read_bytes())
    contents = scan_log(read.records, manifest.protocol)
    # The log is the truth (a recording cut short by a crash may have an older manifest); the
    # manifest fills in anyone the log lost to damage.
    people = {p.pid: Person(p.pid, p.role, p.user_id) for p in manifest.participants}
    people.update({pid: Person(pid, p.role, p.user_id) for pid, p in contents.participants.items()})
    audio: dict[int, AudioTrack] = {}
    for pid, path in audio_files(folder, manifest).items():
        ogg = read_ogg_opus(path.read_bytes())
        # Granule positions count pre-skip too: the model counts samples since session clock 0.
        audio[pid] = AudioTrack(pid, [(payload, granule - ogg.pre_skip) for payload, granule in ogg.packets])
    for pid, path in late_audio_files(folder).items():
        ogg = read_ogg_opus(path.read_bytes())
        live = audio.get(pid)
        audio[pid] = AudioTrack(pid, live.packets if live else [],
                                [(payload, granule - ogg.pre_skip) for payload, granule in ogg.packets])
    return RecordingData(
        session_id=manifest.session_id, started_unix=manifest.started_unix,
        duration_ms=max(manifest.duration_ms, contents.last_ms), participants=dict(sorted(people.items())),
        events=[InkEvent(e.session_ms, e.pid, e.body) for e in contents.events],
        audio=audio, clocks=contents.clocks, status=manifest.status.value,
        devices={d.pid: d for d in manifest.devices}, protocol=manifest.protocol,
        device_clocks=contents.device_clocks, stroke_devices=contents.stroke_devices,
        moves=list(manifest.moves),
    )
