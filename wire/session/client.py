"""The client end of a session connection, sans-I/O: ``ClientSession``.

The I/O shell opens transports and moves bytes; this machine decides everything else. It owns
the outbox of unacknowledged ops, cseq numbering, the replica, join and resume, pacing under the
server's rate limit, clock sync, and reconnect with backoff that never gives up on a network
failure. ``now`` is monotonic seconds, passed in to every call; nothing here reads a clock.

How a shell drives it (see ``sessionserver/client.py``)::

    session.connect(now)                       # IDLE -> CONNECTING: open a transport
    session.connection_made(now)               # it opened: a Join is queued
    session.connection_failed(now, "refused")  # or it did not: BACKOFF
    session.receive_frame(data, now)           # every binary frame of the current link
    session.connection_lost(now, code, reason) # the current link ended (code None: no close frame)
    session.handle_timer(now)                  # when now >= session.get_timer()
    then: write session.data_to_send() to the link; close the link if
    session.take_close_request() says so; hand session.events() to the application.

The state table is ``states.CLIENT_TRANSITIONS``; which endings are final is ``closes``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import messages as m
from ..clocksync import ClockEstimator
from ..codec import decode_frame, encode
from ..errors import ErrorCode, ProtocolError
from ..ink import Point, PointState, encode_points
from ..limits import Limits
from ..rebase import Applied, apply_own, rebase, refuse
from ..replica import Replica
from . import events as ev
from .backoff import Backoff, BackoffPolicy
from .batching import BatchPolicy, LinkBatcher
from .closes import close_outcome, error_outcome
from .outbox import Outbox
from .pacing import Pacer
from .states import CLIENT_TRANSITIONS, ClientState, Lifecycle, SessionMisuse
from .timers import FAST_START_S, PingSchedule, earliest

S = ClientState
# Server frames are not bounded by the client-to-server limits (a Snapshot can be megabytes).
SERVER_FRAME_LIMITS = Limits(max_frame_bytes=64 << 20, max_points_per_message=2**31,
                             max_points_per_stroke=2**31, max_string_bytes=1 << 16)
_LINK_STATES = frozenset({S.CONNECTING, S.JOINING, S.LIVE})
MAX_MOVES = 3  # redirects in a row followed at once (nodes that disagree for a moment back off)
GOING_AWAY = 1001  # our close of a link we gave up on (idle, timed out)
PROTOCOL_ERROR_CLOSE = 1002  # our close of a link on which the server sent what we cannot apply


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Every knob of the client machine, with the defaults the JS client mirrors."""

    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    stable_after_s: float = 2.0  # a link live this long starts the backoff over when it fails
    connect_timeout_s: float = 10.0  # from CONNECTING until the Welcome
    ping_interval_s: float = 2.5  # after the fast start; 0 disables the client's own pings
    fast_start: tuple[float, ...] = FAST_START_S
    idle_timeout_s: float = 8.0  # live with nothing received this long: the link is dead
    max_outbox_ops: int = 100_000
    max_outbox_bytes: int = 8 << 20
    pace_rate_factor: float = 0.9  # pace at this share of Welcome.rate_per_s
    window_divisor: int = 4  # at most rate_burst // this op frames in flight unacknowledged
    # link-adaptive ink batching (batching.py): on a slow link the newest ink batch is held up to
    # max_batch_s (100 ms) for more points to merge into it; BatchPolicy(max_batch_s=0) never holds
    batching: BatchPolicy = field(default_factory=BatchPolicy)
    auto_reconnect: bool = True  # False: BACKOFF waits for connect() (tests, manual resume)
    limits: Limits = field(default_factory=Limits)  # the server's limits on our frames


@dataclass(slots=True)
class _StrokeWriter:
    flags: int
    state: PointState


