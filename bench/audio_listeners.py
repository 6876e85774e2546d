"""An audio benchmark listener process: the students of some of the rooms, counting the packets
they receive and when, never decoding them (decoding would saturate this core long before the
server's).

Per path: ``ws`` joins the session as student and reads ``AudioRelay [31, pid, seq, ...]``
frames (the lean ``bench.wsload`` client), recording the speaker's packet number ``seq``;
``webrtc`` also joins as student, then opens an aiortc peer (recvonly) through that WebSocket's
``RtcOffer``/``RtcAnswer`` and taps its receiver before the jitter buffer, recording which packet
of the pre-encoded stream each RTP payload is (the stream's packets are distinct);
``mediarelay`` opens an aiortc peer to the baseline server and only counts (its packets are
re-encoded). Every process also receives the speaker's UDP probes (loopback network time).
Driven over a pipe by ``bench.audio_relay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import struct
import time
from multiprocessing.connection import Connection
from typing import Any

import msgpack
import uvloop
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from sessionserver.auth import TokenSigner
from wire import Role, encode
from wire import messages as m

from .audio_peers import (
    MEDIARELAY,
    TUTORWIRE_RTC,
    Go,
    ListenerReport,
    Phase,
    loopback_peer,
    opus_stream,
    restrict_to_loopback,
    sdp_reply,
    stream_index,
    tap_receiver,
    wait_connected,
)
from .audio_speaker import DRAIN_S, join
from .ipc import recv_command
from .wsload import WsClient, connect

_RELAY, _ANSWER, _ERROR = int(m.MsgType.AUDIO_RELAY), int(m.MsgType.RTC_ANSWER), int(m.MsgType.ERROR)
SETUP_CONCURRENCY = 16
CONNECT_TIMEOUT_S = 60.0


class Probe(asyncio.DatagramProtocol):
    """The speaker's UDP probes: each carries its send time; keeps the one-way times."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.recording = False

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = time.monotonic()
        if self.recording and len(data) == 8:
            self.samples.append((now, now - struct.unpack("d", data)[0]))


class Leg:
    """One room's listener."""

    def __init__(self, room: int, report: ListenerReport, index: dict[bytes, int]) -> None:
        self.room = room
        self.report = report
        self.index = index
        self.received: list[tuple[int, float]] = []
        self.ws: WsClient | None = None
        self.pc: RTCPeerConnection | None = None
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_session_frame(self, payload: bytes, now: float) -> None:
        """Session frames after the Welcome: ``AudioRelay`` (WebSocket path), ``RtcAnswer``."""
        if payload[1] == _RELAY:  # [31, pid, seq, capture_ts, session_ms, payload]: fixarray, then the type
            self.received.append((msgpack.unpackb(payload)[2], now))
            return
        items = msgpack.unpackb(payload)
        if items[0] == _ANSWER and not self.answer.done():
            self.answer.set_result(items[1])
        elif items[0] == _ERROR:
            self.report.errors.append(f"room {self.room}: {items}")
            if not self.answer.done():
                self.answer.set_exception(ConnectionError(str(items)))

    def on_rtp(self, packet: RtpPacket, now: float) -> None:
        i = self.index.get(packet.payload)
        if i is None:
            self.report.unknown += 1
        else:
            self.received.append((i, now))

    def on_baseline_rtp(self, packet: RtpPacket, now: float) -> None:
        self.received.append((packet.sequence_number, now))

    async def open(self, phase: Phase, signer: TokenSigner) -> None:
        if phase.path == MEDIARELAY:
            self.ws = await connect("127.0.0.1", phase.port, "/listener")
            self.ws.on_message = sdp_reply(self.answer)
            await self._open_peer(self.on_baseline_rtp, lambda sdp: self._send_raw(sdp))
            return
        session = f"{phase.session_prefix}-{self.room}"
        self.ws = await connect("127.0.0.1", phase.port, f"/ws/session/{session}")
        token = signer.mint(session, f"s{self.room}", Role.STUDENT, int(time.time()) + 3600)
        await join(self.ws, token, Role.STUDENT, self.report.errors)
        self.ws.on_message = self.on_session_frame
        if phase.path == TUTORWIRE_RTC:
            await self._open_peer(self.on_rtp, lambda sdp: self._send_session(m.RtcOffer(sdp)))

    def _send_raw(self, sdp: str) -> None:
        assert self.ws is not None
        self.ws.send(sdp.encode())

    def _send_session(self, msg: m.Message) -> None:
        assert self.ws is not None
        self.ws.send(encode(msg))

    async def _open_peer(self, on_rtp: Any, send_offer: Any) -> None:
        pc = self.pc = loopback_peer()
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        tap_receiver(transceiver.receiver, on_rtp)
        restrict_to_loopback(pc)
        await pc.setLocalDescription(await pc.createOffer())
        send_offer(pc.localDescription.sdp)
        sdp = await asyncio.wait_for(self.answer, CONNECT_TIMEOUT_S)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await wait_connected(pc, CONNECT_TIMEOUT_S)

    async def close(self) -> None:
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
        if self.ws is not None:
            if self.ws.close_code is not None:
                self.report.errors.append(f"room {self.room}: the server closed with {self.ws.close_code}")
            self.ws.close()


async def run_phase(conn: Connection, phase: Phase, index: dict[bytes, int], probe: Probe) -> None:
    report = ListenerReport()
    signer = TokenSigner(phase.secret)
    legs = [Leg(room, report, index) for room in phase.rooms]
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def open_one(leg: Leg) -> None:
        async with limit:
            await leg.open(phase, signer)

    try:
        await asyncio.gather(*(open_one(leg) for leg in legs))
        conn.send(("connected", len(legs)))
        go: Go = await recv_command(conn)
        probe.recording = True
        await asyncio.sleep(max(0.0, go.stop + DRAIN_S - time.monotonic()))
        probe.recording = False
        report.received = {leg.room: leg.received for leg in legs}
        report.probes, probe.samples = probe.samples, []
        conn.send(("report", report))
    except Exception as exc:  # tell the orchestrator rather than hang it
        conn.send(("failed", f"listener: {type(exc).__name__}: {exc}"))
    finally:
        await asyncio.gather(*(leg.close() for leg in legs))
        await asyncio.sleep(0.1)
        with contextlib.suppress(Exception):
            conn.send(("closed", len(legs)))


async def _serve(conn: Connection) -> None:
    index = stream_index(opus_stream())
    loop = asyncio.get_running_loop()
    transport, probe = await loop.create_datagram_endpoint(Probe, local_addr=("127.0.0.1", 0))
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    conn.send(("ready", (os.getpid(), transport.get_extra_info("sockname")[1])))
    try:
        while True:
            command: Any = await recv_command(conn)
            if not isinstance(command, Phase):
                return
            await run_phase(conn, command, index, probe)
            gc.collect()  # aiortc's peers hold reference cycles; the GC is off during the phases
    finally:
        transport.close()


def main(conn: Connection, cpu: int | None) -> None:
    """Process entry point: pinned to ``cpu``, on uvloop, with the cyclic GC off."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    gc.disable()
    uvloop.run(_serve(conn))
