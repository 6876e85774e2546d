// The client end of a session connection, sans-I/O: the browser's `ClientSession`, a mirror of
// wire/session/client.py (states.js, closes.js, backoff.js, timers.js, pacing.js and outbox.js
// mirror their Python namesakes).
//
// The I/O shell (../../connection.js) opens WebSockets and moves bytes; this machine decides
// everything else: the outbox of unacknowledged ops, cseq numbering, the replica, join and resume,
// pacing under the server's rate limit, round-trip times, and reconnect with backoff that never gives
// up on a network failure. `now` is monotonic seconds, passed in to every call; nothing here
// reads a clock. How a shell drives it:
//
//   session.connect(now)                        IDLE -> CONNECTING: open a WebSocket
//   session.connectionMade(now)                 it opened: the Join is queued
//   session.receiveFrame(bytes, now)            every binary frame of the current link
//   session.connectionLost(now, code, reason)   the link ended, or never opened (code null: no close frame)
//   session.handleTimer(now)                    when now >= session.getTimer()
//   then: send session.dataToSend(); close the link if session.takeCloseRequest() says so; open one
//   if session.takeOpenRequest() says so; hand session.events() to the pages.
//
// Every op is numbered with the next cseq, applied to the local replica at once (optimistic),
// paced, and kept byte for byte in the outbox until an Ack settles it. After a drop the client
// rejoins with last_seq and epoch, the server replays exactly what was missed (or sends page
// snapshots), and the outbox is resent with the original cseqs (the server drops any it had
// already processed): no ink is lost and none is doubled.
//
// The browser's additions to the Python machine: an op our rights (Welcome.rights) do not allow
// is not taken; an op refused by the server is rolled back in the replica; points and ends of a
// stroke undone or cleared before they went out are dropped unsent; a join token that expired is
// renewed when the session was made with `renewToken` (BACKOFF waits for setToken, or FAILS on
// tokenUnavailable). A browser may close a WebSocket only with 1000 or 3000-4999, so where the
// Python client closes a link it gives up on with 1001 or 1002, this one uses 4000.
//
// events() items, by `type`:
//   state       {state, previous, why}
//   welcome     {welcome}
//   change      {change}: {page, kind, pid, stroke}; page null (kind 'reset') when any page may have
//               changed. kinds: begin, points, end, undo, clear, page-add, page-switch, rollback, reset
//   synced      the catch-up after a Welcome is complete
//   presence    {pid, role, userId, online}
//   mute        {pid, muted}
//   rtt         {rttMs}
//   audio       {relay}: an AudioRelay
//   rtc-answer  {sdp}
//   error       {code, message, ref, op, fatal, closeCode?}: an Error frame (with the refused op if
//               ours), a refusal made here (1020 for an op our rights do not allow, 0 for a full
//               outbox), or why the connection ended for good (fatal)
//   token-expired   give a fresh token (setToken) or give up (tokenUnavailable)

import { U32, decodeFrame, encodeMessage } from '../codec.js';
import { CloseCode, ErrorCode, NORMAL_CLOSE, ProtocolError } from '../errors.js';
import { HAS_PRESSURE, HAS_TILT, MAX_TIME_OFFSET_MS, PRESSURE_MAX, PointState, TILT_MAX, encodePoints } from '../ink.js';
import { SEND_LIMITS } from '../limits.js';
import { CatchUp, SIGNAL_TYPES, StageAction, Tool, msg } from '../messages.js';
import { Replica } from '../replica.js';
import { GRANTABLE, Rights, STAGE_RIGHTS, rightFor } from '../roles.js';
import { BACKOFF_DEFAULTS, Backoff } from './backoff.js';
import { BATCH_DEFAULTS, LinkBatcher } from './batching.js';
import { closeOutcome, errorOutcome } from './closes.js';
import { Outbox } from './outbox.js';
import { Pacer } from './pacing.js';
import { CLIENT_TRANSITIONS, ClientState, Lifecycle, SessionMisuse } from './states.js';
import { FAST_START_S, PingSchedule, earliest } from './timers.js';

const S = ClientState;
const LINK_STATES = new Set([S.CONNECTING, S.JOINING, S.LIVE]);
export const GIVE_UP_CLOSE = CloseCode.PROTOCOL_VIOLATION; // our close of a link we gave up on (4000)
const MAX_MOVES = 3; // redirects (2010 MOVED) in a row followed at once; past it they back off (wire/session/client.py)

