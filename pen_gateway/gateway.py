"""The gateway: the asyncio shell around ``wire.session.ClientSession`` that moves a pen's
strokes and a microphone's voice into a session, through the crash-safe spool.

What it promises:

* **Ink**: every op is appended to the spool before it is written to the link and forgotten when
  the server acknowledges it (``Ack`` / ``Welcome.acked_cseq``). After a crash the next start
  hands the spooled ops back to a new machine with their original cseqs (marked as possibly
  sent, so that the ``Welcome`` drops exactly those the server has), and ends strokes the crash
  left open. The machine resends after every reconnect (``docs/protocol.md`` 3.5): exactly once,
  in order.
* **Audio**: every 20 ms Opus packet is spooled too. Live, a packet at most ``late_audio_s`` old
  goes as ``Audio`` (30); older packets (captured during an outage, or before a crash) are
  uploaded as ``AudioLate`` (``wire.late_audio``, type 32) for the recording only, at their
  capture time. The server reads a connection's frames in order, so the ``Pong`` to a ``Ping``
  sent after some audio confirms that audio; confirmed packets leave the spool. A server without
  type 32 answers 1002: late audio then waits in the spool (bounded like the rest) for one that
  has it.
* **Reconnect** with the machine's exponential backoff and full jitter, for as long as the
  session lives; resume by seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from wire import ErrorCode, PointState, Role, decode_frame, encode, encode_points
from wire import messages as m
from wire.late_audio import MAX_LATE_PACKETS, AudioLate, LatePacket, encode_audio_late
from wire.limits import Limits
from wire.session import BackoffPolicy, ClientConfig, ClientSession, ClientState
from wire.session import events as ev
from wire.session.outbox import Entry

from .adapters import PenAdapter
from .audio import AudioSource, OpusEncoder
from .device import DeviceBack, DeviceGone, Loss, PageTurn, Phase, Sample
from .errors import ServerError
from .pages import Calibration, PageMap
from .settings import GatewaySettings
from .spool import Spool, SpoolFull
from .strokes import Begin, End, Page, Points, StrokeBuilder

log = logging.getLogger("tutorwire.pen_gateway")
S = ClientState
_PONG_HEAD = b"\x93\x15"  # fixarray(3), type 21
_SPOOL_LIMITS = Limits(max_frame_bytes=1 << 20, max_points_per_message=2**31, max_points_per_stroke=2**31)
_EDGES = frozenset({Phase.DOWN, Phase.UP})
_BATCH_GRACE_S = 0.005
# The gateway numbers its ops from here: as a second device of the tutor's seat (beside the
# browser, which numbers from 1) its events are told from the browser's by cseq, which the
# clients' replicas use to skip their own ops in a catch-up (docs/protocol.md 3.6).
DEVICE_CSEQ_BASE = 1 << 40
INK_COLOR = 0x000000FF
INK_WIDTH = 20


@dataclass(frozen=True, slots=True)
class Status:
    state: str
    rtt_ms: float | None
    spooled_ops: int
    spooled_audio: int
    spool_bytes: int
    spool_nearly_full: bool
    device: str
    rate_hz: float
    late_audio: str  # "none", "uploading", "waiting for a server that takes late audio"
    message: str = ""

    def line(self) -> str:
        rtt = f"{self.rtt_ms:.0f} ms" if self.rtt_ms is not None else "-"
        warn = "  SPOOL NEARLY FULL" if self.spool_nearly_full else ""
        msg = f"  {self.message}" if self.message else ""
        return (f"{self.state:<10} rtt {rtt:>7}  spooled {self.spooled_ops} ops, {self.spooled_audio} audio "
                f"({self.spool_bytes / 1024:.0f} KiB){warn}  {self.device} {self.rate_hz:.0f} Hz{msg}")


class Gateway:
    def __init__(self, url: str, token: str, *, adapter: PenAdapter | None, audio: AudioSource | None,
                 spool: Spool, settings: GatewaySettings | None = None, calibration: Calibration | None = None,
                 role: Role = Role.TUTOR, rng: random.Random | None = None,
                 on_status: Callable[[Status], None] | None = None) -> None:
        self.url = url
        self.settings = cfg = settings or GatewaySettings()
        self.rng = rng or random.Random()
        epoch = time.time() - time.monotonic()
        config = ClientConfig(backoff=BackoffPolicy(cfg.backoff_initial_s, cfg.backoff_cap_s),
                              pace_rate_factor=cfg.pace_rate_factor, auto_reconnect=True)
        self.session = ClientSession(token, role, config, rng=self.rng, device_epoch_s=epoch)
        self.adapter = adapter
        self.audio = audio
        self.spool = spool
        self.on_status = on_status
        self.builder: StrokeBuilder | None = None
        if adapter is not None:
            self.builder = StrokeBuilder(PageMap(adapter.info, calibration), device_epoch_s=epoch,
                                         batch_ms=cfg.batch_ms)
        self.encoder: OpusEncoder | None = None
        self._stroke: int | None = None
        self._point_state = PointState()
        self._flags = 0
        self._audio_seq = self.rng.randrange(2**32)
        self._late: deque[int] = deque()  # spooled audio indices to upload late, in order
        self._sent_audio: list[int] = []  # sent on this link since the last marker Ping
        self._markers: deque[tuple[int, list[int]]] = deque()  # (Ping.ts, audio sent before it)
        self._last_marker = 0.0
        self._late_next = 0.0
        # The probe: the first AudioLate on a link, then two Pings in turn. A 1002 before the
        # second Pong says the server does not take type 32; the second Pong without one, that it
        # does (the server had read the frame a round trip before it answered the first Ping).
        self._probe: list[int] | None = None  # the probe's audio indices while it is out
        self._probe_ts = 0  # Ping.ts of the probe's latest Ping
        self._probe_stage = 0  # 1: the probe's Ping is out; 0: none (one is due while probing)
        self._probe_ts_second = False  # the Ping out is the second
        self.late_supported: bool | None = None
        self.losses = 0
        self.audio_packets = 0  # encoded and spooled (or sent)
        self.messages: deque[str] = deque(maxlen=20)
        self.device_name = adapter.info.name if adapter else "no pen"
        self._link: _Link | None = None
        self._attempt: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # The main loop sleeps until its next timer on one re-armable handle: what changes a
        # timer (an ack, a batch opened or sent, a spool append) moves the handle, and wakes the
        # loop only when something is due (each wake of a task costs as much as a pen report).
        self._wake_handle: asyncio.TimerHandle | None = None
        self._wake_at = 0.0
        self._waiting = False
        self._next_status = 0.0
        self._exit_when_done = False
        self._tasks: list[asyncio.Task[None]] = []
        self._syncing: asyncio.Future[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.input_done = asyncio.Event()  # the pen (and the audio source) ended
        self._inputs = 0
        self.joined = 0
        self.fatal: ServerError | None = None
        self._restore(time.monotonic())

    # --- restart ------------------------------------------------------------------------------

    def _restore(self, now: float) -> None:
        """Hand what the spool kept (a crash, a kill, a stop with ops unacknowledged) back to the
        machine, with the cseqs it had, and end the strokes left open."""
        s = self.session
        s.cseq = max(s.cseq, DEVICE_CSEQ_BASE)
        for cseq, frame in self.spool.ops.items():
            op = decode_frame(frame, _SPOOL_LIMITS)
            assert isinstance(op, m.StrokeBegin | m.StrokePoints | m.StrokeEnd | m.PageAdd | m.PageSwitch
                              | m.Undo | m.Clear | m.Mute)
            # Straight into the outbox, as they were: ``submit`` would merge consecutive points
            # into one op with the later cseq, and the server may have processed the earlier
            # one (its Ack lost with the link): the merged op would then start too early (1015).
            # They are marked as possibly sent, so the Welcome's acked_cseq drops exactly those
            # the server has (a never-sent op at or below it would be renumbered: a double).
            _restore_entry(s, op, frame)
            s.cseq = cseq
        s.cseq = max(s.cseq, self.spool.acked_cseq, DEVICE_CSEQ_BASE)
        for stroke in sorted(self.spool.open_strokes):
            self._submit(now, functools.partial(_end, stroke=stroke))
        if self.spool.audio:
            self._late.extend(self.spool.audio)
            self._audio_seq = (max(a.seq for a in self.spool.audio.values()) + 1) & 0xFFFFFFFF
        if self.spool.ops or self.spool.audio:
            self._note(f"resuming {len(self.spool.ops)} ops and {len(self.spool.audio)} audio packets from the spool")

    # --- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None, *, exit_when_done: bool = False) -> None:
        """Connect and run until ``stop`` is set (or, with ``exit_when_done``, until the pen and
        audio inputs ended and the spool is empty). Raises ``ServerError`` when the server
        refuses the join for good."""
        self.session.connect(time.monotonic())
        self._inputs = (self.adapter is not None) + (self.audio is not None)
        if self.adapter is not None:
            self._tasks.append(asyncio.create_task(self._pen()))
        if self.audio is not None:
            self.encoder = OpusEncoder(self.audio.rate, self.settings.audio_bitrate)
            self._tasks.append(asyncio.create_task(self._mic()))
        if self.adapter is None and self.audio is None:
            self.input_done.set()
        self._service()
        self._next_status = time.monotonic()
        self._exit_when_done = exit_when_done
        if stop is not None:
            self._tasks.append(asyncio.create_task(self._stop_on(stop)))
        try:
            while self.session.state not in (S.CLOSED, S.FAILED):
                if stop is not None and stop.is_set():
                    break
                if exit_when_done and self.input_done.is_set() and self.drained:
                    break
                now = time.monotonic()
                if now >= self._next_status:
                    self._status()
                    self._next_status = now + self.settings.status_interval_s
                timer = self._next_timer(self._next_status)
                if timer <= now:
                    self._tick(now)
                    await asyncio.sleep(0)  # let the link's reader and writer run between timers
                    continue
                self._wake.clear()
                self._arm(timer, now)
                self._waiting = True
                try:
                    await self._wake.wait()
                finally:
                    self._waiting = False
        finally:
            if self._wake_handle is not None:
                self._wake_handle.cancel()
            await self._shutdown()
        if self.fatal is not None:
            raise self.fatal

    async def _stop_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    @property
    def drained(self) -> bool:
        """Nothing is left to deliver: the spool is empty (late audio waiting for a server that
        takes it counts as left)."""
        return not self.spool.ops and not self.spool.audio and (self.builder is None or not self.builder.open)

    def _next_timer(self, status_at: float) -> float:
        times = [status_at, self.session.get_timer()]
        if self._syncing is None or self._syncing.done():
            times.append(self.spool.sync_due())
        if self.builder is not None:
            due = self.builder.due()
            if due is not None:  # the pen task sends a batch as its next sample comes; this is for a pause
                times.append(due + _BATCH_GRACE_S)
        live = self.session.state is S.LIVE and self._link is not None
        if live and self._late and self.late_supported is not False and self._probe is None:
            times.append(self._late_next)
        if live and self._probe is not None and self._probe_stage == 0:
            times.append(time.monotonic() + 0.001)  # the probe's next Ping, in a ms of its own
        if live and self._sent_audio:
            times.append(self._last_marker + self.settings.audio_confirm_ms / 1000)
        return min(t for t in times if t is not None)

    def _tick(self, now: float) -> None:
        s = self.session
        timer = s.get_timer()
        if timer is not None and timer <= now:
            s.handle_timer(now)
        self._flush_ink(now)
        due = self.spool.sync_due()
        if due is not None and due <= now and (self._syncing is None or self._syncing.done()):
            self._syncing = asyncio.get_running_loop().run_in_executor(None, self.spool.sync)
            self._syncing.add_done_callback(lambda _: self._rearm())  # the next sync's timer
        self._upload_late(now)
        self._confirm_audio(now)
        self._service()

    async def _shutdown(self) -> None:
        now = time.monotonic()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.adapter is not None:
            await self.adapter.close()
        if self.audio is not None:
            await self.audio.close()
        if self.builder is not None:
            self.builder.end_open()  # kept in the spool: the next start delivers it
            self._flush_ink(now)
        if self._syncing is not None:
            with contextlib.suppress(Exception):
                await self._syncing
        self.spool.sync()
        if self.session.state not in (S.CLOSED, S.FAILED):
            self.session.close(now)
        self._service()
        link = self._link
        if link is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.drain(), 2.0)
                await asyncio.wait_for(link.ws.close(1000, "gateway stopped"), 2.0)
            link.stop()
        if self._attempt is not None:
            self._attempt.cancel()

    # --- inputs -------------------------------------------------------------------------------

    async def _pen(self) -> None:
        assert self.adapter is not None and self.builder is not None
        try:
            async for event in self.adapter.events():
                if isinstance(event, Sample | PageTurn):
                    builder = self.builder
                    due = builder.due()
                    if due is not None and event.host_s >= due:
                        # the open batch is 16 ms old: it goes before this sample, from here,
                        # with no turn of the main loop
                        self._flush_ink(time.monotonic())
                        self._service()
                        due = None
                    builder.feed(event)
                    if type(event) is Sample and event.phase in _EDGES:
                        self._flush_ink(time.monotonic())
                        self._kick()
                    elif due is None:
                        self._rearm()  # a batch opened (a pause must send it) or one went (the spool syncs)
                elif isinstance(event, Loss):
                    self.losses += 1
                    self._note(f"pen reports lost: {event.reason}")
                elif isinstance(event, DeviceGone):
                    self.builder.end_open()
                    self._flush_ink(time.monotonic())
                    self._note(f"{self.device_name}: {event.reason}; waiting for it to come back")
                    self._kick()
                elif isinstance(event, DeviceBack):
                    self.builder.pages = PageMap(event.info, None, page=self.builder.pages.page)
                    self._note(f"{event.info.name} is back")
        finally:
            self._input_ended()

    def _input_ended(self) -> None:
        self._inputs -= 1
        if self._inputs <= 0:
            self.input_done.set()
        self._kick()

    async def _mic(self) -> None:
        assert self.audio is not None and self.encoder is not None
        try:
            async for frame in self.audio.frames():
                self._audio_frame(frame.capture_s, frame.pcm, time.monotonic())
        finally:
            self._input_ended()

    def _audio_frame(self, capture_s: float, pcm: bytes, now: float) -> None:
        assert self.encoder is not None
        payload = self.encoder.encode(pcm)
        self.audio_packets += 1
        seq, self._audio_seq = self._audio_seq, (self._audio_seq + 1) & 0xFFFFFFFF
        capture_ts = self.session.device_ms(capture_s)
        try:
            packet = self.spool.add_audio(seq, capture_ts, payload, now)
        except SpoolFull as exc:
            self._note(str(exc))
            self.session.send_audio(now, seq, payload, capture_ts)  # live only: the recording may miss it
            self._kick()
            return
        if self.session.state is S.LIVE and now - capture_s <= self.settings.late_audio_s:
            self.session.send_audio(now, seq, payload, capture_ts)
            self._sent_audio.append(packet.index)
        else:
            self._late.append(packet.index)
        self._kick()

    # --- ink ----------------------------------------------------------------------------------

    def _submit(self, now: float, make: Callable[[int], m.Op]) -> m.Op | None:
        op = self.session.submit(now, make)
        if op is None:
            self._note("the outbox is full: ink is not taken")
            return None
        try:
            self.spool.add_op(op, encode(op), now)
        except SpoolFull as exc:
            self._note(f"{exc.message} (still sent, but not kept against a crash)")
        return op

    def _flush_ink(self, now: float) -> None:
        if self.builder is None:
            return
        for action in self.builder.flush(now):
            if isinstance(action, Begin):
                sid = self.rng.randrange(1, 2**32)
                self._flags = action.flags
                self._point_state = PointState()
                if self._submit(now, functools.partial(_begin, stroke=sid, action=action)) is not None:
                    self._stroke = sid
            elif isinstance(action, Points) and self._stroke is not None:
                step = self.session.config.limits.max_points_per_message
                pts = action.points
                for i in range(0, len(pts), step):
                    chunk = list(pts[i : i + step])
                    start = self._point_state.count
                    blob = encode_points(chunk, self._flags, self._point_state)
                    self._submit(now, functools.partial(_points, stroke=self._stroke, start=start,
                                                        count=len(chunk), blob=blob))
            elif isinstance(action, End) and self._stroke is not None:
                self._submit(now, functools.partial(_end, stroke=self._stroke))
                self._stroke = None
            elif isinstance(action, Page):
                if action.page >= len(self.session.replica.pages):
                    self._submit(now, functools.partial(_page_add, page=action.page))
                self._submit(now, functools.partial(_page_switch, page=action.page))

    # --- audio confirmation and late upload -----------------------------------------------------

    def _confirm_audio(self, now: float) -> None:
        """A Ping after audio sent on this link: its Pong says the server has read that audio."""
        if not self._sent_audio or now - self._last_marker < self.settings.audio_confirm_ms / 1000:
            return
        if self.session.state is not S.LIVE:
            return
        ts = self.session.device_ms(now)
        if self._markers and self._markers[-1][0] >= ts:
            return  # one marker per ms: Pongs are matched by their echo
        if self.session.ping(now):
            self._markers.append((ts, self._sent_audio))
            self._sent_audio = []
            self._last_marker = now

    def _pong(self, echo: int, now: float) -> None:
        while self._markers and self._markers[0][0] <= echo:
            _, indices = self._markers.popleft()
            for first, end in _runs(indices):
                self.spool.audio_done(first, end, now)
        if self._probe is not None and self._probe_stage and echo >= self._probe_ts:
            self._probe_stage -= 1
            if self._probe_stage == 0 and self._probe_ts_second:
                indices, self._probe = self._probe, None
                for first, end in _runs(indices):
                    self.spool.audio_done(first, end, now)
                if self.late_supported is not True:
                    self._note("the server takes late audio: uploading it for the recording")
                self.late_supported = True
            elif self._probe_stage == 0:
                self._probe_ts_second = True
                self._probe_ping(now)

    def _probe_ping(self, now: float) -> None:
        """The probe's next Ping, once its ms is not that of the last one (Pongs match by ms)."""
        ts = self.session.device_ms(now)
        if ts <= self._probe_ts or (self._markers and self._markers[-1][0] >= ts):
            return  # next tick
        if self.session.ping(now):
            self._probe_ts, self._probe_stage = ts, 1

    def _probe_failed(self) -> None:
        """Type 32 was refused (1002) or the link went: the probe's packets wait again."""
        if self._probe is not None:
            self._late = deque(sorted(set(self._probe) | set(self._late)))
        self._probe = None
        self._probe_stage = 0

    def _upload_late(self, now: float) -> None:
        if self._probe is not None and self._probe_stage == 0 and self.session.state is S.LIVE:
            self._probe_ping(now)
        if not self._late or self.late_supported is False or self.session.state is not S.LIVE:
            return
        if now < self._late_next or self._link is None:
            return
        if self._probe is not None:
            return  # the probe's answer is not in yet
        batch: list[LatePacket] = []
        indices: list[int] = []
        while self._late and len(batch) < MAX_LATE_PACKETS // 2:
            i = self._late.popleft()
            a = self.spool.audio.get(i)
            if a is not None:
                batch.append(LatePacket(a.seq, a.capture_ts, a.payload))
                indices.append(i)
        if not batch:
            return
        self._service()  # the machine's frames first: one order on the link
        self._link.put([encode_audio_late(AudioLate(tuple(batch)))])
        self._late_next = now + len(batch) / self.settings.late_packets_per_s
        if self.late_supported is None:
            self._probe, self._probe_stage, self._probe_ts_second = indices, 0, False
            self._probe_ping(now)
        else:
            self._sent_audio.extend(indices)

    def _link_lost_audio(self) -> None:
        """What was sent on the lost link and not confirmed goes again, late (the server drops
        a late packet it already has)."""
        lost = [i for _, indices in self._markers for i in indices] + self._sent_audio
        self._markers.clear()
        self._sent_audio = []
        self._probe_failed()
        if self.late_supported is False:
            self.late_supported = None  # the next server may take it
        if lost:
            self._late = deque(sorted(set(lost) | set(self._late)))

    def _rejoined(self, now: float) -> None:
        """After a Welcome: packets still young enough are played live, the rest go late."""
        young: list[int] = []
        keep: deque[int] = deque()
        for i in self._late:
            a = self.spool.audio.get(i)
            if a is None:
                continue
            age = now - (a.capture_ts / 1000 - self.session.device_epoch_s)
            (young if age <= self.settings.late_audio_s else keep).append(i)
        for i in young:
            a = self.spool.audio[i]
            self.session.send_audio(now, a.seq, a.payload, a.capture_ts)
            self._sent_audio.append(i)
        self._late = keep

    # --- the link -----------------------------------------------------------------------------

    def _kick(self) -> None:
        self._service()
        self._rearm()

    def _arm(self, at: float, now: float) -> None:
        """The main loop wakes at ``at`` (monotonic seconds)."""
        if self._wake_handle is not None:
            if self._wake_at == at:
                return  # armed for it, and not fired yet
            self._wake_handle.cancel()
        self._wake_at = at
        self._wake_handle = asyncio.get_running_loop().call_later(max(0.0, at - now), self._fired)

    def _fired(self) -> None:
        # a timer may fire a hair early (the loop's clock is coarser): the loop then arms a new one
        self._wake_handle = None
        self._wake.set()

    def _rearm(self) -> None:
        """Something may have changed the main loop's next timer: move its wake, or wake it now
        if something is due (or the run is over)."""
        if not self._waiting:
            return  # it is running, and computes its timer before it sleeps
        now = time.monotonic()
        timer = self._next_timer(self._next_status)
        if (timer <= now or self.session.state in (S.CLOSED, S.FAILED)
                or (self._exit_when_done and self.input_done.is_set() and self.drained)):
            self._wake.set()
        else:
            self._arm(timer, now)

    def _service(self) -> None:
        s = self.session
        frames = s.data_to_send()
        if frames and self._link is not None:
            self._link.put(frames)
        request = s.take_close_request()
        if request is not None and self._link is not None:
            link, self._link = self._link, None
            self._link_lost_audio()
            task = asyncio.create_task(link.close(*request))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if s.state is S.CONNECTING and self._link is None and (self._attempt is None or self._attempt.done()):
            self._attempt = asyncio.create_task(self._open())
        now = time.monotonic()
        for event in s.events():
            if isinstance(event, ev.Acked):
                self.spool.ack(event.cseq, now)
            elif isinstance(event, ev.Joined):
                self.joined += 1
                self.spool.ack(event.welcome.acked_cseq, now)
                self._rejoined(now)
                frames = s.data_to_send()
                if frames and self._link is not None:
                    self._link.put(frames)
            elif isinstance(event, ev.ErrorReceived):
                if event.error.code == ErrorCode.UNKNOWN_TYPE and self._probe is not None:
                    self.late_supported = False
                    self._probe_failed()
                    self._note("this server does not take late audio yet: it waits in the spool")
                else:
                    self._note(f"server error {int(event.error.code)}: {event.error.message}")
            elif isinstance(event, ev.OpRefused):
                self._note(f"op refused: {int(event.error.code)} {event.error.message}")
            elif isinstance(event, ev.Refused):
                self._note(refusal_text(event.error))
                if event.final:
                    self.fatal = ServerError(refusal_text(event.error), refusal_fix(event.error))
            elif isinstance(event, ev.Closed) and event.state is S.FAILED and self.fatal is None:
                self.fatal = ServerError(f"the server ended this connection ({event.code} {event.reason})",
                                         "the session was opened elsewhere or the token is no longer valid: pair again")
            elif isinstance(event, ev.OutboxFull):
                self._note("the outbox is full: ink is not taken")

    async def _open(self) -> None:
        try:  # where the server last said the room lives (Error 2010), else the paired URL
            ws = await websockets.connect(self.session.redirect or self.url, max_size=None, compression=None,
                                          open_timeout=None, ping_interval=None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, reset, DNS, TLS, an HTTP status: network failures all
            if self.session.state is S.CONNECTING:
                self._note(unreachable_text(self.url, exc))
                self.session.connection_failed(time.monotonic(), f"{type(exc).__name__}: {exc}")
                self._kick()
            return
        if self.session.state is not S.CONNECTING:
            await ws.close()
            return
        link = self._link = _Link(ws)
        link.reader = asyncio.create_task(self._read(link))
        link.writer = asyncio.create_task(link.write())
        self.session.connection_made(time.monotonic())
        self._kick()

    async def _read(self, link: _Link) -> None:
        ws = link.ws
        try:
            async for frame in ws:
                if link is not self._link:
                    break
                if not isinstance(frame, bytes):
                    continue
                now = time.monotonic()
                if frame[:2] == _PONG_HEAD:
                    with contextlib.suppress(Exception):
                        echo = msgpack.unpackb(frame)[1]
                        if type(echo) is int:
                            self._pong(echo, now)
                self.session.receive_frame(frame, now)
                self._kick()
        except websockets.ConnectionClosed:
            pass
        finally:
            if link is self._link:
                self._link = None
                self._link_lost_audio()
                code = ws.close_code if ws.close_code not in (None, 1006) else None
                self.session.connection_lost(time.monotonic(), code, ws.close_reason or "")
                link.stop()
            self._kick()

    # --- status ---------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        if not self.messages or self.messages[-1] != text:
            self.messages.append(text)
            log.info("%s", text)

    def status(self) -> Status:
        s = self.session
        rtt = s.clock_sync.rtt_ms
        late = "none" if not self._late else (
            "waiting for a server that takes late audio" if self.late_supported is False else "uploading")
        info = self.adapter.info if self.adapter else None
        return Status(s.state.name.lower(), rtt, len(self.spool.ops), len(self.spool.audio), self.spool.live_bytes,
                      self.spool.nearly_full, self.device_name, info.nominal_rate_hz if info else 0.0, late,
                      self.messages[-1] if self.messages else "")

    def _status(self) -> None:
        if self.on_status is not None:
            self.on_status(self.status())


def _restore_entry(session: ClientSession, op: m.Op, frame: bytes) -> None:
    """An op from the spool into the machine's outbox as possibly sent (until ``Outbox`` has a
    ``restore`` of its own: requested of wire/session's owner)."""
    outbox = session.outbox
    outbox._entries.append(Entry(op, frame, ever_sent=True))
    outbox.bytes += len(frame)


def _begin(cseq: int, *, stroke: int, action: Begin) -> m.Op:
    return m.StrokeBegin(cseq, stroke, action.page, action.tool, INK_COLOR, INK_WIDTH, action.flags, action.device_t0)


def _points(cseq: int, *, stroke: int, start: int, count: int, blob: bytes) -> m.Op:
    return m.StrokePoints(cseq, stroke, start, count, blob)


def _end(cseq: int, *, stroke: int) -> m.Op:
    return m.StrokeEnd(cseq, stroke)


def _page_add(cseq: int, *, page: int) -> m.Op:
    return m.PageAdd(cseq, page)


def _page_switch(cseq: int, *, page: int) -> m.Op:
    return m.PageSwitch(cseq, page)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def unreachable_text(url: str, exc: BaseException) -> str:
    return f"the server at {url} is unreachable ({type(exc).__name__}: {exc}); retrying"


def refusal_text(error: m.Error) -> str:
    return f"the server refused the join: {int(error.code)} {error.message}"


def refusal_fix(error: m.Error) -> str:
    if int(error.code) in (2001, 2002, 2003):
        return "the pairing token is wrong or has expired: press 'Use my writing pad' again and pair with the new code"
    if int(error.code) == 2007:
        return "the session has ended: pair again from the next session's page"
    return "check --server and pair again"


class _Link:
    """One WebSocket and the frames waiting for it, in order: written at once while the
    connection is open and its transport takes them (the common case: no task wakes for it),
    else queued for one writer task, which waits for the transport."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.out: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self._sending = False  # the writer task is in a send

    def put(self, frames: list[bytes]) -> None:
        ws = self.ws
        if (not self.out and not self._sending and not ws.paused and ws.send_in_progress is None
                and ws.protocol.state is State.OPEN):
            # what ``ws.send`` does for each frame, without its await (the transport is not
            # paused, so there is nothing to wait for)
            sent = 0
            try:
                for frame in frames:
                    ws.protocol.send_binary(frame)
                    sent += 1
                ws.send_data()
                return
            except Exception:  # the connection is failing: the writer task meets it and ends
                frames = frames[sent:]
        self.out.extend(frames)
        self.ready.set()

    async def drain(self) -> None:
        while self.out:
            self._sending = True
            try:
                await self.ws.send(self.out.popleft())
            finally:
                self._sending = False

    async def write(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            while True:
                await self.ready.wait()
                self.ready.clear()
                await self.drain()

    async def close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code, reason), 2.0)
        except Exception:  # a dead link: cut it
            self.ws.transport.abort()
        self.stop()

    def stop(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
