// The tutorwire wire protocol, version 1 (docs/protocol.md), for the browser.
//
// Every frame is one msgpack array `[type, field, ...]`. `decodeFrame(bytes)` turns a frame into a
// plain message object `{type: 'StrokeBegin', cseq, stroke, ...}` (field names are the Python
// dataclass fields in camelCase, in the same order) or throws `ProtocolError` with the documented
// code; `encodeMessage(msg)` is its inverse and writes the same bytes as the Python encoder
// (smallest integer encodings, `Uint8Array` as bin, strings as str). Trailing fields a decoder
// does not know are ignored (section 1.3). Ops inside an `Event` body decode with `cseq: 0`, as in
// Python. JavaScript cannot tell a msgpack float 2.0 from the integer 2 once decoded, so unlike the
// server this decoder accepts integral floats; it only ever reads the server's frames.

import { Decoder, Encoder } from '../vendor/msgpack/index.mjs';

export const PROTOCOL_VERSION = 1;
export const U32 = 2 ** 32 - 1;
export const U53 = Number.MAX_SAFE_INTEGER; // 2^53 - 1
export const MAX_PAGE_ID = 65_535;
export const MAX_WIDTH = 65_535;
export const MIN_BYTES_PER_POINT = 3;
export const MAX_BYTES_PER_POINT = 5 + 5 + 11 + 11;

export const MsgType = Object.freeze({
  Join: 1, Welcome: 2, Snapshot: 3, Event: 4,
  StrokeBegin: 10, StrokePoints: 11, StrokeEnd: 12, PageAdd: 13, PageSwitch: 14, Undo: 15, Clear: 16,
  Presence: 17, Mute: 18,
  Ping: 20, Pong: 21, Ack: 22, Error: 23,
  Audio: 30, AudioRelay: 31,
  RtcOffer: 40, RtcAnswer: 41, RtcCandidate: 42, RtcClose: 43,
});
const TYPE_NAMES = new Map(Object.entries(MsgType).map(([name, n]) => [n, name]));

export const Seat = Object.freeze({ TUTOR: 0, STUDENT: 1 });
export const SEATS = [Seat.TUTOR, Seat.STUDENT];
export const Tool = Object.freeze({ PEN: 0, HIGHLIGHTER: 1, ERASER: 2 });
export const CatchUp = Object.freeze({ REPLAY: 0, SNAPSHOT: 1 });
export const HAS_PRESSURE = 1;
export const HAS_TILT = 2;
export const CHANNEL_FLAGS = HAS_PRESSURE | HAS_TILT;

export const ErrorCode = Object.freeze({
  BAD_FRAME: 1001, UNKNOWN_TYPE: 1002, FRAME_TOO_LARGE: 1003, TOO_MANY_POINTS: 1004, OUT_OF_RANGE: 1005,
  INVALID_FIELD: 1006, RATE_LIMITED: 1007, UNKNOWN_STROKE: 1008, PAGE_LIMIT: 1009, DUPLICATE_STROKE: 1010,
  UNKNOWN_PAGE: 1011, STROKE_LIMIT: 1012, NOT_JOINED: 1013, ALREADY_JOINED: 1014, STROKE_GAP: 1015,
  BAD_SDP: 1016, TOO_MANY_CANDIDATES: 1017, BAD_CANDIDATE: 1018, RTC_FAILED: 1019,
  AUTH_FAILED: 2001, TOKEN_EXPIRED: 2002, WRONG_SESSION: 2003, WRONG_SEAT: 2004, UNSUPPORTED_VERSION: 2005,
  JOIN_TIMEOUT: 2006, REPLACED: 3001, TOO_MANY_ERRORS: 3003,
});

export const CloseCode = Object.freeze({
  NORMAL: 1000, PROTOCOL_VIOLATION: 4000, AUTH_FAILED: 4001, TOKEN_EXPIRED: 4002, FORBIDDEN: 4003,
  UNSUPPORTED_VERSION: 4004, JOIN_TIMEOUT: 4005, RATE_LIMITED: 4008, REPLACED: 4009, SLOW_CONSUMER: 4010,
  FRAME_TOO_LARGE: 4011,
});

