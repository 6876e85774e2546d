"""Compact, delta-coded ink points.

A stroke's points travel as a byte string (a *points blob*). Each point is predicted from the
points before it in the same stroke, and only the residual is written:

* ``x``, ``y`` and ``t`` use a second-order (constant velocity) predictor,
  ``pred = 2*prev - prevprev``; the first point is predicted as 0 and the second as the first.
* ``pressure`` and the two tilt angles use a first-order predictor, ``pred = prev``.

Residuals are zigzag-mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...). ``x`` and ``y`` are written
as unsigned LEB128 varints. ``t`` and ``pressure`` share one *pair byte*, and so do the two tilt
angles: when the first zigzag value is below 4 and the second below 32 the pair fits in one byte
``(a << 5) | b`` (always < 0x80); otherwise the byte 0x80 is written, followed by both values as
varints. On smooth handwriting sampled at a steady rate a point costs 3 bytes, 4 with tilt.

Because the predictor only looks at earlier points, the blobs of consecutive batches of a stroke
concatenate into the blob of the whole stroke: the server stores ink without re-encoding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorCode, ProtocolError
from .limits import PRESSURE_MAX, TILT_MAX, Limits

HAS_PRESSURE = 1
HAS_TILT = 2
CHANNEL_FLAGS = HAS_PRESSURE | HAS_TILT
MAX_TIME_OFFSET_MS = 2**31 - 1
_PAIR_ESCAPE = 0x80
_MAX_VARINT_BYTES = 5


@dataclass(frozen=True, slots=True)
class Point:
    """One pen sample: integer page coordinates, pressure 0..4095, tilt in degrees, and the
    time in milliseconds since the stroke's device start time."""

    x: int
    y: int
    t: int = 0
    pressure: int = 0
    tilt_x: int = 0
    tilt_y: int = 0


class PointState:
    """Predictor state of one stroke: the last two points. Mutable; one per stroke and side."""

    __slots__ = ("count", "p1", "t1", "t2", "tx1", "ty1", "x1", "x2", "y1", "y2")

    def __init__(self) -> None:
        self.count = 0
        self.x1 = self.y1 = self.t1 = 0
        self.x2 = self.y2 = self.t2 = 0
        self.p1 = self.tx1 = self.ty1 = 0

    def copy(self) -> PointState:
        other = PointState()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def _predict(self) -> tuple[int, int, int]:
        if self.count >= 2:
            return 2 * self.x1 - self.x2, 2 * self.y1 - self.y2, 2 * self.t1 - self.t2
        return self.x1, self.y1, self.t1  # zeros before the first point

    def _push(self, x: int, y: int, t: int, p: int, tx: int, ty: int) -> None:
        self.x2, self.y2, self.t2 = self.x1, self.y1, self.t1
        self.x1, self.y1, self.t1 = x, y, t
        self.p1, self.tx1, self.ty1 = p, tx, ty
        self.count += 1


def _zigzag(v: int) -> int:
    return (v << 1) if v >= 0 else ((-v << 1) - 1)


def _unzigzag(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def _put_varint(out: bytearray, u: int) -> None:
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)


def _put_pair(out: bytearray, a: int, b: int) -> None:
    if a < 4 and b < 32:
        out.append((a << 5) | b)
    else:
        out.append(_PAIR_ESCAPE)
        _put_varint(out, a)
        _put_varint(out, b)


def encode_points(points: list[Point] | tuple[Point, ...], flags: int, state: PointState) -> bytes:
    """Encode ``points`` after the points already in ``state`` (which is advanced).

    The caller guarantees the values are in range; the decoder is the side that checks.
    """
    out = bytearray()
    has_p = flags & HAS_PRESSURE
    has_tilt = flags & HAS_TILT
    for pt in points:
        px, py, pt_ = state._predict()
        _put_varint(out, _zigzag(pt.x - px))
        _put_varint(out, _zigzag(pt.y - py))
        p = pt.pressure if has_p else 0
        _put_pair(out, _zigzag(pt.t - pt_), _zigzag(p - state.p1))
        tx, ty = (pt.tilt_x, pt.tilt_y) if has_tilt else (0, 0)
        if has_tilt:
            _put_pair(out, _zigzag(tx - state.tx1), _zigzag(ty - state.ty1))
        state._push(pt.x, pt.y, pt.t, p, tx, ty)
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        data, pos = self.data, self.pos
        shift = result = 0
        for _ in range(_MAX_VARINT_BYTES):
            if pos >= len(data):
                raise ProtocolError(ErrorCode.BAD_FRAME, "points blob ends inside a value")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return result
            shift += 7
        raise ProtocolError(ErrorCode.BAD_FRAME, "points blob has a varint longer than 5 bytes")

    def pair(self) -> tuple[int, int]:
        if self.pos >= len(self.data):
            raise ProtocolError(ErrorCode.BAD_FRAME, "points blob ends inside a point")
        byte = self.data[self.pos]
        self.pos += 1
        if byte == _PAIR_ESCAPE:
            return self.varint(), self.varint()
        if byte > _PAIR_ESCAPE:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"points blob has an invalid pair byte {byte:#x}")
        return byte >> 5, byte & 0x1F


