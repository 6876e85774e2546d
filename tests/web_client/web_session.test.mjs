// The browser's session machine (web_client/js/wire/session/), sans-I/O: time is stepped by
// hand, frames go in as bytes and come out as bytes. Run by tests/web_client/test_web_session.py
// (`node --test`).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeFrame, encodeMessage } from '../../web_client/js/wire/codec.js';
import { ErrorCode } from '../../web_client/js/wire/errors.js';
import { PointState, encodePoints } from '../../web_client/js/wire/ink.js';
import { CatchUp, ModAction, StageAction, msg } from '../../web_client/js/wire/messages.js';
import { ALL_RIGHTS, Rights, Role } from '../../web_client/js/wire/roles.js';
import { LinkBatcher } from '../../web_client/js/wire/session/batching.js';
import { ClientSession } from '../../web_client/js/wire/session/client.js';
import { CLIENT_TRANSITIONS, ClientState, IllegalTransition } from '../../web_client/js/wire/session/states.js';

const STUDENT_RIGHTS = Rights.INK | Rights.PAGES | Rights.AUDIO; // a student clears only its own ink
const EPOCH = 777;

function welcome(overrides = {}) {
  return {
    type: 'Welcome', version: 2, pid: 2, role: Role.STUDENT, userId: 'stu', sessionId: 's1', sessionMs: 10,
    lastSeq: 0, ackedCseq: 0, mode: CatchUp.REPLAY, pageCount: 1, epoch: EPOCH, ratePerS: 200, rateBurst: 400,
    rights: STUDENT_RIGHTS,
    roster: [
      { pid: 1, userId: 'tut', role: Role.TUTOR, online: true, muted: false, currentPage: 0 },
      { pid: 2, userId: 'stu', role: Role.STUDENT, online: true, muted: false, currentPage: 0 },
    ],
    ...overrides,
  };
}

/** A machine and the frames it sent, decoded. */
class Rig {
  constructor(options = {}) {
    this.now = 0;
    this.s = new ClientSession({ token: 'tok', role: Role.STUDENT, random: () => 0.999999, ...options });
    this.sent = [];
    this.opens = 0;
    this.closes = [];
    this.seen = [];
  }

  drain() {
    for (const frame of this.s.dataToSend()) this.sent.push(decodeFrame(frame));
    const close = this.s.takeCloseRequest();
    if (close !== null) this.closes.push(close.code);
    if (this.s.takeOpenRequest()) this.opens += 1;
    this.seen.push(...this.s.events());
    return this;
  }

  take(type = null) {
    this.drain();
    const out = type === null ? this.sent : this.sent.filter((m) => m.type === type);
    this.sent = type === null ? [] : this.sent.filter((m) => m.type !== type);
    return out;
  }

  at(t) {
    this.now = t;
    this.s.handleTimer(t);
    return this.drain();
  }

  /** Run the timers up to `t`, as the shell would. */
  until(t) {
    for (;;) {
      const due = this.s.getTimer();
      if (due === null || due > t) break;
      this.at(Math.max(due, this.now));
    }
    this.now = t;
    return this;
  }

  feed(message) {
    this.s.receiveFrame(encodeMessage(message), this.now);
    return this.drain();
  }

  join(w = {}) {
    if (this.s.state === ClientState.IDLE) this.s.connect(this.now);
    this.s.connectionMade(this.now);
    this.feed(welcome(w));
    return this;
  }
}

test('every transition of the table is reachable from its state only', () => {
  for (const state of Object.values(ClientState)) {
    const final = [ClientState.CLOSED, ClientState.FAILED].includes(state);
    assert.equal(CLIENT_TRANSITIONS[state].length === 0, final, state);
  }
  const r = new Rig();
  assert.throws(() => r.s.connectionMade(0), IllegalTransition); // IDLE: there is no link
  r.s.close(0);
  assert.equal(r.s.state, ClientState.CLOSED);
  assert.throws(() => r.s.connect(0), IllegalTransition); // CLOSED is final
});

test('connect, join with the role, welcome: live, with the roster by pid', () => {
  const r = new Rig();
  r.s.connect(0);
  r.drain();
  assert.equal(r.opens, 1);
  assert.equal(r.s.state, ClientState.CONNECTING);
  r.s.connectionMade(0.01);
  const [join] = r.take('Join');
  assert.deepEqual(join, { type: 'Join', version: 2, token: 'tok', role: Role.STUDENT, lastSeq: 0, epoch: 0 });
  assert.equal(r.s.state, ClientState.JOINING);
  r.feed(welcome());
  assert.equal(r.s.state, ClientState.LIVE);
  assert.equal(r.s.pid, 2);
  assert.equal(r.s.replica.pidOf(Role.TUTOR), 1);
  assert.equal(r.s.replica.participant(1).userId, 'tut');
  assert.deepEqual(r.seen.filter((e) => e.type === 'state').map((e) => e.state), ['connecting', 'joining', 'live']);
  assert.ok(r.seen.some((e) => e.type === 'synced'));
  // a presence event brings a participant the roster did not have
  r.feed({ type: 'Event', seq: 1, sessionMs: 20, pid: 3, cseq: 0, body: { type: 'Presence', userId: 'v', online: true, role: Role.VIEWER } });
  assert.equal(r.s.replica.pidOf(Role.VIEWER), 3);
  assert.deepEqual(r.seen.at(-1), { type: 'presence', pid: 3, role: Role.VIEWER, userId: 'v', online: true, left: false });
});

