"""Length-prefixed framing on a byte stream (``sessionserver/protocol/stream.py``)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import (
    ErrorCode,
    Limits,
    ProtocolError,
    StreamDecoder,
    decode_frame,
    encode,
    frame_bytes,
)
from wire import messages as m

from .test_protocol_codec import messages

LIMITS = Limits()


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into pieces of the given sizes (cycled), the last piece whatever is left."""
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        pieces.append(data[pos : pos + size])
        pos += size
        i += 1
    return pieces


def feed_all(decoder: StreamDecoder, pieces: list[bytes]) -> list[bytes]:
    """Feed the pieces one by one, taking whatever frames are complete after each."""
    out: list[bytes] = []
    for piece in pieces:
        decoder.feed(piece)
        out += decoder.frames()
    return out


frames_lists = st.lists(st.binary(max_size=300), max_size=12)


@settings(max_examples=150, deadline=None)
@given(frames_lists, st.lists(st.integers(1, 64), min_size=1, max_size=10))
def test_whole_bytewise_and_chunked_give_the_same_frames(frames: list[bytes], sizes: list[int]) -> None:
    stream = b"".join(frame_bytes(f) for f in frames)
    whole = feed_all(StreamDecoder(LIMITS.max_frame_bytes), [stream])
    bytewise = feed_all(StreamDecoder(LIMITS.max_frame_bytes), [stream[i : i + 1] for i in range(len(stream))])
    in_chunks = feed_all(StreamDecoder(LIMITS.max_frame_bytes), chunked(stream, sizes))
    assert whole == bytewise == in_chunks == frames


@settings(max_examples=100, deadline=None)
@given(st.lists(messages, max_size=8), st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_messages_survive_the_stream(msgs: list[m.Message], sizes: list[int]) -> None:
    stream = b"".join(frame_bytes(encode(msg)) for msg in msgs)
    decoder = StreamDecoder(LIMITS.max_frame_bytes)
    frames = feed_all(decoder, chunked(stream, sizes))
    assert [decode_frame(f, LIMITS) for f in frames] == msgs
    assert decoder.pending == 0


def test_frame_bytes_is_a_big_endian_length_prefix() -> None:
    assert frame_bytes(b"") == b"\x00\x00\x00\x00"
    assert frame_bytes(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame_bytes(b"x" * 0x1234)[:4] == b"\x00\x00\x12\x34"


def test_empty_frames_are_frames() -> None:
    decoder = StreamDecoder(16)
    decoder.feed(frame_bytes(b"") * 3 + frame_bytes(b"a"))
    assert list(decoder.frames()) == [b"", b"", b"", b"a"]


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    decoder = StreamDecoder(64)
    decoder.feed(frame_bytes(b"ok"))
    decoder.feed(struct.pack(">I", 65))  # only the header: no body has been sent
    frames = decoder.frames()
    assert next(frames) == b"ok"  # frames before the bad one still come out
    with pytest.raises(ProtocolError) as info:
        next(frames)
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert decoder.pending == 4  # nothing was buffered for the body


def test_huge_length_is_refused_at_once() -> None:
    decoder = StreamDecoder(LIMITS.max_frame_bytes)
    decoder.feed(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError) as info:
        list(decoder.frames())
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


def test_length_at_the_limit_is_accepted() -> None:
    decoder = StreamDecoder(64)
    decoder.feed(frame_bytes(b"z" * 64))
    assert list(decoder.frames()) == [b"z" * 64]


def test_pending_reports_partial_bytes() -> None:
    body = encode(m.Ping(12345))
    data = frame_bytes(body)
    decoder = StreamDecoder(LIMITS.max_frame_bytes)
    assert decoder.pending == 0
    decoder.feed(data[:2])  # half a header
    assert list(decoder.frames()) == []
    assert decoder.pending == 2
    decoder.feed(data[2:6])  # the header and two bytes of body
    assert list(decoder.frames()) == []
    assert decoder.pending == 6
    decoder.feed(data[6:] + data[:3])  # the rest, and the start of the next frame
    assert list(decoder.frames()) == [body]
    assert decoder.pending == 3
    decoder.feed(data[3:])
    assert [decode_frame(f, LIMITS) for f in decoder.frames()] == [m.Ping(12345)]
    assert decoder.pending == 0


@settings(max_examples=100, deadline=None)
@given(frames_lists, st.integers(0, 10_000))
def test_pending_is_what_remains_after_the_complete_frames(frames: list[bytes], cut: int) -> None:
    stream = b"".join(frame_bytes(f) for f in frames)
    cut = cut % (len(stream) + 1)
    decoder = StreamDecoder(LIMITS.max_frame_bytes)
    decoder.feed(stream[:cut])
    got = list(decoder.frames())
    assert len(b"".join(frame_bytes(f) for f in got)) + decoder.pending == cut
    assert got == frames[: len(got)]
