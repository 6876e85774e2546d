"""The server end of one participant's connection, sans-I/O: ``ServerSession``.

It owns what is about the connection and not about the room: the first-frame and version
rules of the join, the frame size limit, the rate limit (a token bucket, full when the
connection opens) and the error budget, cumulative acks coalesced for ``ack_delay_ms``, the
ping cadence with its fast start and the clock estimate from the client's Pongs, and the join
timeout. It does not own the room: ops come out as ``OpReceived`` events, the shell hands them
to the room (``sessionserver/room/``) and tells the machine the outcome.

How a shell drives it (see ``sessionserver/connection.py``)::

    session = ServerSession(config, now)              # at the WebSocket accept
    session.receive_frame(data, now) / receive_text(now)
    for event in session.events(): ...                # JoinRequested -> accept()/refuse_join()
                                                      # OpReceived -> op_applied()/op_settled()/op_refused()
    session.send(frame, now)                          # every other frame for this client
    session.handle_timer(now)                         # when now >= session.get_timer()
    then: queue session.data_to_send(); on CloseLink close after sending it.

An ``Ack`` held for coalescing is always flushed before any later frame to the client, so the
seqs it covers never look like a gap (3.3 of docs/protocol.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import messages as m
from ..clocksync import ClockEstimator, ClockModel
from ..codec import decode_frame, encode
from ..errors import CloseCode, ErrorCode, FatalProtocolError, ProtocolError
from ..limits import Limits
from ..ratelimit import TokenBucket
from . import events as ev
from .states import SERVER_TRANSITIONS, Lifecycle, ServerState, SessionMisuse
from .timers import FAST_START_S, PingSchedule

S = ServerState
_SERVER_ONLY = (m.Welcome, m.Snapshot, m.Event, m.Error, m.AudioRelay, m.RtcAnswer)
_OPS = frozenset({m.StrokeBegin, m.StrokePoints, m.StrokeEnd, m.PageAdd, m.PageSwitch, m.Undo, m.Clear, m.Restore,
                  m.Grant, m.Mute})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    limits: Limits = field(default_factory=Limits)
    join_timeout_s: float = 10.0
    ack_delay_ms: int = 40  # 0: every ack at once
    ping_interval_s: float = 5.0  # after the fast start; 0 disables server pings
    fast_start: tuple[float, ...] = FAST_START_S
    max_errors: int = 20  # refusals allowed at once, and per minute
    # True: an Ack waits until the shell says its seq is durable (``mark_durable``), and every
    # later frame for this client waits behind it (several nodes: the op is in Redis first)
    durable_acks: bool = False


class ServerSession:
    def __init__(self, config: ServerConfig, now: float) -> None:
        self.config = config
        self.limits = lim = config.limits
        self._life: Lifecycle[ServerState] = Lifecycle(S.AWAITING_JOIN, SERVER_TRANSITIONS)
        self._join_deadline: float | None = now + config.join_timeout_s
        self._join_pending = False
        self.bucket = TokenBucket(lim.rate_messages_per_s, lim.rate_burst, now)
        # refused frames allowed: max_errors within any minute, then the connection is closed
        self.error_budget = TokenBucket(config.max_errors / 60.0, config.max_errors, now)
        # The client's device clock minus the session clock. The estimate rests on the least
        # delayed of the samples of about the last 40 s (fast-start pings included), so the best
        # sample does not age out within seconds when pings are frequent.
        interval = config.ping_interval_s if config.ping_interval_s > 0 else 5.0
        self.clock_sync = ClockEstimator(window=max(8, len(config.fast_start) + int(40 / interval)))
        # What the recording maps device times with: offset plus drift over the low-RTT envelope
        # of the last two minutes of samples (wire/clocksync.ClockModel).
        self.clock_model = ClockModel()
        self.client_seq = 0  # the last seq the client said it applied
        self._pings = PingSchedule(config.ping_interval_s, config.fast_start)
        self._session_ms: Callable[[float], int] | None = None
        self._held_ack: tuple[int, int] | None = None  # (cseq, seq) of the Ack held for coalescing
        self._ack_deadline: float | None = None
        # With ``durable_acks``: the highest seq the shell said is durable, and, in order, the
        # Acks (cseq, seq) not yet durable and the frames queued after them (``_release``)
        self.durable_seq = 0 if config.durable_acks else 1 << 62
        self._gated: deque[tuple[int, int] | bytes] = deque()
        self._ack_overdue = False  # the ack delay passed while the newest Ack waited to be durable
        self._send: list[bytes] = []
        self._events: list[ev.ServerEvent] = []
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def state(self) -> ServerState:
        return self._life.state

    def data_to_send(self) -> list[bytes]:
        out, self._send = self._send, []
        return out

    def events(self) -> list[ev.ServerEvent]:
        out, self._events = self._events, []
        return out

    # --- input --------------------------------------------------------------------------------

    def receive_frame(self, data: bytes, now: float) -> None:
        """One binary frame from the client."""
        state = self._life.state
        if state is S.CLOSING or state is S.CLOSED:
            return  # the connection is ending: nothing more is read
        if self._join_pending:
            raise SessionMisuse("answer the JoinRequested (accept or refuse_join) before the next frame")
        if len(data) > self.limits.max_frame_bytes:
            self.fail(FatalProtocolError(ErrorCode.FRAME_TOO_LARGE,
                                         f"frame of {len(data)} bytes exceeds {self.limits.max_frame_bytes}",
                                         CloseCode.FRAME_TOO_LARGE))
            return
        if state is S.AWAITING_JOIN:
            self._first_frame(data)
            return
        if not self.bucket.take(now):
            # Dropping the frame and going on would let later ops overtake it; closing instead
            # means the client resumes and resends everything unacknowledged, in order.
            self.fail(FatalProtocolError(ErrorCode.RATE_LIMITED,
                                         f"more than {self.limits.rate_messages_per_s:g} messages/s "
                                         f"(burst {self.limits.rate_burst}); resume after a pause",
                                         CloseCode.RATE_LIMITED))
            return
        try:
            msg = decode_frame(data, self.limits)
        except ProtocolError as exc:
            if exc.ref:  # a refused op: its cseq is used up, as for one the room refuses
                self._events.append(ev.OpRejected(exc))
            else:
                self.refuse(exc, now)
            return
        self._joined_frame(msg, now)

    def receive_text(self, now: float) -> None:
        """A text frame: refused (it spends the error budget) and the connection stays."""
        if self.state in (S.AWAITING_JOIN, S.JOINED):
            self.refuse(ProtocolError(ErrorCode.BAD_FRAME, "text frames are not accepted; send binary msgpack"), now)

    def _first_frame(self, data: bytes) -> None:
        self._join_deadline = None  # the join is being answered; the timer is for silence
        try:
            join = decode_frame(data, self.limits)
        except ProtocolError as exc:
            self.fail(FatalProtocolError(exc.code, exc.message, CloseCode.PROTOCOL_VIOLATION))
            return
        if isinstance(join, _SERVER_ONLY):  # as after the join (1002), but the connection closes
            self.fail(FatalProtocolError(ErrorCode.UNKNOWN_TYPE,
                                         f"{type(join).__name__} is sent by the server only; send a Join first",
                                         CloseCode.PROTOCOL_VIOLATION))
            return
        if not isinstance(join, m.Join):
            self.fail(FatalProtocolError(ErrorCode.NOT_JOINED, "the first frame must be a join",
                                         CloseCode.PROTOCOL_VIOLATION))
            return
        if join.version != m.PROTOCOL_VERSION:
            self.fail(FatalProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                         f"protocol version {join.version} is not supported; use {m.PROTOCOL_VERSION}",
                                         CloseCode.UNSUPPORTED_VERSION))
            return
        self._join_pending = True
        self._events.append(ev.JoinRequested(join))

    def _joined_frame(self, msg: m.Message, now: float) -> None:
        if type(msg) in _OPS:  # the hot path: ink
            self._events.append(ev.OpReceived(msg))  # type: ignore[arg-type]
        elif type(msg) is m.Audio:  # the other hot path: 50 packets a second a speaker
            self._events.append(ev.AudioIn(msg))
        elif isinstance(msg, m.Ping):
            self.send(encode(m.Pong(msg.ts, self._now_ms(now))), now)
        elif isinstance(msg, m.Pong):
            now_ms = self._now_ms(now)
            sample = self.clock_sync.add(msg.echo, msg.ts, now_ms)
            fit = self.clock_model.add(msg.echo, msg.ts, now_ms)
            if sample is not None and fit is not None:
                self._events.append(ev.ClockSampled(now_ms, fit.offset_at(now_ms), sample.rtt_ms, fit.drift_ppm))
        elif isinstance(msg, m.Ack):
            self.client_seq = max(self.client_seq, msg.seq)
            self._events.append(ev.ClientProgress(msg.seq))
        elif isinstance(msg, m.Join):
            self.refuse(ProtocolError(ErrorCode.ALREADY_JOINED, "this connection has joined already"), now)
        elif isinstance(msg, m.AudioLate):
            self._events.append(ev.LateAudioIn(msg))
        elif isinstance(msg, (m.RtcOffer, m.RtcCandidate, m.RtcClose)):
            self._events.append(ev.SignalIn(msg))
        elif isinstance(msg, _SERVER_ONLY):
            self.refuse(ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{type(msg).__name__} is sent by the server only"), now)
        else:  # the ops _OPS does not list (mypy does not narrow by the ``type(msg) is`` tests above)
            self._events.append(ev.OpReceived(msg))  # type: ignore[arg-type]

    # --- the join -----------------------------------------------------------------------------

    def accept(self, now: float, session_ms: Callable[[float], int]) -> None:
        """The shell accepted the join and has queued the Welcome and the catch-up itself
        (they are exempt from its send-queue bound). ``session_ms`` is the room's clock. The
        first Ping follows at once."""
        self._join_pending = False
        self._life.to(S.JOINED)
        self._session_ms = session_ms
        self._pings.start(now)
        self.handle_timer(now)

    def refuse_join(self, exc: FatalProtocolError) -> None:
        """The shell refused the join (token, role, room): the Error, then the close."""
        self._join_pending = False
        self.fail(exc)

    # --- op outcomes --------------------------------------------------------------------------

    def op_applied(self, cseq: int, seq: int, now: float) -> None:
        """The room applied op ``cseq`` as event ``seq``. Acks are cumulative, so a burst of
        ops needs only its last one: hold it for up to ``ack_delay_ms`` and send the newest."""
        if self.state is not S.JOINED:
            return
        if seq > self.durable_seq or self._gated:
            gated = self._gated
            if gated and isinstance(gated[-1], tuple):
                gated[-1] = (cseq, seq)  # acks are cumulative: the newer one covers the last
            else:
                gated.append((cseq, seq))
            if self._ack_deadline is None and self.config.ack_delay_ms > 0:
                self._ack_deadline = now + self.config.ack_delay_ms / 1000  # counted from the op, as ever
            return
        self._held_ack = (cseq, seq)  # a tuple, not an Ack: one is held per op, few are sent
        if self.config.ack_delay_ms <= 0:
            self._flush_ack()
        elif self._ack_deadline is None:
            self._ack_deadline = now + self.config.ack_delay_ms / 1000

    def op_settled(self, last_cseq: int, now: float) -> None:
        """A resend the room had already processed: ``Ack(last, 0)`` at once."""
        self.send(encode(m.Ack(last_cseq, 0)), now)

    def op_refused(self, exc: ProtocolError, last_cseq: int, now: float) -> None:
        """The room (or the decoder, after ``OpRejected``) refused the op ``exc.ref``:
        ``Ack(last, 0)`` at once, then the Error, which spends the error budget."""
        self.send(encode(m.Ack(last_cseq, 0)), now)
        self.refuse(exc, now)

    # --- output -------------------------------------------------------------------------------

    def send(self, frame: bytes, now: float) -> bool:
        """Queue any frame for this client after a held ack; ``False`` once it is closing."""
        if self.state is not S.JOINED:
            return False
        if self._gated:
            self._gated.append(frame)  # behind an Ack that is not durable yet
            return True
        if self._held_ack is not None:
            self._flush_ack()
        self._send.append(frame)
        return True

    def mark_durable(self, seq: int, now: float) -> None:
        """Every event up to ``seq`` is durable (``durable_acks``): the Acks it covers and the
        frames queued behind them go out, in order; the last Ack, if nothing follows it, is held
        for ``ack_delay_ms`` as any other."""
        if seq <= self.durable_seq:
            return
        self.durable_seq = seq
        gated = self._gated
        while gated:
            item = gated[0]
            if isinstance(item, tuple):
                if item[1] > seq:
                    break
                gated.popleft()
                self._held_ack = item
                if gated or self._ack_overdue or self.config.ack_delay_ms <= 0:
                    self._flush_ack()  # a frame follows (the Ack goes before it), or its delay is over
                elif self._ack_deadline is None:
                    self._ack_deadline = now + self.config.ack_delay_ms / 1000
            else:
                gated.popleft()
                if self._held_ack is not None:
                    self._flush_ack()
                self._send.append(item)
        if not any(isinstance(item, tuple) for item in gated):
            self._ack_overdue = False

    @property
    def undurable(self) -> bool:
        """Whether an Ack waits for durability."""
        return bool(self._gated)

    def _flush_ack(self) -> None:
        held, self._held_ack = self._held_ack, None
        self._ack_deadline = None
        if held is not None:
            self._send.append(encode(m.Ack(*held)))
        elif self._gated:
            self._ack_overdue = True  # the Ack waiting to be durable goes the moment it is

    def refuse(self, exc: ProtocolError, now: float) -> None:
        """A refusal for this client alone; past the error budget the connection is closed."""
        if self.state not in (S.AWAITING_JOIN, S.JOINED):
            return
        if isinstance(exc, FatalProtocolError):
            self.fail(exc)
        elif not self.error_budget.take(now):
            self.fail(FatalProtocolError(ErrorCode.TOO_MANY_ERRORS,
                                         f"more than {self.config.max_errors} refused frames in a minute",
                                         CloseCode.PROTOCOL_VIOLATION))
        elif self.state is S.JOINED:
            self.send(encode(m.Error(exc.code, exc.message, exc.ref)), now)
        else:
            self._send.append(encode(m.Error(exc.code, exc.message, exc.ref)))

    def fail(self, exc: FatalProtocolError) -> None:
        """End the connection: a held ack, the Error, then the close ``exc.close_code``."""
        self.close(exc.close_code, exc.code.name.lower(), m.Error(exc.code, exc.message, exc.ref))

    def close(self, code: int, reason: str, error: m.Error | None = None) -> None:
        """End the connection with ``code`` (after ``error``, if any): CLOSING, and a
        ``CloseLink`` event for the shell."""
        if self.state in (S.CLOSING, S.CLOSED):
            return
        self._flush_ack()
        self._gated.clear()  # not durable: the client resends those ops when it resumes
        if error is not None:
            self._send.append(encode(error))
        self._life.to(S.CLOSING)
        self._pings.stop()
        self._join_deadline = None
        self.close_code, self.close_reason = code, reason
        self._events.append(ev.CloseLink(code, reason))

    def connection_lost(self, now: float) -> None:
        """The transport is gone (whatever the reason)."""
        if self.state is not S.CLOSED:
            self._life.to(S.CLOSED)
        self._pings.stop()
        self._held_ack = None
        self._gated.clear()
        self._ack_overdue = False
        self._ack_deadline = self._join_deadline = None

    # --- timers -------------------------------------------------------------------------------

    def _now_ms(self, now: float) -> int:
        return self._session_ms(now) if self._session_ms is not None else 0

    def get_timer(self) -> float | None:
        state = self._life.state
        if state is S.JOINED:
            ack, ping = self._ack_deadline, self._pings.due
            if ack is None:
                return ping
            return ack if ping is None or ack < ping else ping
        if state is S.AWAITING_JOIN:
            return None if self._join_pending else self._join_deadline
        return None

    def handle_timer(self, now: float) -> None:
        state = self.state
        if state is S.AWAITING_JOIN:
            if self._join_deadline is not None and now >= self._join_deadline and not self._join_pending:
                self.fail(FatalProtocolError(ErrorCode.JOIN_TIMEOUT, "no join within the join timeout",
                                             CloseCode.JOIN_TIMEOUT))
            return
        if state is not S.JOINED:
            return
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self._flush_ack()
        if self._pings.is_due(now):
            self.send(encode(m.Ping(self._now_ms(now))), now)
            self._pings.fired(now)
