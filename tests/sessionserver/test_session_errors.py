"""Hostile input: each gets its documented code, and the other participant loses nothing."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from sessionserver.room import ParticipantState, Room
from tests.conftest import SECRET, RunningServer, StartServer
from tests.inkdata import draw, finished, handwriting
from wire import (
    INTERNAL_CLOSE,
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

LOOSE = Limits(max_frame_bytes=1 << 24, max_points_per_message=1 << 20)


async def still_works(tutor: SessionClient, student: SessionClient, seed: int) -> None:
    """The tutor's next stroke reaches the student whole, and nothing before it went missing."""
    before = finished(student, Role.TUTOR)
    points = handwriting(40, seed)
    await draw(tutor, points)
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == len(before) + 1)
    assert finished(student, Role.TUTOR) == [*before, points]


async def refused(client: SessionClient, frame: bytes) -> m.Error:
    count = len(client.errors)
    await client.send_raw(frame)
    await client.wait_for(lambda: len(client.errors) > count)
    return client.errors[-1]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xff garbage", ErrorCode.BAD_FRAME),
        (b"", ErrorCode.BAD_FRAME),
        (msgpack.packb({"type": 1}), ErrorCode.BAD_FRAME),
        (msgpack.packb([]), ErrorCode.BAD_FRAME),
        (msgpack.packb([99, 1]), ErrorCode.UNKNOWN_TYPE),
        (msgpack.packb([12, 1, "x"]), ErrorCode.INVALID_FIELD),
        (msgpack.packb([12, 1]), ErrorCode.BAD_FRAME),
        (encode(m.Welcome(PROTOCOL_VERSION, 1, Role.TUTOR, "u", "s", 0, 0, 0, m.CatchUp.REPLAY, 1, 7, 200, 400,
                          m.Rights.INK, (m.RosterEntry(1, "u", Role.TUTOR, True, False, 0),))),
         ErrorCode.UNKNOWN_TYPE),
        (encode(m.Join(PROTOCOL_VERSION, "t", Role.STUDENT, 0)), ErrorCode.ALREADY_JOINED),
        (encode(m.StrokeEnd(50, 12345)), ErrorCode.UNKNOWN_STROKE),
        (encode(m.Undo(51, 12345)), ErrorCode.UNKNOWN_STROKE),
        (encode(m.PageSwitch(52, 7)), ErrorCode.UNKNOWN_PAGE),
        (encode(m.PageAdd(53, 9)), ErrorCode.UNKNOWN_PAGE),
    ],
)
async def test_bad_frames_get_their_code_and_the_session_goes_on(
    server: RunningServer, frame: bytes, code: ErrorCode
) -> None:
    tutor, student = await server.pair("e-frames")
    await still_works(tutor, student, 1)
    error = await refused(student, frame)
    assert error.code == code, error
    assert error.message
    await still_works(tutor, student, 2)
    await student.wait_for(lambda: student.connected)
    assert tutor.errors == []


async def test_text_frame_is_refused(server: RunningServer) -> None:
    tutor, student = await server.pair("e-text")
    assert student._ws is not None
    await student._ws.send("hello")
    await student.wait_for(lambda: bool(student.errors))
    assert student.errors[-1].code == ErrorCode.BAD_FRAME
    await still_works(tutor, student, 3)


async def test_too_many_points_and_out_of_range(start_server: StartServer) -> None:
    server = await start_server(limits={"max_points_per_message": 16, "max_coordinate": 60_000})
    tutor, student = await server.pair("e-points")
    stroke = await student.begin_stroke(0)
    pts = [Point(100 + i, 100, i, 10) for i in range(17)]
    error = await refused(student, encode(m.StrokePoints(100, stroke, 0, 17, encode_points(pts, 1, PointState()))))
    assert (error.code, error.ref) == (ErrorCode.TOO_MANY_POINTS, 100)
    far = [Point(60_001, 5, 0, 10)]
    error = await refused(student, encode(m.StrokePoints(101, stroke, 0, 1, encode_points(far, 1, PointState()))))
    assert (error.code, error.ref) == (ErrorCode.OUT_OF_RANGE, 101)
    # the refused batches left the stroke as it was: valid points still continue it
    student.cseq = 101
    await student.add_points(stroke, [Point(5, 5, 0, 10)])
    await student.end_stroke(stroke)
    await tutor.wait_for(lambda: len(finished(tutor, Role.STUDENT)) == 1)
    assert finished(tutor, Role.STUDENT) == [[Point(5, 5, 0, 10)]]
    await still_works(tutor, student, 4)


async def test_oversized_frame_closes_that_connection_only(start_server: StartServer) -> None:
    server = await start_server(limits={"max_frame_bytes": 4096})
    tutor, student = await server.pair("e-size")
    await student.send_raw(encode(m.StrokePoints(1, 1, 0, 1, b"\x00" * 5000)))
    assert await student.wait_closed() == CloseCode.FRAME_TOO_LARGE
    assert student.errors[-1].code == ErrorCode.FRAME_TOO_LARGE
    await tutor.wait_for(lambda: tutor.replica.online.get(student.pid) is False)
    await student.connect()  # the participant may come back and the session carries on
    await still_works(tutor, student, 5)


