"""A class spanning nodes, both ends (docs/cluster.md, "Classes across nodes"): at the class's home
its events, audio and answers go out once (``classfan.ClassFan``); at an *edge* (a node its
viewers reached while the home was full or elsewhere) a mirror of the room serves the local
viewers their Welcome, catch-up and live events, and their joins, ops and leaves go to the home.

The home decides everything as it does for local viewers: pids, rights, the floor, the roster,
the recording. An edge's mirror only replays what the home numbered (``room/restore.py``)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import typing
from typing import TYPE_CHECKING, Any

from wire import CloseCode, ErrorCode, FatalProtocolError, ProtocolError, Role, decode_frame, encode
from wire import messages as m

from ..room import restore
from ..room.room import ParticipantState
from . import classfan as cf
from .rooms import load

if TYPE_CHECKING:
    from ..hub import Hub, LiveRoom
    from .classfan import ClassFan

log = logging.getLogger("tutorwire.cluster.span")

OP_TYPES = typing.get_args(m.Op)
EDGE_JOIN_TIMEOUT_S = 5.0  # an edge viewer's join the home does not answer in this long is refused (retry)
MIRROR_CATCH_UP_TRIES = 50  # reads of the stream while the first published event is not in it yet


class EdgeConnection:
    """What the edge side needs of a viewer's connection (``sessionserver/connection.py``)."""

    def edge_applied(self, cseq: int, seq: int) -> None: ...

    def edge_refused(self, cseq: int, code: int, text: str, last_cseq: int) -> None: ...

    def deliver_audio(self, frame: bytes) -> None: ...