def decode_points(
    blob: bytes, count: int, flags: int, state: PointState, limits: Limits
) -> list[Point]:
    """Decode exactly ``count`` points from ``blob`` following ``state``.

    Checks every value against ``limits``; on any error raises ``ProtocolError`` and leaves
    ``state`` untouched, so a refused batch does not corrupt the stroke.
    """
    work = state.copy()
    reader = _Reader(blob)
    has_p = flags & HAS_PRESSURE
    has_tilt = flags & HAS_TILT
    max_c = limits.max_coordinate
    points: list[Point] = []
    for _ in range(count):
        px, py, ptp = work._predict()
        x = px + _unzigzag(reader.varint())
        y = py + _unzigzag(reader.varint())
        zt, zp = reader.pair()
        t = ptp + _unzigzag(zt)
        p = work.p1 + _unzigzag(zp)
        tx = ty = 0
        if has_tilt:
            ztx, zty = reader.pair()
            tx = work.tx1 + _unzigzag(ztx)
            ty = work.ty1 + _unzigzag(zty)
        if not (0 <= x <= max_c and 0 <= y <= max_c):
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE, f"point ({x}, {y}) is outside the page range 0..{max_c}"
            )
        if not 0 <= p <= PRESSURE_MAX or (p and not has_p):
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"pressure {p} is outside 0..{PRESSURE_MAX}")
        if not (-TILT_MAX <= tx <= TILT_MAX and -TILT_MAX <= ty <= TILT_MAX):
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"tilt ({tx}, {ty}) is outside ±{TILT_MAX}")
        if not (work.t1 if work.count else 0) <= t <= MAX_TIME_OFFSET_MS:
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE, f"point time {t} ms goes backwards or past 2^31-1"
            )
        work._push(x, y, t, p, tx, ty)
        points.append(Point(x, y, t, p, tx, ty))
    if reader.pos != len(blob):
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"points blob has {len(blob) - reader.pos} bytes after {count} points"
        )
    for name in PointState.__slots__:
        setattr(state, name, getattr(work, name))
    return points


