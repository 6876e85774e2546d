"""The recording benchmark's load: realistic one-on-one sessions, ink and voice both ways.

One process (pinned to a core, uvloop, cyclic GC off) plays tutor and student of every room over
the lean ``bench.wsload`` client. Per room:

- the tutor writes about half the time: a pre-encoded 120 Hz stroke (0.8-1.7 s) sent in 16 ms
  batches (``bench.inkscript``), then a pause drawn so that pauses last as long as strokes on
  average; StrokeBegin and StrokeEnd around each stroke, as a pen app sends them;
- both speak in talk spurts, one 20 ms Opus packet (``Audio [30, seq, capture_ts, payload]``,
  ~80 bytes, from ``bench.audio_peers.opus_stream``) every 20 ms while talking: the tutor about
  60 % of the time (spurts of 3 s on average, pauses of 2 s), the student about 30 % (1.5 s and
  3.5 s), as two-state Markov chains per 20 ms tick, so the pauses vary;
- both answer the server's Pings (so the server measures their clock offsets, as it would for a
  real client) and count what they receive by message type without decoding it.

Rooms are spread over the 1 ms slots of the 16 ms ink period and the 20 ms audio period, so they
do not all send in the same instant. Driven over a pipe by ``bench.archive``: ``Phase`` (connect),
``Go`` (run from ``start`` to ``stop``, count from ``t0`` to ``t1``), answered by a ``Tally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgpack
import uvloop

from sessionserver.auth import TokenSigner
from wire import Role
from wire import messages as m

from .audio_peers import opus_stream
from .audio_speaker import join
from .inkscript import BATCH_MS, StrokeScript, library
from .ipc import recv_command
from .wsload import WsClient, connect

AUDIO_MS = 20
TUTOR_TALK_S, TUTOR_PAUSE_S = 3.0, 2.0  # ~60 % talking
STUDENT_TALK_S, STUDENT_PAUSE_S = 1.5, 3.5  # ~30 % talking
DRAIN_S = 0.5
_INK, _BEGIN, _END = int(m.MsgType.STROKE_POINTS), int(m.MsgType.STROKE_BEGIN), int(m.MsgType.STROKE_END)
_AUDIO, _PING, _PONG, _ERROR = int(m.MsgType.AUDIO), int(m.MsgType.PING), int(m.MsgType.PONG), int(m.MsgType.ERROR)
_pack = msgpack.Packer(use_bin_type=True).pack
_unpack = msgpack.unpackb


@dataclass(frozen=True, slots=True)
class Phase:
    port: int
    rooms: int
    session_prefix: str  # new for every phase: every phase records new sessions
    secret: str
    seed: int = 2024


@dataclass(frozen=True, slots=True)
class Go:
    start: float  # time.monotonic() of the first tick
    t0: float  # the counted window
    t1: float
    stop: float  # the last tick (the load runs from start to stop)


@dataclass(slots=True)
class Tally:
    """What the load did in the counted window (by send or receive time)."""

    frames_sent: int = 0
    ops_sent: int = 0  # ink ops (StrokeBegin, StrokePoints, StrokeEnd): each comes back as one Event
    bytes_sent: int = 0  # WebSocket header + payload
    ink_batches: int = 0
    ink_points: int = 0
    strokes: int = 0
    audio_packets: list[int] = field(default_factory=lambda: [0, 0])  # tutor, student
    pongs: int = 0
    received: dict[int, int] = field(default_factory=dict)  # message type -> frames received
    tick_lag_max_ms: float = 0.0
    tick_lag_p99_ms: float = 0.0
    errors: list[str] = field(default_factory=list)
    server_closes: list[int] = field(default_factory=list)


class Speaker:
    """One participant's voice: a talk-spurt chain stepped every 20 ms."""

    __slots__ = ("client", "k", "p_start", "p_stop", "seq", "talking")

    def __init__(self, talk_s: float, pause_s: float, rng: random.Random, offset: int) -> None:
        ticks_per_s = 1000 / AUDIO_MS
        self.p_stop = 1 / (talk_s * ticks_per_s)
        self.p_start = 1 / (pause_s * ticks_per_s)
        self.talking = rng.random() < talk_s / (talk_s + pause_s)
        self.seq = 0
        self.k = offset  # position in the pre-encoded stream
        self.client: WsClient | None = None


