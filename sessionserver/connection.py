"""One participant's WebSocket: the thin I/O shell between a link and its room.

The connection's protocol lives in ``wire.session.ServerSession`` (sans-I/O): the join's
first-frame and version rules, the frame size limit, the rate limit and error budget, acks
coalesced for ``ack_delay_ms``, the ping cadence and the clock from Pongs, the join timeout.
This shell hands the machine each frame from its ``Link`` and the clock, arms the machine's
timer, and does what the machine leaves to it: the token, the room (``sessionserver/room/``),
audio and WebRTC, and the writes.

It is driven by callbacks, with no task of its own: the link (``sessionserver/fastws``, picows
under uvicorn's port) calls ``opened``, ``frame_received``/``text_received``, ``resumed`` and
``lost``. Frames are written to the link at once, without an await, while it is writable; while
the transport is above its high-water mark they wait in the bounded ``SendQueue`` (past its
bound: close 4010, slow consumer) and go out when the link resumes.

The error ladder, one rung per kind of failure, each for this client alone:

- ``ProtocolError``: an ``Error`` frame; the connection goes on.
- ``FatalProtocolError``: an ``Error`` frame, then close with its 4000-4999 code.
- the peer went away (a close frame, a dropped TCP connection): nothing to tell it.
- anything else is a fault of the server: logged with its traceback, ``Error 3004
  INTERNAL_ERROR``, close 1011; the client resumes as after any drop. The room and the other
  participants go on.

Close 1000 is sent only when the peer left (or the session ended for it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from wire import (
    INTERNAL_CLOSE,
    NORMAL_CLOSE,
    CloseCode,
    ErrorCode,
    FatalProtocolError,
    ProtocolError,
    Rights,
    Role,
    encode,
)
from wire import messages as m
from wire.clocksync import ClockEstimator
from wire.opus import packet_samples
from wire.session import ServerConfig, ServerSession, ServerState
from wire.session import events as ev

from . import metrics
from .auth import JoinGrant, TokenError, TokenSigner
from .cluster.node import Edge, Redirect
from .cluster.span import viewer_state
from .hub import Hub, LiveRoom
from .media.burst import later
from .media.leg import RtcLeg
from .media.packets import AudioPacket, extend_rtp_seq, relay_frame
from .media.rtc_config import RtcConfig
from .media.signalling import Signalling
from .room.room import ParticipantState
from .sendqueue import SendQueue
from .settings import Settings
from .ticks import Ticker, ticker

log = logging.getLogger("tutorwire.connection")

_TOKEN_CLOSE = {
    ErrorCode.AUTH_FAILED: CloseCode.AUTH_FAILED,
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.WRONG_SESSION: CloseCode.FORBIDDEN,
    ErrorCode.WRONG_SEAT: CloseCode.FORBIDDEN,
}
EARLY_FRAMES_MAX = 256  # frames a client may send while its join waits for Redis; past it the link is cut
SESSION_PATH = "/ws/session/"  # + a session id: where the session WebSocket is on every node
SERVICE_RESTART_CLOSE = 1012  # RFC 6455: the server is restarting; clients resume elsewhere or later
_ENDING = (ServerState.CLOSING, ServerState.CLOSED)
_closing: set[asyncio.Task[None]] = set()  # WebRTC legs being closed after their participant left


class Link(Protocol):
    """Where a connection's frames go: one client's WebSocket, written without awaiting.

    ``paused`` is true while the transport holds more than its high-water mark; the link calls
    ``Connection.resumed`` when it drains below it again."""

    @property
    def paused(self) -> bool: ...

    def write(self, frame: bytes) -> None:
        """Send ``frame`` as one binary message."""

    def write_many(self, frames: list[bytes]) -> None:
        """Send each of ``frames`` as one binary message, in order, in one transport write."""

    def close(self, code: int, reason: str) -> None:
        """A close frame after everything written, then drop the connection (at once if the
        peer does not take its last bytes within the close grace)."""


def server_config(settings: Settings) -> ServerConfig:
    """The session machine's settings, from the server's (several nodes: durable Acks)."""
    return ServerConfig(limits=settings.limits, join_timeout_s=settings.join_timeout_s,
                        ack_delay_ms=settings.ack_delay_ms, ping_interval_s=settings.ping_interval_s,
                        max_errors=settings.max_errors,
                        durable_acks=bool(settings.node_id and (settings.redis_url or settings.redis_sentinels)))


class Connection:
    def __init__(self, link: Link, session_id: str, hub: Hub, signer: TokenSigner,
                 settings: Settings, clock: Callable[[], float], rtc_config: RtcConfig) -> None:
        self.link = link
        self.session_id = session_id
        self.hub = hub
        self.signer = signer
        self.settings = settings
        self.limits = settings.limits
        self.clock = clock
        self.session = ServerSession(server_config(settings), clock())
        self.pid = 0  # the participant this connection is, once joined
        self.dev = ""  # which of its devices (the token's ``dev``; "" its first)
        self.role = Role.TUTOR
        self.user_id = ""
        self.live: LiveRoom | None = None
        self.queue = SendQueue(settings.send_queue_max, settings.send_queue_max_bytes, settings.audio_queue_packets)
        self._backlog = False  # frames wait in the queue (or it is finished): none may pass them
        self._close_sent = False
        self._gone = False
        self._left = False  # the client closed with 1000: it left, its link did not drop
        self._tick = -1  # the shared tick (ticks.py) that wakes this connection's machine next; -1: none
        self._ticker: Ticker | None = None
        self._timer_at: float | None = None
        self.rtc: Signalling | None = None  # WebRTC signalling and leg, from the first offer
        self.rtc_config = rtc_config
        self._rtp_seq_ext = -1  # the last extended RTP sequence number from the WebRTC leg
        # several nodes: a join waiting for Redis (the room's home), and frames that came meanwhile
        self._joining: asyncio.Task[None] | None = None
        self._early: list[bytes] = []

    @property
    def state(self) -> ServerState:
        return self.session.state

    @property
    def clock_sync(self) -> ClockEstimator:
        """The client's device clock minus the session clock, from the server's pings."""
        return self.session.clock_sync

    @property
    def client_seq(self) -> int:
        """The last server seq the client said it applied (its Acks; informational)."""
        return self.session.client_seq

    # --- what the link calls ------------------------------------------------------------------

    def opened(self) -> None:
        """The WebSocket is open: the join timeout runs from here."""
        self.session = ServerSession(server_config(self.settings), self.clock())
        self._arm()

    def frame_received(self, data: bytes) -> None:
        """One binary message from the client."""
        if self._joining is not None:  # the join waits for Redis: what follows it waits too
            if len(self._early) >= EARLY_FRAMES_MAX:
                self._send_close(CloseCode.PROTOCOL_VIOLATION, "too many frames before the Welcome")
                return
            self._early.append(data)
            return
        try:
            self.session.receive_frame(data, self.clock())
            self._drain()
        except Exception:
            self._fault("the connection")

    def text_received(self) -> None:
        try:
            self.session.receive_text(self.clock())
            self._drain()
        except Exception:
            self._fault("the connection")

    def resumed(self) -> None:
        """The transport drained below its low-water mark: send what waited."""
        try:
            self._flush()
        except Exception:
            self._fault("a write")

    def peer_closed(self, code: int) -> None:
        """The client closed the connection with ``code`` (before ``lost``): 1000 is a client
        that leaves (``Presence.left``); any other code, or none, a link that dropped."""
        self._left = code == NORMAL_CLOSE

    def lost(self) -> None:
        """The connection is gone (the peer closed it, it dropped, or we closed it)."""
        if self._gone:
            return
        self._gone = True
        if self._joining is not None:
            self._joining.cancel()
        self.queue.discard()
        self._backlog = True
        try:
            self._leave()
        except Exception:
            log.exception("fault while %s left %s", self.user_id or "an unjoined client", self.session_id,
                          extra=self._log_fields())
        self.session.connection_lost(self.clock())
        self._disarm()

    def shutdown(self) -> None:
        """The server is stopping: close 1012, and the client resumes when it is back."""
        if not self._gone:
            self.session.close(SERVICE_RESTART_CLOSE, "server restarting")
            self._drain()

    def _log_fields(self, code: int | None = None) -> dict[str, object]:
        """What a JSON log line says of this connection (``logs.EXTRA_FIELDS``); never its token."""
        fields: dict[str, object] = {"session_id": self.session_id, "pid": self.pid or None,
                                     "user_id": self.user_id or None}
        if code is not None:
            fields["code"] = int(code)
        return fields

    def _fault(self, where: str) -> None:
        log.exception("fault in %s of %s in %s; closing it with %d", where,
                      self.user_id or "an unjoined client", self.session_id, INTERNAL_CLOSE, extra=self._log_fields())
        try:
            self._internal_error()
            self._leave()
        except Exception:
            log.exception("fault while closing %s in %s", self.user_id or "an unjoined client", self.session_id,
                          extra=self._log_fields())
            self._send_close(INTERNAL_CLOSE, "internal error")

    # --- the machine's output and events ------------------------------------------------------

    def _drain(self) -> None:
        """Act on what the machine reports, then write what it has to send (a closing machine's
        last frames go with the close, past the bound)."""
        session = self.session
        events = session.events()
        while events:
            for event in events:
                self._on(event)
            events = session.events()
        if session.state in _ENDING:
            frames = session.data_to_send()
            if not self.queue.closed and session.close_code is not None:
                self.queue.finish(session.close_code, session.close_reason, frames)
                self._backlog = True
                self._flush()
        else:
            for frame in session.data_to_send():
                if not self._put(frame):
                    break
            if session.undurable and self.live is not None:
                self.live.waiting.add(self)
        self._arm()

    def _on(self, event: ev.ServerEvent) -> None:
        if isinstance(event, ev.OpReceived):
            self._apply(event.op)
        elif type(event) is ev.AudioIn:  # the audio hot path
            audio = event.audio
            self._publish_audio(audio.seq, audio.capture_ts, audio.payload, True)
        elif isinstance(event, ev.ClockSampled):
            live = self.live
            if live is not None and live.recorder is not None:
                live.recorder.on_clock(self.pid, event.session_ms, event.offset_ms, event.rtt_ms, event.drift_ppm,
                                       self.dev)
        elif isinstance(event, ev.LateAudioIn):
            self._record_late(event.late)
        elif isinstance(event, ev.OpRejected):
            assert self.live is not None
            room = self.live.room
            metrics.error(event.error.code)
            room.refuse(self.pid, event.error.ref, self.dev)  # a refused op: its cseq is used up
            self.session.op_refused(event.error, room.last_cseq(self.pid, self.dev), self.clock())
        elif isinstance(event, ev.SignalIn):
            self._signalling().submit(event.message)
        elif isinstance(event, ev.JoinRequested):
            try:
                self._join(event.join)
            except FatalProtocolError as exc:
                metrics.error(exc.code)
                self.session.refuse_join(exc)
        elif isinstance(event, ev.CloseLink):
            metrics.closed(event.code)
            log.info("closing %s (%s): %s", self.user_id or "unjoined client", event.code, event.reason,
                     extra=self._log_fields(event.code))

    # --- timer --------------------------------------------------------------------------------

    def _arm(self) -> None:
        """Make sure the loop wakes for the machine's next timer (a stale wake is harmless)."""
        due = self.session.get_timer()
        if due is None or (self._timer_at is not None and self._timer_at <= due):
            return  # the common case: an armed wake comes first
        self._timer_at = due
        shared = self._ticker
        if shared is None:
            shared = self._ticker = ticker(self.clock)
        if self._tick >= 0:
            shared.cancel(self._tick, self)
        self._tick = shared.wake(due, self, self._fire)  # one loop timer with the connections due then

    def _fire(self, tick: int) -> None:
        if tick != self._tick:
            return  # a wake re-armed since, or disarmed
        self._tick = -1
        self._timer_at = None
        try:
            self.session.handle_timer(self.clock())
            self._drain()
        except Exception:
            self._fault("a timer")

    def _disarm(self) -> None:
        if self._tick >= 0 and self._ticker is not None:
            self._ticker.cancel(self._tick, self)
        self._tick = -1
        self._timer_at = None

    # --- join ---------------------------------------------------------------------------------

    def _join(self, join: m.Join) -> None:
        """The machine checked the first frame and the version; the token and the room are ours."""
        try:
            grant = self.signer.check(join.token, self.session_id, join.role, time.time(),
                                      self.limits.max_string_bytes)
        except TokenError as exc:
            raise FatalProtocolError(exc.code, exc.message, _TOKEN_CLOSE[exc.code]) from None
        if self.hub.is_ended(self.session_id):
            raise FatalProtocolError(ErrorCode.SESSION_ENDED, "this session has ended", CloseCode.SESSION_ENDED)
        live = self.hub.rooms.get(self.session_id)
        if (live is None or live.edge_of is not None) and self.hub.cluster is not None:
            self._joining = asyncio.get_running_loop().create_task(self._clustered_join(join, grant))
            return
        self._admit(join, grant, self.hub.room(self.session_id))  # (an empty room's eviction is called off)

    async def _clustered_join(self, join: m.Join, grant: JoinGrant) -> None:
        """Several nodes: find the room's home first. Elsewhere and alive: Error 2010 with its
        URL, close 4013. Here (claimed now, or taken over from a dead home): the room, rebuilt
        from Redis if it lived before, then the join as on one node."""
        cluster = self.hub.cluster
        assert cluster is not None
        try:
            where = await cluster.open(self.session_id, SESSION_PATH + self.session_id, grant.role)
            if isinstance(where, Edge):
                try:
                    await self._edge_join(join, grant, where.home)
                except FatalProtocolError as exc:
                    metrics.error(exc.code)
                    if not self._gone:
                        self.session.refuse_join(exc)
        finally:
            self._joining = None
        if self._gone:
            return
        try:
            if isinstance(where, Edge):
                pass  # joined (or refused) above
            elif isinstance(where, Redirect):
                metrics.error(ErrorCode.MOVED)
                self.session.refuse_join(FatalProtocolError(ErrorCode.MOVED, where.url, CloseCode.MOVED))
            else:
                if self.session_id not in self.hub.rooms and where is not None:
                    self.hub.adopt(self.session_id, where)
                live = self.hub.room(self.session_id)  # (an empty room's eviction is called off)
                try:
                    self._admit(join, grant, live)
                except FatalProtocolError as exc:
                    metrics.error(exc.code)
                    self.session.refuse_join(exc)
            self._drain()
            early, self._early = self._early, []
            for data in early:
                self.frame_received(data)
        except Exception:
            self._fault("a join")

    def _admit(self, join: m.Join, grant: JoinGrant, live: LiveRoom) -> None:
        room = live.room
        shedder = self.hub.shedder
        if shedder is not None and not any(p.user_id == grant.user_id and p.role is grant.role
                                           for p in room.participants.values()):
            busy = shedder.refusal("join")  # someone new is new work; a known participant resumes
            if busy is not None:
                self.hub.release(live)
                raise FatalProtocolError(ErrorCode.SERVER_BUSY, busy.message, CloseCode.SERVER_BUSY)
        now = self.clock()
        try:
            participant = room.admit(grant.role, grant.user_id)
            room.count_join(participant.pid, now)
        except FatalProtocolError:
            self.hub.release(live)
            raise
        online = room.presence(participant.pid, True, now)
        self._enter(join, grant, live, participant, now)
        live.publish(online, self.pid, self.dev)

    async def _edge_join(self, join: m.Join, grant: JoinGrant, home: str) -> None:
        """A viewer of a class homed on ``home``: this node's mirror serves it, the home admits it
        (its pid, its rights, the roster) and hears its ops (cluster/span.py)."""
        cluster = self.hub.cluster
        assert cluster is not None
        live = self.hub.rooms.get(self.session_id)
        if live is None or live.edge_of is None:
            await cluster.span.open_edge(self.session_id, home)
        if self._gone:
            return
        live = self.hub.room(self.session_id)  # (an empty mirror's eviction is called off)
        pid = await cluster.span.join(live, grant.user_id, grant.role, grant.device)
        if self._gone:
            cluster.span.leave(live, pid, grant.device)
            return
        participant = viewer_state(live, pid, grant.role, grant.user_id)
        participant.online = True
        self._enter(join, grant, live, participant, self.clock())

    def _enter(self, join: m.Join, grant: JoinGrant, live: LiveRoom, participant: ParticipantState,
               now: float) -> None:
        """The participant is admitted: the Welcome, the catch-up, and live from here."""
        room = live.room
        self.live = live
        self.pid, self.role, self.user_id = participant.pid, participant.role, participant.user_id
        self.dev = grant.device
        mode = room.catch_up_mode(join.last_seq, join.epoch)
        welcome = encode(room.welcome(self.pid, mode, now, self.dev))
        catch_up = room.catch_up(join.last_seq, mode)
        self.hub.attach(live, self)
        if live.edge_of is None and (not self.dev or self.pid not in live.audio.sinks):
            live.audio.attach(self.pid, self)  # a participant listens on its first device
        for frame in self.session.data_to_send():  # refusals of text frames before the join
            self._put(frame)
        self.queue.put_catch_up(welcome, catch_up)  # exempt from the bound, ahead of everything after
        self._backlog = True
        self._flush()  # as much as the transport takes now; the rest as it drains
        self.session.accept(now, room.session_ms)  # the first Ping follows the catch-up
        # a clock model per device, carried over its reconnects
        prior = live.device_clock_models.get((self.pid, self.dev)) if self.dev else live.clock_models.get(self.pid)
        if prior is not None:
            self.session.clock_model.carry(prior)
        if self.dev:
            live.device_clock_models[(self.pid, self.dev)] = self.session.clock_model
        else:
            live.clock_models[self.pid] = self.session.clock_model
        log.info("%s joined %s as %s, participant %d (%s from seq %d)", self.user_id, self.session_id,
                 self.role.label, self.pid, mode.name.lower(), join.last_seq, extra=self._log_fields())

    # --- audio --------------------------------------------------------------------------------
    def _publish_audio(self, seq: int, capture_ts: int, payload: bytes, refuse: bool) -> None:
        """A packet from this participant, to the room's listeners and recording. One it may not
        publish is refused (``refuse``: an ``Audio`` frame) or dropped (a WebRTC leg's packet)."""
        live = self.live
        if live is None or live.edge_of is not None:
            return  # an edge viewer's voice (on stage) is not carried across nodes
        room = live.room
        pid = self.pid
        if not room.may(pid, Rights.AUDIO):
            if refuse:
                self._refuse(ProtocolError(ErrorCode.FORBIDDEN, f"a {self.role.label} may not publish audio"))
            return
        try:
            samples = packet_samples(payload)
        except ProtocolError:
            return  # only WebRTC packets get here unchecked; a bad one is simply not forwarded
        now = self.clock()
        if not room.take_mic(pid, self.dev, now):
            return  # another device of this participant holds its microphone
        packet = AudioPacket(pid, seq, capture_ts, room.session_ms(now), samples, payload, self.dev)
        live.audio.publish(packet, room.participants[pid].muted)

    def _record_late(self, late: m.AudioLate) -> None:
        """Late audio (``AudioLate``) goes to the recording alone, never to a listener; it needs
        the AUDIO right as ``Audio`` does, and a muted participant's is dropped as live audio is."""
        live = self.live
        assert live is not None
        room = live.room
        if not room.may(self.pid, Rights.AUDIO):
            self._refuse(ProtocolError(ErrorCode.FORBIDDEN, f"a {self.role.label} may not publish audio"))
            return
        if live.recorder is None or room.participants[self.pid].muted:
            return
        now_ms = room.session_ms(self.clock())
        for p in late.packets:
            live.recorder.on_late_audio(AudioPacket(self.pid, p.seq, p.capture_ts, now_ms, packet_samples(p.payload),
                                                    p.payload, self.dev))

    def send_audio(self, packet: AudioPacket) -> None:
        """This participant listens over its WebSocket (no WebRTC leg): queue the packet in the
        audio lane, which drops its oldest packets when the client falls behind."""
        later(self._write_audio, relay_frame(packet))  # with the loop iteration's other audio writes

    def _write_audio(self, frame: bytes) -> None:
        if self._gone:
            return
        if not self._backlog and not self.link.paused:
            self.link.write(frame)
        elif not self.queue.closed:
            self.queue.put_media(frame)
            self._backlog = True

    def _signalling(self) -> Signalling:
        if self.rtc is None:
            self.rtc = Signalling(
                self.rtc_config, lambda msg: self.deliver(encode(msg)), self._refuse,
                self._rtp_audio, self._listen_on,
            )
        return self.rtc

    def _rtp_audio(self, payload: bytes, rtp_seq: int, rtp_timestamp: int) -> None:
        """A packet from this participant's WebRTC leg: its 16-bit RTP sequence number is
        extended to the protocol's 32-bit audio seq (counting wraps), so listeners over the
        WebSocket see one numbering whatever the speaker's transport."""
        self._rtp_seq_ext = extend_rtp_seq(self._rtp_seq_ext, rtp_seq)
        self._publish_audio(self._rtp_seq_ext, 0, payload, False)

    def _listen_on(self, leg: RtcLeg | None) -> None:
        """Where this participant hears the others: its WebRTC leg, or else this WebSocket."""
        live = self.live
        if live is None:
            return
        live.audio.attach(self.pid, leg if leg is not None else self)

    def _apply(self, op: m.Op) -> None:
        assert self.live is not None
        if self.live.edge_of is not None and self.hub.cluster is not None:
            self.hub.cluster.span.send_op(self.live, self.pid, self.dev, op)  # the home applies it
            return
        room = self.live.room
        now = self.clock()
        try:
            applied = room.apply(self.pid, op, now, self.dev)
        except ProtocolError as exc:
            metrics.error(exc.code)
            self.session.op_refused(exc, room.last_cseq(self.pid, self.dev), now)
            return
        if applied is None:
            self.session.op_settled(room.last_cseq(self.pid, self.dev), now)
            return
        self.live.publish(applied, self.pid, self.dev)
        if type(op) is m.StrokePoints:
            metrics.ink_in(op.count)
        self.session.op_applied(op.cseq, applied.event.seq, now)

    # --- sending ------------------------------------------------------------------------------

    def deliver(self, frame: bytes) -> None:
        """Queue ``frame`` for this client, after any held ack: an ack must reach the client
        before any later event, or the seqs it covers would look like a gap."""
        if self.session.send(frame, self.clock()):
            for out in self.session.data_to_send():
                if not self._put(out):
                    return

    def _put(self, frame: bytes) -> bool:
        """Write ``frame``, or queue it behind a backlog; a full queue ends the connection (slow
        consumer)."""
        if not self._backlog and not self.link.paused:
            self.link.write(frame)  # the hot path: nothing waits, the transport has room
            return True
        if self.queue.put(frame):
            self._backlog = True
            return True
        if self.queue.closed:
            return True
        log.warning("%s in %s is a slow consumer; closing", self.user_id, self.session_id,
                    extra=self._log_fields(CloseCode.SLOW_CONSUMER))
        metrics.slow_consumer()
        self.queue.discard()  # what waits is dropped: the client resumes
        self.session.close(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and resume")
        self.session.events()  # its CloseLink: we close at once
        self.session.data_to_send()
        self._send_close(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and resume")
        self._leave()
        return False

    def _flush(self) -> None:
        """Write what waits while the link has room; close once a finished queue is empty."""
        queue = self.queue
        link = self.link
        while not link.paused:
            batch = queue.take()
            if not batch:
                break
            link.write_many(batch)
        if not len(queue):
            if queue.closed:
                if queue.close_code is not None:
                    self._send_close(queue.close_code, queue.close_reason)
            else:
                self._backlog = False

    def _send_close(self, code: int, reason: str) -> None:
        if not self._close_sent:
            self._close_sent = True
            self.link.close(code, reason)

    def replace(self) -> None:
        self.session.close(CloseCode.REPLACED, "replaced",
                           m.Error(ErrorCode.REPLACED, "a newer connection of this participant took over"))
        self._drain()

    def _refuse(self, exc: ProtocolError) -> None:
        """A refusal from the shell's side (signalling, rights); the machine spends the budget."""
        metrics.error(exc.code)
        self.session.refuse(exc, self.clock())
        self._drain()

    def edge_applied(self, cseq: int, seq: int) -> None:
        """The class's home applied this edge viewer's op ``cseq`` as event ``seq`` (0: a resend)."""
        if seq:
            self.session.mark_durable(seq, self.clock())  # the home's to make durable, not this edge's
            self.session.op_applied(cseq, seq, self.clock())
        else:
            self.session.op_settled(cseq, self.clock())
        self._drain()

    def edge_refused(self, cseq: int, code: int, text: str, last_cseq: int) -> None:
        metrics.error(code)
        self.session.op_refused(ProtocolError(ErrorCode(code), text, cseq), last_cseq, self.clock())
        self._drain()

    def deliver_audio(self, frame: bytes) -> None:
        """An ``AudioRelay`` frame from the class's home, for this edge viewer's WebSocket."""
        later(self._write_audio, frame)

    def durable(self, seq: int) -> bool:
        """Events up to ``seq`` are in Redis: the Acks they cover go (``LiveRoom.durable``)."""
        if self._gone:
            return True
        self.session.mark_durable(seq, self.clock())
        self._drain()
        return not self.session.undurable

    def moved(self, url: str) -> None:
        """The room is another node's now: Error 2010 with where (empty: ask any node), close 4013."""
        self.session.close(CloseCode.MOVED, "moved",
                           m.Error(ErrorCode.MOVED, url))
        self._drain()

    def end_session(self) -> None:
        """The session has ended (``Hub.end_session``): tell the client and close with 4006."""
        self.session.close(CloseCode.SESSION_ENDED, "session ended",
                           m.Error(ErrorCode.SESSION_ENDED, "this session has ended"))
        self._drain()

    def _internal_error(self) -> None:
        error = m.Error(ErrorCode.INTERNAL_ERROR, "the server met an unexpected fault; reconnect and resume")
        if self.session.state in _ENDING:
            if not self.queue.closed:
                self.queue.finish(INTERNAL_CLOSE, "internal error", [encode(error)])
                self._backlog = True
            self._flush()
            return
        self.session.close(INTERNAL_CLOSE, "internal error", error)
        self._drain()

    def _leave(self) -> None:
        live, self.live = self.live, None
        rtc, self.rtc = self.rtc, None
        if live is not None:  # stop listening here, whether on this socket or on its WebRTC leg
            live.audio.detach(self.pid, self, *([rtc.leg] if rtc is not None and rtc.leg is not None else []))
        if rtc is not None:
            task = asyncio.get_running_loop().create_task(rtc.close())
            _closing.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(_closing.discard)
        if live is None or live.ended:
            return
        if not self.hub.detach(live, self) or self.pid in live.participants:
            return  # replaced, or another device of the participant is still here
        if live.edge_of is not None and self.hub.cluster is not None:
            self.hub.cluster.span.leave(live, self.pid, self.dev)  # the home says it to the class
            return
        offline = live.room.presence(self.pid, False, self.clock(), self._left)
        live.publish(offline, None)