/** Every knob of the client machine, with the Python ClientConfig's defaults. */
export const CLIENT_DEFAULTS = Object.freeze({
  backoff: BACKOFF_DEFAULTS,
  stableAfterS: 2.0, // a link live this long starts the backoff over when it fails
  connectTimeoutS: 10.0, // from CONNECTING until the Welcome
  pingIntervalS: 2.5, // after the fast start; 0 disables our own pings
  fastStart: FAST_START_S,
  idleTimeoutS: 8.0, // live with nothing received this long: the link is dead
  maxOutboxOps: 100_000,
  maxOutboxBytes: 8 << 20,
  paceRateFactor: 0.9, // pace at this share of Welcome.rate_per_s
  windowDivisor: 4, // at most rate_burst // this op frames in flight unacknowledged
  maxPointsPerMessage: SEND_LIMITS.maxPointsPerMessage,
  maxFrameBytes: 65_536, // the server's limit on our frames
  batching: BATCH_DEFAULTS, // link-adaptive ink batching (batching.js); {maxBatchS: 0} never holds
});

const STROKE_ID_EPOCH_MS = Date.UTC(2024, 0, 1);
const OWN_STROKE_OPS = new Set(['StrokePoints', 'StrokeEnd', 'Undo']);

function clampInt(v, lo, hi) {
  const n = Math.round(Number(v) || 0);
  return n < lo ? lo : n > hi ? hi : n;
}

/**
 * One participant's side of a session, across all its links. `role` is a Role number; options:
 * `config` (CLIENT_DEFAULTS overrides), `random` (() => [0, 1), the backoff's jitter),
 * `deviceOriginMs` (the device clock at now = 0: device ms = deviceOriginMs + now * 1000, the
 * clock of stroke start times and Ping/Pong; a browser passes performance.timeOrigin),
 * `renewToken` (see above).
 */
export class ClientSession {
  constructor({ token, role, config = {}, random = Math.random, deviceOriginMs = 0, renewToken = false }) {
    this.token = token;
    this.role = role;
    this.config = { ...CLIENT_DEFAULTS, ...config, backoff: { ...BACKOFF_DEFAULTS, ...(config.backoff ?? {}) },
      batching: { ...BATCH_DEFAULTS, ...(config.batching ?? {}) } };
    this.random = random;
    this.deviceOriginMs = deviceOriginMs;
    this.renewToken = renewToken;
    const cfg = this.config;
    this._life = new Lifecycle(S.IDLE, CLIENT_TRANSITIONS);
    this.replica = new Replica();
    this.outbox = new Outbox({ maxOps: cfg.maxOutboxOps, maxBytes: cfg.maxOutboxBytes,
      maxPoints: cfg.maxPointsPerMessage, maxFrameBytes: cfg.maxFrameBytes });
    this.rttMs = null; // the last Ping's round trip (what the connection indicator shows)
    this.welcome = null;
    this.rights = null; // ours, from the last Welcome (null before the first: nothing is refused here)
    this.granted = 0; // of our rights, those a Grant gave us (beyond our role's)
    this.cseq = 0; // the last cseq given to an op
    this.appliedCseq = 0; // the highest own cseq applied to the replica
    this.closeCode = null; // of the last link
    this._backoff = new Backoff(cfg.backoff, random);
    this._pings = new PingSchedule(cfg.pingIntervalS, cfg.fastStart);
    this._pacer = null;
    this._window = 1;
    this.batcher = new LinkBatcher(cfg.batching); // kept across reconnects: a weak link stays weak
    this._holdUntil = null; // the newest ink batch waits until then for more points
    this._deadline = null; // connect/join timeout
    this._retryAt = null;
    this._awaitingToken = false;
    this._lastRx = 0;
    this._liveSince = null;
    this._lastError = null; // code of the last Error on the current link
    // where the server said the room lives (Error 2010 MOVED): the shell connects there next; a
    // connection that fails there forgets it (the shell goes back to its own URL)
    this.redirect = null;
    this._moves = 0; // redirects since the last Welcome
    this._skipOwn = false; // the Join resumed from a seq: replayed own ops are applied already
    this._resync = false; // the replica could not apply what the server sent: the next Join starts from seq 0
    this._held = []; // own ops waiting for the catch-up to be applied (null: none held)
    this._catchingUp = false;
    this._writers = new Map(); // own open stroke id -> {flags, state, lastT}
    this._dead = new Set(); // own strokes the server does not have: no further ops for them
    this._stalled = new Set(); // own strokes whose points were refused: no further points, end only
    this._lastStrokeId = 0;
    this._send = [];
    this._events = [];
    this._close = null;
    this._open = false;
  }

  // --- what the shell reads ----------------------------------------------------------------------

  get state() { return this._life.state; }

  /** Frames to write to the current link, in order; taken by this call. */
  dataToSend() {
    const out = this._send;
    this._send = [];
    return out;
  }

  /** What happened since the last call, in order; taken by this call. */
  events() {
    const out = this._events;
    this._events = [];
    return out;
  }

  /** The machine has given up the current link: close it with this {code, reason} (once). */
  takeCloseRequest() {
    const out = this._close;
    this._close = null;
    return out;
  }

