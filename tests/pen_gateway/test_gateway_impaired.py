"""60 s of a real tablet's ink and WAV audio through the gateway and a bad link (seeded latency
and jitter, stalls, cuts, outages with the port closed: 5 disconnects and more). The ink plays
4x compressed (the server's rate limit raised 4x with it); the audio plays in real time for the
15 s the ink takes (the recording places packets by capture time, so compressed audio would
overlap itself). The student receives every stroke exactly once and in order, the recording
holds all the ink, and every audio packet is recorded, live or late (AudioLate, at its capture
time), none twice."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from pen_gateway.audio import WavSource
from pen_gateway.gateway import Gateway
from pen_gateway.replay import ReplayAdapter, evemu_timeline, inkml_timeline
from pen_gateway.settings import GatewaySettings
from pen_gateway.spool import Spool
from recordings.exports.inkml import to_inkml
from recordings.exports.strokes import replay
from recordings.loader import load
from recordings.ogg import SILENCE_PACKETS
from tests.conftest import StartServer
from tests.impair import ImpairedLink
from tests.netproxy import NetProxy
from wire import Role

from .evemu_data import DATA
from .kit import delivered, expected_strokes, running, write_wav

SPEED = 4.0
FILL = {p for p, _ in SILENCE_PACKETS}  # what the recorder fills gaps with
NAME = "UC-LOGIC Tablet WP5540U Pen.events"  # 6 s with one long stroke: 10 loops are 60 s


@pytest.mark.timeout(120)
async def test_sixty_seconds_through_five_disconnects(start_server: StartServer, tmp_path: Path) -> None:
    rng = random.Random(18)
    server = await start_server(recordings_dir=str(tmp_path / "rec"), room_idle_ttl_s=0.05, ping_interval_s=0.5,
                                limits={"rate_messages_per_s": 200.0 * SPEED, "rate_burst": int(400 * SPEED)})
    jitter = await NetProxy(server.port, delay_s=0.02, jitter_s=0.02, seed=18).start()
    link = await ImpairedLink(jitter.port, delay_s=0.05).start()
    session = "pen-impaired"
    student = server.client(session, Role.STUDENT)
    await student.connect()
    info, once = evemu_timeline((DATA / NAME).read_text().splitlines())
    adapter = ReplayAdapter(DATA / NAME, speed=SPEED, loops=10)
    want = expected_strokes(info, once) * 10  # the 10 loops, as the page map makes them
    audio = WavSource(write_wav(tmp_path / "voice.wav", 60.0 / SPEED))
    spool = Spool(tmp_path / "spool")
    cfg = GatewaySettings(spool_dir=str(tmp_path))
    gw = Gateway(f"ws://127.0.0.1:{link.port}/ws/session/{session}", server.token(session, Role.TUTOR),
                 adapter=adapter, audio=audio, spool=spool, settings=cfg, rng=random.Random(1))
    async with running(gw):
        await student.wait_for(lambda: gw.joined > 0, timeout=10)
        for kind in ("cut", "outage", "stall", "cut", "outage", "cut"):
            await asyncio.sleep(rng.uniform(1.0, 2.0))  # the link works this long
            if kind == "cut":
                link.cut()
            elif kind == "outage":
                await link.go_down()
                await asyncio.sleep(rng.uniform(0.3, 1.0))  # the network is away
                await link.come_back()
            else:
                link.stall(rng.uniform(0.5, 1.5))
                await asyncio.sleep(link.stall_until - time.monotonic())
        await gw.input_done.wait()
        pid = gw.session.replica.pid
        await student.wait_for(lambda: gw.drained, timeout=30)  # the ink and the late audio delivered
        await student.wait_for(lambda: len(delivered(student, pid)) == len(want)
                               and all(s.ended for s in student.replica.strokes(pid)), timeout=30)
        epoch = gw.session.replica.epoch
    assert link.cuts >= 5
    assert len(want) == 10 and delivered(student, pid) == want  # exactly once, in order
    assert gw.session.errors == [] and student.errors == []
    recorder = server.hub.rooms[session].recorder if session in server.hub.rooms else None
    await student.close()
    if recorder is not None:
        await asyncio.wait_for(recorder.done.wait(), 10)
    data = load(tmp_path / "rec", f"{session}-{epoch}")
    recorded = [[(p.x, p.y, p.pressure, p.tilt_x, p.tilt_y) for p in s.points] for s in replay(data) if s.pid == pid]
    assert recorded == want  # the recording holds all the ink
    # and it replays: its InkML export through the replay adapter's reader, point for point
    info2, timeline2 = inkml_timeline(to_inkml(data))
    assert [[p[:2] for p in s] for s in expected_strokes(info2, timeline2)][: len(want)] == \
        [[p[:2] for p in s] for s in want]
    packets = [p for p, _ in data.audio[pid].packets if p not in FILL] if pid in data.audio else []
    late = [p for p, _ in data.audio[pid].late if p not in FILL] if pid in data.audio else []
    total = audio.pcm.size // (audio.rate // 50)
    assert gw.audio_packets == total
    # every packet is recorded, live or late (AudioLate), and none twice
    assert len(packets) + len(late) == total
    print(f"\naudio: {total} packets, {len(packets)} recorded live, {len(late)} late; "
          f"cuts {link.cuts}, joins {gw.joined}")