test('pings go out 0, 0.1, 0.25, 0.5 and 1 s after the welcome, then every 2.5 s; Pings are answered', () => {
  const r = new Rig();
  r.join();
  const times = [];
  for (const m of r.take('Ping')) times.push(0);
  for (let step = 1; step <= 700; step++) {
    r.until(step / 100);
    for (const m of r.take('Ping')) times.push(Math.round(r.now * 100) / 100);
    if (step % 100 === 0) r.feed({ type: 'Ack', cseq: 0, seq: 0 }); // a frame now and then keeps it live
  }
  assert.deepEqual(times, [0, 0.1, 0.25, 0.5, 1, 3.5, 6]);
  r.feed({ type: 'Ping', ts: 42 });
  const [pong] = r.take('Pong');
  assert.equal(pong.echo, 42);
});

test('backoff: full jitter under min(1 s, 0.1 s * 2^n); a link live for 2 s starts it over', () => {
  const r = new Rig();
  r.join();
  const delays = [];
  for (let i = 0; i < 6; i++) {
    r.s.connectionLost(r.now, null, '');
    assert.equal(r.s.state, ClientState.BACKOFF);
    const due = r.s.getTimer();
    delays.push(Math.round((due - r.now) * 1000) / 1000);
    r.at(due);
    assert.equal(r.s.state, ClientState.CONNECTING);
    r.join();
  }
  assert.deepEqual(delays, [0.1, 0.2, 0.4, 0.8, 1, 1]);
  r.now += 2.5; // stable
  r.feed({ type: 'Ack', cseq: 0, seq: 0 });
  r.s.connectionLost(r.now, 1011, 'internal error');
  assert.equal(r.s.state, ClientState.BACKOFF, 'an internal error (1011) is resumed');
  assert.equal(Math.round((r.s.getTimer() - r.now) * 1000), 100);
  const zero = new Rig({ random: () => 0 });
  zero.join();
  zero.s.connectionLost(0, null, '');
  assert.equal(zero.s.getTimer(), 0, 'full jitter reaches 0');
});

test('close codes: final ones fail, 1000 and 4006 close, everything else resumes', () => {
  const cases = [[1000, 'closed'], [4006, 'closed'], [4001, 'failed'], [4002, 'failed'], [4003, 'failed'],
    [4004, 'failed'], [4009, 'failed'], [1006, 'backoff'], [1011, 'backoff'], [1012, 'backoff'], [4000, 'backoff'],
    [4005, 'backoff'], [4007, 'backoff'], [4008, 'backoff'], [4010, 'backoff'], [4011, 'backoff'], [4012, 'backoff']];
  for (const [code, state] of cases) {
    const r = new Rig();
    r.join();
    r.s.connectionLost(1, code, '');
    r.drain();
    assert.equal(r.s.state, state, `close ${code}`);
    assert.equal(r.seen.some((e) => e.type === 'error' && e.fatal), state !== 'backoff', `close ${code}`);
  }
  // the Error before the close says why: replaced is final, the session ended closes
  for (const [code, state] of [[ErrorCode.REPLACED, 'failed'], [ErrorCode.SESSION_ENDED, 'closed'],
    [ErrorCode.INTERNAL_ERROR, 'backoff']]) {
    const r = new Rig();
    r.join();
    r.feed({ type: 'Error', code, message: 'x', ref: 0 });
    r.s.connectionLost(1, null, '');
    assert.equal(r.s.state, state, `error ${code}`);
  }
});

test('join refusals: final codes fail, 2007 closes, the rest retry after 2.5-5 s', () => {
  for (const [code, state] of [[2001, 'failed'], [2002, 'failed'], [2003, 'failed'], [2004, 'failed'],
    [2005, 'failed'], [3001, 'failed'], [2007, 'closed'], [2006, 'backoff'], [2008, 'backoff'], [2009, 'backoff'],
    [3004, 'backoff'], [1001, 'backoff']]) {
    const r = new Rig();
    r.s.connect(0);
    r.s.connectionMade(0);
    r.feed({ type: 'Error', code, message: 'no', ref: 0 });
    assert.equal(r.s.state, state, `error ${code}`);
    assert.equal(r.closes.length, 1, 'the client closes the refused link');
    if (state === 'backoff') {
      const wait = r.s.getTimer();
      assert.ok(wait >= 2.5 && wait <= 5, `${code}: ${wait}`);
    }
    r.s.connectionLost(0.1, 4001, ''); // the server's close of that link changes nothing now
    assert.equal(r.s.state, state);
  }
});

test('an expired token is renewed when the session was made to renew it', () => {
  const r = new Rig({ renewToken: true });
  r.s.connect(0);
  r.s.connectionMade(0);
  r.feed({ type: 'Error', code: ErrorCode.TOKEN_EXPIRED, message: 'expired', ref: 0 });
  assert.equal(r.s.state, ClientState.BACKOFF);
  assert.ok(r.seen.some((e) => e.type === 'token-expired'));
  assert.equal(r.s.getTimer(), null, 'no retry until a token comes');
  r.take();
  r.s.setToken('fresh', 1);
  r.at(1);
  assert.equal(r.s.state, ClientState.CONNECTING);
  r.s.connectionMade(1);
  assert.equal(r.take('Join')[0].token, 'fresh');
  r.feed(welcome());
  r.s.connectionLost(2, 4002, 'token expired');
  assert.equal(r.s.state, ClientState.BACKOFF);
  r.s.tokenUnavailable(3, 'no network');
  assert.equal(r.s.state, ClientState.FAILED);
});

