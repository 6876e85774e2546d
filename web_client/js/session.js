// A live session connection for the browser: the semantics of sessionserver/client.py and
// sessionserver/protocol/replica.py (docs/protocol.md sections 3, 9 and 10).
//
// Every op is numbered with the next cseq, applied to the local replica at once (optimistic),
// sent through a token bucket under the server's announced rate, and kept byte for byte in the
// outbox until an Ack settles it. After a drop the connection rejoins with last_seq and epoch,
// the server replays exactly what was missed (or sends page snapshots), and the outbox is resent
// with the original cseqs; the server drops any it had already processed. So no ink is lost and
// none is doubled.
//
// Events (it is an EventTarget):
//   'state'      detail: 'connecting' | 'live' | 'reconnecting' | 'closed'
//   'change'     detail: {page, kind, seat, stroke}; page null (kind 'reset') when every page may have changed.
//                kinds: begin, points, end, undo, clear, page-add, page-switch, restore, rollback, reset
//   'synced'     the catch-up after a Welcome is complete
//   'welcome'    detail: the Welcome message
//   'presence'   detail: {seat, online}
//   'mute'       detail: {seat, muted}
//   'rtt'        detail: {rttMs}
//   'audio'      detail: an AudioRelay message {seat, seq, captureTs, sessionMs, payload}
//   'rtc-answer' detail: {sdp}
//   'error'      detail: an Error frame {code, message, ref} plus `op` (the refused op, if known) and `fatal`
//                (true when the connection will not come back by itself)

import {
  CatchUp, CloseCode, ErrorCode, HAS_PRESSURE, HAS_TILT, MsgType, ProtocolError, SEATS, Tool, U32,
  decodeFrame, encodeMessage, msg,
} from './protocol.js';
import { MAX_TIME_OFFSET_MS, PRESSURE_MAX, PointState, TILT_MAX, decodePoints, encodePoints } from './ink.js';

const MAX_POINTS_PER_MESSAGE = 512; // the server's default limit; never send more in one StrokePoints
const MAX_COORDINATE = 65_535;
// Closes after which rejoining cannot succeed (section 7.2); 4002 is retried once with a fresh
// token when a `refreshToken` callback is given.
const FINAL_CLOSES = new Set([CloseCode.NORMAL, CloseCode.AUTH_FAILED, CloseCode.TOKEN_EXPIRED,
  CloseCode.FORBIDDEN, CloseCode.UNSUPPORTED_VERSION, CloseCode.REPLACED]);
const STROKE_ID_EPOCH_MS = Date.UTC(2024, 0, 1);

/** This device's clock in ms: the clock of stroke start times and of Ping/Pong. */
export function deviceMs() {
  return Date.now();
}

/** '#RRGGBB' or '#RRGGBBAA' (or a number) as the wire's 0xRRGGBBAA. */
export function colorToWire(color) {
  if (typeof color === 'number') return color >>> 0;
  const hex = String(color).replace(/^#/, '');
  const full = hex.length === 6 ? `${hex}ff` : hex;
  const value = Number.parseInt(full, 16);
  return Number.isFinite(value) ? value >>> 0 : 0x000000ff;
}

/** The wire's 0xRRGGBBAA as a CSS colour. */
export function wireToCss(color) {
  const r = Math.floor(color / 2 ** 24) & 0xff;
  const g = (color >>> 16) & 0xff;
  const b = (color >>> 8) & 0xff;
  const a = color & 0xff;
  return `rgba(${r}, ${g}, ${b}, ${(a / 255).toFixed(3)})`;
}

function strokeKey(seat, stroke) {
  return seat * 2 ** 32 + stroke;
}

/** A token bucket with the clock passed in (protocol/ratelimit.py). */
export class TokenBucket {
  constructor(rate, burst, now) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.stamp = now;
  }

  refill(now) {
    if (now > this.stamp) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.stamp) * this.rate);
      this.stamp = now;
    }
  }

  take(now) {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Spend a token whether or not there is one (a frame that must not wait: Pong, signalling). */
  force(now) {
    this.refill(now);
    this.tokens = Math.max(-this.burst, this.tokens - 1);
  }

  /** Seconds from `now` until `take` would succeed. */
  delay(now) {
    this.refill(now);
    return this.tokens >= 1 ? 0 : (1 - this.tokens) / this.rate;
  }
}

/** Round trip and clock offset from Ping/Pong (protocol/clocksync.py). */
export class ClockEstimator {
  constructor(window = 8) {
    this.window = window;
    this.samples = [];
  }

