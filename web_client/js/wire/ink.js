// Delta-coded ink points (docs/protocol.md section 5), a port of wire/ink.py.
//
// x, y and t use a second-order predictor (2*prev - prevprev; the first point is predicted as 0,
// the second as the first), pressure and tilt a first-order one. Residuals are zigzag-mapped and
// written as LEB128 varints (x, y) or pair bytes ((a << 5) | b when a < 4 and b < 32, else 0x80
// and two varints). Zigzag values can exceed 2^31 (a time residual near 2^31 doubles), so all
// arithmetic here is on Numbers, never 32-bit bitwise operators.

import { ErrorCode, ProtocolError } from './errors.js';

export const HAS_PRESSURE = 1;
export const HAS_TILT = 2;
export const CHANNEL_FLAGS = HAS_PRESSURE | HAS_TILT;
export const PRESSURE_MAX = 4095;
export const TILT_MAX = 90;
export const MAX_TIME_OFFSET_MS = 2 ** 31 - 1;
const PAIR_ESCAPE = 0x80;
const MAX_VARINT_BYTES = 5;

/** Predictor state of one stroke: the last two points. One per stroke and side. */
export class PointState {
  constructor() {
    this.count = 0;
    this.x1 = 0; this.y1 = 0; this.t1 = 0;
    this.x2 = 0; this.y2 = 0; this.t2 = 0;
    this.p1 = 0; this.tx1 = 0; this.ty1 = 0;
  }

  copy() {
    return Object.assign(new PointState(), this);
  }

  predict() {
    if (this.count >= 2) return [2 * this.x1 - this.x2, 2 * this.y1 - this.y2, 2 * this.t1 - this.t2];
    return [this.x1, this.y1, this.t1]; // zeros before the first point
  }

  push(x, y, t, p, tx, ty) {
    this.x2 = this.x1; this.y2 = this.y1; this.t2 = this.t1;
    this.x1 = x; this.y1 = y; this.t1 = t;
    this.p1 = p; this.tx1 = tx; this.ty1 = ty;
    this.count += 1;
  }
}

export function zigzag(v) {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

export function unzigzag(u) {
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}

/** A growable byte buffer. */
class ByteWriter {
  constructor(size = 64) {
    this.bytes = new Uint8Array(size);
    this.length = 0;
  }

  push(b) {
    if (this.length === this.bytes.length) {
      const bigger = new Uint8Array(this.bytes.length * 2);
      bigger.set(this.bytes);
      this.bytes = bigger;
    }
    this.bytes[this.length++] = b;
  }

  varint(u) {
    while (u >= 0x80) {
      this.push((u % 128) + 0x80);
      u = Math.floor(u / 128);
    }
    this.push(u);
  }

  pair(a, b) {
    if (a < 4 && b < 32) {
      this.push(a * 32 + b);
    } else {
      this.push(PAIR_ESCAPE);
      this.varint(a);
      this.varint(b);
    }
  }

  result() {
    return this.bytes.slice(0, this.length);
  }
}

/**
 * Encode `points` after the points already in `state` (which is advanced). The caller
 * guarantees the values are in range; the decoder is the side that checks.
 */
export function encodePoints(points, flags, state) {
  const out = new ByteWriter(points.length * 4 + 16);
  const hasP = (flags & HAS_PRESSURE) !== 0;
  const hasTilt = (flags & HAS_TILT) !== 0;
  for (const pt of points) {
    const [px, py, ptp] = state.predict();
    out.varint(zigzag(pt.x - px));
    out.varint(zigzag(pt.y - py));
    const p = hasP ? pt.pressure : 0;
    out.pair(zigzag(pt.t - ptp), zigzag(p - state.p1));
    const tx = hasTilt ? pt.tiltX : 0;
    const ty = hasTilt ? pt.tiltY : 0;
    if (hasTilt) out.pair(zigzag(tx - state.tx1), zigzag(ty - state.ty1));
    state.push(pt.x, pt.y, pt.t, p, tx, ty);
  }
  return out.result();
}

class Reader {
  constructor(data) {
    this.data = data;
    this.pos = 0;
  }

  varint() {
    const data = this.data;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= data.length) throw new ProtocolError(ErrorCode.BAD_FRAME, 'points blob ends inside a value');
      const byte = data[this.pos++];
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 128;
    }
    throw new ProtocolError(ErrorCode.BAD_FRAME, 'points blob has a varint longer than 5 bytes');
  }

  pair() {
    if (this.pos >= this.data.length) throw new ProtocolError(ErrorCode.BAD_FRAME, 'points blob ends inside a point');
    const byte = this.data[this.pos++];
    if (byte === PAIR_ESCAPE) {
      const a = this.varint();
      return [a, this.varint()];
    }
    if (byte > PAIR_ESCAPE) {
      throw new ProtocolError(ErrorCode.BAD_FRAME, `points blob has an invalid pair byte 0x${byte.toString(16)}`);
    }
    return [byte >> 5, byte & 0x1f];
  }
}

/**
 * Decode exactly `count` points from `blob` following `state`. Checks every value
 * (`maxCoordinate` defaults to the protocol's 65535); on any error throws `ProtocolError` and
 * leaves `state` untouched, so a refused batch does not corrupt the stroke.
 */
export function decodePoints(blob, count, flags, state, { maxCoordinate = 65_535 } = {}) {
  const work = state.copy();
  const reader = new Reader(blob);
  const hasP = (flags & HAS_PRESSURE) !== 0;
  const hasTilt = (flags & HAS_TILT) !== 0;
  const points = [];
  for (let i = 0; i < count; i++) {
    const [px, py, ptp] = work.predict();
    const x = px + unzigzag(reader.varint());
    const y = py + unzigzag(reader.varint());
    const [zt, zp] = reader.pair();
    const t = ptp + unzigzag(zt);
    const p = work.p1 + unzigzag(zp);
    let tx = 0;
    let ty = 0;
    if (hasTilt) {
      const [ztx, zty] = reader.pair();
      tx = work.tx1 + unzigzag(ztx);
      ty = work.ty1 + unzigzag(zty);
    }
    if (!(x >= 0 && x <= maxCoordinate && y >= 0 && y <= maxCoordinate)) {
      throw new ProtocolError(ErrorCode.OUT_OF_RANGE, `point (${x}, ${y}) is outside the page range 0..${maxCoordinate}`);
    }
    if (p < 0 || p > PRESSURE_MAX || (p !== 0 && !hasP)) {
      throw new ProtocolError(ErrorCode.OUT_OF_RANGE, `pressure ${p} is outside 0..${PRESSURE_MAX}`);
    }
    if (tx < -TILT_MAX || tx > TILT_MAX || ty < -TILT_MAX || ty > TILT_MAX) {
      throw new ProtocolError(ErrorCode.OUT_OF_RANGE, `tilt (${tx}, ${ty}) is outside ±${TILT_MAX}`);
    }
    if (t < (work.count ? work.t1 : 0) || t > MAX_TIME_OFFSET_MS) {
      throw new ProtocolError(ErrorCode.OUT_OF_RANGE, `point time ${t} ms goes backwards or past 2^31-1`);
    }
    work.push(x, y, t, p, tx, ty);
    points.push({ x, y, t, pressure: p, tiltX: tx, tiltY: ty });
  }
  if (reader.pos !== blob.length) {
    throw new ProtocolError(ErrorCode.BAD_FRAME, `points blob has ${blob.length - reader.pos} bytes after ${count} points`);
  }
  Object.assign(state, work);
  return points;
}