test('timeouts: no welcome in 10 s, no frame for 8 s', () => {
  const r = new Rig();
  r.s.connect(0);
  r.s.connectionMade(0.5);
  r.until(9.9);
  assert.equal(r.s.state, ClientState.JOINING);
  r.until(10.01);
  assert.equal(r.s.state, ClientState.BACKOFF);
  assert.deepEqual(r.closes, [4000]);
  const idle = new Rig();
  idle.join();
  idle.until(7.9);
  assert.equal(idle.s.state, ClientState.LIVE);
  idle.until(8.01);
  assert.equal(idle.s.state, ClientState.BACKOFF);
});

test('ops before the welcome continue from acked_cseq; after a drop the unacked are resent with their cseqs', () => {
  const r = new Rig();
  r.s.connect(0);
  const id = r.s.beginStroke(0, { page: 0, color: 0x112233ff, width: 30 });
  r.s.addPoints(0, id, [{ x: 10, y: 10, t: 0, pressure: 100 }, { x: 12, y: 11, t: 8, pressure: 200 }]);
  r.s.connectionMade(0);
  r.take();
  r.feed(welcome({ ackedCseq: 41 }));
  const ops = r.take().filter((m) => m.type !== 'Ping');
  assert.deepEqual(ops.map((m) => [m.type, m.cseq]), [['StrokeBegin', 42], ['StrokePoints', 43]]);
  r.s.endStroke(0.1, id);
  assert.deepEqual(r.take('StrokeEnd').map((m) => m.cseq), [44]);
  r.feed({ type: 'Ack', cseq: 42, seq: 1 });
  r.s.connectionLost(0.2, null, '');
  r.at(r.s.getTimer());
  r.s.connectionMade(r.now);
  const [join] = r.take('Join');
  assert.deepEqual([join.lastSeq, join.epoch], [1, EPOCH]);
  r.feed(welcome({ lastSeq: 1, ackedCseq: 42 }));
  const resent = r.take().filter((m) => m.type !== 'Ping');
  assert.deepEqual(resent.map((m) => [m.type, m.cseq]), [['StrokePoints', 43], ['StrokeEnd', 44]]);
  assert.equal(r.s.outbox.size, 2);
  r.feed({ type: 'Ack', cseq: 44, seq: 3 });
  assert.equal(r.s.outbox.size, 0);
  assert.equal(r.s.replica.lastSeq, 3);
  assert.equal(r.s.replica.find(2, id).points.length, 2);
});

test('the in-flight window holds ops back until an Ack; points merge into the waiting op', () => {
  const r = new Rig();
  r.join({ rateBurst: 8 }); // window 2
  r.take();
  const id = r.s.beginStroke(0);
  r.s.addPoints(0, id, [{ x: 1, y: 1, t: 0, pressure: 1 }]);
  r.s.addPoints(0, id, [{ x: 2, y: 2, t: 1, pressure: 2 }]);
  r.s.addPoints(0, id, [{ x: 3, y: 3, t: 2, pressure: 3 }, { x: 4, y: 4, t: 3, pressure: 4 }]);
  let sent = r.take();
  assert.deepEqual(sent.map((m) => m.type), ['StrokeBegin', 'StrokePoints']);
  assert.equal(r.s.outbox.size, 3, 'the last two batches are one op');
  r.feed({ type: 'Ack', cseq: 2, seq: 2 });
  sent = r.take();
  assert.equal(sent.length, 1);
  assert.deepEqual([sent[0].type, sent[0].start, sent[0].count], ['StrokePoints', 1, 3]);
  assert.deepEqual(r.s.replica.find(2, id).points.map((p) => p.x), [1, 2, 3, 4]);
});

test('after a welcome the unprocessed batches of a stroke go out as one op with the later cseq', () => {
  const r = new Rig();
  r.join();
  r.take();
  const id = r.s.beginStroke(0);
  r.s.addPoints(0, id, [{ x: 1, y: 1, t: 0, pressure: 1 }]);
  r.s.addPoints(0, id, [{ x: 2, y: 2, t: 1, pressure: 2 }]);
  assert.deepEqual(r.take().map((m) => [m.type, m.cseq]), [['StrokeBegin', 1], ['StrokePoints', 2], ['StrokePoints', 3]]);
  r.s.connectionLost(0, null, '');
  r.at(r.s.getTimer());
  r.s.connectionMade(r.now);
  r.feed(welcome({ ackedCseq: 1, lastSeq: 1 }));
  // the catch-up replays from seq 1 (no Ack had come): our own StrokeBegin
  r.feed({ type: 'Event', seq: 1, sessionMs: 5, pid: 2, cseq: 1,
    body: { type: 'StrokeBegin', cseq: 0, stroke: id, page: 0, tool: 0, color: 255, width: 20, flags: 1, deviceT0: 0 } });
  const resent = r.take().filter((m) => m.type !== 'Join' && m.type !== 'Ping');
  assert.deepEqual(resent.map((m) => [m.type, m.cseq, m.start, m.count]), [['StrokePoints', 3, 0, 2]]);
  assert.deepEqual(r.s.replica.find(2, id).points.map((p) => p.x), [1, 2], 'the replica is as it was');
});

