"""The audio benchmark's speaker process: every room's tutor, all sending the same pre-encoded
Opus stream, one packet every 20 ms.

For the session server (both paths) it holds one session WebSocket per room (joined as tutor, the
lean ``bench.wsload`` client) and sends ``Audio [30, k, capture_ts, payload]`` frames; the rooms
are spread over 20 send slots of 1 ms so that they do not all speak in the same instant. For the
MediaRelay baseline it is one aiortc peer sending the stream as RTP (pre-encoded, only
packetized). It records when it sent each packet (monotonic, shared with the listener processes)
and every 5 ms sends each listener process a UDP probe carrying its send time, which measures the
loopback network time under the same load. Driven over a pipe by ``bench.audio_relay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import socket
import struct
import time
from multiprocessing.connection import Connection
from typing import Any

import msgpack
import uvloop
from aiortc import RTCSessionDescription

from sessionserver.auth import TokenSigner
from wire import PROTOCOL_VERSION, Role, encode
from wire import messages as m

from .audio_peers import (
    MEDIARELAY,
    PACKET_S,
    Go,
    PacedOpusTrack,
    Phase,
    SpeakerReport,
    loopback_peer,
    opus_stream,
    restrict_to_loopback,
    sdp_reply,
    wait_connected,
)
from .ipc import recv_command
from .wsload import WsClient, connect

SLOTS = 20  # send slots per 20 ms period
PROBE_EVERY = 5  # slots between UDP probes
DRAIN_S = 0.5
_AUDIO, _WELCOME, _ERROR = int(m.MsgType.AUDIO), int(m.MsgType.WELCOME), int(m.MsgType.ERROR)
_pack = msgpack.Packer(use_bin_type=True).pack


async def join(client: WsClient, token: str, role: Role, errors: list[str]) -> None:
    """Send the session Join and wait for the Welcome; later Error frames land in ``errors``."""
    welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def first(payload: bytes, now: float) -> None:
        items = msgpack.unpackb(payload)
        if not welcomed.done():
            if items[0] == _WELCOME:
                welcomed.set_result(None)
            else:
                welcomed.set_exception(ConnectionError(f"join refused: {items}"))
        elif items[0] == _ERROR:
            errors.append(str(items))

    client.on_message = first
    client.send(encode(m.Join(PROTOCOL_VERSION, token, role, 0, 0)))
    await asyncio.wait_for(welcomed, 30)


class Pacer:
    """One timer for every room: slot ``j`` of each 20 ms period sends packet ``k`` of its rooms."""

    def __init__(self, clients: dict[int, WsClient], stream: list[bytes], go: Go, probe: socket.socket,
                 probe_ports: tuple[int, ...]) -> None:
        self.slots: list[list[tuple[int, WsClient]]] = [[] for _ in range(SLOTS)]
        for room, client in clients.items():
            self.slots[room % SLOTS].append((room, client))
        self.stream = stream
        self.go = go
        self.probe = probe
        self.probe_ports = probe_ports
        self.sends: dict[int, list[float]] = {room: [] for room in clients}
        self.lag: list[float] = []
        self.tick = 0
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.handle = self.loop.call_at(self._loop_time(go.start), self._run)

    def _loop_time(self, t: float) -> float:
        return self.loop.time() + (t - time.monotonic())

    def _due(self, tick: int) -> float:
        return self.go.start + tick * PACKET_S / SLOTS

    def _run(self) -> None:
        now = time.monotonic()
        if self.go.t0 <= now < self.go.t1:
            self.lag.append(max(0.0, now - self._due(self.tick)))
        while self._due(self.tick) <= now:
            if self._due(self.tick) >= self.go.stop:
                self.done.set_result(None)
                return
            k, slot = divmod(self.tick, SLOTS)
            payload = self.stream[k % len(self.stream)]
            capture_ts = int(time.time() * 1000)
            for room, client in self.slots[slot]:
                frame = _pack([_AUDIO, k, capture_ts, payload])
                # stamped before the write: the listener may run (and receive it) before the write returns
                self.sends[room].append(time.monotonic())
                client.send(frame)
            if slot % PROBE_EVERY == 0:
                for port in self.probe_ports:
                    with contextlib.suppress(OSError):
                        self.probe.sendto(struct.pack("d", time.monotonic()), ("127.0.0.1", port))
            self.tick += 1
            now = time.monotonic()
        self.handle = self.loop.call_at(self._loop_time(self._due(self.tick)), self._run)

    def stop(self) -> None:
        self.handle.cancel()


async def _tutorwire_phase(conn: Connection, phase: Phase, stream: list[bytes], report: SpeakerReport) -> None:
    signer = TokenSigner(phase.secret)
    clients: dict[int, WsClient] = {}
    limit = asyncio.Semaphore(32)

    async def open_one(room: int) -> None:
        session = f"{phase.session_prefix}-{room}"
        async with limit:
            client = await connect("127.0.0.1", phase.port, f"/ws/session/{session}")
            clients[room] = client
            await join(client, signer.mint(session, f"t{room}", Role.TUTOR, int(time.time()) + 3600),
                       Role.TUTOR, report.errors)

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.setblocking(False)
    try:
        await asyncio.gather(*(open_one(r) for r in phase.rooms))
        conn.send(("connected", len(clients)))
        go: Go = await recv_command(conn)
        pacer = Pacer(clients, stream, go, probe, phase.probe_ports)
        try:
            await pacer.done
        finally:
            pacer.stop()
        report.sends = pacer.sends
        report.pacer_lag_p99_ms = _p99_ms(pacer.lag)
        await asyncio.sleep(max(0.0, go.stop + DRAIN_S - time.monotonic()))
        for client in clients.values():
            if client.close_code is not None:
                report.errors.append(f"server closed a speaker with {client.close_code}")
    finally:
        probe.close()
        for client in clients.values():
            client.close()


async def _mediarelay_phase(conn: Connection, phase: Phase, stream: list[bytes], report: SpeakerReport) -> None:
    """One aiortc peer to the baseline, which relays its track to every listener."""
    client = await connect("127.0.0.1", phase.port, "/speaker")
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    client.on_message = sdp_reply(answer)
    pc = loopback_peer()
    track = PacedOpusTrack(stream)
    try:
        pc.addTrack(track)
        restrict_to_loopback(pc)
        await pc.setLocalDescription(await pc.createOffer())
        client.send(pc.localDescription.sdp.encode())
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await asyncio.wait_for(answer, 30), type="answer"))
        await wait_connected(pc, 30)
        conn.send(("connected", 1))
        go: Go = await recv_command(conn)
        track.play(go.start, go.stop)
        await asyncio.sleep(max(0.0, go.stop + DRAIN_S - time.monotonic()))
        report.sends = {0: list(track.sent)}
    finally:
        await pc.close()
        client.close()


async def _serve(conn: Connection) -> None:
    stream = opus_stream()
    conn.send(("ready", os.getpid()))
    while True:
        command: Any = await recv_command(conn)
        if not isinstance(command, Phase):
            return
        report = SpeakerReport()
        try:
            if command.path == MEDIARELAY:
                await _mediarelay_phase(conn, command, stream, report)
            else:
                await _tutorwire_phase(conn, command, stream, report)
            conn.send(("report", report))
        except Exception as exc:  # tell the orchestrator rather than hang it
            conn.send(("failed", f"speaker: {type(exc).__name__}: {exc}"))
        await asyncio.sleep(0.1)  # let the close frames go out before the server is stopped
        conn.send(("closed", 0))
        gc.collect()  # aiortc's peers hold reference cycles; the GC is off during the phases


def _p99_ms(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return 1000 * ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def main(conn: Connection, cpu: int | None) -> None:
    """Process entry point: pinned to ``cpu``, on uvloop, with the cyclic GC off."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    gc.disable()
    uvloop.run(_serve(conn))
