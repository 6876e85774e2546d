"""The Python client helper: a thin asyncio shell around ``wire.session.ClientSession``.

The machine decides everything (the outbox and its resend, cseqs, the replica, pacing, pings
and clock sync, timeouts, backoff); this shell opens WebSockets, moves frames both ways, reads
the clock and sleeps until the machine's next timer. Every op is kept until acknowledged and
resent with its cseq after a reconnect, so nothing is lost or doubled across a dropped link.

With ``auto_reconnect=True`` the client reconnects after every network failure for as long as it
lives (capped, jittered backoff) and stops only when the server refuses it for good or the
session ends (``wire.session.closes``). Without it (the default, for tests that cut and resume
by hand) a failed link waits in BACKOFF for the next ``connect()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence

import websockets
from websockets.asyncio.client import ClientConnection

from wire import ErrorCode, Point, ProtocolError, Role, Tool
from wire import messages as m
from wire.clocksync import ClockEstimator
from wire.replica import Replica
from wire.session import BackoffPolicy, ClientConfig, ClientSession, ClientState
from wire.session import events as ev
from wire.session.outbox import Outbox

S = ClientState
_CLOSE_GRACE_S = 2.0  # how long a close handshake may take before the transport is cut


def device_ms() -> int:
    """This device's clock in ms: the clock of stroke start times and of Ping/Pong."""
    return int(time.time() * 1000)


