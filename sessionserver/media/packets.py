"""What a listener must offer to receive packets (the packet itself is ``wire.audio``), and the
``AudioRelay`` frame a WebSocket listener gets for a packet."""

from __future__ import annotations

from typing import Protocol

import msgpack

from wire import messages as m
from wire.audio import AudioPacket, extend_rtp_seq

__all__ = ["AudioPacket", "AudioSink", "extend_rtp_seq", "relay_frame"]

_AUDIO_RELAY = int(m.MsgType.AUDIO_RELAY)
_pack = msgpack.Packer(use_bin_type=True).pack
_last_packet: AudioPacket | None = None
_last_frame = b""


class AudioSink(Protocol):
    """A listener leg. ``send_audio`` never blocks: a leg that cannot keep up drops its own
    oldest packets and never holds up the speaker or the other listeners."""

    def send_audio(self, packet: AudioPacket) -> None: ...


def relay_frame(packet: AudioPacket) -> bytes:
    """``packet`` as an ``AudioRelay`` frame (as ``wire.encode`` makes it). Encoded once however
    many listeners hear it: a room hands one packet to all its legs in a row, so the last
    packet's frame is kept."""
    global _last_packet, _last_frame
    if packet is not _last_packet:
        _last_frame = _pack([_AUDIO_RELAY, packet.pid, packet.seq, packet.capture_ts, packet.session_ms,
                             packet.payload])
        _last_packet = packet
    return _last_frame