class Span:
    def __init__(self, hub: Hub, fan: ClassFan, node_id: str, prefix: str) -> None:
        self.hub = hub
        self.fan = fan
        self.node_id = node_id
        self.prefix = prefix
        self._nonces = itertools.count(1)
        self._opening: dict[str, asyncio.Future[LiveRoom]] = {}

    # --- the home -----------------------------------------------------------------------------

    def home(self, live: LiveRoom) -> None:
        """``live`` is a class homed here: what it publishes goes to its edges too."""
        room_id = live.room.session_id
        fan = self.fan

        def to_edges(item: list[Any]) -> None:
            fan.to_edges(room_id, item)

        live.fan = to_edges
        live.audio.taps.append(lambda packet: to_edges([cf.AUDIO, packet.pid, _relay(packet)]))

    def on_inbox(self, room_id: str, message: list[Any]) -> None:
        """An edge's join, op or leave for a class homed here (others' classes are ignored)."""
        live = self.hub.rooms.get(room_id)
        if live is None or live.edge_of is not None or live.fan is None or live.ended:
            return
        kind = message[0]
        if kind == cf.JOIN:
            self._join(live, message)
        elif kind == cf.OP:
            self._op(live, message)
        elif kind == cf.LEAVE:
            _, pid, _dev = message
            room = live.room
            if pid in room.participants and pid not in live.participants:
                live.publish(room.presence(int(pid), False, self.hub.clock()), None)

    def _join(self, live: LiveRoom, message: list[Any]) -> None:
        _, nonce, _node, user_id, role, _dev = message
        room = live.room
        now = self.hub.clock()
        try:
            state = room.admit(Role(int(role)), str(user_id))
            room.count_join(state.pid, now)
        except FatalProtocolError as exc:
            assert live.fan is not None
            live.fan([cf.REFUSED, nonce, int(exc.code), exc.message, int(exc.close_code)])
            return
        online = room.presence(state.pid, True, now)
        live.publish(online, None)
        assert live.fan is not None
        live.fan([cf.ADMITTED, nonce, state.pid])

    def _op(self, live: LiveRoom, message: list[Any]) -> None:
        _, pid, dev, frame = message
        room = live.room
        pid, dev = int(pid), str(dev)
        assert live.fan is not None
        if pid not in room.participants:
            return
        now = self.hub.clock()
        op: m.Op | None = None
        try:
            decoded = decode_frame(bytes(frame), room.limits)
            if not isinstance(decoded, OP_TYPES):
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{type(decoded).__name__} is not an op")
            op = decoded
            applied = room.apply(pid, op, now, dev)
        except ProtocolError as exc:
            if op is not None:
                live.fan([cf.OP_REFUSED, pid, dev, op.cseq, int(exc.code), exc.message, room.last_cseq(pid, dev)])
            return
        if applied is None:
            live.fan([cf.APPLIED, pid, dev, room.last_cseq(pid, dev), 0])
            return
        live.publish(applied, pid, dev)
        live.fan([cf.APPLIED, pid, dev, op.cseq, applied.event.seq])

    # --- an edge ------------------------------------------------------------------------------

    async def open_edge(self, room_id: str, home: str) -> LiveRoom:
        """This node's mirror of class ``room_id`` homed on ``home``: subscribed first, then
        filled from the stream, then the events that came meanwhile."""
        live = self.hub.rooms.get(room_id)
        if live is not None:
            return live
        opening = self._opening.get(room_id)
        if opening is not None:
            return await asyncio.shield(opening)
        future: asyncio.Future[LiveRoom] = asyncio.get_running_loop().create_future()
        self._opening[room_id] = future
        try:
            live = await self._open_edge(room_id, home)
            future.set_result(live)
            return live
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the caller raises it
            raise
        finally:
            del self._opening[room_id]

    async def _open_edge(self, room_id: str, home: str) -> LiveRoom:
        limits = self.hub.settings.limits
        await self.fan.watch(room_id)
        stored = await load(self.fan.redis, self.prefix, room_id, limits)
        if stored is None:
            raise FatalProtocolError(ErrorCode.SESSION_ENDED, "this class is not live", CloseCode.SESSION_ENDED)
        live = self.hub.build(room_id, stored.epoch)
        live.edge_of = home
        live.edge_buffer = []
        room = live.room
        now = self.hub.clock()
        if stored.started_unix > 0:
            room.started_at = now - max(0.0, time.time() - stored.started_unix)
        restore.replay(room, stored.events, now, offline_after=False)
        if stored.live_epoch:
            room.epoch = stored.live_epoch  # the home took the class over: its clients' epoch
        for _ in range(MIRROR_CATCH_UP_TRIES):  # the first event published may be newer than the stream
            buffered = live.edge_buffer
            if not buffered or buffered[0][0].seq <= room.seq + 1:
                break
            await asyncio.sleep(0.01)  # the home's journal writes within milliseconds: read again
            again = await load(self.fan.redis, self.prefix, room_id, limits)
            if again is not None:
                restore.replay(room, again.events, self.hub.clock(), offline_after=False)
        buffered, live.edge_buffer = live.edge_buffer or [], None
        for event, frame in buffered:
            self._mirror(live, event, frame)
        restore.keep_last_run(room)  # a replay for a late viewer here never crosses a takeover's jump
        log.info("class %s mirrored on %s (home %s) at seq %d", room_id, self.node_id, home, room.seq)
        return live

    async def join(self, live: LiveRoom, user_id: str, role: Role, dev: str) -> int:
        """Ask the home to admit a viewer of this edge; its pid (or the home's refusal)."""
        nonce = next(self._nonces)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        live.edge_joins[nonce] = waiter
        self.fan.to_home(live.room.session_id, [cf.JOIN, nonce, self.node_id, user_id, int(role), dev])
        try:
            return await asyncio.wait_for(waiter, EDGE_JOIN_TIMEOUT_S)
        except TimeoutError:
            raise FatalProtocolError(ErrorCode.JOIN_TIMEOUT, "the class's home did not answer; join again",
                                     CloseCode.JOIN_TIMEOUT) from None
        finally:
            live.edge_joins.pop(nonce, None)

    def send_op(self, live: LiveRoom, pid: int, dev: str, op: m.Op) -> None:
        self.fan.to_home(live.room.session_id, [cf.OP, pid, dev, encode(op)])

    def leave(self, live: LiveRoom, pid: int, dev: str) -> None:
        self.fan.to_home(live.room.session_id, [cf.LEAVE, pid, dev])

    def on_fan(self, room_id: str, items: list[Any]) -> None:
        live = self.hub.rooms.get(room_id)
        if live is None or live.edge_of is None:
            return
        for item in items:
            kind = item[0]
            if kind == cf.EVENT:
                frame = bytes(item[1])
                event = decode_frame(frame, live.room.limits)
                if not isinstance(event, m.Event):
                    continue
                if live.edge_buffer is not None:
                    live.edge_buffer.append((event, frame))
                else:
                    self._mirror(live, event, frame)
            elif kind == cf.AUDIO:
                speaker, frame = int(item[1]), bytes(item[2])
                for pid, devices in live.participants.items():
                    if pid != speaker:
                        for connection in devices.values():
                            _edge(connection).deliver_audio(frame)
            elif kind == cf.ADMITTED:
                waiter = live.edge_joins.get(int(item[1]))
                if waiter is not None and not waiter.done():
                    waiter.set_result(int(item[2]))
            elif kind == cf.REFUSED:
                waiter = live.edge_joins.get(int(item[1]))
                if waiter is not None and not waiter.done():
                    waiter.set_exception(FatalProtocolError(ErrorCode(int(item[2])), str(item[3]),
                                                            CloseCode(int(item[4]))))
            elif kind in (cf.APPLIED, cf.OP_REFUSED):
                self._answer(live, item)

    def _mirror(self, live: LiveRoom, event: m.Event, frame: bytes) -> None:
        room = live.room
        if event.seq <= room.seq:
            return
        if event.seq > room.seq + 1:  # the class's home was taken over (it numbers on from a jump), or
            # this node missed messages: the mirror is rebuilt, and its viewers come back by snapshot
            log.warning("class %s on %s: seq %d after %d; the mirror is rebuilt", room.session_id,
                        self.node_id, event.seq, room.seq)
            self.hub._moved(room.session_id)
            return
        restore.replay(room, [(event, frame)], self.hub.clock(), offline_after=False)
        body = event.body
        live.fan_out(frame, None if isinstance(body, m.ClassOp) else event.pid)

    def _answer(self, live: LiveRoom, item: list[Any]) -> None:
        pid, dev = int(item[1]), str(item[2])
        state = live.room.participants.get(pid)
        connection = live.participants.get(pid, {}).get(dev)
        if state is not None:
            cseq = int(item[3]) if item[0] == cf.APPLIED else int(item[6])
            live.room._used(state, dev, cseq)
        if connection is None:
            return
        if item[0] == cf.APPLIED:
            _edge(connection).edge_applied(int(item[3]), int(item[4]))
        else:
            _edge(connection).edge_refused(int(item[3]), int(item[4]), str(item[5]), int(item[6]))


def viewer_state(live: LiveRoom, pid: int, role: Role, user_id: str) -> ParticipantState:
    """The mirror's record of an edge viewer the home admitted (before its presence arrives)."""
    room = live.room
    state = room.participants.get(pid)
    if state is None:
        state = room.participants[pid] = ParticipantState(pid, role, room.rights_table[role], user_id)
    return state


def _edge(connection: object) -> EdgeConnection:
    return connection  # type: ignore[return-value]


def _relay(packet: Any) -> bytes:
    from ..media.packets import relay_frame

    return relay_frame(packet)