/** A frame (or points blob) refused, with the protocol's error code (section 7). */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

// Ops (types 10-16, 18): their fields after cseq, in wire order.
const OP_FIELDS = {
  StrokeBegin: ['stroke', 'page', 'tool', 'color', 'width', 'flags', 'deviceT0'],
  StrokePoints: ['stroke', 'start', 'count', 'blob'],
  StrokeEnd: ['stroke'],
  PageAdd: ['page'],
  PageSwitch: ['page'],
  Undo: ['stroke'],
  Clear: ['page'],
  Mute: ['muted'],
};
export const OP_TYPES = new Set(Object.keys(OP_FIELDS));

const SNAPSHOT_STROKE_FIELDS = ['seat', 'stroke', 'tool', 'color', 'width', 'flags', 'deviceT0', 'count', 'blob',
  'ended'];

const encoder = new Encoder();
const decoder = new Decoder();

// --- encoding ------------------------------------------------------------------------------------

function opFields(msg) {
  return OP_FIELDS[msg.type].map((name) => msg[name]);
}

/** The array an `Event` carries for `body` (an op without its cseq, or a presence). */
export function eventBody(body) {
  if (body.type === 'Presence') return [MsgType.Presence, body.userId, body.online];
  return [MsgType[body.type], ...opFields(body)];
}

/** The msgpack array for `msg`. */
export function toWire(msg) {
  const t = MsgType[msg.type];
  if (OP_TYPES.has(msg.type)) return [t, msg.cseq, ...opFields(msg)];
  switch (msg.type) {
    case 'Join': return [t, msg.version, msg.token, msg.seat, msg.lastSeq, msg.epoch];
    case 'Welcome':
      return [t, msg.version, msg.seat, msg.userId, msg.sessionId, msg.sessionMs, msg.lastSeq, msg.ackedCseq,
        msg.mode, msg.pageCount, [...msg.currentPages], [...msg.online], msg.epoch, msg.ratePerS, msg.rateBurst,
        [...msg.muted]];
    case 'Snapshot':
      return [t, msg.seq, msg.page, msg.strokes.map((s) => SNAPSHOT_STROKE_FIELDS.map((name) => s[name]))];
    case 'Event': return [t, msg.seq, msg.sessionMs, msg.seat, msg.cseq, eventBody(msg.body)];
    case 'Ping': return [t, msg.ts];
    case 'Pong': return [t, msg.echo, msg.ts];
    case 'Ack': return [t, msg.cseq, msg.seq];
    case 'Error': return [t, msg.code, msg.message, msg.ref];
    case 'Audio': return [t, msg.seq, msg.captureTs, msg.payload];
    case 'AudioRelay': return [t, msg.seat, msg.seq, msg.captureTs, msg.sessionMs, msg.payload];
    case 'RtcOffer': return [t, msg.sdp];
    case 'RtcAnswer': return [t, msg.sdp];
    case 'RtcCandidate': return [t, msg.candidate, msg.sdpMid, msg.sdpMlineIndex];
    case 'RtcClose': return [t];
    default: throw new TypeError(`not a protocol message: ${JSON.stringify(msg)}`);
  }
}

/** One frame (a `Uint8Array`) for `msg`. */
export function encodeMessage(msg) {
  return encoder.encode(toWire(msg));
}

// --- decoding ------------------------------------------------------------------------------------

const utf8 = new TextEncoder();

function isBinary(v) {
  return v instanceof Uint8Array;
}

/** Reads the fields of one array in order, refusing wrong types and ranges (codec.py `_Fields`). */
class Fields {
  constructor(items, what, pos = 1) {
    this.items = items;
    this.pos = pos;
    this.what = what;
  }

  next(name) {
    if (this.pos >= this.items.length) {
      throw new ProtocolError(ErrorCode.BAD_FRAME, `${this.what} is missing field '${name}'`);
    }
    return this.items[this.pos++];
  }

