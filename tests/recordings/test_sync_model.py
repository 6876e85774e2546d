"""The clock model and the archiver's audio placement with time passed in: a 30-minute session
in compressed time with a client clock an hour off and drifting 100 ppm, through a jittery link
with spikes; the hold for a speaker's clock and its bounds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from recordings.eventlog import Kind, read_log
from recordings.ogg import PRE_SKIP, SLACK_MS, read_ogg_opus
from recordings.recording import RecordingFiles, SyncConfig
from wire.audio import AudioPacket
from wire.clocksync import ClockModel

OFFSET_MS = 3_600_123.0  # the client's clock minus the session clock at session time 0
DRIFT_PPM = 100.0  # the client's clock runs this much fast
SESSION_MS = 30 * 60 * 1000


def device(session_ms: float) -> float:
    return session_ms + OFFSET_MS + DRIFT_PPM * 1e-6 * session_ms


def true_offset(session_ms: float) -> float:
    return device(session_ms) - session_ms


def exchange(model: ClockModel, t0: float, rng: random.Random) -> None:
    """A server Ping at session ``t0``: 20 ms each way plus up to 30 ms of jitter, and now and
    then a 400 ms queueing spike on one way."""
    up = 20 + rng.uniform(0, 30) + (400 if rng.random() < 0.05 else 0)
    down = 20 + rng.uniform(0, 30) + (400 if rng.random() < 0.05 else 0)
    model.add(t0, device(t0 + up), t0 + up + down)


def test_the_model_tracks_offset_and_drift_over_30_minutes() -> None:
    rng = random.Random(11)
    model = ClockModel()
    worst_after_a_minute = 0.0
    for k, t0 in enumerate([0, 100, 250, 500, 1000, *range(6000, SESSION_MS, 5000)]):
        exchange(model, t0, rng)
        fit = model.fit
        assert fit is not None
        error = abs(fit.offset_at(t0) - true_offset(t0))
        assert error <= 15, (k, t0, error)  # even from the first exchanges: half the jitter at most
        if t0 >= 60_000:
            worst_after_a_minute = max(worst_after_a_minute, error)
    assert worst_after_a_minute <= 6.0  # the envelope of 5 s pings through 30 ms of jitter
    assert model.fit is not None and model.fit.drift_ppm == pytest.approx(DRIFT_PPM, abs=15)
    # extrapolated a minute past the last exchange the drift still holds
    assert abs(model.fit.offset_at(SESSION_MS + 60_000) - true_offset(SESSION_MS + 60_000)) <= 4


def test_a_jitter_spike_does_not_move_the_estimate() -> None:
    model = ClockModel()
    for t0 in range(0, 10_000, 1000):
        model.add(t0, t0 + 25 + 500.0, t0 + 50)  # 25 ms each way: offset 500
    before = model.fit
    model.add(10_000, 10_000 + 400 + 500.0, 10_000 + 420)  # 400 ms up, 20 down: offset 690 if believed
    assert before is not None and model.fit is not None
    assert model.fit.offset_at(10_000) == pytest.approx(before.offset_at(10_000), abs=0.01)


def seq_payload(seq: int) -> bytes:
    return b"\xf8" + seq.to_bytes(3, "big")  # a 20 ms Opus packet (CELT FB, one frame), unique per seq


def placed_ms(path: Path) -> dict[int, float]:
    """Session ms of each speaker packet's capture start in the Ogg file, by seq."""
    read = read_ogg_opus(path.read_bytes())
    return {int.from_bytes(p[1:], "big"): (g - 960 - read.pre_skip + PRE_SKIP) / 48
            for p, g in read.packets if len(p) == 4}


def test_30_minutes_of_a_drifting_clock_stay_in_sync(tmp_path: Path) -> None:
    """The speaker's microphone is clocked by its drifting device clock (20 ms device time a
    packet), starts at the join, and each packet arrives 20-150 ms after its capture; the server
    pings every 5 s after its fast start. Every packet ends up within the slack (plus the model's
    error) of its true session time, and packets are dropped only to follow the drift."""
    rng = random.Random(5)
    files = RecordingFiles.create(tmp_path, "drift", 1, 0.0)
    model = ClockModel()
    pings = iter([0, 100, 250, 500, 1000, *range(6000, SESSION_MS + 5000, 5000)])
    next_ping = next(pings)
    start_device = device(100.0)  # the microphone starts 100 ms in
    truth: dict[int, float] = {}
    seq = 0
    while True:
        capture_device = start_device + 20 * seq
        capture = (capture_device - OFFSET_MS) / (1 + DRIFT_PPM * 1e-6)  # session ms
        if capture > SESSION_MS:
            break
        arrival = capture + 20 + 20 + rng.uniform(0, 110)
        while next_ping + 60 <= arrival:  # pongs that came before this packet
            exchange(model, next_ping, rng)
            fit = model.fit
            assert fit is not None
            files.clock(1, next_ping + 60, fit.offset_at(next_ping + 60), 60.0, fit.drift_ppm)
            next_ping = next(pings)
        truth[seq] = capture
        files.audio_packet(AudioPacket(1, seq, round(capture_device), round(arrival), 960, seq_payload(seq)))
        seq += 1
    files.finish("test")
    placed = placed_ms(next(tmp_path.glob("drift-1/audio-*.opus")))
    errors = [placed[s] - truth[s] for s in placed]
    dropped = len(truth) - len(placed)
    assert max(abs(e) for e in errors) <= SLACK_MS + 6, (min(errors), max(errors))  # slack + the model's error
    # 100 ppm of 30 minutes is 180 ms: about that many milliseconds of packets were dropped
    assert 6 <= dropped <= 12
    # the first packets waited for the clock and still went to their capture times
    assert abs(errors[0]) <= 3


