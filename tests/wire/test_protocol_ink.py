"""Delta-coded ink points (``sessionserver/protocol/ink.py``): round trips, hostile blobs, size."""

from __future__ import annotations

import random
from itertools import accumulate, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import (
    HAS_PRESSURE,
    HAS_TILT,
    ErrorCode,
    Limits,
    Point,
    PointState,
    ProtocolError,
    decode_points,
    encode_points,
)
from wire.ink import MAX_TIME_OFFSET_MS, validate_points
from wire.limits import PRESSURE_MAX, TILT_MAX

LIMITS = Limits()
ALL_FLAGS = (0, HAS_PRESSURE, HAS_TILT, HAS_PRESSURE | HAS_TILT)


def state_of(state: PointState) -> tuple[int, ...]:
    """Every field of a predictor state, for comparing two states."""
    return tuple(getattr(state, name) for name in PointState.__slots__)


@st.composite
def point_lists(
    draw: st.DrawFn, flags: int, min_size: int = 1, max_size: int = 40, max_coordinate: int = LIMITS.max_coordinate
) -> list[Point]:
    """Valid points for a stroke with ``flags``: coordinates in range, time non-decreasing from 0,
    pressure only with HAS_PRESSURE and tilt only with HAS_TILT."""
    n = draw(st.integers(min_size, max_size))
    if draw(st.booleans()):  # a real pen: small steps
        coord = st.integers(0, max_coordinate)
        start_t = draw(st.integers(0, 1_000_000))
        steps = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
        times = [start_t + s for s in accumulate(steps)]
    else:  # anything legal, including the extremes
        coord = st.integers(0, max_coordinate) | st.sampled_from([0, max_coordinate])
        times = sorted(draw(st.lists(st.integers(0, MAX_TIME_OFFSET_MS) | st.just(MAX_TIME_OFFSET_MS),
                                     min_size=n, max_size=n)))
    pressure = st.integers(0, PRESSURE_MAX) if flags & HAS_PRESSURE else st.just(0)
    tilt = st.integers(-TILT_MAX, TILT_MAX) if flags & HAS_TILT else st.just(0)
    return [Point(draw(coord), draw(coord), t, draw(pressure), draw(tilt), draw(tilt)) for t in times]


@st.composite
def flagged_points(draw: st.DrawFn, min_size: int = 1, max_size: int = 40) -> tuple[int, list[Point]]:
    flags = draw(st.sampled_from(ALL_FLAGS))
    return flags, draw(point_lists(flags, min_size, max_size))


def split(points: list[Point], cuts: list[int]) -> list[list[Point]]:
    bounds = [0, *sorted({c % (len(points) + 1) for c in cuts}), len(points)]
    return [points[a:b] for a, b in pairwise(bounds)]


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(flagged_points(), st.lists(st.integers(0, 1_000), max_size=8))
def test_batches_round_trip_and_concatenate(fp: tuple[int, list[Point]], cuts: list[int]) -> None:
    flags, points = fp
    batches = split(points, cuts)
    enc = PointState()
    blobs = [encode_points(batch, flags, enc) for batch in batches]

    dec = PointState()
    decoded: list[Point] = []
    for batch, blob in zip(batches, blobs, strict=True):
        got = decode_points(blob, len(batch), flags, dec, LIMITS)
        assert got == batch
        decoded += got
    assert decoded == points
    assert state_of(dec) == state_of(enc)

    # What the server relies on: it stores the batches' blobs back to back, never re-encoding.
    whole = PointState()
    assert decode_points(b"".join(blobs), len(points), flags, whole, LIMITS) == points
    assert state_of(whole) == state_of(enc)
    assert b"".join(blobs) == encode_points(points, flags, PointState())


def test_point_defaults_and_empty_batch() -> None:
    state = PointState()
    assert encode_points([], HAS_PRESSURE, state) == b""
    assert decode_points(b"", 0, HAS_PRESSURE, state, LIMITS) == []
    assert state.count == 0


# --- hostile blobs ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(flagged_points(min_size=0, max_size=6), st.binary(max_size=200), st.integers(-3, 120),
       st.sampled_from(ALL_FLAGS))