async def test_flood_past_the_rate_limit(start_server: StartServer) -> None:
    server = await start_server(limits={"rate_messages_per_s": 50.0, "rate_burst": 20})
    tutor, student = await server.pair("e-flood")
    ping = encode(m.Ping(1))
    for _ in range(200):
        try:
            await student.send_raw(ping)
        except websockets.ConnectionClosed:
            break
    assert await student.wait_closed() == CloseCode.RATE_LIMITED
    assert [e.code for e in student.errors] == [ErrorCode.RATE_LIMITED]
    await student.connect()
    await still_works(tutor, student, 6)


async def test_a_client_pacing_itself_under_the_limit_loses_no_ink(start_server: StartServer) -> None:
    """A long outbox after an outage goes out paced under the limit the Welcome announced."""
    server = await start_server(limits={"rate_messages_per_s": 100.0, "rate_burst": 20})
    tutor, student = await server.pair("e-pace")
    assert tutor.welcome is not None and (tutor.welcome.rate_per_s, tutor.welcome.rate_burst) == (100, 20)
    await tutor.drop()
    strokes = [handwriting(40, seed) for seed in range(3)]
    for points in strokes:  # drawn offline: 3 x 12 ops, far past the burst
        await draw(tutor, points)
    await tutor.connect()
    await student.wait_for(lambda: len(finished(student, Role.TUTOR)) == 3, timeout=10)
    assert finished(student, Role.TUTOR) == strokes
    assert tutor.errors == [] and tutor.connected


async def test_too_many_errors_closes_with_protocol_violation(start_server: StartServer) -> None:
    server = await start_server(max_errors=5)
    tutor, student = await server.pair("e-errors")
    for _ in range(6):
        await student.send_raw(b"\xc1")
    assert await student.wait_closed() == CloseCode.PROTOCOL_VIOLATION
    assert student.errors[-1].code == ErrorCode.TOO_MANY_ERRORS
    await student.connect()
    await still_works(tutor, student, 7)


def _token(session: str, role: str, exp_in: int) -> str:
    return TokenSigner(SECRET).mint(session, "mallory", Role.from_label(role), int(time.time()) + exp_in)


@pytest.mark.parametrize(
    ("token", "role", "code", "close"),
    [
        ("not-a-token", Role.STUDENT, ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED),
        (TokenSigner("another-secret-of-32-characters!!").mint("e-auth", "u", Role.STUDENT, 2**31),
         Role.STUDENT, ErrorCode.AUTH_FAILED, CloseCode.AUTH_FAILED),
        (_token("e-auth", "student", -5), Role.STUDENT, ErrorCode.TOKEN_EXPIRED, CloseCode.TOKEN_EXPIRED),
        (_token("other-session", "student", 600), Role.STUDENT, ErrorCode.WRONG_SESSION, CloseCode.FORBIDDEN),
        (_token("e-auth", "student", 600), Role.TUTOR, ErrorCode.WRONG_SEAT, CloseCode.FORBIDDEN),
    ],
)
async def test_bad_tokens_are_refused(
    server: RunningServer, token: str, role: Role, code: ErrorCode, close: CloseCode
) -> None:
    tutor, student = await server.pair("e-auth")
    intruder = SessionClient(server.url("e-auth"), token, role)
    with pytest.raises(ConnectionRefusedError):
        await intruder.connect()
    assert intruder.errors[-1].code == code
    assert intruder.close_code == close
    await still_works(tutor, student, 8)


async def test_wrong_version_and_non_join_first_frame(server: RunningServer) -> None:
    for first, close in [
        (encode(m.Join(99, _token("e-v", "tutor", 600), Role.TUTOR, 0)), CloseCode.UNSUPPORTED_VERSION),
        (encode(m.Ping(1)), CloseCode.PROTOCOL_VIOLATION),
        (b"\xc1", CloseCode.PROTOCOL_VIOLATION),
    ]:
        async with websockets.connect(server.url("e-v")) as ws:
            await ws.send(first)
            error = m.Error(*msgpack.unpackb(await ws.recv())[1:])
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == close, error


async def test_join_timeout(start_server: StartServer) -> None:
    server = await start_server(join_timeout_s=0.2)
    async with websockets.connect(server.url("e-t")) as ws:
        frame = await asyncio.wait_for(ws.recv(), 5)
        assert msgpack.unpackb(frame)[1] == ErrorCode.JOIN_TIMEOUT
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == CloseCode.JOIN_TIMEOUT


async def test_a_second_connection_replaces_the_first(server: RunningServer) -> None:
    tutor, student = await server.pair("e-replace")
    second = server.client("e-replace", Role.STUDENT)
    await second.connect()
    assert await student.wait_closed() == CloseCode.REPLACED
    assert student.errors[-1].code == ErrorCode.REPLACED
    await still_works(tutor, second, 9)


