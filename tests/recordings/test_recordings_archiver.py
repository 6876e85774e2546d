"""The archiver on an event loop, without a server: what it writes (protocol 2), that it never
touches the disk on the loop (with a disk that blocks for a second the loop stays responsive),
that ``close`` makes a recording ``complete`` at once, and its failures (a folder that cannot be
created, a writer that falls behind its bound, a bad packet) stop one recording and nothing else."""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recordings.archiver import ITEM_BYTES, Archiver, RecorderState, SessionRecorder
from recordings.eventlog import Kind, read_log
from recordings.exports.strokes import replay
from recordings.loader import list_recordings, load
from recordings.manifest import read_manifest
from recordings.ogg import SILENCE_PACKETS
from tests.recordkit import assert_players_accept, opus_packets, tone
from wire import HAS_PRESSURE, Point, PointState, Role, encode, encode_points
from wire import messages as m
from wire.audio import AudioPacket

FILL = {p for p, _ in SILENCE_PACKETS}  # what the recorder fills gaps with

pytestmark = pytest.mark.timeout(60)
STARTED = 1_790_000_000.5


class Room:
    """Feeds a recorder what a one-on-one room would: presences, strokes, audio, clock offsets."""

    def __init__(self, recorder: SessionRecorder) -> None:
        self.recorder = recorder
        self.seq = 0
        self.cseq = 0
        self.audio_seq = 0

    def event(self, ms: int, pid: int, body: m.EventBody) -> None:
        self.seq += 1
        cseq = 0 if isinstance(body, m.Presence | m.Roster) else body.cseq
        event = m.Event(self.seq, ms, pid, cseq, body)
        self.recorder.on_event(event, encode(event))

    def join(self) -> None:
        self.event(0, 1, m.Presence("t-9", True, Role.TUTOR))
        self.event(5, 2, m.Presence("s-9", True, Role.STUDENT))

    def stroke(self, ms: int, pid: int, stroke: int, points: list[Point]) -> None:
        self.cseq += 1
        self.event(ms, pid, m.StrokeBegin(self.cseq, stroke, 0, m.Tool.PEN, 0x000000FF, 30, HAS_PRESSURE, ms))
        state = PointState()
        for i in range(0, len(points), 4):
            self.cseq += 1
            chunk = points[i:i + 4]
            self.event(ms + 1, pid, m.StrokePoints(self.cseq, stroke, i, len(chunk),
                                                   encode_points(chunk, HAS_PRESSURE, state)))
        self.cseq += 1
        self.event(ms + 2, pid, m.StrokeEnd(self.cseq, stroke))

    def speak(self, ms: int, pid: int, payload: bytes) -> None:
        self.audio_seq += 1
        self.recorder.on_audio(AudioPacket(pid, self.audio_seq, 0, ms, 960, payload))


def points(n: int) -> list[Point]:
    return [Point(100 + 3 * i, 200 + 2 * i, t=4 * i, pressure=500) for i in range(n)]


@pytest.fixture(scope="module")
def voice() -> list[bytes]:
    return opus_packets(tone(440, 960 * 25))


async def test_a_session_is_recorded_in_protocol_2(tmp_path: Path, voice: list[bytes]) -> None:
    archiver = Archiver(tmp_path, 0.05, wall_clock=lambda: STARTED)
    await archiver.start()
    recorder = archiver.open("s1", 42)
    room = Room(recorder)
    room.join()
    recorder.on_clock(1, 10, -100.0, 3.0)
    room.stroke(20, 1, 1, points(10))
    room.stroke(40, 2, 1, points(6))  # the student's stroke 1: its own ids
    for i, payload in enumerate(voice):
        room.speak(60 + 20 * i, 1, payload)
    room.speak(100, 2, voice[0])
    room.event(700, 2, m.Presence("s-9", False, Role.STUDENT))
    await archiver.close(recorder, "session ended")
    assert recorder.state is RecorderState.CLOSED and recorder.done.is_set() and not recorder.failed
    folder = tmp_path / "s1-42"
    doc = json.loads((folder / "manifest.json").read_text())
    assert doc["format"] == 2 and doc["protocol"] == 2 and doc["status"] == "complete"
    assert doc["participants"] == [
        {"pid": 1, "role": "tutor", "user_id": "t-9", "first_ms": 0, "last_ms": 0},
        {"pid": 2, "role": "student", "user_id": "s-9", "first_ms": 5, "last_ms": 700},
    ]
    assert doc["clock_offsets"] == {"1": [{"at_ms": 10, "offset_ms": -100.0, "rtt_ms": 3.0}]}
    assert set(doc["files"]) == {"events.log", "audio-tutor-1.opus", "audio-student-2.opus"}
    for name in ("audio-tutor-1.opus", "audio-student-2.opus"):
        assert_players_accept(folder / name)
    records = read_log((folder / "events.log").read_bytes()).records
    assert {r.pid for r in records if r.kind is Kind.EVENT} == {1, 2}
    assert records[-1].body == {"ended": "session ended"}
    data = load(tmp_path, "s1-42")
    assert [(s.key, len(s.points)) for s in replay(data)] == [("tutor-1", 10), ("student-1", 6)]
    assert [p for p, _ in data.audio[1].packets if p not in FILL] == voice
    await archiver.stop()


