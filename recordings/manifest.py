"""``manifest.json``: what a recording is (``docs/recordings.md``), and its lifecycle.

``RecordingStatus`` moves ``recording -> complete`` (closed cleanly) or ``recording ->
interrupted`` (closed out by recovery after a crash); both ends are final, but for the one way
back that ``resume.py`` takes (writing with ``check_lifecycle=False``): a session that moved to
another node goes on recording there, ``moves`` says when. ``write_manifest``
enforces that against the manifest already on disk and replaces it atomically (temp file, fsync,
rename, fsync of the folder), so a reader sees the old manifest or the new one, never a mix.

Versions. ``format`` is the manifest's own layout: 2 since participants have ids and roles (1 had
two seats). ``protocol`` is the wire protocol version of the ``Event`` frames in ``events.log``
(and so whether a record's fourth field is a participant id or a seat). A format-1 manifest has
no ``protocol`` key and means protocol 1; ``from_json`` reads it into the same ``Manifest`` (seat
``tutor`` is participant 1, ``student`` participant 2), so callers see one shape.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from recordings import RecordingError
from recordings.eventlog import U32, fsync_dir
from wire import PROTOCOL_VERSION, Role
from wire.legacy import V1_SEAT_ROLES, v1_seat_pid

FORMAT = 2
FORMATS = (1, 2)  # what from_json reads
PROTOCOLS = (1, 2)  # the Event frame versions the loader reads
MANIFEST_NAME = "manifest.json"
V1_SEATS = tuple(role.label for role in V1_SEAT_ROLES)  # a format-1 manifest's seat names
ROLES = tuple(role.label for role in Role)
_PID_KEY = re.compile(r"[1-9][0-9]{0,9}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_YEAR_10000 = 253402300800.0


class ManifestError(RecordingError, ValueError):
    """A manifest that does not validate (also a ``ValueError``, for callers that catch those)."""


class IllegalTransition(ManifestError):
    """A status change the lifecycle does not allow, e.g. ``complete -> recording``."""


class RecordingStatus(Enum):
    RECORDING = "recording"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"


# The lifecycle in one place: rewriting a manifest that is still recording (new participants,
# offsets) is allowed; complete and interrupted are final.
TRANSITIONS: dict[RecordingStatus, frozenset[RecordingStatus]] = {
    RecordingStatus.RECORDING: frozenset(RecordingStatus),
    RecordingStatus.COMPLETE: frozenset(),
    RecordingStatus.INTERRUPTED: frozenset(),
}


def check_transition(old: RecordingStatus, new: RecordingStatus) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"a recording that is {old.value} cannot become {new.value}")


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone the recording saw: their room participant id, role and user id (as the join token
    named them), and the session times of their first and last presence event."""

    pid: int
    role: Role
    user_id: str
    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class ClockOffset:
    at_ms: int
    offset_ms: float  # device clock minus session clock
    rtt_ms: float
    drift_ppm: float = 0.0  # how fast the offset changes (the clock model's); written when not 0

    def to_doc(self) -> dict[str, float]:
        doc = {"at_ms": self.at_ms, "offset_ms": self.offset_ms, "rtt_ms": self.rtt_ms}
        if self.drift_ppm:
            doc["drift_ppm"] = self.drift_ppm
        return doc


DEVICE_KINDS = ("browser-pointer", "pen-gateway")


@dataclass(frozen=True, slots=True)
class Device:
    """The input device a participant writes with, where the recording describes it: ``kind``
    (``DEVICE_KINDS``), the device's ``model`` as it names itself (may be empty) and its sample
    rate where known. A participant without one wrote with the web client's browser pointer."""

    pid: int
    kind: str
    model: str = ""
    sample_rate_hz: float | None = None
    device: str = ""  # the participant's device id (the join token's ``dev``), where it has one
    # the device's own clock models where it is not the participant's clock (``clock_offsets``):
    # a second device of the participant (the pen gateway beside the browser) has a clock of its own
    clock_offsets: tuple[ClockOffset, ...] = ()


@dataclass(frozen=True, slots=True)
class LateAudio:
    """A participant's late audio (``AudioLate``: what its sender could not send live, after an
    outage or a crash): the file of its stream, the packets in it, and the session times the
    first and the last of them were placed at."""

    file: str
    packets: int
    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class Move:
    """The session moved to another node at session time ``at_ms`` (its home died, or handed it
    over): node ``from_node`` recorded it until then, ``to_node`` from then on. ``continued``:
    the new node went on with this folder (storage shared with the old one), so the recording
    holds both parts; else it started the folder at the move, and the part before it is in the
    old node's recordings directory."""

    at_ms: int
    from_node: str
    to_node: str
    continued: bool

    def to_doc(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "from": self.from_node, "to": self.to_node, "continued": self.continued}