test('link-adaptive batching: the hold follows the ack delay and the backlog, as batching.py', () => {
  const b = new LinkBatcher();
  assert.equal(b.holdS(), 0, 'nothing known: nothing held');
  for (let i = 0; i < 50; i++) b.observeAck(0.120);
  assert.equal(b.holdS(), 0, 'a good link holds nothing');
  for (let i = 0; i < 50; i++) b.observeAck(0.330);
  assert.ok(b.holdS() > 0.06 && b.holdS() < 0.075, `(330 - 40 - 150) / 2 = 70 ms, got ${b.holdS()}`);
  assert.equal(b.holdS(5.0), 0.100, 'an ack long overdue: the maximum');
  assert.equal(new LinkBatcher().holdS(0.2), 0, '5 ms: below one pen batch');
  assert.equal(new LinkBatcher({ maxBatchS: 0 }).holdS(9), 0, 'off');
});

test('on a slow link the newest ink batch is held and later points merge into it', () => {
  const r = new Rig();
  r.join();
  r.take();
  for (let i = 0; i < 40; i++) r.s.batcher.observeAck(0.400); // acks come back 400 ms after sending
  const hold = r.s.batcher.holdS();
  assert.ok(hold > 0.09, `held ${hold}`);
  const id = r.s.beginStroke(0);
  assert.deepEqual(r.take().map((m) => m.type), ['StrokeBegin'], 'a StrokeBegin is never held');
  let x = 0;
  for (let t = 0; t < 0.09; t += 0.016) {
    r.until(t);
    r.s.addPoints(t, id, [{ x: ++x, y: 1, t: x, pressure: 1 }, { x: ++x, y: 1, t: x, pressure: 1 }]);
    assert.equal(r.take('StrokePoints').length, 0, `still held at ${t}`);
  }
  assert.ok(r.s.getTimer() <= hold + 1e-9, 'the hold is a timer');
  r.until(hold + 0.001);
  const sent = r.take('StrokePoints');
  assert.equal(sent.length, 1, 'one frame for every batch held');
  assert.deepEqual([sent[0].start, sent[0].count], [0, x]);
  const fast = new Rig();
  fast.join();
  fast.take();
  const id2 = fast.s.beginStroke(0);
  fast.s.addPoints(0, id2, [{ x: 1, y: 1, t: 0, pressure: 1 }]);
  assert.equal(fast.take('StrokePoints').length, 1, 'a good link holds nothing');
});

test('points written while the link is down do not merge into an op the server may have', () => {
  const r = new Rig();
  r.join();
  r.take();
  const id = r.s.beginStroke(0);
  r.s.addPoints(0, id, [{ x: 1, y: 1, t: 0, pressure: 1 }, { x: 2, y: 2, t: 1, pressure: 1 }]);
  assert.deepEqual(r.take().map((m) => [m.type, m.cseq]), [['StrokeBegin', 1], ['StrokePoints', 2]]);
  r.s.connectionLost(0, null, ''); // the server applied both; their Acks are lost with the link
  r.s.addPoints(0, id, [{ x: 3, y: 3, t: 2, pressure: 1 }]);
  r.at(r.s.getTimer());
  r.s.connectionMade(r.now);
  r.feed(welcome({ ackedCseq: 2, lastSeq: 2 }));
  const resent = r.take().filter((m) => m.type === 'StrokePoints');
  assert.deepEqual(resent.map((m) => [m.cseq, m.start, m.count]), [[3, 2, 1]], 'only the new point, from point 2');
});

test('pacing: ops wait for the bucket, and go out when its timer says', () => {
  const r = new Rig();
  r.join({ ratePerS: 10, rateBurst: 4 }); // 9/s, 2 at once (one spent by the first ping), 1 in flight
  r.take();
  for (let i = 0; i < 3; i++) r.s.switchPage(0, 0);
  assert.deepEqual(r.take('PageSwitch').map((m) => m.cseq), [1]);
  r.feed({ type: 'Ack', cseq: 1, seq: 0 });
  assert.equal(r.take('PageSwitch').length, 0, 'the bucket is dry');
  r.until(0.105);
  assert.equal(r.take('PageSwitch').length, 0, 'one token takes 1/9 s');
  r.until(0.12);
  assert.deepEqual(r.take('PageSwitch').map((m) => m.cseq), [2]);
  r.feed({ type: 'Ack', cseq: 2, seq: 0 });
  r.until(1);
  assert.deepEqual(r.take('PageSwitch').map((m) => m.cseq), [3]);
});