class ClientSession:
    """One participant's side of a session, across all its links.

    ``device_epoch_s`` maps ``now`` to the device clock of stroke start times and Ping/Pong:
    ``device_ms = (now + device_epoch_s) * 1000`` (a shell passes ``time.time() -
    time.monotonic()``, so device ms are Unix ms that never jump)."""

    def __init__(self, token: str, role: m.Role, config: ClientConfig | None = None, *,
                 rng: random.Random | None = None, device_epoch_s: float = 0.0) -> None:
        self.token = token
        self.role = role
        self.config = cfg = config or ClientConfig()
        self.rng = rng or random.Random()
        self.device_epoch_s = device_epoch_s
        self._life: Lifecycle[ClientState] = Lifecycle(S.IDLE, CLIENT_TRANSITIONS)
        self.replica = Replica()
        self.outbox = Outbox(cfg.max_outbox_ops, cfg.max_outbox_bytes, cfg.limits.max_points_per_message,
                             cfg.limits.max_frame_bytes)
        self.clock_sync = ClockEstimator()  # the session clock minus our device clock
        self.welcome: m.Welcome | None = None
        self.cseq = 0  # the last cseq given to an op
        self.applied_cseq = 0  # the highest own cseq applied to the replica
        self._own_from = 0  # the lowest own cseq this client applied locally (0: none yet)
        self._skip_own = False  # the Join resumed from a seq: replayed own ops are applied already
        self.joins = 0  # Welcomes received
        self.errors: list[m.Error] = []  # every Error the server sent, in order
        self._backoff = Backoff(cfg.backoff, self.rng)
        self._pings = PingSchedule(cfg.ping_interval_s, cfg.fast_start)
        self._pacer: Pacer | None = None
        self._window = 1
        self.batcher = LinkBatcher(cfg.batching)
        self._hold_until: float | None = None  # the newest ink batch waits until then for more points
        self._deadline: float | None = None  # connect/join timeout
        self._retry_at: float | None = None
        self._last_rx = 0.0
        self._live_since: float | None = None
        self._last_error: int | None = None  # code of the last Error on the current link
        # where the server said the room lives (Error 2010 MOVED): the shell connects there
        # next; a connection that fails there forgets it (the shell goes back to its own URL)
        self.redirect: str | None = None
        self._moves = 0  # redirects since the last Welcome: past MAX_MOVES they back off as failures
        self._held_local: list[m.Op] | None = []  # own ops waiting for the catch-up to be applied
        self._catching_up = False
        self._strokes: dict[int, _StrokeWriter] = {}
        self._dead: set[int] = set()  # our strokes another cleared or undid: their points and end go unsent
        self._next_stroke = self.rng.randrange(1, 2**31)  # ids of another tab or device differ
        self._send: list[bytes] = []
        self._events: list[ev.ClientEvent] = []
        self._close: tuple[int, str] | None = None
        self.end_code: int | None = None
        self.end_reason = ""

    def successor(self) -> ClientSession:
        """A new machine (IDLE) for the same participant after this one ended (CLOSED or
        FAILED): it keeps the replica, the cseq numbering and what is still unacknowledged, so
        an application that comes back on purpose resumes where this one stopped. Automatic
        reconnect never does this: an ending is final for the machine that met it."""
        if self.state not in (S.CLOSED, S.FAILED):
            raise SessionMisuse(f"a successor is for a session that ended, not one in {self.state.name}")
        nxt = ClientSession(self.token, self.role, self.config, rng=self.rng, device_epoch_s=self.device_epoch_s)
        nxt.replica, nxt.outbox, nxt.clock_sync = self.replica, self.outbox, self.clock_sync
        nxt.welcome, nxt.cseq, nxt.applied_cseq = self.welcome, self.cseq, self.applied_cseq
        nxt._own_from = self._own_from
        nxt.redirect = self.redirect
        nxt.errors, nxt.joins = self.errors, self.joins
        nxt._held_local = self._held_local
        nxt._strokes, nxt._next_stroke, nxt._dead = self._strokes, self._next_stroke, self._dead
        return nxt

    # --- what the shell reads -----------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._life.state

    def data_to_send(self) -> list[bytes]:
        """Frames to write to the current link, in order; taken by this call."""
        out, self._send = self._send, []
        return out

    def events(self) -> list[ev.ClientEvent]:
        """What happened since the last call, in order; taken by this call."""
        out, self._events = self._events, []
        return out

    def take_close_request(self) -> tuple[int, str] | None:
        """The machine has given up the current link: close it with this code (once)."""
        out, self._close = self._close, None
        return out

    def device_ms(self, now: float) -> int:
        return int((now + self.device_epoch_s) * 1000)

    def session_ms(self, now: float) -> float | None:
        """The session clock now, as far as the clock sync knows it (``None`` before a Pong)."""
        offset = self.clock_sync.offset_ms
        return None if offset is None else self.device_ms(now) + offset

    def get_timer(self) -> float | None:
        state = self.state
        if state in (S.CONNECTING, S.JOINING):
            return self._deadline
        if state is S.BACKOFF:
            return self._retry_at
        if state is S.LIVE:
            pace = None
            # a held batch (``_hold_until``) is the only op waiting: it, not the pacer, says when
            if (self._pacer is not None and self._hold_until is None and self.outbox.waiting
                    and self.outbox.in_flight < self._window):
                pace = self._pacer.ready_at(self._pacer.stamp)
            return earliest(self._pings.due, self._last_rx + self.config.idle_timeout_s, pace, self._hold_until)
        return None

    def handle_timer(self, now: float) -> None:
        state = self.state
        if state in (S.CONNECTING, S.JOINING):
            if self._deadline is not None and now >= self._deadline:
                self._link_failed(now, None, "no welcome within the connect timeout")
        elif state is S.BACKOFF:
            if self._retry_at is not None and now >= self._retry_at:
                self.connect(now)
        elif state is S.LIVE:
            if now - self._last_rx >= self.config.idle_timeout_s:
                self._link_failed(now, None, f"nothing received for {self.config.idle_timeout_s:g} s")
                return
            self._tick(now)

    def _tick(self, now: float) -> None:
        """Live: a Ping if one is due, then whatever ops may go."""
        if self._pings.is_due(now):
            pacer = self._pacer
            if pacer is None or pacer.ready(now):  # an own Ping is optional: never into debt
                self._out(m.Ping(self.device_ms(now)), now)
            self._pings.fired(now)
        self._pump(now)

    # --- lifecycle inputs ---------------------------------------------------------------------

    def _to(self, target: ClientState, why: str = "") -> None:
        previous = self._life.to(target, why)
        self._events.append(ev.StateChanged(previous, target))

    def connect(self, now: float) -> None:
        """Start (IDLE) or retry now (BACKOFF): the shell opens a transport."""
        self._to(S.CONNECTING)
        self._retry_at = None
        self._deadline = now + self.config.connect_timeout_s
        self._last_error = None

    def connection_made(self, now: float) -> None:
        """The transport of the current attempt is open: the Join goes first."""
        self._to(S.JOINING)
        self._skip_own = self.replica.last_seq > 0
        self._send = [encode(m.Join(m.PROTOCOL_VERSION, self.token, self.role, self.replica.last_seq,
                                    self.replica.epoch))]

    def connection_failed(self, now: float, reason: str) -> None:
        """The transport could not be opened (refused, DNS, TLS, HTTP error, timeout)."""
        if self.state is not S.CONNECTING:
            raise SessionMisuse(f"connection_failed in {self.state.name}: only a connect attempt can fail")
        self.redirect = None
        self._link_failed(now, None, reason)

    def connection_lost(self, now: float, code: int | None, reason: str = "") -> None:
        """The current link ended; ``code`` is the close code received (``None`` if the
        transport failed without one). A loss in a state without a link (the machine gave
        the link up itself) is ignored."""
        if self.state is S.CONNECTING:
            self._link_failed(now, code, reason or "connection lost while connecting")
        elif self.state in (S.JOINING, S.LIVE):
            target = close_outcome(code, self._last_error)
            if target is S.BACKOFF:
                self._link_failed(now, code, reason or "connection lost")
            else:
                self._end(target, code, reason)

    def close(self, now: float) -> None:
        """Leave for good (CLOSED): a link that is open is closed with 1000. Unsent ops are
        dropped; a shell that wants them delivered waits for an empty outbox first."""
        if self.state in (S.CLOSED, S.FAILED):
            return
        if self.state in _LINK_STATES:
            self._close = (1000, "client left")
        self._end(S.CLOSED, 1000, "client left")

    def _end(self, target: ClientState, code: int | None, reason: str) -> None:
        self._to(target, reason)
        self.end_code, self.end_reason = code, reason
        self._stop_link()
        self._events.append(ev.Closed(target, code, reason))

    def _stop_link(self) -> None:
        self._pings.stop()
        self._pacer = None
        self._deadline = None
        self._retry_at = None
        self._send = []
        self.outbox.link_lost()
        if self._live_since is not None:
            self._live_since = None

    def _link_failed(self, now: float, code: int | None, reason: str, *, refused: bool = False,
                     moved: bool = False) -> None:
        """Give the current link up (if the machine still holds one) and back off."""
        if self.state in (S.JOINING, S.LIVE):
            self._close = (GOING_AWAY, reason[:120])
        if self._live_since is not None and now - self._live_since >= self.config.stable_after_s:
            self._backoff.reset()
        self._stop_link()
        self._to(S.BACKOFF, reason)
        self._moves = self._moves + 1 if moved else 0
        if moved and self._moves <= MAX_MOVES:  # no failure: straight on to the room's node
            delay = 0.0
        else:
            delay = self._backoff.refused_delay() if refused else self._backoff.next_delay()
        self._retry_at = now + delay if self.config.auto_reconnect or (moved and delay == 0) else None
        self._events.append(ev.Disconnected(code, reason, self._retry_at))

    def _fault(self, now: float, why: str) -> None:
        """The server sent what we cannot apply: drop the link and resume (a resume repairs a
        gap: the Join says the last seq applied)."""
        self._link_failed(now, None, why)
        self._close = (PROTOCOL_ERROR_CLOSE, why[:120])

    # --- frames from the server ---------------------------------------------------------------

    def receive_frame(self, data: bytes, now: float) -> None:
        state = self.state
        if state not in (S.JOINING, S.LIVE):
            return  # a late frame of a link the machine has given up
        self._last_rx = now
        try:
            msg = decode_frame(data, SERVER_FRAME_LIMITS)
        except ProtocolError as exc:
            if exc.code is ErrorCode.UNKNOWN_TYPE:
                return  # a message of a later minor version: not for us
            self._fault(now, f"undecodable frame from the server: {exc.message}")
            return
        if state is S.JOINING:
            self._joining(msg, now)
        else:
            self._live(msg, now)
        if self.state is S.LIVE:
            self._tick(now)

    def _joining(self, msg: m.Message, now: float) -> None:
        if isinstance(msg, m.Error) and msg.code == ErrorCode.MOVED:
            self.errors.append(msg)
            self.redirect = msg.message
            self._events.append(ev.Refused(msg, final=False))
            self._link_failed(now, None, "the room lives on another node", moved=True)
        elif isinstance(msg, m.Error):
            self.errors.append(msg)
            target = error_outcome(msg.code)
            self._events.append(ev.Refused(msg, final=target is not S.BACKOFF))
            if target is S.BACKOFF:
                self._link_failed(now, None, f"join refused: {msg.code} {msg.message}", refused=True)
            else:
                self._close = (1000, "join refused")
                self._end(target, None, f"join refused: {msg.code} {msg.message}")
        elif isinstance(msg, m.Welcome):
            self._welcome(msg, now)
        else:
            self._fault(now, f"expected a Welcome, got {type(msg).__name__}")

    def _welcome(self, w: m.Welcome, now: float) -> None:
        self.welcome = w
        self._moves = 0
        self.joins += 1
        self.replica.welcome(w)
        top = self.outbox.welcome(w.acked_cseq)  # may renumber ops never sent
        if w.mode is m.CatchUp.SNAPSHOT:
            for entry in self.outbox:
                entry.applied = None  # of pages now gone
        self.cseq = max(self.cseq, w.acked_cseq, top)
        if w.mode is m.CatchUp.SNAPSHOT or self._held_local is not None:
            # Local pages are replaced (or were never filled): our ops the server has not
            # processed are applied after the catch-up; those it has arrive in it.
            self._held_local = self.outbox.ops()
        self._pacer = Pacer.under(w.rate_per_s, w.rate_burst, now, self.config.pace_rate_factor)
        self._window = max(1, w.rate_burst // max(1, self.config.window_divisor))
        self._pings.start(now)
        self._deadline = None
        self._live_since = now
        self._catching_up = True
        self._to(S.LIVE)
        self._events.append(ev.Joined(w, len(self.outbox), self.outbox.bytes))
        self._check_caught_up()

    def _check_caught_up(self) -> None:
        if not self._catching_up or self.welcome is None:
            return
        if self.replica.awaiting_pages or self.replica.last_seq < self.welcome.last_seq:
            return
        self._catching_up = False
        held, self._held_local = self._held_local, None
        entries = {id(e.op): e for e in self.outbox}
        for op in held or ():
            applied = self._apply_local(op)
            entry = entries.get(id(op))
            if entry is not None:
                entry.applied = applied
        self._events.append(ev.CaughtUp(self.replica.last_seq))

    def _apply_local(self, op: m.Op) -> Applied | None:
        if self._own_from == 0:
            self._own_from = op.cseq
        self.applied_cseq = max(self.applied_cseq, op.cseq)
        try:
            return apply_own(self.replica, op)
        except ProtocolError:
            return None  # e.g. points for a stroke a Clear removed: the server refuses it too (1008)

    def _ours_on(self, page: int) -> list[int]:
        """The ids of our strokes on ``page`` (none if there is no such page)."""
        me = self.replica.pid
        return [k[1] for k in self.replica.pages[page] if k[0] == me] if page < len(self.replica.pages) else []

    def _resync(self) -> None:
        """The replica could not apply what the server sent: its pages are not the room's. They
        are rebuilt from a catch-up from seq 0, and our unprocessed ops applied after it."""
        self.replica.reset()
        self._held_local = []
        for entry in self.outbox:
            entry.applied = None

    def _live(self, msg: m.Message, now: float) -> None:
        if isinstance(msg, m.Event):
            own = self._skip_own and msg.pid == self.replica.pid and msg.cseq >= self._own_from
            body, me = msg.body, self.replica.pid
            taking = isinstance(body, m.Clear | m.Undo) and msg.pid != me
            ours: list[int] = []
            if taking:  # our strokes it may take: the page's, or the one it names
                ours = (self._ours_on(body.page) if isinstance(body, m.Clear)
                        else [body.stroke] if isinstance(body, m.Undo) and body.author == me else [])
            try:  # beneath our unacknowledged ops where order matters (wire.rebase)
                pending = (e.applied for e in self.outbox if e.applied is not None)  # read only for page ops
                applied = rebase(self.replica, pending, body,
                                 lambda: self.replica.event(msg, self.applied_cseq if own else 0))
            except ProtocolError as exc:
                if msg.seq == self.replica.last_seq + 1:  # not a gap (a resume fills that): the pages are wrong
                    self._resync()
                self._fault(now, f"event {msg.seq} cannot be applied: {exc.message}")
                return
            if applied and taking:  # another took strokes of ours: what is left of them goes unsent
                pages = self.replica.pages
                self._dead.update(s for s in ours if not any((me, s) in page for page in pages))
            if applied:
                self._events.append(ev.EventApplied(msg))
                self._check_caught_up()
        elif isinstance(msg, m.Ack):
            self.outbox.ack(msg.cseq)
            if self.outbox.acked_sent_at:
                self.batcher.observe_ack(now - self.outbox.acked_sent_at)
            # the server has processed cseqs we never gave (raw frames, another tab): number on
            # past them, or our next ops would be dropped as resends
            self.cseq = max(self.cseq, msg.cseq)
            if msg.seq:
                self.replica.own(msg.seq)
            self._events.append(ev.Acked(msg.cseq, msg.seq))
        elif isinstance(msg, m.Snapshot):
            try:
                self.replica.snapshot(msg)
            except ProtocolError as exc:
                self._resync()
                self._fault(now, f"snapshot of page {msg.page} cannot be applied: {exc.message}")
                return
            self._events.append(ev.SnapshotApplied(msg))
            self._check_caught_up()
        elif isinstance(msg, m.Ping):
            self._out(m.Pong(msg.ts, self.device_ms(now)), now)
        elif isinstance(msg, m.Pong):
            self.clock_sync.add(msg.echo, msg.ts, self.device_ms(now))
        elif isinstance(msg, m.Error):
            self.errors.append(msg)
            if msg.ref:
                refused = self.outbox.discard(msg.ref)
                if refused is not None and refused.applied is not None:  # not in the session: off our pages too
                    refuse(self.replica, [e.applied for e in self.outbox if e.applied is not None], refused.applied)
                elif refused is not None and isinstance(refused.op, m.StrokePoints):
                    # the server's stroke holds its first ``start`` points (another cleared it, say)
                    stroke = self.replica.find_any(self.replica.pid, refused.op.stroke)
                    if stroke is not None:
                        del stroke.points[refused.op.start:]
                self._events.append(ev.OpRefused(msg))
            else:
                self._last_error = msg.code
                if msg.code == ErrorCode.MOVED:
                    self.redirect = msg.message
                self._events.append(ev.ErrorReceived(msg))
        elif isinstance(msg, m.AudioRelay):
            self._events.append(ev.AudioReceived(msg))
        elif isinstance(msg, m.RtcAnswer):
            self._events.append(ev.SignalReceived(msg))
        else:
            self._fault(now, f"{type(msg).__name__} is not sent by a server to a live client")

    # --- sending ------------------------------------------------------------------------------

    def _out(self, msg: m.Message, now: float) -> None:
        """A frame that does not wait for pacing (it still counts against it)."""
        self._send.append(encode(msg))
        if self._pacer is not None:
            self._pacer.spend(now)

    def _pump(self, now: float) -> None:
        """Send waiting ops while the in-flight window and the pacing allow. Points that keep
        coming meanwhile merge into the waiting tail (``Outbox.push``)."""
        pacer, outbox = self._pacer, self.outbox
        self._hold_until = None
        if pacer is None:
            return
        while outbox.waiting and outbox.in_flight < self._window and pacer.ready(now):
            nxt = outbox.peek()
            if nxt is not None and isinstance(nxt.op, m.StrokePoints | m.StrokeEnd) and nxt.op.stroke in self._dead:
                outbox.discard(nxt.op.cseq)  # the server would refuse it (1008), spending the error budget
                continue
            if outbox.waiting == 1:  # the newest batch: on a slow link, let more points join it
                tail = outbox.tail
                if tail is not None and isinstance(tail.op, m.StrokePoints):
                    # the backlog counts once its acks come back late (srtt): a window that is
                    # merely full waits and merges anyway (Outbox.push)
                    hold = self.batcher.hold_s()
                    if hold > 0 and now < tail.queued_at + hold:
                        self._hold_until = tail.queued_at + hold
                        return
            entry = outbox.next_to_send()
            assert entry is not None
            entry.sent_at = now
            pacer.spend(now)
            self._send.append(entry.frame)

    @property
    def window(self) -> int:
        """Op frames that may be in flight unacknowledged (``rate_burst // window_divisor``)."""
        return self._window

    # --- ops ----------------------------------------------------------------------------------

    def submit(self, now: float, make: Callable[[int], m.Op]) -> m.Op | None:
        """Number, keep, apply locally and (when the link and pacing allow) send one op; ``make``
        gets its cseq. ``None`` if the outbox is full (an ``OutboxFull`` event says so)."""
        if self.state in (S.CLOSED, S.FAILED):
            raise SessionMisuse(f"no ops after the session ended ({self.state.name})")
        op = make(self.cseq + 1)
        if op.cseq != self.cseq + 1:
            raise SessionMisuse("make() must use the cseq it is given")
        frame = encode(op)
        if not self.outbox.fits(len(frame)):
            self._events.append(ev.OutboxFull(len(self.outbox), self.outbox.bytes, self.outbox.max_ops,
                                              self.outbox.max_bytes))
            return None
        self.cseq = op.cseq
        me = self.replica.pid
        if isinstance(op, m.Undo) and op.author in (0, me):  # our own stroke: the rest of it goes unsent
            self._dead.add(op.stroke)
        elif isinstance(op, m.Clear):
            self._dead.update(self._ours_on(op.page))
        self.outbox.push(op, frame, now)
        if isinstance(op, m.StrokePoints | m.StrokeEnd) and op.stroke in self._dead:
            pass  # never sent (``_pump``), so not on our pages either
        elif self._held_local is not None:
            self._held_local.append(op)  # before the first Welcome or during a snapshot catch-up
        else:
            applied = self._apply_local(op)
            tail = self.outbox.tail
            if tail is not None and tail.op is op:
                tail.applied = applied
        if self.state is S.LIVE:
            self._pump(now)
        return op

    def begin_stroke(self, now: float, page: int = 0, *, tool: m.Tool = m.Tool.PEN, color: int = 0x000000FF,
                     width: int = 20, flags: int = 1, device_t0: int | None = None,
                     stroke: int | None = None) -> int | None:
        """Open a stroke; its id, or ``None`` if the outbox is full."""
        sid = stroke if stroke is not None else self._next_stroke
        t0 = self.device_ms(now) if device_t0 is None else device_t0
        if self.submit(now, lambda c: m.StrokeBegin(c, sid, page, tool, color, width, flags, t0)) is None:
            return None
        if stroke is None:
            self._next_stroke = self._next_stroke % (2**32 - 1) + 1
        self._strokes[sid] = _StrokeWriter(flags, PointState())
        return sid

    def add_points(self, now: float, stroke: int, points: Sequence[Point]) -> bool:
        """Append points to an open stroke (split at ``max_points_per_message``). ``False`` if
        the outbox is full: the points not taken can be offered again."""
        writer = self._strokes.get(stroke)
        if writer is None:
            raise SessionMisuse(f"stroke {stroke} is not open on this client")
        step = self.config.limits.max_points_per_message
        for i in range(0, len(points), step):
            chunk = list(points[i : i + step])
            trial = writer.state.copy()
            start = trial.count
            blob = encode_points(chunk, writer.flags, trial)
            op = functools.partial(_points, stroke=stroke, start=start, count=len(chunk), blob=blob)
            if self.submit(now, op) is None:
                return False
            writer.state = trial
        return True

    def end_stroke(self, now: float, stroke: int) -> bool:
        if stroke not in self._strokes:
            raise SessionMisuse(f"stroke {stroke} is not open on this client")
        if self.submit(now, lambda c: m.StrokeEnd(c, stroke)) is None:
            return False
        del self._strokes[stroke]
        return True

    def send_audio(self, now: float, seq: int, payload: bytes, capture_ts: int | None = None) -> bool:
        """One Opus packet, live only (never kept or resent); counts against the pacing."""
        if self.state is not S.LIVE:
            return False
        ts = self.device_ms(now) if capture_ts is None else capture_ts
        self._out(m.Audio(seq & 0xFFFFFFFF, ts, payload), now)
        return True

    def send_signal(self, now: float, msg: m.RtcOffer | m.RtcCandidate | m.RtcClose) -> bool:
        if self.state is not S.LIVE:
            return False
        self._out(msg, now)
        return True

    def ping(self, now: float) -> bool:
        """An extra Ping now (the machine pings on its own schedule as well)."""
        if self.state is not S.LIVE:
            return False
        self._out(m.Ping(self.device_ms(now)), now)
        return True


def _points(cseq: int, *, stroke: int, start: int, count: int, blob: bytes) -> m.StrokePoints:
    return m.StrokePoints(cseq, stroke, start, count, blob)
