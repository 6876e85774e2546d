"""What a listener must offer to receive packets (the packet itself is ``wire.audio``)."""

from __future__ import annotations

from typing import Protocol

from wire.audio import AudioPacket, extend_rtp_seq

__all__ = ["AudioPacket", "AudioSink", "extend_rtp_seq"]


class AudioSink(Protocol):
    """A listener leg. ``send_audio`` never blocks: a leg that cannot keep up drops its own
    oldest packets and never holds up the speaker or the other listeners."""

    def send_audio(self, packet: AudioPacket) -> None: ...