test('rights: what the welcome does not allow is not taken', () => {
  const r = new Rig();
  r.join({ rights: Rights.INK });
  r.take();
  assert.equal(r.s.clear(0, 0), false);
  assert.equal(r.s.addPage(0), null);
  assert.equal(r.s.mute(0, true), false);
  r.drain();
  assert.ok(r.seen.some((e) => e.type === 'error' && e.code === ErrorCode.FORBIDDEN));
  assert.notEqual(r.s.beginStroke(0), null);
  assert.deepEqual(r.take().map((m) => m.type), ['StrokeBegin']);
  const viewer = new Rig({ role: Role.VIEWER });
  viewer.join({ role: Role.VIEWER, rights: 0 });
  assert.equal(viewer.s.beginStroke(0), null);
  const tutor = new Rig({ role: Role.TUTOR });
  tutor.join({ role: Role.TUTOR, pid: 1, rights: ALL_RIGHTS });
  assert.equal(tutor.s.clear(0, 0), true);
});

test('a Grant naming us changes our rights, and another takes them back; restore and undo of others follow rights', () => {
  const r = new Rig();
  r.join();
  r.take();
  const begin = (seq, stroke) => r.feed({ type: 'Event', seq, sessionMs: 1, pid: 1, cseq: 0,
    body: { type: 'StrokeBegin', cseq: 0, stroke, page: 0, tool: 0, color: 255, width: 10, flags: 0, deviceT0: 0 } });
  begin(1, 5);
  assert.equal(r.s.clear(0, 0), false, 'no CLEAR yet');
  assert.equal(r.s.undo(0, 5, 1), false, "no UNDO_OTHERS: the tutor's stroke stays");
  r.feed({ type: 'Event', seq: 2, sessionMs: 2, pid: 1, cseq: 1, body: { type: 'Grant', cseq: 0, pid: 2, rights: Rights.CLEAR } });
  assert.equal(r.s.rights, STUDENT_RIGHTS | Rights.CLEAR);
  assert.ok(r.seen.some((e) => e.type === 'rights' && e.granted === Rights.CLEAR));
  assert.equal(r.s.restore(0, 0), false, 'nothing cleared yet: nothing to restore');
  assert.equal(r.s.clear(0, 0), true);
  assert.equal(r.s.clearedLayers(0), 1);
  assert.equal(r.s.restore(0, 0), true);
  assert.deepEqual(r.take().map((m) => m.type), ['Clear', 'Restore']);
  assert.deepEqual([...r.s.replica.pages[0].values()].map((s) => s.stroke), [5], 'the page is back locally');
  r.feed({ type: 'Ack', cseq: 2, seq: 4 });
  r.feed({ type: 'Event', seq: 5, sessionMs: 3, pid: 1, cseq: 2, body: { type: 'Grant', cseq: 0, pid: 2, rights: 0 } });
  assert.equal(r.s.rights, STUDENT_RIGHTS, 'taken back');
  assert.equal(r.s.clear(0, 0), false);
  const tutor = new Rig({ role: Role.TUTOR });
  tutor.join({ role: Role.TUTOR, pid: 1, rights: ALL_RIGHTS });
  tutor.take();
  tutor.feed({ type: 'Event', seq: 1, sessionMs: 1, pid: 2, cseq: 0,
    body: { type: 'StrokeBegin', cseq: 0, stroke: 9, page: 0, tool: 0, color: 255, width: 10, flags: 0, deviceT0: 0 } });
  assert.equal(tutor.s.undo(0, 9, 2), true, "the tutor takes the student's stroke away");
  assert.equal(tutor.s.grant(0, 2, Rights.INK), false, 'INK is not grantable');
  assert.equal(tutor.s.grant(0, 2, Rights.CLEAR), true);
  assert.deepEqual(tutor.take().map((m) => [m.type, m.author ?? m.rights]), [['Undo', 2], ['Grant', Rights.CLEAR]]);
  assert.equal(tutor.s.replica.participant(2).granted, Rights.CLEAR);
});

test('presence says whether the other side left or dropped', () => {
  const r = new Rig();
  r.join();
  r.feed({ type: 'Event', seq: 1, sessionMs: 1, pid: 1, cseq: 0,
    body: { type: 'Presence', userId: 'tut', online: false, role: Role.TUTOR, left: true } });
  assert.equal(r.s.replica.participant(1).left, true);
  assert.ok(r.seen.some((e) => e.type === 'presence' && e.left === true && e.online === false));
  r.feed({ type: 'Event', seq: 2, sessionMs: 2, pid: 1, cseq: 0,
    body: { type: 'Presence', userId: 'tut', online: true, role: Role.TUTOR } });
  assert.equal(r.s.replica.participant(1).left, false);
});

test('a refused op is rolled back', () => {
  const r = new Rig();
  r.join();
  r.take();
  const id = r.s.beginStroke(0);
  assert.ok(r.s.replica.find(2, id));
  r.feed({ type: 'Error', code: ErrorCode.ROOM_INK_LIMIT, message: 'full', ref: 1 });
  assert.equal(r.s.replica.find(2, id), undefined);
  assert.equal(r.s.outbox.size, 0);
  r.s.addPoints(0, id, [{ x: 1, y: 1, t: 0 }]);
  assert.equal(r.s.outbox.size, 0, 'nothing more for a stroke the room refused');
});

