"""Recordings across a move (issue 20, item 4; docs/recordings.md, Moves).

A node's archiver runs in a process of its own (``move_child``) and is killed with SIGKILL mid-
session; the node the session moves to resumes the recording (``Archiver.resume``) and is fed
every event the room's stream holds from seq 1, then new ones, and audio from the move on. The
recording must come out as one: every seq once and in order, the ink of a stroke that spans the
move whole, each speaker's audio of both nodes on the one timeline (in the WAV export too), the
move in the manifest, ``complete``. Also: a node that starts on the shared directory leaves a
folder another live process is writing alone (the writer's lock), a resume waits for the old
node's lock, a folder that is not there (storage not shared) is started at the move, and a folder
the old node ended (``complete``) or another node recovered (``interrupted``) goes on too.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from recordings.archiver import Archiver, SessionRecorder
from recordings.eventlog import Kind, LogRecord, read_log
from recordings.export import FORMATS, export
from recordings.exports.strokes import replay
from recordings.exports.wav import decode_track
from recordings.folderlock import FolderLock
from recordings.loader import load, scan_log
from recordings.manifest import Move, RecordingStatus, read_manifest
from recordings.ogg import OggOpusWriter, read_ogg_opus, reopen_ogg
from recordings.recovery import recover_all
from tests.recordings.move_child import EVENT_MS, STARTED, expected_points, session_event
from tests.recordkit import assert_players_accept, dominant_frequency, opus_packets, rms, tone
from wire.audio import AudioPacket

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
SESSION, EPOCH = "mv", 77
RID = f"{SESSION}-{EPOCH}"
FED = 5000  # events the old node was given (and Redis holds): 100 s of session
MOVE_MS = 120_000  # the session moved here 120 s after its start
NEW = 40  # events after the move


async def _child(root: Path, count: int = FED) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.recordings.move_child", str(root), SESSION, str(EPOCH), str(count),
        stdout=asyncio.subprocess.PIPE, cwd=REPO)


def _logged_events(folder: Path) -> int:
    try:
        return sum(r.kind is Kind.EVENT for r in read_log((folder / "events.log").read_bytes()).records)
    except OSError:
        return 0


async def _until_logged(proc: asyncio.subprocess.Process, folder: Path, events: int) -> None:
    """Read the child's ``flushed`` lines until its log on disk holds ``events`` events."""
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the recording process ended"
        if await asyncio.to_thread(_logged_events, folder) >= events:
            return


def _log(folder: Path) -> list[LogRecord]:
    read = read_log((folder / "events.log").read_bytes())
    assert read.damage is None
    return read.records


def _window(pcm: np.ndarray, from_ms: int, to_ms: int) -> np.ndarray:
    return pcm[from_ms * 48:to_ms * 48]


def _feed_after_move(recorder: SessionRecorder, redis_events: int, new: int) -> None:
    """What the new home feeds: the stream from seq 1, then new events and both voices after the move."""
    for seq in range(1, redis_events + 1):
        recorder.on_event(*session_event(seq, EVENT_MS * seq))
    for k in range(1, new + 1):
        recorder.on_event(*session_event(redis_events + k, MOVE_MS + EVENT_MS * k))
    for k, payload in enumerate(opus_packets(tone(880, 960 * 100))):  # the tutor, 2 s
        recorder.on_audio(AudioPacket(1, 10_000 + k, 0, MOVE_MS + 100 + 20 * k, 960, payload))
    for k, payload in enumerate(opus_packets(tone(660, 960 * 50))):  # the student, new here
        recorder.on_audio(AudioPacket(2, 1 + k, 0, MOVE_MS + 600 + 20 * k, 960, payload))


