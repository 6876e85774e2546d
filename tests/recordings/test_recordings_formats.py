"""The recording formats of docs/recordings.md: event log, Ogg Opus per speaker, manifest, and
recovery of a folder a crash left open. Every Ogg file written here is checked with opusinfo and
ffprobe (tests/recordkit.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import msgpack
import numpy as np
import opuslib  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.eventlog import (
    MAGIC,
    MAX_RECORD_BYTES,
    Kind,
    LogError,
    LogRecord,
    LogWriter,
    encode_record,
    read_log,
    trim_log,
)
from recordings.manifest import (
    ClockOffset,
    FileEntry,
    IllegalTransition,
    Manifest,
    ManifestError,
    Participant,
    RecordingStatus,
    check_transition,
    file_entries,
    read_manifest,
    write_manifest,
)
from recordings.ogg import (
    PRE_SKIP,
    SILENCE_20MS,
    SILENCE_PACKETS,
    OggError,
    OggOpusTimeline,
    OggOpusWriter,
    build_page,
    ogg_crc,
    read_ogg_opus,
    repair_ogg,
)
from recordings.recovery import recover, recover_all
from tests.recordkit import (
    FRAME,
    assert_players_accept,
    decode_timeline,
    dominant_frequency,
    onset,
    opus_packets,
    rms,
    tone,
)
from wire import Role, encode
from wire import messages as m

# -- event log -----------------------------------------------------------------------------------

RECORDS = [
    LogRecord(Kind.NOTE, 0, None, None, {"started": 1790000000.5}),
    LogRecord(Kind.EVENT, 12, 3456, 1, b"\x93\x01\x02\x03"),
    LogRecord(Kind.AUDIO, 40, 99, 2, [7, 960, 1920]),
    LogRecord(Kind.CLOCK, 5000, None, 2**32 - 1, [-12.5, 3.1]),
    LogRecord(Kind.NOTE, 720000, None, None, {"ended": "closed"}),
]


def log_bytes(records: list[LogRecord]) -> bytes:
    return MAGIC + b"".join(encode_record(r) for r in records)


def record_offsets(records: list[LogRecord]) -> list[int]:
    offsets, at = [], len(MAGIC)
    for r in records:
        offsets.append(at)
        at += len(encode_record(r))
    return offsets


def test_log_round_trip() -> None:
    read = read_log(log_bytes(RECORDS))
    assert read.records == RECORDS
    assert read.damage is None
    assert read.good_bytes == len(log_bytes(RECORDS))


def test_record_framing_is_length_crc_msgpack() -> None:
    framed = encode_record(RECORDS[2])
    length, crc = struct.unpack(">II", framed[:8])
    assert length == len(framed) - 8 and crc == zlib.crc32(framed[8:])
    assert msgpack.unpackb(framed[8:]) == [2, 40, 99, 2, [7, 960, 1920]]


def test_empty_log_is_clean_and_bad_header_is_named() -> None:
    assert read_log(b"").records == [] and read_log(b"").damage is None
    assert read_log(MAGIC[:5]).damage == "bad header at byte 0: truncated"
    bad = read_log(b"NOTALOG\n" + encode_record(RECORDS[0]))
    assert bad.records == [] and bad.good_bytes == 0 and bad.damage == "bad header at byte 0: not TWLOG01"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (LogRecord(Kind.EVENT, -1, None, 1, b""), "session_ms -1"),
        (LogRecord(Kind.EVENT, 0, None, 0, b""), "pid 0 is not an integer from 1"),  # a v1 seat: read, never written
        (LogRecord(Kind.EVENT, 0, None, 2**32, b""), f"pid {2**32} is not"),
        (LogRecord(Kind.EVENT, 0, None, True, b""), "pid True"),
        (LogRecord(Kind.EVENT, 0, 1.5, 1, b""), "device_ms 1.5"),  # type: ignore[arg-type]
        (LogRecord(Kind.EVENT, 0, None, 1, object()), "cannot be encoded"),
        (LogRecord(Kind.EVENT, 0, None, 1, b"x" * MAX_RECORD_BYTES), f"exceeds {MAX_RECORD_BYTES}"),
    ],
)
def test_encode_refuses_bad_records(record: LogRecord, message: str) -> None:
    with pytest.raises(LogError, match=message):
        encode_record(record)


def test_truncation_at_every_byte_keeps_the_records_before_it() -> None:
    data = log_bytes(RECORDS)
    offsets = record_offsets(RECORDS)
    ends = [*offsets[1:], len(data)]
    for cut in range(len(MAGIC), len(data)):
        read = read_log(data[:cut])
        whole = sum(1 for end in ends if end <= cut)
        assert read.records == RECORDS[:whole]
        if cut in (len(MAGIC), *ends):
            assert read.damage is None
        else:
            assert read.good_bytes == offsets[whole]
            assert read.damage is not None and read.damage.startswith(f"truncated record at byte {offsets[whole]}")


def test_garbage_appended_is_reported_at_its_offset() -> None:
    data = log_bytes(RECORDS)
    read = read_log(data + b"\x00\x00\x00\x05\xde\xad\xbe\xefhello")
    assert read.records == RECORDS and read.good_bytes == len(data)
    assert read.damage == f"CRC mismatch in record at byte {len(data)}"
    huge = read_log(data + b"\xff\xff\xff\xff" + b"\x00" * 12)
    assert huge.damage == f"implausible record length {0xFFFFFFFF} at byte {len(data)}"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_flipped_bit_stops_the_read_at_its_record(data: st.DataObject) -> None:
    clean = log_bytes(RECORDS)
    offsets = record_offsets(RECORDS)
    position = data.draw(st.integers(len(MAGIC), len(clean) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(clean)
    damaged[position] ^= 1 << bit
    hit = max(i for i, at in enumerate(offsets) if at <= position)
    read = read_log(bytes(damaged))
    assert read.records == RECORDS[:hit]
    assert read.good_bytes == offsets[hit]
    assert read.damage is not None and f"at byte {offsets[hit]}" in read.damage


def test_valid_crc_over_bad_payloads_is_reported() -> None:
    def framed(payload: bytes) -> bytes:
        return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload

    start = len(MAGIC)
    garbage = read_log(MAGIC + framed(b"\xc1"))
    assert garbage.records == [] and garbage.good_bytes == start
    assert str(garbage.damage).startswith(f"bad record at byte {start}: bad msgpack")
    shape = read_log(MAGIC + framed(msgpack.packb([1, 2, 3])))
    assert shape.damage == f"bad record at byte {start}: payload is not a five-element msgpack array"
    kind = read_log(MAGIC + framed(msgpack.packb([9, 0, None, None, {}])))
    assert kind.damage == f"bad record at byte {start}: unknown record kind 9"
    pid = read_log(MAGIC + framed(msgpack.packb([1, 0, None, -1, b""])))
    assert pid.damage == f"bad record at byte {start}: pid -1 is not an integer from 0 to {2**32 - 1} or nil"


def test_a_protocol_1_log_with_seat_0_reads() -> None:
    payload = msgpack.packb([1, 5, None, 0, b"frame"])
    read = read_log(MAGIC + struct.pack(">II", len(payload), zlib.crc32(payload)) + payload)
    assert read.damage is None and read.records == [LogRecord(Kind.EVENT, 5, None, 0, b"frame")]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_read_log_never_raises_and_returns_a_clean_prefix(tail: bytes, with_header: bool) -> None:
    data = (log_bytes(RECORDS[:2]) if with_header else b"") + tail
    read = read_log(data)
    assert 0 <= read.good_bytes <= len(data)
    again = read_log(data[: read.good_bytes])
    assert again.records == read.records and again.damage is None
    if read.damage is None:
        assert read.good_bytes == len(data)


def test_log_writer_buffers_until_flush_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    writer = LogWriter(path)
    assert path.read_bytes() == MAGIC and writer.bytes_written == len(MAGIC)
    for record in RECORDS[:3]:
        writer.append(record)
    assert path.read_bytes() == MAGIC  # buffered, not written
    writer.flush(fsync=True)
    assert read_log(path.read_bytes()).records == RECORDS[:3]
    assert writer.bytes_written == path.stat().st_size and writer.pending_bytes == 0
    writer.append(RECORDS[3])
    writer.close()
    writer.close()
    with pytest.raises(LogError, match="after close"):
        writer.append(RECORDS[4])
    with LogWriter(path) as again:
        again.append(RECORDS[4])
    assert read_log(path.read_bytes()).records == RECORDS


def test_log_writer_writes_out_a_large_buffer_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    with LogWriter(path, max_pending_bytes=64) as writer:
        for i in range(10):
            writer.append(LogRecord(Kind.EVENT, i, None, 1, b"x" * 20))
        assert writer.pending_bytes <= 64 + len(encode_record(LogRecord(Kind.EVENT, 9, None, 1, b"x" * 20)))
        assert len(read_log(path.read_bytes()).records) >= 9 - 2


def test_log_writer_refuses_a_damaged_log(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    path.write_bytes(log_bytes(RECORDS)[:-3])
    with pytest.raises(LogError, match="trim it before appending"):
        LogWriter(path)


def test_trim_log_cuts_the_tail_keeps_it_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    clean = log_bytes(RECORDS)
    path.write_bytes(clean + b"\x00\x00\x01\x00torn")
    report = trim_log(path)
    assert report.records == RECORDS and report.damage is not None and str(len(clean)) in report.damage
    assert path.read_bytes() == clean
    assert (tmp_path / "events.log.damaged").read_bytes() == b"\x00\x00\x01\x00torn"
    assert trim_log(path).damage is None
    assert path.read_bytes() == clean
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.log", "events.log.damaged"]


# -- Ogg Opus ------------------------------------------------------------------------------------


def reference_ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


@given(st.binary(max_size=600))
def test_ogg_crc_is_the_unreflected_04c11db7_crc(data: bytes) -> None:
    assert ogg_crc(data) == reference_ogg_crc(data)


def test_silence_packet_decodes_to_20ms_of_zeros() -> None:
    decoder = opuslib.Decoder(48000, 1)
    pcm = np.frombuffer(bytes(decoder.decode(SILENCE_20MS, 5760)), dtype=np.int16)
    assert len(pcm) == FRAME and not pcm.any()


def test_timeline_places_packets_sample_exact_and_absorbs_small_differences() -> None:
    packet = opus_packets(tone(440, FRAME))[0]
    timeline = OggOpusTimeline()
    # The first packet, captured 50.4 ms in (sample 2419): silence to the last 2.5 ms step before
    # it (2400 samples, as 20 + 20 + 10 ms packets) and a pre-skip of 312 - 19 put it exactly there.
    first = timeline.add(packet, FRAME, 2419)
    assert [n for n, _ in first[:-1]] == [SILENCE_20MS, SILENCE_20MS, SILENCE_PACKETS[1][0]]
    assert timeline.pre_skip == PRE_SKIP - 19 and first[-1] == (packet, 2400 + FRAME)
    assert timeline.end == 2419 + FRAME
    assert timeline.add(packet, FRAME, timeline.end + 470) == [(packet, 2400 + 2 * FRAME)]  # 9.8 ms late: contiguous
    end = timeline.end
    filled = timeline.add(packet, FRAME, end + 1000)  # 20.8 ms after the end: 20 ms of silence (nearest 2.5 ms)
    assert filled == [(SILENCE_20MS, 2400 + 3 * FRAME), (packet, 2400 + 4 * FRAME)]
    assert timeline.add(packet, FRAME, timeline.end - 470) == [(packet, 2400 + 5 * FRAME)]  # 9.8 ms early: contiguous
    assert timeline.add(packet, FRAME, timeline.end - 500) == [] and timeline.dropped == 1  # would overlap: dropped
    end = timeline.end
    odd = timeline.add(packet, FRAME, end + 1200)  # 25 ms: 20 + 5 ms
    assert [n for n, _ in odd] == [SILENCE_20MS, SILENCE_PACKETS[2][0], packet]


def test_packets_placed_by_arrival_keep_jitter_and_are_never_dropped() -> None:
    packet = opus_packets(tone(440, FRAME))[0]
    timeline = OggOpusTimeline()
    timeline.add(packet, FRAME, 0, arrival=True)
    assert timeline.add(packet, FRAME, timeline.end + 55 * 48, arrival=True) == [(packet, 2 * FRAME)]  # jitter
    assert timeline.add(packet, FRAME, 0, arrival=True) == [(packet, 3 * FRAME)]  # a burst: appended
    filled = timeline.add(packet, FRAME, timeline.end + 61 * 48, arrival=True)  # beyond 60 ms: silence
    assert filled[-1] == (packet, 7 * FRAME) and timeline.dropped == 0  # 61 ms: 60 ms of silence (nearest 2.5 ms)


def test_silence_packets_of_every_step_decode_to_zeros() -> None:
    decoder = opuslib.Decoder(48000, 1)
    for packet, samples in SILENCE_PACKETS:
        pcm = np.frombuffer(bytes(decoder.decode(packet, 5760)), dtype=np.int16)
        assert len(pcm) == samples and not pcm.any()


def test_a_stream_may_start_in_its_first_milliseconds(tmp_path: Path, two_tones: list[bytes]) -> None:
    for start in (0, 7, 121, 2399):  # session samples
        path = tmp_path / f"start-{start}.opus"
        writer = OggOpusWriter(path, 5)
        for i, packet in enumerate(two_tones[:25]):
            writer.add(packet, FRAME, start + FRAME * i)
        writer.close()
        assert_players_accept(path)
        read = read_ogg_opus(path.read_bytes())
        assert read.pre_skip == PRE_SKIP - start % 120
        pcm = decode_timeline(read.packets, read.pre_skip)
        assert start <= onset(pcm) < start + 960


def test_timeline_refuses_what_is_not_opus() -> None:
    timeline = OggOpusTimeline()
    with pytest.raises(OggError, match="not a well-formed Opus packet"):
        timeline.add(b"", FRAME, 0)
    with pytest.raises(OggError, match="holds 960 samples, not 480"):
        timeline.add(SILENCE_20MS, 480, 0)
    assert timeline.granule == 0


def write_speaker(path: Path, bursts: list[tuple[int, list[bytes]]], serial: int = 0x74770000) -> OggOpusWriter:
    """A writer fed ``bursts`` of packets, each arriving 20 ms apart from its start time (not closed)."""
    writer = OggOpusWriter(path, serial)
    for start_ms, packets in bursts:
        for i, packet in enumerate(packets):
            writer.add(packet, FRAME, (start_ms + 20 * i) * 48)
    return writer


@pytest.fixture(scope="module")
def two_tones() -> list[bytes]:
    """One second of 440 Hz, then one of 660 Hz, from one encoder (as one speaker would send)."""
    return opus_packets(np.concatenate([tone(440, 48000), tone(660, 48000, start=48000)]))


def test_late_start_and_gap_land_on_the_session_timeline(tmp_path: Path, two_tones: list[bytes]) -> None:
    path = tmp_path / "audio-tutor.opus"
    write_speaker(path, [(500, two_tones[:50]), (3000, two_tones[50:])]).close()
    info = assert_players_accept(path)
    assert float(info["format"]["duration"]) == pytest.approx(4.0, abs=0.05)
    read = read_ogg_opus(path.read_bytes())
    assert read.damage is None and read.eos and read.pre_skip == PRE_SKIP and read.channels == 1
    assert [p for p, _ in read.packets if p != SILENCE_20MS] == two_tones
    assert [g for _, g in read.packets] == [960 * (i + 1) for i in range(200)]
    pcm = decode_timeline(read.packets, read.pre_skip)
    first, gap_end = 500 * 48, 3000 * 48
    assert rms(pcm[:first]) < 5  # silence up to the late start
    assert first <= onset(pcm) < first + 960
    assert dominant_frequency(pcm[first + 960 : first + 48000]) == pytest.approx(440, abs=3)
    assert rms(pcm[first + 48000 + 960 : gap_end]) < 20  # the mid gap is silence
    assert gap_end <= onset(pcm[first + 48000 + 960 :]) + first + 48000 + 960 < gap_end + 960
    assert dominant_frequency(pcm[gap_end + 960 : gap_end + 48000 - 960]) == pytest.approx(660, abs=3)
    # Sample-exact placement: once the decoder has settled after the silence, the timeline holds
    # exactly what decoding the speaker's own stream gives (pre-skip removed) at the same index.
    decoder = opuslib.Decoder(48000, 1)
    direct = np.concatenate([np.frombuffer(bytes(decoder.decode(p, 5760)), np.int16) for p in two_tones[:50]])
    direct = direct[PRE_SKIP:]
    assert np.array_equal(pcm[first + 4800 : first + 24000], direct[4800:24000])


def test_writer_writes_pages_as_they_fill_and_refuses_an_existing_file(
    tmp_path: Path, two_tones: list[bytes]
) -> None:
    path = tmp_path / "audio-student.opus"
    writer = write_speaker(path, [(0, two_tones)])
    on_disk = read_ogg_opus(path.read_bytes())  # nothing flushed: only whole pages of <= 1 s
    assert not on_disk.eos and on_disk.packets and writer.granule - on_disk.packets[-1][1] <= 48000
    writer.flush(fsync=True)
    assert read_ogg_opus(path.read_bytes()).packets[-1][1] == writer.granule == 96000
    writer.close()
    assert_players_accept(path)
    with pytest.raises(FileExistsError):
        OggOpusWriter(path, 1)
    with pytest.raises(OggError, match="after close"):
        writer.add(two_tones[0], FRAME, 0)


def test_a_speaker_who_never_spoke_still_gives_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "audio-student.opus"
    OggOpusWriter(path, 3).close()
    assert_players_accept(path)
    assert read_ogg_opus(path.read_bytes()).packets == [(SILENCE_20MS, 960)]


def torn_copies(tmp_path: Path, data: bytes) -> dict[str, bytes]:
    """The same stream cut mid-page, at a page boundary before EOS, inside the headers, and empty."""
    pages = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
    return {
        "mid-page": data[: pages[4] + 40],
        "before-eos": data[: pages[-1]],
        "mid-headers": data[: pages[1] + 10],
        "empty": b"",
        "garbage-after-eos": data + b"OggS\x00garbage",
    }


def test_torn_streams_are_repaired_so_players_accept_them(tmp_path: Path, two_tones: list[bytes]) -> None:
    source = tmp_path / "source.opus"
    write_speaker(source, [(300, two_tones)]).close()
    full = read_ogg_opus(source.read_bytes())
    for name, data in torn_copies(tmp_path, source.read_bytes()).items():
        path = tmp_path / f"audio-{name}.opus"
        path.write_bytes(data)
        found = repair_ogg(path)
        assert_players_accept(path)
        repaired = read_ogg_opus(path.read_bytes())
        assert repaired.damage is None and repaired.eos, name
        if name == "garbage-after-eos":
            assert found.damage is not None and repaired.packets == full.packets
        elif found.headers_ok:
            assert repaired.packets == found.packets == full.packets[: len(found.packets)], name
            assert 0 < len(found.packets) < len(full.packets)
        else:
            assert repaired.packets == [(SILENCE_20MS, 960)]
        before = path.read_bytes()
        again = repair_ogg(path)  # idempotent: nothing left to do
        assert again.damage is None and again.eos and path.read_bytes() == before


def test_reader_names_the_damage() -> None:
    pages = build_page(9, 0, 0, [b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"], flags=0x02)
    pages += build_page(9, 1, 0, [b"OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"])
    audio = build_page(9, 2, 960, [SILENCE_20MS])
    assert read_ogg_opus(pages + audio).packets == [(SILENCE_20MS, 960)]
    flipped = bytearray(pages + audio)
    flipped[len(pages) + 30] ^= 0x10
    assert read_ogg_opus(bytes(flipped)).damage == f"CRC mismatch in page at byte {len(pages)}"
    skipped = read_ogg_opus(pages + build_page(9, 3, 960, [SILENCE_20MS]))
    assert skipped.damage == f"page at byte {len(pages)} has sequence number 3, expected 2"
    backwards = read_ogg_opus(pages + audio + build_page(9, 3, 960, [SILENCE_20MS]))
    assert backwards.damage is not None and "before the previous page's end" in backwards.damage
    torn = read_ogg_opus(pages + audio[:-1])
    assert torn.damage == f"torn page at byte {len(pages)}: {len(audio) - 1} of {len(audio)} bytes"
    assert torn.good_bytes == len(pages) and torn.headers_ok


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_read_ogg_never_raises_on_garbage(data: bytes) -> None:
    read = read_ogg_opus(data)
    assert 0 <= read.good_bytes <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_read_ogg_never_raises_on_a_damaged_stream(data: st.DataObject) -> None:
    stream = build_page(5, 0, 0, [b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"], flags=0x02)
    stream += build_page(5, 1, 0, [b"OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"])
    stream += build_page(5, 2, 1920, [SILENCE_20MS, SILENCE_20MS]) + build_page(5, 3, -1, [], flags=0x04)
    damaged = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(stream)))
    read = read_ogg_opus(bytes(damaged[:cut]))
    assert read.good_bytes <= cut
    assert read_ogg_opus(bytes(damaged[: read.good_bytes])).packets == read.packets


# -- manifest ------------------------------------------------------------------------------------


def a_manifest(status: RecordingStatus = RecordingStatus.RECORDING) -> Manifest:
    return Manifest(
        session_id="s42",
        epoch=3,
        status=status,
        started_unix=1790000000.123,
        participants=[Participant(1, Role.TUTOR, "t1", 0, 720000), Participant(2, Role.STUDENT, "u9", 1500, 719000)],
        clock_offsets={1: [ClockOffset(5000, -12.5, 3.1)]},
        duration_ms=720000,
        files={"events.log": FileEntry(123, "ab" * 32)},
    )


def test_manifest_json_round_trip_matches_the_doc() -> None:
    manifest = a_manifest()
    doc = json.loads(manifest.to_json())
    assert doc["format"] == 2 and doc["protocol"] == 2 and doc["status"] == "recording" and doc["recovery"] is None
    assert doc["started_iso"] == "2026-09-21T14:13:20.123Z"
    assert doc["participants"][0] == {"pid": 1, "role": "tutor", "user_id": "t1", "first_ms": 0, "last_ms": 720000}
    assert doc["clock_offsets"] == {"1": [{"at_ms": 5000, "offset_ms": -12.5, "rtt_ms": 3.1}]}
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_a_format_1_manifest_reads_as_protocol_1_with_seats_as_participants() -> None:
    doc = json.loads(a_manifest().to_json())
    del doc["protocol"]
    doc["format"] = 1
    doc["participants"] = [{"seat": "tutor", "user_id": "t1", "first_ms": 0, "last_ms": 720000},
                           {"seat": "student", "user_id": "u9", "first_ms": 1500, "last_ms": 719000}]
    doc["clock_offsets"] = {"tutor": [{"at_ms": 5000, "offset_ms": -12.5, "rtt_ms": 3.1}]}
    read = Manifest.from_json(json.dumps(doc))
    assert read == dataclasses.replace(a_manifest(), protocol=1)
    again = json.loads(read.to_json())  # written back in the current format, still protocol 1
    assert again["format"] == 2 and again["protocol"] == 1 and Manifest.from_json(read.to_json()) == read
    doc["participants"][0]["seat"] = "parent"
    with pytest.raises(ManifestError, match=r"manifest.participants\[0\].seat"):
        Manifest.from_json(json.dumps(doc))
    doc["participants"][0]["seat"] = "tutor"
    doc["clock_offsets"] = {"1": []}
    with pytest.raises(ManifestError, match="unknown seat '1'"):
        Manifest.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("session_id"), "manifest.session_id is missing"),
        (lambda d: d.update(format=3), "manifest.format must be 1 or 2"),
        (lambda d: d.pop("protocol"), "manifest.protocol is missing"),
        (lambda d: d.update(protocol=3), "manifest.protocol must be 1 or 2"),
        (lambda d: d.update(epoch=True), "manifest.epoch must be an integer"),
        (lambda d: d.update(status="paused"), "manifest.status must be one of"),
        (lambda d: d.update(started_unix="soon"), "manifest.started_unix must be a finite number"),
        (lambda d: d.update(started_unix=1e300), "manifest.started_unix must be a unix time from 1970 to 9999"),
        (lambda d: d["participants"][0].update(role="parent"), r"manifest.participants\[0\].role"),
        (lambda d: d["participants"][0].update(pid=0), r"manifest.participants\[0\].pid must be an integer >= 1"),
        (lambda d: d["participants"][1].pop("pid"), r"manifest.participants\[1\].pid is missing"),
        (lambda d: d["files"]["events.log"].update(sha256="xyz"), "sha256 must be 64 lowercase hex"),
        (lambda d: d.update(clock_offsets={"pen": []}), "unknown participant id 'pen'"),
        (lambda d: d.update(clock_offsets={"01": []}), "unknown participant id '01'"),
        (lambda d: d.update(clock_offsets={str(2**32): []}), f"unknown participant id '{2**32}'"),
        (lambda d: d.update(recovery=[1]), "manifest.recovery must be null or an object"),
    ],
)
def test_manifest_validation_names_the_field(change: object, message: str) -> None:
    doc = json.loads(a_manifest().to_json())
    change(doc)  # type: ignore[operator]
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(doc))


def test_manifest_that_is_not_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.from_json(b"\xff{")
    with pytest.raises(ValueError):  # callers that catch ValueError catch it too
        Manifest.from_json("[]")


def test_status_lifecycle() -> None:
    recording, complete, interrupted = RecordingStatus
    for new in RecordingStatus:
        check_transition(recording, new)
    for final in (complete, interrupted):
        for new in RecordingStatus:
            with pytest.raises(IllegalTransition, match=f"is {final.value} cannot become {new.value}"):
                check_transition(final, new)


def test_write_manifest_is_atomic_and_follows_the_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(tmp_path, a_manifest())
    write_manifest(tmp_path, dataclasses.replace(a_manifest(), duration_ms=1))  # still recording: an update
    write_manifest(tmp_path, a_manifest(RecordingStatus.COMPLETE))
    assert read_manifest(tmp_path).status is RecordingStatus.COMPLETE
    with pytest.raises(IllegalTransition):
        write_manifest(tmp_path, a_manifest(RecordingStatus.INTERRUPTED))
    with pytest.raises(ManifestError, match="session_id"):
        write_manifest(tmp_path, dataclasses.replace(a_manifest(), session_id=""), check_lifecycle=False)

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        write_manifest(tmp_path, a_manifest(RecordingStatus.INTERRUPTED), check_lifecycle=False)
    assert read_manifest(tmp_path) == a_manifest(RecordingStatus.COMPLETE)  # the old one, whole
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["manifest.json"]


def test_file_entries_hash_the_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 3_000_000)
    (tmp_path / "b").write_bytes(b"")
    entries = file_entries(tmp_path, ["a", "b"])
    assert entries["a"] == FileEntry(3_000_000, hashlib.sha256(b"x" * 3_000_000).hexdigest())
    assert entries["b"] == FileEntry(0, hashlib.sha256(b"").hexdigest())


# -- recovery ------------------------------------------------------------------------------------


def crashed_folder(root: Path, two_tones: list[bytes]) -> tuple[Path, int]:
    """A recording abandoned mid-way: files as a crash leaves them (what had reached the OS), plus a
    torn record and a torn page. Returns the folder and the last good record's session_ms."""
    live = root / "live"
    live.mkdir()
    log = LogWriter(live / "events.log")
    log.append(LogRecord(Kind.NOTE, 0, None, None, {"started": 1790000000.0}))
    write_manifest(live, Manifest("s1", 7, RecordingStatus.RECORDING, 1790000000.0))  # nobody seen yet
    for seq, (pid, user, role) in enumerate(((1, "t1", Role.TUTOR), (2, "u9", Role.STUDENT)), 1):
        presence = encode(m.Event(seq, 10 * seq, pid, 0, m.Presence(user, True, role)))
        log.append(LogRecord(Kind.EVENT, 10 * seq, None, pid, presence))
    log.append(LogRecord(Kind.CLOCK, 100, None, 1, [-12.5, 3.1]))
    tutor = write_speaker(live / "audio-tutor-1.opus", [(0, two_tones[:60])], serial=1)
    student = write_speaker(live / "audio-student-2.opus", [(800, two_tones[60:])], serial=2)
    for ms in range(0, 1400, 20):
        log.append(LogRecord(Kind.AUDIO, ms, None, 1, [ms // 20, FRAME, FRAME * (ms // 20 + 1)]))
    log.flush(fsync=False)
    log.append(LogRecord(Kind.EVENT, 1500, None, 1, b"never flushed"))
    folder = root / "s1-7"
    shutil.copytree(live, folder)  # the crash image
    for writer in (log, tutor, student):
        writer.close()
    shutil.rmtree(live)
    with open(folder / "events.log", "ab") as f:
        f.write(encode_record(LogRecord(Kind.EVENT, 1450, None, 1, b"half"))[:9])
    with open(folder / "audio-tutor-1.opus", "ab") as f:
        f.write(build_page(1, 99, 123, [two_tones[0]])[:30])
    return folder, 1380


def test_recover_closes_out_a_crashed_folder(tmp_path: Path, two_tones: list[bytes]) -> None:
    folder, last_ms = crashed_folder(tmp_path, two_tones)
    report = recover(folder, now_unix=1790000999.0)
    assert report is not None and report.problem is None and report.damaged
    assert report.log is not None and report.log.cut_bytes == 9 and "truncated record" in str(report.log.damage)
    tutor, student = sorted(report.audio, key=lambda a: a.name != "audio-tutor-1.opus")
    assert tutor.cut_bytes == 30 and "torn page" in str(tutor.damage) and tutor.eos_added
    assert student.cut_bytes == 0 and student.eos_added
    assert sorted(report.damaged_files) == ["audio-tutor-1.opus.damaged", "events.log.damaged"]
    for name in ("audio-tutor-1.opus", "audio-student-2.opus"):
        assert_players_accept(folder / name)
    manifest = read_manifest(folder)
    assert manifest.status is RecordingStatus.INTERRUPTED and manifest.duration_ms == last_ms
    assert manifest.recovery == report.to_dict()
    # who was there and their clocks come from the log: the live manifest had not caught up
    assert manifest.participants == [Participant(1, Role.TUTOR, "t1", 10, 10),
                                     Participant(2, Role.STUDENT, "u9", 20, 20)]
    assert manifest.clock_offsets == {1: [ClockOffset(100, -12.5, 3.1)]}
    names = ["events.log", "audio-student-2.opus", "audio-tutor-1.opus"]
    assert set(manifest.files) == set(names)
    for name in names:
        data = (folder / name).read_bytes()
        assert manifest.files[name] == FileEntry(len(data), hashlib.sha256(data).hexdigest())
    log = read_log((folder / "events.log").read_bytes())
    assert log.damage is None
    assert log.records[-1] == LogRecord(Kind.NOTE, last_ms, None, None, {"recovered": report.to_dict()})
    snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert recover(folder, now_unix=1790001999.0) is None  # idempotent
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == snapshot


def test_recovery_cut_short_is_finished_without_a_second_note(
    tmp_path: Path, two_tones: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = crashed_folder(tmp_path, two_tones)

    def crash(folder: Path, manifest: Manifest, **_: object) -> None:
        raise OSError("crashed again")

    monkeypatch.setattr("recordings.recovery.write_manifest", crash)
    with pytest.raises(OSError, match="crashed again"):
        recover(folder, now_unix=1.0)
    monkeypatch.undo()
    first_note = read_log((folder / "events.log").read_bytes()).records[-1]
    assert recover(folder, now_unix=2.0) is not None
    records = read_log((folder / "events.log").read_bytes()).records
    assert [r for r in records if r.kind is Kind.NOTE and "recovered" in r.body] == [first_note]
    assert read_manifest(folder).recovery == first_note.body["recovered"]


def test_recover_all_reports_folders_it_cannot_recover(tmp_path: Path, two_tones: list[bytes]) -> None:
    crashed, _ = crashed_folder(tmp_path, two_tones)
    (tmp_path / "no-manifest-1").mkdir()
    (tmp_path / "no-manifest-1" / "events.log").write_bytes(MAGIC)
    (tmp_path / "garbage-2").mkdir()
    (tmp_path / "garbage-2" / "manifest.json").write_text("{not json")
    done = tmp_path / "done-3"
    done.mkdir()
    write_manifest(done, a_manifest(RecordingStatus.COMPLETE))
    reports = {r.folder.name: r for r in recover_all(tmp_path, now_unix=5.0)}
    assert set(reports) == {"s1-7", "no-manifest-1", "garbage-2"}
    assert reports["s1-7"].problem is None
    assert reports["no-manifest-1"].problem == "no manifest.json; left untouched"
    assert "unreadable manifest.json" in str(reports["garbage-2"].problem)
    assert (tmp_path / "no-manifest-1" / "events.log").read_bytes() == MAGIC
    assert read_manifest(done).status is RecordingStatus.COMPLETE
    assert json.loads(str(reports["garbage-2"]))["problem"] == reports["garbage-2"].problem
    assert {r.folder.name for r in recover_all(tmp_path, now_unix=6.0)} == {"no-manifest-1", "garbage-2"}
    assert read_manifest(crashed).status is RecordingStatus.INTERRUPTED
    assert recover_all(tmp_path / "missing", now_unix=7.0) == []
