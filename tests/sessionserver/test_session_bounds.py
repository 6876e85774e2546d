"""Memory bounded against hostile participants, in bytes: each bound is driven to its error with
small settings against a real server process, whose resident memory is read from /proc while
the hostile side keeps pushing, and the other participant keeps working throughout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from tests.conftest import SECRET, free_port
from wire import (
    PROTOCOL_VERSION,
    CloseCode,
    ErrorCode,
    Limits,
    Point,
    PointState,
    Role,
    decode_frame,
    encode,
    encode_points,
)
from wire import messages as m

pytestmark = pytest.mark.timeout(120)
TUTORWIRE = os.path.join(os.path.dirname(sys.executable), "tutorwire")
LOOSE = Limits(max_frame_bytes=1 << 26, max_points_per_message=1 << 20, max_points_per_stroke=1 << 30)
MB = 1 << 20


@dataclass
class ServerProcess:
    port: int
    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)

    def url(self, session: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/session/{session}"

    def token(self, session: str, role: Role, user: str = "") -> str:
        return TokenSigner(SECRET).mint(session, user or role.label, role, int(time.time()) + 600)

    def client(self, session: str, role: Role) -> SessionClient:
        return SessionClient(self.url(session), self.token(session, role), role)

    def rss(self) -> int:
        """The server process's resident memory, bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@contextlib.asynccontextmanager
async def serving(tmp: Path, **settings: object) -> AsyncIterator[ServerProcess]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env |= {"TUTORWIRE_SECRET": SECRET, "TUTORWIRE_RECORDINGS_DIR": str(tmp), "TUTORWIRE_MATCHER_WORKER": "false"}
    env |= {f"TUTORWIRE_{k.upper()}": str(v) for k, v in settings.items()}
    proc = await asyncio.create_subprocess_exec(TUTORWIRE, "serve", "--port", str(port), env=env,
                                                stderr=asyncio.subprocess.PIPE)
    server = ServerProcess(port, proc)
    ready = asyncio.Event()

    async def read_log() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:  # drained all along, so the server never blocks on its log
            line = raw.decode(errors="replace")
            server.log.append(line)
            if "Uvicorn running on" in line:  # bound and listening
                ready.set()

    reader = asyncio.create_task(read_log())
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield server
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        reader.cancel()


async def raw_join(server: ServerProcess, session: str, role: Role, **kw: object) -> tuple[ClientConnection, m.Welcome]:
    ws = await websockets.connect(server.url(session), max_size=None, compression=None, **kw)  # type: ignore[arg-type]
    await ws.send(encode(m.Join(PROTOCOL_VERSION, server.token(session, role), role, 0)))
    welcome = decode_frame(await ws.recv(decode=False), LOOSE)
    assert isinstance(welcome, m.Welcome), welcome
    return ws, welcome