  /** The machine wants a new link opened (once). */
  takeOpenRequest() {
    const out = this._open;
    this._open = false;
    return out;
  }

  deviceMs(now) {
    return Math.round(this.deviceOriginMs + now * 1000);
  }

  getTimer() {
    switch (this.state) {
      case S.CONNECTING: case S.JOINING: return this._deadline;
      case S.BACKOFF: return this._retryAt;
      case S.LIVE: {
        let pace = null;
        const next = this.outbox.peek();
        // a held batch (_holdUntil) is the only op waiting: it, not the pacer, says when
        if (this._pacer !== null && this._holdUntil === null && next !== null && this.outbox.inFlight < this._window) {
          pace = this._pacer.readyAt(this._pacer.stamp);
        }
        return earliest(this._pings.due, this._lastRx + this.config.idleTimeoutS, pace, this._holdUntil);
      }
      default: return null;
    }
  }

  handleTimer(now) {
    const state = this.state;
    if (state === S.CONNECTING || state === S.JOINING) {
      if (this._deadline !== null && now >= this._deadline) this._linkFailed(now, null, 'no welcome within the connect timeout');
    } else if (state === S.BACKOFF) {
      if (this._retryAt !== null && now >= this._retryAt) this.connect(now);
    } else if (state === S.LIVE) {
      if (now - this._lastRx >= this.config.idleTimeoutS) {
        this._linkFailed(now, null, `nothing received for ${this.config.idleTimeoutS} s`);
        return;
      }
      this._tick(now);
    }
  }

  /** Live: a Ping if one is due, then whatever ops may go. */
  _tick(now) {
    if (this._pings.isDue(now)) {
      if (this._pacer === null || this._pacer.ready(now)) this._out(msg.ping(this.deviceMs(now)), now); // never into debt
      this._pings.fired(now);
    }
    this._pump(now);
  }

  get pid() { return this.replica.pid; }

  get currentPage() { return this.replica.currentPage(this.replica.pid); }

  get pageCount() { return this.replica.pages.length; }

  /** Whether our rights allow `right` (true before the first Welcome). */
  may(right) {
    return this.rights === null || (this.rights & right) === right;
  }

  // --- lifecycle inputs ------------------------------------------------------------------------

  _to(target, why = '') {
    const previous = this._life.to(target, why);
    this._emit('state', { state: target, previous, why });
  }

  /** Start (IDLE) or retry now (BACKOFF): the shell opens a WebSocket. */
  connect(now) {
    if (this.state === S.BACKOFF && this._awaitingToken) return; // the retry waits for a token
    this._to(S.CONNECTING);
    this._retryAt = null;
    this._deadline = now + this.config.connectTimeoutS;
    this._lastError = null;
    this._open = true;
  }

  /** The WebSocket of the current attempt is open: the Join goes first. */
  connectionMade(now) {
    this._to(S.JOINING);
    this._lastRx = now;
    // after a fault of the replica's, or a drop in the middle of rebuilding the pages, they are
    // rebuilt from a catch-up from the start
    const from = this._resync || this._held !== null ? 0 : this.replica.lastSeq;
    this._skipOwn = from > 0;
    this._send = [encodeMessage(msg.join(this.token, this.role, from, this.replica.epoch))];
  }

  /**
   * The current link ended, or never opened; `code` is the close code received (null if none).
   * A loss in a state without a link (the machine gave the link up itself) is ignored.
   */
  connectionLost(now, code, reason = '') {
    if (this.state === S.CONNECTING) {
      this.closeCode = code;
      this.redirect = null; // the node it named could not be reached: back to our own URL
      this._linkFailed(now, code, reason || 'connection lost while connecting');
    } else if (this.state === S.JOINING || this.state === S.LIVE) {
      this.closeCode = code;
      if (this.renewToken && (code === CloseCode.TOKEN_EXPIRED || this._lastError === ErrorCode.TOKEN_EXPIRED)) {
        this._awaitToken(now, code, reason);
        return;
      }
      const target = closeOutcome(code, this._lastError);
      if (target === S.BACKOFF) this._linkFailed(now, code, reason || 'connection lost');
      else this._end(target, code, reason || `connection closed (${code})`);
    }
  }

  /** Leave for good (CLOSED): an open link is closed with 1000. Unsent ops are dropped. */
  close(now) {
    if (this.state === S.CLOSED || this.state === S.FAILED) return;
    if (LINK_STATES.has(this.state)) this._close = { code: NORMAL_CLOSE, reason: 'client left' };
    this._end(S.CLOSED, NORMAL_CLOSE, 'client left', false);
  }