  add(t0, t1, t2) {
    const rtt = t2 - t0;
    if (rtt < 0) return null;
    const sample = { rttMs: rtt, offsetMs: t1 - (t0 + t2) / 2 };
    this.samples.push(sample);
    if (this.samples.length > this.window) this.samples.shift();
    return sample;
  }

  get rttMs() {
    return this.samples.length ? this.samples[this.samples.length - 1].rttMs : null;
  }

  get offsetMs() {
    if (!this.samples.length) return null;
    return this.samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a)).offsetMs;
  }
}

/**
 * A client's copy of the session's pages (protocol/replica.py). `pages[i]` is a Map of strokes
 * in drawing order; a stroke is `{seat, stroke, page, tool, color, width, flags, deviceT0, points,
 * state, ended}` with `points` `{x, y, t, pressure, tiltX, tiltY}`.
 */
export class Replica {
  constructor(seat) {
    this.seat = seat;
    this.lastSeq = 0;
    this.epoch = 0;
    this.pages = [new Map()];
    this.currentPages = [0, 0];
    this.online = [false, false];
    this.muted = [false, false];
    this.awaitingPages = new Set();
    this.maxStrokeId = [0, 0]; // the highest stroke id seen per seat (ids are never reused)
  }

  strokes(seat = null) {
    const out = [];
    for (const page of this.pages) for (const s of page.values()) if (seat === null || s.seat === seat) out.push(s);
    return out;
  }

  find(seat, stroke) {
    const key = strokeKey(seat, stroke);
    for (const page of this.pages) {
      const s = page.get(key);
      if (s !== undefined) return s;
    }
    return undefined;
  }

  /** `rebuild`: the pages are rebuilt from the catch-up (a snapshot, or a replay from seq 0). */
  welcome(w, rebuild) {
    this.epoch = w.epoch;
    this.online = [...w.online];
    this.muted = [...w.muted];
    if (w.mode === CatchUp.SNAPSHOT) {
      this.pages = Array.from({ length: w.pageCount }, () => new Map());
      this.awaitingPages = new Set(this.pages.keys());
      // The pages are gone until the snapshot is whole: a drop before then must resume from
      // nothing, never replay onto empty pages.
      this.lastSeq = 0;
    } else if (rebuild) {
      this.pages = [new Map()];
      this.awaitingPages = new Set();
    }
    this.currentPages = [...w.currentPages];
  }

  snapshot(snap) {
    const page = new Map();
    for (const s of snap.strokes) { // decode it all first: a refused snapshot leaves the replica as it was
      const stroke = this._newStroke(s.seat, s.stroke, snap.page, s.tool, s.color, s.width, s.flags, s.deviceT0);
      stroke.ended = s.ended;
      this._addPoints(stroke, s.blob, s.count);
      page.set(strokeKey(s.seat, s.stroke), stroke);
    }
    while (this.pages.length <= snap.page) this.pages.push(new Map());
    this.pages[snap.page] = page;
    this.awaitingPages.delete(snap.page);
    if (this.awaitingPages.size === 0) this.lastSeq = snap.seq;
  }

  /** Our own op became event `seq` (from an Ack); every seq up to it not seen as an Event was ours. */
  own(seq) {
    if (seq > this.lastSeq) this.lastSeq = seq;
  }

  /**
   * Apply `event`; null if seen already, else the change. `appliedCseq` is the highest cseq of
   * our own ops applied locally, so their replayed events are not applied twice. A gap in seq
   * throws ProtocolError; an event that cannot be applied throws and is not consumed.
   */
  event(ev, appliedCseq = 0) {
    if (ev.seq <= this.lastSeq) return null;
    if (ev.seq !== this.lastSeq + 1) {
      throw new ProtocolError(ErrorCode.BAD_FRAME, `event ${ev.seq} after ${this.lastSeq}: a gap`);
    }
    let change;
    if (ev.seat === this.seat && ev.cseq > 0 && ev.cseq <= appliedCseq) {
      change = { page: null, kind: 'own', seat: ev.seat, stroke: null }; // applied locally already
    } else if (ev.body.type === 'Presence') {
      this.online[ev.seat] = ev.body.online;
      change = { page: null, kind: 'presence', seat: ev.seat, stroke: null };
    } else {
      change = this.applyLocal(ev.seat, ev.body);
    }
    this.lastSeq = ev.seq;
    return change;
  }