class Disk:
    """Watches every file operation on paths under ``root``: which thread made it, and makes the
    writer's slow (the first write and the first fsync block for ``block_s``, later fsyncs for a
    twentieth of it)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, block_s: float) -> None:
        self.root = str(root)
        self.block_s = block_s
        self.fds: set[int] = set()
        self.on_loop: list[str] = []
        self.by_writer = 0
        self.first_write = True
        self.fsyncs = 0
        self.loop_thread = threading.current_thread()
        real_open, real_write, real_fsync = os.open, os.write, os.fsync
        real_mkdir, real_replace, real_bopen = os.mkdir, os.replace, builtins.open

        def mine(path: Any) -> bool:
            return isinstance(path, str | os.PathLike) and os.fspath(path).startswith(self.root)

        def note(what: str) -> None:
            if threading.current_thread() is self.loop_thread:
                self.on_loop.append(what)
            else:
                self.by_writer += 1

        def fake_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            fd = real_open(path, flags, mode, **kw)
            if mine(path):
                note(f"os.open {path}")
                self.fds.add(fd)
            return fd

        def fake_write(fd: int, data: Any) -> int:
            if fd in self.fds:
                note("os.write")
                if self.first_write and threading.current_thread() is not self.loop_thread:
                    self.first_write = False
                    time.sleep(block_s)  # a disk that stalls: only the writer may wait for it
            return real_write(fd, data)

        def fake_fsync(fd: int) -> None:
            if fd in self.fds:
                note("os.fsync")
                self.fsyncs += 1
                time.sleep(block_s if self.fsyncs == 1 else block_s / 20)
            real_fsync(fd)

        def wrap(real: Callable[..., Any], name: str) -> Callable[..., Any]:
            def call(path: Any, *args: Any, **kw: Any) -> Any:
                if mine(path):
                    note(f"{name} {path}")
                return real(path, *args, **kw)
            return call

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "write", fake_write)
        monkeypatch.setattr(os, "fsync", fake_fsync)
        monkeypatch.setattr(os, "mkdir", wrap(real_mkdir, "mkdir"))
        monkeypatch.setattr(os, "replace", wrap(real_replace, "os.replace"))
        monkeypatch.setattr(builtins, "open", wrap(real_bopen, "open"))


class LagMeter:
    """How late a 5 ms timer on the loop fires: what a blocked loop would show."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self.ticks = 0
        self._stop = False

    async def run(self) -> None:
        while not self._stop:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.worst_ms = max(self.worst_ms, (time.monotonic() - before - 0.005) * 1000)
            self.ticks += 1

    def stop(self) -> None:
        self._stop = True


async def test_the_loop_never_touches_the_disk_even_when_it_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, voice: list[bytes],
) -> None:
    archiver = Archiver(tmp_path, 0.2, wall_clock=lambda: STARTED)
    await archiver.start()
    disk = Disk(tmp_path, monkeypatch, block_s=1.0)
    meter = LagMeter()
    ticker = asyncio.create_task(meter.run())
    t0 = time.perf_counter()
    recorder = archiver.open("slow", 1)
    open_ms = (time.perf_counter() - t0) * 1000
    room = Room(recorder)
    room.join()
    calls = []
    for k in range(150):  # 3 s of a session at a pen's and a microphone's pace, while the disk stalls
        t = time.perf_counter()
        room.stroke(20 * k, 1, k, points(8))
        room.speak(20 * k, 2, voice[k % len(voice)])
        recorder.on_clock(1, 20 * k, -5.0, 2.0)
        calls.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.02)  # the session's own pace, not synchronisation
    closed = archiver.close(recorder, "session ended")
    await closed
    meter.stop()
    await ticker
    assert disk.on_loop == []
    assert disk.by_writer > 10
    # Every disk call blocks for a second; bounds at half of that show that none of them ran on
    # the loop, with room for a busy shared machine (bench/archive.py measures the real figures).
    assert open_ms < 500, f"open took {open_ms:.1f} ms"
    assert max(calls) < 500, f"a call took {max(calls):.1f} ms"
    assert meter.ticks > 300 and meter.worst_ms < 500, f"the loop lagged {meter.worst_ms:.1f} ms"
    monkeypatch.undo()
    assert read_manifest(tmp_path / "slow-1").status.value == "complete"
    assert len(replay(load(tmp_path, "slow-1"))) == 150
    await archiver.stop()