  integer(name, lo, hi, code = ErrorCode.INVALID_FIELD) {
    const v = this.next(name);
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be an integer`);
    }
    if (v < lo || v > hi) throw new ProtocolError(code, `${this.what}.${name} = ${v} is outside ${lo}..${hi}`);
    return v;
  }

  text(name, maxBytes = Infinity) {
    const v = this.next(name);
    if (typeof v !== 'string') throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be a string`);
    if (maxBytes !== Infinity && utf8.encode(v).length > maxBytes) {
      throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} is longer than ${maxBytes}`);
    }
    return v;
  }

  binary(name) {
    const v = this.next(name);
    if (!isBinary(v)) throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be binary`);
    return v;
  }

  flag(name) {
    const v = this.next(name);
    if (typeof v !== 'boolean') throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be a boolean`);
    return v;
  }

  array(name) {
    const v = this.next(name);
    if (!Array.isArray(v)) throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be an array`);
    return v;
  }

  seat() { return this.integer('seat', 0, 1); }

  tool() { return this.integer('tool', 0, 2); }
}

/**
 * Limits the decoder checks. The defaults are the client's (as `_CLIENT_LIMITS` of client.py):
 * frames from the server are not bounded, snapshot strokes may be long.
 */
export const CLIENT_LIMITS = Object.freeze({
  maxPointsPerMessage: 2 ** 31,
  maxPointsPerStroke: 2 ** 31,
  maxStringBytes: 1 << 16,
  maxTokenBytes: 4096,
  maxSdpBytes: 1 << 20,
  maxCoordinate: 65_535,
});

function decodeOp(type, f, cseq, limits) {
  switch (type) {
    case 'StrokeBegin':
      return {
        type, cseq, stroke: f.integer('stroke', 0, U32), page: f.integer('page', 0, MAX_PAGE_ID), tool: f.tool(),
        color: f.integer('color', 0, U32), width: f.integer('width', 1, MAX_WIDTH),
        flags: f.integer('flags', 0, CHANNEL_FLAGS), deviceT0: f.integer('device_t0', 0, U53),
      };
    case 'StrokePoints': {
      const stroke = f.integer('stroke', 0, U32);
      const start = f.integer('start', 0, U32);
      const count = f.integer('count', 1, U32);
      if (count > limits.maxPointsPerMessage) {
        throw new ProtocolError(ErrorCode.TOO_MANY_POINTS, `${count} points exceed ${limits.maxPointsPerMessage} a message`);
      }
      const blob = f.binary('blob');
      if (blob.length < count * MIN_BYTES_PER_POINT || blob.length > count * MAX_BYTES_PER_POINT) {
        throw new ProtocolError(ErrorCode.BAD_FRAME, `${blob.length} bytes cannot hold ${count} points`);
      }
      return { type, cseq, stroke, start, count, blob };
    }
    case 'StrokeEnd': return { type, cseq, stroke: f.integer('stroke', 0, U32) };
    case 'Undo': return { type, cseq, stroke: f.integer('stroke', 0, U32) };
    case 'Mute': return { type, cseq, muted: f.flag('muted') };
    default: return { type, cseq, page: f.integer('page', 0, MAX_PAGE_ID) }; // PageAdd, PageSwitch, Clear
  }
}

function typed(items, what) {
  if (!Array.isArray(items) || items.length === 0 || typeof items[0] !== 'number' || !Number.isInteger(items[0])) {
    throw new ProtocolError(ErrorCode.BAD_FRAME, `${what} must be a msgpack array starting with a type`);
  }
  const type = TYPE_NAMES.get(items[0]);
  if (type === undefined) throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `unknown ${what} type ${items[0]}`);
  return [type, new Fields(items, type)];
}

function decodeEventBody(items, limits) {
  const [type, f] = typed(items, 'event body');
  if (type === 'Presence') return { type, userId: f.text('user_id', limits.maxStringBytes), online: f.flag('online') };
  if (!OP_TYPES.has(type)) throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `${type} cannot be an event body`);
  return decodeOp(type, f, 0, limits);
}