class Room:
    __slots__ = ("batch", "cseq", "index", "load", "next_script", "pause", "rng", "script", "speakers",
                 "start_point", "stroke", "student", "tutor")

    def __init__(self, index: int, load: Load, seed: int) -> None:
        self.index = index
        self.load = load
        self.rng = random.Random(seed * 100_003 + index)
        self.tutor: WsClient | None = None
        self.student: WsClient | None = None
        self.cseq = 0
        self.stroke = 0
        self.next_script = index * 7
        self.script: StrokeScript | None = None
        self.batch = 0
        self.start_point = 0
        self.pause = self.rng.randrange(0, 150)  # ink ticks before the first stroke
        self.speakers = (Speaker(TUTOR_TALK_S, TUTOR_PAUSE_S, self.rng, index * 31),
                         Speaker(STUDENT_TALK_S, STUDENT_PAUSE_S, self.rng, index * 31 + 125))

    def ink_tick(self, counting: bool) -> None:
        """One 16 ms tick of the tutor's pen: a batch while writing, nothing while pausing."""
        if self.pause > 0:
            self.pause -= 1
            return
        load = self.load
        tally = load.tally
        script = self.script
        if script is None:
            script = self.script = load.scripts[self.next_script % len(load.scripts)]
            self.next_script += 1
            self.stroke += 1
            self.batch = self.start_point = 0
            self.cseq += 1
            self._send(_pack([_BEGIN, self.cseq, self.stroke, 0, 0, 0x202020FF, 40, script.flags,
                              int(time.time() * 1000)]), counting)
            if counting:
                tally.strokes += 1
        count, blob = script.batches[self.batch]
        self.batch += 1
        self.cseq += 1
        self._send(_pack([_INK, self.cseq, self.stroke, self.start_point, count, blob]), counting)
        self.start_point += count
        if counting:
            tally.ink_batches += 1
            tally.ink_points += count
        if self.batch == len(script.batches):
            self.cseq += 1
            self._send(_pack([_END, self.cseq, self.stroke]), counting)
            self.script = None
            # pauses as long as strokes on average (1.3 s, 80 ticks): the pen writes half the time
            self.pause = self.rng.randrange(10, 150)

    def _send(self, payload: bytes, counting: bool) -> None:
        assert self.tutor is not None
        wire = self.tutor.send(payload)
        if counting:
            self.load.tally.frames_sent += 1
            self.load.tally.ops_sent += 1
            self.load.tally.bytes_sent += wire

    def audio_tick(self, counting: bool) -> None:
        """One 20 ms tick of both microphones."""
        load = self.load
        stream = load.stream
        rng = self.rng
        capture_ts = 0
        for who, speaker in enumerate(self.speakers):
            if speaker.talking:
                if rng.random() < speaker.p_stop:
                    speaker.talking = False
            elif rng.random() < speaker.p_start:
                speaker.talking = True
            if not speaker.talking or speaker.client is None:
                continue
            if not capture_ts:
                capture_ts = int(time.time() * 1000)
            speaker.seq += 1
            speaker.k += 1
            wire = speaker.client.send(_pack([_AUDIO, speaker.seq, capture_ts, stream[speaker.k % len(stream)]]))
            if counting:
                load.tally.audio_packets[who] += 1
                load.tally.frames_sent += 1
                load.tally.bytes_sent += wire

    def receiver(self, who: int) -> Any:
        load = self.load
        received = load.received

        def on_message(payload: bytes, now: float) -> None:
            kind = payload[1] if 0x90 <= payload[0] <= 0x9F else -1  # fixarray, then a fixint type
            received[kind] += 1
            if kind == _PING:
                client = self.speakers[who].client
                if client is not None:
                    client.send(_pack([_PONG, _unpack(payload)[1], int(time.time() * 1000)]))
                    if load.go is not None and load.go.t0 <= now < load.go.t1:
                        load.tally.pongs += 1
            elif kind == _ERROR:
                load.tally.errors.append(f"room {self.index} participant {who}: {_unpack(payload)}")

        return on_message