  /** A fresh join token (after 'token-expired'): the retry goes ahead at once. */
  setToken(token, now) {
    this.token = token;
    if (this.state === S.BACKOFF && this._awaitingToken) {
      this._awaitingToken = false;
      this._retryAt = now;
    }
  }

  /** No fresh token can be had: the connection fails. */
  tokenUnavailable(now, reason) {
    if (this.state !== S.BACKOFF || !this._awaitingToken) return;
    this._awaitingToken = false;
    this._end(S.FAILED, this.closeCode, `no fresh join token: ${reason}`);
  }

  _end(target, code, reason, fatal = true) {
    this._to(target, reason);
    this._stopLink();
    this._retryAt = null;
    if (fatal) this._emit('error', { code: 0, message: reason, ref: 0, op: null, fatal: true, closeCode: code });
  }

  _stopLink() {
    this._send = [];
    this._pings.stop();
    this._pacer = null;
    this._deadline = null;
    this._retryAt = null;
    this._liveSince = null;
    this._catchingUp = false;
    this.outbox.linkLost();
  }

  /** Give the current link up (if the machine still holds one) and back off. */
  _linkFailed(now, code, reason, { refused = false, moved = false } = {}) {
    if (this.state === S.JOINING || this.state === S.LIVE) this._close = { code: GIVE_UP_CLOSE, reason: reason.slice(0, 120) };
    if (this._liveSince !== null && now - this._liveSince >= this.config.stableAfterS) this._backoff.reset();
    this._stopLink();
    this._to(S.BACKOFF, reason);
    this._moves = moved ? this._moves + 1 : 0;
    if (moved && this._moves <= MAX_MOVES) this._retryAt = now; // no failure: straight on to the room's node
    else this._retryAt = now + (refused ? this._backoff.refusedDelay() : this._backoff.nextDelay());
  }

  _awaitToken(now, code, reason) {
    if (this.state === S.JOINING || this.state === S.LIVE) this._close = { code: GIVE_UP_CLOSE, reason: 'token expired' };
    this._stopLink();
    this._to(S.BACKOFF, reason || 'token expired');
    this._awaitingToken = true;
    this._emit('token-expired', {});
  }

  /** The server sent what we cannot apply: drop the link and resume (the Join says the last seq applied). */
  _fault(now, why) {
    this._linkFailed(now, null, why);
  }

  _emit(type, detail) {
    this._events.push({ ...detail, type }); // after the detail: an Error's own `type` must not replace it
  }

  // --- frames from the server ------------------------------------------------------------------

  receiveFrame(data, now) {
    const state = this.state;
    if (state !== S.JOINING && state !== S.LIVE) return; // a late frame of a link given up
    this._lastRx = now;
    let m;
    try {
      m = decodeFrame(data);
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      if (exc.code === ErrorCode.UNKNOWN_TYPE) return; // a message of a later minor version: not for us
      this._fault(now, `undecodable frame from the server: ${exc.message}`);
      return;
    }
    if (state === S.JOINING) this._joining(m, now);
    else this._live(m, now);
    if (this.state === S.LIVE) this._tick(now);
  }

  _joining(m, now) {
    if (m.type === 'Error' && m.code === ErrorCode.MOVED) {
      this.redirect = m.message || null;
      this._emit('error', { ...m, op: null, fatal: false });
      this._linkFailed(now, null, 'the room lives on another node', { moved: true });
      return;
    }
    if (m.type === 'Error') {
      if (m.code === ErrorCode.TOKEN_EXPIRED && this.renewToken) {
        this._emit('error', { ...m, op: null, fatal: false });
        this._awaitToken(now, null, `join refused: ${m.code} ${m.message}`);
        return;
      }
      const target = errorOutcome(m.code);
      this._emit('error', { ...m, op: null, fatal: false });
      if (target === S.BACKOFF) this._linkFailed(now, null, `join refused: ${m.code} ${m.message}`, { refused: true });
      else {
        this._close = { code: NORMAL_CLOSE, reason: 'join refused' };
        this._end(target, null, `join refused: ${m.code} ${m.message}`);
      }
    } else if (m.type === 'Welcome') {
      if (m.role !== this.role) this._fault(now, `welcomed as role ${m.role}, not ${this.role}`);
      else this._welcome(m, now);
    } else {
      this._fault(now, `expected a Welcome, got ${m.type}`);
    }
  }

