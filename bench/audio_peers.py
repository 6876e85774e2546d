"""Pieces the audio benchmark's processes share: the pre-encoded Opus stream, aiortc peers on
loopback only, a track that sends pre-encoded packets, a receive hook that counts packets without
decoding them, and the pipe protocol between the orchestrator and its load processes.

Clock: every process stamps with ``time.monotonic()``, which on Linux is
``clock_gettime(CLOCK_MONOTONIC)``, one clock for the whole machine, so a send time taken in the
speaker process and a receive time taken in a listener process subtract directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
import opuslib  # type: ignore[import-untyped]
from aioice import Candidate
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
PACKET_S = FRAME / RATE
STREAM_PACKETS = 250  # the stream loops every 5 s; every packet in it is distinct
OPUS_BITRATE = 32_000  # what a browser sends for voice, about 80 bytes a packet
LOOPBACK = "127.0.0.1"
TIME_BASE = Fraction(1, RATE)

if not time.get_clock_info("monotonic").implementation.startswith("clock_gettime(CLOCK_MONOTONIC)"):
    raise RuntimeError("the audio benchmark needs time.monotonic() to be CLOCK_MONOTONIC (Linux)")


# -- the stream ----------------------------------------------------------------------------------


def opus_stream(packets: int = STREAM_PACKETS) -> list[bytes]:
    """``packets`` distinct 20 ms Opus packets (mono, 48 kHz, ~32 kbit/s) of a gliding tone over
    noise, encoded once with opuslib. Distinct, so that a listener can tell which packet of the
    loop it got from the payload alone (the RTP sequence numbers are the server's own)."""
    encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_VOIP)
    encoder.bitrate = OPUS_BITRATE
    rng = np.random.default_rng(2024)
    t = np.arange(FRAME * packets) / RATE
    freq = 220 + 180 * np.sin(2 * np.pi * 0.37 * t)
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    pcm = (0.25 * np.sin(phase) + 0.02 * rng.standard_normal(len(t))) * 32767
    samples = np.clip(pcm, -32768, 32767).astype(np.int16)
    stream = [bytes(encoder.encode(samples[i * FRAME : (i + 1) * FRAME].tobytes(), FRAME)) for i in range(packets)]
    if len(set(stream)) != len(stream):
        raise RuntimeError("the pre-encoded Opus stream has repeated packets")
    return stream


def stream_index(stream: list[bytes]) -> dict[bytes, int]:
    return {payload: i for i, payload in enumerate(stream)}


# -- aiortc on loopback --------------------------------------------------------------------------


def loopback_peer() -> RTCPeerConnection:
    """An aiortc peer with no STUN/TURN server (``None`` would mean Google's)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def restrict_to_loopback(pc: RTCPeerConnection) -> None:
    """Make ``pc``'s ICE gather one host candidate on 127.0.0.1 only (aioice would scan every
    interface and skip loopback). Call after adding transceivers, before ``setLocalDescription``."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        original = connection.get_component_candidates

        async def loopback(component: int, addresses: list[str], timeout: int = 5,
                           _original: Any = original) -> list[Candidate]:
            result: list[Candidate] = await _original(component, [LOOPBACK], timeout)
            return result

        connection.get_component_candidates = loopback  # type: ignore[method-assign]


async def wait_connected(pc: RTCPeerConnection, timeout_s: float) -> None:
    """Return once ``pc`` is connected; ``ConnectionError`` if it fails or closes first."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check() -> None:
        if done.done():
            return
        if pc.connectionState == "connected":
            done.set_result(None)
        elif pc.connectionState in ("failed", "closed"):
            done.set_exception(ConnectionError(f"peer connection {pc.connectionState}"))

    pc.on("connectionstatechange", check)
    check()
    try:
        await asyncio.wait_for(done, timeout_s)
    finally:
        pc.remove_listener("connectionstatechange", check)


OnRtp = Callable[[RtpPacket, float], None]


def tap_receiver(receiver: RTCRtpReceiver, on_rtp: OnRtp) -> None:
    """Hand every decrypted RTP packet to ``on_rtp(packet, monotonic_now)`` instead of aiortc's
    jitter buffer and decoder (the server's leg does the same; private API of aiortc 1.16)."""

    async def tap(packet: RtpPacket, arrival_time_ms: int) -> None:
        on_rtp(packet, time.monotonic())

    hook: Callable[[RtpPacket, int], Coroutine[Any, Any, None]] = tap
    receiver._handle_rtp_packet = hook  # type: ignore[method-assign,assignment]


def sdp_reply(answer: asyncio.Future[str]) -> Callable[[bytes, float], None]:
    """A ``bench.wsload`` message handler that takes the first message as the answer's SDP."""

    def on_message(payload: bytes, now: float) -> None:
        if not answer.done():
            answer.set_result(payload.decode())

    return on_message


class PacedOpusTrack(MediaStreamTrack):
    """An audio track that hands aiortc pre-encoded Opus packets (``av.Packet``, so its sender only
    packetizes them), one every 20 ms from ``start`` (monotonic), looping over ``stream``.
    ``sent`` gets the time each packet was handed over."""

    kind = "audio"

    def __init__(self, stream: list[bytes]) -> None:
        super().__init__()
        self._stream = stream
        self.start: float | None = None
        self.stop_at = float("inf")
        self.k = 0
        self.sent: list[float] = []
        self._go = asyncio.Event()

    def play(self, start: float, stop_at: float) -> None:
        self.start, self.stop_at = start, stop_at
        self._go.set()

    async def recv(self) -> av.Packet[Any]:
        await self._go.wait()
        assert self.start is not None
        due = self.start + self.k * PACKET_S
        if due >= self.stop_at or self.readyState != "live":
            raise MediaStreamError
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # a microphone's pace
        packet = av.Packet(self._stream[self.k % len(self._stream)])
        packet.pts = self.k * FRAME
        packet.time_base = TIME_BASE
        self.k += 1
        self.sent.append(time.monotonic())  # aiortc packetizes and sends it as soon as this returns
        return packet


# -- the pipe between the orchestrator and its load processes ------------------------------------

TUTORWIRE_WS, TUTORWIRE_RTC, MEDIARELAY = "ws", "webrtc", "mediarelay"


@dataclass(frozen=True, slots=True)
class Phase:
    """Connect these rooms (global indices) of a path to the server on ``port``."""

    path: str  # TUTORWIRE_WS, TUTORWIRE_RTC or MEDIARELAY
    port: int
    rooms: tuple[int, ...]
    session_prefix: str
    secret: str
    probe_ports: tuple[int, ...] = ()  # the speaker's UDP probes go to these (one per listener process)


@dataclass(frozen=True, slots=True)
class Go:
    start: float  # the first packet (monotonic)
    t0: float  # the measured span (cut into windows by the orchestrator)
    t1: float
    stop: float  # the speaker stops sending; everyone reports at ``stop`` + drain


@dataclass(slots=True)
class SpeakerReport:
    sends: dict[int, list[float]] = field(default_factory=dict)  # room -> send time of packet k (from 0)
    pacer_lag_p99_ms: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ListenerReport:
    # room -> (packet number or stream index, receive time) for everything received
    received: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    unknown: int = 0  # packets whose payload is not in the stream
    probes: list[tuple[float, float]] = field(default_factory=list)  # UDP probes: (receive time, one-way time)
    errors: list[str] = field(default_factory=list)


