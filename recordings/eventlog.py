"""The append-only event log ``events.log`` (``docs/recordings.md``).

An 8-byte header ``TWLOG01\\n``, then records, each ``u32 BE length | u32 BE zlib.crc32 | payload``
where the payload is one msgpack array ``[kind, session_ms, device_ms, pid, body]``. ``pid`` is the
participant id (1..2**32-1) or nil; in a recording of protocol version 1 the same field held the seat
(0 tutor, 1 student), which ``read_log`` accepts too (the manifest's ``protocol`` says which it is).

``encode_record`` and ``read_log`` are the sans-I/O core; ``LogWriter`` and ``trim_log`` are thin
file shells. ``read_log`` never raises: it returns every good record up to the first damaged one
and a sentence saying where (byte offset) and why it stopped.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack

from recordings import RecordingError

MAGIC = b"TWLOG01\n"
MAX_RECORD_BYTES = 1 << 20  # a relayed frame is at most 64 KiB (Limits.max_frame_bytes); 1 MiB leaves room
MAX_PENDING_BYTES = 1 << 20  # LogWriter writes its buffer out (without fsync) beyond this
_PREFIX = struct.Struct(">II")
U32 = 2**32 - 1


class LogError(RecordingError):
    """A record that cannot be encoded, or a writer pointed at a file that is not a clean log."""


class Kind(IntEnum):
    EVENT = 1
    AUDIO = 2
    CLOCK = 3
    NOTE = 4


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record. ``body`` is anything msgpack carries; arrays come back from ``read_log`` as lists."""

    kind: Kind
    session_ms: int
    device_ms: int | None
    pid: int | None  # the participant id (protocol 2); the seat, 0 or 1, in a protocol-1 log
    body: Any


@dataclass
class LogRead:
    """What ``read_log`` found: the good records, the byte length they fill (header included), and
    ``damage``: None for a clean log, else a sentence naming the byte offset and the reason."""

    records: list[LogRecord]
    good_bytes: int
    damage: str | None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(kind: object, session_ms: object, device_ms: object, pid: object, lowest_pid: int) -> str | None:
    """Why these record fields are invalid, or None. ``lowest_pid`` is 1 for what we write and 0
    for what we read (a protocol-1 log has seat 0)."""
    if not _is_int(kind) or kind not in Kind._value2member_map_:
        return f"unknown record kind {kind!r}"
    if not _is_int(session_ms) or session_ms < 0:  # type: ignore[operator]
        return f"session_ms {session_ms!r} is not a non-negative integer"
    if device_ms is not None and not _is_int(device_ms):
        return f"device_ms {device_ms!r} is not an integer or nil"
    if pid is not None and (not _is_int(pid) or not lowest_pid <= pid <= U32):  # type: ignore[operator]
        return f"pid {pid!r} is not an integer from {lowest_pid} to {U32} or nil"
    return None