  _welcome(w, now) {
    const previousEpoch = this.replica.epoch;
    this._moves = 0;
    this.welcome = w;
    this.rights = w.rights;
    this.granted = w.roster.find((e) => e.pid === w.pid)?.granted ?? 0; // what of `rights` a Grant gave us
    const rebuild = w.mode === CatchUp.SNAPSHOT || this._held !== null || !this._skipOwn;
    this.replica.welcome(w, rebuild);
    this._resync = false;
    if (rebuild) { // of pages now gone: applied again after the catch-up
      for (const entry of this.outbox.entries()) Object.assign(entry, { change: null, local: false });
    }
    if (previousEpoch !== 0 && previousEpoch !== w.epoch) this._enterNewRoom();
    const top = this.outbox.welcome(w.ackedCseq); // may renumber ops never sent
    this.cseq = Math.max(this.cseq, w.ackedCseq, top);
    for (const entry of this.outbox.entries()) {
      if (!this.may(rightFor(entry.op.type))) { // made before we knew our rights
        this.outbox.discard(entry.op.cseq);
        this._rollback(entry);
      }
    }
    // Local pages rebuilt from the catch-up (or never filled): our ops the server has not
    // processed are applied after it; those it has arrive in it.
    if (rebuild) this._held = this.outbox.ops();
    this._pacer = Pacer.under(w.ratePerS, w.rateBurst, now, this.config.paceRateFactor);
    this._window = Math.max(1, Math.floor(w.rateBurst / Math.max(1, this.config.windowDivisor)));
    this._pings.start(now);
    this._deadline = null;
    this._liveSince = now;
    this._catchingUp = true;
    this._to(S.LIVE);
    this._emit('welcome', { welcome: w });
    this._checkCaughtUp();
  }

  /** The room is a new one (evicted, or the server restarted): drop ops about strokes it never had. */
  _enterNewRoom() {
    const begun = new Set();
    for (const entry of this.outbox.entries()) {
      const op = entry.op;
      if (op.type === 'StrokeBegin') begun.add(op.stroke);
      else if (OWN_STROKE_OPS.has(op.type) && !begun.has(op.stroke)) {
        this.outbox.discard(op.cseq);
        this._forget(op.stroke);
      }
    }
  }

  _checkCaughtUp() {
    if (!this._catchingUp || this.welcome === null) return;
    if (this.replica.awaitingPages.size > 0 || this.replica.lastSeq < this.welcome.lastSeq) return;
    this._catchingUp = false;
    const held = this._held;
    this._held = null;
    const entries = new Map(this.outbox.entries().map((e) => [e.op, e]));
    for (const op of held ?? []) {
      const change = this._applyLocal(op);
      const entry = entries.get(op);
      if (entry) Object.assign(entry, { change, local: true }); // what a rebase or a rollback undoes
    }
    this._emit('change', { change: { page: null, kind: 'reset', pid: null, stroke: null } });
    this._emit('synced', {});
  }

  _applyLocal(op) {
    this.appliedCseq = Math.max(this.appliedCseq, op.cseq);
    try {
      return this.replica.applyLocal(this.pid, op);
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      return null; // e.g. points for a stroke a Clear removed: the server refuses them too (1008)
    }
  }

  _live(m, now) {
    switch (m.type) {
      case 'Event': this._event(m, now); break;
      case 'Ack':
        this.outbox.ack(m.cseq);
        if (this.outbox.ackedSentAt) this.batcher.observeAck(now - this.outbox.ackedSentAt);
        // the server has processed cseqs we never gave (another tab): number on past them, or
        // our next ops would be dropped as resends
        this.cseq = Math.max(this.cseq, m.cseq);
        if (m.seq) {
          this.replica.own(m.seq);
          this._checkCaughtUp();
        }
        break;
      case 'Snapshot':
        try {
          this.replica.snapshot(m);
        } catch (exc) {
          if (!(exc instanceof ProtocolError)) throw exc;
          this._resync = true;
          this._fault(now, `snapshot of page ${m.page} cannot be applied: ${exc.message}`);
          return;
        }
        this._checkCaughtUp();
        break;
      case 'Ping': this._out(msg.pong(m.ts, this.deviceMs(now)), now); break;
      case 'Pong': { // the server measures the clock offset from its own Pings; we show the round trip
        const rtt = this.deviceMs(now) - m.echo;
        if (rtt >= 0) {
          this.rttMs = rtt;
          this._emit('rtt', { rttMs: rtt });
        }
        break;
      }
      case 'Error': this._error(m); break;
      case 'AudioRelay': this._emit('audio', { relay: m }); break;
      case 'RtcAnswer': this._emit('rtc-answer', { sdp: m.sdp }); break;
      default: this._fault(now, `${m.type} is not sent by a server to a live client`);
    }
  }

