"""The browser's codec (``web_client/js/wire/codec.js`` and ``wire/ink.js``) against the Python one,
for protocol version 2.

The JavaScript runs under Node in one long-lived process (``tests/web_client/web_protocol_harness.mjs``,
one JSON request and answer per line). For many random messages and point lists: Python encodes,
JS decodes to the same fields, JS re-encodes to the same bytes; JS encodes points (and messages)
to the same bytes as Python; and on hostile blobs and frames JS accepts what Python accepts and
refuses with the same code, never with anything but its ``ProtocolError``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.wire.test_protocol_ink import flagged_points, point_lists, split
from wire import (
    CLEAR_LAYERS_KEPT,
    HAS_PRESSURE,
    HAS_TILT,
    Limits,
    Point,
    PointState,
    ProtocolError,
    decode_frame,
    decode_points,
    encode,
    encode_points,
)
from wire import messages as m
from wire.codec import MAX_PAGE_ID, MAX_WIDTH, U32, U53
from wire.ink import CHANNEL_FLAGS
from wire.roles import ALL_RIGHTS

HARNESS = Path(__file__).with_name("web_protocol_harness.mjs")
LIMITS = Limits()
# What the browser's decoder checks in the server's frames (web_client/js/wire/limits.js CLIENT_LIMITS).
CLIENT_LIMITS = Limits(max_frame_bytes=64 << 20, max_points_per_message=2**31, max_points_per_stroke=2**31,
                       max_string_bytes=1 << 16, max_sdp_bytes=1 << 20)
PEN = [Point(1000, 2000, 0, 512), Point(1004, 2003, 4, 522), Point(1008, 2006, 8, 510), Point(1013, 2008, 13, 525)]
TILTED = [Point(300, 400, 0, 0, 30, -20), Point(302, 401, 4, 0, 31, -20), Point(304, 402, 8, 0, 31, -21)]

# --- version-2 messages, as wire/codec.py frames them -------------------------------------------

u32 = st.integers(0, U32)
u53 = st.integers(0, U53)
pids = st.integers(1, U32)
page_ids = st.integers(0, MAX_PAGE_ID)
roles = st.sampled_from(m.Role)
tools = st.sampled_from(m.Tool)
flags = st.integers(0, CHANNEL_FLAGS)
rights = st.integers(0, int(ALL_RIGHTS)).map(m.Rights)


def texts(max_bytes: int) -> st.SearchStrategy[str]:
    # codec.py counts UTF-8 bytes; mostly short, some exactly at the limit
    at_limit = st.text(min_size=max_bytes // 4, max_size=max_bytes).map(lambda s: s.encode()[:max_bytes])
    return st.text(max_size=min(max_bytes // 4, 40)) | at_limit.map(lambda b: b.decode(errors="ignore"))


@st.composite
def ink(draw: st.DrawFn, stroke_flags: int, min_size: int, max_size: int) -> tuple[int, bytes]:
    """``(count, blob)`` made by the real encoder."""
    points: list[Point] = draw(point_lists(stroke_flags, min_size, max_size))
    return len(points), encode_points(points, stroke_flags, PointState())


@st.composite
def stroke_points(draw: st.DrawFn, cseq: st.SearchStrategy[int]) -> m.StrokePoints:
    count, blob = draw(ink(draw(flags), 1, 12))
    return m.StrokePoints(draw(cseq), draw(u32), draw(u32), count, blob)


def ops(cseq: st.SearchStrategy[int]) -> st.SearchStrategy[m.Op]:
    return st.one_of(
        st.builds(m.StrokeBegin, cseq, u32, page_ids, tools, u32, st.integers(1, MAX_WIDTH), flags, u53),
        stroke_points(cseq),
        st.builds(m.StrokeEnd, cseq, u32),
        st.builds(m.PageAdd, cseq, page_ids),
        st.builds(m.PageSwitch, cseq, page_ids),
        st.builds(m.Undo, cseq, u32, st.just(0) | u32),
        st.builds(m.Clear, cseq, page_ids),
        st.builds(m.Restore, cseq, page_ids),
        st.builds(m.Grant, cseq, pids, rights),
        st.builds(m.Mute, cseq, st.booleans()),
        st.builds(m.Hand, cseq, st.booleans()),
        st.builds(m.Question, cseq, names),
        st.builds(m.Stage, cseq, pids, st.sampled_from(m.StageAction)),
        st.builds(m.Moderate, cseq, st.integers(0, U32), st.sampled_from(m.ModAction)),
    )


@st.composite
def snapshot_strokes(draw: st.DrawFn) -> m.SnapshotStroke:
    stroke_flags = draw(flags)
    count, blob = draw(ink(stroke_flags, 0, 12))
    return m.SnapshotStroke(draw(pids), draw(u32), draw(tools), draw(u32), draw(st.integers(1, MAX_WIDTH)),
                            stroke_flags, draw(u53), count, blob, draw(st.booleans()),
                            draw(st.just(0) | st.integers(0, CLEAR_LAYERS_KEPT)))


names = texts(LIMITS.max_string_bytes)
presences = st.builds(m.Presence, names, st.booleans(), roles, st.booleans())
rosters = st.builds(m.Roster, st.lists(st.builds(m.RosterChange, pids, names, st.booleans(), roles),
                                       min_size=1, max_size=4).map(tuple))  # a class's viewers, coalesced
roster_entries = st.builds(m.RosterEntry, pids, names, roles, st.booleans(), st.booleans(), page_ids,
                           st.just(0) | st.integers(0, U53), st.integers(0, 2),  # a class: hand_ms, stage
                           st.just(m.Rights.NONE) | rights)  # granted
i53 = st.integers(-U53, U53)
# Opus packets: a TOC byte (any configuration, codes 0-2, or code 3 with 1-2 frames) and data.
opus_packets = st.builds(
    lambda toc, code3, data: bytes([toc]) + (bytes([code3]) if toc & 3 == 3 else b"") + data,
    st.integers(0, 255), st.integers(1, 2), st.binary(min_size=1, max_size=60),
)
messages: st.SearchStrategy[m.Message] = st.one_of(
    ops(st.integers(1, U53)),
    st.builds(m.Event, st.integers(1, U53), u53, pids, u53, st.one_of(ops(st.just(0)), presences, rosters)),
    st.builds(m.Join, st.integers(0, 65_535), texts(LIMITS.max_token_bytes), roles, u53, u53),
    st.builds(m.Welcome, st.integers(0, 65_535), pids, roles, names, names, u53, u53, u53,
              st.sampled_from(m.CatchUp), st.integers(1, MAX_PAGE_ID + 1), u53, st.integers(1, U32),
              st.integers(1, U32), rights, st.lists(roster_entries, max_size=4).map(tuple)),
    st.builds(m.Snapshot, u53, page_ids, st.lists(snapshot_strokes(), max_size=4).map(tuple),
              st.just(0) | st.integers(0, U32), st.just(True) | st.booleans()),  # whole pages, and parts
    st.builds(m.Ping, i53), st.builds(m.Pong, i53, i53), st.builds(m.Ack, u53, u53),
    st.builds(m.Error, st.integers(0, 65_535), texts(4_096), u53),
    st.builds(m.Audio, u32, u53, opus_packets),
    st.builds(m.AudioRelay, pids, u32, u53, u53, opus_packets),
    st.builds(m.AudioLate, st.lists(st.builds(m.LatePacket, u32, u53, opus_packets), min_size=1,
                                    max_size=3).map(tuple)),
    st.builds(m.RtcOffer, texts(2_000)), st.builds(m.RtcAnswer, texts(2_000)),
    st.builds(m.RtcCandidate, texts(300), texts(64), st.integers(0, 255)), st.just(m.RtcClose()),
)

# Anything msgpack can carry, and arrays that start like a frame (or like a roster entry or a
# snapshot stroke inside one) so the field checks get exercised.
EDGES = [-1, 0, 1, 2, 3, 4, 5, 15, 16, 31, 32, 255, 256, 65_535, 65_536, U32, U32 + 1, U53, U53 + 1, -U53, -U53 - 1]
edges = st.sampled_from(EDGES)
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.integers(-3, 70_000) | edges | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=5) | st.integers(-(2**63), 2**64 - 1), children, max_size=3)
    | st.tuples(st.sampled_from([int(t) for t in m.MsgType]), st.lists(children, max_size=16)).map(
        lambda tc: [tc[0], *tc[1]]),
    max_leaves=30,
)


@st.composite
def mangled_frames(draw: st.DrawFn) -> Any:
    """A real v2 frame's array with one field (or one field of a roster entry, snapshot stroke or
    event body) replaced by anything, or cut short."""
    items: list[Any] = msgpack.unpackb(encode(draw(messages)), raw=False)
    target, first = items, 1  # a typed array's type stays (other types are tested above)
    nested = [i for i, v in enumerate(items) if isinstance(v, list) and v]
    go_inside: bool = draw(st.booleans())
    if nested and go_inside:
        inner = items[draw(st.sampled_from(nested))]
        if isinstance(inner[0], list):  # roster entries or snapshot strokes: records without a type
            target, first = inner[draw(st.integers(0, len(inner) - 1))], 0
        else:  # an event body
            target = inner
    if len(target) <= first:
        return items
    at = draw(st.integers(first, len(target) - 1))
    if draw(st.integers(0, 3)) == 0:
        del target[at:]
    else:
        target[at] = draw(msgpack_values)
    return items


class Node:
    """The harness process: ``ask`` sends one request and returns its answer."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            stderr = self.proc.stderr.read() if self.proc.stderr is not None else ""
            raise RuntimeError(f"the node harness stopped: {stderr}")
        answer = json.loads(line)
        assert isinstance(answer, dict)
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def js() -> Iterator[Node]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed, so the browser's codec cannot be run")
    harness = Node(node)
    yield harness
    harness.close()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_js(value: Any) -> Any:
    """A message as codec.js represents it: ``{"type": name, camelCaseField: ...}``, binary as
    ``{"$bin": hex}``, enums and flags as integers (a snapshot stroke, a roster entry and a late
    packet have no type)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        untyped = isinstance(value, (m.SnapshotStroke, m.RosterEntry, m.RosterChange, m.LatePacket))
        out: dict[str, Any] = {} if untyped else {"type": type(value).__name__}
        for field in dataclasses.fields(value):
            out[camel(field.name)] = to_js(getattr(value, field.name))
        return out
    if isinstance(value, (enum.IntEnum, enum.IntFlag)):
        return int(value)
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, (tuple, list)):
        return [to_js(v) for v in value]
    return value


def point_json(p: Point) -> dict[str, int]:
    return {"x": p.x, "y": p.y, "t": p.t, "pressure": p.pressure, "tiltX": p.tilt_x, "tiltY": p.tilt_y}


def python_batches(blobs: list[tuple[bytes, int]], flags: int) -> list[list[Point] | int]:
    """Decode batches in order on one predictor state, as the harness does: points, or the code of
    a refusal (which leaves the state as it was)."""
    state = PointState()
    out: list[list[Point] | int] = []
    for blob, count in blobs:
        try:
            out.append(decode_points(blob, count, flags, state, LIMITS))
        except ProtocolError as exc:
            out.append(int(exc.code))
    return out


def js_batches(js: Node, blobs: list[tuple[bytes, int]], flags: int) -> list[list[Point] | int]:
    answer = js.ask({"op": "decode_points", "flags": flags,
                     "batches": [{"hex": blob.hex(), "count": count} for blob, count in blobs]})
    assert answer["ok"], answer
    out: list[list[Point] | int] = []
    for result in answer["results"]:
        if result["ok"]:
            out.append([Point(p["x"], p["y"], p["t"], p["pressure"], p["tiltX"], p["tiltY"]) for p in result["points"]])
        else:
            assert isinstance(result["code"], int), result  # a ProtocolError, never another exception
            out.append(result["code"])
    return out


# --- messages ---------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(messages)
def test_python_frames_decode_in_js_and_reencode_to_the_same_bytes(js: Node, msg: m.Message) -> None:
    frame = encode(msg)
    answer = js.ask({"op": "frame", "hex": frame.hex()})
    assert answer["ok"], answer
    assert answer["msg"] == to_js(msg)
    assert answer["hex"] == frame.hex()


@settings(max_examples=300, deadline=None)
@given(messages)
def test_js_encodes_every_message_as_python_does(js: Node, msg: m.Message) -> None:
    answer = js.ask({"op": "encode", "msg": to_js(msg)})
    assert answer["ok"], answer
    frame = bytes.fromhex(answer["hex"])
    assert frame == encode(msg)
    assert decode_frame(frame, LIMITS) == msg


@settings(max_examples=400, deadline=None)
@given(msgpack_values)
def test_js_accepts_what_python_accepts_and_refuses_only_with_protocol_errors(js: Node, value: Any) -> None:
    frame: bytes = msgpack.packb(value, use_bin_type=True)
    answer = js.ask({"op": "frame", "hex": frame.hex()})
    if not answer["ok"]:
        assert isinstance(answer["code"], int), answer
    try:
        msg = decode_frame(frame, LIMITS)
    except ProtocolError:
        return  # JS may accept more (it cannot tell 2.0 from 2; it takes maps in trailing fields)
    assert answer["ok"], answer
    assert answer["msg"] == to_js(msg)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_bytes_are_refused_with_protocol_errors(js: Node, frame: bytes) -> None:
    answer = js.ask({"op": "frame", "hex": frame.hex()})
    if not answer["ok"]:
        assert isinstance(answer["code"], int), answer


def test_unknown_types_are_refused_with_unknown_type(js: Node) -> None:
    for kind in (-1, 5, 26, 33, 44, 99):
        answer = js.ask({"op": "frame", "hex": msgpack.packb([kind, 1, 2]).hex()})
        assert answer == {"ok": False, "code": 1002, "message": answer["message"]}


@settings(max_examples=400, deadline=None)
@given(mangled_frames())
def test_mangled_v2_frames_are_refused_alike(js: Node, items: Any) -> None:
    """A real frame with a field replaced or cut: decoded with the client's limits, where Python
    refuses, JS refuses with the same code, unless JS cannot see the difference (an integral
    float, a map in a trailing field); where Python accepts, JS decodes the same message."""
    frame: bytes = msgpack.packb(items, use_bin_type=True)
    answer = js.ask({"op": "frame", "hex": frame.hex()})
    try:
        msg = decode_frame(frame, CLIENT_LIMITS)
    except ProtocolError as exc:
        if not answer["ok"]:
            assert answer["code"] == int(exc.code) or _lenient(frame), (answer, exc)
        else:
            assert _lenient(frame), (answer, exc)
        return
    assert answer["ok"], answer
    assert answer["msg"] == to_js(msg)


def _lenient(frame: bytes) -> bool:
    """Whether ``frame`` holds what the JS decoder cannot tell apart as Python does: a float (JS
    sees 2.0 as 2) or a map."""
    found: list[Any] = []

    def walk(v: Any) -> None:
        found.append(v)
        if isinstance(v, list):
            for x in v:
                walk(x)

    walk(msgpack.unpackb(frame, raw=False, strict_map_key=False))
    return any(isinstance(v, (float, dict)) for v in found)


EDGE_VALUES: list[Any] = [None, True, False, "", "x" * 300, b"", b"\x01", [], *EDGES]


def field_paths(items: list[Any]) -> Iterator[tuple[int, ...]]:
    """Every field of a frame's array that a decoder range- or type-checks: top-level fields
    after the type, the fields of every roster entry and snapshot stroke, and an event body's."""
    for i in range(1, len(items)):
        yield (i,)
        v = items[i]
        if isinstance(v, list) and v and isinstance(v[0], list):
            for j, record in enumerate(v):
                for k in range(len(record)):
                    yield (i, j, k)
        elif isinstance(v, list) and v and isinstance(v[0], int):
            for k in range(1, len(v)):
                yield (i, k)