async def test_a_recording_killed_mid_session_goes_on_as_one_on_the_node_it_moved_to(tmp_path: Path) -> None:
    folder = tmp_path / RID
    proc = await _child(tmp_path)
    try:
        await _until_logged(proc, folder, 200)
        # Another node starts on the shared directory: its recovery leaves the live folder alone.
        node2 = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED + MOVE_MS / 1000, resume_lock_wait_s=30)
        await node2.start()
        assert read_manifest(folder).status is RecordingStatus.RECORDING
        assert not any("recovered" in r.body for r in _log_prefix(folder) if r.kind is Kind.NOTE)
        # It takes the room over while the old node still holds the folder: the resume waits ...
        recorder = node2.resume(SESSION, EPOCH, "n1", "n2", started_unix=STARTED)
        _feed_after_move(recorder, FED, NEW)
        await _until_logged(proc, folder, await asyncio.to_thread(_logged_events, folder) + 50)
        assert read_manifest(folder).moves == [], "the old node still writes: the new one waits for it"
    finally:
        proc.kill()  # ... until the old node dies (SIGKILL: mid-write)
        await proc.wait()
    await asyncio.wait_for(node2.close(recorder, "session ended"), 30)
    await node2.stop()
    assert recorder.failure is None

    manifest = read_manifest(folder)
    assert manifest.status is RecordingStatus.COMPLETE
    assert manifest.moves == [Move(MOVE_MS, "n1", "n2", True)]
    assert [(p.pid, p.user_id) for p in manifest.participants] == [(1, "t-move"), (2, "s-move")]
    assert set(manifest.files) == {"events.log", "audio-tutor-1.opus", "audio-student-2.opus"}
    records = _log(folder)
    moved_at = next(i for i, r in enumerate(records) if r.kind is Kind.NOTE and "moved" in r.body)
    before = sum(r.kind is Kind.EVENT for r in records[:moved_at])
    assert 250 <= before < FED, "the old node was killed mid-session"
    seqs = [e.seq for e in scan_log(records, 2).events]
    assert seqs == list(range(1, FED + NEW + 1)), "every seq once, in order, no gap"

    data = load(tmp_path, RID)
    assert len(data.events) == FED + NEW and data.status == "complete"
    strokes = {s.stroke: [(p.x, p.y, p.pressure) for p in s.points] for s in replay(data) if s.pid == 1}
    assert strokes == expected_points(FED + NEW)  # the stroke across the move too: no lost ink
    for name in manifest.files:
        if name.endswith(".opus"):
            assert_players_accept(folder / name)
    tutor_file = read_ogg_opus((folder / "audio-tutor-1.opus").read_bytes())
    assert tutor_file.damage is None and tutor_file.eos  # one stream, both nodes' audio

    tutor, student = decode_track(data.audio[1]), decode_track(data.audio[2])
    assert abs(dominant_frequency(_window(tutor, 1000, 3000)) - 440) < 15  # the old node's part
    # between the old node's last packet (its Ogg pages may run ahead of its log) and the move: silence
    assert rms(_window(tutor, EVENT_MS * FED + 100, MOVE_MS)) == 0.0
    assert abs(dominant_frequency(_window(tutor, MOVE_MS + 300, MOVE_MS + 2000)) - 880) < 15  # this node's
    assert abs(dominant_frequency(_window(student, MOVE_MS + 700, MOVE_MS + 1500)) - 660) < 15
    with wave.open(io.BytesIO(export(tmp_path, RID, "wav").content)) as w:
        mixed = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert len(mixed) >= (MOVE_MS + 2050) * 48  # it covers both parts (to the end of the tutor's last packet)
    assert rms(_window(mixed, 1000, 3000)) > 1000 and rms(_window(mixed, MOVE_MS + 300, MOVE_MS + 2000)) > 1000
    for fmt in sorted(FORMATS):
        assert export(tmp_path, RID, fmt).content, fmt
    moves = json.loads(export(tmp_path, RID, "json").content)["moves"]
    assert moves == [{"at_ms": MOVE_MS, "from": "n1", "to": "n2", "continued": True}]


def _log_prefix(folder: Path) -> list[LogRecord]:
    """The good records of a log another process may be writing (its tail may be mid-record)."""
    return read_log((folder / "events.log").read_bytes()).records


async def test_recovery_leaves_a_folder_another_process_writes_alone_until_it_dies(tmp_path: Path) -> None:
    folder = tmp_path / RID
    proc = await _child(tmp_path)
    try:
        await _until_logged(proc, folder, 50)
        assert await asyncio.to_thread(recover_all, tmp_path, STARTED + 60) == []
        assert read_manifest(folder).status is RecordingStatus.RECORDING
        assert not any(r.kind is Kind.NOTE and "recovered" in r.body for r in _log_prefix(folder))
        await _until_logged(proc, folder, 100)  # and the writer goes on untroubled
    finally:
        proc.kill()
        await proc.wait()
    (report,) = await asyncio.to_thread(recover_all, tmp_path, STARTED + 61)  # its lock died with it
    assert report.folder == folder and report.problem is None
    assert read_manifest(folder).status is RecordingStatus.INTERRUPTED


