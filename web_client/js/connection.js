// The I/O shell around the session machine (wire/session/client.js): the WebSocket, the one
// timer and the clock, nothing else. Every decision is the machine's; this file carries it out.
//
//   const session = new SessionConnection({url, token, role});   // role: 'tutor' | 'student' | a Role
//   session.addEventListener('change', (e) => ...);               // see the events below
//   await session.connect();                                      // the first Welcome
//
// Events (it is an EventTarget; `detail` as the machine's events, wire/session/client.js):
//   'state' (detail: the state name), 'welcome' (the Welcome), 'change' (the change), 'synced',
//   'presence' ({pid, role, userId, online}), 'mute' ({pid, muted}), 'rtt' ({rttMs}),
//   'audio' (the AudioRelay), 'rtc-answer' ({sdp}), 'error' ({code, message, ref, op, fatal}),
//   'class' ({pid, op}: a class's Hand, Question, Stage or Moderate as the room decided it).
// `refreshToken` (async () => a fresh join token) renews a token that expired mid-session.

import { roleFromLabel } from './wire/roles.js';
import { ClientSession } from './wire/session/client.js';
import { ClientState } from './wire/session/states.js';

/** '#RRGGBB' or '#RRGGBBAA' (or a number) as the wire's 0xRRGGBBAA. */
export function colorToWire(color) {
  if (typeof color === 'number') return color >>> 0;
  const hex = String(color).replace(/^#/, '');
  const value = Number.parseInt(hex.length === 6 ? `${hex}ff` : hex, 16);
  return Number.isFinite(value) ? value >>> 0 : 0x000000ff;
}

const ENDS = new Set([ClientState.CLOSED, ClientState.FAILED]);
const LINKED = new Set([ClientState.CONNECTING, ClientState.JOINING, ClientState.LIVE]);

export class SessionConnection extends EventTarget {
  constructor({ url, token, role, refreshToken = null, config = {}, WebSocketImpl = globalThis.WebSocket } = {}) {
    super();
    this.url = url;
    this.refreshToken = refreshToken;
    this.WebSocketImpl = WebSocketImpl;
    this.machine = new ClientSession({
      token, role: roleFromLabel(role), config, deviceOriginMs: performance.timeOrigin,
      renewToken: refreshToken !== null,
    });
    this._ws = null;
    this._timer = null;
    this._timerAt = null;
    this._servicing = false;
    this._again = false;
    this._waiters = [];
    this._onOnline = () => this._call((now) => { if (this.state === ClientState.BACKOFF) this.machine.connect(now); });
    if (typeof window !== 'undefined') window.addEventListener('online', this._onOnline);
  }

  // --- what the views read -----------------------------------------------------------------------

  get state() { return this.machine.state; }

  get replica() { return this.machine.replica; }

  get welcome() { return this.machine.welcome; }

  get token() { return this.machine.token; }

  get role() { return this.machine.role; }

  get pid() { return this.machine.pid; }

  get rights() { return this.machine.rights; }

  get currentPage() { return this.machine.currentPage; }

  get pageCount() { return this.machine.pageCount; }

  get rttMs() { return this.machine.rttMs; }

  get closeCode() { return this.machine.closeCode; }

  /** Whether our rights allow `right` (wire/roles.js Rights). */
  may(right) { return this.machine.may(right); }

  /** The pid of the participant with `role` (the other party of a one-on-one), or null. */
  pidOf(role) { return this.replica.pidOf(roleFromLabel(role)); }

  isMuted(pid) { return Boolean(pid !== null && this.replica.participant(pid)?.muted); }

  isOnline(pid) { return Boolean(pid !== null && this.replica.participant(pid)?.online); }

  // --- the connection ------------------------------------------------------------------------------

  /** Join; resolves with the first Welcome, rejects when the connection ends before one. */
  connect() {
    if (this.machine.welcome !== null && !ENDS.has(this.state)) return Promise.resolve(this.machine.welcome);
    const p = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === ClientState.IDLE) this._call((now) => this.machine.connect(now));
    else if (ENDS.has(this.state)) this._settle(new Error(`the connection has ${this.state}`));
    return p;
  }

  /** Leave for good. */
  close() {
    this._call((now) => this.machine.close(now));
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onOnline);
    clearTimeout(this._timer);
    this._timer = null;
  }

  /** Cut the connection as a lost network would, and resume (tests and "reconnect now"). */
  drop() {
    const ws = this._detach();
    if (ws === null) return;
    try { ws.close(); } catch { /* closing already */ }
    this._call((now) => this.machine.connectionLost(now, null, 'dropped by the client'));
  }

  // --- ops (wire/session/client.js ClientSession) -------------------------------------------------

  beginStroke(options = {}) {
    const { color = 0x000000ff, ...rest } = options;
    return this._call((now) => this.machine.beginStroke(now, { ...rest, color: colorToWire(color) }));
  }

  addPoints(strokeId, points) { return this._call((now) => this.machine.addPoints(now, strokeId, points)); }

  endStroke(strokeId) { return this._call((now) => this.machine.endStroke(now, strokeId)); }

  addPage(page = this.pageCount) { return this._call((now) => this.machine.addPage(now, page)); }

  switchPage(page) { return this._call((now) => this.machine.switchPage(now, page)); }

  undo(strokeId, author = 0) { return this._call((now) => this.machine.undo(now, strokeId, author)); }

  clear(page = this.currentPage) { return this._call((now) => this.machine.clear(now, page)); }

  restore(page = this.currentPage) { return this._call((now) => this.machine.restore(now, page)); }

  clearedLayers(page = this.currentPage) { return this.machine.clearedLayers(page); }

  grant(pid, rights) { return this._call((now) => this.machine.grant(now, pid, rights)); }

  get granted() { return this.machine.granted ?? 0; }

  mute(muted) { return this._call((now) => this.machine.mute(now, muted)); }

  sendSignal(signal) { return this._call((now) => this.machine.sendSignal(now, signal)); }

  /** An Opus packet over the WebSocket (voice via relay, audio.js); false when not live. */
  sendAudio(seq, payload, captureTs = null) { return this._call((now) => this.machine.sendAudio(now, seq, payload, captureTs)); }

  // a class's floor (wire/messages.js StageAction, ModAction); the room decides, the 'class' event tells
  hand(raised) { return this._call((now) => this.machine.hand(now, raised)); }

  ask(text) { return this._call((now) => this.machine.ask(now, text)); }

  stage(pid, action) { return this._call((now) => this.machine.stage(now, pid, action)); }

  moderate(pid, action) { return this._call((now) => this.machine.moderate(now, pid, action)); }

  // --- the shell ---------------------------------------------------------------------------------

  /** Run one input into the machine at the current time, then carry out what it asks. */
  _call(input) {
    const result = input(performance.now() / 1000);
    this._service();
    return result;
  }

  _service() {
    if (this._servicing) { // a listener called in: the outer loop picks its outputs up, in order
      this._again = true;
      return;
    }
    this._servicing = true;
    try {
      do {
        this._again = false;
        this._carry();
        for (const e of this.machine.events()) this._dispatch(e);
      } while (this._again);
    } finally {
      this._servicing = false;
    }
    this._arm();
  }

  /** Send what the machine has for the link, close it if asked to, open a new one if asked to. */
  _carry() {
    const ws = this._ws;
    for (const frame of this.machine.dataToSend()) {
      if (ws === null || ws.readyState !== 1) break; // the close event follows; the outbox keeps ops
      try { ws.send(frame); } catch { break; /* likewise */ }
    }
    const close = this.machine.takeCloseRequest();
    if (close !== null || (this._ws !== null && !LINKED.has(this.state))) { // a link given up, or an attempt abandoned
      const gone = this._detach();
      try { gone?.close(close?.code ?? 4000, (close?.reason ?? 'given up').slice(0, 120)); } catch { /* closing already */ }
    }
    if (this.machine.takeOpenRequest()) this._open();
  }

  _open() {
    this._detach();
    let ws;
    try {
      ws = new this.WebSocketImpl(this.machine.redirect || this.url); // a 2010 MOVED names the room's node
    } catch (exc) {
      queueMicrotask(() => this._call((now) => this.machine.connectionLost(now, null, String(exc))));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    ws.onopen = () => this._call((now) => this.machine.connectionMade(now));
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') return; // the server sends binary frames only
      this._call((now) => this.machine.receiveFrame(new Uint8Array(e.data), now));
    };
    ws.onclose = (e) => {
      if (this._ws !== ws) return;
      this._detach();
      this._call((now) => this.machine.connectionLost(now, e.code === 1006 || !e.code ? null : e.code, e.reason));
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  /** Forget the current socket (its events no longer reach the machine); returns it. */
  _detach() {
    const ws = this._ws;
    this._ws = null;
    if (ws !== null) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    return ws;
  }

  _arm() {
    const at = this.machine.getTimer();
    if (at === this._timerAt && (at === null || this._timer !== null)) return;
    clearTimeout(this._timer);
    this._timer = null;
    this._timerAt = at;
    if (at === null) return;
    const wait = Math.max(0, at * 1000 - performance.now());
    this._timer = setTimeout(() => {
      this._timer = null;
      this._timerAt = null;
      this._call((now) => this.machine.handleTimer(now));
    }, Math.ceil(wait));
  }

  _dispatch(e) {
    const { type, ...detail } = e;
    switch (type) {
      case 'state':
        this._emit('state', detail.state);
        if (ENDS.has(detail.state)) this._settle(new Error(`the connection has ${detail.state}`));
        return;
      case 'welcome':
        this._emit('welcome', detail.welcome);
        this._settle(detail.welcome);
        return;
      case 'change': this._emit('change', detail.change); return;
      case 'audio': this._emit('audio', detail.relay); return;
      case 'token-expired': this._renew(); return;
      default: this._emit(type, detail);
    }
  }

  _renew() {
    Promise.resolve().then(() => this.refreshToken()).then(
      (token) => this._call((now) => this.machine.setToken(token, now)),
      (exc) => this._call((now) => this.machine.tokenUnavailable(now, String(exc))),
    );
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _settle(result) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) {
      if (result instanceof Error) w.reject(result);
      else w.resolve(result);
    }
  }
}