function decodeSnapshotStrokes(items, limits) {
  return items.map((item) => {
    if (!Array.isArray(item)) throw new ProtocolError(ErrorCode.BAD_FRAME, 'snapshot stroke must be an array');
    const f = new Fields(item, 'snapshot stroke', 0);
    return {
      seat: f.seat(), stroke: f.integer('stroke', 0, U32), tool: f.tool(), color: f.integer('color', 0, U32),
      width: f.integer('width', 1, MAX_WIDTH), flags: f.integer('flags', 0, CHANNEL_FLAGS),
      deviceT0: f.integer('device_t0', 0, U53), count: f.integer('count', 0, limits.maxPointsPerStroke),
      blob: f.binary('blob'), ended: f.flag('ended'),
    };
  });
}

function seatPair(f, name, check) {
  const v = f.array(name);
  if (v.length !== SEATS.length || !v.every(check)) {
    throw new ProtocolError(ErrorCode.INVALID_FIELD, `welcome.${name} must hold one entry per seat`);
  }
  return v;
}

// Opus packet check (sessionserver/protocol/opus.py): TOC byte and frame count only.
const FRAME_SAMPLES = [
  ...[480, 960, 1920, 2880], ...[480, 960, 1920, 2880], ...[480, 960, 1920, 2880],
  ...[480, 960], ...[480, 960],
  ...[120, 240, 480, 960], ...[120, 240, 480, 960], ...[120, 240, 480, 960], ...[120, 240, 480, 960],
];

/** 48 kHz samples in an Opus packet; `ProtocolError` (1006) when it is not well formed. */
export function opusPacketSamples(packet) {
  if (packet.length === 0) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet cannot be empty');
  if (packet.length > 3825) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet is at most 3825 bytes');
  const toc = packet[0];
  const code = toc & 3;
  let frames = 1;
  if (code === 1 || code === 2) {
    frames = 2;
    if (packet.length < 2) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet of two frames is truncated');
  } else if (code === 3) {
    if (packet.length < 2) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus code 3 packet is missing its frame count');
    frames = packet[1] & 0x3f;
    if (frames === 0) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus code 3 packet must hold a frame');
  }
  const samples = frames * FRAME_SAMPLES[toc >> 3];
  if (samples > 5760) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet may hold at most 120 ms');
  return samples;
}

function opus(payload) {
  opusPacketSamples(payload);
  return payload;
}

