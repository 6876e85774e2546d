"""Garbage from the pen and a pen that vanishes and comes back never stop the gateway; a long
outage makes audio late: recorded at its capture time, never played live."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pen_gateway.adapters import PenAdapter
from pen_gateway.audio import WavSource
from pen_gateway.device import DeviceBack, DeviceGone, PenEvent, Phase, Sample
from pen_gateway.gateway import Gateway
from pen_gateway.replay import ReplayAdapter
from pen_gateway.settings import GatewaySettings
from pen_gateway.spool import Spool
from pen_gateway.synthetic import SYNTHETIC_PAD
from recordings.eventlog import Kind, read_log
from recordings.layout import LOG_NAME
from recordings.loader import load
from recordings.manifest import read_manifest
from recordings.ogg import SILENCE_PACKETS
from tests.conftest import RunningServer
from tests.impair import ImpairedLink
from wire import Role

from .evemu_data import DATA
from .kit import delivered, running, write_wav

FILL = {p for p, _ in SILENCE_PACKETS}


class Hostile(PenAdapter):
    """Samples no real pen sends (out of range, negative, MOVE and UP without DOWN, time going
    back), the device vanishing mid-stroke and coming back, then ordinary strokes."""

    def __init__(self, seed: int) -> None:
        self.info = SYNTHETIC_PAD
        self.rng = random.Random(seed)
        self.done = asyncio.Event()

    async def events(self) -> AsyncIterator[PenEvent]:
        rng, t = self.rng, 1000.0
        for i in range(600):
            t += rng.choice([0.004, -0.5, 0.0, 3.0])
            yield Sample(i, t, rng.randint(-2**31, 2**31), rng.randint(-2**31, 2**31), rng.randint(-5, 10**9),
                         rng.choice(list(Phase)), tilt_x=rng.randint(-500, 500), tilt_y=rng.randint(-500, 500))
            if i == 300:
                yield DeviceGone(t, "unplugged")
                yield DeviceBack(t, self.info)
            if i % 50 == 0:
                await asyncio.sleep(0)
        for k in range(3):  # then a pen that behaves
            for j in range(20):
                yield Sample(1000 + k * 20 + j, t, 1000 + 30 * j, 2000 + 400 * k, 3000,
                             Phase.DOWN if j == 0 else Phase.MOVE)
                t += 0.004
            yield Sample(2000 + k, t, 1000, 2000, 0, Phase.UP)
        self.done.set()


async def test_garbage_and_a_vanishing_pen_never_stop_it(server: RunningServer, tmp_path: Path) -> None:
    session = "pen-hostile"
    student = server.client(session, Role.STUDENT)
    await student.connect()
    gw = Gateway(server.url(session), server.token(session, Role.TUTOR), adapter=Hostile(5), audio=None,
                 spool=Spool(tmp_path / "spool"), settings=GatewaySettings(spool_dir=str(tmp_path)))
    async with running(gw) as task:
        await gw.input_done.wait()
        await student.wait_for(lambda: gw.joined > 0 and gw.drained, timeout=20)
        pid = gw.session.replica.pid
        await student.wait_for(lambda: len(delivered(student, pid)) > 3
                               and all(s.ended for s in student.replica.strokes(pid)), timeout=20)
        assert not task.done()
    # the behaving strokes arrived as written, after whatever the garbage made of itself
    assert [len(s) for s in delivered(student, pid)][-3:] == [20, 20, 20]
    assert student.errors == [] and gw.session.errors == []  # every point was inside the wire's limits
    assert any("unplugged" in msg for msg in gw.messages)
    await student.close()


async def test_garbage_lines_in_an_evemu_file_are_skipped(server: RunningServer, tmp_path: Path) -> None:
    rng = random.Random(9)
    lines = (DATA / "UC-LOGIC Tablet WP5540U Pen.events").read_text().splitlines()
    for _ in range(200):
        lines.insert(rng.randrange(len(lines)), rng.choice(["E: x y z", "E: 1.0 0003 zzzz 5", "\x00\xff garbage",
                                                             "E: 1.5 0003 0000 999999999999", "A: 00 a b"]))
    path = tmp_path / "damaged.events"
    path.write_text("\n".join(lines))
    session = "pen-damaged"
    student = server.client(session, Role.STUDENT)
    await student.connect()
    gw = Gateway(server.url(session), server.token(session, Role.TUTOR), adapter=ReplayAdapter(path, speed=8),
                 audio=None, spool=Spool(tmp_path / "spool"), settings=GatewaySettings(spool_dir=str(tmp_path)))
    async with running(gw):
        await gw.input_done.wait()
        await student.wait_for(lambda: gw.joined > 0 and gw.drained, timeout=20)
        pid = gw.session.replica.pid
        await student.wait_for(lambda: len(delivered(student, pid)) == 1
                               and all(s.ended for s in student.replica.strokes(pid)), timeout=20)
    assert student.errors == [] and gw.session.errors == []
    await student.close()


async def test_audio_from_a_long_outage_is_recorded_late_and_never_played(server: RunningServer,
                                                                         tmp_path: Path) -> None:
    """After an outage longer than ``late_audio_s`` the gateway uploads what it captured as
    AudioLate: the recording holds it at its capture time (in the tutor's late stream, where the
    live stream has silence), every packet once; the student never hears it."""
    link = await ImpairedLink(server.port).start()
    session = "pen-late"
    audio = WavSource(write_wav(tmp_path / "v.wav", 5.0))
    spool = Spool(tmp_path / "spool")
    gw = Gateway(f"ws://127.0.0.1:{link.port}/ws/session/{session}", server.token(session, Role.TUTOR),
                 adapter=None, audio=audio, spool=spool, settings=GatewaySettings(spool_dir=str(tmp_path),
                                                                                  late_audio_s=0.5))
    student = server.client(session, Role.STUDENT)
    await student.connect()
    async with running(gw):
        await student.wait_for(lambda: gw.joined > 0, timeout=10)
        room = server.hub.rooms[session].room
        await asyncio.sleep(1.0)  # a second of live audio
        await link.go_down()
        down_ms = room.session_ms(time.monotonic())
        await asyncio.sleep(1.5)  # an outage longer than late_audio_s
        await link.come_back()
        back_ms = room.session_ms(time.monotonic())
        await gw.input_done.wait()
        await student.wait_for(lambda: gw.joined > 1 and gw.late_supported is True and gw.drained, timeout=20)
        epoch = gw.session.replica.epoch
        pid = gw.session.replica.pid
        recorder = server.hub.rooms[session].recorder
        assert gw.status().late_audio == "none" and gw.session.errors == []
    await asyncio.sleep(0.3)  # the last live packets reach the student
    heard = set()
    while not student.audio.empty():
        heard.add(student.audio.get_nowait().seq)
    await student.close()
    assert recorder is not None
    server.hub.end_session(session, "the test is over")
    await asyncio.wait_for(recorder.done.wait(), 10)
    folder = Path(server.settings.recordings_dir) / f"{session}-{epoch}"
    records = [r for r in read_log((folder / LOG_NAME).read_bytes()).records if r.kind is Kind.AUDIO]
    live = [r.body[0] for r in records if len(r.body) == 3]
    late = [r for r in records if r.body[3:] == ["late"]]
    total = audio.pcm.size // (audio.rate // 50)
    assert len(late) >= 40  # at least the outage's second beyond late_audio_s came late
    assert sorted(live + [r.body[0] for r in late]) == sorted(set(live + [r.body[0] for r in late]))  # once each
    assert len(live) + len(late) == total == gw.audio_packets
    assert not heard & {r.body[0] for r in late}  # the student heard none of it
    assert heard  # but did hear the live audio
    # placed at its capture time: from the outage on (the session clock), older than late_audio_s
    # when it came (the link back and the gateway rejoined), not at its arrival
    starts = [(r.body[2] - r.body[1]) / 48 for r in late]
    assert all(r.session_ms >= back_ms for r in late)
    assert down_ms - 1000 <= min(starts) < back_ms, (down_ms, back_ms, starts[:3])
    assert all(start <= r.session_ms - 450 for start, r in zip(starts, late, strict=True))
    manifest = read_manifest(folder)
    assert manifest.late_audio[pid].packets == len(late)
    data = load(Path(server.settings.recordings_dir), f"{session}-{epoch}")
    assert len([p for p, _ in data.audio[pid].late if p not in FILL]) == len(late)
    assert (folder / manifest.late_audio[pid].file).name in manifest.files