def replaced(items: list[Any], path: tuple[int, ...], value: Any) -> bytes:
    copy: list[Any] = msgpack.unpackb(msgpack.packb(items, use_bin_type=True), raw=False)
    target = copy
    for i in path[:-1]:
        target = target[i]
    target[path[-1]] = value
    return bytes(msgpack.packb(copy, use_bin_type=True))


@settings(max_examples=60, deadline=None)
@given(messages)
def test_every_field_at_its_edges_is_refused_alike(js: Node, msg: m.Message) -> None:
    """Every checked field of a v2 frame set to each edge value (range ends and one past them, the
    wrong types): Python with the client's limits and JS accept alike (the same message) or
    refuse with the same code."""
    items: list[Any] = msgpack.unpackb(encode(msg), raw=False)
    frames = [replaced(items, path, value) for path in field_paths(items) for value in EDGE_VALUES]
    answers = js.ask({"op": "frames", "hexes": [f.hex() for f in frames]})["results"]
    for frame, answer in zip(frames, answers, strict=True):
        try:
            expected = decode_frame(frame, CLIENT_LIMITS)
        except ProtocolError as exc:
            assert answer["ok"] is False and answer["code"] == int(exc.code), (frame.hex(), answer, exc)
            continue
        assert answer["ok"], (frame.hex(), answer)
        assert answer["msg"] == to_js(expected)