// Our unacknowledged ops and the events of others (Replica.rebase): each event below was sequenced
// before the ops of ours still waiting for their Ack, as the server guarantees.
function tutorRig() {
  const r = new Rig({ role: Role.TUTOR });
  r.join({ role: Role.TUTOR, pid: 1, rights: ALL_RIGHTS });
  r.take();
  let seq = 0;
  const states = new Map();
  const send = (body) => r.feed({ type: 'Event', seq: ++seq, sessionMs: 1, pid: 2, cseq: seq, body });
  return {
    r,
    get seq() { return seq; },
    begin: (stroke) => {
      states.set(stroke, new PointState());
      send({ type: 'StrokeBegin', cseq: 0, stroke, page: 0, tool: 0, color: 255, width: 10, flags: 1, deviceT0: 0 });
    },
    points: (stroke, n) => {
      const st = states.get(stroke);
      const start = st.count;
      const pts = Array.from({ length: n }, (_, i) => ({ x: 10 + start + i, y: 20, t: start + i, pressure: 9, tiltX: 0, tiltY: 0 }));
      send({ type: 'StrokePoints', cseq: 0, stroke, start, count: n, blob: encodePoints(pts, 1, st) });
    },
    send,
  };
}
const onPage = (r) => [...r.s.replica.pages[0].values()].map((s) => [s.pid, s.stroke]);
const layersOf = (r) => (r.s.replica.cleared.get(0) ?? []).map((l) => [...l.values()].map((s) => [s.pid, s.stroke]));

test("the student's ink sequenced before our Clear goes into its layer, and is no fault", () => {
  const t = tutorRig();
  t.begin(5);
  t.points(5, 2);
  assert.equal(t.r.s.clear(0, 0), true);
  assert.deepEqual(onPage(t.r), []);
  t.points(5, 3); // the room had these before our Clear
  t.begin(6); // and this stroke, which its Clear took too
  assert.equal(t.r.s.state, ClientState.LIVE);
  t.r.feed({ type: 'Ack', cseq: 1, seq: t.seq + 1 });
  assert.deepEqual(layersOf(t.r), [[[2, 5], [2, 6]]]);
  assert.equal(t.r.s.replica.cleared.get(0)[0].get(2 * 2 ** 32 + 5).points.length, 5);
  assert.ok(t.r.seen.some((e) => e.type === 'change' && e.change.kind === 'reset'), 'the views redraw');
});

test("a Clear of the student's before our new stroke leaves it on the page, and its points go out", () => {
  const t = tutorRig();
  t.begin(5);
  const ours = t.r.s.beginStroke(0, { page: 0 });
  t.r.s.addPoints(0, ours, [{ x: 1, y: 1, t: 0 }]);
  t.send({ type: 'Clear', cseq: 0, page: 0 });
  assert.deepEqual(onPage(t.r), [[1, ours]]);
  assert.deepEqual(layersOf(t.r), [[[2, 5]]]);
  assert.equal(t.r.s.addPoints(0, ours, [{ x: 2, y: 2, t: 5 }]), true);
});

test('our Restore that found nothing brings back the Clear the room had before it; a refused one goes beneath our Clear', () => {
  const t = tutorRig();
  t.begin(5);
  t.r.s.submit(0, msg.restore(0, 0)); // nothing to bring back here, yet (the page's own check is skipped)
  t.send({ type: 'Clear', cseq: 0, page: 0 }); // the room: this Clear, then our Restore
  assert.deepEqual(onPage(t.r), [[2, 5]]);
  assert.deepEqual(layersOf(t.r), []);

  const u = tutorRig();
  u.begin(5);
  u.send({ type: 'Clear', cseq: 0, page: 0 });
  u.begin(6);
  assert.equal(u.r.s.restore(0, 0), true); // page 5, 6
  assert.equal(u.r.s.clear(0, 0), true); // layer [5, 6]
  assert.deepEqual(layersOf(u.r), [[[2, 5], [2, 6]]]);
  u.r.feed({ type: 'Ack', cseq: 1, seq: 0 });
  u.r.feed({ type: 'Error', code: ErrorCode.NOTHING_TO_RESTORE, message: 'nothing', ref: 1 });
  assert.deepEqual(layersOf(u.r), [[[2, 5]], [[2, 6]]], 'as the room has them');
  assert.deepEqual(onPage(u.r), []);
});

test('an event the replica cannot apply rebuilds the pages from seq 0', () => {
  const t = tutorRig();
  t.send({ type: 'Undo', cseq: 0, stroke: 99, author: 0 });
  assert.equal(t.r.s.state, ClientState.BACKOFF);
  t.r.s.connect(t.r.now);
  t.r.s.connectionMade(t.r.now);
  const [join] = t.r.take('Join');
  assert.equal(join.lastSeq, 0);
});

test('events of other participants by pid; a seq gap rejoins, a snapshot rebuilds', () => {
  const r = new Rig();
  r.join();
  r.feed({ type: 'Event', seq: 1, sessionMs: 1, pid: 1, cseq: 0,
    body: { type: 'StrokeBegin', cseq: 0, stroke: 5, page: 0, tool: 0, color: 255, width: 10, flags: 1, deviceT0: 0 } });
  assert.equal(r.s.replica.strokes(1).length, 1);
  r.feed({ type: 'Event', seq: 3, sessionMs: 1, pid: 1, cseq: 0, body: { type: 'StrokeEnd', cseq: 0, stroke: 5 } });
  assert.equal(r.s.state, ClientState.BACKOFF, 'a gap drops the link');
  assert.equal(r.s.replica.lastSeq, 1, 'and keeps where we were');
  r.at(r.s.getTimer());
  r.s.connectionMade(r.now);
  r.feed(welcome({ mode: CatchUp.SNAPSHOT, lastSeq: 9, pageCount: 1, epoch: EPOCH + 1 }));
  assert.equal(r.s.replica.strokes().length, 0);
  r.feed({ type: 'Snapshot', seq: 9, page: 0, strokes: [{ pid: 1, stroke: 6, tool: 0, color: 255, width: 10, flags: 0,
    deviceT0: 0, count: 0, blob: new Uint8Array(0), ended: true }] });
  assert.equal(r.s.replica.lastSeq, 9);
  assert.deepEqual(r.s.replica.strokes().map((s) => [s.pid, s.stroke]), [[1, 6]]);
  assert.ok(r.seen.filter((e) => e.type === 'synced').length >= 2);
});

