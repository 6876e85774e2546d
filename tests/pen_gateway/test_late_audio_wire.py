"""``wire.late_audio``: AudioLate frames round trip, and garbage is refused with the protocol's
error, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import ErrorCode, ProtocolError
from wire.late_audio import MAX_LATE_PACKETS, AudioLate, LatePacket, decode_audio_late, encode_audio_late

OPUS = bytes.fromhex("0884565ee3c22068f8fdf91f30b463")  # SILK NB 20 ms (docs/protocol.md 4.0)


def test_round_trip() -> None:
    msg = AudioLate(tuple(LatePacket(i, 1_700_000_000_000 + 20 * i, OPUS) for i in range(MAX_LATE_PACKETS)))
    assert decode_audio_late(encode_audio_late(msg)) == msg


def test_bounds() -> None:
    with pytest.raises(ValueError):
        encode_audio_late(AudioLate(()))
    with pytest.raises(ProtocolError) as err:
        decode_audio_late(bytes([0x92, 32, 0xDC, 0, MAX_LATE_PACKETS + 1]) + b"\x93\x00\x00\xc4\x01\x08" * 51)
    assert err.value.code is ErrorCode.INVALID_FIELD
    with pytest.raises(ProtocolError) as err:
        decode_audio_late(encode_audio_late(AudioLate((LatePacket(0, 0, b"\x0b"),))))  # code 3 without a count
    assert err.value.code is ErrorCode.INVALID_FIELD


@given(st.binary(max_size=200))
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    try:
        decode_audio_late(data)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_FRAME, ErrorCode.INVALID_FIELD)