def test_v1_frames_are_refused(js: Node) -> None:
    """A version-1 Welcome (seat where pid is, seat pairs) and a seat-0 Event are refused alike."""
    v1_welcome = msgpack.packb([2, 1, 0, "u", "s", 0, 0, 0, 0, 1, [0, 0], [True, False], 7, 200, 400, [False, False]])
    v1_event = msgpack.packb([4, 1, 0, 0, 0, [17, "u", True]])
    for frame in (v1_welcome, v1_event):
        with pytest.raises(ProtocolError) as info:
            decode_frame(frame, LIMITS)
        answer = js.ask({"op": "frame", "hex": frame.hex()})
        assert answer["ok"] is False and answer["code"] == int(info.value.code), answer


def test_the_documented_welcome(js: Node) -> None:
    """The Welcome of docs/protocol.md section 4.2, byte for byte both ways."""
    welcome = m.Welcome(
        2, 2, m.Role.STUDENT, "stu-1", "demo", 5321, 17, 9, m.CatchUp.REPLAY, 2, 3141592653589793, 200, 400,
        m.Rights.INK | m.Rights.PAGES | m.Rights.CLEAR | m.Rights.AUDIO,
        (m.RosterEntry(1, "li.jun", m.Role.TUTOR, True, True, 1),
         m.RosterEntry(2, "stu-1", m.Role.STUDENT, True, False, 0)))
    frame = bytes.fromhex(
        "dc0010020202 01 a57374752d31 a464656d6f cd14c9 11 09 00 02 cf000b29430a256d21 ccc8 cd0190 0f"
        " 92 9601a66c692e6a756e00c3c301 9602a57374752d3101c3c200".replace(" ", ""))
    assert encode(welcome) == frame
    answer = js.ask({"op": "frame", "hex": frame.hex()})
    assert answer["msg"] == to_js(welcome)
    assert answer["msg"]["roster"][0] == {"pid": 1, "userId": "li.jun", "role": 0, "online": True, "muted": True,
                                          "currentPage": 1, "handMs": 0, "stage": 0, "granted": 0}
    assert answer["hex"] == frame.hex()
    assert js.ask({"op": "encode", "msg": to_js(welcome)})["hex"] == frame.hex()


