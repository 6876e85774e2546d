// Frames to messages and back (wire/codec.py): one msgpack array per frame, `[type, field, ...]`.
//
// `decodeFrame(bytes)` turns a frame into a message object (messages.js) or throws
// `ProtocolError` with the documented code, never anything else; `encodeMessage(msg)` is its
// inverse and writes the same bytes as the Python encoder (smallest integer encodings,
// `Uint8Array` as bin, strings as str). Trailing fields a decoder does not know are ignored
// (docs/protocol.md section 1.3). JavaScript cannot tell a msgpack float 2.0 from the integer 2
// once decoded, so unlike the server this decoder accepts integral floats; it only ever reads the
// server's frames.

import { Decoder, Encoder } from '../../vendor/msgpack/index.mjs';
import { ErrorCode, ProtocolError } from './errors.js';
import { CHANNEL_FLAGS } from './ink.js';
import { CLEAR_LAYERS_KEPT, CLIENT_LIMITS } from './limits.js';
import {
  MAX_LATE_PACKETS, MAX_TOOL, MsgType, OP_FIELDS, OP_TYPES, QUESTION_MAX_BYTES, ROSTER_MAX_CHANGES, TYPE_NAMES,
} from './messages.js';
import { packetSamples } from './opus.js';
import { ALL_RIGHTS, MAX_ROLE } from './roles.js';

export const U32 = 2 ** 32 - 1;
export const U53 = Number.MAX_SAFE_INTEGER; // 2^53 - 1
export const MAX_PAGE_ID = 65_535;
export const MAX_WIDTH = 65_535;
export const MIN_BYTES_PER_POINT = 3;
export const MAX_BYTES_PER_POINT = 5 + 5 + 11 + 11; // two varints and two escaped pairs

const SNAPSHOT_STROKE_FIELDS = ['pid', 'stroke', 'tool', 'color', 'width', 'flags', 'deviceT0', 'count', 'blob',
  'ended'];
const ROSTER_FIELDS = ['pid', 'userId', 'role', 'online', 'muted', 'currentPage'];

const encoder = new Encoder();
const decoder = new Decoder();

// --- encoding ------------------------------------------------------------------------------------

function opFields(op) {
  if (op.type === 'Undo') return op.author ? [op.stroke, op.author] : [op.stroke]; // author: trailing, 0 left out
  return OP_FIELDS[op.type].map((name) => op[name]);
}

/** The array an `Event` carries for `body` (an op without its cseq, or a presence). */
export function eventBody(body) {
  if (body.type === 'Presence') { // `left` trailing, left out when false
    const presence = [MsgType.Presence, body.userId, body.online, body.role];
    if (body.left) presence.push(true);
    return presence;
  }
  if (body.type === 'Roster') {
    if (!(body.changes.length >= 1 && body.changes.length <= ROSTER_MAX_CHANGES)) {
      throw new RangeError(`a Roster holds 1..${ROSTER_MAX_CHANGES} changes`);
    }
    return [MsgType.Roster, body.changes.map((c) => [c.pid, c.userId, c.online, c.role])];
  }
  return [MsgType[body.type], ...opFields(body)];
}

function rosterEntry(e) {
  const entry = ROSTER_FIELDS.map((name) => e[name]);
  // a class's hand and stage, then grants: trailing, left out when 0
  const { handMs = 0, stage = 0, granted = 0 } = e;
  if (handMs || stage || granted) entry.push(handMs, stage);
  if (granted) entry.push(granted);
  return entry;
}

