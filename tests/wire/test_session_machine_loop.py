"""Both machines in one simulated world: a writing client and a reading client, each through
its own ServerSession, a small room, and a network with 300 ms RTT that is cut, goes away
(connects refused) and stalls on a seeded schedule. Time is simulated, so a minute of bad
network runs in well under a second, and the resume time after each impairment is exact.

What it shows: the writer's 120 Hz ink reaches the reader exactly once and in order; no
resend ever trips the server's rate limit; every link comes back within the backoff cap plus
the handshake after the network does.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import pytest

from wire import CatchUp, ErrorCode, Limits, Point, ProtocolError, encode
from wire import messages as m
from wire.session import ClientConfig, ClientSession, ClientState, ServerConfig, ServerSession, ServerState
from wire.session import events as ev

RTT = 0.3
ONE_WAY = RTT / 2
HANDSHAKE = 2 * RTT  # TCP, then the WebSocket upgrade; the Join and Welcome take one more RTT


class Room:
    """Just enough of a room: seqs, a log, each participant's last cseq, open strokes' counts."""

    def __init__(self) -> None:
        self.seq = 0
        self.log: list[tuple[int, bytes]] = []
        self.last_cseq: dict[int, int] = {}
        self.strokes: dict[tuple[int, int], int] = {}  # open strokes: points so far
        self.epoch = 99

    def record(self, pid: int, body: m.EventBody, now: float) -> tuple[int, bytes]:
        self.seq += 1
        frame = encode(m.Event(self.seq, int(now * 1000), pid, getattr(body, "cseq", 0), body))
        self.log.append((self.seq, frame))
        return self.seq, frame

    def apply(self, pid: int, op: m.Op, now: float) -> tuple[int, bytes] | None:
        if op.cseq <= self.last_cseq.get(pid, 0):
            return None
        self.last_cseq[pid] = op.cseq
        key = (pid, getattr(op, "stroke", -1))
        if isinstance(op, m.StrokeBegin):
            self.strokes[key] = 0
        elif isinstance(op, m.StrokePoints):
            if self.strokes.get(key) != op.start:
                raise ProtocolError(ErrorCode.STROKE_GAP, "gap", op.cseq)
            self.strokes[key] += op.count
        elif isinstance(op, m.StrokeEnd):
            del self.strokes[key]
        return self.record(pid, op, now)


@dataclass
class Link:
    """One transport: frames in flight each way, with their arrival times."""

    to_server: list[tuple[float, bytes]] = field(default_factory=list)
    to_client: list[tuple[float, bytes]] = field(default_factory=list)
    close_code: int | None = None  # the server's close, delivered after its last frame
    alive: bool = True


@dataclass
class End:
    name: str
    pid: int
    client: ClientSession
    server: ServerSession | None = None
    link: Link | None = None
    connect_at: float | None = None  # a connect attempt completes (or fails) then


class World:
    def __init__(self, seed: int, limits: Limits) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.limits = limits
        self.room = Room()
        self.net_up = True
        self.stall_until = 0.0
        cfg = ClientConfig(limits=limits)
        self.ends = [End(name, pid, ClientSession("tok", m.Role(pid - 1), cfg, rng=random.Random(seed * 10 + pid)))
                     for name, pid in (("writer", 1), ("reader", 2))]
        self.rate_limited = 0
        self.server_frames_in = 0

    # --- the network --------------------------------------------------------------------------

    def arrival(self) -> float:
        return max(self.now, self.stall_until) + ONE_WAY

    def cut(self) -> None:
        for end in self.ends:
            self._kill(end, None)

    def _kill(self, end: End, code: int | None) -> None:
        if end.link is not None:
            end.link.alive = False
            end.link = None
            end.client.connection_lost(self.now, code)
        if end.server is not None:
            end.server.connection_lost(self.now)
            end.server = None

    # --- the server's shell -------------------------------------------------------------------

    def serve(self, end: End) -> None:
        s, link = end.server, end.link
        if s is None or link is None:
            return
        for e in s.events():
            if isinstance(e, ev.JoinRequested):
                room = self.room
                _, presence = room.record(end.pid, m.Presence(end.name, True, m.Role(end.pid - 1)), self.now)
                last = e.join.last_seq if e.join.epoch == room.epoch or e.join.last_seq == 0 else 0
                welcome = m.Welcome(2, end.pid, m.Role(end.pid - 1), end.name, "sim", int(self.now * 1000), room.seq,
                                    room.last_cseq.get(end.pid, 0), CatchUp.REPLAY, 1, room.epoch,
                                    int(self.limits.rate_messages_per_s), self.limits.rate_burst, m.Rights(31), ())
                link.to_client.append((self.arrival(), encode(welcome)))
                link.to_client += [(self.arrival(), f) for q, f in room.log if q > last]
                s.accept(self.now, lambda now: int(now * 1000))
                self.fan_out(end, presence)
            elif isinstance(e, ev.OpReceived):
                try:
                    applied = self.room.apply(end.pid, e.op, self.now)
                except ProtocolError as exc:
                    s.op_refused(exc, self.room.last_cseq[end.pid], self.now)
                    continue
                if applied is None:
                    s.op_settled(self.room.last_cseq[end.pid], self.now)
                else:
                    s.op_applied(e.op.cseq, applied[0], self.now)
                    self.fan_out(end, applied[1])
            elif isinstance(e, ev.CloseLink):
                if e.code == 4008:
                    self.rate_limited += 1
                link.close_code = e.code
        self.flush_server(end)

    def fan_out(self, author: End, frame: bytes) -> None:
        for end in self.ends:
            if end is not author and end.server is not None and end.server.state is ServerState.JOINED:
                end.server.send(frame, self.now)
                self.flush_server(end)

    def flush_server(self, end: End) -> None:
        if end.server is not None and end.link is not None:
            end.link.to_client += [(self.arrival(), f) for f in end.server.data_to_send()]

    def flush_client(self, end: End) -> None:
        c = end.client
        frames = c.data_to_send()
        if end.link is not None:
            end.link.to_server += [(self.arrival(), f) for f in frames]
        if c.take_close_request() is not None and end.link is not None:
            end.link.alive = False
            end.link = None
            if end.server is not None:
                end.server.connection_lost(self.now)
                end.server = None
        if c.state is ClientState.CONNECTING and end.connect_at is None and end.link is None:
            end.connect_at = self.now + (0.001 if not self.net_up else HANDSHAKE)

    # --- one step -----------------------------------------------------------------------------

    def next_time(self, *extra: float) -> float:
        times = list(extra)
        for end in self.ends:
            for t in (end.client.get_timer(), end.connect_at,
                      end.server.get_timer() if end.server is not None else None):
                if t is not None:
                    times.append(t)
            if end.link is not None:
                times += [t for t, _ in end.link.to_server[:1] + end.link.to_client[:1]]
                if end.link.close_code is not None and not end.link.to_client:
                    times.append(self.now)
        return min(times)

    def step(self) -> None:
        now = self.now
        for end in self.ends:
            c = end.client
            if end.connect_at is not None and now >= end.connect_at:
                end.connect_at = None
                if c.state is ClientState.CONNECTING:
                    if self.net_up and now >= self.stall_until:
                        end.link = Link()
                        end.server = ServerSession(ServerConfig(limits=self.limits, ack_delay_ms=40), now)
                        c.connection_made(now)
                    else:
                        c.connection_failed(now, "connection refused")
            link = end.link
            while link is not None and link.to_server and link.to_server[0][0] <= now:
                _, frame = link.to_server.pop(0)
                assert end.server is not None
                self.server_frames_in += 1
                end.server.receive_frame(frame, now)
                self.serve(end)
            while link is not None and link.alive and link.to_client and link.to_client[0][0] <= now:
                _, frame = link.to_client.pop(0)
                c.receive_frame(frame, now)
                self.flush_client(end)
            if link is not None and link.alive and link.close_code is not None and not link.to_client:
                self._kill(end, link.close_code)
            if end.server is not None and (t := end.server.get_timer()) is not None and t <= now:
                end.server.handle_timer(now)
                self.serve(end)
            if (t := c.get_timer()) is not None and t <= now:
                c.handle_timer(now)
            self.flush_client(end)


def pen_path(n: int, seed: int) -> list[Point]:
    rng = random.Random(seed)
    x, y = 20_000, 20_000
    pts = []
    for i in range(n):
        x, y = x + rng.randint(0, 6), y + rng.randint(-3, 3)
        pts.append(Point(x, y, i * 8, 600))
    return pts


@pytest.mark.parametrize(("seed", "rate", "burst"), [(1, 200, 400), (2, 200, 400), (3, 200, 400), (4, 200, 400),
                                                 (5, 50, 40), (6, 40, 24)])
def test_ink_arrives_once_and_in_order_through_cuts_outages_and_stalls(seed: int, rate: int, burst: int) -> None:
    """At the default limit, and at limits below the pen's own rate (60 batches a second):
    there the pacing holds points back and merges them, and still nothing is rate-limited."""
    world = World(seed, Limits(rate_messages_per_s=rate, rate_burst=burst))
    result = simulate(world, seed, duration=60.0)
    reader = world.ends[1].client
    got = [s.points for s in sorted(reader.replica.strokes(1), key=lambda s: s.stroke) if s.ended]
    assert got == result.written  # every point, once, in order, stroke by stroke
    assert world.rate_limited == 0
    assert not world.ends[0].client.outbox
    assert reader.errors == [] and world.ends[0].client.errors == []
    resume = sorted(result.resume_s)
    p95 = resume[min(len(resume) - 1, round(0.95 * (len(resume) - 1)))]
    points = sum(len(w) for w in result.written)
    print(f"\nseed {seed} (rate {rate}/s, burst {burst}): {points} points, {len(resume)} impairments, resume "
          f"p50 {statistics.median(resume):.2f} s, p95 {p95:.2f} s, max {resume[-1]:.2f} s; "
          f"writer joins {world.ends[0].client.joins}, frames to the server {world.server_frames_in}")
    assert p95 < 2.0


@dataclass
class Result:
    written: list[list[Point]]
    resume_s: list[float]


def simulate(world: World, seed: int, duration: float) -> Result:
    rng = random.Random(seed)
    writer, reader = world.ends
    for end in world.ends:
        end.client.connect(0.0)
        world.flush_client(end)
    plan: list[tuple[float, str, float]] = []
    t = 3.0
    while t < duration - 10:
        kind = rng.choice(["cut", "outage", "outage", "stall"])
        length = 0.0 if kind == "cut" else rng.uniform(0.5, 3.0)
        plan.append((t, kind, length))
        t += length + rng.uniform(2.0, 4.0)
    written: list[list[Point]] = []
    stroke: int | None = None
    path: list[Point] = []
    done = 0
    next_batch, pause_until = 1.0, 1.0
    pen_stops = duration - 8
    pending_returns: list[float] = []
    resume: list[float] = []
    restore: float | None = None
    plan_i = 0

    def reader_got_ink() -> None:
        for e in reader.client.events():
            if isinstance(e, ev.EventApplied) and isinstance(e.event.body, m.StrokePoints):
                while pending_returns:
                    resume.append(world.now - pending_returns.pop(0))

    while world.now < duration:
        nexts = [next_batch if world.now < pen_stops else duration, duration]
        if plan_i < len(plan):
            nexts.append(plan[plan_i][0])
        if restore is not None:
            nexts.append(restore)
        world.now = world.next_time(*nexts)
        now = world.now
        if plan_i < len(plan) and now >= plan[plan_i][0]:
            _, kind, length = plan[plan_i]
            plan_i += 1
            if kind == "stall":
                world.stall_until = restore = now + length
            else:
                world.cut()
                if kind == "cut":
                    pending_returns.append(now)
                else:
                    world.net_up, restore = False, now + length
        if restore is not None and now >= restore:
            world.net_up = True
            restore = None
            pending_returns.append(now)
        if stroke is not None and now >= pen_stops:
            writer.client.end_stroke(now, stroke)
            written[-1] = path[:done]
            stroke = None
        if now >= next_batch and now < pen_stops:
            c = writer.client
            if stroke is None and now >= pause_until:
                stroke = c.begin_stroke(now, 0)
                path = pen_path(int(120 * rng.uniform(0.3, 2.0)), seed * 1000 + len(written))
                written.append(path)
                done = 0
            if stroke is not None:
                assert c.add_points(now, stroke, path[done : done + 2])
                done += 2
                if done >= len(path):
                    c.end_stroke(now, stroke)
                    stroke, pause_until = None, now + rng.uniform(0.1, 0.4)
            world.flush_client(writer)
            next_batch = now + 1 / 60
        world.step()
        reader_got_ink()
    return Result(written, resume)