def encode_record(record: LogRecord) -> bytes:
    """The framed bytes of ``record``; ``LogError`` if a field is invalid or the payload is too large."""
    problem = _check_fields(record.kind, record.session_ms, record.device_ms, record.pid, 1)
    if problem:
        raise LogError(problem)
    try:
        payload: bytes = msgpack.packb(
            [int(record.kind), record.session_ms, record.device_ms, record.pid, record.body], use_bin_type=True
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise LogError(f"record body cannot be encoded as msgpack: {exc}") from exc
    if len(payload) > MAX_RECORD_BYTES:
        raise LogError(f"record payload of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}")
    return _PREFIX.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> LogRecord | str:
    """The record in ``payload``, or why it is not one."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage; all mean the same here
        return f"bad msgpack ({type(exc).__name__}: {exc})"
    if not isinstance(value, list) or len(value) != 5:
        return "payload is not a five-element msgpack array"
    kind, session_ms, device_ms, pid, body = value
    problem = _check_fields(kind, session_ms, device_ms, pid, 0)
    if problem:
        return problem
    return LogRecord(Kind(kind), session_ms, device_ms, pid, body)


def read_log(data: bytes, *, max_record_bytes: int = MAX_RECORD_BYTES) -> LogRead:
    """Every good record in ``data`` up to the first damaged one. Never raises.

    An empty ``data`` is a clean, empty log (a crash between creating the file and writing its
    header leaves exactly that)."""
    if not data:
        return LogRead([], 0, None)
    if data[: len(MAGIC)] != MAGIC:
        what = "truncated" if MAGIC.startswith(data) else "not TWLOG01"
        return LogRead([], 0, f"bad header at byte 0: {what}")
    records: list[LogRecord] = []
    offset = len(MAGIC)
    while offset < len(data):
        if len(data) - offset < _PREFIX.size:
            return LogRead(records, offset, f"truncated record at byte {offset}: {len(data) - offset} bytes of prefix")
        length, crc = _PREFIX.unpack_from(data, offset)
        if length > max_record_bytes:
            return LogRead(records, offset, f"implausible record length {length} at byte {offset}")
        start = offset + _PREFIX.size
        payload = data[start : start + length]
        if len(payload) < length:
            return LogRead(
                records, offset, f"truncated record at byte {offset}: {len(payload)} of {length} payload bytes"
            )
        if zlib.crc32(payload) != crc:
            return LogRead(records, offset, f"CRC mismatch in record at byte {offset}")
        decoded = _decode_payload(payload)
        if isinstance(decoded, str):
            return LogRead(records, offset, f"bad record at byte {offset}: {decoded}")
        records.append(decoded)
        offset = start + length
    return LogRead(records, offset, None)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LogWriter:
    """Appends records to one ``events.log``. Not thread-safe; one writer per file.

    ``append`` only buffers; ``flush`` writes the buffer (and fsyncs when asked), so the caller
    decides how much it can afford to lose. A buffer beyond ``max_pending_bytes`` is written out
    (without fsync) by ``append`` itself. Opening a file that is not a clean log raises
    ``LogError``: run ``trim_log`` first, or new records would hide behind the damage."""

    def __init__(self, path: Path, *, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self.path = path
        self.max_pending_bytes = max_pending_bytes
        self._pending = bytearray()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            existing = path.read_bytes()
            report = read_log(existing)
            if report.damage is not None:
                raise LogError(f"{path} is damaged ({report.damage}); trim it before appending")
            if not existing:
                _write_all(self._fd, MAGIC)
            self._written = max(len(existing), len(MAGIC))
        except BaseException:
            os.close(self._fd)
            raise
        self._closed = False

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the file so far (header included), not counting the unflushed buffer."""
        return self._written

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def append(self, record: LogRecord) -> None:
        if self._closed:
            raise LogError("append after close")
        self._pending += encode_record(record)
        if len(self._pending) > self.max_pending_bytes:
            self.flush(fsync=False)

    def fileno(self) -> int:
        """The file's descriptor, for an fsync off the event loop."""
        return self._fd

    def flush(self, fsync: bool) -> None:
        """Write the buffered records; with ``fsync``, also make everything written so far durable."""
        if self._closed:
            raise LogError("flush after close")
        if self._pending:
            _write_all(self._fd, bytes(self._pending))
            self._written += len(self._pending)
            self._pending.clear()
        if fsync:
            os.fsync(self._fd)

    def close(self, fsync: bool = True) -> None:
        """Flush and close; closing twice is harmless."""
        if self._closed:
            return
        try:
            self.flush(fsync)
        finally:
            self._closed = True
            os.close(self._fd)

    def abandon(self) -> None:
        """Close the file without writing what is buffered (after a failure; recovery follows)."""
        if not self._closed:
            self._closed = True
            self._pending.clear()
            os.close(self._fd)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def cut_tail(path: Path, good_bytes: int) -> int:
    """Truncate ``path`` to ``good_bytes``, first saving the cut bytes beside it as
    ``<name>.damaged`` (``.damaged.2``, ... if that exists), both fsynced. Returns bytes cut."""
    data = path.read_bytes()
    tail = data[good_bytes:]
    if not tail:
        return 0
    keep = path.with_name(path.name + ".damaged")
    n = 2
    while keep.exists():
        keep = path.with_name(f"{path.name}.damaged.{n}")
        n += 1
    with open(keep, "xb") as f:
        f.write(tail)
        f.flush()
        os.fsync(f.fileno())
    with open(path, "r+b") as f:
        f.truncate(good_bytes)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
    return len(tail)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def trim_log(path: Path) -> LogRead:
    """Recovery: cut ``path`` back to its last good record (keeping the cut tail as
    ``events.log.damaged``) and return what ``read_log`` found before the cut."""
    report = read_log(path.read_bytes())
    if report.damage is not None:
        cut_tail(path, report.good_bytes)
    return report
