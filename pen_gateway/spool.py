"""The crash-safe spool: every op and audio packet is appended to a local file before it is
sent, and forgotten only once the server has confirmed it.

File layout: the magic ``TWSPOOL1``, then records ``[u32 length][body][u32 crc32(body)]``
(big-endian), body = one kind byte and its payload:

| kind | payload | meaning |
| --- | --- | --- |
| 1 OP | the op's frame (msgpack, as sent) | an op to deliver, with its cseq |
| 2 ACK | u64 cseq | the server processed every op up to cseq |
| 3 AUDIO | u64 index, u32 seq, u64 capture_ts, the Opus packet | a packet to deliver |
| 4 AUDIO_DONE | u64 first, u64 end | the server read AUDIO records first..end-1 |
| 5 OPEN | u32 count, u32 stroke ids | strokes open when the file was compacted |

Appends go to the file at once (``os.write``); ``sync()`` (fsync) runs at most ``fsync_s``
(0.1 s) after the first unsynced append, so a crash of the PC loses at most that much and a
crash of the process nothing (the kernel has the bytes). A torn or corrupt tail (power cut
mid-write) is cut off at the last whole record when the spool is opened. When the records the
spool no longer needs outweigh the live ones, the file is rewritten (a temporary file, fsync,
rename). ``max_bytes`` bounds the live bytes: past ``warn_fraction`` of it ``nearly_full`` says
so; an append that does not fit is refused (``SpoolFull``) and the caller reports it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from wire import decode_frame
from wire import messages as m
from wire.limits import Limits

from .errors import SpoolError

MAGIC = b"TWSPOOL1"
OP, ACK, AUDIO, AUDIO_DONE, OPEN = 1, 2, 3, 4, 5
_HEAD = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_AUDIO = struct.Struct(">QIQ")
_RANGE = struct.Struct(">QQ")
MAX_RECORD = 1 << 20
_LIMITS = Limits(max_frame_bytes=MAX_RECORD, max_points_per_message=2**31, max_points_per_stroke=2**31)


class SpoolFull(SpoolError):
    pass


@dataclass(frozen=True, slots=True)
class SpooledAudio:
    index: int
    seq: int
    capture_ts: int
    payload: bytes


def record(kind: int, payload: bytes) -> bytes:
    body = bytes([kind]) + payload
    return _HEAD.pack(len(body)) + body + _HEAD.pack(zlib.crc32(body))


def parse_records(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The whole records in ``data`` (after the magic) and the offset where they end (a torn
    or corrupt tail starts there)."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 4 <= len(data):
        (n,) = _HEAD.unpack_from(data, pos)
        end = pos + 4 + n + 4
        if n == 0 or n > MAX_RECORD + 32 or end > len(data):
            break
        body = data[pos + 4 : pos + 4 + n]
        if _HEAD.unpack_from(data, pos + 4 + n)[0] != zlib.crc32(body):
            break
        out.append((body[0], body[1:]))
        pos = end
    return out, pos


def _audio_body(a: SpooledAudio) -> bytes:
    return _AUDIO.pack(a.index, a.seq, a.capture_ts) + a.payload


def _audio_cost(a: SpooledAudio) -> int:
    return _AUDIO.size + len(a.payload) + 9


class Spool:
    def __init__(self, path: str | Path, *, max_bytes: int = 256 << 20, warn_fraction: float = 0.8,
                 fsync_s: float = 0.1, compact_min_bytes: int = 1 << 20) -> None:
        if max_bytes <= 0 or not 0 < warn_fraction <= 1 or fsync_s <= 0:
            raise ValueError("spool: max_bytes > 0, 0 < warn_fraction <= 1 and fsync_s > 0")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.warn_fraction = warn_fraction
        self.fsync_s = fsync_s
        self.compact_min_bytes = compact_min_bytes
        self.ops: OrderedDict[int, bytes] = OrderedDict()  # cseq -> frame, unacknowledged
        self.audio: OrderedDict[int, SpooledAudio] = OrderedDict()  # index -> packet, unconfirmed
        self.open_strokes: set[int] = set()
        self.acked_cseq = 0
        self.next_audio = 0
        self.live_bytes = 0
        self.peak_bytes = 0
        self.file_bytes = 0
        self.torn_bytes = 0  # cut off a damaged tail when opened
        self.unsynced_since: float | None = None
        self.syncs = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._load()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot use the spool {self.path}: {exc.strerror}",
                             "give a writable --spool directory (the default is ~/.local/state/tutorwire)") from None

    # --- opening --------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            self._write_fresh([])
            return
        data = self.path.read_bytes()
        if not data.startswith(MAGIC):
            raise SpoolError(f"{self.path} is not a tutorwire spool", "move it away or give another --spool")
        records, end = parse_records(data[len(MAGIC):])
        for kind, payload in records:
            self._apply(kind, payload)
        whole = len(MAGIC) + end
        if whole < len(data):
            self.torn_bytes = len(data) - whole
            with open(self.path, "r+b") as f:
                f.truncate(whole)
                f.flush()
                os.fsync(f.fileno())
        self.file_bytes = whole
        self.peak_bytes = self.live_bytes

    def _apply(self, kind: int, payload: bytes) -> None:
        if kind == OP:
            op = decode_frame(payload, _LIMITS)
            assert isinstance(op, m.StrokeBegin | m.StrokePoints | m.StrokeEnd | m.PageAdd | m.PageSwitch
                              | m.Undo | m.Clear | m.Mute)
            self._track(op)
            if op.cseq > self.acked_cseq:
                self.ops[op.cseq] = payload
                self.live_bytes += len(payload) + 9
        elif kind == ACK:
            self._drop_ops(_U64.unpack(payload)[0])
        elif kind == AUDIO:
            index, seq, ts = _AUDIO.unpack_from(payload)
            a = SpooledAudio(index, seq, ts, payload[_AUDIO.size:])
            self.audio[a.index] = a
            self.next_audio = max(self.next_audio, index + 1)
            self.live_bytes += _audio_cost(a)
        elif kind == AUDIO_DONE:
            first, end = _RANGE.unpack(payload)
            self._drop_audio(range(first, end))
        elif kind == OPEN:
            (n,) = _HEAD.unpack_from(payload)
            self.open_strokes = set(struct.unpack_from(f">{n}I", payload, 4))

    def _track(self, op: m.Message) -> None:
        if isinstance(op, m.StrokeBegin):
            self.open_strokes.add(op.stroke)
        elif isinstance(op, m.StrokeEnd):
            self.open_strokes.discard(op.stroke)

    # --- appending ------------------------------------------------------------------------------

    def _append(self, kind: int, payload: bytes, now: float) -> None:
        rec = record(kind, payload)
        os.write(self._fd, rec)
        self.file_bytes += len(rec)
        if self.unsynced_since is None:
            self.unsynced_since = now

    def _room(self, size: int) -> None:
        if self.live_bytes + size > self.max_bytes:
            raise SpoolFull(f"the spool is full ({self.live_bytes} of {self.max_bytes} bytes): new ink is not kept",
                            "reconnect to the network so that the spool can empty, "
                            "or raise PEN_GATEWAY_SPOOL_MAX_BYTES")

    def add_op(self, op: m.Op, frame: bytes, now: float) -> None:
        """Keep an op before it is sent (``SpoolFull`` if it does not fit)."""
        self._room(len(frame) + 9)
        self._append(OP, frame, now)
        self._track(op)
        self.ops[op.cseq] = frame
        self._grew(len(frame) + 9)

    def add_audio(self, seq: int, capture_ts: int, payload: bytes, now: float) -> SpooledAudio:
        a = SpooledAudio(self.next_audio, seq & 0xFFFFFFFF, capture_ts, payload)
        self._room(_audio_cost(a))
        self._append(AUDIO, _audio_body(a), now)
        self.audio[a.index] = a
        self.next_audio += 1
        self._grew(_audio_cost(a))
        return a

    def _grew(self, n: int) -> None:
        self.live_bytes += n
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    @property
    def nearly_full(self) -> bool:
        return self.live_bytes >= self.warn_fraction * self.max_bytes

    # --- forgetting -----------------------------------------------------------------------------

    def _drop_ops(self, cseq: int) -> int:
        n = 0
        while self.ops:
            first = next(iter(self.ops))
            if first > cseq:
                break
            self.live_bytes -= len(self.ops.pop(first)) + 9
            n += 1
        self.acked_cseq = max(self.acked_cseq, cseq)
        return n

    def _drop_audio(self, indices: range) -> int:
        n = 0
        for i in indices:
            a = self.audio.pop(i, None)
            if a is not None:
                self.live_bytes -= _audio_cost(a)
                n += 1
        return n

    def ack(self, cseq: int, now: float) -> None:
        """The server processed every op up to ``cseq``."""
        if cseq <= self.acked_cseq:
            return
        if self._drop_ops(cseq):
            self._append(ACK, _U64.pack(cseq), now)
            self._maybe_compact()
        else:
            self.acked_cseq = cseq

    def audio_done(self, first: int, end: int, now: float) -> None:
        """The server read audio packets ``first..end-1``."""
        if self._drop_audio(range(first, end)):
            self._append(AUDIO_DONE, _RANGE.pack(first, end), now)
            self._maybe_compact()

    # --- durability -----------------------------------------------------------------------------

    def sync_due(self) -> float | None:
        return None if self.unsynced_since is None else self.unsynced_since + self.fsync_s

    def sync(self) -> None:
        """fsync what was appended (blocking: a shell runs it off its event loop)."""
        self.unsynced_since = None
        os.fsync(self._fd)
        self.syncs += 1

    def _maybe_compact(self) -> None:
        if self.file_bytes > self.compact_min_bytes and self.file_bytes > 2 * (self.live_bytes + 64):
            self.compact()

    def compact(self) -> None:
        """Rewrite the file with only what is still needed (atomic: temp file, fsync, rename)."""
        recs = [record(OPEN, _HEAD.pack(len(self.open_strokes)) +
                       struct.pack(f">{len(self.open_strokes)}I", *sorted(self.open_strokes)))]
        if self.acked_cseq:
            recs.append(record(ACK, _U64.pack(self.acked_cseq)))
        recs += [record(OP, frame) for frame in self.ops.values()]
        recs += [record(AUDIO, _audio_body(a)) for a in self.audio.values()]
        os.close(self._fd)
        self._write_fresh(recs)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.unsynced_since = None

    def _write_fresh(self, recs: list[bytes]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            for r in recs:
                f.write(r)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.file_bytes = len(MAGIC) + sum(len(r) for r in recs)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
