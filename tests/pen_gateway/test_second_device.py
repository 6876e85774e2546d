"""The paired gateway is a second device of the tutor's seat (docs/protocol.md 3.6): the tutor's
browser stays connected, both write (each with its own cseq stream, acks and resume), the
student gets both devices' strokes in order, each device gets the other's, neither is kicked;
one microphone at a time; the recording keeps the gateway's clock as a device of its own."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx

from pen_gateway.audio import WavSource
from pen_gateway.cli import pair
from pen_gateway.gateway import DEVICE_CSEQ_BASE, Gateway
from pen_gateway.replay import ReplayAdapter, evemu_timeline
from pen_gateway.settings import GatewaySettings
from pen_gateway.spool import Spool
from recordings.exports.strokes import replay
from recordings.loader import load
from recordings.manifest import read_manifest
from sessionserver.room.room import Room
from tests.conftest import RunningServer, StartServer
from tests.impair import ImpairedLink
from wire import Limits, Point, Role
from wire import messages as m

from .evemu_data import DATA
from .kit import delivered, expected_strokes, running, write_wav

NAME = "UC-LOGIC Tablet WP5540U Pen.events"
OPUS = bytes.fromhex("0884565ee3c22068f8fdf91f30b463")


def test_one_microphone_at_a_time() -> None:
    room = Room("mic", Limits(), 100, 0.0)
    pid = room.admit(Role.TUTOR, "li.jun").pid
    assert room.take_mic(pid, "", 0.0) and room.take_mic(pid, "", 0.02)  # the browser speaks
    assert room.take_mic(pid, "pen", 0.03)  # the gateway starts: it holds the microphone
    assert not room.take_mic(pid, "", 0.04) and room.take_mic(pid, "pen", 0.05)  # the browser's are dropped
    assert not room.take_mic(pid, "", 1.0)  # the browser never stopped: it does not start again
    assert room.take_mic(pid, "", 1.06)  # the gateway has been silent for MIC_IDLE_S: the browser takes it
    assert room.take_mic(pid, "pen", 1.07) and not room.take_mic(pid, "", 1.08)  # the pad starts again


async def _pair(server: RunningServer, session: str, page_token: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        got = await http.post("/api/pairing", json={"session": session},
                              headers={"authorization": f"Bearer {page_token}"})
        assert got.status_code == 200
        code = got.json()["code"]
    grant: dict[str, object] = await asyncio.to_thread(pair, f"http://{server.base}", code)
    assert grant["device"] == "pen" and grant["role"] == "tutor"
    return grant


def _browser_stroke(i: int) -> list[Point]:
    return [Point(500 + 40 * j, 9000 + 300 * i, 4 * j, 700) for j in range(12)]


async def test_browser_and_gateway_write_together(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server(recordings_dir=str(tmp_path / "rec"), ping_interval_s=0.5)
    session = "two-devices"
    page_token = server.token(session, Role.TUTOR, "li.jun")
    browser = server.client(session, Role.TUTOR, "li.jun")
    student = server.client(session, Role.STUDENT)
    await browser.connect()
    await student.connect()
    grant = await _pair(server, session, page_token)
    link = await ImpairedLink(server.port).start()
    info, once = evemu_timeline((DATA / NAME).read_text().splitlines())
    want_pen = expected_strokes(info, once) * 2
    gw = Gateway(f"ws://127.0.0.1:{link.port}/ws/session/{session}", str(grant["token"]),
                 adapter=ReplayAdapter(DATA / NAME, speed=4.0, loops=2),
                 audio=WavSource(write_wav(tmp_path / "v.wav", 3.0)),
                 spool=Spool(tmp_path / "spool"), settings=GatewaySettings(spool_dir=str(tmp_path)),
                 rng=random.Random(3))
    pid = browser.pid
    want_browser = [_browser_stroke(i) for i in range(6)]
    async with running(gw):
        await student.wait_for(lambda: gw.joined > 0, timeout=10)
        assert gw.session.replica.pid == pid  # the same participant
        for i, points in enumerate(want_browser):  # the browser writes while the pad does
            stroke = await browser.begin_stroke(page=0)
            await browser.add_points(stroke, points)
            await browser.end_stroke(stroke)
            await asyncio.sleep(0.2)
            if i == 2:
                link.cut()  # the gateway's link drops: it resumes its own stream
        await gw.input_done.wait()
        await student.wait_for(lambda: gw.drained and len(student.replica.strokes(pid)) == len(want_pen) + 6
                               and all(s.ended for s in student.replica.strokes(pid)), timeout=30)
        # each device has the other's strokes too
        await browser.wait_for(lambda: len(browser.replica.strokes(pid)) == len(want_pen) + 6, timeout=10)
        await student.wait_for(lambda: len(gw.session.replica.strokes(pid)) == len(want_pen) + 6, timeout=10)
        assert gw.joined >= 2 and gw.fatal is None  # it resumed after the cut, as itself
        epoch = gw.session.replica.epoch
        recorder = server.hub.rooms[session].recorder
    got = delivered(student, pid)
    as_browser = [[(p.x, p.y, p.pressure, p.tilt_x, p.tilt_y) for p in s] for s in want_browser]
    assert [s for s in got if s in as_browser] == as_browser  # the browser's, in order
    assert gw.session.errors == [] and student.errors == [] and browser.errors == []
    assert [s for s in got if s not in as_browser] == want_pen  # the pad's, in order, exactly once
    # each device has all of it (its own applied as written, so in its own order)
    assert sorted(delivered(browser, pid)) == sorted(got) == sorted(delivered(gw.session, pid))  # type: ignore[arg-type]
    # neither device was kicked: the browser's connection is the one it opened
    assert browser.session.joins == 1 and browser.errors == [] and student.errors == [] and gw.session.errors == []
    assert gw.session.cseq > DEVICE_CSEQ_BASE and browser.session.cseq < DEVICE_CSEQ_BASE
    assert student.replica.participants[pid].online
    await browser.close()
    await student.close()
    assert recorder is not None
    server.hub.end_session(session, "the test is over")
    await asyncio.wait_for(recorder.done.wait(), 10)
    manifest = read_manifest(tmp_path / "rec" / f"{session}-{epoch}")
    pen = [d for d in manifest.devices if d.device == "pen"]
    assert len(pen) == 1 and pen[0].pid == pid and pen[0].kind == "pen-gateway"
    assert pen[0].clock_offsets  # the gateway's own clock, beside the browser's (the participant's)
    assert manifest.clock_offsets[pid]
    # the pad's strokes are mapped with the pad's clock, the browser's with the participant's
    data = load(tmp_path / "rec", f"{session}-{epoch}")
    assert sorted(set(data.stroke_devices.values())) == ["pen"] and len(data.stroke_devices) == len(want_pen)
    assert data.device_clocks["pen"]
    for placed in replay(data):
        assert placed.timing == "clock"
        assert all(placed.begin_ms - 1000 <= p.session_ms <= (placed.end_ms or 0) + 1000 for p in placed.points)


async def test_the_device_that_starts_speaking_holds_the_microphone(server: RunningServer, tmp_path: Path) -> None:
    session = "two-mics"
    page_token = server.token(session, Role.TUTOR, "li.jun")
    browser = server.client(session, Role.TUTOR, "li.jun")
    student = server.client(session, Role.STUDENT)
    await browser.connect()
    await student.connect()
    grant = await _pair(server, session, page_token)
    talking = asyncio.Event()

    async def browser_mic() -> None:  # the browser's microphone over its WebSocket, all along
        for i in range(200):
            await browser.send_audio(1_000_000 + i, OPUS, 1_700_000_000_000 + 20 * i)
            if i == 25:
                talking.set()
            await asyncio.sleep(0.02)

    mic = asyncio.create_task(browser_mic())
    await talking.wait()
    gw = Gateway(server.url(session), str(grant["token"]), adapter=None,
                 audio=WavSource(write_wav(tmp_path / "v.wav", 1.5)), spool=Spool(tmp_path / "spool"),
                 settings=GatewaySettings(spool_dir=str(tmp_path)))
    async with running(gw):
        await gw.input_done.wait()
        await student.wait_for(lambda: gw.drained, timeout=10)
    await mic
    heard: list[m.AudioRelay] = []
    while not student.audio.empty():
        heard.append(student.audio.get_nowait())
    from_browser = [i for i, r in enumerate(heard) if r.seq >= 1_000_000 and r.seq < 1_000_200]
    from_pen = [i for i, r in enumerate(heard) if not 1_000_000 <= r.seq < 1_000_200]
    assert from_browser and len(from_pen) >= 70  # both were heard, the pad's 1.5 s (75 packets) nearly all
    # while the pad spoke, the browser's packets were dropped: none between its first and last
    assert not [i for i in from_browser if from_pen[0] < i < from_pen[-1]]
    # after the pad stopped (1 s of silence), the browser's microphone is heard again
    assert from_browser[-1] > from_pen[-1]
    assert browser.session.joins == 1 and browser.errors == [] and gw.session.errors == []
    await browser.close()
    await student.close()
