"""Closing out recordings a crash left open (manifest still ``recording``).

``recover`` cuts the event log back to its last good record and each ``audio-*.opus`` back to its
last good page (cut tails are kept as ``*.damaged``), ends every Ogg stream with an EOS page, notes
what it did in the log (``NOTE {"recovered": report}``), and rewrites the manifest as
``interrupted`` with the duration, the participants and clock offsets the log holds (a live
manifest may lag behind its log), the files' hashes and the same report. A folder recorded with
protocol 1 is recovered the same way and stays protocol 1. It is idempotent: a
folder already complete or interrupted is left alone, and a run cut short by a second crash is
finished by the next without noting the recovery twice.

A folder some live process is still writing is left alone too: its writer holds the folder's lock
(``folderlock.py``) and recovery closes out only folders whose lock it gets, holding it while it
works. With a recordings directory shared by several nodes, a node that starts recovers what dead
writers left open and nothing that another node is recording.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recordings import RecordingError
from recordings.eventlog import Kind, LogRead, LogRecord, LogWriter, trim_log
from recordings.folderlock import FolderLock
from recordings.layout import AUDIO_GLOB, LOG_NAME
from recordings.loader import scan_log
from recordings.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    RecordingStatus,
    file_entries,
    read_manifest,
    write_manifest,
)
from recordings.ogg import repair_ogg


@dataclass(frozen=True, slots=True)
class FileRepair:
    """What recovery did to one file: bytes kept and cut, the damage found, and for Ogg files
    whether it appended the EOS page."""

    name: str
    good_bytes: int
    cut_bytes: int
    damage: str | None
    eos_added: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RecoveryReport:
    """One folder's recovery. ``problem`` is set (and nothing was changed) when the folder could
    not be recovered: no manifest, or one that does not validate."""

    folder: Path
    recovered_unix: float
    problem: str | None = None
    log: FileRepair | None = None
    audio: list[FileRepair] = field(default_factory=list)
    duration_ms: int = 0
    damaged_files: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        """Whether any bytes were cut (beyond closing the streams)."""
        repairs = [*self.audio, *([self.log] if self.log else [])]
        return any(r.cut_bytes for r in repairs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/msgpack values: what the manifest's ``recovery`` and the log's NOTE hold."""
        return {
            "folder": self.folder.name,
            "recovered_unix": self.recovered_unix,
            "problem": self.problem,
            "log": self.log.to_dict() if self.log else None,
            "audio": [a.to_dict() for a in self.audio],
            "duration_ms": self.duration_ms,
            "damaged_files": list(self.damaged_files),
        }

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _repair_log(folder: Path) -> tuple[FileRepair, LogRead]:
    path = folder / LOG_NAME
    if not path.exists():
        return FileRepair(LOG_NAME, 0, 0, "events.log is missing; created empty"), LogRead([], 0, None)
    size = path.stat().st_size
    read = trim_log(path)
    return FileRepair(LOG_NAME, read.good_bytes, size - read.good_bytes, read.damage), read


def _repair_audio(path: Path) -> FileRepair:
    size = path.stat().st_size
    read = repair_ogg(path)
    good = read.good_bytes if read.headers_ok else 0
    return FileRepair(path.name, good, size - good, read.damage, eos_added=not (read.headers_ok and read.eos))


def _previous_note(read: LogRead) -> dict[str, Any] | None:
    """The report of an earlier recovery of this folder cut short before its manifest was written."""
    if not read.records:
        return None
    last = read.records[-1]
    if last.kind is Kind.NOTE and isinstance(last.body, dict) and isinstance(last.body.get("recovered"), dict):
        return dict(last.body["recovered"])
    return None


def recover(folder: Path, now_unix: float) -> RecoveryReport | None:
    """Close out ``folder`` if its manifest says ``recording`` and no live process holds it; None
    when it is already complete or interrupted, or being written (its lock is held). A folder
    without a valid manifest is reported (``problem``) and not touched."""
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError:
        return RecoveryReport(folder, now_unix, problem=f"no {MANIFEST_NAME}; left untouched")
    except (ManifestError, OSError) as exc:
        return RecoveryReport(folder, now_unix, problem=f"unreadable {MANIFEST_NAME} ({exc}); left untouched")
    if manifest.status is not RecordingStatus.RECORDING:
        return None
    lock = FolderLock.take(folder, "recovery")
    if lock is None:  # live: its writer is another process (or another archiver) still at it
        return None
    try:
        # read again under the lock: its writer may have finished it, or a resume taken it up, since
        manifest = read_manifest(folder)
        if manifest.status is not RecordingStatus.RECORDING:
            return None
        return _recover(folder, manifest, now_unix)
    finally:
        lock.release()


def _recover(folder: Path, manifest: Manifest, now_unix: float) -> RecoveryReport:
    log_repair, read = _repair_log(folder)
    audio_names = sorted(p.name for p in folder.glob(AUDIO_GLOB) if p.is_file())
    audio = [_repair_audio(folder / name) for name in audio_names]
    duration = max(read.records[-1].session_ms if read.records else 0, manifest.duration_ms)
    damaged = sorted(p.name for p in folder.glob("*.damaged*"))
    report = RecoveryReport(folder, now_unix, None, log_repair, audio, duration, damaged)
    noted = _previous_note(read)
    if noted is None:
        noted = report.to_dict()
        with LogWriter(folder / LOG_NAME) as writer:
            writer.append(LogRecord(Kind.NOTE, duration, None, None, {"recovered": noted}))
    files = file_entries(folder, [LOG_NAME, *audio_names])
    finished = dataclasses.replace(
        _from_log(manifest, read), status=RecordingStatus.INTERRUPTED, duration_ms=duration, files=files,
        recovery=noted,
    )
    write_manifest(folder, finished)
    return report


def _from_log(manifest: Manifest, read: LogRead) -> Manifest:
    """``manifest`` with the participants and clock offsets (with their drift) of the log, where it
    has any."""
    contents = scan_log(read.records, manifest.protocol)
    people = {p.pid: p for p in manifest.participants}
    people.update(contents.participants)
    return dataclasses.replace(manifest, participants=[people[pid] for pid in sorted(people)],
                               clock_offsets=contents.offsets or manifest.clock_offsets)


def recover_all(root: Path, now_unix: float) -> list[RecoveryReport]:
    """Recover every folder under ``root`` left open; a folder that fails is reported and the
    rest are still recovered."""
    if not root.is_dir():
        return []
    reports: list[RecoveryReport] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            report = recover(folder, now_unix)
        except (OSError, RecordingError) as exc:
            report = RecoveryReport(folder, now_unix, problem=f"recovery failed: {type(exc).__name__}: {exc}")
        if report is not None:
            reports.append(report)
    return reports