class Reader:
    """Reads one raw connection, counting Error codes; ``gone`` when the server closed it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.errors: dict[int, int] = {}
        self.acks = 0
        self.acked_cseq = 0
        self.presences: list[m.Presence] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                msg = decode_frame(frame, LOOSE)  # type: ignore[arg-type]
                if isinstance(msg, m.Error):
                    self.errors[msg.code] = self.errors.get(msg.code, 0) + 1
                elif isinstance(msg, m.Ack):
                    self.acks += 1
                    self.acked_cseq = max(self.acked_cseq, msg.cseq)
                elif isinstance(msg, m.Event) and isinstance(msg.body, m.Presence):
                    self.presences.append(msg.body)
                elif isinstance(msg, m.Ping):
                    await self.ws.send(encode(m.Pong(msg.ts, 0)))
                self.changed.set()
        self.changed.set()

    def acks_through(self, cseq: int) -> bool:
        return self.acked_cseq >= cseq

    async def until(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def big_stroke(batches: int = 10, n: int = 500) -> tuple[int, list[bytes]]:
    """The StrokePoints blobs of one stroke: ``batches`` batches of ``n`` shaky points (about
    3 bytes each), each continuing the one before."""
    state = PointState()
    blobs = []
    for b in range(batches):
        points = [Point(1000 + (i * 37) % 900, 2000 + (i * 53) % 700, 8 * i, 100 + (i * 7) % 3000)
                  for i in range(b * n, (b + 1) * n)]
        blobs.append(encode_points(points, 1, state))
    return n, blobs


def stroke_ops(cseq: int, stroke: int, count: int, blobs: list[bytes], undo: bool) -> list[m.Op]:
    """One stroke of the batches ``blobs``, undone at the end if ``undo``."""
    ops: list[m.Op] = [m.StrokeBegin(cseq + 1, stroke, 0, m.Tool.PEN, 255, 10, 1, 0)]
    ops += [m.StrokePoints(cseq + 2 + k, stroke, k * count, count, blob) for k, blob in enumerate(blobs)]
    ops.append(m.StrokeEnd(cseq + 2 + len(blobs), stroke))
    if undo:
        ops.append(m.Undo(cseq + 3 + len(blobs), stroke))
    return ops


class Writer:
    """Sends strokes as fast as the socket takes them."""

    def __init__(self, ws: ClientConnection, undo: bool) -> None:
        self.ws = ws
        self.undo = undo
        self.cseq = self.stroke = self.ops = 0
        self.count, self.blobs = big_stroke()
        self.stroke_bytes = sum(len(b) for b in self.blobs)

    async def push(self, megabytes: float) -> None:
        for _ in range(int(megabytes * MB) // self.stroke_bytes):
            self.stroke += 1
            ops = stroke_ops(self.cseq, self.stroke, self.count, self.blobs, self.undo)
            for op in ops:
                await self.ws.send(encode(op))
            self.cseq += len(ops)
            self.ops += len(ops)


async def test_room_ink_is_bounded_and_other_ops_go_on(tmp_path: Path) -> None:
    limit = 3 * MB
    async with serving(tmp_path, max_room_ink_bytes=limit, max_errors=10_000_000, rate_messages_per_s=1_000_000,
                       rate_burst=1_000_000, oplog_max_bytes=256 * 1024) as server:
        tutor = server.client("ink", Role.TUTOR)
        await tutor.connect()
        ws, _ = await raw_join(server, "ink", Role.STUDENT)
        hostile, writer = Reader(ws), Writer(ws, undo=False)

        def refused() -> int:  # the ink itself (1021), then the rest of its stroke (1008, 1015)
            assert set(hostile.errors) <= {ErrorCode.ROOM_INK_LIMIT, ErrorCode.UNKNOWN_STROKE, ErrorCode.STROKE_GAP}
            return sum(hostile.errors.values())

        await writer.push(4)
        await hostile.until(lambda: hostile.errors.get(ErrorCode.ROOM_INK_LIMIT, 0) > 0)
        await tutor.add_page(1)  # the tutor goes on
        await tutor.wait_for(lambda: not tutor.outbox, timeout=20)
        await hostile.until(lambda: refused() + hostile.acks > 0 and len(tutor.replica.pages) == 2)
        before, refused_before, sent_before = server.rss(), refused(), writer.ops
        await writer.push(20)  # 20 MB more ink, all of it refused
        await hostile.until(lambda: refused() - refused_before >= writer.ops - sent_before)
        after = server.rss()
        assert after - before < 4 * MB, f"the server grew {(after - before) / MB:.1f} MB"
        await tutor.add_page(2)
        await tutor.wait_for(lambda: not tutor.outbox and len(tutor.replica.pages) == 3, timeout=20)
        assert tutor.errors == []
        taken = sum(len(s.points) for s in tutor.replica.strokes())
        assert 0 < taken * writer.stroke_bytes // (10 * writer.count) <= limit  # up to the bound, no more
        await ws.close()
        await tutor.close()


async def test_a_consumer_that_does_not_read_is_closed_by_the_byte_bound(tmp_path: Path) -> None:
    async with serving(tmp_path, send_queue_max_bytes=256 * 1024, send_queue_max=10_000_000, max_errors=10_000_000,
                       rate_messages_per_s=1_000_000, rate_burst=1_000_000, oplog_max_bytes=256 * 1024) as server:
        ws, _ = await raw_join(server, "slow", Role.TUTOR)
        tutor, writer = Reader(ws), Writer(ws, undo=True)  # undone strokes: the room holds no ink
        await writer.push(1)
        await tutor.until(lambda: tutor.acks > 0)
        sock = socket.socket()  # a student that stops reading: a small window, then nothing
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        # no keepalive pings from it either: one reaching the server after it closed the socket
        # would be answered with a reset, which throws away the close frame still unread here
        stalled, _ = await raw_join(server, "slow", Role.STUDENT, sock=sock, max_queue=1, ping_interval=None)
        before = server.rss()
        offline = m.Presence("student", False, Role.STUDENT)
        pushed = 0.0
        while offline not in tutor.presences:
            assert pushed < 16, "the stalled student was never cut off"
            await writer.push(0.5)
            pushed += 0.5
        during = server.rss()
        await writer.push(20)  # the tutor goes on, 20 MB more through the room
        await tutor.until(lambda: tutor.acks_through(writer.cseq))
        after = server.rss()
        assert during - before < 6 * MB and after - before < 6 * MB, (before, during, after)
        assert not tutor.errors
        with contextlib.suppress(websockets.ConnectionClosed):  # what the stalled student finds
            async with asyncio.timeout(20):
                async for _ in stalled:
                    pass
        assert stalled.close_code == CloseCode.SLOW_CONSUMER
        back, welcome = await raw_join(server, "slow", Role.STUDENT)  # and it can come back
        assert welcome.pid == 2
        await back.close()
        await ws.close()


async def test_joins_past_the_bound_are_refused_and_cost_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path, max_joins_per_minute=5) as server:
        tutor = server.client("joins", Role.TUTOR)
        await tutor.connect()
        for _ in range(4):  # the tutor's own join was one
            ws, _ = await raw_join(server, "joins", Role.TUTOR)
            await ws.close()
        sixth = server.client("joins", Role.TUTOR)
        with pytest.raises(ConnectionRefusedError):
            await sixth.connect()
        assert sixth.errors[-1].code == ErrorCode.TOO_MANY_JOINS and sixth.close_code == CloseCode.TOO_MANY_JOINS
        student = server.client("joins", Role.STUDENT)
        await student.connect()  # another participant's joins are its own
        token = server.token("joins", Role.TUTOR)

        async def flood(times: int) -> None:
            for _ in range(times):
                async with websockets.connect(server.url("joins")) as ws:
                    await ws.send(encode(m.Join(PROTOCOL_VERSION, token, Role.TUTOR, 0)))
                    error = decode_frame(await ws.recv(decode=False), LOOSE)
                    assert isinstance(error, m.Error) and error.code == ErrorCode.TOO_MANY_JOINS

        await flood(500)  # the process's allocator warms up to connections coming and going
        before = server.rss()
        await flood(1500)
        after = server.rss()
        assert after - before < 2 * MB, f"the server grew {(after - before) / MB:.1f} MB"
        await student.add_page(1)
        await student.wait_for(lambda: not student.outbox, timeout=10)
        assert student.errors == [] and student.connected
        await student.close()
        await tutor.close()
