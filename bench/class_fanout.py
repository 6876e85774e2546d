"""One presenter to a class of V viewers over WebSocket, through the real server.

``python -m bench.class_fanout [--viewers 50,100,200,400] [--seconds 6] [--procs 2]``

The server (``tutorwire serve``, recording on) runs pinned to CPU 0. The presenter streams 120 Hz
ink in 16 ms batches (two points a batch, a new stroke every second) and one 20 ms Opus packet
every 20 ms over its WebSocket. The viewers are minimal WebSocket clients (``bench/wsload.py``) in
``--procs`` processes pinned to CPU 1; each notes when every ink batch arrives. For each V of the
sweep, after all viewers have joined, a window of ``--seconds`` is measured:

- every viewer gets every ink batch and audio packet sent in the window (``complete``);
- latency from the presenter's write to a viewer's read of each ink batch (one clock: Linux's
  monotonic clock is the same in every process), p50 and p99 over all viewers;
- deliveries (ink and audio frames received by viewers) per server CPU-second;
- the server's resident memory, and the viewers' own CPU (if it nears a core, the viewers are
  the bottleneck and the figures say so).

``ws_viewers_per_core`` is the largest V that is complete with p99 <= 50 ms, divided by the
server's CPU use at that V (its share of one core), that is, the viewers one fully used core
would hold at the same cost per viewer. ``late_join_ms_10k_strokes``: a class whose pages hold
10,000 strokes (put in by the presenter on a server with the rate limit raised for the purpose),
from a late viewer's Welcome to the last snapshot frame decoded and validated. The last line is
one JSON object. ``webrtc_audio_viewers_per_core``: the same rule for the presenter's audio alone to
viewers that each listen over a WebRTC leg (``bench.audio_class``; ``--webrtc-viewers``, an empty
list skips it: null).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import statistics
import sys
import tempfile
import time
from array import array
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack

from bench import audio_class
from bench.ipc import recv_command
from bench.servers import ServerProcess, free_port, process_cpu_s, tutorwire_server
from bench.wsload import WsClient, connect
from sessionserver.auth import TokenSigner
from wire import HAS_PRESSURE, PROTOCOL_VERSION, Limits, Point, PointState, Role, decode_frame, encode, encode_points
from wire import messages as m

ROOM = "class-benchfanout01"
BATCH_S = 0.016
AUDIO_S = 0.020
BATCHES_PER_STROKE = 60
OPUS = b"\xf8\xff\xfe"  # a 20 ms Opus packet (silence): forwarded as it is, never decoded
P99_BOUND_MS = 50.0
SERVER_CPU, VIEWER_CPU = 0, 1


def join_frame(signer: TokenSigner, user: str, role: Role) -> bytes:
    token = signer.mint(ROOM, user, role, int(time.time()) + 3600)
    return encode(m.Join(PROTOCOL_VERSION, token, role, 0, 0))


async def joined(client: WsClient, join: bytes) -> list[bytes]:
    """Send ``join`` and wait for the Welcome; the frames that came with it (catch-up) are returned."""
    got: list[bytes] = []
    welcome = asyncio.get_running_loop().create_future()

    def on_message(payload: bytes, now: float) -> None:
        got.append(payload)
        if not welcome.done() and msgpack.unpackb(payload)[0] == m.MsgType.WELCOME:
            welcome.set_result(None)

    client.on_message = on_message  # before the join goes: the Welcome may come at the next loop turn
    client.send(join)
    await asyncio.wait_for(welcome, 30)
    return got


# --- the viewers' processes -----------------------------------------------------------------------


def viewer_process(conn: Connection, port: int, secret: str, first: int, count: int) -> None:
    os.sched_setaffinity(0, {VIEWER_CPU})
    import uvloop

    uvloop.run(_viewers(conn, port, secret, first, count))


async def _viewers(conn: Connection, port: int, secret: str, first: int, count: int) -> None:
    signer = TokenSigner(secret)
    clients = [await connect("127.0.0.1", port, f"/ws/session/{ROOM}") for _ in range(count)]
    await asyncio.gather(*(joined(c, join_frame(signer, f"viewer-{first + i}", Role.VIEWER))
                           for i, c in enumerate(clients)))
    arrivals: list[array[float]] = [array("d") for _ in clients]  # by batch number k
    audio = [0] * len(clients)

    def counter(i: int) -> Any:
        times = arrivals[i]

        def on_message(payload: bytes, now: float) -> None:
            if payload[1:2] == b"\x1f":  # [31, ...]: AudioRelay
                audio[i] += 1
                return
            msg = msgpack.unpackb(payload)
            if msg[0] == 4 and msg[5][0] == 11:  # an Event of StrokePoints
                k = msg[5][1] * BATCHES_PER_STROKE + msg[5][2] // 2
                while len(times) <= k:
                    times.append(0.0)
                times[k] = now

        return on_message

    for i, client in enumerate(clients):
        client.on_message = counter(i)
    conn.send("ready")
    command = await recv_command(conn)
    assert command == "report"
    conn.send({"arrivals": [a.tobytes() for a in arrivals], "audio": audio,
               "cpu_s": process_cpu_s(os.getpid())})
    for client in clients:
        client.close()


# --- the presenter --------------------------------------------------------------------------------


class Presenter:
    def __init__(self, client: WsClient) -> None:
        self.client = client
        self.cseq = 0
        self.sent_at = array("d")  # by batch number k
        self.audio_sent = 0
        self._state = PointState()

    def op(self, make: Any) -> None:
        self.cseq += 1
        self.client.send(encode(make(self.cseq)))

    def batch(self, k: int, now: float) -> None:
        stroke, index = divmod(k, BATCHES_PER_STROKE)
        if index == 0:
            if stroke:
                self.op(lambda c: m.StrokeEnd(c, stroke - 1))
            self._state = PointState()
            self.op(lambda c: m.StrokeBegin(c, stroke, 0, m.Tool.PEN, 0x000000FF, 20, HAS_PRESSURE, 1 + stroke))
        points = [Point(10_000 + 9 * (index * 2 + j), 10_000 + (k % 7) * 3, (index * 2 + j) * 8, 600)
                  for j in range(2)]
        blob = encode_points(points, HAS_PRESSURE, self._state)
        self.op(lambda c: m.StrokePoints(c, stroke, index * 2, 2, blob))
        while len(self.sent_at) <= k:
            self.sent_at.append(0.0)
        self.sent_at[k] = now

    def audio(self, now: float) -> None:
        self.client.send(encode(m.Audio(self.audio_sent, int(now * 1000), OPUS)))
        self.audio_sent += 1


async def stream(presenter: Presenter, seconds: float, first_k: int) -> tuple[int, int, int]:
    """Ink and audio at their pace for ``seconds``; (first batch, last batch + 1, audio packets)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    k, audio_before = first_k, presenter.audio_sent
    next_ink, next_audio = start, start
    while loop.time() - start < seconds:
        now = loop.time()
        if now >= next_ink:
            presenter.batch(k, time.monotonic())
            k += 1
            next_ink += BATCH_S
        if now >= next_audio:
            presenter.audio(time.monotonic())
            next_audio += AUDIO_S
        await asyncio.sleep(max(0.0, min(next_ink, next_audio) - loop.time()))
    return first_k, k, presenter.audio_sent - audio_before


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(server: ServerProcess, secret: str, viewers: int, procs: int, seconds: float) -> dict[str, Any]:
    signer = TokenSigner(secret)
    client = await connect("127.0.0.1", server.port, f"/ws/session/{ROOM}")
    await joined(client, join_frame(signer, "teacher", Role.PRESENTER))
    presenter = Presenter(client)
    rss_before = rss_mb(server.pid)
    ctx = mp.get_context("spawn")
    pipes, workers = [], []
    share = [viewers // procs + (1 if i < viewers % procs else 0) for i in range(procs)]
    first = 0
    for n in share:
        ours, theirs = ctx.Pipe()
        worker = ctx.Process(target=viewer_process, args=(theirs, server.port, secret, first, n))
        worker.start()
        pipes.append(ours)
        workers.append(worker)
        first += n
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        assert await loop.run_in_executor(None, pipe.recv) == "ready"
    await stream(presenter, 1.0, 0)  # warm up
    cpu0, t0 = server.cpu_s(), time.monotonic()
    viewer_cpu0 = sum(process_cpu_s(w.pid) for w in workers if w.pid is not None)
    k0, k1, audio_sent = await stream(presenter, seconds, int(1.0 / BATCH_S) + 1)
    await asyncio.sleep(0.5)  # the last frames' way to the viewers
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - t0
    viewer_cpu = sum(process_cpu_s(w.pid) for w in workers if w.pid is not None) - viewer_cpu0
    rss_after = rss_mb(server.pid)
    latencies: list[float] = []
    complete = True
    for pipe in pipes:
        pipe.send("report")
    reports = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    for worker in workers:
        worker.join(10)
    audio_received = 0
    for report in reports:
        for raw in report["arrivals"]:
            got = array("d")
            got.frombytes(raw)
            for k in range(k0, k1):
                at = got[k] if k < len(got) else 0.0
                if at == 0.0:
                    complete = False
                else:
                    latencies.append((at - presenter.sent_at[k]) * 1000)
        audio_received += sum(report["audio"])
    client.close()
    latencies.sort()
    window_ink = (k1 - k0) * viewers
    return {
        "viewers": viewers, "complete": complete, "ink_batches": k1 - k0, "audio_packets": audio_sent,
        "ink_received": len(latencies), "ink_expected": window_ink,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "server_cpu_percent": round(100 * cpu / wall, 1),
        "deliveries_per_cpu_s": round((len(latencies) + audio_received) / cpu) if cpu else None,
        "viewers_cpu_percent": round(100 * viewer_cpu / wall, 1),
        "rss_mb": round(rss_after, 1), "rss_growth_mb": round(rss_after - rss_before, 1),
    }


async def late_join(log_dir: Path, strokes: int = 10_000) -> float:
    """Milliseconds from a late viewer's Welcome to its last snapshot frame decoded."""
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env.update(TUTORWIRE_SECRET=secret, TUTORWIRE_LOG_LEVEL="warning", TUTORWIRE_MATCHER_WORKER="false",
               TUTORWIRE_RECORD="false", TUTORWIRE_RATE_MESSAGES_PER_S="1000000", TUTORWIRE_RATE_BURST="1000000",
               TUTORWIRE_MAX_STROKES_PER_PAGE="20000", TUTORWIRE_SEND_QUEUE_MAX="100000",
               TUTORWIRE_SEND_QUEUE_MAX_BYTES=str(64 << 20))
    argv = [str(Path(sys.executable).with_name("tutorwire")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess("tutorwire (late join)", argv, port, log_dir / "late-join.log", env, SERVER_CPU)
    server.wait_ready()
    try:
        signer = TokenSigner(secret)
        client = await connect("127.0.0.1", port, f"/ws/session/{ROOM}")
        await joined(client, join_frame(signer, "teacher", Role.PRESENTER))
        presenter = Presenter(client)
        acked = asyncio.get_running_loop().create_future()
        last_cseq = strokes * 3

        def on_message(payload: bytes, now: float) -> None:
            msg = msgpack.unpackb(payload)
            if msg[0] == 22 and msg[1] >= last_cseq and not acked.done():
                acked.set_result(None)

        client.on_message = on_message
        for s in range(strokes):
            state = PointState()
            points = [Point(5_000 + 40 * (s % 1000) + 7 * j, 5_000 + 30 * (s // 1000) + 3 * j, 8 * j, 600)
                      for j in range(8)]
            blob = encode_points(points, HAS_PRESSURE, state)
            presenter.op(lambda c, s=s: m.StrokeBegin(c, s, 0, m.Tool.PEN, 0x000000FF, 20, HAS_PRESSURE, 1 + s))
            presenter.op(lambda c, s=s, blob=blob: m.StrokePoints(c, s, 0, 8, blob))
            presenter.op(lambda c, s=s: m.StrokeEnd(c, s))
            if s % 500 == 499:
                await asyncio.sleep(0)
        await asyncio.wait_for(acked, 120)
        late = await connect("127.0.0.1", port, f"/ws/session/{ROOM}")
        done = asyncio.get_running_loop().create_future()
        welcome_at: list[float] = []
        limits = Limits(max_strokes_per_page=20_000)

        def on_late(payload: bytes, now: float) -> None:
            msg = decode_frame(payload, limits)
            if isinstance(msg, m.Welcome):
                welcome_at.append(now)
            elif isinstance(msg, m.Snapshot) and msg.last and msg.page == 0 and not done.done():
                done.set_result(time.monotonic())

        late.on_message = on_late
        late.send(join_frame(signer, "late-viewer", Role.VIEWER))
        finished: float = await asyncio.wait_for(done, 60)
        client.close()
        late.close()
        return (finished - welcome_at[0]) * 1000
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", default="50,100,200,400")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--webrtc-viewers", default="100,200", help="WebRTC audio viewers per step ('' skips)")
    args = parser.parse_args()
    sweep = [int(v) for v in args.viewers.split(",")]
    rtc_sweep = [int(v) for v in args.webrtc_viewers.split(",") if v.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        secret = secrets.token_urlsafe(32)
        runs = []
        for viewers in sweep:  # a fresh server (and room) for each step
            server = tutorwire_server(free_port(), secret, log_dir, SERVER_CPU, record=True)
            server.wait_ready()
            try:
                run = await measure(server, secret, viewers, args.procs, args.seconds)
            finally:
                server.stop()
            print(json.dumps(run), flush=True)
            runs.append(run)
        late_ms = await late_join(log_dir)
        rtc_runs = []
        for viewers in rtc_sweep:
            server = tutorwire_server(free_port(), secret, log_dir, SERVER_CPU, record=True)
            server.wait_ready()
            try:
                rtc = await audio_class.measure(server, secret, ROOM, viewers, args.procs, args.seconds, VIEWER_CPU)
            finally:
                server.stop()
            print(json.dumps({"webrtc_audio": rtc}), flush=True)
            rtc_runs.append(rtc)
    rtc_passing = [r for r in rtc_runs if r["complete"] and r["p99_ms"] is not None and r["p99_ms"] <= P99_BOUND_MS]
    rtc_best = max(rtc_passing, key=lambda r: r["viewers"], default=None)
    passing = [r for r in runs if r["complete"] and r["p99_ms"] is not None and r["p99_ms"] <= P99_BOUND_MS]
    best = max(passing, key=lambda r: r["viewers"], default=None)
    top = max(runs, key=lambda r: r["viewers"])
    print(json.dumps({
        "ws_viewers_per_core": round(best["viewers"] * 100 / max(best["server_cpu_percent"], 1.0)) if best else 0,
        "largest_complete_viewers": best["viewers"] if best else 0,
        "deliveries_per_cpu_s": top["deliveries_per_cpu_s"],
        "p50_ms": top["p50_ms"], "p99_ms": top["p99_ms"],
        "server_rss_mb_per_100_viewers": round(top["rss_growth_mb"] * 100 / top["viewers"], 2),
        "late_join_ms_10k_strokes": round(late_ms, 1),
        "webrtc_audio_viewers_per_core": rtc_best["viewers_per_core"] if rtc_best else None,
        "webrtc_audio_largest_complete_viewers": rtc_best["viewers"] if rtc_best else 0,
        "viewers_cpu_percent_max": max(r["viewers_cpu_percent"] for r in runs),
        "sweep": runs,
        "webrtc_audio_sweep": rtc_runs,
    }))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
