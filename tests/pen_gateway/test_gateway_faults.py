"""Garbage from the pen and a pen that vanishes and comes back never stop the gateway; a long
outage makes audio late, and a server without late audio (1002) leaves it in the spool while
the session goes on."""

from __future__ import annotations

import asyncio
import random
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
from tests.conftest import RunningServer
from tests.impair import ImpairedLink
from wire import Role

from .evemu_data import DATA
from .kit import delivered, running, write_wav


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


async def test_audio_from_a_long_outage_is_late_and_kept(server: RunningServer, tmp_path: Path) -> None:
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
        await asyncio.sleep(1.0)  # a second of live audio
        await link.go_down()
        await asyncio.sleep(1.5)  # an outage longer than late_audio_s
        await link.come_back()
        await student.wait_for(lambda: gw.joined > 1 and gw.late_supported is False, timeout=10)
        await gw.input_done.wait()
        late = len(spool.audio)
        assert gw.session.state.name == "LIVE"  # the 1002 for AudioLate did not cost the link
        assert gw.status().late_audio == "waiting for a server that takes late audio"
    assert late >= 40  # at least the outage's second beyond late_audio_s waits in the spool
    assert [int(e.code) for e in gw.session.errors] == [1002] * len(gw.session.errors)
    await student.close()
