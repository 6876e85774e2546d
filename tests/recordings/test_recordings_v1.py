"""Recordings made with protocol version 1 stay readable: the committed recording in
tests/recordings/data/recording-v1 (written by the archiver before participants replaced seats, see its
README) loads with seats as participants 1 and 2, and every export of it is what the code of
that time made, byte for byte (the JSON export may only have gained keys; the InkML export, which
since describes a device per participant, has the same traces and points as the old one, kept in
expected.inkml, with trace times in whole ms; the replay page carries the same strokes, each with
when it was off the page, and the same audio)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from recordings.export import FORMATS, export
from recordings.exports.inkml import parse_inkml
from recordings.exports.model import Person
from recordings.exports.strokes import replay
from recordings.loader import audio_file, list_recordings, load
from recordings.manifest import ClockOffset, Participant, RecordingStatus, read_manifest
from recordings.recovery import recover
from tests.recordkit import assert_players_accept
from wire import Role
from wire import messages as m

FIXTURE = Path(__file__).parent / "data" / "recording-v1"
RID = "v1-demo-7"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURE / "expected_exports.json").read_text())
# the WAV data URI in the replay page that gave expected_exports.json's bytes (commit 0a892b2)
OLD_REPLAY_AUDIO_SHA256 = "8758b5c964497ab173be6ce5696ce9ba83ddc56febef303985d51af1e7a9284b"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the fixture (tests must not touch the committed files)."""
    shutil.copytree(FIXTURE / RID, tmp_path / RID)
    return tmp_path