# --- points -----------------------------------------------------------------------------------


def test_the_documented_blobs(js: Node) -> None:
    answer = js.ask({"op": "encode_points", "flags": HAS_PRESSURE, "batches": [[point_json(p) for p in PEN]]})
    assert answer["blobs"] == ["d00fa01f80008008080680081400001702015e"]
    answer = js.ask({"op": "encode_points", "flags": HAS_PRESSURE,
                     "batches": [[point_json(p) for p in PEN[:2]], [point_json(p) for p in PEN[2:]]]})
    assert answer["blobs"] == ["d00fa01f800080080806800814", "00001702015e"]
    answer = js.ask({"op": "encode_points", "flags": HAS_TILT, "batches": [[point_json(p) for p in TILTED]]})
    assert answer["blobs"] == ["d804a00600803c2704028008004000000001"]


@settings(max_examples=400, deadline=None)
@given(flagged_points(max_size=60), st.lists(st.integers(0, 1_000), max_size=8))
def test_points_encode_alike_and_decode_both_ways(
    js: Node, fp: tuple[int, list[Point]], cuts: list[int]
) -> None:
    flags, points = fp
    batches = [b for b in split(points, cuts) if b]
    state = PointState()
    python_blobs = [encode_points(batch, flags, state) for batch in batches]
    answer = js.ask({"op": "encode_points", "flags": flags,
                     "batches": [[point_json(p) for p in batch] for batch in batches]})
    assert answer["ok"], answer
    js_blobs = [bytes.fromhex(h) for h in answer["blobs"]]
    assert js_blobs == python_blobs
    counted = list(zip(python_blobs, map(len, batches), strict=True))
    assert js_batches(js, counted, flags) == batches  # Python encodes, JS decodes
    js_counted = list(zip(js_blobs, map(len, batches), strict=True))
    assert python_batches(js_counted, flags) == batches  # JS encodes, Python decodes