@dataclass(frozen=True, slots=True)
class FileEntry:
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    session_id: str
    epoch: int
    status: RecordingStatus
    started_unix: float
    participants: list[Participant] = field(default_factory=list)  # by pid
    clock_offsets: dict[int, list[ClockOffset]] = field(default_factory=dict)  # by pid
    duration_ms: int = 0
    files: dict[str, FileEntry] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None  # RecoveryReport.to_dict() once recovered
    protocol: int = PROTOCOL_VERSION  # of the Event frames in events.log
    devices: list[Device] = field(default_factory=list)  # by pid; written only when there are any
    late_audio: dict[int, LateAudio] = field(default_factory=dict)  # by pid; written only when there is any
    moves: list[Move] = field(default_factory=list)  # in time order; written only when there are any

    @property
    def started_iso(self) -> str:
        moment = datetime.fromtimestamp(self.started_unix, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def to_json(self) -> str:
        """Always the current ``format``; a recording read from format 1 keeps its ``protocol``."""
        doc = {
            "format": FORMAT,
            "protocol": self.protocol,
            "session_id": self.session_id,
            "epoch": self.epoch,
            "status": self.status.value,
            "started_unix": self.started_unix,
            "started_iso": self.started_iso,
            "participants": [
                {"pid": p.pid, "role": p.role.label, "user_id": p.user_id, "first_ms": p.first_ms,
                 "last_ms": p.last_ms}
                for p in self.participants
            ],
            "clock_offsets": {
                str(pid): [c.to_doc() for c in offsets]
                for pid, offsets in self.clock_offsets.items()
            },
            "duration_ms": self.duration_ms,
            "files": {name: {"bytes": f.bytes, "sha256": f.sha256} for name, f in self.files.items()},
            "recovery": self.recovery,
        }
        if self.devices:
            doc["devices"] = [_device_doc(d) for d in self.devices]
        if self.late_audio:
            doc["late_audio"] = {str(pid): {"file": a.file, "packets": a.packets, "first_ms": a.first_ms,
                                            "last_ms": a.last_ms} for pid, a in self.late_audio.items()}
        if self.moves:
            doc["moves"] = [move.to_doc() for move in self.moves]
        return json.dumps(doc, indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate; ``ManifestError`` names the first field that is wrong. Keys this
        version does not know are ignored (a change old readers must not ignore bumps ``format``)."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from exc
        return _parse(_Fields(doc, "manifest"))

    def validate(self) -> None:
        """Raise ``ManifestError`` unless this manifest writes out as a valid manifest."""
        try:
            text = self.to_json()
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise ManifestError(f"manifest cannot be written as JSON: {exc}") from exc
        Manifest.from_json(text)


class _Fields:
    """Typed access to one JSON object, each failure a ``ManifestError`` naming the field."""

    def __init__(self, doc: object, where: str) -> None:
        if not isinstance(doc, dict):
            raise ManifestError(f"{where} is not an object")
        self.doc, self.where = doc, where

    def get(self, key: str) -> object:
        if key not in self.doc:
            raise ManifestError(f"{self.where}.{key} is missing")
        return self.doc[key]

    def fail(self, key: str, what: str) -> ManifestError:
        return ManifestError(f"{self.where}.{key} must be {what}, not {self.doc.get(key)!r}")

    def integer(self, key: str, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.get(key)
        if (not isinstance(value, int) or isinstance(value, bool) or value < minimum
                or (maximum is not None and value > maximum)):
            raise self.fail(key, f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else ""))
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise self.fail(key, "a finite number")
        return float(value)

    def text(self, key: str, choices: tuple[str, ...] = ()) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value or (choices and value not in choices):
            raise self.fail(key, f"one of {choices}" if choices else "a non-empty string")
        return value

    def items(self, key: str) -> list[_Fields]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.fail(key, "a list")
        return [_Fields(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(value)]

    def mapping(self, key: str) -> dict[str, object]:
        value = self.get(key)
        if not isinstance(value, dict):
            raise self.fail(key, "an object")
        return value


def _participant_v1(p: _Fields) -> Participant:
    seat = V1_SEATS.index(p.text("seat", V1_SEATS))
    return Participant(v1_seat_pid(seat), V1_SEAT_ROLES[seat], p.text("user_id"), p.integer("first_ms"),
                       p.integer("last_ms"))


def _participant(p: _Fields) -> Participant:
    return Participant(p.integer("pid", 1, U32), Role.from_label(p.text("role", ROLES)), p.text("user_id"),
                       p.integer("first_ms"), p.integer("last_ms"))


def _device_doc(d: Device) -> dict[str, Any]:
    doc: dict[str, Any] = {"pid": d.pid, "kind": d.kind, "model": d.model, "sample_rate_hz": d.sample_rate_hz}
    if d.device:
        doc["device"] = d.device
    if d.clock_offsets:
        doc["clock_offsets"] = [c.to_doc() for c in d.clock_offsets]
    return doc


def _device(d: _Fields) -> Device:
    model = d.get("model")
    if not isinstance(model, str):
        raise d.fail("model", "a string")
    rate = d.get("sample_rate_hz")
    if rate is not None and not (d.number("sample_rate_hz") > 0):
        raise d.fail("sample_rate_hz", "null or a positive number")
    device = d.text("device") if "device" in d.doc else ""
    offsets = tuple(ClockOffset(c.integer("at_ms"), c.number("offset_ms"), c.number("rtt_ms"),
                                c.number("drift_ppm") if "drift_ppm" in c.doc else 0.0)
                    for c in d.items("clock_offsets")) if "clock_offsets" in d.doc else ()
    return Device(d.integer("pid", 1, U32), d.text("kind", DEVICE_KINDS), model,
                  None if rate is None else d.number("sample_rate_hz"), device, offsets)


def _offset_pid(key: str, v1: bool) -> int:
    """The participant a ``clock_offsets`` key names: a decimal pid, or a seat in format 1."""
    if v1 and key in V1_SEATS:
        return v1_seat_pid(V1_SEATS.index(key))
    if not v1 and _PID_KEY.fullmatch(key) and int(key) <= U32:
        return int(key)
    what = "seat" if v1 else "participant id"
    raise ManifestError(f"manifest.clock_offsets has unknown {what} {key!r}")


def _parse(f: _Fields) -> Manifest:
    fmt = f.integer("format")
    if fmt not in FORMATS:
        raise f.fail("format", " or ".join(map(str, FORMATS)))
    v1 = fmt == 1
    if v1:
        protocol = 1
    elif f.integer("protocol") not in PROTOCOLS:
        raise f.fail("protocol", " or ".join(map(str, PROTOCOLS)))
    else:
        protocol = f.integer("protocol")
    parse_one = _participant_v1 if v1 else _participant
    participants = [parse_one(p) for p in f.items("participants")]
    offsets: dict[int, list[ClockOffset]] = {}
    per_pid = _Fields(f.mapping("clock_offsets"), "manifest.clock_offsets")
    for key in per_pid.doc:
        offsets[_offset_pid(key, v1)] = [
            ClockOffset(c.integer("at_ms"), c.number("offset_ms"), c.number("rtt_ms"),
                        c.number("drift_ppm") if "drift_ppm" in c.doc else 0.0)
            for c in per_pid.items(key)
        ]
    files: dict[str, FileEntry] = {}
    for name, entry in f.mapping("files").items():
        e = _Fields(entry, f"manifest.files[{name!r}]")
        digest = e.text("sha256")
        if not _SHA256.fullmatch(digest):
            raise e.fail("sha256", "64 lowercase hex digits")
        files[name] = FileEntry(e.integer("bytes"), digest)
    recovery = f.get("recovery")
    if recovery is not None and not isinstance(recovery, dict):
        raise f.fail("recovery", "null or an object")
    status = RecordingStatus(f.text("status", tuple(s.value for s in RecordingStatus)))
    started = f.number("started_unix")
    if not 0 <= started < _YEAR_10000:
        raise f.fail("started_unix", "a unix time from 1970 to 9999")
    return Manifest(
        session_id=f.text("session_id"), epoch=f.integer("epoch"), status=status, started_unix=started,
        participants=participants, clock_offsets=offsets, duration_ms=f.integer("duration_ms"), files=files,
        recovery=recovery, protocol=protocol,
        devices=[_device(d) for d in f.items("devices")] if "devices" in f.doc else [],
        late_audio=_late_audio(f) if "late_audio" in f.doc else {},
        moves=[_move(mv) for mv in f.items("moves")] if "moves" in f.doc else [],
    )


def _move(f: _Fields) -> Move:
    continued = f.get("continued")
    if not isinstance(continued, bool):
        raise f.fail("continued", "true or false")
    return Move(f.integer("at_ms"), f.text("from"), f.text("to"), continued)


def _late_audio(f: _Fields) -> dict[int, LateAudio]:
    per_pid = _Fields(f.mapping("late_audio"), "manifest.late_audio")
    out: dict[int, LateAudio] = {}
    for key in per_pid.doc:
        a = _Fields(per_pid.doc[key], f"manifest.late_audio[{key!r}]")
        out[_offset_pid(key, False)] = LateAudio(a.text("file"), a.integer("packets"), a.integer("first_ms"),
                                                 a.integer("last_ms"))
    return out


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest; ``ManifestError`` when it does not validate, ``OSError`` when absent."""
    return Manifest.from_json((folder / MANIFEST_NAME).read_bytes())


def write_manifest(folder: Path, manifest: Manifest, *, check_lifecycle: bool = True) -> None:
    """Replace the folder's manifest atomically. With ``check_lifecycle`` (the default), a manifest
    already there must allow the new status (``IllegalTransition``) and must itself validate
    (``ManifestError``); with none there, any status may be written first."""
    manifest.validate()
    target = folder / MANIFEST_NAME
    if check_lifecycle and target.exists():
        check_transition(read_manifest(folder).status, manifest.status)
    temp = folder / f".{MANIFEST_NAME}.tmp"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(manifest.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, target)
    fsync_dir(folder)


def file_entries(folder: Path, names: list[str]) -> dict[str, FileEntry]:
    """Size and SHA-256 of each named file in ``folder`` (``OSError`` if one is missing)."""
    entries: dict[str, FileEntry] = {}
    for name in names:
        digest = hashlib.sha256()
        size = 0
        with open(folder / name, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        entries[name] = FileEntry(size, digest.hexdigest())
    return entries