def test_arbitrary_blob_gives_points_or_protocol_error(
    prefix: tuple[int, list[Point]], blob: bytes, count: int, flags: int
) -> None:
    prior_flags, prior = prefix
    state = PointState()
    encode_points(prior, prior_flags, state)  # a stroke already under way (flags may even differ)
    before = state_of(state)
    try:
        points = decode_points(blob, count, flags, state, LIMITS)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_FRAME, ErrorCode.OUT_OF_RANGE)
        assert state_of(state) == before, "a refused blob changed the stroke's state"
        return
    assert len(points) == max(count, 0)
    for p in points:
        assert 0 <= p.x <= LIMITS.max_coordinate and 0 <= p.y <= LIMITS.max_coordinate
        assert 0 <= p.t <= MAX_TIME_OFFSET_MS
        assert 0 <= p.pressure <= (PRESSURE_MAX if flags & HAS_PRESSURE else 0)
        assert -TILT_MAX <= p.tilt_x <= TILT_MAX and -TILT_MAX <= p.tilt_y <= TILT_MAX
        if not flags & HAS_TILT:
            assert p.tilt_x == p.tilt_y == 0
    # what was accepted re-encodes to points that decode the same, and leaves the same state
    replay = PointState()
    encode_points(prior, prior_flags, replay)
    again = encode_points(points, flags, replay)
    check = PointState()
    encode_points(prior, prior_flags, check)
    assert decode_points(again, len(points), flags, check, LIMITS) == points
    assert state_of(check) == state_of(state) == state_of(replay)


@settings(max_examples=400, deadline=None)
@given(flagged_points(min_size=0, max_size=6), st.one_of(st.binary(max_size=120), flagged_points().map(
    lambda fp: encode_points(fp[1], fp[0], PointState()))), st.integers(-3, 60), st.sampled_from(ALL_FLAGS),
    st.integers(1, 70_000))
def test_validate_points_agrees_with_decode_points(
    prefix: tuple[int, list[Point]], blob: bytes, count: int, flags: int, max_coordinate: int
) -> None:
    """The server's validate-only fast path accepts, refuses and advances exactly as the decoder."""
    limits = Limits(max_coordinate=max_coordinate)
    prior_flags, prior = prefix
    a, b = PointState(), PointState()
    encode_points(prior, prior_flags, a)
    encode_points(prior, prior_flags, b)
    outcome: list[object] = []
    for run in (lambda: decode_points(blob, count, flags, a, limits),
                lambda: validate_points(blob, count, flags, b, limits)):
        try:
            run()
            outcome.append(None)
        except ProtocolError as exc:
            outcome.append((exc.code, exc.message))
    assert outcome[0] == outcome[1]
    assert state_of(a) == state_of(b)


def refused(blob: bytes, count: int, flags: int = HAS_PRESSURE, limits: Limits = LIMITS,
            state: PointState | None = None) -> ProtocolError:
    state = state if state is not None else PointState()
    before = state_of(state)
    with pytest.raises(ProtocolError) as info:
        decode_points(blob, count, flags, state, limits)
    assert state_of(state) == before
    return info.value


def test_coordinate_above_max_is_out_of_range() -> None:
    small = Limits(max_coordinate=1000)
    ok = encode_points([Point(1000, 0), Point(0, 1000)], 0, PointState())
    assert decode_points(ok, 2, 0, PointState(), small) == [Point(1000, 0), Point(0, 1000)]
    assert refused(encode_points([Point(1001, 5)], 0, PointState()), 1, 0, small).code is ErrorCode.OUT_OF_RANGE
    blob = encode_points([Point(10, 10), Point(10, 1001)], 0, PointState())
    assert refused(blob, 2, 0, small).code is ErrorCode.OUT_OF_RANGE


def test_negative_coordinate_is_out_of_range() -> None:
    blob = encode_points([Point(-1, 0)], 0, PointState())
    assert refused(blob, 1, 0).code is ErrorCode.OUT_OF_RANGE


def test_time_going_backwards_is_out_of_range() -> None:
    blob = encode_points([Point(0, 0, t=10), Point(1, 1, t=9)], 0, PointState())
    assert refused(blob, 2, 0).code is ErrorCode.OUT_OF_RANGE
    # across batches too: the state remembers the last time
    state = PointState()
    enc = PointState()
    decode_points(encode_points([Point(0, 0, t=50)], 0, enc), 1, 0, state, LIMITS)
    assert refused(encode_points([Point(0, 0, t=49)], 0, enc), 1, 0, state=state).code is ErrorCode.OUT_OF_RANGE
    # and the first point may not start before 0
    assert refused(encode_points([Point(0, 0, t=-1)], 0, PointState()), 1, 0).code is ErrorCode.OUT_OF_RANGE


def test_pressure_without_the_pressure_flag_is_out_of_range() -> None:
    blob = encode_points([Point(5, 5, t=0, pressure=300)], HAS_PRESSURE, PointState())
    assert decode_points(blob, 1, HAS_PRESSURE, PointState(), LIMITS) == [Point(5, 5, 0, 300)]
    assert refused(blob, 1, flags=0).code is ErrorCode.OUT_OF_RANGE