  /** Apply an op of `seat`; returns the change `{page, kind, seat, stroke, removed?, previous?}`. */
  applyLocal(seat, op) {
    switch (op.type) {
      case 'StrokeBegin': {
        const stroke = this._newStroke(seat, op.stroke, op.page, op.tool, op.color, op.width, op.flags, op.deviceT0);
        this._page(op.page).set(strokeKey(seat, op.stroke), stroke);
        return { page: op.page, kind: 'begin', seat, stroke: op.stroke };
      }
      case 'StrokePoints': {
        const stroke = this._find(seat, op.stroke);
        this._addPoints(stroke, op.blob, op.count);
        return { page: stroke.page, kind: 'points', seat, stroke: op.stroke };
      }
      case 'StrokeEnd': {
        const stroke = this._find(seat, op.stroke);
        stroke.ended = true;
        return { page: stroke.page, kind: 'end', seat, stroke: op.stroke };
      }
      case 'Undo': {
        const stroke = this._find(seat, op.stroke);
        this.pages[stroke.page].delete(strokeKey(seat, op.stroke));
        return { page: stroke.page, kind: 'undo', seat, stroke: op.stroke, removed: stroke };
      }
      case 'PageAdd': {
        const added = Math.max(0, op.page + 1 - this.pages.length);
        while (this.pages.length <= op.page) this.pages.push(new Map());
        return { page: op.page, kind: 'page-add', seat, stroke: null, added };
      }
      case 'PageSwitch': {
        this._page(op.page);
        const previous = this.currentPages[seat];
        this.currentPages[seat] = op.page;
        return { page: op.page, kind: 'page-switch', seat, stroke: null, previous };
      }
      case 'Mute': {
        const previous = this.muted[seat];
        this.muted[seat] = op.muted;
        return { page: null, kind: 'mute', seat, stroke: null, previous };
      }
      case 'Clear': {
        const page = this._page(op.page);
        const removed = [...page.values()];
        page.clear();
        return { page: op.page, kind: 'clear', seat, stroke: null, removed };
      }
      default:
        throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `${op.type} is not an op`);
    }
  }

  _newStroke(seat, id, page, tool, color, width, flags, deviceT0) {
    if (id > this.maxStrokeId[seat]) this.maxStrokeId[seat] = id;
    return { seat, stroke: id, page, tool, color, width, flags, deviceT0, points: [], state: new PointState(),
      ended: false, version: 0 };
  }

  _addPoints(stroke, blob, count) {
    const points = decodePoints(blob, count, stroke.flags, stroke.state);
    for (const p of points) stroke.points.push(p);
    stroke.version += 1;
  }

  _page(page) {
    if (!(page >= 0 && page < this.pages.length)) {
      throw new ProtocolError(ErrorCode.UNKNOWN_PAGE, `replica has no page ${page} (it has ${this.pages.length})`);
    }
    return this.pages[page];
  }

  _find(seat, id) {
    const stroke = this.find(seat, id);
    if (stroke === undefined) throw new ProtocolError(ErrorCode.UNKNOWN_STROKE, `replica has no stroke ${id} of seat ${seat}`);
    return stroke;
  }
}

/**
 * One participant's connection to a session. `new SessionConnection({url, token, seat})`, then
 * `connect()` (resolves with the first Welcome). Optional: `refreshToken` (async () => token,
 * called when the join token has expired), `autoReconnect` (true), `pingIntervalMs` (2000),
 * `backoffInitialMs` (50), `backoffMaxMs` (5000), `WebSocketImpl`.
 */
export class SessionConnection extends EventTarget {
  constructor({ url, token, seat, refreshToken = null, autoReconnect = true, pingIntervalMs = 2000,
    backoffInitialMs = 50, backoffMaxMs = 5000, joinTimeoutMs = 10_000, maxOutbox = 1_000_000,
    WebSocketImpl = globalThis.WebSocket } = {}) {
    super();
    this.url = url;
    this.token = token;
    this.seat = Number(seat);
    this.refreshToken = refreshToken;
    this.autoReconnect = autoReconnect;
    this.pingIntervalMs = pingIntervalMs;
    this.deadAfterMs = Math.max(6000, 3 * pingIntervalMs);
    this.backoffInitialMs = backoffInitialMs;
    this.backoffMaxMs = backoffMaxMs;
    this.joinTimeoutMs = joinTimeoutMs;
    this.maxOutbox = maxOutbox;
    this.WebSocketImpl = WebSocketImpl;

    this.replica = new Replica(this.seat);
    this.state = 'connecting';
    this.welcome = null;
    this.errors = [];
    this.closeCode = null;
    this.reconnects = 0;
    this.clock = new ClockEstimator();
    this.cseq = 0;
    this.appliedCseq = 0; // the highest cseq of ours applied to the replica by this client
    this.outbox = new Map(); // cseq -> {frame, op, rollback}, in cseq order
    this._unnumbered = []; // ops made before the first Welcome: numbered from acked_cseq + 1
    this._settled = new Map(); // recently settled ops, so a refusal after its Ack can be rolled back
    this._encoders = new Map(); // own open stroke id -> {flags, state}
    this._dead = new Set(); // own strokes the server does not have: no further ops
    this._stalled = new Set(); // own strokes whose points were refused: no further points, end only
    this._lastStrokeId = 0;
    this._ws = null;
    this._joined = false;
    this._closing = false;
    this._pace = null;
    this._sendQueue = [];
    this._sendHead = 0;
    this._pumpTimer = null;
    this._pingTimer = null;
    this._joinTimer = null;
    this._retryTimer = null;
    this._backoffMs = backoffInitialMs;
    this._lastFrameAt = 0;
    this._catchUp = null; // {target, rebuild, pending} while a Welcome's catch-up is arriving
    this._connectWaiters = [];
    this._onOnline = () => { if (this._retryTimer !== null) this._retryNow(); };
    if (typeof window !== 'undefined') window.addEventListener('online', this._onOnline);
  }

