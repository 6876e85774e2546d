"""A room's audio fan-out: every packet a participant sends goes, as it arrived, to every other
participant's listening leg (WebSocket or WebRTC), and to any taps (the archiver).

No queue here: each leg bounds its own (dropping its oldest packets), so a slow listener never
holds up the speaker or anyone else. A muted participant's packets are dropped at the door.
"""

from __future__ import annotations

from collections.abc import Callable

from .packets import AudioPacket, AudioSink

AudioTap = Callable[[AudioPacket], None]


class AudioRouter:
    def __init__(self) -> None:
        self.sinks: dict[int, AudioSink] = {}  # by pid: where each participant listens
        self.taps: list[AudioTap] = []

    def attach(self, pid: int, sink: AudioSink) -> None:
        """``sink`` is now where participant ``pid`` listens (a newer leg replaces an older one)."""
        self.sinks[pid] = sink

    def detach(self, pid: int, sink: AudioSink) -> None:
        if self.sinks.get(pid) is sink:
            del self.sinks[pid]

    def publish(self, packet: AudioPacket, muted: bool) -> None:
        if muted:
            return
        for pid, sink in list(self.sinks.items()):
            if pid != packet.pid:
                sink.send_audio(packet)
        for tap in self.taps:
            tap(packet)