def validate_points(blob: bytes, count: int, flags: int, state: PointState, limits: Limits) -> None:
    """What ``decode_points`` checks, without building points: the server's hot path.

    Accepts and refuses exactly the blobs ``decode_points`` does (a property test holds them
    to it) and advances ``state`` the same way, but keeps everything in local variables."""
    n = len(blob)
    if n == 3 * count and not flags & HAS_TILT and _three_byte_points(blob, count, flags, state, limits.max_coordinate):
        return
    pos = 0
    has_p = flags & HAS_PRESSURE
    has_tilt = flags & HAS_TILT
    max_c = limits.max_coordinate
    seen = state.count
    x1, y1, t1, x2, y2, t2 = state.x1, state.y1, state.t1, state.x2, state.y2, state.t2
    p1, tx1, ty1 = state.p1, state.tx1, state.ty1
    values = [0, 0, 0, 0, 0, 0]  # x, y, zt, zp, ztx, zty as read
    for _ in range(count):
        slots = 6 if has_tilt else 4
        i = 0
        while i < slots:
            if i == 2 or i == 4:  # a pair byte
                if pos >= n:
                    raise ProtocolError(ErrorCode.BAD_FRAME, "points blob ends inside a point")
                byte = blob[pos]
                pos += 1
                if byte < _PAIR_ESCAPE:
                    values[i] = byte >> 5
                    values[i + 1] = byte & 0x1F
                    i += 2
                    continue
                if byte > _PAIR_ESCAPE:
                    raise ProtocolError(ErrorCode.BAD_FRAME, f"points blob has an invalid pair byte {byte:#x}")
                for j in (i, i + 1):
                    values[j], pos = _varint_at(blob, pos, n)
                i += 2
                continue
            byte = blob[pos] if pos < n else -1
            if 0 <= byte < 0x80:  # the common one-byte varint
                values[i] = byte
                pos += 1
            else:
                values[i], pos = _varint_at(blob, pos, n)
            i += 1
        u = values[0]
        dx = (u >> 1) if not u & 1 else -((u + 1) >> 1)
        u = values[1]
        dy = (u >> 1) if not u & 1 else -((u + 1) >> 1)
        u = values[2]
        dt = (u >> 1) if not u & 1 else -((u + 1) >> 1)
        u = values[3]
        dp = (u >> 1) if not u & 1 else -((u + 1) >> 1)
        if seen >= 2:
            x, y, t = 2 * x1 - x2 + dx, 2 * y1 - y2 + dy, 2 * t1 - t2 + dt
        else:
            x, y, t = x1 + dx, y1 + dy, t1 + dt
        p = p1 + dp
        tx = ty = 0
        if has_tilt:
            u = values[4]
            tx = tx1 + ((u >> 1) if not u & 1 else -((u + 1) >> 1))
            u = values[5]
            ty = ty1 + ((u >> 1) if not u & 1 else -((u + 1) >> 1))
        if not (0 <= x <= max_c and 0 <= y <= max_c):
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"point ({x}, {y}) is outside the page range 0..{max_c}")
        if not 0 <= p <= PRESSURE_MAX or (p and not has_p):
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"pressure {p} is outside 0..{PRESSURE_MAX}")
        if not (-TILT_MAX <= tx <= TILT_MAX and -TILT_MAX <= ty <= TILT_MAX):
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"tilt ({tx}, {ty}) is outside ±{TILT_MAX}")
        if not (t1 if seen else 0) <= t <= MAX_TIME_OFFSET_MS:
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, f"point time {t} ms goes backwards or past 2^31-1")
        x2, y2, t2, x1, y1, t1 = x1, y1, t1, x, y, t
        p1, tx1, ty1 = p, tx, ty
        seen += 1
    if pos != n:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"points blob has {n - pos} bytes after {count} points")
    state.count = seen
    state.x1, state.y1, state.t1, state.x2, state.y2, state.t2 = x1, y1, t1, x2, y2, t2
    state.p1, state.tx1, state.ty1 = p1, tx1, ty1


def _three_byte_points(blob: bytes, count: int, flags: int, state: PointState, max_c: int) -> bool:
    """The common case of ``validate_points``, smooth handwriting without tilt: every point is
    three one-byte values (x, y, the t/pressure pair). Advances ``state`` and returns ``True``
    when every point is so and in range; returns ``False``, ``state`` untouched, otherwise (the
    general path then decides, and names the error)."""
    has_p = flags & HAS_PRESSURE
    seen = state.count
    x1, y1, t1, x2, y2, t2, p1 = state.x1, state.y1, state.t1, state.x2, state.y2, state.t2, state.p1
    pos = 0
    for _ in range(count):
        bx, by, bp = blob[pos], blob[pos + 1], blob[pos + 2]
        pos += 3
        if bx >= 0x80 or by >= 0x80 or bp >= 0x80:
            return False
        zt = bp >> 5
        zp = bp & 0x1F
        if seen >= 2:
            x = 2 * x1 - x2 + ((bx >> 1) ^ -(bx & 1))
            y = 2 * y1 - y2 + ((by >> 1) ^ -(by & 1))
            t = 2 * t1 - t2 + ((zt >> 1) ^ -(zt & 1))
        else:
            x = x1 + ((bx >> 1) ^ -(bx & 1))
            y = y1 + ((by >> 1) ^ -(by & 1))
            t = t1 + ((zt >> 1) ^ -(zt & 1))
        p = p1 + ((zp >> 1) ^ -(zp & 1))
        if (not (0 <= x <= max_c and 0 <= y <= max_c and 0 <= p <= PRESSURE_MAX) or (p and not has_p)
                or not (t1 if seen else 0) <= t <= MAX_TIME_OFFSET_MS):
            return False
        x2, y2, t2, x1, y1, t1, p1 = x1, y1, t1, x, y, t, p
        seen += 1
    state.count = seen
    state.x1, state.y1, state.t1, state.x2, state.y2, state.t2 = x1, y1, t1, x2, y2, t2
    state.p1 = p1
    if count:  # the points had no tilt: its predictor state is 0, as the general path leaves it
        state.tx1 = state.ty1 = 0
    return True


def _varint_at(data: bytes, pos: int, n: int) -> tuple[int, int]:
    shift = result = 0
    for _ in range(_MAX_VARINT_BYTES):
        if pos >= n:
            raise ProtocolError(ErrorCode.BAD_FRAME, "points blob ends inside a value")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ProtocolError(ErrorCode.BAD_FRAME, "points blob has a varint longer than 5 bytes")