test('a snapshot page in parts: strokes continue across parts, the page is whole at the last', () => {
  const r = new Rig();
  r.join({ mode: CatchUp.SNAPSHOT, lastSeq: 5, pageCount: 1 });
  const piece = (points, ended) => ({ pid: 1, stroke: 9, tool: 0, color: 255, width: 10, flags: 0, deviceT0: 0,
    count: points.length, blob: encodePoints(points, 0, piece.state), ended });
  piece.state = new PointState();
  const first = piece([{ x: 1, y: 1, t: 0 }, { x: 2, y: 2, t: 1 }], false);
  const second = piece([{ x: 3, y: 3, t: 2 }], true);
  r.feed({ type: 'Snapshot', seq: 5, page: 0, strokes: [first], part: 0, last: false });
  assert.equal(r.s.replica.lastSeq, 0, 'not whole yet');
  assert.ok(!r.seen.some((e) => e.type === 'synced'));
  r.feed({ type: 'Snapshot', seq: 5, page: 0, strokes: [second], part: 1, last: true });
  assert.equal(r.s.replica.lastSeq, 5);
  const s = r.s.replica.find(1, 9);
  assert.deepEqual([s.points.map((p) => p.x), s.ended], [[1, 2, 3], true]);
  assert.ok(r.seen.some((e) => e.type === 'synced'));
  // a part out of order is refused: the link is dropped and resumed
  r.feed({ type: 'Snapshot', seq: 5, page: 0, strokes: [], part: 3, last: true });
  assert.equal(r.s.state, ClientState.BACKOFF);
});

test('close() leaves with 1000 from any state that has a link', () => {
  const r = new Rig();
  r.join();
  r.s.close(1);
  r.drain();
  assert.deepEqual(r.closes, [1000]);
  assert.equal(r.s.state, ClientState.CLOSED);
  assert.equal(r.s.getTimer(), null);
});

// --- the I/O shell (web_client/js/connection.js) over a fake WebSocket -------------------------

class FakeSocket {
  static made = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    FakeSocket.made.push(this);
  }

  send(frame) { this.sent.push(decodeFrame(frame)); }

  close(code = 1005, reason = '') { this.closed = { code, reason }; this.readyState = 3; }

  up() { this.readyState = 1; this.onopen?.(); }

  deliver(message) { this.onmessage?.({ data: encodeMessage(message).slice().buffer }); }

  down(code) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
}

test('the shell opens, joins, resumes after a drop and closes with 1000', async () => {
  const { SessionConnection } = await import('../../web_client/js/connection.js');
  FakeSocket.made = [];
  const c = new SessionConnection({ url: 'ws://x/ws/session/s1', token: 'tok', role: 'student',
    WebSocketImpl: FakeSocket, config: { backoff: { initialS: 0.001, capS: 0.001 } } });
  try {
    await shellScenario(c);
  } finally {
    c.close(); // no timer may keep the test process alive
  }
});

async function shellScenario(c) {
  const states = [];
  c.addEventListener('state', (e) => states.push(e.detail));
  const changes = [];
  c.addEventListener('change', (e) => changes.push(e.detail.kind));
  const joined = c.connect();
  const ws = FakeSocket.made[0];
  ws.up();
  assert.equal(ws.sent[0].type, 'Join');
  ws.deliver(welcome());
  assert.equal((await joined).pid, 2);
  assert.equal(c.state, 'live');
  const id = c.beginStroke({ color: '#112233' });
  assert.equal(c.replica.find(2, id).color, 0x112233ff);
  assert.ok(changes.includes('begin'));
  ws.down(1011);
  assert.equal(c.state, 'backoff');
  await new Promise((resolve) => setTimeout(resolve, 20));
  const again = FakeSocket.made[1];
  assert.ok(again, 'a new socket after the backoff');
  again.up();
  assert.deepEqual(again.sent.map((m) => m.type), ['Join']);
  assert.equal(again.sent[0].lastSeq, 0);
  again.deliver(welcome({ lastSeq: 0 }));
  assert.ok(again.sent.some((m) => m.type === 'StrokeBegin' && m.cseq === 1), 'the unacked op is resent');
  c.close();
  assert.deepEqual(again.closed, { code: 1000, reason: 'client left' });
  assert.deepEqual(states, ['connecting', 'joining', 'live', 'backoff', 'connecting', 'joining', 'live', 'closed']);
}

