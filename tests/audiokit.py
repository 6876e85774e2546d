"""Audio test helpers: tones, Opus with opuslib, frequency detection, and aiortc client peers on
loopback only.

A client peer from ``loopback_peer()`` uses no STUN server and gathers host candidates on
127.0.0.1 alone (aioice would otherwise gather every interface and skip loopback), so tests never
touch the machine's other networks. aiortc's decoder hands out s16 stereo 48 kHz frames of 960
samples; ``collect_pcm`` takes their first channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import opuslib  # type: ignore[import-untyped]
from aioice import Candidate, Connection
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame

from sessionserver.media.packets import AudioPacket, AudioSink

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
LOOPBACK = "127.0.0.1"

Pcm = npt.NDArray[np.int16]


# -- tones and Opus ----------------------------------------------------------------------------


def tone_pcm(freq: float, samples: int, *, start: int = 0, amplitude: float = 0.3) -> Pcm:
    """Mono s16 samples of a sine at ``freq`` Hz, from sample ``start`` (so chunks join up)."""
    t = (np.arange(samples) + start) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def encode_tone(freq: float, packets: int) -> list[bytes]:
    """``packets`` 20 ms Opus packets (mono, 48 kHz) of a tone, encoded with opuslib."""
    encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_AUDIO)
    pcm = tone_pcm(freq, FRAME * packets)
    return [bytes(encoder.encode(pcm[i * FRAME : (i + 1) * FRAME].tobytes(), FRAME)) for i in range(packets)]


def decode_opus(packets: Sequence[bytes]) -> Pcm:
    """Decode Opus packets (any channel count) to mono s16 with opuslib."""
    decoder = opuslib.Decoder(RATE, 1)
    chunks = [np.frombuffer(bytes(decoder.decode(p, 5760)), dtype=np.int16) for p in packets]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def dominant_frequency(pcm: Pcm, rate: int = RATE) -> float:
    """The strongest frequency in ``pcm`` (Hann window, rfft peak, parabolic interpolation)."""
    if len(pcm) < 256:
        raise ValueError("need at least 256 samples to tell a frequency")
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k_frac = k + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        k_frac = float(k)
    return float(k_frac * rate / len(pcm))


def audio_packets(payloads: Sequence[bytes], pid: int = 1, first_seq: int = 0) -> list[AudioPacket]:
    """``AudioPacket``s as the room would hand them to a listener (20 ms each)."""
    return [
        AudioPacket(pid=pid, seq=first_seq + i, capture_ts=0, session_ms=20 * i, samples=FRAME, payload=p)
        for i, p in enumerate(payloads)
    ]


async def play(sink: AudioSink, packets: Sequence[AudioPacket], interval: float = 0.02) -> None:
    """Give ``packets`` to ``sink`` in real time, one every ``interval`` seconds (pacing, as a
    speaker's packets arrive; not a way of waiting for anything)."""
    start = time.monotonic()
    for i, packet in enumerate(packets):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sink.send_audio(packet)


class ToneTrack(MediaStreamTrack):
    """A live audio track of generated PCM (mono s16, 20 ms frames), paced in real time; aiortc's
    sender encodes it to Opus. ``freq`` may be changed while it plays."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._pts / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pcm = tone_pcm(self.freq, FRAME, start=self._pts)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, RATE)
        self._pts += FRAME
        return frame


async def collect_pcm(track: MediaStreamTrack, frames: int) -> Pcm:
    """Read ``frames`` decoded frames from a remote track; their first channel as mono s16."""
    chunks: list[Pcm] = []
    for _ in range(frames):
        frame = await track.recv()
        assert isinstance(frame, AudioFrame)
        channels = len(frame.layout.channels)
        chunks.append(frame.to_ndarray().reshape(-1, channels)[:, 0].astype(np.int16))
    return np.concatenate(chunks)


class PacketLog:
    """An ``on_packet`` for a leg: keeps every (payload, rtp_seq, rtp_timestamp) and lets a test
    await a count instead of sleeping."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, int, int]] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self, payload: bytes, seq: int, timestamp: int) -> None:
        self.packets.append((payload, seq, timestamp))
        for count, waiter in list(self._waiters):
            if len(self.packets) >= count and not waiter.done():
                waiter.set_result(None)

    @property
    def payloads(self) -> list[bytes]:
        return [p for p, _, _ in self.packets]

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` packets in all have arrived."""
        if len(self.packets) >= count:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (count, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            self._waiters.remove(entry)


# -- aiortc client peers on loopback -----------------------------------------------------------


def restrict_to_loopback(pc: RTCPeerConnection) -> None:
    """Make every ICE connection of ``pc`` gather one host candidate on 127.0.0.1 only. Call after
    adding tracks/transceivers and before ``setLocalDescription``."""
    for transceiver in pc.getTransceivers():
        connection: Connection = transceiver.receiver.transport.transport._connection
        if getattr(connection, "_tests_loopback_only", False):
            continue
        original = connection.get_component_candidates

        async def loopback(
            component: int, addresses: list[str], timeout: int = 5, _original: Any = original
        ) -> list[Candidate]:
            result: list[Candidate] = await _original(component, [LOOPBACK], timeout)
            return result

        connection.get_component_candidates = loopback  # type: ignore[method-assign]
        connection._tests_loopback_only = True  # type: ignore[attr-defined]


def loopback_peer() -> RTCPeerConnection:
    """An aiortc peer with no STUN/TURN server (``iceServers=[]``; None would mean Google's)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def strip_candidates(sdp: str) -> tuple[str, list[str]]:
    """An SDP without its candidate lines (as a trickling browser sends it) and those candidates
    as ``candidate:...`` strings."""
    kept: list[str] = []
    candidates: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidates.append(line[2:])
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


async def make_offer(pc: RTCPeerConnection) -> str:
    """Create and set ``pc``'s offer on loopback; the SDP carries its candidates (no trickle)."""
    restrict_to_loopback(pc)
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def accept_answer(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


async def wait_connected(pc: RTCPeerConnection) -> None:
    """Return once ``pc`` is connected; ``ConnectionError`` if it fails or closes first."""
    done = asyncio.get_running_loop().create_future()

    def check() -> None:
        state = pc.connectionState
        if done.done():
            return
        if state == "connected":
            done.set_result(None)
        elif state in ("failed", "closed"):
            done.set_exception(ConnectionError(f"peer connection {state}"))

    pc.on("connectionstatechange", check)
    check()
    try:
        await done
    finally:
        pc.remove_listener("connectionstatechange", check)


def on_track(pc: RTCPeerConnection) -> asyncio.Future[MediaStreamTrack]:
    """A future for the first remote track ``pc`` announces."""
    future: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    def handler(track: MediaStreamTrack) -> None:
        if not future.done():
            future.set_result(track)

    pc.on("track", handler)
    return future
