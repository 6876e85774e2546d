"""A class viewer whose link stalls for 10 s (it stops reading, as a phone in a dead spot does)
while the presenter goes on writing: the server's bounded queue for it overflows, it is closed
as a slow consumer (4010) without slowing anyone else, and it comes back by snapshot with nothing
missing. A late joiner of a class with 10,000 strokes on its pages gets them all from the
snapshot at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from sessionserver.client import SessionClient
from tests.conftest import StartServer
from tests.inkdata import draw, handwriting, pages_of
from wire import HAS_PRESSURE, CatchUp, PointState, Role, encode_points
from wire import messages as m

ROOM = "class-5107a11e0000"


@pytest.mark.timeout(90)
async def test_a_stalled_viewer_comes_back_by_snapshot_with_nothing_missing(start_server: StartServer) -> None:
    server = await start_server(send_queue_max_bytes=64 * 1024, oplog_max_events=200)
    presenter = server.client(ROOM, Role.PRESENTER, "t.wang")
    await presenter.connect()
    stalled = SessionClient(server.url(ROOM), server.token(ROOM, Role.VIEWER, "s.slow"), Role.VIEWER,
                            auto_reconnect=True)
    steady = server.client(ROOM, Role.VIEWER, "s.steady")
    await stalled.connect()
    await steady.connect()
    ws = stalled._ws
    assert ws is not None
    ws.transport.pause_reading()  # the phone's link stalls: nothing it is sent is read
    started = time.monotonic()
    strokes = 0
    while time.monotonic() - started < 10:  # the presenter writes on for the 10 s
        await draw(presenter, handwriting(24, seed=strokes))
        strokes += 1
        await asyncio.sleep(0.01)  # a pen's pace, not synchronisation
    ws.transport.resume_reading()
    await presenter.wait_for(lambda: not presenter.outbox, timeout=20)
    await steady.wait_for(lambda: pages_of(steady) == pages_of(presenter), timeout=20)
    await stalled.wait_for(lambda: stalled.welcome is not None and stalled.welcome.mode is CatchUp.SNAPSHOT
                           and pages_of(stalled) == pages_of(presenter), timeout=30)
    assert stalled.session.joins >= 2 and steady.session.joins == 1  # only the slow one was cut
    assert sum(1 for _ in presenter.replica.strokes(presenter.pid)) == strokes
    for c in (presenter, stalled, steady):
        await c.close()


@pytest.mark.timeout(120)
async def test_a_late_joiner_gets_a_class_of_ten_thousand_strokes(start_server: StartServer) -> None:
    server = await start_server(limits={"max_strokes_per_page": 20_000}, oplog_max_events=1000)
    presenter = server.client(ROOM, Role.PRESENTER, "t.wang")
    await presenter.connect()
    # 10,000 strokes of 8 points, put into the room as its presenter's ops (the rate limit would
    # make sending them take minutes; the late join is what is measured)
    room = server.hub.rooms[ROOM].room
    cseq, now = presenter.cseq, time.monotonic()
    for i in range(10_000):
        points = handwriting(8, seed=i)
        state = PointState()
        ops: list[m.Op] = [m.StrokeBegin(cseq + 1, i, 0, m.Tool.PEN, 0x000000FF, 20, HAS_PRESSURE, 1000 + i),
                           m.StrokePoints(cseq + 2, i, 0, 8, encode_points(points, HAS_PRESSURE, state)),
                           m.StrokeEnd(cseq + 3, i)]
        for op in ops:
            room.apply(presenter.pid, op, now)
        cseq += 3
    late = server.client(ROOM, Role.VIEWER, "s.late")
    started = time.monotonic()
    welcome = await late.connect()
    await late.wait_for(lambda: sum(1 for _ in late.replica.strokes(presenter.pid)) == 10_000, timeout=30)
    took_ms = (time.monotonic() - started) * 1000
    print(f"10,000 strokes reached a late joiner {took_ms:.0f} ms after it asked to join")
    assert welcome.mode is CatchUp.SNAPSHOT
    assert sum(len(s.points) for s in late.replica.strokes(presenter.pid)) == 80_000
    assert took_ms < 5000  # generous on a shared machine; bench/class_fanout.py measures it precisely
    await presenter.close()
    await late.close()
