"""Live rooms of this process: the I/O side of a room (its connections and fan-out), and the
end of sessions.

A session ends when its tutor ends it (the matcher's ``session_ended``, see ``end_session``) or
when nobody has been in its room for ``session_idle_end_s``. Then every connection gets
``Error 2007 SESSION_ENDED`` and close 4006, the recording is finalised at once, and the hub
remembers the session id (the last ``ended_sessions_max`` of them) so that a join with an old
token is refused the same way. An empty room whose session has not ended is evicted after
``room_idle_ttl_s`` (its state is dropped; a later join starts a new room, with a new epoch).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from wire import Role, RoomKind
from wire import messages as m
from wire.clocksync import ClockModel

from . import metrics
from .classes.model import ROOM_PREFIX as CLASS_ROOM_PREFIX
from .cluster.classfan import EVENT as EVENT_ITEM
from .cluster.journal import JournalRoom
from .media.router import AudioRouter
from .room import Room, restore
from .room.room import Applied, Coalesced
from .settings import Settings

if TYPE_CHECKING:
    from recordings.archiver import Archiver, SessionRecorder

    from .cluster.node import ClusterNode
    from .cluster.rooms import StoredRoom

log = logging.getLogger("tutorwire.hub")
# how far a room taken over from a dead node jumps in seq (room/restore.py ``renumber``): far more
# events than one node numbers between two journal writes
TAKEOVER_SEQ_GAP = 1_000_000



class Participant(Protocol):
    pid: int
    dev: str  # which of the participant's devices ("" its first; docs/protocol.md 3.6)

    def deliver(self, frame: bytes) -> None: ...

    def replace(self) -> None: ...

    def end_session(self) -> None: ...

    def moved(self, url: str) -> None: ...


@dataclass(slots=True)
class LiveRoom:
    room: Room
    # by pid, then device: a participant's connections (one per device)
    participants: dict[int, dict[str, Participant]] = field(default_factory=dict)
    evict_handle: asyncio.TimerHandle | None = None
    empty: asyncio.Event = field(default_factory=lambda: _set(asyncio.Event()))  # set while nobody is here
    audio: AudioRouter = field(default_factory=AudioRouter)
    recorder: SessionRecorder | None = None
    ended: bool = False
    emptied_at: float = 0.0  # hub clock when the last participant left
    # by pid: the clock model of its latest connection, carried over a reconnect (ClockModel.carry)
    clock_models: dict[int, ClockModel] = field(default_factory=dict)
    device_clock_models: dict[tuple[int, str], ClockModel] = field(default_factory=dict)  # of devices but ""
    # told of every presence change and removal (the class attendance): (room id, participant, event)
    presence_hooks: list[PresenceHook] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic  # the room's clock (the hub's)
    roster_timer: asyncio.TimerHandle | None = None  # armed while a class's Roster is held back
    # several nodes: the room's journal entry, and the connections whose Acks wait for it
    journal: JournalRoom | None = None
    waiting: set[Durable] = field(default_factory=set)
    # a class spanning nodes (cluster/span.py): at its home, where its events go for the other
    # nodes; at an edge, the home node's id, the events that came while the mirror was loading,
    # and the joins waiting for the home's answer (by nonce)
    fan: Callable[[list[Any]], None] | None = None
    edge_of: str | None = None
    edge_buffer: list[tuple[m.Event, bytes]] | None = None
    edge_joins: dict[int, asyncio.Future[int]] = field(default_factory=dict)
    # (pid, device, connection) of everyone, for the fan-out; rebuilt when ``participants`` changes
    _flat: tuple[tuple[int, str, Participant], ...] | None = None

    def changed(self) -> None:
        """``participants`` changed: the fan-out list is rebuilt at its next use."""
        self._flat = None

    def publish(self, applied: Applied | Coalesced, sender: int | None, device: str = "") -> None:
        """An event the room accepted: to the recording, then to everyone but device ``device``
        of ``sender`` (its other devices get it; a class op goes to its sender as well). A
        class participant its presenter removed is told, after everyone has the event, that the
        session has ended for it (2007, close 4006). A class viewer's presence held for the next
        ``Roster`` (``Coalesced``) goes to the presence hooks at once and to the room with that Roster."""
        if isinstance(applied, Coalesced):
            self._tell(applied.pid, applied.online)
            self._roster_soon()
            return
        if self.recorder is not None:
            if device and isinstance(applied.event.body, m.StrokeBegin):  # whose clock its times are on
                self.recorder.on_stroke_device(applied.event.pid, applied.event.body.stroke, device)
            self.recorder.on_event(applied.event, applied.frame)
        if self.fan is not None:
            self.fan([EVENT_ITEM, applied.frame])
        body = applied.event.body
        # a class op's effect is the room's to decide (a question trimmed, a hand's place), so its
        # sender gets the event too, where other ops' senders have applied them already
        receivers = self.fan_out(applied.frame, None if isinstance(body, m.ClassOp) else sender, device)
        if type(body) is m.StrokePoints:
            metrics.ink_out(body.count, receivers)
        if isinstance(body, m.Presence):
            self._tell(applied.event.pid, body.online)
        elif isinstance(body, m.Moderate) and body.action is m.ModAction.REMOVE:
            gone = self.participants.pop(body.pid, {})
            self.changed()
            for removed in gone.values():
                removed.end_session()
            self._tell(body.pid, False)

    def _tell(self, pid: int, online: bool) -> None:
        state = self.room.participants.get(pid)
        if state is None:
            return
        for hook in self.presence_hooks:
            try:
                hook(self.room.session_id, state.user_id, state.role, online)
            except Exception:  # an observer's fault is its own: the room goes on
                log.exception("presence hook failed in %s", self.room.session_id)

    def _roster_soon(self) -> None:
        """Send the held Roster now if it is due, else arm one timer for when it is."""
        if self.roster_timer is not None or self.ended:
            return
        due = self.room.roster_due()
        if due is None:
            return
        wait = due - self.clock()
        if wait > 0:
            self.roster_timer = asyncio.get_running_loop().call_later(wait, self._roster_fired)
            return
        for applied in self.room.flush_roster(self.clock()):
            if self.recorder is not None:
                self.recorder.on_event(applied.event, applied.frame)
            if self.fan is not None:
                self.fan([EVENT_ITEM, applied.frame])
            self.fan_out(applied.frame, None)

    def _roster_fired(self) -> None:
        self.roster_timer = None
        self._roster_soon()  # flushes (or re-arms for a clock a hair behind the loop's)

    def fan_out(self, frame: bytes, sender: int | None, device: str = "") -> int:
        """Queue ``frame`` (encoded once) for everyone in the room but device ``device`` of
        participant ``sender``; how many connections it went to."""
        flat = self._flat
        if flat is None:
            flat = self._flat = tuple((pid, dev, p) for pid, devices in self.participants.items()
                                      for dev, p in devices.items())
        skipped = 0
        for pid, dev, participant in flat:
            if pid != sender or dev != device:
                participant.deliver(frame)
            else:
                skipped = 1
        return len(flat) - skipped

    def durable(self, seq: int) -> None:
        """Every event up to ``seq`` is in Redis: the Acks it covers go."""
        if self.waiting:
            for connection in list(self.waiting):
                if connection.durable(seq):
                    self.waiting.discard(connection)

    def connections(self) -> list[Participant]:
        """Every connection in the room, each device of each participant."""
        return [p for devices in self.participants.values() for p in devices.values()]


PresenceHook = Callable[[str, str, Role, bool], None]  # room id, user id, role, online


class Busy(Protocol):
    message: str  # "server busy, retry in N s"


class Shedding(Protocol):
    def refusal(self, kind: str) -> Busy | None:
        """Why new work of ``kind`` ("join") is refused now, or ``None`` (sessionserver/overload.py)."""


class Durable(Protocol):
    def durable(self, seq: int) -> bool:
        """Events up to ``seq`` are durable; True once nothing of this connection waits."""


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


class BoundedSet:
    """A set that remembers at most ``bound`` items, forgetting the oldest first."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.bound:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


