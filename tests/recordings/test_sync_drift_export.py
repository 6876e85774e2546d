"""Thirty minutes of a session in compressed time, checked as a researcher would: through the
exports. The tutor's device clock is an hour off the session clock and runs 100 ppm fast; its
microphone starts at the join and clicks once a minute at the instant of a pen-down by the same
clock; every chunk of the uplink (audio, ink and Pongs, in one TCP stream, so in order) is
delayed 100 +- 50 ms, and so is every Ping down. The archiver (``RecordingFiles``) and the
server's clock model (``wire.clocksync.ClockModel``, fed as ``ServerSession`` feeds it) run with
time passed in. Clicks are found in the decoded WAV track and pen-downs in the CSV export; each
pair must be within 20 ms."""

from __future__ import annotations

import csv
import heapq
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from recordings.exports.tables import points_csv
from recordings.exports.wav import decode_track
from recordings.loader import load
from recordings.recording import RecordingFiles
from tests.audiokit import encode_tone
from wire import HAS_PRESSURE, Point, PointState, Role, encode, encode_points
from wire import messages as m
from wire.audio import AudioPacket
from wire.clocksync import ClockModel

OFFSET_MS = 3_600_123.0  # the device clock minus the session clock at session time 0
DRIFT_PPM = 100.0  # the device clock runs this much fast
SESSION_MS = 30 * 60 * 1000
CLICK_EVERY = 3000  # packets: a click a minute
PINGS = [0, 100, 250, 500, 1000, *range(6000, SESSION_MS + 5000, 5000)]  # fast start, then every 5 s
SILENCE = b"\xf8\xff\xfe"
MAX_SKEW_MS = 20.0
PID = 1


def device(session_ms: float) -> float:
    return session_ms + OFFSET_MS + DRIFT_PPM * 1e-6 * session_ms


def session(device_ms: float) -> float:
    return (device_ms - OFFSET_MS) / (1 + DRIFT_PPM * 1e-6)


@dataclass(order=True)
class Sent:
    """Something the client sends up at session ``at`` (the uplink keeps their order)."""

    at: float
    order: int
    what: AudioPacket | PongUp | StrokeUp = field(compare=False)


@dataclass(frozen=True)
class PongUp:
    echo: float  # the Ping's session time
    device_ms: float  # the client's clock when it answered


@dataclass(frozen=True)
class StrokeUp:
    stroke: int
    device_t0: int


def click_onsets(pcm: np.ndarray, threshold: int = 2000, gap: int = 48 * 300) -> list[float]:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    starts = [int(i) for k, i in enumerate(loud) if k == 0 or i - loud[k - 1] > gap]
    return [s / 48 for s in starts]


def pen_downs(data_csv: str) -> list[float]:
    return [float(r["session_ms"]) for r in csv.DictReader(io.StringIO(data_csv)) if r["point"] == "0"]


def record(tmp_path: Path, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    files = RecordingFiles.create(tmp_path, "drift", 1, 0.0)
    model = ClockModel()
    uplink: list[Sent] = []
    order = 0

    def send(at: float, what: AudioPacket | PongUp | StrokeUp) -> None:
        nonlocal order
        order += 1
        heapq.heappush(uplink, Sent(at, order, what))

    for t0 in PINGS:  # each Ping reaches the client 100 +- 50 ms later; its Pong goes up at once
        reached = t0 + rng.uniform(50, 150)
        send(reached, PongUp(t0, device(reached)))
    click = encode_tone(1000.0, 3)
    mic_start = device(40.0)  # the microphone starts at the join
    seq, stroke = 0, 0
    while (captured := session(mic_start + 20 * seq)) < SESSION_MS:
        k = seq % CLICK_EVERY
        payload = click[k] if k < len(click) else SILENCE
        due = round(mic_start + 20 * seq)  # the capture start on the device clock
        send(captured + 20, AudioPacket(PID, seq, due, 0, 960, payload))  # sent once its 20 ms are in
        if k == 0:
            stroke += 1
            send(captured + 20.5, StrokeUp(stroke, due))
        seq += 1

    arrived = 0.0
    events = 0
    ops = 0

    def event(at: int, body: m.EventBody) -> None:
        nonlocal events
        events += 1
        ev = m.Event(events, at, PID, getattr(body, "cseq", 0), body)
        files.event(ev, encode(ev))

    event(0, m.Presence("t-drift", True, Role.TUTOR))
    while uplink:
        item = heapq.heappop(uplink)
        arrived = max(arrived, item.at + rng.uniform(50, 150))  # delayed, and never overtaking
        at = int(arrived)
        what = item.what
        if isinstance(what, AudioPacket):
            files.audio_packet(AudioPacket(PID, what.seq, what.capture_ts, at, 960, what.payload))
        elif isinstance(what, PongUp):
            fit = model.add(what.echo, what.device_ms, arrived)
            assert fit is not None
            files.clock(PID, at, fit.offset_at(at), arrived - what.echo, fit.drift_ppm)
        else:
            sid, due = what.stroke, what.device_t0
            pts = [Point(100, 100, t=0, pressure=500), Point(101, 101, t=8, pressure=500)]
            ops += 3
            event(at, m.StrokeBegin(ops - 2, sid, 0, m.Tool.PEN, 0x000000FF, 30, HAS_PRESSURE, due))
            event(at, m.StrokePoints(ops - 1, sid, 0, 2, encode_points(pts, HAS_PRESSURE, PointState())))
            event(at, m.StrokeEnd(ops, sid))
    files.finish("test")

    data = load(tmp_path, "drift-1")
    clicks = click_onsets(decode_track(data.audio[PID]))
    pens = pen_downs(points_csv(data))
    assert len(clicks) == len(pens) == stroke, (len(clicks), len(pens), stroke)
    return list(zip(clicks, pens, strict=True))


@pytest.mark.parametrize("seed", [1, 2])
def test_30_minutes_of_a_clock_drifting_100ppm_stay_within_20ms_in_the_exports(tmp_path: Path, seed: int) -> None:
    pairs = record(tmp_path, seed)
    skews = [abs(click - pen) for click, pen in pairs]
    print(f"seed {seed}: {len(pairs)} clicks, max |click - pen down| {max(skews):.1f} ms")
    assert max(skews) <= MAX_SKEW_MS, [(round(c), round(c - p, 1)) for c, p in pairs]
    # the true times too: the last click is where the drifting clock says, not 180 ms off
    assert abs(pairs[-1][1] - session(device(40.0) + 20 * CLICK_EVERY * (len(pairs) - 1))) <= MAX_SKEW_MS