test('a class viewer on stage may write and speak until it leaves; hands and questions are kept', () => {
  const v = new Rig({ role: Role.VIEWER });
  v.join({
    role: Role.VIEWER, pid: 2, userId: 'v', rights: Rights.ASK,
    roster: [
      { pid: 1, userId: 'teacher', role: Role.PRESENTER, online: true, muted: false, currentPage: 0, handMs: 0, stage: 0 },
      { pid: 2, userId: 'v', role: Role.VIEWER, online: true, muted: false, currentPage: 0, handMs: 900, stage: 0 },
    ],
  });
  v.take();
  assert.equal(v.s.replica.participants.get(2).handMs, 900); // a raised hand survives a rejoin
  assert.equal(v.s.beginStroke(0), null); // a viewer does not write
  const event = (seq, pid, body) => ({ type: 'Event', seq, sessionMs: 1000 + seq, pid, cseq: 0, body });
  v.feed(event(1, 2, { type: 'Question', cseq: 0, text: '为什么?' }));
  assert.deepEqual(v.s.replica.questions, [{ pid: 2, text: '为什么?' }]);
  v.feed(event(2, 1, { type: 'Stage', cseq: 0, pid: 2, action: StageAction.INVITE }));
  assert.equal(v.s.replica.participants.get(2).stage, 1);
  assert.equal(v.s.beginStroke(0), null); // invited is not on stage yet
  assert.equal(v.s.stage(0, 2, StageAction.ACCEPT), true); // our own accept: applied when its event comes
  const [accept] = v.take('Stage');
  assert.equal(v.s.replica.participants.get(2).stage, 1);
  v.feed(event(3, 2, { type: 'Stage', cseq: 0, pid: 2, action: StageAction.ACCEPT }));
  v.feed({ type: 'Ack', cseq: accept.cseq, seq: 3 });
  assert.equal(v.s.replica.participants.get(2).stage, 2);
  assert.equal(v.s.replica.participants.get(2).handMs, 0); // coming on stage answered the hand
  assert.notEqual(v.s.beginStroke(0), null);
  assert.deepEqual(v.take().map((m) => m.type), ['StrokeBegin']);
  v.feed(event(4, 1, { type: 'Moderate', cseq: 0, pid: 2, action: ModAction.MUTE }));
  assert.equal(v.s.replica.participants.get(2).muted, true);
  v.feed(event(5, 1, { type: 'Stage', cseq: 0, pid: 2, action: StageAction.LEAVE })); // sent back
  assert.equal(v.s.replica.participants.get(2).stage, 0);
  assert.equal(v.s.beginStroke(0), null);
  assert.ok(v.seen.some((e) => e.type === 'class' && e.op.type === 'Stage'));
});

test('2010 MOVED: straight on to the named node (at most 3 in a row), the redirect kept until it fails; mid-session too', () => {
  const r = new Rig();
  r.s.connect(0);
  r.s.connectionMade(0.01);
  r.drain();
  r.feed({ type: 'Error', code: ErrorCode.MOVED, message: 'ws://n2.example/ws/session/s1', ref: 0 });
  assert.equal(r.s.state, ClientState.BACKOFF);
  assert.equal(r.s.redirect, 'ws://n2.example/ws/session/s1');
  assert.equal(r.s.getTimer(), r.now, 'a redirect is no failure: no backoff');
  const opens = r.opens;
  r.at(r.now);
  assert.equal(r.opens, opens + 1, 'the shell opens the next link at once');
  // three redirects in a row are followed at once; the fourth backs off as a failure
  for (let i = 0; i < 3; i++) {
    r.s.connectionMade(r.now);
    r.drain();
    r.feed({ type: 'Error', code: ErrorCode.MOVED, message: `ws://n${i + 3}.example/ws/session/s1`, ref: 0 });
    if (i < 2) {
      assert.equal(r.s.getTimer(), r.now, `redirect ${i + 2}`);
      r.at(r.now);
    }
  }
  assert.ok(r.s.getTimer() > r.now, 'the fourth redirect in a row waits');
  assert.equal(r.s.redirect, 'ws://n5.example/ws/session/s1');
  // the named node cannot be reached: back to our own URL
  r.until(r.s.getTimer());
  assert.equal(r.s.state, ClientState.CONNECTING);
  r.s.connectionLost(r.now, null, 'refused');
  assert.equal(r.s.redirect, null);
  // live, then moved mid-session: 2010 with an empty message (join through the entry URL), close 4013
  r.until(r.s.getTimer());
  r.join();
  assert.equal(r.s.state, ClientState.LIVE);
  r.feed({ type: 'Error', code: ErrorCode.MOVED, message: '', ref: 0 });
  r.s.connectionLost(r.now, 4013, 'moved');
  assert.equal(r.s.state, ClientState.BACKOFF);
  assert.equal(r.s.redirect, null);
});

test('2011 SERVER_BUSY in place of a Welcome backs off and tries again', () => {
  const r = new Rig();
  r.s.connect(0);
  r.s.connectionMade(0.01);
  r.drain();
  r.feed({ type: 'Error', code: ErrorCode.SERVER_BUSY, message: 'server busy, retry in 5 s', ref: 0 });
  assert.equal(r.s.state, ClientState.BACKOFF);
  assert.ok(r.s.getTimer() > r.now);
  assert.ok(r.seen.some((e) => e.type === 'error' && e.code === ErrorCode.SERVER_BUSY && !e.fatal));
});