async def _joined(server: RunningServer, role: Role, **kw: Any) -> ClientConnection:
    ws = await websockets.connect(server.url("e-slow"), max_size=None, **kw)
    await ws.send(encode(m.Join(PROTOCOL_VERSION, server.token("e-slow", role), role, 0)))
    assert isinstance(decode_frame(await ws.recv(decode=False), LOOSE), m.Welcome)
    return ws


async def test_slow_consumer_is_closed_and_resumes_without_loss(start_server: StartServer) -> None:
    n = 12_000
    server = await start_server(send_queue_max=8, limits={"max_points_per_message": n})
    tutor = await _joined(server, Role.TUTOR)
    tutor_frames: list[m.Message] = []

    async def read_tutor() -> None:
        async for frame in tutor:
            tutor_frames.append(decode_frame(frame, LOOSE))  # type: ignore[arg-type]

    reader = asyncio.create_task(read_tutor())
    # a student that stops reading: a small receive window, then the server's buffers fill
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    stalled = await _joined(server, Role.STUDENT, sock=sock, max_queue=1)
    blob = encode_points([Point(1000 + i % 500, 2000, i) for i in range(n)], 0, PointState())
    offline = m.Presence("student", False, Role.STUDENT)
    strokes, cseq = 0, 0
    while not any(isinstance(f, m.Event) and f.body == offline for f in tutor_frames):
        assert strokes < 400, "the stalled student was never cut off"
        strokes += 1
        for op in (m.StrokeBegin(cseq + 1, strokes, 0, m.Tool.PEN, 255, 10, 0, 0),
                   m.StrokePoints(cseq + 2, strokes, 0, n, blob), m.StrokeEnd(cseq + 3, strokes)):
            await tutor.send(encode(op))
        cseq += 3
        await asyncio.sleep(0.01)  # the server's pace, not ours
    stalled.transport.abort()
    # nothing was refused, and the tutor's session went on
    assert not [f for f in tutor_frames if isinstance(f, m.Error)]
    # the student comes back on a working link and gets every stroke exactly once
    student = await _joined(server, Role.STUDENT)
    got: dict[int, bytes] = {}
    ended: set[int] = set()
    while len(ended) < strokes:
        msg = decode_frame(await asyncio.wait_for(student.recv(decode=False), 10), LOOSE)
        if isinstance(msg, m.Event) and isinstance(msg.body, m.StrokePoints):
            assert msg.body.stroke not in got, "a batch arrived twice"
            got[msg.body.stroke] = msg.body.blob
        elif isinstance(msg, m.Event) and isinstance(msg.body, m.StrokeEnd):
            ended.add(msg.body.stroke)
    assert got == {i: blob for i in range(1, strokes + 1)}
    await student.close()
    await tutor.close()
    reader.cancel()


async def test_a_server_fault_closes_that_connection_with_1011_and_it_resumes(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    url = server.url("e-fault")
    tutor = SessionClient(url, server.token("e-fault", Role.TUTOR), Role.TUTOR, auto_reconnect=True,
                          backoff_initial_s=0.01)
    student = server.client("e-fault", Role.STUDENT)
    first = await tutor.connect()
    await student.connect()
    live = server.hub.rooms["e-fault"]
    original = Room._check
    faults: list[m.Op] = []

    def faulty(room: Room, state: ParticipantState, op: m.Op) -> None:
        if isinstance(op, m.PageAdd) and not faults:  # once: a bug the next attempt does not meet
            faults.append(op)
            raise RuntimeError("injected fault")
        original(room, state, op)

    monkeypatch.setattr(Room, "_check", faulty)
    with caplog.at_level(logging.ERROR, logger="tutorwire.connection"):
        await tutor.add_page(1)
        await tutor.wait_for(lambda: tutor.reconnects == 1, timeout=10)
    assert tutor.close_code == INTERNAL_CLOSE
    assert [(e.code, e.ref) for e in tutor.errors] == [(ErrorCode.INTERNAL_ERROR, 0)]  # ref 0: resend it
    [record] = [r for r in caplog.records if r.name == "tutorwire.connection" and r.exc_info]
    assert record.exc_info is not None and str(record.exc_info[1]) == "injected fault"
    # the room is the same room; the op whose handling failed was resent on resume and applied once
    assert server.hub.rooms["e-fault"] is live and tutor.welcome is not None
    assert tutor.welcome.epoch == first.epoch and tutor.welcome.pid == first.pid
    await student.wait_for(lambda: len(student.replica.pages) == 2)
    await tutor.wait_for(lambda: not tutor.outbox)
    assert len(faults) == 1 and student.errors == []
    await still_works(tutor, student, 10)
    points = handwriting(20, 11)
    await draw(student, points)
    await tutor.wait_for(lambda: finished(tutor, Role.STUDENT) == [points])
    await tutor.close()
    await student.close()