def test_held_audio_is_bounded_and_placed_by_arrival_without_a_clock(tmp_path: Path) -> None:
    files = RecordingFiles.create(tmp_path, "hold", 1, 0.0, SyncConfig(hold_ms=10_000, hold_packets=10))
    for seq in range(9):
        files.audio_packet(AudioPacket(1, seq, 5_000_000 + 20 * seq, 300 + 20 * seq, 960, seq_payload(seq)))
    assert len(files.held[1]) == 9 and not files.audio  # nothing written yet
    files.audio_packet(AudioPacket(1, 9, 5_000_180, 480, 960, seq_payload(9)))
    assert 1 not in files.held  # the tenth: placed, by arrival (no clock at all)
    files.finish("test")
    placed = placed_ms(next(tmp_path.glob("hold-1/audio-*.opus")))
    assert placed[0] == pytest.approx(300, abs=0.1) and placed[9] == pytest.approx(480, abs=0.1)


def test_held_audio_goes_to_its_capture_time_once_the_clock_settles(tmp_path: Path) -> None:
    files = RecordingFiles.create(tmp_path, "settle", 1, 0.0, SyncConfig(settle_samples=3))
    for seq in range(20):  # captured from session 10 ms on, arriving 200 ms later; offset 5,000,000
        files.audio_packet(AudioPacket(1, seq, 5_000_010 + 20 * seq, 210 + 20 * seq, 960, seq_payload(seq)))
        if seq in (5, 10, 15):
            files.clock(1, 210 + 20 * seq, 5_000_000.0, 30.0)
    files.finish("test")
    folder = tmp_path / "settle-1"
    placed = placed_ms(next(folder.glob("audio-*.opus")))
    assert placed[0] == pytest.approx(10, abs=0.05) and placed[19] == pytest.approx(390, abs=0.05)
    records = read_log((folder / "events.log").read_bytes()).records
    kinds = [(r.kind, r.body) for r in records if r.kind in (Kind.CLOCK, Kind.NOTE) and r.pid == 1]
    assert [k for k, _ in kinds] == [Kind.NOTE, Kind.NOTE, Kind.CLOCK]  # logged once settled
    assert kinds[0][1] == {"clock_settling": [5_000_000.0, 30.0, 0.0]}


def _jittery_model(rng: random.Random, t_from: int, t_to: int, model: ClockModel | None = None) -> ClockModel:
    model = model or ClockModel()
    for t0 in range(t_from, t_to, 5000):
        exchange(model, t0, rng)
    return model


def test_a_reconnect_carries_the_model_on_instead_of_starting_from_one_sample() -> None:
    rng = random.Random(3)
    before = _jittery_model(rng, 0, 120_000)
    assert before.fit is not None
    fresh, carried = ClockModel(), ClockModel()
    carried.carry(before)
    t0 = 121_000
    up, down = 20 + 30 + 400, 20  # the reconnect's first exchange is a bad one: 400 ms queued up
    for model in (fresh, carried):
        model.add(t0, device(t0 + up), t0 + up + down)
    assert fresh.fit is not None and carried.fit is not None
    truth = true_offset(t0)
    assert abs(fresh.fit.offset_at(t0) - truth) > 150  # from that one sample alone
    assert abs(carried.fit.offset_at(t0) - truth) <= 6  # the earlier envelope still holds it
    assert carried.samples == before.samples + 1


def test_a_carried_model_of_another_clock_is_dropped_at_the_first_sample() -> None:
    rng = random.Random(4)
    before = _jittery_model(rng, 0, 60_000)
    model = ClockModel()
    model.carry(before)
    t0 = 61_000  # the page was reloaded: its device clock now reads 5 s less
    model.add(t0, device(t0 + 25) - 5000, t0 + 50)
    assert model.samples == 1 and model.fit is not None
    assert model.fit.offset_at(t0) == pytest.approx(true_offset(t0) - 5000, abs=1)
