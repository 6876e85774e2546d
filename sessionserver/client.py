"""The Python client helper: join a session, send ink, keep a replica, resume after drops.

``SessionClient`` keeps every op it sent until the server acknowledges it, and on reconnect
sends ``last_seq`` so the server replays exactly what it missed; unacknowledged ops are resent
with their original ``cseq`` and the server drops any it already applied. Nothing is lost and
nothing is doubled across a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import websockets
from websockets.asyncio.client import ClientConnection

from wire import (
    PROTOCOL_VERSION,
    CloseCode,
    ErrorCode,
    Limits,
    Point,
    PointState,
    ProtocolError,
    Role,
    Tool,
    decode_frame,
    encode,
    encode_points,
)
from wire import messages as m
from wire.clocksync import ClockEstimator
from wire.ratelimit import TokenBucket
from wire.replica import Replica

# closes after which rejoining cannot succeed: the token or the protocol version is refused
_FINAL_CLOSES = {CloseCode.AUTH_FAILED, CloseCode.TOKEN_EXPIRED, CloseCode.FORBIDDEN,
                 CloseCode.UNSUPPORTED_VERSION, CloseCode.REPLACED, 1000}
_CLIENT_LIMITS = Limits(max_frame_bytes=64 << 20, max_points_per_message=2**31,
                        max_points_per_stroke=2**31, max_string_bytes=1 << 16)


def device_ms() -> int:
    """This device's clock in ms: the clock of stroke start times and of Ping/Pong."""
    return int(time.time() * 1000)