def _first_part(archiver: Archiver, events: int = 50) -> SessionRecorder:
    recorder = archiver.open(SESSION, EPOCH)
    for seq in range(1, events + 1):
        recorder.on_event(*session_event(seq, EVENT_MS * seq))
    for k, payload in enumerate(opus_packets(tone(440, 960 * events))):
        recorder.on_audio(AudioPacket(1, 1 + k, 0, EVENT_MS * (k + 1), 960, payload))
    return recorder


async def _flushed(folder: Path, events: int) -> None:
    for _ in range(500):
        if await asyncio.to_thread(_logged_events, folder) >= events:
            return
        await asyncio.sleep(0.02)  # the writer's flush cadence; the file is what a crash leaves
    raise AssertionError("the writer never flushed")


@pytest.mark.parametrize("left", ["complete", "interrupted"])
async def test_a_folder_the_old_node_ended_or_another_recovered_goes_on(tmp_path: Path, left: str) -> None:
    old = Archiver(tmp_path / "old", 0.02, wall_clock=lambda: STARTED)
    await old.start()
    recorder = _first_part(old)
    if left == "interrupted":  # the old node died; a third node's start recovered its folder
        await _flushed(tmp_path / "old" / RID, 50)
        shutil.copytree(tmp_path / "old" / RID, tmp_path / RID)
    await old.close(recorder, "moved to another node")  # a live old node ends it when told
    await old.stop()
    if left == "complete":
        shutil.copytree(tmp_path / "old" / RID, tmp_path / RID)
    shutil.rmtree(tmp_path / "old")
    if left == "interrupted":
        (report,) = recover_all(tmp_path, STARTED + 10)
        assert report.problem is None
    assert read_manifest(tmp_path / RID).status.value == left

    new = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED + MOVE_MS / 1000)
    await new.start()
    recorder = new.resume(SESSION, EPOCH, "n1", "n2", started_unix=STARTED + 999)  # the folder's start wins
    _feed_after_move(recorder, 50, 10)
    await new.close(recorder, "session ended")
    await new.stop()
    assert recorder.durable_seq >= 50  # what the log holds on disk: the stream may be trimmed to it
    manifest = read_manifest(tmp_path / RID)
    assert manifest.status is RecordingStatus.COMPLETE and manifest.started_unix == STARTED
    assert manifest.moves == [Move(MOVE_MS, "n1", "n2", True)]
    assert (manifest.recovery is not None) == (left == "interrupted")  # what happened to it stays said
    assert [e.seq for e in scan_log(_log(tmp_path / RID), 2).events] == list(range(1, 61))
    assert_players_accept(tmp_path / RID / "audio-tutor-1.opus")
    tutor = decode_track(load(tmp_path, RID).audio[1])
    assert abs(dominant_frequency(_window(tutor, 100, 900)) - 440) < 15
    assert abs(dominant_frequency(_window(tutor, MOVE_MS + 300, MOVE_MS + 2000)) - 880) < 15


async def test_without_shared_storage_the_folder_starts_at_the_move(tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED + MOVE_MS / 1000)
    await archiver.start()
    recorder = archiver.resume(SESSION, EPOCH, "n1", "n2", started_unix=STARTED)
    _feed_after_move(recorder, 30, 5)
    await archiver.close(recorder, "session ended")
    await archiver.stop()
    manifest = read_manifest(tmp_path / RID)
    assert manifest.status is RecordingStatus.COMPLETE and manifest.started_unix == STARTED
    assert manifest.moves == [Move(MOVE_MS, "n1", "n2", False)]  # the earlier part is on n1
    assert [e.seq for e in scan_log(_log(tmp_path / RID), 2).events] == list(range(1, 36))
    tutor = decode_track(load(tmp_path, RID).audio[1])
    assert rms(_window(tutor, 0, MOVE_MS)) == 0.0  # on the session's timeline, from the move on
    assert abs(dominant_frequency(_window(tutor, MOVE_MS + 300, MOVE_MS + 2000)) - 880) < 15
    assert_players_accept(tmp_path / RID / "audio-tutor-1.opus")


