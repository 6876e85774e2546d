"""A room's audio fan-out: every packet a participant sends goes, as it arrived, to every other
participant's listening leg (WebSocket or WebRTC), and to any taps (the archiver).

No queue here: each leg bounds its own (dropping its oldest packets), so a slow listener never
holds up the speaker or anyone else. A muted participant's packets are dropped at the door.
The fan-out list is rebuilt when a leg comes or goes, not per packet.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import metrics
from .packets import AudioPacket, AudioSink

AudioTap = Callable[[AudioPacket], None]


class AudioRouter:
    def __init__(self) -> None:
        self.sinks: dict[int, AudioSink] = {}  # by pid: where each participant listens (read only: use attach/detach)
        self.taps: list[AudioTap] = []
        self._legs: tuple[tuple[int, AudioSink], ...] = ()

    def attach(self, pid: int, sink: AudioSink) -> None:
        """``sink`` is now where participant ``pid`` listens (a newer leg replaces an older one)."""
        self.sinks[pid] = sink
        self._legs = tuple(self.sinks.items())

    def detach(self, pid: int, *sinks: object) -> None:
        """Participant ``pid`` stops listening, if it listens on one of ``sinks``."""
        if any(self.sinks.get(pid) is sink for sink in sinks):
            del self.sinks[pid]
            self._legs = tuple(self.sinks.items())

    def publish(self, packet: AudioPacket, muted: bool) -> None:
        if muted:
            return
        speaker = packet.pid
        sent = 0
        for pid, sink in self._legs:
            if pid != speaker:
                sink.send_audio(packet)
                sent += 1
        metrics.audio_forwarded(sent)
        for tap in self.taps:
            tap(packet)