  _event(ev, now) {
    const own = this._skipOwn && !this._catchingUpRebuild();
    let change;
    const rebases = this.replica.rebases;
    try { // beneath our unacknowledged ops where order matters (Replica.rebase)
      change = this.replica.rebase(() => this.outbox.entries(), ev.body,
        () => this.replica.event(ev, own ? this.appliedCseq : 0));
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      // not a gap (a resume fills that): our pages are not the room's, rebuild them from the start
      if (ev.seq === this.replica.lastSeq + 1) this._resync = true;
      this._fault(now, `event ${ev.seq} cannot be applied: ${exc.message}`);
      return;
    }
    if (change === null) return;
    if (this.replica.rebases !== rebases && !this._catchingUp) { // our ops' strokes may have moved too
      this._emit('change', { change: { page: null, kind: 'reset', pid: null, stroke: null } });
    }
    if (change.kind === 'clear') { // our open strokes on that page are gone: send nothing more for them
      for (const s of change.removed) if (s.pid === this.pid) this._forget(s.stroke);
    } else if (change.kind === 'undo' && ev.body.author === this.pid) { // another took our stroke away
      this._forget(ev.body.stroke);
    }
    const granted = change.kind === 'grant' && ev.body.pid === this.pid && this.rights !== null;
    if (granted) { // what was granted to us is replaced by the Grant's rights
      this.rights = (this.rights & ~this.granted) | ev.body.rights;
      this.granted = ev.body.rights;
    }
    if (this._catchingUp) {
      this._checkCaughtUp();
      return; // the views redraw everything at the end of the catch-up
    }
    if (granted) this._emit('rights', { rights: this.rights, granted: this.granted });
    if (change.kind === 'presence') {
      const b = ev.body;
      this._emit('presence', { pid: ev.pid, role: b.role, userId: b.userId, online: b.online, left: Boolean(b.left) });
    } else if (change.kind === 'roster') this._emit('roster', { changes: ev.body.changes });
    else if (change.kind === 'mute') this._emit('mute', { pid: ev.pid, muted: ev.body.muted });
    else if (change.kind === 'class') this._classChange(ev);
    else if (change.kind !== 'own') this._emit('change', { change });
  }

  /** A class op's event: on stage our rights gain ink and voice, and lose them when we leave it. */
  _classChange(ev) {
    const op = ev.body;
    if (op.type === 'Stage' && op.pid === this.pid && this.rights !== null) { // only a viewer moves on stage
      if (op.action === StageAction.ACCEPT) this.rights |= STAGE_RIGHTS;
      else if (op.action === StageAction.LEAVE) this.rights &= ~STAGE_RIGHTS;
    }
    this._emit('class', { pid: ev.pid, op });
  }

  /** During a catch-up that rebuilds the pages, every event is applied, our own included. */
  _catchingUpRebuild() {
    return this._catchingUp && this._held !== null;
  }

  _error(e) {
    if (e.ref) {
      const entry = this.outbox.discard(e.ref);
      if (entry) this._rollback(entry);
      this._emit('error', { ...e, op: entry?.op ?? null, fatal: false });
    } else {
      this._lastError = e.code;
      if (e.code === ErrorCode.MOVED) this.redirect = e.message || null; // the close 4013 follows
      this._emit('error', { ...e, op: null, fatal: false });
    }
  }

  /** A refused op (its outbox entry) is not in the session: undo what applying it locally did. */
  _rollback(entry) {
    const { op, change } = entry;
    if (op.type === 'StrokeBegin') this._forget(op.stroke);
    if (op.type === 'StrokePoints') this._stalled.add(op.stroke); // the server's stroke ends at `start`: 1015 after it
    const later = this.outbox.entries().filter((e) => e.op.cseq > op.cseq);
    const page = this.replica.refuse(later, entry);
    if (op.type === 'Mute' && change) this._emit('mute', { pid: this.pid, muted: change.previous });
    this._emit('change', { change: { page, kind: 'rollback', pid: this.pid, stroke: op.stroke ?? null } });
  }

  // --- sending ---------------------------------------------------------------------------------

  /** A frame that does not wait for pacing (it still counts against it). */
  _out(m, now) {
    this._send.push(encodeMessage(m));
    if (this._pacer !== null) this._pacer.spend(now);
  }

  /** Send waiting ops while the in-flight window and the pacing allow. */
  _pump(now) {
    const pacer = this._pacer;
    const outbox = this.outbox;
    this._holdUntil = null;
    if (pacer === null || this.state !== S.LIVE) return;
    while (outbox.waiting && outbox.inFlight < this._window) {
      const next = outbox.peek();
      if ((next.op.type === 'StrokePoints' || next.op.type === 'StrokeEnd') && this._dead.has(next.op.stroke)) {
        // undone or cleared before it went out: the server would refuse it (1008), spending the
        // error budget; its cseq is simply skipped (gaps are allowed)
        outbox.discard(next.op.cseq);
        continue;
      }
      if (!pacer.ready(now)) return;
      if (outbox.waiting === 1 && next.op.type === 'StrokePoints') {
        // the newest batch: on a slow link, let more points join it (the backlog counts once
        // its acks come back late; a window that is merely full waits and merges anyway)
        const hold = this.batcher.holdS();
        if (hold > 0 && now < next.queuedAt + hold) {
          this._holdUntil = next.queuedAt + hold;
          return;
        }
      }
      outbox.nextToSend();
      next.sentAt = now;
      pacer.spend(now);
      this._send.push(next.frame);
    }
  }