/** The msgpack array for `message`. */
export function toWire(message) {
  const t = MsgType[message.type];
  if (OP_TYPES.has(message.type)) return [t, message.cseq, ...opFields(message)];
  const m = message;
  switch (m.type) {
    case 'Join': return [t, m.version, m.token, m.role, m.lastSeq, m.epoch];
    case 'Welcome':
      return [t, m.version, m.pid, m.role, m.userId, m.sessionId, m.sessionMs, m.lastSeq, m.ackedCseq, m.mode,
        m.pageCount, m.epoch, m.ratePerS, m.rateBurst, m.rights,
        m.roster.map(rosterEntry)];
    case 'Snapshot': {
      const strokes = m.strokes.map((s) => {
        const stroke = SNAPSHOT_STROKE_FIELDS.map((name) => s[name]);
        if (s.layer) stroke.push(s.layer); // a cleared layer's: trailing, left out when 0
        return stroke;
      });
      const snapshot = [t, m.seq, m.page, strokes];
      const { part = 0, last = true } = m; // trailing fields, left out for a page in one part
      if (part || !last) snapshot.push(part, last);
      return snapshot;
    }
    case 'Event': return [t, m.seq, m.sessionMs, m.pid, m.cseq, eventBody(m.body)];
    case 'Ping': return [t, m.ts];
    case 'Pong': return [t, m.echo, m.ts];
    case 'Ack': return [t, m.cseq, m.seq];
    case 'Error': return [t, m.code, m.message, m.ref];
    case 'Audio': return [t, m.seq, m.captureTs, m.payload];
    case 'AudioRelay': return [t, m.pid, m.seq, m.captureTs, m.sessionMs, m.payload];
    case 'AudioLate':
      if (!(m.packets.length >= 1 && m.packets.length <= MAX_LATE_PACKETS)) {
        throw new RangeError(`AudioLate holds 1..${MAX_LATE_PACKETS} packets`);
      }
      return [t, m.packets.map((p) => [p.seq, p.captureTs, p.payload])];
    case 'RtcOffer': return [t, m.sdp];
    case 'RtcAnswer': return [t, m.sdp];
    case 'RtcCandidate': return [t, m.candidate, m.sdpMid, m.sdpMlineIndex];
    case 'RtcClose': return [t];
    default: throw new TypeError(`not a protocol message: ${JSON.stringify(m)}`);
  }
}

/** One frame (a `Uint8Array`) for `message`. */
export function encodeMessage(message) {
  return encoder.encode(toWire(message));
}

// --- decoding ------------------------------------------------------------------------------------

const utf8 = new TextEncoder();

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

  text(name, maxBytes) {
    const v = this.next(name);
    if (typeof v !== 'string') throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be a string`);
    if (utf8.encode(v).length > maxBytes) {
      throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} is longer than ${maxBytes}`);
    }
    return v;
  }

  binary(name) {
    const v = this.next(name);
    if (!(v instanceof Uint8Array)) throw new ProtocolError(ErrorCode.INVALID_FIELD, `${this.what}.${name} must be binary`);
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

  pid() { return this.integer('pid', 1, U32); }

  role() { return this.integer('role', 0, MAX_ROLE); }

  tool() { return this.integer('tool', 0, MAX_TOOL); }

  rights(name = 'rights') { return this.integer(name, 0, ALL_RIGHTS); }

  more() { return this.pos < this.items.length; } // whether a trailing field follows
}

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
    case 'Undo': {
      const stroke = f.integer('stroke', 0, U32);
      return { type, cseq, stroke, author: f.more() ? f.integer('author', 0, U32) : 0 };
    }
    case 'Grant': return { type, cseq, pid: f.pid(), rights: f.rights() };
    case 'Mute': return { type, cseq, muted: f.flag('muted') };
    case 'Hand': return { type, cseq, raised: f.flag('raised') };
    case 'Question': return { type, cseq, text: f.text('text', QUESTION_MAX_BYTES) };
    case 'Stage': return { type, cseq, pid: f.pid(), action: f.integer('action', 0, 2) };
    case 'Moderate': return { type, cseq, pid: f.integer('pid', 0, U32), action: f.integer('action', 0, 4) };
    default: return { type, cseq, page: f.integer('page', 0, MAX_PAGE_ID) }; // PageAdd, PageSwitch, Clear, Restore
  }
}

/** The type and fields of an array that starts with a message type; refuses anything else. */
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
  if (type === 'Presence') {
    const presence = { type, userId: f.text('user_id', limits.maxStringBytes), online: f.flag('online'), role: f.role() };
    return { ...presence, left: f.more() ? f.flag('left') : false };
  }
  if (type === 'Roster') {
    const items = f.array('changes');
    if (!(items.length >= 1 && items.length <= ROSTER_MAX_CHANGES)) {
      throw new ProtocolError(ErrorCode.INVALID_FIELD, `roster.changes holds 1..${ROSTER_MAX_CHANGES} changes`);
    }
    const changes = records(items, 'roster change').map((c) => ({
      pid: c.pid(), userId: c.text('user_id', limits.maxStringBytes), online: c.flag('online'), role: c.role(),
    }));
    return { type, changes };
  }
  if (!OP_TYPES.has(type)) throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `${type} cannot be an event body`);
  return decodeOp(type, f, 0, limits);
}

function records(items, what) {
  return items.map((item) => {
    if (!Array.isArray(item)) throw new ProtocolError(ErrorCode.BAD_FRAME, `${what} must be an array`);
    return new Fields(item, what, 0);
  });
}

