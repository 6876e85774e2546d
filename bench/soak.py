"""A three-hour session, compressed: a one-on-one session and a class of V viewers through the
ink and voice of ``--hours`` of continuous writing and talking, through the real server
(``tutorwire serve``, recording on, default limits), showing that memory and latency stay flat
and that the recording is complete.

``python -m bench.soak [--hours 3] [--speed 12] [--viewers 100] [--procs 2]``

How time is compressed (``--speed`` S): frames keep their real-time pace (an ink batch every
16 ms, a 20 ms Opus packet every 20 ms), so the server does per second what it does for real
clients, while each ink batch carries S batches' worth of a 240 Hz pen (4 S points) and strokes
come S times as often. So the rooms' state (strokes, pages, ink bytes, the op log) and the
recordings' ink reach what three hours leave behind in 3 h / S of wall time. Audio cannot be
compressed without lying about time (the recording places packets by their capture clock), so
it runs at real pace: S times less talk than writing, of the same shape.

- one-on-one: the tutor writes all the time; tutor and student talk in turns (10 s each), and
  each answers the server's pings, as clients do. The student's arrival times give the latency.
- class: the presenter writes and talks all the time; V viewers (minimal WebSocket clients in
  ``--procs`` processes) note when each batch arrives; the send times are in shared memory
  (Linux's monotonic clock is the same in every process).
- every equivalent minute: the server's RSS and CPU; latency is kept per equivalent minute as a
  histogram of 0.25 ms bins.

Figures: ``rss_growth_mb`` (RSS at the end minus RSS after the first 10 equivalent minutes,
when the allocator has warmed up). Part of that growth is by design: a room keeps its pages'
strokes for late joiners and snapshots (bounded by ``max_room_ink_bytes``), so the same ops are
replayed into ``Room`` objects in this process under ``tracemalloc`` (``room_state_mb``) and
``rss_growth_beyond_rooms_mb`` is what the server grew besides (``room_ink_mb``: the ink blobs'
own bytes, from the recordings). ``p99_ms_first_10_min`` and ``p99_ms_last_10_min`` (ink
batches, one-on-one and class together; each room's own in ``one_on_one`` and ``class``), the
curve per 10 equivalent minutes and its worst window; ``recording_complete`` (after the server
stops, both recordings are ``complete`` and hold every point, stroke and audio packet sent).
``flat`` is true when RSS grew less than ``RSS_GROWTH_BOUND_MB``, less than
``BEYOND_ROOMS_BOUND_MB`` beyond the rooms' state, and the last 10 minutes' p99 is within
``P99_FLAT_FACTOR`` of the first's (plus 2 ms for timer noise). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import secrets
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack

from bench.ipc import recv_command
from bench.servers import ServerProcess, free_port, process_cpu_s, tutorwire_server
from bench.wsload import WsClient
from sessionserver.auth import TokenSigner
from wire import HAS_PRESSURE, PROTOCOL_VERSION, Point, PointState, Role, encode, encode_points
from wire import messages as m

BATCH_S = 0.016  # an ink batch every 16 ms
AUDIO_S = 0.020  # a 20 ms Opus packet every 20 ms
PEN_HZ = 240
STROKE_POINTS = 240  # one second of pen a stroke
STROKES_PER_PAGE = 600  # a new page every ten minutes of writing
TURN_S = 10.0  # tutor and student talk in turns of this long
OPUS = b"\xfcsoak-audio"  # a 20 ms Opus packet (TOC config 31, code 0), told apart from the recording's silence fill
BIN_MS = 0.25
BINS = 8_000  # 0..2 s; the last bin holds everything slower
RSS_GROWTH_BOUND_MB = 96.0  # after the first 10 minutes, the rooms' own state included
BEYOND_ROOMS_BOUND_MB = 32.0  # the same less what the rooms hold by design (room_state_mb)
P99_FLAT_FACTOR = 1.5
ONE_ROOM, CLASS_ROOM = "soak-one", "class-soak"
SERVER_CPU, CLIENT_CPU = 0, 1


# --- what the writers send ------------------------------------------------------------------------


def strokes(count: int, points_per_batch: int, seed: int = 23) -> list[list[tuple[int, bytes]]]:
    """``count`` pre-encoded strokes of ``STROKE_POINTS`` points of a 240 Hz pen, each cut into
    batches of ``points_per_batch`` (count, blob); a batch's blob continues the one before."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        x, y = rng.uniform(5_000, 60_000), rng.uniform(5_000, 60_000)
        vx, vy, p = rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(300, 1_500)
        pts = []
        for i in range(STROKE_POINTS):
            vx, vy = vx + rng.uniform(-3, 3), vy + rng.uniform(-3, 3)
            x, y = min(max(x + vx, 0), 65_535), min(max(y + vy, 0), 65_535)
            p = min(max(p + rng.uniform(-6, 6), 1), 4_095)
            pts.append(Point(int(x), int(y), round(i * 1_000 / PEN_HZ), int(p)))
        state = PointState()
        out.append([(len(pts[i : i + points_per_batch]), encode_points(pts[i : i + points_per_batch], HAS_PRESSURE,
                                                                         state))
                    for i in range(0, STROKE_POINTS, points_per_batch)])
    return out


