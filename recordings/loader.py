"""Reading recordings back: the list of a folder's recordings, and one recording as the
in-memory ``RecordingData`` the exports work on. Damaged files are read up to the damage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wire import Limits, Seat, decode_frame
from wire import messages as m

from .eventlog import Kind, read_log
from .exports.model import AudioTrack, ClockOffset, InkEvent, RecordingData
from .manifest import read_manifest
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
    if not (folder / "manifest.json").is_file():
        raise RecordingNotFound(f"no recording {recording_id!r}")
    return folder


def list_recordings(root: Path) -> list[dict[str, Any]]:
    """A line per recording, newest first: id, session, status, start, duration, participants."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for folder in root.iterdir():
        if not RECORDING_ID.fullmatch(folder.name) or not (folder / "manifest.json").is_file():
            continue
        try:
            manifest = read_manifest(folder)
        except (ValueError, OSError):
            continue
        out.append({"id": folder.name, "session_id": manifest.session_id, "status": manifest.status.value,
                    "started_unix": manifest.started_unix, "duration_ms": manifest.duration_ms,
                    "participants": [p.user_id for p in manifest.participants]})
    out.sort(key=lambda r: -float(r["started_unix"]))
    return out


def load(root: Path, recording_id: str) -> RecordingData:
    folder = folder_of(root, recording_id)
    manifest = read_manifest(folder)
    read = read_log((folder / "events.log").read_bytes())
    events: list[InkEvent] = []
    clocks: list[ClockOffset] = []
    last_ms = 0
    for record in read.records:
        last_ms = max(last_ms, record.session_ms)
        if record.kind is Kind.EVENT and isinstance(record.body, bytes):
            msg = decode_frame(record.body, _LIMITS)
            if isinstance(msg, m.Event):
                events.append(InkEvent(msg.session_ms, msg.seat, msg.body))
        elif record.kind is Kind.CLOCK and record.seat is not None:
            offset, rtt = record.body
            clocks.append(ClockOffset(Seat(record.seat), record.session_ms, float(offset), float(rtt)))
    audio: dict[Seat, AudioTrack] = {}
    for seat in Seat:
        path = folder / f"audio-{seat.role}.opus"
        if path.is_file():
            ogg = read_ogg_opus(path.read_bytes())
            # Granule positions count pre-skip too: the model counts samples since session clock 0.
            audio[seat] = AudioTrack(seat, [(payload, granule - ogg.pre_skip) for payload, granule in ogg.packets])
    participants = {Seat[p.seat.upper()]: p.user_id for p in manifest.participants}
    return RecordingData(
        session_id=manifest.session_id, started_unix=manifest.started_unix,
        duration_ms=max(manifest.duration_ms, last_ms), participants=participants, events=events,
        audio=audio, clocks=clocks, status=manifest.status.value,
    )