function decodeMessage(type, f, limits) {
  if (OP_TYPES.has(type)) {
    const cseq = f.integer('cseq', 1, U53);
    try {
      return decodeOp(type, f, cseq, limits);
    } catch (exc) {
      if (exc instanceof ProtocolError) exc.ref = cseq;
      throw exc;
    }
  }
  switch (type) {
    case 'Event':
      return {
        type, seq: f.integer('seq', 1, U53), sessionMs: f.integer('session_ms', 0, U53), seat: f.seat(),
        cseq: f.integer('cseq', 0, U53), body: decodeEventBody(f.next('body'), limits),
      };
    case 'Join':
      return {
        type, version: f.integer('version', 0, 65_535), token: f.text('token', limits.maxTokenBytes), seat: f.seat(),
        lastSeq: f.integer('last_seq', 0, U53), epoch: f.integer('epoch', 0, U53),
      };
    case 'Welcome':
      return {
        type, version: f.integer('version', 0, 65_535), seat: f.seat(), userId: f.text('user_id', limits.maxStringBytes),
        sessionId: f.text('session_id', limits.maxStringBytes), sessionMs: f.integer('session_ms', 0, U53),
        lastSeq: f.integer('last_seq', 0, U53), ackedCseq: f.integer('acked_cseq', 0, U53),
        mode: f.integer('mode', 0, 1), pageCount: f.integer('page_count', 1, MAX_PAGE_ID + 1),
        currentPages: seatPair(f, 'current_pages', (p) => Number.isInteger(p) && p >= 0 && p <= MAX_PAGE_ID),
        online: seatPair(f, 'online', (o) => typeof o === 'boolean'),
        epoch: f.integer('epoch', 0, U53), ratePerS: f.integer('rate_per_s', 1, U32),
        rateBurst: f.integer('rate_burst', 1, U32), muted: seatPair(f, 'muted', (o) => typeof o === 'boolean'),
      };
    case 'Snapshot':
      return {
        type, seq: f.integer('seq', 0, U53), page: f.integer('page', 0, MAX_PAGE_ID),
        strokes: decodeSnapshotStrokes(f.array('strokes'), limits),
      };
    case 'Ping': return { type, ts: f.integer('ts', -U53, U53) };
    case 'Pong': return { type, echo: f.integer('echo', -U53, U53), ts: f.integer('ts', -U53, U53) };
    case 'Ack': return { type, cseq: f.integer('cseq', 0, U53), seq: f.integer('seq', 0, U53) };
    case 'Error':
      return { type, code: f.integer('code', 0, 65_535), message: f.text('message', 4096), ref: f.integer('ref', 0, U53) };
    case 'Audio':
      return { type, seq: f.integer('seq', 0, U32), captureTs: f.integer('capture_ts', 0, U53), payload: opus(f.binary('payload')) };
    case 'AudioRelay':
      return {
        type, seat: f.seat(), seq: f.integer('seq', 0, U32), captureTs: f.integer('capture_ts', 0, U53),
        sessionMs: f.integer('session_ms', 0, U53), payload: opus(f.binary('payload')),
      };
    case 'RtcOffer': return { type, sdp: f.text('sdp', limits.maxSdpBytes) };
    case 'RtcAnswer': return { type, sdp: f.text('sdp', limits.maxSdpBytes) };
    case 'RtcCandidate':
      return {
        type, candidate: f.text('candidate', 1024), sdpMid: f.text('sdp_mid', 64),
        sdpMlineIndex: f.integer('sdp_mline_index', 0, 255),
      };
    case 'RtcClose': return { type };
    default: throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `${type} is not a frame of its own`);
  }
}

/**
 * The message in `frame` (a `Uint8Array` or `ArrayBuffer`), or `ProtocolError` with the reason it
 * is refused. Binary fields are views into `frame`.
 */
export function decodeFrame(frame, limits = CLIENT_LIMITS) {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  let items;
  try {
    items = decoder.decode(bytes);
  } catch (exc) {
    throw new ProtocolError(ErrorCode.BAD_FRAME, `frame is not valid msgpack (${exc && exc.name})`);
  }
  const [type, f] = typed(items, 'frame');
  return decodeMessage(type, f, limits);
}

// --- constructors for the messages a client sends ----------------------------------------------

export const msg = Object.freeze({
  join: (token, seat, lastSeq, epoch) => ({ type: 'Join', version: PROTOCOL_VERSION, token, seat, lastSeq, epoch }),
  strokeBegin: (cseq, stroke, page, tool, color, width, flags, deviceT0) =>
    ({ type: 'StrokeBegin', cseq, stroke, page, tool, color, width, flags, deviceT0 }),
  strokePoints: (cseq, stroke, start, count, blob) => ({ type: 'StrokePoints', cseq, stroke, start, count, blob }),
  strokeEnd: (cseq, stroke) => ({ type: 'StrokeEnd', cseq, stroke }),
  pageAdd: (cseq, page) => ({ type: 'PageAdd', cseq, page }),
  pageSwitch: (cseq, page) => ({ type: 'PageSwitch', cseq, page }),
  undo: (cseq, stroke) => ({ type: 'Undo', cseq, stroke }),
  clear: (cseq, page) => ({ type: 'Clear', cseq, page }),
  mute: (cseq, muted) => ({ type: 'Mute', cseq, muted }),
  ping: (ts) => ({ type: 'Ping', ts }),
  pong: (echo, ts) => ({ type: 'Pong', echo, ts }),
  ack: (cseq, seq) => ({ type: 'Ack', cseq, seq }),
  rtcOffer: (sdp) => ({ type: 'RtcOffer', sdp }),
  rtcCandidate: (candidate, sdpMid, sdpMlineIndex) => ({ type: 'RtcCandidate', candidate, sdpMid, sdpMlineIndex }),
  rtcClose: () => ({ type: 'RtcClose' }),
});