def test_the_manifest_reads_as_protocol_1_with_seats_as_participants(root: Path) -> None:
    folder = root / RID
    assert json.loads((folder / "manifest.json").read_text())["format"] == 1  # as it was written
    manifest = read_manifest(folder)
    assert manifest.protocol == 1 and manifest.status is RecordingStatus.COMPLETE
    assert manifest.participants == [Participant(1, Role.TUTOR, "t-1", 0, 3000),
                                     Participant(2, Role.STUDENT, "s-1", 200, 2900)]
    assert manifest.clock_offsets == {1: [ClockOffset(100, -250.0, 3.0), ClockOffset(2100, -252.0, 4.0)]}
    for name, entry in manifest.files.items():
        data = (folder / name).read_bytes()
        assert (entry.bytes, entry.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    for name in ("audio-tutor.opus", "audio-student.opus"):
        assert_players_accept(folder / name)


def test_it_loads_with_version_2_events(root: Path) -> None:
    data = load(root, RID)
    assert data.participants == {1: Person(1, Role.TUTOR, "t-1"), 2: Person(2, Role.STUDENT, "s-1")}
    presence = [(e.pid, e.body) for e in data.events if isinstance(e.body, m.Presence)]
    assert presence == [(1, m.Presence("t-1", True, Role.TUTOR)), (2, m.Presence("s-1", True, Role.STUDENT)),
                        (2, m.Presence("s-1", False, Role.STUDENT)), (1, m.Presence("t-1", False, Role.TUTOR))]
    assert {e.pid for e in data.events} == {1, 2} and set(data.audio) == {1, 2}
    assert {c.pid for c in data.clocks} == {1}
    assert [s.key for s in replay(data)] == ["tutor-1", "tutor-2", "tutor-3", "student-1", "tutor-4"]
    (row,) = list_recordings(root)
    assert row["protocol"] == 1 and row["participants"] == ["t-1", "s-1"] and row["status"] == "complete"
    folder = root / RID
    for name, file in (("tutor", "audio-tutor.opus"), ("tutor-1", "audio-tutor.opus"),
                       ("student", "audio-student.opus"), ("student-2", "audio-student.opus")):
        assert audio_file(folder, name) == folder / file
    assert audio_file(folder, "student-1") is None and audio_file(folder, "viewer") is None


def _without_additions(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON export as protocol-1 code wrote it: without the keys added since (``roster``,
    ``pid`` of events and clock offsets, ``role`` of presence events)."""
    doc = dict(doc)
    del doc["roster"]
    doc["events"] = [{k: v for k, v in e.items() if k != "pid" and not (k == "role" and e["type"] == "presence")}
                     for e in doc["events"]]
    doc["clock_offsets"] = [{k: v for k, v in c.items() if k != "pid"} for c in doc["clock_offsets"]]
    return doc


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_export_is_what_protocol_1_code_made(root: Path, fmt: str) -> None:
    made = export(root, RID, fmt)
    expected = EXPECTED[fmt]
    assert made.media_type == expected["media_type"]
    if fmt == "json":
        old = json.loads((FIXTURE / "expected.json").read_text())
        new = json.loads(made.content)
        assert _without_additions(new) == old
        assert [e["pid"] for e in new["events"]][:2] == [1, 2]
        return
    if fmt == "inkml":  # changed on purpose since (issue 16: a device per participant): same traces
        old_text = (FIXTURE / "expected.inkml").read_bytes()
        assert (len(old_text), hashlib.sha256(old_text).hexdigest()) == (expected["bytes"], expected["sha256"])
        old_traces, new_traces = parse_inkml(old_text.decode()), parse_inkml(made.content.decode())
        assert [(t.id, t.page, t.brush, t.removed, t.points) for t in new_traces] == [
            (t.id, t.page, t.brush, t.removed, t.points) for t in old_traces]
        assert [(t.time_offset, t.duration) for t in new_traces] == [
            (round(t.time_offset or 0), round((t.time_offset or 0) + (t.duration or 0)) - round(t.time_offset or 0))
            for t in old_traces]
        return
    if fmt == "html":  # changed on purpose since (issue 22: each stroke says when it was off the page)
        page = made.content.decode()
        data = json.loads(re.findall(r'<script type="application/json" id="tw-data">(.*?)</script>', page, re.S)[0])
        for s in data["strokes"]:
            assert s.pop("hidden") == ([[s["removed"], None]] if s["removed"] is not None else [])
        assert data == json.loads((FIXTURE / "expected.replay.json").read_text())
        audio = re.findall(r'src="(data:audio/wav;base64,[^"]*)"', page)[0]
        assert hashlib.sha256(audio.encode()).hexdigest() == OLD_REPLAY_AUDIO_SHA256
        return
    assert (len(made.content), hashlib.sha256(made.content).hexdigest()) == (expected["bytes"], expected["sha256"])
    if fmt in ("csv", "summary"):
        assert made.content == (FIXTURE / f"expected{made.suffix}").read_bytes()


def test_a_protocol_1_recording_left_open_is_recovered_and_reads(root: Path) -> None:
    folder = root / RID
    doc = json.loads((folder / "manifest.json").read_text())
    # As the protocol-1 archiver left a recording while it ran: nobody in the manifest yet.
    doc.update(status="recording", participants=[], clock_offsets={}, files={}, duration_ms=0)
    (folder / "manifest.json").write_text(json.dumps(doc))
    report = recover(folder, now_unix=1_790_000_100.0)
    assert report is not None and report.problem is None and not report.damaged
    manifest = read_manifest(folder)
    assert manifest.status is RecordingStatus.INTERRUPTED and manifest.protocol == 1
    assert json.loads((folder / "manifest.json").read_text())["format"] == 2
    assert manifest.participants == [Participant(1, Role.TUTOR, "t-1", 0, 3000),
                                     Participant(2, Role.STUDENT, "s-1", 200, 2900)]
    assert manifest.clock_offsets == {1: [ClockOffset(100, -250.0, 3.0), ClockOffset(2100, -252.0, 4.0)]}
    assert export(root, RID, "csv").content == (FIXTURE / "expected.csv").read_bytes()
    assert load(root, RID).status == "interrupted"
