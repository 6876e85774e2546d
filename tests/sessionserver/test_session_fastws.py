"""The session WebSocket on picows behind uvicorn's port: what the hand-off itself must keep.
Fragmented messages are reassembled; broken fragmentation closes 1002; the close handshake
echoes the client's code; a server shutdown closes 1012; a connection being closed whose peer
takes nothing more is cut after ``close_grace_s``; the matcher's WebSocket stays on Starlette."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

import pytest
import websockets

from tests.conftest import RunningServer, StartServer
from wire import PROTOCOL_VERSION, ErrorCode, Limits, Point, PointState, Role, decode_frame, encode, encode_points
from wire import messages as m

LOOSE = Limits(max_frame_bytes=1 << 24, max_points_per_message=1 << 20)


def join_frame(server: RunningServer, session: str, role: Role) -> bytes:
    return encode(m.Join(PROTOCOL_VERSION, server.token(session, role), role, 0, 0))


async def test_a_fragmented_join_is_reassembled(server: RunningServer) -> None:
    async with websockets.connect(server.url("frag"), compression=None) as ws:
        frame = join_frame(server, "frag", Role.TUTOR)
        await ws.send([frame[:7], frame[7:20], frame[20:]])  # one message in three frames
        assert isinstance(decode_frame(await ws.recv(decode=False), LOOSE), m.Welcome)


async def test_a_text_frame_is_refused_and_the_connection_stays(server: RunningServer) -> None:
    async with websockets.connect(server.url("text"), compression=None) as ws:
        await ws.send(join_frame(server, "text", Role.TUTOR))
        assert isinstance(decode_frame(await ws.recv(decode=False), LOOSE), m.Welcome)
        await ws.send("hello")
        while True:
            msg = decode_frame(await ws.recv(decode=False), LOOSE)
            if isinstance(msg, m.Error):
                break
        assert msg.code == ErrorCode.BAD_FRAME
        await ws.send(encode(m.Ping(5)))
        while not isinstance(msg := decode_frame(await ws.recv(decode=False), LOOSE), m.Pong):
            pass
        assert msg.echo == 5


async def raw_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    assert len(payload) < 126
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


async def read_close(reader: asyncio.StreamReader) -> int:
    """The code of the server's close frame, skipping the frames before it."""
    while True:
        head = await reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if head[0] & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big")


async def test_a_continuation_outside_a_fragmented_message_closes_1002(server: RunningServer) -> None:
    reader, writer = await raw_upgrade(server.port, "/ws/session/cont")
    writer.write(client_frame(0x0, b"stray"))
    assert await asyncio.wait_for(read_close(reader), 10) == 1002
    writer.close()


async def test_a_client_close_is_echoed(server: RunningServer) -> None:
    reader, writer = await raw_upgrade(server.port, "/ws/session/bye")
    writer.write(client_frame(0x8, (4321).to_bytes(2, "big")))
    assert await asyncio.wait_for(read_close(reader), 10) == 4321
    assert await reader.read() == b""  # and the server dropped the connection
    writer.close()


async def test_shutdown_closes_1012(start_server: StartServer) -> None:
    server = await start_server()
    async with websockets.connect(server.url("down"), compression=None) as ws:
        await ws.send(join_frame(server, "down", Role.TUTOR))
        await ws.recv()
        server.server.should_exit = True
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1012


def stroke_frames(cseq: int, stroke: int) -> list[bytes]:
    state = PointState()
    points = [Point(1000 + (i * 37) % 900, 2000 + (i * 53) % 700, 8 * i, 100 + (i * 7) % 3000) for i in range(500)]
    blob = encode_points(points, 1, state)
    return [encode(m.StrokeBegin(cseq + 1, stroke, 0, m.Tool.PEN, 255, 10, 1, 0)),
            encode(m.StrokePoints(cseq + 2, stroke, 0, 500, blob)), encode(m.Undo(cseq + 3, stroke))]


async def test_a_closed_peer_that_reads_nothing_is_cut_after_the_close_grace(start_server: StartServer) -> None:
    grace = 0.5
    server = await start_server(limits={"rate_messages_per_s": 1_000_000, "rate_burst": 1_000_000},
                                send_queue_max_bytes=64 * 1024, close_grace_s=grace, max_errors=1_000_000)
    sessions = server.server.server_state.connections
    tutor = await websockets.connect(server.url("grace"), compression=None, max_size=None)
    await tutor.send(join_frame(server, "grace", Role.TUTOR))
    await tutor.recv()
    sock = socket.socket()  # a student that stops reading: a small window, then nothing
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    student_reader, student_writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    student_writer.write(f"GET /ws/session/grace HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                         .encode())
    await student_reader.readuntil(b"\r\n\r\n")
    join = join_frame(server, "grace", Role.STUDENT)
    student_writer.write(bytes((0x82, 0xFE)) + len(join).to_bytes(2, "big") + b"\0\0\0\0" + join)
    student_reader._transport.pause_reading()  # type: ignore[attr-defined]  # and from now on reads nothing
    links = set(sessions)
    offline = asyncio.Event()
    cut_at = 0.0

    async def read_tutor() -> None:
        nonlocal cut_at
        async for raw in tutor:
            msg = decode_frame(raw, LOOSE)  # type: ignore[arg-type]
            if isinstance(msg, m.Event) and isinstance(msg.body, m.Presence) and not msg.body.online:
                cut_at = time.monotonic()
                offline.set()

    reading = asyncio.create_task(read_tutor())
    cseq = stroke = 0
    while not offline.is_set():  # ink through the room until the student is cut off (4010)
        stroke += 1
        for frame in stroke_frames(cseq, stroke):
            await tutor.send(frame)
        cseq += 3
        assert stroke < 20_000, "the stalled student was never cut off"
    assert len(links) == 2
    # uvicorn's set of connections has no event to await: poll it for the student's link
    while len(set(sessions) & links) == 2:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    waited = time.monotonic() - cut_at
    assert grace * 0.8 <= waited < grace + 5, waited
    await tutor.close()
    reading.cancel()
    student_writer.close()