class Load:
    """Every room of one phase and the one timer that paces them: every 1 ms slot ticks the ink
    of the rooms in that slot of the 16 ms period and the audio of those in that slot of 20 ms."""

    def __init__(self, phase: Phase, scripts: list[StrokeScript], stream: list[bytes]) -> None:
        self.scripts = scripts
        self.stream = stream
        self.tally = Tally()
        self.received = [0] * 256
        self.rooms = [Room(i, self, phase.seed) for i in range(phase.rooms)]
        self.ink_slots: list[list[Room]] = [[] for _ in range(BATCH_MS)]
        self.audio_slots: list[list[Room]] = [[] for _ in range(AUDIO_MS)]
        for room in self.rooms:
            self.ink_slots[room.index % BATCH_MS].append(room)
            self.audio_slots[(room.index * 7) % AUDIO_MS].append(room)
        self.go: Go | None = None
        self.snaps: list[list[int]] = [[0] * 256, [0] * 256]  # ``received`` at t0 and at t1
        self.lag: list[float] = []
        self.ms = 0
        self.loop = asyncio.get_running_loop()
        self.handle: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = self.loop.create_future()

    def run(self, go: Go) -> None:
        self.go = go
        self.handle = self.loop.call_later(max(0.0, go.start - time.monotonic()), self._tick)
        for i, t in enumerate((go.t0, go.t1)):
            self.loop.call_later(max(0.0, t - time.monotonic()), self._snap, i)

    def _snap(self, i: int) -> None:
        self.snaps[i] = list(self.received)

    def _tick(self) -> None:
        go = self.go
        assert go is not None
        now = time.monotonic()
        due = go.start + self.ms / 1000
        counting = go.t0 <= now < go.t1
        if counting:
            self.lag.append(max(0.0, now - due))
        while due <= now:
            if due >= go.stop:
                self.handle = None
                if not self.done.done():
                    self.done.set_result(None)
                return
            for room in self.ink_slots[self.ms % BATCH_MS]:
                room.ink_tick(counting)
            for room in self.audio_slots[self.ms % AUDIO_MS]:
                room.audio_tick(counting)
            self.ms += 1
            due = go.start + self.ms / 1000
        self.handle = self.loop.call_at(self.loop.time() + (due - time.monotonic()), self._tick)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


async def run_phase(conn: Connection, phase: Phase, scripts: list[StrokeScript], stream: list[bytes]) -> None:
    load = Load(phase, scripts, stream)
    signer = TokenSigner(phase.secret)
    limit = asyncio.Semaphore(32)
    expires = int(time.time()) + 3_600

    async def open_one(room: Room) -> None:
        session = f"{phase.session_prefix}-{room.index}"
        async with limit:
            for i, role in enumerate((Role.TUTOR, Role.STUDENT)):
                client = await connect("127.0.0.1", phase.port, f"/ws/session/{session}")
                await join(client, signer.mint(session, f"{role.label[0]}{room.index}", role, expires), role,
                           load.tally.errors)
                client.on_message = room.receiver(i)
                room.speakers[i].client = client
                if role is Role.TUTOR:
                    room.tutor = client
                else:
                    room.student = client

    try:
        await asyncio.gather(*(open_one(r) for r in load.rooms))
        conn.send(("connected", len(load.rooms)))
        go: Go = await recv_command(conn)
        load.run(go)
        await load.done
        await asyncio.sleep(max(0.0, go.stop + DRAIN_S - time.monotonic()))
        tally = load.tally
        tally.received = {k: b - a for k, (a, b) in enumerate(zip(load.snaps[0], load.snaps[1], strict=True))
                          if b - a}
        if load.lag:
            ordered = sorted(load.lag)
            tally.tick_lag_max_ms = 1000 * ordered[-1]
            tally.tick_lag_p99_ms = 1000 * ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
        for room in load.rooms:
            for client in (room.tutor, room.student):
                if client is not None and client.close_code is not None:
                    tally.server_closes.append(client.close_code)
        conn.send(("tally", tally))
    except Exception as exc:  # report it to the orchestrator rather than hang it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        load.stop()
        for room in load.rooms:
            for client in (room.tutor, room.student):
                if client is not None:
                    client.close()
        await asyncio.sleep(0.1)  # let the close frames go out
        with contextlib.suppress(Exception):
            conn.send(("closed", len(load.rooms)))


async def _serve(conn: Connection) -> None:
    scripts = library(64, seed=2024)
    stream = opus_stream()
    conn.send(("ready", os.getpid()))
    while True:
        command = await recv_command(conn)
        if not isinstance(command, Phase):
            return
        await run_phase(conn, command, scripts, stream)
        gc.collect()


def main(conn: Connection, cpu: int | None) -> None:
    """Process entry point: pinned to ``cpu``, on uvloop, with the cyclic GC off."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    gc.disable()
    uvloop.run(_serve(conn))
