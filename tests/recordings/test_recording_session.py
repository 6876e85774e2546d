"""Recording real sessions: ink and audio from real clients land in the files of
docs/recordings.md, every Ogg file passes opusinfo and ffprobe, a server killed with SIGKILL
leaves a recording that the next start recovers, and ink and audio stay in sync on the
recording's timeline through a jittering link."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recordings.eventlog import Kind, read_log
from recordings.exports.strokes import replay
from recordings.loader import list_recordings, load
from recordings.ogg import SILENCE_PACKETS, read_ogg_opus
from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from tests.audiokit import encode_tone
from tests.conftest import SECRET, StartServer, free_port
from tests.netproxy import NetProxy
from tests.recordkit import assert_players_accept
from wire import Point, Role

pytestmark = pytest.mark.timeout(90)
FILL = {p for p, _ in SILENCE_PACKETS}  # what the recorder fills gaps with


async def draw(client: SessionClient, n: int, x0: int = 1000) -> list[Point]:
    points = [Point(x0 + 7 * i, 2000 + 3 * i, t=8 * i, pressure=400 + i) for i in range(n)]
    stroke = await client.begin_stroke(page=0, device_t0=1_700_000_000_000)
    for i in range(0, n, 2):
        await client.add_points(stroke, points[i:i + 2])
    await client.end_stroke(stroke)
    return points


async def speak(client: SessionClient, freq: float, packets: int) -> list[bytes]:
    payloads = encode_tone(freq, packets)
    start = time.monotonic()
    for i, payload in enumerate(payloads):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # a microphone's pace, not synchronisation
        await client.send_audio(i, payload)
    return payloads


async def test_session_is_recorded_with_every_file_valid(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(recordings_dir=str(tmp_path), room_idle_ttl_s=0.05, ping_interval_s=0.2)
    tutor, student = await srv.pair("rec-1")
    live = srv.hub.rooms["rec-1"]
    recorder = live.recorder
    assert recorder is not None
    sent = await draw(tutor, 40)
    student_sent = await draw(student, 10, x0=5000)
    tutor_audio = await speak(tutor, 440.0, 50)
    student_audio = await speak(student, 660.0, 25)
    t_pid, s_pid = tutor.pid, student.pid
    await student.wait_for(lambda: sum(len(s.points) for s in student.replica.strokes(t_pid)) == 40)
    await tutor.close()
    await student.close()
    await asyncio.wait_for(recorder.done.wait(), 10)  # room evicted: the recording was finalized
    folder = tmp_path / recorder.folder.name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["session_id"] == "rec-1" and manifest["protocol"] == 2
    assert [(p["pid"], p["role"]) for p in manifest["participants"]] == [(t_pid, "tutor"), (s_pid, "student")]
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    for name in (f"audio-tutor-{t_pid}.opus", f"audio-student-{s_pid}.opus"):
        assert_players_accept(folder / name)
    assert read_log((folder / "events.log").read_bytes()).damage is None
    data = load(tmp_path, folder.name)
    strokes = replay(data)
    by_pid = {pid: [s for s in strokes if s.pid == pid] for pid in (t_pid, s_pid)}
    assert [(p.x, p.y, p.pressure) for p in by_pid[t_pid][0].points] == [(p.x, p.y, p.pressure) for p in sent]
    assert [(p.x, p.y) for p in by_pid[s_pid][0].points] == [(p.x, p.y) for p in student_sent]
    assert (by_pid[t_pid][0].label, by_pid[s_pid][0].label) == ("tutor", "student")
    heard = {pid: [p for p, _ in data.audio[pid].packets if p not in FILL] for pid in (t_pid, s_pid)}
    assert heard[t_pid] == tutor_audio and heard[s_pid] == student_audio  # never re-encoded
    assert any(r["id"] == folder.name for r in list_recordings(tmp_path))
    assert data.clocks, "clock offsets were measured and kept"


def _serve(port: int, recordings: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TUTORWIRE_SECRET": SECRET, "TUTORWIRE_RECORDINGS_DIR": str(recordings),
           "TUTORWIRE_RECORDING_FLUSH_S": "0.2", "TUTORWIRE_LOG_LEVEL": "warning", "TUTORWIRE_MATCHER_WORKER": "false"}
    return subprocess.Popen([sys.executable, "-m", "sessionserver.cli", "serve", "--port", str(port)], env=env)


async def _until_up(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)  # the server process is starting; nothing to await but its port
    raise TimeoutError("server did not start")


async def test_server_killed_mid_session_recording_recovered(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(port, tmp_path)
    try:
        await _until_up(port)
        url = f"ws://127.0.0.1:{port}/ws/session/crash"
        signer = TokenSigner(SECRET)
        tutor = SessionClient(url, signer.mint("crash", "t1", Role.TUTOR, int(time.time()) + 600), Role.TUTOR)
        await tutor.connect()
        sent = await draw(tutor, 30)
        await speak(tutor, 440.0, 40)
        (folder,) = await asyncio.to_thread(lambda: list(tmp_path.iterdir()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for a flush to have written the stroke's end
            records = read_log((folder / "events.log").read_bytes()).records
            if sum(r.kind is Kind.AUDIO for r in records) >= 30:
                break
            await asyncio.sleep(0.05)  # the flush cadence is the server's; the file is all we can see
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await tutor.close()
        assert json.loads((folder / "manifest.json").read_text())["status"] == "recording"
        proc = _serve(port, tmp_path)  # the next start recovers what the crash left open
        await _until_up(port)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["status"] == "interrupted" and manifest["recovery"]
        # who was there comes back from the log (the live manifest is written at flushes)
        assert [(p["pid"], p["role"], p["user_id"]) for p in manifest["participants"]] == [(1, "tutor", "t1")]
        assert_players_accept(folder / "audio-tutor-1.opus")
        data = load(tmp_path, folder.name)
        strokes = replay(data)
        assert [(p.x, p.y) for p in strokes[0].points] == [(p.x, p.y) for p in sent]
        assert len(read_ogg_opus((folder / "audio-tutor-1.opus").read_bytes()).packets) >= 30
    finally:
        proc.kill()
        proc.wait(10)


async def test_pen_down_and_click_stay_in_sync_through_jitter(start_server: StartServer, tmp_path: Path) -> None:
    srv = await start_server(recordings_dir=str(tmp_path), room_idle_ttl_s=0.05, ping_interval_s=0.1)
    proxy = await NetProxy(srv.port, delay_s=0.02, jitter_s=0.1, seed=7).start()
    try:
        url = f"ws://127.0.0.1:{proxy.port}/ws/session/sync"
        tutor = SessionClient(url, srv.token("sync", Role.TUTOR), Role.TUTOR)
        await tutor.connect()
        recorder = srv.hub.rooms["sync"].recorder
        assert recorder is not None
        # Let the server's pings measure this device's clock through the jittery link.
        await tutor.wait_for(lambda: recorder.clock_samples[tutor.pid] >= 15, timeout=20)
        silence = b"\xf8\xff\xfe"
        click = encode_tone(1000.0, 1)[0]
        start_ms = int(time.time() * 1000)
        seq = 0
        for _ in range(3):
            for i in range(11):  # a stretch of silence at a microphone's pace, then the click and the pen-down
                due_ms = start_ms + 20 * seq
                delay = due_ms / 1000 - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing like a microphone, not synchronisation
                if i < 10:
                    await tutor.send_audio(seq, silence, capture_ts=due_ms)
                else:
                    await tutor.send_audio(seq, click, capture_ts=due_ms)
                    stroke = await tutor.begin_stroke(device_t0=due_ms)
                    await tutor.add_points(stroke, [Point(100, 100, t=0, pressure=500),
                                                    Point(101, 101, t=8, pressure=500)])
                    await tutor.end_stroke(stroke)
                seq += 1
        await tutor.close()
        await asyncio.wait_for(recorder.done.wait(), 10)
        data = load(tmp_path, recorder.folder.name)
        strokes = replay(data)
        packets = data.audio[tutor.pid].packets
        click_ms = [(granule - 960) / 48 for payload, granule in packets if payload == click]
        pen_ms = [s.points[0].session_ms for s in strokes]
        assert len(click_ms) == 3 and len(pen_ms) == 3
        for a, b in zip(click_ms, pen_ms, strict=True):
            assert abs(a - b) <= 20, f"click at {a:.1f} ms, pen down at {b:.1f} ms on the timeline"
    finally:
        await proxy.stop()


async def test_a_recording_that_cannot_be_written_does_not_stop_the_session(
    start_server: StartServer, tmp_path: Path,
) -> None:
    root = tmp_path / "recordings"
    srv = await start_server(recordings_dir=str(root), room_idle_ttl_s=0.05)
    # The recordings folder turns into a file under the running server (a real failing disk
    # path, not a fake): new rooms cannot create their recording folder.
    await asyncio.to_thread(root.rmdir)
    await asyncio.to_thread(root.write_text, "not a folder")
    tutor, student = await srv.pair("unrecorded")
    recorder = srv.hub.rooms["unrecorded"].recorder
    assert recorder is not None  # opening is queued; the writer finds out it cannot, off the loop
    sent = await draw(tutor, 6)
    await student.wait_for(lambda: sum(len(s.points) for s in student.replica.strokes(tutor.pid)) == len(sent))
    await speak(tutor, 440.0, 3)
    assert len([await asyncio.wait_for(student.audio.get(), 5) for _ in range(3)]) == 3
    await tutor.close()
    await student.close()
    await asyncio.wait_for(recorder.done.wait(), 10)
    assert recorder.failed and str(recorder.failure).startswith("cannot create the recording")
