"""The ink load generator: a process that plays tutors and students of one-on-one rooms.

The orchestrator (``bench.ink_relay``) starts one or more of these and drives each through a
pipe: ``Phase`` (connect the rooms), ``Go`` (start the pen at ``start``, measure from ``t0`` to
``t1``), then it answers with a ``Tally`` and drops its connections. Tutor and student of a room
live in the same process, so one room's map of cseq -> send time gives the one-way latency on one
clock. Latency is taken from just before the tutor's write to the moment the student's bytes are
read, so it includes the generator's own queueing: keep its CPU well below a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgpack
import uvloop

from sessionserver.auth import TokenSigner
from wire import PROTOCOL_VERSION, Role, encode
from wire import messages as m

from .inkscript import BATCH_MS, StrokeScript, library
from .ipc import recv_command
from .wsload import WsClient, connect

TUTORWIRE, BASELINE = "tutorwire", "baseline"
NODE_WS, PICOWS = "node_ws", "picows"  # the other relay peers: each forwards frames unparsed, as BASELINE
SLOTS = 16  # rooms are spread over 16 send slots of the 16 ms period
DRAIN_S = 0.5  # after the window, how long to wait for the last deliveries before reporting
_INK, _BEGIN, _END = int(m.MsgType.STROKE_POINTS), int(m.MsgType.STROKE_BEGIN), int(m.MsgType.STROKE_END)
_EVENT, _PING, _ACK, _ERROR = int(m.MsgType.EVENT), int(m.MsgType.PING), int(m.MsgType.ACK), int(m.MsgType.ERROR)
_pack = msgpack.Packer(use_bin_type=True).pack
_unpack = msgpack.unpackb


@dataclass(frozen=True, slots=True)
class Phase:
    kind: str  # TUTORWIRE, or a relay peer (BASELINE, NODE_WS, PICOWS)
    port: int
    rooms: tuple[int, ...]  # the global indices of this process's rooms
    session_prefix: str  # session ids must be new for each phase
    secret: str
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Go:
    start: float  # time.monotonic() of the first tick
    t0: float  # the measured window
    t1: float


@dataclass(slots=True)
class Tally:
    """What one generator process saw in the window. Sends count by send time, receives by
    receive time."""

    t0: float = float("inf")
    t1: float = float("inf")
    deliveries: int = 0  # ink batches (StrokePoints) received by students
    latencies: array[float] = field(default_factory=lambda: array("d"))  # of those, seconds
    stroke_deliveries: int = 0  # StrokeBegin / StrokeEnd received by students
    unmatched: int = 0  # ink received that was never sent (or twice)
    ink_sent: int = 0
    ink_wire_bytes: int = 0  # WebSocket header (with mask key) + payload
    ink_payload_bytes: int = 0
    points_sent: int = 0
    frames_sent: int = 0  # everything the tutors and students sent, ink or not
    undelivered: int = 0  # ink sent in the window still unanswered at the report
    tick_lag: array[float] = field(default_factory=lambda: array("d"))  # pacer lateness, seconds
    ack_latencies: array[float] = field(default_factory=lambda: array("d"))  # op sent -> its Ack read, s
    errors: list[str] = field(default_factory=list)
    server_closes: list[int] = field(default_factory=list)


class InkRoom:
    """One session: a tutor streaming 120 Hz ink to a student, one batch per tick."""

    __slots__ = ("batch", "cseq", "index", "kind", "next_script", "script", "scripts", "sent", "start_point",
                 "stroke", "student", "tally", "tutor", "unacked")

    def __init__(self, index: int, kind: str, scripts: list[StrokeScript], tally: Tally) -> None:
        self.index = index
        self.kind = kind
        self.scripts = scripts
        self.tally = tally
        self.sent: dict[int, float] = {}  # cseq -> send time of ops not yet seen by the student
        self.unacked: deque[tuple[int, float]] = deque()  # (cseq, send time) of ops not yet acknowledged
        self.cseq = 0
        self.stroke = 0
        self.next_script = index * 7  # rooms do not write in lockstep
        self.script: StrokeScript | None = None
        self.batch = 0
        self.start_point = 0
        self.tutor: WsClient | None = None
        self.student: WsClient | None = None

    # --- sending -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Send this tick's ink batch, ending the stroke and starting the next when it is done."""
        script = self.script
        if script is None or self.batch == len(script.batches):
            if script is not None:
                self._send_op(_pack([_END, self.cseq + 1, self.stroke]))
            script = self.script = self.scripts[self.next_script % len(self.scripts)]
            self.next_script += 1
            self.stroke += 1
            self.batch = self.start_point = 0
            self._send_op(_pack([_BEGIN, self.cseq + 1, self.stroke, 0, 0, 0x202020FF, 40, script.flags,
                                 int(time.time() * 1000)]))
        count, blob = script.batches[self.batch]
        self.batch += 1
        self.cseq += 1
        payload = _pack([_INK, self.cseq, self.stroke, self.start_point, count, blob])
        self.start_point += count
        assert self.tutor is not None
        now = time.monotonic()
        self.sent[self.cseq] = now
        if self.kind == TUTORWIRE:  # the relay peers send no Acks
            self.unacked.append((self.cseq, now))
        wire = self.tutor.send(payload)
        tally = self.tally
        if tally.t0 <= now < tally.t1:
            tally.ink_sent += 1
            tally.ink_wire_bytes += wire
            tally.ink_payload_bytes += len(payload)
            tally.points_sent += count
            tally.frames_sent += 1

    def _send_op(self, payload: bytes) -> None:
        assert self.tutor is not None
        self.cseq += 1
        now = time.monotonic()
        self.sent[self.cseq] = now
        if self.kind == TUTORWIRE:  # the relay peers send no Acks
            self.unacked.append((self.cseq, now))
        self.tutor.send(payload)
        if self.tally.t0 <= now < self.tally.t1:
            self.tally.frames_sent += 1

    def _pong(self, client: WsClient | None, ping: list[Any], now: float) -> None:
        if client is not None:
            client.send(_pack([int(m.MsgType.PONG), ping[1], int(time.time() * 1000)]))
            if self.tally.t0 <= now < self.tally.t1:
                self.tally.frames_sent += 1

    # --- receiving -----------------------------------------------------------------------------

    def on_student_event(self, payload: bytes, now: float) -> None:
        """tutorwire: the student gets ``Event [4, seq, session_ms, pid, cseq, body]``."""
        items = _unpack(payload)
        kind = items[0]
        if kind == _EVENT:
            self._delivered(items[5][0], items[4], now)
        elif kind == _PING:
            self._pong(self.student, items, now)
        elif kind == _ERROR:
            self.tally.errors.append(f"room {self.index} student: {items}")

    def on_student_relayed(self, payload: bytes, now: float) -> None:
        """baseline: the student gets the tutor's own frames, ``[type, cseq, ...]``."""
        items = _unpack(payload)
        self._delivered(items[0], items[1], now)

    def _delivered(self, kind: int, cseq: int, now: float) -> None:
        sent_at = self.sent.pop(cseq, None) if cseq else None
        tally = self.tally
        if kind == _INK:
            if sent_at is None:
                tally.unmatched += 1
            elif tally.t0 <= now < tally.t1:
                tally.deliveries += 1
                tally.latencies.append(now - sent_at)
        elif (kind == _BEGIN or kind == _END) and tally.t0 <= now < tally.t1:
            tally.stroke_deliveries += 1

    def on_tutor_frame(self, payload: bytes, now: float) -> None:
        """tutorwire: the tutor gets an Ack per op, the server's Pings and the student's presence."""
        if len(payload) > 1 and payload[1] == _ACK:  # [22, cseq, seq]: cumulative, every op up to cseq
            acked = _unpack(payload)[1]
            unacked, tally = self.unacked, self.tally
            while unacked and unacked[0][0] <= acked:
                sent_at = unacked.popleft()[1]
                if tally.t0 <= now < tally.t1:
                    tally.ack_latencies.append(now - sent_at)
            return
        items = _unpack(payload)
        if items[0] == _PING:
            self._pong(self.tutor, items, now)
        elif items[0] == _ERROR:
            self.tally.errors.append(f"room {self.index} tutor: {items}")


