"""The pen gateway against the real server through a weak rural link: 240 Hz synthetic
handwriting, RTT 300 ms, 2 % loss, a 30 s outage every 2 minutes, for 10 minutes of pen time
(``--speed`` compresses time: the pen, the outage schedule and the server's rate limit are all
scaled by it; the link's RTT and loss are not).

Loss over TCP is what the application sees of it: a lost segment holds the stream (and all that
follows it, in order) for a retransmission timeout, here ``max(0.2 s, RTT) + RTT``; the proxy
holds a chunk that long with the loss probability. An outage cuts every connection and closes
the port (connects are refused) until it ends.

The gateway runs as its own process (``python -m pen_gateway --device synthetic:...``) pinned to
CPU 1; the server, the proxy and the student client run here, pinned to CPU 0. Figures:
``points_sent`` (the synthetic pen's points), ``points_delivered`` / ``points_lost`` /
``points_doubled`` (at the student, stroke by stroke against what was written),
``resume_s_p50`` / ``_p95`` (from the link's return to the first point the student had not had),
``spool_peak_bytes`` (the spool file's largest size seen), ``gateway_cpu_percent`` (the gateway
process's user+system CPU over its run, percent of one core, at ``input_hz``). Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import uvicorn

from bench.servers import free_port, pin_command, process_cpu_s
from pen_gateway.device import Sample
from pen_gateway.pages import PageMap
from pen_gateway.strokes import Begin, Points, StrokeBuilder
from pen_gateway.synthetic import SYNTHETIC_PAD, handwriting
from sessionserver.app import create_app, server_config
from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from sessionserver.settings import Settings
from wire import Limits, Role

SECRET = "bench-pen-gateway-secret-0123456789abcdef"
REPO = Path(__file__).resolve().parent.parent


class WeakLink:
    """127.0.0.1:``port`` to ``target``: a one-way delay, loss as retransmission stalls, outages."""

    def __init__(self, target: int, one_way_s: float, loss: float, seed: int) -> None:
        self.target, self.one_way_s, self.loss = target, one_way_s, loss
        self.rto_s = max(0.2, 2 * one_way_s) + 2 * one_way_s
        self.rng = random.Random(seed)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            w.transport.abort()
            self.writers.discard(w)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: deque[tuple[float, bytes]] = deque()
        ready = asyncio.Event()
        last_due = 0.0

        async def deliver() -> None:
            while True:
                while not queue:
                    ready.clear()
                    await ready.wait()
                due, chunk = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the link's latency: this is the network
                dst.write(chunk)
                await dst.drain()

        task = asyncio.create_task(deliver())
        try:
            while chunk := await src.read(65536):
                due = time.monotonic() + self.one_way_s
                if self.rng.random() < self.loss:
                    due += self.rto_s  # a lost segment: the stream waits for its retransmission
                last_due = max(last_due, due)  # in order: nothing overtakes a held chunk
                queue.append((last_due, chunk))
                ready.set()
        finally:
            task.cancel()


def written(rate_hz: float, seconds: float, seed: int) -> list[list[tuple[int, int, int]]]:
    builder = StrokeBuilder(PageMap(SYNTHETIC_PAD))
    for e in handwriting(seconds, rate_hz, seed, dataclasses.replace(SYNTHETIC_PAD, nominal_rate_hz=rate_hz)):
        if isinstance(e, Sample):
            builder.feed(e)
    builder.end_open()
    strokes: list[list[tuple[int, int, int]]] = []
    for a in builder.flush(float("inf")):
        if isinstance(a, Begin):
            strokes.append([])
        elif isinstance(a, Points):
            strokes[-1].extend((p.x, p.y, p.pressure) for p in a.points)
    return strokes


def compare(want: list[list[tuple[int, int, int]]], got: list[list[tuple[int, int, int]]]) -> tuple[int, int, int]:
    """delivered, lost, doubled: stroke by stroke, point by point, in order."""
    delivered = lost = doubled = 0
    for i, w in enumerate(want):
        g = got[i] if i < len(got) else []
        same = sum(1 for a, b in zip(w, g, strict=False) if a == b)
        delivered += same
        lost += len(w) - same
        doubled += max(0, len(g) - len(w))
    doubled += sum(len(g) for g in got[len(want):])
    return delivered, lost, doubled


async def run(args: argparse.Namespace) -> dict[str, object]:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {0})
    speed = args.speed
    port = free_port()
    limits = dataclasses.replace(Limits(), rate_messages_per_s=200.0 * speed, rate_burst=int(400 * speed))
    settings = Settings(host="127.0.0.1", port=port, secret=SECRET, limits=limits, record=False,
                        log_level="warning")
    app = create_app(settings)
    server = uvicorn.Server(server_config(settings, app))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
        await asyncio.sleep(0.01)
    link = WeakLink(port, args.rtt_ms / 2000, args.loss, args.seed)
    await link.up()
    session = "bench-pen"
    signer = TokenSigner(SECRET)
    exp = int(time.time()) + 7200
    student = SessionClient(f"ws://127.0.0.1:{port}/ws/session/{session}",
                            signer.mint(session, "student", Role.STUDENT, exp), Role.STUDENT, auto_reconnect=True)
    await student.connect()
    pen_s = args.minutes * 60
    want = written(args.rate, pen_s, args.seed)
    spool_dir = Path(tempfile.mkdtemp(prefix="pen-bench-"))
    argv = pin_command([sys.executable, "-m", "pen_gateway", "--server", f"http://127.0.0.1:{link.port}",
                        "--session", session, "--token", signer.mint(session, "tutor", Role.TUTOR, exp),
                        "--device", f"synthetic:{args.rate:g}:{pen_s:g}:{args.seed}", "--speed", f"{speed:g}",
                        "--audio", "none", "--spool", str(spool_dir), "--exit-when-done", "--quiet"],
                       args.gateway_cpu)
    proc = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stderr=asyncio.subprocess.PIPE)
    started = time.monotonic()
    cpu = [0.0, started]
    peak = [0]
    resumes: list[float] = []

    def points() -> int:
        pid = student.replica.pid_of(Role.TUTOR)
        return 0 if pid is None else sum(len(s.points) for s in student.replica.strokes(pid))

    async def sample() -> None:
        while proc.returncode is None:
            with contextlib.suppress(OSError, ValueError):
                cpu[:] = [process_cpu_s(proc.pid), time.monotonic()]
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], (spool_dir / "spool").stat().st_size)
            await asyncio.sleep(0.25)  # a sampling period, not a wait for an event

    async def outages() -> None:
        period, length = args.cut_every_s / speed, args.cut_s / speed
        t = started
        while True:
            t += period
            await asyncio.sleep(max(0.0, t - time.monotonic()))  # the schedule of the weak link
            if proc.returncode is not None:
                return
            await link.down()
            await asyncio.sleep(length)  # the network is away
            await link.up()
            back, had = time.monotonic(), points()

            def more(had: int = had) -> bool:
                return points() > had

            with contextlib.suppress(TimeoutError):
                await student.wait_for(more, timeout=60)
                resumes.append(time.monotonic() - back)

    tasks = [asyncio.create_task(sample()), asyncio.create_task(outages())]
    _, err = await proc.communicate()
    total = sum(len(w) for w in want)
    with contextlib.suppress(TimeoutError):
        await student.wait_for(lambda: points() >= total, timeout=30)
    for t in tasks:
        t.cancel()
    pid = student.replica.pid_of(Role.TUTOR)
    got = [[(p.x, p.y, p.pressure) for p in s.points] for s in student.replica.strokes(pid)] if pid else []
    delivered, lost, doubled = compare(want, got)
    await student.close()
    server.should_exit = True
    await serving
    resumes.sort()
    p95 = resumes[min(len(resumes) - 1, round(0.95 * (len(resumes) - 1)))] if resumes else None
    if proc.returncode != 0:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return {
        "points_sent": total, "points_delivered": delivered, "points_lost": lost, "points_doubled": doubled,
        "resume_s_p50": round(statistics.median(resumes), 3) if resumes else None,
        "resume_s_p95": round(p95, 3) if p95 is not None else None, "resumes": len(resumes),
        "spool_peak_bytes": peak[0],
        "gateway_cpu_percent": round(100 * cpu[0] / max(1e-9, cpu[1] - started), 2),
        "input_hz": args.rate * speed, "speed": speed, "pen_minutes": args.minutes, "rtt_ms": args.rtt_ms,
        "loss": args.loss, "gateway_exit": proc.returncode,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="pen time")
    p.add_argument("--speed", type=float, default=4.0, help="time compression (1: real time)")
    p.add_argument("--rate", type=float, default=240.0, help="pen sample rate, Hz")
    p.add_argument("--rtt-ms", type=float, default=300.0)
    p.add_argument("--loss", type=float, default=0.02)
    p.add_argument("--cut-every-s", type=float, default=120.0)
    p.add_argument("--cut-s", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--gateway-cpu", type=int, default=1, help="core for the gateway process")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