class SessionClient:
    def __init__(self, url: str, token: str, role: Role, *, max_outbox: int = 100_000,
                 auto_reconnect: bool = False, backoff_initial_s: float = 0.05,
                 backoff_max_s: float = 5.0, audio_queue: int = 500) -> None:
        self.url = url
        self.auto_reconnect = auto_reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.reconnects = 0
        self._closing = False
        self._reconnector: asyncio.Task[None] | None = None
        self._pace: TokenBucket | None = None
        self.token = token
        self.role = role
        self.max_outbox = max_outbox
        self.replica = Replica()  # its pid comes with the first Welcome
        self._pending_local: list[m.Op] = []
        self.welcome: m.Welcome | None = None
        self.errors: list[m.Error] = []
        self.close_code: int | None = None
        self.clock_sync = ClockEstimator()  # the session clock minus our device clock
        self.audio: asyncio.Queue[m.AudioRelay] = asyncio.Queue(audio_queue)  # others' audio, newest kept
        self.rtc_answers: asyncio.Queue[str] = asyncio.Queue()
        self.cseq = 0
        self.applied_cseq = 0  # the highest cseq of ours applied to the replica by this client
        self.outbox: OrderedDict[int, tuple[bytes, m.Op]] = OrderedDict()
        self._stroke_ids = itertools.count(1)
        self._encoders: dict[int, tuple[int, PointState]] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._sending: set[asyncio.Future[None]] = set()

    # --- connection ---------------------------------------------------------------------------

    async def connect(self) -> m.Welcome:
        """Join (or rejoin) the session and resend what the server has not acknowledged.

        Raises ``ConnectionRefusedError`` when the server refuses the join (see ``errors``),
        ``OSError`` or ``websockets.InvalidHandshake`` when it cannot be reached.
        """
        self._closing = False
        ws = await websockets.connect(self.url, max_size=None, compression=None, open_timeout=10)
        try:
            join = m.Join(PROTOCOL_VERSION, self.token, self.role, self.replica.last_seq, self.replica.epoch)
            await ws.send(encode(join))
            welcome = decode_frame(await ws.recv(decode=False), _CLIENT_LIMITS)
        except websockets.ConnectionClosed:
            await ws.close()
            raise ConnectionResetError("connection lost while joining") from None
        if isinstance(welcome, m.Error):
            self.errors.append(welcome)
            await ws.wait_closed()
            self.close_code = ws.close_code
            raise ConnectionRefusedError(f"join refused: {welcome.code} {welcome.message}")
        if not isinstance(welcome, m.Welcome):
            await ws.close()
            raise ProtocolError(ErrorCode.BAD_FRAME, f"expected a welcome, got {welcome!r}")
        self.welcome = welcome
        self.replica.welcome(welcome)
        self._acked(welcome.acked_cseq)
        self.cseq = max(self.cseq, welcome.acked_cseq)
        if welcome.mode is m.CatchUp.SNAPSHOT:  # our unacked ops are not in the snapshot
            self._pending_local = [op for _, op in self.outbox.values()]
        # pace under the server's limit (a little below it: Pongs count too), so a long outbox
        # after an outage goes out as fast as allowed and never trips the limit
        self._pace = TokenBucket(welcome.rate_per_s * 0.9, max(1, welcome.rate_burst // 2), time.monotonic())
        self._reader = asyncio.create_task(self._read_loop(ws))
        # resend in order; ops made meanwhile join the outbox and are sent by this loop too
        resent = 0
        while True:
            pending = [frame for cseq, (frame, _) in self.outbox.items() if cseq > resent]
            if not pending:
                break
            resent = next(reversed(self.outbox))
            for frame in pending:
                await self._paced_send(ws, frame)
        self._ws = ws
        return welcome

    async def close(self) -> None:
        """Leave for good: no reconnect after this."""
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        if self._ws is not None:
            await self._ws.close()
        await self._stop_reader()

    async def drop(self) -> None:
        """Cut the connection abruptly, as a lost network would (no close handshake)."""
        if self._ws is not None:
            self._ws.transport.abort()
        await self._stop_reader()

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._ws = None

    @property
    def pid(self) -> int:
        """This participant's id in the room (0 before the first Welcome)."""
        return self.replica.pid

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._reader is not None and not self._reader.done()

    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    self._receive(frame)
                    async with self._changed:
                        self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass  # close_code says why
        finally:
            self.close_code = ws.close_code
            if self._ws is ws:
                self._ws = None
            if self.auto_reconnect and not self._closing and self.close_code not in _FINAL_CLOSES:
                self._reconnector = asyncio.create_task(self._reconnect())
            async with self._changed:
                self._changed.notify_all()

    async def _reconnect(self) -> None:
        """Rejoin with exponential backoff and jitter until it works or the server refuses."""
        delay = self.backoff_initial_s
        while not self._closing:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                await self.connect()
                self.reconnects += 1
                return
            except ConnectionRefusedError:
                return  # the token is no longer good: reconnecting cannot help
            except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed, TimeoutError):
                delay = min(delay * 2, self.backoff_max_s)

    def _receive(self, frame: bytes) -> None:
        try:
            msg = decode_frame(frame, _CLIENT_LIMITS)
        except ProtocolError as exc:
            if exc.code is ErrorCode.UNKNOWN_TYPE:
                return  # a message of a later minor version: not for us
            raise
        if isinstance(msg, m.Event):
            self.replica.event(msg, self.applied_cseq)
        elif isinstance(msg, m.Snapshot):
            self.replica.snapshot(msg)
            if self._pending_local and not self.replica.awaiting_pages:
                for op in self._pending_local:
                    self.replica.apply_local(self.pid, op)
                self._pending_local = []
        elif isinstance(msg, m.Ack):
            self._acked(msg.cseq)
            if msg.seq:
                self.replica.own(msg.seq)
        elif isinstance(msg, m.Error):
            self.errors.append(msg)
            self.outbox.pop(msg.ref, None)
        elif isinstance(msg, m.Pong):
            self.clock_sync.add(msg.echo, msg.ts, device_ms())
        elif isinstance(msg, m.Ping):
            self._send_now(encode(m.Pong(msg.ts, device_ms())))
        elif isinstance(msg, m.AudioRelay):
            if self.audio.full():
                self.audio.get_nowait()  # a listener that falls behind loses its oldest audio
            self.audio.put_nowait(msg)
        elif isinstance(msg, m.RtcAnswer):
            self.rtc_answers.put_nowait(msg.sdp)

    def _acked(self, cseq: int) -> None:
        while self.outbox and next(iter(self.outbox)) <= cseq:
            self.outbox.popitem(last=False)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked after every frame that arrives."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the connection; its close code."""
        if self._reader is not None:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._reader)
        return self.close_code

    # --- sending ------------------------------------------------------------------------------

    def _send_now(self, frame: bytes) -> None:
        if self._ws is not None:
            task = asyncio.ensure_future(self._safe_send(self._ws, frame))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    @staticmethod
    async def _safe_send(ws: ClientConnection, frame: bytes) -> None:
        try:
            await ws.send(frame)
        except websockets.ConnectionClosed:
            pass  # kept in the outbox; resent after reconnect

    async def _paced_send(self, ws: ClientConnection, frame: bytes) -> None:
        if self._pace is not None:
            delay = self._pace.delay(time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)  # pacing, not synchronisation: the rate limit demands it
            self._pace.take(time.monotonic())
        await self._safe_send(ws, frame)

    async def send_op(self, make: Callable[[int], m.Op]) -> m.Op:
        """Number, keep and send one op (``make`` gets its cseq)."""
        if len(self.outbox) >= self.max_outbox:
            raise OverflowError(f"outbox holds {self.max_outbox} unacknowledged ops")
        self.cseq += 1
        op = make(self.cseq)
        frame = encode(op)
        self.outbox[op.cseq] = (frame, op)
        self.replica.apply_local(self.pid, op)
        self.applied_cseq = op.cseq
        if self._ws is not None:
            await self._paced_send(self._ws, frame)
        return op

    async def send_raw(self, frame: bytes) -> None:
        """Send bytes as they are (tests of hostile input)."""
        assert self._ws is not None
        await self._ws.send(frame)

    async def begin_stroke(self, page: int = 0, *, tool: Tool = Tool.PEN, color: int = 0x000000FF,
                           width: int = 20, flags: int = 1, device_t0: int | None = None) -> int:
        stroke = next(self._stroke_ids)
        t0 = device_ms() if device_t0 is None else device_t0
        self._encoders[stroke] = (flags, PointState())
        await self.send_op(lambda c: m.StrokeBegin(c, stroke, page, tool, color, width, flags, t0))
        return stroke

    async def add_points(self, stroke: int, points: Sequence[Point]) -> None:
        flags, state = self._encoders[stroke]
        start = state.count
        blob = encode_points(list(points), flags, state)
        await self.send_op(lambda c: m.StrokePoints(c, stroke, start, len(points), blob))

    async def end_stroke(self, stroke: int) -> None:
        self._encoders.pop(stroke, None)
        await self.send_op(lambda c: m.StrokeEnd(c, stroke))

    async def add_page(self, page: int) -> None:
        await self.send_op(lambda c: m.PageAdd(c, page))

    async def switch_page(self, page: int) -> None:
        await self.send_op(lambda c: m.PageSwitch(c, page))

    async def undo(self, stroke: int) -> None:
        await self.send_op(lambda c: m.Undo(c, stroke))

    async def clear(self, page: int) -> None:
        await self.send_op(lambda c: m.Clear(c, page))

    async def mute(self, muted: bool) -> None:
        """Mute or unmute this participant's microphone (an op: the server stops forwarding)."""
        await self.send_op(lambda c: m.Mute(c, muted))

    async def send_audio(self, seq: int, payload: bytes, capture_ts: int | None = None) -> None:
        """One Opus packet over the WebSocket (for clients without WebRTC; not paced, not kept)."""
        if self._ws is not None:
            if self._pace is not None:  # audio is never delayed, but it counts against the rate limit
                self._pace.take(time.monotonic())
            await self._safe_send(self._ws, encode(m.Audio(seq & 0xFFFFFFFF, capture_ts or device_ms(), payload)))

    async def send_signal(self, msg: m.RtcOffer | m.RtcCandidate | m.RtcClose) -> None:
        """WebRTC signalling to the server; answers arrive on ``rtc_answers``."""
        assert self._ws is not None
        await self._ws.send(encode(msg))

    async def ping(self) -> None:
        assert self._ws is not None
        await self._ws.send(encode(m.Ping(device_ms())))
