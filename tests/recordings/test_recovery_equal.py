"""A recording recovered after a crash exports exactly what the same recording closed cleanly does.

One session (two participants, their clock offsets, strokes on two pages, an undo, both voices) is
fed through the real archiver. Once its writer has flushed everything, the folder is copied as it
is on disk: that copy is what a server killed with SIGKILL leaves (the crash image of
``test_recordings_formats.crashed_folder``; everything the writer had flushed has reached the OS,
nothing else is written after the kill). The original is then closed cleanly (``complete``); the
copy is recovered by the next start of an archiver on its folder (``interrupted``).

The manifests must agree on participants, clock offsets (with their drift) and duration, and every export format
(``recordings.export.FORMATS``) must be byte for byte the same after normalising only:

* the status, ``complete`` in one and ``interrupted`` in the other, where an export shows it: the
  ``status`` annotation of ``inkml`` and the ``"status"`` key of ``json`` and ``summary``.
  Nothing else is normalised: the ``ended`` and ``recovered`` notes of the log are in no export,
  and ``csv``, ``wav``, ``html`` and ``svg`` must be equal as they are.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from recordings.archiver import Archiver
from recordings.eventlog import Kind, read_log
from recordings.export import FORMATS, export
from recordings.loader import load
from recordings.manifest import RecordingStatus, read_manifest
from recordings.ogg import read_ogg_opus
from tests.recordkit import assert_players_accept, opus_packets, tone
from wire import HAS_PRESSURE, HAS_TILT, Point, PointState, Role, encode, encode_points
from wire import messages as m
from wire.audio import AudioPacket

pytestmark = pytest.mark.timeout(60)
STARTED = 1_790_000_000.25
RID = "eq-3"


def _feed(archiver: Archiver) -> tuple[int, int]:
    """Feed one session to a new recorder; the number of events and of audio packets it gave."""
    recorder = archiver.open("eq", 3)
    seq = cseq = 0
    records = 0

    def event(ms: int, pid: int, body: m.EventBody) -> None:
        nonlocal seq, records
        seq += 1
        frame_event = m.Event(seq, ms, pid, 0 if isinstance(body, m.Presence | m.Roster) else body.cseq, body)
        recorder.on_event(frame_event, encode(frame_event))
        records += 1

    def stroke(ms: int, pid: int, stroke: int, page: int, n: int) -> None:
        nonlocal cseq
        flags = HAS_PRESSURE | HAS_TILT
        pts = [Point(100 + 7 * i, 300 - 3 * i, t=5 * i, pressure=200 + 9 * i, tilt_x=i % 7, tilt_y=-(i % 5))
               for i in range(n)]
        cseq += 1
        event(ms, pid, m.StrokeBegin(cseq, stroke, page, m.Tool.PEN, 0x336699FF, 24, flags, 10_000 + ms))
        state = PointState()
        for i in range(0, n, 5):
            cseq += 1
            chunk = pts[i:i + 5]
            event(ms + 1 + i, pid, m.StrokePoints(cseq, stroke, i, len(chunk), encode_points(chunk, flags, state)))
        cseq += 1
        event(ms + 2 + n, pid, m.StrokeEnd(cseq, stroke))

    event(0, 1, m.Presence("t-7", True, Role.TUTOR))
    event(40, 2, m.Presence("s-7", True, Role.STUDENT))
    # Enough measurements before any audio that a speaker's clock is settled (audio stamped with a
    # capture time may wait in memory for its clock; a crash would lose what waits).
    clocks = [(pid, 20 + 10 * k + pid, 10_000.0 + 0.25 * k - 50 * (pid - 1)) for k in range(6) for pid in (1, 2)]
    for pid, at, offset in [*clocks, (1, 900, 10_002.0)]:
        recorder.on_clock(pid, at, offset, 4.0, 12.5 * (pid == 1) * at / 900)  # the tutor's clock drifts
    stroke(100, 1, 1, 0, 23)
    stroke(300, 2, 1, 0, 11)
    stroke(500, 1, 2, 1, 17)
    cseq += 1
    event(700, 1, m.Undo(cseq, 2))
    voice = opus_packets(tone(440, 960 * 20))
    other = opus_packets(tone(1000, 960 * 10))
    for i, payload in enumerate(voice):
        recorder.on_audio(AudioPacket(1, i + 1, 10_000 + 200 + 20 * i, 210 + 20 * i, 960, payload))
    for i, payload in enumerate(other):
        recorder.on_audio(AudioPacket(2, i + 1, 0, 650 + 20 * i, 960, payload))  # no capture time: arrival
    event(1200, 2, m.Presence("s-7", False, Role.STUDENT))
    return records, len(voice) + len(other)


def _normalised(fmt: str, content: bytes, status: str) -> bytes:
    """``content`` with the recording's status shown as ``STATUS`` (the only difference allowed)."""
    if fmt == "inkml":
        return content.replace(f'<annotation type="status">{status}</annotation>'.encode(),
                               b'<annotation type="status">STATUS</annotation>')
    if fmt in ("json", "summary"):
        return content.replace(f'"status": "{status}"'.encode(), b'"status": "STATUS"')
    return content