class Pacer:
    """One timer for all rooms of the process: slot ``k`` of each 16 ms period ticks its rooms."""

    def __init__(self, rooms: list[InkRoom], start: float, tally: Tally) -> None:
        self.slots: list[list[InkRoom]] = [[] for _ in range(SLOTS)]
        for room in rooms:
            self.slots[room.index % SLOTS].append(room)
        self.slot_s = BATCH_MS / 1000 / SLOTS
        self.start = start
        self.k = 0
        self.tally = tally
        self.loop = asyncio.get_running_loop()
        self.handle: asyncio.TimerHandle | None = self.loop.call_later(max(0.0, start - time.monotonic()),
                                                                       self._run)

    def _run(self) -> None:
        now = time.monotonic()
        due = self.start + self.k * self.slot_s
        if self.tally.t0 <= now < self.tally.t1:
            self.tally.tick_lag.append(max(0.0, now - due))
        while due <= now:
            for room in self.slots[self.k % SLOTS]:
                room.tick()
            self.k += 1
            due = self.start + self.k * self.slot_s
        self.handle = self.loop.call_later(max(0.0, due - time.monotonic()), self._run)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


# --- one phase -----------------------------------------------------------------------------


async def _join(client: WsClient, token: str, role: Role, then: Any) -> None:
    """Send the Join and wait for the Welcome; later frames go to ``then``."""
    welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def first(payload: bytes, now: float) -> None:
        items = _unpack(payload)
        if items[0] == int(m.MsgType.WELCOME):
            client.on_message = then
            welcomed.set_result(None)
        elif not welcomed.done():
            welcomed.set_exception(ConnectionError(f"join refused: {items}"))

    client.on_message = first
    client.send(encode(m.Join(PROTOCOL_VERSION, token, role, 0, 0)))
    await asyncio.wait_for(welcomed, 30)


