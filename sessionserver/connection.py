"""One participant's WebSocket: the thin I/O shell between a socket and its room.

Lifecycle (``ConnState``): AWAITING_JOIN -> JOINED -> CLOSED. The reader (``run``) turns frames
into room calls; a writer task drains the bounded ``SendQueue``.

The error ladder, one rung per kind of failure, each for this client alone:

- ``ProtocolError``: an ``Error`` frame; the connection goes on.
- ``FatalProtocolError``: an ``Error`` frame, then close with its 4000-4999 code.
- the peer went away (a disconnect message, ``WebSocketDisconnect``, Starlette's
  ``WebSocketDisconnected``): nothing to tell it.
- anything else is a fault of the server: logged with its traceback, ``Error 3004
  INTERNAL_ERROR``, close 1011; the client resumes as after any drop. The room and the other
  participants go on.

Close 1000 is sent only when the peer left (or the session ended for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import Enum

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from wire import (
    INTERNAL_CLOSE,
    NORMAL_CLOSE,
    PROTOCOL_VERSION,
    CloseCode,
    ErrorCode,
    FatalProtocolError,
    ProtocolError,
    Rights,
    Role,
    decode_frame,
    encode,
)
from wire import messages as m
from wire.clocksync import ClockEstimator
from wire.opus import packet_samples
from wire.ratelimit import TokenBucket

from .auth import TokenError, TokenSigner
from .hub import Hub, LiveRoom
from .media.leg import RtcLeg
from .media.packets import AudioPacket, extend_rtp_seq
from .media.rtc_config import RtcConfig
from .media.signalling import Signalling
from .sendqueue import SendQueue
from .settings import Settings

log = logging.getLogger("tutorwire.connection")

_TOKEN_CLOSE = {
    ErrorCode.AUTH_FAILED: CloseCode.AUTH_FAILED,
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.WRONG_SESSION: CloseCode.FORBIDDEN,
    ErrorCode.WRONG_SEAT: CloseCode.FORBIDDEN,
}
_WRITER_GRACE_S = 5.0
# The genuine "the peer went away" cases: a disconnect while receiving or sending. Nothing else
# (not RuntimeError, not OSError from our own code) is mistaken for them.
_PEER_GONE = (WebSocketDisconnect, WebSocketDisconnected)
_closing: set[asyncio.Task[None]] = set()  # WebRTC legs being closed after their participant left


class ConnState(Enum):
    AWAITING_JOIN = "awaiting_join"
    JOINED = "joined"
    CLOSED = "closed"


class Connection:
    def __init__(self, ws: WebSocket, session_id: str, hub: Hub, signer: TokenSigner,
                 settings: Settings, clock: Callable[[], float], rtc_config: RtcConfig) -> None:
        self.ws = ws
        self.session_id = session_id
        self.hub = hub
        self.signer = signer
        self.settings = settings
        self.limits = settings.limits
        self.clock = clock
        self.state = ConnState.AWAITING_JOIN
        self.pid = 0  # the participant this connection is, once joined
        self.role = Role.TUTOR
        self.user_id = ""
        self.live: LiveRoom | None = None
        self.queue = SendQueue(settings.send_queue_max, settings.send_queue_max_bytes, settings.audio_queue_packets)
        self.bucket = TokenBucket(self.limits.rate_messages_per_s, self.limits.rate_burst, clock())
        # refused frames allowed: max_errors within any minute, then the connection is closed
        self.error_budget = TokenBucket(settings.max_errors / 60.0, settings.max_errors, clock())
        self.client_seq = 0  # the last server seq the client acknowledged
        self.clock_sync = ClockEstimator()  # the client's clock minus the session clock
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ack_timer: asyncio.TimerHandle | None = None
        self.rtc: Signalling | None = None  # WebRTC signalling and leg, from the first offer
        self.rtc_config = rtc_config
        self._rtp_seq_ext = -1  # the last extended RTP sequence number from the WebRTC leg
        self._held_ack: m.Ack | None = None

    # --- entry point --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.ws.accept()
        except _PEER_GONE:
            return
        self._writer = asyncio.create_task(self._write_loop())
        try:
            await self._read_loop()
        except FatalProtocolError as exc:
            self._fail(exc)
        except _PEER_GONE:
            pass  # the peer went away; nothing to tell it
        except Exception:
            log.exception("fault on the connection of %s in %s; closing it with %d",
                          self.user_id or "an unjoined client", self.session_id, INTERNAL_CLOSE)
            self._internal_error()
        finally:
            try:
                self._leave()
            except Exception:
                log.exception("fault while %s left %s", self.user_id or "an unjoined client", self.session_id)
            self.state = ConnState.CLOSED
            await self._finish_writer()

    async def _read_loop(self) -> None:
        try:
            first = await asyncio.wait_for(self._receive(), self.settings.join_timeout_s)
        except TimeoutError:
            raise FatalProtocolError(ErrorCode.JOIN_TIMEOUT, "no join within the join timeout",
                                     CloseCode.JOIN_TIMEOUT) from None
        if first is None:
            return
        self._join(first)
        while True:
            data = await self._receive()
            if data is None or self.queue.closed:
                return
            try:
                self._handle(data)
            except FatalProtocolError:
                raise
            except ProtocolError as exc:
                self._refuse(exc)

    async def _receive(self) -> bytes | None:
        """The next binary frame; ``None`` when the peer has gone. Text frames are refused."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("bytes")
            if data is not None:
                if len(data) > self.limits.max_frame_bytes:
                    raise FatalProtocolError(
                        ErrorCode.FRAME_TOO_LARGE,
                        f"frame of {len(data)} bytes exceeds {self.limits.max_frame_bytes}",
                        CloseCode.FRAME_TOO_LARGE)
                return bytes(data)
            self._refuse(ProtocolError(ErrorCode.BAD_FRAME, "text frames are not accepted; send binary msgpack"))

    # --- join ---------------------------------------------------------------------------------

    def _join(self, data: bytes) -> None:
        try:
            join = decode_frame(data, self.limits)
        except ProtocolError as exc:
            raise FatalProtocolError(exc.code, exc.message, CloseCode.PROTOCOL_VIOLATION) from None
        if not isinstance(join, m.Join):
            raise FatalProtocolError(ErrorCode.NOT_JOINED, "the first frame must be a join",
                                     CloseCode.PROTOCOL_VIOLATION)
        if join.version != PROTOCOL_VERSION:
            raise FatalProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                     f"protocol version {join.version} is not supported; use {PROTOCOL_VERSION}",
                                     CloseCode.UNSUPPORTED_VERSION)
        try:
            grant = self.signer.check(join.token, self.session_id, join.role, time.time(),
                                      self.limits.max_string_bytes)
        except TokenError as exc:
            raise FatalProtocolError(exc.code, exc.message, _TOKEN_CLOSE[exc.code]) from None
        if self.hub.is_ended(self.session_id):
            raise FatalProtocolError(ErrorCode.SESSION_ENDED, "this session has ended", CloseCode.SESSION_ENDED)
        live = self.hub.room(self.session_id)
        room = live.room
        now = self.clock()
        try:
            participant = room.admit(grant.role, grant.user_id)
            room.count_join(participant.pid, now)
        except FatalProtocolError:
            self.hub.release(live)
            raise
        self.live = live
        self.pid, self.role, self.user_id = participant.pid, participant.role, participant.user_id
        online = room.presence(self.pid, True, now)
        mode = room.catch_up_mode(join.last_seq, join.epoch)
        welcome = encode(room.welcome(self.pid, mode, now))
        catch_up = room.catch_up(join.last_seq, mode)
        self.hub.attach(live, self)
        live.audio.attach(self.pid, self)
        self.state = ConnState.JOINED
        self.queue.put_catch_up(welcome, catch_up)
        live.publish(online, self.pid)
        self._ping()
        log.info("%s joined %s as %s, participant %d (%s from seq %d)", self.user_id, self.session_id,
                 self.role.label, self.pid, mode.name.lower(), join.last_seq)

    # --- frames after join --------------------------------------------------------------------

    def _handle(self, data: bytes) -> None:
        assert self.live is not None
        room = self.live.room
        if not self.bucket.take(self.clock()):
            # Dropping the frame and going on would let later ops overtake it; closing instead
            # means the client resumes and resends everything unacknowledged, in order.
            raise FatalProtocolError(ErrorCode.RATE_LIMITED,
                                     f"more than {self.limits.rate_messages_per_s:g} messages/s "
                                     f"(burst {self.limits.rate_burst}); resume after a pause",
                                     CloseCode.RATE_LIMITED)
        try:
            msg = decode_frame(data, self.limits)
        except ProtocolError as exc:
            if exc.ref:  # a refused op: its cseq is used up, as for one the room refuses
                room.refuse(self.pid, exc.ref)
                self._ack(m.Ack(room.participants[self.pid].last_cseq, 0), at_once=True)
            raise
        if isinstance(msg, m.Ping):
            self.deliver(encode(m.Pong(msg.ts, room.session_ms(self.clock()))))
        elif isinstance(msg, m.Ack):
            self.client_seq = msg.seq  # informational: how far the client has applied
        elif isinstance(msg, m.Pong):
            now_ms = room.session_ms(self.clock())
            sample = self.clock_sync.add(msg.echo, msg.ts, now_ms)
            best = self.clock_sync.best
            if sample is not None and best is not None and self.live is not None and self.live.recorder is not None:
                self.live.recorder.on_clock(self.pid, now_ms, best.offset_ms, best.rtt_ms)
        elif isinstance(msg, m.Join):
            raise ProtocolError(ErrorCode.ALREADY_JOINED, "this connection has joined already")
        elif isinstance(msg, m.Audio):
            if not room.may(self.pid, Rights.AUDIO):
                raise ProtocolError(ErrorCode.FORBIDDEN, f"a {self.role.label} may not publish audio")
            self._publish_audio(msg.seq, msg.capture_ts, msg.payload)
        elif isinstance(msg, (m.RtcOffer, m.RtcCandidate, m.RtcClose)):
            self._signalling().submit(msg)
        elif isinstance(msg, (m.Welcome, m.Snapshot, m.Event, m.Error, m.AudioRelay, m.RtcAnswer)):
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{type(msg).__name__} is sent by the server only")
        else:
            self._apply(msg)

    # --- audio --------------------------------------------------------------------------------

    def _publish_audio(self, seq: int, capture_ts: int, payload: bytes) -> None:
        live = self.live
        if live is None:
            return
        room = live.room
        if not room.may(self.pid, Rights.AUDIO):
            return  # a WebRTC leg of a participant who may not publish: its packets go nowhere
        try:
            samples = packet_samples(payload)
        except ProtocolError:
            return  # only WebRTC packets get here unchecked; a bad one is simply not forwarded
        packet = AudioPacket(self.pid, seq, capture_ts, room.session_ms(self.clock()), samples, payload)
        live.audio.publish(packet, room.participants[self.pid].muted)

    def send_audio(self, packet: AudioPacket) -> None:
        """This participant listens over its WebSocket (no WebRTC leg): queue the packet in the
        audio lane, which drops its oldest packets when the client falls behind."""
        self.queue.put_media(encode(m.AudioRelay(packet.pid, packet.seq, packet.capture_ts, packet.session_ms,
                                                 packet.payload)))

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
        self._publish_audio(self._rtp_seq_ext, 0, payload)

    def _listen_on(self, leg: RtcLeg | None) -> None:
        """Where this participant hears the others: its WebRTC leg, or else this WebSocket."""
        live = self.live
        if live is None:
            return
        live.audio.attach(self.pid, leg if leg is not None else self)

    def _apply(self, op: m.Op) -> None:
        assert self.live is not None
        room = self.live.room
        try:
            applied = room.apply(self.pid, op, self.clock())
        except ProtocolError:
            self._ack(m.Ack(room.participants[self.pid].last_cseq, 0), at_once=True)
            raise
        if applied is None:
            self._ack(m.Ack(room.participants[self.pid].last_cseq, 0), at_once=True)
            return
        self.live.publish(applied, self.pid)
        self._ack(m.Ack(op.cseq, applied.event.seq))

    def _ack(self, ack: m.Ack, *, at_once: bool = False) -> None:
        """Acks are cumulative, so a burst of ops needs only its last one: hold an ack for up to
        ``ack_delay_ms`` and send the newest (a refusal's ack goes at once, after any held one)."""
        delay = self.settings.ack_delay_ms
        if at_once or delay <= 0:
            self._flush_ack()
            self.deliver(encode(ack))
            return
        self._held_ack = ack
        if self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(delay / 1000, self._flush_ack)

    def _flush_ack(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        held, self._held_ack = self._held_ack, None
        if held is not None and not self.queue.closed:
            self._put(encode(held))

    # --- sending ------------------------------------------------------------------------------

    def deliver(self, frame: bytes) -> None:
        """Queue ``frame`` for this client, after any held ack: an ack must reach the client
        before any later event, or the seqs it covers would look like a gap."""
        if self._held_ack is not None:
            self._flush_ack()
        self._put(frame)

    def _put(self, frame: bytes) -> None:
        """Queue ``frame``; a full queue ends the connection (slow consumer)."""
        if self.queue.put(frame):
            return
        log.warning("%s in %s is a slow consumer; closing", self.user_id, self.session_id)
        self.queue.finish(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and resume", [])
        if self._writer is not None:
            self._writer.cancel()  # it may be stuck on a send: close at once instead
        self._closer = asyncio.create_task(self._close_now())
        self._leave()

    async def _close_now(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(CloseCode.SLOW_CONSUMER, "slow consumer: reconnect and resume")

    def replace(self) -> None:
        error = m.Error(ErrorCode.REPLACED, "a newer connection of this participant took over")
        self.queue.finish(CloseCode.REPLACED, "replaced", [encode(error)])

    def _refuse(self, exc: ProtocolError) -> None:
        if not self.error_budget.take(self.clock()):
            self._fail(FatalProtocolError(ErrorCode.TOO_MANY_ERRORS,
                                          f"more than {self.settings.max_errors} refused frames in a minute",
                                          CloseCode.PROTOCOL_VIOLATION))
            return
        self.deliver(encode(m.Error(exc.code, exc.message, exc.ref)))

    def end_session(self) -> None:
        """The session has ended (``Hub.end_session``): tell the client and close with 4006."""
        self._flush_ack()
        error = m.Error(ErrorCode.SESSION_ENDED, "this session has ended")
        self.queue.finish(CloseCode.SESSION_ENDED, "session ended", [encode(error)])

    def _internal_error(self) -> None:
        error = m.Error(ErrorCode.INTERNAL_ERROR, "the server met an unexpected fault; reconnect and resume")
        self.queue.finish(INTERNAL_CLOSE, "internal error", [encode(error)])

    def _fail(self, exc: FatalProtocolError) -> None:
        log.info("closing %s (%s): %s", self.user_id or "unjoined client", exc.close_code.name, exc.message)
        error = encode(m.Error(exc.code, exc.message, exc.ref))
        self.queue.finish(exc.close_code, exc.code.name.lower(), [error])

    def _ping(self) -> None:
        """Ping now and every ``ping_interval_s``: the Pongs give RTT and the client's clock offset."""
        if self.live is None or self.queue.closed or self.settings.ping_interval_s <= 0:
            return
        self.deliver(encode(m.Ping(self.live.room.session_ms(self.clock()))))
        self._ping_timer = asyncio.get_running_loop().call_later(self.settings.ping_interval_s, self._ping)

    def _leave(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        live, self.live = self.live, None
        rtc, self.rtc = self.rtc, None
        if live is not None:  # stop listening here, whether on this socket or on its WebRTC leg
            mine = {self, rtc.leg if rtc is not None else None}
            if live.audio.sinks.get(self.pid) in mine:
                del live.audio.sinks[self.pid]
        if rtc is not None:
            task = asyncio.get_running_loop().create_task(rtc.close())
            _closing.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(_closing.discard)
        if live is None or live.ended:
            return
        if not self.hub.detach(live, self):
            return
        offline = live.room.presence(self.pid, False, self.clock())
        live.publish(offline, None)

    async def _write_loop(self) -> None:
        queue = self.queue
        try:
            while True:
                batch = await queue.get_batch()
                for frame in batch:
                    await self.ws.send_bytes(frame)
                if queue.closed and not len(queue):
                    if queue.close_code is not None:
                        await self.ws.close(queue.close_code, queue.close_reason)
                    return
        except _PEER_GONE:
            return
        except Exception:
            log.exception("fault writing to %s in %s; closing with %d", self.user_id, self.session_id, INTERNAL_CLOSE)
            self.queue.finish(INTERNAL_CLOSE, "internal error", [])
            with contextlib.suppress(Exception):  # the socket may be in any state by now
                await self.ws.close(INTERNAL_CLOSE, "internal error")

    async def _finish_writer(self) -> None:
        writer = self._writer
        if writer is None:
            return
        if not self.queue.closed:
            self.queue.finish(NORMAL_CLOSE, "", [])  # the peer left: nothing more to send
        try:
            await asyncio.wait_for(asyncio.shield(writer), _WRITER_GRACE_S)
        except (TimeoutError, asyncio.CancelledError):
            writer.cancel()
        if writer.cancelled() and self._closer is None and self.queue.close_code is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(self.queue.close_code, self.queue.close_reason)
