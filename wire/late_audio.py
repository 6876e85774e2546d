"""Late audio (``AudioLate``, type 32): microphone packets uploaded after an outage for the
recording only, at their capture time (``docs/protocol.md`` 11.6).

The message is part of the protocol (``wire.messages.AudioLate``, the codec); this module keeps
the names the pen gateway first used for it. ``[32, [[seq, capture_ts, payload], ...]]``: up to
``MAX_LATE_PACKETS`` packets of one sender, each as in ``Audio`` (30). The server records them at
``capture_ts`` (by the sender's clock model) marked late, never forwards them live, and the
recording drops a packet whose seq it already has from this sender (an upload repeated after a
lost link). A server older than type 32 answers ``Error 1002 UNKNOWN_TYPE`` and stays open.
"""

from __future__ import annotations

from .codec import MAX_LATE_PACKETS, decode_frame, encode
from .errors import ErrorCode, ProtocolError
from .limits import Limits
from .messages import AudioLate, LatePacket, MsgType

AUDIO_LATE = int(MsgType.AUDIO_LATE)
__all__ = ["AUDIO_LATE", "MAX_LATE_PACKETS", "AudioLate", "LatePacket", "decode_audio_late", "encode_audio_late"]
_LIMITS = Limits()


def encode_audio_late(msg: AudioLate) -> bytes:
    """The frame for ``msg``; ``ValueError`` unless it holds 1..``MAX_LATE_PACKETS`` packets."""
    return encode(msg)


def decode_audio_late(frame: bytes) -> AudioLate:
    """The ``AudioLate`` in ``frame``, or ``ProtocolError`` (1001 not an AudioLate or a missing
    field, 1006 a field out of range or not an Opus packet)."""
    try:
        msg = decode_frame(frame, _LIMITS)
    except ProtocolError as exc:
        if exc.code in (ErrorCode.BAD_FRAME, ErrorCode.INVALID_FIELD):
            raise
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not an AudioLate: {exc.message}") from None
    if not isinstance(msg, AudioLate):
        raise ProtocolError(ErrorCode.BAD_FRAME, "AudioLate is [32, [[seq, capture_ts, payload], ...]]")
    return msg