  // --- properties ------------------------------------------------------------------------------

  get lastSeq() { return this.replica.lastSeq; }

  get epoch() { return this.replica.epoch; }

  get rttMs() { return this.clock.rttMs; }

  /** The session clock minus this device's clock, ms (null before the first Pong). */
  get clockOffsetMs() { return this.clock.offsetMs; }

  get muted() { return this.replica.muted; }

  get online() { return this.replica.online; }

  get currentPage() { return this.replica.currentPages[this.seat]; }

  get pageCount() { return this.replica.pages.length; }

  get outboxSize() { return this.outbox.size + this._unnumbered.length; }

  // --- connection ------------------------------------------------------------------------------

  /** Join (the first time); resolves with the Welcome, rejects when the server refuses the join. */
  connect() {
    this._closing = false;
    if (this._joined) return Promise.resolve(this.welcome);
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this._ws === null && this._retryTimer === null) this._open();
    return p;
  }

  /** Leave for good: no reconnect after this. */
  close() {
    this._closing = true;
    this._clearTimers();
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const ws = this._ws;
    this._ws = null;
    this._joined = false;
    if (ws !== null) {
      try { ws.close(1000); } catch { /* already closing */ }
    }
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onOnline);
    this._setState('closed');
    this._settleConnect(new Error('closed'));
  }

  /** Cut the connection as a lost network would, and resume (tests and "reconnect now"). */
  drop() {
    if (this._ws !== null) this._lost(this._ws, 1006, 'dropped by the client');
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _settleConnect(result) {
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const w of waiters) {
      if (result instanceof Error) w.reject(result);
      else w.resolve(result);
    }
  }

  _open() {
    this._retryTimer = null;
    this._setState(this.welcome === null ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (exc) {
      this._emit('error', { code: 0, message: String(exc), ref: 0, fatal: true });
      this._setState('closed');
      this._settleConnect(exc instanceof Error ? exc : new Error(String(exc)));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._joined = false;
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._sendNow(encodeMessage(msg.join(this.token, this.seat, this.replica.lastSeq, this.replica.epoch)));
      this._joinLastSeq = this.replica.lastSeq;
    };
    ws.onmessage = (e) => {
      if (this._ws !== ws || typeof e.data === 'string') return;
      this._lastFrameAt = performance.now();
      try {
        this._receive(e.data);
      } catch (exc) {
        // A frame we cannot apply (a seq gap, a corrupt frame): rejoin, which repairs it.
        console.warn('tutorwire: resyncing after', exc);
        if (!(exc instanceof ProtocolError && exc.code === ErrorCode.BAD_FRAME && /gap/.test(exc.message))) {
          this._forceRebuild();
        }
        this._lost(ws, 4000, String(exc));
      }
    };
    ws.onclose = (e) => this._lost(ws, e.code, e.reason);
    ws.onerror = () => { /* a close event follows */ };
    this._joinTimer = setTimeout(() => {
      if (this._ws === ws && !this._joined) this._lost(ws, CloseCode.JOIN_TIMEOUT, 'no welcome');
    }, this.joinTimeoutMs);
  }

  /** The connection `ws` ended (closed by either side, or found dead). */
  _lost(ws, code, reason) {
    if (this._ws !== ws) return;
    this._ws = null;
    this._joined = false;
    this._catchUp = null;
    this._clearTimers();
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(); } catch { /* already closed */ }
    this.closeCode = code;
    if (this._closing) return;
    const refused = this._joinRefusal;
    this._joinRefusal = null;
    if (this.refreshToken && (code === CloseCode.TOKEN_EXPIRED || refused?.code === ErrorCode.TOKEN_EXPIRED)) {
      this._setState('reconnecting');
      Promise.resolve().then(() => this.refreshToken()).then((token) => {
        this.token = token;
        this._scheduleRetry();
      }, (exc) => this._final(code, `no fresh token: ${exc}`));
      return;
    }
    if (refused && refused.code !== ErrorCode.JOIN_TIMEOUT) {
      this._final(code, `join refused: ${refused.code} ${refused.message}`);
      return;
    }
    if (!this.autoReconnect || FINAL_CLOSES.has(code)) {
      this._final(code, reason);
      return;
    }
    this._setState('reconnecting');
    this._scheduleRetry();
  }

  _final(code, reason) {
    this._setState('closed');
    this._emit('error', { code: 0, message: `connection closed (${code}${reason ? `: ${reason}` : ''})`, ref: 0,
      closeCode: code, fatal: true });
    this._settleConnect(new Error(`connection closed (${code}) ${reason || ''}`));
  }

  _scheduleRetry() {
    const wait = this._backoffMs * (0.5 + Math.random() * 0.5);
    this._backoffMs = Math.min(this._backoffMs * 2, this.backoffMaxMs);
    this._retryTimer = setTimeout(() => this._open(), wait);
  }

  _retryNow() {
    clearTimeout(this._retryTimer);
    this._open();
  }

  _clearTimers() {
    clearTimeout(this._pumpTimer);
    clearInterval(this._pingTimer);
    clearTimeout(this._joinTimer);
    this._pumpTimer = this._pingTimer = this._joinTimer = null;
  }

  /** Forget where we stand, so the next join rebuilds every page (after a frame we could not apply). */
  _forceRebuild() {
    this.replica.lastSeq = 0;
  }

  // --- receiving -------------------------------------------------------------------------------

  _receive(data) {
    let m;
    try {
      m = decodeFrame(data);
    } catch (exc) {
      if (exc instanceof ProtocolError && exc.code === ErrorCode.UNKNOWN_TYPE) return; // a later version's
      throw exc;
    }
    if (!this._joined) {
      if (m.type === 'Welcome') this._welcome(m);
      else if (m.type === 'Error') {
        this.errors.push(m);
        this._joinRefusal = m;
        this._emit('error', { ...m, fatal: m.code !== ErrorCode.JOIN_TIMEOUT && !(m.code === ErrorCode.TOKEN_EXPIRED && this.refreshToken) });
      }
      return; // anything else before the Welcome is not ours to read
    }
    switch (m.type) {
      case 'Event': this._event(m); break;
      case 'Snapshot': this._snapshot(m); break;
      case 'Ack': this._ack(m); break;
      case 'Error': this._error(m); break;
      case 'Ping': this._sendNow(encodeMessage(msg.pong(m.ts, deviceMs())), true); break;
      case 'Pong': {
        const sample = this.clock.add(m.echo, m.ts, deviceMs());
        if (sample) this._emit('rtt', { rttMs: sample.rttMs });
        break;
      }
      case 'AudioRelay': this._emit('audio', m); break;
      case 'RtcAnswer': this._emit('rtc-answer', { sdp: m.sdp }); break;
      default: break; // nothing else is meant for a client
    }
  }

  _welcome(w) {
    clearTimeout(this._joinTimer);
    this._joinTimer = null;
    if (w.seat !== this.seat) throw new ProtocolError(ErrorCode.INVALID_FIELD, `welcomed to seat ${w.seat}`);
    const first = this.welcome === null;
    const previousEpoch = this.replica.epoch;
    this.welcome = w;
    this._joined = true;
    this._backoffMs = this.backoffInitialMs;
    const rebuild = w.mode === CatchUp.SNAPSHOT || this._joinLastSeq === 0;
    this.replica.welcome(w, rebuild);
    this._acked(w.ackedCseq);
    this.cseq = Math.max(this.cseq, w.ackedCseq);
    for (const entry of this._unnumbered) this._number(entry);
    this._unnumbered = [];
    if (previousEpoch !== 0 && previousEpoch !== w.epoch) this._enterNewRoom();
    this._catchUp = { target: w.lastSeq, rebuild, pending: rebuild ? [...this.outbox.values()].map((e) => e.op) : [] };
    // pace under the server's limit, a little below it (Pongs and signalling count too)
    this._pace = new TokenBucket(w.ratePerS * 0.9, Math.max(1, Math.floor(w.rateBurst / 2)), performance.now() / 1000);
    this._sendQueue = [...this.outbox.keys()];
    this._sendHead = 0;
    this._lastFrameAt = performance.now();
    this._pingTimer = setInterval(() => this._tick(), this.pingIntervalMs);
    this._sendPing();
    if (!first) this.reconnects += 1;
    this._setState('live');
    this._emit('welcome', w);
    this._maybeCaughtUp();
    this._pump();
    this._settleConnect(w);
  }

  /** The room is a new one (evicted, or the server restarted): drop ops about strokes it never had. */
  _enterNewRoom() {
    const begun = new Set();
    for (const [cseq, entry] of [...this.outbox]) {
      const op = entry.op;
      if (op.type === 'StrokeBegin') begun.add(op.stroke);
      else if (['StrokePoints', 'StrokeEnd', 'Undo'].includes(op.type) && !begun.has(op.stroke)) {
        this.outbox.delete(cseq);
        this._dead.add(op.stroke);
        this._encoders.delete(op.stroke);
      }
    }
  }

  _maybeCaughtUp() {
    const c = this._catchUp;
    if (c === null || this.replica.awaitingPages.size > 0 || this.replica.lastSeq < c.target) return;
    this._catchUp = null;
    if (c.rebuild) {
      for (const op of c.pending) {
        try { this.replica.applyLocal(this.seat, op); } catch { /* e.g. points of a stroke the room refused */ }
      }
    }
    this._emit('change', { page: null, kind: 'reset', seat: null, stroke: null });
    this._emit('synced', null);
  }

  _event(ev) {
    const catchingUp = this._catchUp !== null;
    const threshold = catchingUp && this._catchUp.rebuild ? 0 : this.appliedCseq;
    const change = this.replica.event(ev, threshold);
    if (change === null) return;
    if (change.kind === 'clear') { // our open strokes on that page are gone: send nothing more for them
      for (const s of change.removed) if (s.seat === this.seat) this._forget(s.stroke);
    }
    if (catchingUp) {
      this._maybeCaughtUp();
      return;
    }
    if (change.kind === 'presence') this._emit('presence', { seat: ev.seat, online: ev.body.online });
    else if (change.kind === 'mute') this._emit('mute', { seat: ev.seat, muted: ev.body.muted });
    else if (change.kind !== 'own') this._emit('change', change);
  }

  _snapshot(snap) {
    this.replica.snapshot(snap);
    this._maybeCaughtUp();
  }

  _ack(ack) {
    this._acked(ack.cseq);
    if (ack.seq) {
      this.replica.own(ack.seq);
      if (this._catchUp !== null) this._maybeCaughtUp();
    }
  }

  _acked(cseq) {
    for (const [c, entry] of this.outbox) {
      if (c > cseq) break;
      this.outbox.delete(c);
      this._settled.set(c, entry);
    }
    while (this._settled.size > 256) this._settled.delete(this._settled.keys().next().value);
  }

  _error(e) {
    this.errors.push(e);
    let entry;
    if (e.ref) {
      entry = this.outbox.get(e.ref) ?? this._settled.get(e.ref);
      this.outbox.delete(e.ref);
      this._settled.delete(e.ref);
      if (entry) this._rollback(entry.op, entry.change);
    }
    this._emit('error', { ...e, op: entry?.op ?? null, fatal: false });
  }

  /** A refused op is not in the session: undo what applying it locally did (section 3.4). */
  _rollback(op, change) {
    const r = this.replica;
    let page = null;
    switch (op.type) {
      case 'StrokeBegin': {
        const s = r.find(this.seat, op.stroke);
        if (s) r.pages[s.page].delete(strokeKey(this.seat, op.stroke));
        this._dead.add(op.stroke);
        this._encoders.delete(op.stroke);
        page = op.page;
        break;
      }
      case 'StrokePoints': {
        // The server's stroke holds `start` points; later batches will be refused (1015).
        this._stalled.add(op.stroke);
        const s = r.find(this.seat, op.stroke);
        if (s && s.points.length > op.start) {
          s.points.length = op.start;
          s.version += 1;
        }
        page = s ? s.page : null;
        break;
      }
      case 'Undo':
        if (change?.removed && !r.find(this.seat, op.stroke) && r.pages[change.removed.page]) {
          r.pages[change.removed.page].set(strokeKey(this.seat, op.stroke), change.removed);
          page = change.removed.page;
        }
        break;
      case 'Clear':
        if (change?.removed && r.pages[op.page]) {
          for (const s of change.removed) r.pages[op.page].set(strokeKey(s.seat, s.stroke), s);
          page = op.page;
        }
        break;
      case 'PageSwitch':
        if (change && r.currentPages[this.seat] === op.page) r.currentPages[this.seat] = change.previous;
        break;
      case 'PageAdd':
        for (let i = 0; i < (change?.added ?? 0); i++) {
          if (r.pages.length > 1 && r.pages[r.pages.length - 1].size === 0) r.pages.pop();
        }
        break;
      default:
        break;
    }
    this._emit('change', { page, kind: 'rollback', seat: this.seat, stroke: op.stroke ?? null });
  }

  // --- sending ---------------------------------------------------------------------------------

  _sendNow(frame, paced = false) {
    const ws = this._ws;
    if (ws === null || ws.readyState !== 1) return false;
    if (paced && this._pace) this._pace.force(performance.now() / 1000);
    try {
      ws.send(frame);
      return true;
    } catch {
      return false; // kept in the outbox (if an op); resent after the reconnect
    }
  }

  _pump() {
    this._pumpTimer = null;
    if (!this._joined || this._pace === null) return;
    while (this._sendHead < this._sendQueue.length) {
      const cseq = this._sendQueue[this._sendHead];
      const entry = this.outbox.get(cseq);
      if (entry === undefined) { // settled meanwhile
        this._sendHead += 1;
        continue;
      }
      const op = entry.op;
      if ((op.type === 'StrokePoints' || op.type === 'StrokeEnd') && this._dead.has(op.stroke)) {
        // undone or cleared before it went out: the server would refuse it (1008), spending the
        // error budget; its cseq is simply skipped (gaps are allowed)
        this.outbox.delete(cseq);
        this._sendHead += 1;
        continue;
      }
      const now = performance.now() / 1000;
      const delay = this._pace.delay(now);
      if (delay > 0) {
        this._pumpTimer = setTimeout(() => this._pump(), Math.ceil(delay * 1000));
        return;
      }
      this._pace.take(now);
      if (!this._sendNow(entry.frame)) return;
      this._sendHead += 1;
    }
    this._sendQueue = [];
    this._sendHead = 0;
  }

  _number(entry) {
    this.cseq += 1;
    entry.op.cseq = this.cseq;
    entry.frame = encodeMessage(entry.op);
    this.outbox.set(this.cseq, entry);
    if (entry.applied) this.appliedCseq = this.cseq;
    return entry;
  }

  /** Number, keep, apply and send one op (its cseq is filled in). */
  _op(op) {
    if (this.outboxSize >= this.maxOutbox) {
      this._emit('error', { code: 0, message: `outbox holds ${this.maxOutbox} unacknowledged ops`, ref: 0, fatal: false });
      return null;
    }
    const entry = { op, frame: null, change: null, applied: false };
    if (this._catchUp !== null && this._catchUp.rebuild) {
      this._catchUp.pending.push(op); // applied once the pages are rebuilt
      entry.applied = true;
    } else {
      entry.change = this.replica.applyLocal(this.seat, op);
      entry.applied = true;
    }
    if (this.welcome === null) {
      op.cseq = 0;
      this._unnumbered.push(entry);
    } else {
      this._number(entry);
      if (this._joined) {
        this._sendQueue.push(op.cseq);
        if (this._pumpTimer === null) this._pump();
      }
    }
    if (entry.change) {
      if (entry.change.kind === 'mute') this._emit('mute', { seat: this.seat, muted: op.muted });
      else this._emit('change', entry.change);
    }
    return op;
  }

  _tick() {
    if (!this._joined) return;
    if (performance.now() - this._lastFrameAt > this.deadAfterMs) {
      this._lost(this._ws, 1006, 'no frame from the server'); // a dead link the socket did not notice
      return;
    }
    this._sendPing();
  }

  _sendPing() {
    this._sendNow(encodeMessage(msg.ping(deviceMs())), true);
  }

  _newStrokeId() {
    const clock = Math.floor((Date.now() - STROKE_ID_EPOCH_MS) / 100);
    let id = Math.max(this._lastStrokeId + 1, this.replica.maxStrokeId[this.seat] + 1, clock);
    if (id > U32) id = this.replica.maxStrokeId[this.seat] + 1;
    this._lastStrokeId = id;
    return id;
  }

  // --- ops -------------------------------------------------------------------------------------

  /**
   * Open a stroke; returns its id. `color` is '#RRGGBB[AA]' or 0xRRGGBBAA; `flags` says which
   * channels the points carry (HAS_PRESSURE 1, HAS_TILT 2); `deviceT0` is the stroke's start on
   * the device clock (Unix ms), point times are offsets from it.
   */
  beginStroke({ page = this.currentPage, tool = Tool.PEN, color = 0x000000ff, width = 20, flags = HAS_PRESSURE,
    deviceT0 = deviceMs() } = {}) {
    const id = this._newStrokeId();
    const w = Math.min(65_535, Math.max(1, Math.round(width)));
    this._encoders.set(id, { flags: flags & 3, state: new PointState(), lastT: 0 });
    this._op(msg.strokeBegin(0, id, page, tool, colorToWire(color), w, flags & 3, Math.max(0, Math.floor(deviceT0))));
    return id;
  }

  /** Append points `{x, y, t, pressure, tiltX, tiltY}` (integers; clamped to their ranges). */
  addPoints(strokeId, points) {
    const enc = this._encoders.get(strokeId);
    if (enc === undefined || this._dead.has(strokeId) || this._stalled.has(strokeId) || points.length === 0) return;
    const clean = points.map((p) => {
      const t = Math.min(MAX_TIME_OFFSET_MS, Math.max(enc.lastT, Math.round(p.t || 0)));
      enc.lastT = t;
      return {
        x: clampInt(p.x, 0, MAX_COORDINATE), y: clampInt(p.y, 0, MAX_COORDINATE), t,
        pressure: enc.flags & HAS_PRESSURE ? clampInt(p.pressure ?? 0, 0, PRESSURE_MAX) : 0,
        tiltX: enc.flags & HAS_TILT ? clampInt(p.tiltX ?? 0, -TILT_MAX, TILT_MAX) : 0,
        tiltY: enc.flags & HAS_TILT ? clampInt(p.tiltY ?? 0, -TILT_MAX, TILT_MAX) : 0,
      };
    });
    for (let i = 0; i < clean.length; i += MAX_POINTS_PER_MESSAGE) {
      const batch = clean.slice(i, i + MAX_POINTS_PER_MESSAGE);
      const start = enc.state.count;
      const blob = encodePoints(batch, enc.flags, enc.state);
      this._op(msg.strokePoints(0, strokeId, start, batch.length, blob));
    }
  }

  /** Close a stroke. */
  endStroke(strokeId) {
    const known = this._encoders.delete(strokeId);
    this._stalled.delete(strokeId);
    if (!known || this._dead.has(strokeId)) return;
    this._op(msg.strokeEnd(0, strokeId));
  }

  /** Add page `page` (default: a new last page); returns its index. */
  addPage(page = this.pageCount) {
    this._op(msg.pageAdd(0, page));
    return page;
  }

  /** Look at `page` (both seats see where the other is). */
  switchPage(page) {
    if (!(page >= 0 && page < this.pageCount)) return false;
    this._op(msg.pageSwitch(0, page));
    return true;
  }

  _forget(strokeId) {
    this._encoders.delete(strokeId);
    this._dead.add(strokeId);
  }

  /** Remove one of our own strokes (the protocol allows no other); false if we have no such stroke. */
  undo(strokeId) {
    if (!this.replica.find(this.seat, strokeId)) return false;
    this._forget(strokeId);
    this._op(msg.undo(0, strokeId));
    return true;
  }

  /** Remove every stroke (of both seats) on `page`. */
  clear(page = this.currentPage) {
    if (!(page >= 0 && page < this.pageCount)) return false;
    for (const s of this.replica.pages[page].values()) if (s.seat === this.seat) this._forget(s.stroke);
    this._op(msg.clear(0, page));
    return true;
  }

  /** Tell the room our microphone is muted (the server then drops our audio). */
  mute(muted) {
    this._op(msg.mute(0, Boolean(muted)));
  }

  /**
   * WebRTC signalling: `{type: 'RtcOffer', sdp}`, `{type: 'RtcCandidate', candidate, sdpMid,
   * sdpMlineIndex}` or `{type: 'RtcClose'}`. Not kept: false when there is no live connection.
   */
  sendSignal(signal) {
    if (!this._joined) return false;
    if (!['RtcOffer', 'RtcCandidate', 'RtcClose'].includes(signal.type)) throw new TypeError(`not a signal: ${signal.type}`);
    const m = signal.type === 'RtcCandidate'
      ? msg.rtcCandidate(signal.candidate ?? '', signal.sdpMid ?? '', signal.sdpMlineIndex ?? 0)
      : { ...signal };
    return this._sendNow(encodeMessage(m), true);
  }

  /** Ping now (RTT arrives as an 'rtt' event). */
  ping() {
    this._sendPing();
  }
}

function clampInt(v, lo, hi) {
  const n = Math.round(Number(v) || 0);
  return n < lo ? lo : n > hi ? hi : n;
}

export { MsgType, SEATS };