async def test_close_lists_the_recording_complete_at_once(tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, 60.0, wall_clock=lambda: STARTED)  # no flush would come for a minute
    await archiver.start()
    recorder = archiver.open("ends", 3)
    room = Room(recorder)
    room.join()
    room.stroke(10, 1, 1, points(20))
    t0 = time.monotonic()
    closed = archiver.close(recorder, "session ended")
    assert recorder.state is RecorderState.CLOSING and not recorder.accepting
    assert archiver.closing == {"ends-3": closed} and archiver.close(recorder, "again") is closed
    room.stroke(30, 1, 2, points(5))  # after close: not recorded
    await archiver.settle()  # what the recordings API does before it lists
    assert time.monotonic() - t0 < 1.0
    assert closed.done() and archiver.closing == {}
    (row,) = list_recordings(tmp_path)
    assert row["status"] == "complete" and row["participants"] == ["t-9", "s-9"] and row["protocol"] == 2
    assert [s.stroke for s in replay(load(tmp_path, "ends-3"))] == [1]
    await archiver.stop()


async def test_a_live_recording_lists_its_participants_after_a_flush(tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, 0.05, wall_clock=lambda: STARTED)
    await archiver.start()
    recorder = archiver.open("live", 1)
    Room(recorder).join()
    deadline = time.monotonic() + 5
    while not list_recordings(tmp_path) or not list_recordings(tmp_path)[0]["participants"]:
        assert time.monotonic() < deadline, "the live manifest never named the participants"
        await asyncio.sleep(0.02)  # the writer's flush cadence; the manifest on disk is all there is to see
    (row,) = list_recordings(tmp_path)
    assert row["status"] == "recording" and row["participants"] == ["t-9", "s-9"]
    await archiver.stop()
    assert read_manifest(tmp_path / "live-1").status.value == "complete"


async def test_a_recording_that_cannot_be_created_fails_alone(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    archiver = Archiver(root, 0.05, wall_clock=lambda: STARTED)
    await archiver.start()
    good = archiver.open("good", 1)
    (root / "bad-1").write_text("a file where the folder goes")
    bad = archiver.open("bad", 1)
    Room(bad).join()
    Room(good).join()
    await archiver.close(bad, "room idle")
    assert bad.failed and str(bad.failure).startswith("cannot create the recording: ")
    assert bad.state is RecorderState.CLOSED and bad.done.is_set()
    await archiver.close(good, "room idle")
    assert not good.failed and read_manifest(root / "good-1").status.value == "complete"
    await archiver.stop()


async def test_a_writer_that_falls_behind_its_bound_stops_that_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    archiver = Archiver(tmp_path, 0.05, wall_clock=lambda: STARTED, max_backlog_bytes=4096)
    await archiver.start()
    stalled = threading.Event()
    release = threading.Event()
    real_fsync = os.fsync

    def stuck_fsync(fd: int) -> None:
        stalled.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", stuck_fsync)
    recorder = archiver.open("behind", 1)
    room = Room(recorder)
    room.join()
    room.stroke(100, 1, 1, points(4))
    assert await asyncio.to_thread(stalled.wait, 5)  # the writer is stuck in the disk, opening it
    k = 2
    while recorder.accepting:
        room.stroke(100 + k, 1, k, points(40))
        k += 1
    assert recorder.state is RecorderState.FAILED
    assert recorder.failure == "the disk fell behind by more than 4096 bytes"
    assert archiver.backlog_bytes <= 4096 + ITEM_BYTES  # the stop marker itself may go beyond
    room.stroke(5000, 1, 999, points(4))  # refused: not queued
    release.set()
    await archiver.close(recorder, "room idle")
    monkeypatch.undo()
    records = read_log((tmp_path / "behind-1" / "events.log").read_bytes()).records
    notes = [r.body for r in records if r.kind is Kind.NOTE]
    assert notes[-2:] == [{"stopped": "the disk fell behind by more than 4096 bytes"}, {"ended": "room idle"}]
    strokes = replay(load(tmp_path, "behind-1"))
    assert 1 <= len(strokes) < k and 999 not in {s.stroke for s in strokes}
    await archiver.stop()


async def test_a_bad_packet_stops_its_recording_and_no_other(tmp_path: Path, voice: list[bytes]) -> None:
    archiver = Archiver(tmp_path, 0.05, wall_clock=lambda: STARTED)
    await archiver.start()
    broken, fine = archiver.open("broken", 1), archiver.open("fine", 1)
    for recorder in (broken, fine):
        Room(recorder).join()
    Room(broken).speak(10, 1, b"")
    Room(fine).speak(10, 1, voice[0])
    await asyncio.gather(archiver.close(broken, "room idle"), archiver.close(fine, "room idle"))
    assert broken.failed and "not a well-formed Opus packet" in str(broken.failure)
    assert not fine.failed
    assert read_manifest(tmp_path / "broken-1").status.value == "complete"  # what it had is kept
    notes = [r.body for r in read_log((tmp_path / "broken-1" / "events.log").read_bytes()).records
             if r.kind is Kind.NOTE]
    assert "stopped" in notes[1] and notes[-1] == {"ended": "room idle"}
    assert len([p for p, _ in load(tmp_path, "fine-1").audio[1].packets if p not in FILL]) == 1
    await archiver.stop()
