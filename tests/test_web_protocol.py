"""The browser's codec (``web_client/js/protocol.js`` and ``ink.js``) against the Python one.

The JavaScript runs under Node in one long-lived process (``tests/web_protocol_harness.mjs``,
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
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import (
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

from .test_protocol_codec import messages, msgpack_values
from .test_protocol_ink import flagged_points, split

HARNESS = Path(__file__).with_name("web_protocol_harness.mjs")
LIMITS = Limits()
PEN = [Point(1000, 2000, 0, 512), Point(1004, 2003, 4, 522), Point(1008, 2006, 8, 510), Point(1013, 2008, 13, 525)]
TILTED = [Point(300, 400, 0, 0, 30, -20), Point(302, 401, 4, 0, 31, -20), Point(304, 402, 8, 0, 31, -21)]


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
        pytest.skip("node is not installed, so the browser's protocol.js cannot be run")
    harness = Node(node)
    yield harness
    harness.close()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_js(value: Any) -> Any:
    """A message as protocol.js represents it: ``{"type": name, camelCaseField: ...}``, binary as
    ``{"$bin": hex}``, enums as integers (a snapshot stroke has no type)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {} if isinstance(value, m.SnapshotStroke) else {"type": type(value).__name__}
        for field in dataclasses.fields(value):
            out[camel(field.name)] = to_js(getattr(value, field.name))
        return out
    if isinstance(value, enum.IntEnum):
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
    for kind in (-1, 5, 19, 32, 44, 99):
        answer = js.ask({"op": "frame", "hex": msgpack.packb([kind, 1, 2]).hex()})
        assert answer == {"ok": False, "code": 1002, "message": answer["message"]}


def test_the_documented_welcome(js: Node) -> None:
    frame = bytes.fromhex(
        "dc0010020101a57374752d31a464656d6fcd14c91109000292010092c3c3cf000b29430a256d21ccc8cd019092c3c2"
    )
    answer = js.ask({"op": "frame", "hex": frame.hex()})
    assert answer["msg"] == to_js(decode_frame(frame, LIMITS))
    assert answer["msg"]["epoch"] == 3141592653589793
    assert answer["hex"] == frame.hex()


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
