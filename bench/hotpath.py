"""The session server's own work per ink batch, without sockets: two ``Connection``s of one room
on links that only count bytes, the tutor's frames fed to ``frame_received`` as picows would.
Prints microseconds per batch (and the cProfile top lines with ``--profile``); the last line is
one JSON object. Run ``python -m bench.hotpath [--batches N] [--profile]``."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import time
from typing import Any

import msgpack

from sessionserver.auth import TokenSigner
from sessionserver.connection import Connection
from sessionserver.hub import Hub
from sessionserver.media.rtc_config import RtcConfig
from sessionserver.settings import Settings
from wire import PROTOCOL_VERSION, Limits, Role, encode
from wire import messages as m

from .inkscript import library

_BEGIN, _INK, _END = int(m.MsgType.STROKE_BEGIN), int(m.MsgType.STROKE_POINTS), int(m.MsgType.STROKE_END)
SECRET = "hotpath-secret-0123456789abcdefghijklmnop"


class CountingLink:
    paused = False

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0

    def write(self, frame: bytes) -> None:
        self.frames += 1
        self.bytes += len(frame)

    def write_many(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.write(frame)

    def close(self, code: int, reason: str) -> None:
        raise RuntimeError(f"the server closed a link: {code} {reason}")


def frames(batches: int) -> list[bytes]:
    """The tutor's ops for ``batches`` ink batches: strokes of the benchmark's library."""
    out: list[bytes] = []
    cseq = stroke = 0
    scripts = library(64, seed=2024)
    while True:
        for script in scripts:
            stroke += 1
            cseq += 1
            out.append(msgpack.packb([_BEGIN, cseq, stroke, 0, 0, 0x202020FF, 40, script.flags, 0]))
            start = 0
            for count, blob in script.batches:
                cseq += 1
                out.append(msgpack.packb([_INK, cseq, stroke, start, count, blob], use_bin_type=True))
                start += count
                batches -= 1
                if batches == 0:
                    return out
            cseq += 1
            out.append(msgpack.packb([_END, cseq, stroke]))


async def run(batches: int, profile: bool) -> dict[str, Any]:
    # the frames come as fast as the loop takes them: no rate limit (the machine's token bucket
    # is still asked for every frame), and the stroke count of a long run
    limits = Limits(rate_messages_per_s=1e9, rate_burst=1 << 30, max_strokes_per_page=1 << 30)
    settings = Settings(secret=SECRET, record=False, ping_interval_s=0, limits=limits,
                        max_room_ink_bytes=1 << 40, oplog_max_bytes=1 << 20)
    clock = time.monotonic
    hub = Hub(settings, clock)
    signer = TokenSigner(SECRET)
    links = {Role.TUTOR: CountingLink(), Role.STUDENT: CountingLink()}
    conns = {}
    for role in (Role.TUTOR, Role.STUDENT):
        conn = Connection(links[role], "hot", hub, signer, settings, clock, RtcConfig())
        conn.opened()
        token = signer.mint("hot", role.label, role, int(time.time()) + 600)
        conn.frame_received(encode(m.Join(PROTOCOL_VERSION, token, role, 0, 0)))
        conns[role] = conn
    ops = frames(batches)
    ink = batches
    tutor = conns[Role.TUTOR]
    profiler = cProfile.Profile() if profile else None
    before = links[Role.STUDENT].frames
    t0 = time.process_time()  # CPU time: the machine is shared
    if profiler is not None:
        profiler.enable()
    for frame in ops:
        tutor.frame_received(frame)
    if profiler is not None:
        profiler.disable()
    elapsed = time.process_time() - t0
    delivered = links[Role.STUDENT].frames - before
    result = {"batches": batches, "ops": len(ops), "delivered": delivered,
              "us_per_op": round(1e6 * elapsed / len(ops), 2), "us_per_batch": round(1e6 * elapsed / ink, 2)}
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        print(out.getvalue())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=50_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.batches, args.profile))))


if __name__ == "__main__":
    main()