def _audio_packets(folder: Path) -> int:
    return sum(len(read_ogg_opus(p.read_bytes()).packets) for p in folder.glob("audio-*.opus"))


async def test_every_export_of_a_recovered_recording_equals_the_clean_one(tmp_path: Path) -> None:
    clean_root, crashed_root = tmp_path / "clean", tmp_path / "crashed"
    archiver = Archiver(clean_root, 0.02, wall_clock=lambda: STARTED)
    await archiver.start()
    records, packets = _feed(archiver)
    folder = clean_root / RID

    def flushed() -> bool:
        try:
            log = read_log((folder / "events.log").read_bytes())
            events = [r for r in log.records if r.kind is Kind.EVENT]
            return len(events) == records and _audio_packets(folder) >= packets
        except (OSError, ValueError):
            return False

    for _ in range(500):  # the writer flushes every 20 ms; the files are all a crash leaves
        if await asyncio.to_thread(flushed):
            break
        await asyncio.sleep(0.02)
    assert await asyncio.to_thread(flushed), "the writer never flushed the whole session"
    await asyncio.to_thread(shutil.copytree, folder, crashed_root / RID)  # the SIGKILL image
    await archiver.close(archiver.recorders[RID], "session ended")
    await archiver.stop()
    assert read_manifest(crashed_root / RID).status is RecordingStatus.RECORDING

    restarted = Archiver(crashed_root, 0.02, wall_clock=lambda: STARTED + 60)
    await restarted.start()  # recovers what the crash left open
    await restarted.stop()

    clean, recovered = read_manifest(folder), read_manifest(crashed_root / RID)
    assert clean.status is RecordingStatus.COMPLETE and recovered.status is RecordingStatus.INTERRUPTED
    assert recovered.recovery is not None and not recovered.recovery["damaged_files"]
    assert recovered.participants == clean.participants
    assert [(p.pid, p.role, p.user_id) for p in clean.participants] == [(1, Role.TUTOR, "t-7"),
                                                                       (2, Role.STUDENT, "s-7")]
    assert recovered.clock_offsets == clean.clock_offsets and set(clean.clock_offsets) == {1, 2}
    assert clean.clock_offsets[1][-1].drift_ppm == 12.5  # the drift comes back from the log too
    assert recovered.duration_ms == clean.duration_ms == 1200
    assert set(recovered.files) == set(clean.files)
    for name in recovered.files:
        if name.endswith(".opus"):
            assert_players_accept(crashed_root / RID / name)
    notes = [r.body for r in read_log((crashed_root / RID / "events.log").read_bytes()).records
             if r.kind is Kind.NOTE]
    assert next(iter(notes[0])) == "started" and next(iter(notes[-1])) == "recovered"
    assert not any("ended" in n for n in notes)
    assert load(crashed_root, RID).status == "interrupted"

    for fmt in sorted(FORMATS):
        a = export(clean_root, RID, fmt).content
        b = export(crashed_root, RID, fmt).content
        assert _normalised(fmt, a, "complete") == _normalised(fmt, b, "interrupted"), fmt
        if fmt in ("csv", "wav", "html", "svg"):
            assert a == b, fmt
        else:  # they show the status, so the normalisation did something
            assert a != b and _normalised(fmt, a, "complete") != a, fmt