async def _open(room: InkRoom, phase: Phase, signer: TokenSigner | None) -> None:
    session = f"{phase.session_prefix}-{room.index}"
    if phase.kind == TUTORWIRE:
        assert signer is not None
        path = f"/ws/session/{session}"
        expires = int(time.time()) + 3_600
        room.tutor = await connect(phase.host, phase.port, path)
        await _join(room.tutor, signer.mint(session, f"t{room.index}", Role.TUTOR, expires),
                    Role.TUTOR, room.on_tutor_frame)
        room.student = await connect(phase.host, phase.port, path)
        await _join(room.student, signer.mint(session, f"s{room.index}", Role.STUDENT, expires),
                    Role.STUDENT, room.on_student_event)
    else:
        path = f"/relay/{session}"
        room.tutor = await connect(phase.host, phase.port, path)
        room.student = await connect(phase.host, phase.port, path)
        room.student.on_message = room.on_student_relayed




async def run_phase(conn: Connection, phase: Phase, scripts: list[StrokeScript]) -> None:
    tally = Tally()
    rooms = [InkRoom(i, phase.kind, scripts, tally) for i in phase.rooms]
    signer = TokenSigner(phase.secret) if phase.kind == TUTORWIRE else None
    limit = asyncio.Semaphore(32)

    async def open_one(room: InkRoom) -> None:
        async with limit:
            await _open(room, phase, signer)

    pacer: Pacer | None = None
    try:
        await asyncio.gather(*(open_one(r) for r in rooms))
        conn.send(("connected", len(rooms)))
        go: Go = await recv_command(conn)
        tally.t0, tally.t1 = go.t0, go.t1
        pacer = Pacer(rooms, go.start, tally)
        await asyncio.sleep(max(0.0, go.t1 + DRAIN_S - time.monotonic()))
        pacer.stop()
        for room in rooms:
            tally.undelivered += sum(1 for t in room.sent.values() if go.t0 <= t < go.t1)
            for client in (room.tutor, room.student):
                if client is not None and client.close_code is not None:
                    tally.server_closes.append(client.close_code)
        conn.send(("tally", tally))
    except Exception as exc:  # report it to the orchestrator rather than hang it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        if pacer is not None:
            pacer.stop()
        for room in rooms:
            for client in (room.tutor, room.student):
                if client is not None:
                    client.close()
        await asyncio.sleep(0.1)  # let the close frames go out before the server is stopped
        with contextlib.suppress(Exception):
            conn.send(("closed", len(rooms)))


async def _serve(conn: Connection) -> None:
    scripts = library(64, seed=2024)
    conn.send(("ready", os.getpid()))
    while True:
        command = await recv_command(conn)
        if not isinstance(command, Phase):
            return
        await run_phase(conn, command, scripts)


def main(conn: Connection, cpu: int | None) -> None:
    """Process entry point: pinned to ``cpu``, on uvloop, with the cyclic GC off (nothing here
    makes cycles that matter over a run, and its passes would show up as latency)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    gc.disable()
    uvloop.run(_serve(conn))
