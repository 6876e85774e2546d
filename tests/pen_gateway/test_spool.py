"""The spool on its own: what it keeps across a reopen, a torn tail, compaction, its bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pen_gateway.errors import SpoolError
from pen_gateway.spool import Spool, SpoolFull, parse_records, record
from wire import encode
from wire import messages as m


def op(cseq: int, stroke: int = 7) -> m.Op:
    return m.StrokeEnd(cseq, stroke)


def begin(cseq: int, stroke: int) -> m.Op:
    return m.StrokeBegin(cseq, stroke, 0, m.Tool.PEN, 255, 20, 1, 1_700_000_000_000)


def test_reopen_keeps_unacknowledged_ops_audio_and_open_strokes(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s")
    s.add_op(begin(1, 5), encode(begin(1, 5)), 0.0)
    s.add_op(begin(2, 6), encode(begin(2, 6)), 0.0)
    for c in range(3, 8):
        s.add_op(op(c, 6), encode(op(c, 6)), 0.0)
    a = [s.add_audio(100 + i, 1_700_000_000_000 + 20 * i, b"\x08abc", 0.0) for i in range(4)]
    s.ack(4, 0.1)
    s.audio_done(a[0].index, a[2].index, 0.1)
    s.close()
    again = Spool(tmp_path / "s")
    assert list(again.ops) == [5, 6, 7] and again.acked_cseq == 4
    assert [x.seq for x in again.audio.values()] == [102, 103]
    assert again.open_strokes == {5}  # 6 was ended by cseq 3
    assert again.live_bytes == s.live_bytes


def test_a_torn_tail_is_cut_at_the_last_whole_record(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s")
    for c in range(1, 4):
        s.add_op(op(c), encode(op(c)), 0.0)
    s.close()
    path = tmp_path / "s"
    whole = path.read_bytes()
    path.write_bytes(whole + record(1, encode(op(4)))[:-3])  # a write cut by a power loss
    again = Spool(path)
    assert list(again.ops) == [1, 2, 3] and again.torn_bytes > 0
    assert path.read_bytes() == whole
    flipped = bytearray(whole)
    flipped[-2] ^= 0xFF  # a corrupt last record (its crc fails)
    path.write_bytes(bytes(flipped))
    assert list(Spool(path).ops) == [1, 2]


def test_compaction_keeps_only_what_is_needed(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s", compact_min_bytes=2048)
    for c in range(1, 400):
        s.add_op(op(c), encode(op(c)), 0.0)
        if c % 10 == 0:
            s.ack(c - 2, 0.0)
    assert s.file_bytes < 4096 + s.live_bytes
    s.close()
    again = Spool(tmp_path / "s")
    assert list(again.ops) == list(s.ops) and again.acked_cseq == s.acked_cseq
    assert not (tmp_path / "s.tmp").exists()


def test_the_bound_refuses_with_its_error_and_warns_before(tmp_path: Path) -> None:
    frame = encode(op(1))
    cost = len(frame) + 9
    s = Spool(tmp_path / "s", max_bytes=cost * 10, warn_fraction=0.5)
    for c in range(1, 5):
        s.add_op(op(c), encode(op(c)), 0.0)
    assert not s.nearly_full
    s.add_op(op(5), encode(op(5)), 0.0)
    assert s.nearly_full
    for c in range(6, 11):
        s.add_op(op(c), encode(op(c)), 0.0)
    with pytest.raises(SpoolFull) as err:
        s.add_op(op(11), encode(op(11)), 0.0)
    assert str(err.value) == (f"the spool is full ({cost * 10} of {cost * 10} bytes): new ink is not kept. Fix: "
                              "reconnect to the network so that the spool can empty, or raise "
                              "PEN_GATEWAY_SPOOL_MAX_BYTES")
    s.ack(5, 0.0)
    s.add_op(op(11), encode(op(11)), 0.0)  # room again once acknowledged


def test_fsync_is_due_within_its_interval(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s", fsync_s=0.1)
    assert s.sync_due() is None
    s.add_op(op(1), encode(op(1)), 10.0)
    s.add_op(op(2), encode(op(2)), 10.05)
    assert s.sync_due() == pytest.approx(10.1)
    s.sync()
    assert s.sync_due() is None and s.syncs == 1


def test_not_a_spool(tmp_path: Path) -> None:
    (tmp_path / "s").write_bytes(b"hello")
    with pytest.raises(SpoolError, match="not a tutorwire spool"):
        Spool(tmp_path / "s")


@given(st.binary(max_size=400))
def test_garbage_records_never_raise(data: bytes) -> None:
    records, end = parse_records(data)
    assert 0 <= end <= len(data)  # the reader stops at the first record that is not whole
    assert sum(len(p) + 9 for _, p in records) == end
