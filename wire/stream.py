"""Length-prefixed frames on a byte stream (recordings, spools, any transport without framing).

Each frame is a 4-byte big-endian length followed by that many bytes. ``StreamDecoder`` is
sans-I/O: ``feed()`` bytes as they arrive, in pieces of any size, and take complete frames from
``frames()``. The length is checked against the limit before any buffer is kept for the frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .errors import ErrorCode, ProtocolError

_HEADER = struct.Struct(">I")


def frame_bytes(frame: bytes) -> bytes:
    """``frame`` with its length prefix."""
    return _HEADER.pack(len(frame)) + frame


class StreamDecoder:
    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def pending(self) -> int:
        """Bytes received and not yet taken out by ``frames()`` (whole frames included)."""
        return len(self._buffer)

    def frames(self) -> Iterator[bytes]:
        """Complete frames received so far; raises ``ProtocolError`` on an oversized length."""
        buf = self._buffer
        while len(buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf)
            if size > self.max_frame_bytes:
                # the stream has lost its framing: it stays refused (the header is kept)
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE, f"stream frame of {size} bytes exceeds {self.max_frame_bytes}"
                )
            end = _HEADER.size + size
            if len(buf) < end:
                return
            frame = bytes(buf[_HEADER.size:end])
            del buf[:end]
            yield frame
