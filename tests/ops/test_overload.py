"""Overload shedding (``sessionserver/overload.py``): the load gauge with time stepped by hand, the
documented answers (``Error 2011`` + close 4014 for a join that opens a new room or brings someone
new to a live one, while a known participant resumes; 503 + ``Retry-After`` for
``POST /api/requests``), and the server under a real flood of new sessions:
the live session's ink stays fast while new joins are refused, and joins work again after."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from bench.ipc import recv_command
from bench.servers import ServerProcess, free_port
from bench.soak import BATCH_S, Discard, Latencies, Pen, answering_pings, connect_to, join_frame, strokes
from bench.soak import join as joined
from sessionserver.auth import TokenSigner
from sessionserver.overload import BUSY_CLOSE, BUSY_ERROR, Busy, LoadGauge, OverloadConfig
from tests.conftest import SECRET, RunningServer, StartServer
from wire import Role
from wire import messages as m

# The live session's ink p99 while the flood is refused. Measured here (2 shared cores, load
# average 5): 8-77 ms with shedding at a CPU bound of 0.35; 198 ms with shedding off (both 0),
# where the flood's one process is what limits it, near 1,000 sessions either way. A clean-clone
# CI run (the suite alone on the 2 cores, the flood's clients beside the server) measured 300 ms,
# so the bound is what a live session must never pass here, not the figure shedding reaches on a
# quiet machine (that is for a benchmark to measure).
LIVE_P99_BOUND_MS = 500.0


# --- the gauge, time stepped by hand ------------------------------------------------------------


def test_a_lagging_loop_is_busy_and_one_pause_is_not() -> None:
    gauge = LoadGauge(OverloadConfig(lag_ms=50, cpu=0, window_s=1.0, retry_s=3), 0.0, 0.0)
    t = 0.0
    for _ in range(19):  # 50 ms probes, on time
        t += 0.05
        assert gauge.sample(t, 0.001, 0.0) is None
    t += 0.3
    assert gauge.sample(t, 0.3, 0.0) is None  # one 300 ms pause (a GC): the median is still low
    for _ in range(12):
        t += 0.15
        busy = gauge.sample(t, 0.1, 0.0)  # every probe 100 ms late
    assert busy == Busy("lag", 3) and busy.message == "server busy, retry in 3 s"
    for _ in range(30):
        t += 0.05
        busy = gauge.sample(t, 0.002, 0.0)
    assert busy is None  # the window has moved past the lag


def test_a_saturated_loop_thread_is_busy_and_other_processes_load_is_not_counted() -> None:
    gauge = LoadGauge(OverloadConfig(lag_ms=0, cpu=0.9, window_s=1.0, retry_s=5), 0.0, 0.0)
    t = cpu = 0.0
    for _ in range(40):
        t, cpu = t + 0.05, cpu + 0.049  # 98 % of a core on this thread
        busy = gauge.sample(t, 0.0, cpu)
    assert busy == Busy("cpu", 5) and gauge.cpu_ratio == pytest.approx(0.98)
    for _ in range(40):
        t, cpu = t + 0.05, cpu + 0.02  # 40 %
        busy = gauge.sample(t, 0.0, cpu)
    assert busy is None and gauge.cpu_ratio == pytest.approx(0.4)


def test_bad_overload_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="overload settings"):
        OverloadConfig(window_s=0)
    with pytest.raises(ValueError, match="overload settings"):
        OverloadConfig(retry_s=0)


# --- the documented answers -------------------------------------------------------------------------


async def first_frame(server: RunningServer | int, room: str, user: str, role: Role) -> tuple[list[Any], int | None]:
    """Join ``room``; the first frame the server sends (decoded) and its close code, if it closed."""
    port = server if isinstance(server, int) else server.port
    got: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    def on_message(payload: bytes, now: float) -> None:
        if not got.done():
            got.set_result(msgpack.unpackb(payload))

    client = await connect_to(port, room, lambda c: on_message)
    client.send(join_frame(TokenSigner(SECRET), room, user, role))
    frame = await asyncio.wait_for(got, 10)
    if frame[0] == m.MsgType.ERROR:
        await asyncio.wait_for(client.closed, 10)
    else:
        client.close()
    return frame, client.close_code


async def test_while_busy_a_new_room_is_refused_a_live_one_joined_and_requests_get_503(
        start_server: StartServer) -> None:
    server = await start_server()
    tutor = server.client("live-room", Role.TUTOR, "live-room-tutor")
    await tutor.connect()
    shedder = server.app.state.shedder
    shedder.forced = Busy("lag", 3)
    frame, code = await first_frame(server, "new-room", "tutor", Role.TUTOR)
    assert frame[0] == m.MsgType.ERROR and frame[1:3] == [BUSY_ERROR, "server busy, retry in 3 s"]
    assert code == BUSY_CLOSE
    assert "new-room" not in server.hub.rooms
    frame, code = await first_frame(server, "live-room", "student", Role.STUDENT)  # someone new to a live room
    assert frame[0] == m.MsgType.ERROR and frame[1] == BUSY_ERROR and code == BUSY_CLOSE
    frame, code = await first_frame(server, "live-room", "live-room-tutor", Role.TUTOR)  # a known one resumes
    assert frame[0] == m.MsgType.WELCOME
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        busy = await http.post("/api/requests", json={"subject": "math"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "3"
        assert busy.json() == {"error": "server busy, retry in 3 s", "retry_after_s": 3}
        assert (await http.get("/healthz")).status_code == 200  # everything else goes on
        shedder.forced = None
        assert (await http.post("/api/requests", json={"subject": "math"})).status_code == 401  # no sign-in
    frame, code = await first_frame(server, "new-room", "tutor", Role.TUTOR)
    assert frame[0] == m.MsgType.WELCOME
    assert shedder.refused == {"join": 2, "request": 1}
    await tutor.close()


# --- a real flood -----------------------------------------------------------------------------------


def flood_process(conn: Connection, port: int, secret: str) -> None:
    """New sessions as fast as they are let in, each with a tutor writing 62.5 batches a second,
    until told to stop; reports what was joined and refused."""
    import uvloop

    uvloop.run(_flood(conn, port, secret))


async def _flood(conn: Connection, port: int, secret: str) -> None:
    signer = TokenSigner(secret)
    library = strokes(8, 4)
    pens: list[Pen] = []
    refused = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), stop.set)

    async def write() -> None:
        k, due = 0, loop.time()
        while not stop.is_set():
            now = time.monotonic()
            for pen in list(pens):
                pen.batch(k, now)
            k += 1
            due += BATCH_S
            await asyncio.sleep(max(0.0, due - loop.time()))

    writer = loop.create_task(write())
    n = 0
    while not stop.is_set():
        n += 1
        try:
            client = await joined(port, signer, f"flood-{n}", "tutor", Role.TUTOR)
        except ConnectionError:
            refused += 1
            await asyncio.sleep(0.02)  # keep knocking, far faster than the 1 s it is told
            continue
        pens.append(Pen(client, library, Discard()))
    await writer
    assert await recv_command(conn) == "stop"
    for pen in pens:
        pen.client.close()
    conn.send({"joined": len(pens), "refused": refused})


async def metric(port: int, name: str) -> float:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        text = (await http.get("/metrics")).text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.mark.timeout(180)
async def test_a_flood_of_new_sessions_is_refused_while_the_live_session_stays_fast(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env.update(TUTORWIRE_SECRET=SECRET, TUTORWIRE_LOG_LEVEL="warning", TUTORWIRE_MATCHER_WORKER="false",
               TUTORWIRE_RECORD="false", TUTORWIRE_OVERLOAD_CPU="0.35", TUTORWIRE_OVERLOAD_LAG_MS="50",
               TUTORWIRE_OVERLOAD_WINDOW_S="1", TUTORWIRE_OVERLOAD_RETRY_S="1")
    argv = [str(Path(sys.executable).with_name("tutorwire")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess("tutorwire", argv, port, tmp_path / "server.log", env)
    try:
        server.wait_ready()
        signer = TokenSigner(SECRET)
        tutor = await joined(port, signer, "live", "tutor", Role.TUTOR)
        student = await joined(port, signer, "live", "student", Role.STUDENT)
        sent = [0.0] * 100_000
        pen = Pen(tutor, strokes(8, 4), sent)
        latencies = Latencies(3)  # by phase: before, during, after the flood
        phase = [0]
        loop = asyncio.get_running_loop()
        k = 0

        def on_ink(payload: bytes, now: float) -> None:
            if payload[1:2] == b"\x04":  # an Event
                body = msgpack.unpackb(payload)[5]
                if body[0] == 11:  # StrokePoints: [11, stroke, start, count, blob]
                    latencies.add(phase[0], (now - sent[body[1] * pen.per_stroke + body[2] // 4]) * 1000)

        student.on_message = answering_pings(student, on_ink)

        async def write(seconds: float, window: int) -> None:
            """The live tutor writes for ``seconds``, its batches counted in phase ``window``."""
            nonlocal k
            end, due = loop.time() + seconds, loop.time()
            phase[0] = window
            while loop.time() < end:
                pen.batch(k, time.monotonic())
                k += 1
                due += BATCH_S
                await asyncio.sleep(max(0.0, due - loop.time()))

        await write(2.0, 0)
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        flood = ctx.Process(target=flood_process, args=(theirs, port, SECRET))
        flood.start()
        overloaded_seen, cpu_seen, lag_seen = False, 0.0, 0.0
        end = loop.time() + 12.0
        while loop.time() < end:
            await write(1.0, 1)
            overloaded_seen |= await metric(port, "tutorwire_overloaded") == 1
            cpu_seen = max(cpu_seen, await metric(port, "tutorwire_event_loop_cpu_ratio"))
            lag_seen = max(lag_seen, await metric(port, "tutorwire_event_loop_lag_median_seconds"))
        refused_during = await metric(port, 'tutorwire_shed_total{what="join"}')
        ours.send("stop")
        report = await loop.run_in_executor(None, ours.recv)
        flood.join(30)
        # recovery: once the flood's sessions are gone the server is not busy, and a new join works
        deadline = loop.time() + 30
        while await metric(port, "tutorwire_overloaded") != 0:
            assert loop.time() < deadline, "the server stayed busy after the flood"
            await write(0.5, 2)
        await write(2.0, 2)
        frame, _ = await first_frame(port, "after-the-flood", "tutor", Role.TUTOR)
        before, during, after = (latencies.p99(i, i + 1) for i in range(3))
        print(json.dumps({"flood": report, "overloaded_seen": overloaded_seen, "refused": refused_during,
                          "loop_cpu_max": cpu_seen, "lag_median_max_s": lag_seen,
                          "p99_ms": {"before": before, "during": during, "after": after}}))
        assert report["refused"] > 0 and refused_during > 0 and overloaded_seen
        assert during is not None and during < LIVE_P99_BOUND_MS
        assert after is not None and after < LIVE_P99_BOUND_MS
        assert frame[0] == m.MsgType.WELCOME
        assert latencies.count(0, 3) == k  # every batch of the live session arrived
        tutor.close()
        student.close()
    finally:
        server.stop()
