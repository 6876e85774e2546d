"""The class benchmark's WebRTC audio step (``bench.class_fanout``): one presenter's Opus, sent
over its session WebSocket, forwarded by the server to V class viewers that each listen over a
WebRTC leg (an aiortc peer signalled through the viewer's session WebSocket).

The viewers run in processes pinned to the load CPU and never decode: each taps its receiver
before aiortc's jitter buffer and notes which packet of the presenter's looped stream arrived
when (the payloads are distinct; the RTP numbers are the server's own). A packet the presenter
sent in the window counts as delivered to a viewer if that viewer got it; a step is complete
when every viewer got at least 99 % of the window's packets. ``viewers_per_core`` = V / (the
server's CPU share over the window); ``p50_ms``/``p99_ms``: the presenter's write to a viewer's
receive, loopback included.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import math
import multiprocessing as mp
import os
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

import msgpack
from aiortc import RTCSessionDescription
from aiortc.rtp import RtpPacket

from sessionserver.auth import TokenSigner
from wire import PROTOCOL_VERSION, Role, encode
from wire import messages as m

from .audio_peers import STREAM_PACKETS, loopback_peer, opus_stream, restrict_to_loopback, stream_index, tap_receiver
from .audio_peers import wait_connected as peer_connected
from .audio_relay import expect
from .ipc import recv_command
from .servers import ServerProcess, process_cpu_s
from .wsload import WsClient, connect

FULL_DELIVERY = 0.99
PACKET_S = 0.020
SETUP_CONCURRENCY = 8
_WELCOME, _ANSWER, _ERROR = int(m.MsgType.WELCOME), int(m.MsgType.RTC_ANSWER), int(m.MsgType.ERROR)


def _join(signer: TokenSigner, room: str, user: str, role: Role) -> bytes:
    return encode(m.Join(PROTOCOL_VERSION, signer.mint(room, user, role, int(time.time()) + 3600), role, 0, 0))


class _Viewer:
    def __init__(self, index: dict[bytes, int]) -> None:
        self.index = index
        self.received = array("d")  # arrival time, by stream index + STREAM_PACKETS * position
        self.keys = array("l")
        self.recording = False
        self.welcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.errors: list[str] = []

    def on_session_frame(self, payload: bytes, now: float) -> None:
        items = msgpack.unpackb(payload)
        if items[0] == _WELCOME and not self.welcome.done():
            self.welcome.set_result(None)
        elif items[0] == _ANSWER and not self.answer.done():
            self.answer.set_result(items[1])
        elif items[0] == _ERROR:
            self.errors.append(str(items))
            for f in (self.welcome, self.answer):
                if not f.done():
                    f.set_exception(ConnectionError(str(items)))

    def on_rtp(self, packet: RtpPacket, now: float) -> None:
        if self.recording:
            self.keys.append(self.index.get(packet.payload, -1))
            self.received.append(now)


async def _viewers(conn: Connection, port: int, secret: str, room: str, first: int, count: int) -> None:
    signer = TokenSigner(secret)
    index = stream_index(opus_stream())
    viewers = [_Viewer(index) for _ in range(count)]
    clients: list[WsClient] = []
    peers = []
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def open_one(i: int, viewer: _Viewer) -> None:
        async with limit:
            client = await connect("127.0.0.1", port, f"/ws/session/{room}")
            clients.append(client)
            client.on_message = viewer.on_session_frame
            client.send(_join(signer, room, f"rtc-viewer-{first + i}", Role.VIEWER))
            await asyncio.wait_for(viewer.welcome, 30)
            pc = loopback_peer()
            peers.append(pc)
            tap_receiver(pc.addTransceiver("audio", direction="recvonly").receiver, viewer.on_rtp)
            restrict_to_loopback(pc)
            await pc.setLocalDescription(await pc.createOffer())
            client.send(encode(m.RtcOffer(pc.localDescription.sdp)))
            sdp = await asyncio.wait_for(viewer.answer, 60)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            await peer_connected(pc, 60)

    try:
        await asyncio.gather(*(open_one(i, v) for i, v in enumerate(viewers)))
        conn.send(("ready", os.getpid()))
        assert await recv_command(conn) == "start"
        for viewer in viewers:
            viewer.recording = True
        assert await recv_command(conn) == "report"
        conn.send(("report", [(v.keys.tobytes(), v.received.tobytes(), v.errors) for v in viewers]))
    except Exception as exc:  # tell the orchestrator rather than hang it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        for pc in peers:
            with contextlib.suppress(Exception):
                await pc.close()
        for client in clients:
            client.close()


def viewer_process(conn: Connection, port: int, secret: str, room: str, first: int, count: int, cpu: int) -> None:
    """Process entry point: pinned to ``cpu``, on uvloop, with the cyclic GC off (aiortc's cycles)."""
    os.sched_setaffinity(0, {cpu})
    gc.disable()
    import uvloop

    uvloop.run(_viewers(conn, port, secret, room, first, count))


async def measure(server: ServerProcess, secret: str, room: str, viewers: int, procs: int, seconds: float,
                  cpu: int) -> dict[str, Any]:
    """One step: ``viewers`` WebRTC viewers of a fresh class room on ``server``."""
    signer = TokenSigner(secret)
    presenter = await connect("127.0.0.1", server.port, f"/ws/session/{room}")
    welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    presenter.on_message = lambda payload, now: None if welcomed.done() else welcomed.set_result(None)
    presenter.send(_join(signer, room, "teacher", Role.PRESENTER))
    await asyncio.wait_for(welcomed, 30)
    ctx = mp.get_context("spawn")
    pipes, workers = [], []
    first = 0
    for i in range(procs):
        n = viewers // procs + (1 if i < viewers % procs else 0)
        ours, theirs = ctx.Pipe()
        worker = ctx.Process(target=viewer_process, args=(theirs, server.port, secret, room, first, n, cpu),
                             daemon=True)
        worker.start()
        pipes.append(ours)
        workers.append(worker)
        first += n
    loop = asyncio.get_running_loop()
    try:
        pids = [await loop.run_in_executor(None, expect, p, "ready", 240) for p in pipes]
        stream = opus_stream()
        sends: list[float] = []
        start = time.monotonic()

        async def play(until: float) -> None:  # one packet every 20 ms, on the presenter's clock
            while (due := start + len(sends) * PACKET_S) < until:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                k = len(sends)
                sends.append(time.monotonic())
                presenter.send(encode(m.Audio(k, int(time.time() * 1000), stream[k % STREAM_PACKETS])))

        for pipe in pipes:
            pipe.send("start")
        await play(start + 1.0)  # warm-up
        cpu0, viewer_cpu0, t0 = server.cpu_s(), sum(process_cpu_s(p) for p in pids), time.monotonic()
        await play(t0 + seconds)
        t1 = time.monotonic()
        server_cpu, viewer_cpu = server.cpu_s() - cpu0, sum(process_cpu_s(p) for p in pids) - viewer_cpu0
        await asyncio.sleep(0.5)  # the window's last packets on their way
        for pipe in pipes:
            pipe.send("report")
        reports = [await loop.run_in_executor(None, expect, p, "report", 60) for p in pipes]
    finally:
        presenter.close()
        for worker in workers:
            worker.join(15)
            if worker.is_alive():
                worker.terminate()
    lo, hi = bisect.bisect_left(sends, t0), bisect.bisect_left(sends, t1)
    shares: list[float] = []
    latencies: list[float] = []
    errors: list[str] = []
    for report in reports:
        for raw_keys, raw_times, errs in report:
            keys, times = array("l"), array("d")
            keys.frombytes(raw_keys)
            times.frombytes(raw_times)
            errors += errs
            seen: set[int] = set()
            for key, r in zip(keys, times, strict=True):
                last = bisect.bisect_right(sends, r) - 1
                if key < 0 or last < 0:
                    continue
                k = last - (last - key) % STREAM_PACKETS  # the latest send of that payload before r
                if lo <= k < hi and k not in seen:
                    seen.add(k)
                    latencies.append(1000 * (r - sends[k]))
            shares.append(len(seen) / (hi - lo) if hi > lo else math.nan)
    latencies.sort()
    share = server_cpu / (t1 - t0)
    return {
        "viewers": viewers, "packets": hi - lo, "complete": bool(shares) and min(shares) >= FULL_DELIVERY,
        "delivered_min": round(min(shares), 4) if shares else None,
        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "server_cpu_percent": round(100 * share, 1),
        "viewers_per_core": round(viewers / share, 1) if share > 0 else None,
        "viewers_cpu_percent": round(100 * viewer_cpu / (t1 - t0), 1), "errors": errors[:3],
    }