class Hub:
    def __init__(self, settings: Settings, clock: Callable[[], float], archiver: Archiver | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.archiver = archiver
        self.rooms: dict[str, LiveRoom] = {}
        self.ended = BoundedSet(settings.ended_sessions_max)
        # rooms evicted while their session had not ended: when they emptied (hub clock), so
        # that a join after ``session_idle_end_s`` finds the session ended (same bound)
        self._idle_since: OrderedDict[str, float] = OrderedDict()
        self._closing: set[asyncio.Future[None]] = set()  # recordings being finalised
        self.presence_hooks: list[PresenceHook] = []  # given to every room (LiveRoom.presence_hooks)
        self.cluster: ClusterNode | None = None  # several nodes on Redis (sessionserver/cluster/)
        self.shedder: Shedding | None = None  # overload: new participants refused while busy
        self._cluster_tasks: set[asyncio.Task[None]] = set()

    # --- ended sessions -----------------------------------------------------------------------

    def is_ended(self, session_id: str) -> bool:
        """Whether ``session_id`` has ended (a join to it is refused with 2007 / close 4006)."""
        if session_id in self.ended:
            return True
        since = self._idle_since.get(session_id)
        end_after = self.settings.session_idle_end_s
        if since is not None and end_after > 0 and self.clock() - since >= end_after:
            del self._idle_since[session_id]
            self.ended.add(session_id)
            log.info("session %s ended: nobody in it for %.0f s", session_id, end_after,
                     extra={"session_id": session_id})
            return True
        return False

    def end_session(self, session_id: str, why: str) -> None:
        """End ``session_id`` now: every connection gets 2007 and close 4006, the recording is
        finalised, and later joins are refused. Idempotent."""
        if session_id not in self.ended:
            log.info("session %s ended: %s", session_id, why, extra={"session_id": session_id})
        self.ended.add(session_id)
        self._idle_since.pop(session_id, None)
        live = self.rooms.pop(session_id, None)
        if live is None:
            return
        live.ended = True
        if live.roster_timer is not None:
            live.roster_timer.cancel()
            live.roster_timer = None
        if live.evict_handle is not None:
            live.evict_handle.cancel()
            live.evict_handle = None
        for participant in live.connections():
            participant.end_session()
        live.participants.clear()
        live.changed()
        live.empty.set()
        self._close_recording(live, "session ended")
        self._left(session_id, ended=True)

    def _left(self, session_id: str, ended: bool) -> None:
        """The room is gone from this node: its claim in Redis goes (and an ended one's stream)."""
        if self.cluster is not None:
            self._in_background(self.cluster.closed(session_id, ended))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._cluster_tasks.add(task)
        task.add_done_callback(self._cluster_tasks.discard)

    def _close_recording(self, live: LiveRoom, reason: str) -> None:
        recorder, live.recorder = live.recorder, None
        if recorder is not None and self.archiver is not None:
            # queued at once; the archiver finalises it off the loop (the future is done then)
            done = self.archiver.close(recorder, reason)
            self._closing.add(done)
            done.add_done_callback(self._closing.discard)

    # --- rooms --------------------------------------------------------------------------------

    def room(self, session_id: str, epoch: int = 0, moved_from: str = "",
             started_unix: float | None = None, durable_seq: int | None = None) -> LiveRoom:
        """The live room ``session_id``, made now (with ``epoch``, or a new random one) if this
        node has none; one taken over from node ``moved_from`` goes on with its recording."""
        live = self.rooms.get(session_id)
        if live is None:
            live = self.build(session_id, epoch)
            room = live.room
            if self.cluster is not None:
                self._journal(live)
                if room.kind is RoomKind.CLASS:
                    self.cluster.span.home(live)  # its events go to the nodes with its other viewers
            if self.archiver is not None:
                # At once, with no disk I/O: the archiver's writer thread creates the files, and
                # a recording that cannot be written fails alone while the session goes on.
                if moved_from and self.cluster is not None:
                    live.recorder = self.archiver.resume(session_id, room.epoch, moved_from, self.cluster.node_id,
                                                         started_unix=started_unix, durable_seq=durable_seq)
                else:
                    live.recorder = self.archiver.open(session_id, room.epoch)
                live.audio.taps.append(live.recorder.on_audio)
        if live.evict_handle is not None:
            live.evict_handle.cancel()
            live.evict_handle = None
        return live

    def build(self, session_id: str, epoch: int = 0) -> LiveRoom:
        """A new live room of this node (with ``epoch``, or a new random one), nothing attached."""
        self._idle_since.pop(session_id, None)
        s = self.settings
        kind = RoomKind.CLASS if session_id.startswith(CLASS_ROOM_PREFIX) else RoomKind.ONE_ON_ONE
        room = Room(session_id, s.limits, s.oplog_max_events, self.clock(),
                    epoch=epoch or secrets.randbelow(2**53 - 1) + 1,
                    kind=kind, oplog_max_bytes=s.oplog_max_bytes, max_ink_bytes=s.max_room_ink_bytes,
                    max_joins_per_minute=s.max_joins_per_minute, snapshot_part_bytes=s.snapshot_part_bytes,
                    max_viewers=s.classes.max_viewers, roster_interval_s=s.classes.roster_interval_s)
        live = self.rooms[session_id] = LiveRoom(room, presence_hooks=self.presence_hooks, clock=self.clock)
        return live

    def adopt(self, session_id: str, stored: StoredRoom) -> LiveRoom:
        """A room this node took over from a dead one, rebuilt from what Redis holds: the same
        epoch, seqs, participants and pages; its session clock goes on from the stored start."""
        live = self.rooms.get(session_id)
        if live is not None:
            return live
        # a room that lived before (on a dead node, or here until it was evicted) goes on with
        # its recording; a new one starts its own
        here = self.cluster.node_id if self.cluster is not None else ""
        moved_from = stored.moved_from or (here if stored.events else "")
        taken_over = bool(stored.moved_from) and stored.moved_from != here
        durable_seq = stored.events[-1][0].seq if stored.events else 0
        live = self.room(session_id, stored.epoch, moved_from, stored.started_unix or None,
                         durable_seq if taken_over else None)
        room = live.room
        now = self.clock()
        if stored.started_unix > 0:
            room.started_at = now - max(0.0, time.time() - stored.started_unix)
        if live.journal is not None:
            room.on_change = None  # what is replayed is in Redis already
        replayed = restore.replay(room, stored.events, now)
        restore.set_cseqs(room, stored.cseqs)
        room.take_moved_cseqs()
        restore.keep_last_run(room)
        if taken_over:  # what the dead node numbered after Redis's last event is lost: number anew
            restore.renumber(room, secrets.randbelow(2**53 - 1) + 1, TAKEOVER_SEQ_GAP)
            if self.cluster is not None:
                self._in_background(self.cluster.live_epoch(session_id, room.epoch))
        if live.journal is not None:
            live.journal.written = room.seq
            room.on_change = self._changed(live.journal)
        if live.recorder is not None:
            for event, frame in stored.events:
                live.recorder.on_event(event, frame)
        log.info("room %s rebuilt from Redis: %d events, seq %d, epoch %d", session_id, replayed, room.seq,
                 room.epoch, extra={"session_id": session_id, "node": self.cluster.node_id if self.cluster else None})
        self.release(live)  # empty until its clients come back: evicted as any empty room
        return live

    def _journal(self, live: LiveRoom) -> None:
        assert self.cluster is not None
        room = live.room
        entry = live.journal = JournalRoom(room.session_id, lambda: room.log, lambda: room.seq, live.durable,
                                           lambda: self._moved(room.session_id), room.take_moved_cseqs)
        room.on_change = self._changed(entry)

    def _changed(self, entry: JournalRoom) -> Callable[[], None]:
        assert self.cluster is not None
        journal = self.cluster.journal
        return lambda: journal.changed(entry)

    def _moved(self, session_id: str) -> None:
        """Another node owns the room now (it took it over): its connections here end with
        Error 2010, and their clients find the room's new home."""
        live = self.rooms.pop(session_id, None)
        if live is None:
            return
        log.warning("room %s is another node's now; its %d connections here go there", session_id,
                    len(live.connections()), extra={"session_id": session_id})
        live.ended = True
        for participant in live.connections():
            participant.moved("")
        live.participants.clear()
        live.changed()
        self._close_recording(live, "moved to another node")

    def attach(self, live: LiveRoom, participant: Participant) -> None:
        """``participant`` joined: it replaces a connection of the same participant and device;
        the participant's other devices stay."""
        devices = live.participants.setdefault(participant.pid, {})
        old = devices.get(participant.dev)
        devices[participant.dev] = participant
        live.changed()
        live.empty.clear()
        if old is not None:
            old.replace()

    def detach(self, live: LiveRoom, participant: Participant) -> bool:
        """Remove ``participant``; ``False`` if a newer connection of the same participant and
        device already replaced it."""
        devices = live.participants.get(participant.pid, {})
        if devices.get(participant.dev) is not participant:
            return False
        del devices[participant.dev]
        if not devices:
            del live.participants[participant.pid]
        live.changed()
        self.release(live)
        return True

    def release(self, live: LiveRoom) -> None:
        """A join into ``live`` ended (it left, or was refused): an empty room ends its session
        after ``session_idle_end_s``, or is evicted after ``room_idle_ttl_s`` if that comes first."""
        if live.participants or live.evict_handle is not None or live.ended:
            return
        live.empty.set()
        live.emptied_at = self.clock()
        end_after = self.settings.session_idle_end_s
        delay = self.settings.room_idle_ttl_s if end_after <= 0 else min(end_after, self.settings.room_idle_ttl_s)
        loop = asyncio.get_running_loop()
        live.evict_handle = loop.call_later(delay, self._idle, live.room.session_id)

    def _idle(self, session_id: str) -> None:
        """The empty-room timer: end the session if it has been idle long enough, else evict."""
        live = self.rooms.get(session_id)
        if live is None:
            return
        live.evict_handle = None  # fired: a later release arms a new one
        if live.participants:
            return
        end_after = self.settings.session_idle_end_s
        if 0 < end_after <= self.settings.room_idle_ttl_s:
            self.end_session(session_id, f"nobody in it for {end_after:.0f} s")
            return
        del self.rooms[session_id]
        self._close_recording(live, "room idle")
        self._left(session_id, ended=False)
        if end_after > 0:
            self._idle_since[session_id] = live.emptied_at
            while len(self._idle_since) > self.settings.ended_sessions_max:
                self._idle_since.popitem(last=False)
        log.info("room %s evicted after %.0f s idle", session_id, self.settings.room_idle_ttl_s,
                 extra={"session_id": session_id})