async def test_a_resume_gives_up_on_a_folder_that_stays_locked(tmp_path: Path) -> None:
    writer = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED)
    await writer.start()
    live = _first_part(writer, 10)
    await _flushed(tmp_path / RID, 10)
    other = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED + 5, resume_lock_wait_s=0.2)
    await other.start()  # the same directory: its recovery skipped the folder being written
    taken = other.resume(SESSION, EPOCH, "n1", "n2")
    taken.on_event(*session_event(11, 300))
    await other.close(taken, "session ended")
    assert taken.failure is not None and "still being written" in taken.failure
    await other.stop()
    assert read_manifest(tmp_path / RID).status is RecordingStatus.RECORDING  # untouched
    await writer.close(live, "session ended")
    await writer.stop()
    assert read_manifest(tmp_path / RID).status is RecordingStatus.COMPLETE
    assert [e.seq for e in scan_log(_log(tmp_path / RID), 2).events] == list(range(1, 11))
    lock = FolderLock.take(tmp_path / RID)
    assert lock is not None  # let go at the end
    lock.release()


def test_an_ogg_stream_cut_mid_page_goes_on_after_its_last_good_page(tmp_path: Path) -> None:
    path = tmp_path / "audio-tutor-1.opus"
    first, second = opus_packets(tone(440, 960 * 120)), opus_packets(tone(880, 960 * 10))
    writer = OggOpusWriter(path, serial=7)
    for k, payload in enumerate(first):
        writer.add(payload, 960, 960 * k)
    writer.flush(fsync=False)
    writer.abandon()
    whole = read_ogg_opus(path.read_bytes())
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100)  # a torn last page
    read = reopen_ogg(path)
    assert read is not None and read.damage is not None and path.with_name(path.name + ".damaged").exists()
    kept = len(read.packets)
    assert 0 < kept < len(whole.packets)
    writer = OggOpusWriter.continuing(path, read)
    for k, payload in enumerate(second):
        writer.add(payload, 960, 48 * 5000 + 960 * k)
    writer.close()
    again = read_ogg_opus(path.read_bytes())
    assert again.damage is None and again.eos and again.pre_skip == whole.pre_skip
    assert again.packets[:kept] == whole.packets[:kept]
    assert [p for p, _ in again.packets[-10:]] == second
    assert again.packets[-1][1] - again.pre_skip == 48 * 5000 + 960 * 10 - 312  # on the same timeline
    assert_players_accept(path)
    ended = reopen_ogg(path)  # an ended stream can go on again: its EOS is taken back
    assert ended is not None and not ended.eos and ended.packets == again.packets
    writer = OggOpusWriter.continuing(path, ended)
    writer.add(second[0], 960, 48 * 6000)
    writer.close()
    assert read_ogg_opus(path.read_bytes()).packets[-1][0] == second[0]
    assert_players_accept(path)


async def test_a_folder_still_held_does_not_hold_up_the_other_resumes(tmp_path: Path) -> None:
    writer = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED)
    await writer.start()
    held = _first_part(writer, 10)  # its node has not heard of the move yet
    await _flushed(tmp_path / RID, 10)
    node2 = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED + MOVE_MS / 1000, resume_lock_wait_s=30)
    await node2.start()
    waiting = node2.resume(SESSION, EPOCH, "n1", "n2", started_unix=STARTED)
    _feed_after_move(waiting, 10, 5)
    others = [node2.resume(f"other{i}", 1, "n1", "n2", started_unix=STARTED) for i in range(3)]
    for recorder in others:
        _feed_after_move(recorder, 10, 0)
    await asyncio.wait_for(asyncio.gather(*(node2.close(r, "session ended") for r in others)), 10)
    for i in range(3):
        assert read_manifest(tmp_path / f"other{i}-1").status is RecordingStatus.COMPLETE
    assert read_manifest(tmp_path / RID).moves == [] and waiting.failure is None  # still waiting its turn
    await writer.close(held, "moved to another node")  # the old node lets go ...
    await writer.stop()
    await asyncio.wait_for(node2.close(waiting, "session ended"), 10)  # ... and the resume goes on
    await node2.stop()
    manifest = read_manifest(tmp_path / RID)
    assert manifest.status is RecordingStatus.COMPLETE and manifest.moves == [Move(MOVE_MS, "n1", "n2", True)]
    assert [e.seq for e in scan_log(_log(tmp_path / RID), 2).events] == list(range(1, 16))


