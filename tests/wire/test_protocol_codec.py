"""The msgpack codec (``wire/codec.py``): every message round-trips, and every
input is either a message or a ``ProtocolError`` with the documented code, never anything else."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import (
    ALL_RIGHTS,
    CLEAR_LAYERS_KEPT,
    ErrorCode,
    Limits,
    Point,
    PointState,
    ProtocolError,
    Rights,
    Role,
    decode_frame,
    encode,
    encode_points,
    pack,
    to_wire,
)
from wire import messages as m
from wire.codec import MAX_PAGE_ID, MAX_WIDTH, QUESTION_MAX_BYTES, U32, U53
from wire.ink import CHANNEL_FLAGS

from .test_protocol_ink import point_lists

LIMITS = Limits()
A_WELCOME = m.Welcome(2, 1, Role.TUTOR, "u", "s", 0, 0, 0, m.CatchUp.REPLAY, 1, 7, 200, 400, Rights.INK,
                      (m.RosterEntry(1, "u", Role.TUTOR, True, False, 0),))
MESSAGE_TYPES = (m.StrokeBegin, m.StrokePoints, m.StrokeEnd, m.PageAdd, m.PageSwitch, m.Undo, m.Clear,
                 m.Join, m.Welcome, m.Snapshot, m.Event, m.Ping, m.Pong, m.Ack, m.Error, m.Mute, m.Audio,
                 m.AudioRelay, m.RtcOffer, m.RtcAnswer, m.RtcCandidate, m.RtcClose, m.Hand, m.Question, m.Stage,
                 m.Moderate, m.Restore, m.Grant)

# --- strategies -------------------------------------------------------------------------------

u32 = st.integers(0, U32)
u53 = st.integers(0, U53)
page_ids = st.integers(0, MAX_PAGE_ID)
pids = st.integers(1, U32)
roles = st.sampled_from(m.Role)
tools = st.sampled_from(m.Tool)
flags = st.integers(0, CHANNEL_FLAGS)


def texts(max_bytes: int) -> st.SearchStrategy[str]:
    # codec.py counts UTF-8 bytes; mostly short, some exactly at the limit
    at_limit = st.text(min_size=max_bytes // 4, max_size=max_bytes).map(lambda s: s.encode()[:max_bytes])
    return st.text(max_size=min(max_bytes // 4, 40)) | at_limit.map(lambda b: b.decode(errors="ignore"))


@st.composite
def ink(draw: st.DrawFn, stroke_flags: int, min_size: int, max_size: int) -> tuple[int, bytes]:
    """``(count, blob)`` made by the real encoder."""
    points: list[Point] = draw(point_lists(stroke_flags, min_size, max_size))
    return len(points), encode_points(points, stroke_flags, PointState())


def stroke_begins(cseq: st.SearchStrategy[int]) -> st.SearchStrategy[m.StrokeBegin]:
    return st.builds(m.StrokeBegin, cseq, u32, page_ids, tools, u32, st.integers(1, MAX_WIDTH), flags, u53)


@st.composite
def stroke_points(draw: st.DrawFn, cseq: st.SearchStrategy[int]) -> m.StrokePoints:
    count, blob = draw(ink(draw(flags), 1, 12))
    return m.StrokePoints(draw(cseq), draw(u32), draw(u32), count, blob)


def ops(cseq: st.SearchStrategy[int]) -> st.SearchStrategy[m.Op]:
    return st.one_of(
        stroke_begins(cseq),
        stroke_points(cseq),
        st.builds(m.StrokeEnd, cseq, u32),
        st.builds(m.PageAdd, cseq, page_ids),
        st.builds(m.PageSwitch, cseq, page_ids),
        st.builds(m.Undo, cseq, u32, st.just(0) | u32),
        st.builds(m.Clear, cseq, page_ids),
        st.builds(m.Restore, cseq, page_ids),
        st.builds(m.Grant, cseq, pids, st.integers(0, int(ALL_RIGHTS)).map(Rights)),
        st.builds(m.Mute, cseq, st.booleans()),
        st.builds(m.Hand, cseq, st.booleans()),
        st.builds(m.Question, cseq, texts(QUESTION_MAX_BYTES)),
        st.builds(m.Stage, cseq, pids, st.sampled_from(m.StageAction)),
        st.builds(m.Moderate, cseq, st.integers(0, U32), st.sampled_from(m.ModAction)),
    )


client_ops = ops(st.integers(1, U53))
presences = st.builds(m.Presence, texts(LIMITS.max_string_bytes), st.booleans(), roles, st.booleans())
rosters = st.builds(m.Roster, st.lists(st.builds(m.RosterChange, pids, texts(LIMITS.max_string_bytes), st.booleans(),
                                                 roles), min_size=1, max_size=4).map(tuple))
event_bodies: st.SearchStrategy[m.EventBody] = st.one_of(ops(st.just(0)), presences, rosters)  # relayed ops: no cseq
events = st.builds(m.Event, st.integers(1, U53), u53, pids, u53, event_bodies)
joins = st.builds(m.Join, st.integers(0, 65_535), texts(LIMITS.max_token_bytes), roles, u53, u53)
roster_entries = st.builds(m.RosterEntry, pids, texts(LIMITS.max_string_bytes), roles, st.booleans(),
                           st.booleans(), page_ids, st.just(0) | u53, st.integers(0, 2),
                           st.just(0) | st.integers(0, int(ALL_RIGHTS)).map(Rights))
welcomes = st.builds(
    m.Welcome, st.integers(0, 65_535), pids, roles, texts(LIMITS.max_string_bytes), texts(LIMITS.max_string_bytes),
    u53, u53, u53, st.sampled_from(m.CatchUp), st.integers(1, MAX_PAGE_ID + 1), u53,
    st.integers(1, U32), st.integers(1, U32), st.integers(0, int(ALL_RIGHTS)).map(Rights),
    st.lists(roster_entries, max_size=4).map(tuple),
)


@st.composite
def snapshot_strokes(draw: st.DrawFn) -> m.SnapshotStroke:
    stroke_flags = draw(flags)
    count, blob = draw(ink(stroke_flags, 0, 12))
    return m.SnapshotStroke(draw(pids), draw(u32), draw(tools), draw(u32), draw(st.integers(1, MAX_WIDTH)),
                            stroke_flags, draw(u53), count, blob, draw(st.booleans()),
                            draw(st.just(0) | st.integers(0, CLEAR_LAYERS_KEPT)))


snapshots = st.builds(m.Snapshot, u53, page_ids, st.lists(snapshot_strokes(), max_size=4).map(tuple),
                      st.integers(0, 3) | st.integers(0, U32), st.booleans())
i53 = st.integers(-U53, U53)
pings = st.builds(m.Ping, i53)
pongs = st.builds(m.Pong, i53, i53)
acks = st.builds(m.Ack, u53, u53)
errors = st.builds(m.Error, st.integers(0, 65_535), texts(4_096), u53)

# Opus packets: a TOC byte (any configuration, codes 0-2, or code 3 with 1-2 frames) and data.
opus_packets = st.builds(
    lambda toc, code3, data: bytes([toc]) + (bytes([code3]) if toc & 3 == 3 else b"") + data,
    st.integers(0, 255), st.integers(1, 2), st.binary(min_size=1, max_size=60),
)
media = st.one_of(
    st.builds(m.Audio, u32, u53, opus_packets),
    st.builds(m.AudioRelay, pids, u32, u53, u53, opus_packets),
    st.builds(m.RtcOffer, texts(2_000)), st.builds(m.RtcAnswer, texts(2_000)),
    st.builds(m.RtcCandidate, texts(300), texts(64), st.integers(0, 255)), st.just(m.RtcClose()),
)

messages: st.SearchStrategy[m.Message] = st.one_of(
    client_ops, events, joins, welcomes, snapshots, pings, pongs, acks, errors, media
)

# Anything msgpack can carry, and arrays that start like a frame so the field checks get exercised.
# Maps (and ext types) are refused anywhere in a frame (``max_map_len=0``), so a later version's
# trailing fields must not be maps: ``array_values`` is the map-free part.
array_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4),
    max_leaves=10,
)
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.integers(-3, 70_000) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=5) | st.integers(-(2**63), 2**64 - 1), children, max_size=3)
    | st.tuples(st.sampled_from([int(t) for t in m.MsgType]), st.lists(children, max_size=11)).map(
        lambda tc: [tc[0], *tc[1]]),
    max_leaves=30,
)


def decodes_or_refuses(frame: bytes, limits: Limits = LIMITS) -> m.Message | None:
    """The message in ``frame`` (checked to be a stable, re-encodable message) or ``None`` when it
    was refused with a ``ProtocolError``; any other exception fails the test."""
    try:
        msg = decode_frame(frame, limits)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        return None
    assert isinstance(msg, MESSAGE_TYPES)
    assert decode_frame(encode(msg), limits) == msg
    return msg


def refusal(frame: bytes, limits: Limits = LIMITS) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        decode_frame(frame, limits)
    return info.value.code


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(messages)
def test_every_message_round_trips(msg: m.Message) -> None:
    frame = encode(msg)
    assert type(frame) is bytes
    decoded = decode_frame(frame, LIMITS)
    assert decoded == msg
    assert type(decoded) is type(msg)
    assert encode(decoded) == frame


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([client_ops, events, joins, welcomes, snapshots, pings, pongs, acks, errors])
       .flatmap(lambda s: s))
def test_every_kind_round_trips(msg: m.Message) -> None:
    # the same property with the message kinds drawn evenly (one_of favours the first branches)
    assert decode_frame(encode(msg), LIMITS) == msg


@settings(max_examples=150, deadline=None)
@given(messages, st.lists(array_values, min_size=1, max_size=3))
def test_trailing_fields_are_ignored(msg: m.Message, extra: list[Any]) -> None:
    """Forward compatibility: a later minor version may append fields to any array."""
    wire = to_wire(msg)
    if isinstance(msg, m.Snapshot) and len(wire) == 4:  # a page in one part leaves out part and last
        wire += [0, True]
    if isinstance(msg, m.Undo) and len(wire) == 3:  # one's own stroke leaves out the author
        wire += [0]
    assert decode_frame(pack([*wire, *extra]), LIMITS) == msg
    if isinstance(msg, m.Event):
        if isinstance(msg.body, m.Presence) and len(wire[-1]) == 4:  # leaves out ``left`` when false
            wire[-1] = [*wire[-1], False]
        if isinstance(msg.body, m.Undo) and len(wire[-1]) == 2:  # and an Undo its author when 0
            wire[-1] = [*wire[-1], 0]
        wire[-1] = [*wire[-1], *extra]
        assert decode_frame(pack(wire), LIMITS) == msg
    if isinstance(msg, m.Welcome) and msg.roster:  # entries leave out hand_ms, stage and granted when 0
        wire[-1] = [[*e, 0, 0, 0][:9] if len(e) == 6 else [*e, 0][:9] for e in wire[-1]]
        wire[-1] = [[*e, *extra] for e in wire[-1]]
        assert decode_frame(pack(wire), LIMITS) == msg
    if isinstance(msg, m.Snapshot) and msg.strokes:  # strokes leave out ``layer`` when 0
        wire[3] = [[*s, *extra] for s in ([*s, 0][:11] for s in wire[3])]
        assert decode_frame(pack(wire), LIMITS) == msg


# --- only ProtocolError -----------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_message_or_protocol_error(frame: bytes) -> None:
    decodes_or_refuses(frame)


@settings(max_examples=500, deadline=None)
@given(msgpack_values)
def test_arbitrary_msgpack_gives_a_message_or_protocol_error(value: Any) -> None:
    decodes_or_refuses(msgpack.packb(value, use_bin_type=True))
    decodes_or_refuses(msgpack.packb(value, use_bin_type=False))  # str as raw, no bin type


@settings(max_examples=150, deadline=None)
@given(messages, msgpack_values, st.data())
def test_fields_replaced_with_anything_give_a_message_or_protocol_error(
    msg: m.Message, value: Any, data: st.DataObject
) -> None:
    wire = to_wire(msg)
    wire[data.draw(st.integers(0, len(wire) - 1))] = value
    decodes_or_refuses(pack(wire))
    if isinstance(msg, m.Event):  # and inside an event's body
        body = to_wire(msg)[-1]
        body[data.draw(st.integers(0, len(body) - 1))] = value
        decodes_or_refuses(pack([*to_wire(msg)[:-1], body]))


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1, max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(messages, mutations)
def test_mutated_frames_give_a_message_or_protocol_error(msg: m.Message, edits: list[tuple[str, int, int]]) -> None:
    frame = bytearray(encode(msg))
    for kind, where, byte in edits:
        if kind == "insert":
            frame.insert(where % (len(frame) + 1), byte)
            continue
        if not frame:
            continue
        i = where % len(frame)
        if kind == "flip":
            frame[i] ^= 1 << (byte % 8)
        elif kind == "set":
            frame[i] = byte
        else:
            del frame[i]
    decodes_or_refuses(bytes(frame))


@settings(max_examples=100, deadline=None)
@given(messages, st.integers(1, 200))
def test_truncated_frames_are_refused(msg: m.Message, cut: int) -> None:
    frame = encode(msg)
    with pytest.raises(ProtocolError) as info:
        decode_frame(frame[: max(0, len(frame) - cut)], LIMITS)
    assert info.value.code in (ErrorCode.BAD_FRAME, ErrorCode.INVALID_FIELD)


# --- exact error codes ------------------------------------------------------------------------


def test_garbage_bytes_are_bad_frame() -> None:
    assert refusal(b"\xc1") is ErrorCode.BAD_FRAME  # the one byte msgpack never uses
    assert refusal(b"") is ErrorCode.BAD_FRAME
    assert refusal(b"\x93\x14") is ErrorCode.BAD_FRAME  # an array of 3 that ends after 1
    assert refusal(pack([20, 1]) + b"\x00") is ErrorCode.BAD_FRAME  # a second object after the frame
    assert refusal(b"\xd9\x02\xff\xfe") is ErrorCode.BAD_FRAME  # a str that is not UTF-8


def test_empty_array_and_non_arrays_are_bad_frame() -> None:
    assert refusal(pack([])) is ErrorCode.BAD_FRAME
    for value in (5, "ping", b"\x14", None, True, 1.5, {"type": 20}):
        assert refusal(msgpack.packb(value, use_bin_type=True)) is ErrorCode.BAD_FRAME, value
    for head in ("20", 20.0, True, None, [20], b"\x14"):
        assert refusal(pack([head, 1])) is ErrorCode.BAD_FRAME, head


def test_unknown_type_is_unknown_type() -> None:
    assert refusal(pack([99, 1, 2])) is ErrorCode.UNKNOWN_TYPE
    assert refusal(pack([0])) is ErrorCode.UNKNOWN_TYPE
    assert refusal(pack([-1])) is ErrorCode.UNKNOWN_TYPE
    assert refusal(pack([2**64 - 1])) is ErrorCode.UNKNOWN_TYPE
    assert refusal(pack([m.MsgType.PRESENCE, "u", True])) is ErrorCode.UNKNOWN_TYPE  # only inside an event
    event = to_wire(m.Event(1, 0, 1, 0, m.Presence("u", True, Role.TUTOR)))
    assert refusal(pack([*event[:-1], [99, "u"]])) is ErrorCode.UNKNOWN_TYPE
    assert refusal(pack([*event[:-1], [m.MsgType.PING, 1]])) is ErrorCode.UNKNOWN_TYPE


def test_frame_above_max_frame_bytes_is_frame_too_large() -> None:
    small = Limits(max_frame_bytes=64)
    at_limit = encode(m.Error(1, "x" * 58, 0))
    assert len(at_limit) == 64
    assert decode_frame(at_limit, small) == m.Error(1, "x" * 58, 0)
    over = encode(m.Error(1, "x" * 59, 0))
    assert len(over) == 65
    assert refusal(over, small) is ErrorCode.FRAME_TOO_LARGE
    assert refusal(b"\xc1" * 65, small) is ErrorCode.FRAME_TOO_LARGE  # checked before unpacking


def test_too_many_points_is_too_many_points() -> None:
    small = Limits(max_points_per_message=4)
    points = [Point(10 * i, 10 * i, 4 * i, 500) for i in range(5)]
    four = m.StrokePoints(7, 1, 0, 4, encode_points(points[:4], 1, PointState()))
    assert decode_frame(encode(four), small) == four
    five = encode(m.StrokePoints(7, 1, 0, 5, encode_points(points, 1, PointState())))
    with pytest.raises(ProtocolError) as info:
        decode_frame(five, small)
    assert info.value.code is ErrorCode.TOO_MANY_POINTS
    assert info.value.ref == 7  # the client drops the refused op from its outbox by this


def test_blob_too_short_or_long_for_its_count_is_bad_frame() -> None:
    assert refusal(encode(m.StrokePoints(1, 1, 0, 2, b"\x00" * 5))) is ErrorCode.BAD_FRAME
    assert refusal(encode(m.StrokePoints(1, 1, 0, 1, b"\x00" * 33))) is ErrorCode.BAD_FRAME
    longest = m.StrokePoints(1, 1, 0, 1, b"\x00" * 32)  # 32 bytes: the most one point can take
    assert decode_frame(encode(longest), LIMITS) == longest


def test_wrong_field_type_is_invalid_field() -> None:
    assert refusal(pack([m.MsgType.PING, "5"])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.ACK, 1, 2.0])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.JOIN, 1, 12345, 0, 0])) is ErrorCode.INVALID_FIELD  # int where str
    assert refusal(pack([m.MsgType.STROKE_POINTS, 1, 1, 1, "\x00\x00\x00"])) is ErrorCode.INVALID_FIELD  # str, not bin
    presence = pack([m.MsgType.EVENT, 1, 0, 1, 0, [m.MsgType.PRESENCE, "u", 1, 0]])
    assert refusal(presence) is ErrorCode.INVALID_FIELD  # int where bool
    presence = pack([m.MsgType.EVENT, 1, 0, 1, 0, [m.MsgType.PRESENCE, "u", True, "tutor"]])
    assert refusal(presence) is ErrorCode.INVALID_FIELD  # a role is its number, not its label
    welcome = to_wire(A_WELCOME)
    welcome[-1] = "roster"
    assert refusal(pack(welcome)) is ErrorCode.INVALID_FIELD  # the roster is an array
    welcome[-1] = [[1, "u"]]
    assert refusal(pack(welcome)) is ErrorCode.BAD_FRAME  # an entry that is cut short
    welcome[-1] = [1]
    assert refusal(pack(welcome)) is ErrorCode.BAD_FRAME  # an entry that is not an array
    assert refusal(pack([m.MsgType.SNAPSHOT, 0, 0, {}])) is ErrorCode.INVALID_FIELD  # map, not array
    assert refusal(pack([m.MsgType.SNAPSHOT, 0, 0, "strokes"])) is ErrorCode.INVALID_FIELD


def test_bool_where_int_is_invalid_field() -> None:
    assert refusal(pack([m.MsgType.PING, True])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.ACK, 0, False])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.STROKE_END, True, 1])) is ErrorCode.INVALID_FIELD  # cseq
    welcome = to_wire(A_WELCOME)
    welcome[-2] = True  # rights
    assert refusal(pack(welcome)) is ErrorCode.INVALID_FIELD
    welcome = to_wire(A_WELCOME)
    welcome[-1] = [[1, "u", 0, True, False, False]]  # a roster entry's current_page
    assert refusal(pack(welcome)) is ErrorCode.INVALID_FIELD


def test_out_of_range_field_is_invalid_field() -> None:
    assert refusal(pack([m.MsgType.STROKE_END, 0, 1])) is ErrorCode.INVALID_FIELD  # cseq starts at 1
    assert refusal(pack([m.MsgType.STROKE_END, 1, U32 + 1])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.JOIN, 2, "t", 4, 0])) is ErrorCode.INVALID_FIELD  # no fifth role
    presence = [m.MsgType.PRESENCE, "u", True, 0]
    assert refusal(pack([m.MsgType.EVENT, 0, 0, 1, 0, presence])) is ErrorCode.INVALID_FIELD  # seq from 1
    assert refusal(pack([m.MsgType.EVENT, 1, 0, 0, 0, presence])) is ErrorCode.INVALID_FIELD  # pid from 1
    assert refusal(pack([m.MsgType.EVENT, 1, 0, U32 + 1, 0, presence])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.EVENT, 1, 0, 1, 0, [*presence[:3], 4]])) is ErrorCode.INVALID_FIELD
    long_id = pack([m.MsgType.EVENT, 1, 0, 1, 0, [m.MsgType.PRESENCE, "u" * 257, True, 0]])
    assert refusal(long_id) is ErrorCode.INVALID_FIELD
    welcome = to_wire(A_WELCOME)
    for entry in ([0, "u", 0, True, False, 0], [1, "u", 4, True, False, 0], [1, "u", 0, True, False, -1],
                  [1, "u", 0, True, False, MAX_PAGE_ID + 1], [1, "u" * 257, 0, True, False, 0]):
        welcome[-1] = [entry]
        assert refusal(pack(welcome)) is ErrorCode.INVALID_FIELD, entry
    welcome = to_wire(A_WELCOME)
    welcome[-2] = int(ALL_RIGHTS) + 1
    assert refusal(pack(welcome)) is ErrorCode.INVALID_FIELD


def test_missing_field_is_bad_frame() -> None:
    assert refusal(pack([m.MsgType.ACK, 1])) is ErrorCode.BAD_FRAME
    assert refusal(pack([m.MsgType.PING])) is ErrorCode.BAD_FRAME
    wire = to_wire(m.StrokeBegin(3, 1, 0, m.Tool.PEN, 0xFF, 20, 1, 0))
    with pytest.raises(ProtocolError) as info:
        decode_frame(pack(wire[:-1]), LIMITS)
    assert info.value.code is ErrorCode.BAD_FRAME
    assert info.value.ref == 3
    assert refusal(pack([m.MsgType.EVENT, 1, 0, 1, 0])) is ErrorCode.BAD_FRAME  # no body
    assert refusal(pack([m.MsgType.EVENT, 1, 0, 1, 0, []])) is ErrorCode.BAD_FRAME  # empty body
    assert refusal(pack([m.MsgType.EVENT, 1, 0, 1, 0, [m.MsgType.PRESENCE, "u"]])) is ErrorCode.BAD_FRAME
    assert refusal(pack([m.MsgType.EVENT, 1, 0, 1, 0, [m.MsgType.PRESENCE, "u", True]])) is ErrorCode.BAD_FRAME
    assert refusal(pack(to_wire(A_WELCOME)[:-1])) is ErrorCode.BAD_FRAME  # no roster
    stroke = to_wire(m.Snapshot(1, 0, (m.SnapshotStroke(1, 1, m.Tool.PEN, 0, 1, 0, 0, 0, b"", True),)))
    stroke[-1][0] = stroke[-1][0][:-1]
    assert refusal(pack(stroke)) is ErrorCode.BAD_FRAME


def test_trailing_extra_fields_are_ignored() -> None:
    ping = m.Ping(42)
    assert decode_frame(pack([m.MsgType.PING, 42, "a later field", [1, 2.5, None], b"\x00"]), LIMITS) == ping
    op = m.StrokeEnd(5, 9)
    assert decode_frame(pack([*to_wire(op), 1, 2, 3]), LIMITS) == op
    undo = m.Undo(5, 9, 2)  # the fields a later version added are read; those after them ignored
    assert decode_frame(pack([*to_wire(undo), 1, 2, 3]), LIMITS) == undo


def test_a_snapshot_in_parts_carries_part_and_last_as_trailing_fields() -> None:
    whole = m.Snapshot(5, 1, ())
    assert to_wire(whole) == [m.MsgType.SNAPSHOT, 5, 1, []]  # one part: as before
    first = m.Snapshot(5, 1, (), part=0, last=False)
    assert to_wire(first) == [m.MsgType.SNAPSHOT, 5, 1, [], 0, False]
    assert decode_frame(encode(first), LIMITS) == first
    assert decode_frame(pack([m.MsgType.SNAPSHOT, 5, 1, [], 2, True]), LIMITS) == m.Snapshot(5, 1, (), 2, True)
    assert refusal(pack([m.MsgType.SNAPSHOT, 5, 1, [], 1])) is ErrorCode.BAD_FRAME  # a part needs its last
    assert refusal(pack([m.MsgType.SNAPSHOT, 5, 1, [], -1, True])) is ErrorCode.INVALID_FIELD
    assert refusal(pack([m.MsgType.SNAPSHOT, 5, 1, [], 0, 1])) is ErrorCode.INVALID_FIELD


def _general_path(frame: bytes) -> m.Message | tuple[ErrorCode, str]:
    """What the codec's general path (without the hot paths) makes of ``frame``."""
    from wire.codec import _message, _typed

    try:
        return _message(*_typed(msgpack.unpackb(frame), "frame"), LIMITS)
    except ProtocolError as exc:
        return exc.code, exc.message


def _decoded(frame: bytes) -> m.Message | tuple[ErrorCode, str]:
    try:
        return decode_frame(frame, LIMITS)
    except ProtocolError as exc:
        return exc.code, exc.message


audio_fields = st.one_of(st.integers(-1, U53 + 1), st.booleans(), st.binary(max_size=8), st.none(), st.text(max_size=2))


@settings(max_examples=300, deadline=None)
@given(audio_fields, audio_fields, st.one_of(st.binary(max_size=40), audio_fields), st.lists(audio_fields, max_size=2))
def test_the_audio_hot_path_decodes_as_the_general_path(seq: Any, capture_ts: Any, payload: Any,
                                                        extra: list[Any]) -> None:
    frame = pack([int(m.MsgType.AUDIO), seq, capture_ts, payload, *extra])
    assert _decoded(frame) == _general_path(frame)