@settings(max_examples=400, deadline=None)
@given(flagged_points(min_size=0, max_size=6), st.binary(max_size=120), st.integers(1, 40),
       flagged_points(min_size=1, max_size=6))
def test_hostile_blobs_are_refused_alike(
    js: Node, fp: tuple[int, list[Point]], garbage: bytes, count: int, after: tuple[int, list[Point]]
) -> None:
    """A valid batch, a hostile one, then a valid continuation of the first: the hostile batch is
    accepted or refused with the same code on both sides, and a refusal leaves the state as it was."""
    flags, points = fp
    state = PointState()
    first = encode_points(points, flags, state)
    follow = [Point(p.x, p.y, p.t + (points[-1].t if points else 0), p.pressure if flags & HAS_PRESSURE else 0,
                    p.tilt_x if flags & HAS_TILT else 0, p.tilt_y if flags & HAS_TILT else 0) for p in after[1]]
    third = encode_points(follow, flags, state.copy())
    blobs = [(first, len(points)), (garbage, count), (third, len(follow))]
    assert js_batches(js, blobs, flags) == python_batches(blobs, flags)


sloppy_points = st.lists(st.builds(
    Point, st.integers(-5, 65_540), st.integers(-5, 65_540), st.integers(-5, 2**31 + 5),
    st.integers(-5, 4_100), st.integers(-95, 95), st.integers(-95, 95)), min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(flagged_points(min_size=0, max_size=6), sloppy_points)
def test_out_of_range_points_are_refused_alike(js: Node, fp: tuple[int, list[Point]], sloppy: list[Point]) -> None:
    """Points the encoder writes but the decoder must check (coordinates, time going backwards,
    pressure, tilt), after a valid batch: the same points, or the same code, on both sides."""
    flags, points = fp
    state = PointState()
    first = encode_points(points, flags, state)
    second = encode_points(sloppy, flags, state)
    blobs = [(first, len(points)), (second, len(sloppy))]
    assert js_batches(js, blobs, flags) == python_batches(blobs, flags)


# --- the browser's replica against the room: cleared layers, Restore, Grant, Presence.left ------

ROOM_ACTIONS = st.lists(st.tuples(st.sampled_from([1, 1, 2]),  # the tutor (CLEAR) more often
                                  st.sampled_from(["stroke", "stroke", "open", "clear", "restore", "restore", "undo",
                                                   "undo-other", "grant", "leave"]),
                                  st.sampled_from([0, 0, 1])), max_size=30)


@settings(max_examples=150, deadline=None)
@given(ROOM_ACTIONS, st.sampled_from([1 << 62, 300]))
@example([(1, "stroke", 0), (2, "stroke", 0), (1, "clear", 0), (2, "stroke", 0), (1, "restore", 0)], 300)
def test_the_browser_replica_holds_the_rooms_pages_and_layers(js: Node, actions: list[tuple[int, str, int]],
                                                               part_bytes: int) -> None:
    """The same room as ``tests/sessionserver/test_room_clear_restore.py`` drives: the JS replica fed
    every event, and one fed a snapshot, hold exactly the room's pages, layers and grants."""
    from sessionserver.room import Room

    room = Room("r", LIMITS, 10_000, now=0.0, snapshot_part_bytes=part_bytes)
    for role, user in ((m.Role.TUTOR, "t"), (m.Role.STUDENT, "s")):
        room.presence(room.admit(role, user).pid, True, 0.0)
    room.apply(1, m.PageAdd(1, 1), 0.0)
    cseq, strokes = {1: 1, 2: 0}, {1: 0, 2: 0}
    points = encode_points(PEN, HAS_PRESSURE, PointState())

    def send(pid: int, make: Any, *fields: Any) -> None:
        cseq[pid] += 1
        try:
            room.apply(pid, make(cseq[pid], *fields), 0.0)
        except ProtocolError:
            pass  # refused: no event

    for pid, action, page in actions:
        other = 3 - pid
        if action in ("stroke", "open"):
            strokes[pid] += 1
            send(pid, m.StrokeBegin, strokes[pid], page, m.Tool.PEN, 255, 10, HAS_PRESSURE, 0)
            send(pid, m.StrokePoints, strokes[pid], 0, len(PEN), points)
            if action == "stroke":
                send(pid, m.StrokeEnd, strokes[pid])
        elif action == "clear":
            send(pid, m.Clear, page)
        elif action == "restore":
            send(pid, m.Restore, page)
        elif action == "undo":
            send(pid, m.Undo, strokes[pid])
        elif action == "undo-other":
            send(pid, m.Undo, strokes[other], other)
        elif action == "grant":
            send(pid, m.Grant, 2, m.Rights.CLEAR | m.Rights.UNDO_OTHERS if page else m.Rights.NONE)
        elif room.participants[pid].online:
            room.presence(pid, False, 0.0, left=bool(page))
    expected_pages = [[list(k) for k in p.strokes] for p in room.pages]
    expected_layers = [[[list(k) for k in layer] for layer in p.cleared] for p in room.pages]
    welcome = encode(room.welcome(2, m.CatchUp.REPLAY, 0.0))
    live = js.ask({"op": "replica", "hexes": [welcome.hex(), *(f.hex() for _, f in room.log)]})
    assert live["ok"], live
    assert (live["pages"], live["layers"]) == (expected_pages, expected_layers)
    for pid, p in room.participants.items():
        assert live["participants"][str(pid)]["granted"] == p.granted
    snapshot = [encode(room.welcome(2, m.CatchUp.SNAPSHOT, 0.0)), *room.catch_up(room.seq, m.CatchUp.SNAPSHOT)]
    snapped = js.ask({"op": "replica", "hexes": [f.hex() for f in snapshot]})
    assert snapped["ok"], snapped
    assert (snapped["pages"], snapped["layers"]) == (expected_pages, expected_layers)
    assert snapped["participants"]["2"]["granted"] == room.participants[2].granted
    presences = [e.body for e in (decode_frame(f, LIMITS) for _, f in room.log)
                 if isinstance(e, m.Event) and isinstance(e.body, m.Presence)]
    for pid in (1, 2):
        last = [p for p in presences if p.role is room.participants[pid].role][-1]
        assert live["participants"][str(pid)]["left"] is last.left