async def test_what_the_recording_knew_comes_back_after_the_move(tmp_path: Path) -> None:
    """Clock offsets, a second device, late audio and the packets already recorded survive the move."""
    old = Archiver(tmp_path / "old", 0.02, wall_clock=lambda: STARTED)
    await old.start()
    recorder = old.open(SESSION, EPOCH)
    for seq in range(1, 13):
        recorder.on_event(*session_event(seq, EVENT_MS * seq))
    for k in range(6):
        recorder.on_clock(1, 20 + 10 * k, 10_000.0, 4.0)
    recorder.on_clock(1, 200, 5_000.0, 3.0, 0.0, "pen")  # the pen gateway beside the browser
    voice = opus_packets(tone(440, 960 * 40))
    for k in range(20):
        recorder.on_audio(AudioPacket(1, 1 + k, 10_300 + 20 * k, 320 + 20 * k, 960, voice[k]))
    for k in range(5):  # what the gateway could not send live, uploaded late
        recorder.on_late_audio(AudioPacket(1, 100 + k, 10_100 + 20 * k, 800, 960, voice[20 + k]))
    await _flushed(tmp_path / "old" / RID, 12)
    for _ in range(500):
        if len(read_ogg_opus((tmp_path / "old" / RID / "audio-tutor-1-late.opus").read_bytes()).packets) >= 5:
            break
        await asyncio.sleep(0.02)  # the writer's flush cadence
    shutil.copytree(tmp_path / "old" / RID, tmp_path / RID)  # what a SIGKILL leaves
    await old.close(recorder, "session ended")
    await old.stop()
    shutil.rmtree(tmp_path / "old")

    new = Archiver(tmp_path, 0.02, wall_clock=lambda: STARTED + MOVE_MS / 1000)
    await new.start()  # recovers the dead node's folder: it is interrupted when the resume comes
    recorder = new.resume(SESSION, EPOCH, "n1", "n2", started_unix=STARTED)
    for seq in range(1, 21):
        recorder.on_event(*session_event(seq, EVENT_MS * seq if seq <= 12 else MOVE_MS + seq))
    for k in range(6):
        recorder.on_clock(1, MOVE_MS + 10 * k, 10_000.0, 5.0)
    recorder.on_audio(AudioPacket(1, 5, 10_380, MOVE_MS + 100, 960, voice[4]))  # sent again: recorded already
    for k in range(10):
        recorder.on_audio(AudioPacket(1, 200 + k, 10_000 + MOVE_MS + 500 + 20 * k, MOVE_MS + 520 + 20 * k, 960,
                                      voice[30 + k]))
    recorder.on_late_audio(AudioPacket(1, 102, 10_140, MOVE_MS + 600, 960, voice[22]))  # uploaded again
    recorder.on_late_audio(AudioPacket(1, 150, 10_000 + MOVE_MS + 100, MOVE_MS + 700, 960, voice[25]))
    await new.close(recorder, "session ended")
    await new.stop()

    manifest = read_manifest(tmp_path / RID)
    assert manifest.status is RecordingStatus.COMPLETE and manifest.recovery is not None
    ats = [c.at_ms for c in manifest.clock_offsets[1]]
    assert min(ats) < 1000 and max(ats) >= MOVE_MS  # the old node's models and the new one's
    (pen,) = manifest.devices
    assert pen.device == "pen" and [c.offset_ms for c in pen.clock_offsets] == [5_000.0]
    assert manifest.late_audio[1].packets == 6 and manifest.late_audio[1].file == "audio-tutor-1-late.opus"
    assert {"audio-tutor-1.opus", "audio-tutor-1-late.opus"} <= set(manifest.files)
    live = [r.body[0] for r in _log(tmp_path / RID) if r.kind is Kind.AUDIO and len(r.body) == 3]
    assert sorted(live) == [*range(1, 21), *range(200, 210)]  # seq 5 once
    late = [r.body[0] for r in _log(tmp_path / RID) if r.kind is Kind.AUDIO and len(r.body) == 4]
    assert sorted(late) == [100, 101, 102, 103, 104, 150]  # 102 once
    for name in ("audio-tutor-1.opus", "audio-tutor-1-late.opus"):
        assert_players_accept(tmp_path / RID / name)