class SessionClient:
    def __init__(self, url: str, token: str, role: Role, *, fallback_urls: Sequence[str] = (),
                 max_outbox: int = 100_000, auto_reconnect: bool = False, backoff_initial_s: float = 0.1,
                 backoff_max_s: float = 1.0, audio_queue: int = 500, config: ClientConfig | None = None) -> None:
        self.url = url
        # where to try next when a connection fails (other nodes of a cluster without a proxy),
        # in turn with ``url``; a redirect (Error 2010) goes first while it works
        self.urls = [url, *fallback_urls]
        self._url_turn = 0
        self.token = token
        self.role = role
        cfg = config or ClientConfig(backoff=BackoffPolicy(backoff_initial_s, max(backoff_initial_s, backoff_max_s)),
                                     max_outbox_ops=max_outbox, auto_reconnect=auto_reconnect)
        self.session = ClientSession(token, role, cfg, device_epoch_s=time.time() - time.monotonic())
        self.audio: asyncio.Queue[m.AudioRelay] = asyncio.Queue(audio_queue)  # others' audio, newest kept
        self.rtc_answers: asyncio.Queue[str] = asyncio.Queue()
        self.events: deque[ev.ClientEvent] = deque(maxlen=1000)  # the machine's recent events
        self.reconnects = 0  # joins made by the automatic reconnect
        self.close_code: int | None = None  # how the last link ended (None: still open, or never)
        self._link: _Link | None = None
        self._reader: asyncio.Task[None] | None = None  # the reader of the last link
        self._attempt: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._manual = False  # the join in progress was asked for by connect()
        self._failure: BaseException | None = None  # why the last attempt or link failed

    # --- views of the machine -----------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self.session.state

    @property
    def replica(self) -> Replica:
        return self.session.replica

    @property
    def outbox(self) -> Outbox:
        return self.session.outbox

    @property
    def welcome(self) -> m.Welcome | None:
        return self.session.welcome

    @property
    def errors(self) -> list[m.Error]:
        return self.session.errors

    @property
    def clock_sync(self) -> ClockEstimator:
        return self.session.clock_sync

    @property
    def pid(self) -> int:
        """This participant's id in the room (0 before the first Welcome)."""
        return self.replica.pid

    @property
    def cseq(self) -> int:
        return self.session.cseq

    @cseq.setter
    def cseq(self, value: int) -> None:
        """Tests that send raw ops move the numbering on past them."""
        self.session.cseq = value

    @property
    def _ws(self) -> ClientConnection | None:
        """The WebSocket of the current link (tests send text frames on it)."""
        return self._link.ws if self._link is not None else None

    @property
    def connected(self) -> bool:
        return self.state is S.LIVE and self._link is not None

    # --- lifecycle ----------------------------------------------------------------------------

    async def connect(self, timeout: float | None = None) -> m.Welcome:
        """Join (or rejoin now) and return the Welcome; what the server has not acknowledged is
        resent by the machine. Raises ``ConnectionRefusedError`` when the server refuses the
        join (see ``errors`` and ``close_code``). Without auto-reconnect a link that cannot be
        made raises what made it fail (``OSError``, ``websockets.InvalidHandshake``, ...); with
        it, network failures are retried until ``timeout`` (``None``: for ever)."""
        if self.session.state in (S.CLOSED, S.FAILED):
            # the application asks to come back after the session ended for it: a new machine
            # that continues from this one's replica and numbering (the server decides again)
            await self._link_gone()
            self.session = self.session.successor()
        s = self.session
        if s.state is S.LIVE and s.welcome is not None:
            return s.welcome
        joins = s.joins
        self._failure = None
        self._manual = True
        if s.state in (S.IDLE, S.BACKOFF):
            s.connect(self._now())
        self._kick()
        self._ensure_runner()

        def settled() -> bool:
            return (s.joins > joins or s.state in (S.CLOSED, S.FAILED)
                    or (s.state is S.BACKOFF and not s.config.auto_reconnect and s.get_timer() is None))

        await self.wait_for(settled, timeout)
        if s.joins > joins and s.welcome is not None:
            return s.welcome
        if s.state in (S.CLOSED, S.FAILED) or isinstance(self._failure, ConnectionRefusedError):
            await self._link_gone()
            raise ConnectionRefusedError(f"join refused: {s.end_reason or self._failure}")
        failure = self._failure or ConnectionResetError("connection lost while joining")
        raise failure

    async def close(self) -> None:
        """Leave for good (CLOSED): no reconnect after this. Unsent ops are dropped; wait for an
        empty ``outbox`` first to have them delivered."""
        self.session.close(self._now())
        self._kick()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._link_gone()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def drop(self) -> None:
        """Cut the connection abruptly, as a lost network would (no close handshake)."""
        link, reader = self._link, self._reader
        if link is not None:
            link.ws.transport.abort()
        if reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(reader)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the current link to end; how it ended (its close code)."""
        reader = self._reader
        if reader is not None:
            async with asyncio.timeout(timeout):
                await asyncio.shield(reader)
        return self.close_code

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked after everything the machine does."""
        async with asyncio.timeout(timeout):
            while not predicate():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    # --- the shell ----------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _ensure_runner(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())

    def _kick(self) -> None:
        """The machine may have something to send or do: act on it now."""
        self._service()
        self._wake.set()

    async def _run(self) -> None:
        """Sleep until the machine's next timer (or an input), then let it act."""
        s = self.session
        while s.state not in (S.CLOSED, S.FAILED):
            timer = s.get_timer()
            now = self._now()
            if timer is not None and timer <= now:
                s.handle_timer(now)
                self._service()
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if timer is None else timer - now):
                    await self._wake.wait()
        self._service()

    def _service(self) -> None:
        """Move the machine's output to the link, act on its requests, hand out its events."""
        s = self.session
        frames = s.data_to_send()
        if frames and self._link is not None:
            self._link.put(frames)
        request = s.take_close_request()
        if request is not None:
            self._give_up_link(*request)
        if s.state is S.CONNECTING and self._link is None and (self._attempt is None or self._attempt.done()):
            self._attempt = asyncio.create_task(self._open())
        elif s.state is not S.CONNECTING and self._attempt is not None and not self._attempt.done():
            self._attempt.cancel()  # the machine gave this attempt up (connect timeout, close)
        for event in s.events():
            self.events.append(event)
            if isinstance(event, ev.AudioReceived):
                if self.audio.full():
                    self.audio.get_nowait()  # a listener that falls behind loses its oldest audio
                self.audio.put_nowait(event.relay)
            elif isinstance(event, ev.SignalReceived):
                self.rtc_answers.put_nowait(event.message.sdp)
            elif isinstance(event, ev.Joined):
                if not self._manual:
                    self.reconnects += 1
                self._manual = False
            elif isinstance(event, ev.Refused) and event.error.code != ErrorCode.MOVED:
                self._failure = ConnectionRefusedError(f"join refused: {event.error.code} {event.error.message}")
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _open(self) -> None:
        """One connect attempt; the machine's connect timeout bounds it (it cancels us)."""
        url = self.session.redirect or self.urls[self._url_turn % len(self.urls)]
        try:
            ws = await websockets.connect(url, max_size=None, compression=None, open_timeout=None,
                                          ping_interval=None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, reset, DNS, TLS, HTTP status: all network failures
            if self.session.redirect is None:
                self._url_turn += 1
            if self.session.state is S.CONNECTING:
                self._failure = exc
                self.session.connection_failed(self._now(), f"{type(exc).__name__}: {exc}")
                self._kick()
            return
        if self.session.state is not S.CONNECTING:
            await ws.close()
            return
        link = self._link = _Link(ws)
        self._reader = link.reader = asyncio.create_task(self._read(link))
        link.writer = asyncio.create_task(link.write())
        self.session.connection_made(self._now())
        self._kick()

    async def _read(self, link: _Link) -> None:
        ws = link.ws
        try:
            async for frame in ws:
                if link is not self._link:
                    break
                if isinstance(frame, bytes):
                    self._receive(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.wait_closed(), _CLOSE_GRACE_S)
            if link.writer is not None:
                link.writer.cancel()
            if link is self._link:
                self._link = None
                self.close_code = ws.close_code
                code = ws.close_code if ws.close_code not in (None, 1006) else None
                if self._failure is None:
                    self._failure = ConnectionResetError(f"connection closed ({code})")
                self.session.connection_lost(self._now(), code, ws.close_reason or "")
            self._kick()

    def _receive(self, frame: bytes) -> None:
        """One frame of the current link into the machine (tests wrap this to watch frames)."""
        self.session.receive_frame(frame, self._now())
        self._kick()

    def _give_up_link(self, code: int, reason: str) -> None:
        """The machine is done with the current link: close it (its reader then ends)."""
        link = self._link
        if link is None:
            return
        self._link = None
        refused = isinstance(self._failure, ConnectionRefusedError)
        task = asyncio.create_task(self._close_link(link, code, reason, refused))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_link(self, link: _Link, code: int, reason: str, refused: bool) -> None:
        ws = link.ws
        try:
            if refused:  # the server's own close, with its code, is on its way: take that one
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), _CLOSE_GRACE_S)
            elif code == 1000:  # a client that leaves still says what it had queued
                await asyncio.wait_for(link.drain(), _CLOSE_GRACE_S)
            await asyncio.wait_for(ws.close(code, reason), _CLOSE_GRACE_S)
        except Exception:
            ws.transport.abort()
        if link.writer is not None:
            link.writer.cancel()
        if self._link is None:
            self.close_code = ws.close_code

    async def _link_gone(self) -> None:
        """Wait for the reader of the last link and any close in progress to finish."""
        if self._link is not None and self.state in (S.CLOSED, S.FAILED):
            self._give_up_link(1000, "client left")
        for task in (*self._closing, self._reader):
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), _CLOSE_GRACE_S + 1)
        if self._attempt is not None and not self._attempt.done():
            self._attempt.cancel()

    # --- sending ------------------------------------------------------------------------------

    async def send_op(self, make: Callable[[int], m.Op]) -> m.Op:
        """Number, keep and send one op (``make`` gets its cseq). ``OverflowError`` when the
        outbox is at its bound (the machine reports ``OutboxFull`` as well)."""
        op = self.session.submit(self._now(), make)
        self._kick()
        if op is None:
            raise OverflowError(f"outbox holds {len(self.outbox)} unacknowledged ops ({self.outbox.bytes} bytes)")
        return op

    async def send_raw(self, frame: bytes) -> None:
        """Send bytes as they are, after what the machine has queued (tests of hostile input)."""
        link = self._link
        assert link is not None
        await link.drain()
        await link.ws.send(frame)

    async def begin_stroke(self, page: int = 0, *, tool: Tool = Tool.PEN, color: int = 0x000000FF,
                           width: int = 20, flags: int = 1, device_t0: int | None = None) -> int:
        stroke = self.session.begin_stroke(self._now(), page, tool=tool, color=color, width=width, flags=flags,
                                           device_t0=device_t0)
        self._kick()
        if stroke is None:
            raise OverflowError("outbox full: the stroke was not begun")
        return stroke

    async def add_points(self, stroke: int, points: Sequence[Point]) -> None:
        taken = self.session.add_points(self._now(), stroke, points)
        self._kick()
        if not taken:
            raise OverflowError("outbox full: points were not taken")

    async def end_stroke(self, stroke: int) -> None:
        taken = self.session.end_stroke(self._now(), stroke)
        self._kick()
        if not taken:
            raise OverflowError("outbox full: the stroke was not ended")

    async def add_page(self, page: int) -> None:
        await self.send_op(lambda c: m.PageAdd(c, page))

    async def switch_page(self, page: int) -> None:
        await self.send_op(lambda c: m.PageSwitch(c, page))

    async def undo(self, stroke: int, author: int = 0) -> None:
        """Undo one of our strokes, or (``author``, needs UNDO_OTHERS) another participant's."""
        await self.send_op(lambda c: m.Undo(c, stroke, author))

    async def clear(self, page: int) -> None:
        await self.send_op(lambda c: m.Clear(c, page))

    async def restore(self, page: int) -> None:
        """The undo of the page's latest Clear (needs CLEAR)."""
        await self.send_op(lambda c: m.Restore(c, page))

    async def grant(self, pid: int, rights: m.Rights) -> None:
        """Participant ``pid`` gets ``rights`` beyond its role's (needs MODERATE; NONE takes them back)."""
        await self.send_op(lambda c: m.Grant(c, pid, rights))

    async def mute(self, muted: bool) -> None:
        """Mute or unmute this participant's microphone (an op: the server stops forwarding)."""
        await self.send_op(lambda c: m.Mute(c, muted))

    async def send_audio(self, seq: int, payload: bytes, capture_ts: int | None = None) -> None:
        """One Opus packet over the WebSocket (for clients without WebRTC; never kept or
        resent; dropped while not live)."""
        self.session.send_audio(self._now(), seq, payload, capture_ts)
        self._kick()

    async def send_signal(self, msg: m.RtcOffer | m.RtcCandidate | m.RtcClose) -> None:
        """WebRTC signalling to the server; answers arrive on ``rtc_answers``."""
        if not self.session.send_signal(self._now(), msg):
            raise ConnectionError("not connected")
        self._kick()

    async def ping(self) -> None:
        """An extra Ping now (the machine pings on its own schedule too)."""
        if not self.session.ping(self._now()):
            raise ConnectionError("not connected")
        self._kick()



class _Link:
    """One WebSocket and the frames waiting to be written to it, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.out: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None

    def put(self, frames: list[bytes]) -> None:
        self.out.extend(frames)
        self.ready.set()

    async def drain(self) -> None:
        while self.out:
            await self.ws.send(self.out.popleft())

    async def write(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            while True:
                await self.ready.wait()
                self.ready.clear()
                await self.drain()


__all__ = ["ProtocolError", "SessionClient", "device_ms"]
