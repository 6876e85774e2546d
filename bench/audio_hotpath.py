"""The session server's own work per live audio packet, without sockets: a one-on-one room whose
tutor's ``Audio`` frames are fed to ``frame_received`` as picows would (ten an iteration), the student listening on
a link that only counts frames (framed as the real link frames them), or nobody listening
(``ingest``: what the speaker's stream alone costs); and (``webrtc``) the send side of one
WebRTC leg alone, connected to an aiortc peer in the same process, whose receiving is left out of
the measure (packets go in bursts of 50, timed, then the peer reads them). Prints microseconds of CPU per packet (and
the cProfile top lines with ``--profile``); the last line is one JSON object. Run
``python -m bench.audio_hotpath [--packets N] [--profile]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import sys
import time
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.rtp import RtpPacket

from sessionserver.auth import TokenSigner
from sessionserver.connection import Connection
from sessionserver.fastws.link import ws_frame
from sessionserver.hub import Hub
from sessionserver.media.burst import flush as flush_audio
from sessionserver.media.leg import RtcLeg
from sessionserver.media.packets import AudioPacket
from sessionserver.media.rtc_config import RtcConfig
from sessionserver.settings import Settings
from wire import PROTOCOL_VERSION, Limits, Role, encode
from wire import messages as m

from .audio_peers import loopback_peer, opus_stream, restrict_to_loopback, tap_receiver, wait_connected
from .hotpath import SECRET, CountingLink


class FramingLink(CountingLink):
    """Counts frames after framing each as the session link does (``ws_frame``)."""

    def write(self, frame: bytes) -> None:
        super().write(ws_frame(frame))


async def run(packets: int, listen: bool, profile: bool) -> dict[str, Any]:
    limits = Limits(rate_messages_per_s=1e9, rate_burst=1 << 30)  # as fast as the loop takes them
    settings = Settings(secret=SECRET, record=False, ping_interval_s=0, limits=limits)
    clock = time.monotonic
    hub = Hub(settings, clock)
    signer = TokenSigner(SECRET)
    links = {Role.TUTOR: FramingLink(), Role.STUDENT: FramingLink()}
    conns = {}
    for role in (Role.TUTOR, Role.STUDENT) if listen else (Role.TUTOR,):
        conn = Connection(links[role], "hot-audio", hub, signer, settings, clock, RtcConfig())
        conn.opened()
        token = signer.mint("hot-audio", role.label, role, int(time.time()) + 600)
        conn.frame_received(encode(m.Join(PROTOCOL_VERSION, token, role, 0, 0)))
        conns[role] = conn
    stream = opus_stream()
    frames = [encode(m.Audio(k, 1_000_000 + 20 * k, stream[k % len(stream)])) for k in range(packets)]
    tutor = conns[Role.TUTOR]
    before = links[Role.STUDENT].frames
    with cProfile.Profile() if profile else contextlib.nullcontext() as profiler:
        t0 = time.process_time()  # CPU time: the machine is shared
        for i, frame in enumerate(frames, 1):
            tutor.frame_received(frame)
            if i % 10 == 0:  # a loop iteration's worth: the audio writes go out at its end
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        elapsed = time.process_time() - t0
    if isinstance(profiler, cProfile.Profile):
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return {"path": "ws" if listen else "ingest", "packets": packets,
            "delivered": links[Role.STUDENT].frames - before, "us_per_packet": round(1e6 * elapsed / packets, 2)}


async def run_webrtc(packets: int, profile: bool) -> dict[str, Any]:
    leg = RtcLeg(RtcConfig(), lambda payload, seq, ts: None)
    pc = loopback_peer()
    received = 0

    def count(packet: RtpPacket, now: float) -> None:
        nonlocal received
        received += 1

    tap_receiver(pc.addTransceiver("audio", direction="recvonly").receiver, count)
    restrict_to_loopback(pc)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await leg.handle_offer(pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_connected(pc, 10)
        while leg.stats.packets_out == 0:  # until the server's sender has started
            leg.send_audio(AudioPacket(1, 0, 0, 0, 960, b"\xfc\x00"))
            await asyncio.sleep(0.01)
        stream = opus_stream()
        elapsed = 0.0
        with cProfile.Profile() if profile else contextlib.nullcontext() as profiler:
            for first in range(1, packets + 1, 50):
                burst = [AudioPacket(1, k, 0, 20 * k, 960, stream[k % len(stream)]) for k in range(first, first + 50)]
                t0 = time.process_time()
                for packet in burst:
                    leg.send_audio(packet)
                flush_audio()  # the sends themselves, at the iteration's end in the server
                elapsed += time.process_time() - t0
                await asyncio.sleep(0.005)  # the peer reads the burst (not measured)
        if isinstance(profiler, cProfile.Profile):
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(18)
        sent = (packets + 49) // 50 * 50
        return {"path": "webrtc", "packets": sent, "sent": leg.stats.packets_out, "dropped": leg.stats.packets_dropped,
                "received": received, "us_per_packet": round(1e6 * elapsed / sent, 2)}
    finally:
        await leg.close()
        await pc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    results = [asyncio.run(run(args.packets, listen, args.profile)) for listen in (False, True)]
    results.append(asyncio.run(run_webrtc(args.packets // 4, args.profile)))
    print(json.dumps({r["path"]: r for r in results}))


if __name__ == "__main__":
    main()