class Pen:
    """A writer's ops: batch ``k`` of a continuous hand (a stroke every ``len(script)`` batches,
    a new page every ``STROKES_PER_PAGE`` strokes); ``sent_at[k]`` is when batch ``k`` left."""

    def __init__(self, client: WsClient, library: list[list[tuple[int, bytes]]], sent_at: Any) -> None:
        self.client = client
        self.library = library
        self.per_stroke = len(library[0])
        self.sent_at = sent_at
        self.cseq = 0
        self.points = self.strokes = self.pages = 0

    def op(self, op: Any) -> None:
        self.client.send(encode(op))

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq

    def batch(self, k: int, now: float) -> None:
        stroke, index = divmod(k, self.per_stroke)
        script = self.library[stroke % len(self.library)]
        if index == 0:
            if stroke:
                self.op(m.StrokeEnd(self.next_cseq(), stroke - 1))
            page = stroke // STROKES_PER_PAGE
            if page and stroke % STROKES_PER_PAGE == 0:
                self.op(m.PageAdd(self.next_cseq(), page))
                self.op(m.PageSwitch(self.next_cseq(), page))
                self.pages += 1
            self.op(m.StrokeBegin(self.next_cseq(), stroke, page, m.Tool.PEN, 0x000000FF, 20, HAS_PRESSURE,
                                  int(now * 1000)))
            self.strokes += 1
        count, blob = script[index]
        self.sent_at[k] = now
        self.op(m.StrokePoints(self.next_cseq(), stroke, sum(c for c, _ in script[:index]), count, blob))
        self.points += count

    def finish(self, k: int) -> None:
        """End the stroke open after batch ``k - 1``."""
        if k:
            self.op(m.StrokeEnd(self.next_cseq(), (k - 1) // self.per_stroke))


class Latencies:
    """Ink latency per window (an equivalent minute): a histogram of ``BIN_MS`` bins each."""

    def __init__(self, windows: int) -> None:
        self.bins = [array("I", bytes(4 * BINS)) for _ in range(windows)]
        self.missing = 0

    def add(self, window: int, ms: float) -> None:
        if 0 <= window < len(self.bins):
            self.bins[window][min(int(ms / BIN_MS), BINS - 1)] += 1

    def merge(self, raw: list[bytes]) -> None:
        for mine, theirs in zip(self.bins, raw, strict=True):
            other = array("I")
            other.frombytes(theirs)
            for i, v in enumerate(other):
                if v:
                    mine[i] += v

    def count(self, first: int, last: int) -> int:
        return sum(sum(b) for b in self.bins[first:last])

    def p99(self, first: int, last: int) -> float | None:
        """The 99th percentile over windows ``first..last-1``, ms (the bin's upper edge)."""
        total = [0] * BINS
        for b in self.bins[first:last]:
            for i, v in enumerate(b):
                if v:
                    total[i] += v
        n = sum(total)
        if not n:
            return None
        rank, seen = math.ceil(0.99 * n), 0
        for i, v in enumerate(total):
            seen += v
            if seen >= rank:
                return round((i + 1) * BIN_MS, 2)
        return None


# --- clients --------------------------------------------------------------------------------------


def join_frame(signer: TokenSigner, room: str, user: str, role: Role) -> bytes:
    return encode(m.Join(PROTOCOL_VERSION, signer.mint(room, user, role, int(time.time()) + 48 * 3600), role, 0, 0))


MessageHandler = Callable[[bytes, float], None]


def answering_pings(client: WsClient, then: MessageHandler | None = None) -> MessageHandler:
    """A message handler that answers the server's Pings (as every client does) and passes the
    other frames to ``then``."""
    def on_message(payload: bytes, now: float) -> None:
        if payload[1:2] == b"\x14":  # [20, ts]: Ping
            client.send(encode(m.Pong(msgpack.unpackb(payload)[1], int(time.monotonic() * 1000))))
        elif then is not None:
            then(payload, now)

    return on_message


async def connect_to(port: int, room: str, on_message: Callable[[WsClient], MessageHandler]) -> WsClient:
    """A session WebSocket of ``room`` whose handler (``on_message(client)``) is in place before
    the upgrade completes: a refusal may come with the upgrade's answer."""
    def made() -> WsClient:
        client = WsClient("127.0.0.1", port, f"/ws/session/{room}")
        client.on_message = on_message(client)
        return client

    _, client = await asyncio.get_running_loop().create_connection(made, "127.0.0.1", port)
    await client.opened
    return client


async def join(port: int, signer: TokenSigner, room: str, user: str, role: Role) -> WsClient:
    """A client joined (its Welcome read) that answers pings; ``ConnectionError`` if refused."""
    welcome = asyncio.get_running_loop().create_future()

    def first(payload: bytes, now: float) -> None:
        kind = msgpack.unpackb(payload)[0]
        if not welcome.done() and kind in (m.MsgType.WELCOME, m.MsgType.ERROR):
            welcome.set_result(msgpack.unpackb(payload))

    client = await connect_to(port, room, lambda c: answering_pings(c, first))
    client.send(join_frame(signer, room, user, role))
    got = await asyncio.wait_for(welcome, 30)
    if got[0] != m.MsgType.WELCOME:
        raise ConnectionError(f"join of {user} refused: {got}")
    return client


def ink_receiver(client: WsClient, sent_at: Any, per_stroke: int, per_batch: int, per_window: int,
                 latencies: Latencies) -> MessageHandler:
    """Notes each ink batch's latency (``sent_at`` of its batch number) in its window."""
    def on_message(payload: bytes, now: float) -> None:
        if payload[1:2] != b"\x04":  # [4, ...]: Event
            return
        msg = msgpack.unpackb(payload)
        body = msg[5]
        if body[0] == 11:  # an event's StrokePoints: [11, stroke, start, count, blob]
            k = body[1] * per_stroke + body[2] // per_batch
            latencies.add(k // per_window, (now - sent_at[k]) * 1000)

    return answering_pings(client, on_message)


def viewer_process(conn: Connection, port: int, secret: str, first: int, count: int, sent_at: Any,
                   shape: tuple[int, int, int, int]) -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})
    import uvloop

    uvloop.run(_viewers(conn, port, secret, first, count, sent_at, shape))


async def _viewers(conn: Connection, port: int, secret: str, first: int, count: int, sent_at: Any,
                   shape: tuple[int, int, int, int]) -> None:
    per_stroke, per_batch, per_window, windows = shape
    signer = TokenSigner(secret)
    clients = []
    for i in range(count):  # one after another: a join storm is not what this measures
        clients.append(await join(port, signer, CLASS_ROOM, f"viewer-{first + i}", Role.VIEWER))
    latencies = Latencies(windows)
    for client in clients:
        client.on_message = ink_receiver(client, sent_at, per_stroke, per_batch, per_window, latencies)
    conn.send("ready")
    assert await recv_command(conn) == "report"
    conn.send({"bins": [b.tobytes() for b in latencies.bins], "cpu_s": process_cpu_s(os.getpid())})
    for client in clients:
        client.close()


# --- the run --------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Shape:
    """The run's numbers from the options."""

    def __init__(self, hours: float, speed: int) -> None:
        self.speed = speed
        self.wall_s = hours * 3600 / speed
        self.batches = int(self.wall_s / BATCH_S)
        self.per_batch = PEN_HZ * 16 * speed // 1000  # 240 Hz x 16 ms = 3.84 points a batch in real time
        while STROKE_POINTS % self.per_batch:
            self.per_batch += 1  # whole batches a stroke (4 S or a little more)
        self.per_stroke = STROKE_POINTS // self.per_batch
        self.per_window = max(1, round(60 / speed / BATCH_S))  # batches in one equivalent minute
        self.windows = math.ceil(self.batches / self.per_window)

    @property
    def equivalent_hours(self) -> float:
        """Hours of a 240 Hz pen written (points / 240 / 3600)."""
        return self.batches * self.per_batch / PEN_HZ / 3600


async def run(server: ServerProcess, secret: str, shape: Shape, viewers: int, procs: int) -> dict[str, Any]:
    signer = TokenSigner(secret)
    port = server.port
    ctx = mp.get_context("spawn")
    class_sent = ctx.Array("d", shape.batches + 1, lock=False)
    one_sent = array("d", bytes(8 * (shape.batches + 1)))
    library = strokes(32, shape.per_batch)
    one_lat, class_lat = Latencies(shape.windows), Latencies(shape.windows)

    tutor = await join(port, signer, ONE_ROOM, "tutor", Role.TUTOR)
    student = await join(port, signer, ONE_ROOM, "student", Role.STUDENT)
    presenter = await join(port, signer, CLASS_ROOM, "teacher", Role.PRESENTER)
    student.on_message = ink_receiver(student, one_sent, shape.per_stroke, shape.per_batch, shape.per_window, one_lat)
    pipes, workers, first = [], [], 0
    for i in range(procs):
        n = viewers // procs + (1 if i < viewers % procs else 0)
        ours, theirs = ctx.Pipe()
        worker = ctx.Process(target=viewer_process, args=(
            theirs, port, secret, first, n, class_sent,
            (shape.per_stroke, shape.per_batch, shape.per_window, shape.windows)))
        worker.start()
        pipes.append(ours)
        workers.append(worker)
        first += n
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        assert await loop.run_in_executor(None, pipe.recv) == "ready"

    pens = {"one": Pen(tutor, library, one_sent), "class": Pen(presenter, library, class_sent)}
    audio = {"tutor": 0, "student": 0, "teacher": 0}
    speakers = {"tutor": tutor, "student": student, "teacher": presenter}
    rss: list[float] = [rss_mb(server.pid)]
    cpu: list[float] = [server.cpu_s()]
    start = loop.time()
    t0 = time.monotonic()
    next_ink = next_audio = start
    k = slot = 0
    capture0 = int(t0 * 1000)
    while k < shape.batches:
        now = loop.time()
        if now >= next_ink:
            sent = time.monotonic()
            for pen in pens.values():
                pen.batch(k, sent)
            k += 1
            next_ink += BATCH_S
            if k % shape.per_window == 0:
                rss.append(rss_mb(server.pid))
                cpu.append(server.cpu_s())
        if now >= next_audio:
            capture = capture0 + slot * 20  # the capture clock: 20 ms a packet, however late the loop sends it
            talker = "tutor" if int(slot * AUDIO_S / TURN_S) % 2 == 0 else "student"
            for who in (talker, "teacher"):
                speakers[who].send(encode(m.Audio(audio[who], capture, OPUS)))
                audio[who] += 1
            slot += 1
            next_audio += AUDIO_S
        await asyncio.sleep(max(0.0, min(next_ink, next_audio) - loop.time()))
    for pen in pens.values():
        pen.finish(k)
    await asyncio.sleep(1.0)  # the last frames' way to the receivers and the recording
    wall = time.monotonic() - t0
    for pipe in pipes:
        pipe.send("report")
    reports = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    for worker in workers:
        worker.join(30)
    for report in reports:
        class_lat.merge(report["bins"])
    for client in (tutor, student, presenter):
        client.close()

    ten = min(10, shape.windows)  # windows in 10 equivalent minutes
    both = Latencies(shape.windows)
    for lat in (one_lat, class_lat):
        both.merge([b.tobytes() for b in lat.bins])
    last = (shape.windows - ten, shape.windows)
    first10 = (0, ten)
    rss_warm = rss[min(ten, len(rss) - 1)]
    return {
        "rss": rss, "cpu": cpu, "wall_s": wall, "reports": reports, "pens": pens, "audio": audio,
        "one_lat": one_lat, "class_lat": class_lat, "both": both, "first10": first10, "last10": last,
        "rss_warm": rss_warm, "ten": ten,
    }


class Discard:
    """A ``sent_at`` for writers whose latency nobody measures."""

    def __setitem__(self, k: int, v: float) -> None:
        pass


def room_state_mb(shape: Shape, windows: list[int]) -> list[float]:
    """What the rooms themselves hold (strokes, pages, op log: ``tracemalloc`` of ``Room`` objects
    fed the same ops in this process) after each of ``windows`` equivalent minutes, MB: the part
    of the server's RSS growth that is the sessions' ink by design (a late joiner gets it all)."""
    import tracemalloc

    from sessionserver.room import Room
    from sessionserver.settings import Settings
    from wire import RoomKind

    settings = Settings()
    library = strokes(32, shape.per_batch)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    rooms = [Room(name, settings.limits, settings.oplog_max_events, 0.0, kind=kind,
                  oplog_max_bytes=settings.oplog_max_bytes, max_ink_bytes=settings.max_room_ink_bytes)
             for name, kind in ((ONE_ROOM, RoomKind.ONE_ON_ONE), (CLASS_ROOM, RoomKind.CLASS))]
    writers = [room.admit(role, "writer").pid for room, role in zip(rooms, (Role.TUTOR, Role.PRESENTER), strict=True)]

    class RoomPen(Pen):
        """The same ops, straight into a room."""

        def __init__(self, room: Room, pid: int) -> None:
            super().__init__(None, library, Discard())  # type: ignore[arg-type]
            self.room, self.pid = room, pid

        def op(self, op: Any) -> None:
            self.room.apply(self.pid, op, 1.0)

    pens = [RoomPen(room, pid) for room, pid in zip(rooms, writers, strict=True)]
    out, wanted = [], set(windows)
    for k in range(shape.batches):
        for pen in pens:
            pen.batch(k, 0.0)
        if ((k + 1) % shape.per_window == 0 or k + 1 == shape.batches) and -(-(k + 1) // shape.per_window) in wanted:
            out.append((tracemalloc.get_traced_memory()[0] - base) / 2**20)
            wanted.discard(-(-(k + 1) // shape.per_window))
    tracemalloc.stop()
    return out


def check_recordings(root: Path, pens: dict[str, Pen], audio: dict[str, int]) -> dict[str, Any]:
    """Both rooms' recordings: complete, with every point, stroke and audio packet sent."""
    from recordings.loader import list_recordings, load

    out: dict[str, Any] = {}
    rows = {row["id"]: row for row in list_recordings(root)}
    for name, room, speakers in (("one_on_one", ONE_ROOM, {"tutor": 1, "student": 2}),
                                 ("class", CLASS_ROOM, {"teacher": 1})):
        ids = [i for i in rows if i.startswith(room + "-")]
        if len(ids) != 1:
            out[name] = {"complete": False, "why": f"{len(ids)} recordings of {room}"}
            continue
        data = load(root, ids[0])
        points = sum(e.body.count for e in data.events if isinstance(e.body, m.StrokePoints))
        ink_bytes = sum(len(e.body.blob) for e in data.events if isinstance(e.body, m.StrokePoints))
        begun = sum(1 for e in data.events if isinstance(e.body, m.StrokeBegin))
        ended = sum(1 for e in data.events if isinstance(e.body, m.StrokeEnd))
        packets = {who: sum(1 for payload, _ in data.audio[pid].packets if payload == OPUS) if pid in data.audio else 0
                   for who, pid in speakers.items()}
        pen = pens["one" if name == "one_on_one" else "class"]
        ok = (data.status == "complete" and points == pen.points and begun == ended == pen.strokes
              and all(packets[who] == audio[who] for who in speakers))
        out[name] = {"complete": ok, "status": data.status, "points": points, "points_sent": pen.points,
                     "ink_bytes": ink_bytes,
                     "strokes": begun, "strokes_sent": pen.strokes, "audio_packets": packets,
                     "audio_sent": {who: audio[who] for who in speakers}, "duration_ms": data.duration_ms}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0, help="equivalent hours of writing (default 3)")
    parser.add_argument("--speed", type=int, default=12, help="time compression of the ink (default 12)")
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--procs", type=int, default=2, help="viewer processes")
    opts = parser.parse_args(argv)
    shape = Shape(opts.hours, opts.speed)
    print(f"soak: {opts.hours:g} h of ink at speed {opts.speed} = {shape.wall_s / 60:.1f} min, "
          f"{shape.per_batch} points a batch, {opts.viewers} viewers", file=sys.stderr)
    os.sched_setaffinity(0, {CLIENT_CPU})
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="tutorwire-soak-") as tmp:
        log_dir = Path(tmp)
        server = tutorwire_server(free_port(), secret, log_dir, SERVER_CPU, record=True)
        try:
            server.wait_ready()
            import uvloop

            got = uvloop.run(run(server, secret, shape, opts.viewers, opts.procs))
        finally:
            server.stop()
        recording = check_recordings(log_dir / "recordings", got["pens"], got["audio"])
        print(server.log_path.read_text(errors="replace")[-2000:], file=sys.stderr)
    both, one, cls = got["both"], got["one_lat"], got["class_lat"]
    f10, l10 = got["first10"], got["last10"]
    rss, cpu = got["rss"], got["cpu"]
    per10 = got["ten"]
    growth = rss[-1] - got["rss_warm"]
    rooms = room_state_mb(shape, [got["ten"], shape.windows])
    rooms_growth = rooms[-1] - rooms[0]
    p_first, p_last = both.p99(*f10), both.p99(*l10)
    expected = sum(r.get("ink_bytes", 0) for r in recording.values())
    window_s = shape.per_window * BATCH_S
    result = {
        "hours_equivalent": round(shape.equivalent_hours, 2), "speed": shape.speed, "wall_s": round(got["wall_s"], 1),
        "viewers": opts.viewers, "points_per_batch": shape.per_batch,
        "rss_start_mb": round(rss[0], 1), "rss_after_10_min_mb": round(got["rss_warm"], 1),
        "rss_end_mb": round(rss[-1], 1), "rss_growth_mb": round(growth, 1),
        "rss_growth_bound_mb": RSS_GROWTH_BOUND_MB, "room_ink_mb": round(expected / 2**20, 1),
        "room_state_mb": round(rooms[-1], 1), "room_state_growth_mb": round(rooms_growth, 1),
        "rss_growth_beyond_rooms_mb": round(growth - rooms_growth, 1), "beyond_rooms_bound_mb": BEYOND_ROOMS_BOUND_MB,
        "rss_curve_mb": [round(r, 1) for r in rss[::per10]],
        "p99_ms_first_10_min": p_first, "p99_ms_last_10_min": p_last,
        "p99_curve_ms": [both.p99(i, i + per10) for i in range(0, shape.windows, per10)],
        "p99_ms_worst_10_min": max((p for p in (both.p99(i, i + per10) for i in range(0, shape.windows, per10))
                                    if p is not None), default=None),
        "one_on_one": {"p99_ms_first_10_min": one.p99(*f10), "p99_ms_last_10_min": one.p99(*l10),
                       "batches_received": one.count(0, shape.windows), "batches_sent": shape.batches},
        "class": {"p99_ms_first_10_min": cls.p99(*f10), "p99_ms_last_10_min": cls.p99(*l10),
                  "batches_received": cls.count(0, shape.windows), "batches_sent": shape.batches * opts.viewers},
        "server_cpu_percent": round(100 * (cpu[-1] - cpu[0]) / max(1e-9, (len(cpu) - 1) * window_s), 1),
        "viewers_cpu_s": round(sum(r["cpu_s"] for r in got["reports"]), 1),
        "recording": recording,
        "recording_complete": all(r["complete"] for r in recording.values()),
    }
    result["flat"] = bool(growth < RSS_GROWTH_BOUND_MB and growth - rooms_growth < BEYOND_ROOMS_BOUND_MB
                          and p_first is not None and p_last is not None
                          and p_last <= P99_FLAT_FACTOR * p_first + 2.0)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
