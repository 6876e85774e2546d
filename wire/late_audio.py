"""Late audio (proposed type 32): microphone packets uploaded after an outage for the recording
only, at their capture time. A proposal of the pen gateway (issue 18); the server does not
accept it yet (it answers ``Error 1002 UNKNOWN_TYPE``, ``ref`` 0, and stays open), so a client
sends one and keeps its late audio until the server has taken one.

``[32, [[seq, capture_ts, payload], ...]]``: up to ``MAX_LATE_PACKETS`` packets of one sender,
each as in ``Audio`` (30): seq U32, capture_ts on the sender's device clock (0..U53), one
well-formed Opus packet. The server is to record them at ``capture_ts`` (by the sender's clock
model) marked late, never forward them live, and drop a packet whose seq it already has from
this sender (an upload repeated after a lost link). Sans-I/O: bytes in and out.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from .errors import ErrorCode, ProtocolError
from .opus import packet_samples

AUDIO_LATE = 32
MAX_LATE_PACKETS = 50  # a second of 20 ms packets a frame
_U53 = 2**53 - 1


@dataclass(frozen=True, slots=True)
class LatePacket:
    seq: int
    capture_ts: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class AudioLate:
    packets: tuple[LatePacket, ...]


def encode_audio_late(msg: AudioLate) -> bytes:
    if not 1 <= len(msg.packets) <= MAX_LATE_PACKETS:
        raise ValueError(f"AudioLate holds 1..{MAX_LATE_PACKETS} packets")
    frame: bytes = msgpack.packb([AUDIO_LATE, [[p.seq, p.capture_ts, p.payload] for p in msg.packets]],
                                 use_bin_type=True)
    return frame


def decode_audio_late(frame: bytes) -> AudioLate:
    """The message in ``frame``, or ``ProtocolError`` (1001 bad frame or a missing field,
    1006 a field out of range or not an Opus packet)."""
    try:
        items = msgpack.unpackb(frame, raw=False, max_map_len=0, max_ext_len=0, max_bin_len=len(frame),
                                max_str_len=len(frame), max_array_len=max(len(frame), 2))
    except Exception:  # every kind of malformed msgpack means garbage
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame is not valid msgpack") from None
    if not isinstance(items, list) or len(items) < 2 or items[0] != AUDIO_LATE or not isinstance(items[1], list):
        raise ProtocolError(ErrorCode.BAD_FRAME, "AudioLate is [32, [[seq, capture_ts, payload], ...]]")
    if not 1 <= len(items[1]) <= MAX_LATE_PACKETS:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"AudioLate holds 1..{MAX_LATE_PACKETS} packets")
    out = []
    for p in items[1]:
        if not (isinstance(p, list) and len(p) >= 3 and type(p[0]) is int and type(p[1]) is int
                and isinstance(p[2], bytes)):
            raise ProtocolError(ErrorCode.BAD_FRAME, "a late packet is [seq, capture_ts, payload]")
        if not (0 <= p[0] <= 0xFFFFFFFF and 0 <= p[1] <= _U53):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "seq is U32 and capture_ts 0..U53")
        packet_samples(p[2])
        out.append(LatePacket(p[0], p[1], p[2]))
    return AudioLate(tuple(out))