  /** Number, keep, apply locally and (when the link and pacing allow) send one op; null when not taken. */
  submit(now, op) {
    if (this.state === S.CLOSED || this.state === S.FAILED) throw new SessionMisuse(`no ops after the session ${this.state}`);
    if (!this.may(rightFor(op.type))) {
      this._emit('error', { code: ErrorCode.FORBIDDEN, message: `our rights do not allow ${op.type}`, ref: 0, op,
        fatal: false });
      return null;
    }
    op.cseq = this.cseq + 1;
    const frame = encodeMessage(op);
    if (!this.outbox.fits(frame.length)) {
      this._emit('error', { code: 0, message: `the outbox holds ${this.outbox.size} ops (${this.outbox.bytes} bytes)`,
        ref: 0, op, fatal: false });
      return null;
    }
    this.cseq = op.cseq;
    let change = null;
    if (this._held !== null) this._held.push(op); // before the first Welcome, or during a rebuilding catch-up
    else change = this._applyLocal(op);
    this.outbox.push({ op, frame, change, local: this._held === null }, now);
    if (change) {
      if (change.kind === 'mute') this._emit('mute', { pid: this.pid, muted: op.muted });
      else this._emit('change', { change });
    }
    if (this.state === S.LIVE) this._pump(now);
    return op;
  }

  _newStrokeId(now) {
    const maxSeen = this.replica.maxStrokeId.get(this.pid) ?? 0;
    const clock = Math.floor((this.deviceMs(now) - STROKE_ID_EPOCH_MS) / 100); // ids of a reloaded page differ
    let id = Math.max(this._lastStrokeId + 1, maxSeen + 1, clock);
    if (id > U32) id = maxSeen + 1;
    this._lastStrokeId = id;
    return id;
  }

  _forget(strokeId) {
    this._writers.delete(strokeId);
    this._dead.add(strokeId);
  }

  // --- ops -------------------------------------------------------------------------------------

  /**
   * Open a stroke; its id, or null when not taken. `color` is 0xRRGGBBAA; `flags` says which
   * channels the points carry (HAS_PRESSURE, HAS_TILT); `deviceT0` is the stroke's start on the
   * device clock (Unix ms), point times are offsets from it.
   */
  beginStroke(now, { page = this.currentPage, tool = Tool.PEN, color = 0x000000ff, width = 20, flags = HAS_PRESSURE,
    deviceT0 = null } = {}) {
    const id = this._newStrokeId(now);
    const t0 = Math.max(0, Math.floor(deviceT0 ?? this.deviceMs(now)));
    const op = msg.strokeBegin(0, id, page, tool, color >>> 0, clampInt(width, 1, 65_535), flags & 3, t0);
    if (this.submit(now, op) === null) return null;
    this._writers.set(id, { flags: flags & 3, state: new PointState(), lastT: 0 });
    return id;
  }

  /**
   * Append points `{x, y, t, pressure, tiltX, tiltY}` to an open stroke (clamped to their
   * ranges, split at maxPointsPerMessage). False if not all were taken: the stroke then takes no
   * more points (a gap would have every later batch refused), only its end.
   */
  addPoints(now, strokeId, points) {
    const w = this._writers.get(strokeId);
    if (w === undefined || this._dead.has(strokeId) || this._stalled.has(strokeId)) return false;
    const max = SEND_LIMITS.maxCoordinate;
    const clean = points.map((p) => {
      const t = Math.min(MAX_TIME_OFFSET_MS, Math.max(w.lastT, Math.round(p.t || 0)));
      w.lastT = t;
      return {
        x: clampInt(p.x, 0, max), y: clampInt(p.y, 0, max), t,
        pressure: w.flags & HAS_PRESSURE ? clampInt(p.pressure ?? 0, 0, PRESSURE_MAX) : 0,
        tiltX: w.flags & HAS_TILT ? clampInt(p.tiltX ?? 0, -TILT_MAX, TILT_MAX) : 0,
        tiltY: w.flags & HAS_TILT ? clampInt(p.tiltY ?? 0, -TILT_MAX, TILT_MAX) : 0,
      };
    });
    const step = this.config.maxPointsPerMessage;
    for (let i = 0; i < clean.length; i += step) {
      const batch = clean.slice(i, i + step);
      const trial = w.state.copy();
      const start = trial.count;
      const blob = encodePoints(batch, w.flags, trial);
      if (this.submit(now, msg.strokePoints(0, strokeId, start, batch.length, blob)) === null) {
        this._stalled.add(strokeId);
        return false;
      }
      w.state = trial;
    }
    return true;
  }

