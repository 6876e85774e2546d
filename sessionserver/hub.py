"""Live rooms of this process: the I/O side of a room (its connections and fan-out)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .media.router import AudioRouter
from .room import Room
from .room.room import Applied
from .settings import Settings

if TYPE_CHECKING:
    from recordings.archiver import Archiver, SessionRecorder

log = logging.getLogger("tutorwire.hub")


class Participant(Protocol):
    pid: int

    def deliver(self, frame: bytes) -> None: ...

    def replace(self) -> None: ...


@dataclass(slots=True)
class LiveRoom:
    room: Room
    participants: dict[int, Participant] = field(default_factory=dict)
    evict_handle: asyncio.TimerHandle | None = None
    empty: asyncio.Event = field(default_factory=lambda: _set(asyncio.Event()))  # set while nobody is here
    audio: AudioRouter = field(default_factory=AudioRouter)
    recorder: SessionRecorder | None = None

    def publish(self, applied: Applied, sender: int | None) -> None:
        """An event the room accepted: to the recording, then to everyone but ``sender``."""
        if self.recorder is not None:
            self.recorder.on_event(applied.event, applied.frame)
        self.fan_out(applied.frame, sender)

    def fan_out(self, frame: bytes, sender: int | None) -> None:
        """Queue ``frame`` (encoded once) for everyone in the room but participant ``sender``."""
        for pid, participant in list(self.participants.items()):
            if pid != sender:
                participant.deliver(frame)


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


class Hub:
    def __init__(self, settings: Settings, clock: Callable[[], float], archiver: Archiver | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.archiver = archiver
        self.rooms: dict[str, LiveRoom] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def room(self, session_id: str) -> LiveRoom:
        live = self.rooms.get(session_id)
        if live is None:
            room = Room(session_id, self.settings.limits, self.settings.oplog_max_events, self.clock(),
                        epoch=secrets.randbelow(2**53 - 1) + 1)
            live = self.rooms[session_id] = LiveRoom(room)
            if self.archiver is not None:
                try:
                    live.recorder = self.archiver.open(session_id, room.epoch)
                except OSError:  # the session matters more than its recording
                    log.exception("cannot record session %s; it goes on unrecorded", session_id)
                else:
                    live.audio.taps.append(live.recorder.on_audio)
        if live.evict_handle is not None:
            live.evict_handle.cancel()
            live.evict_handle = None
        return live

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        old = live.participants.get(participant.pid)
        live.participants[participant.pid] = participant
        live.empty.clear()
        if old is not None:
            old.replace()

    def detach(self, live: LiveRoom, participant: Participant) -> bool:
        """Remove ``participant``; ``False`` if a newer connection of the same participant
        already replaced it."""
        if live.participants.get(participant.pid) is not participant:
            return False
        del live.participants[participant.pid]
        self.release(live)
        return True

    def release(self, live: LiveRoom) -> None:
        """A join into ``live`` ended (it left, or was refused): an empty room is evicted after
        ``room_idle_ttl_s``."""
        if live.participants or live.evict_handle is not None:
            return
        live.empty.set()
        loop = asyncio.get_running_loop()
        live.evict_handle = loop.call_later(self.settings.room_idle_ttl_s, self._evict, live.room.session_id)

    def _evict(self, session_id: str) -> None:
        live = self.rooms.get(session_id)
        if live is not None and not live.participants:
            del self.rooms[session_id]
            if live.recorder is not None and self.archiver is not None:
                task = asyncio.get_running_loop().create_task(self.archiver.close(live.recorder, "room idle"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            log.info("room %s evicted after %.0f s idle", session_id, self.settings.room_idle_ttl_s)
