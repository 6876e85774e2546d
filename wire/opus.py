"""Just enough of Opus packets (RFC 6716, section 3) to forward them without decoding: check
that a packet is well formed and tell how many 48 kHz samples it holds.

The live path never decodes audio; it still must not pass on bytes that are not an Opus
packet, and it needs each packet's duration to advance RTP and Ogg timestamps.
"""

from __future__ import annotations

from .errors import ErrorCode, ProtocolError

MAX_PACKET_BYTES = 1275 * 3  # RFC 6716: at most 1275 bytes a frame; code 3 packets may hold more frames
_MAX_SAMPLES = 5760  # 120 ms at 48 kHz, the longest packet allowed
# Samples per frame at 48 kHz for each TOC configuration (0-31).
_FRAME_SAMPLES = (
    [480, 960, 1920, 2880] * 3  # SILK NB, MB, WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # hybrid SWB, FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
)


def packet_samples(packet: bytes) -> int:
    """The number of 48 kHz samples ``packet`` decodes to; ``ProtocolError`` (1006) when it is
    not a well-formed Opus packet."""
    if not packet:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "an Opus packet cannot be empty")
    if len(packet) > MAX_PACKET_BYTES:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"an Opus packet is at most {MAX_PACKET_BYTES} bytes")
    toc = packet[0]
    per_frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 0x3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
        if len(packet) < 2:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "an Opus packet of two frames is truncated")
    else:
        if len(packet) < 2:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "an Opus code 3 packet is missing its frame count")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "an Opus code 3 packet must hold at least one frame")
    samples = frames * per_frame
    if samples > _MAX_SAMPLES:
        raise ProtocolError(ErrorCode.INVALID_FIELD, "an Opus packet may hold at most 120 ms")
    return samples