  endStroke(now, strokeId) {
    const known = this._writers.delete(strokeId);
    this._stalled.delete(strokeId);
    if (!known || this._dead.has(strokeId)) return false;
    return this.submit(now, msg.strokeEnd(0, strokeId)) !== null;
  }

  /** Add page `page` (default: a new last page); its index, or null when not taken. */
  addPage(now, page = this.pageCount) {
    return this.submit(now, msg.pageAdd(0, page)) === null ? null : page;
  }

  /** Look at `page` (everyone sees where everyone is). */
  switchPage(now, page) {
    if (!(page >= 0 && page < this.pageCount)) return false;
    return this.submit(now, msg.pageSwitch(0, page)) !== null;
  }

  /**
   * Remove one of our own strokes, or with UNDO_OTHERS one of participant `author`'s; false if
   * there is no such stroke or our rights do not allow it.
   */
  undo(now, strokeId, author = 0) {
    const whose = author || this.pid;
    if (!this.replica.find(whose, strokeId) || !this.may(Rights.INK)) return false;
    if (whose !== this.pid && !this.may(Rights.UNDO_OTHERS)) return false;
    if (whose === this.pid) this._forget(strokeId);
    return this.submit(now, msg.undo(0, strokeId, whose === this.pid ? 0 : whose)) !== null;
  }

  /** Remove every stroke (of everyone) on `page`. */
  clear(now, page = this.currentPage) {
    if (!(page >= 0 && page < this.pageCount) || !this.may(Rights.CLEAR)) return false;
    for (const s of this.replica.pages[page].values()) if (s.pid === this.pid) this._forget(s.stroke);
    return this.submit(now, msg.clear(0, page)) !== null;
  }

  /** The number of cleared layers `page` keeps (what `restore` can bring back, newest first). */
  clearedLayers(page = this.currentPage) {
    return this.replica.cleared.get(page)?.length ?? 0;
  }

  /** Bring back what `page`'s latest Clear took, beneath what was drawn since (the undo of a clear). */
  restore(now, page = this.currentPage) {
    if (!(page >= 0 && page < this.pageCount) || !this.may(Rights.CLEAR) || this.clearedLayers(page) === 0) return false;
    return this.submit(now, msg.restore(0, page)) !== null;
  }

  /** Grant participant `pid` `rights` (of GRANTABLE) beyond its role's; 0 takes them back. Needs MODERATE. */
  grant(now, pid, rights) {
    if (!this.may(Rights.MODERATE) || pid === this.pid || (rights & ~GRANTABLE) !== 0) return false;
    return this.submit(now, msg.grant(0, pid, rights)) !== null;
  }

  /** Tell the room our microphone is muted (the server then drops our audio). */
  mute(now, muted) {
    return this.submit(now, msg.mute(0, Boolean(muted))) !== null;
  }

  // A class's floor (docs/protocol.md 4.5.1): the room decides each, so the replica shows them
  // when their events come, our own included. Each returns false when the op was not taken.

  hand(now, raised) {
    return this.submit(now, msg.hand(0, Boolean(raised))) !== null;
  }

  ask(now, text) {
    return this.submit(now, msg.question(0, String(text))) !== null;
  }

  stage(now, pid, action) {
    return this.submit(now, msg.stage(0, pid, action)) !== null;
  }

  moderate(now, pid, action) {
    return this.submit(now, msg.moderate(0, pid, action)) !== null;
  }

  /**
   * One Opus packet as an `Audio` frame (docs/protocol.md 11.1): live only, never kept or resent
   * (wire/session/client.py send_audio); false when not live. `captureTs` defaults to now on the
   * device clock.
   */
  sendAudio(now, seq, payload, captureTs = null) {
    if (this.state !== S.LIVE) return false;
    const ts = captureTs === null ? Math.max(0, Math.round(this.deviceMs(now))) : captureTs;
    this._out({ type: 'Audio', seq: seq >>> 0, captureTs: ts, payload }, now);
    return true;
  }

  /**
   * WebRTC signalling: `{type: 'RtcOffer', sdp}`, `{type: 'RtcCandidate', candidate, sdpMid,
   * sdpMlineIndex}` or `{type: 'RtcClose'}`. Live only, never kept: false when not live.
   */
  sendSignal(now, signal) {
    if (!SIGNAL_TYPES.has(signal.type)) throw new TypeError(`not a signal: ${signal.type}`);
    if (this.state !== S.LIVE) return false;
    const m = signal.type === 'RtcCandidate'
      ? msg.rtcCandidate(signal.candidate ?? '', signal.sdpMid ?? '', signal.sdpMlineIndex ?? 0)
      : { ...signal };
    this._out(m, now);
    return true;
  }
}