function decodeRoster(items, limits) {
  return records(items, 'roster entry').map((f) => {
    const entry = {
      pid: f.pid(), userId: f.text('user_id', limits.maxStringBytes), role: f.role(), online: f.flag('online'),
      muted: f.flag('muted'), currentPage: f.integer('current_page', 0, MAX_PAGE_ID), handMs: 0, stage: 0,
      granted: 0,
    };
    if (f.more()) { // a class's hand and stage, then grants
      entry.handMs = f.integer('hand_ms', 0, U53);
      entry.stage = f.integer('stage', 0, 2);
      if (f.more()) entry.granted = f.rights('granted');
    }
    return entry;
  });
}

function decodeSnapshotStrokes(items, limits) {
  return records(items, 'snapshot stroke').map((f) => ({
    pid: f.pid(), stroke: f.integer('stroke', 0, U32), tool: f.tool(), color: f.integer('color', 0, U32),
    width: f.integer('width', 1, MAX_WIDTH), flags: f.integer('flags', 0, CHANNEL_FLAGS),
    deviceT0: f.integer('device_t0', 0, U53), count: f.integer('count', 0, limits.maxPointsPerStroke),
    blob: f.binary('blob'), ended: f.flag('ended'), layer: f.more() ? f.integer('layer', 0, CLEAR_LAYERS_KEPT) : 0,
  }));
}

function opus(payload) {
  packetSamples(payload); // refuses what is not a well-formed Opus packet
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
        type, seq: f.integer('seq', 1, U53), sessionMs: f.integer('session_ms', 0, U53), pid: f.pid(),
        cseq: f.integer('cseq', 0, U53), body: decodeEventBody(f.next('body'), limits),
      };
    case 'Join':
      return {
        type, version: f.integer('version', 0, 65_535), token: f.text('token', limits.maxTokenBytes), role: f.role(),
        lastSeq: f.integer('last_seq', 0, U53), epoch: f.integer('epoch', 0, U53),
      };
    case 'Welcome':
      return {
        type, version: f.integer('version', 0, 65_535), pid: f.pid(), role: f.role(),
        userId: f.text('user_id', limits.maxStringBytes), sessionId: f.text('session_id', limits.maxStringBytes),
        sessionMs: f.integer('session_ms', 0, U53), lastSeq: f.integer('last_seq', 0, U53),
        ackedCseq: f.integer('acked_cseq', 0, U53), mode: f.integer('mode', 0, 1),
        pageCount: f.integer('page_count', 1, MAX_PAGE_ID + 1), epoch: f.integer('epoch', 0, U53),
        ratePerS: f.integer('rate_per_s', 1, U32), rateBurst: f.integer('rate_burst', 1, U32),
        rights: f.integer('rights', 0, ALL_RIGHTS), roster: decodeRoster(f.array('roster'), limits),
      };
    case 'Snapshot': {
      const snapshot = {
        type, seq: f.integer('seq', 0, U53), page: f.integer('page', 0, MAX_PAGE_ID),
        strokes: decodeSnapshotStrokes(f.array('strokes'), limits), part: 0, last: true,
      };
      if (f.pos < f.items.length) { // a page in parts
        snapshot.part = f.integer('part', 0, U32);
        snapshot.last = f.flag('last');
      }
      return snapshot;
    }
    case 'Ping': return { type, ts: f.integer('ts', -U53, U53) };
    case 'Pong': return { type, echo: f.integer('echo', -U53, U53), ts: f.integer('ts', -U53, U53) };
    case 'Ack': return { type, cseq: f.integer('cseq', 0, U53), seq: f.integer('seq', 0, U53) };
    case 'Error':
      return { type, code: f.integer('code', 0, 65_535), message: f.text('message', 4096), ref: f.integer('ref', 0, U53) };
    case 'Audio':
      return { type, seq: f.integer('seq', 0, U32), captureTs: f.integer('capture_ts', 0, U53), payload: opus(f.binary('payload')) };
    case 'AudioRelay':
      return {
        type, pid: f.pid(), seq: f.integer('seq', 0, U32), captureTs: f.integer('capture_ts', 0, U53),
        sessionMs: f.integer('session_ms', 0, U53), payload: opus(f.binary('payload')),
      };
    case 'AudioLate': {
      const items = f.array('packets');
      if (!(items.length >= 1 && items.length <= MAX_LATE_PACKETS)) {
        throw new ProtocolError(ErrorCode.INVALID_FIELD, `audio_late.packets holds 1..${MAX_LATE_PACKETS} packets`);
      }
      const packets = records(items, 'late packet').map((p) => ({
        seq: p.integer('seq', 0, U32), captureTs: p.integer('capture_ts', 0, U53), payload: opus(p.binary('payload')),
      }));
      return { type, packets };
    }
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
