"""The session server's own work per live audio packet, without sockets: a one-on-one room whose
tutor's ``Audio`` frames are fed to ``frame_received`` as picows would, the student listening on
a link that only counts frames (framed as the real link frames them), or nobody listening
(``ingest``: what the speaker's stream alone costs). Prints microseconds of CPU per packet (and
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

from sessionserver.auth import TokenSigner
from sessionserver.connection import Connection
from sessionserver.fastws.link import ws_frame
from sessionserver.hub import Hub
from sessionserver.media.rtc_config import RtcConfig
from sessionserver.settings import Settings
from wire import PROTOCOL_VERSION, Limits, Role, encode
from wire import messages as m

from .audio_peers import opus_stream
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
        for frame in frames:
            tutor.frame_received(frame)
        elapsed = time.process_time() - t0
    if isinstance(profiler, cProfile.Profile):
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return {"path": "ws" if listen else "ingest", "packets": packets,
            "delivered": links[Role.STUDENT].frames - before, "us_per_packet": round(1e6 * elapsed / packets, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    results = [asyncio.run(run(args.packets, listen, args.profile)) for listen in (False, True)]
    print(json.dumps({r["path"]: r for r in results}))


if __name__ == "__main__":
    main()