def test_pressure_and_tilt_out_of_range() -> None:
    over = encode_points([Point(5, 5, pressure=PRESSURE_MAX + 1)], HAS_PRESSURE, PointState())
    assert refused(over, 1).code is ErrorCode.OUT_OF_RANGE
    tilted = encode_points([Point(5, 5, tilt_x=TILT_MAX + 1)], HAS_TILT, PointState())
    assert refused(tilted, 1, HAS_TILT).code is ErrorCode.OUT_OF_RANGE


def test_truncated_blob_is_bad_frame() -> None:
    points = [Point(100 * i, 50 * i, 4 * i, 700 + i) for i in range(5)]
    blob = encode_points(points, HAS_PRESSURE, PointState())
    for cut in range(len(blob)):
        assert refused(blob[:cut], 5).code is ErrorCode.BAD_FRAME


def test_trailing_bytes_are_bad_frame() -> None:
    points = [Point(100 * i, 50 * i, 4 * i, 700 + i) for i in range(5)]
    blob = encode_points(points, HAS_PRESSURE, PointState())
    assert refused(blob + b"\x00", 5).code is ErrorCode.BAD_FRAME
    assert refused(blob, 4).code is ErrorCode.BAD_FRAME  # fewer points claimed than sent


def test_over_long_varint_is_bad_frame() -> None:
    # x as six bytes of varint: five continuation bytes then a terminator, then a valid rest
    exc = refused(b"\x80\x80\x80\x80\x80\x00" + b"\x00\x00", 1)
    assert exc.code is ErrorCode.BAD_FRAME
    assert "varint" in exc.message
    # a five-byte varint is still fine (the value 0 written long)
    assert decode_points(b"\x80\x80\x80\x80\x00" + b"\x00\x00", 1, 0, PointState(), LIMITS) == [Point(0, 0)]


def test_pair_byte_above_escape_is_bad_frame() -> None:
    for byte in (0x81, 0xC0, 0xFF):
        exc = refused(bytes([0, 0, byte]), 1)
        assert exc.code is ErrorCode.BAD_FRAME
        assert "pair" in exc.message
    # 0x80 is the escape: both values follow as varints
    assert decode_points(b"\x00\x00\x80\x08\x02", 1, HAS_PRESSURE, PointState(), LIMITS) == [Point(0, 0, 4, 1)]


# --- size -------------------------------------------------------------------------------------


def smooth_handwriting(n: int, seed: int, tilt: bool) -> list[Point]:
    """A pen moving at a steady-ish speed, sampled at 240 Hz: small random acceleration, pressure
    (and tilt) drifting slowly."""
    rng = random.Random(seed)
    x, y = rng.uniform(10_000, 50_000), rng.uniform(10_000, 50_000)
    vx, vy = rng.uniform(-40, 40), rng.uniform(-40, 40)
    p, tx, ty = rng.uniform(500, 3000), rng.randint(-40, 40), rng.randint(-40, 40)
    points = []
    for i in range(n):
        vx = max(-60.0, min(60.0, vx + rng.uniform(-3, 3)))
        vy = max(-60.0, min(60.0, vy + rng.uniform(-3, 3)))
        x, y = min(max(x + vx, 0), 65_535), min(max(y + vy, 0), 65_535)
        p = min(max(p + rng.uniform(-5, 5), 1), PRESSURE_MAX)
        if tilt and i % 8 == 0:
            tx = max(-TILT_MAX, min(TILT_MAX, tx + rng.choice((-1, 0, 1))))
            ty = max(-TILT_MAX, min(TILT_MAX, ty + rng.choice((-2, -1, 0, 1, 2))))
        points.append(Point(int(x), int(y), int(i * 1000 / 240), int(p), tx if tilt else 0, ty if tilt else 0))
    return points


@pytest.mark.parametrize("tilt", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_smooth_handwriting_costs_three_bytes_a_point(seed: int, tilt: bool) -> None:
    n = 400
    flags = HAS_PRESSURE | (HAS_TILT if tilt else 0)
    budget = 4 if tilt else 3
    points = smooth_handwriting(n, seed, tilt)
    state = PointState()
    first = encode_points(points[:1], flags, state)
    second = encode_points(points[1:2], flags, state)
    rest = encode_points(points[2:], flags, state)
    # From the third point on the second-order predictor has a velocity to go on: the budget holds.
    assert len(rest) / (n - 2) <= budget
    # The second point is predicted as the first, so its 4 ms time step (zigzag 8) does not fit
    # the 3-bit field of the pair byte and is escaped: a constant 2 bytes over, once per stroke.
    assert len(second) <= budget + 2
    assert (len(second) + len(rest)) / (n - 1) <= budget + 2 / (n - 1)
    assert decode_points(first + second + rest, n, flags, PointState(), LIMITS) == points
